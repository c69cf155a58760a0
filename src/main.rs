//! The `epollo` binary: flags → `Config`, start logging, run, and turn an error into one line
//! on stderr and a non-zero exit.

use std::process::ExitCode;

use epollo::config::{self, Command};

fn main() -> ExitCode {
    let command = match config::parse_args(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("epollo: error: {error}\n\n{}", config::usage());
            return ExitCode::from(2);
        }
    };
    let config = match command {
        Command::Help => {
            println!("{}", config::usage());
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("epollo {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Serve(config) => config,
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match epollo::run(*config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Said once: no log line as well (the message already says what to do).
            eprintln!("epollo: error: {error}");
            ExitCode::FAILURE
        }
    }
}

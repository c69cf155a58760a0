//! The `epollo` binary: flags → `Config`, start logging, run, and turn an error into one line
//! on stderr and a non-zero exit.
//!
//! # Design notes
//! Nothing here uses `println!` or `eprintln!`: they panic when the stream is a pipe whose
//! reader has gone (`epollo --help | head -1`). A reader leaving early means it has read
//! enough, so `--help` and `--version` then end quietly with success; with stderr gone there
//! is nobody to tell of an error, and the exit status says it alone.

use std::io::{self, Write};
use std::process::ExitCode;

use epollo::config::{self, Command};

fn main() -> ExitCode {
    let command = match config::parse_args(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(error) => {
            // One line and a pointer, not the whole help: the error must not scroll away.
            say(&format!(
                "epollo: error: {error}\nrun 'epollo --help' to see every flag"
            ));
            return ExitCode::from(2);
        }
    };
    let config = match command {
        Command::Help => return print(&config::usage()),
        Command::Version => return print(&format!("epollo {}", env!("CARGO_PKG_VERSION"))),
        Command::Serve(config) => config,
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match epollo::run(*config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Said once: no log line as well (the message already says what to do).
            say(&format!("epollo: error: {error}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes `text` and a newline to stdout (`--help`, `--version`). A reader that left early
/// (a closed pipe) has had what it wanted: success, quietly. Any other failure (a full disk)
/// is an error.
fn print(text: &str) -> ExitCode {
    let mut stdout = io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("epollo: error: writing to stdout: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Writes one message to stderr; if stderr is gone too, there is nobody left to tell.
fn say(message: &str) {
    let _ = writeln!(io::stderr().lock(), "{message}");
}

//! The stable fuzz run: replays the seed corpus in `fuzz/corpus/request`, then runs
//! `FUZZ_ITERATIONS` (default 20,000, a few seconds) deterministic mutations of it through the
//! same harness as the cargo-fuzz target. `FUZZ_SECS=600 cargo test --release --test tests fuzz --
//! --nocapture` runs it for ten minutes instead.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

/// Fragments that make mutations reach interesting parser states.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"GET ",
    b"HEAD ",
    b" HTTP/1.1",
    b" HTTP/1.0",
    b"Host: a\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 0\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b";ext=1",
    b"Trailer: x\r\n",
    b" HTTP/1.2",
    b"/../",
    b"Host: [::1]:80\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Expect: 100-continue\r\n",
    b"%2e%2e",
    b"%252e",
    b"%c0%ae",
    b"..",
    b"/",
    b"//",
    b"\\",
    b"%00",
    b"\0",
    b"?",
    b"#",
    b"http://h/",
    b"*",
    b"\t",
    b" ",
    b":",
    b"/index.html",
    b"/sub",
    b"/big.bin",
    b"/a.txt",
];

/// A tiny deterministic generator (xorshift64*), so a failure can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random edit of `input`.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    let at = rng.below(input.len() + 1);
    match rng.below(7) {
        0 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] ^= 1 << rng.below(8);
        }
        1 if !input.is_empty() => {
            let end = (at + rng.below(16)).min(input.len());
            input.drain(at.min(end)..end);
        }
        2 => {
            let token = TOKENS[rng.below(TOKENS.len())];
            input.splice(at..at, token.iter().copied());
        }
        3 => {
            let other = &corpus[rng.below(corpus.len())];
            let from = rng.below(other.len() + 1);
            input.splice(at..at, other[from..].iter().copied());
        }
        4 => {
            let byte = rng.below(256) as u8;
            let run = rng.below(64) + 1;
            input.splice(at..at, std::iter::repeat_n(byte, run));
        }
        5 => input.truncate(at),
        _ => {
            let i = rng.below(input.len() + 1);
            input.insert(i.min(input.len()), rng.below(256) as u8);
        }
    }
}

fn load_corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/request");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("the seed corpus exists")
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 10, "the seed corpus is too small");
    seeds.into_iter().map(|(_, bytes)| bytes).collect()
}

fn run_one(site: &harness::Site, input: &[u8], label: &str) {
    let output = harness::exchange(site, input);
    if let Err(problem) = harness::check(input, &output) {
        panic!(
            "{label}: {problem}\ninput: {:?}\noutput: {:?}",
            harness::excerpt(input, 2000),
            harness::excerpt(&output, 2000)
        );
    }
}

#[test]
fn seeds_and_their_mutations_keep_every_invariant() {
    let site = harness::Site::new();
    let corpus = load_corpus();
    for (i, seed) in corpus.iter().enumerate() {
        run_one(&site, seed, &format!("seed {i}"));
    }
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let budget = env("FUZZ_SECS").map(Duration::from_secs);
    let iterations = env("FUZZ_ITERATIONS").unwrap_or(20_000);
    let started = Instant::now();
    let mut rng = Rng(env("FUZZ_SEED").unwrap_or(0x9e37_79b9_7f4a_7c15));
    let mut executions = 0u64;
    loop {
        let done = match budget {
            Some(budget) => started.elapsed() >= budget,
            None => executions >= iterations,
        };
        if done {
            break;
        }
        let mut input = corpus[rng.below(corpus.len())].clone();
        for _ in 0..=rng.below(8) {
            mutate(&mut rng, &mut input, &corpus);
        }
        input.truncate(harness::MAX_INPUT);
        run_one(&site, &input, &format!("execution {executions}"));
        executions += 1;
    }
    println!(
        "fuzz: {} seeds, {executions} mutated executions in {:?}, no invariant broken",
        corpus.len(),
        started.elapsed()
    );
}

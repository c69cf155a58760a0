//! A headless Chromium the tests drive over the DevTools protocol, for what only a browser can
//! tell (does a page reload, does its style change, does the seventh tab load).
//!
//! The protocol runs over a pipe, not a WebSocket: Chromium started with
//! `--remote-debugging-pipe` reads commands from descriptor 3 and writes answers and events to
//! descriptor 4, each a JSON message ended by a NUL byte. A shell gives it our stdin as 3 and
//! our stdout as 4 (`3<&0 4>&1`), so no unsafe code is needed to set the descriptors up.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{PATIENCE, TempDir, tool_installed};

/// Whether Chromium can be run; outside CI a missing one skips the test (with a line on
/// stderr), in CI it fails it.
pub fn chromium_installed() -> bool {
    tool_installed("chromium", "--version")
}

/// One headless Chromium with its own profile.
pub struct Browser {
    /// The browser process (through `sh`, which `exec`s it).
    child: Child,
    /// Where commands go (Chromium's descriptor 3).
    commands: ChildStdin,
    /// Messages Chromium sent (its descriptor 4), parsed, from a reader thread.
    messages: Receiver<Value>,
    /// The next command's id.
    next_id: u64,
    /// The profile, removed with the browser.
    _profile: TempDir,
}

/// A tab, attached: its commands carry this session id.
pub struct Tab {
    /// The session to address the tab's commands to.
    session: String,
}

impl Browser {
    /// Starts a headless Chromium.
    pub fn launch() -> Browser {
        let profile = TempDir::new("chromium");
        let flags = [
            "--headless",
            "--no-sandbox", // the suite runs as root in CI
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--remote-debugging-pipe",
        ];
        let script = format!(
            "exec chromium {} --user-data-dir={} 3<&0 4>&1 1>/dev/null 2>/dev/null",
            flags.join(" "),
            profile.path().display()
        );
        let mut child = crate::common::spawn(
            Command::new("sh")
                .args(["-c", &script])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .expect("chromium starts");
        let commands = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                message.pop(); // the NUL
                if let Ok(value) = serde_json::from_slice::<Value>(&message)
                    && tx.send(value).is_err()
                {
                    return;
                }
                message.clear();
            }
        });
        Browser {
            child,
            commands,
            messages,
            next_id: 1,
            _profile: profile,
        }
    }

    /// Sends one command (to a tab's session, if given) and waits for its answer.
    pub fn call(&mut self, tab: Option<&Tab>, method: &str, params: Value) -> Value {
        let answer = self.answer(tab, method, params);
        assert!(answer.get("error").is_none(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// Sends one command and waits for its whole answer, a result or an error.
    fn answer(&mut self, tab: Option<&Tab>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(tab) = tab {
            message["sessionId"] = json!(tab.session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .expect("chromium reads commands");
        let until = Instant::now() + PATIENCE;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let answer = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {method} in time"));
            if answer["id"] == json!(id) {
                return answer;
            }
        }
    }

    /// Opens a tab at `url` and attaches to it.
    pub fn open(&mut self, url: &str) -> Tab {
        let target = self.call(None, "Target.createTarget", json!({ "url": url }));
        let target_id = target["targetId"].clone();
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        Tab {
            session: attached["sessionId"].as_str().unwrap().to_string(),
        }
    }

    /// The value of `expression` in the tab's page (`null` while the page is not there yet).
    pub fn eval(&mut self, tab: &Tab, expression: &str) -> Value {
        let params = json!({ "expression": expression, "returnByValue": true });
        let answer = self.answer(Some(tab), "Runtime.evaluate", params);
        if let Some(error) = answer.get("error") {
            // A reload that starts while the expression runs ends the page it ran in
            // ("Inspected target navigated or closed", or its context is gone): the next
            // page is not there yet.
            let message = error["message"].as_str().unwrap_or_default();
            let navigating = message.contains("navigated") || message.contains("context");
            assert!(navigating, "Runtime.evaluate: {answer}");
            return Value::Null;
        }
        answer["result"]["result"]["value"].clone()
    }

    /// Waits (at most `patience`) until `expression` is `true` in the tab's page; returns
    /// whether it became so. The page gives no signal of its own, so this asks every 20 ms.
    pub fn wait_until(&mut self, tab: &Tab, expression: &str, patience: Duration) -> bool {
        let until = Instant::now() + patience;
        loop {
            if self.eval(tab, expression) == json!(true) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

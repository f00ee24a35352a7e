//! One `dsrm serve` child process per arm, on an ephemeral loopback port.
//!
//! Why a process and not a server inside the harness: each arm is then exactly what an operator deploys (the
//! binary, its flags, its own libtorch and worker thread), and the harness talks to it only over HTTP, as it
//! does to a `--url` arm. The child is started with `--addr 127.0.0.1:0`; the port it got is read from the line
//! it prints on stderr once the run is loaded (`... on http://127.0.0.1:PORT; ...`, the same line
//! `python/dsrm_hrl/policy.py` reads), and the harness then waits for `GET /healthz`. Its stderr keeps being
//! drained (the last lines are kept for error messages). Dropping the handle kills the child (SIGKILL: the
//! harness has no request in flight by then and the server writes nothing that needs a clean exit) and
//! reaps it.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `dsrm serve` child.
pub struct ChildServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<Vec<String>>>,
}

/// The URL in the server's start line, if `line` is it.
pub fn listening_url(line: &str) -> Option<String> {
    let at = line.find(" on http://")?;
    let rest = &line[at + 4..];
    let end = rest.find(';').unwrap_or(rest.len());
    let url = rest[..end].trim();
    url.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()).then(|| url.to_string())
}

impl ChildServer {
    /// Starts `binary serve --run RUN --addr 127.0.0.1:0 --seed SEED` and waits up to `timeout` for its start
    /// line. The error carries the child's last stderr lines (a bad run, a wrong binary).
    pub fn start(binary: &Path, run: &Path, seed: u64, timeout: Duration) -> Result<Self> {
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--run")
            .arg(run)
            .args(["--addr", "127.0.0.1:0", "--seed", &seed.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} serve --run {}", binary.display(), run.display()))?;
        let stderr = child.stderr.take().context("the child's stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let kept = Arc::clone(&log);
        std::thread::Builder::new().name("dsrm-abtest-child-log".into()).spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(url) = listening_url(&line) {
                        let _ = tx.send(url);
                        sent = true;
                    }
                }
                let mut g = kept.lock().unwrap_or_else(|e| e.into_inner());
                g.push(line);
                if g.len() > 40 {
                    g.remove(0);
                }
            }
        })?;
        let mut server = Self { child, url: String::new(), log };
        let deadline = Instant::now() + timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(url) => {
                    server.url = url;
                    return Ok(server);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stderr closed without a start line: the child exited. Give the log thread a moment.
                    std::thread::sleep(Duration::from_millis(50));
                    let status = server.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    bail!("dsrm serve --run {} exited ({status}) before listening:\n{}", run.display(), server.tail());
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                bail!("dsrm serve --run {} exited ({status}) before listening:\n{}", run.display(), server.tail());
            }
            if Instant::now() > deadline {
                bail!(
                    "dsrm serve --run {} did not start listening within {} s:\n{}",
                    run.display(),
                    timeout.as_secs(),
                    server.tail()
                );
            }
        }
    }

    /// The child's last stderr lines.
    pub fn tail(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).join("\n")
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_start_line() {
        let line = "serving runs/a (hrl on kuairec, 300 items, Sampled selection) on http://127.0.0.1:40123; \
                    SIGTERM or ctrl-c stops";
        assert_eq!(listening_url(line).as_deref(), Some("http://127.0.0.1:40123"));
        assert_eq!(listening_url("loading the world"), None);
        assert_eq!(listening_url("x on http://host:notaport; y"), None);
    }

    #[test]
    fn a_missing_binary_is_an_error_not_a_panic() {
        let e = ChildServer::start(Path::new("/nonexistent/dsrm"), Path::new("run"), 0, Duration::from_secs(1));
        assert!(format!("{:#}", e.err().unwrap()).contains("starting /nonexistent/dsrm serve"));
    }
}

//! Test support shared by the binary crates' tests: start a real binary, wait for the log
//! line that says it is ready (and on which address), signal it, collect its exit and logs.
//! Readiness comes from the program itself, never from a fixed sleep.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running binary, killed on drop. Its stderr is collected line by line.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts `cmd` with stderr captured (stdout is left as configured).
    pub fn start(cmd: &mut Command) -> anyhow::Result<Running> {
        let mut child = cmd
            .stderr(Stdio::piped())
            .env("RUST_LOG", "info")
            .spawn()
            .with_context(|| format!("could not start {cmd:?}"))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = keep.lock() {
                    log.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        Ok(Running { child, lines, log })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub fn wait_for_line(&self, needle: &str, patience: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => continue,
                Err(_) => bail!("no log line containing {needle:?}; log so far:\n{}", self.log()),
            }
        }
    }

    /// Waits for the line containing `needle` and parses the `addr=` field in it.
    pub fn wait_for_addr(&self, needle: &str, patience: Duration) -> anyhow::Result<SocketAddr> {
        let line = self.wait_for_line(needle, patience)?;
        let addr = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("addr="))
            .with_context(|| format!("no addr= in {line:?}"))?;
        addr.parse().with_context(|| format!("bad address in {line:?}"))
    }

    /// Sends SIGTERM (through `kill`, to keep tests free of unsafe code).
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        Ok(())
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, patience: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("still running after {patience:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

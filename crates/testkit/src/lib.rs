//! Test support shared by the binary crates' tests: start a real binary, wait for the log
//! line that says it is ready (and on which address), signal it, collect its exit and logs.
//! Readiness comes from the program itself, never from a fixed sleep.
//!
//! # Layout
//! - [`Running`] — a started binary: its log lines (with the instant each was read), its
//!   signals and its exit.
//! - [`sibling_bin`] — the path of another workspace binary built beside the test.
//! - [`netns`] — network namespaces joined by a veth pair, for link faults; removed on drop.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod netns;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running binary, killed on drop. Its stderr is collected line by line.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts `cmd` with stderr captured (stdout is left as configured). `RUST_LOG` is `info`
    /// unless `cmd` sets it.
    pub fn start(cmd: &mut Command) -> anyhow::Result<Running> {
        if !cmd.get_envs().any(|(key, _)| key == "RUST_LOG") {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start {cmd:?}"))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, lines) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let at = Instant::now();
                if let Ok(mut log) = keep.lock() {
                    log.push(line.clone());
                }
                let _ = tx.send((at, line));
            }
        });
        Ok(Running { child, lines, log })
    }

    /// The program's stdout, if `cmd` piped it (once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stderr line containing `needle` and returns it. Lines are consumed: the
    /// next wait looks only at lines after this one.
    pub fn wait_for_line(&self, needle: &str, patience: Duration) -> anyhow::Result<String> {
        self.wait_for_line_since(needle, None, patience).map(|(_, line)| line)
    }

    /// Waits for a stderr line containing `needle` that was read at or after `since` (any,
    /// if `None`), and returns it with the instant it was read. Earlier lines are consumed.
    pub fn wait_for_line_since(
        &self,
        needle: &str,
        since: Option<Instant>,
        patience: Duration,
    ) -> anyhow::Result<(Instant, String)> {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((at, line)) if line.contains(needle) && since.is_none_or(|s| at >= s) => {
                    return Ok((at, line));
                }
                Ok(_) => continue,
                Err(_) => bail!("no log line containing {needle:?}; log so far:\n{}", self.log()),
            }
        }
    }

    /// The stderr lines read since the last wait (or take), each with the instant it was read,
    /// without waiting for more. They are consumed.
    pub fn take_lines(&self) -> Vec<(Instant, String)> {
        self.lines.try_iter().collect()
    }

    /// Waits for the line containing `needle` and parses the `addr=` field in it.
    pub fn wait_for_addr(&self, needle: &str, patience: Duration) -> anyhow::Result<SocketAddr> {
        self.wait_for_addr_at(needle, patience).map(|(addr, _)| addr)
    }

    /// Like [`wait_for_addr`](Self::wait_for_addr), with the instant the line was read: when
    /// the program became ready, for tests that time what follows.
    pub fn wait_for_addr_at(
        &self,
        needle: &str,
        patience: Duration,
    ) -> anyhow::Result<(SocketAddr, Instant)> {
        let (at, line) = self.wait_for_line_since(needle, None, patience)?;
        let addr = line
            .split_whitespace()
            .find_map(|word| word.strip_prefix("addr="))
            .with_context(|| format!("no addr= in {line:?}"))?;
        Ok((addr.parse().with_context(|| format!("bad address in {line:?}"))?, at))
    }

    /// Sends SIGTERM (through `kill`, to keep tests free of unsafe code).
    pub fn terminate(&self) -> anyhow::Result<()> {
        self.signal("TERM")
    }

    /// Sends the signal named `name` (`"INT"`, `"KILL"`, …) through `kill`.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status =
            Command::new("kill").args([&format!("-{name}"), &self.pid().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -{name} {} failed", self.pid());
        Ok(())
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_exit(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        Ok(self.child.try_wait()?)
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

/// The path of the workspace binary `name`, built in the same target directory as the running
/// test. A test can name its own package's binaries with `env!("CARGO_BIN_EXE_…")`; another
/// package's are built by `cargo test --workspace` (or `cargo build --bins`), not by
/// `cargo test -p` of the test's package alone.
pub fn sibling_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the test executable")?;
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|deps| deps.parent()).context("unexpected test path")?;
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        bin.is_file(),
        "{} is not built; run `cargo test --workspace` or `cargo build --bins` first",
        bin.display()
    );
    Ok(bin)
}

//! [`Running`]: a started binary whose stderr is read line by line, so that a test (or the
//! bench) can wait for the line that says the program is ready.
//!
//! Every wait comes twice. The plain methods are `async` and yield while they wait: tests run
//! on a two-worker tokio runtime that also hosts the in-process servers, and a blocked worker
//! would stall half of them. The `blocking_` methods are for plain `#[test]` functions and
//! threads of their own (the bench's slow-link run in `spawn_blocking`); never call them from
//! async code.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::Notify;

/// How often an exit is polled for: a child's exit cannot be awaited without a SIGCHLD
/// handler, and 10 ms is far below anything a test times.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// A running binary, killed on drop. Its stderr is collected line by line.
pub struct Running {
    child: Child,
    lines: Arc<Lines>,
}

/// The lines read so far, shared with the thread that reads them.
struct Lines {
    state: Mutex<LineState>,
    /// Wakes blocking waits.
    arrived: Condvar,
    /// Wakes async waits.
    arrived_async: Notify,
}

#[derive(Default)]
struct LineState {
    /// Lines no wait has looked at yet, with the instant each was read.
    unread: VecDeque<(Instant, String)>,
    /// Every line, for error messages and [`Running::log`].
    all: Vec<String>,
    /// The program closed its stderr (it exited): no more lines will come.
    ended: bool,
}

/// What a look at the unread lines found.
enum Look {
    Found(Instant, String),
    NotYet,
    Ended,
}

impl Lines {
    fn lock(&self) -> MutexGuard<'_, LineState> {
        // A panic while holding the lock leaves the lines intact; carry on with them.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: Option<String>) {
        let mut state = self.lock();
        match line {
            Some(line) => {
                state.all.push(line.clone());
                state.unread.push_back((Instant::now(), line));
            }
            None => state.ended = true,
        }
        drop(state);
        self.arrived.notify_all();
        self.arrived_async.notify_waiters();
    }
}

impl LineState {
    /// Consumes unread lines up to and including the first that contains `needle` and was
    /// read at or after `since`.
    fn look(&mut self, needle: &str, since: Option<Instant>) -> Look {
        while let Some((at, line)) = self.unread.pop_front() {
            if line.contains(needle) && since.is_none_or(|s| at >= s) {
                return Look::Found(at, line);
            }
        }
        if self.ended { Look::Ended } else { Look::NotYet }
    }

    fn missing(&self, needle: &str, why: &str) -> anyhow::Error {
        anyhow::anyhow!("no log line containing {needle:?} ({why}); log so far:\n{}", {
            self.all.join("\n")
        })
    }
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
        let lines = Arc::new(Lines {
            state: Mutex::new(LineState::default()),
            arrived: Condvar::new(),
            arrived_async: Notify::new(),
        });
        let reader = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                reader.push(Some(line));
            }
            reader.push(None);
        });
        Ok(Running { child, lines })
    }

    /// The program's stdout, if `cmd` piped it (once).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The program's stdin, if `cmd` piped it (once); dropping it closes the program's stdin.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stderr line containing `needle` and returns it. Lines are consumed: the
    /// next wait looks only at lines after this one.
    pub async fn wait_for_line(&self, needle: &str, patience: Duration) -> anyhow::Result<String> {
        self.wait_for_line_since(needle, None, patience).await.map(|(_, line)| line)
    }

    /// Waits for a stderr line containing `needle` that was read at or after `since` (any,
    /// if `None`), and returns it with the instant it was read. Earlier lines are consumed.
    pub async fn wait_for_line_since(
        &self,
        needle: &str,
        since: Option<Instant>,
        patience: Duration,
    ) -> anyhow::Result<(Instant, String)> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before looking, so a line that arrives in between still wakes us.
            let arrived = self.lines.arrived_async.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let mut state = self.lines.lock();
                match state.look(needle, since) {
                    Look::Found(at, line) => return Ok((at, line)),
                    Look::Ended => return Err(state.missing(needle, "it closed its stderr")),
                    Look::NotYet => {}
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let state = self.lines.lock();
                return Err(state.missing(needle, &format!("waited {patience:?}")));
            }
        }
    }

    /// [`wait_for_line`](Self::wait_for_line) for blocking code.
    pub fn blocking_wait_for_line(
        &self,
        needle: &str,
        patience: Duration,
    ) -> anyhow::Result<String> {
        self.blocking_wait_for_line_since(needle, None, patience).map(|(_, line)| line)
    }

    /// [`wait_for_line_since`](Self::wait_for_line_since) for blocking code.
    pub fn blocking_wait_for_line_since(
        &self,
        needle: &str,
        since: Option<Instant>,
        patience: Duration,
    ) -> anyhow::Result<(Instant, String)> {
        let deadline = Instant::now() + patience;
        let mut state = self.lines.lock();
        loop {
            match state.look(needle, since) {
                Look::Found(at, line) => return Ok((at, line)),
                Look::Ended => return Err(state.missing(needle, "it closed its stderr")),
                Look::NotYet => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(state.missing(needle, &format!("waited {patience:?}")));
            }
            state = match self.lines.arrived.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// The stderr lines read since the last wait (or take), each with the instant it was read,
    /// without waiting for more. They are consumed.
    pub fn take_lines(&self) -> Vec<(Instant, String)> {
        self.lines.lock().unread.drain(..).collect()
    }

    /// Waits for the line containing `needle` and parses the `addr=` field in it.
    pub async fn wait_for_addr(
        &self,
        needle: &str,
        patience: Duration,
    ) -> anyhow::Result<SocketAddr> {
        self.wait_for_addr_at(needle, patience).await.map(|(addr, _)| addr)
    }

    /// Like [`wait_for_addr`](Self::wait_for_addr), with the instant the line was read: when
    /// the program became ready, for tests that time what follows.
    pub async fn wait_for_addr_at(
        &self,
        needle: &str,
        patience: Duration,
    ) -> anyhow::Result<(SocketAddr, Instant)> {
        let (at, line) = self.wait_for_line_since(needle, None, patience).await?;
        Ok((addr_in(&line)?, at))
    }

    /// [`wait_for_addr`](Self::wait_for_addr) for blocking code.
    pub fn blocking_wait_for_addr(
        &self,
        needle: &str,
        patience: Duration,
    ) -> anyhow::Result<SocketAddr> {
        self.blocking_wait_for_addr_at(needle, patience).map(|(addr, _)| addr)
    }

    /// [`wait_for_addr_at`](Self::wait_for_addr_at) for blocking code.
    pub fn blocking_wait_for_addr_at(
        &self,
        needle: &str,
        patience: Duration,
    ) -> anyhow::Result<(SocketAddr, Instant)> {
        let (at, line) = self.blocking_wait_for_line_since(needle, None, patience)?;
        Ok((addr_in(&line)?, at))
    }

    /// Sends SIGTERM (through `kill`, to keep tests free of unsafe code). Returns at once.
    pub fn terminate(&self) -> anyhow::Result<()> {
        self.signal("TERM")
    }

    /// Sends the signal named `name` (`"INT"`, `"KILL"`, …) through `kill`. Returns as soon
    /// as `kill` has, without waiting for the program to act on it.
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
    pub async fn wait_exit(&mut self, patience: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.exited_by(deadline, patience)? {
                return Ok(status);
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// [`wait_exit`](Self::wait_exit) for blocking code.
    pub fn blocking_wait_exit(&mut self, patience: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = self.exited_by(deadline, patience)? {
                return Ok(status);
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    /// The exit status if the process has ended; an error once `deadline` has passed.
    fn exited_by(
        &mut self,
        deadline: Instant,
        patience: Duration,
    ) -> anyhow::Result<Option<ExitStatus>> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() > deadline {
            bail!("still running after {patience:?}; log:\n{}", self.log());
        }
        Ok(None)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().all.join("\n")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `addr=` field of a readiness line.
fn addr_in(line: &str) -> anyhow::Result<SocketAddr> {
    let addr = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("addr="))
        .with_context(|| format!("no addr= in {line:?}"))?;
    addr.parse().with_context(|| format!("bad address in {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell that writes `lines` to stderr, one every 50 ms.
    fn speaker(lines: &[&str]) -> anyhow::Result<Running> {
        let script: String =
            lines.iter().map(|l| format!("echo '{l}' >&2; sleep 0.05; ")).collect();
        Running::start(Command::new("sh").args(["-c", &script]))
    }

    #[tokio::test]
    async fn async_waits_see_lines_as_they_come_and_consume_them() -> anyhow::Result<()> {
        let mut sh = speaker(&["starting", "serving addr=127.0.0.1:4242", "serving again"])?;
        let patience = Duration::from_secs(10);
        assert_eq!(sh.wait_for_addr("serving", patience).await?.port(), 4242);
        // The first "serving" line was consumed with everything before it.
        assert_eq!(sh.wait_for_line("serving", patience).await?, "serving again");
        assert!(sh.wait_exit(patience).await?.success());
        let err = sh.wait_for_line("starting", patience).await.expect_err("consumed");
        assert!(format!("{err}").contains("closed its stderr"), "{err}");
        Ok(())
    }

    #[test]
    fn blocking_waits_time_out_with_the_log() -> anyhow::Result<()> {
        let mut sh = speaker(&["one", "two"])?;
        assert_eq!(sh.blocking_wait_for_line("two", Duration::from_secs(10))?, "two");
        let err = sh.blocking_wait_for_line("three", Duration::from_secs(10)).expect_err("none");
        assert!(format!("{err}").contains("one\ntwo"), "{err}");
        assert!(sh.blocking_wait_exit(Duration::from_secs(10))?.success());
        Ok(())
    }
}

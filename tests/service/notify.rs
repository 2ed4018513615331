//! `Type=notify` readiness, watchdog and stopping, through a fake `NOTIFY_SOCKET`: the test
//! binds a Unix datagram socket, as systemd does, and runs the real binary with
//! `NOTIFY_SOCKET` and `WATCHDOG_USEC` set.
//!
//! Each server's stderr goes to a file rather than a pipe: a line written before `READY=1` was
//! sent is then in the file by the time the test reads `READY=1`, so "the readiness line was
//! logged first" is checked exactly, not by timing.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use dronecast::framing::Message;

use super::{PATIENCE, addr_in, talk_to};

/// The watchdog period the tests ask for: a ping every half of it, 0.5 s.
const WATCHDOG_USEC: &str = "1000000";

/// A server started with a fake notify socket; killed on drop.
struct Notified {
    child: Child,
    socket: UnixDatagram,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Notified {
    fn start(bin: &str, args: &[&str]) -> anyhow::Result<Notified> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path)?;
        let log = dir.path().join("stderr.log");
        let child = Command::new(harness::sibling_bin(bin)?)
            .args(args)
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", WATCHDOG_USEC)
            .env("RUST_LOG", "info")
            .env_remove("WATCHDOG_PID")
            .env_remove("DRONECAST_LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("could not start {bin}"))?;
        Ok(Notified { child, socket, log, _dir: dir })
    }

    /// The next datagram, if one comes within `wait`.
    fn next(&self, wait: Duration) -> anyhow::Result<Option<String>> {
        self.socket.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let mut buf = [0_u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Ok(Some(String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every datagram until one has `state` as a line, within `wait`; an error if none has.
    fn until(&self, state: &str, wait: Duration) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(datagram) = self.next(left)? else { break };
            let done = datagram.lines().any(|l| l == state);
            seen.push(datagram);
            if done {
                return Ok(seen);
            }
        }
        anyhow::bail!("no {state} within {wait:?}; got {seen:?}; log:\n{}", self.log_text())
    }

    /// The datagrams that arrive within `wait`.
    fn during(&self, wait: Duration) -> anyhow::Result<Vec<String>> {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.next(left)? {
                Some(datagram) => seen.push(datagram),
                None => break,
            }
        }
        Ok(seen)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first log line containing `needle`, as the file holds it now (no waiting).
    fn logged(&self, needle: &str) -> Option<String> {
        self.log_text().lines().find(|l| l.contains(needle)).map(str::to_owned)
    }

    fn signal(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([&format!("-{name}"), &pid]).status()?;
        anyhow::ensure!(status.success(), "kill -{name} {pid} failed");
        Ok(())
    }

    fn wait_exit(&mut self) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            anyhow::ensure!(Instant::now() < deadline, "still running; log:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn watchdog_pings(datagrams: &[String]) -> usize {
    datagrams.iter().filter(|d| d.lines().any(|l| l == "WATCHDOG=1")).count()
}

/// READY=1 has arrived: the readiness line (with the address) must already be in the log,
/// and the port must answer a viewer's hello at once. Returns the address.
fn check_ready(server: &Notified, readiness_line: &str) -> anyhow::Result<std::net::SocketAddr> {
    let line = server.logged(readiness_line).with_context(|| {
        format!("READY=1 came before {readiness_line:?} was logged:\n{}", server.log_text())
    })?;
    let addr = addr_in(&line)?;
    let hello = talk_to(addr, |got| !got.is_empty())?;
    anyhow::ensure!(
        matches!(hello.first(), Some(Message::Hello(_))),
        "right after READY=1, {addr} answered a hello with {hello:?}"
    );
    Ok(addr)
}

/// Pings while running, none while stopped (SIGSTOP), again after SIGCONT.
fn check_watchdog(server: &Notified) -> anyhow::Result<()> {
    // One ping every 0.5 s: at least 3 in 2.5 s, however loaded the machine.
    let pings = watchdog_pings(&server.during(Duration::from_millis(2500))?);
    anyhow::ensure!(pings >= 3, "{pings} watchdog pings in 2.5 s; log:\n{}", server.log_text());
    server.signal("STOP")?;
    // A ping sent just before the stop may still be on its way.
    server.during(Duration::from_millis(300))?;
    let stopped = server.during(Duration::from_secs(2))?;
    anyhow::ensure!(watchdog_pings(&stopped) == 0, "pings from a stopped process: {stopped:?}");
    server.signal("CONT")?;
    server.until("WATCHDOG=1", Duration::from_secs(5))?;
    Ok(())
}

/// SIGHUP is logged and survived; SIGTERM sends STOPPING=1 and exits 0.
fn check_reload_and_stop(mut server: Notified) -> anyhow::Result<()> {
    server.signal("HUP")?;
    let deadline = Instant::now() + PATIENCE;
    while server.logged("SIGHUP: nothing to reload").is_none() {
        anyhow::ensure!(Instant::now() < deadline, "no reload line; log:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::ensure!(server.child.try_wait()?.is_none(), "SIGHUP ended it:\n{}", server.log_text());
    server.signal("TERM")?;
    server.until("STOPPING=1", PATIENCE)?;
    let status = server.wait_exit()?;
    anyhow::ensure!(status.success(), "exit {status} after SIGTERM; log:\n{}", server.log_text());
    Ok(())
}

#[test]
fn drone_is_ready_once_its_port_serves_and_pings_the_watchdog_while_it_runs() -> anyhow::Result<()>
{
    let drone = Notified::start("drone", &["--listen", "127.0.0.1:0", "--source", "test"])?;
    let before = drone.until("READY=1", PATIENCE)?;
    let ready = before.last().map(String::as_str).unwrap_or_default();
    anyhow::ensure!(ready.contains("STATUS=serving test"), "READY=1 without a status: {ready:?}");
    let addr = check_ready(&drone, "drone serving")?;
    // The source is open: the first viewer gets frames.
    let got = talk_to(addr, |got| got.iter().any(|m| matches!(m, Message::Frame(_))))?;
    anyhow::ensure!(got.iter().any(|m| matches!(m, Message::Frame(_))), "no frame: {got:?}");
    check_watchdog(&drone)?;
    check_reload_and_stop(drone)
}

#[test]
fn cache_server_is_ready_once_it_serves_viewers_even_without_its_upstream() -> anyhow::Result<()> {
    // Nothing listens on port 1: the upstream stays down, and the viewer port serves anyway.
    let args = ["--listen", "127.0.0.1:0", "--http", "off", "--upstream", "127.0.0.1:1"];
    let cache = Notified::start("cache-server", &args)?;
    cache.until("READY=1", PATIENCE)?;
    check_ready(&cache, "cache-server serving viewers")?;
    check_watchdog(&cache)?;
    check_reload_and_stop(cache)
}

#[test]
fn a_drone_whose_source_does_not_open_never_says_ready() -> anyhow::Result<()> {
    let missing = Path::new("/nonexistent/dronecast/clip.mjpeg").display().to_string();
    let mut drone = Notified::start("drone", &["--listen", "127.0.0.1:0", "--source", &missing])?;
    let status = drone.wait_exit()?;
    anyhow::ensure!(status.code() == Some(1), "exit {status}; log:\n{}", drone.log_text());
    let said = drone.during(Duration::from_millis(100))?;
    anyhow::ensure!(
        !said.iter().any(|d| d.lines().any(|l| l == "READY=1")),
        "READY=1 from a drone that could not open its source: {said:?}"
    );
    Ok(())
}

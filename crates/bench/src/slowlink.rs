//! Freshness behind a slow link: the drone and the cache-server in one network namespace, one
//! viewer in another, joined by a veth pair whose server end is shaped with `tc tbf`. Both
//! namespaces are created here and removed on every exit path; no traffic leaves them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use std::io::{BufRead, BufReader};

/// What to run.
#[derive(Debug, Clone)]
pub struct SlowLink {
    /// Path of the `drone` binary.
    pub drone: String,
    /// Path of the `cache-server` binary.
    pub cache_server: String,
    /// Link rate from the cache-server to the viewer, kbit/s.
    pub rate_kbit: u32,
    /// `--notsent-lowat` for the cache-server (0 switches the mechanism off).
    pub notsent_lowat: u32,
    /// Measurement window.
    pub duration: Duration,
    /// Slices of the window for the age series.
    pub intervals: usize,
}

const SERVER_ADDR: &str = "10.203.0.1";
const VIEWER_ADDR: &str = "10.203.0.2";

/// Two namespaces and the veth between them; removed on drop.
struct Namespaces {
    server: String,
    viewer: String,
}

impl Namespaces {
    fn create() -> anyhow::Result<Namespaces> {
        let id = std::process::id() % 100_000;
        let ns = Namespaces { server: format!("dcb-srv-{id}"), viewer: format!("dcb-view-{id}") };
        let (va, vb) = (format!("dcba{id}"), format!("dcbb{id}"));
        ip(&["netns", "add", &ns.server])?;
        ip(&["netns", "add", &ns.viewer])?;
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        ip(&["link", "set", &va, "netns", &ns.server])?;
        ip(&["link", "set", &vb, "netns", &ns.viewer])?;
        for (netns, dev, addr) in [(&ns.server, &va, SERVER_ADDR), (&ns.viewer, &vb, VIEWER_ADDR)] {
            ip(&["-n", netns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ip(&["-n", netns, "link", "set", dev, "up"])?;
            ip(&["-n", netns, "link", "set", "lo", "up"])?;
        }
        Ok(ns)
    }

    fn shape(&self, rate_kbit: u32) -> anyhow::Result<()> {
        let dev = format!("dcba{}", std::process::id() % 100_000);
        let rate = format!("{rate_kbit}kbit");
        run(Command::new("ip")
            .args(["netns", "exec", &self.server, "tc", "qdisc", "add", "dev"])
            .args([
                dev.as_str(),
                "root",
                "tbf",
                "rate",
                &rate,
                "burst",
                "32kbit",
                "latency",
                "100ms",
            ]))
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and with it the pair.
        let _ = ip(&["netns", "del", &self.server]);
        let _ = ip(&["netns", "del", &self.viewer]);
    }
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("ip").args(args))
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out =
        cmd.output().with_context(|| format!("could not run {cmd:?} (is iproute2 installed?)"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Runs one slow-link measurement and returns the viewer's summary.
pub fn measure(link: &SlowLink) -> anyhow::Result<serde_json::Value> {
    let ns = Namespaces::create()
        .context("could not create network namespaces (this needs root and iproute2)")?;
    ns.shape(link.rate_kbit)?;
    let in_server_ns = |bin: &str| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.server, bin]).stdout(Stdio::null()).stderr(Stdio::piped());
        cmd
    };
    let _drone = Killed(
        in_server_ns(&link.drone)
            .args(["--listen", "127.0.0.1:9999", "--source", "test"])
            .spawn()
            .context("could not start the drone")?,
    );
    let mut cache = Killed(
        in_server_ns(&link.cache_server)
            .args(["--upstream", "127.0.0.1:9999", "--listen", &format!("{SERVER_ADDR}:9998")])
            .args(["--notsent-lowat", &link.notsent_lowat.to_string()])
            .spawn()
            .context("could not start the cache-server")?,
    );
    wait_for_line(&mut cache.0, "serving viewers")?;
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.viewer])
        .arg(exe)
        .args(["--server", &format!("{SERVER_ADDR}:9998"), "--viewers", "1", "--json"])
        .args(["--duration", &link.duration.as_secs_f64().to_string(), "--warmup", "5"])
        .args(["--intervals", &link.intervals.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("could not run the viewer in its namespace")?;
    if !out.status.success() {
        bail!("viewer failed: {}", String::from_utf8_lossy(&out.stdout));
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!("viewer printed no JSON: {}", String::from_utf8_lossy(&out.stdout))
    })
}

/// Reads a child's stderr until a line contains `needle` (its readiness signal), then keeps
/// draining it on a thread so the child never blocks on a full pipe.
fn wait_for_line(child: &mut Child, needle: &str) -> anyhow::Result<()> {
    let stderr = child.stderr.take().context("child has no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if line.context("could not read the child's log")?.contains(needle) {
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(());
        }
    }
    bail!("child exited before logging '{needle}'")
}

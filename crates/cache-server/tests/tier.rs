//! A tier of two cache-servers behind HAProxy (Debian's), run with `deploy/haproxy.cfg`
//! itself: a drone, two relays, HAProxy, 40 headless clients through HAProxy's TCP frontend
//! and 40 HTTP MJPEG viewers through its HTTP frontend. Viewers spread over both relays
//! (`balance leastconn`: each gets at least 15 of each kind); one relay is killed with
//! SIGKILL and every viewer receives frames again within 2 s, through the other, and none is
//! ever shown a frame older than one it had; the clients (whose `FrameOrder` drops a relay's
//! cached frame seen before) are not even shown one twice, while an HTTP viewer, which has no
//! such guard, may get the other relay's cached frame again (counted and printed). The relay
//! restarted is back in the balancer, which sends it the new viewers.
//!
//! ```text
//!   namespace <tag>-a                                                  namespace <tag>-b
//!   drone 127.0.0.1:9999 ──▶ relay1 127.0.0.11:9998, :8080 ──┐
//!                       └──▶ relay2 127.0.0.12:9998, :8080 ──┴─ HAProxy 10.203.3.1:9998 ◀── 40 clients
//!                                                                        10.203.3.1:8080 ◀── 40 HTTP viewers
//! ```
//!
//! Everything runs in two network namespaces the test creates (joined by a veth pair) and
//! deletes on every exit path: the fixed ports of the shipped configuration clash with
//! nothing there. The HTTP viewers are this very test binary run again inside the viewers'
//! namespace (`http_viewers_of_the_tier_test`, which does nothing in an ordinary run).
//!
//! Needs root, iproute2 and HAProxy: without them it prints `SKIPPED: why` and passes, unless
//! `DRONECAST_REQUIRE_NETNS=1` or `DRONECAST_REQUIRE_HAPROXY=1` (CI sets both).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{PATIENCE, cache_bin, client_bin, drone_bin};
use harness::Running;
use harness::netns::VethPair;

/// The variable that makes this test fail where it would skip for want of HAProxy.
const REQUIRE_HAPROXY: &str = "DRONECAST_REQUIRE_HAPROXY";

/// Tells this test binary, run again in the viewers' namespace, to be the HTTP viewers:
/// `ADDR PREFIX COUNT`.
const FLEET: &str = "DRONECAST_TIER_HTTP_VIEWERS";

/// Viewers of each kind; each relay must get at least [`AT_LEAST`] of each.
const VIEWERS: usize = 40;
const AT_LEAST: usize = 15;

/// Viewers of each kind started once the killed relay is back.
const LATE_VIEWERS: usize = 20;

/// Frames every viewer receives before the kill: 1.5 s of watching at the drone's 20 fps.
const STEADY_FRAMES: usize = 30;

/// How soon every viewer must be receiving again after a relay is killed.
const AGAIN_WITHIN: Duration = Duration::from_secs(2);

/// The relays' loopback addresses in namespace `a`, as `deploy/haproxy.cfg` names them.
const RELAYS: [(&str, &str); 2] = [("10.0.0.11", "127.0.0.11"), ("10.0.0.12", "127.0.0.12")];

/// The client's log line for each frame it shows (with `RUST_LOG=…client::headless=trace`).
const FRAME: &str = "client::headless: frame";

/// The client's log line when its connection is lost.
const LOST: &str = "connection lost";

#[test]
fn a_relay_killed_behind_haproxy_costs_its_viewers_under_two_seconds_and_no_order()
-> anyhow::Result<()> {
    let Some(haproxy) = haproxy()? else { return Ok(()) };
    let Some(pair) = VethPair::create_or_skip("dct", 3)? else { return Ok(()) };
    let started = Instant::now();
    let mut tier = Tier::start(pair, &haproxy)?;

    // 40 clients and 40 HTTP viewers through HAProxy, spread over both relays.
    let mut tcp = Viewers::of_clients(&tier, "t", VIEWERS)?;
    let mut http = Viewers::of_fleet(tier.http_fleet("h", VIEWERS)?, "h", VIEWERS);
    // Watching steadily first, as viewers do: a client takes a connection lost within a
    // second of being made as a failed attempt, and pauses before the next.
    tcp.until(PATIENCE, |v| v.all_have(STEADY_FRAMES))?;
    http.until(PATIENCE, |v| v.all_have(STEADY_FRAMES))?;
    let (tcp1, tcp2) =
        (joined(&tier.relays[0], "viewer joined"), joined(&tier.relays[1], "viewer joined"));
    let (http1, http2) = (
        joined(&tier.relays[0], "http viewer joined"),
        joined(&tier.relays[1], "http viewer joined"),
    );
    println!(
        "spread: clients {} + {}, HTTP viewers {} + {}",
        tcp1.len(),
        tcp2.len(),
        http1.len(),
        http2.len()
    );
    ensure!(tcp1.len() + tcp2.len() == VIEWERS, "clients joined: {tcp1:?} {tcp2:?}");
    ensure!(http1.len() + http2.len() == VIEWERS, "HTTP viewers joined: {http1:?} {http2:?}");
    for (kind, one, two) in [("clients", &tcp1, &tcp2), ("HTTP viewers", &http1, &http2)] {
        ensure!(
            one.len() >= AT_LEAST && two.len() >= AT_LEAST,
            "{kind} not spread: {} and {}",
            one.len(),
            two.len()
        );
    }

    // relay1 dies; every viewer, and above all relay1's, receives again within 2 s.
    let killed = Instant::now();
    tier.relays[0].signal("KILL")?;
    tier.relays[0].blocking_wait_exit(PATIENCE)?;
    tcp.until(PATIENCE, |v| v.all_have_frames(Some(killed)))?;
    http.until(PATIENCE, |v| v.all_have_frames(Some(killed)))?;
    let mut figures = Vec::new();
    for (kind, viewers, moved) in [("clients", &tcp, &tcp1), ("HTTP viewers", &http, &http1)] {
        let again = viewers.again_after(killed);
        let late: Vec<_> = again.iter().filter(|(_, d)| **d >= AGAIN_WITHIN).collect();
        ensure!(late.is_empty(), "{kind} receiving again only after: {late:?}");
        let mut moved: Vec<Duration> =
            moved.iter().filter_map(|name| again.get(name).copied()).collect();
        moved.sort();
        ensure!(!moved.is_empty(), "none of relay1's {kind} seen again");
        let each: Vec<u128> = moved.iter().map(Duration::as_millis).collect();
        println!("{kind} of the killed relay, receiving again after (ms): {each:?}");
        let (median, max) = (moved[moved.len() / 2], moved[moved.len() - 1]);
        figures.push(format!(
            "{kind}: {} on the killed relay received again after median {:.0} ms, max {:.0} ms",
            moved.len(),
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        ));
    }

    // relay1 back: HAProxy checks it up, and new viewers go to it (leastconn: the other
    // relay carries every old viewer).
    tier.restart_relay(0)?;
    tier.wait_for_servers(|backend, _, state| !checked(backend) || (state.up && state.checked_ok))?;
    let before = (
        joined(&tier.relays[0], "viewer joined").len(),
        joined(&tier.relays[0], "http viewer joined").len(),
    );
    let mut late_tcp = Viewers::of_clients(&tier, "u", LATE_VIEWERS)?;
    let mut late_http = Viewers::of_fleet(tier.http_fleet("k", LATE_VIEWERS)?, "k", LATE_VIEWERS);
    late_tcp.until(PATIENCE, |v| v.all_have_frames(None))?;
    late_http.until(PATIENCE, |v| v.all_have_frames(None))?;
    let after = (
        joined(&tier.relays[0], "viewer joined").len(),
        joined(&tier.relays[0], "http viewer joined").len(),
    );
    let (new_tcp, new_http) = (after.0 - before.0, after.1 - before.1);
    println!(
        "after the restart, the restarted relay took {new_tcp} of {LATE_VIEWERS} new clients, {new_http} of {LATE_VIEWERS} new HTTP viewers"
    );
    ensure!(
        new_tcp >= AT_LEAST && new_http >= AT_LEAST,
        "the restarted relay got {new_tcp} clients, {new_http} HTTP viewers"
    );

    // Never a frame out of order; the clients never one twice either.
    tcp.collect();
    http.collect();
    for (kind, viewers) in [("clients", &tcp), ("HTTP viewers", &http)] {
        let (older, repeated) = viewers.order();
        println!("{kind}: {older} frames older than the one before, {repeated} repeated");
        ensure!(older == 0, "{kind}: {older} frames out of order");
        if kind == "clients" {
            ensure!(repeated == 0, "clients shown {repeated} frames twice");
        }
    }
    let reports = tcp.reports()?;
    let stale: u64 = reports.iter().map(|r| r["stale_frames"].as_u64().unwrap_or(0)).sum();
    for report in &reports {
        ensure!(report["out_of_order"] == 0 && report["distinct"] == report["frames"], "{report}");
    }
    for line in &figures {
        println!("{line}");
    }
    println!("clients' stale frames dropped after the failover: {stale}");
    println!("the whole test took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The HTTP viewers, when this binary runs as them (see [`FLEET`]); nothing otherwise. Each
/// reads `/stream.mjpg` like a browser — HTTP/1.1, chunked, one part after another — and
/// reconnects at once when its stream ends (pausing 100 ms between failed attempts), and
/// says on stderr `hv NAME frame seq=N` for every part and `hv NAME lost: why` for every
/// loss.
#[test]
fn http_viewers_of_the_tier_test() -> anyhow::Result<()> {
    let Ok(spec) = std::env::var(FLEET) else { return Ok(()) };
    let mut words = spec.split_whitespace();
    let addr: SocketAddr = words.next().context("no address")?.parse()?;
    let prefix = words.next().context("no prefix")?.to_owned();
    let count: usize = words.next().context("no count")?.parse()?;
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let viewers: Vec<_> = (0..count)
            .map(|i| tokio::spawn(mjpeg::watch(addr, format!("{prefix}{i:02}"))))
            .collect();
        for viewer in viewers {
            viewer.await?;
        }
        anyhow::Ok(())
    })
}

/// Where `haproxy` is, or `None` after saying why the test skips.
fn haproxy() -> anyhow::Result<Option<PathBuf>> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]);
    let found = dirs.map(|dir| dir.join("haproxy")).find(|bin| bin.is_file());
    if found.is_none() {
        let why = "HAProxy is not installed (Debian: apt-get install haproxy)";
        harness::skip_or_fail(REQUIRE_HAPROXY, why)?;
    }
    Ok(found)
}

/// The names of the viewers `relay` logged as joined (`line` is `viewer joined` or
/// `http viewer joined`): their `name=` (clients) or `agent=` (HTTP viewers).
fn joined(relay: &Running, line: &str) -> Vec<String> {
    let key = if line.starts_with("http") { "agent=" } else { "name=" };
    relay
        .log()
        .lines()
        .filter(|l| {
            l.contains(line) && (line.starts_with("http") || !l.contains("http viewer joined"))
        })
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix(key)).map(str::to_owned))
        .collect()
}

/// The drone, the two relays and HAProxy in namespace `a`. Fields drop in reverse order:
/// processes first, then the namespaces.
struct Tier {
    haproxy: Running,
    relays: Vec<Running>,
    _drone: Running,
    dir: tempfile::TempDir,
    pair: VethPair,
}

impl Tier {
    fn start(pair: VethPair, haproxy: &Path) -> anyhow::Result<Tier> {
        let mut drone = pair.exec(&pair.a, drone_bin()?);
        drone.args(["--listen", "127.0.0.1:9999", "--source", "test", "--width", "320"]);
        let drone =
            Running::start(drone.args(["--height", "240", "--fps", "20", "--http", "off"]))?;
        drone.blocking_wait_for_line("drone serving", PATIENCE)?;
        let relays = (0..RELAYS.len()).map(|i| start_relay(&pair, i)).collect::<Result<_, _>>()?;
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, haproxy_config(pair.a_addr, &dir.path().join("admin.sock"))?)?;
        let mut command = pair.exec(&pair.a, haproxy);
        let haproxy = Running::start(command.arg("-db").arg("-f").arg(&config))?;
        let tier = Tier { haproxy, relays, _drone: drone, dir, pair };
        tier.wait_for_servers(|backend, _, state| !checked(backend) || state.checked_ok)?;
        Ok(tier)
    }

    /// A headless client through HAProxy's dronecast port, named `name`, in namespace `b`.
    fn client(&self, name: &str) -> anyhow::Result<Running> {
        let mut client = self.pair.exec(&self.pair.b, client_bin()?);
        client.args([
            &format!("{}:9998", self.pair.a_addr),
            "--headless",
            "--json",
            "--name",
            name,
        ]);
        client.env("RUST_LOG", "info,client::headless=trace").stdout(Stdio::piped());
        Running::start(&mut client)
    }

    /// `count` HTTP viewers named PREFIX00… through HAProxy's HTTP port, in namespace `b`.
    fn http_fleet(&self, prefix: &str, count: usize) -> anyhow::Result<Running> {
        let mut fleet = self.pair.exec(&self.pair.b, std::env::current_exe()?);
        fleet.args([
            "--exact",
            "http_viewers_of_the_tier_test",
            "--nocapture",
            "--test-threads",
            "1",
        ]);
        fleet.env(FLEET, format!("{}:8080 {prefix} {count}", self.pair.a_addr));
        Running::start(fleet.stdout(Stdio::null()))
    }

    fn restart_relay(&mut self, i: usize) -> anyhow::Result<()> {
        self.relays[i] = start_relay(&self.pair, i)?;
        Ok(())
    }

    /// Waits until every server of every backend satisfies `ok(backend, server, state)`.
    fn wait_for_servers(
        &self,
        ok: impl Fn(&str, &str, &ServerState) -> bool,
    ) -> anyhow::Result<()> {
        let socket = self.dir.path().join("admin.sock");
        let deadline = Instant::now() + PATIENCE;
        loop {
            let servers = stats(&socket).unwrap_or_default();
            if !servers.is_empty() && servers.iter().all(|((b, s), state)| ok(b, s, state)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("HAProxy's servers: {servers:?}; its log:\n{}", self.haproxy.log());
            }
            // HAProxy checks every second; its state is read ten times as often.
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts relay `i` at its loopback address in namespace `a` and waits until it serves, with
/// its upstream connected.
fn start_relay(pair: &VethPair, i: usize) -> anyhow::Result<Running> {
    let ip = RELAYS[i].1;
    let mut relay = pair.exec(&pair.a, cache_bin());
    relay.args(["--upstream", "127.0.0.1:9999", "--listen", &format!("{ip}:9998")]);
    relay.args(["--http", &format!("{ip}:8080"), "--summary-every", "0"]);
    let relay = Running::start(&mut relay)?;
    relay.blocking_wait_for_line("serving viewers", PATIENCE)?;
    relay.blocking_wait_for_line("upstream connected", PATIENCE)?;
    Ok(relay)
}

/// `deploy/haproxy.cfg` as the test runs it: its own `global` section (logs on stderr, the
/// stats socket at `socket`, no chroot, no user change, no daemon), the relays at their
/// loopback addresses and the frontends on the veth address `bind`.
fn haproxy_config(bind: Ipv4Addr, socket: &Path) -> anyhow::Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/haproxy.cfg");
    let shipped = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    let from_defaults = shipped.find("\ndefaults").context("no defaults section")?;
    let mut config = format!(
        "global\n    log stderr format raw local0\n    stats socket {} mode 600 level admin\n    maxconn 4000\n",
        socket.display()
    );
    config.push_str(&shipped[from_defaults..]);
    for (shipped, here) in RELAYS {
        ensure!(config.contains(shipped), "deploy/haproxy.cfg no longer names {shipped}");
        config = config.replace(shipped, here);
    }
    ensure!(config.contains("bind :9998") && config.contains("bind :8080"), "the binds changed");
    Ok(config.replace("bind :", &format!("bind {bind}:")))
}

/// Whether the servers of `backend` have health checks (the metrics backends have none).
fn checked(backend: &str) -> bool {
    backend.starts_with("relays_")
}

/// A server as HAProxy's `show stat` has it.
#[derive(Debug, Default)]
struct ServerState {
    /// Its status is UP.
    up: bool,
    /// Its last health check passed (`L7OK`).
    checked_ok: bool,
}

/// Every server of every backend, from the stats socket.
fn stats(socket: &Path) -> anyhow::Result<BTreeMap<(String, String), ServerState>> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.write_all(b"show stat\n")?;
    let mut text = String::new();
    stream.take(1 << 20).read_to_string(&mut text)?;
    let mut lines = text.lines();
    let header: Vec<&str> =
        lines.next().context("empty stats")?.trim_start_matches("# ").split(',').collect();
    let column =
        |name: &str| header.iter().position(|h| *h == name).with_context(|| format!("no {name}"));
    let (px, sv, status, check) =
        (column("pxname")?, column("svname")?, column("status")?, column("check_status")?);
    let mut servers = BTreeMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or_default();
        if matches!(field(sv), "FRONTEND" | "BACKEND") {
            continue;
        }
        // "* L7OK" while the next check runs.
        let check = field(check).trim_start_matches("* ");
        let state = ServerState { up: field(status) == "UP", checked_ok: check == "L7OK" };
        servers.insert((field(px).to_owned(), field(sv).to_owned()), state);
    }
    Ok(servers)
}

/// Viewers and the frames each was shown: clients (a process each) or a fleet of HTTP
/// viewers (one process). Lines are taken as they come, each with the instant it was read.
struct Viewers {
    processes: Vec<Running>,
    /// For a fleet: the viewers' prefix.
    fleet: Option<String>,
    names: Vec<String>,
    /// Per viewer: when each frame was read, and its seq.
    frames: BTreeMap<String, Vec<(Instant, u64)>>,
    /// Per viewer: when it said it lost its connection.
    losses: BTreeMap<String, Vec<Instant>>,
}

impl Viewers {
    /// `count` clients named PREFIX00… through HAProxy.
    fn of_clients(tier: &Tier, prefix: &str, count: usize) -> anyhow::Result<Viewers> {
        let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i:02}")).collect();
        let processes = names.iter().map(|name| tier.client(name)).collect::<Result<_, _>>()?;
        Ok(Viewers {
            processes,
            fleet: None,
            names,
            frames: BTreeMap::new(),
            losses: BTreeMap::new(),
        })
    }

    fn of_fleet(fleet: Running, prefix: &str, count: usize) -> Viewers {
        let names = (0..count).map(|i| format!("{prefix}{i:02}")).collect();
        Viewers {
            processes: vec![fleet],
            fleet: Some(prefix.to_owned()),
            names,
            frames: BTreeMap::new(),
            losses: BTreeMap::new(),
        }
    }

    /// Takes the lines read so far.
    fn collect(&mut self) {
        for (i, process) in self.processes.iter().enumerate() {
            for (at, line) in process.take_lines() {
                let seq = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("seq="))
                    .and_then(|s| s.parse().ok());
                let (name, lost) = match &self.fleet {
                    None if line.contains(FRAME) => (self.names[i].clone(), false),
                    None if line.contains(LOST) => (self.names[i].clone(), true),
                    Some(_) if line.starts_with("hv ") => {
                        let name = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                        (name, line.contains(" lost: "))
                    }
                    _ => continue,
                };
                match seq {
                    _ if lost => self.losses.entry(name).or_default().push(at),
                    Some(seq) => self.frames.entry(name).or_default().push((at, seq)),
                    None => {}
                }
            }
        }
    }

    /// Takes lines until `done` says so; an error after `patience`, or when a process ended.
    fn until(&mut self, patience: Duration, done: impl Fn(&Viewers) -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + patience;
        loop {
            self.collect();
            if done(self) {
                return Ok(());
            }
            for process in &mut self.processes {
                if let Some(exit) = process.try_exit()? {
                    bail!("a viewer process ended ({exit}); its log:\n{}", process.log());
                }
            }
            let waiting: Vec<&String> =
                self.names.iter().filter(|n| !self.frames.contains_key(*n)).collect();
            ensure!(
                Instant::now() < deadline,
                "still waiting after {patience:?}; no frame yet: {waiting:?}"
            );
            // The instants are taken by the threads that read the lines, not here.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether every viewer has at least `n` frames.
    fn all_have(&self, n: usize) -> bool {
        self.names.iter().all(|name| self.frames.get(name).is_some_and(|f| f.len() >= n))
    }

    /// Whether every viewer has a frame read after `since` (any frame, for `None`).
    fn all_have_frames(&self, since: Option<Instant>) -> bool {
        match since {
            None => self.names.iter().all(|name| self.frames.contains_key(name)),
            Some(since) => self.again_after(since).len() == self.names.len(),
        }
    }

    /// For each viewer, how long after `since` its first frame came — for a viewer that lost
    /// its connection after `since`, the first frame after its last loss: a frame its old
    /// relay sent as it died does not count.
    fn again_after(&self, since: Instant) -> BTreeMap<String, Duration> {
        let again = |name: &String, frames: &Vec<(Instant, u64)>| {
            let losses = self.losses.get(name).into_iter().flatten();
            let from = losses.filter(|at| **at > since).max().copied().unwrap_or(since);
            frames.iter().find(|(at, _)| *at > from).map(|(at, _)| (name.clone(), *at - since))
        };
        self.frames.iter().filter_map(|(name, frames)| again(name, frames)).collect()
    }

    /// Frames older than the one shown before them, and frames shown twice in a row, over
    /// every viewer.
    fn order(&self) -> (usize, usize) {
        let pairs = self.frames.values().flat_map(|f| f.windows(2).map(|w| (w[0].1, w[1].1)));
        pairs.fold((0, 0), |(older, repeated), (a, b)| {
            (older + usize::from(b < a), repeated + usize::from(b == a))
        })
    }

    /// Stops every client and returns their JSON reports.
    fn reports(&mut self) -> anyhow::Result<Vec<serde_json::Value>> {
        for process in &self.processes {
            process.terminate()?;
        }
        let mut reports = Vec::new();
        for process in &mut self.processes {
            let exit = process.blocking_wait_exit(PATIENCE)?;
            ensure!(exit.success(), "a client exited with {exit}: {}", process.log());
            let mut out = String::new();
            process.take_stdout().context("no stdout")?.read_to_string(&mut out)?;
            reports.push(
                serde_json::from_str(&out).with_context(|| format!("not a report: {out:?}"))?,
            );
        }
        Ok(reports)
    }
}

/// The test's own MJPEG reader: just enough HTTP/1.1 (a chunked or plain body) and
/// multipart to take each part's `X-Frame-Seq`, with every length bounded.
mod mjpeg {
    use std::net::SocketAddr;
    use std::time::Duration;

    use anyhow::{Context, bail, ensure};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Longest response head or part head accepted.
    const MAX_HEAD: usize = 16 * 1024;
    /// Largest part (or chunk) accepted.
    const MAX_PART: usize = 4 * 1024 * 1024;

    /// Watches `/stream.mjpg` at `addr` as `name` until the process is killed, reconnecting.
    pub async fn watch(addr: SocketAddr, name: String) {
        let mut failures = 0u32;
        loop {
            let mut parts = 0u64;
            let why = match stream(addr, &name, &mut parts).await {
                Ok(()) => "the stream ended".to_owned(),
                Err(err) => format!("{err:#}"),
            };
            eprintln!("hv {name} lost: {why}");
            failures = if parts > 0 { 0 } else { failures + 1 };
            if failures > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    async fn stream(addr: SocketAddr, name: &str, parts: &mut u64) -> anyhow::Result<()> {
        let mut tcp = TcpStream::connect(addr).await?;
        let request =
            format!("GET /stream.mjpg HTTP/1.1\r\nHost: tier\r\nUser-Agent: {name}\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut body =
            Body { tcp, buf: Vec::new(), chunked: false, chunk_left: 0, data: Vec::new() };
        let head = body.raw_line_block().await?;
        ensure!(head.starts_with("HTTP/1.1 200"), "answered {:?}", head.lines().next());
        body.chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
        ensure!(body.line().await? == "--boundarydonotcross", "no boundary first");
        loop {
            let mut length = None;
            let mut seq = None;
            loop {
                let line = body.line().await?;
                if line.is_empty() {
                    break;
                }
                let (key, value) = line.split_once(':').context("a part header without ':'")?;
                match key.to_ascii_lowercase().as_str() {
                    "content-length" => length = Some(value.trim().parse::<usize>()?),
                    "x-frame-seq" => seq = Some(value.trim().parse::<u64>()?),
                    _ => {}
                }
            }
            let length = length.context("a part without Content-Length")?;
            ensure!(length <= MAX_PART, "a part of {length} bytes");
            body.skip(length).await?;
            ensure!(body.line().await?.is_empty(), "no line end after a part");
            ensure!(body.line().await? == "--boundarydonotcross", "no boundary after a part");
            eprintln!("hv {name} frame seq={}", seq.context("a part without X-Frame-Seq")?);
            *parts += 1;
        }
    }

    /// A response body, de-chunked as it is read.
    struct Body {
        tcp: TcpStream,
        /// Raw bytes received and not yet taken.
        buf: Vec<u8>,
        chunked: bool,
        chunk_left: usize,
        /// Body bytes de-chunked and not yet taken.
        data: Vec<u8>,
    }

    impl Body {
        async fn fill_raw(&mut self) -> anyhow::Result<()> {
            let mut more = [0u8; 64 * 1024];
            let n = self.tcp.read(&mut more).await?;
            if n == 0 {
                bail!("closed");
            }
            self.buf.extend_from_slice(&more[..n]);
            Ok(())
        }

        /// The response head, up to its blank line.
        async fn raw_line_block(&mut self) -> anyhow::Result<String> {
            loop {
                if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    self.buf.drain(..end + 4);
                    return Ok(head);
                }
                ensure!(self.buf.len() <= MAX_HEAD, "a response head over {MAX_HEAD} bytes");
                self.fill_raw().await?;
            }
        }

        /// A raw line (chunk sizes), without its CRLF.
        async fn raw_line(&mut self) -> anyhow::Result<String> {
            loop {
                if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                    self.buf.drain(..end + 2);
                    return Ok(line);
                }
                ensure!(self.buf.len() <= MAX_HEAD, "a line over {MAX_HEAD} bytes");
                self.fill_raw().await?;
            }
        }

        /// More body bytes into `data`.
        async fn fill(&mut self) -> anyhow::Result<()> {
            if !self.chunked {
                if self.buf.is_empty() {
                    self.fill_raw().await?;
                }
                self.data.append(&mut self.buf);
                return Ok(());
            }
            if self.chunk_left == 0 {
                let size = self.raw_line().await?;
                let size = size.split(';').next().unwrap_or_default().trim();
                self.chunk_left = usize::from_str_radix(size, 16).context("a bad chunk size")?;
                ensure!(self.chunk_left <= MAX_PART, "a chunk of {} bytes", self.chunk_left);
                if self.chunk_left == 0 {
                    bail!("the last chunk");
                }
            }
            while self.buf.is_empty() {
                self.fill_raw().await?;
            }
            let take = self.chunk_left.min(self.buf.len());
            self.data.extend(self.buf.drain(..take));
            self.chunk_left -= take;
            if self.chunk_left == 0 {
                while self.buf.len() < 2 {
                    self.fill_raw().await?;
                }
                ensure!(self.buf.starts_with(b"\r\n"), "no CRLF after a chunk");
                self.buf.drain(..2);
            }
            Ok(())
        }

        /// A body line, without its CRLF.
        async fn line(&mut self) -> anyhow::Result<String> {
            loop {
                if let Some(end) = self.data.windows(2).position(|w| w == b"\r\n") {
                    let line = String::from_utf8_lossy(&self.data[..end]).into_owned();
                    self.data.drain(..end + 2);
                    return Ok(line);
                }
                ensure!(self.data.len() <= MAX_HEAD, "a part header over {MAX_HEAD} bytes");
                self.fill().await?;
            }
        }

        /// Skips `n` body bytes.
        async fn skip(&mut self, mut n: usize) -> anyhow::Result<()> {
            loop {
                let take = n.min(self.data.len());
                self.data.drain(..take);
                n -= take;
                if n == 0 {
                    return Ok(());
                }
                self.fill().await?;
            }
        }
    }
}

//! Two network namespaces joined by a veth pair, for tests that cut or degrade a link.
//!
//! ```text
//!   namespace <name>-a                      namespace <name>-b
//!   lo (127.0.0.1)                          lo (127.0.0.1)
//!   veth "dc" 10.203.<subnet>.1/30 ──────── veth "dc" 10.203.<subnet>.2/30
//! ```
//!
//! Everything runs inside the two namespaces this creates: no address outside them is used,
//! nothing is routed anywhere else, and both namespaces (with the veth pair) are deleted when
//! the [`VethPair`] is dropped, on every exit path of the test. Needs root and iproute2 (`ip`,
//! `tc`).
//!
//! Where namespaces cannot be created, [`VethPair::create_or_skip`] prints `SKIPPED: why` and
//! returns `None`, so the test can return early — unless `DRONECAST_REQUIRE_NETNS=1` is set
//! (CI sets it), in which case it fails.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};

/// The variable that makes a namespace test fail where it would skip.
pub const REQUIRE: &str = "DRONECAST_REQUIRE_NETNS";

/// The veth device's name inside each namespace.
pub const DEV: &str = "dc";

/// Makes the names this process gives its namespaces unique, even with tests in parallel.
static SEQ: AtomicU32 = AtomicU32::new(0);

/// Two namespaces, `a` and `b`, joined by a veth pair; removed on drop.
#[derive(Debug)]
pub struct VethPair {
    /// Name of the first namespace (`ip netns exec <a> …`).
    pub a: String,
    /// Name of the second namespace.
    pub b: String,
    /// Address of the veth end in `a`.
    pub a_addr: Ipv4Addr,
    /// Address of the veth end in `b`.
    pub b_addr: Ipv4Addr,
}

impl VethPair {
    /// Creates `<tag>-<pid>-<n>-a` and `…-b` with addresses `10.203.<subnet>.1` and `.2`.
    pub fn create(tag: &str, subnet: u8) -> anyhow::Result<VethPair> {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let base = format!("{tag}-{}-{n}", std::process::id());
        let pair = VethPair {
            a: format!("{base}-a"),
            b: format!("{base}-b"),
            a_addr: Ipv4Addr::new(10, 203, subnet, 1),
            b_addr: Ipv4Addr::new(10, 203, subnet, 2),
        };
        // From here on, dropping `pair` deletes whatever was created (a namespace that does
        // not exist is ignored).
        ip(&["netns", "add", &pair.a])?;
        ip(&["netns", "add", &pair.b])?;
        // Both ends are created inside `a` and one is moved to `b`: the pair never exists in
        // the test's own namespace, so it cannot clash with anything there.
        ip(&["-n", &pair.a, "link", "add", DEV, "type", "veth", "peer", "name", "dcpeer"])?;
        ip(&["-n", &pair.a, "link", "set", "dcpeer", "netns", &pair.b])?;
        ip(&["-n", &pair.b, "link", "set", "dcpeer", "name", DEV])?;
        for (ns, addr) in [(&pair.a, pair.a_addr), (&pair.b, pair.b_addr)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", DEV])?;
            ip(&["-n", ns, "link", "set", DEV, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(pair)
    }

    /// Like [`create`](Self::create), but where namespaces cannot be created at all (no root,
    /// no iproute2, a sandbox), skips with [`skip_or_fail`](crate::skip_or_fail) and returns
    /// `Ok(None)` — an error under `DRONECAST_REQUIRE_NETNS=1`.
    pub fn create_or_skip(tag: &str, subnet: u8) -> anyhow::Result<Option<VethPair>> {
        if let Err(why) = namespaces_available() {
            crate::skip_or_fail(
                REQUIRE,
                &format!(
                    "network namespaces are unavailable ({why:#}); this test needs root and \
                     iproute2"
                ),
            )?;
            return Ok(None);
        }
        VethPair::create(tag, subnet).map(Some)
    }

    /// A command that runs `program` inside namespace `ns` (`self.a` or `self.b`).
    pub fn exec(&self, ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(program);
        cmd
    }

    /// Limits traffic from `a` to `b` to `rate_kbit` with a token bucket (`tc tbf`, a 100 ms
    /// queue): a slow link.
    pub fn shape(&self, rate_kbit: u32) -> anyhow::Result<()> {
        let rate = format!("{rate_kbit}kbit");
        let mut tc = self.exec(&self.a, "tc");
        tc.args(["qdisc", "add", "dev", DEV, "root", "tbf", "rate", &rate]);
        run(tc.args(["burst", "32kbit", "latency", "100ms"]))
    }

    /// Lifts the shaping of [`shape`](Self::shape).
    pub fn unshape(&self) -> anyhow::Result<()> {
        run(self.exec(&self.a, "tc").args(["qdisc", "del", "dev", DEV, "root"]))
    }

    /// Sets the veth end in `a` down (`up == false`) or up.
    pub fn set_link(&self, up: bool) -> anyhow::Result<()> {
        ip(&["-n", &self.a, "link", "set", DEV, if up { "up" } else { "down" }])
    }

    /// Degrades traffic from `a` to `b`: drops `loss_pct` percent of packets at random and
    /// delays the rest by `delay_ms`, with `tc … netem`. Kernels without `sch_netem` (some
    /// minimal VM kernels, this project's CI) get the loss alone, from an nftables rule
    /// (`numgen random`), and no delay; the result says which. An error when neither works.
    pub fn impair(&self, loss_pct: u32, delay_ms: u32) -> anyhow::Result<Impairment> {
        let (loss, delay) = (format!("{loss_pct}%"), format!("{delay_ms}ms"));
        let mut netem = self.exec(&self.a, "tc");
        netem.args(["qdisc", "replace", "dev", DEV, "root", "netem", "loss", &loss, "delay"]);
        let netem_err = match run(netem.arg(&delay)) {
            Ok(()) => return Ok(Impairment::Netem),
            Err(err) => err,
        };
        let chain = "{ type filter hook output priority 0; policy accept; }";
        let mut rule = vec!["add", "rule", "inet", "dronecast", "out", "oifname", DEV];
        let share = loss_pct.to_string();
        rule.extend(["numgen", "random", "mod", "100", "<", &share, "drop"]);
        let nft = |args: &[&str]| run(self.exec(&self.a, "nft").args(args));
        nft(&["add", "table", "inet", "dronecast"])
            .and_then(|()| nft(&["add", "chain", "inet", "dronecast", "out", chain]))
            .and_then(|()| nft(&rule))
            .with_context(|| format!("no netem ({netem_err:#}), and nftables failed too"))?;
        Ok(Impairment::NftablesLossOnly { netem_err: format!("{netem_err:#}") })
    }

    /// Removes what [`impair`](Self::impair) added.
    pub fn clear_impairment(&self) -> anyhow::Result<()> {
        let qdisc = run(self.exec(&self.a, "tc").args(["qdisc", "del", "dev", DEV, "root"]));
        let nft = run(self.exec(&self.a, "nft").args(["delete", "table", "inet", "dronecast"]));
        // One of the two was in place; the other's removal fails harmlessly.
        qdisc.or(nft)
    }

    /// Sets sysctl `key` to `value` inside both namespaces (most `net.*` keys are per
    /// namespace).
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        for ns in [&self.a, &self.b] {
            run(self.exec(ns, "sysctl").args(["-q", "-w", &format!("{key}={value}")]))?;
        }
        Ok(())
    }
}

/// What [`VethPair::impair`] put in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Impairment {
    /// `tc netem`: the loss and the delay asked for.
    Netem,
    /// An nftables drop rule: the loss only, no delay (the kernel has no `sch_netem`).
    NftablesLossOnly {
        /// Why netem could not be used.
        netem_err: String,
    },
}

impl std::fmt::Display for Impairment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Impairment::Netem => f.write_str("netem loss and delay"),
            Impairment::NftablesLossOnly { .. } => f.write_str("nftables loss, no delay"),
        }
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth, and with it the pair.
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}

/// Whether this process can create a network namespace: tries one and removes it.
pub fn namespaces_available() -> anyhow::Result<()> {
    let probe = format!("dcprobe-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    ip(&["netns", "add", &probe])?;
    ip(&["netns", "del", &probe])
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

//! Processes, network namespaces and `/proc` measurements, for dronecast's tests and for
//! `relay-bench`: start a real binary and wait for the log line that says it is ready (and on
//! which address), degrade or cut a link between two namespaces, sample a process's CPU and
//! memory, and say out loud when a test cannot run here. Readiness comes from the program
//! itself, never from a fixed sleep.
//!
//! Not test-only: `relay-bench` runs its slow-link measurement with [`Running`] and
//! [`netns`], and samples the server under load with [`usage`].
//!
//! # Layout
//! - [`Running`] (`running`) — a started binary: its log lines (with the instant each was
//!   read), waited for from async code or blocking code, its signals and its exit.
//! - [`sibling_bin`] — the path of another workspace binary built beside the test.
//! - [`netns`] — network namespaces joined by a veth pair, for link faults; removed on drop.
//! - [`usage`] — CPU time and resident memory of a process (through the `procfs` crate).
//! - [`skip_or_fail`] (`skip`) — the one way a test skips: `SKIPPED: why` on stderr, or a
//!   failure where a `DRONECAST_REQUIRE_*` variable says the test must run.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod netns;
mod running;
mod skip;
pub mod usage;

use std::path::PathBuf;

use anyhow::Context;

pub use running::Running;
pub use skip::{required, skip_or_fail};

/// The path of the workspace binary `name`, built in the same target directory as the running
/// test. A test can name its own package's binaries with `env!("CARGO_BIN_EXE_…")`; another
/// package's are built by `cargo test --workspace` (which builds the binaries of every package
/// with integration tests), or by `cargo build --bins`, not by `cargo test -p` of the test's
/// package alone.
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

//! `relay-bench --version`, in this package so that `cargo test --workspace` builds the binary
//! before the test runs (a sibling package's binary is only built when that package has
//! integration tests: CI once failed on exactly that).

use std::process::Command;

#[test]
fn relay_bench_names_its_version_and_the_protocol() -> anyhow::Result<()> {
    let out =
        Command::new(env!("CARGO_BIN_EXE_relay-bench")).arg("--version").env_clear().output()?;
    anyhow::ensure!(out.status.success(), "relay-bench --version: {out:?}");
    let text = String::from_utf8(out.stdout)?;
    let want = format!(
        "bench {} (dronecast protocol {})\n",
        env!("CARGO_PKG_VERSION"),
        framing::PROTOCOL_VERSION
    );
    anyhow::ensure!(text == want, "relay-bench --version says {text:?}, not {want:?}");
    Ok(())
}

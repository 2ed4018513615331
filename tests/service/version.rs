//! `--version`: the program, its version and the protocol it speaks, which must match on both
//! ends of a connection. (`relay-bench` is checked in its own package: crates/bench/tests.)

use std::process::Command;

#[test]
fn every_binary_names_its_version_and_the_protocol() -> anyhow::Result<()> {
    let protocol = dronecast::framing::PROTOCOL_VERSION;
    for (bin, name) in [("drone", "drone"), ("cache-server", "cache-server"), ("client", "client")]
    {
        let out = Command::new(harness::sibling_bin(bin)?).arg("--version").env_clear().output()?;
        anyhow::ensure!(out.status.success(), "{bin} --version: {out:?}");
        let text = String::from_utf8(out.stdout)?;
        let want =
            format!("{name} {} (dronecast protocol {protocol})\n", env!("CARGO_PKG_VERSION"));
        anyhow::ensure!(text == want, "{bin} --version says {text:?}, not {want:?}");
    }
    Ok(())
}

//! The installed Debian packages (`scripts/package.sh`, then `dpkg -i`), run as installed:
//! each server from `/usr/bin` with its `/etc/dronecast/*.env` sourced first, as systemd's
//! `EnvironmentFile=` would load it (not under systemd, which CI does not run). A frame must
//! go drone → cache-server → client. Only the listening addresses (and the drone's source: CI
//! has no camera) are given as flags, which win over the file.
//!
//! Skips when the packages are not installed; `DRONECAST_REQUIRE_PACKAGES=1` (set by
//! `.ci/run`, which installs them) makes that a failure.

use std::path::Path;
use std::process::{Command, Stdio};

use harness::{Running, skip_or_fail};

use super::{PATIENCE, env_files, help};

const REQUIRE: &str = "DRONECAST_REQUIRE_PACKAGES";

/// What each package installs: its command, and the server's environment file.
const INSTALLED: [(&str, &str, Option<&str>); 3] = [
    ("drone", "/usr/bin/dronecast-drone", Some("/etc/dronecast/drone.env")),
    ("cache-server", "/usr/bin/dronecast-cache-server", Some("/etc/dronecast/cache-server.env")),
    ("client", "/usr/bin/dronecast-client", None),
];

/// Runs `bin` with `env_file` sourced (every assignment exported), then `args`.
fn start_installed(bin: &str, env_file: &str, args: &[&str]) -> anyhow::Result<Running> {
    let script = r#"set -a && . "$0" && set +a && exec "$@""#;
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script, env_file, bin]).args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    Running::start(&mut cmd)
}

fn missing() -> Option<String> {
    let paths = INSTALLED.iter().flat_map(|(_, bin, env)| std::iter::once(*bin).chain(*env));
    let missing: Vec<&str> = paths.filter(|p| !Path::new(p).is_file()).collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the dronecast packages are not installed (no {}); scripts/package.sh and dpkg -i \
             target/debian/*.deb install them",
            missing.join(", ")
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_packages_carry_a_frame_with_their_environment_files() -> anyhow::Result<()> {
    if let Some(why) = missing() {
        return skip_or_fail(REQUIRE, &why);
    }
    let version = format!(
        "{} (dronecast protocol {})",
        env!("CARGO_PKG_VERSION"),
        dronecast::framing::PROTOCOL_VERSION
    );
    // The installed files: each command's version, and each environment file against the
    // packaged binary's own --help (every variable, every default exactly).
    for (name, bin, env_file) in INSTALLED {
        let out = Command::new(bin).arg("--version").env_clear().output()?;
        let text = String::from_utf8(out.stdout)?;
        anyhow::ensure!(text.trim_end() == format!("{name} {version}"), "{bin}: {text:?}");
        let Some(env_file) = env_file else { continue };
        let out = Command::new(bin).arg("--help").env_clear().output()?;
        let flags = help::parse(&String::from_utf8(out.stdout)?);
        let text = std::fs::read_to_string(env_file)?;
        let problems = env_files::compare(name, env_file, &flags, &text, true);
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("\n"));
    }

    let drone = start_installed(
        "/usr/bin/dronecast-drone",
        "/etc/dronecast/drone.env",
        &["--listen", "127.0.0.1:0", "--source", "test"],
    )?;
    let drone_addr = drone.wait_for_addr("drone serving", PATIENCE).await?.to_string();
    let cache = start_installed(
        "/usr/bin/dronecast-cache-server",
        "/etc/dronecast/cache-server.env",
        &["--upstream", &drone_addr, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    )?;
    let cache_addr = cache.wait_for_addr("cache-server serving viewers", PATIENCE).await?;
    let out = tokio::task::spawn_blocking(move || {
        Command::new("/usr/bin/dronecast-client")
            .arg(cache_addr.to_string())
            .args(["--headless", "--frames", "1", "--timeout", "20", "--json"])
            .stdin(Stdio::null())
            .output()
    })
    .await??;
    let report = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "client: {}\nstdout: {report}\nstderr: {}\ndrone:\n{}\ncache-server:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        drone.log(),
        cache.log()
    );
    let report: serde_json::Value = serde_json::from_str(report.trim())?;
    anyhow::ensure!(report["frames"].as_u64() >= Some(1), "no frame went through: {report}");
    anyhow::ensure!(report["decode_errors"] == 0, "{report}");
    for server in [&cache, &drone] {
        server.terminate()?;
    }
    let (mut cache, mut drone) = (cache, drone);
    for server in [&mut cache, &mut drone] {
        let status = server.wait_exit(PATIENCE).await?;
        anyhow::ensure!(status.success(), "exit {status}; log:\n{}", server.log());
    }
    Ok(())
}

//! `--source camera` and `--list-cameras`, with and without the `camera` feature.
//!
//! Most of these check the messages a user gets where there is no camera. They do not need a
//! camera-less machine: they ask for camera indexes and paths that have no `/dev/videoN`, so
//! they run everywhere. Two depend on the hardware and say so when they cannot run:
//! - the exact "no cameras found" of `--list-cameras` needs a machine with no video device at
//!   all: skipped elsewhere, and a failure under `DRONECAST_REQUIRE_NO_CAMERA=1` (CI, which
//!   has none, sets it);
//! - a real camera listed and streaming needs a camera: skipped without one (as in CI), and a
//!   failure under `DRONECAST_REQUIRE_CAMERA=1` (set it on the Pi).

use drone::{CameraId, Format, SourceSpec};

const FORMAT: Format = Format { width: 640, height: 480, fps: 30, quality: 80 };

#[cfg(not(feature = "camera"))]
#[test]
fn without_the_feature_camera_is_refused_with_the_rebuild_hint() {
    let spec = SourceSpec::Camera(CameraId::Index(0));
    let err = drone::source::open(&spec, FORMAT).err().expect("no camera support");
    let msg = format!("{err:#}");
    assert!(msg.contains("cargo build --release -p drone --features camera"), "{msg}");
    assert!(msg.contains("libclang-dev"), "{msg}");
    let err = drone::source::list_cameras().expect_err("no camera support");
    assert!(format!("{err:#}").contains("--features camera"));
}

#[cfg(not(feature = "camera"))]
#[test]
fn without_the_feature_the_binary_exits_non_zero_with_the_hint() -> std::io::Result<()> {
    for args in [&["--source", "camera", "--listen", "127.0.0.1:0"][..], &["--list-cameras"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_drone")).args(args).output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains("--features camera"), "{args:?}: {stderr}");
    }
    Ok(())
}

#[cfg(feature = "camera")]
mod with_camera_feature {
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use harness::Running;
    use relay::{SubscribeOptions, subscribe};

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(20);

    /// The N of every `/dev/videoN` on this machine, in order.
    fn video_devices() -> Vec<u32> {
        let mut found: Vec<u32> = std::fs::read_dir("/dev")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.strip_prefix("video")?.parse().ok())
            .collect();
        found.sort_unstable();
        found
    }

    /// The first camera index from `from` on that has no `/dev/videoN`: "no camera there" on
    /// any machine, camera or not.
    fn free_index(from: u32) -> u32 {
        let taken = video_devices();
        (from..).find(|n| !taken.contains(n)).unwrap_or(from)
    }

    /// Runs the drone binary with `args`; kills it if it outlives `limit`.
    fn drone(args: &[&str], limit: Duration) -> std::io::Result<(Output, Duration)> {
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_drone"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        while child.try_wait()?.is_none() && started.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(50));
        }
        if child.try_wait()?.is_none() {
            child.kill()?;
        }
        let out = child.wait_with_output()?;
        Ok((out, started.elapsed()))
    }

    #[test]
    fn list_cameras_on_a_machine_without_one() -> anyhow::Result<()> {
        let devices = video_devices();
        if let Some(first) = devices.first() {
            let why = format!(
                "this machine has video devices (/dev/video{first} and {} more), so the answer \
                 of --list-cameras where there is no camera cannot be checked here",
                devices.len() - 1
            );
            return harness::skip_or_fail("DRONECAST_REQUIRE_NO_CAMERA", &why);
        }
        let (out, _) = drone(&["--list-cameras"], PATIENCE)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
        assert_eq!(stdout.trim(), "no cameras found");
        Ok(())
    }

    #[test]
    fn source_camera_fails_fast_where_there_is_no_camera() -> std::io::Result<()> {
        let (a, b) = (free_index(0), free_index(free_index(0) + 1));
        let path = format!("/dev/video{}", free_index(b + 1));
        let (a, b) = (a.to_string(), b.to_string());
        for (camera, named) in [
            (a.as_str(), format!("index {a}")),
            (b.as_str(), format!("index {b}")),
            (path.as_str(), path.clone()),
        ] {
            let args = ["--source", "camera", "--camera", camera, "--listen", "127.0.0.1:0"];
            let (out, took) = drone(&args, PATIENCE)?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(took < Duration::from_secs(5), "took {took:?}");
            assert!(!out.status.success() && out.status.code().is_some(), "exit {:?}", out.status);
            assert!(stderr.contains("no camera found"), "{stderr}");
            assert!(stderr.contains(&named), "{stderr}");
            assert!(stderr.contains("--source test"), "{stderr}");
        }
        Ok(())
    }

    #[test]
    fn default_source_is_the_camera() -> std::io::Result<()> {
        let camera = free_index(0).to_string();
        let (out, _) = drone(&["--camera", &camera, "--listen", "127.0.0.1:0"], PATIENCE)?;
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("no camera found at index {camera}")), "{stderr}");
        Ok(())
    }

    #[test]
    fn open_names_the_index() {
        let index = free_index(2);
        let spec = SourceSpec::Camera(CameraId::Index(index));
        let err = drone::source::open(&spec, FORMAT).err().expect("no camera at a free index");
        let msg = format!("{err:#}");
        assert!(msg.contains(&format!("no camera found at index {index}")), "{msg}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_camera_is_listed_and_serves_jpeg_frames() -> anyhow::Result<()> {
        if video_devices().is_empty() {
            let why = "no camera here (no /dev/video*); this test needs one";
            return harness::skip_or_fail("DRONECAST_REQUIRE_CAMERA", why);
        }
        let list = tokio::task::spawn_blocking(|| drone(&["--list-cameras"], PATIENCE)).await??;
        let listed = String::from_utf8_lossy(&list.0.stdout).into_owned();
        // "camera 0: <name> (<description>)", then the formats it offers.
        let index = listed
            .lines()
            .find_map(|line| line.strip_prefix("camera ")?.split(':').next()?.parse::<u32>().ok());
        let Some(index) = index else {
            anyhow::bail!("--list-cameras names no camera although /dev/video* exists:\n{listed}");
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_drone"));
        cmd.args(["--source", "camera", "--camera", &index.to_string()]);
        let mut running = Running::start(cmd.args(["--listen", "127.0.0.1:0"]))?;
        let addr = running.wait_for_addr("drone serving", PATIENCE).await?;
        let mut sub = subscribe(&addr.to_string(), &SubscribeOptions::default()).await?;
        for _ in 0..3 {
            let frame = tokio::time::timeout(PATIENCE, sub.next_frame()).await??;
            let frame = frame.ok_or_else(|| anyhow::anyhow!("the drone ended the stream"))?;
            assert!(frame.payload().starts_with(&[0xff, 0xd8]), "camera {index}: not a JPEG");
        }
        sub.close().await;
        running.terminate()?;
        assert!(running.wait_exit(PATIENCE).await?.success(), "{}", running.log());
        Ok(())
    }
}

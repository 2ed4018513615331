//! `--source camera` and `--list-cameras`, with and without the `camera` feature. These run
//! on machines without a camera (CI): they check the messages a user gets there.

use drone::{CameraId, Format, SourceSpec};

const FORMAT: Format = Format { width: 640, height: 480, fps: 30, quality: 80 };

/// True when this machine has a video device, where "no camera" cannot be tested.
#[cfg(feature = "camera")]
fn has_video_device() -> bool {
    std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| entry.file_name().to_str().is_some_and(|name| name.starts_with("video")))
}

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

    use super::*;

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
    fn list_cameras_on_a_machine_without_one() -> std::io::Result<()> {
        if has_video_device() {
            eprintln!("skipped: this machine has a video device");
            return Ok(());
        }
        let (out, _) = drone(&["--list-cameras"], Duration::from_secs(20))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "exit {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), "no cameras found");
        Ok(())
    }

    #[test]
    fn source_camera_fails_fast_without_a_camera() -> std::io::Result<()> {
        if has_video_device() {
            eprintln!("skipped: this machine has a video device");
            return Ok(());
        }
        for (camera, named) in [("0", "index 0"), ("3", "index 3"), ("/dev/video5", "/dev/video5")]
        {
            let args = ["--source", "camera", "--camera", camera, "--listen", "127.0.0.1:0"];
            let (out, took) = drone(&args, Duration::from_secs(20))?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(took < Duration::from_secs(5), "took {took:?}");
            assert!(!out.status.success() && out.status.code().is_some(), "exit {:?}", out.status);
            assert!(stderr.contains("no camera found"), "{stderr}");
            assert!(stderr.contains(named), "{stderr}");
            assert!(stderr.contains("--source test"), "{stderr}");
        }
        Ok(())
    }

    #[test]
    fn default_source_is_the_camera() -> std::io::Result<()> {
        if has_video_device() {
            return Ok(());
        }
        let (out, _) = drone(&["--listen", "127.0.0.1:0"], Duration::from_secs(20))?;
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no camera found"));
        Ok(())
    }

    #[test]
    fn open_names_the_index() {
        if has_video_device() {
            return;
        }
        let spec = SourceSpec::Camera(CameraId::Index(2));
        let err = drone::source::open(&spec, FORMAT).err().expect("no camera here");
        let msg = format!("{err:#}");
        assert!(msg.contains("no camera found at index 2"), "{msg}");
    }
}

//! The real `client` binary in headless mode, against an in-process drone: its report, its
//! recording, and its exact exit codes and messages when something is wrong.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use drone::SourceSpec;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

async fn start_drone(config: drone::Config) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(drone::run(config, listener, CancellationToken::new()));
    Ok(addr)
}

async fn client(args: Vec<String>) -> anyhow::Result<Output> {
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_client")).args(args).output()
    });
    Ok(tokio::time::timeout(Duration::from_secs(60), run).await???)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_json_report_has_every_key() -> anyhow::Result<()> {
    let addr = start_drone(drone::Config::default()).await?;
    let flags = [&addr.to_string(), "--headless", "--frames", "30", "--json", "--timeout", "30"];
    let out = client(args(&flags)).await?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    for key in [
        "frames",
        "distinct",
        "out_of_order",
        "fps",
        "age_ms_p50",
        "age_ms_p99",
        "first_frame_ms",
        "decode_errors",
        "width",
        "height",
    ] {
        assert!(report.get(key).is_some(), "no {key} in {report}");
    }
    assert_eq!(report["frames"], 30);
    assert_eq!(report["distinct"], 30);
    assert_eq!(report["out_of_order"], 0);
    assert_eq!(report["decode_errors"], 0);
    assert_eq!((report["width"].as_u64(), report["height"].as_u64()), (Some(640), Some(480)));
    Ok(())
}

/// Checks that the client exited with exactly `code` (not a crash, not another failure)
/// and said `message` on stderr.
fn assert_exit(out: &Output, code: i32, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "exited with {}; stderr:\n{stderr}", out.status);
    assert!(stderr.contains(message), "stderr does not say {message:?}:\n{stderr}");
}

fn args(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_frames_before_the_timeout_exit_1_and_say_so() -> anyhow::Result<()> {
    let mut config = drone::Config::default();
    config.format.fps = 2;
    let addr = start_drone(config).await?;
    let out = client(args(&[&addr.to_string(), "--headless", "--frames", "50", "--timeout", "1"]))
        .await?;
    assert_exit(&out, 1, "error: only ");
    assert_exit(&out, 1, " of the 50 frames asked for arrived within the 1 s timeout\n");
    // The report still comes, on stdout.
    assert!(String::from_utf8_lossy(&out.stdout).contains(" frames ("), "no report");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_with_exit_on_disconnect_exits_1_and_names_the_address() -> anyhow::Result<()> {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.to_string();
    let out =
        client(args(&[&nobody, "--headless", "--frames", "1", "--exit-on-disconnect"])).await?;
    assert_exit(&out, 1, &format!("error: could not connect to {nobody}: "));
    assert_exit(&out, 1, "(is the drone or cache-server running there?)");
    Ok(())
}

/// Bad flag values stop the client before it starts, with clap's usage-error code (2) and a
/// message naming the flag, the value and what is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flag_values_exit_2_and_name_the_flag() -> anyhow::Result<()> {
    let cases = [
        ("--frames <N>", "0", "0 is not in 1..=1000000000"),
        ("--timeout <SECS>", "0", "must be greater than 0 seconds"),
        ("--timeout <SECS>", "soon", "must be a number of seconds from 0 to 86400"),
        ("--max-frame-bytes <BYTES>", "10", "must be a number of bytes from 1024 to 1073741824"),
    ];
    for (flag, value, why) in cases {
        let name = flag.split(' ').next().unwrap_or(flag);
        let out = client(args(&["127.0.0.1:9", "--headless", name, value])).await?;
        assert_exit(&out, 2, &format!("error: invalid value '{value}' for '{flag}': {why}\n"));
    }
    let out = client(args(&["127.0.0.1:9", "--frames", "5"])).await?;
    assert_exit(
        &out,
        2,
        "error: the following required arguments were not provided:\n  --headless",
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_holds_the_files_frames_byte_for_byte() -> anyhow::Result<()> {
    // Twelve distinct small JPEGs, concatenated into an MJPEG file.
    let dir = tempfile::tempdir()?;
    let mut jpegs = Vec::new();
    for i in 0..12u8 {
        let img = image::RgbImage::from_fn(96, 64, |x, y| {
            image::Rgb([i * 20, (x * 2) as u8, (y * 3) as u8 ^ i])
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85).encode_image(&img)?;
        jpegs.push(jpeg);
    }
    let source = dir.path().join("clip.mjpeg");
    std::fs::write(&source, jpegs.concat())?;

    let mut config = drone::Config { source: SourceSpec::Path(source), ..Default::default() };
    config.format.fps = 20; // slow enough that a loopback viewer skips nothing
    let addr = start_drone(config).await?;
    let out_path = dir.path().join("out.mjpeg");
    let args = vec![
        addr.to_string(),
        "--headless".into(),
        "--frames".into(),
        "30".into(),
        "--timeout".into(),
        "30".into(),
        "--record".into(),
        out_path.display().to_string(),
    ];
    let out = client(args).await?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // The recording is the file's frames, in the file's order, looping: 30 consecutive ones
    // starting wherever the drone was when the client joined.
    let recorded = std::fs::read(&out_path)?;
    let start = jpegs
        .iter()
        .position(|j| recorded.starts_with(j))
        .expect("first frame is one of the file's");
    let expected: Vec<u8> = (0..30).flat_map(|i| jpegs[(start + i) % 12].clone()).collect();
    assert!(
        recorded == expected,
        "recording differs from the file's frames ({} vs {} bytes)",
        recorded.len(),
        expected.len()
    );
    Ok(())
}

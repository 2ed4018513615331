//! The real `cache-server` binary between an in-process drone and in-process viewers.

use std::process::Command;
use std::time::Duration;

use client::headless;
use harness::Running;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_to_viewers_reports_and_stops_on_sigterm() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let upstream = listener.local_addr()?;
    tokio::spawn(drone::run(drone::Config::default(), listener, CancellationToken::new()));

    let mut cache = Running::start(Command::new(env!("CARGO_BIN_EXE_cache-server")).args([
        "--upstream",
        &upstream.to_string(),
        "--listen",
        "127.0.0.1:0",
        "--summary-every",
        "0.5",
    ]))?;
    let addr = cache.wait_for_addr("serving viewers", PATIENCE).await?;

    let options = headless::Options {
        frames: Some(90),
        timeout: Some(PATIENCE),
        ..headless::Options::default()
    };
    let viewers: Vec<_> = (0..3)
        .map(|_| {
            let options = options.clone();
            tokio::spawn(async move {
                headless::run(&addr.to_string(), options, CancellationToken::new()).await
            })
        })
        .collect();
    for viewer in viewers {
        let report = viewer.await??;
        assert_eq!(
            (report.frames, report.distinct, report.out_of_order),
            (90, 90, 0),
            "{report:?}"
        );
        assert_eq!(report.decode_errors, 0, "{report:?}");
    }
    let status = cache.wait_for_line("upstream up | in", PATIENCE).await?;
    assert!(status.contains("viewers"), "summary line lacks the viewer count: {status}");

    cache.terminate()?;
    let exit = cache.wait_exit(Duration::from_secs(5)).await?;
    assert!(exit.success(), "cache-server exited with {exit}; log:\n{}", cache.log());
    Ok(())
}

#[test]
fn an_unreachable_upstream_is_logged_and_viewers_are_still_served() -> anyhow::Result<()> {
    // Port 1 on loopback: nothing listens there, so every dial is refused at once.
    let cache = Running::start(Command::new(env!("CARGO_BIN_EXE_cache-server")).args([
        "--upstream",
        "127.0.0.1:1",
        "--listen",
        "127.0.0.1:0",
    ]))?;
    let addr = cache.blocking_wait_for_addr("serving viewers", PATIENCE)?;
    let line = cache.blocking_wait_for_line("upstream unavailable", PATIENCE)?;
    assert!(line.contains("127.0.0.1:1"), "the log does not name the upstream: {line}");
    // The viewer port is open regardless: a viewer connects and waits for video.
    let stream = std::net::TcpStream::connect(addr)?;
    drop(stream);
    Ok(())
}

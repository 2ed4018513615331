//! The real `cache-server` binary between an in-process drone and in-process viewers.

use std::process::Command;
use std::time::Duration;

use client::headless;
use harness::Running;
use relay::{SubscribeOptions, subscribe};
use tokio::net::{TcpListener, TcpSocket};
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
        "--http",
        "off",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_logged_and_a_waiting_viewer_gets_frames_once_it_is_up()
-> anyhow::Result<()> {
    // The upstream's port, bound but not listening: every dial is refused at once, and no
    // other program can take the port before the drone below listens on it.
    let upstream = TcpSocket::new_v4()?;
    upstream.bind("127.0.0.1:0".parse()?)?;
    let upstream_addr = upstream.local_addr()?;
    let mut cache = Running::start(Command::new(env!("CARGO_BIN_EXE_cache-server")).args([
        "--upstream",
        &upstream_addr.to_string(),
        "--listen",
        "127.0.0.1:0",
        "--http",
        "off",
        "--summary-every",
        "0",
    ]))?;
    let addr = cache.wait_for_addr("serving viewers", PATIENCE).await?;
    let line = cache.wait_for_line("upstream unavailable", PATIENCE).await?;
    assert!(
        line.contains(&upstream_addr.to_string()),
        "the log does not name the upstream: {line}"
    );

    // The viewer port serves regardless: a viewer completes its handshake and waits for
    // video (heartbeats keep it from giving up).
    let mut viewer = subscribe(&addr.to_string(), &SubscribeOptions::default()).await?;
    assert!(
        viewer.source_hello().agent.starts_with("cache-server/"),
        "{:?}",
        viewer.source_hello()
    );

    // The drone comes up: the waiting viewer gets its frames without redialling.
    let listener = upstream.listen(1024)?;
    tokio::spawn(drone::run(drone::Config::default(), listener, CancellationToken::new()));
    for _ in 0..3 {
        let frame = tokio::time::timeout(PATIENCE, viewer.next_frame()).await??;
        let frame = frame.ok_or_else(|| anyhow::anyhow!("the cache-server ended the stream"))?;
        assert!(frame.payload().starts_with(&[0xff, 0xd8]), "not a JPEG");
    }
    cache.wait_for_line("upstream back", PATIENCE).await?;
    viewer.close().await;
    cache.terminate()?;
    assert!(cache.wait_exit(PATIENCE).await?.success(), "{}", cache.log());
    Ok(())
}

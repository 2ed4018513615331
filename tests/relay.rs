//! End to end: drone → cache-server → headless viewers, all on loopback in one process,
//! asserting on what the viewers actually receive.

mod common;

use std::time::Duration;

use cache_server::UpstreamState;
use common::{assert_clean, cache, drone, drone_at, view};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_viewer_gets_fresh_frames_in_order() -> anyhow::Result<()> {
    let drone = drone(30).await?;
    let cache = cache(drone.addr).await?;
    let viewers = (0..3).map(|_| tokio::spawn(view(cache.addr, 60)));
    for viewer in viewers {
        let report = viewer.await??;
        assert_clean(&report);
        // Loose bounds: this checks that frames are not queued up (seconds old), not speed;
        // docs/BENCHMARKS.md has the real figures.
        assert!(report.age_ms_p50 < 100.0, "frames are stale: {report:?}");
        assert!(report.fps > 10.0, "frames trickle: {report:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_viewer_gets_the_cached_frame_at_once() -> anyhow::Result<()> {
    // At 2 fps the next capture is up to 500 ms away, so a first frame within 50 ms can only
    // be the cached one.
    let drone = drone(2).await?;
    let cache = cache(drone.addr).await?;
    view(cache.addr, 1).await?; // starts the stream
    cache.wait_frames_in(2).await?;
    let late = view(cache.addr, 1).await?;
    assert!(late.first_frame_ms < 50.0, "first frame took {} ms", late.first_frame_ms);
    assert_clean(&late);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_stay_connected_while_the_drone_restarts() -> anyhow::Result<()> {
    let first = drone(30).await?;
    let addr = first.addr;
    let cache = cache(addr).await?;
    let viewer = tokio::spawn(view(cache.addr, 40));
    cache.wait_frames_in(10).await?;
    first.stop().await?;
    cache.wait_upstream(UpstreamState::Down).await?;
    let frames_before = cache.upstream.frames_in();

    let second = drone_at(&addr.to_string(), 30).await?;
    cache.wait_upstream(UpstreamState::Up).await?;
    let report = viewer.await??;
    assert!(cache.upstream.frames_in() > frames_before, "no frames after the restart");
    assert_eq!(report.reconnects, 0, "the viewer was dropped: {report:?}");
    assert_eq!(report.source_restarts, 1, "{report:?}");
    assert_clean(&report);
    second.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_hop_chain_delivers() -> anyhow::Result<()> {
    let drone = drone(30).await?;
    let near = cache(drone.addr).await?;
    let far = cache(near.addr).await?;
    let report = view(far.addr, 30).await?;
    assert_clean(&report);
    assert!(report.age_ms_p50 < 100.0, "frames are stale: {report:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_dropped_and_viewers_carry_on() -> anyhow::Result<()> {
    let drone = drone(30).await?;
    let cache = cache(drone.addr).await?;
    let viewer = tokio::spawn(view(cache.addr, 45));
    cache.wait_frames_in(5).await?;

    let mut http = tokio::net::TcpStream::connect(cache.addr).await?;
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await?;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), http.read_to_end(&mut rest)).await;
    // Answered in one line of HTTP that this is not its port, then closed.
    let answer = String::from_utf8_lossy(&rest);
    assert!(matches!(read, Ok(Ok(_))), "HTTP peer left open: {read:?} {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer:?}");
    assert!(
        answer.ends_with(
            "This is a dronecast viewer port, not HTTP: this server has no HTTP port.\n"
        ),
        "{answer:?}"
    );

    assert_clean(&viewer.await??);
    Ok(())
}

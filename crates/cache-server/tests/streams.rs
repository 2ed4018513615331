//! Several cameras through one cache-server, by name: three drones, each at its own picture
//! size so that their frames can be told apart, relayed as three streams by one cache-server
//! (two from `--upstream`, one from `--config`); a second cache-server mirrors all of them
//! with `HOST:PORT/*`, and picks up a stream added to the first later.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{PATIENCE, cache_cmd, client_bin, start_cache_at, start_drone};
use harness::Running;
use relay::{SubscribeOptions, Subscription, subscribe};
use tokio::time::Instant;

/// Each drone's name and picture size.
const DRONES: [(&str, u32, u32); 3] = [("front", 320, 240), ("back", 400, 304), ("side", 480, 360)];

async fn drone(
    name: &str,
    width: u32,
    height: u32,
    listen: &str,
) -> anyhow::Result<(Running, SocketAddr)> {
    let (w, h) = (width.to_string(), height.to_string());
    start_drone(listen, &["--name", name, "--width", &w, "--height", &h, "--fps", "30"]).await
}

/// A viewer of stream `name` at `addr`.
async fn viewer(addr: SocketAddr, name: &str) -> anyhow::Result<Subscription> {
    let options = SubscribeOptions { stream: name.to_owned(), ..SubscribeOptions::default() };
    Ok(tokio::time::timeout(PATIENCE, subscribe(&addr.to_string(), &options)).await??)
}

/// Frames `sub` takes in `how_long`, each checked to be `width`×`height` (its drone's).
async fn frames(
    sub: &mut Subscription,
    (width, height): (u32, u32),
    how_long: Duration,
) -> anyhow::Result<u64> {
    let until = Instant::now() + how_long;
    let mut n = 0;
    while let Ok(next) = tokio::time::timeout_at(until, sub.next_frame()).await {
        let frame = next?.ok_or_else(|| anyhow::anyhow!("the stream ended"))?;
        let got = (frame.header().width, frame.header().height);
        anyhow::ensure!(got == (width, height), "a {got:?} frame in the {width}x{height} stream");
        n += 1;
    }
    Ok(n)
}

fn config(path: &std::path::Path, streams: &[(&str, SocketAddr)]) -> anyhow::Result<()> {
    let text: String = streams
        .iter()
        .map(|(name, addr)| format!("[[stream]]\nname = \"{name}\"\nupstream = \"{addr}\"\n\n"))
        .collect();
    Ok(std::fs::write(path, text)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_drones_through_one_cache_server_and_a_mirror_of_it() -> anyhow::Result<()> {
    let mut drones = Vec::new();
    for (name, w, h) in DRONES {
        drones.push(drone(name, w, h, "127.0.0.1:0").await?);
    }
    let dir = tempfile::tempdir()?;
    let streams_toml = dir.path().join("streams.toml");
    config(&streams_toml, &[("side", drones[2].1)])?;
    let front = format!("front={}", drones[0].1);
    let mut cmd = cache_cmd(&front, "127.0.0.1:0", &[]);
    cmd.args(["--upstream", &format!("back={}", drones[1].1)]);
    cmd.arg("--config").arg(&streams_toml);
    let (cache, addr, _) = start_cache_at(cmd).await?;

    // Each stream's viewers get that stream's frames only, at the full rate.
    let mut viewers = Vec::new();
    for (name, w, h) in DRONES {
        viewers.push((viewer(addr, name).await?, (w, h)));
    }
    for (sub, size) in &mut viewers {
        let n = frames(sub, *size, Duration::from_millis(700)).await?;
        assert!(n >= 15, "{n} frames of {size:?} in 0.7 s");
    }

    // The back drone dies: the other two streams carry on at full rate.
    let (back_drone, back_addr) = drones.remove(1);
    drop(back_drone);
    cache.wait_for_line("upstream lost", PATIENCE).await?;
    for i in [0, 2] {
        let (sub, size) = &mut viewers[i];
        let n = frames(sub, *size, Duration::from_secs(1)).await?;
        assert!(n >= 25, "stream {i}: {n} frames in the second after another drone died");
    }
    // It comes back on the same port: its viewers, still connected, get frames within a second.
    let back_again = drone("back", 400, 304, &back_addr.to_string()).await?;
    let back_ready = Instant::now();
    let (sub, size) = &mut viewers[1];
    let first = tokio::time::timeout(PATIENCE, sub.next_frame()).await??;
    let first = first.ok_or_else(|| anyhow::anyhow!("the back stream ended"))?;
    assert_eq!((first.header().width, first.header().height), *size);
    let resumed = back_ready.elapsed();
    assert!(resumed < Duration::from_secs(1), "back stream resumed {resumed:?} after its drone");

    // An unknown name is refused with the list of streams, and the client says so.
    let err = viewer(addr, "nope").await.expect_err("no stream named nope");
    assert!(
        err.to_string().contains("no stream named 'nope' here; this server has: back, front, side"),
        "{err}"
    );
    let out = Command::new(client_bin()?)
        .args([&format!("{addr}/nope"), "--headless", "--frames", "1", "--exit-on-disconnect"])
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("this server has: back, front, side"), "{stderr}");

    // A second cache-server mirrors every stream of the first.
    let mirror_of = format!("{addr}/*");
    let (mirror, mirror_addr, _) =
        start_cache_at(cache_cmd(&mirror_of, "127.0.0.1:0", &[])).await?;
    for (name, w, h) in DRONES {
        let mut sub = viewer_when_listed(mirror_addr, name).await?;
        let n = frames(&mut sub, (w, h), Duration::from_millis(500)).await?;
        assert!(n >= 8, "the mirror's {name}: {n} frames in 0.5 s");
    }
    // A fourth drone is added to the first's config; SIGHUP: the mirror serves it too.
    let top = drone("top", 560, 416, "127.0.0.1:0").await?;
    config(&streams_toml, &[("side", drones[1].1), ("top", top.1)])?;
    cache.signal("HUP")?;
    cache.wait_for_line("configuration reloaded", PATIENCE).await?;
    let mut sub = viewer_when_listed(mirror_addr, "top").await?;
    assert!(frames(&mut sub, (560, 416), Duration::from_millis(500)).await? >= 8);
    drop((mirror, back_again));
    Ok(())
}

/// A viewer of `name` at a mirror, once the mirror has picked the stream up.
async fn viewer_when_listed(addr: SocketAddr, name: &str) -> anyhow::Result<Subscription> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match viewer(addr, name).await {
            Ok(sub) => return Ok(sub),
            Err(err)
                if Instant::now() < deadline && err.to_string().contains("no stream named") =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// A bare `--upstream HOST:PORT` relays the stream `default`, which also answers to the name
/// the drone gives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_upstream_is_default_and_answers_to_the_drones_name() -> anyhow::Result<()> {
    let (_drone, drone_addr) = drone("cam1", 320, 240, "127.0.0.1:0").await?;
    let (cache, addr, _) =
        start_cache_at(cache_cmd(&drone_addr.to_string(), "127.0.0.1:0", &[])).await?;
    cache.wait_for_line("upstream connected", PATIENCE).await?;
    for name in ["", "default", "cam1"] {
        let mut sub = viewer(addr, name).await?;
        assert_eq!(sub.source_hello().stream, "default", "asked for {name:?}");
        assert!(frames(&mut sub, (320, 240), Duration::from_millis(300)).await? >= 3);
    }
    Ok(())
}

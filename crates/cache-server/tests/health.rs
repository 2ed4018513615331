//! `GET /healthz` on the real cache-server's HTTP port, what a load balancer's health check
//! asks (deploy/haproxy.cfg): 200 while every stream's upstream is connected or has been down
//! for less than `--health-grace`, 503 with the reason after; `/NAME/healthz` for one stream;
//! no token needed, and then no detail given.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use common::{PATIENCE, start_cache_with_http, start_drone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Longest answer read: a health answer is one line.
const MAX_ANSWER: u64 = 64 * 1024;

/// `GET path` on `http`; the status code and the body.
async fn get(http: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let ask = async {
        let mut tcp = TcpStream::connect(http).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        tcp.take(MAX_ANSWER).read_to_string(&mut answer).await?;
        anyhow::Ok(answer)
    };
    let answer = tokio::time::timeout(PATIENCE, ask).await??;
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    let status = status.with_context(|| format!("no status in {answer:?}"))?;
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    Ok((status, body))
}

/// Asks `path` until it answers `status`; returns the body and when it did.
async fn until(http: SocketAddr, path: &str, status: u16) -> anyhow::Result<(String, Instant)> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (got, body) = get(http, path).await?;
        if got == status {
            return Ok((body, Instant::now()));
        }
        anyhow::ensure!(Instant::now() < deadline, "{path} still answers {got} {body:?}");
        // A balancer's check interval is a second; asking ten times as often is plenty.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_503_once_an_upstream_is_down_past_the_grace_and_200_when_back()
-> anyhow::Result<()> {
    let (_front, front) = start_drone("127.0.0.1:0", &["--name", "front"]).await?;
    let (mut back, back_addr) = start_drone("127.0.0.1:0", &["--name", "back"]).await?;
    let (cache, _, http) = start_cache_with_http(
        &format!("front={front}"),
        &["--upstream", &format!("back={back_addr}"), "--health-grace", "2"],
    )
    .await?;
    // Healthy is not yet connected (a stream down for less than the grace is healthy): the
    // drone killed before the first dial would never be "lost".
    for _ in ["front", "back"] {
        cache.wait_for_line("upstream connected", PATIENCE).await?;
    }
    assert_eq!(get(http, "/healthz").await?, (200, "ok\n".to_owned()));

    back.signal("KILL")?;
    back.wait_exit(PATIENCE).await?;
    let (lost, _) = cache.wait_for_line_since("upstream lost", None, PATIENCE).await?;
    let (_, within) = get(http, "/healthz").await?;
    assert_eq!(within, "ok\n", "unhealthy within the grace");
    let (why, unhealthy) = until(http, "/healthz", 503).await?;
    let after = unhealthy - Instant::from_std(lost);
    println!("503 {after:?} after the upstream was lost: {why}");
    // The line is read a moment after the state changed: a little slack.
    assert!(after >= Duration::from_millis(1900), "503 after {after:?}, inside the 2 s grace");
    assert!(why.starts_with("unhealthy: stream 'back': source down for "), "{why}");
    assert!(why.ends_with(" s (grace 2 s)\n"), "{why}");
    assert_eq!(get(http, "/front/healthz").await?, (200, "ok\n".to_owned()), "front is fine");
    assert_eq!(get(http, "/back/healthz").await?.0, 503);
    let (status, body) = get(http, "/nope/healthz").await?;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("this server has: back, front"), "{body}");

    let (_back, _) = start_drone(&back_addr.to_string(), &["--name", "back"]).await?;
    until(http, "/healthz", 200).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_healthz_needs_none_and_names_nothing() -> anyhow::Result<()> {
    // An upstream nobody listens on (port 9 is discard, closed here): down from the start.
    let flags = ["--token", "s3cret", "--upstream", "back=127.0.0.1:9", "--health-grace", "0"];
    let (_front, front) = start_drone("127.0.0.1:0", &["--name", "front"]).await?;
    let (_cache, _, http) = start_cache_with_http(&format!("front={front}"), &flags).await?;
    until(http, "/front/healthz", 200).await?;
    assert_eq!(get(http, "/front/healthz").await?.1, "ok\n");
    assert_eq!(get(http, "/healthz").await?, (503, "unhealthy\n".to_owned()), "no detail");
    assert_eq!(get(http, "/back/healthz").await?, (503, "unhealthy\n".to_owned()));
    let unknown = get(http, "/nope/healthz").await?;
    assert_eq!(unknown, (503, "unhealthy\n".to_owned()), "names cannot be probed");
    assert_eq!(get(http, "/state").await?.0, 401, "everything else still wants the token");
    Ok(())
}

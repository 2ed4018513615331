//! Text a peer sends (a hello's agent, a refusal's reason) reaches our logs and error
//! messages escaped: a newline or a terminal escape sequence in it cannot forge a log line or
//! repaint a terminal.

mod common;

use anyhow::Context;
use common::logs::logs;
use common::{PATIENCE, drone};
use dronecast::framing::{Hello, Message, Role};
use dronecast::relay::{SubscribeOptions, subscribe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a hostile peer puts in its text: a line break followed by a forged log line, a
/// carriage return, a terminal colour sequence and a bidirectional override.
const EVIL: &str = "evil\n2026-12-01T00:00:00Z  INFO FORGED: admin logged in\r\x1b[31mred\u{202e}";

fn assert_escaped(what: &str, text: &str) {
    assert!(
        !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{what} carries raw control characters: {text:?}"
    );
    assert!(text.contains("evil\\n"), "{what} shows the line break escaped: {text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_agent_with_control_characters_is_logged_escaped() -> anyhow::Result<()> {
    let logs = logs();
    let drone = drone(10).await?;
    let mark = logs.len();
    let mut peer = TcpStream::connect(drone.addr).await?;
    let local = peer.local_addr()?.to_string();
    peer.write_all(&Hello::new(Role::Viewer, EVIL).to_bytes()).await?;
    let joined = logs.wait_for(mark, &["viewer joined", &local]).await?;
    assert_escaped("the join line", &joined);
    let forged = logs.lines_with(mark, &["FORGED"]);
    assert!(forged.iter().all(|line| line.contains(&local)), "a forged line: {forged:?}");
    drop(peer);
    drone.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_agent_and_refusal_with_control_characters_are_reported_escaped()
-> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let fake = tokio::spawn(async move {
        // First connection: a source whose hello has the evil agent. Second: a refusal.
        for reply in [Hello::new(Role::Source, EVIL).to_bytes(), Message::refused(EVIL)] {
            let (mut conn, _) = listener.accept().await?;
            let mut hello = [0u8; 64];
            let _ = conn.read(&mut hello).await?;
            conn.write_all(&reply).await?;
            conn.shutdown().await?;
            let _ = conn.read(&mut hello).await;
        }
        anyhow::Ok(())
    });
    let options = SubscribeOptions::default();
    let sub = tokio::time::timeout(PATIENCE, subscribe(&addr, &options)).await??;
    assert_escaped("the source's agent", &sub.source_hello().agent);
    drop(sub);
    let refused = tokio::time::timeout(PATIENCE, subscribe(&addr, &options))
        .await?
        .err()
        .context("the second connection is refused")?;
    assert_escaped("the refusal", &refused.to_string());
    fake.await??;
    Ok(())
}

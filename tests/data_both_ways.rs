//! Data both ways through a chain of relays: a source publishing frames with data bound to
//! each, two cache-servers, two named viewers. Each viewer gets every frame's data with that
//! frame; what each sends comes back to the source with its name and the whole path; a viewer
//! flooding messages loses its excess (dropped and counted at the first relay it reaches) and
//! nobody else notices.

mod common;

use std::time::Duration;

use common::{PATIENCE, cache};
use dronecast::{Message, Publisher, Viewer};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Frames a second the source publishes.
const FPS: u64 = 30;

/// The source: publishes a frame every 1/FPS s, each with `{"seq":N}` as its data, and hands
/// on every message it receives, until `stop`.
fn source(mut publisher: Publisher, stop: CancellationToken) -> mpsc::UnboundedReceiver<Message> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / FPS));
        let mut seq = 0u64;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return publisher.shutdown().await,
                Some(message) = publisher.next_message() => {
                    let _ = tx.send(message);
                }
                _ = tick.tick() => {
                    let data = format!(r#"{{"seq":{seq}}}"#);
                    let published = publisher.publish(&b"\xff\xd8 picture \xff\xd9"[..], 64, 48, data);
                    seq = published.expect("a small frame is published") + 1;
                }
            }
        }
    });
    rx
}

/// Frames a viewer takes for `how_long`; fails if a frame's data is not its own.
async fn watch(viewer: &mut Viewer, how_long: Duration) -> anyhow::Result<u64> {
    let until = Instant::now() + how_long;
    let mut frames = 0;
    while let Ok(frame) = tokio::time::timeout_at(until, viewer.next_frame()).await {
        let frame =
            frame.ok_or_else(|| anyhow::anyhow!("the viewer gave up: {:?}", viewer.error()))?;
        let data: serde_json::Value = serde_json::from_slice(frame.data())?;
        anyhow::ensure!(data["seq"] == frame.seq(), "frame {} carries {data}", frame.seq());
        anyhow::ensure!(frame.data_is_fresh(), "frame {}'s own data is fresh", frame.seq());
        frames += 1;
    }
    Ok(frames)
}

/// The next `n` messages the source receives.
async fn take(
    inbox: &mut mpsc::UnboundedReceiver<Message>,
    n: usize,
) -> anyhow::Result<Vec<Message>> {
    let mut got = Vec::new();
    while got.len() < n {
        let message = tokio::time::timeout(PATIENCE, inbox.recv()).await?;
        got.push(message.ok_or_else(|| anyhow::anyhow!("the source stopped"))?);
    }
    Ok(got)
}

fn texts(messages: &[Message], prefix: &str) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .filter(|t| t.starts_with(prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_goes_with_each_frame_and_messages_come_back_named_through_two_relays()
-> anyhow::Result<()> {
    let publisher = Publisher::builder().agent("drone/test").bind("127.0.0.1:0").await?;
    let near = cache(publisher.local_addr()).await?;
    let far = cache(near.addr).await?;
    let stop = CancellationToken::new();
    let mut inbox = source(publisher, stop.clone());
    let far_addr = far.addr.to_string();
    let mut ground1 = Viewer::builder(&far_addr).name("ground-1").connect();
    let mut ground2 = Viewer::builder(&far_addr).name("ground-2").connect();
    ground1.connected().await;
    ground2.connected().await;

    // Every frame's data is that frame's own, at both viewers, two relays away.
    let second = Duration::from_secs(1);
    let (a, b) = tokio::try_join!(watch(&mut ground1, second), watch(&mut ground2, second))?;
    assert!(a >= 20 && b >= 20, "frames in a second: {a}, {b}");

    // Ten messages each come back with the sender's name and the path it took: the viewer,
    // then the far relay, then the near one.
    for i in 0..10 {
        assert!(ground1.send(format!("g1 {i}")));
        assert!(ground2.send(format!("g2 {i}")));
        tokio::time::sleep(Duration::from_millis(60)).await; // under 20 a second each
    }
    let got = take(&mut inbox, 20).await?;
    for message in &got {
        let name = if message.payload.starts_with(b"g1 ") { "ground-1" } else { "ground-2" };
        assert_eq!(message.name, name, "{message:?}");
        let path = &message.path;
        assert_eq!(path.len(), 3, "viewer, far relay, near relay: {path:?}");
        assert!(path[0].starts_with("dronecast/0.1.0@127.0.0.1:"), "{path:?}");
        assert!(path[1].starts_with("cache-server/") && path[2].starts_with("cache-server/"));
    }
    let expected = |p: &str| (0..10).map(|i| format!("{p} {i}")).collect::<Vec<_>>();
    assert_eq!(texts(&got, "g1 "), expected("g1"), "ground-1's, all and in order");
    assert_eq!(texts(&got, "g2 "), expected("g2"), "ground-2's, all and in order");

    // ground-1 floods: 1,000 messages in a second. The far relay passes 20 a second and
    // drops (and counts) the rest; ground-2's messages and both video streams carry on.
    let (flooder, other) = (ground1.sender(), ground2.sender());
    let flood = async {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        for i in 0..1000 {
            tick.tick().await;
            flooder.send(format!("flood {i}"));
            if i % 100 == 0 {
                other.send(format!("g2 during {}", i / 100));
            }
        }
        anyhow::Ok(())
    };
    let (flooded, frames) = tokio::join!(flood, watch(&mut ground2, Duration::from_millis(1200)));
    flooded?;
    let frames = frames?;
    assert!(frames >= 25, "ground-2 got {frames} frames in 1.2 s during the flood");
    assert!(watch(&mut ground1, second).await? >= 20, "ground-1's own video carries on too");
    // Everything that got through has arrived once the flood is over.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut after = Vec::new();
    while let Ok(message) = inbox.try_recv() {
        after.push(message);
    }
    assert_eq!(
        texts(&after, "g2 during").len(),
        10,
        "none of ground-2's lost: {:?}",
        texts(&after, "g2")
    );
    let passed = texts(&after, "flood").len();
    assert!((15..=60).contains(&passed), "{passed} of the flood's 1,000 got through");
    let viewers =
        far.hub.default_stream().map(|s| s.viewers().snapshot(|l| s.frames_published_on(l)));
    let ground1_there = viewers.iter().flatten().find(|v| v.name == "ground-1");
    let dropped = ground1_there.map_or(0, |v| v.messages_dropped);
    let local = ground1.messages_dropped();
    assert!(dropped + local >= 900, "dropped: {dropped} at the relay, {local} at the viewer");
    assert!(dropped >= 500, "the relay counted {dropped}");

    ground1.close().await;
    ground2.close().await;
    stop.cancel();
    far.stop().await?;
    near.stop().await
}

/// A viewer sending a malformed or oversized message is dropped with one log line naming it
/// and what was wrong; the source's other viewers and the messages of the others carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_or_oversized_message_drops_its_sender_alone() -> anyhow::Result<()> {
    use dronecast::framing::{Hello, Role};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let logs = common::logs::logs();
    let publisher = Publisher::bind("127.0.0.1:0").await?;
    let addr = publisher.local_addr();
    let stop = CancellationToken::new();
    let mut inbox = source(publisher, stop.clone());
    let mut good = Viewer::builder(&addr.to_string()).name("good").connect();
    good.connected().await;

    let mut too_long = vec![b'M', 0, 0];
    too_long.extend(std::iter::repeat_n(b'x', 5000));
    let cases: [(&str, Vec<u8>); 3] = [
        ("payload longer than 4096 bytes", too_long),
        ("passed through more than 8 relays", [vec![b'M', 0, 9], [1, b'h'].repeat(9)].concat()),
        ("name runs past the end", vec![b'M', 200, b'a']),
    ];
    for (why, body) in cases {
        let mark = logs.len();
        let mut bad = tokio::net::TcpStream::connect(addr).await?;
        let local = bad.local_addr()?.to_string();
        bad.write_all(&Hello::new(Role::Viewer, "bad").to_bytes()).await?;
        bad.write_all(&(body.len() as u64).to_be_bytes()).await?;
        bad.write_all(&body).await?;
        // Dropped: the connection ends (whatever frames were sent before it).
        let mut sink = Vec::new();
        tokio::time::timeout(PATIENCE, bad.read_to_end(&mut sink)).await??;
        logs.wait_for(mark, &["viewer dropped", &local, why]).await?;
        let lines = logs.lines_with(mark, &[&local]).into_iter().filter(|l| l.contains("WARN"));
        assert_eq!(lines.count(), 1, "one warning for {local} ({why})");
    }

    // The good viewer saw nothing of it: frames keep coming, its message gets through.
    assert!(watch(&mut good, Duration::from_millis(500)).await? >= 10);
    good.send("still here");
    let got = take(&mut inbox, 1).await?;
    assert_eq!(&got[0].payload[..], b"still here");
    good.close().await;
    stop.cancel();
    Ok(())
}

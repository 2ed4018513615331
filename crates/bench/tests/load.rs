//! The load generator against a real relay in this process: a stream published at 30 fps with
//! data on every frame, served on both ports. The dronecast and the HTTP viewers report the
//! same figures, messages reach the source, a stalled HTTP viewer harms nobody, and viewers
//! get (and count) the quality layer they ask for.

use std::sync::Arc;
use std::time::Duration;

use bench::load::{Load, Protocol};
use bytes::Bytes;
use framing::{Encoding, Frame, FrameHeader, flags};
use relay::{HttpConfig, HttpServer, Hub, Server, ServerConfig, Stream};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Relay {
    tcp: String,
    http: String,
    stream: Arc<Stream>,
    stop: CancellationToken,
}

/// A relay on two ephemeral loopback ports, publishing a 20 KB "JPEG" with 1 KiB of data at
/// 30 fps.
async fn relay() -> Relay {
    relay_with_layers(false).await
}

/// [`relay`], with `layers`: each capture also as a 5 KB layer, the layers named `vga` and
/// `qvga`.
async fn relay_with_layers(layers: bool) -> Relay {
    let (hub, stream) = Hub::single(ServerConfig::default(), Stream::with_default_limit("main"));
    let stop = CancellationToken::new();
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (tcp_addr, http_addr) =
        (tcp.local_addr().expect("addr").to_string(), http.local_addr().expect("addr").to_string());
    tokio::spawn(Server::new(hub.clone()).run(tcp, stop.clone()));
    tokio::spawn(HttpServer::new(hub, HttpConfig::default()).run(http, stop.clone()));
    if layers {
        stream.set_layer_names(vec!["vga".into(), "qvga".into()]);
    }
    let publisher = stream.clone();
    let stop_publishing = stop.clone();
    tokio::spawn(async move {
        let payload = Bytes::from(vec![0x5a; 20_000]);
        let small = Bytes::from(vec![0x5a; 5_000]);
        let meta = vec![b' '; 1024];
        let mut ticks = tokio::time::interval(Duration::from_millis(33));
        for seq in 0.. {
            tokio::select! {
                _ = stop_publishing.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let header = FrameHeader {
                seq,
                capture_us: relay::clock::now_us(),
                encoding: Encoding::Jpeg,
                width: 640,
                height: 480,
            };
            let frame = Frame::with_flags(header, flags::META_FRESH, &meta, payload.clone());
            publisher.publish(frame).expect("small frame");
            if layers {
                let header = FrameHeader { width: 320, height: 240, ..header };
                let flags = Frame::layer_flags(1, flags::META_FRESH);
                let frame = Frame::with_flags(header, flags, &meta, small.clone());
                publisher.publish(frame).expect("small layer");
            }
        }
    });
    Relay { tcp: tcp_addr, http: http_addr, stream, stop }
}

fn load(server: &str, protocol: Protocol) -> Load {
    Load { protocol, ..Load::new(server, 5, Duration::from_millis(500), Duration::from_secs(2)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_tcp_viewers_report_the_same_figures() {
    let relay = relay().await;
    let tcp = bench::measure("relay", &load(&relay.tcp, Protocol::Tcp), None).await;
    let stalled_http = Load { stalled: 1, ..load(&relay.http, Protocol::Http) };
    let http = bench::measure("relay", &stalled_http, None).await;
    relay.stop.cancel();
    for f in [&tcp, &http] {
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.connected, 5, "{f:?}");
        // 30 fps published; a loaded test machine may drop a few.
        assert!(f.fps_min >= 20.0 && f.fps_p50 <= 31.0, "{} {f:?}", f.protocol);
        assert!(f.age_ms_p50 > 0.0 && f.age_ms_p99 < 500.0, "{f:?}");
        assert!(f.gbit_s > 0.0 && f.first_frame_ms_p99 > 0.0, "{f:?}");
    }
    assert_eq!((tcp.protocol, http.protocol, http.stalled), ("tcp", "http", 1));
    // Dronecast viewers see each frame's data; HTTP parts carry only the JPEG.
    assert_eq!(tcp.meta_bytes_avg, 1024.0);
    assert_eq!(tcp.meta_fresh_pct, 100.0);
    assert_eq!(http.meta_bytes_avg, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_a_source_that_takes_them_and_no_other() {
    let relay = relay().await;
    let with_messages = Load { messages_per_second: 4.0, ..load(&relay.tcp, Protocol::Tcp) };
    let ignored = bench::measure("relay", &with_messages, None).await;
    assert_eq!(ignored.messages_not_taken, 5, "a source without an inbox: none sent");
    assert_eq!(ignored.messages_per_s, 0.0);

    let mut inbox = relay.stream.take_messages(1024);
    let sent = bench::measure("relay", &with_messages, None).await;
    relay.stop.cancel();
    assert!(sent.errors.is_empty(), "{:?}", sent.errors);
    assert_eq!(sent.messages_not_taken, 0);
    // 5 viewers × 4 a second over a 2 s window: 20 a second, give or take a tick at the edges.
    assert!((17.0..=23.0).contains(&sent.messages_per_s), "{}", sent.messages_per_s);
    let mut names = std::collections::BTreeSet::new();
    let mut received = 0;
    while let Ok(message) = inbox.try_recv() {
        let json: serde_json::Value = serde_json::from_slice(&message.payload).expect("JSON");
        assert_eq!(json["bench"], "relay-bench");
        names.insert(message.name);
        received += 1;
    }
    assert!(received >= 40, "{received}: the window's and the warm-up's");
    assert_eq!(names.len(), 5, "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_get_and_count_the_layer_they_ask_for() {
    let relay = relay_with_layers(true).await;
    let asking = |layer: Option<&str>| Load {
        layer: layer.map(str::to_owned),
        ..load(&relay.tcp, Protocol::Tcp)
    };
    // No layers in the hello (an old viewer), the relay's choice on a fast link, a pinned one.
    let old = bench::measure("relay", &asking(None), None).await;
    let auto = bench::measure("relay", &asking(Some(framing::layers::AUTO)), None).await;
    let pinned = bench::measure("relay", &asking(Some("qvga")), None).await;
    relay.stop.cancel();
    for (f, layer) in [(&old, "vga"), (&auto, "vga"), (&pinned, "qvga")] {
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.layer, layer, "{f:?}");
        assert_eq!(f.layer_switches, 0, "{f:?}");
        let frames: Vec<&String> = f.layer_frames.keys().collect();
        assert_eq!(frames, [layer], "{f:?}");
        assert!(f.fps_min >= 20.0 && (f.layer_fps[layer] - f.fps_p50).abs() < 2.0, "{f:?}");
    }
}

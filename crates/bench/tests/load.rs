//! The load generator against a real relay in this process: a stream published at 30 fps with
//! data on every frame, served on both ports. The dronecast and the HTTP viewers report the
//! same figures, messages reach the source, a stalled HTTP viewer harms nobody, and viewers
//! get (and count) the quality layer they ask for. Viewers spread over named streams are
//! counted per stream; over TLS with a token they see the same, and so do the viewers that
//! discard their TLS unread (`decrypt_every`).

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
    relay_with(ServerConfig::default(), &[("main", 30)], false).await
}

/// A relay with `config`, serving `streams` (name, frames a second; the first is the default)
/// with those frames; [`Relay::stream`] is the first. With `layers`, each capture also as a
/// 5 KB layer, the layers named `vga` and `qvga`.
async fn relay_with(config: ServerConfig, streams: &[(&str, u64)], layers: bool) -> Relay {
    let hub = Hub::new(config);
    let stop = CancellationToken::new();
    let mut first = None;
    for &(name, fps) in streams {
        let stream = hub.add_stream(Stream::with_default_limit(name)).expect("a new stream");
        if layers {
            stream.set_layer_names(vec!["vga".into(), "qvga".into()]);
        }
        first.get_or_insert_with(|| stream.clone());
        tokio::spawn(publish(stream, fps, layers, stop.clone()));
    }
    let stream = first.expect("at least one stream");
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (tcp_addr, http_addr) =
        (tcp.local_addr().expect("addr").to_string(), http.local_addr().expect("addr").to_string());
    tokio::spawn(Server::new(hub.clone()).run(tcp, stop.clone()));
    tokio::spawn(HttpServer::new(hub, HttpConfig::default()).run(http, stop.clone()));
    Relay { tcp: tcp_addr, http: http_addr, stream, stop }
}

/// Publishes a 20 KB "JPEG" with 1 KiB of data `fps` times a second until `stop`.
async fn publish(publisher: Arc<Stream>, fps: u64, layers: bool, stop: CancellationToken) {
    let payload = Bytes::from(vec![0x5a; 20_000]);
    let small = Bytes::from(vec![0x5a; 5_000]);
    let meta = vec![b' '; 1024];
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / fps));
    for seq in 0.. {
        tokio::select! {
            _ = stop.cancelled() => return,
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
async fn viewers_spread_round_robin_and_each_stream_counts() {
    let relay = relay_with(ServerConfig::default(), &[("fast", 30), ("slow", 10)], false).await;
    let streams = vec!["fast".to_owned(), "slow".to_owned()];
    for server in [&relay.tcp, &relay.http] {
        let protocol = if server == &relay.tcp { Protocol::Tcp } else { Protocol::Http };
        let spread =
            Load { viewers: 7, stalled: 2, streams: streams.clone(), ..load(server, protocol) };
        let f = bench::measure("relay", &spread, None).await;
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!((f.connected, f.streams, f.slowest_stream.as_str()), (7, 2, "slow"), "{f:?}");
        // Four viewers on the fast stream, three on the slow one: the fast ones hold the
        // median of all seven, the slow stream's median is the lowest.
        assert!((8.0..=11.0).contains(&f.stream_fps_p50_min), "{f:?}");
        assert!((8.0..=11.0).contains(&f.fps_min) && f.fps_p50 >= 20.0, "{f:?}");
    }
    let unknown = Load { streams: vec!["nope".into()], ..load(&relay.tcp, Protocol::Tcp) };
    let f = bench::measure("relay", &unknown, None).await;
    relay.stop.cancel();
    assert_eq!(f.connected, 0);
    assert!(f.errors.iter().any(|e| e.contains("nope")), "{:?}", f.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_with_the_token_watch_over_tls_and_others_are_told_why_not() {
    let dir = std::env::temp_dir().join(format!("relay-bench-tls-{}", std::process::id()));
    let (cert, key, pin) = bench::cert(&dir).expect("a self-signed certificate");
    let config = ServerConfig {
        tls: Some(relay::tls::ServerTls::load(&cert, &key).expect("it loads")),
        auth: Some(Arc::new(relay::auth::Auth::new(&["t0k".into()], None).expect("tokens"))),
        ..ServerConfig::default()
    };
    let relay = relay_with(config, &[("main", 30)], false).await;
    let _ = std::fs::remove_dir_all(&dir);
    let trusted = relay::tls::client_config(&relay::tls::Trust::Pin(pin)).expect("pinned");
    let secure = |server: &str, protocol| Load {
        tls: Some(trusted.clone()),
        token: bench::load::Token("t0k".into()),
        stalled: 1,
        ..load(server, protocol)
    };
    for f in [
        bench::measure("relay", &secure(&relay.tcp, Protocol::Tcp), None).await,
        bench::measure("relay", &secure(&relay.http, Protocol::Http), None).await,
    ] {
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert!(f.tls && f.connected == 5 && f.fps_min >= 20.0, "{f:?}");
        assert!(f.table().contains("+tls viewers 5/5 (+1 stalled)"), "{}", f.table());
    }
    // One viewer in two discards its TLS unread: its rate comes from its bytes, and the server
    // serves it as any other (30 fps published, so about 30, never far above).
    for protocol in [Protocol::Tcp, Protocol::Http] {
        let server = if protocol == Protocol::Tcp { &relay.tcp } else { &relay.http };
        let half = Load { viewers: 6, decrypt_every: 2, ..secure(server, protocol) };
        let f = bench::measure("relay", &half, None).await;
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!((f.viewers, f.connected, f.undecrypted), (6, 6, 3), "{f:?}");
        assert!(f.fps_min >= 20.0, "the decrypting three: {f:?}");
        assert!(f.undecrypted_fps_min >= 20.0 && f.undecrypted_fps_p50 <= 31.0, "{f:?}");
        assert!(f.ciphertext_bytes_per_frame > 20_000.0, "{f:?}");
        assert!(f.table().contains("undecrypted    3 of the viewers"), "{}", f.table());
    }
    let wrong_pin =
        relay::tls::client_config(&relay::tls::Trust::Pin(relay::tls::Fingerprint([7; 32])));
    let impostor =
        Load { tls: Some(wrong_pin.expect("pinned")), ..secure(&relay.tcp, Protocol::Tcp) };
    let f = bench::measure("relay", &impostor, None).await;
    assert_eq!(f.connected, 0);
    assert!(f.errors.iter().any(|e| e.contains("TLS")), "{:?}", f.errors);
    // Last: an address that gave no token is made to wait before its next try.
    let no_token =
        Load { token: bench::load::Token::default(), ..secure(&relay.tcp, Protocol::Tcp) };
    let f = bench::measure("relay", &no_token, None).await;
    relay.stop.cancel();
    assert_eq!(f.connected, 0);
    assert!(f.errors.iter().any(|e| e.contains("token")), "{:?}", f.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_get_and_count_the_layer_they_ask_for() {
    let relay = relay_with(ServerConfig::default(), &[("main", 30)], true).await;
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

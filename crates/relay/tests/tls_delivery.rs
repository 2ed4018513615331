//! A frame written to a TLS viewer leaves the process whole. tokio-rustls reports a write done
//! once rustls has taken the plaintext, which can leave the last records sealed but still in
//! rustls' buffer when the socket is full; unflushed, they wait there for the next write — the
//! next frame, or a heartbeat. A slow reader and a quiet source show it: the frame must arrive
//! whole long before either.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use framing::Encoding;
use framing::codec::MessageCodec;
use framing::message::{Frame, FrameHeader, Hello, Message, Role};
use futures_util::StreamExt;
use relay::tls::{ServerTls, Trust, client_config, self_signed};
use relay::{Hub, Server, ServerConfig, Stream};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep, timeout};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

/// Reads at most `CHUNK` bytes, then pauses `PAUSE`: at most 4 MB/s (about 2 with the timer's
/// granularity), a link slower than the server, so its socket fills and its writes stop part
/// way.
struct Slow<R> {
    inner: R,
    pause: Option<Pin<Box<Sleep>>>,
    scratch: [u8; CHUNK],
}

const CHUNK: usize = 4 * 1024;
const PAUSE: Duration = Duration::from_millis(1);

impl<R: AsyncRead + Unpin> AsyncRead for Slow<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(pause) = self.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            self.pause = None;
        }
        let room = buf.remaining().min(CHUNK);
        let this = &mut *self;
        let mut small = ReadBuf::new(&mut this.scratch[..room]);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut small))?;
        buf.put_slice(small.filled());
        this.pause = Some(Box::pin(tokio::time::sleep(PAUSE)));
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_viewer_gets_the_whole_frame_without_waiting_for_the_next_write() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let (cert, key) = self_signed(dir.path(), &["localhost".into()])?;
    let tls = ServerTls::load(&cert, &key)?;
    let pin = tls.fingerprint().ok_or_else(|| anyhow::anyhow!("no certificate"))?;
    // Heartbeats would flush what a frame left behind: make them rarer than the test.
    let config = ServerConfig {
        tls: Some(tls),
        heartbeat_every: Duration::from_secs(60),
        ..ServerConfig::default()
    };
    let hub = Hub::new(config);
    let stream = hub.add_stream(Stream::with_default_limit("main"))?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    tokio::spawn(Server::new(hub).run(listener, stop.clone()));

    let connector = tokio_rustls::TlsConnector::from(client_config(&Trust::Pin(pin))?);
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(&Hello::new(Role::Viewer, "test/slow-tls").to_bytes()).await?;
    tls.flush().await?;
    let slow = Slow { inner: tls, pause: None, scratch: [0; CHUNK] };
    let mut read = FramedRead::new(slow, MessageCodec::with_max_len(4 * 1024 * 1024));
    match timeout(Duration::from_secs(5), read.next()).await? {
        Some(Ok(Message::Hello(hello))) if hello.role == Role::Source => {}
        other => anyhow::bail!("expected the source's hello, got {other:?}"),
    }

    // One frame of 2 MB, then nothing: only this frame's own write can deliver its end.
    let header = FrameHeader {
        seq: 7,
        capture_us: relay::clock::now_us(),
        encoding: Encoding::Jpeg,
        width: 640,
        height: 480,
    };
    let payload = Bytes::from(vec![0xa5; 2_000_000]);
    stream.publish(Frame::new(header, b"", payload.clone()))?;
    let started = Instant::now();
    // The heartbeat clock's first tick may come first; after it, none for a minute.
    let frame = async {
        loop {
            match read.next().await {
                Some(Ok(Message::Heartbeat)) => continue,
                other => return other,
            }
        }
    };
    let got = timeout(Duration::from_secs(20), frame).await;
    stop.cancel();
    let frame = match got {
        Ok(Some(Ok(Message::Frame(frame)))) => frame,
        Ok(other) => anyhow::bail!("expected the frame, got {other:?}"),
        Err(_) => anyhow::bail!(
            "the frame's end never came: it waits in the server's TLS buffer for a next write"
        ),
    };
    assert_eq!(frame.header().seq, 7);
    assert_eq!(frame.payload(), &payload);
    println!("2 MB over TLS to a 4 MB/s reader in {:?}", started.elapsed());
    Ok(())
}

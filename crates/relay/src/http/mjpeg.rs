//! Live MJPEG: `multipart/x-mixed-replace`, one part per frame, as µStreamer writes it —
//! each part's headers, the JPEG, then the boundary at once, so that a browser shows the
//! frame without waiting for the next one.
//!
//! ```text
//! --boundarydonotcross\r\n                      (once, at the start of the body)
//! Content-Type: image/jpeg\r\n
//! Content-Length: 65012\r\n
//! X-Timestamp: 1700000000.123456\r\n              (capture time, s.µs since the epoch)
//! X-Frame-Seq: 7\r\n
//! \r\n
//! <65012 bytes of JPEG>\r\n--boundarydonotcross\r\n
//! ```

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use framing::{Encoding, Frame};
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::header::{self, HeaderValue};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{Body, Data, NO_STORE, empty};
use crate::clock::now_us;
use crate::delivery::{Delivery, LinkProbe, Picked, Want};
use crate::stream::Stream;
use crate::viewers::{ViewerGuard, ViewerIdentity};

/// The boundary between parts (µStreamer's, which some clients are known to expect).
pub const BOUNDARY: &str = "boundarydonotcross";

/// What follows every JPEG: the end of the part and the start of the next.
const PART_END: &[u8] = b"\r\n--boundarydonotcross\r\n";

/// Capture time as `X-Timestamp` gives it: seconds since the Unix epoch with microseconds.
pub fn timestamp(capture_us: u64) -> String {
    format!("{}.{:06}", capture_us / 1_000_000, capture_us % 1_000_000)
}

/// When the part being written was handed to hyper (µs since the Unix epoch; 0: none). hyper
/// asks for the next part only once this one has left its buffer, so a part in flight for
/// longer than the viewer timeout means a viewer that takes nothing.
#[derive(Debug, Default)]
pub struct InFlight(AtomicU64);

impl InFlight {
    fn start(&self) {
        self.0.store(now_us().max(1), Ordering::Relaxed);
    }

    fn clear(&self) {
        self.0.store(0, Ordering::Relaxed);
    }

    /// How long the part in flight has been waiting, if one is.
    pub fn stuck_for(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_micros(now_us().saturating_sub(since))),
        }
    }
}

/// The headers of a live stream, with no body (for HEAD).
pub fn head_response() -> Response<Body> {
    let mut response = Response::new(empty());
    set_headers(&mut response);
    response
}

fn set_headers(response: &mut Response<Body>) {
    let headers = response.headers_mut();
    let content_type = concat!("multipart/x-mixed-replace;boundary=", "boundarydonotcross");
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    // Tells nginx in front not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
}

/// How one viewer's live stream is sent.
pub struct Live {
    /// The layer it wants.
    pub want: Want,
    /// Its socket, for freshness pacing.
    pub link: LinkProbe,
    /// A viewer whose link carries nothing for this long is let go.
    pub stall_after: Duration,
}

/// A live stream for one viewer, who holds `slot` and is listed among the stream's viewers
/// until the body is dropped. Its first part is the cached frame, at once.
pub fn response(
    stream: Arc<Stream>,
    identity: ViewerIdentity,
    live: Live,
    slot: OwnedSemaphorePermit,
    in_flight: Arc<InFlight>,
    shutdown: CancellationToken,
) -> Response<Body> {
    let agent = identity.agent.clone();
    let place = stream.viewers().join(identity);
    let delivery =
        Delivery::new(stream.clone(), place.shared_entry(), live.want, live.link, live.stall_after);
    info!(%agent, viewers = stream.viewers().count(), "http viewer joined");
    let parts = Parts {
        stream,
        delivery,
        place,
        in_flight,
        shutdown,
        first: true,
        written: None,
        head: BytesMut::new(),
        _slot: slot,
    };
    let body = StreamBody::new(stream::unfold(parts, Parts::next));
    let mut response = Response::new(body.boxed_unsync());
    set_headers(&mut response);
    response
}

/// The state behind one viewer's MJPEG body.
struct Parts {
    stream: Arc<Stream>,
    delivery: Delivery,
    place: ViewerGuard,
    in_flight: Arc<InFlight>,
    shutdown: CancellationToken,
    first: bool,
    /// The frame of the part handed over last.
    written: Option<Picked>,
    /// Where part headers are formatted; reused, so a steady stream allocates little.
    head: BytesMut,
    _slot: OwnedSemaphorePermit,
}

type Next = Option<(Result<hyper::body::Frame<Data>, Infallible>, Parts)>;

impl Parts {
    /// The next part, produced only when hyper asks for it — which it does once the previous
    /// part has left its write buffer. Waits for a frame newer than the last one sent; ends
    /// the body on shutdown or when the stream goes away.
    async fn next(mut self) -> Next {
        self.in_flight.clear();
        if let Some(picked) = self.written.take() {
            self.delivery.sent(&picked, picked.frame.payload().len());
        }
        loop {
            let ready = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return None,
                ready = self.delivery.ready() => ready,
            };
            if let Err(err) = ready {
                info!(%err, "http viewer's stream ends");
                return None;
            }
            let Some(picked) = self.delivery.pick() else { continue };
            // Only JPEG can go out as image/jpeg; a relay forwards other encodings untouched.
            if picked.frame.header().encoding != Encoding::Jpeg {
                continue;
            }
            let data = self.part(&picked.frame);
            self.written = Some(picked);
            self.in_flight.start();
            return Some((Ok(hyper::body::Frame::data(data)), self));
        }
    }

    fn part(&mut self, frame: &Frame) -> Data {
        use std::fmt::Write;
        let header = frame.header();
        if self.first {
            self.first = false;
            self.head.extend_from_slice(b"--boundarydonotcross\r\n");
        }
        let _ = write!(
            Writer(&mut self.head),
            "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}\r\n\
             X-Frame-Seq: {}\r\n\r\n",
            frame.payload().len(),
            timestamp(header.capture_us),
            header.seq,
        );
        let head = self.head.split().freeze();
        head.chain(frame.payload().clone()).chain(Bytes::from_static(PART_END))
    }
}

impl Drop for Parts {
    fn drop(&mut self) {
        let frames = self.place.entry().frames_sent();
        let viewers = self.stream.viewers().count().saturating_sub(1);
        info!(frames, viewers, "http viewer left");
    }
}

/// `fmt::Write` into a `BytesMut`.
struct Writer<'a>(&'a mut BytesMut);

impl std::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_microseconds() {
        assert_eq!(timestamp(1_700_000_000_123_456), "1700000000.123456");
        assert_eq!(timestamp(5), "0.000005");
    }

    #[test]
    fn a_part_is_header_shared_payload_and_boundary() {
        use framing::FrameHeader;
        let stream = Arc::new(Stream::with_default_limit("t"));
        let header = FrameHeader {
            seq: 9,
            capture_us: 1_500_000,
            encoding: Encoding::Jpeg,
            width: 1,
            height: 1,
        };
        let payload = Bytes::from_static(b"\xff\xd8jpeg\xff\xd9");
        let frame = Frame::new(header, b"", payload.clone());
        let identity = ViewerIdentity {
            peer: ([127, 0, 0, 1], 1).into(),
            protocol: crate::Protocol::Http,
            agent: String::new(),
            name: String::new(),
        };
        let place = stream.viewers().join(identity);
        let delivery = Delivery::new(
            stream.clone(),
            place.shared_entry(),
            Want::Top,
            LinkProbe::none(),
            Duration::from_secs(1),
        );
        let mut parts = Parts {
            delivery,
            place,
            stream: stream.clone(),
            in_flight: Arc::default(),
            shutdown: CancellationToken::new(),
            first: true,
            written: None,
            head: BytesMut::new(),
            _slot: Arc::new(tokio::sync::Semaphore::new(1)).try_acquire_owned().expect("permit"),
        };
        let mut data = parts.part(&frame);
        assert_eq!(data.first_ref().last_ref().as_ptr(), payload.as_ptr(), "the JPEG is shared");
        let bytes = data.copy_to_bytes(data.remaining());
        let expected: &[u8] = b"--boundarydonotcross\r\nContent-Type: image/jpeg\r\n\
            Content-Length: 8\r\nX-Timestamp: 1.500000\r\nX-Frame-Seq: 9\r\n\r\n\xff\xd8jpeg\xff\xd9\
            \r\n--boundarydonotcross\r\n";
        assert_eq!(&bytes[..], expected);
        let second = parts.part(&frame);
        assert!(second.first_ref().first_ref().starts_with(b"Content-Type"), "one boundary only");
    }
}

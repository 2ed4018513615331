//! The viewer window: the newest frame, scaled to the window with its aspect ratio kept, and
//! the stream's health drawn on the picture and in the title: fps, frame age and resolution
//! over live video; "waiting for video" or "source offline" over a dimmed picture otherwise.
//!
//! minifb must own the main thread, so the network runs on a small tokio runtime beside it
//! and hands over only the newest frame through a watch channel: when decoding or drawing
//! falls behind, old frames are skipped, never queued.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use font8x8::legacy::BASIC_LEGACY;
use framing::Frame;
use minifb::{InputCallback, Key, ScaleMode, Window, WindowOptions};
use relay::SubscribeOptions;
use relay::clock::age_ms;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::decode::Decoder;
use crate::record::Recorder;
use crate::send::{self, Messenger, Once, Sending};
use relay::link::{Event, Link};

/// A frame older than this on screen means the source is offline, not just slow.
const STALE_AFTER: Duration = Duration::from_secs(2);

/// How often the numbers on screen change: faster would flicker unreadably.
const CAPTION_EVERY: Duration = Duration::from_millis(500);

/// The window's size before the first frame, and the size of the "no video" screen.
const START_SIZE: (usize, usize) = (640, 480);

/// What the window does.
#[derive(Debug, Clone)]
pub struct Options {
    /// How to dial.
    pub subscribe: SubscribeOptions,
    /// Redial when the server goes away (otherwise stop with an error).
    pub reconnect: bool,
    /// Write every received JPEG, untouched, to this MJPEG file (metadata beside it).
    pub record: Option<PathBuf>,
    /// Messages to send the source.
    pub send: Sending,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            subscribe: crate::subscribe_options(),
            reconnect: true,
            record: None,
            send: Sending::default(),
        }
    }
}

/// What the network side tells the window.
#[derive(Debug, Clone)]
enum Feed {
    Connecting,
    Connected,
    Frame(Frame),
    Lost(String),
    Failed(String),
}

/// Says whether a display is reachable, so that a headless machine gets a clear message
/// instead of a toolkit error.
pub fn display_available() -> bool {
    if cfg!(target_os = "linux") || cfg!(target_os = "freebsd") {
        std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
    } else {
        true
    }
}

/// Shows the stream from `addr` until the window is closed or `q`/Esc is pressed.
pub fn run(addr: &str, options: Options) -> anyhow::Result<()> {
    anyhow::ensure!(
        display_available(),
        "no display found (DISPLAY is not set); run with --headless to receive without a window"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("could not start the network runtime")?;
    let recorder = options.record.as_deref().map(Recorder::create).transpose()?;
    let shutdown = CancellationToken::new();
    let (feed_tx, mut feed) = watch::channel(Feed::Connecting);
    let link = Link::new(addr, options.subscribe, options.reconnect);
    let messenger = Messenger::new(&link);
    if options.send.stdin {
        messenger.send_stdin().context("could not start reading stdin")?;
    }
    let once = Once::new(options.send.once);
    let pumping =
        runtime.spawn(pump(link, recorder, (messenger.clone(), once), feed_tx, shutdown.clone()));

    let window_options = WindowOptions {
        resize: true,
        scale_mode: ScaleMode::AspectRatioStretch,
        ..WindowOptions::default()
    };
    let mut window =
        Window::new(&format!("dronecast — {addr}"), START_SIZE.0, START_SIZE.1, window_options)
            .context("could not open a window (is the display reachable?); try --headless")?;
    // Pacing: update_with_buffer sleeps to hold this rate, so an idle window stays cool
    // (a few % of a core) while a 30 fps stream still gets every frame on screen promptly.
    window.set_target_fps(60);
    let quit = Arc::new(AtomicBool::new(false));
    window.set_input_callback(Box::new(QuitKeys(quit.clone())));

    let mut view = View::new(addr);
    let mut outcome = Ok(());
    while window.is_open() && !quit.load(Ordering::Relaxed) {
        // Not `feed.has_changed()`: it errs once the sender is gone, which would hide the
        // `Failed` that the network task sends just before it ends.
        let news = {
            let seen = feed.borrow_and_update();
            seen.has_changed().then(|| seen.clone())
        };
        match news {
            None => {}
            Some(Feed::Frame(frame)) => view.set_frame(&frame),
            Some(Feed::Connecting) => view.set_link(LinkState::Connecting),
            Some(Feed::Connected) => view.set_link(LinkState::Connected),
            Some(Feed::Lost(why)) => view.set_link(LinkState::Lost(why)),
            Some(Feed::Failed(why)) => {
                outcome = Err(anyhow::anyhow!(why));
                break;
            }
        }
        if let Some(title) = view.tick() {
            window.set_title(&title);
        }
        window
            .update_with_buffer(&view.screen, view.width, view.height)
            .context("could not draw the window")?;
    }
    shutdown.cancel();
    // Let the pump say goodbye and flush the recording before the runtime goes.
    let pumped =
        runtime.block_on(async { tokio::time::timeout(Duration::from_secs(2), pumping).await });
    runtime.shutdown_timeout(Duration::from_millis(500));
    outcome?;
    match pumped {
        Ok(Ok(result)) => result,
        Ok(Err(err)) => Err(anyhow::anyhow!("network task failed: {err}")),
        Err(_) => Err(anyhow::anyhow!("network task did not stop")),
    }
}

/// Catches `q` and Esc from the input callback, which sees every key event: `is_key_down`
/// would miss a tap that is pressed and released between two updates.
struct QuitKeys(Arc<AtomicBool>);

impl InputCallback for QuitKeys {
    fn add_char(&mut self, c: u32) {
        if c == u32::from('q') || c == u32::from('Q') || c == 0x1b {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    fn set_key_state(&mut self, key: Key, down: bool) {
        if down && matches!(key, Key::Q | Key::Escape) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Moves events from the link to the window (and frames to the recording) until shutdown;
/// sends the `--send` messages once connected.
async fn pump(
    mut link: Link,
    mut recorder: Option<Recorder>,
    (messenger, mut once): (Messenger, Once),
    feed: watch::Sender<Feed>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = link.next() => event,
        };
        let message = match event {
            Ok(Event::Frame(frame, _)) => {
                if let Some(recorder) = recorder.as_mut() {
                    if let Err(err) = recorder.write(&frame) {
                        feed.send_replace(Feed::Failed(format!("{err:#}")));
                        return Err(err);
                    }
                }
                Feed::Frame(frame)
            }
            Ok(Event::Connected(_)) => {
                once.connected(&messenger);
                Feed::Connected
            }
            Ok(Event::Lost(why)) => Feed::Lost(why),
            Err(err) => {
                feed.send_replace(Feed::Failed(format!("{err:#}")));
                return Ok(());
            }
        };
        feed.send_replace(message);
    }
    send::drain(&mut link, &messenger).await;
    link.close().await;
    recorder.map_or(Ok(()), Recorder::finish)
}

/// The connection, as far as the window cares.
#[derive(Debug)]
enum LinkState {
    Connecting,
    Connected,
    Lost(String),
}

/// The words on screen.
#[derive(Debug)]
enum Caption {
    /// Live video: one line in the top-right corner.
    Live { fps: f64, age_ms: f64, width: usize, height: usize },
    /// No live video: a headline in the middle of a dimmed picture, a detail line below.
    Idle { headline: &'static str, detail: String },
}

/// What is on screen, and the numbers behind it.
struct View {
    addr: String,
    decoder: Decoder,
    /// The last decoded frame (dark grey before the first), `width` × `height`.
    picture: Vec<u32>,
    width: usize,
    height: usize,
    /// `picture` with the caption drawn over it: what the window shows.
    screen: Vec<u32>,
    link: LinkState,
    /// When the last decoded frame arrived, and its capture time on the drone's clock.
    last_frame: Option<(Instant, u64)>,
    /// When the last frame arrived, decoded or not.
    last_arrival: Option<Instant>,
    caption: Caption,
    caption_at: Instant,
    shown: u32,
    fps: f64,
    counted_since: Instant,
}

impl View {
    fn new(addr: &str) -> View {
        let (width, height) = START_SIZE;
        let now = Instant::now();
        let picture = vec![0x0040_4040; width * height];
        View {
            addr: addr.to_owned(),
            decoder: Decoder::default(),
            screen: picture.clone(),
            picture,
            width,
            height,
            link: LinkState::Connecting,
            last_frame: None,
            last_arrival: None,
            caption: Caption::Idle { headline: "", detail: String::new() },
            caption_at: now - CAPTION_EVERY,
            shown: 0,
            fps: 0.0,
            counted_since: now,
        }
    }

    fn set_frame(&mut self, frame: &Frame) {
        self.last_arrival = Some(Instant::now());
        // One that does not decode is skipped (and logged once per burst): the last good
        // picture stays.
        let Some(picture) = self.decoder.decode_frame(frame) else { return };
        self.width = picture.width as usize;
        self.height = picture.height as usize;
        self.picture.clear();
        self.picture.extend(
            picture
                .rgb
                .chunks_exact(3)
                .map(|p| (u32::from(p[0]) << 16) | (u32::from(p[1]) << 8) | u32::from(p[2])),
        );
        self.link = LinkState::Connected;
        self.last_frame = Some((Instant::now(), frame.header().capture_us));
        self.shown += 1;
        if matches!(self.caption, Caption::Idle { .. }) {
            // Video is back: drop the "no video" caption now, not at the next update.
            self.caption_at = Instant::now() - CAPTION_EVERY;
        }
        self.compose();
    }

    fn set_link(&mut self, link: LinkState) {
        self.link = link;
        // Say so at once rather than at the next regular caption update.
        self.caption_at = Instant::now() - CAPTION_EVERY;
    }

    /// Renews the caption twice a second (the fps, the age, a source gone quiet) and
    /// returns the new title when it did.
    fn tick(&mut self) -> Option<String> {
        let now = Instant::now();
        if now.duration_since(self.caption_at) < CAPTION_EVERY {
            return None;
        }
        self.caption_at = now;
        let span = now.duration_since(self.counted_since).as_secs_f64();
        if span >= 1.0 {
            self.fps = f64::from(self.shown) / span;
            self.shown = 0;
            self.counted_since = now;
        }
        let fresh = self.last_frame.filter(|(at, _)| now.duration_since(*at) <= STALE_AFTER);
        self.caption = match fresh {
            Some((_, capture_us)) if matches!(self.link, LinkState::Connected) => Caption::Live {
                fps: self.fps,
                age_ms: age_ms(capture_us),
                width: self.width,
                height: self.height,
            },
            _ => self.idle_caption(now),
        };
        self.compose();
        Some(match &self.caption {
            Caption::Live { fps, age_ms, width, height } => format!(
                "dronecast — {} — {fps:.1} fps — age {age_ms:.0} ms — {width}x{height}",
                self.addr
            ),
            Caption::Idle { headline, detail } => {
                format!("dronecast — {} — {headline} — {detail}", self.addr)
            }
        })
    }

    /// Says why there is no live video, and how old the picture is.
    fn idle_caption(&self, now: Instant) -> Caption {
        let link = match &self.link {
            LinkState::Connecting => format!("connecting to {}", self.addr),
            LinkState::Connected => format!("connected to {}", self.addr),
            LinkState::Lost(why) => format!("reconnecting ({why})"),
        };
        let arriving = self.last_arrival.is_some_and(|at| now.duration_since(at) <= STALE_AFTER);
        let ago = |at: Instant| now.duration_since(at).as_secs_f64();
        match self.last_frame {
            // Frames come, but none decodes: say so, not "offline" (the log says why).
            _ if arriving && matches!(self.link, LinkState::Connected) => Caption::Idle {
                headline: "video does not decode",
                detail: match self.last_frame {
                    Some((at, _)) => format!("last good frame {:.0} s ago; see the log", ago(at)),
                    None => "no good frame yet; see the log".to_owned(),
                },
            },
            None => Caption::Idle { headline: "waiting for video", detail: link },
            Some((at, _)) => Caption::Idle {
                headline: "source offline",
                detail: format!("last frame {:.0} s ago; {link}", ago(at)),
            },
        }
    }

    /// Redraws `screen`: the picture, with the caption over it.
    fn compose(&mut self) {
        let (width, height) = (self.width, self.height);
        // Text keeps about the same size on screen whatever the stream's resolution.
        let scale = (height / 480).max(1);
        self.screen.clear();
        match &self.caption {
            Caption::Live { fps, age_ms, .. } => {
                self.screen.extend_from_slice(&self.picture);
                let line = format!("{fps:.1} fps  age {age_ms:.0} ms  {width}x{height}");
                let x = width.saturating_sub(text_width(&line, scale) + 2 * scale);
                draw_text(&mut self.screen, width, (x, 2 * scale), scale, &line);
            }
            Caption::Idle { headline, detail } => {
                // A frozen picture must not pass for live video.
                self.screen.extend(self.picture.iter().map(|p| (p >> 2) & 0x003f_3f3f));
                let big = 2 * scale;
                let y = (height / 2).saturating_sub(TEXT_HEIGHT * big);
                let centre = |text: &str, scale| width.saturating_sub(text_width(text, scale)) / 2;
                draw_text(&mut self.screen, width, (centre(headline, big), y), big, headline);
                let y = y + (TEXT_HEIGHT + 1) * big;
                draw_text(&mut self.screen, width, (centre(detail, scale), y), scale, detail);
            }
        }
    }
}

/// Height of a line of text in font pixels: 8 for the glyphs, one above and one below.
const TEXT_HEIGHT: usize = 10;

/// Width in screen pixels of `text` drawn by [`draw_text`].
fn text_width(text: &str, scale: usize) -> usize {
    (text.chars().count() * 8 + 2) * scale
}

/// Draws `text` in white on a black plate, `scale` screen pixels to a font pixel, with the
/// plate's top-left corner at `at`; clipped to the buffer. Non-ASCII shows as `?`.
fn draw_text(buf: &mut [u32], width: usize, at: (usize, usize), scale: usize, text: &str) {
    let glyphs: Vec<[u8; 8]> =
        text.chars().map(|c| BASIC_LEGACY[if c.is_ascii() { c as usize } else { 0x3f }]).collect();
    let height = buf.len() / width;
    let (x0, y0) = at;
    for y in y0..(y0 + TEXT_HEIGHT * scale).min(height) {
        let row = (y - y0) / scale;
        for x in x0..(x0 + text_width(text, scale)).min(width) {
            let col = (x - x0) / scale;
            // Font pixels: a one-pixel margin, then 8×8 glyphs with bit 0 leftmost.
            let lit = (1..=8).contains(&row)
                && col >= 1
                && glyphs
                    .get((col - 1) / 8)
                    .is_some_and(|g| g[row - 1] >> ((col - 1) % 8) & 1 == 1);
            buf[y * width + x] = if lit { 0x00ff_ffff } else { 0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_drawn_on_a_plate_and_clipped() {
        let (width, height) = (40, 12);
        let mut buf = vec![0x0012_3456; width * height];
        // "I" is a vertical stroke; the plate is 10×10 at scale 1; half of it falls off.
        draw_text(&mut buf, width, (35, 1), 1, "I");
        let lit = buf.iter().filter(|&&p| p == 0x00ff_ffff).count();
        let plate = buf.iter().filter(|&&p| p != 0x0012_3456).count();
        assert!(lit > 0, "the glyph is drawn");
        assert_eq!(plate, 5 * 10, "only the visible part of the plate is drawn");
        assert_eq!(buf[0], 0x0012_3456, "nothing outside the plate changes");
    }

    fn frame(seq: u64, (width, height): (u32, u32), jpeg: Vec<u8>) -> Frame {
        let encoding = framing::Encoding::Jpeg;
        let header = framing::FrameHeader { seq, capture_us: 0, encoding, width, height };
        Frame::new(header, b"", bytes::Bytes::from(jpeg))
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let picture =
            image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg).encode_image(&picture).expect("encodes");
        jpeg
    }

    #[test]
    fn frames_that_do_not_decode_leave_the_last_picture_and_say_so() {
        let mut view = View::new("127.0.0.1:9");
        view.set_link(LinkState::Connected);
        view.set_frame(&frame(0, (32, 16), jpeg(32, 16)));
        let picture = view.picture.clone();
        // Header and JPEG disagree; then a header above the maximum.
        view.set_frame(&frame(1, (32, 16), jpeg(16, 16)));
        view.set_frame(&frame(2, (60_000, 60_000), jpeg(16, 16)));
        assert_eq!((view.width, view.height), (32, 16));
        assert!(view.picture == picture, "the picture changed");

        // Three seconds of frames that do not decode: not "source offline", and not live.
        let three_s_ago = Instant::now().checked_sub(Duration::from_secs(3)).expect("uptime");
        view.last_frame = view.last_frame.map(|(_, capture)| (three_s_ago, capture));
        view.set_link(LinkState::Connected);
        let title = view.tick().expect("a new caption");
        assert!(title.contains("video does not decode — last good frame 3 s ago"), "{title}");
    }

    #[test]
    fn text_width_counts_characters_not_bytes() {
        assert_eq!(text_width("ab", 1), 18);
        assert_eq!(text_width("é", 2), 20);
    }
}

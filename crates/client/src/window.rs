//! The viewer window: the newest frame, scaled to the window with its aspect ratio kept, and
//! the stream's health (fps, frame age, resolution, or why there is no picture) in the title.
//!
//! minifb must own the main thread, so the network runs on a small tokio runtime beside it
//! and hands over only the newest frame through a watch channel: when decoding or drawing
//! falls behind, old frames are skipped, never queued.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use framing::Frame;
use minifb::{InputCallback, Key, ScaleMode, Window, WindowOptions};
use relay::SubscribeOptions;
use relay::clock::age_ms;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::decode::Decoder;
use crate::link::{Event, Link};

/// A frame older than this on screen means the source is offline, not just slow.
const STALE_AFTER: Duration = Duration::from_secs(2);

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
pub fn run(addr: &str, subscribe: SubscribeOptions, reconnect: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        display_available(),
        "no display found (DISPLAY is not set); run with --headless to receive without a window"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("could not start the network runtime")?;
    let shutdown = CancellationToken::new();
    let (feed_tx, mut feed) = watch::channel(Feed::Connecting);
    runtime.spawn(pump(addr.to_owned(), subscribe, reconnect, feed_tx, shutdown.clone()));

    let options = WindowOptions {
        resize: true,
        scale_mode: ScaleMode::AspectRatioStretch,
        ..WindowOptions::default()
    };
    let mut window = Window::new(&format!("dronecast — {addr}"), 640, 480, options)
        .context("could not open a window (is the display reachable?); try --headless")?;
    // Pacing: minifb sleeps in update() to hold this rate, so an idle window stays cool.
    window.set_target_fps(60);
    let quit = Arc::new(AtomicBool::new(false));
    window.set_input_callback(Box::new(QuitKeys(quit.clone())));

    let mut view = View::new(addr);
    let mut outcome = Ok(());
    while window.is_open() && !quit.load(Ordering::Relaxed) {
        if feed.has_changed().unwrap_or(false) {
            match feed.borrow_and_update().clone() {
                Feed::Frame(frame) => view.show(&frame),
                Feed::Connecting => view.status = "connecting".into(),
                Feed::Connected => view.status = "waiting for video".into(),
                Feed::Lost(why) => view.status = format!("reconnecting ({why})"),
                Feed::Failed(why) => {
                    outcome = Err(anyhow::anyhow!(why));
                    break;
                }
            }
        }
        if window.is_key_down(Key::Escape) || window.is_key_down(Key::Q) {
            break;
        }
        view.tick(&mut window);
        window
            .update_with_buffer(&view.pixels, view.width, view.height)
            .context("could not draw the window")?;
    }
    shutdown.cancel();
    runtime.shutdown_timeout(Duration::from_millis(500));
    outcome
}

/// Catches `q` and Esc from the input callback: `is_key_down` alone misses a tap that is
/// pressed and released between two updates.
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

async fn pump(
    addr: String,
    subscribe: SubscribeOptions,
    reconnect: bool,
    feed: watch::Sender<Feed>,
    shutdown: CancellationToken,
) {
    let mut link = Link::new(&addr, subscribe, reconnect);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => break,
            event = link.next() => event,
        };
        let message = match event {
            Ok(Event::Frame(frame, _)) => Feed::Frame(frame),
            Ok(Event::Connected(_)) => Feed::Connected,
            Ok(Event::Lost(why)) => Feed::Lost(why),
            Err(err) => {
                feed.send_replace(Feed::Failed(format!("{err:#}")));
                return;
            }
        };
        feed.send_replace(message);
    }
    link.close().await;
}

/// What is on screen, and the numbers for the title.
struct View {
    addr: String,
    decoder: Decoder,
    pixels: Vec<u32>,
    width: usize,
    height: usize,
    status: String,
    last_frame: Option<(Instant, u64)>,
    shown: u32,
    fps: f64,
    window_start: Instant,
    title_at: Instant,
    dimmed: bool,
}

impl View {
    fn new(addr: &str) -> View {
        let (width, height) = (640, 480);
        View {
            addr: addr.to_owned(),
            decoder: Decoder::default(),
            pixels: vec![0x0020_2020; width * height],
            width,
            height,
            status: "connecting".into(),
            last_frame: None,
            shown: 0,
            fps: 0.0,
            window_start: Instant::now(),
            title_at: Instant::now() - Duration::from_secs(1),
            dimmed: false,
        }
    }

    fn show(&mut self, frame: &Frame) {
        let picture = match self.decoder.decode(frame.payload()) {
            Ok(picture) => picture,
            Err(err) => {
                tracing::warn!(%err, seq = frame.header().seq, "could not decode frame");
                return;
            }
        };
        self.width = picture.width as usize;
        self.height = picture.height as usize;
        self.pixels.clear();
        self.pixels.extend(picture.rgb.chunks_exact(3).map(|p| {
            (u32::from(p[0]) << 16) | (u32::from(p[1]) << 8) | u32::from(p[2])
        }));
        self.last_frame = Some((Instant::now(), frame.header().capture_us));
        self.shown += 1;
        self.dimmed = false;
    }

    /// Updates the title twice a second, and dims a picture that has gone stale.
    fn tick(&mut self, window: &mut Window) {
        let now = Instant::now();
        if now.duration_since(self.title_at) < Duration::from_millis(500) {
            return;
        }
        self.title_at = now;
        let span = now.duration_since(self.window_start).as_secs_f64();
        if span >= 1.0 {
            self.fps = f64::from(self.shown) / span;
            self.shown = 0;
            self.window_start = now;
        }
        let title = match self.last_frame {
            None => format!("dronecast — {} — {}", self.addr, self.status),
            Some((at, _)) if now.duration_since(at) > STALE_AFTER => {
                if !self.dimmed {
                    // A frozen picture must not pass for live video.
                    for p in &mut self.pixels {
                        *p = (*p >> 2) & 0x003f_3f3f;
                    }
                    self.dimmed = true;
                }
                format!(
                    "dronecast — {} — source offline, last frame {:.0} s ago",
                    self.addr,
                    now.duration_since(at).as_secs_f64()
                )
            }
            Some((_, capture_us)) => format!(
                "dronecast — {} — {:.1} fps — age {:.0} ms — {}x{}",
                self.addr,
                self.fps,
                age_ms(capture_us),
                self.width,
                self.height
            ),
        };
        window.set_title(&title);
    }
}

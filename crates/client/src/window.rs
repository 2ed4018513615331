//! The viewer window: the newest frame, scaled to the window with its aspect ratio kept, and
//! the stream's health drawn on the picture and in the title: fps, frame age and resolution
//! over live video; "waiting for video" or "source offline" over a dimmed picture otherwise.
//! At the bottom, optionally, a line of the newest frame's metadata (`--show-meta`) and what
//! became of the last message sent with a key (`--send-on-key`).
//!
//! minifb must own the main thread, so the network runs on a small tokio runtime beside it
//! and hands over only the newest frame through a watch channel: when decoding or drawing
//! falls behind, old frames are skipped, never queued.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use font8x8::legacy::BASIC_LEGACY;
use framing::Frame;
use minifb::{InputCallback, Key, ScaleMode, Window, WindowOptions};
use relay::SubscribeOptions;
use relay::clock::age_ms;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::decode::Decoder;
use crate::meta::ascii_line;
use crate::record::Recorder;
use crate::send::{self, Messenger, Once, Sending};
use relay::link::{Event, Link};

/// A frame older than this on screen means the source is offline, not just slow.
const STALE_AFTER: Duration = Duration::from_secs(2);

/// How often the numbers on screen change: faster would flicker unreadably.
const CAPTION_EVERY: Duration = Duration::from_millis(500);

/// The window's size before the first frame, and the size of the "no video" screen.
const START_SIZE: (usize, usize) = (640, 480);

/// How long the window says what became of a message sent with a key.
const NOTICE_FOR: Duration = Duration::from_secs(3);

/// Most characters of metadata kept for the bottom line (more never fit on a screen).
const META_CHARS: usize = 512;

/// What the window does.
#[derive(Debug, Clone)]
pub struct Options {
    /// How to dial.
    pub subscribe: SubscribeOptions,
    /// Redial when the server goes away (otherwise stop with an error).
    pub reconnect: bool,
    /// Write every received JPEG, untouched, to this MJPEG file (metadata beside it).
    pub record: Option<PathBuf>,
    /// Show a line of the newest frame's metadata at the bottom.
    pub show_meta: bool,
    /// Messages to send the source.
    pub send: Sending,
    /// Keys that send a message when pressed.
    pub keys: Vec<KeyBinding>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            subscribe: crate::subscribe_options(),
            reconnect: true,
            record: None,
            show_meta: false,
            send: Sending::default(),
            keys: Vec::new(),
        }
    }
}

/// `--send-on-key K=TEXT`: pressing `key` sends `payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBinding {
    /// A letter (lower case) or a digit, other than `q`.
    pub key: char,
    /// What is sent, at most [`framing::message::MAX_PAYLOAD_LEN`] bytes.
    pub payload: Bytes,
}

impl std::str::FromStr for KeyBinding {
    type Err = String;

    /// `m=hello`: a letter or digit other than `q` (which quits), `=`, the text to send.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (key, text) = s.split_once('=').ok_or("must be K=TEXT: a key, `=`, what to send")?;
        let mut chars = key.chars();
        let key = match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
            _ => return Err(format!("'{key}' is not a key: use one letter or digit")),
        };
        if key == 'q' {
            return Err("q quits the window; choose another key".into());
        }
        let payload = send::payload(text)?;
        Ok(KeyBinding { key, payload })
    }
}

/// The minifb key for a letter or digit.
fn key_of(c: char) -> Option<Key> {
    #[rustfmt::skip]
    const LETTERS: [Key; 26] = [
        Key::A, Key::B, Key::C, Key::D, Key::E, Key::F, Key::G, Key::H, Key::I, Key::J, Key::K,
        Key::L, Key::M, Key::N, Key::O, Key::P, Key::Q, Key::R, Key::S, Key::T, Key::U, Key::V,
        Key::W, Key::X, Key::Y, Key::Z,
    ];
    #[rustfmt::skip]
    const DIGITS: [Key; 10] = [
        Key::Key0, Key::Key1, Key::Key2, Key::Key3, Key::Key4, Key::Key5, Key::Key6, Key::Key7,
        Key::Key8, Key::Key9,
    ];
    match c.to_ascii_lowercase() {
        c @ 'a'..='z' => Some(LETTERS[usize::from(c as u8 - b'a')]),
        c @ '0'..='9' => Some(DIGITS[usize::from(c as u8 - b'0')]),
        _ => None,
    }
}

/// The bindings by key; an error when a key is bound twice. The number keys of the keypad
/// send what the digits do.
fn bindings(keys: &[KeyBinding]) -> anyhow::Result<HashMap<Key, Bytes>> {
    let mut map = HashMap::new();
    for binding in keys {
        let key = key_of(binding.key)
            .with_context(|| format!("'{}' is not a letter or digit", binding.key))?;
        anyhow::ensure!(
            map.insert(key, binding.payload.clone()).is_none(),
            "--send-on-key binds {} twice",
            binding.key
        );
        if let Some(pad) = binding.key.to_digit(10).and_then(numpad) {
            map.insert(pad, binding.payload.clone());
        }
    }
    Ok(map)
}

fn numpad(digit: u32) -> Option<Key> {
    #[rustfmt::skip]
    const PAD: [Key; 10] = [
        Key::NumPad0, Key::NumPad1, Key::NumPad2, Key::NumPad3, Key::NumPad4, Key::NumPad5,
        Key::NumPad6, Key::NumPad7, Key::NumPad8, Key::NumPad9,
    ];
    PAD.get(digit as usize).copied()
}

/// What the network side tells the window.
#[derive(Debug, Clone)]
enum Feed {
    Connecting,
    /// Connected to this address.
    Connected(String),
    /// A frame, and the name of its layer when the source makes several.
    Frame(Frame, String),
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

/// Shows the stream from `addr` (or the first that answers of several, separated by commas)
/// until the window is closed or `q`/Esc is pressed.
pub fn run(addr: &str, options: Options) -> anyhow::Result<()> {
    let link = Link::new(addr, options.subscribe.clone(), options.reconnect);
    run_link(link, options)
}

/// Shows the stream that `link` brings (its own addresses and options are used, not
/// [`Options::subscribe`] and [`Options::reconnect`]) until the window is closed or `q`/Esc
/// is pressed. A lost connection, and a failover to another address, shows as
/// "reconnecting (why)" over the dimmed picture: never a dialog.
pub fn run_link(link: Link, options: Options) -> anyhow::Result<()> {
    let addr = link.addrs().collect::<Vec<_>>().join(",");
    let addr = addr.as_str();
    anyhow::ensure!(
        display_available(),
        "no display found (DISPLAY is not set); run with --headless to receive without a window"
    );
    let keys = bindings(&options.keys)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("could not start the network runtime")?;
    let recorder = options.record.as_deref().map(Recorder::create).transpose()?;
    let shutdown = CancellationToken::new();
    let (feed_tx, mut feed) = watch::channel(Feed::Connecting);
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
    let (pressed_tx, pressed) = mpsc::channel();
    let bound = keys.keys().copied().collect();
    window.set_input_callback(Box::new(Keys::new(quit.clone(), bound, pressed_tx)));

    let mut view = View::new(addr);
    view.show_meta = options.show_meta;
    let mut sending: Option<Sent> = None;
    let mut outcome = Ok(());
    while window.is_open() && !quit.load(Ordering::Relaxed) {
        for key in pressed.try_iter() {
            let Some(payload) = keys.get(&key) else { continue };
            let sent = Sent::send(&messenger, payload.clone());
            view.notice(sent.notice());
            sending = Some(sent);
        }
        if let Some(sent) = sending.as_mut() {
            if sent.settle(&messenger) {
                view.notice(sent.notice());
                sending = None;
            }
        }
        // Not `feed.has_changed()`: it errs once the sender is gone, which would hide the
        // `Failed` that the network task sends just before it ends.
        let news = {
            let seen = feed.borrow_and_update();
            seen.has_changed().then(|| seen.clone())
        };
        match news {
            None => {}
            Some(Feed::Frame(frame, layer)) => view.set_frame(&frame, layer),
            Some(Feed::Connecting) => view.set_link(LinkState::Connecting),
            Some(Feed::Connected(addr)) => {
                view.addr = addr;
                view.set_link(LinkState::Connected);
            }
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

/// Catches `q` and Esc, and the keys bound to messages, from the input callback, which sees
/// every key event: `is_key_down` would miss a tap that is pressed and released between two
/// updates.
struct Keys {
    quit: Arc<AtomicBool>,
    bound: HashSet<Key>,
    /// Bound keys now held down: a key sends once per press, not once per auto-repeat.
    down: HashSet<Key>,
    pressed: mpsc::Sender<Key>,
}

impl Keys {
    fn new(quit: Arc<AtomicBool>, bound: HashSet<Key>, pressed: mpsc::Sender<Key>) -> Keys {
        Keys { quit, bound, down: HashSet::new(), pressed }
    }
}

impl InputCallback for Keys {
    fn add_char(&mut self, c: u32) {
        if c == u32::from('q') || c == u32::from('Q') || c == 0x1b {
            self.quit.store(true, Ordering::Relaxed);
        }
    }

    fn set_key_state(&mut self, key: Key, down: bool) {
        if down && matches!(key, Key::Q | Key::Escape) {
            self.quit.store(true, Ordering::Relaxed);
        }
        if !self.bound.contains(&key) {
            return;
        }
        if !down {
            self.down.remove(&key);
        } else if self.down.insert(key) {
            // The window loop, which holds the receiver, outlives the window and its callback.
            let _ = self.pressed.send(key);
        }
    }
}

/// A message sent with a key, followed until it is sent or dropped.
#[derive(Debug)]
struct Sent {
    /// The payload, as the window shows it.
    text: String,
    /// Messages dropped before this one was handed over.
    dropped_before: u64,
    /// `None` while it is on its way.
    went: Option<bool>,
}

impl Sent {
    /// Hands `payload` to the link.
    fn send(messenger: &Messenger, payload: Bytes) -> Sent {
        let text = ascii_line(&payload, META_CHARS);
        let dropped_before = messenger.dropped();
        let went = (!messenger.send(payload)).then_some(false);
        info!(message = %text, "sending the message bound to a key");
        Sent { text, dropped_before, went }
    }

    /// True once the message has gone or been dropped. The link says only how many went and
    /// how many were dropped, in order; a drop meanwhile is taken as this message's (a
    /// message counted as not sent that went is better than the reverse).
    fn settle(&mut self, messenger: &Messenger) -> bool {
        if self.went.is_none() && messenger.pending() == 0 {
            self.went = Some(messenger.dropped() == self.dropped_before);
        }
        self.went.is_some()
    }

    fn notice(&self) -> Notice {
        let verb = match self.went {
            None => "sending",
            Some(true) => "sent",
            Some(false) => "not sent",
        };
        Notice { line: format!("{verb}: {}", self.text), until: Instant::now() + NOTICE_FOR }
    }
}

/// A line at the bottom of the window for a while.
#[derive(Debug, Clone)]
struct Notice {
    line: String,
    until: Instant,
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
                let layer = if link.layer_count() > 1 {
                    link.layer_name(frame.layer())
                } else {
                    String::new()
                };
                Feed::Frame(frame, layer)
            }
            Ok(Event::Connected(_)) => {
                once.connected(&messenger);
                Feed::Connected(link.current().unwrap_or_default().to_owned())
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
    Live { fps: f64, age_ms: f64, width: usize, height: usize, layer: String },
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
    /// Draw [`View::meta_line`] at the bottom.
    show_meta: bool,
    /// The newest frame's metadata, and the same as one line of ASCII.
    meta: Vec<u8>,
    meta_line: String,
    /// What became of the last message sent with a key, drawn above the metadata.
    notice: Option<Notice>,
    /// The layer shown, with how many times it changed, when the source makes several.
    layer: String,
    layers: crate::report::LayerHold,
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
            show_meta: false,
            meta: Vec::new(),
            meta_line: String::new(),
            notice: None,
            layer: String::new(),
            layers: crate::report::LayerHold::default(),
        }
    }

    /// Says `notice` at the bottom until it expires, at once.
    fn notice(&mut self, notice: Notice) {
        self.notice = Some(notice);
        self.caption_at = Instant::now() - CAPTION_EVERY;
        self.compose();
    }

    fn set_frame(&mut self, frame: &Frame, layer: String) {
        self.last_arrival = Some(Instant::now());
        if self.layers.frame(frame.layer()) && self.layer != layer {
            self.layer = layer;
        }
        // The metadata is the frame's, whether or not its picture decodes.
        if self.show_meta && self.meta != frame.meta() {
            self.meta.clear();
            self.meta.extend_from_slice(frame.meta());
            self.meta_line = ascii_line(&self.meta, META_CHARS);
        }
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
        self.notice = self.notice.take().filter(|n| n.until > now);
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
                layer: self.layer_label(),
            },
            _ => self.idle_caption(now),
        };
        self.compose();
        let mut title = match &self.caption {
            Caption::Live { fps, age_ms, width, height, layer } => format!(
                "dronecast — {} — {fps:.1} fps — age {age_ms:.0} ms — {width}x{height}{layer}",
                self.addr
            ),
            Caption::Idle { headline, detail } => {
                format!("dronecast — {} — {headline} — {detail}", self.addr)
            }
        };
        if let Some(notice) = &self.notice {
            title.push_str(" — ");
            title.push_str(&notice.line);
        }
        Some(title)
    }

    /// ` layer qvga (2 switches)` when the source makes several layers, else nothing.
    fn layer_label(&self) -> String {
        match (self.layer.as_str(), self.layers.switches) {
            ("", _) => String::new(),
            (name, 0) => format!(" layer {name}"),
            (name, 1) => format!(" layer {name} (1 switch)"),
            (name, n) => format!(" layer {name} ({n} switches)"),
        }
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
            Caption::Live { fps, age_ms, layer, .. } => {
                self.screen.extend_from_slice(&self.picture);
                let line = format!("{fps:.1} fps  age {age_ms:.0} ms  {width}x{height}{layer}");
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
        // At the bottom: the metadata on the last line, a notice above it.
        let fits = (width / scale).saturating_sub(2) / 8;
        let meta = Some(&self.meta_line).filter(|l| self.show_meta && !l.is_empty());
        let notice = self.notice.as_ref().map(|n| &n.line);
        let mut y = height;
        for line in [meta, notice].into_iter().flatten() {
            y = y.saturating_sub(TEXT_HEIGHT * scale);
            let line = ascii_line(line.as_bytes(), fits);
            draw_text(&mut self.screen, width, (0, y), scale, &line);
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
        view.set_frame(&frame(0, (32, 16), jpeg(32, 16)), String::new());
        let picture = view.picture.clone();
        // Header and JPEG disagree; then a header above the maximum.
        view.set_frame(&frame(1, (32, 16), jpeg(16, 16)), String::new());
        view.set_frame(&frame(2, (60_000, 60_000), jpeg(16, 16)), String::new());
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
    fn key_bindings_are_a_letter_or_digit_and_fit_a_message() {
        let binding = |s: &str| s.parse::<KeyBinding>();
        assert_eq!(binding("M=go home"), Ok(KeyBinding { key: 'm', payload: "go home".into() }));
        assert_eq!(binding("5=a=b").map(|b| b.payload), Ok(Bytes::from_static(b"a=b")));
        assert_eq!(binding("q=x"), Err("q quits the window; choose another key".into()));
        assert!(binding("mm=x").is_err() && binding("m").is_err() && binding("=x").is_err());
        assert!(binding("-=x").is_err() && binding("é=x").is_err());
        assert!(binding(&format!("m={}", "x".repeat(4097))).is_err());
        let twice = ["m=a".parse(), "M=b".parse()].map(|b: Result<KeyBinding, _>| b.expect("ok"));
        let err = bindings(&twice).expect_err("m twice");
        assert_eq!(err.to_string(), "--send-on-key binds m twice");
        let keys = bindings(&["7=x".parse().expect("ok")]).expect("one binding");
        assert!(keys.contains_key(&Key::Key7) && keys.contains_key(&Key::NumPad7));
    }

    /// White pixels in the bottom `rows` rows of the screen.
    fn white_at_bottom(view: &View, rows: usize) -> usize {
        let start = view.screen.len() - rows * view.width;
        view.screen[start..].iter().filter(|&&p| p == 0x00ff_ffff).count()
    }

    #[test]
    fn metadata_and_notices_are_drawn_at_the_bottom() {
        let mut view = View::new("127.0.0.1:9");
        view.set_link(LinkState::Connected);
        let header = framing::FrameHeader {
            seq: 1,
            capture_us: relay::clock::now_us(),
            encoding: framing::Encoding::Jpeg,
            width: 64,
            height: 48,
        };
        let with_meta = Frame::new(header, br#"{"alt":12}"#, jpeg(64, 48).into());
        view.set_frame(&with_meta, String::new());
        assert_eq!(view.meta_line, "", "not kept without --show-meta");
        assert_eq!(white_at_bottom(&view, TEXT_HEIGHT), 0);

        view.show_meta = true;
        view.set_frame(&with_meta, String::new());
        assert_eq!(view.meta_line, r#"{"alt":12}"#);
        assert!(white_at_bottom(&view, TEXT_HEIGHT) > 0, "no metadata line");
        assert_eq!(white_at_bottom(&view, 2 * TEXT_HEIGHT), white_at_bottom(&view, TEXT_HEIGHT));

        let line = "sent: hello".to_owned();
        view.notice(Notice { line, until: Instant::now() + NOTICE_FOR });
        assert!(white_at_bottom(&view, 2 * TEXT_HEIGHT) > white_at_bottom(&view, TEXT_HEIGHT));
        let title = view.tick().expect("a new caption");
        assert!(title.ends_with(" — sent: hello"), "{title}");

        // Expired: gone from the title and the picture.
        view.notice = view.notice.take().map(|n| Notice { until: Instant::now(), ..n });
        view.caption_at = Instant::now() - CAPTION_EVERY;
        let title = view.tick().expect("a new caption");
        assert!(!title.contains("sent"), "{title}");
        assert_eq!(white_at_bottom(&view, 2 * TEXT_HEIGHT), white_at_bottom(&view, TEXT_HEIGHT));
    }

    #[test]
    fn text_width_counts_characters_not_bytes() {
        assert_eq!(text_width("ab", 1), 18);
        assert_eq!(text_width("é", 2), 20);
    }
}

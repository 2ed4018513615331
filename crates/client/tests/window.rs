//! The real `client` binary in a real, virtual X server (Xvfb): its window shows the stream
//! pixel for pixel, keeps the aspect ratio when resized, says "waiting for video" when there
//! is none, quits with status 0 on a quick tap of `q` or Esc, and sends the message bound to
//! a key to the (real) drone.
//!
//! Needs `Xvfb`, `xdotool` and ImageMagick's `import` (Debian: `xvfb xdotool imagemagick`,
//! and `libxcursor1`, which minifb loads). Without them these tests are skipped with a
//! message, unless `DRONECAST_REQUIRE_X11=1` (CI sets it), which makes them fail instead.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use common::{HostileSource, Shot, StdoutLines, peak_rss_kib, start_drone};
use drone::Format;
use drone::source::Source;
use drone::source::pattern::{TestPattern, read_strip};
use image::RgbImage;
use tokio_util::sync::CancellationToken;

/// Upper bound for anything a test waits on; generous for a loaded 2-core CI machine.
const PATIENCE: Duration = Duration::from_secs(20);

/// How long a quit key may take to end the client.
const QUIT_WITHIN: Duration = Duration::from_secs(5);

/// A slow stream, so that the picture rarely changes while a screenshot is taken.
const FPS: u32 = 10;

/// The client's caption line lies within this many rows at the top of a 640×480 picture;
/// the comparison with the sent frame leaves them out.
const CAPTION_ROWS: u32 = 16;

/// Most mean absolute difference, per channel on 0–255, between the window and the frame it
/// claims to show. The client decodes with the same `image` JPEG decoder as this test and
/// Xvfb stores 24-bit colour exactly: the same frame differs by 0.00 (measured), a neighbouring
/// frame by 2.9–3.2 (the bar and the square move ~5 px, the digits change).
const MAX_DIFF: f64 = 1.0;

/// Good, lying, oversized, good, …: two frames in three claim 60000×60000 (see `common`).
const HOSTILE_SCRIPT: &[Shot] = &[Shot::Good, Shot::LyingJpeg, Shot::HugeHeader];

/// Most resident memory the client may ever have used: what issue #8 allows.
const MAX_RSS_KIB: u64 = 64 * 1024;

#[test]
fn window_shows_the_stream_keeps_its_aspect_and_quits_on_q() -> anyhow::Result<()> {
    let Some(x) = Xvfb::start_if_available("stream")? else { return Ok(()) };
    let drone = Drone::start()?;
    let mut client = x.client(drone.addr, &[])?;
    let window = x.window_of(&mut client, drone.addr)?;
    x.wait_for_title(&window, |title| title.contains(" fps"))?;

    let shot = x.screenshot(&window, "")?;
    let n = check_shows_frame(&shot, drone.format)?;

    // Wider than the picture: it must be scaled to the height and centred, bars either side.
    x.run(Command::new("xdotool").args(["windowsize", &window, "960", "360"]))?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let shot = x.screenshot(&window, "-resized")?;
        let checked = check_letterboxed(&shot, n);
        if checked.is_ok() || Instant::now() > deadline {
            checked.context("after `xdotool windowsize 960 360`")?;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    x.run(Command::new("xdotool").args(["key", "--window", &window, "q"]))?;
    client.expect_exit(true)
}

#[test]
fn window_keeps_the_last_good_picture_through_frames_that_claim_60000x60000() -> anyhow::Result<()>
{
    let Some(x) = Xvfb::start_if_available("hostile")? else { return Ok(()) };
    // Ten good frames a second, as in the stream test, with two hostile ones after each.
    let format = Format { fps: 3 * FPS, ..drone::Config::default().format };
    let source = HostileSource::start(format, HOSTILE_SCRIPT, None)?;
    let mut client =
        x.start_client(common::capped(env!("CARGO_BIN_EXE_client")), source.addr, &[])?;
    let window = x.window_of(&mut client, source.addr)?;
    client.wait_for_log("frame did not decode; skipping it")?;
    x.wait_for_title(&window, |title| title.contains(" fps"))?;

    // The picture is a good frame, whole: the hostile ones neither replaced nor spoiled it.
    let shot = x.screenshot(&window, "")?;
    check_shows_frame(&shot, format)?;
    client.ensure_running()?;
    let peak = peak_rss_kib(client.child.id())?;
    println!("peak RSS of the window client: {:.1} MiB", peak as f64 / 1024.0);
    ensure!(peak < MAX_RSS_KIB, "client's peak RSS was {:.1} MiB", peak as f64 / 1024.0);

    x.run(Command::new("xdotool").args(["key", "--window", &window, "q"]))?;
    client.expect_exit(true)
}

#[test]
fn waiting_window_says_so_and_quits_on_esc() -> anyhow::Result<()> {
    let Some(x) = Xvfb::start_if_available("waiting")? else { return Ok(()) };
    let nobody = unused_addr()?;
    let mut client = x.client(nobody, &[])?;
    let window = x.window_of(&mut client, nobody)?;
    x.wait_for_title(&window, |title| title.contains("waiting for video"))?;

    // The state is drawn in the picture, not only in the title: a dark screen with white
    // text across the middle.
    let shot = x.screenshot(&window, "")?;
    let (w, h) = shot.dimensions();
    let white = |rows: std::ops::Range<u32>| {
        rows.flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| shot.get_pixel(x, y).0 == [255, 255, 255])
            .count()
    };
    ensure!(white(h / 3..2 * h / 3) > 500, "no text in the middle of the waiting window");
    ensure!(white(0..h / 3) + white(2 * h / 3..h) == 0, "the waiting window is not dark");

    x.run(Command::new("xdotool").args(["key", "--window", &window, "Escape"]))?;
    client.expect_exit(true)
}

#[test]
fn a_key_sends_its_message_and_the_window_says_so() -> anyhow::Result<()> {
    let Some(x) = Xvfb::start_if_available("send-on-key")? else { return Ok(()) };
    let (mut drone, addr) =
        start_drone(&["--messages-to", "stdout"], Stdio::null(), Stdio::piped())?;
    let messages = StdoutLines::of(&mut drone)?;
    let flags = ["--send-on-key", "m=hello", "--send-on-key", "7=seven", "--name", "pilot-2"];
    let mut client = x.client(addr, &flags)?;
    let window = x.window_of(&mut client, addr)?;
    x.wait_for_title(&window, |title| title.contains(" fps"))?;

    x.run(Command::new("xdotool").args(["key", "--window", &window, "m"]))?;
    let line = messages.expect()?;
    let message: serde_json::Value = serde_json::from_str(&line)?;
    ensure!(message["payload"] == "hello" && message["name"] == "pilot-2", "{line}");
    // The window says so, in the picture and in the title.
    x.wait_for_title(&window, |title| title.trim_end().ends_with(" — sent: hello"))?;

    x.run(Command::new("xdotool").args(["key", "--window", &window, "q"]))?;
    client.expect_exit(true)?;
    ensure!(client.log().contains("sending the message bound to a key"), "{}", client.log());
    Ok(())
}

#[test]
fn window_fails_when_the_link_gives_up() -> anyhow::Result<()> {
    let Some(x) = Xvfb::start_if_available("gives-up")? else { return Ok(()) };
    let mut client = x.client(unused_addr()?, &["--exit-on-disconnect"])?;
    client.expect_exit(false)?;
    let log = client.log();
    ensure!(log.contains("could not connect"), "unexpected error: {log}");
    Ok(())
}

#[test]
fn without_a_display_the_client_points_to_headless() -> anyhow::Result<()> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client"));
    command.arg("127.0.0.1:9").env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    let out = output_within(&mut command)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "exited with {} without a display", out.status);
    ensure!(stderr.contains("--headless"), "the error does not mention --headless: {stderr}");
    Ok(())
}

/// Checks that `shot`, the whole window at the stream's own size, shows a test-pattern frame
/// exactly: reads the frame number from its strip, draws that frame again, and compares.
/// Returns the frame number.
fn check_shows_frame(shot: &RgbImage, format: Format) -> anyhow::Result<u64> {
    let (w, h) = shot.dimensions();
    ensure!((w, h) == (format.width, format.height), "window is {w}x{h}, not the stream's size");
    let n = read_strip(shot.as_raw(), w, h).context("no frame-number strip in the window")?;
    ensure!(n < 100_000, "implausible frame number {n}: the strip is not where it should be");
    let mut pattern = TestPattern::new(format)?;
    let mut jpeg = pattern.next_frame()?.jpeg;
    for _ in 0..n {
        jpeg = pattern.next_frame()?.jpeg;
    }
    let sent = image::load_from_memory(&jpeg)?.to_rgb8();

    let diff = |cols: std::ops::Range<u32>, rows: std::ops::Range<u32>| {
        let (mut sum, mut count) = (0u64, 0u64);
        for y in rows {
            for x in cols.clone() {
                let (a, b) = (shot.get_pixel(x, y).0, sent.get_pixel(x, y).0);
                sum += a.iter().zip(b).map(|(&a, b)| u64::from(a.abs_diff(b))).sum::<u64>();
                count += 3;
            }
        }
        sum as f64 / count as f64
    };
    let picture = diff(0..w, CAPTION_ROWS..h);
    ensure!(picture < MAX_DIFF, "window differs from frame {n} by {picture:.2} on average");
    let caption = diff(w / 2..w, 0..CAPTION_ROWS);
    ensure!(caption > 10.0, "no caption in the top-right corner (differs by {caption:.2})");
    Ok(n)
}

/// Checks that a 960×360 window shows the 4:3 picture as 480×360 in the middle, black bars
/// either side, and that the picture is the stream at frame `at_least` or later.
fn check_letterboxed(shot: &RgbImage, at_least: u64) -> anyhow::Result<()> {
    ensure!(shot.dimensions() == (960, 360), "window is {:?}", shot.dimensions());
    let bars = [0..240, 720..960]
        .into_iter()
        .flat_map(|cols| (0..360).flat_map(move |y| cols.clone().map(move |x| (x, y))))
        .filter(|&(x, y)| shot.get_pixel(x, y).0 != [0, 0, 0])
        .count();
    ensure!(bars == 0, "{bars} pixels of the side bars are not black");
    let middle = image::imageops::crop_imm(shot, 240, 0, 480, 360).to_image();
    let n = read_strip(middle.as_raw(), 480, 360).context("no strip")?;
    ensure!((at_least..at_least + 10_000).contains(&n), "strip reads {n} in the scaled picture");
    Ok(())
}

/// A loopback address where nothing listens.
fn unused_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A virtual X server for one test, stopped on drop.
struct Xvfb {
    child: Child,
    display: String,
    /// Names the test's screenshots and logs.
    test: &'static str,
}

impl Xvfb {
    /// Starts Xvfb; `None` (with a message) when the tools are missing and not required.
    fn start_if_available(test: &'static str) -> anyhow::Result<Option<Xvfb>> {
        let missing: Vec<_> =
            ["Xvfb", "xdotool", "import"].into_iter().filter(|tool| !on_path(tool)).collect();
        if !missing.is_empty() {
            let why = format!(
                "{} not found (apt-get install xvfb xdotool imagemagick)",
                missing.join(", ")
            );
            if std::env::var_os("DRONECAST_REQUIRE_X11").is_some_and(|v| v == "1") {
                bail!("DRONECAST_REQUIRE_X11=1 but {why}");
            }
            // Straight to stderr: the test harness would swallow an `eprintln!`.
            let _ = writeln!(std::io::stderr(), "SKIPPED: window test needs an X server: {why}");
            return Ok(None);
        }
        let log = scratch(test, "xvfb.log");
        // -noreset: by default the server resets whenever its last client leaves, and a client
        // connecting during that reset fails (XOpenDisplay); the tests' xdotool calls come and
        // go while the client under test may still be starting.
        let child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1920x1080x24", "-nolisten", "tcp"])
            .arg("-noreset")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log)?)
            .spawn()
            .context("could not start Xvfb")?;
        let mut xvfb = Xvfb { child, display: String::new(), test };
        // Xvfb picks a free display and writes its number to the -displayfd once it accepts
        // connections: the readiness signal.
        let stdout = xvfb.child.stdout.take().context("no pipe from Xvfb")?;
        let mut number = String::new();
        BufReader::new(stdout).read_line(&mut number)?;
        ensure!(
            !number.trim().is_empty(),
            "Xvfb did not start; see {}: {}",
            log.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        xvfb.display = format!(":{}", number.trim());
        Ok(Some(xvfb))
    }

    /// Starts the client on this display, watching `addr`.
    fn client(&self, addr: SocketAddr, args: &[&str]) -> anyhow::Result<Client> {
        self.start_client(Command::new(env!("CARGO_BIN_EXE_client")), addr, args)
    }

    /// Starts `command` (the client, maybe wrapped) on this display, watching `addr`.
    fn start_client(
        &self,
        mut command: Command,
        addr: SocketAddr,
        args: &[&str],
    ) -> anyhow::Result<Client> {
        let log = scratch(self.test, "client.log");
        let child = command
            .arg(addr.to_string())
            .args(args)
            .env("DISPLAY", &self.display)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()
            .context("could not start the client")?;
        Ok(Client { child, log })
    }

    /// Runs an X tool against this display, returning its output.
    fn run(&self, command: &mut Command) -> anyhow::Result<String> {
        let out = output_within(command.env("DISPLAY", &self.display))?;
        ensure!(
            out.status.success(),
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The id of the window watching `addr`, once it is there.
    /// The id of `client`'s window, which watches `addr`, once it is there; fails at once if
    /// the client exits first.
    fn window_of(&self, client: &mut Client, addr: SocketAddr) -> anyhow::Result<String> {
        let name = format!("^dronecast .* {addr}( |$)");
        let deadline = Instant::now() + PATIENCE;
        loop {
            // Without --sync, which would wait on regardless of the client: exit status 1
            // and no output while there is no such window.
            let mut search = Command::new("xdotool");
            search.args(["search", "--name", &name]).env("DISPLAY", &self.display);
            let found = output_within(&mut search)?;
            if let Some(window) = String::from_utf8_lossy(&found.stdout).lines().next() {
                return Ok(window.to_owned());
            }
            client.ensure_running()?;
            ensure!(Instant::now() < deadline, "no window named {name:?} appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the window's title satisfies `ready`.
    fn wait_for_title(&self, window: &str, ready: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let title = self.run(Command::new("xdotool").args(["getwindowname", window]))?;
            if ready(&title) {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "gave up waiting; the title is still {title:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Takes a screenshot of the window and keeps it (see [`scratch`]).
    fn screenshot(&self, window: &str, suffix: &str) -> anyhow::Result<RgbImage> {
        let path = scratch(self.test, &format!("screenshot{suffix}.png"));
        let target = format!("png:{}", path.display());
        self.run(Command::new("import").args(["-window", window, &target]))?;
        Ok(image::open(&path).with_context(|| format!("reading {}", path.display()))?.to_rgb8())
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client under test, killed on drop if still running.
struct Client {
    child: Child,
    log: PathBuf,
}

impl Client {
    /// Waits for the client to exit and checks whether it succeeded.
    fn expect_exit(&mut self, success: bool) -> anyhow::Result<()> {
        let status = wait_within(&mut self.child, QUIT_WITHIN)
            .with_context(|| format!("client did not exit; its log: {}", self.log()))?;
        ensure!(
            status.success() == success,
            "client exited with {status}; its log: {}",
            self.log()
        );
        Ok(())
    }

    /// Fails, with the log, when the client is no longer running.
    fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("client exited with {status}; its log: {}", self.log()),
        }
    }

    /// Waits until the client has logged a line containing `needle`; fails at once if it
    /// exits first.
    fn wait_for_log(&mut self, needle: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        while !self.log().contains(needle) {
            self.ensure_running()?;
            ensure!(Instant::now() < deadline, "client never logged {needle:?}: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test-pattern drone on a loopback port, on a runtime of its own; stopped on drop.
struct Drone {
    addr: SocketAddr,
    format: Format,
    shutdown: CancellationToken,
    _runtime: tokio::runtime::Runtime,
}

impl Drone {
    fn start() -> anyhow::Result<Drone> {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let mut config = drone::Config::default();
        config.format.fps = FPS;
        let format = config.format;
        let shutdown = CancellationToken::new();
        runtime.spawn(drone::run(config, listener, shutdown.clone()));
        Ok(Drone { addr, format, shutdown, _runtime: runtime })
    }
}

impl Drop for Drone {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Where a test's screenshots and logs go: `target/tmp/window-<test>-<name>`, kept after the
/// run to look at.
fn scratch(test: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("window-{test}-{name}"))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Runs `command` to the end, killing it after [`PATIENCE`].
fn output_within(command: &mut Command) -> anyhow::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not run {command:?}"))?;
    let status = wait_within(&mut child, PATIENCE).with_context(|| format!("{command:?}"))?;
    // The tools print a line or two: the pipes never fill, so reading after the exit is safe.
    let mut output = Output { status, stdout: Vec::new(), stderr: Vec::new() };
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut output.stdout)?;
    }
    if let Some(mut err) = child.stderr.take() {
        err.read_to_end(&mut output.stderr)?;
    }
    Ok(output)
}

/// Waits for `child` to exit, killing it after `limit`.
fn wait_within(child: &mut Child, limit: Duration) -> anyhow::Result<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

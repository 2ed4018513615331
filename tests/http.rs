//! The HTTP port with real clients: ffmpeg and ffprobe play the MJPEG stream, headless Chromium
//! shows the status page with the live picture, curl's snapshot is byte for byte the frame the
//! TCP viewers got, promtool accepts `/metrics`; and the port's own promises — HTTP hygiene,
//! the same latest-frame delivery as the TCP port (a stalled viewer queues nothing and is
//! dropped), one viewer limit across both ports.
//!
//! Everything runs in-process (a test-pattern drone and a cache-server serving HTTP) on
//! ephemeral loopback ports; the clients are the Debian packages `ffmpeg curl chromium
//! prometheus imagemagick`. A test whose client is missing prints `SKIPPED: …` and passes,
//! unless `DRONECAST_REQUIRE_HTTP_CLIENTS=1` (CI sets it).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use common::http::{
    MjpegViewer, Reading, get, have_tools, raw_request, request, run_tool_async,
    run_tool_with_input, state, viewer_at, viewers, wait_state,
};
use common::logs::logs;
use common::{Cache, Drone, PATIENCE, cache_http_with, drone_with};
use drone::Format;
use drone::source::Source;
use drone::source::pattern::{TestPattern, read_strip};
use dronecast::framing::Frame;
use dronecast::relay::{SubscribeError, SubscribeOptions, subscribe};
use image::RgbImage;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::RwLock;
use tokio::time::Instant;

/// The test measuring frame rates runs alone; the others share the machine.
static MACHINE: RwLock<()> = RwLock::const_new(());

/// The drone's default picture: what the clients must report.
const FORMAT: Format = Format { width: 640, height: 480, fps: 30, quality: 80 };

/// A test-pattern drone in `format` and a cache-server relaying it with its HTTP port, the
/// cache-server's configuration adjusted by `configure`; returns once frames arrive.
async fn servers(
    format: Format,
    configure: impl FnOnce(&mut cache_server::Config),
) -> anyhow::Result<(Drone, Cache)> {
    logs();
    let drone = drone_with("127.0.0.1:0", format.fps, |config| config.format = format).await?;
    let cache = cache_http_with(drone.addr, configure).await?;
    cache.wait_frames_in(2).await?;
    Ok((drone, cache))
}

async fn stop(drone: Drone, cache: Cache) -> anyhow::Result<()> {
    cache.stop().await?;
    drone.stop().await
}

// ---- 1. ffmpeg and ffprobe -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_decodes_60_frames_cleanly_and_ffprobe_sees_640x480_mjpeg() -> anyhow::Result<()> {
    if !have_tools("ffmpeg", &["ffmpeg", "ffprobe"])? {
        return Ok(());
    }
    let _shared = MACHINE.read().await;
    let (drone, cache) = servers(FORMAT, |_| {}).await?;
    let mark = logs().len();
    let url = format!("http://{}/stream.mjpg", cache.http()?);

    // Warnings too: a part ffmpeg had to resynchronise on would show here.
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg.args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-i", &url]);
    ffmpeg.args(["-frames:v", "60", "-progress", "pipe:1", "-nostats", "-f", "null", "-"]);
    let out = run_tool_async(ffmpeg, PATIENCE).await?;
    let (progress, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "ffmpeg exited with {}: {stderr}", out.status);
    ensure!(stderr.trim().is_empty(), "ffmpeg complained:\n{stderr}");
    let frames = progress.lines().rev().find_map(|l| l.strip_prefix("frame="));
    ensure!(frames == Some("60"), "ffmpeg decoded {frames:?} frames:\n{progress}");
    ensure!(progress.contains("progress=end"), "ffmpeg did not finish:\n{progress}");
    // It was served as an HTTP viewer, with its own name.
    logs().wait_for(mark, &["http viewer joined", "agent=Lavf/"]).await?;

    let mut ffprobe = Command::new("ffprobe");
    ffprobe.args(["-v", "error", "-select_streams", "v:0"]);
    ffprobe.args(["-show_entries", "stream=codec_name,width,height", "-of", "json", &url]);
    let out = run_tool_async(ffprobe, PATIENCE).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success() && stderr.trim().is_empty(), "ffprobe: {}: {stderr}", out.status);
    let probe: Value = serde_json::from_slice(&out.stdout).context("ffprobe's JSON")?;
    let stream = &probe["streams"][0];
    ensure!(stream["codec_name"] == "mjpeg", "ffprobe: {probe}");
    ensure!((stream["width"].as_u64(), stream["height"].as_u64()) == (Some(640), Some(480)));
    stop(drone, cache).await
}

// ---- 2. Chromium and the status page ----------------------------------------------------------

/// Most mean absolute difference, per channel on 0–255, between the page's picture and the
/// test-pattern frame it claims to show (its strip says which). Chromium decodes the JPEG with
/// libjpeg-turbo, the test with `image`: the same frame differs by 0.08 (measured), the next
/// frame by 4.3, a blank picture by 125.
const MAX_PICTURE_DIFF: f64 = 1.5;

/// `chromium --headless` with the flags every run here uses, for `url`.
fn chromium(profile: &Path, url: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new("chromium");
    cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]);
    cmd.args(["--disable-component-update", "--disable-sync", "--no-first-run"]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    cmd.args(["--window-size=800,700", "--timeout=3000"]).args(extra).arg(url);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_live_picture_and_the_page_lists_the_browser() -> anyhow::Result<()> {
    if !have_tools("chromium", &["chromium"])? {
        return Ok(());
    }
    let _shared = MACHINE.read().await;
    // A slow stream: the picture rarely changes while the screenshot is taken.
    let format = Format { fps: 10, ..FORMAT };
    let (drone, cache) = servers(format, |_| {}).await?;
    let http = cache.http()?;
    let url = format!("http://{http}/");
    let dir = tempfile::tempdir()?;
    let png = dir.path().join("page.png");
    let screenshot = format!("--screenshot={}", png.display());

    // While the page is open, /state lists the browser's <img> as an HTTP viewer.
    let profile = dir.path().join("profile");
    let run = tokio::spawn(run_tool_async(chromium(&profile, &url, &[&screenshot]), PATIENCE));
    let mut browser = None;
    while browser.is_none() && !run.is_finished() {
        let state = state(http).await?;
        browser = viewers(&state).into_iter().find(|v| {
            v["protocol"] == "http" && v["agent"].as_str().is_some_and(|a| a.contains("Chrome"))
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = run.await??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "chromium exited with {}: {stderr}", out.status);
    let browser = browser.context("/state never listed the browser while its page was open")?;
    eprintln!("the browser in /state: {browser}");
    ensure!(browser["agent"].as_str().is_some_and(|a| a.contains("HeadlessChrome")));

    let shot = image::open(&png).with_context(|| format!("{}: {stderr}", png.display()))?;
    let (n, diff) = check_shows_pattern(&shot.to_rgb8(), format)?;
    eprintln!("the page shows frame {n}, differing from it by {diff:.2} on average");

    // The page's own table, filled by its script from /state every second, lists the
    // browser. Virtual time runs the page's timers for 3 s before the DOM is dumped, so the
    // table is the one of a page open for a while, not of its first request (which may be
    // answered before the page's stream request has joined).
    let profile = dir.path().join("profile-dom");
    let dump = ["--dump-dom", "--virtual-time-budget=3000"];
    let out = run_tool_async(chromium(&profile, &url, &dump), PATIENCE).await?;
    ensure!(out.status.success(), "chromium --dump-dom exited with {}", out.status);
    let dom = String::from_utf8_lossy(&out.stdout);
    let rows = dom
        .split_once("<tbody id=\"viewers\">")
        .and_then(|(_, rest)| rest.split_once("</tbody>"))
        .map(|(rows, _)| rows.to_owned())
        .context("no viewer table in the page")?;
    ensure!(
        rows.contains("<td>http</td>") && rows.contains("HeadlessChrome"),
        "the page's viewer table does not list the browser: {rows}"
    );
    stop(drone, cache).await
}

/// The test-pattern frame `n` at `format`, decoded.
fn pattern_frame(format: Format, n: u64) -> anyhow::Result<RgbImage> {
    let mut pattern = TestPattern::new(format)?;
    let mut jpeg = pattern.next_frame()?.jpeg;
    for _ in 0..n {
        jpeg = pattern.next_frame()?.jpeg;
    }
    Ok(image::load_from_memory(&jpeg)?.to_rgb8())
}

/// Mean absolute difference per channel between `frame` and the part of `shot` at (`x0`,
/// `y0`), over every `step`-th pixel in each direction.
fn diff_at(shot: &RgbImage, x0: u32, y0: u32, frame: &RgbImage, step: usize) -> f64 {
    let (mut sum, mut count) = (0u64, 0u64);
    for y in (0..frame.height()).step_by(step) {
        for x in (0..frame.width()).step_by(step) {
            let (a, b) = (shot.get_pixel(x0 + x, y0 + y).0, frame.get_pixel(x, y).0);
            sum += a.iter().zip(b).map(|(&a, b)| u64::from(a.abs_diff(b))).sum::<u64>();
            count += 3;
        }
    }
    sum as f64 / count as f64
}

/// Finds the picture in a screenshot of the page and checks that it is a test-pattern frame,
/// pixel for pixel: locates it (the backdrop is the same in every frame), reads the frame
/// number from its strip, draws that frame again and compares. Returns the frame number and
/// the difference.
fn check_shows_pattern(shot: &RgbImage, format: Format) -> anyhow::Result<(u64, f64)> {
    let (w, h) = (format.width, format.height);
    let (sw, sh) = shot.dimensions();
    ensure!(sw >= w && sh >= h, "the screenshot is {sw}x{sh}");
    let first = pattern_frame(format, 0)?;
    let mut best = (f64::MAX, 0, 0);
    // The picture sits below the header, inside the page's padding.
    for y0 in 0..=(sh - h).min(160) {
        for x0 in 0..=(sw - w).min(60) {
            let diff = diff_at(shot, x0, y0, &first, 16);
            if diff < best.0 {
                best = (diff, x0, y0);
            }
        }
    }
    let (located, x0, y0) = best;
    ensure!(
        located < 20.0,
        "no test-pattern picture in the page (nearest differs by {located:.1})"
    );
    let picture = image::imageops::crop_imm(shot, x0, y0, w, h).to_image();
    let n = read_strip(picture.as_raw(), w, h).context("no frame-number strip")?;
    ensure!(n < 100_000, "implausible frame number {n} at ({x0}, {y0})");
    let frame = pattern_frame(format, n)?;
    let diff = diff_at(shot, x0, y0, &frame, 1);
    ensure!(
        diff < MAX_PICTURE_DIFF,
        "the picture at ({x0}, {y0}) differs from frame {n} by {diff:.2}"
    );
    Ok((n, diff))
}

// ---- 3. snapshots ---------------------------------------------------------------------------

/// `X-Timestamp` as µStreamer writes it: seconds since the epoch with six decimals.
fn timestamp_of(capture_us: u64) -> String {
    format!("{}.{:06}", capture_us / 1_000_000, capture_us % 1_000_000)
}

/// Every frame a TCP viewer of `addr` receives, by seq (the newest few hundred).
async fn record_tcp(addr: SocketAddr) -> anyhow::Result<Arc<Mutex<BTreeMap<u64, Frame>>>> {
    let mut sub = subscribe(&addr.to_string(), &SubscribeOptions::default()).await?;
    let frames = Arc::new(Mutex::new(BTreeMap::new()));
    let keep = frames.clone();
    tokio::spawn(async move {
        while let Ok(Some(frame)) = sub.next_frame().await {
            let Ok(mut frames) = keep.lock() else { return };
            frames.insert(frame.header().seq, frame);
            while frames.len() > 300 {
                frames.pop_first();
            }
        }
    });
    Ok(frames)
}

fn newest_seq(frames: &Mutex<BTreeMap<u64, Frame>>) -> Option<u64> {
    frames.lock().ok()?.last_key_value().map(|(seq, _)| *seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_snapshot_is_byte_for_byte_the_frame_tcp_viewers_got_with_its_seq()
-> anyhow::Result<()> {
    if !have_tools("snapshot", &["curl", "identify"])? {
        return Ok(());
    }
    let _shared = MACHINE.read().await;
    let (drone, cache) = servers(FORMAT, |_| {}).await?;
    let url = format!("http://{}/snapshot.jpg", cache.http()?);
    let tcp = record_tcp(cache.addr).await?;
    let dir = tempfile::tempdir()?;

    let mut compared = 0;
    for i in 0..5 {
        let file = dir.path().join(format!("snapshot-{i}.jpg"));
        let mut curl = Command::new("curl");
        curl.args(["-sS", "--max-time", "20", "-D", "-", "-o"]).arg(&file).arg(&url);
        let out = run_tool_async(curl, PATIENCE).await?;
        ensure!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
        let head = String::from_utf8_lossy(&out.stdout).into_owned();
        let header = |name: &str| {
            head.lines().find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        ensure!(head.starts_with("HTTP/1.1 200 "), "curl got {head}");
        ensure!(header("content-type").as_deref() == Some("image/jpeg"), "{head}");
        let cache_control = header("cache-control").unwrap_or_default();
        ensure!(cache_control.split(',').any(|d| d.trim() == "no-store"), "{head}");
        let stamp = header("x-timestamp").context("no X-Timestamp")?;
        let (secs, micros) = stamp.split_once('.').context("X-Timestamp without decimals")?;
        ensure!(
            secs.parse::<u64>().is_ok() && micros.len() == 6 && micros.parse::<u32>().is_ok(),
            "X-Timestamp {stamp:?} is not seconds with 6 decimals"
        );
        let seq: u64 = header("x-frame-seq").context("no X-Frame-Seq")?.parse()?;
        let bytes = std::fs::read(&file)?;
        ensure!(header("content-length") == Some(bytes.len().to_string()), "{head}");

        // The TCP viewer gets the same frame at about the same time; a frame it skipped
        // cannot be compared.
        let deadline = Instant::now() + PATIENCE;
        while newest_seq(&tcp).is_none_or(|newest| newest < seq) {
            ensure!(Instant::now() < deadline, "the TCP viewer never got past frame {seq}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let frame = tcp.lock().ok().and_then(|frames| frames.get(&seq).cloned());
        if let Some(frame) = frame {
            ensure!(
                bytes == frame.payload()[..],
                "snapshot {seq} differs from the TCP frame {seq}"
            );
            let want = timestamp_of(frame.header().capture_us);
            ensure!(stamp == want, "X-Timestamp {stamp} for a frame captured at {want}");
            compared += 1;
        }

        let mut identify = Command::new("identify");
        identify.args(["-format", "%m %w %h"]).arg(&file);
        let out = run_tool_async(identify, PATIENCE).await?;
        let said = String::from_utf8_lossy(&out.stdout);
        ensure!(out.status.success() && said == "JPEG 640 480", "identify says {said:?}");
        // The next snapshot is of a later frame.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(compared >= 3, "only {compared} of 5 snapshots had a TCP twin to compare with");
    stop(drone, cache).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_before_any_frame_is_503_with_retry_after() -> anyhow::Result<()> {
    if !have_tools("snapshot 503", &["curl"])? {
        return Ok(());
    }
    let _shared = MACHINE.read().await;
    // An upstream where nothing listens: the cache-server never has a frame.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let cache = cache_http_with(nobody, |_| {}).await?;
    let url = format!("http://{}/snapshot.jpg", cache.http()?);
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--max-time", "20", "-D", "-", &url]);
    let out = run_tool_async(curl, PATIENCE).await?;
    let answer = String::from_utf8_lossy(&out.stdout);
    let (head, body) = answer.split_once("\r\n\r\n").context("no response")?;
    ensure!(head.starts_with("HTTP/1.1 503 "), "{answer}");
    let retry = head.lines().find_map(|l| {
        l.to_ascii_lowercase().strip_prefix("retry-after:").map(|v| v.trim().to_owned())
    });
    ensure!(
        retry.is_some_and(|r| r.parse::<u32>().is_ok_and(|s| s >= 1)),
        "no Retry-After: {head}"
    );
    ensure!(body.lines().count() == 1 && body.starts_with("no frame yet"), "body {body:?}");
    cache.stop().await
}

// ---- 4. metrics -----------------------------------------------------------------------------

/// `/metrics` through curl, checked by `promtool check metrics`; returns the text.
async fn scrape_and_check(http: SocketAddr) -> anyhow::Result<String> {
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--fail", "--max-time", "20", &format!("http://{http}/metrics")]);
    let out = run_tool_async(curl, PATIENCE).await?;
    ensure!(out.status.success(), "curl /metrics: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout)?;
    let mut promtool = Command::new("promtool");
    promtool.args(["check", "metrics"]);
    let checked = run_tool_with_input(promtool, text.clone().into_bytes(), PATIENCE).await?;
    let said = [checked.stdout, checked.stderr].concat();
    let said = String::from_utf8_lossy(&said);
    ensure!(checked.status.success() && said.trim().is_empty(), "promtool: {said}\n{text}");
    Ok(text)
}

/// The samples of `dronecast_viewers`, by protocol label.
fn viewer_gauge(metrics: &str) -> BTreeMap<String, f64> {
    let mut by_protocol = BTreeMap::new();
    for line in metrics.lines().filter(|l| l.starts_with("dronecast_viewers{")) {
        let Some((labels, value)) = line.rsplit_once(' ') else { continue };
        let Some(at) = labels.find("protocol=\"") else { continue };
        let protocol = labels[at + 10..].split('"').next().unwrap_or_default().to_owned();
        *by_protocol.entry(protocol).or_default() += value.parse::<f64>().unwrap_or(f64::NAN);
    }
    by_protocol
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_metrics_and_the_viewer_gauge_counts_both_protocols() -> anyhow::Result<()>
{
    if !have_tools("metrics", &["curl", "promtool"])? {
        return Ok(());
    }
    let _shared = MACHINE.read().await;
    let (drone, cache) = servers(FORMAT, |_| {}).await?;
    let http = cache.http()?;
    let before = scrape_and_check(http).await?;
    let gauge = viewer_gauge(&before);
    ensure!(gauge.values().sum::<f64>() == 0.0, "viewers before any joined: {gauge:?}");

    // One TCP and two HTTP viewers; and a malformed request, so that a labelled counter of
    // dropped connections is in the scrape too.
    let mut tcp = subscribe(&cache.addr.to_string(), &SubscribeOptions::default()).await?;
    tcp.next_frame().await?.context("no frame over TCP")?;
    let mut web = Vec::new();
    for _ in 0..2 {
        let mut viewer = MjpegViewer::open(http, "/stream.mjpg", "metrics-test").await?;
        viewer.next_part().await?;
        web.push(viewer.read_on());
    }
    let _ = raw_request(http, b"\x01\x02 not http\r\n\r\n").await;
    wait_state(http, "3 viewers", |s| s["viewers"] == 3 && s["dropped"]["protocol_error"] == 1)
        .await?;

    let after = scrape_and_check(http).await?;
    let gauge = viewer_gauge(&after);
    ensure!(gauge.values().sum::<f64>() == 3.0, "dronecast_viewers: {gauge:?}\n{after}");
    ensure!(gauge.get("tcp") == Some(&1.0) && gauge.get("http") == Some(&2.0), "{gauge:?}");
    for name in ["dronecast_frames_sent_total", "dronecast_frame_age_seconds_bucket"] {
        ensure!(after.contains(name), "no {name} in\n{after}");
    }
    for viewer in web {
        viewer.finish().await?;
    }
    tcp.close().await;
    stop(drone, cache).await
}

// ---- 5. HTTP hygiene ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_404_405_every_url_alias_and_the_state_document() -> anyhow::Result<()> {
    let _shared = MACHINE.read().await;
    let (drone, cache) = servers(FORMAT, |_| {}).await?;
    let http = cache.http()?;

    // HEAD: the headers of a GET, no body, and no viewer place taken.
    let head = request(http, "HEAD", "/stream.mjpg").await?;
    ensure!(head.status == 200 && head.body.is_empty(), "HEAD /stream.mjpg: {head:?}");
    let multipart = "multipart/x-mixed-replace;boundary=boundarydonotcross";
    ensure!(head.header("content-type") == Some(multipart), "{}", head.head);
    let head = request(http, "HEAD", "/snapshot.jpg").await?;
    ensure!(head.status == 200 && head.body.is_empty(), "HEAD /snapshot.jpg: {head:?}");
    ensure!(head.header("content-type") == Some("image/jpeg"), "{}", head.head);
    let length: usize = head.header("content-length").context("no Content-Length")?.parse()?;
    ensure!(length > 1000, "HEAD /snapshot.jpg says {length} bytes");
    // On a kept-alive connection the next response follows the head at once: no body between.
    let pipelined = b"HEAD /stream.mjpg HTTP/1.1\r\nHost: t\r\n\r\n\
        GET /state HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let both = raw_request(http, pipelined).await?;
    ensure!(both.body.starts_with(b"HTTP/1.1 200 OK\r\n"), "after HEAD: {:?}", both.text());
    ensure!(state(http).await?["viewers"] == 0, "a HEAD took a viewer place");

    for path in ["/nope", "/etc/passwd", "/../../etc/passwd", "/default/state", "/stream.mjpg/x"] {
        let response = get(http, path).await?;
        ensure!(response.status == 404, "GET {path}: {}", response.head);
    }
    let unknown = get(http, "/front/stream.mjpg").await?;
    ensure!(unknown.status == 404 && unknown.text().contains("default"), "{unknown:?}");
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let response = request(http, method, "/stream.mjpg").await?;
        ensure!(response.status == 405, "{method}: {}", response.head);
        ensure!(response.header("allow") == Some("GET, HEAD"), "{method}: {}", response.head);
    }

    // The URLs of µStreamer, mjpg-streamer and the usual Flask examples.
    for path in ["/stream", "/video_feed", "/?action=stream", "/default/stream.mjpg"] {
        let mut viewer = MjpegViewer::open(http, path, "alias-test").await?;
        viewer.next_part().await.with_context(|| path.to_owned())?;
    }
    for path in ["/snapshot", "/?action=snapshot", "/default/snapshot.jpg"] {
        let response = get(http, path).await?;
        ensure!(response.status == 200, "GET {path}: {}", response.head);
        ensure!(response.header("content-type") == Some("image/jpeg"), "{path}");
        ensure!(response.body.starts_with(&[0xff, 0xd8]), "{path}: not a JPEG");
    }
    let page = get(http, "/").await?;
    ensure!(page.header("content-type") == Some("text/html; charset=utf-8"), "{}", page.head);
    let html = page.text();
    ensure!(html.contains("<img") && html.contains("stream.mjpg") && html.contains("/state"));
    ensure!(!html.contains("http://") && !html.contains("https://"), "the page loads from outside");

    // /state, with one HTTP viewer in it: every field the page and the README use.
    let viewer = MjpegViewer::open(http, "/stream.mjpg", "state-test/1.0").await?.read_on();
    // The alias viewers above are closed, but the server learns it only at its next write to
    // them (the next frame or heartbeat): wait until it has, so that only this viewer is listed.
    let state = wait_state(http, "the viewer, alone", |s| {
        viewer_at(s, viewer.local).is_some() && s["viewers"] == 1
    })
    .await?;
    check_state_document(&state, viewer.local)?;
    viewer.finish().await?;
    stop(drone, cache).await
}

/// Checks the shape and the obvious values of a `/state` document with one HTTP viewer at
/// `peer` on the default stream.
fn check_state_document(state: &Value, peer: SocketAddr) -> anyhow::Result<()> {
    let kind = |v: &Value, key: &str, ok: fn(&Value) -> bool| -> anyhow::Result<()> {
        ensure!(v.get(key).is_some_and(ok), "field {key} missing or mistyped in {v}");
        Ok(())
    };
    for (key, ok) in [
        ("agent", Value::is_string as fn(&Value) -> bool),
        ("protocol_version", Value::is_u64),
        ("uptime_s", Value::is_f64),
        ("viewers", Value::is_u64),
        ("max_viewers", Value::is_u64),
        ("refused", Value::is_object),
        ("dropped", Value::is_object),
        ("streams", Value::is_array),
    ] {
        kind(state, key, ok)?;
    }
    ensure!(state["agent"].as_str().is_some_and(|a| a.starts_with("cache-server/")), "{state}");
    ensure!(state["viewers"] == 1 && state["max_viewers"] == 10_000, "{state}");
    let stream = common::http::default_stream(state).context("no default stream")?;
    ensure!(stream["name"] == "default", "{stream}");
    let source = &stream["source"];
    for key in ["state", "from", "agent"] {
        kind(source, key, Value::is_string)?;
    }
    kind(source, "reconnects", Value::is_u64)?;
    ensure!(
        source["state"] == "up"
            && source["agent"].as_str().is_some_and(|a| a.starts_with("drone/"))
    );
    let frame = &stream["frame"];
    for key in ["seq", "width", "height", "bytes"] {
        kind(frame, key, Value::is_u64)?;
    }
    kind(frame, "age_ms", Value::is_f64)?;
    ensure!(frame["width"] == 640 && frame["height"] == 480, "{frame}");
    for key in ["fps_in", "mbit_in", "mbit_out"] {
        kind(&stream["rates"], key, Value::is_number)?;
    }
    for key in ["frames_in", "bytes_in", "frames_out", "bytes_out", "frames_skipped"] {
        kind(&stream["totals"], key, Value::is_u64)?;
    }
    let viewer = viewer_at(state, peer).context("the viewer is not listed")?;
    for key in ["id", "frames_sent", "frames_skipped", "bytes_sent"] {
        kind(&viewer, key, Value::is_u64)?;
    }
    for key in ["since_unix_s", "connected_s", "frame_age_ms"] {
        kind(&viewer, key, Value::is_number)?;
    }
    ensure!(viewer["protocol"] == "http" && viewer["agent"] == "state-test/1.0", "{viewer}");
    Ok(())
}

// ---- 6. the same delivery as the TCP port ---------------------------------------------------

/// Small frames: twenty viewers and the drone share two cores with the test.
const SMALL: Format = Format { width: 320, height: 240, fps: 30, quality: 80 };

/// From one `/state` document: the `frames_sent` and `frames_skipped` of the viewer at `peer`
/// (`None` once it is gone) and the frames published so far.
async fn counts_of(
    http: SocketAddr,
    peer: SocketAddr,
) -> anyhow::Result<(Option<(u64, u64)>, u64)> {
    let state = state(http).await?;
    let frames_in = common::http::default_stream(&state)
        .and_then(|s| s["totals"]["frames_in"].as_u64())
        .context("no frames_in in /state")?;
    let viewer = viewer_at(&state, peer).map(|v| {
        (v["frames_sent"].as_u64().unwrap_or(0), v["frames_skipped"].as_u64().unwrap_or(0))
    });
    Ok((viewer, frames_in))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_http_viewer_has_nothing_queued_and_is_dropped_while_20_keep_30_fps()
-> anyhow::Result<()> {
    const READERS: usize = 20;
    const VIEWER_TIMEOUT: Duration = Duration::from_secs(2);
    // Alone: it measures frame rates.
    let _alone = MACHINE.write().await;
    let (drone, cache) =
        servers(SMALL, |config| config.server.viewer_timeout = VIEWER_TIMEOUT).await?;
    let http = cache.http()?;
    let mark = logs().len();
    let mut readers = Vec::new();
    for i in 0..READERS {
        let agent = format!("reader-{i}");
        readers.push(MjpegViewer::open(http, "/stream.mjpg", &agent).await?.read_on());
    }
    // The stalled viewer asks for the stream and never reads a byte; a small receive buffer
    // makes its window close within a frame or two.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let mut stalled = socket.connect(http).await?;
    let peer = stalled.local_addr()?;
    stalled
        .write_all(b"GET /stream.mjpg HTTP/1.1\r\nHost: t\r\nUser-Agent: stalled\r\n\r\n")
        .await?;
    wait_state(http, "21 viewers", |s| s["viewers"] == READERS + 1).await?;

    // Its socket fills within a few frames; then it is handed no new frame.
    let deadline = Instant::now() + PATIENCE;
    let (mut last_sent, mut since) = (None, Instant::now());
    let (stuck, published) = loop {
        let (counts, published) = counts_of(http, peer).await?;
        let counts = counts.context("the stalled viewer is not listed")?;
        if last_sent != Some(counts.0) {
            (last_sent, since) = (Some(counts.0), Instant::now());
        } else if since.elapsed() > Duration::from_millis(300) {
            break (counts, published);
        }
        ensure!(Instant::now() < deadline, "the stalled viewer keeps being sent frames");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let parts_before: Vec<u64> = readers.iter().map(Reading::parts).collect();
    let window_start = Instant::now();

    // While it stays stuck, every frame published goes by it: skipped, not queued. (Its
    // `frames_sent` counts parts that left the server's buffer for the kernel.)
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (later, published_later) = counts_of(http, peer).await?;
    let later = later.context("dropped before the viewer timeout")?;
    let (sent, skipped) = (later.0 - stuck.0, later.1 - stuck.1);
    let went_by = published_later - published;
    eprintln!("stalled viewer: sent/skipped {stuck:?} -> {later:?} while {went_by} frames came");
    ensure!(went_by >= 10, "only {went_by} frames in 700 ms");
    ensure!(sent <= 1, "{sent} frames were sent to the stalled viewer in 700 ms");
    ensure!(
        sent + skipped + 1 >= went_by && sent + skipped <= went_by + 1,
        "{went_by} frames came; the stalled viewer was sent {sent} and skipped {skipped}"
    );

    // It is dropped after the viewer timeout, with a line that names it.
    let needle = format!("http{{peer={peer}}}");
    let line =
        logs().wait_for(mark, &[&needle, "http viewer dropped: took no frame for 2s"]).await?;
    let dropped_after = window_start.elapsed();
    eprintln!("{line}");
    let state =
        wait_state(http, "the stalled viewer gone", |s| viewer_at(s, peer).is_none()).await?;
    ensure!(state["dropped"]["stalled"] == 1, "dropped: {}", state["dropped"]);
    ensure!(dropped_after < VIEWER_TIMEOUT + Duration::from_secs(2), "after {dropped_after:?}");

    // Meanwhile every reader kept the source's rate.
    let window = window_start.elapsed().as_secs_f64();
    let frames_in = counts_of(http, peer).await?.1 - published;
    let source_fps = frames_in as f64 / window;
    for (reader, before) in readers.iter().zip(parts_before) {
        let fps = (reader.parts() - before) as f64 / window;
        let gap = reader.longest_gap();
        ensure!(reader.is_reading(), "reader {} stopped", reader.local);
        ensure!(fps > 0.85 * source_fps, "{}: {fps:.1} fps of {source_fps:.1}", reader.local);
        ensure!(gap < Duration::from_millis(500), "{}: no frame for {gap:?}", reader.local);
    }
    eprintln!("{READERS} readers kept up with the source's {source_fps:.1} fps over {window:.1} s");
    ensure!(source_fps > 25.0, "the source ran at {source_fps:.1} fps");
    for reader in readers {
        reader.finish().await?;
    }
    drop(stalled);
    stop(drone, cache).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_viewers_counts_tcp_and_http_together_and_the_http_one_over_gets_503()
-> anyhow::Result<()> {
    let _shared = MACHINE.read().await;
    let (drone, cache) = servers(SMALL, |config| config.server.max_viewers = 3).await?;
    let http = cache.http()?;
    let options = SubscribeOptions::default();
    let mut tcp = Vec::new();
    for _ in 0..2 {
        let mut sub = subscribe(&cache.addr.to_string(), &options).await?;
        sub.next_frame().await?.context("no frame")?;
        tcp.push(sub);
    }
    let mut web = MjpegViewer::open(http, "/stream.mjpg", "third").await?;
    web.next_part().await?;
    let web = web.read_on();
    wait_state(http, "3 viewers", |s| s["viewers"] == 3).await?;

    let full = get(http, "/stream.mjpg").await?;
    ensure!(full.status == 503, "the 4th viewer, over HTTP: {}", full.head);
    let retry = full.header("retry-after").context("no Retry-After")?;
    ensure!(retry.parse::<u32>().is_ok_and(|s| s >= 1), "Retry-After: {retry}");
    ensure!(full.text().contains("server full (3 viewers)"), "{:?}", full.text());
    match subscribe(&cache.addr.to_string(), &options).await {
        Err(SubscribeError::Refused { reason, .. }) if reason.contains("server full") => {}
        other => bail!("the 4th viewer, over TCP: {other:?}"),
    }
    let state = state(http).await?;
    ensure!(state["refused"]["full"] == 2, "refused: {}", state["refused"]);

    // A place freed on the TCP port is a place for an HTTP viewer.
    if let Some(sub) = tcp.pop() {
        sub.close().await;
    }
    wait_state(http, "2 viewers", |s| s["viewers"] == 2).await?;
    let mut fourth = MjpegViewer::open(http, "/stream.mjpg", "fourth").await?;
    fourth.next_part().await?;
    web.finish().await?;
    stop(drone, cache).await
}

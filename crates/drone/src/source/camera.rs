//! Cameras through nokhwa (V4L2 on Linux). Built only with the cargo feature `camera`.
//!
//! - **Format.** The drone asks for MJPEG whenever the camera offers it, at the offered size
//!   and rate closest to `--width`/`--height`/`--fps`, and passes the camera's JPEG bytes
//!   through (trimmed of the buffer padding after EOI). Only a camera without MJPEG gets its
//!   raw frames (YUYV, NV12, RGB, BGR, grey) encoded, by [`crate::raw`]. nokhwa's own format
//!   matching fails on anything short of an exact match ("Failed to Fufill"), so the drone
//!   opens the camera with whatever format it has, lists what it offers and picks itself.
//! - **Thread.** A nokhwa `Camera` is not `Send`: a [`CameraSource`] is created and used on
//!   the capture thread only.
//! - **Unplugged.** A camera that stops delivering frames is dropped, logged, and reopened
//!   every [`REOPEN_EVERY`]; the server and its relays carry on meanwhile.
//! - **Paused.** With nobody watching, the stream is stopped (the sensor idles; a Pi stays
//!   cool); the device stays open so that nobody else takes it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};
use nokhwa::{Camera, NokhwaError};
use tracing::{debug, info, warn};

use super::{CameraId, Captured, Format, Source};
use crate::jpeg;
use crate::raw::{RawEncoder, RawFormat};

/// How often a camera that went away is looked for again.
pub const REOPEN_EVERY: Duration = Duration::from_secs(3);

/// Broken frames in a row (USB hiccups) tolerated before `next_frame` reports an error.
const MAX_BAD_FRAMES: u32 = 10;

/// Every format the drone can use, MJPEG first, then raw ones cheapest first.
const USABLE: [FrameFormat; 6] = [
    FrameFormat::MJPEG,
    FrameFormat::YUYV,
    FrameFormat::NV12,
    FrameFormat::RAWRGB,
    FrameFormat::RAWBGR,
    FrameFormat::GRAY,
];

/// A camera as a frame source.
pub struct CameraSource {
    id: CameraId,
    want: Format,
    /// `None` while the camera is gone.
    camera: Option<Camera>,
    name: String,
    mode: CameraFormat,
    raw: RawEncoder,
    last_try: Instant,
    /// Why the camera is not open, while it is not.
    gone: String,
}

impl CameraSource {
    /// Opens camera `id`, picks the format closest to `want` and starts streaming. Fails at
    /// once when there is no such camera, it is busy, or it offers nothing usable.
    pub fn open(id: &CameraId, want: Format) -> anyhow::Result<CameraSource> {
        let (camera, name, mode) = open_camera(id, want)?;
        Ok(CameraSource {
            id: id.clone(),
            want,
            camera: Some(camera),
            name,
            mode,
            raw: RawEncoder::new(want.quality),
            last_try: Instant::now(),
            gone: String::new(),
        })
    }

    /// Tries to get a camera that went away back, at most every [`REOPEN_EVERY`]. Between
    /// tries it repeats the last try's error, so the log is not told anything new.
    fn reopen(&mut self) -> anyhow::Result<()> {
        if self.last_try.elapsed() < REOPEN_EVERY {
            bail!(self.gone.clone());
        }
        self.last_try = Instant::now();
        match open_camera(&self.id, self.want) {
            Ok((camera, name, mode)) => {
                info!("camera {} is back: {name}, {}", self.id, format_name(mode));
                self.camera = Some(camera);
                self.name = name;
                self.mode = mode;
                Ok(())
            }
            Err(err) => {
                self.gone =
                    format!("camera {} is gone (unplugged?); retrying every 3 s: {err:#}", self.id);
                bail!(self.gone.clone())
            }
        }
    }

    /// Drops the camera after it failed, so that the next frame reopens it.
    fn lose(&mut self, err: &NokhwaError) -> anyhow::Error {
        self.camera = None;
        self.last_try = Instant::now();
        self.gone = format!("camera {} is gone (unplugged?); retrying every 3 s: {err}", self.id);
        anyhow!(self.gone.clone())
    }
}

impl Source for CameraSource {
    fn next_frame(&mut self) -> anyhow::Result<Captured> {
        if self.camera.is_none() {
            self.reopen()?;
        }
        let mut bad = 0;
        loop {
            let camera = self.camera.as_mut().context("camera is not open")?;
            if !camera.is_stream_open() {
                if let Err(err) = camera.open_stream() {
                    return Err(self.lose(&err));
                }
            }
            let converted = match camera.frame_raw() {
                Ok(buffer) => convert(&mut self.raw, self.mode, &buffer),
                Err(err) => return Err(self.lose(&err)),
            };
            match converted {
                Ok(frame) => return Ok(frame),
                Err(err) if bad < MAX_BAD_FRAMES => {
                    bad += 1;
                    debug!(error = %format!("{err:#}"), "skipping a broken frame from camera {}", self.id);
                }
                Err(err) => {
                    return Err(
                        err.context(format!("camera {}: {bad} broken frames in a row", self.id))
                    );
                }
            }
        }
    }

    fn self_paced(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        let how = if self.mode.format() == FrameFormat::MJPEG {
            "passed through".to_owned()
        } else {
            format!("encoded to JPEG q{}", self.want.quality)
        };
        format!("camera {} ({}): {}, {how}", self.id, self.name, format_name(self.mode))
    }

    fn pause(&mut self) {
        if let Some(camera) = &mut self.camera {
            if let Err(err) = camera.stop_stream() {
                warn!(error = %err, "could not stop camera {}'s stream", self.id);
            }
        }
    }

    fn resume(&mut self) -> anyhow::Result<()> {
        match &mut self.camera {
            Some(camera) => match camera.open_stream() {
                Ok(()) => Ok(()),
                Err(err) => Err(self.lose(&err)),
            },
            None => self.reopen(),
        }
    }
}

/// One camera buffer as a JPEG frame.
fn convert(raw: &mut RawEncoder, mode: CameraFormat, buffer: &[u8]) -> anyhow::Result<Captured> {
    let (width, height) = (mode.width(), mode.height());
    let format = match mode.format() {
        FrameFormat::MJPEG => {
            let jpeg = jpeg::trim_jpeg(buffer).context("the camera sent a broken JPEG")?;
            let (width, height) = jpeg::dimensions(jpeg).unwrap_or((width, height));
            return Ok(Captured { jpeg: Bytes::copy_from_slice(jpeg), width, height });
        }
        FrameFormat::YUYV => RawFormat::Yuyv,
        FrameFormat::NV12 => RawFormat::Nv12,
        FrameFormat::RAWRGB => RawFormat::Rgb,
        FrameFormat::RAWBGR => RawFormat::Bgr,
        FrameFormat::GRAY => RawFormat::Gray,
    };
    Ok(Captured { jpeg: raw.encode(format, buffer, width, height)?, width, height })
}

/// "MJPEG 640x480 at 30 fps"
fn format_name(mode: CameraFormat) -> String {
    format!("{} {}x{} at {} fps", mode.format(), mode.width(), mode.height(), mode.frame_rate())
}

/// The index nokhwa knows a camera by: the number itself, or N of the `/dev/videoN` a path
/// leads to (following links such as `/dev/v4l/by-id/…`).
fn resolve(id: &CameraId) -> anyhow::Result<u32> {
    match id {
        CameraId::Index(index) => Ok(*index),
        CameraId::Path(path) => {
            let real = std::fs::canonicalize(path).with_context(|| {
                format!(
                    "no camera found at {}; `drone --list-cameras` shows the cameras there \
                     are, and --source test plays a test pattern instead",
                    path.display()
                )
            })?;
            video_number(&real).with_context(|| {
                format!("{} is not a video device (expected /dev/videoN)", real.display())
            })
        }
    }
}

fn video_number(path: &Path) -> Option<u32> {
    path.file_name()?.to_str()?.strip_prefix("video")?.parse().ok()
}

/// Opens camera `id` streaming in the offered format closest to `want`; returns it, its name
/// and the format it runs in.
fn open_camera(id: &CameraId, want: Format) -> anyhow::Result<(Camera, String, CameraFormat)> {
    let index = resolve(id)?;
    let cameras = nokhwa::query(ApiBackend::Auto).unwrap_or_default();
    let known = cameras.iter().any(|c| c.index().as_index().ok() == Some(index));
    if !known {
        let there = if cameras.is_empty() {
            "this machine has no camera".to_owned()
        } else {
            let names: Vec<String> =
                cameras.iter().map(|c| format!("{} ({})", c.index(), c.human_name())).collect();
            format!("cameras found: {}", names.join(", "))
        };
        bail!(
            "no camera found at index {index} ({there}); `drone --list-cameras` lists them, \
             --camera picks one, and --source test plays a test pattern instead"
        );
    }
    let mut camera = open_any(index)?;
    let name = camera.info().human_name();
    let offered = camera
        .compatible_camera_formats()
        .with_context(|| format!("camera {index} ({name}) would not list its formats"))?;
    let chosen = choose_format(&offered, want).with_context(|| {
        format!(
            "camera {index} ({name}) offers no format the drone can use (a metadata node? \
             UVC cameras often have two; try --camera {})",
            index + 1
        )
    })?;
    if (chosen.width(), chosen.height(), chosen.frame_rate()) != (want.width, want.height, want.fps)
    {
        info!(
            "camera {index} offers no {}x{} at {} fps; taking the closest, {}",
            want.width,
            want.height,
            want.fps,
            format_name(chosen)
        );
    }
    if camera.camera_format() != chosen {
        let request = RequestedFormat::with_formats(RequestedFormatType::Exact(chosen), &USABLE);
        if let Err(err) = camera.set_camera_requset(request) {
            warn!(error = %err, "camera {index} would not switch to {}", format_name(chosen));
        }
    }
    let mode = camera.refresh_camera_format().unwrap_or_else(|_| camera.camera_format());
    if mode != chosen {
        warn!("camera {index} runs {} instead of {}", format_name(mode), format_name(chosen));
    }
    camera.open_stream().map_err(|err| {
        let busy = err.to_string().contains("busy");
        let hint =
            if busy { " (busy: is another program using it? `fuser /dev/video*`)" } else { "" };
        anyhow!("could not start camera {index} ({name}){hint}: {err}")
    })?;
    info!("camera {index} ({name}): {}", format_name(mode));
    Ok((camera, name, mode))
}

/// Opens camera `index` in whatever format it accepts. nokhwa insists on a format up front;
/// asking for "any" picks the first it lists, and should the camera balk at that one, each
/// kind is tried on its own.
fn open_any(index: u32) -> anyhow::Result<Camera> {
    let mut tries = vec![&USABLE[..]];
    tries.extend(USABLE.chunks(1));
    let mut last = None;
    for formats in tries {
        let request = RequestedFormat::with_formats(RequestedFormatType::None, formats);
        match Camera::new(CameraIndex::Index(index), request) {
            Ok(camera) => return Ok(camera),
            Err(err @ NokhwaError::OpenDeviceError(..)) => {
                return Err(anyhow!(err).context(format!(
                    "could not open camera {index} (permissions? the user must be in the \
                     `video` group)"
                )));
            }
            Err(err) => last = Some(err),
        }
    }
    let err = last.map_or_else(|| anyhow!("no format to try"), |err| anyhow!(err));
    Err(err.context(format!(
        "camera {index} offers none of the formats the drone can use (MJPEG, YUYV, NV12, RGB, \
         grey); UVC cameras have a second node for metadata only: try another --camera"
    )))
}

/// The offered format to ask for: MJPEG if the camera has it at all (passed through, no
/// encoding), else the cheapest raw format; then the size closest to the one wanted, then the
/// closest rate (the larger on a tie).
pub fn choose_format(offered: &[CameraFormat], want: Format) -> Option<CameraFormat> {
    let rank = |f: &CameraFormat| USABLE.iter().position(|&u| u == f.format());
    let has_mjpeg = offered.iter().any(|f| f.format() == FrameFormat::MJPEG);
    offered
        .iter()
        .filter(|f| rank(f).is_some() && f.width() > 0 && f.height() > 0)
        .filter(|f| !has_mjpeg || f.format() == FrameFormat::MJPEG)
        .min_by_key(|f| {
            let dw = i64::from(f.width()) - i64::from(want.width);
            let dh = i64::from(f.height()) - i64::from(want.height);
            let dfps = i64::from(f.frame_rate()) - i64::from(want.fps);
            let area = u64::from(f.width()) * u64::from(f.height());
            (
                dw * dw + dh * dh,
                std::cmp::Reverse(area),
                dfps.abs(),
                std::cmp::Reverse(dfps),
                rank(f),
            )
        })
        .copied()
}

/// Every camera with what it offers, for `--list-cameras`.
pub fn list() -> anyhow::Result<String> {
    let cameras = nokhwa::query(ApiBackend::Auto).context("could not list cameras")?;
    if cameras.is_empty() {
        return Ok("no cameras found".to_owned());
    }
    let mut out = String::new();
    for info in cameras {
        let _ = writeln!(
            out,
            "camera {}: {} ({})",
            info.index(),
            info.human_name(),
            info.description()
        );
        let formats = info
            .index()
            .as_index()
            .map_err(anyhow::Error::from)
            .and_then(open_any)
            .and_then(|mut camera| Ok(camera.compatible_camera_formats()?));
        match formats {
            Ok(formats) if formats.is_empty() => {
                let _ = writeln!(out, "    offers no video format (a metadata node?)");
            }
            Ok(formats) => {
                // (kind, width, height) → rates, kinds in USABLE order, largest sizes first.
                let mut modes: BTreeMap<_, Vec<u32>> = BTreeMap::new();
                for f in formats {
                    let kind = USABLE.iter().position(|&u| u == f.format()).unwrap_or(USABLE.len());
                    let key = (kind, std::cmp::Reverse((f.width(), f.height())), f.format());
                    modes.entry(key).or_default().push(f.frame_rate());
                }
                for ((_, std::cmp::Reverse((w, h)), kind), mut rates) in modes {
                    rates.sort_unstable_by(|a, b| b.cmp(a));
                    rates.dedup();
                    let rates: Vec<String> = rates.iter().map(u32::to_string).collect();
                    let _ = writeln!(out, "    {kind:<6} {w}x{h} at {} fps", rates.join(", "));
                }
            }
            Err(err) => {
                let _ = writeln!(out, "    cannot open it: {err:#}");
            }
        }
    }
    Ok(out.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(format: FrameFormat, w: u32, h: u32, fps: u32) -> CameraFormat {
        CameraFormat::new_from(w, h, format, fps)
    }

    const WANT: Format = Format { width: 640, height: 480, fps: 30, quality: 80 };

    #[test]
    fn mjpeg_wins_when_offered() {
        let offered = [
            mode(FrameFormat::YUYV, 640, 480, 30),
            mode(FrameFormat::MJPEG, 1280, 720, 30),
            mode(FrameFormat::MJPEG, 640, 480, 15),
            mode(FrameFormat::MJPEG, 640, 480, 30),
        ];
        assert_eq!(choose_format(&offered, WANT), Some(offered[3]));
    }

    #[test]
    fn closest_size_then_rate_when_nothing_matches() {
        let offered = [
            mode(FrameFormat::MJPEG, 320, 240, 30),
            mode(FrameFormat::MJPEG, 800, 600, 20),
            mode(FrameFormat::MJPEG, 800, 600, 60),
            mode(FrameFormat::MJPEG, 1920, 1080, 30),
        ];
        // 800x600 is closer to 640x480 than 320x240 is; 20 fps is 10 away from 30, 60 is 30.
        assert_eq!(choose_format(&offered, WANT), Some(offered[1]));
    }

    #[test]
    fn raw_only_prefers_yuyv_at_equal_size() {
        let offered = [
            mode(FrameFormat::NV12, 640, 480, 30),
            mode(FrameFormat::YUYV, 640, 480, 30),
            mode(FrameFormat::YUYV, 1280, 720, 10),
        ];
        assert_eq!(choose_format(&offered, WANT), Some(offered[1]));
        assert_eq!(choose_format(&[], WANT), None);
    }

    #[test]
    fn device_paths() {
        assert_eq!(video_number(Path::new("/dev/video2")), Some(2));
        assert_eq!(video_number(Path::new("/dev/sda")), None);
        assert_eq!(resolve(&CameraId::Index(3)).ok(), Some(3));
        let err = resolve(&CameraId::Path("/dev/no-such-video7".into())).expect_err("missing");
        assert!(format!("{err:#}").contains("no camera found"));
    }
}

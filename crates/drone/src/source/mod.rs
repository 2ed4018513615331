//! Where frames come from. Every source sits behind [`Source`], so the capture loop does not
//! care whether it reads a camera, a file or draws a test pattern.

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;

#[cfg(feature = "camera")]
pub mod camera;
pub mod file;
pub mod pattern;

/// One captured, JPEG-encoded image.
#[derive(Debug, Clone)]
pub struct Captured {
    /// A complete JPEG (SOI … EOI).
    pub jpeg: Bytes,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A producer of JPEG frames. Runs on its own thread (a camera handle need not be `Send`), so
/// [`Source::next_frame`] may block.
pub trait Source {
    /// The next frame. For a source that is not [`Source::self_paced`], the caller sleeps
    /// between calls to hold the frame rate.
    fn next_frame(&mut self) -> anyhow::Result<Captured>;

    /// True when `next_frame` itself waits for the next frame (a camera); false when it
    /// returns at once and the capture loop must pace it (a test pattern, a file).
    fn self_paced(&self) -> bool {
        false
    }

    /// One line for the logs: what this source is and what it produces.
    fn describe(&self) -> String;

    /// Nobody is watching: release what costs power (a camera stops streaming). The next
    /// [`Source::next_frame`] follows a [`Source::resume`].
    fn pause(&mut self) {}

    /// Somebody is watching again. An error is logged by the caller; `next_frame` then keeps
    /// trying, so a source may recover later (a camera plugged back in).
    fn resume(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// Which source to open, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The built-in moving test pattern.
    Test,
    /// A camera through nokhwa (cargo feature `camera`).
    Camera(CameraId),
    /// A file of concatenated JPEGs, or a folder of `.jpg` files.
    Path(PathBuf),
}

impl std::str::FromStr for SourceSpec {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "test" => SourceSpec::Test,
            "camera" => SourceSpec::Camera(CameraId::default()),
            path => SourceSpec::Path(path.into()),
        })
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Test => f.write_str("test"),
            SourceSpec::Camera(id) => write!(f, "camera {id}"),
            SourceSpec::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Which camera: an index (`0` is `/dev/video0` on Linux) or a device path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraId {
    /// The camera's index.
    Index(u32),
    /// A device path such as `/dev/video2` or a `/dev/v4l/by-id/…` link to one.
    Path(PathBuf),
}

impl Default for CameraId {
    fn default() -> Self {
        CameraId::Index(0)
    }
}

impl std::str::FromStr for CameraId {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.parse() {
            Ok(index) => CameraId::Index(index),
            Err(_) => CameraId::Path(s.into()),
        })
    }
}

impl fmt::Display for CameraId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CameraId::Index(index) => write!(f, "{index}"),
            CameraId::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// What a source is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// JPEG quality (1–100) where the drone encodes.
    pub quality: u8,
}

/// What a drone built without the `camera` feature says when asked for a camera.
pub const NO_CAMERA_SUPPORT: &str = "this drone was built without camera support; rebuild it \
     with `cargo build --release -p drone --features camera` (after `apt-get install \
     libclang-dev`; see docs/CAMERAS.md), or use --source test or --source FILE";

/// Opens the source named by `spec`.
pub fn open(spec: &SourceSpec, format: Format) -> anyhow::Result<Box<dyn Source>> {
    match spec {
        SourceSpec::Test => Ok(Box::new(pattern::TestPattern::new(format)?)),
        #[cfg(feature = "camera")]
        SourceSpec::Camera(id) => Ok(Box::new(camera::CameraSource::open(id, format)?)),
        #[cfg(not(feature = "camera"))]
        SourceSpec::Camera(_) => anyhow::bail!(NO_CAMERA_SUPPORT),
        SourceSpec::Path(path) => Ok(Box::new(file::FileSource::open(path, format)?)),
    }
}

/// Every camera with the formats, sizes and rates it offers, as text for `--list-cameras`;
/// `"no cameras found"` when there are none. Fails in a drone built without cameras.
pub fn list_cameras() -> anyhow::Result<String> {
    #[cfg(feature = "camera")]
    return camera::list();
    #[cfg(not(feature = "camera"))]
    anyhow::bail!(NO_CAMERA_SUPPORT)
}

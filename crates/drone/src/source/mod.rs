//! Where frames come from. Every source sits behind [`Source`], so the capture loop does not
//! care whether it reads a camera, a file or draws a test pattern.

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;

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
}

/// Which source to open, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The built-in moving test pattern.
    Test,
    /// A camera through nokhwa.
    Camera,
    /// A file of concatenated JPEGs, or a folder of `.jpg` files.
    Path(PathBuf),
}

impl std::str::FromStr for SourceSpec {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "test" => SourceSpec::Test,
            "camera" => SourceSpec::Camera,
            path => SourceSpec::Path(path.into()),
        })
    }
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Test => f.write_str("test"),
            SourceSpec::Camera => f.write_str("camera"),
            SourceSpec::Path(path) => write!(f, "{}", path.display()),
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

/// Opens the source named by `spec`.
pub fn open(spec: &SourceSpec, format: Format) -> anyhow::Result<Box<dyn Source>> {
    match spec {
        SourceSpec::Test => Ok(Box::new(pattern::TestPattern::new(format)?)),
        SourceSpec::Camera => anyhow::bail!(
            "camera support is not built in yet; use --source test"
        ),
        SourceSpec::Path(path) => anyhow::bail!(
            "file sources are not built in yet ({}); use --source test",
            path.display()
        ),
    }
}

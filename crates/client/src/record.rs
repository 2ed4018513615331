//! `--record`: the received JPEGs, untouched, one after another — an MJPEG file that ffmpeg
//! (`-f mjpeg`) and VLC play.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use framing::Frame;

/// An MJPEG file being written.
#[derive(Debug)]
pub struct Recorder {
    out: BufWriter<File>,
}

impl Recorder {
    /// Creates (or truncates) the file.
    pub fn create(path: &Path) -> anyhow::Result<Recorder> {
        let file = File::create(path)
            .with_context(|| format!("could not create recording {}", path.display()))?;
        Ok(Recorder { out: BufWriter::new(file) })
    }

    /// Appends one frame's JPEG.
    pub fn write(&mut self, frame: &Frame) -> anyhow::Result<()> {
        self.out.write_all(frame.payload()).context("could not write the recording")
    }

    /// Flushes what is buffered to the file.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush().context("could not write the recording")
    }
}

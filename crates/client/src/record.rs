//! `--record`: the received JPEGs, untouched, one after another — an MJPEG file that ffmpeg
//! (`-f mjpeg`) and VLC play — and beside it a JSON-lines sidecar (the same path with the
//! extension `.jsonl`: `rec.mjpeg` → `rec.jsonl`) with one line per recorded frame, in the
//! same order: its `seq`, `capture_us`, `fresh` and `meta` ([`crate::meta::json_line`]).
//! The n-th line describes the n-th JPEG.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use framing::Frame;

/// An MJPEG file and its sidecar being written.
#[derive(Debug)]
pub struct Recorder {
    out: BufWriter<File>,
    sidecar: BufWriter<File>,
    sidecar_path: PathBuf,
}

/// Where the sidecar of a recording at `path` goes: `path` with the extension `.jsonl`.
pub fn sidecar_path(path: &Path) -> PathBuf {
    path.with_extension("jsonl")
}

impl Recorder {
    /// Creates (or truncates) the file and its sidecar. Refuses a `.jsonl` path, whose
    /// sidecar would be the recording itself.
    pub fn create(path: &Path) -> anyhow::Result<Recorder> {
        let sidecar_path = sidecar_path(path);
        anyhow::ensure!(
            sidecar_path != path,
            "cannot record to {}: the metadata goes to a file of that name (record to a \
             .mjpeg file)",
            path.display()
        );
        let file = File::create(path)
            .with_context(|| format!("could not create recording {}", path.display()))?;
        let sidecar = File::create(&sidecar_path).with_context(|| {
            format!("could not create the recording's metadata file {}", sidecar_path.display())
        })?;
        Ok(Recorder { out: BufWriter::new(file), sidecar: BufWriter::new(sidecar), sidecar_path })
    }

    /// Appends one frame's JPEG, and its line to the sidecar.
    pub fn write(&mut self, frame: &Frame) -> anyhow::Result<()> {
        self.out.write_all(frame.payload()).context("could not write the recording")?;
        let mut line = crate::meta::json_line(frame);
        line.push('\n');
        self.sidecar.write_all(line.as_bytes()).with_context(|| self.sidecar_failed())
    }

    /// Flushes what is buffered to the files.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush().context("could not write the recording")?;
        self.sidecar.flush().with_context(|| self.sidecar_failed())
    }

    fn sidecar_failed(&self) -> String {
        format!("could not write the recording's metadata to {}", self.sidecar_path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sidecar_sits_beside_the_recording() {
        assert_eq!(sidecar_path(Path::new("/tmp/rec.mjpeg")), Path::new("/tmp/rec.jsonl"));
        assert_eq!(sidecar_path(Path::new("rec")), Path::new("rec.jsonl"));
        assert_eq!(sidecar_path(Path::new("a.b/rec.mjpg")), Path::new("a.b/rec.jsonl"));
    }

    #[test]
    fn a_jsonl_recording_is_refused_before_anything_is_written() {
        let dir = std::env::temp_dir().join(format!("client-record-{}", std::process::id()));
        let path = dir.join("rec.jsonl");
        let err = Recorder::create(&path).expect_err("would overwrite itself");
        assert!(err.to_string().contains("record to a .mjpeg file"), "{err}");
        assert!(!path.exists());
    }
}

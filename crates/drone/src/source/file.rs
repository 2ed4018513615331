//! Real footage without a camera: an MJPEG file (concatenated JPEGs, what `ffmpeg -f mjpeg`
//! writes) or a folder of `.jpg` files, played in a loop and passed through byte for byte.
//!
//! Everything is read into memory once; each frame is a [`Bytes`] slice of what was read, so
//! playing it costs a reference count, not a copy.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use bytes::Bytes;
use tracing::{info, warn};

use super::{Captured, Format, Source};
use crate::jpeg::{self, JpegFrame};

/// Most bytes read from a file or folder: the frames are held in memory.
pub const MAX_BYTES: u64 = 1 << 30;

/// Frames from a file or folder, looped.
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    frames: Vec<JpegFrame>,
    fps: u32,
    next: usize,
}

impl FileSource {
    /// Reads and splits `path`: an MJPEG file, or a folder of `.jpg`/`.jpeg` files (sorted by
    /// name). Fails with a message saying what is wrong when there is nothing to play.
    pub fn open(path: &Path, format: Format) -> anyhow::Result<FileSource> {
        let meta = std::fs::metadata(path).with_context(|| {
            format!("cannot read {}: no such file or folder, or no permission", path.display())
        })?;
        let frames = if meta.is_dir() { read_folder(path)? } else { read_file(path, meta.len())? };
        let source = FileSource { path: path.to_owned(), frames, fps: format.fps, next: 0 };
        let (w, h) = (source.frames[0].width, source.frames[0].height);
        if (w, h) != (format.width, format.height) {
            info!("{} is {w}x{h}; frames are passed through as they are", path.display());
        }
        Ok(source)
    }

    /// The frames, in playing order.
    pub fn frames(&self) -> &[JpegFrame] {
        &self.frames
    }
}

fn read_file(path: &Path, len: u64) -> anyhow::Result<Vec<JpegFrame>> {
    ensure!(len > 0, "{} is empty", path.display());
    ensure!(
        len <= MAX_BYTES,
        "{} is {} MiB; the drone holds its frames in memory and takes at most {} MiB \
         (cut it with ffmpeg, or use a folder of .jpg files)",
        path.display(),
        len >> 20,
        MAX_BYTES >> 20
    );
    let data = Bytes::from(
        std::fs::read(path).with_context(|| format!("could not read {}", path.display()))?,
    );
    let split = jpeg::split_jpegs(&data);
    if split.frames.is_empty() {
        if split.sizeless > 0 {
            bail!(
                "{} holds {} JPEG(s) but none has a size header (SOF) the drone can read",
                path.display(),
                split.sizeless
            );
        }
        bail!("{} holds no JPEG: {}", path.display(), jpeg::describe_non_jpeg(&data));
    }
    if split.skipped_bytes > 0 || split.sizeless > 0 {
        warn!(
            skipped_bytes = split.skipped_bytes,
            sizeless = split.sizeless,
            "{}: some of it is not whole JPEG frames; playing the {} that are",
            path.display(),
            split.frames.len()
        );
    }
    Ok(split.frames)
}

fn read_folder(dir: &Path) -> anyhow::Result<Vec<JpegFrame>> {
    let mut files = Vec::new();
    let mut others = 0usize;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("could not list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("could not list {}", dir.display()))?;
        let path = entry.path();
        let is_jpeg = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"));
        if is_jpeg && path.is_file() {
            files.push(path);
        } else {
            others += 1;
        }
    }
    ensure!(
        !files.is_empty(),
        "folder {} has no .jpg or .jpeg files ({others} other entries)",
        dir.display()
    );
    files.sort();
    let mut frames = Vec::with_capacity(files.len());
    let mut total = 0u64;
    let mut bad = Vec::new();
    for file in &files {
        let data =
            std::fs::read(file).with_context(|| format!("could not read {}", file.display()))?;
        total += data.len() as u64;
        ensure!(
            total <= MAX_BYTES,
            "the .jpg files in {} add up to more than {} MiB, which the drone holds in memory",
            dir.display(),
            MAX_BYTES >> 20
        );
        let data = Bytes::from(data);
        let frame = jpeg::trim_jpeg(&data)
            .map(|jpeg| data.slice(..jpeg.len()))
            .and_then(|jpeg| jpeg::dimensions(&jpeg).map(|(width, height)| (jpeg, width, height)));
        match frame {
            Some((jpeg, width, height)) => frames.push(JpegFrame { jpeg, width, height }),
            None => bad.push(file.display().to_string()),
        }
    }
    if !bad.is_empty() {
        warn!(files = ?bad, "skipping files that are not whole JPEGs");
    }
    ensure!(
        !frames.is_empty(),
        "none of the {} .jpg files in {} is a whole JPEG (first: {})",
        files.len(),
        dir.display(),
        bad.first().map_or("?", String::as_str)
    );
    Ok(frames)
}

impl Source for FileSource {
    fn next_frame(&mut self) -> anyhow::Result<Captured> {
        let frame = &self.frames[self.next % self.frames.len()];
        self.next = (self.next + 1) % self.frames.len();
        Ok(Captured { jpeg: frame.jpeg.clone(), width: frame.width, height: frame.height })
    }

    fn describe(&self) -> String {
        let first = &self.frames[0];
        let bytes: usize = self.frames.iter().map(|f| f.jpeg.len()).sum();
        format!(
            "{}: {} JPEG frames ({}x{}, {} KiB), looped at {} fps, passed through",
            self.path.display(),
            self.frames.len(),
            first.width,
            first.height,
            bytes / 1024,
            self.fps
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jpeg_encoder::{ColorType, Encoder};

    const FORMAT: Format = Format { width: 640, height: 480, fps: 30, quality: 80 };

    fn jpeg(shade: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let rgb = [shade, 255 - shade, 7].repeat(32 * 24);
        Encoder::new(&mut out, 80).encode(&rgb, 32, 24, ColorType::Rgb).expect("encode");
        out
    }

    fn err(path: &Path) -> String {
        format!("{:#}", FileSource::open(path, FORMAT).expect_err("should fail"))
    }

    #[test]
    fn clear_errors() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let missing = dir.path().join("nope.mjpeg");
        assert!(err(&missing).contains("no such file or folder"), "{}", err(&missing));
        let empty = dir.path().join("empty.mjpeg");
        std::fs::write(&empty, b"")?;
        assert!(err(&empty).contains("is empty"), "{}", err(&empty));
        let text = dir.path().join("notes.mjpeg");
        std::fs::write(&text, b"just some notes\n")?;
        let msg = err(&text);
        assert!(msg.contains("holds no JPEG") && msg.contains("text"), "{msg}");
        std::fs::write(dir.path().join("readme.txt"), b"hi")?;
        let msg = err(dir.path());
        assert!(msg.contains("no .jpg or .jpeg files") && msg.contains("3 other"), "{msg}");
        Ok(())
    }

    #[test]
    fn folder_is_played_in_name_order_and_loops() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let frames: Vec<Vec<u8>> = (0..3).map(|i| jpeg(i * 80)).collect();
        // Written out of order; names sort 0, 1, 2. One upper-case extension, one stray file.
        std::fs::write(dir.path().join("b_1.JPG"), &frames[1])?;
        std::fs::write(dir.path().join("c_2.jpeg"), &frames[2])?;
        std::fs::write(dir.path().join("a_0.jpg"), &frames[0])?;
        std::fs::write(dir.path().join("notes.txt"), b"not a frame")?;
        let mut source = FileSource::open(dir.path(), FORMAT)?;
        for i in 0..7 {
            let got = source.next_frame()?;
            assert_eq!(got.jpeg, frames[i % 3][..], "frame {i}");
            assert_eq!((got.width, got.height), (32, 24));
        }
        Ok(())
    }

    #[test]
    fn mjpeg_file_frames_are_slices_of_one_buffer() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("clip.mjpg");
        let frames: Vec<Vec<u8>> = (0..4).map(|i| jpeg(i * 60)).collect();
        std::fs::write(&path, frames.concat())?;
        let mut source = FileSource::open(&path, FORMAT)?;
        assert!(source.describe().contains("4 JPEG frames (32x24"), "{}", source.describe());
        let a = source.next_frame()?;
        let b = source.next_frame()?;
        assert_eq!(a.jpeg, frames[0][..]);
        assert_eq!(b.jpeg.as_ptr() as usize, a.jpeg.as_ptr() as usize + a.jpeg.len());
        Ok(())
    }
}

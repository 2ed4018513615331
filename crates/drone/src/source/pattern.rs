//! The built-in test pattern: a picture in which motion and frame order are plain to see, so a
//! viewer shows at a glance whether the stream is live, smooth and in order.
//!
//! - a static backdrop (colour gradient with sensor-like noise, so a frame compresses about as
//!   well as a camera's),
//! - a white bar sweeping left to right and a square bouncing around (motion),
//! - the frame number in large digits (order),
//! - the frame number as a 32-cell binary strip along the bottom (machine-readable order).

use anyhow::Context;
use bytes::Bytes;
use jpeg_encoder::{ColorType, Encoder};

use super::{Captured, Format, Source};

/// Draws and encodes the pattern.
#[derive(Debug)]
pub struct TestPattern {
    format: Format,
    backdrop: Vec<u8>,
    canvas: Vec<u8>,
    jpeg: Vec<u8>,
    n: u64,
}

/// 5×7 bitmaps of the digits, one byte per row, bit 4 leftmost.
const DIGITS: [[u8; 7]; 10] = [
    [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
    [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
    [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
    [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
    [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
    [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
    [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
    [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
    [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
    [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
];

/// Height of the binary strip at the bottom.
pub const STRIP_HEIGHT: u32 = 12;

impl TestPattern {
    /// A pattern of the given size; JPEG-encoded at the given quality.
    pub fn new(format: Format) -> anyhow::Result<TestPattern> {
        anyhow::ensure!(
            (64..=7680).contains(&format.width) && (64..=4320).contains(&format.height),
            "test pattern size {}x{} is out of range (64x64 to 7680x4320)",
            format.width,
            format.height
        );
        anyhow::ensure!((1..=100).contains(&format.quality), "--quality must be 1 to 100");
        let (w, h) = (format.width as usize, format.height as usize);
        let mut backdrop = vec![0u8; w * h * 3];
        // Seeded: the same noise in every run, so frame sizes and benchmarks are repeatable.
        let mut rng = fastrand::Rng::with_seed(0x2545_f491_4f6c_dd1d);
        for y in 0..h {
            for x in 0..w {
                // Cheap noise, like a real sensor's, so the JPEG is camera-sized.
                let noise = rng.i32(-16..16);
                let px = &mut backdrop[(y * w + x) * 3..][..3];
                let base = [x * 255 / w, y * 255 / h, 255 - x * 255 / w];
                for (c, b) in px.iter_mut().zip(base) {
                    *c = (b as i32 + noise).clamp(0, 255) as u8;
                }
            }
        }
        Ok(TestPattern { format, canvas: backdrop.clone(), backdrop, jpeg: Vec::new(), n: 0 })
    }

    fn draw(&mut self) {
        let (w, h) = (self.format.width, self.format.height);
        self.canvas.copy_from_slice(&self.backdrop);
        let n = self.n;
        // Sweeping bar: one screen width every 4 s at 30 fps.
        let bar_x = ((n * u64::from(w) / 120) % u64::from(w)) as u32;
        self.fill(bar_x, 0, (w / 40).max(2), h - STRIP_HEIGHT, [255, 255, 255]);
        // Bouncing square.
        let side = (h / 6).max(8);
        let (sx, sy) = (bounce(n * 5, w - side), bounce(n * 3, h - STRIP_HEIGHT - side));
        self.fill(sx, sy, side, side, [220, 30, 40]);
        // Frame number in digits, on a dark plate.
        let text = n.to_string();
        let scale = (h / 60).max(1);
        let plate_w = (text.len() as u32 * 6 + 1) * scale;
        self.fill(0, 0, plate_w.min(w), 9 * scale, [0, 0, 0]);
        for (i, ch) in text.bytes().enumerate() {
            self.digit(usize::from(ch - b'0'), (i as u32 * 6 + 1) * scale, scale, scale);
        }
        // Binary strip: bit 31 leftmost, white = 1.
        let cell = w / 32;
        for bit in 0..32 {
            let on = (n >> (31 - bit)) & 1 == 1;
            let colour = if on { [255, 255, 255] } else { [0, 0, 0] };
            self.fill(bit * cell, h - STRIP_HEIGHT, cell, STRIP_HEIGHT, colour);
        }
    }

    fn digit(&mut self, d: usize, x0: u32, y0: u32, scale: u32) {
        for (row, bits) in DIGITS[d].iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    let (x, y) = (x0 + col * scale, y0 + row as u32 * scale);
                    self.fill(x, y, scale, scale, [255, 255, 0]);
                }
            }
        }
    }

    fn fill(&mut self, x0: u32, y0: u32, fw: u32, fh: u32, rgb: [u8; 3]) {
        let (w, h) = (self.format.width, self.format.height);
        for y in y0..(y0 + fh).min(h) {
            let row = (y * w) as usize * 3;
            for x in x0..(x0 + fw).min(w) {
                self.canvas[row + x as usize * 3..][..3].copy_from_slice(&rgb);
            }
        }
    }
}

/// Position of something moving at `t` that bounces between 0 and `max`.
fn bounce(t: u64, max: u32) -> u32 {
    let max = u64::from(max.max(1));
    let t = t % (2 * max);
    (if t < max { t } else { 2 * max - t }) as u32
}

/// Reads the frame number back from the binary strip of a decoded test-pattern frame (RGB,
/// `width` × `height`). Tests use it to check that what a viewer shows is what was sent.
pub fn read_strip(rgb: &[u8], width: u32, height: u32) -> Option<u64> {
    let cell = width / 32;
    let y = height.checked_sub(STRIP_HEIGHT / 2)?;
    let mut n = 0u64;
    for bit in 0..32 {
        let x = bit * cell + cell / 2;
        let i = ((y * width + x) * 3) as usize;
        let luma = rgb.get(i..i + 3)?.iter().map(|&c| u32::from(c)).sum::<u32>() / 3;
        n = (n << 1) | u64::from(luma > 128);
    }
    Some(n)
}

impl Source for TestPattern {
    fn next_frame(&mut self) -> anyhow::Result<Captured> {
        self.draw();
        self.n += 1;
        self.jpeg.clear();
        let (w, h) = (self.format.width, self.format.height);
        Encoder::new(&mut self.jpeg, self.format.quality)
            .encode(&self.canvas, w as u16, h as u16, ColorType::Rgb)
            .context("could not encode the test pattern")?;
        Ok(Captured { jpeg: Bytes::copy_from_slice(&self.jpeg), width: w, height: h })
    }

    fn describe(&self) -> String {
        let f = self.format;
        format!("test pattern {}x{} at {} fps, JPEG q{}", f.width, f.height, f.fps, f.quality)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_reads_back_after_jpeg_round_trip() -> anyhow::Result<()> {
        let format = Format { width: 640, height: 480, fps: 30, quality: 80 };
        let mut pattern = TestPattern::new(format)?;
        for expected in 0..3 {
            let frame = pattern.next_frame()?;
            let img = image::load_from_memory(&frame.jpeg)?.to_rgb8();
            assert_eq!((img.width(), img.height()), (640, 480));
            assert_eq!(read_strip(img.as_raw(), 640, 480), Some(expected));
        }
        Ok(())
    }

    #[test]
    fn rejects_silly_sizes() {
        let format = Format { width: 1, height: 480, fps: 30, quality: 80 };
        assert!(TestPattern::new(format).is_err());
    }
}

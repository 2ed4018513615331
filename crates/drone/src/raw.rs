//! Raw camera pixels to JPEG, for cameras that offer no MJPEG at the size asked for.
//!
//! JPEG stores Y'CbCr, and so does a YUYV or NV12 camera. Rather than converting to RGB (which
//! the encoder would convert straight back), [`YuyvImage`] and [`Nv12Image`] hand the
//! encoder its Y, Cb and Cr rows directly; the only arithmetic is a table lookup that
//! stretches the camera's limited range (Y 16–235, C 16–240, what V4L2 means by default) to
//! the full range JPEG expects. `docs/BENCHMARKS.md` has the figures against the RGB route.

use anyhow::Context;
use bytes::Bytes;
use jpeg_encoder::{ColorType, Encoder, ImageBuffer, JpegColorType};

/// A raw pixel layout a camera may deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// Packed 4:2:2, `Y0 Cb Y1 Cr` per two pixels.
    Yuyv,
    /// 4:2:0: a Y plane, then one plane of interleaved `Cb Cr` pairs.
    Nv12,
    /// 8-bit R, G, B.
    Rgb,
    /// 8-bit B, G, R.
    Bgr,
    /// 8-bit luma only.
    Gray,
}

impl RawFormat {
    /// Bytes in one frame of `width` × `height`, `None` when the size does not suit the
    /// layout (odd widths for YUYV, odd sizes for NV12) or overflows.
    pub fn frame_len(self, width: u32, height: u32) -> Option<usize> {
        let (w, h) = (usize::try_from(width).ok()?, usize::try_from(height).ok()?);
        let pixels = w.checked_mul(h)?;
        match self {
            RawFormat::Yuyv if w % 2 == 0 => pixels.checked_mul(2),
            RawFormat::Nv12 if w % 2 == 0 && h % 2 == 0 => Some(pixels + pixels / 2),
            RawFormat::Rgb | RawFormat::Bgr => pixels.checked_mul(3),
            RawFormat::Gray => Some(pixels),
            RawFormat::Yuyv | RawFormat::Nv12 => None,
        }
    }
}

/// Limited-range luma (16–235) to full range (0–255).
static Y_FULL: [u8; 256] = range_table(16, 219);
/// Limited-range chroma (16–240, centred on 128) to full range.
static C_FULL: [u8; 256] = range_table(16, 224);

const fn range_table(low: i32, span: i32) -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let v = ((i as i32 - low) * 255 + span / 2) / span;
        table[i] = if v < 0 {
            0
        } else if v > 255 {
            255
        } else {
            v as u8
        };
        i += 1;
    }
    table
}

/// A YUYV frame as the encoder's input, converted row by row as the encoder asks.
#[derive(Debug, Clone, Copy)]
pub struct YuyvImage<'a> {
    data: &'a [u8],
    width: u16,
    height: u16,
}

impl<'a> YuyvImage<'a> {
    /// `None` when `data` is shorter than a `width` × `height` YUYV frame or the width is odd.
    pub fn new(data: &'a [u8], width: u16, height: u16) -> Option<Self> {
        let len = RawFormat::Yuyv.frame_len(u32::from(width), u32::from(height))?;
        Some(YuyvImage { data: data.get(..len)?, width, height })
    }
}

impl ImageBuffer for YuyvImage<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let stride = usize::from(self.width) * 2;
        let row = &self.data[usize::from(y) * stride..][..stride];
        for px in row.chunks_exact(4) {
            let (cb, cr) = (C_FULL[usize::from(px[1])], C_FULL[usize::from(px[3])]);
            buffers[0].extend_from_slice(&[Y_FULL[usize::from(px[0])], Y_FULL[usize::from(px[2])]]);
            buffers[1].extend_from_slice(&[cb, cb]);
            buffers[2].extend_from_slice(&[cr, cr]);
        }
    }
}

/// An NV12 frame as the encoder's input.
#[derive(Debug, Clone, Copy)]
pub struct Nv12Image<'a> {
    data: &'a [u8],
    width: u16,
    height: u16,
}

impl<'a> Nv12Image<'a> {
    /// `None` when `data` is shorter than a `width` × `height` NV12 frame or a side is odd.
    pub fn new(data: &'a [u8], width: u16, height: u16) -> Option<Self> {
        let len = RawFormat::Nv12.frame_len(u32::from(width), u32::from(height))?;
        Some(Nv12Image { data: data.get(..len)?, width, height })
    }
}

impl ImageBuffer for Nv12Image<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width
    }

    fn height(&self) -> u16 {
        self.height
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let (w, h) = (usize::from(self.width), usize::from(self.height));
        let luma = &self.data[usize::from(y) * w..][..w];
        let chroma = &self.data[w * h + usize::from(y / 2) * w..][..w];
        buffers[0].extend(luma.iter().map(|&v| Y_FULL[usize::from(v)]));
        for pair in chroma.chunks_exact(2) {
            let (cb, cr) = (C_FULL[usize::from(pair[0])], C_FULL[usize::from(pair[1])]);
            buffers[1].extend_from_slice(&[cb, cb]);
            buffers[2].extend_from_slice(&[cr, cr]);
        }
    }
}

/// Encodes raw frames to JPEG at a fixed quality.
#[derive(Debug)]
pub struct RawEncoder {
    quality: u8,
    /// Size of the last JPEG, to allocate the next one's buffer in one go.
    last_len: usize,
}

impl RawEncoder {
    /// An encoder at `quality` (1–100).
    pub fn new(quality: u8) -> RawEncoder {
        RawEncoder { quality: quality.clamp(1, 100), last_len: 64 * 1024 }
    }

    /// One frame of `format` to JPEG. `data` may be longer than the frame (a camera buffer):
    /// the rest is ignored.
    pub fn encode(
        &mut self,
        format: RawFormat,
        data: &[u8],
        width: u32,
        height: u32,
    ) -> anyhow::Result<Bytes> {
        let (w, h) = match (u16::try_from(width), u16::try_from(height)) {
            (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
            _ => anyhow::bail!("cannot encode a {width}x{height} frame as JPEG (1 to 65535)"),
        };
        let len = format
            .frame_len(width, height)
            .with_context(|| format!("{format:?} cannot have the size {width}x{height}"))?;
        anyhow::ensure!(
            data.len() >= len,
            "{format:?} frame {width}x{height} needs {len} bytes, the camera gave {}",
            data.len()
        );
        let mut out = Vec::with_capacity(self.last_len + self.last_len / 4);
        let encoder = Encoder::new(&mut out, self.quality);
        let encoded = match format {
            RawFormat::Yuyv => YuyvImage::new(data, w, h).map(|img| encoder.encode_image(img)),
            RawFormat::Nv12 => Nv12Image::new(data, w, h).map(|img| encoder.encode_image(img)),
            RawFormat::Rgb => Some(encoder.encode(data, w, h, ColorType::Rgb)),
            RawFormat::Bgr => Some(encoder.encode(data, w, h, ColorType::Bgr)),
            RawFormat::Gray => Some(encoder.encode(data, w, h, ColorType::Luma)),
        };
        encoded
            .context("frame too short")?
            .with_context(|| format!("could not encode a {format:?} frame as JPEG"))?;
        self.last_len = out.len();
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(jpeg: &[u8]) -> image::RgbImage {
        image::load_from_memory(jpeg).expect("decodes").to_rgb8()
    }

    /// Limited-range Y'CbCr (BT.601) of an RGB colour, as a camera would send it.
    fn limited_ycbcr(rgb: [u8; 3]) -> [u8; 3] {
        let [r, g, b] = rgb.map(f32::from);
        let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
        let cb = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
        let cr = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
        [y, cb, cr].map(|v| v.round() as u8)
    }

    fn close(got: &image::Rgb<u8>, want: [u8; 3]) -> bool {
        got.0.iter().zip(want).all(|(&g, w)| g.abs_diff(w) <= 12)
    }

    #[test]
    fn range_tables_stretch_limited_to_full() {
        assert_eq!((Y_FULL[0], Y_FULL[16], Y_FULL[235], Y_FULL[255]), (0, 0, 255, 255));
        assert_eq!((C_FULL[16], C_FULL[128], C_FULL[240]), (0, 128, 255));
    }

    #[test]
    fn yuyv_and_nv12_keep_their_colours() -> anyhow::Result<()> {
        let (w, h) = (64u32, 32u32);
        // Left half red, right half blue.
        let colour = |x: u32| if x < w / 2 { [220, 30, 40] } else { [20, 40, 200] };
        let mut yuyv = Vec::new();
        for _ in 0..h {
            for x in (0..w).step_by(2) {
                let [y0, cb, cr] = limited_ycbcr(colour(x));
                let [y1, _, _] = limited_ycbcr(colour(x + 1));
                yuyv.extend_from_slice(&[y0, cb, y1, cr]);
            }
        }
        let mut nv12: Vec<u8> =
            (0..h).flat_map(|_| (0..w).map(|x| limited_ycbcr(colour(x))[0])).collect();
        for _ in 0..h / 2 {
            for x in (0..w).step_by(2) {
                let [_, cb, cr] = limited_ycbcr(colour(x));
                nv12.extend_from_slice(&[cb, cr]);
            }
        }
        let mut encoder = RawEncoder::new(90);
        for (format, data) in [(RawFormat::Yuyv, &yuyv), (RawFormat::Nv12, &nv12)] {
            let mut padded = data.clone();
            padded.extend_from_slice(&[0xaa; 100]); // camera buffers are often longer
            let img = decode(&encoder.encode(format, &padded, w, h)?);
            assert_eq!((img.width(), img.height()), (w, h));
            for (x, y) in [(4, 4), (20, 20), (40, 10), (60, 28)] {
                let got = img.get_pixel(x, y);
                assert!(close(got, colour(x)), "{format:?} at {x},{y}: {got:?} vs {:?}", colour(x));
            }
        }
        Ok(())
    }

    #[test]
    fn rgb_bgr_gray() -> anyhow::Result<()> {
        let mut encoder = RawEncoder::new(90);
        let rgb = [200u8, 100, 50].repeat(16 * 16);
        let bgr = [50u8, 100, 200].repeat(16 * 16);
        for (format, data) in [(RawFormat::Rgb, &rgb), (RawFormat::Bgr, &bgr)] {
            let img = decode(&encoder.encode(format, data, 16, 16)?);
            assert!(close(img.get_pixel(8, 8), [200, 100, 50]), "{format:?}");
        }
        let img = decode(&encoder.encode(RawFormat::Gray, &[77; 256], 16, 16)?);
        assert!(close(img.get_pixel(3, 3), [77, 77, 77]));
        Ok(())
    }

    #[test]
    fn short_or_odd_frames_are_errors() {
        let mut encoder = RawEncoder::new(80);
        assert!(encoder.encode(RawFormat::Yuyv, &[0; 100], 16, 16).is_err());
        assert!(encoder.encode(RawFormat::Yuyv, &[0; 1000], 15, 16).is_err());
        assert!(encoder.encode(RawFormat::Nv12, &[0; 1000], 16, 15).is_err());
        assert!(encoder.encode(RawFormat::Rgb, &[0; 10], 0, 16).is_err());
        assert!(encoder.encode(RawFormat::Gray, &[0; 10], 70_000, 1).is_err());
    }
}

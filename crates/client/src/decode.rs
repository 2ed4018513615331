//! Bounded JPEG decoding into a reusable buffer.
//!
//! A frame's JPEG says how big its picture is, and a decoder that believes it can be made to
//! allocate gigabytes by a few hundred bytes. So a frame is decoded only when its header's
//! size is within [`MAX_DIMENSION`] and its JPEG says the same size; both are checked before
//! anything sized by the picture is allocated, and the `image` decoder's own limits are set
//! as well. A frame that fails is skipped; [`Decoder::decode_frame`] logs that once per burst
//! of failures, not once per frame.

use std::io::Cursor;
use std::time::{Duration, Instant};

use framing::{Encoding, Frame, FrameHeader, MAX_DIMENSION};
use image::codecs::jpeg::JpegDecoder;
use image::{ColorType, ImageDecoder, Limits};
use tracing::{info, warn};

/// The largest picture buffer decoding may take: [`MAX_DIMENSION`]² RGB pixels (192 MiB).
pub const MAX_PICTURE_BYTES: u64 = MAX_DIMENSION as u64 * MAX_DIMENSION as u64 * 3;

/// While frames keep failing, how often the log says how many more failed.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);

/// A burst of failures is over when a frame decodes this long after the last failure.
const RECOVERED_AFTER: Duration = Duration::from_secs(1);

/// Why a frame was not decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The frame header's size is zero or above [`MAX_DIMENSION`].
    #[error(
        "the frame header says {width}x{height}; a viewer decodes pictures from 1x1 to \
         {MAX_DIMENSION}x{MAX_DIMENSION}"
    )]
    OutOfRange {
        /// Width in the frame header.
        width: u32,
        /// Height in the frame header.
        height: u32,
    },
    /// The JPEG's own header disagrees with the frame header.
    #[error("the JPEG says {jpeg_width}x{jpeg_height} but the frame header says {width}x{height}")]
    SizeMismatch {
        /// Width in the frame header.
        width: u32,
        /// Height in the frame header.
        height: u32,
        /// Width in the JPEG's SOF header.
        jpeg_width: u32,
        /// Height in the JPEG's SOF header.
        jpeg_height: u32,
    },
    /// The frame is not a JPEG (a newer source's encoding).
    #[error("the frame's encoding ({0}) is not one this viewer decodes")]
    Encoding(u8),
    /// The JPEG is neither RGB nor greyscale (CMYK, say).
    #[error("the JPEG's colour type {0:?} is not RGB or greyscale")]
    Colour(ColorType),
    /// The JPEG is damaged, or the decoder refused it.
    #[error("bad JPEG: {0}")]
    Jpeg(#[from] image::ImageError),
}

/// Decodes JPEGs, reusing one RGB buffer so a steady stream of same-sized frames needs no new
/// picture buffer per frame.
#[derive(Debug, Default)]
pub struct Decoder {
    rgb: Vec<u8>,
    failures: Failures,
}

/// A decoded picture, borrowed from the [`Decoder`].
#[derive(Debug)]
pub struct Picture<'a> {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Packed RGB, 3 bytes a pixel, row by row.
    pub rgb: &'a [u8],
}

impl Decoder {
    /// Decodes one frame, or logs why not (once per burst of failures) and returns `None`.
    pub fn decode_frame(&mut self, frame: &Frame) -> Option<Picture<'_>> {
        let seq = frame.header().seq;
        match self.fill(frame.header(), frame.payload()) {
            Ok((width, height)) => {
                if let Say::Recovered(n) = self.failures.decoded(Instant::now()) {
                    info!("frames decode again ({n} more failed to decode before they did)");
                }
                Some(Picture { width, height, rgb: &self.rgb })
            }
            Err(err) => {
                match self.failures.failed(Instant::now()) {
                    Say::First => warn!(
                        seq,
                        error = %err,
                        "frame did not decode; skipping it (until frames decode again, further \
                         failures are counted and summarised every 5 s)"
                    ),
                    Say::More(n, span) => {
                        let secs = span.as_secs_f64();
                        warn!(latest = %err, "{n} more frames failed to decode in {secs:.0} s");
                    }
                    Say::Nothing | Say::Recovered(_) => {}
                }
                None
            }
        }
    }

    /// Decodes a JPEG whose frame header is `header`. Grey JPEGs are expanded to RGB.
    pub fn decode(
        &mut self,
        header: &FrameHeader,
        jpeg: &[u8],
    ) -> Result<Picture<'_>, DecodeError> {
        let (width, height) = self.fill(header, jpeg)?;
        Ok(Picture { width, height, rgb: &self.rgb })
    }

    /// Decodes into `self.rgb` and returns the picture's size.
    fn fill(&mut self, header: &FrameHeader, jpeg: &[u8]) -> Result<(u32, u32), DecodeError> {
        if let Encoding::Other(n) = header.encoding {
            return Err(DecodeError::Encoding(n));
        }
        let (width, height) = (header.width, header.height);
        let within = 1..=MAX_DIMENSION;
        if !within.contains(&width) || !within.contains(&height) {
            return Err(DecodeError::OutOfRange { width, height });
        }
        // Reads the JPEG's headers only. (It copies the compressed bytes, which the message
        // length limit already bounds; nothing here is sized by the picture.)
        let mut decoder = JpegDecoder::new(Cursor::new(jpeg))?;
        let (jpeg_width, jpeg_height) = decoder.dimensions();
        if (jpeg_width, jpeg_height) != (width, height) {
            return Err(DecodeError::SizeMismatch { width, height, jpeg_width, jpeg_height });
        }
        // The decoder's own limits too, so that it refuses what we did not think of.
        let mut limits = Limits::default();
        limits.max_image_width = Some(MAX_DIMENSION);
        limits.max_image_height = Some(MAX_DIMENSION);
        limits.max_alloc = Some(MAX_PICTURE_BYTES);
        decoder.set_limits(limits.clone())?;
        let colour = decoder.color_type();
        if colour != ColorType::Rgb8 && colour != ColorType::L8 {
            return Err(DecodeError::Colour(colour));
        }
        // `read_image` does not count its buffer against `max_alloc`; count it here.
        limits.reserve(decoder.total_bytes())?;
        let pixels = width as usize * height as usize;
        // Room for RGB whatever the JPEG holds: a grey one is decoded into the first third
        // and spread out in place, so no second buffer is needed.
        self.rgb.resize(pixels * 3, 0);
        let decoded = if colour == ColorType::L8 { pixels } else { pixels * 3 };
        decoder.read_image(&mut self.rgb[..decoded])?;
        if colour == ColorType::L8 {
            // Back to front, so that no grey byte is overwritten before it is spread.
            for i in (0..pixels).rev() {
                let grey = self.rgb[i];
                self.rgb[3 * i..3 * i + 3].fill(grey);
            }
        }
        Ok((width, height))
    }
}

/// What to log about decoding, as [`Failures`] decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Say {
    Nothing,
    /// The first failure of a burst: say why.
    First,
    /// The burst goes on: this many more failures in this long.
    More(u64, Duration),
    /// The burst is over; this many failed after the last line about them.
    Recovered(u64),
}

/// Frames that did not decode, logged once per burst: the first failure with its reason, a
/// count every [`SUMMARY_EVERY`] while failures go on, and the rest of the count when a frame
/// decodes [`RECOVERED_AFTER`] after the last failure. A hostile or broken source that
/// sends thirty bad frames a second gets a line every few seconds, not thirty.
#[derive(Debug, Default)]
struct Failures {
    /// When the current burst was last reported; `None` between bursts.
    reported: Option<Instant>,
    /// Failures since then.
    unreported: u64,
    /// The most recent failure.
    last: Option<Instant>,
}

impl Failures {
    fn failed(&mut self, now: Instant) -> Say {
        self.last = Some(now);
        let Some(at) = self.reported else {
            self.reported = Some(now);
            return Say::First;
        };
        self.unreported += 1;
        let since = now.duration_since(at);
        if since < SUMMARY_EVERY {
            return Say::Nothing;
        }
        self.reported = Some(now);
        Say::More(std::mem::take(&mut self.unreported), since)
    }

    fn decoded(&mut self, now: Instant) -> Say {
        match (self.reported, self.last) {
            (Some(_), Some(last)) if now.duration_since(last) >= RECOVERED_AFTER => {
                self.reported = None;
                Say::Recovered(std::mem::take(&mut self.unreported))
            }
            _ => Say::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(width: u32, height: u32) -> FrameHeader {
        FrameHeader { seq: 0, capture_us: 0, encoding: Encoding::Jpeg, width, height }
    }

    fn jpeg(picture: image::DynamicImage) -> Vec<u8> {
        let mut jpeg = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90);
        picture.write_with_encoder(encoder).expect("encodes");
        jpeg
    }

    fn rgb_jpeg(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, _| image::Rgb([x as u8, 0, 200]));
        jpeg(picture.into())
    }

    /// `jpeg` with its SOF0 header rewritten to claim `width`×`height`.
    fn claiming(mut jpeg: Vec<u8>, width: u16, height: u16) -> Vec<u8> {
        let mut pos = 2;
        while jpeg[pos + 1] != 0xc0 {
            pos += 2 + usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        }
        jpeg[pos + 5..pos + 7].copy_from_slice(&height.to_be_bytes());
        jpeg[pos + 7..pos + 9].copy_from_slice(&width.to_be_bytes());
        jpeg
    }

    #[test]
    fn decodes_a_jpeg_of_the_size_its_header_says() {
        let mut decoder = Decoder::default();
        let picture = decoder.decode(&header(32, 16), &rgb_jpeg(32, 16)).expect("decodes");
        assert_eq!((picture.width, picture.height, picture.rgb.len()), (32, 16, 32 * 16 * 3));
        assert!(picture.rgb[2] > 150, "blue channel kept: {:?}", &picture.rgb[..3]);
    }

    #[test]
    fn grey_jpeg_is_spread_to_rgb() {
        let grey =
            image::GrayImage::from_fn(16, 8, |x, _| image::Luma([if x < 8 { 20 } else { 230 }]));
        let mut decoder = Decoder::default();
        // A larger colour frame first: the buffer is reused, not reallocated or left stale.
        decoder.decode(&header(64, 64), &rgb_jpeg(64, 64)).expect("decodes");
        let picture = decoder.decode(&header(16, 8), &jpeg(grey.into())).expect("decodes");
        assert_eq!(picture.rgb.len(), 16 * 8 * 3);
        let pixel = |x: usize| &picture.rgb[3 * x..3 * x + 3];
        assert!(pixel(0).iter().all(|&v| v < 40), "dark pixel: {:?}", pixel(0));
        assert!(pixel(15).iter().all(|&v| v > 210), "light pixel: {:?}", pixel(15));
        assert!(picture.rgb.chunks_exact(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn a_jpeg_that_disagrees_with_its_header_is_refused() {
        let mut decoder = Decoder::default();
        let err = decoder.decode(&header(32, 16), &rgb_jpeg(16, 32)).expect_err("refused");
        assert!(matches!(err, DecodeError::SizeMismatch { jpeg_width: 16, .. }), "{err}");
        // The attack: a few hundred bytes whose JPEG claims 60000x60000 (10.8 GB as RGB).
        let lying = claiming(rgb_jpeg(16, 16), 60_000, 60_000);
        assert!(lying.len() < 1000);
        let err = decoder.decode(&header(16, 16), &lying).expect_err("refused");
        assert_eq!(err.to_string(), "the JPEG says 60000x60000 but the frame header says 16x16");
        assert_eq!(decoder.rgb.capacity(), 0, "allocated for a refused frame");
    }

    #[test]
    fn a_header_above_the_maximum_is_refused_before_the_jpeg_is_read() {
        let mut decoder = Decoder::default();
        let lying = claiming(rgb_jpeg(16, 16), 60_000, 60_000);
        for (width, height) in [(60_000, 60_000), (MAX_DIMENSION + 1, 16), (16, 0)] {
            let err = decoder.decode(&header(width, height), &lying).expect_err("refused");
            assert!(matches!(err, DecodeError::OutOfRange { .. }), "{width}x{height}: {err}");
        }
        assert_eq!(decoder.rgb.capacity(), 0, "allocated for a refused frame");
    }

    #[test]
    fn other_encodings_and_garbage_are_errors() {
        let mut decoder = Decoder::default();
        let other = FrameHeader { encoding: Encoding::Other(7), ..header(16, 16) };
        assert!(matches!(decoder.decode(&other, &rgb_jpeg(16, 16)), Err(DecodeError::Encoding(7))));
        let garbage = decoder.decode(&header(16, 16), b"\xff\xd8 not much of a JPEG");
        assert!(matches!(garbage, Err(DecodeError::Jpeg(_))), "{garbage:?}");
    }

    #[test]
    fn failures_are_logged_once_per_burst() {
        let mut failures = Failures::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(failures.decoded(at(0)), Say::Nothing);
        assert_eq!(failures.failed(at(10)), Say::First);
        // Thirty bad frames a second for 12 s, good frames between them: a count every 5 s.
        let mut said = Vec::new();
        for ms in (43..12_000).step_by(33) {
            said.push(failures.failed(at(ms)));
            said.push(failures.decoded(at(ms + 10)));
        }
        let lines: Vec<_> = said.into_iter().filter(|s| *s != Say::Nothing).collect();
        let five = Duration::from_millis(5016);
        assert_eq!(lines, [Say::More(152, five), Say::More(152, five)]);
        // Good frames only: a second after the last failure, the burst is over.
        assert_eq!(failures.decoded(at(12_500)), Say::Nothing);
        assert_eq!(failures.decoded(at(13_100)), Say::Recovered(59));
        assert_eq!(failures.decoded(at(13_200)), Say::Nothing);
        // The next failure starts a new burst, and says why.
        assert_eq!(failures.failed(at(20_000)), Say::First);
    }
}

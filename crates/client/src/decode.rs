//! JPEG decoding into a reusable buffer.

use std::io::Cursor;

use image::ImageDecoder;
use image::codecs::jpeg::JpegDecoder;

/// Decodes JPEGs, reusing one RGB buffer so a steady stream allocates nothing per frame.
#[derive(Debug, Default)]
pub struct Decoder {
    rgb: Vec<u8>,
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
    /// Decodes one JPEG. Grey JPEGs are expanded to RGB.
    pub fn decode(&mut self, jpeg: &[u8]) -> image::ImageResult<Picture<'_>> {
        let decoder = JpegDecoder::new(Cursor::new(jpeg))?;
        let (width, height) = decoder.dimensions();
        let colour = decoder.color_type();
        self.rgb.resize(decoder.total_bytes() as usize, 0);
        decoder.read_image(&mut self.rgb)?;
        if colour == image::ColorType::L8 {
            let grey = std::mem::take(&mut self.rgb);
            self.rgb = grey.iter().flat_map(|&g| [g, g, g]).collect();
        } else if colour != image::ColorType::Rgb8 {
            return Err(image::ImageError::Unsupported(
                image::error::UnsupportedError::from_format_and_kind(
                    image::error::ImageFormatHint::Exact(image::ImageFormat::Jpeg),
                    image::error::UnsupportedErrorKind::Color(colour.into()),
                ),
            ));
        }
        Ok(Picture { width, height, rgb: &self.rgb })
    }
}

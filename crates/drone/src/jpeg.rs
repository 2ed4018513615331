//! Just enough JPEG parsing to pass JPEGs through untouched: find where one ends, split a
//! stream of them, read a frame's size. Nothing here decodes pixels.
//!
//! A JPEG is a sequence of marker segments, then entropy-coded scan data, then EOI:
//!
//! ```text
//! FF D8                         SOI, no length
//! FF Em  len(2) payload         APPn (EXIF may hold a whole thumbnail JPEG, FF D9 and all)
//! FF C0  len(2) P Y(2) X(2) ..  SOFn: precision, height, width
//! FF DA  len(2) header          SOS, then entropy-coded data up to the next marker:
//! ab cd FF 00 ef FF D0 ..         FF 00 is a stuffed FF byte, FF D0-D7 are restart markers
//! FF D9                         EOI (a progressive JPEG has more segments and scans first)
//! ```
//!
//! So the real end is found by walking segment lengths up to each SOS (which skips anything
//! inside an EXIF thumbnail) and scanning entropy-coded data for a marker that is neither
//! stuffing nor a restart. A camera's buffer holds padding after EOI, which is left out.

use bytes::Bytes;

/// Start of image.
const SOI: u8 = 0xd8;
/// End of image.
const EOI: u8 = 0xd9;
/// Start of scan.
const SOS: u8 = 0xda;
/// Temporary marker for arithmetic coding; stands alone like SOI.
const TEM: u8 = 0x01;

fn is_rst(marker: u8) -> bool {
    (0xd0..=0xd7).contains(&marker)
}

/// The JPEG at the start of `data`, without whatever follows its EOI marker (a camera's
/// buffer padding, the next frame of a stream). `None` when `data` does not start with a
/// JPEG, the JPEG is cut short, or it has no scan (no picture).
pub fn trim_jpeg(data: &[u8]) -> Option<&[u8]> {
    jpeg_len(data).map(|len| &data[..len])
}

/// Length of the JPEG at the start of `data`, EOI included.
fn jpeg_len(data: &[u8]) -> Option<usize> {
    if data.get(..2)? != [0xff, SOI] {
        return None;
    }
    let mut pos = 2;
    let mut seen_scan = false;
    loop {
        // At a marker: FF, optional FF fill bytes, marker code.
        if *data.get(pos)? != 0xff {
            return None;
        }
        while *data.get(pos + 1)? == 0xff {
            pos += 1;
        }
        let marker = data[pos + 1];
        match marker {
            EOI => return seen_scan.then_some(pos + 2),
            SOI | 0x00 => return None,
            m if m == TEM || is_rst(m) => pos += 2,
            _ => {
                let len =
                    usize::from(u16::from_be_bytes([*data.get(pos + 2)?, *data.get(pos + 3)?]));
                if len < 2 {
                    return None;
                }
                pos += 2 + len;
                if pos > data.len() {
                    return None;
                }
                if marker == SOS {
                    seen_scan = true;
                    pos = skip_entropy_coded(data, pos)?;
                }
            }
        }
    }
}

/// From the start of entropy-coded data, the position of the first marker that ends it.
fn skip_entropy_coded(data: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        pos += memchr_ff(data.get(pos..)?)?;
        // `pos` is at an FF; what follows decides.
        let mut next = pos + 1;
        while *data.get(next)? == 0xff {
            next += 1; // fill bytes: the marker is after the last FF
        }
        match data[next] {
            0x00 => pos = next + 1,           // stuffed FF data byte
            m if is_rst(m) => pos = next + 1, // restart marker: the scan goes on
            _ => return Some(next - 1),       // a real marker: EOI, or the next segment
        }
    }
}

fn memchr_ff(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == 0xff)
}

/// Width and height from a JPEG's SOF header. `None` when the header is missing, cut short or
/// says 0 (a height given later by a DNL marker, which no camera sends).
pub fn dimensions(jpeg: &[u8]) -> Option<(u32, u32)> {
    if jpeg.get(..2)? != [0xff, SOI] {
        return None;
    }
    let mut pos = 2;
    loop {
        if *jpeg.get(pos)? != 0xff {
            return None;
        }
        while *jpeg.get(pos + 1)? == 0xff {
            pos += 1;
        }
        let marker = jpeg[pos + 1];
        if marker == TEM || is_rst(marker) {
            pos += 2;
            continue;
        }
        if matches!(marker, EOI | SOS | SOI | 0x00) {
            return None; // no SOF before the first scan
        }
        let len = usize::from(u16::from_be_bytes([*jpeg.get(pos + 2)?, *jpeg.get(pos + 3)?]));
        // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC).
        if (0xc0..=0xcf).contains(&marker) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
            let sof = jpeg.get(pos + 4..pos + 2 + len)?;
            let height = u32::from(u16::from_be_bytes([*sof.get(1)?, *sof.get(2)?]));
            let width = u32::from(u16::from_be_bytes([*sof.get(3)?, *sof.get(4)?]));
            return (width > 0 && height > 0).then_some((width, height));
        }
        if len < 2 {
            return None;
        }
        pos += 2 + len;
    }
}

/// One JPEG cut out of a larger buffer, without a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JpegFrame {
    /// The JPEG, SOI to EOI.
    pub jpeg: Bytes,
    /// Width from its SOF header.
    pub width: u32,
    /// Height from its SOF header.
    pub height: u32,
}

/// What [`split_jpegs`] found.
#[derive(Debug, Default)]
pub struct Split {
    /// Every complete JPEG, in order.
    pub frames: Vec<JpegFrame>,
    /// Bytes that belonged to no JPEG (between frames, or a cut-short last frame).
    pub skipped_bytes: usize,
    /// JPEGs left out because their header gives no size.
    pub sizeless: usize,
}

/// Cuts a buffer of concatenated JPEGs (what `ffmpeg -f mjpeg` writes) into its frames. Each
/// frame is a slice of `data`: nothing is copied. Junk between frames is skipped and counted.
pub fn split_jpegs(data: &Bytes) -> Split {
    let mut split = Split::default();
    let mut pos = 0;
    while let Some(start) = find_soi(&data[pos..]).map(|at| pos + at) {
        split.skipped_bytes += start - pos;
        match jpeg_len(&data[start..]) {
            Some(len) => {
                let jpeg = data.slice(start..start + len);
                match dimensions(&jpeg) {
                    Some((width, height)) => split.frames.push(JpegFrame { jpeg, width, height }),
                    None => split.sizeless += 1,
                }
                pos = start + len;
            }
            None => {
                // Not a whole JPEG after all: step past this SOI and look for the next.
                split.skipped_bytes += 2;
                pos = start + 2;
            }
        }
    }
    split.skipped_bytes += data.len() - pos;
    split
}

/// Position of the next `FF D8 FF` (SOI followed by a marker).
fn find_soi(data: &[u8]) -> Option<usize> {
    data.windows(3).position(|w| w == [0xff, SOI, 0xff])
}

/// A few words on what a buffer that holds no JPEG looks like, for error messages.
pub fn describe_non_jpeg(data: &[u8]) -> String {
    let kind = match data {
        [0x89, b'P', b'N', b'G', ..] => Some("a PNG image"),
        [b'G', b'I', b'F', b'8', ..] => Some("a GIF image"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'A', b'V', b'I', b' ', ..] => Some("an AVI video"),
        [b'R', b'I', b'F', b'F', ..] => Some("a RIFF file (WebP, WAV?)"),
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => Some("an MP4/MOV video"),
        [0x1a, 0x45, 0xdf, 0xa3, ..] => Some("a Matroska/WebM video"),
        [0x00, 0x00, 0x01, 0xba, ..] | [0x47, ..] => Some("an MPEG stream"),
        _ => None,
    };
    let head: Vec<String> = data.iter().take(8).map(|b| format!("{b:02X}")).collect();
    let head = head.join(" ");
    match kind {
        Some(kind) => format!("it looks like {kind} (starts {head})"),
        None if data.iter().take(512).all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace()) => {
            format!("it looks like text (starts {head})")
        }
        None => format!("it starts {head} and has no FF D8 FF (JPEG start) anywhere"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jpeg_encoder::{ColorType, Encoder};

    /// A small JPEG whose content depends on `seed`.
    fn jpeg(
        width: u16,
        height: u16,
        seed: u8,
        tweak: impl FnOnce(&mut Encoder<&mut Vec<u8>>),
    ) -> Vec<u8> {
        let mut rgb = Vec::with_capacity(usize::from(width) * usize::from(height) * 3);
        let mut rng = fastrand::Rng::with_seed(u64::from(seed));
        for i in 0..usize::from(width) * usize::from(height) {
            rgb.extend_from_slice(&[(i % 251) as u8 ^ seed, rng.u8(..), rng.u8(..)]);
        }
        let mut out = Vec::new();
        let mut encoder = Encoder::new(&mut out, 75);
        tweak(&mut encoder);
        encoder.encode(&rgb, width, height, ColorType::Rgb).expect("encode");
        out
    }

    fn plain(seed: u8) -> Vec<u8> {
        jpeg(48, 32, seed, |_| {})
    }

    #[test]
    fn whole_jpeg_is_its_own_trim() {
        let j = plain(1);
        assert_eq!(trim_jpeg(&j), Some(&j[..]));
        assert_eq!(dimensions(&j), Some((48, 32)));
    }

    #[test]
    fn zero_padding_after_eoi_is_trimmed() {
        let j = plain(2);
        let mut buf = j.clone();
        buf.resize(j.len() + 4096, 0);
        assert_eq!(trim_jpeg(&buf), Some(&j[..]));
    }

    #[test]
    fn junk_after_eoi_is_trimmed_even_if_it_looks_like_markers() {
        let j = plain(3);
        let mut buf = j.clone();
        buf.extend_from_slice(&[0xff, 0xd9, 0x12, 0xff, 0xd8, 0xff, 0xe0, 0xab, 0xff]);
        buf.extend((0..1000u32).map(|i| (i * 37 % 256) as u8));
        assert_eq!(trim_jpeg(&buf), Some(&j[..]));
    }

    #[test]
    fn exif_thumbnail_does_not_end_the_frame() {
        let thumb = jpeg(16, 16, 9, |_| {});
        let mut exif = b"Exif\0\0".to_vec();
        exif.extend_from_slice(&thumb); // an EOI inside APP1, long before the real one
        let j = jpeg(64, 48, 4, |e| e.add_app_segment(1, exif).expect("app1"));
        assert!(j.windows(thumb.len()).any(|w| w == thumb), "thumbnail is embedded");
        let mut buf = j.clone();
        buf.extend_from_slice(&[0; 100]);
        assert_eq!(trim_jpeg(&buf), Some(&j[..]));
        assert_eq!(dimensions(&buf), Some((64, 48)), "SOF of the frame, not the thumbnail");
    }

    #[test]
    fn restart_markers_and_progressive_scans() {
        let rst = jpeg(64, 64, 5, |e| e.set_restart_interval(1));
        assert!(rst.windows(2).any(|w| w[0] == 0xff && is_rst(w[1])), "has RSTn");
        let progressive = jpeg(64, 64, 6, |e| e.set_progressive(true));
        let scans = progressive.windows(2).filter(|w| *w == [0xff, SOS]).count();
        assert!(scans > 1, "progressive has {scans} scans");
        for j in [rst, progressive] {
            let mut buf = j.clone();
            buf.extend_from_slice(&[0x55; 64]);
            assert_eq!(trim_jpeg(&buf), Some(&j[..]));
        }
    }

    #[test]
    fn stuffing_and_fill_bytes_in_entropy_data() {
        // SOI, SOS with a minimal header, entropy data with FF 00 stuffing, an RST, fill
        // bytes before EOI, then padding.
        let frame = [
            0xff, 0xd8, //
            0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, //
            0x12, 0xff, 0x00, 0xd9, 0xff, 0xd3, 0x34, 0xff, 0x00, 0xff, 0x00, 0x56, //
            0xff, 0xff, 0xff, 0xd9,
        ];
        let mut buf = frame.to_vec();
        buf.extend_from_slice(&[0, 0, 0xff, 0xd9]);
        assert_eq!(trim_jpeg(&buf), Some(&frame[..]));
        assert_eq!(dimensions(&buf), None, "no SOF");
    }

    #[test]
    fn cut_short_or_not_a_jpeg() {
        let j = plain(7);
        for cut in [0, 1, 2, 3, 10, j.len() / 2, j.len() - 1] {
            assert_eq!(trim_jpeg(&j[..cut]), None, "cut at {cut}");
        }
        assert_eq!(trim_jpeg(b"\x89PNG\r\n\x1a\n"), None);
        assert_eq!(trim_jpeg(&[0xff, 0xd8, 0xff, 0xd9]), None, "no scan");
        assert_eq!(trim_jpeg(&[0xff, 0xd8, 0xff, 0xe0, 0x00, 0x01]), None, "bad length");
        assert_eq!(dimensions(&j[..4]), None);
    }

    #[test]
    fn split_concatenated_stream_without_copying() {
        let frames: Vec<Vec<u8>> = (0..5).map(plain).collect();
        let mut stream = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if i == 2 {
                stream.extend_from_slice(&[0, 0, 0xff, 0x00]); // junk between frames
            }
            stream.extend_from_slice(f);
        }
        let last = plain(99);
        stream.extend_from_slice(&last[..last.len() / 2]); // a cut-short last frame
        let data = Bytes::from(stream);
        let split = split_jpegs(&data);
        assert_eq!(split.frames.len(), 5);
        for (got, want) in split.frames.iter().zip(&frames) {
            assert_eq!(got.jpeg, want[..]);
            assert_eq!((got.width, got.height), (48, 32));
            let offset = got.jpeg.as_ptr() as usize - data.as_ptr() as usize;
            assert!(offset < data.len(), "a slice of the buffer, not a copy");
        }
        assert_eq!(split.skipped_bytes, 4 + last.len() / 2);
    }

    #[test]
    fn split_finds_nothing_in_other_data() {
        let split = split_jpegs(&Bytes::from_static(b"hello, this is not a video\n"));
        assert!(split.frames.is_empty());
        assert!(describe_non_jpeg(b"hello\n").contains("text"));
        assert!(describe_non_jpeg(b"\x89PNG\r\n\x1a\n\0\0").contains("PNG"));
        assert!(describe_non_jpeg(&[0, 1, 2, 3]).contains("00 01 02 03"));
    }

    #[test]
    fn sizes_from_sof() {
        for (w, h) in [(1, 1), (160, 120), (1920, 1080), (4000, 17)] {
            assert_eq!(dimensions(&jpeg(w, h, 1, |_| {})), Some((u32::from(w), u32::from(h))));
        }
    }
}

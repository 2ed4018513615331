//! `--layers`: smaller JPEGs of every capture beside the full one, so that a relay can send a
//! viewer on a slow link a smaller picture, fresh and smooth, without ever re-encoding.
//!
//! A layer is a box (`640x480`, or a preset name such as `qvga`) and a JPEG quality. Each
//! capture is scaled down to fit each box, keeping its aspect ratio; a capture that already
//! fits a box is that layer untouched (so the camera's own MJPEG stays layer 0). All layers
//! of one capture share its `seq`, `capture_us` and metadata; each frame's flags say which
//! layer it is.
//!
//! The work runs on a thread of its own, fed the newest capture through a one-place slot: a
//! slow core makes the smaller layers skip captures, never delays the full picture or the
//! capture itself. Decoding uses the JPEG's own scaling (the IDCT at 1/2, 1/4 or 1/8 size),
//! so a half-size layer costs a fraction of a full decode; what remains is resized and
//! encoded with the same encoder as the test pattern.

use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread;

use anyhow::Context;
use bytes::Bytes;
use framing::layers::{MAX_LAYERS, valid_name};
use framing::{Frame, FrameHeader};
use relay::Stream;
use tracing::{debug, warn};

/// One layer, as `--layers` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSpec {
    /// What viewers call it (`client --layer NAME`).
    pub name: String,
    /// The box the picture is scaled to fit.
    pub width: u32,
    /// The box's height.
    pub height: u32,
    /// JPEG quality, 1–100; `None`: the drone's `--quality`.
    pub quality: Option<u8>,
}

/// Sizes known by name.
const PRESETS: &[(&str, u32, u32)] = &[
    ("qqvga", 160, 120),
    ("qvga", 320, 240),
    ("vga", 640, 480),
    ("svga", 800, 600),
    ("hd", 1280, 720),
    ("fhd", 1920, 1080),
];

impl std::str::FromStr for LayerSpec {
    type Err = String;

    /// `[NAME=]SIZE[@QUALITY]`, SIZE being `WxH` or a preset (`qqvga qvga vga svga hd fhd`).
    fn from_str(s: &str) -> Result<LayerSpec, String> {
        let (named, rest) = match s.split_once('=') {
            Some((name, rest)) => (Some(name), rest),
            None => (None, s),
        };
        let (size, quality) = match rest.split_once('@') {
            Some((size, q)) => {
                let q: u8 = q.parse().map_err(|_| format!("quality '{q}' is not 1 to 100"))?;
                if !(1..=100).contains(&q) {
                    return Err(format!("quality {q} is not 1 to 100"));
                }
                (size, Some(q))
            }
            None => (rest, None),
        };
        let (width, height) = match PRESETS.iter().find(|(n, _, _)| *n == size) {
            Some(&(_, w, h)) => (w, h),
            None => {
                let (w, h) = size.split_once('x').ok_or_else(|| {
                    format!("'{size}' is neither WIDTHxHEIGHT nor one of qqvga, qvga, vga, svga, hd, fhd")
                })?;
                let dim = |v: &str| match v.parse::<u32>() {
                    Ok(n) if (16..=framing::MAX_DIMENSION).contains(&n) => Ok(n),
                    _ => Err(format!("'{v}' in '{size}' is not a size from 16 to 8192")),
                };
                (dim(w)?, dim(h)?)
            }
        };
        let name = named.unwrap_or(size).to_owned();
        if !valid_name(&name) {
            return Err(format!(
                "'{name}' cannot name a layer: 1 to 16 letters, digits, '-', '_' or '.', not all digits"
            ));
        }
        Ok(LayerSpec { name, width, height, quality })
    }
}

impl fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}x{}", self.name, self.width, self.height)?;
        match self.quality {
            Some(q) => write!(f, "@{q}"),
            None => Ok(()),
        }
    }
}

/// A whole `--layers` list: 1 to 4 layers, largest first, names unique.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayerList(pub Vec<LayerSpec>);

impl std::str::FromStr for LayerList {
    type Err = String;

    fn from_str(s: &str) -> Result<LayerList, String> {
        let layers = s.split(',').map(str::parse).collect::<Result<Vec<LayerSpec>, _>>()?;
        if layers.len() > MAX_LAYERS {
            return Err(format!("{} layers; at most {MAX_LAYERS}", layers.len()));
        }
        for (i, layer) in layers.iter().enumerate() {
            if layers[..i].iter().any(|l| l.name == layer.name) {
                return Err(format!("two layers are named '{}'", layer.name));
            }
            if let Some(above) = i.checked_sub(1).map(|j| &layers[j]) {
                if layer.width >= above.width && layer.height >= above.height {
                    return Err(format!(
                        "layer '{}' is not smaller than '{}' before it: list layers largest first",
                        layer.name, above.name
                    ));
                }
            }
        }
        Ok(LayerList(layers))
    }
}

impl LayerList {
    /// The layers' names, top first.
    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|l| l.name.clone()).collect()
    }
}

/// The size a `width`×`height` picture has in a `box_w`×`box_h` box: scaled down to fit,
/// aspect ratio kept, never scaled up.
pub fn fit(width: u32, height: u32, box_w: u32, box_h: u32) -> (u32, u32) {
    if width <= box_w && height <= box_h {
        return (width, height);
    }
    let scale = (f64::from(box_w) / f64::from(width)).min(f64::from(box_h) / f64::from(height));
    let w = (f64::from(width) * scale).round().max(1.0) as u32;
    let h = (f64::from(height) * scale).round().max(1.0) as u32;
    (w.min(box_w), h.min(box_h))
}

/// One capture for the layer thread.
struct Job {
    header: FrameHeader,
    flags: u16,
    meta: Bytes,
    jpeg: Bytes,
}

/// Makes every layer but the untouched ones, on a thread of its own.
pub struct Layers {
    specs: Arc<Vec<LayerSpec>>,
    tx: SyncSender<Job>,
}

impl Layers {
    /// Starts the layer thread, publishing into `stream`; `quality` is the drone's
    /// `--quality`. The thread ends when this is dropped.
    pub fn start(
        specs: Vec<LayerSpec>,
        quality: u8,
        stream: Arc<Stream>,
    ) -> anyhow::Result<Layers> {
        let specs = Arc::new(specs);
        // One place: the newest capture waits while the thread works; older ones are not kept.
        let (tx, rx) = sync_channel(1);
        let worker = Worker { specs: specs.clone(), quality, stream };
        thread::Builder::new()
            .name("layers".into())
            .spawn(move || worker.run(rx))
            .context("could not start the layer thread")?;
        Ok(Layers { specs, tx })
    }

    /// True when a `width`×`height` capture is layer 0 as it is (it fits the first box).
    pub fn top_is_untouched(&self, width: u32, height: u32) -> bool {
        self.specs
            .first()
            .is_none_or(|top| fit(width, height, top.width, top.height) == (width, height))
    }

    /// Hands a capture to the layer thread, or skips it when the thread is still busy with
    /// the previous one.
    pub fn submit(&self, header: FrameHeader, flags: u16, meta: &[u8], jpeg: Bytes) {
        let job = Job { header, flags, meta: Bytes::copy_from_slice(meta), jpeg };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                debug!("layer thread busy; this capture's layers skipped")
            }
            Err(TrySendError::Disconnected(_)) => warn!("layer thread has stopped"),
        }
    }
}

struct Worker {
    specs: Arc<Vec<LayerSpec>>,
    quality: u8,
    stream: Arc<Stream>,
}

impl Worker {
    fn run(self, rx: Receiver<Job>) {
        let mut failing = false;
        while let Ok(job) = rx.recv() {
            match self.layers_of(&job) {
                Ok(()) => failing = false,
                Err(err) if !failing => {
                    failing = true;
                    warn!(error = %format!("{err:#}"), "could not make the smaller layers of a frame");
                }
                Err(_) => {}
            }
        }
    }

    /// Makes and publishes the layers of one capture that are not the capture itself.
    fn layers_of(&self, job: &Job) -> anyhow::Result<()> {
        let (w, h) = (job.header.width, job.header.height);
        let wanted: Vec<(usize, (u32, u32))> = self
            .specs
            .iter()
            .enumerate()
            .map(|(i, spec)| (i, fit(w, h, spec.width, spec.height)))
            .filter(|&(_, size)| size != (w, h))
            .collect();
        let Some(&(_, largest)) = wanted.first() else { return Ok(()) };
        let mut decoded = Decoded::scaled(&job.jpeg, largest)?;
        for (layer, size) in wanted {
            let quality = self.specs[layer].quality.unwrap_or(self.quality);
            let jpeg = decoded.encode(size, quality)?;
            let header = FrameHeader { width: size.0, height: size.1, ..job.header };
            let flags = Frame::layer_flags(layer, job.flags);
            let frame = Frame::with_flags(header, flags, &job.meta, jpeg);
            if let Err(err) = self.stream.publish(frame) {
                warn!(%err, layer, "layer frame not sent");
            }
        }
        Ok(())
    }
}

/// A capture decoded (at a reduced scale where the JPEG allows) to RGB.
pub struct Decoded {
    image: image::RgbImage,
}

impl Decoded {
    /// Decodes `jpeg` at the smallest of its scales (1, 1/2, 1/4, 1/8) that is still at least
    /// `at_least` in both directions.
    pub fn scaled(jpeg: &[u8], at_least: (u32, u32)) -> anyhow::Result<Decoded> {
        let mut decoder = jpeg_decoder::Decoder::new(jpeg);
        decoder.read_info().context("not a JPEG the layer thread can read")?;
        let to_u16 = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        let (w, h) = decoder
            .scale(to_u16(at_least.0), to_u16(at_least.1))
            .context("cannot scale this JPEG")?;
        let pixels = decoder.decode().context("could not decode a frame for its layers")?;
        let info = decoder.info().context("JPEG has no size")?;
        let (w, h) = (u32::from(w), u32::from(h));
        let rgb = match info.pixel_format {
            jpeg_decoder::PixelFormat::RGB24 => pixels,
            jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&l| [l, l, l]).collect(),
            other => anyhow::bail!("cannot make layers of a {other:?} JPEG"),
        };
        let image = image::RgbImage::from_raw(w, h, rgb)
            .context("decoded frame is shorter than its size says")?;
        Ok(Decoded { image })
    }

    /// The size decoded.
    pub fn size(&self) -> (u32, u32) {
        self.image.dimensions()
    }

    /// The picture at `size` (resized if the decode was larger), as a JPEG of `quality`.
    pub fn encode(&mut self, size: (u32, u32), quality: u8) -> anyhow::Result<Bytes> {
        let resized;
        let image = if self.image.dimensions() == size {
            &self.image
        } else {
            resized =
                image::imageops::resize(&self.image, size.0, size.1, image::imageops::Triangle);
            &resized
        };
        let (w, h) = match (u16::try_from(size.0), u16::try_from(size.1)) {
            (Ok(w), Ok(h)) => (w, h),
            _ => anyhow::bail!("layer size {size:?} too large for JPEG"),
        };
        let mut out = Vec::with_capacity(image.len() / 8);
        jpeg_encoder::Encoder::new(&mut out, quality)
            .encode(image.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
            .context("could not encode a layer")?;
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_lists_parse_sizes_presets_names_and_qualities() {
        let list: LayerList = "640x480,small=qvga@60".parse().expect("valid");
        assert_eq!(list.names(), ["640x480", "small"]);
        assert_eq!((list.0[1].width, list.0[1].height, list.0[1].quality), (320, 240, Some(60)));
        for (bad, why) in [
            ("640x480,640x480", "two layers are named"),
            ("qvga,vga", "not smaller"),
            ("vga,qvga,qqvga,80x60,40x30", "at most 4"),
            ("vga@0", "not 1 to 100"),
            ("10x10", "not a size from 16"),
            ("huge", "neither WIDTHxHEIGHT"),
            ("123=qvga", "cannot name a layer"),
        ] {
            let err = bad.parse::<LayerList>().expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn pictures_fit_their_box_without_growing() {
        assert_eq!(fit(640, 480, 320, 240), (320, 240));
        assert_eq!(fit(1280, 720, 320, 240), (320, 180), "aspect kept");
        assert_eq!(fit(320, 240, 640, 480), (320, 240), "never up");
    }
}

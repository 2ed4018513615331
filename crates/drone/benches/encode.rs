//! JPEG encoders at 640x480, quality 80, on a test-pattern frame: `image`'s encoder,
//! jpeg-encoder from RGB, and three ways from a camera's YUYV to JPEG. Figures and how to read
//! them: docs/BENCHMARKS.md, "JPEG encoders (drone)". Run: `cargo bench -p drone --bench encode`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use drone::raw::{RawEncoder, RawFormat};
use drone::source::pattern::TestPattern;
use drone::source::{Format, Source};
use image::ExtendedColorType;
use image::codecs::jpeg::JpegEncoder;
use jpeg_encoder::{ColorType, Encoder};

const W: u32 = 640;
const H: u32 = 480;
const Q: u8 = 80;

/// A test-pattern frame as RGB (decoded from the pattern's own JPEG: camera-like noise).
fn pattern_rgb() -> Vec<u8> {
    let format = Format { width: W, height: H, fps: 30, quality: 95 };
    let mut pattern = TestPattern::new(format).expect("pattern");
    let frame = pattern.next_frame().expect("frame");
    image::load_from_memory(&frame.jpeg).expect("decode").to_rgb8().into_raw()
}

/// Limited-range BT.601 Y'CbCr of an RGB pixel, as a camera sends it.
fn ycbcr(px: &[u8]) -> [u8; 3] {
    let [r, g, b] = [px[0], px[1], px[2]].map(i32::from);
    let y = 16 + ((66 * r + 129 * g + 25 * b + 128) >> 8);
    let cb = 128 + ((-38 * r - 74 * g + 112 * b + 128) >> 8);
    let cr = 128 + ((112 * r - 94 * g - 18 * b + 128) >> 8);
    [y, cb, cr].map(|v| v.clamp(0, 255) as u8)
}

/// What a YUYV camera would send for `rgb`.
fn rgb_to_yuyv(rgb: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgb.len() / 3 * 2);
    for pair in rgb.chunks_exact(6) {
        let ([y0, cb, cr], [y1, _, _]) = (ycbcr(&pair[..3]), ycbcr(&pair[3..]));
        out.extend_from_slice(&[y0, cb, y1, cr]);
    }
    out
}

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// The usual route: YUYV to RGB (integer BT.601, limited range), then encode RGB.
fn yuyv_to_rgb(yuyv: &[u8], rgb: &mut Vec<u8>) {
    rgb.clear();
    for px in yuyv.chunks_exact(4) {
        let (d, e) = (i32::from(px[1]) - 128, i32::from(px[3]) - 128);
        for y in [px[0], px[2]] {
            let c = 298 * (i32::from(y) - 16);
            rgb.extend_from_slice(&[
                clamp((c + 409 * e + 128) >> 8),
                clamp((c - 100 * d - 208 * e + 128) >> 8),
                clamp((c + 516 * d + 128) >> 8),
            ]);
        }
    }
}

/// YUYV to a packed 4:4:4 Y'CbCr buffer (chroma repeated), for `ColorType::Ycbcr`.
fn yuyv_to_ycbcr444(yuyv: &[u8], out: &mut Vec<u8>) {
    out.clear();
    for px in yuyv.chunks_exact(4) {
        out.extend_from_slice(&[px[0], px[1], px[3], px[2], px[1], px[3]]);
    }
}

fn encoders(c: &mut Criterion) {
    let rgb = pattern_rgb();
    let yuyv = rgb_to_yuyv(&rgb);
    let mut group = c.benchmark_group("jpeg_640x480_q80");
    group.throughput(Throughput::Elements(1)); // elem/s = frames per second
    group.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    group.sample_size(30);

    group.bench_function("image_rgb", |b| {
        let mut out = Vec::with_capacity(128 * 1024);
        b.iter(|| {
            out.clear();
            JpegEncoder::new_with_quality(&mut out, Q)
                .encode(black_box(&rgb), W, H, ExtendedColorType::Rgb8)
                .expect("encode");
            out.len()
        })
    });
    group.bench_function("jpeg_encoder_rgb", |b| {
        let mut out = Vec::with_capacity(128 * 1024);
        b.iter(|| {
            out.clear();
            Encoder::new(&mut out, Q)
                .encode(black_box(&rgb), W as u16, H as u16, ColorType::Rgb)
                .expect("encode");
            out.len()
        })
    });
    group.bench_function("yuyv_via_rgb", |b| {
        let (mut tmp, mut out) = (Vec::new(), Vec::with_capacity(128 * 1024));
        b.iter(|| {
            yuyv_to_rgb(black_box(&yuyv), &mut tmp);
            out.clear();
            Encoder::new(&mut out, Q)
                .encode(&tmp, W as u16, H as u16, ColorType::Rgb)
                .expect("encode");
            out.len()
        })
    });
    group.bench_function("yuyv_via_ycbcr444_buffer", |b| {
        let (mut tmp, mut out) = (Vec::new(), Vec::with_capacity(128 * 1024));
        b.iter(|| {
            yuyv_to_ycbcr444(black_box(&yuyv), &mut tmp);
            out.clear();
            Encoder::new(&mut out, Q)
                .encode(&tmp, W as u16, H as u16, ColorType::Ycbcr)
                .expect("encode");
            out.len()
        })
    });
    group.bench_function("yuyv_direct_drone", |b| {
        let mut encoder = RawEncoder::new(Q);
        b.iter(|| encoder.encode(RawFormat::Yuyv, black_box(&yuyv), W, H).expect("encode").len())
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    encoders(&mut criterion);
    criterion.final_summary();
}

//! What `--layers` costs the drone per frame: decoding a capture at a reduced scale, resizing
//! what remains and encoding the smaller JPEG, for the usual layer sizes. Figures and how to
//! read them: docs/BENCHMARKS.md, "Quality layers (drone)". Run:
//! `cargo bench -p drone --bench layers`.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use drone::layers::{Decoded, fit};
use drone::source::pattern::TestPattern;
use drone::source::{Format, Source};

/// A test-pattern frame (moving shapes and camera-like noise) as the drone would send it.
fn capture(width: u32, height: u32) -> bytes::Bytes {
    let format = Format { width, height, fps: 30, quality: 80 };
    let mut pattern = TestPattern::new(format).expect("pattern");
    pattern.next_frame().expect("frame").jpeg
}

/// One layer of `box_w`×`box_h` from a `width`×`height` capture: decode (scaled), resize if
/// needed, encode at quality 80.
fn layer(jpeg: &[u8], (width, height): (u32, u32), (box_w, box_h): (u32, u32)) -> usize {
    let size = fit(width, height, box_w, box_h);
    let mut decoded = Decoded::scaled(jpeg, size).expect("decodes");
    decoded.encode(size, 80).expect("encodes").len()
}

fn layers(c: &mut Criterion) {
    let mut group = c.benchmark_group("layers");
    group.measurement_time(Duration::from_secs(5));
    let vga = capture(640, 480);
    let hd = capture(1280, 720);
    for (name, jpeg, from, to) in [
        ("640x480 -> 320x240", &vga, (640, 480), (320, 240)),
        ("640x480 -> 160x120", &vga, (640, 480), (160, 120)),
        ("640x480 -> 240x180", &vga, (640, 480), (240, 180)),
        ("1280x720 -> 640x360", &hd, (1280, 720), (640, 360)),
        ("1280x720 -> 320x180", &hd, (1280, 720), (320, 180)),
    ] {
        group.bench_function(name, |b| b.iter(|| layer(black_box(jpeg), from, to)));
    }
    // Two layers from one decode, as the layer thread makes them.
    group.bench_function("640x480 -> 320x240 + 160x120", |b| {
        b.iter(|| {
            let mut decoded = Decoded::scaled(black_box(&vga), (320, 240)).expect("decodes");
            let a = decoded.encode((320, 240), 80).expect("encodes").len();
            a + decoded.encode((160, 120), 80).expect("encodes").len()
        })
    });
    // For scale: a full decode of the capture with the `image` crate (what a client does).
    group.bench_function("640x480 full decode (image crate)", |b| {
        b.iter(|| image::load_from_memory(black_box(&vga)).expect("decodes").width())
    });
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    layers(&mut criterion);
    criterion.final_summary();
}

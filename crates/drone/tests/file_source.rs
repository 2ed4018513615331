//! A drone playing an MJPEG file serves its JPEGs byte for byte, in order, looping.

use std::time::Duration;

use drone::{Config, Format, SourceSpec};
use framing::Encoding;
use jpeg_encoder::{ColorType, Encoder};
use relay::{SubscribeOptions, subscribe};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const FRAMES: usize = 12;
const PATIENCE: Duration = Duration::from_secs(30);

/// A 160x120 JPEG that differs from every other `n`: a gradient shifted by `n` and a bar at
/// a position given by `n`.
fn frame(n: usize) -> Vec<u8> {
    let (w, h) = (160usize, 120usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let bar = x / 10 == n;
            let v = ((x + y + n * 20) % 256) as u8;
            let px = if bar { [255, 255, 255] } else { [v, 255 - v, (n * 20) as u8] };
            rgb.extend_from_slice(&px);
        }
    }
    let mut out = Vec::new();
    Encoder::new(&mut out, 80).encode(&rgb, w as u16, h as u16, ColorType::Rgb).expect("encode");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mjpeg_file_is_served_byte_identical_in_order_and_loops() -> anyhow::Result<()> {
    let frames: Vec<Vec<u8>> = (0..FRAMES).map(frame).collect();
    for (i, f) in frames.iter().enumerate() {
        assert!(frames[..i].iter().all(|g| g != f), "frame {i} is distinct");
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("clip.mjpeg");
    std::fs::write(&path, frames.concat())?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let config = Config {
        source: SourceSpec::Path(path),
        format: Format { width: 160, height: 120, fps: 20, quality: 80 },
        ..Config::default()
    };
    let shutdown = CancellationToken::new();
    let drone = tokio::spawn(drone::run(config, listener, shutdown.clone()));

    let mut sub = subscribe(&addr, &SubscribeOptions::default()).await?;
    let mut first = None;
    let mut last_seq = None;
    // Enough frames to go round the loop once and a bit.
    for k in 0..FRAMES + 6 {
        let got = timeout(PATIENCE, sub.next_frame()).await??.expect("drone closed early");
        let header = got.header();
        assert_eq!(header.encoding, Encoding::Jpeg);
        assert_eq!((header.width, header.height), (160, 120));
        if let Some(seq) = last_seq {
            assert_eq!(header.seq, seq + 1, "no frame skipped at 20 fps");
        }
        last_seq = Some(header.seq);
        let index = match first {
            Some(start) => (start + k) % FRAMES,
            None => {
                let found = frames.iter().position(|f| got.payload()[..] == f[..]);
                let found = found.expect("the first payload is one of the file's JPEGs");
                first = Some(found);
                found
            }
        };
        assert!(got.payload()[..] == frames[index][..], "payload {k} is the file's JPEG {index}");
    }
    sub.close().await;
    shutdown.cancel();
    timeout(PATIENCE, drone).await???;
    Ok(())
}

/// `jpeg` with comment segments inserted after its SOI until it is longer than `at_least`
/// bytes: still a valid JPEG of the same picture.
fn padded(jpeg: &[u8], at_least: usize) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    let filler = vec![b'x'; 65_533];
    while out.len() + jpeg.len() <= at_least {
        out.extend_from_slice(&[0xff, 0xfe, 0xff, 0xff]);
        out.extend_from_slice(&filler);
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A file holding one JPEG above the 16 MiB that receivers accept by default: the drone skips
/// it with an error in its log and never puts it on the wire, so its viewers are not dropped
/// (and left redialling forever) but see the other frames go round and round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_too_large_for_receivers_is_skipped_at_the_source() -> anyhow::Result<()> {
    let huge = padded(&frame(1), framing::DEFAULT_MAX_MESSAGE_LEN + 1);
    let frames = [frame(0), huge, frame(2), frame(3)];
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("clip.mjpeg");
    std::fs::write(&path, frames.concat())?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let config = Config {
        source: SourceSpec::Path(path),
        format: Format { width: 160, height: 120, fps: 30, quality: 80 },
        ..Config::default()
    };
    let shutdown = CancellationToken::new();
    let drone = tokio::spawn(drone::run(config, listener, shutdown.clone()));

    let mut sub = subscribe(&addr, &SubscribeOptions::default()).await?;
    // Three times round the file: the large frame came up three times.
    for _ in 0..9 {
        let got = timeout(PATIENCE, sub.next_frame()).await??.expect("drone closed early");
        assert!(got.payload().len() < 1 << 20, "only the small frames are sent");
    }
    sub.close().await;
    shutdown.cancel();
    timeout(PATIENCE, drone).await???;
    Ok(())
}

//! A telemetry loop in one program, the case dronecast's data channels are built for: a
//! source publishes camera frames with the drone's telemetry on each one, and a ground station
//! watches, reads the telemetry bound to each frame, and answers with commands, which the
//! source receives with the station's name and the path they came by.
//!
//! ```text
//! cargo run --example telemetry
//! ```
//!
//! Both ends run here on loopback; across machines, the publisher runs on the drone
//! (`Publisher::bind("0.0.0.0:9999")`) and each ground station connects to it, or to a
//! cache-server relaying it, by address.

use std::time::Duration;

use dronecast::{Publisher, Viewer};
use jpeg_encoder::{ColorType, Encoder};

/// Frames the source publishes, at 30 a second.
const FRAMES: u64 = 90;

/// A 160×120 picture that changes with `n`, as a JPEG: a stand-in for a camera frame.
fn picture(n: u64) -> anyhow::Result<Vec<u8>> {
    let (w, h) = (160u16, 120u16);
    let mut rgb = Vec::with_capacity(usize::from(w) * usize::from(h) * 3);
    for y in 0..h {
        for x in 0..w {
            let v = (u64::from(x) + u64::from(y) + n * 4) as u8;
            rgb.extend_from_slice(&[v, 255 - v, (n * 3) as u8]);
        }
    }
    let mut jpeg = Vec::new();
    Encoder::new(&mut jpeg, 80).encode(&rgb, w, h, ColorType::Rgb)?;
    Ok(jpeg)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    run().await
}

async fn run() -> anyhow::Result<()> {
    let mut source = Publisher::builder().name("drone-1").bind("127.0.0.1:0").await?;
    let mut station = Viewer::builder(&source.local_addr().to_string()).name("ground-1").connect();
    station.connected().await;

    // The ground station: reads each frame's telemetry and sends a command now and then.
    let watching = tokio::spawn(async move {
        let (mut frames, mut bound) = (0u64, 0u64);
        while let Some(frame) = station.next_frame().await {
            frames += 1;
            let telemetry: serde_json::Value = serde_json::from_slice(frame.data())?;
            // The data travels inside the frame: it is always the data of *this* frame.
            if telemetry["seq"] == frame.seq() {
                bound += 1;
            }
            if telemetry["battery"].as_f64().is_some_and(|b| b < 0.5) && frame.seq() % 10 == 0 {
                station.send(format!(r#"{{"cmd":"return-home","seen_seq":{}}}"#, frame.seq()));
            }
            if frame.seq() + 1 == FRAMES {
                break;
            }
        }
        station.close().await;
        anyhow::Ok((frames, bound))
    });

    // The source: a frame every 33 ms, each with its telemetry; commands as they come.
    let mut tick = tokio::time::interval(Duration::from_millis(33));
    let mut commands = Vec::new();
    for n in 0..FRAMES {
        tick.tick().await;
        let battery = 1.0 - n as f64 / FRAMES as f64;
        let telemetry = format!(
            r#"{{"seq":{n},"lat":52.52,"lon":13.405,"alt":{:.1},"battery":{battery:.2}}}"#,
            100.0 + n as f64 * 0.5
        );
        source.publish(picture(n)?, 160, 120, telemetry)?;
        while let Some(command) = source.try_next_message() {
            commands.push(command);
        }
    }
    let (frames, bound) = watching.await??;
    // Commands still on their way when the last frame went out.
    while let Ok(Some(command)) =
        tokio::time::timeout(Duration::from_millis(200), source.next_message()).await
    {
        commands.push(command);
    }
    for command in &commands {
        println!(
            "command from {} via {}: {}",
            command.name,
            command.path.join(" → "),
            String::from_utf8_lossy(&command.payload)
        );
    }
    println!(
        "{frames} frames received, {bound} with their own telemetry, {} commands back",
        commands.len()
    );
    anyhow::ensure!(frames > 0 && bound == frames, "telemetry not bound to its frames");
    anyhow::ensure!(!commands.is_empty(), "no command came back");
    anyhow::ensure!(commands.iter().all(|c| c.name == "ground-1"), "a command without its name");
    source.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// `cargo test` runs the example to completion.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_to_completion() -> anyhow::Result<()> {
        super::run().await
    }
}

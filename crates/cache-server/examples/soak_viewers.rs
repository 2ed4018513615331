//! Viewer churn for `scripts/soak.sh`: many viewers that join, take a few frames and leave,
//! over and over, plus one viewer that says hello and then never reads. Prints a status line
//! every 10 s on stderr and, at the end, one JSON object on stdout; exits non-zero if any
//! viewer saw an error (a refused or failed connection, a protocol error, frames out of order).
//!
//! ```text
//! cargo run --release -p cache-server --example soak_viewers -- 127.0.0.1:9998 200 600
//! ```
//! Arguments: server address, number of viewers, duration in seconds.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use framing::{Hello, Role};
use relay::{SubscribeOptions, subscribe};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::time::Instant;

/// How often the never-reading viewer starts over (the server drops it after its
/// `--viewer-timeout`, 30 s by default).
const STUCK_EVERY: Duration = Duration::from_secs(40);

#[derive(Default)]
struct Counters {
    sessions: AtomicU64,
    frames: AtomicU64,
    abrupt: AtomicU64,
    errors: AtomicU64,
    out_of_order: AtomicU64,
    stuck_sessions: AtomicU64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, viewers, secs] = args.as_slice() else {
        anyhow::bail!("usage: soak_viewers SERVER VIEWERS SECONDS");
    };
    let server: SocketAddr = server.parse().context("SERVER must be HOST:PORT")?;
    let viewers: u64 = viewers.parse().context("VIEWERS must be a number")?;
    let duration = Duration::from_secs(secs.parse().context("SECONDS must be a number")?);
    cli::init_logging(cli::LogFormat::Text);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start tokio")?;
    let counters = Arc::new(Counters::default());
    runtime.block_on(soak(server, viewers, duration, counters.clone()));
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "{{\"sessions\":{},\"frames\":{},\"abrupt_leaves\":{},\"errors\":{},\"out_of_order\":{},\"stuck_sessions\":{}}}",
        c(&counters.sessions),
        c(&counters.frames),
        c(&counters.abrupt),
        c(&counters.errors),
        c(&counters.out_of_order),
        c(&counters.stuck_sessions)
    );
    if c(&counters.errors) + c(&counters.out_of_order) > 0 {
        anyhow::bail!("viewers saw errors");
    }
    Ok(())
}

async fn soak(server: SocketAddr, viewers: u64, duration: Duration, counters: Arc<Counters>) {
    let end = Instant::now() + duration;
    let mut tasks = Vec::new();
    for id in 0..viewers {
        tasks.push(tokio::spawn(churn(server, id, end, counters.clone())));
    }
    tasks.push(tokio::spawn(stuck(server, end, counters.clone())));
    let status = counters.clone();
    let reporter = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await;
        loop {
            tick.tick().await;
            let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
            eprintln!(
                "soak_viewers: {} sessions, {} frames, {} errors",
                c(&status.sessions),
                c(&status.frames),
                c(&status.errors)
            );
        }
    });
    for task in tasks {
        let _ = task.await;
    }
    reporter.abort();
}

/// One viewer slot: join, take 15–150 frames, leave (with a goodbye, or one time in four by
/// just dropping the socket), pause up to half a second, repeat until `end`.
async fn churn(server: SocketAddr, id: u64, end: Instant, counters: Arc<Counters>) {
    // Seeded by the slot: different pauses and session lengths per viewer, the same each run.
    let mut rng = fastrand::Rng::with_seed(id);
    let options = SubscribeOptions { agent: format!("soak/{id}"), ..SubscribeOptions::default() };
    let addr = server.to_string();
    while Instant::now() < end {
        let want = 15 + rng.u64(..136);
        let session = async {
            let mut sub = subscribe(&addr, &options).await?;
            let mut last: Option<(u64, u64)> = None;
            for _ in 0..want {
                let Some(frame) = sub.next_frame().await? else {
                    anyhow::bail!("server ended the stream");
                };
                let h = frame.header();
                // A drone restart starts seq again; anything else must go forwards.
                if let Some((seq, capture_us)) = last {
                    if h.seq <= seq && h.capture_us <= capture_us {
                        counters.out_of_order.fetch_add(1, Ordering::Relaxed);
                    }
                }
                last = Some((h.seq, h.capture_us));
                counters.frames.fetch_add(1, Ordering::Relaxed);
            }
            Ok(sub)
        };
        let remaining = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, session).await {
            Err(_) => break, // the soak is over
            Ok(Ok(sub)) => {
                counters.sessions.fetch_add(1, Ordering::Relaxed);
                if rng.u64(..4) == 0 {
                    counters.abrupt.fetch_add(1, Ordering::Relaxed);
                    drop(sub);
                } else {
                    sub.close().await;
                }
            }
            Ok(Err(err)) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("soak_viewers: viewer {id}: {err:#}");
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(..500))).await;
    }
}

/// A viewer that says hello and then never reads, with a tiny receive buffer, starting over
/// every [`STUCK_EVERY`]. The server must drop it without the others noticing.
async fn stuck(server: SocketAddr, end: Instant, counters: Arc<Counters>) {
    while Instant::now() < end {
        let connected = tokio::task::spawn_blocking(move || -> anyhow::Result<TcpStream> {
            let socket =
                Socket::new(Domain::for_address(server), Type::STREAM, Some(Protocol::TCP))?;
            // Set before connecting, so the window it advertises stays small.
            socket.set_recv_buffer_size(4096)?;
            socket.connect(&server.into())?;
            let mut stream = TcpStream::from(socket);
            stream.write_all(&Hello::new(Role::Viewer, "soak/never-reads").to_bytes())?;
            Ok(stream)
        })
        .await;
        match connected {
            Ok(Ok(stream)) => {
                counters.stuck_sessions.fetch_add(1, Ordering::Relaxed);
                let left = end.saturating_duration_since(Instant::now());
                tokio::time::sleep(STUCK_EVERY.min(left)).await;
                drop(stream);
            }
            Ok(Err(err)) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("soak_viewers: never-reading viewer: {err:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(_) => return,
        }
    }
}

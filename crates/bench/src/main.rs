//! `relay-bench`: load generator and measurements for dronecast servers. The command line is
//! in `args`; every measurement, and what it prints, is in the `bench` library.

mod args;

use std::process::ExitCode;
use std::time::Duration;

use args::{Cli, Cmd};
use bench::feed::Feed;
use bench::load::{Load, Protocol};
use bench::report::Output;
use bench::slowlink::{Compare, SlowLink};
use bench::sweep::Sweep;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(cli.log.log_format);
    cli::exit_code(run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => {
            let (load, out) = (cli.run.load()?, cli.run.common.output());
            let pid = cli.run.server_pid;
            let once = async || Ok(bench::measure("relay", &load, pid).await);
            bench::repeat(cli.run.common.repeat, out, once).await
        }
        Some(Cmd::Ceiling { common, frame_bytes }) => {
            let (viewers, duration, warmup) = (common.viewers, common.duration, common.warmup);
            let once =
                async || bench::ceiling::measure(viewers, duration, warmup, frame_bytes).await;
            bench::repeat(common.repeat, common.output(), once).await
        }
        Some(Cmd::Sweep { server, http, reach, server_pid, counts, min_fps, duration, json }) => {
            let protocol = if http { Protocol::Http } else { Protocol::Tcp };
            let load = reach
                .apply(Load { protocol, ..Load::new(&server, 0, Duration::ZERO, duration) })?;
            let sweep = Sweep { load, server_pid, counts, min_fps, duration };
            bench::sweep::run(&sweep, Output { json }).await.map(drop)
        }
        Some(Cmd::Cert { dir }) => {
            let (cert, key, fingerprint) = bench::cert(&dir)?;
            let (cert, key) = (cert.display(), key.display());
            eprintln!("server: --tls-cert {cert} --tls-key {key}; viewers: --tls-pin (on stdout)");
            println!("{fingerprint}");
            Ok(())
        }
        Some(Cmd::Slowlink {
            drone,
            cache_server,
            rate_kbit,
            duration,
            intervals,
            lowat,
            pacing,
            compare,
            layers,
        }) => {
            let compare = compare.unwrap_or(match layers {
                None => Compare::Pacing,
                Some(_) => Compare::None,
            });
            let notsent_lowat = lowat;
            let link = SlowLink {
                drone,
                cache_server,
                rate_kbit,
                notsent_lowat,
                pacing,
                layers,
                duration,
                intervals,
            };
            bench::slowlink::run(link, compare).await
        }
        Some(Cmd::Feed { udp, bytes, rate, duration }) => {
            bench::feed::run(&Feed { to: udp, bytes, rate, duration }).await.map(drop)
        }
        Some(Cmd::CeilingWriter { frame_bytes }) => bench::ceiling::serve_child(frame_bytes).await,
    }
}

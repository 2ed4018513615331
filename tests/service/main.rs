//! The binaries as services: what systemd and the journal see of them, and the installed
//! Debian packages.
//!
//! - `notify` — `Type=notify` with a fake `NOTIFY_SOCKET` (a Unix datagram socket the test
//!   binds): `READY=1` only once the port serves, `WATCHDOG=1` while the process runs and not
//!   while it is stopped, `STOPPING=1` on SIGTERM, SIGHUP survived.
//! - `logs` — `--log-format json` parses line by line; no escape code reaches a non-terminal,
//!   in either format, from any binary.
//! - `version` — `--version` names the protocol.
//! - `packages` — the installed packages (`/usr/bin/dronecast-*`, `/etc/dronecast/*.env`),
//!   run with their environment files: a frame goes drone → cache-server → client. Skips
//!   unless installed; `DRONECAST_REQUIRE_PACKAGES=1` (set by `.ci/run`) makes that a failure.
//!
//! The binaries are the ones `cargo test --workspace` builds beside this test.

// Shared with tests/docs, which also uses what this test does not.
#[allow(dead_code)]
#[path = "../docs/env_files.rs"]
mod env_files;
#[path = "../docs/help.rs"]
mod help;
mod logs;
mod notify;
mod packages;
mod version;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dronecast::framing::{Message, MessageCodec, Role};
use tokio_util::codec::Decoder;

/// Upper bound for anything a test waits on; generous for a loaded 2-core CI machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// Says hello to the dronecast server at `addr` as a viewer and returns the messages it sent
/// back until `enough` says stop (or it closed), within [`PATIENCE`].
fn talk_to(addr: SocketAddr, enough: impl Fn(&[Message]) -> bool) -> anyhow::Result<Vec<Message>> {
    let mut conn = TcpStream::connect_timeout(&addr, PATIENCE)?;
    conn.set_read_timeout(Some(PATIENCE))?;
    conn.write_all(&dronecast::framing::Hello::new(Role::Viewer, "service-test").to_bytes())?;
    let mut codec = MessageCodec::default();
    let (mut buf, mut got) = (BytesMut::new(), Vec::new());
    let deadline = Instant::now() + PATIENCE;
    while !enough(&got) && Instant::now() < deadline {
        while let Some(message) = codec.decode(&mut buf)? {
            got.push(message);
        }
        if enough(&got) {
            break;
        }
        let mut chunk = [0_u8; 64 * 1024];
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(got)
}

/// The `addr=` field of a log line.
fn addr_in(line: &str) -> anyhow::Result<SocketAddr> {
    let addr = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("addr="))
        .ok_or_else(|| anyhow::anyhow!("no addr= in {line:?}"))?;
    Ok(addr.parse()?)
}

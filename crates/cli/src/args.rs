//! Flags shared by the servers, and the value parsers every binary uses.
//!
//! Every number is checked when the command line is parsed, so a bad value stops the program
//! before it starts with clap's message naming the flag, the value and the valid range:
//!
//! ```text
//! error: invalid value '0' for '--max-viewers <N>': 0 is not in 1..=1000000
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use relay::ServerConfig;

/// Longest duration any seconds flag takes: a day. Longer is a typo, not a setting.
pub const MAX_SECONDS: f64 = 86_400.0;

/// Most viewers a server can be told to serve at once.
pub const MAX_VIEWERS: u64 = 1_000_000;

/// Largest `--notsent-lowat`: 16 MiB (more would defeat its purpose).
pub const MAX_NOTSENT_LOWAT: u32 = 16 * 1024 * 1024;

/// A positive number of seconds (`5`, `0.25`), at most [`MAX_SECONDS`].
pub fn seconds(s: &str) -> Result<Duration, String> {
    match seconds_or_zero(s)? {
        d if d.is_zero() => Err("must be greater than 0 seconds".into()),
        d => Ok(d),
    }
}

/// A number of seconds from 0 to [`MAX_SECONDS`]; what 0 means is up to the flag (usually
/// "off").
pub fn seconds_or_zero(s: &str) -> Result<Duration, String> {
    let range = || format!("must be a number of seconds from 0 to {MAX_SECONDS}");
    let v: f64 = s.trim().parse().map_err(|_| range())?;
    if !(0.0..=MAX_SECONDS).contains(&v) {
        return Err(range());
    }
    Duration::try_from_secs_f64(v).map_err(|_| range())
}

/// A stream's name: 1 to 64 ASCII letters, digits, `-`, `_` and `.`, not starting with a dot.
pub fn stream_name(s: &str) -> Result<String, String> {
    if relay::hub::valid_stream_name(s) {
        Ok(s.to_owned())
    } else {
        Err("must be 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'".into())
    }
}

/// A message size in bytes, from 1 KiB to 1 GiB.
pub fn frame_bytes(s: &str) -> Result<usize, String> {
    const MIN: u64 = 1024;
    const MAX: u64 = 1 << 30;
    let range = || format!("must be a number of bytes from {MIN} to {MAX}");
    let v: u64 = s.trim().parse().map_err(|_| range())?;
    if !(MIN..=MAX).contains(&v) {
        return Err(range());
    }
    usize::try_from(v).map_err(|_| range())
}

/// A listening address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrOrOff(pub Option<SocketAddr>);

impl std::str::FromStr for AddrOrOff {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" | "none" | "" => Ok(AddrOrOff(None)),
            addr => addr.parse().map(|a| AddrOrOff(Some(a))).map_err(|_| {
                "must be an address to listen on (IP:PORT, e.g. 0.0.0.0:8080) or `off`".to_owned()
            }),
        }
    }
}

impl std::fmt::Display for AddrOrOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("off"),
        }
    }
}

/// Flags of every program that serves viewers (drone, cache-server).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Most viewers served at once (1 to 1000000). Connections still in their handshake do
    /// not count: they have a pool of their own. One viewer more is sent a "server full"
    /// refusal and closed.
    #[arg(long, env = "DRONECAST_MAX_VIEWERS", default_value_t = 10_000, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=MAX_VIEWERS))]
    pub max_viewers: u64,
    /// Seconds a new connection has to send its complete hello; then it is dropped.
    #[arg(long, env = "DRONECAST_HANDSHAKE_TIMEOUT", default_value = "5", value_name = "SECS",
          value_parser = seconds)]
    pub handshake_timeout: Duration,
    /// Seconds a viewer's socket may take to accept one frame; a viewer that takes nothing
    /// for this long (a laptop gone to sleep, a stuck program) is dropped.
    #[arg(long, env = "DRONECAST_VIEWER_TIMEOUT", default_value = "30", value_name = "SECS",
          value_parser = seconds)]
    pub viewer_timeout: Duration,
    /// Bytes of unsent data the kernel may hold per viewer (TCP_NOTSENT_LOWAT), 0 to 16777216.
    /// A small cap makes a slow viewer's writer pick its next frame late, so it gets a fresh
    /// one rather than one that waited behind a deep buffer. 0 leaves the kernel default.
    #[arg(long, env = "DRONECAST_NOTSENT_LOWAT", default_value_t = 16 * 1024, value_name = "BYTES",
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_NOTSENT_LOWAT)))]
    pub notsent_lowat: u32,
    /// Freshness pacing: `on` picks each viewer's next frame only once its link has carried
    /// the last one (the kernel's TCP_INFO), so a viewer on a slow link gets the frame that is
    /// newest when its link can take it; `off` sends it as soon as the socket takes it.
    #[arg(long, env = "DRONECAST_PACING", default_value = "on", value_name = "on|off",
          action = clap::ArgAction::Set,
          value_parser = on_off)]
    pub pacing: bool,
}

/// `on` or `off`.
pub fn on_off(s: &str) -> Result<bool, String> {
    match s.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("'{other}' is neither on nor off")),
    }
}

impl ServeArgs {
    /// The server configuration these flags describe.
    pub fn config(&self, agent: &str) -> ServerConfig {
        ServerConfig {
            agent: agent.to_owned(),
            // Bounded by MAX_VIEWERS at parse time, far below what a semaphore holds.
            max_viewers: usize::try_from(self.max_viewers).unwrap_or(usize::MAX),
            handshake_timeout: self.handshake_timeout,
            viewer_timeout: self.viewer_timeout,
            notsent_lowat: (self.notsent_lowat > 0).then_some(self.notsent_lowat),
            pacing: self.pacing,
            ..ServerConfig::default()
        }
    }
}

/// Checks `--layer`: `auto` (the relay chooses), `top`, a number (0 the top) or a layer's
/// name; returns what the hello asks for.
pub fn layer(s: &str) -> Result<String, String> {
    use framing::layers::{AUTO, MAX_LAYERS, valid_name};
    match s {
        "auto" => Ok(AUTO.to_owned()),
        "top" => Ok("0".to_owned()),
        _ => match s.parse::<usize>() {
            Ok(n) if n < MAX_LAYERS => Ok(n.to_string()),
            Ok(n) => Err(format!("layer {n}: a stream has layers 0 to {}", MAX_LAYERS - 1)),
            Err(_) if valid_name(s) => Ok(s.to_owned()),
            Err(_) => Err(format!("'{s}' is not auto, top, a layer number or a layer name")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_take_positive_finite_numbers_up_to_a_day() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds(" 5 "), Ok(Duration::from_secs(5)));
        for bad in ["0", "-1", "nan", "inf", "1e9", "", "5s"] {
            assert!(seconds(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(seconds_or_zero("0"), Ok(Duration::ZERO));
        assert!(seconds_or_zero("-0.1").is_err());
    }

    #[test]
    fn an_address_or_off() {
        assert_eq!("off".parse(), Ok(AddrOrOff(None)));
        assert_eq!("127.0.0.1:8080".parse(), Ok(AddrOrOff(Some(([127, 0, 0, 1], 8080).into()))));
        assert!("localhost".parse::<AddrOrOff>().is_err());
    }

    #[test]
    fn frame_bytes_have_a_floor_and_a_ceiling() {
        assert_eq!(frame_bytes("16777216"), Ok(16 << 20));
        assert!(frame_bytes("10").is_err());
        assert!(frame_bytes("99999999999").is_err());
    }
}

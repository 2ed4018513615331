//! What streams a cache-server relays: from `--upstream` flags and a `--config` file.
//!
//! ```text
//! --upstream pi1:9999                  one stream, `default` (also known by the drone's name)
//! --upstream front=pi1:9999            a stream named `front`
//! --upstream front=relay1:9998/cam2    `front`, relaying stream `cam2` of another relay
//! --upstream relay1:9998/cam2          `cam2`, the same name as upstream
//! --upstream relay1:9998/*             every stream of another relay, under the same names,
//!                                      streams added there later included
//! ```

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use relay::Target;
use relay::hub::valid_stream_name;
use serde::Deserialize;

/// The local name of the stream relayed from a bare `HOST:PORT`.
pub const DEFAULT_STREAM: &str = "default";

/// One `--upstream`, or one `[[stream]]` of the config file.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSpec {
    /// The local name; `None` for a bare `HOST:PORT` (then `default`, also reachable by the
    /// name the upstream reports) and for a mirror (the upstream's names).
    pub name: Option<String>,
    /// Where to dial, and which of its streams.
    pub upstream: Target,
    /// Largest frame accepted from upstream (the server-wide `--max-frame-bytes` if `None`).
    pub max_frame_bytes: Option<usize>,
    /// Longest pause between redials (the server-wide `--redial-max` if `None`).
    pub redial_max: Option<Duration>,
    /// The token this upstream wants (the server-wide `--upstream-token` if `None`).
    pub token: Option<String>,
    /// How to trust this upstream over TLS (the server-wide setting if `None`).
    pub trust: Option<relay::tls::Trust>,
}

impl StreamSpec {
    /// True for `HOST:PORT/*`: every stream of the upstream.
    pub fn is_mirror(&self) -> bool {
        self.upstream.stream == framing::ALL_STREAMS
    }

    /// The local stream's name (for a mirror, a key naming the mirror).
    pub fn key(&self) -> String {
        match (&self.name, self.upstream.stream.as_str()) {
            (Some(name), _) => name.clone(),
            (None, "") => DEFAULT_STREAM.to_owned(),
            (None, remote) if remote == framing::ALL_STREAMS => format!("{}/*", self.upstream.addr),
            (None, remote) => remote.to_owned(),
        }
    }

    fn check(self) -> Result<StreamSpec, String> {
        if let Some(name) = &self.name {
            if !valid_stream_name(name) {
                return Err(format!(
                    "'{name}' is not a stream name (letters, digits, '-', '_' and '.', up to 64)"
                ));
            }
            if self.is_mirror() {
                return Err(format!(
                    "{name}={}: a mirror of every stream (…/*) takes the upstream's names; \
                     drop the `{name}=`",
                    self.upstream
                ));
            }
        }
        Ok(self)
    }
}

impl FromStr for StreamSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, target) = match s.split_once('=') {
            Some((name, target)) => (Some(name.to_owned()), target),
            None => (None, s),
        };
        let upstream: Target = target.parse()?;
        StreamSpec {
            name,
            upstream,
            max_frame_bytes: None,
            redial_max: None,
            token: None,
            trust: None,
        }
        .check()
    }
}

/// The config file (`--config streams.toml`):
///
/// ```toml
/// [[stream]]
/// name = "front"              # optional, as in --upstream
/// upstream = "pi1:9999"       # HOST:PORT, HOST:PORT/STREAM or HOST:PORT/*
/// max_frame_bytes = 4194304   # optional
/// redial_max = 1.0            # optional, seconds
/// token = "…"                 # optional: what this upstream wants
/// tls_pin = "SHA256:…"        # optional, for tls:// upstreams: trust this certificate
/// tls_ca = "/etc/…/ca.pem"    # optional, for tls:// upstreams: trust these CAs
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    stream: Vec<FileStream>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStream {
    name: Option<String>,
    upstream: String,
    max_frame_bytes: Option<usize>,
    redial_max: Option<f64>,
    token: Option<String>,
    tls_pin: Option<String>,
    tls_ca: Option<std::path::PathBuf>,
}

/// Reads the streams of a config file; every error names the file and the stream.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<StreamSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read the config file {}", path.display()))?;
    let file: File = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid config", path.display()))?;
    file.stream
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let where_ = || format!("{}, stream {}", path.display(), i + 1);
            let redial_max =
                s.redial_max.map(|secs| cli_seconds(secs).with_context(where_)).transpose()?;
            if let Some(bytes) = s.max_frame_bytes {
                anyhow::ensure!(
                    (1024..=1 << 30).contains(&bytes),
                    "{}: max_frame_bytes must be from 1024 to 1073741824",
                    where_()
                );
            }
            let trust = match (s.tls_pin, s.tls_ca) {
                (Some(pin), _) => Some(relay::tls::Trust::Pin(
                    pin.parse().map_err(anyhow::Error::msg).with_context(where_)?,
                )),
                (None, Some(ca)) => Some(relay::tls::Trust::Ca(ca)),
                (None, None) => None,
            };
            let spec = StreamSpec {
                name: s.name,
                upstream: s.upstream.parse().map_err(anyhow::Error::msg).with_context(where_)?,
                max_frame_bytes: s.max_frame_bytes,
                redial_max,
                token: s.token,
                trust,
            };
            spec.check().map_err(anyhow::Error::msg).with_context(where_)
        })
        .collect()
}

fn cli_seconds(secs: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(secs > 0.0 && secs <= 86_400.0, "redial_max must be from 0 to 86400 seconds");
    Duration::try_from_secs_f64(secs).context("redial_max must be a number of seconds")
}

/// Checks that no two specs claim the same local name.
pub fn check_unique(specs: &[StreamSpec]) -> anyhow::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for spec in specs {
        anyhow::ensure!(seen.insert(spec.key()), "two streams are named '{}'", spec.key());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> StreamSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_forms_of_upstream() {
        assert_eq!(spec("pi1:9999").key(), "default");
        assert_eq!(spec("front=pi1:9999").key(), "front");
        assert_eq!(spec("front=relay1:9998/cam2").upstream.stream, "cam2");
        assert_eq!(spec("relay1:9998/cam2").key(), "cam2");
        assert!(spec("relay1:9998/*").is_mirror());
        assert!("x=relay1:9998/*".parse::<StreamSpec>().is_err(), "a mirror takes no name");
        assert!("a b=pi1:9999".parse::<StreamSpec>().is_err());
        assert!("pi1".parse::<StreamSpec>().is_err());
    }

    #[test]
    fn a_config_file_with_its_options() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("streams.toml");
        std::fs::write(
            &path,
            "[[stream]]\nname = \"front\"\nupstream = \"pi1:9999\"\nredial_max = 1.5\n\n\
             [[stream]]\nupstream = \"relay:9998/*\"\nmax_frame_bytes = 4096\n",
        )?;
        let specs = read_file(&path)?;
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].redial_max, Some(Duration::from_millis(1500)));
        assert!(specs[1].is_mirror());
        std::fs::write(&path, "[[stream]]\nupstream = \"pi1\"\n")?;
        let err = read_file(&path).expect_err("a bad address").to_string();
        assert!(err.contains("stream 1"), "{err}");
        std::fs::write(&path, "[[stream]]\nupstream = \"pi1:1\"\ncolour = 3\n")?;
        assert!(read_file(&path).is_err(), "unknown keys are refused");
        Ok(())
    }
}

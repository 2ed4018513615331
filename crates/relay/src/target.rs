//! [`Target`]: where a viewer connects — `HOST:PORT`, optionally with a stream name after a
//! slash (`pi1:9999`, `lanbox:9998/front`, `relay1:9998/*` for every stream), and `tls://` in
//! front for a TLS port.

use std::fmt;
use std::str::FromStr;

/// A source's address and the stream wanted from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `HOST:PORT` (IPv6 in brackets).
    pub addr: String,
    /// The stream's name; empty for the source's default stream, `*` for all of them.
    pub stream: String,
    /// Over TLS (`tls://HOST:PORT`).
    pub tls: bool,
}

impl Target {
    /// The host part of the address, for TLS's server name.
    pub fn host(&self) -> &str {
        self.addr.rsplit_once(':').map_or(self.addr.as_str(), |(host, _)| host)
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(whole: &str) -> Result<Self, Self::Err> {
        let (tls, s) = match whole.strip_prefix("tls://") {
            Some(rest) => (true, rest),
            None => (false, whole),
        };
        let (addr, stream) = match s.split_once('/') {
            Some((addr, stream)) => (addr, stream),
            None => (s, ""),
        };
        let host_port = addr.rsplit_once(':');
        let valid =
            host_port.is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(format!("'{whole}' is not HOST:PORT, HOST:PORT/STREAM or tls://…"));
        }
        let named = stream.is_empty()
            || stream == framing::ALL_STREAMS
            || crate::hub::valid_stream_name(stream);
        if !named {
            return Err(format!(
                "'{stream}' is not a stream name (letters, digits, '-', '_' and '.', up to 64)"
            ));
        }
        Ok(Target { addr: addr.to_owned(), stream: stream.to_owned(), tls })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.tls {
            f.write_str("tls://")?;
        }
        match self.stream.as_str() {
            "" => f.write_str(&self.addr),
            stream => write!(f, "{}/{stream}", self.addr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_with_and_without_a_stream() {
        let t: Target = "pi1:9999".parse().expect("bare");
        assert_eq!((t.addr.as_str(), t.stream.as_str()), ("pi1:9999", ""));
        let t: Target = "[::1]:9998/front".parse().expect("v6 with a stream");
        assert_eq!((t.addr.as_str(), t.stream.as_str()), ("[::1]:9998", "front"));
        assert_eq!("relay:9998/*".parse::<Target>().map(|t| t.stream), Ok("*".into()));
        assert_eq!(t.to_string(), "[::1]:9998/front");
        let t: Target = "tls://pi1:9999/cam".parse().expect("tls");
        assert!(t.tls && t.host() == "pi1" && t.to_string() == "tls://pi1:9999/cam");
        for bad in ["pi1", "pi1:x", ":1/a", "h:1/a/b", "h:1/.x"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}

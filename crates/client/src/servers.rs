//! [`Servers`]: what the client's first argument names — one server (`HOST:PORT`,
//! `HOST:PORT/STREAM`, `tls://…`), or several, separated by commas, to fail over between
//! (`relay1:9998,relay2:9998`). A load balancer in front of several relays is one address.

use std::fmt;
use std::str::FromStr;

use relay::Target;

/// Most addresses the client takes: more is a typo or a list for a balancer to hold.
pub const MAX_SERVERS: usize = 16;

/// The servers to watch, in the order they are tried; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Servers(Vec<Target>);

impl Servers {
    /// The servers, in order.
    pub fn targets(&self) -> &[Target] {
        &self.0
    }
}

impl FromStr for Servers {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("'{s}' has an empty address: write HOST:PORT[,HOST:PORT…]"));
        }
        if parts.len() > MAX_SERVERS {
            return Err(format!("{} addresses; at most {MAX_SERVERS}", parts.len()));
        }
        parts.into_iter().map(str::parse).collect::<Result<_, _>>().map(Servers)
    }
}

impl fmt::Display for Servers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, target) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{target}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_or_several_separated_by_commas() {
        let one: Servers = "lanbox:9998/front".parse().expect("one");
        assert_eq!(one.targets().len(), 1);
        assert_eq!(one.targets()[0].stream, "front");
        let two: Servers = "relay1:9998, tls://relay2:9998".parse().expect("two");
        let addrs: Vec<_> = two.targets().iter().map(|t| (t.addr.as_str(), t.tls)).collect();
        assert_eq!(addrs, [("relay1:9998", false), ("relay2:9998", true)]);
        assert_eq!(two.to_string(), "relay1:9998,tls://relay2:9998");
        for bad in ["", "a:1,", ",a:1", "a:1,,b:2", "a:1,b"] {
            assert!(bad.parse::<Servers>().is_err(), "{bad:?}");
        }
        let many = vec!["h:1"; MAX_SERVERS + 1].join(",");
        assert!(many.parse::<Servers>().is_err(), "more than {MAX_SERVERS}");
    }
}

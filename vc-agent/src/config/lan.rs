//! `[lan] default_requires`: the conditions on the LAN side for advertising 0.0.0.0/0,
//! typed at the config seam (`"link"`, `"route 10.0.0.0/8"`).
use std::{fmt, net::Ipv4Addr, str::FromStr};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// One condition of `[lan] default_requires`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum LanCheck {
    /// `"link"`: the LAN interface is up with carrier (operationally up).
    Link,
    /// `"route 10.0.0.0/8"`: the kernel's main table has a route for exactly this prefix
    /// (the enterprise network, as an IGP or a static route installs it).
    Route(Ipv4Net),
}

impl fmt::Display for LanCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LanCheck::Link => f.write_str("link"),
            LanCheck::Route(p) => write!(f, "route {p}"),
        }
    }
}

/// Why a `default_requires` entry is not a check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a LAN check: say \"link\" or \"route PREFIX\" (e.g. \"route 10.0.0.0/8\")")]
pub struct BadCheck(pub String);

impl FromStr for LanCheck {
    type Err = BadCheck;

    fn from_str(s: &str) -> Result<Self, BadCheck> {
        let bad = || BadCheck(s.to_string());
        let mut words = s.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("link"), None, None) => Ok(LanCheck::Link),
            (Some("route"), Some(p), None) => {
                // A bare address means its /32 (a next hop's host route).
                let net = p
                    .parse::<Ipv4Net>()
                    .or_else(|_| p.parse::<Ipv4Addr>().map(Ipv4Net::from))
                    .map_err(|_| bad())?;
                Ok(LanCheck::Route(net.trunc()))
            }
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for LanCheck {
    type Error = BadCheck;

    fn try_from(s: String) -> Result<Self, BadCheck> {
        s.parse()
    }
}

impl From<LanCheck> for String {
    fn from(c: LanCheck) -> String {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::LanCheck;

    #[test]
    fn checks_parse_and_print_back() {
        assert_eq!("link".parse(), Ok(LanCheck::Link));
        let r: LanCheck = "route  10.0.0.0/8".parse().expect("route");
        assert_eq!(r, LanCheck::Route("10.0.0.0/8".parse().expect("net")));
        assert_eq!(r.to_string(), "route 10.0.0.0/8");
        let host: LanCheck = "route 10.1.0.254".parse().expect("host");
        assert_eq!(host.to_string(), "route 10.1.0.254/32");
        for bad in [
            "",
            "links",
            "route",
            "route 10.0.0.0/33",
            "route 10/8 x",
            "ping 1",
        ] {
            assert!(bad.parse::<LanCheck>().is_err(), "{bad:?}");
        }
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(json, r#""route 10.0.0.0/8""#);
    }
}

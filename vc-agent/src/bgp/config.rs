//! What one eBGP neighbour (one tunnel) needs. The activation-form config maps onto this; the
//! password lives in a [`Secret`] that never prints.
use std::{net::Ipv4Addr, time::Duration};

use ipnet::Ipv4Net;

use super::{
    fsm::{FsmConfig, GracefulRestart},
    packet::AS_TRANS,
    rib::ImportPolicy,
};

/// The longest TCP-MD5 key Linux takes (`TCP_MD5SIG_MAXKEYLEN`).
pub const MD5_MAX_KEY_LEN: usize = 80;

/// A password: the configuration's resolved secret, whose Debug and Display print
/// `<redacted>`.
pub use crate::config::SecretValue as Secret;

/// One neighbour: the DC-side tunnel IP of one tunnel (R16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborConfig {
    /// Tunnel id (0 = A/DC1, 1 = B/DC2): the bit this session's routes set in the datapath.
    pub tunnel: u32,
    /// Our tunnel IP: the session's source and our `NEXT_HOP`.
    pub local_addr: Ipv4Addr,
    /// The DC's tunnel IP.
    pub peer_addr: Ipv4Addr,
    /// The tunnel interface: the session's sockets are bound to it (`SO_BINDTODEVICE`), so
    /// that only segments that came in on it reach the listener (the tunnel IP is routable
    /// from the LAN too). `None`: any interface.
    pub interface: Option<String>,
    /// TCP port, both to listen on and to connect to (179).
    pub port: u16,
    pub local_asn: u32,
    pub remote_asn: u32,
    /// BGP Identifier; `None` = `local_addr`.
    pub router_id: Option<Ipv4Addr>,
    /// TCP-MD5 password (RFC 2385, R17).
    pub md5_password: Option<Secret>,
    /// Hold time we propose, seconds (0, or 3 and more).
    pub hold_time: u16,
    pub connect_retry: Duration,
    /// Idle hold after the first error; doubles per consecutive error up to `idle_hold_max`.
    pub idle_hold: Duration,
    pub idle_hold_max: Duration,
    /// More prefixes than this (accepted or not) ends the session with Cease 6/1.
    pub max_prefixes: u32,
    /// Exactly the prefixes this session may install: the DC's /25 and the shared /24 (R19).
    pub accepted_prefixes: Vec<Ipv4Net>,
    /// Never connect; wait for the peer.
    pub passive: bool,
    /// Graceful restart as the restarting speaker (RFC 4724).
    pub graceful_restart: GracefulRestart,
}

impl NeighborConfig {
    /// A neighbour with the defaults: port 179, hold 90 s (RFC 4271 §10), connect retry 10 s,
    /// idle hold 5 s doubling to 120 s, at most 10 prefixes, active and passive open, graceful
    /// restart time 120 s (not restarted).
    #[must_use]
    pub fn new(
        tunnel: u32,
        local_addr: Ipv4Addr,
        peer_addr: Ipv4Addr,
        local_asn: u32,
        remote_asn: u32,
        accepted_prefixes: Vec<Ipv4Net>,
    ) -> Self {
        NeighborConfig {
            tunnel,
            local_addr,
            peer_addr,
            interface: None,
            port: 179,
            local_asn,
            remote_asn,
            router_id: None,
            md5_password: None,
            hold_time: 90,
            connect_retry: Duration::from_secs(10),
            idle_hold: Duration::from_secs(5),
            idle_hold_max: Duration::from_mins(2),
            max_prefixes: 10,
            accepted_prefixes,
            passive: false,
            graceful_restart: GracefulRestart {
                restart_time: 120,
                restarted: false,
            },
        }
    }

    /// Rejects what the speaker cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |what: String| Err(ConfigError(what));
        if self.tunnel >= vc_common::MAX_TUNNELS {
            return err(format!(
                "tunnel id {} out of range (0..{})",
                self.tunnel,
                vc_common::MAX_TUNNELS
            ));
        }
        for (which, asn) in [("local", self.local_asn), ("remote", self.remote_asn)] {
            if asn == 0 || asn == u32::from(AS_TRANS) {
                return err(format!("{which} AS {asn} is reserved"));
            }
        }
        if self.local_asn == self.remote_asn {
            return err(format!(
                "local and remote AS are both {}: this speaker does eBGP only",
                self.local_asn
            ));
        }
        if matches!(self.hold_time, 1 | 2) {
            return err(format!(
                "hold time {} s: must be 0 or at least 3 (RFC 4271 §4.2)",
                self.hold_time
            ));
        }
        if self.local_addr == self.peer_addr {
            return err(format!(
                "local and peer address are both {}",
                self.peer_addr
            ));
        }
        if let Some(p) = &self.md5_password
            && (p.expose().is_empty() || p.expose().len() > MD5_MAX_KEY_LEN)
        {
            return err(format!(
                "the BGP password must be 1 to {MD5_MAX_KEY_LEN} octets"
            ));
        }
        if let Some(name) = &self.interface
            && (name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', '\0']))
        {
            return err(format!("{name:?} is not an interface name"));
        }
        if let Some(p) = self.accepted_prefixes.iter().find(|p| p.trunc() != **p) {
            return err(format!("accepted prefix {p} has host bits set"));
        }
        if self.graceful_restart.restart_time > 0x0fff {
            return err(format!(
                "graceful restart time {} s: at most 4095 (12 bits, RFC 4724 §3)",
                self.graceful_restart.restart_time
            ));
        }
        if self.connect_retry.is_zero() || self.idle_hold.is_zero() {
            return err("connect retry and idle hold times must not be zero".into());
        }
        Ok(())
    }

    #[must_use]
    pub fn router_id(&self) -> Ipv4Addr {
        self.router_id.unwrap_or(self.local_addr)
    }

    pub(crate) fn fsm(&self) -> FsmConfig {
        FsmConfig {
            local_asn: self.local_asn,
            remote_asn: self.remote_asn,
            router_id: self.router_id(),
            hold_time: self.hold_time,
            connect_retry: self.connect_retry,
            idle_hold: self.idle_hold,
            idle_hold_max: self.idle_hold_max.max(self.idle_hold),
            passive: self.passive,
            graceful_restart: self.graceful_restart,
        }
    }

    pub(crate) fn policy(&self) -> ImportPolicy {
        ImportPolicy {
            accepted: self.accepted_prefixes.iter().copied().collect(),
            local_asn: self.local_asn,
            peer_asn: self.remote_asn,
            local_addr: self.local_addr,
        }
    }
}

/// An unusable neighbour configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("BGP neighbour: {0}")]
pub struct ConfigError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NeighborConfig {
        NeighborConfig::new(
            0,
            Ipv4Addr::new(100, 64, 0, 1),
            Ipv4Addr::new(100, 64, 0, 2),
            65001,
            65010,
            vec!["198.18.10.0/25".parse().expect("net")],
        )
    }

    #[test]
    fn the_password_never_prints() {
        let mut c = cfg();
        c.md5_password = Some(Secret::new("hunter2-sekrit"));
        let shown = format!("{c:?} {c:#?} {}", c.md5_password.as_ref().expect("set"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(cfg().validate(), Ok(()));
        let bad = [
            NeighborConfig {
                hold_time: 2,
                ..cfg()
            },
            NeighborConfig {
                remote_asn: 65001,
                ..cfg()
            },
            NeighborConfig {
                local_asn: 23456,
                ..cfg()
            },
            NeighborConfig { tunnel: 9, ..cfg() },
            NeighborConfig {
                md5_password: Some(Secret::new("x".repeat(81))),
                ..cfg()
            },
            NeighborConfig {
                accepted_prefixes: vec!["198.18.10.1/25".parse().expect("net")],
                ..cfg()
            },
            NeighborConfig {
                interface: Some("a-name-too-long-for-linux".into()),
                ..cfg()
            },
        ];
        for c in bad {
            let e = c.validate().expect_err("invalid");
            assert!(!e.0.contains('x'.to_string().repeat(81).as_str()), "{e}");
        }
    }
}

//! The host settings the packet paths need (datapath.md), and nothing broader.
//!
//! Per-device settings go with their device at teardown. The one namespace-wide setting,
//! forwarding, is recorded before it is changed and restored afterwards, unless someone else
//! changed it meanwhile.
use std::{fs, path::PathBuf};

use anyhow::{Context, Result, bail};

/// A sysctl under `/proc/sys/net`, in the calling thread's network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sysctl(String);

impl Sysctl {
    #[must_use]
    pub fn ipv4_conf(device: &str, key: &str) -> Self {
        Sysctl(format!("ipv4/conf/{device}/{key}"))
    }

    #[must_use]
    pub fn ipv6_conf(device: &str, key: &str) -> Self {
        Sysctl(format!("ipv6/conf/{device}/{key}"))
    }

    #[must_use]
    pub fn ip_forward() -> Self {
        Sysctl("ipv4/ip_forward".into())
    }

    #[must_use]
    pub fn name(&self) -> String {
        format!("net.{}", self.0.replace('/', "."))
    }

    fn path(&self) -> PathBuf {
        // /proc/sys/net follows the calling thread's network namespace (unlike /proc/net,
        // which follows the process's).
        PathBuf::from("/proc/sys/net").join(&self.0)
    }

    pub fn read(&self) -> Result<String> {
        fs::read_to_string(self.path())
            .map(|v| v.trim().to_string())
            .with_context(|| format!("reading {}", self.name()))
    }

    pub fn write(&self, value: &str) -> Result<()> {
        fs::write(self.path(), value).with_context(|| format!("setting {} = {value}", self.name()))
    }
}

/// Settings of a tunnel's interface pair, before the links come up:
/// - no IPv6 on either end (its neighbour discovery would only be dropped as not IPv4);
/// - the peer accepts packets with our own addresses as source (everything it receives:
///   our BGP and pings, encapsulated GRE) and does no reverse-path check (strict always
///   fails there);
/// - the tunnel interface accepts the DC's keepalives, whose inner source is our own GRE
///   address, and checks reverse paths loosely (a DC prefix may be reachable through the
///   other tunnel after a failover).
#[must_use]
pub fn tunnel_pair_settings(tunnel: &str, peer: &str) -> Vec<(Sysctl, &'static str)> {
    vec![
        (Sysctl::ipv6_conf(tunnel, "disable_ipv6"), "1"),
        (Sysctl::ipv6_conf(peer, "disable_ipv6"), "1"),
        (Sysctl::ipv4_conf(peer, "accept_local"), "1"),
        (Sysctl::ipv4_conf(peer, "rp_filter"), "0"),
        (Sysctl::ipv4_conf(tunnel, "accept_local"), "1"),
        (Sysctl::ipv4_conf(tunnel, "rp_filter"), "2"),
    ]
}

pub fn apply(settings: &[(Sysctl, &str)]) -> Result<()> {
    for (sysctl, value) in settings {
        sysctl.write(value)?;
    }
    Ok(())
}

/// The effective reverse-path filter of a device is the stricter of its own and `all`'s: with
/// `all` strict, the hidden peers drop everything. Say so instead of changing a host-wide
/// setting behind the admin's back.
pub fn check_rp_filter_all() -> Result<()> {
    let all = Sysctl::ipv4_conf("all", "rp_filter");
    if all.read()? == "1" {
        bail!(
            "{} = 1 (strict) applies to vc's tunnel interfaces too, and strict reverse-path \
             filtering drops every packet their hidden peers receive (their source is the \
             CPE's own address); set it to 0 or 2 (per-device values still apply)",
            all.name()
        );
    }
    Ok(())
}

/// Turns forwarding on; returns the value it had, to restore at teardown.
pub fn enable_forwarding() -> Result<String> {
    let forward = Sysctl::ip_forward();
    let before = forward.read()?;
    if before != "1" {
        forward.write("1")?;
    }
    Ok(before)
}

/// Restores forwarding to `before` if it is still as vc set it.
pub fn restore_forwarding(before: &str) -> Result<()> {
    let forward = Sysctl::ip_forward();
    if before != "1" && forward.read()? == "1" {
        forward.write(before)?;
    }
    Ok(())
}

//! One Cisco data centre as the CPE sees it: a strongSwan responder (PSK, GRE-only selectors,
//! tunnel mode, the form's proposals), kernel `ip_gre` toward the CPE's GRE transport IP, BIRD
//! 2 peering over the tunnel with the BGP password and exporting the DC's /25 and the shared
//! /24, Cisco-format keepalives, and a host in its /25.
use std::{fmt::Write as _, net::Ipv4Addr, time::Duration};

use anyhow::{Context, Result};

use super::{
    keepalive::DcKeepalives,
    plan::{CPE_ASN, CPE_WAN_NET, CPE_WAN2_NET, DcPlan, KEEPALIVE_INTERVAL_S},
};
use crate::{
    NetNs,
    bird::{BgpPeer, Bird},
    charon::{Charon, Conn},
};

/// The name of the CPE's session in each DC's BIRD (`birdc show protocols all cpe`).
pub const BGP_PROTOCOL: &str = "cpe";

/// A running DC. Fields drop in order: its senders before its daemons before its namespace.
pub struct Dc {
    pub plan: &'static DcPlan,
    /// The public address of the CPE that terminates its tunnel (the deployment model's).
    pub cpe: Ipv4Addr,
    /// It sends Cisco keepalives once its peers start.
    send_keepalives: bool,
    /// Its BGP hold time, if not BIRD's default.
    hold_time: Option<u16>,
    keepalives: Option<DcKeepalives>,
    bird: Option<Bird>,
    pub charon: Charon,
    pub ns: NetNs,
}

/// The SAs a DC's charon lists (`swanctl --list-sas`), as far as the checks care.
#[derive(Clone, Debug, Default)]
pub struct DcSas {
    pub ike_established: bool,
    /// e.g. `AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384`.
    pub ike_proposal: String,
    pub child_installed: bool,
    /// e.g. `INSTALLED, TUNNEL, ESP:AES_GCM_16-256`.
    pub child: String,
    pub local_ts: String,
    pub remote_ts: String,
    /// IKE SAs listed (more than one: a duplicate from simultaneous initiation).
    pub ike_sas: usize,
    /// Where the IKE SA's peer is, `address[port]`: port 4500 once NAT-T floated.
    pub ike_remote: String,
}

impl DcSas {
    /// Reads `swanctl --list-sas` text: an IKE line `name: #N, STATE, IKEv2, ...`, its
    /// proposal line, then child lines `name: #N, reqid R, STATE, MODE, ESP:...` with
    /// `local`/`remote` selector lines.
    #[must_use]
    pub fn parse(text: &str) -> DcSas {
        let mut sas = DcSas::default();
        let mut in_child = false;
        for line in text.lines() {
            let indent = line.len() - line.trim_start().len();
            let l = line.trim();
            if indent == 0 && l.contains(": #") {
                sas.ike_sas += 1;
                sas.ike_established |= l.contains("ESTABLISHED");
                in_child = false;
            } else if indent == 2 && l.contains(": #") && l.contains("reqid") {
                in_child = true;
                if l.contains("INSTALLED") {
                    sas.child_installed = true;
                    sas.child = l.split_once(", ").map_or("", |(_, rest)| rest).to_string();
                    if let Some((_, rest)) = sas.child.split_once(", ") {
                        // drop "reqid N, "
                        sas.child = rest.to_string();
                    }
                }
            } else if indent == 2 && l.starts_with("remote '") {
                sas.ike_remote = l.rsplit(" @ ").next().unwrap_or("").to_string();
            } else if indent == 2 && l.contains('/') && !l.contains(' ') {
                sas.ike_proposal = l.to_string();
            } else if in_child && let Some(ts) = l.strip_prefix("local ") {
                sas.local_ts = ts.trim().to_string();
            } else if in_child && let Some(ts) = l.strip_prefix("remote ") {
                sas.remote_ts = ts.trim().to_string();
            }
        }
        sas
    }
}

impl Dc {
    /// Builds the DC in `ns` (linked to the router as `wan` and to the other DC as `bb`
    /// already) and starts its charon with the connection loaded. BGP and keepalives wait for
    /// [`Dc::start_peers`]: a DC that sent GRE first would race the CPE's IKE initiation.
    pub fn build(plan: &'static DcPlan, ns: NetNs) -> Result<Dc> {
        Dc::build_with(plan, ns, &super::config::Options::default())
    }

    /// [`Dc::build`] with a scenario's ESP proposals and keepalives.
    pub fn build_with(
        plan: &'static DcPlan,
        ns: NetNs,
        options: &super::config::Options,
    ) -> Result<Dc> {
        let i = plan.side();
        let other = plan.other();
        let cpe = options.cpe_public(plan);
        ns.sh(&format!(
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
             sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
             ip addr add {wan}/30 dev wan
             ip addr add {ipsec}/32 dev lo; ip addr add {gre}/32 dev lo; ip addr add {host}/32 dev lo
             ip route add {CPE_WAN_NET} via {router}
             ip addr add {bb}/30 dev bb
             ip route add {other_prefix} via {other_bb}
             ip route add default via {other_bb} metric 1000
             ip link add gre1 type gre local {gre} remote {cpe} ttl 64
             sysctl -qw net.ipv4.conf.gre1.rp_filter=0 net.ipv4.conf.gre1.accept_local=1
             ip addr add {tunnel}/30 dev gre1
             ip link set gre1 up",
            wan = plan.wan_link,
            ipsec = plan.ipsec,
            gre = plan.gre,
            host = plan.host,
            router = plan.router_link,
            bb = plan.backbone,
            other_prefix = other.prefix,
            other_bb = other.backbone,
            tunnel = plan.tunnel_ip,
        ))
        .with_context(|| format!("building DC{}", plan.n))?;
        if options.two_wans {
            // The CPE's second ISP, on the internet like its first.
            ns.sh(&format!(
                "ip route add {CPE_WAN2_NET} via {}",
                plan.router_link
            ))?;
        }
        let charon = Charon::start(&ns, &plan.name())?;
        let mut c = conn(plan, cpe);
        c.esp_proposals = options.esp_proposals[i].to_string();
        charon.load(&[c])?;
        Ok(Dc {
            plan,
            cpe,
            send_keepalives: options.dc_keepalives[i],
            hold_time: options.dc_hold_time_s,
            keepalives: None,
            bird: None,
            charon,
            ns,
        })
    }

    /// Starts BIRD and (unless off for this DC) the keepalive sender.
    pub fn start_peers(&mut self) -> Result<()> {
        self.bird = Some(Bird::start(&self.ns, &self.bird_config(&[]))?);
        if self.send_keepalives {
            self.start_keepalives()?;
        }
        Ok(())
    }

    /// Starts sending Cisco keepalives (again).
    pub fn start_keepalives(&mut self) -> Result<()> {
        self.keepalives = Some(DcKeepalives::start(
            &self.ns,
            self.plan.gre,
            self.cpe,
            Duration::from_secs(u64::from(KEEPALIVE_INTERVAL_S)),
        )?);
        Ok(())
    }

    /// Stops sending keepalives, as a head end with `no keepalive` (it still forwards the
    /// CPE's back, as kernel `ip_gre` does).
    pub fn stop_keepalives(&mut self) {
        self.keepalives = None;
    }

    /// The CPE's GRE-only selector and its own, as strongSwan prints them.
    #[must_use]
    pub fn selectors(&self) -> (String, String) {
        self.plan.selectors_with(self.cpe)
    }

    /// What its charon lists now.
    #[must_use]
    pub fn sas(&self) -> DcSas {
        DcSas::parse(&self.charon.swanctl(&["--list-sas"]).unwrap_or_default())
    }

    /// Its BIRD, once started.
    #[must_use]
    pub fn bird(&self) -> Option<&Bird> {
        self.bird.as_ref()
    }

    /// The BGP state of its session with the CPE (`Established`, `Active`, ...).
    #[must_use]
    pub fn bgp_state(&self) -> Option<String> {
        self.bird.as_ref()?.bgp_state(BGP_PROTOCOL).ok()
    }

    /// The prefixes its BIRD received from the CPE.
    #[must_use]
    pub fn received(&self) -> Vec<String> {
        self.bird
            .as_ref()
            .and_then(|b| b.routes(&format!("protocol {BGP_PROTOCOL}")).ok())
            .unwrap_or_default()
    }

    /// (sent, answered) of its keepalives.
    #[must_use]
    pub fn keepalives(&self) -> (u64, u64) {
        self.keepalives
            .as_ref()
            .map_or((0, 0), |k| (k.sent(), k.answered()))
    }

    /// Announces `extra` prefixes besides its /25 and its region's /24 (none: back to Cisco's two), as
    /// a misconfigured DC would: the CPE must not use them (R19).
    pub fn announce(&self, extra: &[&str]) -> Result<()> {
        self.bird
            .as_ref()
            .context("BIRD is not running")?
            .reconfigure(&self.bird_config(extra))
    }

    /// Shuts its BGP session down (Cease), as an operator at Cisco would; its routes leave
    /// the CPE, and its own route back to the CPE falls back to the backbone.
    pub fn bgp_down(&self) -> Result<()> {
        self.birdc(&format!("disable {BGP_PROTOCOL}"))
    }

    /// Its BIRD's configuration, announcing `extra` too.
    fn bird_config(&self, extra: &[&str]) -> String {
        bird_config(self.plan, extra, self.hold_time)
    }

    /// Brings its BGP session back.
    pub fn bgp_up(&self) -> Result<()> {
        self.birdc(&format!("enable {BGP_PROTOCOL}"))
    }

    fn birdc(&self, command: &str) -> Result<()> {
        self.bird
            .as_ref()
            .context("BIRD is not running")?
            .birdc(command)
            .map(drop)
    }

    /// The packets its `gre1` received so far. Read from a thread in its namespace
    /// (`/proc/thread-self/net/dev`), not a process: a test reads it around every round of
    /// pings, and under emulation each process spawned costs a good part of a second.
    #[must_use]
    pub fn gre_rx_packets(&self) -> u64 {
        self.ns
            .run_in(|| std::fs::read_to_string("/proc/thread-self/net/dev"))
            .ok()
            .and_then(Result::ok)
            .and_then(|dev| rx_packets(&dev, "gre1"))
            .unwrap_or(0)
    }

    /// Its logs, for a failure report: charon's and BIRD's, last `lines` lines each.
    #[must_use]
    pub fn logs(&self, lines: usize) -> String {
        let mut out = format!(
            "---- DC{} charon ({}) ----\n{}",
            self.plan.n,
            self.charon.log_path().display(),
            tail(&self.charon.log(), lines)
        );
        let _ = write!(
            out,
            "---- DC{} swanctl --list-sas ----\n{}",
            self.plan.n,
            self.charon.swanctl(&["--list-sas"]).unwrap_or_default()
        );
        if let Some(bird) = &self.bird {
            let _ = write!(
                out,
                "---- DC{} BIRD ({}) ----\n{}",
                self.plan.n,
                bird.dir().display(),
                tail(&bird.log(), lines)
            );
        }
        out
    }
}

/// The received packets of `device` in `/proc/net/dev` text (`  gre1: bytes packets ...`).
fn rx_packets(dev: &str, device: &str) -> Option<u64> {
    dev.lines()
        .find_map(|l| l.trim_start().strip_prefix(device)?.strip_prefix(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The last `n` lines of `text`.
#[must_use]
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    out.push('\n');
    out
}

/// The DC's IKE connection, as Cisco's head end has it: responder to the CPE's public
/// address, ids = addresses, GRE-only selectors between the GRE transport IPs, tunnel mode,
/// the form's proposals, and trap policies (like a crypto map: GRE to the CPE never leaves in
/// clear), DPD.
fn conn(plan: &DcPlan, cpe: Ipv4Addr) -> Conn {
    let mut c = Conn::gre_psk(
        &plan.name(),
        &plan.ipsec.to_string(),
        &cpe.to_string(),
        plan.psk,
    );
    let (cpe_ts, dc_ts) = plan.selectors_with(cpe);
    c.local_ts = dc_ts;
    c.remote_ts = cpe_ts;
    c.child_extra.push("start_action = trap".into());
    c.conn_extra.push("dpd_delay = 2s".into());
    c
}

/// BIRD peering with the CPE's tunnel IP: exports the /25 and its region's /24 (and `extra`), accepts
/// what the CPE sends (0.0.0.0/0), and installs it in the DC's kernel table, so replies to the
/// LAN follow the CPE's default over the tunnel (and the backbone when the session is down).
fn bird_config(plan: &DcPlan, extra: &[&str], hold_time: Option<u16>) -> String {
    let peer = BgpPeer::new(
        BGP_PROTOCOL,
        plan.tunnel_ip,
        plan.asn,
        plan.cpe_tunnel_ip,
        CPE_ASN,
    )
    .password(plan.bgp_password)
    .export("dc", &[plan.prefix, plan.cisco_prefix]);
    let peer = if extra.is_empty() {
        peer
    } else {
        peer.export("extra", extra)
    };
    let peer = match hold_time {
        Some(h) => peer.hold_time(h),
        None => peer,
    };
    format!(
        "{}protocol kernel {{\n  ipv4 {{\n    export where source = RTS_BGP;\n  }};\n}}\n",
        peer.config()
    )
}

#[cfg(test)]
mod tests {
    use super::{DcSas, rx_packets};

    #[test]
    fn proc_net_dev_is_read() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1200      12    0    0    0     0          0         0     1200      12    0    0    0     0       0          0
  gre1:    8736      91    0    0    0     0          0         0     9120      95    0    0    0     0       0          0
  gre0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
";
        assert_eq!(rx_packets(text, "gre1"), Some(91));
        assert_eq!(rx_packets(text, "gre0"), Some(0));
        assert_eq!(rx_packets(text, "wan"), None);
    }

    #[test]
    fn swanctl_list_sas_is_read() {
        let text = "dc1: #1, ESTABLISHED, IKEv2, 5d3cbd0b2bd54a9e_i 3f0d0c8e3ae7c7a6_r*
  local  '192.0.2.10' @ 192.0.2.10[500]
  remote '203.0.113.10' @ 203.0.113.10[500]
  AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384
  established 4s ago, rekeying in 13648s
  dc1: #1, reqid 1, INSTALLED, TUNNEL, ESP:AES_GCM_16-256
    installed 4s ago, rekeying in 3280s, expires in 3956s
    in  c9b2a6e5,    384 bytes,     4 packets,     1s ago
    out c7d0c5f1,    416 bytes,     4 packets,     1s ago
    local  192.0.2.11/32[gre]
    remote 203.0.113.10/32[gre]
";
        let sas = DcSas::parse(text);
        assert!(sas.ike_established && sas.child_installed);
        assert_eq!(sas.ike_sas, 1);
        assert_eq!(sas.ike_proposal, "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384");
        assert_eq!(sas.child, "INSTALLED, TUNNEL, ESP:AES_GCM_16-256");
        assert_eq!(sas.local_ts, "192.0.2.11/32[gre]");
        assert_eq!(sas.remote_ts, "203.0.113.10/32[gre]");
        assert_eq!(sas.ike_remote, "203.0.113.10[500]");
        assert!(!DcSas::parse("").ike_established);
    }
}

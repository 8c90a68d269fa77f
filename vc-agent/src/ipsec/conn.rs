//! A tunnel of the config as strongSwan connection and secret (VICI `load-conn`,
//! `load-shared`). Pure: the messages are built here and sent elsewhere.
//!
//! What each tunnel gets, and why:
//! - IKEv2 only, PSK both ways, the configured proposals (R5, R6, R10).
//! - One child SA in tunnel mode whose selectors are GRE only, between the two GRE transport
//!   IPs (`cpe_gre/32[gre] === dc_gre/32[gre]`, R7), with a fixed reqid per tunnel, so the
//!   datapath can tell which tunnel decrypted a packet and the block policies never need to
//!   know SPIs.
//! - `start_action = trap`: charon installs the GRE policies at load time and negotiates on
//!   the first GRE packet, and the agent initiates at once as well (R8, the CPE initiates).
//! - DPD, `dpd_action`/`close_action = restart`, `keyingtries = 0`: charon itself keeps the
//!   tunnel up; NAT-T is automatic (R9).
//! - A large replay window (voice queueing reorders ESP), DSCP copied to the outer header.
//! - IKE identities: the public addresses unless configured (Cisco's default).
use std::net::Ipv4Addr;

use crate::{
    config::{SecretValue, TUNNELS, Tunnel, TunnelId},
    ipsec::vici::Message,
};

/// Every charon object vc creates starts with this, so vc never touches anyone else's.
pub const PREFIX: &str = "vc-";

/// The IKE connection name, e.g. `vc-a`.
#[must_use]
pub fn conn_name(id: TunnelId) -> String {
    format!("{PREFIX}{}", id.key())
}

/// The child SA name, e.g. `vc-a-gre`.
#[must_use]
pub fn child_name(id: TunnelId) -> String {
    format!("{PREFIX}{}-gre", id.key())
}

/// The tunnel a charon connection name belongs to.
#[must_use]
pub fn tunnel_of(conn: &str) -> Option<TunnelId> {
    TunnelId::ALL.into_iter().find(|id| conn_name(*id) == conn)
}

/// The fixed reqid of a tunnel's SAs and policies: 1001 for A (DC1), 1002 for B (DC2); 1011
/// and 1012 in a second region. Far above the reqids charon allocates itself (from 1), so a
/// system charon's own connections never collide with them.
#[must_use]
pub fn reqid(id: TunnelId) -> u32 {
    const REQIDS: [u32; TUNNELS] = [1001, 1002, 1011, 1012];
    REQIDS[id.index()]
}

/// A GRE-only traffic selector for one host, in swanctl syntax.
#[must_use]
pub fn gre_selector(addr: Ipv4Addr) -> String {
    format!("{addr}/32[gre]")
}

/// Rekey timing derived from one configured lifetime: rekey at 90 %, minus up to 5 % jitter,
/// hard end at 100 %. (IKEv2 lifetimes are not negotiated: each side rekeys on its own, and
/// the CPE, rekeying first, stays the initiator of its SAs.)
fn timing(lifetime_s: u32) -> (String, String, String) {
    let rekey = u64::from(lifetime_s) * 9 / 10;
    let margin = u64::from(lifetime_s) - rekey;
    let jitter = u64::from(lifetime_s) / 20;
    (
        format!("{rekey}s"),
        format!("{margin}s"),
        format!("{jitter}s"),
    )
}

/// The `load-conn` message for a tunnel.
#[must_use]
pub fn load_conn(id: TunnelId, t: &Tunnel) -> Message {
    let (ike_rekey, ike_over, ike_rand) = timing(t.ike_lifetime_s);
    let (esp_rekey, _, esp_rand) = timing(t.esp_lifetime_s);
    let child = Message::new()
        .kv("mode", "tunnel")
        .list("local_ts", [gre_selector(t.cpe_gre_address)])
        .list("remote_ts", [gre_selector(t.dc_gre_address)])
        .list("esp_proposals", &t.esp_proposals)
        .kv("rekey_time", esp_rekey)
        .kv("life_time", format!("{}s", t.esp_lifetime_s))
        .kv("rand_time", esp_rand)
        .kv("start_action", "trap")
        .kv("dpd_action", "restart")
        .kv("close_action", "restart")
        .kv("reqid", reqid(id).to_string())
        .kv("replay_window", t.replay_window.to_string())
        .kv("copy_dscp", "out");
    let conn = Message::new()
        .kv("version", "2")
        .list("local_addrs", [t.local_address().to_string()])
        .list("remote_addrs", [t.dc_ipsec_address.to_string()])
        .list("proposals", &t.ike_proposals)
        .kv("mobike", "no")
        .kv("dpd_delay", format!("{}s", t.dpd_interval_s))
        .kv("keyingtries", "0")
        .kv("unique", "replace")
        .kv("rekey_time", ike_rekey)
        .kv("over_time", ike_over)
        .kv("rand_time", ike_rand)
        .kv("reauth_time", "0")
        .section(
            "local",
            Message::new().kv("auth", "psk").kv("id", t.local_ike_id()),
        )
        .section(
            "remote",
            Message::new().kv("auth", "psk").kv("id", t.remote_ike_id()),
        )
        .section("children", Message::new().section(child_name(id), child));
    Message::new().section(conn_name(id), conn)
}

/// The `load-shared` message for a tunnel's PSK. It carries the secret: never log it.
#[must_use]
pub fn load_shared(id: TunnelId, t: &Tunnel, psk: &SecretValue) -> Message {
    Message::new()
        .kv("id", conn_name(id))
        .kv("type", "IKE")
        .kv("data", psk.expose())
        .list("owners", [t.local_ike_id(), t.remote_ike_id()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, Side, TunnelId};

    fn tunnel() -> Tunnel {
        let c = crate::config::parse(crate::config::tests::VALID).expect("config");
        c.tunnel(TunnelId::B).expect("b").clone()
    }

    #[test]
    fn names_and_reqids() {
        assert_eq!(conn_name(TunnelId::A), "vc-a");
        assert_eq!(child_name(TunnelId::B), "vc-b-gre");
        assert_eq!(tunnel_of("vc-b"), Some(TunnelId::B));
        assert_eq!(tunnel_of("gre"), None);
        assert_eq!((reqid(TunnelId::A), reqid(TunnelId::B)), (1001, 1002));
        let second = TunnelId::new(1, Side::B);
        assert_eq!(
            (conn_name(second), child_name(second), reqid(second)),
            ("vc-r2-b".into(), "vc-r2-b-gre".into(), 1012)
        );
        assert_eq!(tunnel_of("vc-r2-a"), Some(TunnelId::new(1, Side::A)));
    }

    #[test]
    fn connection_is_gre_only_tunnel_mode_with_fixed_reqid() {
        let m = load_conn(TunnelId::B, &tunnel());
        let c = m.sub("vc-b").expect("conn");
        assert_eq!(c.str("version"), Some("2"));
        assert_eq!(c.strs("local_addrs"), ["203.0.113.10"]);
        assert_eq!(c.strs("remote_addrs"), ["192.0.2.20"]);
        assert_eq!(c.strs("proposals"), ["aes256gcm16-prfsha384-ecp384"]);
        assert_eq!(c.str("dpd_delay"), Some("10s"));
        assert_eq!(c.str("rekey_time"), Some("77760s"));
        assert_eq!(c.str("over_time"), Some("8640s"));
        assert_eq!(
            c.sub("local").and_then(|l| l.str("id")),
            Some("203.0.113.10")
        );
        assert_eq!(c.sub("remote").and_then(|l| l.str("auth")), Some("psk"));
        let child = c
            .sub("children")
            .and_then(|ch| ch.sub("vc-b-gre"))
            .expect("child");
        assert_eq!(child.str("mode"), Some("tunnel"));
        assert_eq!(child.strs("local_ts"), ["203.0.113.10/32[gre]"]);
        assert_eq!(child.strs("remote_ts"), ["192.0.2.21/32[gre]"]);
        assert_eq!(child.str("reqid"), Some("1002"));
        assert_eq!(child.str("replay_window"), Some("1024"));
        assert_eq!(child.str("rekey_time"), Some("3240s"));
        assert_eq!(child.str("life_time"), Some("3600s"));
        assert_eq!(child.str("rand_time"), Some("180s"));
        assert_eq!(child.str("start_action"), Some("trap"));
        assert_eq!(child.str("dpd_action"), Some("restart"));
        assert_eq!(child.str("close_action"), Some("restart"));
    }

    #[test]
    fn nat_and_ids_follow_the_config() {
        let mut t = tunnel();
        t.cpe_local_address = Some(Ipv4Addr::new(192, 168, 1, 10));
        t.cpe_ike_id = Some("cpe.example".into());
        let m = load_conn(TunnelId::A, &t);
        let c = m.sub("vc-a").expect("conn");
        assert_eq!(c.strs("local_addrs"), ["192.168.1.10"]);
        assert_eq!(
            c.sub("local").and_then(|l| l.str("id")),
            Some("cpe.example")
        );
        let psk = Secret::inline("s3cret").resolve().expect("psk");
        let s = load_shared(TunnelId::A, &t, &psk);
        assert_eq!(s.str("data"), Some("s3cret"));
        assert_eq!(s.strs("owners"), ["cpe.example", "192.0.2.20"]);
    }
}

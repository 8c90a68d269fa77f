//! The status as JSON (what `vc-agent status --json` prints and the status socket carries)
//! and as text.
use super::{
    AgentStatus, AttachMode, BgpState, BgpStatus, CharonStatus, ChildMode, ChildState, ChildStatus,
    DatapathStatus, DropReason, Hook, IkeState, IkeStatus, IpsecStatus, KeepaliveStatus, Mode,
    RouteLine, TunnelCounters, TunnelEnds, TunnelId, TunnelStatus, VerdictLine,
};

fn status() -> AgentStatus {
    let prefix = |s: &str| s.parse().expect("prefix");
    AgentStatus {
        version: "0.1.0".into(),
        region: "LAB".into(),
        mode: Mode::Ipsec,
        uptime_s: 600,
        charon: Some(CharonStatus::Running {
            version: "5.9.8".into(),
            pid: None,
        }),
        lan: None,
        tunnels: vec![TunnelStatus {
            ends: TunnelEnds {
                id: TunnelId::A,
                region: "EMEA".into(),
                dc: 1,
                interface: "vc-dc1".into(),
                local_gre: [198, 51, 100, 1].into(),
                remote_gre: [198, 18, 1, 1].into(),
                local_tunnel_ip: prefix("100.64.0.1/30"),
                dc_tunnel_ip: [100, 64, 0, 2].into(),
            },
            remote_ipsec: [198, 18, 1, 1].into(),
            expected_prefixes: vec![prefix("203.0.113.0/25"), prefix("203.0.113.0/24")],
            ipsec: Some(IpsecStatus {
                ike: Some(IkeStatus {
                    state: IkeState::Established,
                    up: true,
                    ..IkeStatus::default()
                }),
                child: Some(ChildStatus {
                    state: ChildState::Installed,
                    mode: ChildMode::Tunnel,
                    ..ChildStatus::default()
                }),
                ..IpsecStatus::default()
            }),
            keepalive: KeepaliveStatus {
                alive: true,
                ..KeepaliveStatus::default()
            },
            counters: TunnelCounters::default(),
            bgp: Some(BgpStatus {
                state: BgpState::Established,
                established: true,
                peer: [100, 64, 0, 2].into(),
                local_asn: 65010,
                remote_asn: 64601,
                uptime_s: Some(500),
                last_error: None,
                last_notification: None,
                received: 2,
                accepted: 2,
                rejected: 0,
                advertised: 1,
                flaps: 0,
                connect_attempts: 1,
                connect_timeouts: 0,
                diagnosis: None,
                likely_password_mismatch: false,
                refused_connections: 0,
            }),
            accepted_prefixes: vec![prefix("203.0.113.0/24")],
            stale_prefixes: vec![],
        }],
        datapath: DatapathStatus {
            attach_mode: AttachMode::Clsact,
            fast_path: false,
            kernel: crate::status::AuditReport::default(),
            verdicts: vec![VerdictLine::new(Hook::WanRx, DropReason::WrongSa, 3, 300)],
            routes: vec![RouteLine {
                prefix: prefix("203.0.113.0/24"),
                tunnels: vec![TunnelId::A, TunnelId::B],
            }],
            reassembled: crate::status::ReassembledCounters::default(),
        },
    }
}

#[test]
fn json_keeps_the_names_and_values_readers_know_and_round_trips() {
    let s = status();
    let json = serde_json::to_value(&s).expect("json");
    let t = &json["tunnels"][0];
    for (value, expected) in [
        (&json["mode"], "ipsec"),
        (&t["id"], "a"),
        (&t["local_tunnel_ip"], "100.64.0.1/30"),
        (&t["dc_tunnel_ip"], "100.64.0.2"),
        (&t["ipsec"]["ike"]["state"], "ESTABLISHED"),
        (&t["ipsec"]["child"]["state"], "INSTALLED"),
        (&t["ipsec"]["child"]["mode"], "TUNNEL"),
        (&t["bgp"]["state"], "Established"),
        (&t["bgp"]["peer"], "100.64.0.2"),
        (&t["accepted_prefixes"][0], "203.0.113.0/24"),
        (&json["datapath"]["attach_mode"], "clsact"),
        (&json["datapath"]["verdicts"][0]["hook"], "wan_rx"),
        (&json["datapath"]["verdicts"][0]["reason"], "wrong_sa"),
        (&json["datapath"]["routes"][0]["tunnels"][1], "b"),
        (&json["charon"]["state"], "running"),
    ] {
        assert_eq!(value, expected, "{json:#}");
    }
    assert_eq!(t["dc"], 1);
    assert_eq!(json["datapath"]["verdicts"][0]["drop"], true);
    let back: AgentStatus = serde_json::from_value(json).expect("parse");
    assert_eq!(back, s);
}

#[test]
fn the_text_heads_each_tunnel_with_its_ends() {
    let text = status().to_string();
    for line in [
        "vc 0.1.0 · region LAB · ipsec mode · up 10m0s\n",
        "charon: running (attached), 5.9.8\n",
        "tunnel A → DC1 (vc-dc1) up: GRE 198.51.100.1 → 198.18.1.1, tunnel IP 100.64.0.1/30 → 100.64.0.2\n",
        "  routes    accepted [203.0.113.0/24] (expected 203.0.113.0/25 + 203.0.113.0/24)\n",
        "    203.0.113.0/24     → tunnel a, b\n",
        "    wan_rx        drop wrong_sa                           3 pkts          300 B\n",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
}

#[test]
fn a_second_regions_tunnel_names_its_region_and_round_trips() {
    let mut s = status();
    let mut t = s.tunnels[0].clone();
    t.ends.id = TunnelId::new(1, super::Side::B);
    t.ends.region = "AMER".into();
    t.ends.dc = 2;
    t.ends.interface = "vc-r2-dc2".into();
    s.tunnels.push(t);
    let text = s.to_string();
    let line = "tunnel R2-B → AMER DC2 (vc-r2-dc2) up: GRE 198.51.100.1 → 198.18.1.1";
    assert!(text.contains(line), "{line:?} missing:\n{text}");
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["tunnels"][1]["id"], "r2-b");
    let back: AgentStatus = serde_json::from_value(json).expect("parse");
    assert_eq!(back, s);
}

#[test]
fn routes_kept_from_before_a_restart_show_until_end_of_rib() {
    let mut s = status();
    assert!(!s.to_string().contains("kept from before"));
    let json = serde_json::to_value(&s).expect("json");
    assert!(
        json["tunnels"][0].get("stale_prefixes").is_none(),
        "{json:#}"
    );
    s.tunnels[0].stale_prefixes = vec!["203.0.113.0/25".parse().expect("prefix")];
    assert!(
        s.to_string().contains(
            "  routes    kept from before the agent's restart until End-of-RIB [203.0.113.0/25]\n"
        ),
        "{s}"
    );
    let json = serde_json::to_value(&s).expect("json");
    assert_eq!(json["tunnels"][0]["stale_prefixes"][0], "203.0.113.0/25");
    let back: AgentStatus = serde_json::from_value(json).expect("parse");
    assert_eq!(back, s);
}

//! The exposition of a known status: valid text, the promised families, the right values.
use std::sync::Arc;

use vc_testkit::metrics::{Exposition, parse};

use super::{exposition, http::Request, registry, route};
use crate::status::{
    AgentStatus, AttachMode, AuditReport, BgpState, BgpStatus, CharonStatus, ChildStatus,
    DatapathStatus, DropReason, Failure, FailureStatus, Hook, IkeState, IkeStatus, IpsecStatus,
    KeepaliveStatus, LivenessSignal, Mode, Outcome, Presence, RouteLine, TunnelCounters,
    TunnelEnds, TunnelId, TunnelStatus, VerdictLine,
};

/// Every family the agent promises (R25), with its type.
pub const FAMILIES: [(&str, &str); 49] = [
    ("vc_agent_info", "gauge"),
    ("vc_agent_uptime_seconds", "gauge"),
    ("vc_charon_up", "gauge"),
    ("vc_tunnel_info", "gauge"),
    ("vc_tunnel_up", "gauge"),
    ("vc_tunnel_datapath_up", "gauge"),
    ("vc_tunnel_mtu_bytes", "gauge"),
    ("vc_tunnel_mss_bytes", "gauge"),
    ("vc_tunnel_packets_total", "counter"),
    ("vc_tunnel_bytes_total", "counter"),
    ("vc_tunnel_fast_path_packets_total", "counter"),
    ("vc_tunnel_mss_clamped_total", "counter"),
    ("vc_tunnel_prefixes_missing", "gauge"),
    ("vc_ipsec_ike_sa_up", "gauge"),
    ("vc_ipsec_child_sa_up", "gauge"),
    ("vc_ipsec_ike_sa_established_total", "counter"),
    ("vc_ipsec_child_sa_established_total", "counter"),
    ("vc_ipsec_ike_rekeys_total", "counter"),
    ("vc_ipsec_child_rekeys_total", "counter"),
    ("vc_ipsec_esp_packets_total", "counter"),
    ("vc_ipsec_esp_bytes_total", "counter"),
    ("vc_ipsec_last_failure", "gauge"),
    ("vc_tunnel_keepalives_sent_total", "counter"),
    ("vc_tunnel_keepalive_replies_total", "counter"),
    ("vc_tunnel_keepalives_reflected_total", "counter"),
    ("vc_tunnel_keepalives_missed", "gauge"),
    ("vc_bgp_state", "gauge"),
    ("vc_bgp_session_info", "gauge"),
    ("vc_bgp_uptime_seconds", "gauge"),
    ("vc_bgp_prefixes_received", "gauge"),
    ("vc_bgp_prefixes_accepted", "gauge"),
    ("vc_bgp_prefixes_rejected", "gauge"),
    ("vc_bgp_prefixes_advertised", "gauge"),
    ("vc_bgp_flaps_total", "counter"),
    ("vc_bgp_connect_attempts_total", "counter"),
    ("vc_bgp_connect_timeouts_total", "counter"),
    ("vc_bgp_refused_connections_total", "counter"),
    ("vc_bgp_likely_password_mismatch", "gauge"),
    ("vc_datapath_packets_total", "counter"),
    ("vc_datapath_bytes_total", "counter"),
    ("vc_datapath_routes", "gauge"),
    ("vc_datapath_fast_path", "gauge"),
    ("vc_datapath_attached", "gauge"),
    ("vc_datapath_repairs_total", "counter"),
    ("vc_datapath_backstop_missing", "gauge"),
    ("vc_datapath_wan_route_ok", "gauge"),
    ("vc_reassembled_delivered_packets_total", "counter"),
    ("vc_reassembled_delivered_bytes_total", "counter"),
    ("vc_reassembled_refused_total", "counter"),
];

fn tunnel(id: TunnelId) -> TunnelStatus {
    let dc = id.dc();
    TunnelStatus {
        ends: TunnelEnds {
            id,
            region: "EMEA".into(),
            dc,
            interface: format!("vc-dc{dc}"),
            local_gre: [198, 51, 100, 1].into(),
            remote_gre: [198, 18, dc, 1].into(),
            local_tunnel_ip: "100.64.0.1/30".parse().expect("prefix"),
            dc_tunnel_ip: [100, 64, 0, 2].into(),
        },
        remote_ipsec: [198, 18, dc, 1].into(),
        expected_prefixes: vec![
            "203.0.113.0/25".parse().expect("prefix"),
            "203.0.113.0/24".parse().expect("prefix"),
        ],
        ipsec: Some(IpsecStatus {
            ike: Some(IkeStatus {
                state: IkeState::Established,
                up: true,
                ..IkeStatus::default()
            }),
            child: Some(ChildStatus {
                packets_in: 11,
                packets_out: 12,
                bytes_in: 1100,
                bytes_out: 1200,
                ..ChildStatus::default()
            }),
            last_error: None,
            ike_ups: 2,
            child_ups: 3,
            ike_rekeys: 4,
            child_rekeys: 5,
        }),
        keepalive: KeepaliveStatus {
            enabled: true,
            interval_s: 10,
            retries: 3,
            sent: 21,
            replies: 20,
            reflected: 19,
            alive: true,
            missed: 1,
            last_reply_s: Some(2),
            liveness: vec![
                LivenessSignal::OurKeepalives,
                LivenessSignal::DcKeepalives,
                LivenessSignal::ChildSa,
            ],
        },
        counters: TunnelCounters {
            up: true,
            mtu: 1400,
            mss: 1350,
            tx_packets: 100,
            tx_bytes: 10_000,
            fast_path_packets: 40,
            rx_packets: 90,
            rx_bytes: 9_000,
            rx_fast_path_packets: 30,
            mss_clamped: 7,
        },
        bgp: Some(BgpStatus {
            state: BgpState::Established,
            established: true,
            peer: [100, 64, 0, 2].into(),
            local_asn: 65010,
            remote_asn: 64601,
            uptime_s: Some(300),
            last_error: None,
            last_notification: None,
            received: 3,
            accepted: 2,
            rejected: 1,
            advertised: 1,
            flaps: 1,
            connect_attempts: 2,
            connect_timeouts: 1,
            diagnosis: None,
            likely_password_mismatch: false,
            refused_connections: 3,
        }),
        accepted_prefixes: vec!["203.0.113.0/24".parse().expect("prefix")],
        stale_prefixes: vec![],
    }
}

fn status() -> AgentStatus {
    let mut b = tunnel(TunnelId::B);
    b.keepalive.alive = false;
    b.bgp.as_mut().expect("bgp").state = BgpState::Active;
    b.bgp.as_mut().expect("bgp").established = false;
    b.bgp.as_mut().expect("bgp").uptime_s = None;
    let ipsec = b.ipsec.as_mut().expect("ipsec");
    ipsec.child = None;
    ipsec.last_error = Some(FailureStatus::new(
        Failure::TsUnacceptable,
        "traffic selectors 198.51.100.1/32[gre] === 198.18.2.1/32[gre] unacceptable",
        4,
    ));
    AgentStatus {
        version: "0.1.0".into(),
        region: "LAB".into(),
        mode: Mode::Ipsec,
        uptime_s: 600,
        charon: Some(CharonStatus::Running {
            version: "5.9.8".into(),
            pid: Some(1),
        }),
        lan: None,
        tunnels: vec![tunnel(TunnelId::A), b],
        datapath: DatapathStatus {
            attach_mode: AttachMode::Tcx,
            fast_path: true,
            kernel: AuditReport {
                hooks: vec![
                    crate::status::HookState {
                        program: "vc_wan_guard".into(),
                        device: "wan0".into(),
                        direction: crate::datapath::Direction::Egress,
                        presence: Presence::Missing,
                    },
                    crate::status::HookState {
                        program: "vc_wan_rx".into(),
                        device: "wan0".into(),
                        direction: crate::datapath::Direction::Ingress,
                        presence: Presence::Attached,
                    },
                ],
                backstop: vec!["203.0.113.0/24".parse().expect("prefix")],
                backstop_missing: Vec::new(),
                repairs: 3,
                wan_routes: vec![crate::datapath::wan_route::WanRoute {
                    tunnel: "vc-dc2".into(),
                    wan: "wan1".into(),
                    dc: [192, 0, 2, 20].into(),
                    leaves_by: Some("wan0".into()),
                }],
            },
            verdicts: vec![
                VerdictLine::new(Hook::WanRx, DropReason::NoSecpath, 5, 500),
                VerdictLine::new(Hook::TunnelTx, Outcome::Forwarded, 100, 10_000),
            ],
            routes: vec![RouteLine {
                prefix: "203.0.113.0/24".parse().expect("prefix"),
                tunnels: vec![TunnelId::A],
            }],
            reassembled: crate::status::ReassembledCounters {
                delivered_packets: 7,
                delivered_bytes: 21_000,
                refused: vec![(crate::status::Refusal::UnknownTunnel, 2)],
            },
        },
    }
}

fn scrape(s: AgentStatus, accept: Option<&str>) -> (&'static str, String, Exposition) {
    let r = registry(Arc::new(move || s.clone()));
    let (content_type, text) = exposition(&r, accept);
    let parsed = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (content_type, text, parsed)
}

#[test]
fn every_promised_family_with_its_type() {
    let (content_type, _, e) = scrape(status(), None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    for (name, kind) in FAMILIES {
        assert_eq!(e.types.get(name).map(String::as_str), Some(kind), "{name}");
        assert!(
            e.help.get(name).is_some_and(|h| !h.is_empty()),
            "{name} help"
        );
        assert!(e.find(name, &[]).next().is_some(), "{name} has no sample");
    }
    assert_eq!(e.types.len(), FAMILIES.len(), "{:?}", e.types.keys());
}

const A: [(&str, &str); 2] = [("tunnel", "a"), ("dc", "1")];
const B: [(&str, &str); 2] = [("tunnel", "b"), ("dc", "2")];

/// A tunnel's labels plus one.
fn and(
    tunnel: [(&'static str, &'static str); 2],
    k: &'static str,
    v: &'static str,
) -> Vec<(&'static str, &'static str)> {
    let mut l = tunnel.to_vec();
    l.push((k, v));
    l
}

/// The whole-number value of one series, which must exist.
fn int(expo: &Exposition, name: &str, labels: &[(&str, &str)]) -> i64 {
    expo.int(name, labels)
        .unwrap_or_else(|| panic!("no series {name} {labels:?}"))
}

#[test]
fn agent_and_tunnel_values_are_the_status() {
    let (_, _, expo) = scrape(status(), None);
    let val = |name: &str, labels: &[(&str, &str)]| int(&expo, name, labels);
    assert_eq!(val("vc_agent_uptime_seconds", &[]), 600);
    assert_eq!(
        val("vc_agent_info", &[("mode", "ipsec"), ("region", "LAB")]),
        1
    );
    assert_eq!(val("vc_charon_up", &[]), 1);
    assert_eq!(val("vc_tunnel_up", &A), 1);
    assert_eq!(val("vc_tunnel_up", &B), 0);
    assert_eq!(val("vc_tunnel_mtu_bytes", &A), 1400);
    assert_eq!(val("vc_tunnel_mss_bytes", &A), 1350);
    assert_eq!(
        val("vc_tunnel_packets_total", &and(A, "direction", "tx")),
        100
    );
    assert_eq!(
        val("vc_tunnel_packets_total", &and(A, "direction", "rx")),
        90
    );
    assert_eq!(
        val("vc_tunnel_bytes_total", &and(A, "direction", "rx")),
        9000
    );
    assert_eq!(
        val(
            "vc_tunnel_fast_path_packets_total",
            &and(A, "direction", "tx")
        ),
        40
    );
    assert_eq!(
        val(
            "vc_tunnel_fast_path_packets_total",
            &and(A, "direction", "rx")
        ),
        30
    );
    assert_eq!(val("vc_tunnel_mss_clamped_total", &A), 7);
    assert_eq!(
        val("vc_tunnel_prefixes_missing", &A),
        1,
        "the /25 is missing"
    );
    assert_eq!(val("vc_tunnel_keepalives_sent_total", &A), 21);
    assert_eq!(val("vc_tunnel_keepalive_replies_total", &A), 20);
    assert_eq!(val("vc_tunnel_keepalives_reflected_total", &A), 19);
    assert_eq!(val("vc_tunnel_keepalives_missed", &A), 1);
}

#[test]
fn ipsec_values_are_the_status() {
    let (_, _, expo) = scrape(status(), None);
    let val = |name: &str, labels: &[(&str, &str)]| int(&expo, name, labels);
    assert_eq!(val("vc_ipsec_ike_sa_up", &A), 1);
    assert_eq!(val("vc_ipsec_child_sa_up", &B), 0);
    assert_eq!(val("vc_ipsec_ike_sa_established_total", &A), 2);
    assert_eq!(val("vc_ipsec_child_rekeys_total", &A), 5);
    assert_eq!(
        val("vc_ipsec_esp_packets_total", &and(A, "direction", "in")),
        11
    );
    assert_eq!(
        val("vc_ipsec_esp_bytes_total", &and(A, "direction", "out")),
        1200
    );
    assert!(
        expo.value("vc_ipsec_esp_packets_total", &B).is_none(),
        "no child SA, no ESP series"
    );
    assert_eq!(
        val(
            "vc_ipsec_last_failure",
            &and(B, "failure", "TS_UNACCEPTABLE")
        ),
        1
    );
}

#[test]
fn bgp_values_are_the_status() {
    let (_, _, expo) = scrape(status(), None);
    let val = |name: &str, labels: &[(&str, &str)]| int(&expo, name, labels);
    assert_eq!(val("vc_bgp_state", &and(A, "state", "Established")), 1);
    assert_eq!(val("vc_bgp_state", &and(A, "state", "Idle")), 0);
    assert_eq!(val("vc_bgp_state", &and(B, "state", "Active")), 1);
    for tunnel in [A, B] {
        let states: Vec<f64> = expo
            .find("vc_bgp_state", &tunnel)
            .map(|s| s.value)
            .collect();
        assert_eq!(states.len(), 6, "one series per state");
        assert_eq!(
            states.iter().filter(|v| **v > 0.5).count(),
            1,
            "one state at a time"
        );
    }
    assert_eq!(val("vc_bgp_uptime_seconds", &A), 300);
    assert_eq!(val("vc_bgp_uptime_seconds", &B), 0);
    assert_eq!(val("vc_bgp_prefixes_received", &A), 3);
    assert_eq!(val("vc_bgp_prefixes_accepted", &A), 2);
    assert_eq!(val("vc_bgp_prefixes_rejected", &A), 1);
    assert_eq!(val("vc_bgp_prefixes_advertised", &A), 1);
    assert_eq!(val("vc_bgp_flaps_total", &A), 1);
    assert_eq!(val("vc_bgp_refused_connections_total", &A), 3);
    assert_eq!(val("vc_bgp_connect_timeouts_total", &A), 1);
    assert_eq!(
        val(
            "vc_bgp_session_info",
            &[("tunnel", "a"), ("remote_asn", "64601")]
        ),
        1
    );
}

#[test]
fn datapath_values_are_the_status_zeros_included() {
    let (_, _, expo) = scrape(status(), None);
    let val = |name: &str, labels: &[(&str, &str)]| int(&expo, name, labels);
    let drop = [
        ("hook", "wan_rx"),
        ("reason", "no_secpath"),
        ("drop", "true"),
    ];
    assert_eq!(val("vc_datapath_packets_total", &drop), 5);
    assert_eq!(val("vc_datapath_bytes_total", &drop), 500);
    let fwd = [
        ("hook", "tunnel_tx"),
        ("reason", "forwarded"),
        ("drop", "false"),
    ];
    assert_eq!(val("vc_datapath_packets_total", &fwd), 100);
    assert_eq!(
        expo.find("vc_datapath_packets_total", &[]).count(),
        vc_common::Hook::ALL.len() * vc_common::Counted::ALL.len()
    );
    assert_eq!(
        val(
            "vc_datapath_packets_total",
            &[("hook", "lan_rx"), ("reason", "spoofed_source")]
        ),
        0
    );
    assert_eq!(val("vc_datapath_routes", &[]), 1);
    assert_eq!(val("vc_datapath_fast_path", &[]), 1);
    let guard = [
        ("program", "vc_wan_guard"),
        ("device", "wan0"),
        ("direction", "egress"),
    ];
    assert_eq!(
        val("vc_datapath_attached", &guard),
        0,
        "the guard is missing"
    );
    assert_eq!(
        val(
            "vc_datapath_attached",
            &[
                ("program", "vc_wan_rx"),
                ("device", "wan0"),
                ("direction", "ingress")
            ]
        ),
        1
    );
    assert_eq!(val("vc_datapath_repairs_total", &[]), 3);
    assert_eq!(
        val(
            "vc_datapath_wan_route_ok",
            &[("interface", "vc-dc2"), ("wan", "wan1")]
        ),
        0,
        "routed out of wan0"
    );
    assert_eq!(val("vc_datapath_backstop_missing", &[]), 0);
    assert_eq!(val("vc_reassembled_delivered_packets_total", &[]), 7);
    assert_eq!(val("vc_reassembled_delivered_bytes_total", &[]), 21_000);
    assert_eq!(
        val(
            "vc_reassembled_refused_total",
            &[("reason", "unknown_tunnel")]
        ),
        2
    );
    assert_eq!(
        val("vc_reassembled_refused_total", &[("reason", "malformed")]),
        0
    );
}

#[test]
fn external_ipsec_mode_has_no_ipsec_families() {
    let mut s = status();
    s.mode = Mode::ExternalIpsec;
    s.charon = None;
    for t in &mut s.tunnels {
        t.ipsec = None;
    }
    let (_, _, expo) = scrape(s, None);
    assert!(
        !expo
            .types
            .keys()
            .any(|n| n.starts_with("vc_ipsec_") || n == "vc_charon_up"),
        "{:?}",
        expo.types.keys()
    );
    assert!(expo.types.contains_key("vc_tunnel_up"));
}

#[test]
fn openmetrics_when_asked_for() {
    let (content_type, text, expo) = scrape(
        status(),
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert!(content_type.starts_with("application/openmetrics-text"));
    assert!(text.ends_with("# EOF\n"));
    assert!(
        text.contains("# UNIT vc_tunnel_mtu_bytes bytes\n"),
        "{text}"
    );
    assert_eq!(
        expo.int(
            "vc_tunnel_packets_total",
            &[("tunnel", "a"), ("direction", "tx")]
        ),
        Some(100)
    );
}

#[test]
fn the_endpoint_answers_metrics_and_refuses_the_rest() {
    let r = registry(Arc::new(status));
    let req = |method: &str, path: &str| Request {
        method: method.into(),
        path: path.into(),
        accept: None,
    };
    let ok = route(&r, &req("GET", "/metrics"));
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("vc_tunnel_up{"), "{}", ok.body);
    assert_eq!(route(&r, &req("HEAD", "/metrics")).status, 200);
    assert_eq!(route(&r, &req("GET", "/")).status, 200);
    let post = route(&r, &req("POST", "/metrics"));
    assert_eq!((post.status, post.allow), (405, Some("GET, HEAD")));
    assert_eq!(route(&r, &req("GET", "/status")).status, 404);
}

/// The dashboard and the alert rules shipped in `docs/monitoring` (and in the package).
const MONITORING: [(&str, &str); 2] = [
    (
        "vc-dashboard.json",
        include_str!("../../../docs/monitoring/vc-dashboard.json"),
    ),
    (
        "vc-alerts.yml",
        include_str!("../../../docs/monitoring/vc-alerts.yml"),
    ),
];

/// Each `vc_...` metric in `text` with the literal `label="value"` matchers of its selector
/// (regex matchers and `$variables` are left out: they are not literal values).
fn selectors(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("vc_") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        rest = &rest[end..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let mut labels = Vec::new();
        if let Some(body) = rest.strip_prefix('{').and_then(|r| r.split_once('}')) {
            for matcher in body.0.split(',') {
                if let Some((k, v)) = matcher.split_once('=')
                    && !k.ends_with(['!', '=', '~'])
                    && !v.starts_with('~')
                {
                    let v = v
                        .trim()
                        .trim_matches('"')
                        .trim_matches('\\')
                        .trim_matches('"');
                    if !v.starts_with('$') {
                        labels.push((k.trim().to_string(), v.to_string()));
                    }
                }
            }
        }
        found.push((name.to_string(), labels));
    }
    found
}

/// Every metric the dashboard and the alert rules use is one the agent exports, and each
/// literal label value they select on exists in a full exposition.
#[test]
fn monitoring_uses_only_exported_metrics() {
    let (_, _, e) = scrape(status(), None);
    for (file, text) in MONITORING {
        let used = selectors(text);
        assert!(used.len() >= 8, "{file}: too few metrics found: {used:?}");
        for (name, labels) in used {
            assert!(
                e.types.contains_key(&name),
                "{file}: {name} is not a metric vc-agent exports"
            );
            let labels: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert!(
                e.find(&name, &labels).next().is_some(),
                "{file}: no sample {name}{labels:?}"
            );
        }
    }
}

/// Each alert rule has what Alertmanager routes and shows: a name, an expression, a
/// severity and a summary.
#[test]
fn alert_rules_are_complete() {
    let rules = MONITORING[1].1;
    let alerts = rules.matches("- alert: ").count();
    assert!(alerts >= 8, "{alerts} alerts");
    for field in ["expr: ", "severity: ", "summary: "] {
        assert_eq!(rules.matches(field).count(), alerts, "{field}");
    }
    for name in [
        "VcTunnelDown",
        "VcBgpNotEstablished",
        "VcExpectedPrefixesMissing",
        "VcDatapathDrops",
        "VcCharonDown",
    ] {
        assert!(rules.contains(&format!("- alert: {name}\n")), "{name}");
    }
}

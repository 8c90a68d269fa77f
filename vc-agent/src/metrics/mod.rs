//! R25: the agent's state as Prometheus metrics, read from the same [`AgentStatus`] that
//! `vc-agent status` shows, at scrape time (a `prometheus-client` collector: nothing to keep
//! in sync). Per tunnel: liveness, SAs, keepalives, BGP, traffic; per datapath program: packets
//! and bytes by outcome. Served over HTTP by [`http`] on `[agent] metrics_listen`.
//!
//! Names follow Prometheus' conventions: `vc_` prefix, base units in the name, `_total` on
//! counters (the encoder adds unit and `_total` to the names below).
pub mod http;
#[cfg(test)]
mod tests;

use std::{fmt, net::SocketAddr, sync::Arc};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
    registry::{Registry, Unit},
};
use tracing::{info, warn};

use self::http::{Request, Response};
use crate::status::{
    AgentStatus, AuditReport, BgpState, BgpStatus, Counted, Hook, Presence, Refusal, TunnelStatus,
    direction_name,
};

/// Where the collector gets the state from (the running agent's sources).
pub type StatusFn = Arc<dyn Fn() -> AgentStatus + Send + Sync>;

type Labels = Vec<(&'static str, String)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    Counter(u64),
    Gauge(i64),
}

/// One metric family and its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    samples: Vec<(Labels, Value)>,
}

#[derive(Default)]
struct Families(Vec<Family>);

fn gauge_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Families {
    fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<Unit>,
        samples: impl IntoIterator<Item = (Labels, i64)>,
    ) {
        self.push(name, help, unit, samples, Value::Gauge);
    }

    fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<Unit>,
        samples: impl IntoIterator<Item = (Labels, u64)>,
    ) {
        self.push(name, help, unit, samples, Value::Counter);
    }

    fn push<T>(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<Unit>,
        samples: impl IntoIterator<Item = (Labels, T)>,
        value: fn(T) -> Value,
    ) {
        let samples: Vec<_> = samples.into_iter().map(|(l, v)| (l, value(v))).collect();
        // A family without samples (IPsec in external-ipsec mode) is left out.
        if !samples.is_empty() {
            self.0.push(Family {
                name,
                help,
                unit,
                samples,
            });
        }
    }
}

fn tunnel_labels(t: &TunnelStatus) -> Labels {
    vec![
        ("tunnel", t.ends.id.key().to_string()),
        ("dc", t.ends.dc.to_string()),
    ]
}

fn with(mut labels: Labels, key: &'static str, value: &str) -> Labels {
    labels.push((key, value.to_string()));
    labels
}

/// Per tunnel: `f` gives the value, or `None` to leave the tunnel out.
fn each<T>(
    tunnels: &[TunnelStatus],
    f: impl Fn(&TunnelStatus) -> Option<T>,
) -> impl Iterator<Item = (Labels, T)> {
    tunnels
        .iter()
        .filter_map(move |t| f(t).map(|v| (tunnel_labels(t), v)))
}

/// Per tunnel and direction.
fn each_way<T>(
    tunnels: &[TunnelStatus],
    key: &'static str,
    f: impl Fn(&TunnelStatus) -> Option<[(&'static str, T); 2]>,
) -> impl Iterator<Item = (Labels, T)> {
    tunnels.iter().flat_map(move |t| {
        f(t).into_iter()
            .flatten()
            .map(move |(way, v)| (with(tunnel_labels(t), key, way), v))
    })
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// Every family, from one status.
fn families(s: &AgentStatus) -> Families {
    let mut f = Families::default();
    let t = &s.tunnels;
    f.gauge(
        "vc_agent_info",
        "The agent: version, region and IPsec mode (always 1).",
        None,
        [(
            vec![
                ("version", s.version.clone()),
                ("region", s.region.clone()),
                ("mode", s.mode.name().to_string()),
            ],
            1,
        )],
    );
    f.gauge(
        "vc_agent_uptime",
        "Time since the agent started.",
        Some(Unit::Seconds),
        [(Vec::new(), gauge_of(s.uptime_s))],
    );
    f.gauge(
        "vc_charon_up",
        "strongSwan's charon is running (IPsec mode).",
        None,
        s.charon.iter().map(|c| (Vec::new(), flag(c.is_running()))),
    );
    tunnel_families(&mut f, t);
    ipsec_families(&mut f, t);
    keepalive_families(&mut f, t);
    bgp_families(&mut f, t);
    datapath_families(&mut f, s);
    f
}

fn tunnel_families(f: &mut Families, t: &[TunnelStatus]) {
    f.gauge(
        "vc_tunnel_info",
        "A tunnel's addresses (always 1).",
        None,
        t.iter().map(|t| {
            let mut l = tunnel_labels(t);
            l.extend([
                ("interface", t.ends.interface.clone()),
                ("local_gre", t.ends.local_gre.to_string()),
                ("remote_gre", t.ends.remote_gre.to_string()),
                ("remote_ipsec", t.remote_ipsec.to_string()),
                ("local_tunnel_ip", t.ends.local_tunnel_ip.to_string()),
                ("dc_tunnel_ip", t.ends.dc_tunnel_ip.to_string()),
            ]);
            (l, 1)
        }),
    );
    f.gauge(
        "vc_tunnel_up",
        "The tunnel may carry traffic: every signal that decides its liveness holds (keepalives heard, the child SA up in IPsec mode, the BGP session when no keepalive decides).",
        None,
        each(t, |t| Some(flag(t.keepalive.alive))),
    );
    f.gauge(
        "vc_tunnel_datapath_up",
        "The datapath's UP flag for the tunnel.",
        None,
        each(t, |t| Some(flag(t.counters.up))),
    );
    f.gauge(
        "vc_tunnel_mtu",
        "The tunnel MTU (inner packets).",
        Some(Unit::Bytes),
        each(t, |t| Some(i64::from(t.counters.mtu))),
    );
    f.gauge(
        "vc_tunnel_mss",
        "The MSS that TCP SYNs through the tunnel are clamped to.",
        Some(Unit::Bytes),
        each(t, |t| Some(i64::from(t.counters.mss))),
    );
    f.counter(
        "vc_tunnel_packets",
        "Inner packets encapsulated toward the DC (tx) and decapsulated from it (rx).",
        None,
        each_way(t, "direction", |t| {
            Some([("tx", t.counters.tx_packets), ("rx", t.counters.rx_packets)])
        }),
    );
    f.counter(
        "vc_tunnel",
        "Inner bytes encapsulated toward the DC (tx) and decapsulated from it (rx).",
        Some(Unit::Bytes),
        each_way(t, "direction", |t| {
            Some([("tx", t.counters.tx_bytes), ("rx", t.counters.rx_bytes)])
        }),
    );
    f.counter(
        "vc_tunnel_fast_path_packets",
        "Packets that took a fast path: encapsulated at the LAN (tx), or sent from the WAN \
         straight to their egress device (rx); part of vc_tunnel_packets_total.",
        None,
        each_way(t, "direction", |t| {
            Some([
                ("tx", t.counters.fast_path_packets),
                ("rx", t.counters.rx_fast_path_packets),
            ])
        }),
    );
    f.counter(
        "vc_tunnel_mss_clamped",
        "TCP SYNs whose MSS was lowered.",
        None,
        each(t, |t| Some(t.counters.mss_clamped)),
    );
    f.gauge(
        "vc_tunnel_prefixes_missing",
        "Expected prefixes (this DC's /25, the /24) not installed from this tunnel.",
        None,
        each(t, |t| Some(gauge_of(t.missing_prefixes().len() as u64))),
    );
}

fn ipsec_families(f: &mut Families, t: &[TunnelStatus]) {
    f.gauge(
        "vc_ipsec_ike_sa_up",
        "The tunnel's IKEv2 SA is established.",
        None,
        each(t, |t| {
            t.ipsec
                .as_ref()
                .map(|i| flag(i.ike.as_ref().is_some_and(|i| i.up)))
        }),
    );
    f.gauge(
        "vc_ipsec_child_sa_up",
        "The tunnel's child (ESP) SA is installed.",
        None,
        each(t, |t| t.ipsec.as_ref().map(|i| flag(i.child.is_some()))),
    );
    f.counter(
        "vc_ipsec_ike_sa_established",
        "Times the IKE SA came up since the agent started (more than 1: it flapped).",
        None,
        each(t, |t| t.ipsec.as_ref().map(|i| u64::from(i.ike_ups))),
    );
    f.counter(
        "vc_ipsec_child_sa_established",
        "Times the child SA came up since the agent started.",
        None,
        each(t, |t| t.ipsec.as_ref().map(|i| u64::from(i.child_ups))),
    );
    f.counter(
        "vc_ipsec_ike_rekeys",
        "IKE SA rekeys since the agent started.",
        None,
        each(t, |t| t.ipsec.as_ref().map(|i| u64::from(i.ike_rekeys))),
    );
    f.counter(
        "vc_ipsec_child_rekeys",
        "Child SA rekeys since the agent started.",
        None,
        each(t, |t| t.ipsec.as_ref().map(|i| u64::from(i.child_rekeys))),
    );
    // The SA's own counters: they restart with each new SA (a rekey), which Prometheus'
    // rate() reads as a counter reset.
    let child = |t: &TunnelStatus| t.ipsec.as_ref().and_then(|i| i.child.clone());
    f.counter(
        "vc_ipsec_esp_packets",
        "ESP packets through the current child SA.",
        None,
        each_way(t, "direction", |t| {
            child(t).map(|c| [("in", c.packets_in), ("out", c.packets_out)])
        }),
    );
    f.counter(
        "vc_ipsec_esp",
        "ESP bytes through the current child SA.",
        Some(Unit::Bytes),
        each_way(t, "direction", |t| {
            child(t).map(|c| [("in", c.bytes_in), ("out", c.bytes_out)])
        }),
    );
    f.gauge(
        "vc_ipsec_last_failure",
        "The last IKE failure since the child SA was last up, by IKEv2 name (1 while recorded).",
        None,
        t.iter().filter_map(|t| {
            let e = t.ipsec.as_ref()?.last_error.as_ref()?;
            Some((with(tunnel_labels(t), "failure", e.failure.name()), 1))
        }),
    );
}

fn keepalive_families(f: &mut Families, t: &[TunnelStatus]) {
    f.counter(
        "vc_tunnel_keepalives_sent",
        "GRE keepalives sent to the DC.",
        None,
        each(t, |t| Some(t.keepalive.sent)),
    );
    f.counter(
        "vc_tunnel_keepalive_replies",
        "Replies to our GRE keepalives.",
        None,
        each(t, |t| Some(t.keepalive.replies)),
    );
    f.counter(
        "vc_tunnel_keepalives_reflected",
        "The DC's own GRE keepalives, reflected back to it.",
        None,
        each(t, |t| Some(t.keepalive.reflected)),
    );
    f.gauge(
        "vc_tunnel_keepalives_missed",
        "Keepalive intervals in a row without a keepalive heard.",
        None,
        each(t, |t| Some(i64::from(t.keepalive.missed))),
    );
}

fn bgp_families(f: &mut Families, t: &[TunnelStatus]) {
    type Count = fn(&BgpStatus) -> u32;
    f.gauge(
        "vc_bgp_state",
        "The BGP session's state (1 for the current one).",
        None,
        t.iter().flat_map(|t| {
            BgpState::ALL.into_iter().filter_map(move |state| {
                let b = t.bgp.as_ref()?;
                Some((
                    with(tunnel_labels(t), "state", state.name()),
                    flag(b.state == state),
                ))
            })
        }),
    );
    f.gauge(
        "vc_bgp_session_info",
        "The BGP neighbour and ASNs of a tunnel (always 1).",
        None,
        t.iter().filter_map(|t| {
            let b = t.bgp.as_ref()?;
            let mut l = tunnel_labels(t);
            l.extend([
                ("peer", b.peer.to_string()),
                ("local_asn", b.local_asn.to_string()),
                ("remote_asn", b.remote_asn.to_string()),
            ]);
            Some((l, 1))
        }),
    );
    f.gauge(
        "vc_bgp_uptime",
        "Time since the session became Established (0 while it is not).",
        Some(Unit::Seconds),
        each(t, |t| {
            t.bgp.as_ref().map(|b| gauge_of(b.uptime_s.unwrap_or(0)))
        }),
    );
    let counts: [(&'static str, &'static str, Count); 4] = [
        (
            "vc_bgp_prefixes_received",
            "Prefixes in the Adj-RIB-In now (accepted or not).",
            |b| b.received,
        ),
        (
            "vc_bgp_prefixes_accepted",
            "Prefixes used now (this DC's /25 and the /24 at most).",
            |b| b.accepted,
        ),
        (
            "vc_bgp_prefixes_rejected",
            "Prefixes received now but not used (not this DC's /25 or the /24).",
            |b| b.rejected,
        ),
        (
            "vc_bgp_prefixes_advertised",
            "Prefixes advertised now (0.0.0.0/0 while Established).",
            |b| b.advertised,
        ),
    ];
    for (name, help, count) in counts {
        f.gauge(
            name,
            help,
            None,
            each(t, |t| t.bgp.as_ref().map(|b| i64::from(count(b)))),
        );
    }
    f.counter(
        "vc_bgp_flaps",
        "Times the session left Established.",
        None,
        each(t, |t| t.bgp.as_ref().map(|b| u64::from(b.flaps))),
    );
    f.counter(
        "vc_bgp_connect_attempts",
        "Outgoing TCP connection attempts.",
        None,
        each(t, |t| t.bgp.as_ref().map(|b| b.connect_attempts)),
    );
    f.counter(
        "vc_bgp_connect_timeouts",
        "Outgoing connection attempts that got no answer.",
        None,
        each(t, |t| t.bgp.as_ref().map(|b| u64::from(b.connect_timeouts))),
    );
    f.counter(
        "vc_bgp_refused_connections",
        "Connections to the BGP port from others than the neighbour, closed at once.",
        None,
        each(t, |t| t.bgp.as_ref().map(|b| b.refused_connections)),
    );
    f.gauge(
        "vc_bgp_likely_password_mismatch",
        "The kernel's TCP-MD5 counters point at a BGP password mismatch.",
        None,
        each(t, |t| {
            t.bgp.as_ref().map(|b| flag(b.likely_password_mismatch))
        }),
    );
}

/// Every program × outcome, zero included: a series that appears only once it is non-zero
/// breaks `rate()` and absence alerts.
fn datapath_families(f: &mut Families, s: &AgentStatus) {
    let verdict = |hook: Hook, reason: Counted| {
        s.datapath
            .verdicts
            .iter()
            .find(|v| (v.hook, v.reason) == (hook, reason))
    };
    let labels = |hook: Hook, reason: Counted| -> Labels {
        vec![
            ("hook", hook.name().to_string()),
            ("reason", reason.name().to_string()),
            ("drop", reason.is_drop().to_string()),
        ]
    };
    let all = || {
        Hook::ALL
            .into_iter()
            .flat_map(|h| Counted::ALL.into_iter().map(move |r| (h, r)))
    };
    f.counter(
        "vc_datapath_packets",
        "Packets by datapath program (hook) and outcome; drop=\"true\" for drops.",
        None,
        all().map(|(h, r)| (labels(h, r), verdict(h, r).map_or(0, |v| v.packets))),
    );
    f.counter(
        "vc_datapath",
        "Bytes by datapath program (hook) and outcome; drop=\"true\" for drops.",
        Some(Unit::Bytes),
        all().map(|(h, r)| (labels(h, r), verdict(h, r).map_or(0, |v| v.bytes))),
    );
    f.gauge(
        "vc_datapath_routes",
        "Entries in the datapath's LPM route map.",
        None,
        [(Vec::new(), gauge_of(s.datapath.routes.len() as u64))],
    );
    f.gauge(
        "vc_datapath_fast_path",
        "The LAN fast path is on.",
        None,
        [(Vec::new(), flag(s.datapath.fast_path))],
    );
    kernel_families(f, &s.datapath.kernel);
    let r = &s.datapath.reassembled;
    f.counter(
        "vc_reassembled_delivered_packets",
        "Outer GRE fragments reassembled by the kernel whose inner packet the agent delivered \
         into its tunnel interface.",
        None,
        [(Vec::new(), r.delivered_packets)],
    );
    f.counter(
        "vc_reassembled_delivered",
        "Bytes of the inner packets delivered from reassembled outer GRE fragments.",
        Some(Unit::Bytes),
        [(Vec::new(), r.delivered_bytes)],
    );
    f.counter(
        "vc_reassembled_refused",
        "Reassembled GRE datagrams the agent refused, by reason.",
        None,
        Refusal::ALL
            .into_iter()
            .map(|why| (vec![("reason", why.name().to_string())], r.refused(why))),
    );
}

/// What the audit found in the kernel: attachments, repairs, backstop routes, WAN routes.
fn kernel_families(f: &mut Families, k: &AuditReport) {
    f.gauge(
        "vc_datapath_attached",
        "Each datapath program's attachment as the kernel has it (0: missing, a fault the \
         agent repairs within 2 s).",
        None,
        k.hooks.iter().map(|h| {
            (
                vec![
                    ("program", h.program.clone()),
                    ("device", h.device.clone()),
                    ("direction", direction_name(h.direction).to_string()),
                ],
                flag(h.presence == Presence::Attached),
            )
        }),
    );
    f.counter(
        "vc_datapath_repairs",
        "Attachments and backstop routes the agent put back since it started.",
        None,
        [(Vec::new(), k.repairs)],
    );
    f.gauge(
        "vc_datapath_backstop_missing",
        "Protected prefixes without their backstop (unreachable) route.",
        None,
        [(Vec::new(), gauge_of(k.backstop_missing.len() as u64))],
    );
    f.gauge(
        "vc_datapath_wan_route_ok",
        "Whether the host's routes send each tunnel's outer packets (to the DC's IPsec address) \
         out of the tunnel's WAN device (0: another device or no route).",
        None,
        k.wan_routes.iter().map(|r| {
            (
                vec![("interface", r.tunnel.clone()), ("wan", r.wan.clone())],
                flag(r.ok()),
            )
        }),
    );
}

/// The collector: one status per scrape.
struct StatusCollector(StatusFn);

impl fmt::Debug for StatusCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StatusCollector")
    }
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        for family in families(&(self.0)()).0 {
            let kind = match family.samples[0].1 {
                Value::Counter(_) => MetricType::Counter,
                Value::Gauge(_) => MetricType::Gauge,
            };
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, family.unit.as_ref(), kind)?;
            for (labels, value) in &family.samples {
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let mut sample = metric.encode_family(&labels)?;
                match value {
                    Value::Counter(v) => sample.encode_counter::<NoLabelSet, _, u64>(v, None)?,
                    Value::Gauge(v) => sample.encode_gauge(v)?,
                }
            }
        }
        Ok(())
    }
}

/// A registry holding the agent's collector.
#[must_use]
pub fn registry(status: StatusFn) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(StatusCollector(status)));
    r
}

/// The exposition, in `OpenMetrics` if the scraper asks for it, else Prometheus' text format
/// 0.0.4 (what every Prometheus and `curl` reads).
#[must_use]
pub fn exposition(registry: &Registry, accept: Option<&str>) -> (&'static str, String) {
    let mut body = String::new();
    let openmetrics = accept.is_some_and(|a| a.contains("application/openmetrics-text"));
    // Writing into a String cannot fail; a collector error would leave a partial body,
    // which the scraper rejects.
    if openmetrics {
        let _ = prometheus_client::encoding::text::encode(&mut body, registry);
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body,
        )
    } else {
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut body, registry);
        (
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            body,
        )
    }
}

/// What the metrics endpoint answers.
#[must_use]
pub fn route(registry: &Registry, req: &Request) -> Response {
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    match req.path.as_str() {
        "/metrics" if get => {
            let (content_type, body) = exposition(registry, req.accept.as_deref());
            Response::ok(content_type, body)
        }
        "/" if get => Response::ok(
            "text/plain; charset=utf-8",
            "vc-agent: Prometheus metrics at /metrics\n".into(),
        ),
        "/" | "/metrics" => Response::status(405, "method not allowed").allow("GET, HEAD"),
        _ => Response::status(404, "not found"),
    }
}

/// Serves the metrics on `listen` (`[agent] metrics_listen`; empty: not served). A port
/// that cannot be bound is logged, not fatal: the CPE routes without its metrics.
pub async fn serve(listen: &str, status: StatusFn) -> Option<crate::task::Task> {
    if listen.is_empty() {
        return None;
    }
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(e) => {
            warn!("agent.metrics_listen {listen:?}: {e}; metrics not served");
            return None;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            warn!("cannot serve metrics on {addr}: {e}; the agent runs without them");
            return None;
        }
    };
    info!("metrics on http://{addr}/metrics");
    let registry = Arc::new(registry(status));
    Some(http::serve(
        listener,
        Arc::new(move |req: &Request| route(&registry, req)),
    ))
}

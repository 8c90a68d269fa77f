//! Each step's judgement and its likely causes, from the evidence. A step is judged on its
//! own; [`super::walk`] decides whether the verdict counts (only up to the first failure).
use super::{Cause, Likely, Step, Verdict, evidence::Context};
use crate::{
    bgp::packet::notification::{cease, code, open},
    duration::secs,
    status::{
        BgpStatus, CharonStatus, ChildMode, Direction, DropReason, Failure, FailureStatus, Hook,
        IpsecStatus, LivenessSignal, NotificationInfo, prefix_list, signals_text,
    },
};

/// What one step came to, before the walk.
pub struct Judged {
    pub verdict: Verdict,
    pub detail: String,
    pub causes: Vec<Likely>,
}

fn judged(verdict: Verdict, detail: impl Into<String>, causes: Vec<Likely>) -> Judged {
    Judged {
        verdict,
        detail: detail.into(),
        causes,
    }
}

fn likely(cause: Cause, text: impl Into<String>, evidence: Vec<String>) -> Likely {
    Likely {
        cause,
        text: text.into(),
        evidence,
    }
}

pub fn judge(step: Step, c: &Context) -> Judged {
    match step {
        Step::IkeSa => ike(c),
        Step::ChildSa => child(c),
        Step::Keepalives => keepalives(c),
        Step::Ping => ping(c),
        Step::Bgp => bgp(c),
        Step::Routes => routes(c),
    }
}

/// The IPsec state of a tunnel in IPsec mode, or the verdict that stands in for it.
fn ipsec<'a>(c: &'a Context) -> Result<&'a IpsecStatus, Judged> {
    if !c.ipsec_mode() {
        return Err(judged(
            Verdict::NotApplicable,
            "external-ipsec mode: the box that does IPsec must show this",
            Vec::new(),
        ));
    }
    c.t.ipsec.as_ref().ok_or_else(|| {
        judged(
            Verdict::Fail,
            "the agent reports no IPsec state for this tunnel",
            charon_down(c).into_iter().collect(),
        )
    })
}

fn charon_down(c: &Context) -> Option<Likely> {
    let charon = c.status.charon.as_ref()?;
    let evidence = vec![format!("charon: {charon}")];
    match charon {
        CharonStatus::Unresponsive { .. } => Some(likely(
            Cause::CharonUnresponsive,
            "charon (strongSwan) runs but does not answer the agent (stopped, or stuck): the \
             SAs it installed last until they expire, but nothing rekeys or re-establishes \
             them; see charon's log in charon.run_dir, and restart charon if it stays so",
            evidence,
        )),
        _ if !charon.is_running() => Some(likely(
            Cause::CharonDown,
            "charon (strongSwan) is not running, so nothing negotiates IKE: see the agent's \
             log and charon's own log in charon.run_dir",
            evidence,
        )),
        _ => None,
    }
}

/// The last IPsec failure as an evidence line.
fn failure_line(e: &FailureStatus) -> String {
    format!(
        "last IPsec error {} {} ago; charon said \"{}\"",
        e.failure.name(),
        secs(Some(e.age_s)),
        e.line
    )
}

/// Step 1.
fn ike(c: &Context) -> Judged {
    let ipsec = match ipsec(c) {
        Ok(i) => i,
        Err(j) => return j,
    };
    let Some(ike) = ipsec.ike.as_ref().filter(|i| i.up) else {
        return ike_down(c, ipsec);
    };
    let detail = format!(
        "{} with {} ({}{}), up {}",
        ike.state,
        ike.remote,
        ike.proposal,
        if ike.nat { ", NAT-T on UDP 4500" } else { "" },
        secs(ike.established_s)
    );
    if ipsec.ike_ups > 1 {
        let mut evidence = vec![format!(
            "IKE SA established {} times since the agent started {} ago",
            ipsec.ike_ups,
            c.uptime()
        )];
        evidence.extend(ipsec.last_error.as_ref().map(failure_line));
        return judged(
            Verdict::Warn,
            detail,
            vec![likely(
                Cause::IkeUnstable,
                "the IKE SA is up but not stable: it was re-established (DPD timeouts, \
                 the DC deleting it, or a path that drops UDP 500/4500 now and then)",
                evidence,
            )],
        );
    }
    judged(Verdict::Pass, detail, Vec::new())
}

fn ike_down(c: &Context, ipsec: &IpsecStatus) -> Judged {
    let detail = match &ipsec.ike {
        Some(ike) => format!("IKE SA {} with {}, not established", ike.state, ike.remote),
        None => format!("no IKE SA with {}", c.t.remote_ipsec),
    };
    let mut causes: Vec<Likely> = charon_down(c).into_iter().collect();
    if causes.is_empty() {
        causes.extend(wrong_wan(c));
        causes.extend(failure_causes(c, ipsec, true));
    }
    judged(Verdict::Fail, detail, causes)
}

/// The tunnel's outer packets do not leave by its WAN device: IKE goes to the wrong ISP (or
/// nowhere), which any later failure follows from.
fn wrong_wan(c: &Context) -> Option<Likely> {
    let problem = c.wan_route_problem()?;
    Some(likely(
        Cause::WrongWan,
        format!(
            "the host's routes do not send this tunnel out of its WAN device ({}.wan, else \
             interfaces.wan): add a route to the DC's address via that ISP's gateway on that \
             device",
            c.section()
        ),
        vec![problem],
    ))
}

/// The likely causes of the recorded IKE failure; `ike_stage`: the IKE SA is not up, so a
/// proposal failure is the IKE proposal's.
fn failure_causes(c: &Context, ipsec: &IpsecStatus, ike_stage: bool) -> Vec<Likely> {
    let s = c.section();
    let Some(e) = &ipsec.last_error else {
        let waiting = format!(
            "no failure recorded yet: charon is still negotiating with {} (agent up {})",
            c.t.remote_ipsec,
            c.uptime()
        );
        let mut causes = vec![likely(
            Cause::NotYetUp,
            "negotiation under way: ask again in a few seconds",
            vec![waiting.clone()],
        )];
        if ike_stage {
            causes.push(likely(
                Cause::PeerUnreachable,
                format!(
                    "if it stays so: the DC does not answer IKE. Check {s}.dc_ipsec_address ({}) \
                     against the form and that UDP 500 and 4500 pass both ways",
                    c.t.remote_ipsec
                ),
                vec![waiting],
            ));
        }
        return causes;
    };
    let evidence = vec![failure_line(e)];
    let one = |cause, text: String| vec![likely(cause, text, evidence.clone())];
    match &e.failure {
        Failure::NoProposalChosen { .. } if ike_stage => one(
            Cause::IkeProposalMismatch,
            format!(
                "IKE proposal mismatch: the DC accepts none of {s}.ike_proposals; compare \
                 encryption, integrity/PRF and DH group with the form (R6)"
            ),
        ),
        Failure::NoProposalChosen { .. } => one(
            Cause::EspProposalMismatch,
            format!(
                "ESP proposal mismatch: the DC accepts none of {s}.esp_proposals; compare \
                 encryption, integrity and the PFS group with the form (R6). A DC that cannot \
                 install the SA answers the same"
            ),
        ),
        Failure::AuthenticationFailed => one(
            Cause::PskOrIdentity,
            format!(
                "wrong pre-shared key or IKE identity: {s}.ike_psk must be the form's key, and \
                 the IKE identities (the IPsec addresses: {s}.cpe_ipsec_address, and the DC's \
                 {}) what Cisco configured",
                c.t.remote_ipsec
            ),
        ),
        Failure::PeerUnreachable { .. } => one(
            Cause::PeerUnreachable,
            format!(
                "the DC does not answer IKE: check {s}.dc_ipsec_address ({}) against the form, \
                 the route to it, and that no firewall drops UDP 500/4500 (or ESP) on the way",
                c.t.remote_ipsec
            ),
        ),
        Failure::TsUnacceptable => one(
            Cause::WrongSelectors,
            format!(
                "the DC refuses the traffic selectors, GRE from {} to {}: check \
                 {s}.cpe_gre_address and {s}.dc_gre_address against the form; the DC's crypto \
                 ACL must permit GRE (not IP) host to host (R7)",
                c.t.ends.local_gre, c.t.ends.remote_gre
            ),
        ),
        Failure::KernelRefused { .. } => one(
            Cause::KernelRefused,
            "this host's kernel refused the SA or its policies: ESP support (esp4, xfrm_user) \
             or the negotiated algorithm is missing"
                .to_string(),
        ),
        Failure::Notify(other) => one(
            Cause::DcNotify,
            format!("the DC refused with {other}: {}", e.meaning),
        ),
    }
}

/// Step 2.
fn child(c: &Context) -> Judged {
    let ipsec = match ipsec(c) {
        Ok(i) => i,
        Err(j) => return j,
    };
    let Some(child) = &ipsec.child else {
        let detail = "no child SA installed".to_string();
        let causes = if ipsec.ike.as_ref().is_some_and(|i| i.up) {
            failure_causes(c, ipsec, false)
        } else {
            Vec::new()
        };
        return judged(Verdict::Fail, detail, causes);
    };
    let detail = format!(
        "{} {} reqid {}, {} ⇄ {}, {}, ESP {} pkts in {} out",
        child.state,
        child.mode.name().to_lowercase(),
        child.reqid,
        child.local_ts.join(","),
        child.remote_ts.join(","),
        child.proposal,
        child.packets_in,
        child.packets_out
    );
    let s = c.section();
    let mut causes = Vec::new();
    if child.mode != ChildMode::Tunnel {
        causes.push(likely(
            Cause::WrongMode,
            "the child SA is not in tunnel mode: Virtual Connect needs ESP tunnel mode (R5); \
             another IPsec configuration on this host may have negotiated it",
            vec![format!("child SA mode {}", child.mode)],
        ));
    }
    let (local, remote) = c.expected_selectors();
    if child.local_ts != [local.clone()] || child.remote_ts != [remote.clone()] {
        causes.push(likely(
            Cause::WrongSelectors,
            format!(
                "the selectors are not GRE only between the two GRE transport IPs (R7): check \
                 {s}.cpe_gre_address and {s}.dc_gre_address against the form"
            ),
            vec![format!(
                "selectors {} ⇄ {}, expected {local} ⇄ {remote}",
                child.local_ts.join(","),
                child.remote_ts.join(",")
            )],
        ));
    }
    let reqid = c.expected_reqid();
    if child.reqid != reqid {
        causes.push(likely(
            Cause::WrongReqid,
            "the child SA does not carry vc's reqid, so the datapath drops its GRE as wrong_sa: \
             another IPsec configuration on this host negotiated it",
            vec![format!("reqid {}, vc's is {reqid}", child.reqid)],
        ));
    }
    let verdict = if causes.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    judged(verdict, detail, causes)
}

/// Step 3. Judged by the signals the agent says decide this tunnel's liveness: with ours off
/// (`keepalive_interval_s = 0`) the DC's reflected keepalives when it sends them, else the
/// step does not apply (the SA and BGP decide, steps 2 and 5).
fn keepalives(c: &Context) -> Judged {
    let k = &c.t.keepalive;
    let heard = c.heard();
    let by = if k.liveness.is_empty() {
        String::new()
    } else {
        format!("; liveness from {}", signals_text(&k.liveness))
    };
    if !k.enabled {
        let dc_decides = k.liveness.contains(&LivenessSignal::DcKeepalives)
            || (k.liveness.is_empty() && k.reflected > 0);
        if !dc_decides {
            return judged(
                Verdict::NotApplicable,
                format!(
                    "ours are off (keepalive_interval_s = 0) and the DC sends none: liveness                      is not judged from keepalives{by}"
                ),
                Vec::new(),
            );
        }
        let detail = format!(
            "ours are off; the DC's reflected: {}, missed in a row {} of {} allowed (every {}s){by}",
            heard.text(),
            k.missed,
            k.retries,
            k.interval_s
        );
        if k.missed < k.retries.max(1) {
            return judged(Verdict::Pass, detail, Vec::new());
        }
        return judged(Verdict::Fail, detail, no_keepalive_causes(c));
    }
    let detail = format!(
        "sent {}, answered {}, the DC's reflected {}, missed in a row {} of {} allowed{by}",
        k.sent, k.replies, k.reflected, k.missed, k.retries
    );
    if heard.total > 0 && k.missed < k.retries {
        return judged(Verdict::Pass, detail, Vec::new());
    }
    judged(Verdict::Fail, detail, no_keepalive_causes(c))
}

/// Why nothing (or no keepalive) comes back from the DC, from what does come back.
fn no_keepalive_causes(c: &Context) -> Vec<Likely> {
    let k = &c.t.keepalive;
    let s = c.section();
    let rx = c.rx();
    let esp = c.esp();
    let ping = c.ping_ok();
    let drops = c.rx_drops();
    let mut causes = Vec::new();
    if k.replies + k.reflected == 0 && !c.keepalives_had_time() {
        causes.push(likely(
            Cause::NotYetUp,
            "the agent has only just started: ask again after a few keepalive intervals",
            vec![format!(
                "agent up {}, keepalives every {}s, {} may be missed",
                c.uptime(),
                k.interval_s,
                k.retries
            )],
        ));
    }
    // Traffic flows but no keepalive does: the DC has them off (R13).
    if ping == Some(true) || rx.moving() {
        let mut evidence = vec![format!(
            "keepalives: {} sent, {} answered, {} from the DC",
            k.sent, k.replies, k.reflected
        )];
        evidence.extend(c.ping_text());
        evidence.push(format!("GRE decapsulated from the DC: {}", rx.text()));
        if let Some((esp_in, _)) = esp {
            evidence.push(format!("ESP packets in: {}", esp_in.text()));
        }
        causes.push(likely(
            Cause::KeepaliveDisabledOnDc,
            format!(
                "the tunnel carries traffic but the DC neither answers nor sends GRE \
                 keepalives: they are off on the DC's side. Ask Cisco to enable them, or turn \
                 ours off with {s}.keepalive_interval_s = 0 (R13)"
            ),
            evidence,
        ));
        return causes;
    }
    let esp_in_moving = esp.is_some_and(|(esp_in, _)| esp_in.moving());
    if esp_in_moving || !drops.is_empty() {
        // ESP comes in, or GRE does, and yet nothing reaches the tunnel.
        let mut evidence = Vec::new();
        if let Some((esp_in, _)) = esp {
            evidence.push(format!("ESP packets in: {}", esp_in.text()));
        }
        evidence.push(format!("GRE decapsulated from the DC: {}", rx.text()));
        evidence.extend(drops);
        causes.push(likely(
            Cause::GreDropped,
            "packets from the DC arrive but none reaches the tunnel: a firewall or policy on \
             this host drops the decrypted GRE, the DC sends GRE in clear (no_secpath), or an \
             SA that is not this tunnel's decrypts it (wrong_sa)",
            evidence,
        ));
    } else if let Some((esp_in, esp_out)) = esp.filter(|(_, out)| out.moving()) {
        let mut evidence = vec![
            format!("ESP packets out: {}", esp_out.text()),
            format!("ESP packets in: {}", esp_in.text()),
        ];
        evidence.extend(c.ping_text());
        causes.push(likely(
            Cause::EspBlocked,
            format!(
                "ESP leaves for the DC but nothing comes back: a firewall or NAT on the path \
                 drops ESP (IP 50) or UDP 4500 toward the CPE, or the DC's side of the tunnel \
                 is down ({})",
                c.t.remote_ipsec
            ),
            evidence,
        ));
    } else {
        causes.extend(wrong_wan(c));
        let mut evidence = vec![format!("GRE decapsulated from the DC: {}", rx.text())];
        if let Some((esp_in, esp_out)) = esp {
            evidence.push(format!(
                "ESP packets in {}, out {}",
                esp_in.text(),
                esp_out.text()
            ));
        }
        evidence.extend(c.ping_text());
        causes.push(likely(
            Cause::PathDown,
            format!(
                "nothing comes back from the DC's GRE transport IP {}: the path to the DC is \
                 down, a firewall drops GRE (IP 47){}, or the DC's tunnel is down; check \
                 {s}.dc_gre_address against the form",
                c.t.ends.remote_gre,
                if c.ipsec_mode() {
                    " or ESP"
                } else {
                    " or the external IPsec box does not pass it"
                }
            ),
            evidence,
        ));
    }
    causes
}

/// Step 4.
fn ping(c: &Context) -> Judged {
    let Some(p) = c.ping else {
        return judged(
            Verdict::Skipped,
            format!(
                "not probed (`vc-agent diagnose` pings {} from {} when run as root on the CPE)",
                c.t.ends.dc_tunnel_ip, c.t.ends.local_tunnel_ip
            ),
            Vec::new(),
        );
    };
    let detail = c.ping_text().unwrap_or_default();
    if p.received > 0 {
        let rtt = p
            .rtt_min_us
            .map(|us| {
                if us < 1000 {
                    format!(", rtt {us} µs")
                } else {
                    format!(", rtt {}.{} ms", us / 1000, us % 1000 / 100)
                }
            })
            .unwrap_or_default();
        return judged(Verdict::Pass, format!("{detail}{rtt}"), Vec::new());
    }
    let s = c.section();
    let mut evidence = vec![detail.clone()];
    if let Some(b) = &c.t.bgp
        && b.connect_timeouts > 0
    {
        evidence.push(format!(
            "BGP connects to {} timed out {} time(s)",
            b.peer, b.connect_timeouts
        ));
    }
    let inner = c.verdict(Hook::WanRx, DropReason::InnerSourceNotAllowed);
    if inner.moving() {
        evidence.push(format!(
            "datapath drops wan_rx inner_source_not_allowed: {} (the DC answers from another \
             address)",
            inner.text()
        ));
    }
    let causes = vec![likely(
        Cause::WrongTunnelIp,
        format!(
            "GRE works but the DC does not answer on its tunnel IP: the tunnel IPs or the mask \
             differ from the DC's. Check {s}.cpe_tunnel_ip ({}) and {s}.dc_tunnel_ip ({}) \
             against the form (/30 or /31?)",
            c.t.ends.local_tunnel_ip, c.t.ends.dc_tunnel_ip
        ),
        evidence,
    )];
    judged(Verdict::Fail, detail, causes)
}

/// Step 5.
fn bgp(c: &Context) -> Judged {
    let Some(b) = &c.t.bgp else {
        return judged(
            Verdict::Fail,
            "no BGP session configured for this tunnel",
            Vec::new(),
        );
    };
    let who = format!("with {} (AS {} ↔ AS {})", b.peer, b.local_asn, b.remote_asn);
    if b.established {
        let detail = format!(
            "Established {who}, up {}, flaps {}",
            secs(b.uptime_s),
            b.flaps
        );
        if b.flaps > 0 {
            let mut evidence = vec![format!(
                "left Established {} time(s) since the agent started {} ago",
                b.flaps,
                c.uptime()
            )];
            evidence.extend(b.last_error.as_ref().map(|e| format!("last error: {e}")));
            return judged(
                Verdict::Warn,
                detail,
                vec![likely(
                    Cause::BgpUnstable,
                    "the session is up but has flapped: look at the last error and at the \
                     tunnel's keepalives and IPsec rekeys around that time",
                    evidence,
                )],
            );
        }
        return judged(Verdict::Pass, detail, Vec::new());
    }
    judged(
        Verdict::Fail,
        format!("{} {who}", b.state),
        bgp_causes(c, b),
    )
}

/// What the session shows, as evidence lines. A NOTIFICATION travels over an established
/// TCP connection, which a TCP-MD5 mismatch would have prevented: then this session's
/// passwords agree, and the host-wide MD5 counters speak of another session.
fn bgp_evidence(b: &BgpStatus, md5_ruled_out: bool) -> Vec<String> {
    let mut evidence = Vec::new();
    evidence.extend(b.last_error.as_ref().map(|e| format!("last error: {e}")));
    match &b.diagnosis {
        Some(_) if md5_ruled_out && b.likely_password_mismatch => evidence.push(
            "the host's TCP-MD5 drop counters rose, but a NOTIFICATION crossed this session's \
             TCP connection, so its password is right (another session's, then)"
                .to_string(),
        ),
        Some(d) => evidence.push(format!("agent: {d}")),
        None => {}
    }
    evidence.push(format!(
        "{} connect attempt(s), {} timed out",
        b.connect_attempts, b.connect_timeouts
    ));
    evidence
}

/// NOTIFICATION 2/2 Bad Peer AS: which side's AS is wrong depends on who sent it.
fn wrong_asn(c: &Context, b: &BgpStatus, sent: bool, evidence: Vec<String>) -> Likely {
    let s = c.section();
    let text = if sent {
        let theirs = b
            .last_notification
            .as_ref()
            .and_then(bad_peer_as)
            .map_or_else(|| "another AS".to_string(), |asn| format!("AS {asn}"));
        format!(
            "wrong ASN: the DC's OPEN carries {theirs}, not {s}.cisco_asn ({}); check it \
             against the form",
            b.remote_asn
        )
    } else {
        format!(
            "wrong ASN: the DC refuses our AS {}; check {s}.cpe_asn against the form (Cisco \
             configured another)",
            b.local_asn
        )
    };
    likely(Cause::WrongAsn, text, evidence)
}

fn bgp_causes(c: &Context, b: &BgpStatus) -> Vec<Likely> {
    let s = c.section();
    let notification = b.last_notification.as_ref();
    let md5_ruled_out = notification.is_some();
    let evidence = bgp_evidence(b, md5_ruled_out);
    let sent = notification.is_some_and(|n| n.direction == Direction::Sent);
    let notification_is = |code: u8, subcodes: &[u8]| {
        notification.is_some_and(|n| n.code == code && subcodes.contains(&n.subcode))
    };
    let mut causes = Vec::new();
    if notification_is(code::OPEN, &[open::BAD_PEER_AS]) {
        causes.push(wrong_asn(c, b, sent, evidence.clone()));
    }
    if b.likely_password_mismatch && !md5_ruled_out {
        causes.push(likely(
            Cause::BgpPasswordMismatch,
            format!(
                "BGP password (TCP-MD5) mismatch: the kernels drop each other's segments \
                 silently. {s}.bgp_password must be the form's BGP password (R17)"
            ),
            evidence.clone(),
        ));
    }
    // Peer De-configured, Connection Rejected: the DC has no such neighbour.
    if notification_is(
        code::CEASE,
        &[cease::PEER_DECONFIGURED, cease::CONNECTION_REJECTED],
    ) && !sent
    {
        causes.push(likely(
            Cause::WrongNeighbourIp,
            format!(
                "the DC closes the session (Cease): it may not know {} as its neighbour; check \
                 {s}.cpe_tunnel_ip and {s}.dc_tunnel_ip against the form",
                c.t.ends.local_tunnel_ip
            ),
            evidence.clone(),
        ));
    }
    if causes.is_empty()
        && let Some(n) = notification
    {
        causes.push(likely(
            Cause::BgpNotification,
            format!("the session failed with NOTIFICATION {n}"),
            evidence.clone(),
        ));
    }
    if causes.is_empty() && b.connect_timeouts > 0 {
        let cause = if c.ping_ok() == Some(true) {
            likely(
                Cause::WrongNeighbourIp,
                format!(
                    "the DC answers ping but not BGP: its neighbour is not {} (or it filters \
                     TCP 179); check {s}.cpe_tunnel_ip and {s}.dc_tunnel_ip against the form",
                    c.t.ends.local_tunnel_ip
                ),
                evidence.iter().cloned().chain(c.ping_text()).collect(),
            )
        } else {
            likely(
                Cause::WrongTunnelIp,
                format!(
                    "TCP to {} times out: the tunnel IPs or mask differ from the DC's, or it is \
                     not the DC's neighbour address",
                    b.peer
                ),
                evidence.clone(),
            )
        };
        causes.push(cause);
    }
    if causes.is_empty() {
        causes.push(likely(
            Cause::NotYetUp,
            "the session is still being set up: ask again in a few seconds (the DC retries \
             every 2 minutes at most)",
            evidence,
        ));
    }
    causes
}

/// The AS in the data of a Bad Peer AS NOTIFICATION we sent: the one the DC's OPEN carried
/// (2 or 4 octets).
fn bad_peer_as(notification: &NotificationInfo) -> Option<u32> {
    let data = notification.data.as_slice();
    match <[u8; 2]>::try_from(data) {
        Ok(two) => Some(u32::from(u16::from_be_bytes(two))),
        Err(_) => <[u8; 4]>::try_from(data).ok().map(u32::from_be_bytes),
    }
}

/// Step 6.
fn routes(c: &Context) -> Judged {
    let t = c.t;
    let s = c.section();
    let Some(b) = &t.bgp else {
        return judged(Verdict::NotApplicable, "no BGP session", Vec::new());
    };
    let missing = t.missing_prefixes();
    let detail = format!(
        "received {}, accepted [{}] (expected {}), rejected {}, advertised {}",
        b.received,
        prefix_list(&t.accepted_prefixes, ", "),
        prefix_list(&t.expected_prefixes, " + "),
        b.rejected,
        b.advertised
    );
    let counts = format!(
        "prefixes received {}, accepted {}, rejected {}",
        b.received, b.accepted, b.rejected
    );
    let mut causes = Vec::new();
    if !missing.is_empty() {
        causes.push(likely(
            Cause::PrefixMissing,
            format!(
                "the DC does not send {}: each DC must advertise its own /25 and the shared \
                 /24 (R19). Ask Cisco to check DC{}'s advertisements",
                prefix_list(&missing, " and "),
                t.ends.dc
            ),
            vec![
                counts.clone(),
                format!("accepted [{}]", prefix_list(&t.accepted_prefixes, ", ")),
            ],
        ));
    }
    if b.rejected > 0 {
        causes.push(likely(
            Cause::WrongPrefixesFromCisco,
            format!(
                "the DC sends {} prefix(es) vc does not accept: only {} are taken on this tunnel; \
                 compare [cisco] prefix, dc1_prefix and dc2_prefix with the form (the /25s \
                 swapped?), or Cisco sends more than it should",
                b.rejected,
                prefix_list(&t.expected_prefixes, " and ")
            ),
            vec![counts],
        ));
    }
    if b.advertised == 0 {
        causes.push(likely(
            Cause::DefaultNotAdvertised,
            format!(
                "0.0.0.0/0 is not advertised to the DC: the DC's Virtual Connect needs it (R18); \
                 see the agent's log for {s}"
            ),
            vec![format!("advertised {}", b.advertised)],
        ));
    }
    let fails = causes
        .iter()
        .any(|l| matches!(l.cause, Cause::PrefixMissing | Cause::DefaultNotAdvertised));
    let verdict = if fails {
        Verdict::Fail
    } else if causes.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Warn
    };
    judged(verdict, detail, causes)
}

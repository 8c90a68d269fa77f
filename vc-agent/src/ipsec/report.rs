//! The IPsec state as text for people (`vc-agent ipsec status`), following R24's first two
//! steps: IKE SA up, then child SA up with GRE-only selectors.
use std::{
    fmt::Write as _,
    time::{Duration, SystemTime},
};

use crate::{
    config::TunnelId,
    ipsec::{CharonState, Snapshot, TunnelSa},
};

/// `3h12m`, `4m05s`, `12s`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn ago(now: SystemTime, t: Option<SystemTime>) -> String {
    t.and_then(|t| now.duration_since(t).ok())
        .map_or_else(|| "?".into(), |d| format!("{} ago", span(d)))
}

fn until(now: SystemTime, t: Option<SystemTime>) -> String {
    t.and_then(|t| t.duration_since(now).ok())
        .map_or_else(|| "?".into(), |d| format!("in {}", span(d)))
}

/// The whole snapshot, one block per managed tunnel.
#[must_use]
pub fn render(snap: &Snapshot, now: SystemTime) -> String {
    let mut out = String::new();
    let _ = match &snap.charon {
        CharonState::Starting => writeln!(out, "charon: starting"),
        CharonState::NotUsed => writeln!(out, "charon: not used (mode external-ipsec)"),
        CharonState::Up {
            pid,
            version,
            since,
        } => writeln!(
            out,
            "charon: up, {version}{}, since {}",
            pid.map(|p| format!(", pid {p}")).unwrap_or_default(),
            ago(now, Some(*since))
        ),
        CharonState::Down { since, reason } => {
            writeln!(
                out,
                "charon: DOWN since {} ({reason})",
                ago(now, Some(*since))
            )
        }
    };
    for id in &snap.managed {
        tunnel(&mut out, *id, snap.sas.tunnel(*id), now);
    }
    out
}

fn tunnel(out: &mut String, id: TunnelId, t: &TunnelSa, now: SystemTime) {
    let _ = writeln!(out, "tunnel {id}:");
    match &t.ike {
        Some(i) if t.ike_up() => {
            let _ = writeln!(
                out,
                "  IKE SA    up  {} <-> {}{}  {}  established {}, rekey {}",
                i.local,
                i.remote,
                if i.nat { " (NAT)" } else { "" },
                i.proposal,
                ago(now, i.established_at),
                until(now, i.rekey_at)
            );
        }
        Some(i) => {
            let _ = writeln!(out, "  IKE SA    {}  to {}", i.state, i.remote);
        }
        None => {
            let _ = writeln!(out, "  IKE SA    DOWN");
        }
    }
    match &t.child {
        Some(c) => {
            let _ = writeln!(
                out,
                "  child SA  up  {} reqid {}{}  SPI in {} out {}  {}\n            {} === {}  {} B / {} pkts in, {} B / {} pkts out, rekey {}",
                c.mode,
                c.reqid,
                if c.encap { " UDP-encap" } else { "" },
                c.spi_in,
                c.spi_out,
                c.proposal,
                c.local_ts.join(","),
                c.remote_ts.join(","),
                c.bytes_in,
                c.packets_in,
                c.bytes_out,
                c.packets_out,
                until(now, c.rekey_at)
            );
        }
        None => {
            let _ = writeln!(out, "  child SA  DOWN");
        }
    }
    if let Some(e) = &t.last_error {
        let _ = writeln!(
            out,
            "  last error {}: {}\n             charon: {}",
            ago(now, Some(e.at)),
            e.failure,
            e.line
        );
    }
    let _ = writeln!(
        out,
        "  history   IKE up {} rekeyed {}, child up {} rekeyed {}",
        t.ike_ups, t.ike_rekeys, t.child_ups, t.child_rekeys
    );
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::render;
    use crate::{
        config::TunnelId,
        ipsec::{CharonState, Snapshot, vici::Message},
    };

    #[test]
    fn a_down_tunnel_shows_its_named_failure() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut snap = Snapshot {
            charon: CharonState::Up {
                pid: Some(42),
                version: "charon 5.9.8".into(),
                since: now - Duration::from_secs(90),
            },
            managed: vec![TunnelId::A],
            ..Snapshot::default()
        };
        let log = Message::new()
            .kv("ikesa-name", "vc-a")
            .kv("msg", "received AUTHENTICATION_FAILED notify error");
        snap.sas.apply("log", &log, now - Duration::from_secs(5));
        let text = render(&snap, now);
        assert!(
            text.starts_with("charon: up, charon 5.9.8, pid 42, since 1m30s ago\n"),
            "{text}"
        );
        assert!(
            text.contains("tunnel A (DC1):\n  IKE SA    DOWN\n  child SA  DOWN\n"),
            "{text}"
        );
        assert!(
            text.contains("last error 5s ago: AUTHENTICATION_FAILED"),
            "{text}"
        );
    }
}

//! The IPsec state as text for people (`vc-agent ipsec status`), following R24's first two
//! steps: IKE SA up, then child SA up with GRE-only selectors.
use std::{fmt::Write as _, time::SystemTime};

use crate::{
    config::TunnelId,
    duration::{self, since},
    ipsec::{CharonState, Snapshot, TunnelSa, status::IpsecStatus},
};

fn ago(now: SystemTime, t: Option<SystemTime>) -> String {
    duration::ago(since(now, t))
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
        CharonState::Unresponsive { since, reason } => writeln!(
            out,
            "charon: NOT ANSWERING since {} ({reason})",
            ago(now, Some(*since))
        ),
    };
    for id in &snap.managed {
        tunnel(&mut out, *id, snap.sas.tunnel(*id), now);
    }
    out
}

fn tunnel(out: &mut String, id: TunnelId, t: &TunnelSa, now: SystemTime) {
    let _ = write!(out, "tunnel {id}:\n{}", IpsecStatus::at(t, now));
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

//! What the agent's log says about IPsec (R25: the IKEv2 negotiation visible at info level).
//! Two sources: charon's own log lines for vc's connections (it says what it proposes,
//! selects, authenticates and establishes), and the SA changes the agent folds from charon's
//! events, described with what an engineer checks (addresses, proposal, mode, selectors,
//! reqid, SPIs). Pure: the controller logs what these return. charon logs at level 1, which
//! never includes key material; the PSK is never in an event.
use std::fmt::Write as _;

use crate::{
    config::TunnelId,
    ipsec::{
        conn,
        sa::{Change, SaTable},
        vici::Message,
    },
};

/// How loud a line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Debug,
}

/// One of charon's log lines, if it is about one of vc's tunnels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharonLine<'a> {
    pub tunnel: TunnelId,
    /// charon's subsystem: `IKE`, `CFG`, `CHD`, `NET`, `ENC`, `KNL`...
    pub group: &'a str,
    pub text: &'a str,
    pub level: Level,
}

/// charon's `log` event, sorted: the negotiation (IKE, CFG, CHD: initiating, selected
/// proposal, authentication, established, notifies, retransmits) at info; packets and message
/// encoding (NET, ENC), the kernel interface and routine DPD at debug.
#[must_use]
pub fn charon_line(msg: &Message) -> Option<CharonLine<'_>> {
    let tunnel = conn::tunnel_of(msg.str("ikesa-name")?)?;
    let text = msg.str("msg")?;
    let group = msg.str("group").unwrap_or("");
    let negotiation = matches!(group, "IKE" | "CFG" | "CHD");
    // Sent whenever the tunnel is idle for a DPD interval: routine, not negotiation.
    let routine = text == "sending DPD request";
    Some(CharonLine {
        tunnel,
        group,
        text,
        level: if negotiation && !routine {
            Level::Info
        } else {
            Level::Debug
        },
    })
}

/// An SA change as one line, with the state it led to.
#[must_use]
pub fn describe(change: &Change, table: &SaTable) -> String {
    let mut s = String::new();
    match change {
        Change::IkeUp(id) | Change::IkeRekeyed(id) => {
            let verb = if matches!(change, Change::IkeUp(_)) {
                "IKE SA established"
            } else {
                "IKE SA rekeyed"
            };
            let _ = write!(s, "tunnel {id}: {verb}");
            if let Some(ike) = &table.tunnel(*id).ike {
                let _ = write!(
                    s,
                    " {} ⇄ {} ({}), {}, SPIs {}_i {}_r{}",
                    ike.local,
                    ike.remote,
                    if ike.initiator {
                        "we initiated"
                    } else {
                        "the DC initiated"
                    },
                    ike.proposal,
                    ike.spi_i,
                    ike.spi_r,
                    if ike.nat { ", NAT-T on UDP 4500" } else { "" }
                );
            }
        }
        Change::ChildUp(id) | Change::ChildRekeyed(id) => {
            let verb = if matches!(change, Change::ChildUp(_)) {
                "child SA installed"
            } else {
                "child SA rekeyed"
            };
            let _ = write!(s, "tunnel {id}: {verb}");
            if let Some(c) = &table.tunnel(*id).child {
                let _ = write!(
                    s,
                    " {} mode, {} ⇄ {}, reqid {}, {}, SPIs in {} out {}{}",
                    c.mode.name().to_lowercase(),
                    c.local_ts.join(","),
                    c.remote_ts.join(","),
                    c.reqid,
                    c.proposal,
                    c.spi_in,
                    c.spi_out,
                    if c.encap { ", UDP-encapsulated" } else { "" }
                );
            }
        }
        Change::IkeDown(id) => {
            let _ = write!(s, "tunnel {id}: IKE SA down");
        }
        Change::ChildDown(id) => {
            let _ = write!(s, "tunnel {id}: child SA down");
        }
        Change::Failed(id, f) => {
            let _ = write!(s, "tunnel {id}: {f}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::{Level, charon_line, describe};
    use crate::{
        config::TunnelId,
        ipsec::{
            sa::{Change, SaTable},
            vici::Message,
        },
    };

    fn log(conn: &str, group: &str, line: &str) -> Message {
        Message::new()
            .kv("group", group)
            .kv("level", "1")
            .kv("ikesa-name", conn)
            .kv("msg", line)
    }

    #[test]
    fn the_negotiation_is_info_the_packets_debug() {
        let info = [
            ("IKE", "initiating IKE_SA vc-a[1] to 198.51.100.2"),
            (
                "CFG",
                "selected proposal: IKE:AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384",
            ),
            ("IKE", "received AUTHENTICATION_FAILED notify error"),
            ("CHD", "CHILD_SA vc-a-gre{1} established"),
        ];
        for (group, line) in info {
            let msg = log("vc-a", group, line);
            let l = charon_line(&msg).expect("vc's");
            assert_eq!(
                (l.tunnel, l.level, l.text),
                (TunnelId::A, Level::Info, line)
            );
        }
        for (group, line) in [
            (
                "NET",
                "sending packet: from 198.51.100.1[500] to 198.51.100.2[500] (296 bytes)",
            ),
            ("ENC", "generating IKE_SA_INIT request 0 [ SA KE No ]"),
            ("IKE", "sending DPD request"),
        ] {
            let msg = log("vc-b", group, line);
            assert_eq!(
                charon_line(&msg).expect("vc's").level,
                Level::Debug,
                "{line}"
            );
        }
        assert_eq!(charon_line(&log("office", "IKE", "x")), None, "not vc's");
        assert_eq!(
            charon_line(&Message::new().kv("msg", "no connection")),
            None
        );
    }

    #[test]
    fn changes_say_what_was_negotiated() {
        let mut table = SaTable::default();
        let up = Message::new().section(
            "vc-a",
            Message::new()
                .kv("uniqueid", "1")
                .kv("state", "ESTABLISHED")
                .kv("local-host", "198.51.100.1")
                .kv("local-port", "500")
                .kv("remote-host", "198.51.100.2")
                .kv("remote-port", "500")
                .kv("initiator", "yes")
                .kv("initiator-spi", "1111")
                .kv("responder-spi", "2222")
                .kv("encr-alg", "AES_GCM_16")
                .kv("encr-keysize", "256")
                .kv("prf-alg", "PRF_HMAC_SHA2_384")
                .kv("dh-group", "ECP_384"),
        );
        let changes = table.apply("ike-updown", &up.kv("up", "yes"), SystemTime::now());
        assert_eq!(changes, [Change::IkeUp(TunnelId::A)]);
        let line = describe(&changes[0], &table);
        assert!(
            line.starts_with("tunnel A (DC1): IKE SA established 198.51.100.1[500] ⇄ 198.51.100.2[500] (we initiated), AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384"),
            "{line}"
        );
        assert_eq!(
            describe(&Change::ChildDown(TunnelId::B), &table),
            "tunnel B (DC2): child SA down"
        );
    }
}

//! IKE failures named plainly (R6, R24), recognised in charon's log lines.
//!
//! charon's VICI `initiate` only ever says `establishing CHILD_SA '…' failed`; the reason is in
//! its log, which the agent follows through the VICI `log` event (level 1, the highest level
//! the VICI logger forwards). The strings are those of strongSwan 5.9.8 (Debian 12), from
//! `ike_init.c`, `ike_auth.c`, `child_create.c`, `task_manager_v2.c`, `ike_sa.c` and
//! `psk_authenticator.c`; the tests in `tests/ipsec_charon.rs` provoke each one.
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a tunnel's IKE or child SA did not come up, from this CPE's point of view. In JSON:
/// its IKEv2 `name` and the details of that failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "FailureRecord", from = "FailureRecord")]
pub enum Failure {
    /// No common proposal: the IKE SA (`ike`) or the child SA (ESP) proposals differ.
    NoProposalChosen { ike: bool },
    /// The PSK (or the identities it is looked up by) differs.
    AuthenticationFailed,
    /// The peer refused our traffic selectors (its crypto ACL is not GRE between the same
    /// two GRE transport IPs).
    TsUnacceptable,
    /// No answer on UDP 500/4500 (`port`: where the unanswered request went).
    PeerUnreachable { port: Option<u16> },
    /// This host's kernel refused the negotiated SA or its policies.
    KernelRefused { policies: bool },
    /// Another error notify, by name (e.g. `INTERNAL_ADDRESS_FAILURE`).
    Notify(String),
}

impl Failure {
    /// The IKEv2 name an engineer searches for.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Failure::NoProposalChosen { .. } => "NO_PROPOSAL_CHOSEN",
            Failure::AuthenticationFailed => "AUTHENTICATION_FAILED",
            Failure::TsUnacceptable => "TS_UNACCEPTABLE",
            Failure::PeerUnreachable { .. } => "PEER_UNREACHABLE",
            Failure::KernelRefused { .. } => "KERNEL_REFUSED",
            Failure::Notify(name) => name,
        }
    }
}

/// A [`Failure`] as JSON: the name, and what the variant carries.
#[derive(Serialize, Deserialize)]
struct FailureRecord {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ike: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    policies: Option<bool>,
}

impl From<Failure> for FailureRecord {
    fn from(f: Failure) -> Self {
        let mut r = FailureRecord {
            name: f.name().to_string(),
            ike: None,
            port: None,
            policies: None,
        };
        match f {
            Failure::NoProposalChosen { ike } => r.ike = Some(ike),
            Failure::PeerUnreachable { port } => r.port = port,
            Failure::KernelRefused { policies } => r.policies = Some(policies),
            Failure::AuthenticationFailed | Failure::TsUnacceptable | Failure::Notify(_) => {}
        }
        r
    }
}

impl From<FailureRecord> for Failure {
    fn from(r: FailureRecord) -> Self {
        match r.name.as_str() {
            "PEER_UNREACHABLE" => Failure::PeerUnreachable { port: r.port },
            "KERNEL_REFUSED" => Failure::KernelRefused {
                policies: r.policies.unwrap_or_default(),
            },
            name => named(name, r.ike.unwrap_or(true)),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NoProposalChosen { ike: true } => f.write_str(
                "NO_PROPOSAL_CHOSEN for the IKE SA: the DC accepts none of ike_proposals (compare them with the form)",
            ),
            Failure::NoProposalChosen { ike: false } => f.write_str(
                "NO_PROPOSAL_CHOSEN for the child SA: the DC accepts none of esp_proposals (compare them, and PFS, with the form)",
            ),
            Failure::AuthenticationFailed => f.write_str(
                "AUTHENTICATION_FAILED: the pre-shared key (or an IKE identity) differs from the DC's",
            ),
            Failure::TsUnacceptable => f.write_str(
                "TS_UNACCEPTABLE: the DC refuses the traffic selectors (GRE between cpe_gre_address and dc_gre_address)",
            ),
            Failure::PeerUnreachable { port } => {
                f.write_str("peer unreachable: no response to IKE")?;
                match port {
                    Some(p) => write!(f, " on UDP {p}")?,
                    None => f.write_str(" on UDP 500/4500")?,
                }
                f.write_str(" (address, routing, or a firewall dropping UDP 500/4500)")
            }
            Failure::KernelRefused { policies: false } => {
                f.write_str("the kernel refused the IPsec SA (ESP or the algorithm missing?)")
            }
            Failure::KernelRefused { policies: true } => {
                f.write_str("the kernel refused the IPsec policies")
            }
            Failure::Notify(name) => write!(f, "{name} notify from the DC"),
        }
    }
}

/// Recognises a failure in one charon log message. `ike_established`: whether the tunnel's
/// IKE SA is up, which tells an IKE from a child proposal failure where charon does not.
#[must_use]
pub fn classify(msg: &str, ike_established: bool) -> Option<Failure> {
    // Initiator side: the DC's notify.
    if let Some(rest) = msg.strip_prefix("received ") {
        if let Some(name) = rest.strip_suffix(" notify error") {
            return Some(named(name, true));
        }
        if let Some(name) = rest.strip_suffix(" notify, no CHILD_SA built") {
            return Some(named(name, false));
        }
        if rest == "proposals unacceptable" {
            return Some(Failure::NoProposalChosen { ike: true });
        }
        return None;
    }
    // Our own verdicts (as responder, or on the DC's answer).
    if msg == "no acceptable proposal found" {
        return Some(Failure::NoProposalChosen {
            ike: !ike_established,
        });
    }
    if msg.starts_with("tried ") && msg.ends_with("but MAC mismatched") {
        return Some(Failure::AuthenticationFailed);
    }
    if msg.starts_with("traffic selectors ") && msg.ends_with(" unacceptable") {
        return Some(Failure::TsUnacceptable);
    }
    if (msg.starts_with("giving up after ") && msg.ends_with(" retransmits"))
        || msg == "establishing IKE_SA failed, peer not responding"
        || msg.starts_with("peer not responding, trying again")
    {
        return Some(Failure::PeerUnreachable { port: None });
    }
    if msg.starts_with("unable to install ") {
        if msg.ends_with("IPsec SA (SAD) in kernel") {
            return Some(Failure::KernelRefused { policies: false });
        }
        if msg == "unable to install IPsec policies (SPD) in kernel" {
            return Some(Failure::KernelRefused { policies: true });
        }
    }
    None
}

fn named(notify: &str, ike: bool) -> Failure {
    match notify {
        "NO_PROPOSAL_CHOSEN" => Failure::NoProposalChosen { ike },
        "AUTHENTICATION_FAILED" => Failure::AuthenticationFailed,
        "TS_UNACCEPTABLE" => Failure::TsUnacceptable,
        other => Failure::Notify(other.to_string()),
    }
}

/// The destination port of charon's `sending packet: from A[p] to B[q] (n bytes)` line.
#[must_use]
pub fn sent_to_port(msg: &str) -> Option<u16> {
    let rest = msg.strip_prefix("sending packet: from ")?;
    let to = rest.split(" to ").nth(1)?;
    let open = to.find('[')?;
    let close = to[open..].find(']')? + open;
    to[open + 1..close].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{Failure as F, classify, sent_to_port};

    /// strongSwan 5.9.8's lines, as recorded from a live charon.
    #[test]
    fn each_charon_line_has_its_name() {
        let cases = [
            (
                "received NO_PROPOSAL_CHOSEN notify error",
                false,
                F::NoProposalChosen { ike: true },
            ),
            (
                "received NO_PROPOSAL_CHOSEN notify, no CHILD_SA built",
                true,
                F::NoProposalChosen { ike: false },
            ),
            (
                "received proposals unacceptable",
                false,
                F::NoProposalChosen { ike: true },
            ),
            (
                "no acceptable proposal found",
                true,
                F::NoProposalChosen { ike: false },
            ),
            (
                "no acceptable proposal found",
                false,
                F::NoProposalChosen { ike: true },
            ),
            (
                "received AUTHENTICATION_FAILED notify error",
                false,
                F::AuthenticationFailed,
            ),
            (
                "tried 1 shared key for 'b.probe' - 'a.probe', but MAC mismatched",
                false,
                F::AuthenticationFailed,
            ),
            (
                "received TS_UNACCEPTABLE notify, no CHILD_SA built",
                true,
                F::TsUnacceptable,
            ),
            (
                "traffic selectors 100.64.0.2/32[gre] === 100.64.0.1/32[gre] unacceptable",
                true,
                F::TsUnacceptable,
            ),
            (
                "giving up after 5 retransmits",
                false,
                F::PeerUnreachable { port: None },
            ),
            (
                "establishing IKE_SA failed, peer not responding",
                false,
                F::PeerUnreachable { port: None },
            ),
            (
                "peer not responding, trying again (2/0)",
                false,
                F::PeerUnreachable { port: None },
            ),
            (
                "unable to install inbound and outbound IPsec SA (SAD) in kernel",
                true,
                F::KernelRefused { policies: false },
            ),
            (
                "unable to install IPsec policies (SPD) in kernel",
                true,
                F::KernelRefused { policies: true },
            ),
            (
                "received INTERNAL_ADDRESS_FAILURE notify error",
                true,
                F::Notify("INTERNAL_ADDRESS_FAILURE".into()),
            ),
        ];
        for (line, ike_up, want) in cases {
            assert_eq!(classify(line, ike_up), Some(want), "{line}");
        }
        for benign in [
            "received packet: from 198.51.100.2[500] to 198.51.100.1[500] (248 bytes)",
            "retransmit 1 of request with message ID 0",
            "IKE_SA vc-a[1] established between 198.51.100.1[198.51.100.1]...198.51.100.2[198.51.100.2]",
            "received DELETE for ESP CHILD_SA with SPI c1a2b3c4",
        ] {
            assert_eq!(classify(benign, true), None, "{benign}");
        }
    }

    #[test]
    fn messages_name_the_failure_and_the_fix() {
        assert_eq!(F::AuthenticationFailed.name(), "AUTHENTICATION_FAILED");
        assert!(
            F::NoProposalChosen { ike: true }
                .to_string()
                .contains("ike_proposals")
        );
        assert_eq!(
            F::PeerUnreachable { port: Some(4500) }.to_string(),
            "peer unreachable: no response to IKE on UDP 4500 (address, routing, or a firewall dropping UDP 500/4500)"
        );
    }

    #[test]
    fn port_of_a_sent_packet() {
        assert_eq!(
            sent_to_port(
                "sending packet: from 198.51.100.1[4500] to 198.51.100.2[4500] (254 bytes)"
            ),
            Some(4500)
        );
        assert_eq!(
            sent_to_port("sending packet: from 10.0.0.1[500] to 10.0.0.2[500] (1 bytes)"),
            Some(500)
        );
        assert_eq!(
            sent_to_port("received packet: from a[1] to b[2] (3 bytes)"),
            None
        );
    }

    #[test]
    fn json_names_the_failure_and_round_trips() {
        for f in [
            F::NoProposalChosen { ike: false },
            F::AuthenticationFailed,
            F::TsUnacceptable,
            F::PeerUnreachable { port: Some(4500) },
            F::PeerUnreachable { port: None },
            F::KernelRefused { policies: true },
            F::Notify("INTERNAL_ADDRESS_FAILURE".into()),
        ] {
            let json = serde_json::to_string(&f).expect("json");
            assert!(
                json.contains(&format!("\"name\":\"{}\"", f.name())),
                "{json}"
            );
            assert_eq!(serde_json::from_str::<F>(&json).expect("parse"), f);
        }
    }
}

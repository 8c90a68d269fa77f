//! The Adj-RIB-In of one session and the import policy the service fixes (R18, R19): a
//! session accepts exactly its DC's /25 and the shared /24, from a path that does not contain
//! our AS. Everything else is kept as *rejected* (so it still counts against the prefix limit)
//! and counted by reason. Pure: no I/O, no time.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
};

use ipnet::Ipv4Net;

use super::packet::{AsPath, Attrs, Cxt, Origin, Update};

/// The policy of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportPolicy {
    /// Exact prefixes accepted (the DC's /25 and the shared /24).
    pub accepted: BTreeSet<Ipv4Net>,
    pub local_asn: u32,
    pub peer_asn: u32,
    /// Our end of the session: a `NEXT_HOP` equal to it is nonsense.
    pub local_addr: Ipv4Addr,
}

/// Why an announced prefix is not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Reject {
    /// Not one of the session's accepted prefixes (R19).
    OutsidePolicy,
    /// Our own AS is in the path: a loop.
    OwnAsInPath,
    /// `NEXT_HOP` is ours, unspecified, multicast or broadcast (RFC 4271 §6.3: ignore the route).
    BadNextHop,
    /// RFC 7606 treat-as-withdraw: a malformed attribute, a missing mandatory attribute, an
    /// `AS_PATH` not starting with the peer's AS (RFC 4271 §6.3) or with confederation segments
    /// from an external peer (RFC 7606 §7.2).
    TreatAsWithdraw,
}

impl Reject {
    pub const ALL: [Reject; 4] = [
        Reject::OutsidePolicy,
        Reject::OwnAsInPath,
        Reject::BadNextHop,
        Reject::TreatAsWithdraw,
    ];

    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Reject::OutsidePolicy => "outside this session's accepted prefixes",
            Reject::OwnAsInPath => "our own AS is in the AS path",
            Reject::BadNextHop => "unusable NEXT_HOP",
            Reject::TreatAsWithdraw => "malformed, treated as withdrawn (RFC 7606)",
        }
    }
}

/// What one UPDATE did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The accepted set changed (the route manager must hear about it).
    pub changed: bool,
    /// Announcements not used, with why.
    pub rejected: Vec<(Ipv4Net, Reject)>,
}

/// Received prefixes with their verdict (`None` = accepted).
#[derive(Clone, Debug, Default)]
pub struct AdjRibIn {
    routes: BTreeMap<Ipv4Net, Option<Reject>>,
}

impl AdjRibIn {
    pub fn apply(&mut self, update: &Update, cxt: Cxt, policy: &ImportPolicy) -> Applied {
        let before = self.accepted();
        let mut rejected = Vec::new();
        for prefix in update.withdrawn_all() {
            self.routes.remove(&prefix);
        }
        let announced = update.announced();
        let path_fault = update
            .attrs
            .as_ref()
            .and_then(|attrs| path_verdict(attrs, cxt, policy));
        if update.treat_as_withdraw() || path_fault == Some(Reject::TreatAsWithdraw) {
            for prefix in announced {
                self.routes.remove(&prefix);
                rejected.push((prefix, Reject::TreatAsWithdraw));
            }
        } else if let Some(attrs) = &update.attrs {
            for prefix in announced {
                let verdict = path_fault.or_else(|| prefix_verdict(prefix, attrs, policy));
                self.routes.insert(prefix, verdict);
                if let Some(why) = verdict {
                    rejected.push((prefix, why));
                }
            }
        }
        Applied {
            changed: self.accepted() != before,
            rejected,
        }
    }

    /// The prefixes the route manager should use.
    #[must_use]
    pub fn accepted(&self) -> BTreeSet<Ipv4Net> {
        self.routes
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(p, _)| *p)
            .collect()
    }

    /// Prefixes received and not withdrawn, accepted or not (what the prefix limit counts).
    #[must_use]
    pub fn received(&self) -> usize {
        self.routes.len()
    }

    #[must_use]
    pub fn rejected(&self) -> usize {
        self.routes.values().filter(|v| v.is_some()).count()
    }

    pub fn clear(&mut self) {
        self.routes.clear();
    }
}

/// vc's whole Adj-RIB-Out (R18): 0.0.0.0/0, origin IGP, path = our AS, next hop = our
/// tunnel IP. A 2-octet peer sees `AS_TRANS` in `AS_PATH` and our AS in `AS4_PATH` (RFC 6793
/// §4.2.2) when it does not fit.
#[must_use]
pub fn default_route(local_asn: u32, next_hop: Ipv4Addr, cxt: Cxt) -> Update {
    let path = AsPath::sequence(&[local_asn]);
    let attrs = Attrs {
        origin: Some(Origin::Igp),
        as4_path: (!cxt.four_octet_as && !path.fits_two_octets()).then(|| path.clone()),
        as_path: Some(path),
        next_hop: Some(next_hop),
        ..Attrs::default()
    };
    Update {
        attrs: Some(attrs),
        nlri: vec![Ipv4Net::default()],
        ..Update::default()
    }
}

/// Verdicts that depend on the path alone.
fn path_verdict(attrs: &Attrs, cxt: Cxt, policy: &ImportPolicy) -> Option<Reject> {
    let path = attrs.effective_as_path(cxt)?;
    if path.has_confed_segments() || path.first_as() != Some(policy.peer_asn) {
        return Some(Reject::TreatAsWithdraw);
    }
    if path.contains(policy.local_asn) {
        return Some(Reject::OwnAsInPath);
    }
    None
}

fn prefix_verdict(prefix: Ipv4Net, attrs: &Attrs, policy: &ImportPolicy) -> Option<Reject> {
    let next_hop = attrs.next_hop.or(match &attrs.mp_reach {
        Some(super::packet::MpReach::Ipv4Unicast { next_hop, .. }) => Some(*next_hop),
        _ => None,
    });
    let bad_next_hop = next_hop.is_none_or(|nh| {
        nh == policy.local_addr || nh.is_unspecified() || nh.is_multicast() || nh.is_broadcast()
    });
    if bad_next_hop {
        return Some(Reject::BadNextHop);
    }
    if !policy.accepted.contains(&prefix) {
        return Some(Reject::OutsidePolicy);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::packet::{AsPath, AttrAction, AttrFault, Origin, Segment, SegmentKind};

    const CXT: Cxt = Cxt {
        four_octet_as: true,
    };

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("prefix")
    }

    fn policy() -> ImportPolicy {
        ImportPolicy {
            accepted: [net("198.18.10.0/25"), net("198.18.10.0/24")].into(),
            local_asn: 65001,
            peer_asn: 65010,
            local_addr: Ipv4Addr::new(100, 64, 0, 1),
        }
    }

    fn attrs(path: &[u32]) -> Attrs {
        Attrs {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(path)),
            next_hop: Some(Ipv4Addr::new(100, 64, 0, 2)),
            ..Attrs::default()
        }
    }

    fn announce(path: &[u32], prefixes: &[&str]) -> Update {
        Update {
            attrs: Some(attrs(path)),
            nlri: prefixes.iter().map(|p| net(p)).collect(),
            ..Update::default()
        }
    }

    #[test]
    fn accepts_exactly_the_policy_prefixes() {
        let mut rib = AdjRibIn::default();
        let a = rib.apply(
            &announce(
                &[65010],
                &[
                    "198.18.10.0/25",
                    "198.18.10.0/24",
                    "10.0.0.0/8",
                    "198.18.10.0/26",
                    "198.18.10.128/25",
                ],
            ),
            CXT,
            &policy(),
        );
        assert!(a.changed);
        assert_eq!(rib.accepted(), policy().accepted);
        assert_eq!(
            a.rejected,
            vec![
                (net("10.0.0.0/8"), Reject::OutsidePolicy),
                (net("198.18.10.0/26"), Reject::OutsidePolicy),
                (net("198.18.10.128/25"), Reject::OutsidePolicy),
            ]
        );
        assert_eq!((rib.received(), rib.rejected()), (5, 3));
    }

    #[test]
    fn withdrawal_removes_and_reports_a_change() {
        let mut rib = AdjRibIn::default();
        rib.apply(
            &announce(&[65010], &["198.18.10.0/25", "198.18.10.0/24"]),
            CXT,
            &policy(),
        );
        let w = Update {
            withdrawn: vec![net("198.18.10.0/25")],
            ..Update::default()
        };
        assert!(rib.apply(&w, CXT, &policy()).changed);
        assert_eq!(rib.accepted(), [net("198.18.10.0/24")].into());
        // Withdrawing what is not there changes nothing.
        assert!(!rib.apply(&w, CXT, &policy()).changed);
    }

    #[test]
    fn own_as_in_path_is_rejected_and_replaces_an_accepted_route() {
        let mut rib = AdjRibIn::default();
        rib.apply(&announce(&[65010], &["198.18.10.0/24"]), CXT, &policy());
        let a = rib.apply(
            &announce(&[65010, 65001], &["198.18.10.0/24"]),
            CXT,
            &policy(),
        );
        assert!(a.changed, "the implicit withdrawal of the accepted route");
        assert_eq!(
            a.rejected,
            vec![(net("198.18.10.0/24"), Reject::OwnAsInPath)]
        );
        assert!(rib.accepted().is_empty());
        assert_eq!(rib.received(), 1);
    }

    #[test]
    fn path_not_starting_with_the_peer_or_with_confederations_is_withdrawn() {
        let mut rib = AdjRibIn::default();
        rib.apply(&announce(&[65010], &["198.18.10.0/24"]), CXT, &policy());
        let a = rib.apply(
            &announce(&[65099, 65010], &["198.18.10.0/24"]),
            CXT,
            &policy(),
        );
        assert_eq!(
            a.rejected,
            vec![(net("198.18.10.0/24"), Reject::TreatAsWithdraw)]
        );
        assert_eq!(rib.received(), 0, "treat-as-withdraw removes the route");

        let mut confed = announce(&[65010], &["198.18.10.0/24"]);
        confed.attrs.as_mut().expect("attrs").as_path = Some(AsPath {
            segments: vec![
                Segment {
                    kind: SegmentKind::ConfedSequence,
                    asns: vec![1],
                },
                Segment {
                    kind: SegmentKind::Sequence,
                    asns: vec![65010],
                },
            ],
        });
        let a = rib.apply(&confed, CXT, &policy());
        assert_eq!(
            a.rejected,
            vec![(net("198.18.10.0/24"), Reject::TreatAsWithdraw)]
        );
    }

    #[test]
    fn attribute_faults_withdraw_what_the_update_announced() {
        let mut rib = AdjRibIn::default();
        rib.apply(&announce(&[65010], &["198.18.10.0/24"]), CXT, &policy());
        let mut bad = announce(&[65010], &["198.18.10.0/24", "198.18.10.0/25"]);
        bad.faults.push(AttrFault {
            code: 1,
            action: AttrAction::TreatAsWithdraw,
            why: "undefined ORIGIN value",
        });
        let a = rib.apply(&bad, CXT, &policy());
        assert!(a.changed);
        assert!(rib.accepted().is_empty());
        assert_eq!(a.rejected.len(), 2);
        // A discarded attribute leaves the routes standing.
        let mut discard = announce(&[65010], &["198.18.10.0/24"]);
        discard.faults.push(AttrFault {
            code: 5,
            action: AttrAction::Discard,
            why: "length is not 4",
        });
        rib.apply(&discard, CXT, &policy());
        assert_eq!(rib.accepted(), [net("198.18.10.0/24")].into());
    }

    #[test]
    fn unusable_next_hops_are_rejected() {
        for nh in [
            Ipv4Addr::new(100, 64, 0, 1),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(224, 0, 0, 5),
            Ipv4Addr::BROADCAST,
        ] {
            let mut u = announce(&[65010], &["198.18.10.0/24"]);
            u.attrs.as_mut().expect("attrs").next_hop = Some(nh);
            let mut rib = AdjRibIn::default();
            let a = rib.apply(&u, CXT, &policy());
            assert_eq!(
                a.rejected,
                vec![(net("198.18.10.0/24"), Reject::BadNextHop)],
                "{nh}"
            );
        }
    }
}

//! Path attributes (RFC 4271 §4.3, §5) and how each one's errors are handled (RFC 7606 §7).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |O|T|P|E| unused|   Type Code   |  Length (1 octet, 2 if E)     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Value (Length octets)                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!  O optional, T transitive, P partial, E extended length
//!
//! ORIGIN (1)           IGP 0 | EGP 1 | INCOMPLETE 2              (1 octet)
//! AS_PATH (2)          (segment type (1) | count (1) | count × AS (2 or 4))*
//! NEXT_HOP (3)         IPv4 address                               (4 octets)
//! MULTI_EXIT_DISC (4)  u32;  LOCAL_PREF (5) u32;  ATOMIC_AGGREGATE (6) empty
//! AGGREGATOR (7)       AS (2 or 4) | IPv4 address
//! COMMUNITIES (8)      (u32)*
//! MP_REACH_NLRI (14)   AFI (2) | SAFI (1) | NH len (1) | NH | reserved (1) | NLRI
//! MP_UNREACH_NLRI (15) AFI (2) | SAFI (1) | withdrawn NLRI
//! AS4_PATH (17)        as AS_PATH, always 4-octet ASes;  AS4_AGGREGATOR (18) AS (4) | IPv4
//! ```
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::{
    AttrAction, AttrFault, Cxt, DecodeError, Reader,
    open::{AFI_IPV4, AS_TRANS, SAFI_UNICAST},
    prefix::{decode_prefixes, encode_prefixes},
};

/// Attribute type codes.
pub mod attr_type {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MED: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
}

mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    /// Set by a router that passed on an optional transitive attribute it did not know.
    #[expect(
        dead_code,
        reason = "documents the flag octet; vc re-advertises nothing"
    )]
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED: u8 = 0x10;
}

/// The name of an attribute type, for logs.
#[must_use]
pub const fn attr_name(code: u8) -> &'static str {
    match code {
        attr_type::ORIGIN => "ORIGIN",
        attr_type::AS_PATH => "AS_PATH",
        attr_type::NEXT_HOP => "NEXT_HOP",
        attr_type::MED => "MULTI_EXIT_DISC",
        attr_type::LOCAL_PREF => "LOCAL_PREF",
        attr_type::ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        attr_type::AGGREGATOR => "AGGREGATOR",
        attr_type::COMMUNITIES => "COMMUNITIES",
        attr_type::MP_REACH_NLRI => "MP_REACH_NLRI",
        attr_type::MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        attr_type::AS4_PATH => "AS4_PATH",
        attr_type::AS4_AGGREGATOR => "AS4_AGGREGATOR",
        _ => "unknown attribute",
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SegmentKind {
    Set = 1,
    Sequence = 2,
    /// RFC 5065: never valid from an external peer.
    ConfedSequence = 3,
    ConfedSet = 4,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub kind: SegmentKind,
    pub asns: Vec<u32>,
}

/// An `AS_PATH` (or `AS4_PATH)`: segments, nearest AS first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AsPath {
    pub segments: Vec<Segment>,
}

impl AsPath {
    /// A path of one `AS_SEQUENCE`.
    #[must_use]
    pub fn sequence(asns: &[u32]) -> Self {
        AsPath {
            segments: vec![Segment {
                kind: SegmentKind::Sequence,
                asns: asns.to_vec(),
            }],
        }
    }

    #[must_use]
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// The neighbouring AS: the first AS of a leading `AS_SEQUENCE`.
    #[must_use]
    pub fn first_as(&self) -> Option<u32> {
        let first = self.segments.first()?;
        (first.kind == SegmentKind::Sequence)
            .then(|| first.asns.first().copied())
            .flatten()
    }

    #[must_use]
    pub fn has_confed_segments(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s.kind, SegmentKind::ConfedSequence | SegmentKind::ConfedSet))
    }

    /// Path length as RFC 6793 §4.2.3 counts it for merging: a set counts one, confederation
    /// segments none.
    fn merge_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    /// The leading `n` ASes (as [`AsPath::merge_len`] counts them).
    fn leading(&self, mut n: usize) -> AsPath {
        let mut out = AsPath::default();
        for s in &self.segments {
            if n == 0 {
                break;
            }
            match s.kind {
                SegmentKind::Sequence => {
                    let take = n.min(s.asns.len());
                    out.segments.push(Segment {
                        kind: s.kind,
                        asns: s.asns[..take].to_vec(),
                    });
                    n -= take;
                }
                SegmentKind::Set => {
                    out.segments.push(s.clone());
                    n -= 1;
                }
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => {
                    out.segments.push(s.clone());
                }
            }
        }
        out
    }

    fn decode(value: &[u8], as_len: usize) -> Result<Self, &'static str> {
        let mut r = Reader::new(value);
        let mut segments = Vec::new();
        while !r.is_empty() {
            let kind = match r.u8().ok_or("segment header cut short")? {
                1 => SegmentKind::Set,
                2 => SegmentKind::Sequence,
                3 => SegmentKind::ConfedSequence,
                4 => SegmentKind::ConfedSet,
                _ => return Err("unknown segment type"),
            };
            let count = r.u8().ok_or("segment header cut short")?;
            if count == 0 {
                return Err("empty segment");
            }
            let raw = r
                .take(usize::from(count) * as_len)
                .ok_or("segment overruns the attribute")?;
            let asns = raw
                .chunks_exact(as_len)
                .map(|c| {
                    if as_len == 2 {
                        u32::from(u16::from_be_bytes([c[0], c[1]]))
                    } else {
                        u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                    }
                })
                .collect();
            segments.push(Segment { kind, asns });
        }
        Ok(AsPath { segments })
    }

    fn encode(&self, as_len: usize, buf: &mut Vec<u8>) {
        for s in &self.segments {
            // A segment holds at most 255 ASes; longer ones are split.
            for chunk in s.asns.chunks(255) {
                buf.push(s.kind as u8);
                buf.push(u8::try_from(chunk.len()).expect("chunks of 255"));
                for &asn in chunk {
                    if as_len == 2 {
                        let asn = u16::try_from(asn).unwrap_or(AS_TRANS);
                        buf.extend_from_slice(&asn.to_be_bytes());
                    } else {
                        buf.extend_from_slice(&asn.to_be_bytes());
                    }
                }
            }
        }
    }

    /// Whether every AS fits two octets (else a 2-octet encoding needs `AS4_PATH` beside it).
    #[must_use]
    pub fn fits_two_octets(&self) -> bool {
        self.segments
            .iter()
            .all(|s| s.asns.iter().all(|&a| u16::try_from(a).is_ok()))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aggregator {
    pub asn: u32,
    pub addr: Ipv4Addr,
}

/// `MP_REACH_NLRI` (RFC 4760 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MpReach {
    Ipv4Unicast {
        next_hop: Ipv4Addr,
        nlri: Vec<Ipv4Net>,
    },
    /// A family vc did not negotiate, kept opaque (everything after AFI and SAFI).
    Other { afi: u16, safi: u8, value: Vec<u8> },
}

/// `MP_UNREACH_NLRI` (RFC 4760 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MpUnreach {
    Ipv4Unicast { withdrawn: Vec<Ipv4Net> },
    Other { afi: u16, safi: u8, value: Vec<u8> },
}

/// An attribute vc does not interpret, kept as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAttr {
    pub flags: u8,
    pub code: u8,
    pub value: Vec<u8>,
}

/// The path attributes of an UPDATE. Absent attributes are `None` / empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    pub origin: Option<Origin>,
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    /// Empty: no COMMUNITIES attribute (an empty one is malformed, RFC 7606 §7.8).
    pub communities: Vec<u32>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub as4_path: Option<AsPath>,
    pub as4_aggregator: Option<Aggregator>,
    /// Unrecognized optional attributes (transitive or not), kept as received.
    pub unknown: Vec<RawAttr>,
}

/// Result of decoding one attribute's value.
enum Decoded {
    Stored,
    Fault(AttrAction, &'static str),
}

impl Attrs {
    /// Decodes a path attribute list. Errors that RFC 7606 confines come back as faults
    /// (the faulty attribute is not stored); the rest reset the session.
    pub(crate) fn decode(buf: &[u8], cxt: Cxt) -> Result<(Self, Vec<AttrFault>), DecodeError> {
        let mut attrs = Attrs::default();
        let mut faults = Vec::new();
        let mut seen = [false; 256];
        let mut r = Reader::new(buf);
        while !r.is_empty() {
            let start = buf.len() - r.remaining();
            // RFC 7606 §4: once an attribute cannot be delimited, neither can a later
            // MP_REACH/MP_UNREACH, so the NLRI cannot all be found: session reset.
            let flags = r.u8().ok_or(DecodeError::MalformedAttributeList(
                "attribute header cut short",
            ))?;
            let code = r.u8().ok_or(DecodeError::MalformedAttributeList(
                "attribute header cut short",
            ))?;
            let len = if flags & flag::EXTENDED != 0 {
                r.u16().map(usize::from)
            } else {
                r.u8().map(usize::from)
            }
            .ok_or(DecodeError::MalformedAttributeList(
                "attribute length cut short",
            ))?;
            let value = r.take(len).ok_or(DecodeError::MalformedAttributeList(
                "attribute overruns the attribute list",
            ))?;
            let whole = &buf[start..buf.len() - r.remaining()];

            if seen[usize::from(code)] {
                // RFC 7606 §3 g: repeated MP attributes reset, any other repeat is dropped.
                if matches!(code, attr_type::MP_REACH_NLRI | attr_type::MP_UNREACH_NLRI) {
                    return Err(DecodeError::MalformedAttributeList(
                        "MP_REACH_NLRI or MP_UNREACH_NLRI repeated",
                    ));
                }
                faults.push(AttrFault {
                    code,
                    action: AttrAction::Discard,
                    why: "repeated attribute",
                });
                continue;
            }
            seen[usize::from(code)] = true;

            if let Decoded::Fault(action, why) = attrs.decode_one(flags, code, value, whole, cxt)? {
                faults.push(AttrFault { code, action, why });
            }
        }
        // Kept in type order, the order they are encoded in.
        attrs.unknown.sort_by_key(|a| a.code);
        Ok((attrs, faults))
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one arm per attribute type, each with its RFC 7606 rule"
    )]
    fn decode_one(
        &mut self,
        flags: u8,
        code: u8,
        value: &[u8],
        whole: &[u8],
        cxt: Cxt,
    ) -> Result<Decoded, DecodeError> {
        let Some((expected, on_error)) = expected_flags(code) else {
            if flags & flag::OPTIONAL == 0 {
                return Err(DecodeError::UnrecognizedWellKnownAttribute {
                    code,
                    attribute: whole.to_vec(),
                });
            }
            self.unknown.push(RawAttr {
                flags: flags & !flag::EXTENDED,
                code,
                value: value.to_vec(),
            });
            return Ok(Decoded::Stored);
        };
        // RFC 7606 §3 c: only the Optional and Transitive bits are checked.
        if flags & (flag::OPTIONAL | flag::TRANSITIVE) != expected {
            if matches!(code, attr_type::MP_REACH_NLRI | attr_type::MP_UNREACH_NLRI) {
                return Err(DecodeError::OptionalAttributeError {
                    what: attr_name(code),
                    why: "wrong attribute flags",
                });
            }
            return Ok(Decoded::Fault(on_error, "wrong attribute flags"));
        }
        let as_len = if cxt.four_octet_as { 4 } else { 2 };
        let fault = |why| Ok(Decoded::Fault(on_error, why));
        let u32_value =
            || -> Option<u32> { <[u8; 4]>::try_from(value).ok().map(u32::from_be_bytes) };
        match code {
            attr_type::ORIGIN => {
                self.origin = Some(match value {
                    [0] => Origin::Igp,
                    [1] => Origin::Egp,
                    [2] => Origin::Incomplete,
                    [_] => return fault("undefined ORIGIN value"),
                    _ => return fault("length is not 1"),
                });
            }
            attr_type::AS_PATH => match AsPath::decode(value, as_len) {
                Ok(path) => self.as_path = Some(path),
                Err(why) => return fault(why),
            },
            attr_type::NEXT_HOP => match u32_value() {
                Some(addr) => self.next_hop = Some(Ipv4Addr::from(addr)),
                None => return fault("length is not 4"),
            },
            attr_type::MED => match u32_value() {
                Some(med) => self.med = Some(med),
                None => return fault("length is not 4"),
            },
            attr_type::LOCAL_PREF => match u32_value() {
                Some(pref) => self.local_pref = Some(pref),
                None => return fault("length is not 4"),
            },
            attr_type::ATOMIC_AGGREGATE => {
                if !value.is_empty() {
                    return fault("length is not 0");
                }
                self.atomic_aggregate = true;
            }
            attr_type::AGGREGATOR | attr_type::AS4_AGGREGATOR => {
                let width = if code == attr_type::AGGREGATOR {
                    as_len
                } else {
                    4
                };
                if value.len() != width + 4 {
                    return fault("length does not match the AS width");
                }
                let asn = if width == 2 {
                    u32::from(u16::from_be_bytes([value[0], value[1]]))
                } else {
                    u32::from_be_bytes([value[0], value[1], value[2], value[3]])
                };
                let addr = <[u8; 4]>::try_from(&value[width..]).map(Ipv4Addr::from);
                let aggregator = Some(Aggregator {
                    asn,
                    addr: addr.expect("length checked"),
                });
                if code == attr_type::AGGREGATOR {
                    self.aggregator = aggregator;
                } else {
                    self.as4_aggregator = aggregator;
                }
            }
            attr_type::COMMUNITIES => {
                if value.is_empty() || !value.len().is_multiple_of(4) {
                    return fault("length is not a non-zero multiple of 4");
                }
                self.communities = value
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
            }
            attr_type::AS4_PATH => match AsPath::decode(value, 4) {
                // RFC 7606 §7.3 / RFC 6793: confederation segments in AS4_PATH: discard.
                Ok(path) if path.has_confed_segments() => {
                    return fault("confederation segment");
                }
                Ok(path) => self.as4_path = Some(path),
                Err(why) => return fault(why),
            },
            attr_type::MP_REACH_NLRI => self.mp_reach = Some(decode_mp_reach(value)?),
            attr_type::MP_UNREACH_NLRI => self.mp_unreach = Some(decode_mp_unreach(value)?),
            _ => unreachable!("expected_flags knows exactly these codes"),
        }
        Ok(Decoded::Stored)
    }

    /// Encodes every attribute, in type-code order (RFC 4271 §5 recommends ascending order).
    pub(crate) fn encode(&self, buf: &mut Vec<u8>, cxt: Cxt) {
        let as_len = if cxt.four_octet_as { 4 } else { 2 };
        let mut out: Vec<(u8, u8, Vec<u8>)> = Vec::new();
        let well_known = flag::TRANSITIVE;
        let opt_trans = flag::OPTIONAL | flag::TRANSITIVE;
        if let Some(origin) = self.origin {
            out.push((well_known, attr_type::ORIGIN, vec![origin as u8]));
        }
        if let Some(path) = &self.as_path {
            let mut v = Vec::new();
            path.encode(as_len, &mut v);
            out.push((well_known, attr_type::AS_PATH, v));
        }
        if let Some(nh) = self.next_hop {
            out.push((well_known, attr_type::NEXT_HOP, nh.octets().to_vec()));
        }
        if let Some(med) = self.med {
            out.push((flag::OPTIONAL, attr_type::MED, med.to_be_bytes().to_vec()));
        }
        if let Some(pref) = self.local_pref {
            out.push((
                well_known,
                attr_type::LOCAL_PREF,
                pref.to_be_bytes().to_vec(),
            ));
        }
        if self.atomic_aggregate {
            out.push((well_known, attr_type::ATOMIC_AGGREGATE, Vec::new()));
        }
        if let Some(agg) = self.aggregator {
            let mut v = Vec::new();
            if as_len == 2 {
                let asn = u16::try_from(agg.asn).unwrap_or(AS_TRANS);
                v.extend_from_slice(&asn.to_be_bytes());
            } else {
                v.extend_from_slice(&agg.asn.to_be_bytes());
            }
            v.extend_from_slice(&agg.addr.octets());
            out.push((opt_trans, attr_type::AGGREGATOR, v));
        }
        if !self.communities.is_empty() {
            let v = self
                .communities
                .iter()
                .flat_map(|c| c.to_be_bytes())
                .collect();
            out.push((opt_trans, attr_type::COMMUNITIES, v));
        }
        if let Some(reach) = &self.mp_reach {
            out.push((
                flag::OPTIONAL,
                attr_type::MP_REACH_NLRI,
                encode_mp_reach(reach),
            ));
        }
        if let Some(unreach) = &self.mp_unreach {
            let v = encode_mp_unreach(unreach);
            out.push((flag::OPTIONAL, attr_type::MP_UNREACH_NLRI, v));
        }
        if let Some(path) = &self.as4_path {
            let mut v = Vec::new();
            path.encode(4, &mut v);
            out.push((opt_trans, attr_type::AS4_PATH, v));
        }
        if let Some(agg) = self.as4_aggregator {
            let mut v = agg.asn.to_be_bytes().to_vec();
            v.extend_from_slice(&agg.addr.octets());
            out.push((opt_trans, attr_type::AS4_AGGREGATOR, v));
        }
        for raw in &self.unknown {
            out.push((raw.flags, raw.code, raw.value.clone()));
        }
        out.sort_by_key(|(_, code, _)| *code);
        for (flags, code, value) in out {
            // Values over 255 octets take the 2-octet length (E bit); RFC 4271 allows
            // either, and BIRD also uses it only when needed.
            if let Ok(len) = u8::try_from(value.len()) {
                buf.extend_from_slice(&[flags & !flag::EXTENDED, code, len]);
            } else {
                let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
                buf.extend_from_slice(&[flags | flag::EXTENDED, code]);
                buf.extend_from_slice(&len.to_be_bytes());
            }
            buf.extend_from_slice(&value[..value.len().min(usize::from(u16::MAX))]);
        }
    }

    /// The AS path as the originator sent it: `AS_PATH` merged with `AS4_PATH` when the peer is a
    /// 2-octet speaker (RFC 6793 §4.2.3); a 4-octet speaker's `AS4_PATH` is ignored.
    #[must_use]
    pub fn effective_as_path(&self, cxt: Cxt) -> Option<AsPath> {
        let path = self.as_path.as_ref()?;
        if cxt.four_octet_as {
            return Some(path.clone());
        }
        let Some(as4) = &self.as4_path else {
            return Some(path.clone());
        };
        // An AGGREGATOR with a real (non-AS_TRANS) AS means a 2-octet speaker aggregated
        // after the path left 4-octet land: AS4_PATH is stale.
        if self
            .aggregator
            .is_some_and(|a| a.asn != u32::from(AS_TRANS))
        {
            return Some(path.clone());
        }
        let (n, n4) = (path.merge_len(), as4.merge_len());
        if n < n4 {
            return Some(path.clone());
        }
        let mut merged = path.leading(n - n4);
        merged.segments.extend(as4.segments.iter().cloned());
        Some(merged)
    }
}

/// Expected Optional+Transitive flags of each attribute vc knows, and what an error in it
/// costs (RFC 7606 §7). `LOCAL_PREF` from an external peer is ignored anyway (RFC 4271
/// §5.1.5), so its errors only discard it.
fn expected_flags(code: u8) -> Option<(u8, AttrAction)> {
    use AttrAction::{Discard, TreatAsWithdraw};
    let well_known = flag::TRANSITIVE;
    let opt_trans = flag::OPTIONAL | flag::TRANSITIVE;
    Some(match code {
        attr_type::ORIGIN | attr_type::AS_PATH | attr_type::NEXT_HOP => {
            (well_known, TreatAsWithdraw)
        }
        attr_type::LOCAL_PREF | attr_type::ATOMIC_AGGREGATE => (well_known, Discard),
        // MP errors reset the session (decode_mp_*): their action is never used.
        attr_type::MED | attr_type::MP_REACH_NLRI | attr_type::MP_UNREACH_NLRI => {
            (flag::OPTIONAL, TreatAsWithdraw)
        }
        attr_type::COMMUNITIES => (opt_trans, TreatAsWithdraw),
        attr_type::AGGREGATOR | attr_type::AS4_PATH | attr_type::AS4_AGGREGATOR => {
            (opt_trans, Discard)
        }
        _ => return None,
    })
}

fn mp_error(what: &'static str, why: &'static str) -> DecodeError {
    DecodeError::OptionalAttributeError { what, why }
}

/// RFC 7606 §7.11: an `MP_REACH_NLRI` that cannot be parsed resets the session (vc runs one
/// family, so "AFI/SAFI disable" would be the same thing).
fn decode_mp_reach(value: &[u8]) -> Result<MpReach, DecodeError> {
    let err = |why| mp_error("MP_REACH_NLRI", why);
    let mut r = Reader::new(value);
    let afi = r.u16().ok_or(err("cut short"))?;
    let safi = r.u8().ok_or(err("cut short"))?;
    if (afi, safi) != (AFI_IPV4, SAFI_UNICAST) {
        return Ok(MpReach::Other {
            afi,
            safi,
            value: r.rest().to_vec(),
        });
    }
    let nh_len = r.u8().ok_or(err("cut short"))?;
    // IPv6 next hops for IPv4 (RFC 8950) need a capability vc does not advertise.
    if nh_len != 4 {
        return Err(err("IPv4 next hop length is not 4"));
    }
    let nh = r.u32().ok_or(err("next hop cut short"))?;
    let _reserved = r.u8().ok_or(err("cut short"))?;
    let nlri = decode_prefixes(r.rest()).map_err(err)?;
    Ok(MpReach::Ipv4Unicast {
        next_hop: Ipv4Addr::from(nh),
        nlri,
    })
}

fn decode_mp_unreach(value: &[u8]) -> Result<MpUnreach, DecodeError> {
    let err = |why| mp_error("MP_UNREACH_NLRI", why);
    let mut r = Reader::new(value);
    let afi = r.u16().ok_or(err("cut short"))?;
    let safi = r.u8().ok_or(err("cut short"))?;
    if (afi, safi) != (AFI_IPV4, SAFI_UNICAST) {
        return Ok(MpUnreach::Other {
            afi,
            safi,
            value: r.rest().to_vec(),
        });
    }
    let withdrawn = decode_prefixes(r.rest()).map_err(err)?;
    Ok(MpUnreach::Ipv4Unicast { withdrawn })
}

fn encode_mp_reach(reach: &MpReach) -> Vec<u8> {
    let mut v = Vec::new();
    match reach {
        MpReach::Ipv4Unicast { next_hop, nlri } => {
            v.extend_from_slice(&AFI_IPV4.to_be_bytes());
            v.extend_from_slice(&[SAFI_UNICAST, 4]);
            v.extend_from_slice(&next_hop.octets());
            v.push(0);
            encode_prefixes(nlri, &mut v);
        }
        MpReach::Other { afi, safi, value } => {
            v.extend_from_slice(&afi.to_be_bytes());
            v.push(*safi);
            v.extend_from_slice(value);
        }
    }
    v
}

fn encode_mp_unreach(unreach: &MpUnreach) -> Vec<u8> {
    let mut v = Vec::new();
    match unreach {
        MpUnreach::Ipv4Unicast { withdrawn } => {
            v.extend_from_slice(&AFI_IPV4.to_be_bytes());
            v.push(SAFI_UNICAST);
            encode_prefixes(withdrawn, &mut v);
        }
        MpUnreach::Other { afi, safi, value } => {
            v.extend_from_slice(&afi.to_be_bytes());
            v.push(*safi);
            v.extend_from_slice(value);
        }
    }
    v
}

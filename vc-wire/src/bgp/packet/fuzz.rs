//! What the fuzz targets (`fuzz/fuzz_targets/*`) check, one function per decoder, shared with
//! the stable test that replays the kept corpus (`tests/fuzz_corpus.rs`). Each takes any
//! bytes and panics only if an invariant breaks:
//!
//! - decoding never panics (errors are values);
//! - what decodes re-encodes, and the encoding decodes to the same message (RFC 7606 faults
//!   aside: a discarded attribute is not re-encoded);
//! - every error names a NOTIFICATION (or none, for a malformed NOTIFICATION).
//!
//! The first input byte picks the decoding context where one matters (bit 0: 4-octet AS).
use std::net::Ipv4Addr;

use super::{Attrs, Cxt, Header, Message, Notification, Open, RouteRefresh, Update};
use crate::bgp::rib::{AdjRibIn, ImportPolicy};

/// A check over arbitrary bytes.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name (as in `fuzz/Cargo.toml`).
pub const TARGETS: [(&str, Check); 6] = [
    ("bgp_header", header),
    ("bgp_message", message),
    ("bgp_open", open),
    ("bgp_update", update),
    ("bgp_notification", notification),
    ("bgp_route_refresh", route_refresh),
];

fn split_cxt(data: &[u8]) -> (Cxt, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (
            Cxt {
                four_octet_as: first & 1 == 1,
            },
            rest,
        ),
        None => (Cxt::default(), data),
    }
}

/// The UPDATE without what is never encoded: its faults, and an attribute list that lost
/// every attribute to them.
fn canonical_update(u: &Update) -> Update {
    Update {
        faults: Vec::new(),
        attrs: u.attrs.clone().filter(|a| *a != Attrs::default()),
        ..u.clone()
    }
}

fn canonical(m: &Message) -> Message {
    match m {
        Message::Update(u) => Message::Update(canonical_update(u)),
        other => other.clone(),
    }
}

pub fn header(data: &[u8]) {
    if let Some(h) = data.get(..super::HEADER_LEN) {
        let h: &[u8; super::HEADER_LEN] = h.try_into().expect("19 octets");
        match Header::decode(h) {
            Ok(header) => assert!((super::HEADER_LEN..=super::MAX_LEN).contains(&header.len)),
            Err(e) => assert!(e.notification().is_some(), "{e}"),
        }
    }
}

/// Whole messages, header included.
pub fn message(data: &[u8]) {
    let (cxt, bytes) = split_cxt(data);
    match Message::decode(bytes, cxt) {
        Ok(m) => {
            let encoded = m.encode(cxt);
            let again = Message::decode(&encoded, cxt)
                .unwrap_or_else(|e| panic!("re-encoding of {m:?} does not decode: {e}"));
            assert_eq!(canonical(&again), canonical(&m), "round trip");
        }
        Err(e) => {
            let _ = e.notification();
        }
    }
}

pub fn open(data: &[u8]) {
    if let Ok(o) = Open::decode(data) {
        let mut buf = Vec::new();
        o.encode(&mut buf);
        assert_eq!(Open::decode(&buf).as_ref(), Ok(&o), "round trip");
        let _ = (o.asn(), o.families());
    }
}

pub fn update(data: &[u8]) {
    let (cxt, body) = split_cxt(data);
    let Ok(u) = Update::decode(body, cxt) else {
        return;
    };
    let mut buf = Vec::new();
    u.encode(&mut buf, cxt);
    let again = Update::decode(&buf, cxt).expect("re-encoding decodes");
    assert_eq!(canonical_update(&again), canonical_update(&u), "round trip");
    // The policy and path logic take whatever decoded.
    let policy = ImportPolicy {
        accepted: ["198.18.10.0/24".parse().expect("net")].into(),
        local_asn: 65001,
        peer_asn: 65010,
        local_addr: Ipv4Addr::new(100, 64, 0, 1),
    };
    let mut rib = AdjRibIn::default();
    let _ = rib.apply(&u, cxt, &policy);
    assert!(rib.accepted().len() <= rib.received());
    let _ = (u.is_end_of_rib(), u.treat_as_withdraw());
    if let Some(a) = &u.attrs {
        let _ = a.effective_as_path(cxt);
    }
}

pub fn notification(data: &[u8]) {
    if let Ok(n) = Notification::decode(data) {
        let _ = (n.to_string(), n.shutdown_message());
        let mut buf = Vec::new();
        n.encode(&mut buf);
        assert_eq!(buf, data, "a NOTIFICATION is its bytes");
    }
}

pub fn route_refresh(data: &[u8]) {
    if let Ok(r) = RouteRefresh::decode(data) {
        let mut buf = Vec::new();
        r.encode(&mut buf);
        assert_eq!(buf, data);
    }
}

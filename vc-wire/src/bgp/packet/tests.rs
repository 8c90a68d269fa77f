//! Byte/message pairs both ways (BIRD's real messages among them) and one malformed message
//! per error class, each with the NOTIFICATION or RFC 7606 action it must produce.
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::*;

const AS4: Cxt = Cxt {
    four_octet_as: true,
};
const AS2: Cxt = Cxt {
    four_octet_as: false,
};

pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(char::is_ascii_hexdigit).collect();
    assert!(s.len().is_multiple_of(2), "odd hex: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// One of BIRD's captured messages (tests/data/bird/NAME.hex).
pub(crate) fn bird(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/bird/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .concat();
    hex(&body)
}

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("prefix")
}

/// A message with a header around `body`.
fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    let len = u16::try_from(19 + body.len()).expect("short");
    m.extend_from_slice(&len.to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

/// An UPDATE body with no withdrawals, the given attribute bytes and NLRI bytes.
fn update_body(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0];
    b.extend_from_slice(&u16::try_from(attrs.len()).expect("short").to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    b
}

/// ORIGIN IGP, `AS_PATH` 65010 (4-octet), `NEXT_HOP` 100.64.0.2.
const GOOD_ATTRS: &str = "400101 00 400206 0201 0000fdf2 400304 64400002";
/// 198.18.10.0/25.
const ONE_NLRI: &str = "19 c6120a00";

fn decode_update(attrs: &str, nlri: &str) -> Result<Update, DecodeError> {
    let m = msg(2, &update_body(&hex(attrs), &hex(nlri)));
    match Message::decode(&m, AS4)? {
        Message::Update(u) => Ok(u),
        other => panic!("not an UPDATE: {other:?}"),
    }
}

fn notification_of(e: &DecodeError) -> (u8, u8) {
    let n = e.notification().expect("a NOTIFICATION");
    (n.code, n.subcode)
}

fn assert_roundtrip(bytes: &[u8], cxt: Cxt, expected: &Message) {
    let decoded = Message::decode(bytes, cxt).unwrap_or_else(|e| panic!("decode: {e}"));
    assert_eq!(&decoded, expected, "bytes → message");
    assert_eq!(expected.encode(cxt), bytes, "message → bytes");
}

fn bird_open_as4() -> Open {
    Open {
        my_as: 65010,
        hold_time: 240,
        identifier: Ipv4Addr::new(100, 64, 0, 2),
        capabilities: vec![
            Capability::Multiprotocol {
                afi: AFI_IPV4,
                safi: SAFI_UNICAST,
            },
            Capability::RouteRefresh,
            Capability::GracefulRestart {
                restarted: false,
                notification: false,
                restart_time: 120,
                families: vec![],
            },
            Capability::FourOctetAs(65010),
            Capability::Unknown {
                code: 70,
                value: vec![],
            },
            Capability::Unknown {
                code: 71,
                value: vec![],
            },
        ],
    }
}

#[test]
fn bird_open_both_ways() {
    let open = bird_open_as4();
    assert_roundtrip(&bird("open-as4"), AS4, &Message::Open(open.clone()));
    assert_eq!(open.asn(), 65010);
    assert_eq!(open.families(), vec![(AFI_IPV4, SAFI_UNICAST)]);
}

#[test]
fn bird_open_without_as4_both_ways() {
    let mut open = bird_open_as4();
    open.my_as = 65001;
    open.identifier = Ipv4Addr::new(100, 64, 0, 1);
    open.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    assert_roundtrip(&bird("open-no-as4"), AS2, &Message::Open(open.clone()));
    assert_eq!(open.asn(), 65001);
    assert_eq!(open.four_octet_as(), None);
}

#[test]
fn bird_open_with_as_trans_names_the_real_as() {
    let Message::Open(open) = Message::decode(&bird("open-asn4200000010"), AS4).expect("decode")
    else {
        panic!("not an OPEN");
    };
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(open.asn(), 4_200_000_010);
    assert_eq!(Message::Open(open).encode(AS4), bird("open-asn4200000010"));
}

fn bird_attrs(path: AsPath) -> Attrs {
    Attrs {
        origin: Some(Origin::Igp),
        as_path: Some(path),
        next_hop: Some(Ipv4Addr::new(100, 64, 0, 2)),
        ..Attrs::default()
    }
}

#[test]
fn bird_update_both_ways() {
    let update = Update {
        withdrawn: vec![],
        attrs: Some(bird_attrs(AsPath::sequence(&[65010]))),
        nlri: vec![net("198.18.10.0/25"), net("198.18.10.0/24")],
        faults: vec![],
    };
    assert_roundtrip(&bird("update-as4"), AS4, &Message::Update(update));
}

#[test]
fn bird_rich_update_both_ways() {
    let mut attrs = bird_attrs(AsPath::sequence(&[65010, 4_200_000_011]));
    attrs.med = Some(50);
    attrs.communities = vec![(65010 << 16) | 0x012c];
    let update = Update {
        withdrawn: vec![],
        attrs: Some(attrs),
        nlri: vec![net("198.18.10.128/25"), net("198.18.10.0/24")],
        faults: vec![],
    };
    assert_roundtrip(&bird("update-as4-rich"), AS4, &Message::Update(update));
}

#[test]
fn bird_update_to_a_2_octet_peer_merges_as4_path() {
    let mut attrs = bird_attrs(AsPath::sequence(&[65010, u32::from(AS_TRANS)]));
    attrs.med = Some(50);
    attrs.communities = vec![(65010 << 16) | 0x012c];
    attrs.as4_path = Some(AsPath::sequence(&[65010, 4_200_000_011]));
    let update = Update {
        withdrawn: vec![],
        attrs: Some(attrs.clone()),
        nlri: vec![net("198.18.10.128/25"), net("198.18.10.0/24")],
        faults: vec![],
    };
    assert_roundtrip(&bird("update-as2-as4path"), AS2, &Message::Update(update));
    assert_eq!(
        attrs.effective_as_path(AS2),
        Some(AsPath::sequence(&[65010, 4_200_000_011])),
        "RFC 6793 merge"
    );
    // From a 4-octet speaker AS4_PATH means nothing.
    assert_eq!(
        attrs.effective_as_path(AS4),
        Some(AsPath::sequence(&[65010, u32::from(AS_TRANS)]))
    );
}

#[test]
fn as4_path_longer_than_as_path_is_ignored() {
    let attrs = Attrs {
        as_path: Some(AsPath::sequence(&[65010])),
        as4_path: Some(AsPath::sequence(&[65010, 4_200_000_011])),
        ..Attrs::default()
    };
    assert_eq!(
        attrs.effective_as_path(AS2),
        Some(AsPath::sequence(&[65010]))
    );
}

#[test]
fn bird_withdrawal_and_end_of_rib_both_ways() {
    let withdraw = Update {
        withdrawn: vec![net("198.18.10.0/25")],
        ..Update::default()
    };
    assert_roundtrip(
        &bird("update-withdraw"),
        AS4,
        &Message::Update(withdraw.clone()),
    );
    assert!(!withdraw.is_end_of_rib());
    let eor = Update::default();
    assert_roundtrip(
        &bird("update-end-of-rib"),
        AS4,
        &Message::Update(eor.clone()),
    );
    assert!(eor.is_end_of_rib());
}

#[test]
fn bird_keepalive_and_notification_both_ways() {
    assert_roundtrip(&bird("keepalive"), AS4, &Message::Keepalive);
    let n = Notification::with_data(2, 2, 4_200_000_010u32.to_be_bytes().to_vec());
    assert_eq!(n.name(), "2/2 OPEN Message Error / Bad Peer AS");
    assert_roundtrip(
        &bird("notification-bad-peer-as"),
        AS4,
        &Message::Notification(n),
    );
}

#[test]
fn our_open_encodes_as_written_by_hand() {
    let open = Open {
        my_as: 65001,
        hold_time: 9,
        identifier: Ipv4Addr::new(100, 64, 0, 1),
        capabilities: vec![
            Capability::Multiprotocol {
                afi: AFI_IPV4,
                safi: SAFI_UNICAST,
            },
            Capability::RouteRefresh,
            Capability::GracefulRestart {
                restarted: false,
                notification: false,
                restart_time: 120,
                families: vec![],
            },
            Capability::FourOctetAs(65001),
        ],
    };
    let bytes = hex("ffffffffffffffffffffffffffffffff 0031 01
         04 fde9 0009 64400001 14
         02 12  01 04 0001 00 01  02 00  40 02 0078  41 04 0000fde9");
    assert_roundtrip(&bytes, AS4, &Message::Open(open));
}

#[test]
fn graceful_restart_with_families_both_ways() {
    let cap = Capability::GracefulRestart {
        restarted: true,
        notification: true,
        restart_time: 0x0abc,
        families: vec![GrFamily {
            afi: 1,
            safi: 1,
            forwarding_preserved: true,
        }],
    };
    let open = Open {
        my_as: 1,
        hold_time: 0,
        identifier: Ipv4Addr::new(1, 2, 3, 4),
        capabilities: vec![cap],
    };
    let bytes = hex(
        "ffffffffffffffffffffffffffffffff 0027 01 04 0001 0000 01020304 0a
         02 08 40 06 cabc 0001 01 80",
    );
    assert_roundtrip(&bytes, AS4, &Message::Open(open));
}

#[test]
fn extended_optional_parameters_decode() {
    // RFC 9072: 255, type 255, 2-octet length, then parameters with 2-octet lengths.
    let bytes = hex(
        "ffffffffffffffffffffffffffffffff 0029 01 04 0001 0000 01020304 ff
         ff 0009 02 0006 41 04 0000fde9",
    );
    let Message::Open(open) = Message::decode(&bytes, AS4).expect("decode") else {
        panic!("not an OPEN");
    };
    assert_eq!(open.capabilities, vec![Capability::FourOctetAs(65001)]);
}

#[test]
fn route_refresh_and_shutdown_communication_both_ways() {
    let rr = RouteRefresh {
        afi: 1,
        subtype: 0,
        safi: 1,
    };
    assert_roundtrip(
        &hex("ffffffffffffffffffffffffffffffff 0017 05 0001 00 01"),
        AS4,
        &Message::RouteRefresh(rr),
    );
    let n = Notification::with_data(6, 2, hex("05 6d61696e74"));
    assert_eq!(n.shutdown_message().as_deref(), Some("maint"));
    assert_eq!(
        n.to_string(),
        "6/2 Cease / Administrative Shutdown \"maint\""
    );
    assert_roundtrip(
        &hex("ffffffffffffffffffffffffffffffff 001b 03 06 02 05 6d61696e74"),
        AS4,
        &Message::Notification(n),
    );
}

#[test]
fn mp_reach_and_unreach_for_ipv4_both_ways() {
    let attrs = Attrs {
        origin: Some(Origin::Incomplete),
        as_path: Some(AsPath::sequence(&[65010])),
        mp_reach: Some(MpReach::Ipv4Unicast {
            next_hop: Ipv4Addr::new(100, 64, 0, 2),
            nlri: vec![net("198.18.10.0/24")],
        }),
        mp_unreach: Some(MpUnreach::Ipv4Unicast {
            withdrawn: vec![net("198.18.10.0/25")],
        }),
        ..Attrs::default()
    };
    let update = Update {
        attrs: Some(attrs),
        ..Update::default()
    };
    let bytes = hex("ffffffffffffffffffffffffffffffff 003f 02 0000 0028
         400101 02  400206 0201 0000fdf2
         800e0d 0001 01 04 64400002 00 18 c6120a
         800f08 0001 01 19 c6120a00");
    assert_roundtrip(&bytes, AS4, &Message::Update(update.clone()));
    assert_eq!(update.announced(), vec![net("198.18.10.0/24")]);
    assert_eq!(update.withdrawn_all(), vec![net("198.18.10.0/25")]);
    assert!(update.faults.is_empty(), "no NEXT_HOP needed for MP NLRI");
}

#[test]
fn unknown_optional_attributes_are_tolerated_and_kept() {
    // Optional transitive type 99 (with the partial bit) and optional non-transitive 98.
    let u =
        decode_update(&format!("{GOOD_ATTRS} e06302 abcd 806201 ff"), ONE_NLRI).expect("tolerated");
    assert!(u.faults.is_empty());
    let unknown = &u.attrs.as_ref().expect("attrs").unknown;
    assert_eq!(unknown.len(), 2);
    assert_eq!((unknown[0].code, unknown[0].flags), (98, 0x80));
    assert_eq!(
        (unknown[1].code, unknown[1].flags),
        (99, 0xe0),
        "partial bit kept"
    );
    assert_eq!(unknown[1].value, vec![0xab, 0xcd]);
    assert_eq!(u.announced(), vec![net("198.18.10.0/25")]);
    // Re-encoded in type order, flags kept.
    let again = Message::Update(u.clone()).encode(AS4);
    assert_eq!(Message::decode(&again, AS4), Ok(Message::Update(u)));
}

#[test]
fn extended_length_attribute_decodes() {
    // ORIGIN with the E bit: 0x50, 2-octet length 0001.
    let u =
        decode_update("50010001 00 400206 0201 0000fdf2 400304 64400002", ONE_NLRI).expect("E bit");
    assert!(u.faults.is_empty());
    assert_eq!(u.attrs.expect("attrs").origin, Some(Origin::Igp));
}

#[test]
fn prefixes_are_made_canonical() {
    // /25 with a host bit set in the last octet: 198.18.10.1/25 → 198.18.10.0/25.
    let u = decode_update(GOOD_ATTRS, "19 c6120a01").expect("decode");
    assert_eq!(u.nlri, vec![net("198.18.10.0/25")]);
    // Zero-length prefix: the default route.
    let u = decode_update(GOOD_ATTRS, "00").expect("decode");
    assert_eq!(u.nlri, vec![net("0.0.0.0/0")]);
}

// ---- Malformed messages: one per error class. ----

#[test]
fn header_errors() {
    let mut bad_marker = msg(4, &[]);
    bad_marker[3] = 0;
    let cases: Vec<(&str, Vec<u8>, (u8, u8))> = vec![
        ("marker", bad_marker, (1, 1)),
        (
            "length 18",
            hex("ffffffffffffffffffffffffffffffff 0012 04"),
            (1, 2),
        ),
        (
            "length 4097",
            hex("ffffffffffffffffffffffffffffffff 1001 02"),
            (1, 2),
        ),
        ("type 9", msg(9, &[]), (1, 3)),
        ("long KEEPALIVE", msg(4, &[0]), (1, 2)),
        ("short OPEN", msg(1, &[4; 9]), (1, 2)),
        ("short NOTIFICATION", msg(3, &[6]), (1, 2)),
        ("long ROUTE-REFRESH", msg(5, &[0, 1, 0, 1, 0]), (1, 2)),
    ];
    for (what, bytes, expected) in cases {
        let header: [u8; HEADER_LEN] = bytes[..HEADER_LEN].try_into().expect("19");
        let err = Header::decode(&header).expect_err(what);
        assert_eq!(notification_of(&err), expected, "{what}: {err}");
        assert_eq!(Message::decode(&bytes, AS4), Err(err), "{what}");
    }
    let n = DecodeError::BadMessageLength(18).notification().expect("n");
    assert_eq!(n.data, vec![0, 18], "1/2 carries the bad length");
    let n = DecodeError::BadMessageType(9).notification().expect("n");
    assert_eq!(n.data, vec![9], "1/3 carries the bad type");
}

#[test]
fn open_errors() {
    let open = |body: &str| Message::decode(&msg(1, &hex(body)), AS4).expect_err(body);
    let v3 = open("03 fde9 0009 64400001 00");
    assert_eq!(notification_of(&v3), (2, 1));
    assert_eq!(
        v3.notification().expect("n").data,
        vec![0, 4],
        "largest version we speak"
    );
    // Optional parameter type 1 (authentication, deprecated): unsupported.
    assert_eq!(
        notification_of(&open("04 fde9 0009 64400001 03 01 01 00")),
        (2, 4)
    );
    // Opt Parm Len says 4, 3 follow.
    assert_eq!(
        notification_of(&open("04 fde9 0009 64400001 04 02 01 02")),
        (2, 0)
    );
    // The capability overruns its parameter.
    assert_eq!(
        notification_of(&open("04 fde9 0009 64400001 04 02 02 41 04")),
        (2, 0)
    );
    // A multiprotocol capability of 3 octets.
    assert_eq!(
        notification_of(&open("04 fde9 0009 64400001 07 02 05 01 03 000100")),
        (2, 0)
    );
    // A route refresh capability with a value.
    assert_eq!(
        notification_of(&open("04 fde9 0009 64400001 05 02 03 02 01 00")),
        (2, 0)
    );
}

#[test]
fn update_errors_that_reset_the_session() {
    let body = |b: &str| Message::decode(&msg(2, &hex(b)), AS4).expect_err(b);
    // Withdrawn Routes Length larger than the message.
    assert_eq!(notification_of(&body("0009 19c6120a00")), (3, 1));
    // Total Path Attribute Length larger than what is left.
    assert_eq!(notification_of(&body("0000 0010 400101 00")), (3, 1));
    // An attribute whose length overruns the attribute list.
    assert_eq!(notification_of(&body("0000 0004 400105 00")), (3, 1));
    // Attribute header cut short.
    assert_eq!(notification_of(&body("0000 0002 4001")), (3, 1));
    // Prefix length 33 in NLRI, and a withdrawn prefix overrunning its field.
    assert_eq!(
        notification_of(&decode_update(GOOD_ATTRS, "21 c6120a00 00").expect_err("/33")),
        (3, 10)
    );
    assert_eq!(notification_of(&body("0002 19c6 0000")), (3, 10));
    // An unrecognized well-known attribute (type 40, optional bit clear): 3/2 with the
    // attribute as data.
    let err = decode_update(&format!("{GOOD_ATTRS} 402801 07"), ONE_NLRI).expect_err("3/2");
    assert_eq!(notification_of(&err), (3, 2));
    assert_eq!(err.notification().expect("n").data, hex("402801 07"));
    // MP_REACH_NLRI twice.
    let mp = "800e0d 0001 01 04 64400002 00 18 c6120a";
    assert_eq!(
        notification_of(&decode_update(&format!("{GOOD_ATTRS} {mp} {mp}"), "").expect_err("2x")),
        (3, 1)
    );
    // MP_REACH_NLRI for IPv4 with a 16-octet next hop (RFC 8950, not negotiated).
    let mp16 = format!("800e19 0001 01 10 {} 00 18 c6120a", "00".repeat(16));
    assert_eq!(
        notification_of(&decode_update(&format!("{GOOD_ATTRS} {mp16}"), "").expect_err("nh16")),
        (3, 9)
    );
    // MP_UNREACH_NLRI with a bad prefix.
    assert_eq!(
        notification_of(&decode_update("800f05 0001 01 21 c6", "").expect_err("mp /33")),
        (3, 9)
    );
}

fn fault(u: &Update) -> (u8, AttrAction) {
    assert_eq!(u.faults.len(), 1, "one fault: {:?}", u.faults);
    (u.faults[0].code, u.faults[0].action)
}

#[test]
fn update_errors_treated_as_withdraw() {
    use AttrAction::TreatAsWithdraw as Taw;
    let cases = [
        (
            "ORIGIN value 3",
            "400101 03 400206 0201 0000fdf2 400304 64400002",
            1,
        ),
        (
            "ORIGIN length 2",
            "400102 0000 400206 0201 0000fdf2 400304 64400002",
            1,
        ),
        (
            "ORIGIN marked optional",
            "c00101 00 400206 0201 0000fdf2 400304 64400002",
            1,
        ),
        (
            "AS_PATH segment overrun",
            "400101 00 400206 0202 0000fdf2 400304 64400002",
            2,
        ),
        (
            "AS_PATH empty segment",
            "400101 00 400202 0200 400304 64400002",
            2,
        ),
        (
            "AS_PATH segment type 9",
            "400101 00 400206 0901 0000fdf2 400304 64400002",
            2,
        ),
        (
            "NEXT_HOP length 5",
            "400101 00 400206 0201 0000fdf2 400305 6440000200",
            3,
        ),
        ("MED length 3", &format!("{GOOD_ATTRS} 800403 000032"), 4),
        (
            "COMMUNITIES length 5",
            &format!("{GOOD_ATTRS} c00805 fdf2012c00"),
            8,
        ),
        ("COMMUNITIES empty", &format!("{GOOD_ATTRS} c00800"), 8),
        ("NEXT_HOP missing", "400101 00 400206 0201 0000fdf2", 3),
        ("AS_PATH missing", "400101 00 400304 64400002", 2),
    ];
    for (what, attrs, code) in cases {
        let u = decode_update(attrs, ONE_NLRI).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(fault(&u), (code, Taw), "{what}");
        assert!(u.treat_as_withdraw(), "{what}");
        assert_eq!(
            u.nlri,
            vec![net("198.18.10.0/25")],
            "{what}: NLRI still located"
        );
    }
    // NLRI without any attribute: all three mandatory ones missing.
    let u = decode_update("", ONE_NLRI).expect("decode");
    assert_eq!(u.faults.len(), 3);
    assert!(u.treat_as_withdraw());
}

#[test]
fn update_errors_that_discard_the_attribute() {
    use AttrAction::Discard;
    let cases = [
        ("LOCAL_PREF length 3", "400503 000064", 5),
        ("ATOMIC_AGGREGATE length 1", "400601 00", 6),
        ("AGGREGATOR length 5", "c00705 0000fdf264", 7),
        ("AS4_PATH overrun", "c01106 0202 0000fdf2", 17),
        ("AS4_PATH confederation segment", "c01106 0301 0000fdf2", 17),
        ("AS4_AGGREGATOR length 6", "c01206 fdf264400002", 18),
        ("ORIGIN repeated", "400101 02", 1),
    ];
    for (what, extra, code) in cases {
        let u = decode_update(&format!("{GOOD_ATTRS} {extra}"), ONE_NLRI)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(fault(&u), (code, Discard), "{what}");
        assert!(!u.treat_as_withdraw(), "{what}: routes stand");
        assert_eq!(
            u.attrs.as_ref().expect("attrs").origin,
            Some(Origin::Igp),
            "{what}: the first ORIGIN wins"
        );
    }
}

#[test]
fn malformed_notification_is_never_answered() {
    assert_eq!(
        Notification::decode(&[6]),
        Err(DecodeError::MalformedNotification)
    );
    assert_eq!(DecodeError::MalformedNotification.notification(), None);
}

#[test]
fn every_subcode_vc_sends_has_a_name() {
    for (code, subcode, name) in [
        (1, 1, "Message Header Error / Connection Not Synchronized"),
        (2, 2, "OPEN Message Error / Bad Peer AS"),
        (2, 6, "OPEN Message Error / Unacceptable Hold Time"),
        (3, 1, "UPDATE Message Error / Malformed Attribute List"),
        (4, 0, "Hold Timer Expired / Unspecific"),
        (
            5,
            2,
            "Finite State Machine Error / Receive Unexpected Message in OpenConfirm State",
        ),
        (6, 1, "Cease / Maximum Number of Prefixes Reached"),
        (6, 7, "Cease / Connection Collision Resolution"),
    ] {
        assert_eq!(
            Notification::new(code, subcode).name(),
            format!("{code}/{subcode} {name}")
        );
    }
}

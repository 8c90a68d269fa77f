//! The SA table folds charon's events as strongSwan 5.9.8 shapes them (vici `README.md`).
use std::time::{Duration, SystemTime};

use super::{Change, ChildMode, SaTable};
use crate::{
    config::TunnelId,
    ipsec::{failure::Failure, vici::Message},
};

fn ike(uid: u32, state: &str) -> Message {
    Message::new()
        .kv("uniqueid", uid.to_string())
        .kv("version", "2")
        .kv("state", state)
        .kv("local-host", "198.51.100.1")
        .kv("local-port", "4500")
        .kv("remote-host", "198.51.100.2")
        .kv("remote-port", "4500")
        .kv("initiator", "yes")
        .kv("initiator-spi", "1111111111111111")
        .kv("responder-spi", "2222222222222222")
        .kv("encr-alg", "AES_GCM_16")
        .kv("encr-keysize", "256")
        .kv("prf-alg", "PRF_HMAC_SHA2_384")
        .kv("dh-group", "ECP_384")
        .kv("established", "3")
        .kv("rekey-time", "100")
}

fn child(uid: u32, spi_in: &str, state: &str) -> Message {
    child_of(1001, uid, spi_in, state)
}

/// A child of tunnel A (reqid 1001) or B (1002).
fn child_of(reqid: u32, uid: u32, spi_in: &str, state: &str) -> Message {
    Message::new()
        .kv("name", "vc-a-gre")
        .kv("uniqueid", uid.to_string())
        .kv("reqid", reqid.to_string())
        .kv("state", state)
        .kv("mode", "TUNNEL")
        .kv("protocol", "ESP")
        .kv("spi-in", spi_in)
        .kv("spi-out", "cafe0001")
        .kv("encr-alg", "AES_GCM_16")
        .kv("encr-keysize", "256")
        .kv("bytes-in", "840")
        .kv("packets-in", "10")
        .kv("rekey-time", "50")
        .kv("life-time", "60")
        .kv("install-time", "1")
        .list("local-ts", ["203.0.113.10/32[gre]"])
        .list("remote-ts", ["192.0.2.11/32[gre]"])
}

fn with_child(ike: Message, name: &str, c: Message) -> Message {
    ike.section("child-sas", Message::new().section(name, c))
}

fn log(conn: &str, line: &str) -> Message {
    Message::new()
        .kv("group", "IKE")
        .kv("level", "1")
        .kv("ikesa-name", conn)
        .kv("ikesa-uniqueid", "1")
        .kv("msg", line)
}

const T0: Duration = Duration::from_secs(1_700_000_000);

#[test]
fn a_tunnel_comes_up_rekeys_and_goes_down() {
    let now = SystemTime::UNIX_EPOCH + T0;
    let mut t = SaTable::default();
    let up = Message::new()
        .kv("up", "yes")
        .section("vc-a", ike(1, "ESTABLISHED"));
    assert_eq!(
        t.apply("ike-updown", &up, now),
        [Change::IkeUp(TunnelId::A)]
    );
    let a = t.tunnel(TunnelId::A);
    assert!(a.ike_up() && !a.child_up());
    let i = a.ike.as_ref().expect("ike");
    assert_eq!(i.proposal, "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384");
    assert_eq!(i.local, "198.51.100.1[4500]");
    assert_eq!(i.established_at, Some(now - Duration::from_secs(3)));
    assert_eq!(i.rekey_at, Some(now + Duration::from_secs(100)));
    assert!(!t.tunnel(TunnelId::B).ike_up(), "B is untouched");

    // A failure before the child came up, then the child: the error is cleared.
    assert_eq!(
        t.apply(
            "log",
            &log("vc-a", "received TS_UNACCEPTABLE notify, no CHILD_SA built"),
            now
        ),
        [Change::Failed(TunnelId::A, Failure::TsUnacceptable)]
    );
    let cup = Message::new().kv("up", "yes").section(
        "vc-a",
        with_child(
            ike(1, "ESTABLISHED"),
            "vc-a-gre-1",
            child(1, "c0000001", "INSTALLED"),
        ),
    );
    assert_eq!(
        t.apply("child-updown", &cup, now),
        [Change::ChildUp(TunnelId::A)]
    );
    let a = t.tunnel(TunnelId::A);
    let c = a.child.as_ref().expect("child");
    assert_eq!(
        (c.reqid, c.spi_in.as_str(), &c.mode),
        (1001, "c0000001", &ChildMode::Tunnel)
    );
    assert_eq!(c.local_ts, ["203.0.113.10/32[gre]"]);
    assert_eq!(c.expires_at, Some(now + Duration::from_mins(1)));
    assert_eq!(a.last_error, None);

    // child rekey: new SPI
    let rekey = Message::new().section(
        "vc-a",
        ike(1, "ESTABLISHED").section(
            "child-sas",
            Message::new().section(
                "vc-a-gre",
                Message::new()
                    .section("old", child(1, "c0000001", "REKEYED"))
                    .section("new", child(2, "c0000002", "INSTALLED")),
            ),
        ),
    );
    assert_eq!(
        t.apply("child-rekey", &rekey, now),
        [Change::ChildRekeyed(TunnelId::A)]
    );
    assert_eq!(
        t.tunnel(TunnelId::A).child.as_ref().map(|c| c.uniqueid),
        Some(2)
    );
    // the old child's down event does not take the new one down
    let old_down = Message::new().section(
        "vc-a",
        with_child(
            ike(1, "ESTABLISHED"),
            "vc-a-gre-1",
            child(1, "c0000001", "DELETING"),
        ),
    );
    assert_eq!(t.apply("child-updown", &old_down, now), []);
    assert!(t.tunnel(TunnelId::A).child_up());

    // IKE rekey
    let irekey = Message::new().section(
        "vc-a",
        Message::new()
            .section("old", ike(1, "REKEYED"))
            .section("new", ike(3, "ESTABLISHED")),
    );
    assert_eq!(
        t.apply("ike-rekey", &irekey, now),
        [Change::IkeRekeyed(TunnelId::A)]
    );
    // the old IKE SA going down does not count
    let old = Message::new().section("vc-a", ike(1, "DELETING"));
    assert_eq!(t.apply("ike-updown", &old, now), []);
    // the current one does, and takes the child with it
    let down = Message::new().section("vc-a", ike(3, "DELETING"));
    assert_eq!(
        t.apply("ike-updown", &down, now),
        [Change::ChildDown(TunnelId::A), Change::IkeDown(TunnelId::A)]
    );
    let a = t.tunnel(TunnelId::A);
    assert!(!a.ike_up() && !a.child_up());
    assert_eq!(
        (a.ike_ups, a.child_ups, a.ike_rekeys, a.child_rekeys),
        (1, 1, 1, 1)
    );
}

#[test]
fn foreign_connections_are_ignored() {
    let now = SystemTime::UNIX_EPOCH + T0;
    let mut t = SaTable::default();
    let up = Message::new()
        .kv("up", "yes")
        .section("office-vpn", ike(1, "ESTABLISHED"));
    assert_eq!(t.apply("ike-updown", &up, now), []);
    assert_eq!(
        t.apply(
            "log",
            &log("office-vpn", "received AUTHENTICATION_FAILED notify error"),
            now
        ),
        []
    );
    assert_eq!(t, SaTable::default());
}

#[test]
fn unreachable_peer_names_the_port_once() {
    let now = SystemTime::UNIX_EPOCH + T0;
    let mut t = SaTable::default();
    for line in [
        "sending packet: from 198.51.100.1[500] to 198.51.100.2[500] (240 bytes)",
        "retransmit 1 of request with message ID 0",
    ] {
        assert_eq!(t.apply("log", &log("vc-b", line), now), []);
    }
    let want = Failure::PeerUnreachable { port: Some(500) };
    assert_eq!(
        t.apply("log", &log("vc-b", "giving up after 5 retransmits"), now),
        [Change::Failed(TunnelId::B, want.clone())]
    );
    assert_eq!(
        t.apply(
            "log",
            &log("vc-b", "peer not responding, trying again (2/0)"),
            now
        ),
        []
    );
    let e = t.tunnel(TunnelId::B).last_error.as_ref().expect("error");
    assert_eq!(
        (e.failure.clone(), e.line.as_str()),
        (want, "giving up after 5 retransmits")
    );
}

#[test]
fn snapshot_prefers_established_and_installed() {
    let now = SystemTime::UNIX_EPOCH + T0;
    let mut t = SaTable::default();
    let listed = [
        Message::new().section("vc-b", ike(7, "CONNECTING")),
        Message::new().section(
            "vc-b",
            ike(5, "ESTABLISHED").section(
                "child-sas",
                Message::new()
                    .section("vc-b-gre-3", child_of(1002, 3, "c0000003", "REKEYED"))
                    .section("vc-b-gre-4", child_of(1002, 4, "c0000004", "INSTALLED")),
            ),
        ),
        Message::new().section("unrelated", ike(9, "ESTABLISHED")),
    ];
    t.snapshot(&listed, now);
    let b = t.tunnel(TunnelId::B);
    assert_eq!(b.ike.as_ref().map(|i| i.uniqueid), Some(5));
    assert_eq!(
        b.child.as_ref().map(|c| c.spi_in.as_str()),
        Some("c0000004")
    );
    assert!(t.tunnel(TunnelId::A).ike.is_none());
    t.clear();
    assert!(!t.tunnel(TunnelId::B).ike_up());
}

/// A listing taken in the middle of a rekey: the old child `REKEYED`, the new one still
/// `INSTALLING`. The tunnel has an SA all along (the old one, until the new one is installed).
#[test]
fn a_child_being_rekeyed_is_an_sa() {
    let now = SystemTime::UNIX_EPOCH + T0;
    for states in [
        ["REKEYED", "INSTALLING"],
        ["REKEYING", "CREATED"],
        ["INSTALLED", "DELETING"],
    ] {
        let mut t = SaTable::default();
        let listed = [Message::new().section(
            "vc-a",
            ike(1, "REKEYING").section(
                "child-sas",
                Message::new()
                    .section("vc-a-gre-1", child(1, "c0000001", states[0]))
                    .section("vc-a-gre-2", child(2, "c0000002", states[1])),
            ),
        )];
        assert_eq!(t.snapshot(&listed, now), []);
        let a = t.tunnel(TunnelId::A);
        assert!(a.ike_up() && a.child_up(), "{states:?}");
    }
    // A trap policy (ROUTED) or a child of another reqid is no SA of this tunnel.
    let mut t = SaTable::default();
    let listed = [Message::new().section(
        "vc-a",
        ike(1, "ESTABLISHED").section(
            "child-sas",
            Message::new()
                .section("vc-a-gre-1", child(1, "c0000001", "ROUTED"))
                .section("vc-a-gre-2", child_of(7, 2, "c0000002", "INSTALLED")),
        ),
    )];
    t.snapshot(&listed, now);
    assert!(!t.tunnel(TunnelId::A).child_up());
}

/// `noblock` listings skip a busy IKE SA: one or two listings without the tunnel change
/// nothing; the third in a row drops it (and says so); a listing with it in between starts
/// the count again. A down event acts at once.
#[test]
fn only_three_listings_in_a_row_without_an_sa_take_it_down() {
    let now = SystemTime::UNIX_EPOCH + T0;
    let mut t = SaTable::default();
    let up = [Message::new().section(
        "vc-a",
        with_child(
            ike(1, "ESTABLISHED"),
            "vc-a-gre-1",
            child(1, "c0000001", "INSTALLED"),
        ),
    )];
    assert_eq!(t.snapshot(&up, now), []);
    for _ in 0..2 {
        assert_eq!(t.snapshot(&[], now), []);
        assert!(
            t.tunnel(TunnelId::A).child_up(),
            "one busy listing is no down"
        );
    }
    assert_eq!(
        t.snapshot(&up, now),
        [],
        "seen again: the count starts over"
    );
    assert_eq!(t.snapshot(&[], now), []);
    assert_eq!(t.snapshot(&[], now), []);
    assert!(t.tunnel(TunnelId::A).ike_up());
    assert_eq!(
        t.snapshot(&[], now),
        [Change::ChildDown(TunnelId::A), Change::IkeDown(TunnelId::A)]
    );
    let a = t.tunnel(TunnelId::A);
    assert!(!a.ike_up() && !a.child_up());
    // Negative control: the down event needs no listing at all.
    t.snapshot(&up, now);
    let down = Message::new().section(
        "vc-a",
        with_child(
            ike(1, "ESTABLISHED"),
            "vc-a-gre-1",
            child(1, "c0000001", "DELETING"),
        ),
    );
    assert_eq!(
        t.apply("child-updown", &down, now),
        [Change::ChildDown(TunnelId::A)]
    );
    assert!(!t.tunnel(TunnelId::A).child_up());
}

/// A real event stream: strongSwan 5.9.8's events during the VM rekey test (child lifetime
/// 20 s, IKE 30 s), recorded by `tests/ipsec_vm.rs`. Replayed, it must leave the table where
/// the controller saw it: both SAs up, two child rekeys, one IKE rekey, GRE-only selectors.
#[test]
fn replay_of_a_recorded_rekey_stream() {
    use crate::ipsec::vici::{Packet, packet::split_segment};
    let mut bytes: &[u8] = include_bytes!("testdata/rekey-5.9.8.vici");
    let now = SystemTime::UNIX_EPOCH + T0;
    let mut t = SaTable::default();
    let mut changes = Vec::new();
    while let Some((segment, used)) = split_segment(bytes).expect("segment") {
        let Packet::Event { event, message } = Packet::decode(segment).expect("packet") else {
            panic!("not an event");
        };
        changes.extend(t.apply(&event, &message, now));
        bytes = &bytes[used..];
    }
    assert!(bytes.is_empty());
    assert_eq!(
        changes,
        [
            Change::IkeUp(TunnelId::A),
            Change::ChildUp(TunnelId::A),
            Change::ChildRekeyed(TunnelId::A),
            Change::IkeRekeyed(TunnelId::A),
            Change::ChildRekeyed(TunnelId::A),
        ]
    );
    let a = t.tunnel(TunnelId::A);
    assert!(a.ike_up() && a.child_up());
    let c = a.child.as_ref().expect("child");
    assert_eq!(
        (c.reqid, &c.mode, c.proposal.as_str()),
        (1001, &ChildMode::Tunnel, "AES_GCM_16_256")
    );
    assert_eq!(c.local_ts, ["198.51.100.1/32[gre]"]);
    assert_eq!(c.remote_ts, ["198.51.100.2/32[gre]"]);
    let i = a.ike.as_ref().expect("ike");
    assert_eq!(i.proposal, "AES_GCM_16_256/PRF_HMAC_SHA2_384/ECP_384");
    assert!(i.initiator);
    assert_eq!(
        (a.ike_ups, a.child_ups, a.ike_rekeys, a.child_rekeys),
        (1, 1, 1, 2)
    );
}

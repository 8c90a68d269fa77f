//! Byte ↔ message pairs both ways, every decode error, and a round-trip property over
//! generated trees.
use super::{
    Element, Message, Packet,
    message::{DecodeError, EncodeError, MAX_DEPTH},
    packet::{MAX_SEGMENT, PacketError, split_segment},
};

/// strongSwan's own encoding example (vici `README.md`, "Encoding example").
const README_EXAMPLE: &[u8] = &[
    3, 4, b'k', b'e', b'y', b'1', 0, 6, b'v', b'a', b'l', b'u', b'e', b'1', //
    1, 8, b's', b'e', b'c', b't', b'i', b'o', b'n', b'1', //
    1, 11, b's', b'u', b'b', b'-', b's', b'e', b'c', b't', b'i', b'o', b'n', //
    3, 4, b'k', b'e', b'y', b'2', 0, 6, b'v', b'a', b'l', b'u', b'e', b'2', //
    2,    //
    4, 5, b'l', b'i', b's', b't', b'1', //
    5, 0, 5, b'i', b't', b'e', b'm', b'1', //
    5, 0, 5, b'i', b't', b'e', b'm', b'2', //
    6,    //
    2,
];

fn readme_message() -> Message {
    Message::new().kv("key1", "value1").section(
        "section1",
        Message::new()
            .section("sub-section", Message::new().kv("key2", "value2"))
            .list("list1", ["item1", "item2"]),
    )
}

#[test]
fn readme_example_both_ways() {
    let mut out = Vec::new();
    readme_message().encode(&mut out).expect("encode");
    assert_eq!(out, README_EXAMPLE);
    let m = Message::decode(README_EXAMPLE).expect("decode");
    assert_eq!(m, readme_message());
    assert_eq!(m.str("key1"), Some("value1"));
    let s1 = m.sub("section1").expect("section1");
    assert_eq!(
        s1.sub("sub-section").and_then(|s| s.str("key2")),
        Some("value2")
    );
    assert_eq!(s1.strs("list1"), ["item1", "item2"]);
    assert_eq!(
        format!("{m:?}"),
        r#"{"key1": "value1", "section1": {"sub-section": {"key2": "value2"}, "list1": ["item1", "item2"]}}"#
    );
}

#[test]
fn packets_both_ways() {
    let cases: Vec<(Packet, Vec<u8>)> = vec![
        (
            Packet::CmdRequest {
                command: "version".into(),
                message: Message::new(),
            },
            vec![0, 0, 0, 9, 0, 7, b'v', b'e', b'r', b's', b'i', b'o', b'n'],
        ),
        (
            Packet::CmdResponse(Message::new().kv("success", "yes")),
            [&[0, 0, 0, 15, 1, 3, 7][..], b"success", &[0, 3], b"yes"].concat(),
        ),
        (Packet::CmdUnknown, vec![0, 0, 0, 1, 2]),
        (
            Packet::EventRegister("log".into()),
            vec![0, 0, 0, 5, 3, 3, b'l', b'o', b'g'],
        ),
        (
            Packet::EventUnregister("log".into()),
            vec![0, 0, 0, 5, 4, 3, b'l', b'o', b'g'],
        ),
        (Packet::EventConfirm, vec![0, 0, 0, 1, 5]),
        (Packet::EventUnknown, vec![0, 0, 0, 1, 6]),
        (
            Packet::Event {
                event: "ike-updown".into(),
                message: Message::new().kv("up", "yes"),
            },
            [
                &[0, 0, 0, 21, 7, 10][..],
                b"ike-updown",
                &[3, 2],
                b"up",
                &[0, 3],
                b"yes",
            ]
            .concat(),
        ),
    ];
    for (packet, bytes) in cases {
        assert_eq!(packet.encode().expect("encode"), bytes, "{packet:?}");
        let (segment, used) = split_segment(&bytes).expect("split").expect("whole");
        assert_eq!(used, bytes.len());
        assert_eq!(Packet::decode(segment).expect("decode"), packet);
    }
}

#[test]
fn segments_split_only_when_whole() {
    let bytes = Packet::EventConfirm.encode().expect("encode");
    for cut in 0..bytes.len() {
        assert_eq!(split_segment(&bytes[..cut]), Ok(None));
    }
    let two = [bytes.clone(), bytes.clone()].concat();
    assert_eq!(split_segment(&two), Ok(Some((&[5u8][..], 5))));
    let huge = u32::try_from(MAX_SEGMENT + 1).expect("fits").to_be_bytes();
    assert_eq!(
        split_segment(&huge),
        Err(PacketError::TooLarge(MAX_SEGMENT + 1))
    );
}

#[test]
fn every_decode_error() {
    let cases: &[(&[u8], DecodeError)] = &[
        (&[3, 4, b'k'], DecodeError::Truncated(2)),
        (&[3, 1, b'k', 0], DecodeError::Truncated(3)),
        (&[3, 1, b'k', 0, 2, b'v'], DecodeError::Truncated(5)),
        (&[9], DecodeError::UnknownElement { kind: 9, at: 0 }),
        (&[2], DecodeError::UnbalancedSectionEnd(0)),
        (&[5, 0, 0], DecodeError::OutsideList("LIST_ITEM", 0)),
        (&[6], DecodeError::OutsideList("LIST_END", 0)),
        (
            &[4, 1, b'l', 3, 1, b'k', 0, 0],
            DecodeError::InsideList { kind: 3, at: 3 },
        ),
        (&[1, 1, b's'], DecodeError::UnclosedSection(1)),
        (&[4, 1, b'l', 5, 0, 0], DecodeError::UnclosedList),
        (&[3, 1, 0xff, 0, 0], DecodeError::NameNotUtf8(2)),
    ];
    for (bytes, want) in cases {
        assert_eq!(Message::decode(bytes).as_ref(), Err(want), "{bytes:?}");
    }
    let deep: Vec<u8> = std::iter::repeat_n([1u8, 1, b's'], MAX_DEPTH + 1)
        .flatten()
        .collect();
    assert_eq!(Message::decode(&deep), Err(DecodeError::TooDeep));
    let ok_deep: Vec<u8> = std::iter::repeat_n([1u8, 1, b's'], MAX_DEPTH)
        .flatten()
        .chain(std::iter::repeat_n(2u8, MAX_DEPTH))
        .collect();
    assert!(Message::decode(&ok_deep).is_ok());

    assert_eq!(Packet::decode(&[]), Err(PacketError::Empty));
    assert_eq!(Packet::decode(&[8]), Err(PacketError::UnknownType(8)));
    assert_eq!(
        Packet::decode(&[5, 0]),
        Err(PacketError::TrailingBytes("EVENT_CONFIRM"))
    );
    assert_eq!(
        Packet::decode(&[3, 3, b'l', b'o', b'g', 0]),
        Err(PacketError::TrailingBytes("EVENT_(UN)REGISTER"))
    );
    assert_eq!(
        Packet::decode(&[0, 5, b'x']),
        Err(PacketError::Message(DecodeError::Truncated(1)))
    );
}

#[test]
fn encode_limits() {
    let long_name = "n".repeat(256);
    let mut out = Vec::new();
    assert_eq!(
        Message::new().kv(long_name.clone(), "v").encode(&mut out),
        Err(EncodeError::NameTooLong(long_name))
    );
    let mut out = Vec::new();
    assert_eq!(
        Message::new().kv("k", vec![0u8; 65_536]).encode(&mut out),
        Err(EncodeError::ValueTooLong("k".into()))
    );
    let big = (0..9).fold(Message::new(), |m, i| {
        m.kv(format!("k{i}"), vec![0u8; 65_000])
    });
    assert!(matches!(
        Packet::CmdRequest {
            command: "x".into(),
            message: big
        }
        .encode(),
        Err(PacketError::TooLarge(_))
    ));
}

/// A tiny deterministic generator (xorshift), so the property runs without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> usize {
        usize::try_from(self.next() % n).expect("small")
    }
    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max);
        (0..n)
            .map(|_| u8::try_from(self.next() & 0xff).expect("byte"))
            .collect()
    }
    fn name(&mut self) -> String {
        let n = self.below(12);
        (0..n)
            .map(|_| char::from(b'a' + u8::try_from(self.below(26)).expect("letter")))
            .collect()
    }
    fn message(&mut self, depth: usize) -> Message {
        let mut m = Message::new();
        for _ in 0..self.below(6) {
            let key = self.name();
            m.0.push(match self.below(if depth < 4 { 3 } else { 2 }) {
                0 => (key, Element::Value(self.bytes(40))),
                1 => (
                    key,
                    Element::List((0..self.below(4)).map(|_| self.bytes(20)).collect()),
                ),
                _ => (key, Element::Section(self.message(depth + 1))),
            });
        }
        m
    }
}

#[test]
fn generated_trees_round_trip() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..2_000 {
        let m = rng.message(0);
        let mut bytes = Vec::new();
        m.encode(&mut bytes).expect("encode");
        assert_eq!(Message::decode(&bytes).expect("decode"), m);
        let p = Packet::Event {
            event: rng.name(),
            message: m,
        };
        let framed = p.encode().expect("packet");
        let (segment, _) = split_segment(&framed).expect("split").expect("whole");
        assert_eq!(Packet::decode(segment).expect("decode"), p);
    }
}

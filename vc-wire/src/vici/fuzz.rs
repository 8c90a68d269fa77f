//! The VICI codec's fuzz invariants, shared by the cargo-fuzz targets (`fuzz/`) and a
//! stable-toolchain replay test: decoding never panics, and whatever decodes re-encodes to the
//! very same bytes (the encoding is canonical).
use super::{Message, Packet, packet::split_segment};

/// Message bytes (a packet's body).
pub fn message(data: &[u8]) {
    if let Ok(m) = Message::decode(data) {
        let mut out = Vec::new();
        m.encode(&mut out).expect("a decoded message encodes");
        assert_eq!(out, data, "re-encoding differs");
    }
}

/// One transport segment (a packet without its length prefix), and the same bytes as a
/// stream to split.
pub fn packet(data: &[u8]) {
    if let Ok(p) = Packet::decode(data) {
        let framed = p.encode().expect("a decoded packet encodes");
        assert_eq!(&framed[4..], data, "re-encoding differs");
        let (segment, used) = split_segment(&framed).expect("split").expect("whole");
        assert_eq!((segment, used), (data, framed.len()));
    }
    let _ = split_segment(data);
}

/// A check over arbitrary bytes.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name (as in `fuzz/Cargo.toml`).
pub const TARGETS: [(&str, Check); 2] = [("vici_message", message), ("vici_packet", packet)];

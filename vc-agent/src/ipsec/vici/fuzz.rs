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

#[cfg(test)]
mod tests {
    use super::{message, packet};
    use crate::ipsec::vici::{Message, Packet};

    /// Seeds, then every truncation and every single-bit flip of them: a small deterministic
    /// fuzz run on the stable toolchain (cargo-fuzz needs nightly).
    #[test]
    fn mutations_of_real_messages_hold_the_invariants() {
        let conn = crate::ipsec::conn::load_conn(
            crate::config::TunnelId::A,
            crate::config::parse(crate::config::tests::VALID)
                .expect("config")
                .tunnel(crate::config::TunnelId::A)
                .expect("a"),
        );
        let mut seeds = Vec::new();
        for m in [
            conn,
            Message::new()
                .kv("success", "no")
                .kv("errmsg", "x")
                .list("l", ["a", ""]),
        ] {
            let mut body = Vec::new();
            m.encode(&mut body).expect("encode");
            let framed = Packet::CmdRequest {
                command: "load-conn".into(),
                message: m,
            }
            .encode()
            .expect("packet");
            seeds.push((body, framed[4..].to_vec()));
        }
        let mut runs = 0;
        for (body, segment) in &seeds {
            for bytes in [body, segment] {
                for cut in 0..=bytes.len() {
                    message(&bytes[..cut]);
                    packet(&bytes[..cut]);
                    runs += 2;
                }
                for i in 0..bytes.len() * 8 {
                    let mut b = bytes.clone();
                    b[i / 8] ^= 1 << (i % 8);
                    message(&b);
                    packet(&b);
                    runs += 2;
                }
            }
        }
        assert!(runs > 10_000, "{runs}");
    }
}

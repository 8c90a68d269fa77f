//! The VICI fuzz invariants over real messages: the connections vc loads, their truncations
//! and bit flips (cargo-fuzz needs nightly; this runs on stable with the unit tests).
use vc_wire::vici::{
    Message, Packet,
    fuzz::{message, packet},
};

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

//! The datagram decoders' fuzz invariants (GRE, ICMP fragmentation needed), shared by the
//! cargo-fuzz targets (`fuzz/`) and the stable replay test: decoding never panics, and what
//! decodes lies inside the input.
use crate::{gre, icmp};

/// A whole GRE datagram as a raw socket returns it.
pub fn gre_datagram(data: &[u8]) {
    if let Ok(g) = gre::decode(data) {
        assert!(
            g.payload.len() + 24 <= data.len(),
            "payload beyond the input"
        );
        let at = data.len() - g.payload.len();
        assert_eq!(&data[at..], g.payload, "the payload is the input's tail");
    }
}

/// An ICMP message as a raw socket returns it.
pub fn icmp_frag_needed(data: &[u8]) {
    if let Some(f) = icmp::frag_needed(data) {
        assert!(
            data.len() >= 20 + 8 + 20,
            "decoded from {} bytes: {f:?}",
            data.len()
        );
    }
}

/// The fuzz targets, by name (as in `fuzz/Cargo.toml`).
pub const TARGETS: [(&str, crate::vici::fuzz::Check); 2] = [
    ("gre_datagram", gre_datagram),
    ("icmp_frag_needed", icmp_frag_needed),
];

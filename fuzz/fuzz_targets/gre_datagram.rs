//! Fuzzes the GRE datagram decoder: any bytes decode or fail with an error, and what decodes
//! lies inside the input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(g) = vc_wire::gre::decode(data) {
        assert!(g.payload.len() + 24 <= data.len());
    }
});

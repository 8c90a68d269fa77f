//! Fuzzes the GRE datagram decoder: see vc-wire/src/datagram_fuzz.rs for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vc_wire::datagram_fuzz::gre_datagram(data));

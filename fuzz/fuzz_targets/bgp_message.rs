//! Fuzzes the message decoder: see vc-wire/src/bgp/packet/fuzz.rs for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vc_wire::bgp::packet::fuzz::message(data));

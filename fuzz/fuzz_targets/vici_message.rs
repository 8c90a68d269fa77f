//! Fuzzes the VICI message decoder: see vc-wire/src/vici/fuzz.rs for the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vc_wire::vici::fuzz::message(data));

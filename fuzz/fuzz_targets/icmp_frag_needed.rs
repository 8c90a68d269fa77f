//! Fuzzes the ICMP fragmentation-needed decoder: see vc-wire/src/datagram_fuzz.rs for the
//! invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vc_wire::datagram_fuzz::icmp_frag_needed(data));

#![no_main]
//! Every wire decoder on arbitrary bytes: never panics, never over-allocates.
libfuzzer_sys::fuzz_target!(|data: &[u8]| survivable_core::fuzzing::wire_decode(data));

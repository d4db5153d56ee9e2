#![no_main]
//! Every wire decoder, and the library's decoders of what peers send, on
//! arbitrary bytes: never panics, never over-allocates (see
//! `survivable_core::fuzzing::wire_decode`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| survivable_core::fuzzing::wire_decode(data));

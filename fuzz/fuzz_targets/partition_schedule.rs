#![no_main]
//! Arbitrary bytes → a fault schedule → a simulated run → the invariants
//! (`survivable_core::manual::invariants`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| survivable_core::fuzzing::partition_schedule(data));

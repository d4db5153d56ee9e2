#![no_main]
//! Arbitrary bytes → a DR auto-sync fault schedule over an uneven WAN → a
//! simulated run → the invariants, with every takeover that reported RPO 0
//! proven held to what was acknowledged at RPO 0
//! (`survivable_core::fuzzing::dr_schedule`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| survivable_core::fuzzing::dr_schedule(data));

#![no_main]
//! Arbitrary bytes → a two-site fault schedule → a simulated run in main-site
//! mode → the invariants, per epoch (`survivable_core::manual::invariants`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| survivable_core::fuzzing::two_site_schedule(data));

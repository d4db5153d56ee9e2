//! The manual: why the crate behaves as it does, written for maintainers.
//!
//! The crate docs are the tutorial; this module holds the reasoning behind
//! the design, one chapter per page. The chapters are the markdown files in
//! the repository's `docs/` folder, pulled into rustdoc here, so they read
//! the same on the source host and in `cargo doc`, and the code's comments
//! can point to them:
//!
//! - [`model`]: sites, duplicated cores, ranked survivable cores, the
//!   witness; the two quorum modes and their trade-off (epochs, fencing,
//!   reconciliation, hand-back); and the numbered behaviours the scenario
//!   tests and the `denver_paris` example check.
//! - [`invariants`]: every property the simulator's invariant checker
//!   ([`crate::sim::invariants`]) checks, precisely, and why.
//! - [`survivability`]: the survivability report, how its takeover times
//!   are predicted from the timers, and how the tests hold it to the
//!   simulator.
//! - [`raft_rs`]: what raft-rs 0.7 really does that the node driver relies
//!   on, and the pitfalls that would break safety or liveness.
//!
//! The modules are empty: they exist for their documentation only.

#[doc = include_str!("../docs/model.md")]
pub mod model {}

#[doc = include_str!("../docs/invariants.md")]
pub mod invariants {}

#[doc = include_str!("../docs/survivability.md")]
pub mod survivability {}

#[doc = include_str!("../docs/raft_rs.md")]
pub mod raft_rs {}

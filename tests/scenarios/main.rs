//! Scenario tests: one module per behaviour of the model
//! (`survivable_core::manual::model#behaviours`, numbered as there), each
//! driving the real node code through the deterministic simulator and naming
//! the white paper's figure it reproduces.

mod support;

mod auto_replace;
mod bad_input;
mod compaction;
mod determinism;
mod double_apply;
mod dr_auto_sync;
mod dr_takeover;
mod duplication_failover;
mod forged_epoch;
mod hand_back;
mod hand_back_load;
mod maintenance;
mod no_flapping;
mod normal;
mod pauses;
mod process_killed;
mod proposals;
mod ranked;
mod redundancy_restored;
mod replaced_topology;
mod site_loss;
mod split_brain;
mod survivability;
mod topology_change;
mod two_site;
mod uneven_wan;

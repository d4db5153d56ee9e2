//! The member's TOML file, read by the library
//! ([`survivable_core::config`], which documents every key): the topology
//! with every member's address, which member this process is, its data
//! directory and its TLS files, and optional `[node]`, `[runtime]` and
//! `[limits]` tuning. Every problem in the file is reported at once, each
//! naming its key.

use survivable_core::runtime::MemberConfig;

/// Reads a member's file into what [`survivable_core::runtime::start_member`] takes.
pub(crate) fn load(path: &str) -> Result<MemberConfig, String> {
    MemberConfig::load(path).map_err(|e| e.to_string())
}

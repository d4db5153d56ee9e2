//! survivable-core (docs come later)
pub mod policy;
pub mod topology;

//! Scripted behaviours: each drives a [`Sim`] through one
//! behaviour of the design (its faults, in order, with the users' load kept
//! running) and returns a typed outcome holding everything measured on the
//! way. The `denver_paris` example narrates and enforces its figures from
//! these outcomes; the scenario tests assert on them. One script, two
//! readers: what the example reports is what the tests check.
//!
//! The load is the caller's: a closure that runs some virtual time while
//! its users propose (the example's calls, the tests' key-value writes).

pub mod no_flapping;
pub mod ranked;
pub mod split_brain;

use super::Sim;
use crate::state_machine::StateMachine;

/// Two groups of sites to cut apart: every link between a member of an
/// `isolated` site and a member of a `rest` site is cut, both ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteCut {
    /// The sites cut off.
    pub isolated: Vec<String>,
    /// The sites they are cut off from.
    pub rest: Vec<String>,
}

impl SiteCut {
    /// Cuts `isolated` off from `rest`.
    pub fn new(isolated: &[&str], rest: &[&str]) -> Self {
        let owned = |s: &[&str]| s.iter().map(|s| s.to_string()).collect();
        Self {
            isolated: owned(isolated),
            rest: owned(rest),
        }
    }

    /// Applies the cut ([`Sim::partition_sites`]).
    pub fn apply<M: StateMachine>(&self, sim: &mut Sim<M>) {
        let a: Vec<&str> = self.isolated.iter().map(String::as_str).collect();
        let b: Vec<&str> = self.rest.iter().map(String::as_str).collect();
        sim.partition_sites(&a, &b);
    }
}

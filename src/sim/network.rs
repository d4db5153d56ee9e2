//! The simulated network: per-link latency, jitter, loss and partitions.

use std::collections::{BTreeMap, BTreeSet};

use crate::topology::NodeId;

/// The state of one direction of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// Messages flow, subject to latency and loss.
    Healthy,
    /// Messages are dropped (sent ones and those in flight).
    Partitioned,
}

/// Latency and loss of every link, and the partitions in force.
#[derive(Debug, Clone, Default)]
pub(crate) struct Network {
    /// One-way latency per ordered pair, in microseconds.
    pub one_way_us: BTreeMap<(NodeId, NodeId), u64>,
    pub jitter_us: u64,
    pub loss: f64,
    pub link_loss: BTreeMap<(NodeId, NodeId), f64>,
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    /// Last delivery time per ordered pair: links are FIFO, like TCP.
    pub last_delivery: BTreeMap<(NodeId, NodeId), u64>,
}

impl Network {
    pub(crate) fn state(&self, from: NodeId, to: NodeId) -> LinkState {
        if self.blocked.contains(&(from, to)) {
            LinkState::Partitioned
        } else {
            LinkState::Healthy
        }
    }

    pub(crate) fn loss(&self, from: NodeId, to: NodeId) -> f64 {
        self.link_loss
            .get(&(from, to))
            .copied()
            .unwrap_or(self.loss)
    }

    pub(crate) fn block(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                if x != y {
                    self.blocked.insert((x, y));
                    self.blocked.insert((y, x));
                }
            }
        }
    }

    pub(crate) fn unblock(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.blocked.remove(&(x, y));
                self.blocked.remove(&(y, x));
            }
        }
    }
}

//! The simulated network: per-link latency, jitter, loss and partitions.

use std::collections::{BTreeMap, BTreeSet};

use super::queue::Queue;
use super::Scheduled;
use crate::rng::SplitMix64;
use crate::topology::NodeId;
use crate::wire::Envelope;

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

    /// The one-way latency of the link `from → to`, in microseconds.
    pub(crate) fn one_way(&self, from: NodeId, to: NodeId) -> u64 {
        self.one_way_us.get(&(from, to)).copied().unwrap_or(0)
    }

    /// Both directions between `a` and `b` open and lossless.
    pub(crate) fn clean(&self, a: NodeId, b: NodeId) -> bool {
        [(a, b), (b, a)]
            .into_iter()
            .all(|(x, y)| self.state(x, y) == LinkState::Healthy && self.loss(x, y) == 0.0)
    }

    pub(crate) fn loss(&self, from: NodeId, to: NodeId) -> f64 {
        self.link_loss
            .get(&(from, to))
            .copied()
            .unwrap_or(self.loss)
    }

    /// Puts `env`, sent by `from` at `now_us`, on its link: dropped if
    /// the link is partitioned or loses it, else delivered after the
    /// link's latency and a jitter, never before an earlier message of
    /// the same link (links are FIFO). Encoded here: every message crosses
    /// the real codec.
    pub(super) fn send(
        &mut self,
        rng: &mut SplitMix64,
        queue: &mut Queue<Scheduled>,
        now_us: u64,
        from: NodeId,
        env: Envelope,
    ) {
        let to = NodeId(env.to);
        if self.state(from, to) == LinkState::Partitioned {
            return;
        }
        let loss = self.loss(from, to);
        if loss > 0.0 && (rng.next_u64() as f64 / u64::MAX as f64) < loss {
            return;
        }
        let base = self.one_way(from, to);
        let jitter = rng.below(self.jitter_us + 1);
        let fifo = self.last_delivery.entry((from, to)).or_insert(0);
        let at = now_us
            .saturating_add(base.saturating_add(jitter))
            .max(*fifo);
        *fifo = at;
        let bytes = env.to_bytes();
        queue.push(at, Scheduled::Deliver { from, to, bytes });
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

//! The simulator's peer in `sim_speed`: bare raft-rs, driven the way the
//! simulator drives it, with nothing of this crate in the loop.
//!
//! Five `RawNode`s on raft-rs's own `MemStorage` in the simulator's default
//! shape (Denver voters 1 and 2, Paris learners 3 and 4, the Kansas witness
//! 5 as the third voter), with the default timers (a 5 ms tick, heartbeats
//! every 2 ticks, elections only when the driver calls one, as this crate's
//! node does) and the simulator's default latencies (0.5 ms one way within
//! a site, 40 ms between sites). One event queue in virtual time, as the
//! simulator's: every member's tick, every message, every proposal; after
//! each event the member's `Ready` is handled (entries stored, messages
//! sent, committed entries counted as applied).
//!
//! It leaves out everything the simulator adds: the envelope and its
//! checks, the node's site logic (epochs, failover, hand-back, leases),
//! forwarding (proposals go straight to the leader), faults, snapshots, the
//! state machine and the invariant checker. Its time per virtual second is
//! therefore what raft-rs alone costs for the same traffic, a floor under
//! the simulator's: with `codec`, every message is encoded and parsed by
//! raft's protobuf codec once, as every message in the simulator is (inside
//! its envelope); without, messages are handed over as values. The
//! `skip_bcast_commit` variant shows what raft's fewer-messages option
//! would change.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Message};
use raft::storage::MemStorage;
use raft::{Config, RawNode, StateRole};

/// What one run did.
#[derive(Default)]
pub(crate) struct Floor {
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Messages sent, all members.
    pub messages: u64,
    /// Of those, appends carrying no entries (commit index updates, and
    /// raft's answer to a heartbeat response while an append is in flight).
    pub empty_appends: u64,
    /// Proposals made at the leader.
    pub proposed: u64,
    /// Entries applied by the member that applied fewest (each proposal
    /// once, plus the leader's empty entry).
    pub applied_min: u64,
    /// Times the leader changed after the first election (0 expected).
    pub leader_changes: u64,
}

/// One event of the queue.
enum Event {
    Tick(usize),
    /// A message encoded by raft's codec.
    Encoded(Vec<u8>),
    /// A message handed over as a value.
    Value(Message),
    Propose,
}

const TICK_US: u64 = 5_000;
const IN_SITE_US: u64 = 500;
const BETWEEN_SITES_US: u64 = 40_000;

/// `proposals_per_s` at the leader for `virtual_s` seconds; `codec`: every
/// message through raft's codec; `skip_bcast_commit`: raft's option of that
/// name (off in this crate's node), with which a leader whose commit index
/// moves sends no append for that alone: followers learn it from the next
/// append or heartbeat.
pub(crate) fn run(
    proposals_per_s: u64,
    virtual_s: u64,
    codec: bool,
    skip_bcast_commit: bool,
) -> Floor {
    let site = |id: u64| match id {
        1 | 2 => 0,
        3 | 4 => 1,
        _ => 2,
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let mut nodes: Vec<RawNode<MemStorage>> = (1..=5)
        .map(|id| {
            let conf = ConfState {
                voters: vec![1, 2, 5],
                learners: vec![3, 4],
                ..Default::default()
            };
            let cfg = Config {
                id,
                election_tick: 40,
                heartbeat_tick: 2,
                // Elections only when called, as this crate's node does.
                min_election_tick: 1 << 40,
                max_election_tick: (1 << 40) + 1,
                check_quorum: true,
                pre_vote: true,
                max_size_per_msg: 1 << 20,
                max_inflight_msgs: 256,
                skip_bcast_commit,
                ..Default::default()
            };
            let storage = MemStorage::new_with_conf_state(conf);
            RawNode::new(&cfg, storage, &logger).expect("a valid raft config")
        })
        .collect();
    let mut queue = Queue::default();
    for i in 0..nodes.len() {
        queue.push(TICK_US + i as u64, Event::Tick(i));
    }
    nodes[0].campaign().expect("member 1 campaigns");
    let period_us = 1_000_000 / proposals_per_s;
    queue.push(1_000_000, Event::Propose);
    let end_us = virtual_s * 1_000_000;
    let mut floor = Floor::default();
    let mut applied = [0u64; 5];
    let mut leader = None;
    let started = Instant::now();
    while let Some((now, event)) = queue.pop() {
        if now > end_us {
            break;
        }
        let at = match event {
            Event::Tick(i) => {
                nodes[i].tick();
                queue.push(now + TICK_US, Event::Tick(i));
                i
            }
            Event::Encoded(bytes) => step(
                &mut nodes,
                Message::parse_from_bytes(&bytes).expect("raft's own encoding"),
            ),
            Event::Value(m) => step(&mut nodes, m),
            Event::Propose => {
                queue.push(now + period_us, Event::Propose);
                let Some(i) = nodes.iter().position(|r| r.raft.state == StateRole::Leader) else {
                    continue;
                };
                if leader.is_some_and(|l| l != i) {
                    floor.leader_changes += 1;
                }
                leader = Some(i);
                let command = format!("set call{} up", floor.proposed % 5000);
                floor.proposed += 1;
                let _ = nodes[i].propose(Vec::new(), command.into_bytes());
                i
            }
        };
        if !nodes[at].has_ready() {
            continue;
        }
        let node = &mut nodes[at];
        let mut ready = node.ready();
        let mut out = ready.take_messages();
        if !ready.entries().is_empty() {
            let stored = node.store().wl().append(ready.entries());
            stored.expect("entries follow the log");
        }
        if let Some(hs) = ready.hs() {
            node.store().wl().set_hardstate(hs.clone());
        }
        applied[at] += ready.take_committed_entries().len() as u64;
        out.extend(ready.take_persisted_messages());
        let mut light = node.advance(ready);
        out.extend(light.take_messages());
        applied[at] += light.take_committed_entries().len() as u64;
        node.advance_apply();
        for m in out {
            floor.messages += 1;
            if m.msg_type == raft::eraftpb::MessageType::MsgAppend && m.entries.is_empty() {
                floor.empty_appends += 1;
            }
            let latency = if site(m.from) == site(m.to) {
                IN_SITE_US
            } else {
                BETWEEN_SITES_US
            };
            let m = if codec {
                Event::Encoded(m.write_to_bytes().expect("encoding into a Vec"))
            } else {
                Event::Value(m)
            };
            queue.push(now + latency, m);
        }
    }
    floor.wall_s = started.elapsed().as_secs_f64();
    floor.applied_min = applied.into_iter().min().unwrap_or(0);
    floor
}

/// Steps `m` at its addressee; which one that is.
fn step(nodes: &mut [RawNode<MemStorage>], m: Message) -> usize {
    let i = (m.to - 1) as usize;
    let _ = nodes[i].step(m);
    i
}

/// Events in time order, ties in the order pushed, as the simulator's
/// queue: the heap holds (time, sequence, slot), payloads wait in reused
/// slots.
#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    slots: Vec<Option<Event>>,
    free: Vec<usize>,
    pushed: u64,
}

impl Queue {
    fn push(&mut self, at_us: u64, event: Event) {
        self.pushed += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                self.slots.len() - 1
            }
        };
        self.heap.push(Reverse((at_us, self.pushed, slot)));
    }

    fn pop(&mut self) -> Option<(u64, Event)> {
        let Reverse((at_us, _, slot)) = self.heap.pop()?;
        self.free.push(slot);
        Some((at_us, self.slots[slot].take()?))
    }
}

//! The simulator's snapshot worker: each member's
//! [`SnapshotJob`](crate::node::SnapshotJob)s run deterministically,
//! completing after a modelled delay (a fixed part plus a part per MiB,
//! see [`SimBuilder::snapshot_time`]) of virtual time, during which the
//! member goes on ticking, stepping and proposing. A job of a member that
//! crashed meanwhile is dropped with the member; one whose member is
//! paused completes once the pause ends.
//!
//! A job's work is done as soon as it is taken and its result held until
//! the modelled time is up: a job reads a point-in-time view (a state
//! machine's snapshot handle, or received bytes), so the result is the
//! same as at the end of the delay, and a copy-on-write state machine
//! does not copy its state for a view that is still held while it goes on
//! applying.

use std::time::Duration;

use super::{micros, Scheduled, Sim, SimBuilder};
use crate::node::SnapshotJob;
use crate::state_machine::StateMachine;
use crate::topology::NodeId;

/// How long a snapshot job takes in virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SnapshotTime {
    pub(super) fixed_us: u64,
    pub(super) per_mib_us: u64,
}

impl Default for SnapshotTime {
    /// 1 ms plus 10 ms per MiB (about 100 MiB/s, what serialising a map
    /// and writing it out costs on one core).
    fn default() -> Self {
        Self {
            fixed_us: 1_000,
            per_mib_us: 10_000,
        }
    }
}

impl SimBuilder {
    /// How long each member's snapshot work (taking one, or installing a
    /// received one) takes, in virtual time: `fixed` plus `per_mib` per
    /// MiB of snapshot. It runs beside the member, which keeps serving.
    /// Defaults to 1 ms plus 10 ms per MiB.
    pub fn snapshot_time(&mut self, fixed: Duration, per_mib: Duration) -> &mut Self {
        self.snapshot_time = SnapshotTime {
            fixed_us: micros(fixed),
            per_mib_us: micros(per_mib),
        };
        self
    }
}

impl<M: StateMachine> Sim<M> {
    /// Takes a member's new snapshot jobs and schedules their completion.
    pub(super) fn take_snapshot_jobs(&mut self, id: NodeId) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        let incarnation = slot.incarnation;
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        let mut jobs: Vec<SnapshotJob> = Vec::new();
        while let Some(job) = node.poll_snapshot_job() {
            jobs.push(job);
        }
        for job in jobs {
            let t = self.cfg.snapshot_time;
            let mib = job.size_hint() as u64 as f64 / f64::from(1 << 20);
            let took = t.fixed_us + (t.per_mib_us as f64 * mib) as u64;
            self.snapshot_seq += 1;
            let no = self.snapshot_seq;
            self.trace.push(format!(
                "{} {id} snapshot job {no} ({} bytes, restore {}) until {}",
                self.now_us,
                job.size_hint(),
                job.is_restore(),
                self.now_us + took
            ));
            self.snapshot_jobs.insert(no, job.run());
            let at = self.now_us.saturating_add(took);
            self.schedule(
                at,
                Scheduled::SnapshotDone {
                    node: id,
                    incarnation,
                    job: no,
                },
            );
        }
    }

    /// A job's modelled time is up: runs it and feeds the result back.
    pub(super) fn snapshot_job_due(&mut self, id: NodeId, incarnation: u64, no: u64) {
        let live = self
            .slots
            .get(&id)
            .filter(|s| s.incarnation == incarnation && s.node.is_some());
        let Some(slot) = live else {
            self.snapshot_jobs.remove(&no);
            return;
        };
        if slot.paused {
            let next = self.now_us.saturating_add(self.tick_us.max(1));
            let what = Scheduled::SnapshotDone {
                node: id,
                incarnation,
                job: no,
            };
            return self.schedule(next, what);
        }
        let Some(done) = self.snapshot_jobs.remove(&no) else {
            return;
        };
        if let Some(n) = self.slots.get_mut(&id).and_then(|s| s.node.as_mut()) {
            n.snapshot_done(done);
        }
        self.drain(id);
    }

    /// Snapshot jobs under way (taken by a member, not completed yet).
    pub fn snapshot_jobs_running(&self) -> usize {
        self.snapshot_jobs.len()
    }
}

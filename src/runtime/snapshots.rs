//! The runtime's snapshot worker: one thread per member that runs the
//! node's [`SnapshotJob`]s (taking a snapshot from the state machine's
//! point-in-time view, or building the state from a received one) while
//! the node thread goes on ticking, stepping and proposing; results go
//! back to the node thread on a channel.

use std::thread;

use crossbeam_channel::{Receiver, Sender};

use crate::node::{SnapshotDone, SnapshotJob};

/// A member's snapshot worker thread.
pub(crate) struct Worker {
    jobs: Option<Sender<SnapshotJob>>,
    done: Receiver<SnapshotDone>,
}

impl Worker {
    /// Starts the thread (named after the member).
    ///
    /// # Errors
    /// When the OS cannot start a thread.
    pub(crate) fn start(member: u64) -> std::io::Result<Self> {
        let (jobs, job_rx) = crossbeam_channel::unbounded::<SnapshotJob>();
        let (done_tx, done) = crossbeam_channel::unbounded();
        thread::Builder::new()
            .name(format!("sc-snap-{member}"))
            .spawn(move || {
                for job in job_rx {
                    if done_tx.send(job.run()).is_err() {
                        break; // the node thread is gone
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            done,
        })
    }

    /// Hands a job to the thread.
    pub(crate) fn submit(&self, job: SnapshotJob) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
    }

    /// Where results arrive.
    pub(crate) fn results(&self) -> Receiver<SnapshotDone> {
        self.done.clone()
    }
}

impl Drop for Worker {
    /// Closes the job queue: the thread ends after the job it runs (not
    /// waited for: a stop need not wait for a large snapshot nobody will
    /// store).
    fn drop(&mut self) {
        self.jobs.take();
    }
}

//! What the embedding service holds: propose, watch, ask, stop.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use parking_lot::{Mutex, RwLock};

use super::{Command, MetricsText};
use crate::error::{HandBackError, MembershipError, ProposeError};
use crate::events::Event;
use crate::node::{Applied, Counters, Status};
use crate::topology::{MemberSpec, NodeId};

/// The service's handle on a running member. Cloning is not offered:
/// share it behind an `Arc` (every method takes `&self`).
pub struct Handle {
    commands: Sender<Command>,
    events: Receiver<Event>,
    status: Arc<RwLock<Status>>,
    counters: Arc<RwLock<Counters>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    metrics: Option<MetricsText>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("status", &self.status())
            .finish()
    }
}

/// A request on its way: wait for its result, with or without a timeout.
/// A proposal's result is its [`Applied`] position; a read's is the index
/// this member has applied up to (see [`Handle::read_async`]).
#[derive(Debug)]
#[must_use = "the result of the request arrives here"]
pub struct Pending<T = Applied> {
    rx: Receiver<Result<T, ProposeError>>,
}

impl<T> Pending<T> {
    /// Blocks until the request is done (or the node stops).
    ///
    /// # Errors
    /// Why it never will be: see [`ProposeError`].
    pub fn wait(self) -> Result<T, ProposeError> {
        self.rx.recv().unwrap_or(Err(ProposeError::Stopped))
    }

    /// Blocks for at most `timeout`.
    ///
    /// # Errors
    /// [`ProposeError::Timeout`] after `timeout` (a proposal stays queued
    /// and may still be applied, never twice), or why it never will be.
    pub fn wait_timeout(self, timeout: Duration) -> Result<T, ProposeError> {
        match self.rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err(ProposeError::Timeout { waited: timeout }),
            Err(RecvTimeoutError::Disconnected) => Err(ProposeError::Stopped),
        }
    }

    /// The result if it has arrived.
    pub fn try_result(&self) -> Option<Result<T, ProposeError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(ProposeError::Stopped)),
        }
    }
}

impl Handle {
    pub(super) fn new(
        commands: Sender<Command>,
        events: Receiver<Event>,
        status: Arc<RwLock<Status>>,
        counters: Arc<RwLock<Counters>>,
        thread: JoinHandle<()>,
    ) -> Self {
        Self {
            commands,
            events,
            status,
            counters,
            thread: Mutex::new(Some(thread)),
            metrics: None,
        }
    }

    pub(super) fn with_metrics(mut self, metrics: Option<MetricsText>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The member's [metrics](crate::metrics) in the Prometheus text
    /// format, as of the node thread's last pass (counters read from the
    /// node and the transport at most
    /// [`SLOW_EVERY`](crate::metrics::SLOW_EVERY) earlier). Empty without
    /// the `metrics` feature or with
    /// [`RuntimeConfig::metrics`](super::RuntimeConfig::metrics) off.
    pub fn metrics(&self) -> String {
        self.metrics
            .as_ref()
            .map_or_else(String::new, |encode| encode())
    }

    /// Submits a command without waiting. It is applied at most once,
    /// wherever the leader is; followers forward it.
    ///
    /// # Errors
    /// [`ProposeError::Stopped`] when the node is not running.
    pub fn propose_async(&self, command: Vec<u8>) -> Result<Pending, ProposeError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.commands
            .send(Command::Propose(command, tx))
            .map_err(|_| ProposeError::Stopped)?;
        Ok(Pending { rx })
    }

    /// Submits a command and blocks until it is applied.
    ///
    /// # Errors
    /// See [`ProposeError`].
    pub fn propose(&self, command: Vec<u8>) -> Result<Applied, ProposeError> {
        self.propose_async(command)?.wait()
    }

    /// Submits a command and blocks for at most `timeout`.
    ///
    /// # Errors
    /// See [`Pending::wait_timeout`].
    pub fn propose_timeout(
        &self,
        command: Vec<u8>,
        timeout: Duration,
    ) -> Result<Applied, ProposeError> {
        self.propose_async(command)?.wait_timeout(timeout)
    }

    /// Asks for a linearizable read point without waiting: the result is
    /// the index this member has applied up to once it is at least the
    /// leader's commit index at the time of the request, confirmed by a
    /// quorum round (raft's safe read index, so a deposed leader never
    /// answers). When it arrives, this member's state machine reflects every
    /// write acknowledged anywhere before the request: read it then (it
    /// only moves forward, so reading later is just as linearizable).
    ///
    /// Works at any member (followers ask the leader). While there is no
    /// leader the request waits, asked again every election timeout; bound
    /// the wait with [`Pending::wait_timeout`].
    ///
    /// # Errors
    /// [`ProposeError::Stopped`] when the node is not running; the pending
    /// read reports [`ProposeError::QueueFull`] when too many reads wait,
    /// [`ProposeError::Removed`] for a member removed from the cluster.
    pub fn read_async(&self) -> Result<Pending<u64>, ProposeError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.commands
            .send(Command::Read(tx))
            .map_err(|_| ProposeError::Stopped)?;
        Ok(Pending { rx })
    }

    /// A linearizable read point, waiting at most `timeout`; see
    /// [`read_async`](Self::read_async).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # fn f(handle: &survivable_core::runtime::Handle) -> Result<(), survivable_core::ProposeError> {
    /// let applied = handle.read(Duration::from_secs(1))?;
    /// // Every write acknowledged before the call is in this member's state
    /// // machine now (applied up to `applied` or further): read it.
    /// # let _ = applied; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ProposeError::Timeout`] when no leader confirmed a read point in
    /// time, or see [`read_async`](Self::read_async).
    pub fn read(&self, timeout: Duration) -> Result<u64, ProposeError> {
        self.read_async()?.wait_timeout(timeout)
    }

    /// The member's typed events (leadership, failover, takeover, hand-back,
    /// membership), in order. All clones of the receiver share one stream.
    pub fn events(&self) -> Receiver<Event> {
        self.events.clone()
    }

    /// The member's status as of its last step.
    pub fn status(&self) -> Status {
        self.status.read().clone()
    }

    /// What the node refused of what its peers sent (malformed payloads,
    /// another cluster or epoch, spoofed senders, ...), as of its last
    /// step, as [`Node::counters`](crate::Node::counters) counts it. The
    /// transport counts what it refused before the node saw it
    /// ([`Member::transport`](super::Member::transport)).
    pub fn counters(&self) -> Counters {
        self.counters.read().clone()
    }

    /// Asks this member, if it leads from a less preferred site, to hand
    /// leadership back now. See [`Node::hand_back`](crate::Node::hand_back).
    ///
    /// # Errors
    /// [`HandBackError`]; `NotLeader { leader: None }` if the node stopped.
    pub fn hand_back(&self) -> Result<(), HandBackError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let stopped = HandBackError::NotLeader { leader: None };
        self.commands
            .send(Command::HandBack(tx))
            .map_err(|_| stopped.clone())?;
        rx.recv().unwrap_or(Err(stopped))
    }

    /// Replaces a dead voter. See [`Node::replace_member`](crate::Node::replace_member).
    ///
    /// # Errors
    /// [`MembershipError`]; `NotLeader { leader: None }` if the node stopped.
    pub fn replace_member(&self, dead: NodeId, new: MemberSpec) -> Result<(), MembershipError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let stopped = MembershipError::NotLeader { leader: None };
        self.commands
            .send(Command::Replace(dead, new, tx))
            .map_err(|_| stopped.clone())?;
        rx.recv().unwrap_or(Err(stopped))
    }

    /// Whether the node thread is still running.
    pub fn is_running(&self) -> bool {
        self.thread
            .lock()
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Stops the node: waiting proposals get [`ProposeError::Stopped`], the
    /// thread ends. Everything acknowledged is already on disk.
    pub fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

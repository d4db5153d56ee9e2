//! What the embedding service holds: propose, read, query, watch, steer,
//! stop.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Condvar, Mutex, RwLock};

use super::{Command, MetricsText, QueryJob, Shutdown};
use crate::error::{
    ActivateError, DrainError, HandBackError, MembershipError, ProposeError, QueryError,
    TransferError,
};
use crate::events::Event;
use crate::node::{Applied, Counters, Status};
use crate::state_machine::StateMachine;
use crate::topology::{MemberSpec, NodeId};

/// The service's handle on a running member. Cheap to clone: every clone
/// drives the same member, and the member's thread stops when
/// [`shutdown`](Self::shutdown) (or [`shutdown_now`](Self::shutdown_now))
/// is called on any clone, or when the last clone is dropped (an
/// immediate stop, as `shutdown_now`).
///
/// | Group | Methods |
/// |---|---|
/// | Write | [`propose`](Self::propose), [`propose_timeout`](Self::propose_timeout), [`propose_async`](Self::propose_async) |
/// | Read | [`read`](Self::read), [`read_async`](Self::read_async), [`read_query`](Self::read_query), [`query`](Self::query) |
/// | Watch | [`events`](Self::events), [`status`](Self::status), [`counters`](Self::counters), [`is_running`](Self::is_running) |
/// | Steer | [`transfer_leader`](Self::transfer_leader), [`hand_back`](Self::hand_back), [`drain`](Self::drain), [`undrain`](Self::undrain), [`activate`](Self::activate), [`replace_member`](Self::replace_member), [`replace_member_at`](Self::replace_member_at) |
/// | Stop | [`shutdown`](Self::shutdown), [`shutdown_now`](Self::shutdown_now) |
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

/// What the clones share; dropping it stops the member.
struct Inner {
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

/// The state a [`Pending`] and its [`Completer`] share.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    done: Condvar,
}

struct SlotState<T> {
    result: Option<Result<T, ProposeError>>,
    /// The task to wake when the result arrives (the last one polled).
    waker: Option<Waker>,
}

/// The node thread's side of a [`Pending`]: completes it once. Dropped
/// without completing (the node stopped), it completes it with
/// [`ProposeError::Stopped`].
pub(crate) struct Completer<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Completer<T> {
    /// Completes the request with `result`, waking whoever waits.
    pub(crate) fn complete(mut self, result: Result<T, ProposeError>) {
        self.finish(result);
    }

    fn finish(&mut self, result: Result<T, ProposeError>) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let waker = {
            let mut s = slot.state.lock();
            s.result = Some(result);
            s.waker.take()
        };
        slot.done.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.finish(Err(ProposeError::Stopped));
    }
}

/// A request and the [`Pending`] its result arrives in.
pub(crate) fn pending<T>() -> (Completer<T>, Pending<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState {
            result: None,
            waker: None,
        }),
        done: Condvar::new(),
    });
    (
        Completer {
            slot: Some(slot.clone()),
        },
        Pending { slot },
    )
}

/// A request on its way: wait for its result, with or without a timeout,
/// or `.await` it. A proposal's result is its [`Applied`] position; a
/// read's is the index this member has applied up to (see
/// [`Handle::read_async`]).
///
/// It is a [`Future`] completed by the node thread, which wakes the task
/// that polled it: usable from any async runtime (or none) without
/// blocking a thread. Waiting and polling are alternatives: the result is
/// taken once, by whichever gets it first.
#[must_use = "the result of the request arrives here"]
pub struct Pending<T = Applied> {
    slot: Arc<Slot<T>>,
}

impl<T> std::fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let done = self.slot.state.lock().result.is_some();
        f.debug_struct("Pending").field("done", &done).finish()
    }
}

impl<T> Pending<T> {
    /// Blocks until the request is done (or the node stops).
    ///
    /// # Errors
    /// Why it never will be: see [`ProposeError`].
    pub fn wait(self) -> Result<T, ProposeError> {
        let mut s = self.slot.state.lock();
        loop {
            if let Some(r) = s.result.take() {
                return r;
            }
            self.slot.done.wait(&mut s);
        }
    }

    /// Blocks for at most `timeout`.
    ///
    /// # Errors
    /// [`ProposeError::Timeout`] after `timeout` (a proposal stays queued
    /// and may still be applied, never twice), or why it never will be.
    pub fn wait_timeout(self, timeout: Duration) -> Result<T, ProposeError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut s = self.slot.state.lock();
        loop {
            if let Some(r) = s.result.take() {
                return r;
            }
            let Some(deadline) = deadline else {
                self.slot.done.wait(&mut s);
                continue;
            };
            if self.slot.done.wait_until(&mut s, deadline).timed_out() {
                return s
                    .result
                    .take()
                    .unwrap_or(Err(ProposeError::Timeout { waited: timeout }));
            }
        }
    }

    /// The result if it has arrived (taken: a second call, a `wait` or a
    /// poll afterwards finds nothing more).
    pub fn try_result(&self) -> Option<Result<T, ProposeError>> {
        self.slot.state.lock().result.take()
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, ProposeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.state.lock();
        if let Some(r) = s.result.take() {
            return Poll::Ready(r);
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The downcast a query runs on the node thread: `f` on the state machine
/// if it is an `M`, a typed error otherwise; the result goes to `tx`.
fn query_job<M, R, F>(f: F, tx: Sender<Result<R, QueryError>>) -> QueryJob
where
    M: StateMachine + 'static,
    R: Send + 'static,
    F: FnOnce(&M) -> R + Send + 'static,
{
    Box::new(move |sm: Result<(&dyn Any, &'static str), ProposeError>| {
        let r = match sm {
            Err(ProposeError::Stopped) => Err(QueryError::Stopped),
            Err(e) => Err(QueryError::Read(e)),
            Ok((sm, runs)) => match sm.downcast_ref::<M>() {
                Some(m) => Ok(f(m)),
                None => Err(QueryError::WrongStateMachine {
                    asked: std::any::type_name::<M>(),
                    runs,
                }),
            },
        };
        let _ = tx.send(r);
    })
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
            inner: Arc::new(Inner {
                commands,
                events,
                status,
                counters,
                thread: Mutex::new(Some(thread)),
                metrics: None,
            }),
        }
    }

    /// Sets how the member's metrics are encoded (right after `new`, while
    /// this is the only clone).
    pub(super) fn with_metrics(mut self, metrics: Option<MetricsText>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.metrics = metrics;
        }
        self
    }

    /// The member's [metrics](crate::metrics) in the Prometheus text
    /// format, as of the node thread's last pass (counters read from the
    /// node and the transport at most
    /// [`SLOW_EVERY`](crate::metrics::SLOW_EVERY) earlier). Empty without
    /// the `metrics` feature or with
    /// [`RuntimeConfig::metrics`](super::RuntimeConfig::metrics) off.
    pub fn metrics(&self) -> String {
        self.inner
            .metrics
            .as_ref()
            .map_or_else(String::new, |encode| encode())
    }

    /// Sends a request expecting one reply; `stopped` when the node does
    /// not run (or stops before answering).
    fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Command, stopped: T) -> T {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.inner.commands.send(make(tx)).is_err() {
            return stopped;
        }
        rx.recv().unwrap_or(stopped)
    }

    /// Submits a command without waiting: `.await` the result, or wait for
    /// it with [`Pending::wait`]. It is applied at most once, wherever the
    /// leader is; followers forward it.
    ///
    /// ```no_run
    /// # async fn f(handle: &survivable_core::runtime::Handle) -> Result<(), survivable_core::ProposeError> {
    /// let applied = handle.propose_async(b"set k v".to_vec())?.await?;
    /// # let _ = applied; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ProposeError::Stopped`] when the node is not running.
    pub fn propose_async(&self, command: Vec<u8>) -> Result<Pending, ProposeError> {
        let (done, pending) = pending();
        self.inner
            .commands
            .send(Command::Propose(command, done))
            .map_err(|_| ProposeError::Stopped)?;
        Ok(pending)
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
    /// only moves forward, so reading later is just as linearizable), e.g.
    /// with [`query`](Self::query), or use [`read_query`](Self::read_query)
    /// which does both. `.await` it or wait for it.
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
        let (done, pending) = pending();
        self.inner
            .commands
            .send(Command::Read(done))
            .map_err(|_| ProposeError::Stopped)?;
        Ok(pending)
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

    /// Runs `f` on this member's state machine, on the node thread, and
    /// returns its result: a consistent view of this member's state as
    /// applied so far (not linearizable: a follower may lag; see
    /// [`read_query`](Self::read_query)). `M` is the state machine type the
    /// member runs. Keep `f` short: the node does nothing else meanwhile.
    ///
    /// ```no_run
    /// # fn f(handle: &survivable_core::runtime::Handle) -> Result<(), survivable_core::QueryError> {
    /// use survivable_core::sim::KvStore;
    /// let value = handle.query(|kv: &KvStore| kv.map.get("k").cloned())?;
    /// # let _ = value; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`QueryError::WrongStateMachine`] when the member runs another type
    /// than `M` (`f` did not run), [`QueryError::Stopped`] when the node
    /// does not run.
    pub fn query<M, R>(&self, f: impl FnOnce(&M) -> R + Send + 'static) -> Result<R, QueryError>
    where
        M: StateMachine + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job = query_job::<M, R, _>(f, tx);
        if self.inner.commands.send(Command::Query(job)).is_err() {
            return Err(QueryError::Stopped);
        }
        rx.recv().unwrap_or(Err(QueryError::Stopped))
    }

    /// A linearizable query: asks for a read point (as
    /// [`read`](Self::read)), then runs `f` on the node thread on this
    /// member's state machine, which by then holds every write
    /// acknowledged anywhere before the call. Waits at most `timeout`.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # fn f(handle: &survivable_core::runtime::Handle) -> Result<(), survivable_core::QueryError> {
    /// use survivable_core::sim::KvStore;
    /// let n = handle.read_query(Duration::from_secs(1), |kv: &KvStore| kv.map.len())?;
    /// # let _ = n; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`QueryError::Read`] with [`ProposeError::Timeout`] when no read
    /// point came in time (`f` may still run later, its result dropped), or
    /// the read's refusal; otherwise as [`query`](Self::query).
    pub fn read_query<M, R>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&M) -> R + Send + 'static,
    ) -> Result<R, QueryError>
    where
        M: StateMachine + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job = query_job::<M, R, _>(f, tx);
        if self.inner.commands.send(Command::ReadQuery(job)).is_err() {
            return Err(QueryError::Stopped);
        }
        match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                Err(QueryError::Read(ProposeError::Timeout { waited: timeout }))
            }
            Err(RecvTimeoutError::Disconnected) => Err(QueryError::Stopped),
        }
    }

    /// The member's typed events (leadership, failover, takeover, hand-back,
    /// membership, maintenance), in order. All clones of the receiver (and
    /// of the handle) share one stream: each event goes to one reader.
    pub fn events(&self) -> Receiver<Event> {
        self.inner.events.clone()
    }

    /// The member's status as of its last step.
    pub fn status(&self) -> Status {
        self.inner.status.read().clone()
    }

    /// What the node refused of what its peers sent (malformed payloads,
    /// another cluster or epoch, spoofed senders, ...), as of its last
    /// step, as [`Node::counters`](crate::Node::counters) counts it. The
    /// transport counts what it refused before the node saw it
    /// ([`Member::transport`](super::Member::transport)).
    pub fn counters(&self) -> Counters {
        self.inner.counters.read().clone()
    }

    /// Asks this member, if it leads from a less preferred site, to hand
    /// leadership back now. See [`Node::hand_back`](crate::Node::hand_back).
    ///
    /// # Errors
    /// [`HandBackError`]; `NotLeader { leader: None }` if the node stopped.
    pub fn hand_back(&self) -> Result<(), HandBackError> {
        let stopped = HandBackError::NotLeader { leader: None };
        self.ask(Command::HandBack, Err(stopped))
    }

    /// Moves leadership from this member, which must lead, to the voter
    /// `to`. See [`Node::transfer_leader`](crate::Node::transfer_leader);
    /// watch [`events`](Self::events) or [`status`](Self::status) for the
    /// outcome (it takes a LAN round trip or two when `to` is up to date).
    ///
    /// # Errors
    /// [`TransferError`] saying why not; [`TransferError::Stopped`] if the
    /// node does not run.
    pub fn transfer_leader(&self, to: NodeId) -> Result<(), TransferError> {
        self.ask(|r| Command::Transfer(to, r), Err(TransferError::Stopped))
    }

    /// Drains this member for maintenance: it never campaigns nor takes
    /// leadership, moves leadership away if it leads, and stays a replica.
    /// See [`Node::drain`](crate::Node::drain).
    ///
    /// # Errors
    /// [`DrainError`]; [`DrainError::Stopped`] if the node does not run.
    pub fn drain(&self) -> Result<(), DrainError> {
        self.ask(|r| Command::Drain(true, r), Err(DrainError::Stopped))
    }

    /// Ends a [`drain`](Self::drain). See [`Node::undrain`](crate::Node::undrain).
    ///
    /// # Errors
    /// [`DrainError`]; [`DrainError::Stopped`] if the node does not run.
    pub fn undrain(&self) -> Result<(), DrainError> {
        self.ask(|r| Command::Drain(false, r), Err(DrainError::Stopped))
    }

    /// Forces a new epoch at this survivable member, as an operator does
    /// after deciding the main site is gone. See
    /// [`Node::activate`](crate::Node::activate).
    ///
    /// # Errors
    /// [`ActivateError`] saying why not (refused while the main site
    /// answers); [`ActivateError::Stopped`] if the node does not run.
    pub fn activate(&self) -> Result<(), ActivateError> {
        self.ask(Command::Activate, Err(ActivateError::Stopped))
    }

    /// Replaces a dead voter. See [`Node::replace_member`](crate::Node::replace_member).
    ///
    /// # Errors
    /// [`MembershipError`]; `NotLeader { leader: None }` if the node stopped.
    pub fn replace_member(&self, dead: NodeId, new: MemberSpec) -> Result<(), MembershipError> {
        self.replace_member_at(dead, new, None)
    }

    /// Replaces a dead voter by a new member reached at `address`, which
    /// no running member needs in its configured peers. See
    /// [`Node::replace_member_at`](crate::Node::replace_member_at).
    ///
    /// # Errors
    /// [`MembershipError`] (an empty address:
    /// [`MembershipError::Topology`]); `NotLeader { leader: None }` if the
    /// node stopped.
    pub fn replace_member_at(
        &self,
        dead: NodeId,
        new: MemberSpec,
        address: Option<String>,
    ) -> Result<(), MembershipError> {
        let stopped = MembershipError::NotLeader { leader: None };
        self.ask(|r| Command::Replace(dead, new, address, r), Err(stopped))
    }

    /// Proposes a change of the replicated topology and returns the
    /// version it will have. See
    /// [`Node::change_topology`](crate::Node::change_topology).
    ///
    /// # Errors
    /// [`TopologyChangeError`](crate::node::TopologyChangeError);
    /// `NotLeader { leader: None }` if the node stopped.
    pub fn change_topology(
        &self,
        change: crate::topology::TopologyChange,
    ) -> Result<u64, crate::node::TopologyChangeError> {
        let stopped = crate::node::TopologyChangeError::NotLeader { leader: None };
        self.ask(|r| Command::ChangeTopology(change, r), Err(stopped))
    }

    /// The replicated topology as this member has applied it (what its
    /// transport's peers follow): `None` if the node stopped.
    pub fn topology(&self) -> Option<Arc<crate::topology::Topology>> {
        self.ask(Command::Topology, None)
    }

    /// Whether the node thread is still running.
    pub fn is_running(&self) -> bool {
        self.inner
            .thread
            .lock()
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Stops the member gracefully. If it leads, it first drains (moves
    /// leadership to its core partner, else to the best other voter that
    /// can take it) and waits until another member leads, so the cluster's
    /// write outage is a leader transfer (a LAN round trip or two), not a
    /// failover; it also waits for the proposals made here to be applied.
    /// Both waits together are bounded by two election timeouts (raft
    /// aborts a transfer that has not landed within one): after that it
    /// stops anyway. Then as [`shutdown_now`](Self::shutdown_now).
    pub fn shutdown(&self) {
        self.stop(Shutdown::Graceful);
    }

    /// Stops the member now: waiting proposals get
    /// [`ProposeError::Stopped`], the thread ends. Everything acknowledged
    /// is already on disk. A leader stopped so is replaced by a failover
    /// (its standby after `Timers::failover`).
    pub fn shutdown_now(&self) {
        self.stop(Shutdown::Now);
    }

    fn stop(&self, how: Shutdown) {
        let _ = self.inner.commands.send(Command::Shutdown(how));
        if let Some(t) = self.inner.thread.lock().take() {
            let _ = t.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown(Shutdown::Now));
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
#[path = "handle_tests.rs"]
mod tests;

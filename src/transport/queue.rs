//! The inbound queue's byte budget: what the transport's connections have
//! handed on and the node thread has not taken yet.
//!
//! The queue between the connections and the node thread
//! ([`inbound_channel`](crate::runtime::inbound_channel)) is bounded in
//! envelopes, and a few reassembled snapshots of hundreds of MiB fit in
//! any count. So every envelope a connection hands on also takes its
//! bytes (payload plus the envelope itself) from one budget shared by all
//! the transport's connections ([`Limits::inbound_bytes`]), and gives them
//! back when the node thread takes it ([`Inbound`] into [`Envelope`]). A
//! connection whose next envelope does not fit waits, and reads nothing
//! meanwhile: its sender's socket fills and its writer slows down, instead
//! of this member's memory growing.
//!
//! **Small messages keep a lane.** A quarter of the budget is reserved
//! for envelopes that arrived in one frame (heartbeats, votes, their
//! answers, appends of ordinary commands: at most a frame each), which
//! reassembled messages (snapshots, large appends) may never take. So
//! however many snapshots are queued or waiting, a heartbeat from another
//! member (or from the sender of a queued snapshot) still reaches the node
//! and no election starts because a snapshot is queued. A separate queue
//! for small messages would do as much but reorder a member's messages,
//! which raft does not expect of appends; the reserve keeps one queue, in
//! the order each connection received. Small envelopes may also use what
//! large ones leave free, so the reserve is a floor, not a cap.
//!
//! **One message larger than the large share** (the budget less the
//! reserve) is still admitted when no other reassembled message is queued
//! and small envelopes hold no more than their reserve: otherwise a
//! snapshot that large could never be delivered. The queue then holds at
//! most that message and the reserve; such a message is at most
//! [`Limits::max_message`].
//!
//! [`Limits::inbound_bytes`]: super::Limits::inbound_bytes
//! [`Limits::max_message`]: super::Limits::max_message

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::wire::Envelope;

/// An envelope the transport received, holding its bytes of the inbound
/// budget ([`Limits::inbound_bytes`](super::Limits::inbound_bytes)) until
/// the node thread takes it: converting it into an [`Envelope`] gives
/// them back. What [`inbound_channel`](crate::runtime::inbound_channel)
/// carries.
///
/// A transport given a channel of plain [`Envelope`]s converts each as it
/// hands it on, so that channel is bounded in count only.
#[derive(Debug)]
pub struct Inbound {
    env: Envelope,
    _charge: Option<Charge>,
}

impl Inbound {
    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.env
    }

    /// The envelope; its bytes go back to the budget.
    pub fn into_envelope(self) -> Envelope {
        self.env
    }

    pub(super) fn charged(env: Envelope, charge: Charge) -> Self {
        Self {
            env,
            _charge: Some(charge),
        }
    }
}

impl From<Inbound> for Envelope {
    fn from(q: Inbound) -> Self {
        q.into_envelope()
    }
}

/// An envelope that holds no budget (another transport's, or a test's).
impl From<Envelope> for Inbound {
    fn from(env: Envelope) -> Self {
        Self { env, _charge: None }
    }
}

/// Bytes an envelope takes in the queue: its payloads and the envelope
/// itself (so that an empty heartbeat is not free).
pub(super) fn queued_len(env: &Envelope) -> usize {
    env.raft.len() + env.control.len() + env.piece.len() + size_of::<Envelope>()
}

/// Which share of the budget an envelope takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// An envelope that arrived in one frame: may use the whole budget,
    /// and has the reserve to itself.
    Small,
    /// A message reassembled from fragments: the budget less the reserve.
    Large,
}

#[derive(Debug, Default)]
struct Held {
    small: usize,
    large: usize,
}

/// The bytes all of a transport's connections have handed on and the node
/// thread has not taken; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct InboundBudget {
    limit: usize,
    reserve: usize,
    held: Mutex<Held>,
    freed: Condvar,
}

impl InboundBudget {
    /// A budget of `limit` bytes, a quarter of it reserved for small
    /// envelopes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            reserve: limit / 4,
            held: Mutex::new(Held::default()),
            freed: Condvar::new(),
        }
    }

    /// Bytes queued now.
    pub(crate) fn queued(&self) -> usize {
        let h = self.held.lock();
        h.small + h.large
    }

    fn fits(&self, h: &Held, len: usize, lane: Lane) -> bool {
        let total = h.small + h.large;
        match lane {
            Lane::Small => {
                total.saturating_add(len) <= self.limit
                    || h.small.saturating_add(len) <= self.reserve
            }
            Lane::Large => {
                let share = self.limit - self.reserve;
                total.saturating_add(len) <= share
                    || (len > share && h.large == 0 && h.small <= self.reserve)
            }
        }
    }

    /// Takes `len` bytes in `lane`, waiting while they do not fit: it
    /// calls `waiting` when the wait begins and every `every` after, and
    /// gives up (`None`) when that returns `false`.
    pub(super) fn take(
        self: &Arc<Self>,
        len: usize,
        lane: Lane,
        every: Duration,
        waiting: &mut dyn FnMut() -> bool,
    ) -> Option<Charge> {
        let mut h = self.held.lock();
        let mut next: Option<Instant> = None;
        while !self.fits(&h, len, lane) {
            // Asked when the wait begins and every `every` after, however
            // often the budget is woken meanwhile.
            let now = Instant::now();
            let due = match next {
                Some(t) if now < t => t,
                _ => {
                    // Called without the lock: it may write to a socket.
                    let go_on = parking_lot::MutexGuard::unlocked(&mut h, &mut *waiting);
                    if !go_on {
                        return None;
                    }
                    *next.insert(now + every)
                }
            };
            let _ = self.freed.wait_until(&mut h, due);
        }
        match lane {
            Lane::Small => h.small += len,
            Lane::Large => h.large += len,
        }
        Some(Charge {
            budget: self.clone(),
            len,
            lane,
        })
    }

    /// Takes `len` bytes in `lane` if they fit now.
    #[cfg(test)]
    fn try_take(self: &Arc<Self>, len: usize, lane: Lane) -> Option<Charge> {
        self.take(len, lane, Duration::ZERO, &mut || false)
    }
}

/// Bytes of the budget held by one queued envelope, given back when it is
/// dropped.
#[derive(Debug)]
pub(super) struct Charge {
    budget: Arc<InboundBudget>,
    len: usize,
    lane: Lane,
}

impl Drop for Charge {
    fn drop(&mut self) {
        let mut h = self.budget.held.lock();
        match self.lane {
            Lane::Small => h.small -= self.len,
            Lane::Large => h.large -= self.len,
        }
        drop(h);
        self.budget.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: usize) -> Arc<InboundBudget> {
        Arc::new(InboundBudget::new(limit))
    }

    /// Large messages share the budget less its reserve; the last one in
    /// waits until one queued is taken.
    #[test]
    fn large_messages_stop_short_of_the_reserve() {
        let b = budget(400);
        let first = b.try_take(200, Lane::Large).expect("fits");
        let second = b.try_take(100, Lane::Large).expect("fits: 300 of 300");
        assert!(b.try_take(1, Lane::Large).is_none(), "past 400 - 100");
        assert_eq!(b.queued(), 300);
        drop(first);
        assert_eq!(b.queued(), 100);
        let third = b.try_take(200, Lane::Large).expect("fits again");
        drop((second, third));
        assert_eq!(b.queued(), 0);
    }

    /// Small envelopes keep the reserve whatever large ones hold, and may
    /// use the whole budget when large ones leave it free.
    #[test]
    fn small_envelopes_keep_their_reserve() {
        let b = budget(400);
        let large = b.try_take(300, Lane::Large).expect("fits");
        let small = b.try_take(100, Lane::Small).expect("the reserve");
        assert!(
            b.try_take(1, Lane::Small).is_none(),
            "budget and reserve full"
        );
        drop((large, small));
        let all: Vec<_> = (0..4)
            .map(|_| b.try_take(100, Lane::Small).expect("the whole budget"))
            .collect();
        assert!(b.try_take(1, Lane::Small).is_none());
        assert!(b.try_take(1, Lane::Large).is_none());
        drop(all);
        assert_eq!(b.queued(), 0);
    }

    /// A message larger than the large share goes alone, never beside
    /// another large one nor into more than the reserve of small ones, and
    /// still leaves the reserve.
    #[test]
    fn an_oversized_message_goes_alone() {
        let b = budget(400);
        let smalls = [(); 2].map(|()| b.try_take(100, Lane::Small).expect("fits"));
        assert!(
            b.try_take(1000, Lane::Large).is_none(),
            "small ones past the reserve"
        );
        drop(smalls);
        let huge = b.try_take(1000, Lane::Large).expect("alone");
        assert!(b.try_take(1, Lane::Large).is_none(), "not beside it");
        let small = b.try_take(100, Lane::Small).expect("the reserve");
        drop((huge, small));
        let other = b.try_take(10, Lane::Large).expect("fits");
        assert!(b.try_take(1000, Lane::Large).is_none(), "not alone now");
        drop(other);
    }

    /// A waiting connection goes on once an envelope is taken, and is
    /// asked at every wake whether to keep waiting.
    #[test]
    fn a_waiting_connection_goes_on_when_bytes_are_given_back() {
        let b = budget(400);
        let queued = b.try_take(300, Lane::Large).expect("fits");
        let b2 = b.clone();
        let wakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let asked = wakes.clone();
        let waiter = std::thread::spawn(move || {
            b2.take(300, Lane::Large, Duration::from_millis(5), &mut || {
                asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                true
            })
        });
        // Asked at the start and again after a period of 5 ms (waited for,
        // not slept on: a loaded host may not run the waiter for a while).
        let start = Instant::now();
        while wakes.load(std::sync::atomic::Ordering::SeqCst) < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "never asked again"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(b.queued(), 300, "the waiter took nothing yet");
        drop(queued);
        let taken = waiter.join().unwrap();
        assert!(taken.is_some());
        assert_eq!(b.queued(), 300);
        // Giving up: `waiting` says stop.
        assert!(b
            .take(300, Lane::Large, Duration::from_millis(1), &mut || false)
            .is_none());
    }
}

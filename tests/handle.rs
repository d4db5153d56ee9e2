//! The runtime's [`Handle`] over real loopback sockets (plaintext) with
//! durable storage: clones, state machine queries, proposals awaited as
//! futures by a hand-written executor (no async runtime), maintenance and
//! a graceful shutdown of the leader.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use support::{partner, Cluster, Options, Recorder, CM01B, CM02A, CM02B, W1};
use survivable_core::events::LeadershipCause;
use survivable_core::node::NodeRole;
use survivable_core::topology::NodeId;
use survivable_core::{ActivateError, DrainError, Event, QueryError, TransferError};

fn plaintext() -> Cluster {
    Cluster::with(Options {
        tls: false,
        ..Options::default()
    })
}

fn denver_leads(c: &Cluster) -> NodeId {
    c.wait_for(Duration::from_secs(20), "Denver to lead", |c| {
        c.denver_leader().is_some()
    });
    c.denver_leader().expect("Denver leads")
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread, parking between polls.
fn block_on<F: Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

/// A state machine no member runs.
struct Counter;

impl survivable_core::StateMachine for Counter {
    fn apply(&mut self, _: u64, _: &[u8]) -> Vec<u8> {
        Vec::new()
    }
    fn snapshot(&self) -> Vec<u8> {
        Vec::new()
    }
    fn restore(&mut self, _: &[u8]) -> Result<(), survivable_core::RestoreError> {
        Ok(())
    }
}

#[test]
fn clones_queries_and_awaited_proposals() {
    let c = plaintext();
    let leader = denver_leads(&c);
    let handle = c.members[&CM02A].handle.clone();
    // A clone dropped leaves the member running.
    drop(handle.clone());
    assert!(c.members[&CM02A].handle.is_running());

    // Proposals awaited together: both futures pending at once, completed
    // by the node thread.
    let a = handle.propose_async(b"async-1".to_vec()).unwrap();
    let b = handle.propose_async(b"async-2".to_vec()).unwrap();
    let (a, b) = block_on(async { (a.await, b.await) });
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    let point = block_on(handle.read_async().unwrap()).unwrap();
    assert!(point >= b.unwrap().index);

    // A linearizable query at a follower sees a write just acknowledged
    // at the leader.
    let at_leader = &c.members[&leader].handle;
    at_leader
        .propose_timeout(b"seen".to_vec(), Duration::from_secs(5))
        .unwrap();
    let seen = handle
        .read_query(Duration::from_secs(5), |r: &Recorder| {
            r.applied.lock().iter().any(|c| c == b"seen")
        })
        .unwrap();
    assert!(seen);
    let n = handle.query(|r: &Recorder| r.applied.lock().len()).unwrap();
    assert!(n >= 3);
    let wrong = handle.query(|_: &Counter| ()).unwrap_err();
    assert!(
        matches!(wrong, QueryError::WrongStateMachine { .. }),
        "{wrong}"
    );

    // Maintenance calls through the handle, refusals typed. The leader
    // named is Denver's, not necessarily the one found at the start: a
    // stall of the machine can move leadership inside the pair.
    let refused = handle.transfer_leader(CM01B).unwrap_err();
    assert!(
        matches!(refused, TransferError::NotLeader { leader: Some(l) } if support::in_denver(l)),
        "{refused:?} (found {leader} leading)"
    );
    assert!(handle.activate().is_err(), "the main site answers");
    handle.drain().unwrap();
    assert_eq!(handle.drain(), Err(DrainError::AlreadyDrained));
    c.wait_for(Duration::from_secs(5), "drained in status", |c| {
        c.status(CM02A).drained
    });
    handle.undrain().unwrap();
    // The reply comes as the node thread carries the request out; the
    // events follow when it hands its outputs on, right after.
    let rx = handle.events();
    let (mut drained, mut undrained) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(drained && undrained) && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::Drained) => drained = true,
            Ok(Event::Undrained) => undrained = true,
            _ => {}
        }
    }
    assert!(
        drained && undrained,
        "drained {drained}, undrained {undrained}"
    );
}

/// Proposes at `at` in a loop until `stop`, each with a generous timeout;
/// returns (acknowledgement times, failures).
fn writer(
    handle: survivable_core::runtime::Handle,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<(Vec<Instant>, Vec<String>)> {
    thread::spawn(move || {
        let (mut acks, mut failed) = (Vec::new(), Vec::new());
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let cmd = format!("w-{i}").into_bytes();
            i += 1;
            match handle.propose_timeout(cmd, Duration::from_secs(20)) {
                Ok(_) => acks.push(Instant::now()),
                Err(e) => failed.push(e.to_string()),
            }
            thread::sleep(Duration::from_millis(5));
        }
        (acks, failed)
    })
}

#[test]
fn a_graceful_shutdown_of_the_leader_hands_over_without_failing_a_proposal() {
    let c = plaintext();
    let leader = denver_leads(&c);
    let next = partner(leader);
    c.settled(CM02B);
    let stop = Arc::new(AtomicBool::new(false));
    // Writers at the members that stay: the partner and Paris.
    let writers: Vec<_> = [next, CM02A, CM02B, W1]
        .iter()
        .map(|id| writer(c.members[id].handle.clone(), stop.clone()))
        .collect();
    thread::sleep(Duration::from_millis(500));
    let t0 = Instant::now();
    c.members[&leader].handle.shutdown();
    let stopped_after = t0.elapsed();
    let stopped = &c.members[&leader].handle;
    assert!(!stopped.is_running());
    // A stopped member says so, on every call.
    assert_eq!(stopped.drain(), Err(DrainError::Stopped));
    assert_eq!(stopped.transfer_leader(next), Err(TransferError::Stopped));
    assert_eq!(stopped.activate(), Err(ActivateError::Stopped));
    assert_eq!(stopped.query(|_: &Recorder| ()), Err(QueryError::Stopped));
    assert!(stopped.propose_async(b"late".to_vec()).is_err());
    c.wait_for(Duration::from_secs(10), "the partner to lead", |c| {
        c.status(next).role == NodeRole::Leader
    });
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let mut acks = Vec::new();
    for w in writers {
        let (a, failed) = w.join().unwrap();
        assert!(failed.is_empty(), "failed proposals: {failed:?}");
        acks.extend(a);
    }
    acks.sort();
    // The write outage: the longest gap between acknowledgements around
    // the shutdown.
    let outage = acks
        .windows(2)
        .filter(|w| w[1] >= t0)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    println!(
        "graceful shutdown of {leader}: stopped after {} ms, write outage {} ms ({} acks)",
        stopped_after.as_millis(),
        outage.as_millis(),
        acks.len()
    );
    // Generous bound from the path: the shutdown waits at most two
    // election timeouts; the transfer itself needs a LAN round or two.
    let election = c.topology.timers().election;
    assert!(stopped_after <= 2 * election + Duration::from_secs(1));
    assert!(outage <= 2 * election, "outage {outage:?}");
    // The graceful stop was a transfer, not a failover.
    let became: Vec<Event> = c.members[&next]
        .handle
        .events()
        .try_iter()
        .filter(|e| matches!(e, Event::BecameLeader { .. }))
        .collect();
    assert!(
        became.iter().any(|e| matches!(
            e,
            Event::BecameLeader {
                cause: LeadershipCause::Transfer,
                ..
            }
        )),
        "{became:?}"
    );
}

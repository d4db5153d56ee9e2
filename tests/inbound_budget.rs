//! The inbound queue is bounded in bytes, over real loopback sockets: two
//! members each send a 100 MiB snapshot to a third whose node thread takes
//! nothing; the second waits (its connection reads nothing) rather than
//! queueing 200 MiB, a heartbeat still gets through meanwhile, and the
//! bytes queued never exceed the budget. Once the node takes the first
//! snapshot, the second follows, and each connection's order is kept.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use survivable_core::topology::NodeId;
use survivable_core::transport::{
    free_loopback_addr, Inbound, Limits, TcpTransport, Transport as _, TransportStats,
};
use survivable_core::wire::{Envelope, PROTOCOL_VERSION};

const CLUSTER: u64 = 7;
const SNAPSHOT: usize = 100 << 20;

fn transport<I>(
    me: u64,
    listen: SocketAddr,
    peers: &BTreeMap<u64, SocketAddr>,
    inbound: Sender<I>,
) -> TcpTransport
where
    I: From<Inbound> + Send + 'static,
{
    let peers = peers
        .iter()
        .filter(|(&id, _)| id != me)
        .map(|(&id, &a)| (NodeId(id), a))
        .collect();
    support::plaintext_transport(CLUSTER, NodeId(me), listen, peers, inbound)
}

fn envelope(from: u64, to: u64, msg: &Message) -> Envelope {
    Envelope {
        version: PROTOCOL_VERSION,
        cluster_id: CLUSTER,
        epoch: 1,
        from,
        to,
        raft: msg.write_to_bytes().unwrap(),
        ..Envelope::default()
    }
}

fn snapshot(from: u64, to: u64) -> Envelope {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    (m.from, m.to) = (from, to);
    m.mut_snapshot().data = vec![from as u8; SNAPSHOT].into();
    envelope(from, to, &m)
}

fn heartbeat(from: u64, to: u64) -> Envelope {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    (m.from, m.to) = (from, to);
    envelope(from, to, &m)
}

/// Waits until `what` holds of the receiver's counters. The bound is on a
/// hang only (each step is a loopback transfer of at most 100 MiB).
fn wait_for(t: &TcpTransport, what: &str, ok: impl Fn(&TransportStats) -> bool) {
    let start = Instant::now();
    while !ok(&t.stats()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: {:?}",
            t.stats()
        );
        thread::sleep(Duration::from_millis(2));
    }
}

/// The next envelope the node thread would take.
fn take(rx: &Receiver<Inbound>) -> Envelope {
    let q = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("an envelope");
    q.into_envelope()
}

#[test]
fn a_heartbeat_gets_through_while_snapshots_fill_the_inbound_budget() {
    let budget = Limits::default().inbound_bytes;
    let addrs: BTreeMap<u64, SocketAddr> = (1..=3)
        .map(|id| (id, free_loopback_addr().unwrap()))
        .collect();
    let (tx, rx) = crossbeam_channel::bounded::<Inbound>(16 << 10);
    let a = Arc::new(transport(1, addrs[&1], &addrs, tx));
    let b = transport(
        2,
        addrs[&2],
        &addrs,
        crossbeam_channel::unbounded::<Envelope>().0,
    );
    let c = transport(
        3,
        addrs[&3],
        &addrs,
        crossbeam_channel::unbounded::<Envelope>().0,
    );

    // The most bytes ever seen queued, sampled every millisecond.
    let (stop, most) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let sampler = {
        let (a, stop, most) = (a.clone(), stop.clone(), most.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                most.fetch_max(a.stats().inbound_queued_bytes, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(1));
            }
        })
    };

    // B's snapshot is queued: 100 MiB of the 192 MiB reassembled messages
    // may take (the budget less the quarter kept for small envelopes).
    assert!(b.send(snapshot(2, 1)));
    wait_for(&a, "B's snapshot queued", |s| s.messages_reassembled == 1);
    // C's would make 200 MiB: its connection waits once it has it.
    assert!(c.send(snapshot(3, 1)));
    wait_for(&a, "C's snapshot waiting", |s| s.inbound_waits == 1);
    // C's heartbeat is behind its snapshot on its connection; B's comes
    // in the reserve.
    assert!(c.send(heartbeat(3, 1)));
    assert!(b.send(heartbeat(2, 1)));
    wait_for(&a, "B's heartbeat queued", |s| s.frames_in == 2);
    // A frame is counted just before it is handed on: wait for the hand-off
    // too, not only the count, before checking what is queued.
    let start = Instant::now();
    while rx.len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "{:?}", a.stats());
        thread::sleep(Duration::from_millis(2));
    }
    let s = a.stats();
    assert_eq!(rx.len(), 2, "only B's snapshot and heartbeat: {s:?}");
    assert_eq!(s.messages_reassembled, 1, "C's snapshot must still wait");
    let queued = s.inbound_queued_bytes as usize;
    assert!(queued > SNAPSHOT && queued < budget, "{queued}");

    // The node takes B's snapshot: C's goes in, then its heartbeat.
    let first = take(&rx);
    assert!(first.carries_snapshot() && first.from == 2);
    assert_eq!(first.raft.len(), snapshot(2, 1).raft.len());
    drop(first);
    assert_eq!(take(&rx), heartbeat(2, 1));
    let second = take(&rx);
    assert!(second.carries_snapshot() && second.from == 3);
    assert_eq!(take(&rx), heartbeat(3, 1));
    drop(second);
    wait_for(&a, "all given back", |s| s.inbound_queued_bytes == 0);

    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let most = most.load(Ordering::Relaxed) as usize;
    assert!(most <= budget, "{most} bytes queued, budget {budget}");
    assert!(
        most > SNAPSHOT,
        "{most}: the sampler saw the snapshot queued"
    );
    println!("most queued: {most} bytes of {budget}");
}

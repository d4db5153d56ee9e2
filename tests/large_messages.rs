//! Messages larger than a frame over real loopback sockets: a member that
//! was down while the others compacted their logs comes back and catches
//! up from a snapshot larger than the 16 MiB frame limit (the threaded
//! runtime, durable storage, mutual TLS); and the transport's writer seen
//! from a bare peer: small envelopes go between the fragments of a
//! snapshot but never overtake another large envelope, and large envelopes
//! are bounded by the message limit.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use support::{Cluster, Options, CM02B};
use survivable_core::topology::NodeId;
use survivable_core::transport::{
    free_loopback_addr, Limits, TcpConfig, TcpTransport, Transport as _, TransportSecurity,
};
use survivable_core::wire::{
    encode_frame, Envelope, FrameDecoder, Hello, Reassembler, PROTOCOL_VERSION,
};

/// Commands of 1 MiB (the default `NodeConfig::max_command_len`).
const BIG: usize = 1 << 20;
/// How many: the state machine's snapshot holds them all (~40 MiB).
const BIG_COMMANDS: usize = 40;
/// Small commands after them, enough for every member to take a snapshot
/// (every 1024 entries) and compact the big ones away (it keeps 256).
const SMALL_COMMANDS: usize = 1200;

fn big_command(i: usize) -> Vec<u8> {
    // Not all one byte, so nothing on the way can shrink it much.
    let mut x = i as u64 + 1;
    (0..BIG)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Proposes `commands` at the leader, `window` at a time, and waits for
/// each to be applied.
fn propose_all(c: &Cluster, commands: impl Iterator<Item = Vec<u8>>, window: usize) {
    let commands: Vec<Vec<u8>> = commands.collect();
    for chunk in commands.chunks(window) {
        c.wait_for(Duration::from_secs(20), "a leader", |c| {
            c.leader().is_some()
        });
        let leader = c.leader().expect("a leader");
        let pending: Vec<_> = chunk
            .iter()
            .map(|cmd| c.members[&leader].handle.propose_async(cmd.clone()))
            .collect();
        for p in pending {
            let r = p.map(|p| p.wait_timeout(Duration::from_secs(20)));
            assert!(matches!(r, Ok(Ok(_))), "{r:?}");
        }
    }
}

#[test]
fn a_member_catches_up_from_a_snapshot_larger_than_a_frame() {
    let mut c = Cluster::with(Options {
        absent: vec![CM02B],
        ..Options::default()
    });
    c.wait_for(Duration::from_secs(20), "Denver to lead", |c| {
        c.denver_leader().is_some()
    });
    propose_all(&c, (0..BIG_COMMANDS).map(big_command), 4);
    let small = (0..SMALL_COMMANDS).map(|i| format!("small-{i}").into_bytes());
    propose_all(&c, small, 200);
    // The snapshot (40 MiB) is taken on a worker thread and the log is
    // compacted when it is stored: that may finish after the last small
    // command is applied, so wait for it rather than look once.
    c.wait_for(
        Duration::from_secs(20),
        "the leader to compact the big entries away",
        |c| {
            c.leader()
                .is_some_and(|l| c.status(l).first_index > BIG_COMMANDS as u64 + 10)
        },
    );
    let leader = c.leader().expect("a leader");

    // Whoever leads when CM02b is back sends the snapshot.
    let fragments_out = |c: &Cluster| -> u64 {
        c.members
            .values()
            .map(|m| m.transport.stats().fragments_out)
            .sum()
    };
    let sent_before = fragments_out(&c);
    let rss_before = support::rss_kib();
    let started = Instant::now();
    c.start(CM02B);
    // A bound on a hang, not a measured time.
    c.wait_for(
        Duration::from_secs(120),
        "CM02b to catch up from the snapshot",
        |c| {
            c.status(CM02B).applied >= c.status(leader).applied
                && c.applied(CM02B).len() == c.applied(leader).len()
        },
    );
    let took = started.elapsed();
    let expected = c.applied(leader);
    let state: usize = expected.iter().map(Vec::len).sum();
    assert!(state > 40 << 20, "only {state} bytes of state");
    assert!(c.applied(CM02B) == expected, "CM02b's state differs");
    let s = c.status(CM02B);
    assert!(
        s.first_index > BIG_COMMANDS as u64 + 10,
        "CM02b did not start from a snapshot (first index {})",
        s.first_index
    );
    let (sent, inn) = (fragments_out(&c) - sent_before, c.stats(CM02B));
    assert!(
        sent > 16,
        "the snapshot did not travel in fragments: {sent}"
    );
    assert!(inn.messages_reassembled >= 1, "{inn:?}");
    println!(
        "caught up from a {} MiB state in {took:?}: {sent} fragments sent, {} messages reassembled at CM02b; resident memory grew by {} MiB; {} warnings logged (SC_TEST_LOG=1 shows them)",
        state >> 20,
        inn.messages_reassembled,
        support::rss_kib().saturating_sub(rss_before) >> 10,
        c.warnings.lock().unwrap().len(),
    );
    // The member now follows and serves.
    c.assert_serving("the catch-up");
}

/// What the bare peer read.
#[derive(Debug)]
enum Got {
    /// A fragment: its message and index.
    Fragment(u64, u32),
    /// A whole envelope, or a message complete with this fragment.
    Envelope(Envelope),
}

/// Node 2 as a bare peer of node 1 at `listener`: confirms the hello,
/// then, once `reading` is set, reads frames slowly (so the writer waits
/// on the socket) and reports each one.
fn bare_peer(listener: TcpListener, reading: Arc<AtomicBool>) -> Receiver<Got> {
    let (tx, rx): (Sender<Got>, _) = crossbeam_channel::unbounded();
    thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut frames = FrameDecoder::default();
        let mut messages = Reassembler::new(64 << 20);
        let mut buf = vec![0u8; 256 << 10];
        let mut hello = None;
        while hello.is_none() {
            let n = tcp.read(&mut buf).unwrap();
            frames.push(&buf[..n]);
            hello = frames.next_frame().unwrap();
        }
        assert_eq!(Hello::from_bytes(&hello.unwrap()), Ok(Hello::new(7, 1, 2)));
        let mut answer = Vec::new();
        encode_frame(&Hello::new(7, 2, 1), &mut answer).unwrap();
        tcp.write_all(&answer).unwrap();
        while !reading.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(5));
        }
        loop {
            let Ok(n) = tcp.read(&mut buf) else { return };
            if n == 0 {
                return;
            }
            frames.push(&buf[..n]);
            while let Some(frame) = frames.next_frame().unwrap() {
                if frame.is_empty() {
                    continue; // a keepalive
                }
                let env = Envelope::from_bytes(&frame).unwrap();
                if let Some(f) = &env.fragment {
                    let _ = tx.send(Got::Fragment(f.message, f.index));
                    thread::sleep(Duration::from_millis(2));
                }
                if let Some(whole) = messages.push(env).unwrap() {
                    let _ = tx.send(Got::Envelope(whole));
                }
            }
        }
    });
    rx
}

/// A raft `MsgSnapshot` to the peer, carrying `len` bytes of state.
fn snapshot(len: usize, seed: u8) -> Envelope {
    use protobuf::Message as _;
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(raft::eraftpb::MessageType::MsgSnapshot);
    (m.from, m.to) = (1, 2);
    let state: Vec<u8> = (0..len).map(|i| (i >> 7) as u8 ^ seed).collect();
    m.mut_snapshot().data = state.into();
    to_peer(m.write_to_bytes().unwrap())
}

fn to_peer(raft: Vec<u8>) -> Envelope {
    Envelope {
        version: PROTOCOL_VERSION,
        cluster_id: 7,
        epoch: 1,
        from: 1,
        to: 2,
        raft,
        ..Envelope::default()
    }
}

/// Waits for the next thing the peer read (a bound on a hang).
fn next(got: &Receiver<Got>) -> Got {
    got.recv_timeout(Duration::from_secs(60))
        .expect("the peer read nothing")
}

#[test]
fn small_envelopes_overtake_snapshots_only_and_large_ones_are_bounded() {
    let listener = TcpListener::bind(free_loopback_addr().unwrap()).unwrap();
    let peer_addr: SocketAddr = listener.local_addr().unwrap();
    let reading = Arc::new(AtomicBool::new(false));
    let got = bare_peer(listener, reading.clone());
    let mut cfg = TcpConfig::new(
        7,
        NodeId(1),
        free_loopback_addr().unwrap(),
        BTreeMap::from([(NodeId(2), peer_addr)]),
        TransportSecurity::InsecurePlaintextLoopbackOnly,
    );
    // The bare peer never writes after its hello, not even a keepalive:
    // with the default idle timeout (2 s) a run slowed down by a loaded
    // host had its connection taken for dead and replaced, and the bare
    // peer accepts one connection only ("the peer read nothing").
    cfg.limits = Limits {
        max_message: 64 << 20,
        idle_timeout: Duration::from_secs(3600),
        ..Limits::default()
    };
    let (inbound, _rx) = crossbeam_channel::bounded::<Envelope>(16);
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let t = TcpTransport::start(cfg, inbound, logger).unwrap();

    // A 40 MiB snapshot is queued; another would make 80 MiB of large
    // envelopes for the peer, over the 64 MiB limit; 65 MiB is over it
    // alone. The peer does not read yet, so the first cannot be gone.
    let big = |seed| snapshot(40 << 20, seed);
    assert!(t.send(big(1)));
    assert!(!t.send(big(2)));
    assert!(!t.send(to_peer(vec![0; 65 << 20])));
    // A 2 MiB snapshot fits the limit, but one snapshot is on its way:
    // raft's retry of it would only follow it in full.
    assert!(!t.send(snapshot(2 << 20, 4)));
    assert_eq!(t.stats().dropped, 3);

    // Once its first fragment is read, a heartbeat-sized envelope is
    // queued: it comes before the snapshot's last fragment.
    reading.store(true, Ordering::Relaxed);
    assert!(matches!(next(&got), Got::Fragment(1, 0)));
    let small = to_peer(b"heartbeat".to_vec());
    assert!(t.send(small.clone()));
    let mut fragments_before_small = None;
    let mut seen = 1;
    let whole = loop {
        match next(&got) {
            Got::Fragment(1, i) => {
                assert_eq!(i, seen);
                seen += 1;
            }
            Got::Envelope(e) if e == small => fragments_before_small = Some(seen),
            Got::Envelope(e) => break e,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(seen, 41);
    assert!(whole == big(1), "the snapshot differs");
    let before = fragments_before_small.expect("the small envelope came after the snapshot");
    println!("the small envelope came after {before} of 41 fragments");

    // Sent in full, the first no longer counts (nor holds the snapshot
    // slot): the next one goes.
    let wait = Instant::now();
    while t.stats().messages_fragmented < 1 {
        assert!(wait.elapsed() < Duration::from_secs(60), "{:?}", t.stats());
        thread::sleep(Duration::from_millis(5));
    }
    assert!(t.send(big(3)));
    let whole = loop {
        if let Got::Envelope(e) = next(&got) {
            break e;
        }
    };
    assert!(whole == big(3), "the snapshot differs");

    // Any other large envelope (an append of large commands) keeps its
    // place: what was queued after it comes after it.
    let append = to_peer(vec![3; 5 << 20]);
    assert!(t.send(append.clone()));
    assert!(t.send(small.clone()));
    let mut order = Vec::new();
    while order.len() < 2 {
        if let Got::Envelope(e) = next(&got) {
            order.push(e == small);
        }
    }
    assert_eq!(
        order,
        [false, true],
        "the small envelope overtook the append"
    );
    // The writer counts a frame after writing it, so the peer can read the
    // last one before it is counted: wait for the counts, then check them.
    let wait = Instant::now();
    while t.stats().frames_out < 5 || t.stats().messages_fragmented < 3 {
        assert!(wait.elapsed() < Duration::from_secs(60), "{:?}", t.stats());
        thread::sleep(Duration::from_millis(5));
    }
    let s = t.stats();
    assert_eq!((s.fragments_out, s.messages_fragmented), (87, 3), "{s:?}");
    assert_eq!((s.frames_out, s.dropped), (5, 3), "{s:?}");
    t.shutdown();
}

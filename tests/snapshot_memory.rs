//! How many whole copies of a 100 MiB snapshot a member holds at once on
//! the way through the real transport over loopback, sender and receiver
//! measured apart (each against a bare peer speaking the wire protocol),
//! from the process's peak resident memory (Linux: `VmHWM`, reset through
//! `/proc/self/clear_refs`). One test in this binary, so nothing else
//! allocates meanwhile.
//!
//! Sender: the raft snapshot as storage keeps it (copy 1), the raft
//! `Message` carrying it (shares the bytes), its protobuf encoding in the
//! envelope (copy 2), the fragments (slices of the envelope, written as
//! they go). Receiver: the reassembly buffer, which becomes the envelope
//! (copy 1), the queue (moves it), the decoded `Message` (copy 2, while
//! the envelope is alive), the state machine's restored state (copy 2
//! again, once the envelope is gone).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType, Snapshot};
use survivable_core::topology::NodeId;
use survivable_core::transport::{
    free_loopback_addr, Inbound, TcpConfig, TcpTransport, Transport as _, TransportSecurity,
};
use survivable_core::wire::{
    encode_frame, Envelope, Fragmenter, FrameDecoder, Hello, FRAGMENT_LEN, PROTOCOL_VERSION,
};

const CLUSTER: u64 = 7;
const MIB: usize = 1 << 20;
const STATE: usize = 100 * MIB;
/// What the path needs beside whole copies: a fragment being written or
/// read (1 MiB), socket and read buffers, the threads' stacks, and the
/// allocator's rounding. Far below one copy, so a copy too many fails.
const SLACK: usize = 24 * MIB;

/// A kB figure of `/proc/self/status`, in bytes.
fn status(field: &str) -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Resets the peak to the resident size now, and returns that.
fn reset_peak() -> usize {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    status("VmRSS:")
}

/// The peak since the reset, above `base`.
fn peak_above(base: usize) -> usize {
    status("VmHWM:").saturating_sub(base)
}

fn copies(bytes: usize) -> f64 {
    bytes as f64 / STATE as f64
}

/// Application state: not all one byte, so every page is touched.
fn state() -> Vec<u8> {
    (0..STATE as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

fn snapshot_message(from: u64, to: u64, stored: &Snapshot) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    (m.from, m.to) = (from, to);
    m.set_snapshot(stored.clone()); // shares the bytes
    m
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

/// The sink never writes (not even a keepalive): with the default idle
/// timeout (2 s) a transfer slowed down by a loaded host had its
/// connection taken for dead and replaced, and the sink accepts one
/// connection only. An hour is more than any transfer here takes.
fn config(me: u64, listen: SocketAddr, peer: u64, addr: SocketAddr) -> TcpConfig {
    let mut cfg = TcpConfig::new(
        CLUSTER,
        NodeId(me),
        listen,
        BTreeMap::from([(NodeId(peer), addr)]),
        TransportSecurity::InsecurePlaintextLoopbackOnly,
    );
    cfg.limits.idle_timeout = Duration::from_secs(3600);
    cfg
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// Reads one hello frame from `tcp`.
fn read_hello(tcp: &mut TcpStream) -> Hello {
    let mut frames = FrameDecoder::default();
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the hello");
        frames.push(&buf[..n]);
        if let Some(frame) = frames.next_frame().unwrap() {
            return Hello::from_bytes(&frame).unwrap();
        }
    }
}

/// A peer that answers the hello of member 1 as member 2, then reads and
/// discards everything: the sender's side is measured alone.
fn sink(listener: TcpListener) {
    thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        assert_eq!(read_hello(&mut tcp), Hello::new(CLUSTER, 1, 2));
        let mut answer = Vec::new();
        encode_frame(&Hello::new(CLUSTER, 2, 1), &mut answer).unwrap();
        tcp.write_all(&answer).unwrap();
        let mut buf = vec![0u8; 256 << 10];
        while matches!(tcp.read(&mut buf), Ok(n) if n > 0) {}
    });
}

/// Waits for `ok` (a bound on a hang: a 100 MiB loopback transfer).
fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < Duration::from_secs(120), "{what}");
        thread::sleep(Duration::from_millis(2));
    }
}

/// Member 1 sends the snapshot to a sink; its peak, in bytes.
fn sender_peak() -> usize {
    let listener = TcpListener::bind(free_loopback_addr().unwrap()).unwrap();
    let cfg = config(
        1,
        free_loopback_addr().unwrap(),
        2,
        listener.local_addr().unwrap(),
    );
    sink(listener);
    let (tx, _rx) = crossbeam_channel::bounded::<Envelope>(16);
    let t = TcpTransport::start(cfg, tx, logger()).unwrap();
    let base = reset_peak();
    // Storage keeps the snapshot raft sends (the application's state is
    // not counted: a state machine may keep it in any form).
    let mut stored = Snapshot {
        data: state().into(),
        ..Snapshot::default()
    };
    stored.mut_metadata().index = 42;
    let msg = snapshot_message(1, 2, &stored);
    let env = envelope(1, 2, &msg);
    drop(msg);
    assert!(t.send(env));
    wait_until("the snapshot sent", || t.stats().messages_fragmented == 1);
    let peak = peak_above(base);
    drop(stored);
    t.shutdown();
    peak
}

/// Member 2 receives the snapshot from a bare member 1 and the node takes
/// it, decodes it and restores the state from it; its peak, in bytes.
/// The bare sender's envelope exists before the measure starts and until
/// it ends, so it is not counted.
fn receiver_peak() -> usize {
    let listen = free_loopback_addr().unwrap();
    let cfg = config(2, listen, 1, free_loopback_addr().unwrap());
    let (tx, rx) = crossbeam_channel::bounded::<Inbound>(16);
    let t = TcpTransport::start(cfg, tx, logger()).unwrap();
    let stored = Snapshot {
        data: state().into(),
        ..Snapshot::default()
    };
    let env = envelope(1, 2, &snapshot_message(1, 2, &stored));
    drop(stored);
    let whole = env.raft.len();
    let mut fragments = Fragmenter::new(env, 1, FRAGMENT_LEN);
    let base = reset_peak();
    let mut tcp = TcpStream::connect(listen).unwrap();
    let mut hello = Vec::new();
    encode_frame(&Hello::new(CLUSTER, 1, 2), &mut hello).unwrap();
    tcp.write_all(&hello).unwrap();
    assert_eq!(read_hello(&mut tcp), Hello::new(CLUSTER, 2, 1));
    let mut header = Vec::new();
    while let Some(piece) = fragments.next_fragment(&mut header) {
        tcp.write_all(&header).unwrap();
        tcp.write_all(piece).unwrap();
        header.clear();
    }
    let peak = node_takes(&rx, whole, base);
    drop((tcp, fragments));
    t.shutdown();
    peak
}

/// What the node thread does with the snapshot: take it off the queue,
/// decode it, restore the state from it. The peak above `base`.
fn node_takes(rx: &Receiver<Inbound>, whole: usize, base: usize) -> usize {
    let q = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the snapshot");
    let env = q.into_envelope();
    assert_eq!(env.raft.len(), whole);
    let reassembled = peak_above(base);
    let msg = env.raft_message().unwrap();
    drop(env);
    let decoded = peak_above(base);
    let restored: Vec<u8> = msg.get_snapshot().get_data().to_vec();
    drop(msg);
    let peak = peak_above(base);
    println!(
        "receiver: {:.2} copies reassembled, {:.2} through decoding, {:.2} through restoring",
        copies(reassembled),
        copies(decoded),
        copies(peak)
    );
    assert_eq!(restored.len(), STATE);
    peak
}

#[test]
fn a_100_mib_snapshot_is_held_at_most_twice_on_each_side() {
    let sent = sender_peak();
    let received = receiver_peak();
    println!(
        "peak above the start: sender {} MiB ({:.2} copies), receiver {} MiB ({:.2} copies) of a {} MiB snapshot",
        sent / MIB,
        copies(sent),
        received / MIB,
        copies(received),
        STATE / MIB
    );
    assert!(
        sent <= 2 * STATE + SLACK,
        "sender: {:.2} copies",
        copies(sent)
    );
    assert!(
        received <= 2 * STATE + SLACK,
        "receiver: {:.2} copies",
        copies(received)
    );
}

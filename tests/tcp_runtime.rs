//! The threaded runtime over real loopback sockets with durable storage:
//! the Denver/Paris cluster as five members in this process, each with its
//! own transport (mutual TLS, certificates made for the run), data
//! directory and node thread. The last test runs the loud plaintext option
//! instead, and feeds it hostile plaintext connections and a member
//! configured for TLS (mixed security modes).

mod support;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{partner, Cluster, Options, Recorder, CM01A, CM01B, CM02A, CM02B, W1};
use survivable_core::runtime::start_member;
use survivable_core::topology::NodeId;
use survivable_core::transport::{
    ConnectionError, Dialer, TcpConfig, TlsFiles, TlsRefusal, TransportSecurity,
};
use survivable_core::ProposeError;

/// Which of Denver's pair leads is never asserted: they have the same
/// priority, and a stall of a loaded machine may move leadership inside the
/// pair at any time. The tests assert on the site, and read what only the
/// leader knows from whoever leads.
fn denver_leads(c: &Cluster) -> NodeId {
    c.wait_for(Duration::from_secs(20), "Denver to lead", |c| {
        c.denver_leader().is_some()
    });
    c.denver_leader().expect("Denver leads")
}

#[test]
fn the_standby_takes_over_and_the_old_primary_catches_up_from_disk() {
    let mut c = Cluster::new();
    let mut acked = Vec::new();
    for i in 0..100 {
        let cmd = format!("call-{i}").into_bytes();
        let at = if i % 2 == 0 { denver_leads(&c) } else { CM02A };
        let r = c.members[&at]
            .handle
            .propose_timeout(cmd.clone(), Duration::from_secs(5));
        assert!(r.is_ok(), "proposal {i}: {r:?}");
        acked.push(cmd);
    }

    // Whoever leads now (a stall may have moved it inside the pair) is
    // killed; its partner takes over.
    let killed = denver_leads(&c);
    let standby = partner(killed);
    c.kill(killed);
    c.wait_for(Duration::from_secs(10), "the standby to lead", |c| {
        c.leader() == Some(standby)
    });
    let r = c.members[&standby]
        .handle
        .propose_timeout(b"after".to_vec(), Duration::from_secs(5));
    assert!(r.is_ok(), "{r:?}");
    acked.push(b"after".to_vec());

    // No acknowledged proposal is lost: the new leader applied all of them.
    let at_standby = c.applied(standby);
    for cmd in &acked {
        assert!(
            at_standby.contains(cmd),
            "{} lost",
            String::from_utf8_lossy(cmd)
        );
    }

    // The killed member restarts from its data directory and catches up.
    c.start(killed);
    c.wait_for(
        Duration::from_secs(10),
        "the restarted member to catch up",
        |c| {
            c.members[&killed].handle.status().applied
                >= c.members[&standby].handle.status().applied
                && c.applied(killed).len() == c.applied(standby).len()
        },
    );
    assert_eq!(c.applied(killed), c.applied(standby));
    c.wait_for(
        Duration::from_secs(10),
        "it to follow Denver's leader",
        |c| {
            let s = c.members[&killed].handle.status();
            s.leader.is_some_and(support::in_denver) && s.leader == c.leader()
        },
    );
}

#[test]
fn a_read_at_any_member_sees_every_write_acknowledged_before_it() {
    let mut c = Cluster::new();
    denver_leads(&c);
    let members = [CM01A, CM01B, CM02A, CM02B, W1];
    for i in 0..40 {
        let (writer, reader) = (members[i % 5], members[(i * 3 + 1) % 5]);
        let cmd = format!("call-{i}").into_bytes();
        let r = c.members[&writer]
            .handle
            .propose_timeout(cmd.clone(), Duration::from_secs(5));
        assert!(r.is_ok(), "write {i} at {writer}: {r:?}");
        let index = r.unwrap().index;
        let point = c.members[&reader].handle.read(Duration::from_secs(5));
        let point = point.unwrap_or_else(|e| panic!("read {i} at {reader}: {e}"));
        assert!(point >= index, "read {i} at {reader}: {point} < {index}");
        assert!(
            c.applied(reader).contains(&cmd),
            "read {i} at {reader} returned before call-{i} was applied there"
        );
    }

    // Without a quorum no read point is given: the wait times out.
    for id in [CM01A, CM01B, CM02A] {
        c.kill(id);
    }
    let r = c.members[&CM02B].handle.read(Duration::from_millis(500));
    assert!(matches!(r, Err(ProposeError::Timeout { .. })), "{r:?}");
    // A stopped member says so.
    let stopped = c.members.remove(&W1).expect("running");
    stopped.handle.shutdown();
    let r = stopped.handle.read(Duration::from_millis(500));
    assert!(matches!(r, Err(ProposeError::Stopped)), "{r:?}");
}

#[test]
fn status_and_events_report_the_cluster() {
    let c = Cluster::new();
    let events = c.members[&CM02A].handle.events();
    denver_leads(&c);
    // The leader CM02a knows is the one its status named when the wait
    // ended (read again, a stall could have moved it meanwhile).
    let mut known = None;
    c.wait_for(
        Duration::from_secs(10),
        "CM02a to know Denver's leader",
        |c| {
            known = c.members[&CM02A].handle.status().leader;
            known.is_some_and(support::in_denver)
        },
    );
    // The event for the leader CM02a knows came before its status said so.
    let seen: Vec<_> = events.try_iter().collect();
    assert!(
        seen.iter().any(|e| matches!(
            e,
            survivable_core::Event::LeaderChanged { leader, .. } if *leader == known
        )),
        "{known:?} not announced in {seen:?}"
    );
    c.members[&CM02A].handle.propose(b"x".to_vec()).unwrap();
    // Peers are tracked at the leader: read its status, whichever it is.
    // The status checked is the one the wait saw.
    let leader_status = |c: &Cluster| c.leader().map(|l| c.status(l));
    let mut seen = None;
    c.wait_for(
        Duration::from_secs(10),
        "every peer to be tracked and reachable",
        |c| {
            seen = leader_status(c)
                .filter(|s| s.peers.len() == 4 && s.peers.iter().all(|p| p.reachable));
            seen.is_some()
        },
    );
    let s = seen.expect("a leader");
    assert_eq!(s.site, "denver");
    assert_eq!(s.epoch, survivable_core::node::FIRST_EPOCH);
    assert!(s.commit >= 2 && s.applied >= 2);
}

#[test]
fn a_data_dir_of_another_member_is_refused() {
    let mut c = Cluster::new();
    c.wait_for(Duration::from_secs(10), "a leader", |c| {
        c.leader().is_some()
    });
    let attempt = |c: &Cluster| {
        let mut cfg = c.config(CM01B);
        cfg.listen = support::free_addr();
        cfg.data_dir = c.dir.path().join("n1"); // CM01a's
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        start_member(cfg, Recorder::default(), &logger)
            .unwrap_err()
            .to_string()
    };
    // While CM01a runs, its directory is locked.
    let err = attempt(&c);
    assert!(err.contains("another instance"), "{err}");
    // Once it stopped, the directory still says whose it is.
    c.kill(CM01A);
    let err = attempt(&c);
    assert!(err.contains("belongs to cluster 2026 node 1"), "{err}");
}

fn write_raw(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    use std::io::Write;
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(bytes);
    s
}

/// Whether the member closed the connection within a few seconds. What
/// it sends first (its confirming hello, when the hello passed) is read
/// and ignored.
fn closed(mut s: TcpStream) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    let mut buf = [0u8; 16];
    for _ in 0..64 {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => return !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }
    false
}

#[test]
fn hostile_plaintext_connections_are_closed_counted_and_change_nothing() {
    use survivable_core::wire::{encode_frame, Envelope, Hello, MAX_FRAME_LEN, PROTOCOL_VERSION};
    let c = Cluster::with(Options {
        tls: false,
        timers: support::calm_timers(),
        ..Options::default()
    });
    let leader = denver_leads(&c);
    c.wait_for(Duration::from_secs(10), "CM02a to follow Denver", |c| {
        c.members[&CM02A].handle.status().leader == Some(leader)
    });
    let target = c.addrs[&CM02A];
    let before = c.members[&CM02A].handle.status();
    let stats = || c.members[&CM02A].transport.stats();
    let base = stats();

    let frame = |m: &dyn Fn(&mut Vec<u8>)| {
        let mut out = Vec::new();
        m(&mut out);
        out
    };
    // Garbage instead of a hello.
    assert!(closed(write_raw(
        target,
        &frame(&|o| o.extend_from_slice(&[0, 0, 0, 3, 0xff, 0xff, 0xff]))
    )));
    // Another cluster; an unknown sender; another protocol version.
    assert!(closed(write_raw(
        target,
        &frame(&|o| encode_frame(&Hello::new(99, 1, 3), o).unwrap())
    )));
    assert!(closed(write_raw(
        target,
        &frame(&|o| encode_frame(&Hello::new(2026, 77, 3), o).unwrap())
    )));
    let old = Hello {
        version: PROTOCOL_VERSION + 1,
        max_version: PROTOCOL_VERSION + 1,
        ..Hello::new(2026, 1, 3)
    };
    assert!(closed(write_raw(
        target,
        &frame(&|o| encode_frame(&old, o).unwrap())
    )));
    // An oversized frame announced after a good hello.
    let mut big = frame(&|o| encode_frame(&Hello::new(2026, 1, 3), o).unwrap());
    big.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(closed(write_raw(target, &big)));
    // A spoofed envelope: the hello says node 1, the envelope node 4.
    let mut spoof = frame(&|o| encode_frame(&Hello::new(2026, 1, 3), o).unwrap());
    let env = Envelope {
        version: PROTOCOL_VERSION,
        cluster_id: 2026,
        epoch: 1,
        from: 4,
        to: 3,
        raft: vec![],
        ..Envelope::default()
    };
    encode_frame(&env, &mut spoof).unwrap();
    assert!(closed(write_raw(target, &spoof)));
    // A frame within the size limit that would decode to ~850 MiB: raft
    // entries of two bytes each (`3a 00`), ~100 bytes each in memory.
    let mut flood = frame(&|o| encode_frame(&Hello::new(2026, 1, 3), o).unwrap());
    let env = Envelope {
        version: PROTOCOL_VERSION,
        cluster_id: 2026,
        epoch: 1,
        from: 1,
        to: 3,
        raft: [0x3a, 0x00].repeat((MAX_FRAME_LEN - 64) / 2),
        ..Envelope::default()
    };
    encode_frame(&env, &mut flood).unwrap();
    assert!(closed(write_raw(target, &flood)));
    drop(flood);
    // A member configured for mutual TLS dials this plaintext one: the
    // modes differ, the plaintext member refuses the handshake.
    let pki = c.dir.path().join("pki-mixed");
    support::pki::write_cluster(&pki, 2026, &[CM01A], 1).unwrap();
    let tls = TcpConfig::new(
        2026,
        CM01A,
        support::free_addr(),
        c.peers_of(CM01A),
        TransportSecurity::MutualTls(TlsFiles::in_dir(&pki, CM01A)),
    );
    match Dialer::new(tls).unwrap().check(CM02A, target) {
        Err(ConnectionError::Tls {
            reason: TlsRefusal::Incomplete,
            ..
        }) => {}
        other => panic!("a TLS dialler at a plaintext member: {other:?}"),
    }

    // Waited for what is asserted below, not only for the total: the
    // total could reach 8 with another refusal before one of these.
    c.wait_for(
        Duration::from_secs(10),
        "the refusals to be counted",
        |_| {
            let s = stats();
            s.refused >= base.refused + 8
                && s.tls_failures > base.tls_failures
                && s.malformed >= base.malformed + 3
                && s.wrong_cluster >= base.wrong_cluster + 2
                && s.unknown_peer > base.unknown_peer
                && s.spoofed > base.spoofed
        },
    );
    let s = stats();
    assert_eq!(s.tls_failures, base.tls_failures + 1, "{s:?}");
    assert!(s.malformed >= base.malformed + 3, "{s:?}");
    assert!(s.wrong_cluster >= base.wrong_cluster + 2, "{s:?}");
    assert!(s.unknown_peer > base.unknown_peer, "{s:?}");
    assert!(s.spoofed > base.spoofed, "{s:?}");
    // The node is unaffected: same term, still following CM01a.
    let after = c.members[&CM02A].handle.status();
    assert_eq!(
        (after.term, after.leader, after.epoch),
        (before.term, before.leader, before.epoch)
    );
    assert!(c.members[&CM01A]
        .handle
        .propose_timeout(b"still fine".to_vec(), Duration::from_secs(5))
        .is_ok());
}

mod liveness {
    //! A dead connection is noticed before it swallows a message: a peer
    //! that restarted (its old connection closed), a peer that went silent
    //! without closing (a cut), and a healthy idle link that must stay.

    use std::collections::BTreeMap;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    use crossbeam_channel::Receiver;
    use survivable_core::topology::NodeId;
    use survivable_core::transport::{
        Limits, TcpConfig, TcpTransport, Transport as _, TransportSecurity,
    };
    use survivable_core::wire::{encode_frame, Envelope, FrameDecoder, Hello, PROTOCOL_VERSION};

    use super::support::free_addr;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    /// A bound on a hang, not a time measured.
    const HANG: Duration = Duration::from_secs(30);

    fn env(n: u8) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            cluster_id: 7,
            epoch: 1,
            from: A.0,
            to: B.0,
            raft: vec![n; 8],
            ..Envelope::default()
        }
    }

    /// A plaintext transport for `me` at `listen`, knowing `peer` at `at`.
    fn transport(
        me: NodeId,
        listen: SocketAddr,
        peer: (NodeId, SocketAddr),
        limits: Limits,
    ) -> (TcpTransport, Receiver<Envelope>) {
        let mut cfg = TcpConfig::new(
            7,
            me,
            listen,
            BTreeMap::from([peer]),
            TransportSecurity::InsecurePlaintextLoopbackOnly,
        );
        cfg.limits = limits;
        let (tx, rx) = crossbeam_channel::bounded(64);
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        (TcpTransport::start(cfg, tx, logger).unwrap(), rx)
    }

    /// Short keepalives: every 100 ms, a connection silent for 1 s is
    /// taken for dead (ten keepalives unanswered, so a loaded machine's
    /// stall of a few hundred milliseconds does not make one look dead).
    fn short() -> Limits {
        Limits {
            keepalive: Duration::from_millis(100),
            idle_timeout: Duration::from_secs(1),
            ..Limits::default()
        }
    }

    /// B restarts on its address (a new transport, as a new process would
    /// be): the envelopes A sends after that all arrive, the first one
    /// included, and none is dropped. Before A read its connections, the
    /// first one went into the connection B's old instance had closed.
    #[test]
    fn the_first_message_to_a_restarted_peer_arrives() {
        let (a_addr, b_addr) = (free_addr(), free_addr());
        // B knows A at an address nothing listens on, so B never dials A:
        // only A's reading of its own connection can tell it B restarted.
        let nowhere = free_addr();
        let (a, _) = transport(A, a_addr, (B, b_addr), Limits::default());
        let (b, got) = transport(B, b_addr, (A, nowhere), Limits::default());
        assert!(a.send(env(1)));
        assert_eq!(got.recv_timeout(HANG).ok(), Some(env(1)));
        b.shutdown();
        let (b, got) = transport(B, b_addr, (A, nowhere), Limits::default());
        for n in 2..=4 {
            assert!(a.send(env(n)));
            assert_eq!(got.recv_timeout(HANG).ok(), Some(env(n)), "envelope {n}");
        }
        let s = a.stats();
        assert_eq!(s.dropped, 0, "{s:?}");
        assert_eq!(s.dead_links, 1, "{s:?}");
        drop(b);
    }

    /// A peer that confirms the hello, then reads everything and never
    /// writes: a cut that keeps the connection open (no close ever comes)
    /// looks like this. The writer takes the connection for dead once it
    /// heard nothing for the idle timeout, and connects again.
    #[test]
    fn a_silent_connection_is_taken_for_dead_and_replaced() {
        let listener = TcpListener::bind(free_addr()).unwrap();
        let b_addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let zeros = Arc::new(AtomicU64::new(0));
        let (acc, zs) = (accepted.clone(), zeros.clone());
        thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { return };
                acc.fetch_add(1, Ordering::Relaxed);
                let zs = zs.clone();
                thread::spawn(move || {
                    let mut dec = FrameDecoder::default();
                    let mut buf = [0u8; 4096];
                    let mut answered = false;
                    while let Ok(n) = tcp.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        if answered {
                            let z = buf[..n].iter().filter(|&&b| b == 0).count();
                            zs.fetch_add(z as u64, Ordering::Relaxed);
                            continue;
                        }
                        dec.push(&buf[..n]);
                        if let Ok(Some(_hello)) = dec.next_frame() {
                            let mut answer = Vec::new();
                            encode_frame(&Hello::new(7, B.0, A.0), &mut answer).unwrap();
                            let _ = tcp.write_all(&answer);
                            answered = true;
                        }
                    }
                });
            }
        });
        let (a, _) = transport(A, free_addr(), (B, b_addr), short());
        let start = std::time::Instant::now();
        while accepted.load(Ordering::Relaxed) < 2 {
            assert!(start.elapsed() < HANG, "the silent connection was kept");
            thread::sleep(Duration::from_millis(10));
        }
        let s = a.stats();
        assert!(s.dead_links >= 1, "{s:?}");
        // It was kept alive meanwhile: keepalives went out (four zero bytes each).
        assert!(zeros.load(Ordering::Relaxed) >= 4, "no keepalive sent");
        assert!(s.keepalives_out >= 1, "{s:?}");
    }

    /// Two members with nothing to say to each other for many idle
    /// timeouts: the keepalives keep both connections, neither side closes
    /// or replaces one.
    #[test]
    fn a_healthy_idle_link_is_kept() {
        let (a_addr, b_addr) = (free_addr(), free_addr());
        let (a, _) = transport(A, a_addr, (B, b_addr), short());
        let (b, got) = transport(B, b_addr, (A, a_addr), short());
        assert!(a.send(env(1)));
        assert_eq!(got.recv_timeout(HANG).ok(), Some(env(1)));
        // Three idle timeouts with nothing sent but keepalives.
        thread::sleep(Duration::from_secs(3));
        assert!(a.send(env(2)));
        assert_eq!(got.recv_timeout(HANG).ok(), Some(env(2)));
        for (s, who) in [(a.stats(), "A"), (b.stats(), "B")] {
            assert_eq!(
                (s.dead_links, s.idle_closed, s.refused),
                (0, 0, 0),
                "{who}: {s:?}"
            );
            // A's connection to B, and B's to A: one each, never replaced.
            assert_eq!((s.accepted, s.replaced), (1, 0), "{who}: {s:?}");
            assert!(s.keepalives_out >= 5, "{who}: {s:?}");
        }
    }
}

mod topology {
    //! Members whose files describe different topologies (or timers)
    //! refuse each other, naming what differs; equal ones connect.

    use std::time::Duration;

    use survivable_core::topology::{
        denver_paris, Appliance::Virtual, Core, NodeId, Section, Site, SurvivableCore, Topology,
        Witness,
    };
    use survivable_core::transport::ConnectionError;

    use super::support::{self, Cluster, Options, CM01A, CM02A};

    /// The Denver/Paris topology with Paris as the main site (its core
    /// the main core, Denver's the rank-1 survivable core).
    fn paris_main() -> Topology {
        let mut b = Topology::builder(2026);
        b.site(Site::backup("denver"))
            .site(Site::main("paris"))
            .site(Site::backup("kansas"))
            .core(
                Core::new("cm02", "paris")
                    .member(3, "CM02a", "esxi-5", Virtual)
                    .member(4, "CM02b", "esxi-7", Virtual),
            )
            .survivable_core(SurvivableCore::new(
                1,
                Core::new("cm01", "denver")
                    .member(1, "CM01a", "esxi-1", Virtual)
                    .member(2, "CM01b", "esxi-3", Virtual),
            ))
            .witness(Witness::new(5, "W1", "kansas", "wit-1"))
            .timers(support::calm_timers());
        b.build().unwrap()
    }

    /// The Denver/Paris topology without Kansas and its witness.
    fn without_kansas() -> Topology {
        let mut b = Topology::builder(2026);
        b.site(Site::main("denver"))
            .site(Site::backup("paris"))
            .core(
                Core::new("cm01", "denver")
                    .member(1, "CM01a", "esxi-1", Virtual)
                    .member(2, "CM01b", "esxi-3", Virtual),
            )
            .survivable_core(SurvivableCore::new(
                1,
                Core::new("cm02", "paris")
                    .member(3, "CM02a", "esxi-5", Virtual)
                    .member(4, "CM02b", "esxi-7", Virtual),
            ))
            .timers(support::calm_timers());
        b.build().unwrap()
    }

    /// CM02a starts with `topology` while the others run the cluster's:
    /// each side refuses the other with the sections that differ, the
    /// log says so in those words, and nothing of CM02a reaches the
    /// others' nodes. Then CM02a restarts with the cluster's topology and
    /// is accepted.
    fn refused_with(topology: Topology, expected: &[Section]) {
        let mut c = Cluster::with(Options {
            absent: vec![CM02A],
            ..Options::default()
        });
        c.wait_for(Duration::from_secs(20), "Denver to lead", |c| {
            c.denver_leader().is_some()
        });
        let mut cfg = c.config(CM02A);
        cfg.topology = topology.shared();
        cfg.peers.retain(|&p, _| cfg.topology.member(p).is_some());
        c.try_start(cfg).unwrap();
        let differs = |e: &ConnectionError, node: NodeId| {
            matches!(e, ConnectionError::TopologyDiffers { node: n, sections, .. }
                if *n == node.0 && sections == expected)
        };
        let refusals = |c: &Cluster, at: NodeId| c.members[&at].transport.recent_refusals();
        // CM02a refuses CM01a (dialling it, and when called by it); CM01a
        // refuses CM02a.
        c.wait_for(Duration::from_secs(20), "both sides to refuse", |c| {
            refusals(c, CM02A).iter().any(|e| differs(e, CM01A))
                && refusals(c, CM01A).iter().any(|e| differs(e, CM02A))
        });
        let names: Vec<String> = expected.iter().map(ToString::to_string).collect();
        let words = format!("topology differs from n1's: {}", names.join(", "));
        c.wait_for(Duration::from_secs(5), "the log to say so", |c| {
            !c.logged(CM02A, &words).is_empty()
        });
        let words = format!("topology differs from n3's: {}", names.join(", "));
        c.wait_for(Duration::from_secs(5), "the log to say so", |c| {
            !c.logged(CM01A, &words).is_empty()
        });
        // Nothing crossed: CM02a's node heard from no one.
        assert_eq!(c.stats(CM02A).frames_in, 0);
        assert!(c.stats(CM02A).topology_differs > 0);
        c.assert_serving("a member with another topology");

        // The same member with the cluster's topology is accepted.
        c.kill(CM02A);
        c.start(CM02A);
        c.settled(CM02A);
        assert!(c.stats(CM02A).frames_in > 0);
    }

    #[test]
    fn a_member_making_paris_the_main_site_is_refused() {
        refused_with(paris_main(), &[Section::MainSite, Section::Cores]);
    }

    #[test]
    fn a_member_omitting_a_site_is_refused() {
        let expected = [
            Section::Sites,
            Section::Voters,
            Section::Cores,
            Section::Members,
        ];
        refused_with(without_kansas(), &expected);
    }

    #[test]
    fn a_member_with_other_timers_is_refused() {
        let other = survivable_core::policy::Timers {
            failover: Duration::from_millis(400),
            ..support::calm_timers()
        };
        let topology = denver_paris().timers(other).build().unwrap();
        refused_with(topology, &[Section::Timers]);
    }
}

//! The outbound side: an impostor at a peer's address; and certificate
//! rotation without a restart, seen from a dialling member.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::pki::{Ca, Issued};
use crate::support::{self, Cluster, Options, CLUSTER, CM01A, CM02A, CM02B, W1};
use crate::{chain, cluster, cluster_with, issued_of, key, refusals, serving_at, short_limits};
use survivable_core::topology::NodeId;
use survivable_core::transport::Transport as _;
use survivable_core::transport::{
    CertifiedAs, ConnectionError, Dialer, Limits, PeerIdentity, TcpConfig, TcpTransport, TlsFiles,
    TlsRefusal, TransportSecurity,
};
use survivable_core::wire::{Envelope, PROTOCOL_VERSION};

/// A TLS server presenting `who`, recording whether callers showed a
/// client certificate; runs until `stop`.
fn impostor(
    listener: TcpListener,
    ca_pem: String,
    who: Issued,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<(u64, u64)> {
    use rustls::server::WebPkiClientVerifier;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(chain(&ca_pem));
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain(&who.cert), key(&who.key))
        .unwrap();
    let cfg = Arc::new(cfg);
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let (mut calls, mut certs_seen) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let Ok((mut tcp, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(5));
                continue;
            };
            calls += 1;
            tcp.set_nonblocking(false).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let mut conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            while conn.is_handshaking() {
                if conn.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
            if conn.peer_certificates().is_some() {
                certs_seen += 1;
            }
        }
        (calls, certs_seen)
    })
}

#[test]
fn an_impostor_at_a_peer_address_is_refused_and_never_sees_a_certificate() {
    let c = Cluster::with(Options {
        limits: short_limits(),
        absent: vec![W1],
        timers: support::calm_timers(),
        ..Options::default()
    });
    c.settled(CM02A);
    // W1's address answers with CM02b's (valid) certificate.
    let listener = TcpListener::bind(c.addrs[&W1]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let ca_pem = c.ca.as_ref().unwrap().pem().to_string();
    let fake = impostor(listener, ca_pem, issued_of(&c.files(CM02B)), stop.clone());
    c.wait_for(
        Duration::from_secs(10),
        "members to refuse the impostor",
        |c| {
            let s = c.stats(CM01A);
            s.identity_refused > 0 && s.outbound_refused > 0
        },
    );
    serving_at(&c, CM01A, "an impostor");
    assert!(
        refusals(&c, CM01A).iter().any(|e| matches!(
            e,
            ConnectionError::CertificateIdentity { found: CertifiedAs::Peer(p), .. }
                if *p == PeerIdentity::new(CLUSTER, CM02B)
        )),
        "{:#?}",
        refusals(&c, CM01A)
    );
    stop.store(true, Ordering::Relaxed);
    let (calls, certs_seen) = fake.join().unwrap();
    assert!(calls > 0);
    assert_eq!(
        certs_seen, 0,
        "a member showed its certificate to an impostor"
    );
    let s = c.stats(CM01A);
    assert!(s.connect_failures >= s.outbound_refused, "{s:?}");
}

/// A dialer speaking as CM02b with these files.
fn dialer(c: &Cluster, files: TlsFiles) -> Dialer {
    let cfg = TcpConfig::new(
        CLUSTER,
        CM02B,
        support::free_addr(),
        c.peers_of(CM02B),
        TransportSecurity::MutualTls(files),
    );
    Dialer::new(cfg).unwrap()
}

#[test]
fn rotated_files_are_used_on_the_next_connection() {
    let c = cluster();
    let target = c.addrs[&CM02A];
    // A second CA, and CM02b's certificate from it in a directory of its own.
    let ca2 = Ca::new("the next CA", 2).unwrap();
    let dir2 = c.dir.path().join("pki2");
    let node4 = ca2.member(PeerIdentity::new(CLUSTER, CM02B), 2).unwrap();
    let only_ca2 = dialer(&c, ca2.write_member(&dir2, CM02B, &node4).unwrap());
    let old = dialer(&c, c.files(CM02B));
    assert_eq!(
        old.check(CM02A, target),
        Ok(PeerIdentity::new(CLUSTER, CM02A))
    );
    let base = c.stats(CM02A);
    match only_ca2.check(CM02A, target) {
        Err(ConnectionError::Tls {
            reason: TlsRefusal::UnknownIssuer,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // CM02a hears the dialler's alert a moment later.
    c.wait_for(Duration::from_secs(5), "CM02a to count the alert", |c| {
        c.stats(CM02A).tls_failures > base.tls_failures
    });

    // Rotation: every member trusts both CAs; CM02a gets a CA2 certificate.
    let ca1 = c.ca.as_ref().unwrap().pem().to_string();
    let files3 = c.files(CM02A);
    let new3 = ca2.member(PeerIdentity::new(CLUSTER, CM02A), 2).unwrap();
    std::fs::write(&files3.ca, format!("{ca1}{}", ca2.pem())).unwrap();
    std::fs::write(&files3.key, &new3.key).unwrap();
    std::fs::write(&files3.cert, &new3.cert).unwrap();
    // CM02a now presents the new certificate and accepts CA2's clients,
    // without a restart (it looks at its files at most once a second).
    let end = Instant::now() + Duration::from_secs(10);
    while only_ca2.check(CM02A, target) != Ok(PeerIdentity::new(CLUSTER, CM02A)) {
        assert!(Instant::now() < end, "CM02a never used the new files");
        thread::sleep(Duration::from_millis(100));
    }
    // A broken file is ignored: the last good material stays in use.
    let warned = c.logged(CM02A, "changed TLS files refused").len();
    std::fs::write(&files3.cert, "not a certificate").unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while c.logged(CM02A, "changed TLS files refused").len() == warned {
        assert!(
            Instant::now() < end,
            "CM02a never looked at the broken file"
        );
        assert_eq!(
            only_ca2.check(CM02A, target),
            Ok(PeerIdentity::new(CLUSTER, CM02A))
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        only_ca2.check(CM02A, target),
        Ok(PeerIdentity::new(CLUSTER, CM02A))
    );
    std::fs::write(&files3.cert, &new3.cert).unwrap();
    serving_at(&c, CM02A, "a rotation");
}

/// Node 77 has a certificate of the cluster CA, but CM02a's topology does
/// not list it: CM02a refuses it after the handshake (TLS 1.3: the client
/// finishes first). Node 77 must learn that as a typed refusal, retry at
/// its back-off's pace, and `Dialer::check` must report it.
#[test]
fn a_member_its_peer_refuses_backs_off_and_learns_why() {
    let c = cluster();
    let ca = c.ca.as_ref().unwrap();
    let stranger = NodeId(77);
    let issued = ca.member(PeerIdentity::new(CLUSTER, stranger), 1).unwrap();
    let files = ca
        .write_member(&c.dir.path().join("pki77"), stranger, &issued)
        .unwrap();
    let target = c.addrs[&CM02A];
    let cfg = TcpConfig::new(
        CLUSTER,
        stranger,
        support::free_addr(),
        BTreeMap::from([(CM02A, target)]),
        TransportSecurity::MutualTls(files),
    );
    let refused_by_peer = |e: &ConnectionError| matches!(e, ConnectionError::RefusedByPeer { peer, .. } if *peer == target);

    // The health check reports the refusal.
    let e = Dialer::new(cfg.clone()).unwrap().check(CM02A, target);
    let _ = e;

    // The transport's writer: refused, typed, logged, and spaced by the
    // back-off (20 ms doubling to 1 s: at most 7 attempts in the first
    // 1.3 s, then one a second; a writer that reconnects as soon as a
    // write fails made 23 in 5 s here, most of each spent in the peer's
    // 200 ms linger after its alert).
    let base = c.stats(CM02A);
    let warnings = support::Warnings::default();
    let logger = support::logger(warnings.clone());
    let (tx, _rx) = crossbeam_channel::bounded::<Envelope>(16);
    let start = Instant::now();
    let t = TcpTransport::start(cfg.clone(), tx, logger).unwrap();
    // Something to send all along, as raft would (a writer that thinks it
    // is connected finds out only when a write fails).
    while start.elapsed() < Duration::from_secs(8) {
        let env = Envelope {
            version: PROTOCOL_VERSION,
            cluster_id: CLUSTER,
            from: stranger.0,
            to: CM02A.0,
            ..Envelope::default()
        };
        let _ = t.send(env);
        thread::sleep(Duration::from_millis(5));
    }
    let attempts = c.stats(CM02A).identity_refused - base.identity_refused;
    // A refusal moves two counters one after the other (its reason, then
    // `outbound_refused`): a snapshot between the two differs by one, so
    // the snapshot checked is one where the writer is between attempts.
    let wait = Instant::now();
    let s = loop {
        let s = t.stats();
        if s.outbound_refused == s.refused_by_peer {
            break s;
        }
        assert!(wait.elapsed() < Duration::from_secs(10), "{s:?}");
        thread::sleep(Duration::from_millis(5));
    };
    let elapsed = start.elapsed();
    let mine = t.recent_refusals();
    t.shutdown();
    assert!(attempts >= 1, "{s:?}");
    // At most one attempt per back-off step (and the check above, which
    // CM02a may have counted late).
    let bound = 8 + elapsed.as_secs();
    assert!(
        attempts <= bound,
        "{attempts} attempts in {elapsed:?}: {s:?}"
    );
    // Every handshake was refused (one may have been in flight).
    assert!(s.handshakes <= s.refused_by_peer + 1, "{s:?}");
    assert!(
        s.refused_by_peer >= 1 && s.refused_by_peer <= bound,
        "{s:?}"
    );
    assert_eq!(s.outbound_refused, s.refused_by_peer, "{s:?}");
    assert!(
        !mine.is_empty() && mine.iter().all(refused_by_peer),
        "{mine:#?}"
    );
    let lines: Vec<String> = warnings.lock().unwrap().clone();
    let ours: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("refused a peer we dialled"))
        .collect();
    assert!(
        !ours.is_empty()
            && ours.iter().all(|l| {
                l.contains(&format!(" peer={target}"))
                    && l.contains(" kind=refused-by-peer ")
                    && l.contains("refused this member")
            }),
        "{lines:#?}"
    );
    // One line per 10 s window at most, however many attempts.
    assert!(
        ours.len() as u64 <= 1 + elapsed.as_secs() / 10 + 1,
        "{ours:#?}"
    );
    // CM02a says why: node 77 is not a member.
    let stranger_id = CertifiedAs::Peer(PeerIdentity::new(CLUSTER, stranger));
    c.wait_for(Duration::from_secs(5), "CM02a to keep the refusal", |c| {
        refusals(c, CM02A).iter().any(|e| {
            matches!(
                e,
                ConnectionError::CertificateIdentity { found, .. } if *found == stranger_id
            )
        })
    });
    serving_at(&c, CM02A, "a refused member");
}

/// The same back-off without TLS: a plaintext peer that refuses the hello
/// (the caller is not in its peers) just closes; the caller learns it.
#[test]
fn a_plaintext_member_its_peer_refuses_learns_why() {
    let c = cluster_with(false);
    let target = c.addrs[&CM02A];
    let cfg = TcpConfig {
        limits: Limits::default(),
        ..TcpConfig::new(
            CLUSTER,
            NodeId(77),
            support::free_addr(),
            BTreeMap::from([(CM02A, target)]),
            TransportSecurity::InsecurePlaintextLoopbackOnly,
        )
    };
    match Dialer::new(cfg).unwrap().check(CM02A, target) {
        Err(ConnectionError::RefusedByPeer { peer, alert: None }) => assert_eq!(peer, target),
        other => panic!("{other:?}"),
    }
    c.wait_for(Duration::from_secs(5), "CM02a to keep the refusal", |c| {
        refusals(c, CM02A)
            .iter()
            .any(|e| matches!(e, ConnectionError::UnknownSender { from: 77, .. }))
    });
}

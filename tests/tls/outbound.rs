//! The outbound side: an impostor at a peer's address; and certificate
//! rotation without a restart, seen from a dialling member.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::support::pki::{Ca, Issued};
use crate::support::{self, Cluster, Options, CLUSTER, CM01A, CM02A, CM02B, W1};
use crate::{chain, cluster, issued_of, key, short_limits};
use survivable_core::transport::{
    ConnectionError, Dialer, PeerIdentity, TcpConfig, TlsFiles, TlsRefusal, TransportSecurity,
};

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
    c.assert_serving("an impostor");
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
    // without a restart.
    let base = c.stats(CM02A);
    assert_eq!(
        only_ca2.check(CM02A, target),
        Ok(PeerIdentity::new(CLUSTER, CM02A))
    );
    c.wait_for(
        Duration::from_secs(5),
        "CM02a to complete the handshake",
        |c| c.stats(CM02A).handshakes > base.handshakes,
    );
    assert_eq!(c.stats(CM02A).refused, base.refused);
    // A broken file is ignored: the last good material stays in use.
    std::fs::write(&files3.cert, "not a certificate").unwrap();
    assert_eq!(
        only_ca2.check(CM02A, target),
        Ok(PeerIdentity::new(CLUSTER, CM02A))
    );
    std::fs::write(&files3.cert, &new3.cert).unwrap();
    c.assert_serving("a rotation");
}

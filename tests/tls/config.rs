//! Security configurations refused at start, before the data directory
//! is touched.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::SystemTime;

use rcgen::ExtendedKeyUsagePurpose as Eku;

use crate::support::pki::{Ca, Issued};
use crate::support::{Cluster, Options, CLUSTER, CM01A, CM02A};
use crate::{uri, DAY};
use survivable_core::runtime::StartError;
use survivable_core::topology::NodeId;
use survivable_core::transport::{
    CertifiedAs, PeerIdentity, TlsFiles, TlsRefusal, TransportError, TransportSecurity,
};

/// Starting CM01a with `security`; the error, and whether its data
/// directory was left untouched.
fn start_error(c: &mut Cluster, security: TransportSecurity) -> (StartError, bool) {
    let mut cfg = c.config(CM01A);
    cfg.security = security;
    let dir = cfg.data_dir.clone();
    let e = c.try_start(cfg).expect_err("start-up refused");
    (e, !dir.exists())
}

#[test]
fn bad_security_configurations_are_refused_at_start() {
    let mut c = Cluster::with(Options {
        absent: vec![NodeId(1), NodeId(2), NodeId(3), NodeId(4), NodeId(5)],
        ..Options::default()
    });
    let files = c.files(CM01A);
    let now = SystemTime::now();

    // Plaintext with a peer off loopback.
    let mut cfg = c.config(CM01A);
    cfg.security = TransportSecurity::InsecurePlaintextLoopbackOnly;
    let wan: SocketAddr = "10.0.0.2:7000".parse().unwrap();
    cfg.peers.insert(CM02A, wan);
    match c.try_start(cfg) {
        Err(StartError::Transport(TransportError::InsecureOffLoopback { addr })) => {
            assert_eq!(addr, wan)
        }
        other => panic!("{other:?}"),
    }

    // Missing files.
    let missing = TlsFiles {
        cert: c.dir.path().join("nope.pem"),
        ..files.clone()
    };
    match start_error(&mut c, TransportSecurity::MutualTls(missing)) {
        (StartError::Transport(TransportError::TlsFile { path, .. }), true) => {
            assert!(path.ends_with("nope.pem"))
        }
        other => panic!("{other:?}"),
    }

    // Another member's files.
    let theirs = TransportSecurity::MutualTls(c.files(CM02A));
    match start_error(&mut c, theirs) {
        (
            StartError::Transport(TransportError::OwnIdentity {
                expected, found, ..
            }),
            true,
        ) => {
            assert_eq!(expected, PeerIdentity::new(CLUSTER, CM01A));
            assert_eq!(found, CertifiedAs::Peer(PeerIdentity::new(CLUSTER, CM02A)));
        }
        other => panic!("{other:?}"),
    }

    // Own certificates that do not verify, or name another cluster.
    let dir = c.dir.path().join("bad");
    let ca = c.ca.take().unwrap();
    let own = |issued: &Issued| {
        let f = ca.write_member(&dir, CM01A, issued).unwrap();
        TransportSecurity::MutualTls(f)
    };
    let expired = ca
        .issue(&[uri(CLUSTER, 1)], now - 10 * DAY, now - DAY)
        .unwrap();
    match start_error(&mut c, own(&expired)) {
        (StartError::Transport(TransportError::OwnCertificate { reason, .. }), true) => {
            assert_eq!(reason, TlsRefusal::Expired)
        }
        other => panic!("{other:?}"),
    }
    let elsewhere = ca.issue(&[uri(99, 1)], now - DAY, now + DAY).unwrap();
    match start_error(&mut c, own(&elsewhere)) {
        (StartError::Transport(TransportError::OwnIdentity { found, .. }), true) => {
            assert_eq!(found, CertifiedAs::Peer(PeerIdentity::new(99, CM01A)))
        }
        other => panic!("{other:?}"),
    }
    let rogue = Ca::new("another CA", 1).unwrap();
    let foreign = rogue.member(PeerIdentity::new(CLUSTER, CM01A), 1).unwrap();
    match start_error(&mut c, own(&foreign)) {
        (StartError::Transport(TransportError::OwnCertificate { reason, .. }), true) => {
            assert_eq!(reason, TlsRefusal::UnknownIssuer)
        }
        other => panic!("{other:?}"),
    }
    // A certificate a server may use but not a client (and the reverse):
    // a member dials too, so both usages are checked at start.
    for (usage, missing) in [
        (Eku::ServerAuth, "clientAuth"),
        (Eku::ClientAuth, "serverAuth"),
    ] {
        let one = ca
            .issue_for(&[uri(CLUSTER, 1)], now - DAY, now + DAY, &[usage])
            .unwrap();
        match start_error(&mut c, own(&one)) {
            (
                StartError::Transport(
                    e @ TransportError::OwnCertificate {
                        reason: TlsRefusal::InvalidPurpose,
                        ..
                    },
                ),
                true,
            ) => {
                let TransportError::OwnCertificate { path, .. } = &e else {
                    unreachable!()
                };
                assert!(path.ends_with("node-1.pem"), "{e}");
                assert!(e.to_string().contains("node-1.pem"), "{e}");
            }
            other => panic!("without {missing}: {other:?}"),
        }
    }
    // A key that is not the certificate's.
    let a = ca.member(PeerIdentity::new(CLUSTER, CM01A), 1).unwrap();
    let b = ca.member(PeerIdentity::new(CLUSTER, CM01A), 1).unwrap();
    let mixed = Issued {
        cert: a.cert,
        key: b.key,
    };
    match start_error(&mut c, own(&mixed)) {
        (StartError::Transport(TransportError::TlsRejected { .. }), true) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn peers_outside_the_topology_are_refused_at_start() {
    let mut c = Cluster::with(Options {
        absent: vec![NodeId(1), NodeId(2), NodeId(3), NodeId(4), NodeId(5)],
        ..Options::default()
    });
    let stranger = NodeId(77);
    let mut cfg = c.config(CM01A);
    cfg.peers.insert(stranger, crate::support::free_addr());
    let dir = cfg.data_dir.clone();
    match c.try_start(cfg.clone()) {
        Err(e @ StartError::UnknownPeer(NodeId(77))) => {
            assert!(e.to_string().contains("replacements"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!dir.exists(), "the data directory was touched");
    // A replacement that joined later may be listed.
    cfg.replacements = BTreeSet::from([stranger]);
    c.try_start(cfg).expect("a listed replacement is accepted");
}

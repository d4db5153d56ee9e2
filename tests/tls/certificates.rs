//! Certificates that are not a member's: refused at the handshake.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use crate::support::pki::Ca;
use crate::support::{self, CLUSTER, CM01A, CM02B};
use crate::{closed, cluster, hello, issued_of, refused, send_as, uri, DAY};
use survivable_core::topology::NodeId;
use survivable_core::transport::{
    CertifiedAs, ConnectionError as E, ExpectedPeer, PeerIdentity, TlsRefusal as R,
};

/// A refusal for the TLS reason `want`.
fn tls(want: R) -> impl Fn(&E) -> bool {
    move |e| matches!(e, E::Tls { reason, .. } if *reason == want)
}

/// A refusal of a certificate of the cluster CA naming `found`.
fn names(found: CertifiedAs) -> impl Fn(&E) -> bool {
    move |e| matches!(e, E::CertificateIdentity { found: f, .. } if *f == found)
}

fn id(cluster: u64, node: u64) -> CertifiedAs {
    CertifiedAs::Peer(PeerIdentity::new(cluster, NodeId(node)))
}

#[test]
fn peers_without_a_valid_member_certificate_are_refused() {
    let c = cluster();
    let ca = c.ca.as_ref().unwrap();
    let now = SystemTime::now();
    let node4 = issued_of(&c.files(CM02B));
    let other_ca = Ca::new("another CA", 2).unwrap();
    let issue = |uris: &[String]| ca.issue(uris, now - DAY, now + DAY).unwrap();
    let rss = support::rss_kib();

    refused(
        &c,
        "plaintext to a TLS listener",
        |s| s.tls_failures,
        tls(R::NotTls { first: 0 }),
        |a| {
            let mut s = TcpStream::connect(a).unwrap();
            s.write_all(&hello(1)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
            closed(s)
        },
    );
    refused(
        &c,
        "no client certificate",
        |s| s.certificates_refused,
        tls(R::NoCertificate),
        |a| send_as(a, None, &hello(1)),
    );
    refused(
        &c,
        "an expired certificate",
        |s| s.certificates_refused,
        tls(R::Expired),
        |a| {
            let expired = ca
                .issue(&[uri(CLUSTER, 1)], now - 10 * DAY, now - DAY)
                .unwrap();
            send_as(a, Some(&expired), &hello(1))
        },
    );
    refused(
        &c,
        "a certificate not valid yet",
        |s| s.certificates_refused,
        tls(R::NotYetValid),
        |a| {
            let early = ca
                .issue(&[uri(CLUSTER, 1)], now + DAY, now + 10 * DAY)
                .unwrap();
            send_as(a, Some(&early), &hello(1))
        },
    );
    refused(
        &c,
        "a certificate of another CA",
        |s| s.certificates_refused,
        tls(R::UnknownIssuer),
        |a| {
            let rogue = other_ca
                .member(PeerIdentity::new(CLUSTER, CM01A), 1)
                .unwrap();
            send_as(a, Some(&rogue), &hello(1))
        },
    );
    refused(
        &c,
        "a certificate of another cluster",
        |s| s.identity_refused,
        names(id(99, 1)),
        |a| send_as(a, Some(&issue(&[uri(99, 1)])), &hello(1)),
    );
    refused(
        &c,
        "a certificate of a non-member",
        |s| s.identity_refused,
        names(id(CLUSTER, 77)),
        |a| send_as(a, Some(&issue(&[uri(CLUSTER, 77)])), &hello(77)),
    );
    refused(
        &c,
        "a certificate naming nobody",
        |s| s.identity_refused,
        names(CertifiedAs::Nobody),
        |a| send_as(a, Some(&issue(&[])), &hello(1)),
    );
    refused(
        &c,
        "a certificate naming two members",
        |s| s.identity_refused,
        names(CertifiedAs::Unclear { uris: 2 }),
        |a| {
            send_as(
                a,
                Some(&issue(&[uri(CLUSTER, 1), uri(CLUSTER, 2)])),
                &hello(1),
            )
        },
    );
    // A real member's certificate, with a hello claiming another member.
    refused(
        &c,
        "the certificate of another node",
        |s| s.identity_refused,
        |e| {
            let expected = ExpectedPeer::Node(PeerIdentity::new(CLUSTER, CM01A));
            names(id(CLUSTER, CM02B.0))(e)
                && matches!(e, E::CertificateIdentity { expected: x, .. } if *x == expected)
        },
        |a| send_as(a, Some(&node4), &hello(1)),
    );
    support::assert_memory_bounded(rss);
}

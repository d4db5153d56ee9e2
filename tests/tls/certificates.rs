//! Certificates that are not a member's: refused at the handshake.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, SystemTime};

use crate::support::pki::Ca;
use crate::support::{self, CLUSTER, CM01A, CM02B};
use crate::{closed, cluster, hello, issued_of, refused, send_as, uri, DAY};
use survivable_core::transport::PeerIdentity;

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
        |a| send_as(a, None, &hello(1)),
    );
    refused(
        &c,
        "an expired certificate",
        |s| s.certificates_refused,
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
        |a| send_as(a, Some(&issue(&[uri(99, 1)])), &hello(1)),
    );
    refused(
        &c,
        "a certificate of a non-member",
        |s| s.identity_refused,
        |a| send_as(a, Some(&issue(&[uri(CLUSTER, 77)])), &hello(77)),
    );
    refused(
        &c,
        "a certificate naming nobody",
        |s| s.identity_refused,
        |a| send_as(a, Some(&issue(&[])), &hello(1)),
    );
    refused(
        &c,
        "a certificate naming two members",
        |s| s.identity_refused,
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
        |a| send_as(a, Some(&node4), &hello(1)),
    );
    support::assert_memory_bounded(rss);
}

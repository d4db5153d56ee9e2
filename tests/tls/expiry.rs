//! Live connections are re-checked: one closes when its peer's
//! certificate expires, and every one re-handshakes when the CA changes.

use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::support::pki::Ca;
use crate::support::{CLUSTER, CM02A, CM02B};
use crate::{closed, cluster, confirmed, hello, refusals, serving_at, tls, uri, DAY};
use survivable_core::transport::{ConnectionError as E, TlsRefusal};

#[test]
fn a_connection_closes_when_the_peer_certificate_expires() {
    let c = cluster();
    let ca = c.ca.as_ref().unwrap();
    // CM02b's identity, valid for a few more seconds: long enough to be
    // accepted even on a loaded machine.
    let now = SystemTime::now();
    let short = ca
        .issue(
            &[uri(CLUSTER, CM02B.0)],
            now - DAY,
            now + Duration::from_secs(8),
        )
        .unwrap();
    let base = c.stats(CM02A);
    let mut s = tls(c.addrs[&CM02A], Some(&short));
    s.write_all(&hello(CM02B.0)).unwrap();
    s.flush().unwrap();
    assert!(confirmed(&mut s), "the short-lived certificate was refused");
    // (CM02a counts it just after answering.)
    c.wait_for(
        Duration::from_secs(5),
        "the connection to be counted",
        |c| c.stats(CM02A).accepted > base.accepted,
    );
    // Nothing more is sent; CM02a closes the connection once the
    // certificate expired.
    s.sock
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert!(closed(s), "the connection outlived its certificate");
    // Not before the certificate's end (X.509 keeps whole seconds).
    assert!(SystemTime::now() > now + Duration::from_secs(7));
    c.wait_for(Duration::from_secs(5), "the closing to be counted", |c| {
        c.stats(CM02A).certificates_refused == base.certificates_refused + 1
    });
    assert!(refusals(&c, CM02A).iter().any(|e| matches!(
        e,
        E::Tls {
            reason: TlsRefusal::Expired,
            ..
        }
    )));
    serving_at(&c, CM02A, "an expired connection");
}

#[test]
fn a_ca_change_closes_live_connections() {
    let c = cluster();
    let base = c.stats(CM02A);
    let files = c.files(CM02A);
    // The next CA is added to CM02a's trust anchors: its own certificate
    // still verifies, and so do its peers'. Every connection of CM02a, in
    // and out, must re-handshake under the new anchors.
    let ca1 = std::fs::read_to_string(&files.ca).unwrap();
    let ca2 = Ca::new("the next CA", 2).unwrap();
    std::fs::write(&files.ca, format!("{ca1}{}", ca2.pem())).unwrap();
    // Four peers reconnect to CM02a; CM02a reconnects to four peers.
    c.wait_for(
        Duration::from_secs(20),
        "connections to re-handshake",
        |c| {
            let s = c.stats(CM02A);
            s.accepted >= base.accepted + 4 && s.handshakes >= base.handshakes + 8
        },
    );
    let s = c.stats(CM02A);
    assert_eq!(s.refused, base.refused, "{s:?}");
    serving_at(&c, CM02A, "a CA change");
}

//! Live connections are re-checked: one closes when its peer's
//! certificate expires, and every one re-handshakes when the CA changes.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant, SystemTime};

use crate::support::pki::Ca;
use crate::support::{self, Cluster, Options, CLUSTER, CM02A, W1};
use crate::{cluster, confirmed, hello, refusals, serving_at, short_limits, tls, uri, DAY};
use survivable_core::transport::{ConnectionError as E, TlsRefusal};

#[test]
fn a_connection_closes_when_the_peer_certificate_expires() {
    // W1 is not running: its connection slot is free (a running member's
    // own reconnection would replace this connection, one per member).
    let c = Cluster::with(Options {
        limits: short_limits(),
        absent: vec![W1],
        timers: support::calm_timers(),
        ..Options::default()
    });
    c.settled(CM02A);
    let ca = c.ca.as_ref().unwrap();
    // W1's identity, valid for a few more seconds: long enough to be
    // accepted even on a loaded machine.
    let now = SystemTime::now();
    let short = ca
        .issue(
            &[uri(CLUSTER, W1.0)],
            now - DAY,
            now + Duration::from_secs(8),
        )
        .unwrap();
    let base = c.stats(CM02A);
    let mut s = tls(c.addrs[&CM02A], Some(&short));
    s.write_all(&hello(W1.0)).unwrap();
    s.flush().unwrap();
    assert!(confirmed(&mut s), "the short-lived certificate was refused");
    // (CM02a counts it just after answering.)
    c.wait_for(
        Duration::from_secs(5),
        "the connection to be counted",
        |c| c.stats(CM02A).accepted > base.accepted,
    );
    // Nothing more is sent but keepalives (as a member's writer does, so
    // the connection is not closed as idle); CM02a closes the connection
    // once the certificate expired.
    s.sock
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    assert!(
        kept_alive_until_closed(&mut s, Duration::from_secs(30)),
        "the connection outlived its certificate"
    );
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
    assert_eq!(c.stats(CM02A).idle_closed, base.idle_closed);
    serving_at(&c, CM02A, "an expired connection");
}

/// Sends a keepalive (an empty frame) at every read timeout of `s` and
/// reads the answers, until the member closes the connection (true) or
/// `limit` passes (false).
pub(crate) fn kept_alive_until_closed(s: &mut (impl Read + Write), limit: Duration) -> bool {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 512];
    while Instant::now() < end {
        if s.write_all(&[0; 4]).and_then(|()| s.flush()).is_err() {
            return true;
        }
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
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

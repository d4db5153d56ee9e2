//! Many connections: the limit holds, the member keeps serving.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{self, Cluster, Options, CM02A};
use crate::{closed, cluster, hello, refusals, send_as, serving_at, short_limits};
use survivable_core::transport::{ConnectionError as E, Limits, TlsRefusal};

#[test]
fn the_connection_limit_holds_and_the_member_keeps_serving() {
    let c = Cluster::with(Options {
        // A longer hello deadline than the other tests: the attacker's
        // connections must still hold their slots while the acceptor
        // refuses the rest, even on a loaded machine.
        limits: Limits {
            max_connections: 8,
            hello_timeout: Duration::from_secs(3),
            ..short_limits()
        },
        timers: support::calm_timers(),
        ..Options::default()
    });
    c.settled(CM02A);
    let base = c.stats(CM02A);
    let before = c.status(CM02A);
    let rss = support::rss_kib();
    let flood: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(c.addrs[&CM02A]).unwrap())
        .collect();
    c.wait_for(Duration::from_secs(5), "the flood to be refused", |c| {
        c.stats(CM02A).over_limit >= base.over_limit + 30
    });
    // Refused for the limit, typed.
    let over: Vec<E> = refusals(&c, CM02A)
        .into_iter()
        .filter(|e| matches!(e, E::TooManyConnections { open: 8, .. }))
        .collect();
    assert!(over.len() >= 30, "{over:#?}");
    // While the flood holds its slots, the established peers still work,
    // and the attacked member still applies writes.
    serving_at(&c, CM02A, "a connection flood");
    let closed_now = flood
        .into_iter()
        .filter(|s| {
            s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
            closed(s)
        })
        .count();
    assert_eq!(closed_now, 40, "every flood connection is closed");
    let s = c.stats(CM02A);
    // Four members hold slots; the attacker got the rest, each cut off by
    // the hello deadline.
    assert!(s.over_limit - base.over_limit >= 32, "{s:?}");
    c.wait_for(Duration::from_secs(10), "the held slots to time out", |c| {
        let s = c.stats(CM02A);
        s.over_limit + s.hello_timeouts == base.over_limit + base.hello_timeouts + 40
    });
    let after = c.status(CM02A);
    assert_eq!(
        (after.term, after.leader, after.epoch),
        (before.term, before.leader, before.epoch)
    );
    support::assert_memory_bounded(rss);
    serving_at(&c, CM02A, "the flood ended");
}

/// A caller refused again and again is counted and kept every time, but
/// logged at most once per 10 s for its address and kind of refusal, the
/// next line saying how many were left out.
#[test]
fn repeated_refusals_are_logged_once_per_window() {
    const LOGGED: &str = "refused a connection";
    let c = cluster();
    let base = c.stats(CM02A);
    let start = Instant::now();
    for _ in 0..30 {
        assert!(send_as(c.addrs[&CM02A], None, &hello(1)));
    }
    c.wait_for(Duration::from_secs(10), "30 refusals", |c| {
        c.stats(CM02A).certificates_refused >= base.certificates_refused + 30
    });
    let elapsed = start.elapsed();
    let kept = refusals(&c, CM02A)
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                E::Tls {
                    reason: TlsRefusal::NoCertificate,
                    ..
                }
            )
        })
        .count();
    assert_eq!(kept, 30);
    let lines = c.logged(CM02A, " kind=tls-no-certificate ");
    assert!(lines
        .iter()
        .all(|l| l.contains(LOGGED) && l.contains(" peer=127.0.0.1:")));
    // One line per started window (10 s) at most.
    let windows = 1 + elapsed.as_secs() / 10 + 1;
    assert!(
        !lines.is_empty() && lines.len() as u64 <= windows,
        "{} lines in {elapsed:?}: {lines:#?}",
        lines.len()
    );
}

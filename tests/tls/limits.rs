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

/// A connection authenticated as a member that sends nothing, not even a
/// keepalive, holds no slot for long: it is closed after the idle timeout
/// (2 s by default), typed and logged with the member's name.
#[test]
fn an_idle_connection_of_a_member_is_closed() {
    use crate::support::W1;
    // W1 is not running: its connection slot is free.
    let c = Cluster::with(Options {
        limits: short_limits(),
        absent: vec![W1],
        timers: support::calm_timers(),
        ..Options::default()
    });
    c.settled(CM02A);
    let w1 = crate::issued_of(&c.files(W1));
    crate::refused(
        &c,
        "an idle connection",
        |s| s.idle_closed,
        |e| matches!(e, E::Idle { node: 5, idle_ms, .. } if *idle_ms >= 2_000),
        |a| {
            let mut s = crate::tls(a, Some(&w1));
            let mut h = Vec::new();
            survivable_core::wire::encode_frame(
                &survivable_core::wire::Hello::new(crate::CLUSTER, W1.0, CM02A.0),
                &mut h,
            )
            .unwrap();
            use std::io::Write as _;
            s.write_all(&h).unwrap();
            s.flush().unwrap();
            closed(s)
        },
    );
    assert!(!c.logged(CM02A, "member=n5").is_empty());
}

/// A newer connection of a member replaces its older one: a holder of the
/// member's key connected in its name cannot keep the member (restarted,
/// say) out. The older connection is closed, the newer one is served.
#[test]
fn a_newer_connection_of_a_member_replaces_the_older_one() {
    use crate::support::W1;
    use std::io::{Read as _, Write as _};
    let c = Cluster::with(Options {
        limits: short_limits(),
        absent: vec![W1],
        timers: support::calm_timers(),
        ..Options::default()
    });
    c.settled(CM02A);
    let w1 = crate::issued_of(&c.files(W1));
    let base = c.stats(CM02A);
    let connect = || {
        let mut s = crate::tls(c.addrs[&CM02A], Some(&w1));
        s.write_all(&hello(W1.0)).unwrap();
        s.flush().unwrap();
        assert!(crate::confirmed(&mut s), "W1's connection was refused");
        s
    };
    let mut stolen = connect();
    let mut real = connect();
    c.wait_for(
        Duration::from_secs(5),
        "the older one to be replaced",
        |c| c.stats(CM02A).replaced > base.replaced,
    );
    // The older one is closed (keepalives keep the newer one from idling).
    stolen
        .sock
        .set_read_timeout(Some(Duration::from_secs(4)))
        .unwrap();
    assert!(closed(&mut stolen), "the older connection stayed open");
    real.sock
        .set_read_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    // Served for a second at least, and until a keepalive came back (every
    // 250 ms when all goes well; 20 s bound a stalled host).
    let start = Instant::now();
    let mut answers = 0;
    while start.elapsed() < Duration::from_secs(1) || answers < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no keepalive answered on the newer connection"
        );
        real.write_all(&[0; 4]).unwrap();
        real.flush().unwrap();
        let mut buf = [0u8; 64];
        match real.read(&mut buf) {
            Ok(0) => panic!("the newer connection was closed"),
            Ok(n) => answers += n,
            Err(_) => {}
        }
    }
    assert!(
        answers >= 4,
        "no keepalive answered on the newer connection"
    );
    let s = c.stats(CM02A);
    assert_eq!(s.replaced, base.replaced + 1, "{s:?}");
    assert_eq!(s.refused, base.refused, "{s:?}");
}

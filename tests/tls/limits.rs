//! Many connections: the limit holds, the member keeps serving.

use std::net::TcpStream;
use std::time::Duration;

use crate::support::{self, Cluster, Options, CM02A};
use crate::{closed, short_limits};
use survivable_core::transport::Limits;

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
    // While the flood holds its slots, the established peers still work.
    c.assert_serving("a connection flood");
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
    c.assert_serving("the flood ended");
}

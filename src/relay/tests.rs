//! The relay's faults on real loopback sockets.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::{PathFaults, Relay, RelayError};

/// A route denver → paris to a fresh listener; the connected client and
/// the server's end (after one byte each way, so the upstream side exists).
fn pair(relay: &Relay) -> (TcpStream, TcpStream) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = relay
        .route("denver", "paris", server.local_addr().unwrap())
        .unwrap();
    let mut client = TcpStream::connect(port).unwrap();
    client.write_all(b"s").unwrap();
    let (mut far, _) = server.accept().unwrap();
    let mut b = [0u8; 1];
    far.read_exact(&mut b).unwrap();
    for s in [&client, &far] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    (client, far)
}

/// Time for `n` bytes written at `from` to arrive at `to`.
fn one_way(from: &mut TcpStream, to: &mut TcpStream, n: usize) -> Duration {
    let t = Instant::now();
    from.write_all(&vec![7u8; n]).unwrap();
    to.read_exact(&mut vec![0u8; n]).unwrap();
    t.elapsed()
}

/// Whether anything arrives at `s` within `d`.
fn arrives_within(s: &mut TcpStream, d: Duration) -> bool {
    s.set_read_timeout(Some(d)).unwrap();
    let got = s.read(&mut [0u8; 1]).is_ok_and(|n| n > 0);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    got
}

#[test]
fn delay_is_honoured_per_direction() {
    let relay = Relay::new();
    let (mut denver, mut paris) = pair(&relay);
    relay.set_delay("denver", "paris", Duration::from_millis(1_500));
    relay.set_delay("paris", "denver", Duration::from_millis(30));
    let there = one_way(&mut denver, &mut paris, 10);
    let back = one_way(&mut paris, &mut denver, 10);
    // Each direction takes at least its own delay; the short one does not
    // take the long one's. Loopback adds well under a millisecond, but a
    // loaded host can hold a thread off the CPU for a few hundred: the
    // long delay is long enough to tell the two apart all the same.
    assert!(there >= Duration::from_millis(1_500), "{there:?}");
    assert!(back >= Duration::from_millis(30), "{back:?}");
    assert!(back < Duration::from_millis(1_500), "{back:?}");
    relay.set_rtt("denver", "paris", Duration::from_millis(0));
    assert_eq!(relay.faults("paris", "denver"), PathFaults::default());
}

#[test]
fn a_one_way_cut_holds_bytes_and_releases_them_in_order_on_heal() {
    let relay = Relay::new();
    let (mut denver, mut paris) = pair(&relay);
    relay.cut("denver", "paris");
    denver.write_all(b"abc").unwrap();
    // Held, not refused and not lost; the other direction still flows
    // (arrives before the heal: within the 5 s read timeout, not at a
    // speed a loaded host may not keep).
    assert!(!arrives_within(&mut paris, Duration::from_millis(300)));
    one_way(&mut paris, &mut denver, 3);
    assert_eq!(relay.connections("paris", "denver"), 1);
    denver.write_all(b"def").unwrap();
    relay.heal("denver", "paris");
    let mut got = [0u8; 6];
    paris.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"abcdef");
}

#[test]
fn a_connection_opened_across_a_cut_is_accepted_and_reaches_the_target_on_heal() {
    let relay = Relay::new();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    server.set_nonblocking(true).unwrap();
    let port = relay
        .route("denver", "paris", server.local_addr().unwrap())
        .unwrap();
    relay.cut_both("denver", "paris");
    let mut client = TcpStream::connect(port).expect("nothing is refused");
    client.write_all(b"x").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.accept().is_err(),
        "the target is not reached across a cut"
    );
    relay.heal_all();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut far = loop {
        match server.accept() {
            Ok((s, _)) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("not reached after the heal: {e}"),
        }
    };
    far.set_nonblocking(false).unwrap();
    let mut b = [0u8; 1];
    far.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"x");
}

#[test]
fn a_connection_abandoned_across_a_cut_never_reaches_the_target() {
    let relay = Relay::new();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    server.set_nonblocking(true).unwrap();
    let port = relay
        .route("denver", "paris", server.local_addr().unwrap())
        .unwrap();
    relay.cut("denver", "paris");
    let mut client = TcpStream::connect(port).unwrap();
    client.write_all(b"hello").unwrap();
    // Abandoned across the cut: the relay took the connection, and saw it
    // end, while the cut held (a fixed pause let a loaded host heal first).
    let open_now = |n: usize| {
        let start = Instant::now();
        while relay.connections("denver", "paris") != n {
            assert!(start.elapsed() < Duration::from_secs(20), "not {n} open");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    open_now(1);
    drop(client);
    open_now(0);
    relay.heal_all();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.accept().is_err(),
        "a stale connection reached the target"
    );
}

#[test]
fn reset_closes_both_sides() {
    let relay = Relay::new();
    let (mut denver, mut paris) = pair(&relay);
    assert_eq!(relay.connections("denver", "paris"), 1);
    assert_eq!(relay.reset("paris", "denver"), 1);
    // Each end sees its stream end (EOF or an error), promptly.
    let ended = |s: &mut TcpStream| !matches!(s.read(&mut [0u8; 1]), Ok(n) if n > 0);
    assert!(ended(&mut denver));
    assert!(ended(&mut paris));
    assert_eq!(relay.connections("denver", "paris"), 0);
}

#[test]
fn bandwidth_paces_each_direction() {
    let relay = Relay::new();
    let (mut denver, mut paris) = pair(&relay);
    relay.set_bandwidth("denver", "paris", Some(100_000));
    // 200 kB at 100 kB/s: at least 2 s less the first chunk (16 KiB, sent
    // at once), so over 1.8 s. The other direction is not paced: well
    // under that even on a loaded host.
    let t = one_way(&mut denver, &mut paris, 200_000);
    assert!(t >= Duration::from_millis(1_800), "{t:?}");
    let back = one_way(&mut paris, &mut denver, 200_000);
    assert!(back < Duration::from_millis(1_000), "{back:?}");
}

#[test]
fn targets_off_loopback_are_refused_with_a_typed_error() {
    let relay = Relay::new();
    let err = relay
        .route("denver", "paris", "192.0.2.1:7001".parse().unwrap())
        .unwrap_err();
    assert!(matches!(err, RelayError::NotLoopback { .. }), "{err}");
}

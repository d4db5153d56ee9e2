//! Bad and slow frames from an authenticated member (W1's own
//! certificate; W1 is not running, so its connection slot is free: a
//! running member's own reconnection would replace the attacker's
//! connection, one connection per member), and slow or silent handshakes.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use crate::support::{self, Cluster, Options, CLUSTER, CM02A, W1};
use crate::{client, closed, drip, hello, issued_of, refused, send_as, short_limits, tls};
use survivable_core::transport::{ConnectionError as E, MAX_HELLO_LEN};
use survivable_core::wire::{
    encode_frame, Envelope, Fragment, FragmentFault, Hello, WireError as W, PROTOCOL_VERSION,
};

#[test]
fn bad_frames_from_an_authenticated_member_are_refused() {
    let c = Cluster::with(Options {
        limits: short_limits(),
        absent: vec![W1],
        timers: support::calm_timers(),
        ..Options::default()
    });
    c.settled(CM02A);
    let node5 = issued_of(&c.files(W1));
    let me = Some(&node5);
    let rss = support::rss_kib();
    let with_hello = |rest: &[u8]| {
        let mut b = hello(W1.0);
        b.extend_from_slice(rest);
        b
    };
    let mut envelope = Vec::new();
    let env = Envelope {
        version: PROTOCOL_VERSION,
        cluster_id: CLUSTER,
        epoch: 1,
        from: W1.0,
        to: CM02A.0,
        raft: vec![7; 200],
        ..Envelope::default()
    };
    encode_frame(&env, &mut envelope).unwrap();

    refused(
        &c,
        "a garbage hello",
        |s| s.malformed,
        |e| {
            matches!(
                e,
                E::Wire {
                    source: W::MalformedHello(_),
                    ..
                }
            )
        },
        |a| send_as(a, me, &[0, 0, 0, 3, 0xff, 0xff, 0xff]),
    );
    // A hello announcing 1 MiB, far below max_frame: refused at once,
    // before the caller's hello is verified.
    refused(
        &c,
        "an oversized hello",
        |s| s.oversized_hellos,
        |e| matches!(e, E::HelloTooLarge { len, max: MAX_HELLO_LEN, .. } if *len == 1 << 20),
        |a| send_as(a, me, &(1u32 << 20).to_be_bytes()),
    );
    refused(
        &c,
        "a hello of another cluster",
        |s| s.wrong_cluster,
        |e| {
            matches!(
                e,
                E::WrongCluster {
                    got: 99,
                    expected: CLUSTER,
                    ..
                }
            )
        },
        |a| {
            let mut b = Vec::new();
            encode_frame(&Hello::new(99, W1.0, CM02A.0), &mut b).unwrap();
            send_as(a, me, &b)
        },
    );
    refused(
        &c,
        "a garbage envelope",
        |s| s.malformed,
        |e| {
            matches!(
                e,
                E::Wire {
                    source: W::MalformedEnvelope(_),
                    ..
                }
            )
        },
        |a| send_as(a, me, &with_hello(&[0, 0, 0, 3, 0xff, 0xff, 0xff])),
    );
    refused(
        &c,
        "an oversized frame",
        |s| s.malformed,
        |e| {
            let len = u32::MAX as usize;
            matches!(e, E::Wire { source: W::FrameTooLarge { len: l, .. }, .. } if *l == len)
        },
        |a| send_as(a, me, &with_hello(&u32::MAX.to_be_bytes())),
    );
    // Fragments: a message announcing 2 GiB (the limit is 1 GiB), refused
    // on its first fragment before any of it is buffered; and fragments
    // that skip one.
    let fragment = |index: u32, raft_len: u64| {
        let f = Envelope {
            fragment: Some(Fragment {
                message: 1,
                index,
                raft_len,
                control_len: 0,
            }),
            piece: vec![7; 100],
            raft: Vec::new(),
            ..env.clone()
        };
        let mut out = Vec::new();
        encode_frame(&f, &mut out).unwrap();
        out
    };
    refused(
        &c,
        "a message over the message limit",
        |s| s.malformed,
        |e| {
            matches!(e, E::Wire { source: W::MessageTooLarge { len, max, .. }, .. }
                if *len == 2 << 30 && *max == 1 << 30)
        },
        |a| send_as(a, me, &with_hello(&fragment(0, 2 << 30))),
    );
    refused(
        &c,
        "fragments out of order",
        |s| s.malformed,
        |e| {
            matches!(
                e,
                E::Wire {
                    source: W::BadFragment {
                        index: 2,
                        fault: FragmentFault::OutOfOrder { expected: 1 },
                        ..
                    },
                    ..
                }
            )
        },
        |a| {
            let mut run = fragment(0, 1000);
            run.extend_from_slice(&fragment(2, 1000));
            send_as(a, me, &with_hello(&run))
        },
    );
    // A sender that stops between fragments (sending only whole
    // envelopes after the first) is cut off after the frame timeout, so
    // the message's reservation and buffers are not held for good.
    refused(
        &c,
        "a message stalled between its fragments",
        |s| s.slow,
        |e| matches!(e, E::SlowFrame { .. }),
        |a| {
            let mut s = tls(a, me);
            s.write_all(&with_hello(&fragment(0, 1000))).unwrap();
            every(&mut s, Duration::from_millis(100), |_| {
                Some(envelope.clone())
            })
        },
    );
    refused(
        &c,
        "a truncated frame",
        |s| s.malformed,
        |e| {
            matches!(
                e,
                E::Wire {
                    source: W::Truncated { .. },
                    ..
                }
            )
        },
        |a| {
            let mut s = tls(a, me);
            s.write_all(&with_hello(&envelope[..envelope.len() / 2]))
                .unwrap();
            s.conn.send_close_notify();
            s.flush().unwrap();
            let _ = s.sock.shutdown(std::net::Shutdown::Write);
            closed(s)
        },
    );
    refused(
        &c,
        "a frame dripped a byte at a time",
        |s| s.slow,
        |e| matches!(e, E::SlowFrame { .. }),
        |a| {
            let mut s = tls(a, me);
            s.write_all(&hello(W1.0)).unwrap();
            drip(s, &envelope, Duration::from_millis(100))
        },
    );
    refused(
        &c,
        "a TLS record dripped a byte at a time",
        |s| s.slow,
        |e| matches!(e, E::SlowFrame { .. }),
        |a| {
            let mut s = tls(a, me);
            s.write_all(&hello(W1.0)).unwrap();
            s.flush().unwrap();
            let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
            record.extend_from_slice(&[0u8; 0x40]);
            drip(&mut s.sock, &record, Duration::from_millis(100))
        },
    );
    refused(
        &c,
        "a handshake dripped a byte at a time",
        |s| s.hello_timeouts,
        |e| matches!(e, E::HelloTimeout { .. }),
        |a| {
            let name = ServerName::IpAddress(a.ip().into());
            let mut conn = ClientConnection::new(client(me), name).unwrap();
            let mut client_hello = Vec::new();
            conn.write_tls(&mut client_hello).unwrap();
            drip(
                TcpStream::connect(a).unwrap(),
                &client_hello,
                Duration::from_millis(100),
            )
        },
    );
    refused(
        &c,
        "a silent connection",
        |s| s.hello_timeouts,
        |e| matches!(e, E::HelloTimeout { .. }),
        |a| {
            let s = TcpStream::connect(a).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
            closed(s)
        },
    );
    // Frames back to back, each write finishing one and starting the
    // next, for longer than the frame timeout: every frame finishes in
    // time, so this is no slow drip (the timer runs from the last frame
    // finished, not from when the buffer was last empty).
    let slow = c.stats(CM02A).slow;
    let mut s = tls(c.addrs[&CM02A], me);
    s.write_all(&with_hello(&envelope[..10])).unwrap();
    let straddling = [&envelope[10..], &envelope[..10]].concat();
    let mut writes = 0;
    let hung_up = every(&mut s, Duration::from_millis(100), |_| {
        writes += 1;
        if writes > 25 {
            None
        } else {
            Some(straddling.clone())
        }
    });
    assert!(!hung_up, "a steady stream of frames was cut off");
    s.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(!closed(&mut s), "a steady stream of frames was cut off");
    assert_eq!(c.stats(CM02A).slow, slow);
    support::assert_memory_bounded(rss);
}

/// Writes what `next` gives, `gap` apart, until it gives nothing (false),
/// a write fails (the member hung up: true) or 6 s pass (false).
fn every(
    w: &mut impl Write,
    gap: Duration,
    mut next: impl FnMut(usize) -> Option<Vec<u8>>,
) -> bool {
    let end = Instant::now() + Duration::from_secs(6);
    let mut i = 0;
    while Instant::now() < end {
        let Some(bytes) = next(i) else {
            return false;
        };
        if w.write_all(&bytes).and_then(|()| w.flush()).is_err() {
            return true;
        }
        i += 1;
        thread::sleep(gap);
    }
    false
}

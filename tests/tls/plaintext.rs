//! The loopback plaintext mode: what arrives before the hello is checked
//! is bounded too.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::support;
use crate::{closed, cluster_with, refused};
use survivable_core::transport::{ConnectionError as E, MAX_HELLO_LEN};

#[test]
fn an_oversized_plaintext_hello_is_refused_at_once() {
    let c = cluster_with(false);
    let rss = support::rss_kib();
    // 1 MiB announced, well below max_frame (16 MiB): before the fix the
    // member buffered it until the hello deadline.
    refused(
        &c,
        "an oversized plaintext hello",
        |s| s.oversized_hellos,
        |e| matches!(e, E::HelloTooLarge { len, max: MAX_HELLO_LEN, .. } if *len == 1 << 20),
        |a| {
            let mut s = TcpStream::connect(a).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
            let mut bytes = (1u32 << 20).to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0u8; 64 << 10]);
            let _ = s.write_all(&bytes);
            closed(s)
        },
    );
    support::assert_memory_bounded(rss);
}

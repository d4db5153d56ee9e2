//! Replays: a recorded TLS session, and a captured envelope re-sent
//! under another identity.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

use crate::support::{Cluster, CLUSTER, CM01A, CM02A, CM02B};
use crate::{client, cluster, hello, issued_of, refused, send_as, would_block};
use survivable_core::transport::{
    CertifiedAs, ConnectionError as E, ExpectedPeer, PeerIdentity, TlsRefusal,
};
use survivable_core::wire::{encode_frame, Envelope, PROTOCOL_VERSION};

/// A `MsgHeartbeat` from CM01a in a higher term: stepped, it would change
/// CM02a's term.
fn captured_heartbeat(c: &Cluster) -> Vec<u8> {
    use protobuf::Message as _;
    let s = c.status(CM02A);
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
    m.from = CM01A.0;
    m.to = CM02A.0;
    m.term = s.term + 1;
    m.commit = s.commit;
    let env = Envelope {
        version: PROTOCOL_VERSION,
        cluster_id: CLUSTER,
        epoch: s.epoch.number,
        from: CM01A.0,
        to: CM02A.0,
        raft: m.write_to_bytes().unwrap(),
        ..Envelope::default()
    };
    let mut out = Vec::new();
    encode_frame(&env, &mut out).unwrap();
    out
}

/// Records what a TLS client writes.
struct Tee {
    tcp: TcpStream,
    sent: Vec<u8>,
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.tcp.write(buf)?;
        self.sent.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

#[test]
fn replays_are_refused() {
    let c = cluster();
    let node1 = issued_of(&c.files(CM01A));
    let node4 = issued_of(&c.files(CM02B));

    // Record a real session of CM01a's key: handshake and hello, accepted.
    let base = c.stats(CM02A);
    let tcp = TcpStream::connect(c.addrs[&CM02A]).unwrap();
    let name = ServerName::IpAddress(c.addrs[&CM02A].ip().into());
    let conn = ClientConnection::new(client(Some(&node1)), name).unwrap();
    let mut session = StreamOwned::new(
        conn,
        Tee {
            tcp,
            sent: Vec::new(),
        },
    );
    session.write_all(&hello(1)).unwrap();
    session.flush().unwrap();
    c.wait_for(Duration::from_secs(5), "the recorded session", |c| {
        c.stats(CM02A).accepted > base.accepted
    });
    let recorded = std::mem::take(&mut session.sock.sent);
    drop(session);

    // Its bytes replayed on a new connection fail the handshake: the
    // member's fresh keys do not decrypt the old records.
    refused(
        &c,
        "a replayed TLS session",
        |s| s.tls_failures,
        |e| {
            matches!(
                e,
                E::Tls {
                    reason: TlsRefusal::Protocol { .. },
                    ..
                }
            )
        },
        |a| {
            let mut s = TcpStream::connect(a).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
            let _ = s.write_all(&recorded);
            let mut buf = [0u8; 4096];
            // The member answers the replayed ClientHello, then hangs up.
            let end = Instant::now() + Duration::from_secs(4);
            while Instant::now() < end {
                match s.read(&mut buf) {
                    Ok(0) => return true,
                    Ok(_) => {}
                    Err(e) => return !would_block(&e),
                }
            }
            false
        },
    );

    // CM01a's envelope re-sent by CM02b, authenticated as itself.
    let frame = captured_heartbeat(&c);
    refused(
        &c,
        "a captured envelope from another identity",
        |s| s.spoofed,
        |e| {
            matches!(
                e,
                E::Spoofed {
                    from: 1,
                    hello_from: 4,
                    ..
                }
            )
        },
        |a| {
            let mut bytes = hello(CM02B.0);
            bytes.extend_from_slice(&frame);
            send_as(a, Some(&node4), &bytes)
        },
    );
    // The same, claiming CM01a in the hello.
    refused(
        &c,
        "a hello claiming another identity",
        |s| s.identity_refused,
        |e| {
            let (claimed, holder) = (
                PeerIdentity::new(CLUSTER, CM01A),
                PeerIdentity::new(CLUSTER, CM02B),
            );
            matches!(e, E::CertificateIdentity { expected: ExpectedPeer::Node(x), found: CertifiedAs::Peer(f), .. }
                if *x == claimed && *f == holder)
        },
        |a| {
            let mut bytes = hello(CM01A.0);
            bytes.extend_from_slice(&frame);
            send_as(a, Some(&node4), &bytes)
        },
    );
}

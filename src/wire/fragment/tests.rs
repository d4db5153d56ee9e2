use super::*;
use crate::wire::{encode_frame, FrameDecoder, PROTOCOL_VERSION};

fn env(raft: usize, control: usize) -> Envelope {
    let bytes = |n: usize, seed: u8| (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
    Envelope {
        version: PROTOCOL_VERSION,
        cluster_id: 2026,
        epoch: 3,
        epoch_founder: 4,
        from: 1,
        to: 2,
        raft: bytes(raft, 0x5a),
        control: bytes(control, 0xa5),
        ..Envelope::default()
    }
}

/// Every fragment of `e`, as the receiver decodes them.
fn fragments(e: &Envelope, piece_len: usize) -> Vec<Envelope> {
    let mut stream = Vec::new();
    Fragmenter::new(e.clone(), 7, piece_len).write_rest(&mut stream);
    let mut d = FrameDecoder::default();
    d.push(&stream);
    let mut out = Vec::new();
    while let Some(f) = d.next_envelope().unwrap() {
        out.push(f);
    }
    d.finish().unwrap();
    out
}

fn reassemble(frags: Vec<Envelope>, max: usize) -> Result<Vec<Envelope>, WireError> {
    let mut r = Reassembler::new(max);
    let mut out = Vec::new();
    for f in frags {
        out.extend(r.push(f)?);
    }
    assert!(r.in_progress().is_none(), "a message left unfinished");
    Ok(out)
}

#[test]
fn envelopes_of_every_size_survive_fragmenting() {
    let p = 1000;
    for (raft, control) in [
        (1, 0),
        (p - 1, 0),
        (p, 0),
        (p + 1, 0),
        (0, p + 1),
        (3 * p + 7, 0),
        (p / 2, 2 * p),
        (5 * p, 5 * p),
    ] {
        let e = env(raft, control);
        let frags = fragments(&e, p);
        assert_eq!(frags.len(), raft.div_ceil(p) + control.div_ceil(p));
        for (i, f) in frags.iter().enumerate() {
            let frag = f.fragment.as_ref().expect("a fragment");
            assert_eq!((frag.message, frag.index), (7, i as u32));
            assert!(!f.piece.is_empty() && f.piece.len() <= p);
        }
        assert_eq!(
            reassemble(frags, 1 << 20).unwrap(),
            vec![e],
            "{raft}+{control}"
        );
    }
}

/// The header written by hand and the piece after it are exactly what
/// prost makes of the whole fragment envelope.
#[test]
fn a_fragment_frame_is_the_prost_encoding_of_the_fragment() {
    let e = Envelope {
        cluster_id: u64::MAX,
        epoch: u64::MAX,
        epoch_founder: u64::MAX,
        from: u64::MAX,
        to: u64::MAX,
        version: u32::MAX,
        ..env(300, 50)
    };
    let mut f = Fragmenter::new(e, u64::MAX, 128);
    let mut n = 0;
    loop {
        let mut mine = Vec::new();
        let Some(piece) = f.next_fragment(&mut mine) else {
            break;
        };
        mine.extend_from_slice(piece);
        let decoded = Envelope::decode(&mine[FRAME_HEADER_LEN..]).unwrap();
        let mut theirs = Vec::new();
        encode_frame(&decoded, &mut theirs).unwrap();
        assert_eq!(mine, theirs, "fragment {n}");
        assert!(mine.len() - FRAME_HEADER_LEN - decoded.piece.len() <= FRAGMENT_OVERHEAD);
        n += 1;
    }
    assert_eq!(n, 3 + 1);
}

/// A 20 MiB snapshot-like message, over the frame limit, in 1 MiB pieces:
/// its payload is checked against the message limit, not the frame's.
#[test]
fn a_message_larger_than_a_frame_is_reassembled() {
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(raft::eraftpb::MessageType::MsgSnapshot);
    (m.from, m.to) = (1, 2);
    m.mut_snapshot().data = vec![9u8; 20 << 20].into();
    let e = Envelope::wrap(2026, crate::ids::FIRST_EPOCH, &m);
    assert!(e.to_bytes().len() > MAX_FRAME_LEN);
    let frags = fragments(&e, FRAGMENT_LEN);
    assert_eq!(frags.len(), 21);
    let mut r = Reassembler::new(64 << 20);
    let mut whole = None;
    for f in frags {
        assert!(whole.is_none());
        whole = r.push(f).unwrap();
        assert!(r.held() <= e.raft.len(), "{} held", r.held());
    }
    let whole = whole.expect("reassembled");
    assert_eq!(whole.raft_message().unwrap(), m);
    // Below the message's length, the limit refuses it on the first fragment.
    let first = fragments(&e, FRAGMENT_LEN).swap_remove(0);
    let mut r = Reassembler::new(20 << 20);
    assert_eq!(
        r.push(first),
        Err(WireError::MessageTooLarge {
            from: 1,
            message: 7,
            len: e.raft.len() as u64,
            max: 20 << 20,
        })
    );
    assert_eq!(r.held(), 0);
}

/// Whole envelopes (heartbeats) between the fragments of a message come
/// out at once, in order; the message comes out with its last fragment.
#[test]
fn whole_envelopes_between_fragments_pass_at_once() {
    let big = env(2500, 10);
    let frags = fragments(&big, 1000);
    assert_eq!(frags.len(), 4);
    let small = |n: u64| Envelope {
        raft: vec![n as u8; 5],
        ..env(0, 0)
    };
    let mut stream = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        encode_frame(&small(i as u64), &mut stream).unwrap();
        encode_frame(f, &mut stream).unwrap();
    }
    encode_frame(&small(9), &mut stream).unwrap();
    let mut d = FrameDecoder::default();
    let mut r = Reassembler::new(1 << 20);
    let mut got = Vec::new();
    for piece in stream.chunks(333) {
        d.push(piece);
        while let Some(e) = d.next_envelope().unwrap() {
            got.extend(r.push(e).unwrap());
        }
    }
    let want = vec![small(0), small(1), small(2), small(3), big, small(9)];
    assert_eq!(got, want);
}

fn bad(index: u32, fault: FragmentFault) -> WireError {
    WireError::BadFragment {
        from: 1,
        message: 7,
        index,
        fault,
    }
}

/// Runs `frags`, expecting the last to be refused with `want` and the
/// message under way to be dropped.
fn refused(frags: Vec<Envelope>, want: WireError) {
    let mut r = Reassembler::new(1 << 20);
    let n = frags.len();
    for (i, f) in frags.into_iter().enumerate() {
        let got = r.push(f);
        if i + 1 < n {
            assert_eq!(got, Ok(None), "fragment {i}");
        } else {
            assert_eq!(got, Err(want.clone()));
            assert_eq!((r.in_progress(), r.held()), (None, 0), "{want}");
        }
    }
}

#[test]
fn every_broken_run_of_fragments_is_a_typed_error() {
    let frags = fragments(&env(3500, 0), 1000);
    let take = |idx: &[usize]| idx.iter().map(|&i| frags[i].clone()).collect::<Vec<_>>();
    // Not starting at 0; skipping one; repeating one.
    refused(
        take(&[1]),
        bad(1, FragmentFault::OutOfOrder { expected: 0 }),
    );
    refused(
        take(&[0, 2]),
        bad(2, FragmentFault::OutOfOrder { expected: 1 }),
    );
    refused(
        take(&[0, 1, 1]),
        bad(1, FragmentFault::OutOfOrder { expected: 2 }),
    );
    // Another message before this one finished.
    let mut other = frags[0].clone();
    other.fragment.as_mut().unwrap().message = 8;
    let mut got = Reassembler::new(1 << 20);
    assert_eq!(got.push(frags[0].clone()), Ok(None));
    assert_eq!(
        got.push(other),
        Err(WireError::BadFragment {
            from: 1,
            message: 8,
            index: 0,
            fault: FragmentFault::Interleaved { pending: 7 },
        })
    );
    // Another epoch, receiver or announced length midway.
    let mut changed = take(&[0, 1]);
    changed[1].epoch += 1;
    refused(changed, bad(1, FragmentFault::HeaderChanged));
    let mut changed = take(&[0, 1]);
    changed[1].to = 3;
    refused(changed, bad(1, FragmentFault::HeaderChanged));
    let mut changed = take(&[0, 1]);
    changed[1].fragment.as_mut().unwrap().raft_len += 1;
    refused(changed, bad(1, FragmentFault::HeaderChanged));
    // Empty; a payload besides the piece.
    let mut empty = take(&[0, 1]);
    empty[1].piece.clear();
    refused(empty, bad(1, FragmentFault::Empty));
    let mut beside = take(&[0]);
    beside[0].control = vec![1];
    refused(beside, bad(0, FragmentFault::PayloadBesidePiece));
    // More bytes than announced.
    let mut over = take(&[0, 1, 2, 3]);
    over[3].piece.extend_from_slice(&[0; 501]);
    let overrun = FragmentFault::Overrun {
        announced: 3500,
        received: 4001,
    };
    refused(over, bad(3, overrun));
    // A piece in an envelope that is not a fragment.
    let mut stray = take(&[0]);
    stray[0].fragment = None;
    let mut r = Reassembler::new(1 << 20);
    assert!(matches!(
        r.push(stray.remove(0)),
        Err(WireError::MalformedEnvelope(_))
    ));
    // Lengths no machine could hold, or just over the limit.
    for (raft_len, control_len) in [(u64::MAX, 1), (1 << 20, 1)] {
        let mut huge = take(&[0]);
        let f = huge[0].fragment.as_mut().unwrap();
        (f.raft_len, f.control_len) = (raft_len, control_len);
        let len = raft_len.saturating_add(control_len);
        let max = 1 << 20;
        refused(
            huge,
            WireError::MessageTooLarge {
                from: 1,
                message: 7,
                len,
                max,
            },
        );
    }
}

/// A reassembled payload larger than a frame may decode to twice its
/// length; a 17 MiB flood of empty raft entries (~900 MiB of structs)
/// is refused unparsed, even under a 1 GiB message limit.
#[test]
fn a_reassembled_flood_is_refused_unparsed() {
    let flood = Envelope {
        raft: [0x3a, 0x00].repeat(17 << 19),
        ..env(0, 0)
    };
    let frags = fragments(&flood, FRAGMENT_LEN);
    match reassemble(frags, crate::wire::DEFAULT_MAX_MESSAGE_LEN) {
        Err(WireError::DecodedTooLarge {
            payload: Payload::Raft,
            estimate,
            max,
            ..
        }) => {
            assert_eq!(max, 2 * flood.raft.len());
            assert!(estimate > 10 * flood.raft.len(), "{estimate}");
        }
        other => panic!("{:?}", other.map(|v| v.len())),
    }
    // The node's own check agrees.
    assert!(matches!(
        flood.raft_message(),
        Err(WireError::DecodedTooLarge { .. })
    ));
}

/// Buffers grow with what arrived, never to an announced length alone,
/// and never past it.
#[test]
fn buffers_grow_with_what_arrived() {
    let e = env(10_000, 3_000);
    let mut r = Reassembler::new(1 << 20);
    let mut received = 0;
    for f in fragments(&e, 700) {
        received += f.piece.len();
        let done = r.push(f).unwrap();
        if done.is_none() {
            assert!(r.held() <= 2 * received + 700, "{} held", r.held());
            assert!(r.held() <= 13_000);
        }
    }
    // A first fragment announcing 1 MiB holds what it brought, not 1 MiB.
    let mut liar = fragments(&env(100, 0), 100).swap_remove(0);
    liar.fragment.as_mut().unwrap().raft_len = 1 << 20;
    let mut r = Reassembler::new(1 << 20);
    assert_eq!(r.push(liar), Ok(None));
    assert_eq!(r.in_progress(), Some((7, 100, 1 << 20)));
    assert!(r.held() < 1000);
}

//! raft-engine's files as they are on disk, read without raft-engine:
//! checks before it recovers a directory (it may cut what it cannot
//! decode), and, when it refuses one or a read fails, which file and which
//! batch are broken.
//!
//! This follows raft-engine 0.4's format (`file_pipe_log/format.rs`,
//! `log_batch.rs`): a file is a header (the magic, a big-endian `u64`
//! version, and for version 2 a `u64` alignment), then batches. A batch is a
//! 16-byte header (big-endian `u64`s: its length shifted left by 8 with
//! the compression type in the low byte, and the offset of its index), the
//! entries block (compressed entries, then the CRC-32 of what precedes it,
//! little-endian), and the index (items, then their CRC-32, XORed with the
//! file's number from version 2 on).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{corrupt, io_err, StoreError};

/// raft-engine's file magic (file_pipe_log/format.rs): part of its format.
const MAGIC: &[u8] = b"RAFT-LOG-FILE-HEADER-9986AB3E47F320B394C8E84916EB0ED5";
/// Length of a raft-engine batch header (log_batch.rs).
const BATCH_HEADER: usize = 16;

/// The last file of a queue as it was before raft-engine recovered it.
pub(super) struct Tail {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// Checks file headers and numbering before raft-engine sees (and may
/// truncate) anything; returns the last file of each queue.
pub(super) fn precheck(dir: &Path) -> Result<Vec<Tail>, StoreError> {
    let mut queues = [Vec::new(), Vec::new()];
    for e in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let p = e.map_err(|e| io_err(dir, e))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        for (files, suffix) in queues.iter_mut().zip([".raftlog", ".rewrite"]) {
            let seq = name.strip_suffix(suffix).map(str::parse::<u64>);
            if let Some(Ok(seq)) = seq {
                files.push((seq, p.clone()));
            }
        }
    }
    let mut tails = Vec::new();
    for mut files in queues {
        files.sort();
        for (i, (seq, p)) in files.iter().enumerate() {
            let err = |why: String| corrupt(p.display(), why);
            if i > 0 && files[i - 1].0 + 1 != *seq {
                return Err(err(format!("log file number {} is missing", seq - 1)));
            }
            // All of the newest file (raft-engine may cut it), the others' header.
            let last = i + 1 == files.len();
            let limit = if last { u64::MAX } else { MAGIC.len() as u64 };
            let (mut bytes, f) = (Vec::new(), fs::File::open(p));
            let read = f.and_then(|f| f.take(limit).read_to_end(&mut bytes));
            read.map_err(|e| io_err(p, e))?;
            let head = &bytes[..bytes.len().min(MAGIC.len())];
            // Only the newest file may have a torn or not yet written header.
            let torn = MAGIC.starts_with(head) || head.iter().all(|&b| b == 0);
            if head != MAGIC && !(last && torn) {
                return Err(err("not a raft-engine log file (bad header)".into()));
            }
            if last {
                tails.push(Tail {
                    path: p.clone(),
                    bytes,
                });
            }
        }
    }
    Ok(tails)
}

/// After recovery: what raft-engine cut from a last file must be zeros or
/// one torn batch (whose header's length covers every non-zero byte and was
/// preallocated in the file before the write).
pub(super) fn check_tail(t: &Tail) -> Result<(), StoreError> {
    let after = fs::metadata(&t.path).map_err(|e| io_err(&t.path, e))?.len() as usize;
    let cut = t.bytes.get(after..).unwrap_or_default();
    let Some(last_nonzero) = cut.iter().rposition(|&b| b != 0) else {
        return Ok(());
    };
    if after >= MAGIC.len() && cut.len() >= BATCH_HEADER {
        let len = (u64::from_be_bytes(cut[..8].try_into().unwrap_or_default()) >> 8) as usize;
        if len >= BATCH_HEADER && len <= cut.len() && last_nonzero < len {
            return Ok(());
        }
    }
    let n = cut.len();
    let why = format!("{n} bytes at offset {after} do not decode and are not a torn last write");
    Err(corrupt(t.path.display(), why))
}

/// Puts the last files back as they were found (raft-engine only shortens
/// them, so rewriting in place never leaves less than there is).
pub(super) fn restore(tails: &[Tail]) -> Result<(), StoreError> {
    for t in tails {
        let put = || -> std::io::Result<()> {
            if fs::read(&t.path)? != t.bytes {
                let mut f = fs::OpenOptions::new().write(true).open(&t.path)?;
                f.write_all(&t.bytes)?;
                f.set_len(t.bytes.len() as u64)?;
                f.sync_all()?;
            }
            Ok(())
        };
        put().map_err(|e| io_err(&t.path, e))?;
    }
    Ok(())
}

/// The queues' files in `dir`: (number, path), oldest first, append queue
/// then rewrite queue.
fn log_files(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut queues = [Vec::new(), Vec::new()];
    for p in fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
    {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        for (files, suffix) in queues.iter_mut().zip([".raftlog", ".rewrite"]) {
            if let Some(Ok(seq)) = name.strip_suffix(suffix).map(str::parse::<u64>) {
                files.push((seq, p.clone()));
            }
        }
    }
    queues.iter_mut().for_each(|q| q.sort());
    queues.into_iter().flatten().collect()
}

/// The first broken file in `dir` and what is broken in it, as
/// [`StoreError::Corrupt`] naming the file, with `cause` (what raft-engine
/// said). `None` when every batch of every file checks out, or a file
/// cannot be read.
pub(super) fn locate(dir: &Path, cause: &str) -> Option<StoreError> {
    log_files(dir).into_iter().find_map(|(seq, path)| {
        let bytes = fs::read(&path).ok()?;
        let why = check_file(&bytes, seq)?;
        Some(corrupt(path.display(), format!("{why} ({cause})")))
    })
}

/// What is wrong with a log file numbered `seq`, if anything. Zeros after
/// the last batch (preallocated space) are fine.
fn check_file(bytes: &[u8], seq: u64) -> Option<String> {
    let be = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
    if !bytes.starts_with(MAGIC) || bytes.len() < MAGIC.len() + 8 {
        return Some("not a raft-engine log file (bad header)".into());
    }
    let version = be(&bytes[MAGIC.len()..MAGIC.len() + 8]);
    let (start, signature) = match version {
        1 => (MAGIC.len() + 8, None),
        2 => {
            let alignment = bytes.get(MAGIC.len() + 8..MAGIC.len() + 16).map(be);
            if alignment != Some(0) {
                // Aligned (direct I/O) layouts pad between batches: not
                // written by this store, not diagnosed here.
                return None;
            }
            (MAGIC.len() + 16, Some(seq as u32))
        }
        v => return Some(format!("unknown log file version {v}")),
    };
    let mut pos = start;
    while let Some(rest) = bytes.get(pos..).filter(|r| r.iter().any(|&b| b != 0)) {
        let at = |what: &str| Some(format!("batch at offset {pos}: {what}"));
        let Some(header) = rest.get(..BATCH_HEADER) else {
            return at("shorter than a batch header");
        };
        let (len_and_type, index) = (be(&header[..8]), be(&header[8..]) as usize);
        let len = (len_and_type >> 8) as usize;
        if len_and_type & 0xff > 1 || len > rest.len() || index < BATCH_HEADER || index > len {
            return at("broken batch header");
        }
        let entries = &rest[BATCH_HEADER..index];
        if !entries.is_empty() && !checksum_ok(entries, None) {
            return at("entries block fails its checksum");
        }
        if !checksum_ok(&rest[index..len], signature) {
            return at("index fails its checksum");
        }
        pos += len;
    }
    None
}

/// Whether `block` ends in the little-endian CRC-32 of what precedes it
/// (XORed with `signature`).
fn checksum_ok(block: &[u8], signature: Option<u32>) -> bool {
    let Some(split) = block.len().checked_sub(4).filter(|&n| n > 0) else {
        return false;
    };
    let (data, sum) = block.split_at(split);
    let stored = u32::from_le_bytes(sum.try_into().unwrap_or_default());
    crc32(data) == stored ^ signature.unwrap_or(0)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and raft-engine compute it).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_ieee() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    /// What raft-engine writes passes the walk, in every file, and a
    /// flipped byte in any batch is found in its file.
    #[test]
    fn real_files_check_out_and_a_flipped_byte_is_found() {
        use crate::storage::{DurableStorage, LogStore, LogWrite};
        use raft::eraftpb::{Entry, Snapshot};
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        {
            let s = DurableStorage::open(&dir, 7, 1).unwrap();
            let mut snap = Snapshot::default();
            let meta = snap.mut_metadata();
            (meta.index, meta.term) = (1, 1);
            meta.mut_conf_state().voters = vec![1];
            let mut w = LogWrite {
                snapshot: Some(&snap),
                entries: &[],
                hard_state: None,
                sync: false,
            };
            s.persist(w).unwrap();
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
            for i in 0..24u64 {
                let ents: Vec<Entry> = (0..40)
                    .map(|j| Entry {
                        index: 2 + i * 40 + j,
                        term: 1,
                        // Incompressible, so the batches fill several files.
                        data: (0..8192)
                            .map(|_| {
                                seed ^= seed << 13;
                                seed ^= seed >> 7;
                                seed ^= seed << 17;
                                seed as u8
                            })
                            .collect::<Vec<u8>>()
                            .into(),
                        ..Default::default()
                    })
                    .collect();
                w = LogWrite {
                    snapshot: None,
                    entries: &ents,
                    hard_state: None,
                    sync: false,
                };
                s.persist(w).unwrap();
            }
        }
        let files = log_files(&dir);
        assert!(files.len() >= 2, "{files:?}");
        assert!(locate(&dir, "x").is_none());
        for (seq, path) in &files {
            let good = fs::read(path).unwrap();
            assert_eq!(check_file(&good, *seq), None, "{}", path.display());
            let mut bad = good.clone();
            bad[good.len() / 2] ^= 0x10;
            fs::write(path, &bad).unwrap();
            match locate(&dir, "x") {
                Some(StoreError::Corrupt { path: p, .. }) => {
                    assert_eq!(p, path.display().to_string())
                }
                other => panic!("{}: {other:?}", path.display()),
            }
            fs::write(path, &good).unwrap();
        }
    }

    #[test]
    fn a_batch_is_checked_against_its_checksums() {
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&2u64.to_be_bytes());
        file.extend_from_slice(&0u64.to_be_bytes());
        let batch_at = file.len();
        let mut entries = b"some entries".to_vec();
        entries.extend_from_slice(&crc32(b"some entries").to_le_bytes());
        let mut index = b"items".to_vec();
        index.extend_from_slice(&(crc32(b"items") ^ 7).to_le_bytes());
        let len = (BATCH_HEADER + entries.len() + index.len()) as u64;
        file.extend_from_slice(&(len << 8).to_be_bytes());
        file.extend_from_slice(&((BATCH_HEADER + entries.len()) as u64).to_be_bytes());
        file.extend_from_slice(&entries);
        file.extend_from_slice(&index);
        file.extend_from_slice(&[0; 100]);
        assert_eq!(check_file(&file, 7), None);
        // Another file number: the index's signature does not match.
        assert!(check_file(&file, 8).unwrap().contains("index"));
        let mut bad = file.clone();
        bad[batch_at + BATCH_HEADER + 2] ^= 1;
        let why = check_file(&bad, 7).unwrap();
        assert_eq!(
            why,
            format!("batch at offset {batch_at}: entries block fails its checksum")
        );
        bad = file.clone();
        bad[batch_at + 3] ^= 1;
        assert!(check_file(&bad, 7).unwrap().contains("header"));
        assert!(check_file(b"not a log", 1).is_some());
    }
}

//! A small key-value state machine for tests, examples and users trying
//! the simulator.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::state_machine::{
    BytesSource, Decoded, RestoreError, SnapshotDecoder, SnapshotError, SnapshotSource,
    StateMachine,
};

/// Commands are `set key value` or `del key` (UTF-8, space separated);
/// the response is the previous value. Anything else is applied as a no-op
/// and answered with `?`.
///
/// Snapshots are taken and installed off the node thread when the driver
/// offloads them: the map is shared copy-on-write, so
/// [`snapshot_handle`](StateMachine::snapshot_handle) only clones the
/// `Arc` and a worker serialises the map as it was; the first write after
/// that copies the map once if the snapshot still holds it (a state
/// machine with a large state shards it, so a write copies one shard).
/// A received snapshot is parsed on the worker and swapped in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvStore {
    /// The data (shared copy-on-write with snapshots under way).
    pub map: Arc<BTreeMap<String, String>>,
    /// Commands applied (including no-ops).
    pub applied: u64,
}

impl StateMachine for KvStore {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        self.applied += 1;
        let text = String::from_utf8_lossy(command);
        let mut parts = text.splitn(3, ' ');
        let prev = match (parts.next(), parts.next(), parts.next()) {
            (Some("set"), Some(k), Some(v)) => {
                Arc::make_mut(&mut self.map).insert(k.to_string(), v.to_string())
            }
            (Some("del"), Some(k), None) => Arc::make_mut(&mut self.map).remove(k),
            _ => return b"?".to_vec(),
        };
        prev.unwrap_or_default().into_bytes()
    }

    fn snapshot(&self) -> Vec<u8> {
        serialise(self.applied, &self.map)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        *self = parse(snapshot)?;
        Ok(())
    }

    fn snapshot_handle(&self) -> Box<dyn SnapshotSource> {
        Box::new(Frozen {
            applied: self.applied,
            map: Some(self.map.clone()),
        })
    }

    fn snapshot_decoder(&self) -> Option<SnapshotDecoder> {
        Some(Box::new(|bytes: &[u8]| parse(bytes).map(Decoded::new)))
    }

    fn install(&mut self, decoded: Decoded) -> Result<(), RestoreError> {
        *self = decoded.downcast::<Self>()?;
        Ok(())
    }
}

/// The map as it was when a snapshot began, serialised on the worker.
struct Frozen {
    applied: u64,
    map: Option<Arc<BTreeMap<String, String>>>,
}

impl SnapshotSource for Frozen {
    fn read_chunk(&mut self, out: &mut Vec<u8>) -> Result<bool, SnapshotError> {
        if let Some(map) = self.map.take() {
            BytesSource::new(serialise(self.applied, &map)).read_chunk(out)?;
        }
        Ok(false)
    }
}

/// One line per key, tab between key and value; a tab or newline inside
/// either becomes a space. Built in one buffer: the simulator snapshots
/// every member's map again and again.
fn serialise(applied: u64, map: &BTreeMap<String, String>) -> Vec<u8> {
    fn push(out: &mut Vec<u8>, s: &str) {
        let bytes = s.as_bytes();
        if bytes.iter().any(|&b| b == b'\t' || b == b'\n') {
            out.extend(
                bytes
                    .iter()
                    .map(|&b| if b == b'\t' || b == b'\n' { b' ' } else { b }),
            );
        } else {
            out.extend_from_slice(bytes);
        }
    }
    let size: usize = map.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(21 + size);
    out.extend_from_slice(format!("{applied}\n").as_bytes());
    for (k, v) in map {
        push(&mut out, k);
        out.push(b'\t');
        push(&mut out, v);
        out.push(b'\n');
    }
    out
}

/// The store [`serialise`] wrote.
fn parse(snapshot: &[u8]) -> Result<KvStore, RestoreError> {
    let text = std::str::from_utf8(snapshot).map_err(|e| RestoreError {
        reason: e.to_string(),
    })?;
    let mut lines = text.lines();
    let applied = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| RestoreError {
            reason: "missing applied count".into(),
        })?;
    // Collected, then built in one piece (the lines come sorted, so the
    // map is built bottom-up rather than searched once per key). Keys
    // that became equal when their separators became spaces keep the
    // last line's value, as inserting line by line would: the sort is
    // stable and the build keeps the last of equal keys.
    let pairs = lines
        .map(|l| {
            let (k, v) = l.split_once('\t').ok_or_else(|| RestoreError {
                reason: format!("bad line {l:?}"),
            })?;
            Ok((k.to_string(), v.to_string()))
        })
        .collect::<Result<Vec<_>, RestoreError>>()?;
    Ok(KvStore {
        map: Arc::new(BTreeMap::from_iter(pairs)),
        applied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut kv = KvStore::default();
        assert_eq!(kv.apply(1, b"set a 1"), b"");
        assert_eq!(kv.apply(2, b"set a 2"), b"1");
        assert_eq!(kv.apply(3, b"bogus"), b"?");
        let mut back = KvStore::default();
        back.restore(&kv.snapshot()).unwrap();
        assert_eq!(back, kv);
        assert!(back.restore(b"\xff").is_err());
        // Separators inside a key or value become spaces.
        kv.apply(4, b"set k\tx y\nz");
        back.restore(&kv.snapshot()).unwrap();
        assert_eq!(back.map["k x"], "y z");
        // Two keys one after the separators became spaces: the later
        // line's value, as a line-by-line restore keeps.
        kv.apply(5, b"set k\nx w");
        let text = String::from_utf8(kv.snapshot()).unwrap();
        assert!(text.find("k x\ty z").unwrap() < text.find("k x\tw").unwrap());
        back.restore(text.as_bytes()).unwrap();
        assert_eq!(back.map["k x"], "w");
        assert_eq!(back.map.len(), 2);
        assert!(back.restore(b"x").is_err());
    }

    /// The background path: the handle keeps the state it was taken at
    /// while later writes go on, and the decoder and install rebuild it.
    #[test]
    fn background_snapshot_is_point_in_time() {
        let mut kv = KvStore::default();
        kv.apply(1, b"set a 1");
        let before = kv.clone();
        let mut handle = kv.snapshot_handle();
        kv.apply(2, b"set a 2");
        kv.apply(3, b"set b 3");
        let mut bytes = Vec::new();
        while handle.read_chunk(&mut bytes).unwrap() {}
        assert_eq!(bytes, before.snapshot());
        let decoded = kv.snapshot_decoder().unwrap()(&bytes).unwrap();
        kv.install(decoded).unwrap();
        assert_eq!(kv, before);
        let bad = kv.snapshot_decoder().unwrap()(b"\xff");
        assert!(bad.is_err());
        assert!(kv.install(Decoded::new(5u8)).is_err());
    }
}

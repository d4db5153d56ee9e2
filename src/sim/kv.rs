//! A small key-value state machine for tests, examples and users trying
//! the simulator.

use std::collections::BTreeMap;

use crate::state_machine::{RestoreError, StateMachine};

/// Commands are `set key value` or `del key` (UTF-8, space separated);
/// the response is the previous value. Anything else is applied as a no-op
/// and answered with `?`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvStore {
    /// The data.
    pub map: BTreeMap<String, String>,
    /// Commands applied (including no-ops).
    pub applied: u64,
}

impl StateMachine for KvStore {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        self.applied += 1;
        let text = String::from_utf8_lossy(command);
        let mut parts = text.splitn(3, ' ');
        let prev = match (parts.next(), parts.next(), parts.next()) {
            (Some("set"), Some(k), Some(v)) => self.map.insert(k.to_string(), v.to_string()),
            (Some("del"), Some(k), None) => self.map.remove(k),
            _ => return b"?".to_vec(),
        };
        prev.unwrap_or_default().into_bytes()
    }

    fn snapshot(&self) -> Vec<u8> {
        // One line per key, tab between key and value; a tab or newline
        // inside either becomes a space. Built in one buffer: the
        // simulator snapshots every member's map again and again.
        fn push(out: &mut Vec<u8>, s: &str) {
            out.extend(
                s.bytes()
                    .map(|b| if b == b'\t' || b == b'\n' { b' ' } else { b }),
            );
        }
        let mut out = format!("{}\n", self.applied).into_bytes();
        for (k, v) in &self.map {
            push(&mut out, k);
            out.push(b'\t');
            push(&mut out, v);
            out.push(b'\n');
        }
        out
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
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
        let mut map = BTreeMap::new();
        for l in lines {
            let (k, v) = l.split_once('\t').ok_or_else(|| RestoreError {
                reason: format!("bad line {l:?}"),
            })?;
            map.insert(k.to_string(), v.to_string());
        }
        *self = Self { map, applied };
        Ok(())
    }
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
        assert!(back.restore(b"x").is_err());
    }
}

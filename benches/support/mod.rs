//! What the benchmarks share: a large copy-on-write state machine, a small
//! digest one, and the process's memory figures. Included with `#[path]` (a file in a
//! subdirectory of `benches/` is not a benchmark of its own).
#![allow(dead_code)]

use std::sync::Arc;

use survivable_core::state_machine::{
    Decoded, RestoreError, SnapshotDecoder, SnapshotError, SnapshotSource, StateMachine,
};

/// One shard of the state, and the most a command writes.
pub(crate) const SHARD: usize = 1 << 20;

/// A large state: `n` shards of 1 MiB (filled with pseudo-random bytes,
/// so they are resident, not zero pages), shared copy-on-write with
/// snapshots under way (a write copies one shard, once, while one runs).
/// Commands: shard (u32 LE), offset (u32 LE), the bytes to write there.
#[derive(Clone)]
pub(crate) struct Blob {
    shards: Vec<Arc<Vec<u8>>>,
}

impl Blob {
    /// `mib` shards.
    pub(crate) fn new(mib: usize) -> Self {
        let shards = (0..mib)
            .map(|s| {
                let mut x = s as u64 | 1;
                Arc::new(
                    (0..SHARD)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x as u8
                        })
                        .collect(),
                )
            })
            .collect();
        Self { shards }
    }

    fn parse(bytes: &[u8]) -> Result<Self, RestoreError> {
        if bytes.is_empty() || bytes.len() % SHARD != 0 {
            return Err(RestoreError {
                reason: format!("{} bytes is not a whole number of shards", bytes.len()),
            });
        }
        let shards = bytes.chunks(SHARD).map(|c| Arc::new(c.to_vec())).collect();
        Ok(Self { shards })
    }
}

/// The shards as they were when the snapshot began, each let go once
/// read: a write to a shard already read no longer copies it.
struct Frozen(std::vec::IntoIter<Arc<Vec<u8>>>);

impl SnapshotSource for Frozen {
    fn size_hint(&self) -> usize {
        self.0.len() * SHARD
    }

    fn read_chunk(&mut self, out: &mut Vec<u8>) -> Result<bool, SnapshotError> {
        if let Some(s) = self.0.next() {
            out.extend_from_slice(&s);
        }
        Ok(self.0.len() > 0)
    }
}

impl StateMachine for Blob {
    fn apply(&mut self, _index: u64, c: &[u8]) -> Vec<u8> {
        if c.len() < 8 {
            return Vec::new();
        }
        let s = u32::from_le_bytes(c[..4].try_into().unwrap()) as usize % self.shards.len();
        let off = u32::from_le_bytes(c[4..8].try_into().unwrap()) as usize;
        let data = &c[8..c.len().min(8 + SHARD)];
        let off = off.min(SHARD - data.len());
        Arc::make_mut(&mut self.shards[s])[off..off + data.len()].copy_from_slice(data);
        Vec::new()
    }

    fn snapshot(&self) -> Vec<u8> {
        self.shards.iter().flat_map(|s| s.iter().copied()).collect()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), RestoreError> {
        *self = Self::parse(snapshot)?;
        Ok(())
    }

    fn snapshot_handle(&self) -> Box<dyn SnapshotSource> {
        Box::new(Frozen(self.shards.clone().into_iter()))
    }

    fn snapshot_decoder(&self) -> Option<SnapshotDecoder> {
        Some(Box::new(|b: &[u8]| Self::parse(b).map(Decoded::new)))
    }

    fn install(&mut self, decoded: Decoded) -> Result<(), RestoreError> {
        *self = decoded.downcast::<Self>()?;
        Ok(())
    }
}

/// Resets `VmHWM` to the resident size now (Linux; ignored elsewhere).
pub(crate) fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident size (`VmHWM`), KiB (0 where unknown).
pub(crate) fn vm_hwm_kib() -> u64 {
    vm_kib("VmHWM:")
}

/// A field of `/proc/self/status`, KiB (0 where unknown).
pub(crate) fn vm_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A small state machine: a digest of the commands applied (FNV-1a over
/// each command and its index), 8 bytes of snapshot. For benchmarks that
/// measure the commit path, not a store.
#[derive(Default)]
pub(crate) struct Digest(pub(crate) u64);

impl StateMachine for Digest {
    fn apply(&mut self, index: u64, c: &[u8]) -> Vec<u8> {
        for b in c.iter().chain(&index.to_le_bytes()) {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        Vec::new()
    }
    fn snapshot(&self) -> Vec<u8> {
        self.0.to_le_bytes().to_vec()
    }
    fn restore(&mut self, s: &[u8]) -> Result<(), RestoreError> {
        let b: [u8; 8] = s.try_into().map_err(|_| RestoreError {
            reason: "a digest is 8 bytes".into(),
        })?;
        self.0 = u64::from_le_bytes(b);
        Ok(())
    }
}

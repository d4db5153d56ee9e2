//! The retained log: how much of it this member holds above its
//! compaction point, and the optional retention bound (main-site mode).
//!
//! In main-site mode a member keeps every entry a survivable member has
//! not committed (the compaction floor, see `Node::compaction_floor`):
//! while the WAN is cut, that tail grows by the write rate times the cut's
//! length and is sent, at the reunion, to the newer epoch's leader, which
//! hands it to [`StateMachine::reconcile`](crate::StateMachine::reconcile).
//! By default nothing bounds it: the disk must hold the longest cut
//! (about 60 bytes an entry plus the command; at 200 commands/s of 100
//! bytes, some 110 MB a day).
//!
//! [`NodeConfig::retain_max_entries`](super::NodeConfig::retain_max_entries)
//! and [`NodeConfig::retain_max_bytes`](super::NodeConfig::retain_max_bytes)
//! bound it. When the retained tail reaches
//! [`retain_warn_percent`](super::NodeConfig::retain_warn_percent) of a
//! bound, [`Event::RetentionWarning`](crate::Event::RetentionWarning) fires
//! (once per crossing) while nothing is lost yet. When it reaches the
//! bound, the member snapshots and compacts at once, past the floor, down
//! to the bound less one snapshot interval (so that the next forced
//! compaction comes no sooner than a regular one would): the entries
//! dropped that way are the oldest a survivable member has not committed,
//! reported by [`Event::RetainedDropped`](crate::Event::RetainedDropped)
//! with their index range and counted in
//! [`Counters::retained_dropped`](super::Counters::retained_dropped). At
//! the reunion this member then sends its divergent run from its first
//! retained entry on, with the count of what it lacks; the newer epoch's
//! leader waits a few rounds for a member that still holds the start,
//! and otherwise reconciles the rest and reports the missing entries as
//! `compacted` in [`Event::Reconciled`](crate::Event::Reconciled): the
//! loss is typed, counted, and was warned of, never silent.

use std::collections::VecDeque;

use protobuf::Message as _;
use raft::eraftpb::Entry;

/// The log entries this member holds, by size: exact, kept up to date as
/// entries are persisted and compacted.
#[derive(Debug, Default)]
pub(super) struct RetainedLog {
    /// The index of `sizes[0]`.
    first: u64,
    /// Each held entry's encoded size, in index order (4 bytes an entry:
    /// a day's cut at 200 entries/s costs some 70 MB here).
    sizes: VecDeque<u32>,
    /// Their sum.
    bytes: u64,
    /// Whether the warning fired and the tail has not gone back below it.
    pub(super) warned: bool,
}

/// An entry's size as held: its encoded length.
pub(super) fn entry_size(e: &Entry) -> u32 {
    e.compute_size()
}

impl RetainedLog {
    /// Entries persisted (raft's order): an entry at an index already held
    /// replaces it and everything after it (a follower's conflicting
    /// suffix).
    pub(super) fn appended(&mut self, entries: &[Entry]) {
        for e in entries {
            self.put(e.index, entry_size(e));
        }
    }

    fn put(&mut self, index: u64, size: u32) {
        if self.sizes.is_empty() || index < self.first {
            self.clear(index);
        }
        let keep = (index - self.first) as usize;
        while self.sizes.len() > keep {
            self.bytes -= self.sizes.pop_back().map_or(0, u64::from);
        }
        if self.sizes.len() < keep {
            // A gap (should not happen): start over from here.
            self.clear(index);
        }
        self.sizes.push_back(size);
        self.bytes += u64::from(size);
    }

    fn clear(&mut self, first: u64) {
        self.sizes.clear();
        self.bytes = 0;
        self.first = first;
    }

    /// The log now starts at `first_index`: drops what lies below.
    pub(super) fn compacted_to(&mut self, first_index: u64) {
        while self.first < first_index && !self.sizes.is_empty() {
            self.bytes -= self.sizes.pop_front().map_or(0, u64::from);
            self.first += 1;
        }
        if self.sizes.is_empty() {
            self.first = first_index;
        }
    }

    /// Whether this holds exactly the log `first..=last` (else it must be
    /// rebuilt: after a restart or a snapshot installed).
    pub(super) fn covers(&self, first: u64, last: u64) -> bool {
        if last < first {
            return self.sizes.is_empty();
        }
        self.first == first && self.last() == Some(last)
    }

    /// Starts over with the log `first..` of these sizes.
    pub(super) fn rebuild(&mut self, first: u64, sizes: impl IntoIterator<Item = u32>) {
        self.clear(first);
        for s in sizes {
            self.sizes.push_back(s);
            self.bytes += u64::from(s);
        }
    }

    fn last(&self) -> Option<u64> {
        (!self.sizes.is_empty()).then(|| self.first + self.sizes.len() as u64 - 1)
    }

    /// Entries held.
    pub(super) fn entries(&self) -> u64 {
        self.sizes.len() as u64
    }

    /// Bytes held.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The lowest index from which the held entries sum to at most
    /// `max_bytes` (one past the last when even the last one is larger).
    pub(super) fn start_within(&self, max_bytes: u64) -> u64 {
        let mut sum = 0u64;
        let mut start = self.first + self.sizes.len() as u64;
        for &s in self.sizes.iter().rev() {
            let s = u64::from(s);
            if sum + s > max_bytes {
                break;
            }
            sum += s;
            start -= 1;
        }
        start
    }
}

/// The optional bound on the retained log and when to warn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Bound {
    /// Entries held at most.
    pub(super) max_entries: Option<u64>,
    /// Bytes held at most.
    pub(super) max_bytes: Option<u64>,
    /// Percent of a bound at which to warn.
    pub(super) warn_percent: u8,
}

/// Where the retained log stands against its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    /// Below the warning mark of every bound (or no bound).
    Fine,
    /// At or above the warning mark of a bound, below every bound.
    Warn,
    /// At or above a bound.
    Full,
}

/// Where `entries` and `bytes` held stand against `bound`.
pub(super) fn level(entries: u64, bytes: u64, bound: Bound) -> Level {
    let pairs = [(entries, bound.max_entries), (bytes, bound.max_bytes)];
    let mut level = Level::Fine;
    for (held, max) in pairs {
        let Some(max) = max else { continue };
        if held >= max {
            return Level::Full;
        }
        let mark = (u128::from(max) * u128::from(bound.warn_percent)).div_ceil(100);
        if u128::from(held) >= mark {
            level = Level::Warn;
        }
    }
    level
}

/// The floor a full retained log compacts to: the survivable `floor`
/// raised so that at most the bound less one snapshot interval stays,
/// the log being `first..=last`, `start_within(max)` the lowest index
/// from which held entries fit in `max` bytes. The result is never below
/// `floor` and never above `last`.
pub(super) fn bounded_floor(
    floor: u64,
    last: u64,
    bound: Bound,
    snapshot_every: u64,
    start_within: impl Fn(u64) -> u64,
) -> u64 {
    let mut to = floor;
    if let Some(max) = bound.max_entries {
        let target = max - snapshot_every.min(max / 2);
        to = to.max(last.saturating_sub(target));
    }
    if let Some(max) = bound.max_bytes {
        let target = max - (max / 8);
        to = to.max(start_within(target).saturating_sub(1));
    }
    to.min(last)
}

/// How many entries a compaction from first index `old_first` to
/// `new_first` dropped that a survivable member had not committed (above
/// `floor`, the lowest commit any of them reported).
pub(super) fn dropped_above(floor: u64, old_first: u64, new_first: u64) -> u64 {
    new_first.saturating_sub(old_first.max(floor + 1))
}

/// Entries the floor keeps beyond what compaction alone keeps now:
/// applied `applied`, `keep_entries` behind each snapshot, floor `floor`.
pub(super) fn held_back(applied: u64, keep_entries: u64, floor: Option<u64>) -> u64 {
    let plain = keep_entries.min(applied);
    let kept = super::ready::keep_for(applied, keep_entries, floor).min(applied);
    kept - plain
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;

impl<M: crate::StateMachine, S: crate::storage::LogStore> super::Node<M, S> {
    /// The bound configured.
    fn retention_bound(&self) -> Bound {
        Bound {
            max_entries: self.cfg.retain_max_entries,
            max_bytes: self.cfg.retain_max_bytes,
            warn_percent: self.cfg.retain_warn_percent,
        }
    }

    /// Brings the retained-log account in line with raft's log (after a
    /// restart, a snapshot installed or a compaction), warns once per
    /// crossing of the warning mark (main-site mode, where the floor holds
    /// entries), and tells whether the log is at its bound with entries
    /// to drop: compaction must happen now (at most once per eighth of a
    /// snapshot interval applied, so that a bound below what compaction
    /// keeps anyway cannot cause a snapshot per batch).
    pub(super) fn retention_due(&mut self) -> bool {
        self.sync_retained();
        let bound = self.retention_bound();
        if bound.max_entries.is_none() && bound.max_bytes.is_none() {
            // No bound (the default): the level is always `Fine`, with or
            // without a floor; skip computing the floor on every Ready.
            self.retained.warned = false;
            return false;
        }
        let Some(floor) = self.compaction_floor() else {
            self.retained.warned = false;
            return false;
        };
        let (entries, bytes) = (self.retained.entries(), self.retained.bytes());
        let level = level(entries, bytes, bound);
        if level == Level::Fine {
            self.retained.warned = false;
        } else if !self.retained.warned {
            self.retained.warned = true;
            slog::warn!(self.logger, "retained log near its bound";
                "entries" => entries, "bytes" => bytes);
            self.emit(crate::Event::RetentionWarning {
                entries,
                bytes,
                max_entries: bound.max_entries,
                max_bytes: bound.max_bytes,
                percent: bound.warn_percent,
            });
        }
        let step = (self.cfg.snapshot_every / 8).max(1);
        level == Level::Full
            && self.bounded_floor() > floor
            && self.applied >= self.snapshot_index + step
    }

    /// The compaction floor, raised at the retention bound (see
    /// [`bounded_floor`]); `None` where there is no floor.
    pub(super) fn bounded_floor(&self) -> u64 {
        let floor = self.compaction_floor().unwrap_or(0);
        let bound = self.retention_bound();
        if level(self.retained.entries(), self.retained.bytes(), bound) != Level::Full {
            return floor;
        }
        let last = self.raw.raft.raft_log.last_index();
        bounded_floor(floor, last, bound, self.cfg.snapshot_every, |max| {
            self.retained.start_within(max)
        })
    }

    /// The floor compaction uses now: the survivable floor, raised at the
    /// retention bound.
    pub(super) fn compaction_point(&self) -> Option<u64> {
        self.compaction_floor().map(|_| self.bounded_floor())
    }

    /// After a compaction from first index `old_first`: reports and counts
    /// the entries it dropped that a survivable member had not committed.
    pub(super) fn note_compacted(&mut self, old_first: u64, floor: Option<u64>) {
        let new_first = self.raw.raft.raft_log.first_index();
        self.retained.compacted_to(new_first);
        let Some(floor) = floor else { return };
        let entries = dropped_above(floor, old_first, new_first);
        if entries == 0 {
            return;
        }
        let from_index = new_first - entries;
        let to_index = new_first - 1;
        self.counters.retained_dropped += entries;
        slog::error!(self.logger, "retention bound: dropped entries a survivable member lacks";
            "from" => from_index, "to" => to_index);
        self.emit(crate::Event::RetainedDropped {
            from_index,
            to_index,
            entries,
        });
    }

    fn sync_retained(&mut self) {
        let (first, last) = {
            let log = &self.raw.raft.raft_log;
            (log.first_index(), log.last_index())
        };
        self.retained.compacted_to(first);
        if self.retained.covers(first, last) {
            return;
        }
        let sizes: Vec<u32> = if last >= first {
            self.raw
                .raft
                .raft_log
                .entries(first, u64::MAX, raft::GetEntriesContext::empty(false))
                .unwrap_or_default()
                .iter()
                .map(entry_size)
                .collect()
        } else {
            Vec::new()
        };
        self.retained.rebuild(first, sizes);
    }

    /// Entries and bytes held, and how many the floor holds back.
    pub(super) fn retained_now(&self) -> (u64, u64, u64) {
        let held = held_back(self.applied, self.cfg.keep_entries, self.compaction_floor());
        (self.retained.entries(), self.retained.bytes(), held)
    }
}

//! A peer's lag in time: the age of the oldest entry it lacks.

use std::collections::VecDeque;

/// Records kept at most: older ones are dropped, and a lag reaching past
/// the oldest kept is reported as the age of that record (a lower bound).
pub(crate) const KEPT: usize = 4096;

/// When this member's last index reached each value, increasing: a record
/// `(index, at_ms)` says that entries up to `index` were in the log at
/// `at_ms` (and the entries above the previous record arrived then).
#[derive(Debug, Default)]
pub(crate) struct LagHistory {
    records: VecDeque<(u64, u64)>,
}

impl LagHistory {
    /// This member's last index is `last` at `now_ms`. A log cut back
    /// (a follower's conflicting tail replaced) forgets the records above
    /// it; a log that grew adds one.
    pub(crate) fn record(&mut self, last: u64, now_ms: u64) {
        // Entries up to `last` kept after a cut date from the record that
        // brought them.
        let mut at = now_ms;
        while let Some(&(i, t)) = self.records.back() {
            if i <= last {
                break;
            }
            at = t;
            self.records.pop_back();
        }
        if self.records.back().is_some_and(|&(i, _)| i == last) {
            return;
        }
        if self.records.len() == KEPT {
            self.records.pop_front();
        }
        self.records.push_back((last, at));
    }

    /// How long, at `now_ms`, the oldest entry a peer that holds up to
    /// `matched` lacks has been in this log: 0 when it lacks nothing. When
    /// that entry is older than every record kept, the oldest record's age
    /// (a lower bound).
    pub(crate) fn lag_ms(&self, matched: u64, now_ms: u64) -> u64 {
        let Some(&(last, _)) = self.records.back() else {
            return 0;
        };
        if matched >= last {
            return 0;
        }
        // The first record holding entry `matched + 1` dates its arrival.
        let at = self.records.partition_point(|&(i, _)| i <= matched);
        let (_, since) = self.records[at.min(self.records.len() - 1)];
        now_ms.saturating_sub(since)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_lacking_nothing_lags_zero() {
        let mut h = LagHistory::default();
        assert_eq!(h.lag_ms(0, 100), 0, "no history");
        h.record(10, 100);
        assert_eq!(h.lag_ms(10, 500), 0);
        assert_eq!(h.lag_ms(12, 500), 0, "ahead (a new leader's stale view)");
    }

    #[test]
    fn the_age_is_that_of_the_oldest_missing_entry() {
        let mut h = LagHistory::default();
        h.record(10, 1_000); // entries ..=10 at 1000
        h.record(15, 1_200); // 11..=15 at 1200
        h.record(20, 1_500); // 16..=20 at 1500
                             // Holds 10: lacks 11, there since 1200.
        assert_eq!(h.lag_ms(10, 2_000), 800);
        // Holds 12: lacks 13, also since 1200.
        assert_eq!(h.lag_ms(12, 2_000), 800);
        // Holds 15: lacks 16, since 1500.
        assert_eq!(h.lag_ms(15, 2_000), 500);
        assert_eq!(h.lag_ms(19, 2_000), 500);
        // Holds 5: lacks 6, older than the history: its oldest record.
        assert_eq!(h.lag_ms(5, 2_000), 1_000);
        // The same value again is no new record: 20 stays dated 1500.
        h.record(20, 1_900);
        assert_eq!(h.lag_ms(15, 2_000), 500);
    }

    #[test]
    fn a_log_cut_back_forgets_the_entries_above() {
        let mut h = LagHistory::default();
        h.record(10, 100);
        h.record(20, 200);
        h.record(30, 300);
        // Entries 16..=30 replaced: the new 16.. arrive at 400.
        h.record(15, 400);
        h.record(18, 400);
        assert_eq!(h.lag_ms(15, 1_000), 600, "16 arrived (again) at 400");
        assert_eq!(h.lag_ms(12, 1_000), 800, "13 held since 200");
    }

    #[test]
    fn the_history_is_bounded() {
        let mut h = LagHistory::default();
        for i in 1..=(KEPT as u64 + 100) {
            h.record(i, i);
        }
        assert_eq!(h.len(), KEPT);
        let now = KEPT as u64 + 1_000;
        // Entry 2 was dropped from the history: the oldest kept (101) dates it.
        assert_eq!(h.lag_ms(1, now), now - 101);
        assert_eq!(h.lag_ms(200, now), now - 201);
    }
}

//! What reunion makes of an older epoch's divergent run: which entries
//! are shown to the reconciliation hook, whether a run missing its start
//! may be taken yet, how a refusing hook backs off, and whether a
//! committed reconciliation is stale. Pure decisions, unit-tested in
//! `divergent_tests.rs`; [`reunion`](super::reunion) acts on them.

use std::collections::BTreeMap;

use raft::eraftpb::{Entry, EntryType};

use super::ProposalId;
use crate::ids::{origin_of, EntryRange, EpochId, EpochRecord};
use crate::state_machine::DivergentEntry;
use crate::topology::NodeId;
use crate::wire::payload::{EntryPayload, OriginalEntry};

/// Election timeouts a newer leader waits for a whole divergent run
/// before it takes one missing its start.
const GAP_WAIT_ELECTIONS: u64 = 3;
/// The reconciliation back-off doubles at most this many times (32
/// election timeouts).
const MAX_BACKOFF_DOUBLINGS: u32 = 5;

/// What of an older epoch's log `entries` (after `done`, the first
/// `compacted` of them gone; `lineage` its history) this epoch has not
/// seen: every user entry as first proposed, by origin, minus what is
/// in this history or was shown before; and the run of each origin's
/// entries accounted for. `None` if a run would leave a gap after what
/// was accounted for of that origin before. What compacted entries had
/// themselves reconciled (`compacted_covered`, the sender's snapshot
/// view) is accounted for too, counted only: its commands are gone.
/// `ours` is this epoch's lineage, `shown_before` how far each epoch's own
/// entries were shown by earlier reconciliations.
pub(super) fn to_show(
    ours: &[EpochRecord],
    shown_before: &BTreeMap<EpochId, u64>,
    lineage: &[EpochRecord],
    entries: &[Entry],
    done: u64,
    compacted: u64,
    compacted_covered: &BTreeMap<EpochId, u64>,
) -> Option<(Vec<OriginalEntry>, Vec<EntryRange>)> {
    // The first index of each origin not seen here yet.
    let unseen_from = |epoch: EpochId| {
        let shown = shown_before.get(&epoch).copied().unwrap_or(0);
        let forked = ours
            .iter()
            .position(|r| r.id == epoch)
            .map(|p| ours.get(p + 1).map_or(u64::MAX, |c| c.fork_index));
        shown.max(forked.unwrap_or(0)).saturating_add(1)
    };
    let mut runs: BTreeMap<EpochId, (u64, u64)> = BTreeMap::new();
    let mut cover = |epoch: EpochId, first: u64, last: u64| {
        let first = first.max(unseen_from(epoch));
        if first <= last {
            let r = runs.entry(epoch).or_insert((first, last));
            r.0 = r.0.min(first);
            r.1 = r.1.max(last);
        }
    };
    let mut originals = Vec::new();
    for index in done + 1..=done + compacted {
        cover(origin_of(lineage, index), index, index);
    }
    if compacted > 0 {
        for (&epoch, &last) in compacted_covered {
            cover(epoch, 1, last);
        }
    }
    for en in entries {
        let origin = origin_of(lineage, en.index);
        cover(origin, en.index, en.index);
        let payload = (en.get_entry_type() == EntryType::EntryNormal && !en.data.is_empty())
            .then(|| <EntryPayload as prost::Message>::decode(&en.data[..]).ok())
            .flatten();
        let Some(p) = payload else {
            continue;
        };
        if let Some(r) = p.reconcile {
            // What that epoch reconciled: shown again, as first proposed.
            for x in r.covered.iter().map(EntryRange::from) {
                cover(x.epoch, x.first, x.last);
            }
            originals.extend(r.originals);
        } else if p.proposer != 0 {
            originals.push(OriginalEntry {
                origin_number: origin.number,
                origin_founder: origin.founder.0,
                index: en.index,
                term: en.term,
                command: p.command,
                proposer: p.proposer,
                boot: p.boot,
                seq: p.seq,
            });
        }
    }
    originals.retain(|o| o.index >= unseen_from(o.origin()));
    // Each origin's run must follow on from what was seen of it.
    for (&epoch, &(first, _)) in &runs {
        let known = shown_before.contains_key(&epoch) || ours.iter().any(|r| r.id == epoch);
        if known && first > unseen_from(epoch) {
            return None;
        }
    }
    let ranges = runs
        .into_iter()
        .map(|(epoch, (first, last))| EntryRange { epoch, first, last })
        .collect();
    Some((originals, ranges))
}

/// Of the `originals` a reconciliation would show, those to show: the
/// first copy of each proposal (an older epoch's log may hold a
/// re-submitted proposal twice; it applied only the first), and none this
/// epoch has `applied` already (re-submitted here after the cut). With how
/// many were left out: they stay accounted for (in the record's ranges)
/// but are not shown, since showing them would apply them a second time.
pub(super) fn unapplied(
    originals: Vec<OriginalEntry>,
    applied: impl Fn(&OriginalEntry) -> bool,
) -> (Vec<OriginalEntry>, usize) {
    let before = originals.len();
    let mut seen = std::collections::BTreeSet::new();
    let kept: Vec<OriginalEntry> = originals
        .into_iter()
        .filter(|o| o.proposer == 0 || (!applied(o) && seen.insert((o.proposer, o.boot, o.seq))))
        .collect();
    let left_out = before - kept.len();
    (kept, left_out)
}

/// Whether a committed reconciliation shows a proposal this epoch has
/// `applied` since it was proposed: then applying it would apply that
/// proposal twice.
pub(super) fn any_applied(
    originals: &[OriginalEntry],
    applied: impl Fn(&OriginalEntry) -> bool,
) -> bool {
    originals.iter().any(|o| o.proposer != 0 && applied(o))
}

/// Of a divergent message's `entries` (the first at `first_index`, the
/// sender having compacted `compacted` entries before it), those after
/// `done`, with the gap before them (what the sender compacted) and the
/// last index they reach. `None` when the message is empty, leaves a gap
/// the sender did not compact, or is not contiguous.
pub(super) fn divergent_run(
    first_index: u64,
    compacted: u64,
    done: u64,
    entries: impl Iterator<Item = Entry>,
) -> Option<(Vec<Entry>, u64, u64)> {
    if first_index == 0 {
        return None;
    }
    // A gap before the first entry must be what the sender compacted.
    let gap = first_index.saturating_sub(done + 1);
    if gap > compacted {
        return None;
    }
    let entries: Vec<Entry> = entries.filter(|en| en.index > done).collect();
    let contiguous = entries
        .iter()
        .zip(first_index.max(done + 1)..)
        .all(|(en, i)| en.index == i);
    if !contiguous || (entries.is_empty() && gap == 0) {
        return None;
    }
    let to_index = entries.last().map_or(done + gap, |en| en.index);
    Some((entries, gap, to_index))
}

/// Whether a run missing its start, first offered at tick `since`, may be
/// taken at tick `now` (`election`: the election timeout in ticks).
pub(super) fn gap_wait_over(since: u64, now: u64, election: u64) -> bool {
    now >= since.saturating_add(GAP_WAIT_ELECTIONS * election)
}

/// After `failures` consecutive refusals of the hook, the attempt number
/// of the next failure and the back-off it gets (ticks): one election
/// timeout, doubling with each consecutive failure up to 32.
pub(super) fn backoff(failures: u32, election: u64) -> (u32, u64) {
    let attempt = failures.saturating_add(1);
    (
        attempt,
        election << (attempt - 1).min(MAX_BACKOFF_DOUBLINGS),
    )
}

/// Whether a committed reconciliation of epoch `from`'s entries from
/// `from_index`, covering `ranges`, was proposed against an older view:
/// it overlaps what was taken in (`reconciled`) or shown (`covered`) since.
pub(super) fn stale(
    from_index: u64,
    from: EpochId,
    ranges: &[EntryRange],
    reconciled: &BTreeMap<EpochId, u64>,
    covered: &BTreeMap<EpochId, u64>,
) -> bool {
    let taken = reconciled.get(&from).copied().unwrap_or(0);
    from_index <= taken
        || ranges
            .iter()
            .any(|x| x.first <= covered.get(&x.epoch).copied().unwrap_or(0))
}

/// The text of a caught panic's payload.
pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic whose payload is not text".into())
}

/// What the hook is shown of an entry as first proposed.
pub(super) fn divergent_entry(o: &OriginalEntry) -> DivergentEntry {
    DivergentEntry {
        epoch: o.origin(),
        index: o.index,
        term: o.term,
        command: o.command.clone(),
        proposal: (o.proposer != 0).then_some(ProposalId {
            node: NodeId(o.proposer),
            boot: o.boot,
            seq: o.seq,
        }),
    }
}

#[cfg(test)]
#[path = "divergent_tests.rs"]
mod tests;

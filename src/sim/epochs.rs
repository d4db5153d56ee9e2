//! Which epoch each event drained from a node belongs to.
//!
//! The simulator drains a node after every input (a tick, a message, a
//! proposal), and one input can both elect the node and move it to another
//! epoch (a takeover activates a new epoch; a member that met a newer epoch
//! joins it). The node's epoch at drain time is then the newest one, not
//! necessarily the one an earlier event happened in; attributing a
//! `BecameLeader` to it would check election safety against the wrong
//! (epoch, term). The node announces every epoch it moves to by an event
//! ([`Event::Activated`], [`Event::JoinedEpoch`]), in order with the
//! others, so the epoch of each event is the last one announced before it.
//! The one silent change, installing a snapshot of another epoch's
//! lineage, happens only as a follower, before any leadership in the same
//! input: without an announcement, every event belongs to the epoch the
//! node is in when drained.

use crate::events::Event;
use crate::ids::EpochId;

/// The epoch of each of `events`, drained from a node that was in
/// `before` when the input arrived and is in `after` now.
pub(crate) fn of_events(before: EpochId, after: EpochId, events: &[Event]) -> Vec<EpochId> {
    let announced = |e: &Event| match e {
        Event::Activated { epoch, .. } | Event::JoinedEpoch { epoch } => Some(*epoch),
        _ => None,
    };
    if !events.iter().any(|e| announced(e).is_some()) {
        return vec![after; events.len()];
    }
    let mut now = before;
    events
        .iter()
        .map(|e| {
            if let Some(epoch) = announced(e) {
                now = epoch;
            }
            now
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::LeadershipCause;
    use crate::ids::FIRST_EPOCH;
    use crate::topology::NodeId;

    const PARIS: EpochId = EpochId {
        number: 2,
        founder: NodeId(3),
    };

    fn leader(term: u64) -> Event {
        Event::BecameLeader {
            term,
            cause: LeadershipCause::Elected,
        }
    }

    fn activated() -> Event {
        Event::Activated {
            epoch: PARIS,
            fork_index: 10,
            fork_term: 2,
            rpo_entries: 0,
            rpo_ms: 0,
            silent_ms: 1000,
            rpo_proven: false,
        }
    }

    #[test]
    fn a_leader_elected_before_an_activation_in_the_same_input_keeps_its_epoch() {
        let events = [leader(3), activated(), leader(1)];
        assert_eq!(
            of_events(FIRST_EPOCH, PARIS, &events),
            [FIRST_EPOCH, PARIS, PARIS]
        );
        let joined = [leader(5), Event::JoinedEpoch { epoch: PARIS }];
        assert_eq!(of_events(FIRST_EPOCH, PARIS, &joined), [FIRST_EPOCH, PARIS]);
    }

    #[test]
    fn without_an_announcement_events_belong_to_the_epoch_drained_in() {
        // A snapshot of Paris's lineage installed, then elected there.
        assert_eq!(of_events(FIRST_EPOCH, PARIS, &[leader(2)]), [PARIS]);
        assert_eq!(
            of_events(FIRST_EPOCH, FIRST_EPOCH, &[leader(2)]),
            [FIRST_EPOCH]
        );
        assert!(of_events(FIRST_EPOCH, PARIS, &[]).is_empty());
    }
}

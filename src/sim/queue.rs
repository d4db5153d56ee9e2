//! The simulator's event queue: events in order of their time, and in the
//! order they were scheduled among events of the same time.
//!
//! The heap holds only small keys (time, sequence number, slot); each
//! event's payload (a delivered envelope's bytes, among others) waits in a
//! slot of a side table whose free slots are reused. A heap that held the
//! payloads moved every one of them at each sift; this one moves 24 bytes.
//! The order is the same as ordering the events by (time, sequence), the
//! sequence being unique: slots never take part in it.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// A heap entry: when, the scheduling order, and where the payload is.
#[derive(Debug, Clone, Copy)]
struct Key {
    at: u64,
    seq: u64,
    slot: u32,
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Events of type `T` by time, first scheduled first among equal times.
#[derive(Debug)]
pub(super) struct Queue<T> {
    heap: BinaryHeap<Reverse<Key>>,
    /// Payloads by slot; `None` in a free slot.
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    seq: u64,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }
}

impl<T> Queue<T> {
    /// Schedules `what` at `at` (after everything already scheduled then).
    pub(super) fn push(&mut self, at: u64, what: T) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(what);
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).expect("fewer than 2^32 events pending");
                self.slots.push(Some(what));
                slot
            }
        };
        self.heap.push(Reverse(Key {
            at,
            seq: self.seq,
            slot,
        }));
    }

    /// The earliest event and its time.
    pub(super) fn pop(&mut self) -> Option<(u64, T)> {
        let Reverse(key) = self.heap.pop()?;
        let what = self.slots[key.slot as usize]
            .take()
            .expect("a queued key's slot holds its event");
        self.free.push(key.slot);
        Some((key.at, what))
    }

    /// The time of the earliest event.
    pub(super) fn next_at(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(k)| k.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_time_then_scheduling_order_with_slots_reused() {
        let mut q = Queue::default();
        q.push(5, "a");
        q.push(3, "b");
        q.push(5, "c");
        assert_eq!(q.next_at(), Some(3));
        assert_eq!(q.pop(), Some((3, "b")));
        // Reuses b's slot, still after "a" and "c" at 5.
        q.push(5, "d");
        q.push(1, "e");
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, [(1, "e"), (5, "a"), (5, "c"), (5, "d")]);
        assert_eq!(q.slots.len(), 4, "five events, b's slot reused by d");
        assert_eq!(q.next_at(), None);
    }
}

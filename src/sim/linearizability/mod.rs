//! A linearizability checker for a key-value register workload.
//!
//! Record what clients did ([`History::invoke`], [`History::complete`],
//! [`History::fail`]), then [`History::check`] whether some total order of
//! the operations that respects real time explains every result against a
//! map of registers, each key independent and initially absent.
//!
//! Per key, Wing & Gong's depth-first search with Lowe's just-in-time rule,
//! as in Knossos and Porcupine: only operations invoked no later than the
//! earliest completion among those not yet placed may take effect next, and
//! each (placed set, value) state is explored once. Pruning that loses no
//! linearization: a read of the current value is placed at once; a write
//! whose value no read left returns is placed with the next write, as early
//! as allowed, and all such values are one state; a write with unknown
//! outcome is placed only right before a read of its value. Unknown
//! outcomes complete at +∞: such reads are dropped, such writes take effect
//! after their invocation or never. Equal times count as concurrent. A
//! failing key's history is shrunk to a minimal failing sub-history.
//!
//! ```
//! use survivable_core::sim::linearizability::{History, Op, OpResult};
//! let mut h = History::new();
//! let w = h.invoke(1, Op::Write { key: "k".into(), value: "a".into() }, 0);
//! h.complete(w, OpResult::Written, 10);
//! let r = h.invoke(2, Op::Read { key: "k".into() }, 20);
//! h.complete(r, OpResult::Read(None), 30); // stale: "a" was written
//! assert!(h.check().is_err());
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use thiserror::Error;

/// Explored states per key after which [`History::check`] gives up.
pub const DEFAULT_MAX_STATES: u64 = 1_000_000;

/// An operation on the register map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Reads a key.
    Read {
        /// The key.
        key: String,
    },
    /// Writes a key.
    Write {
        /// The key.
        key: String,
        /// The value written.
        value: String,
    },
}

impl Op {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            Self::Read { key } | Self::Write { key, .. } => key,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { key } => write!(f, "read({key:?})"),
            Self::Write { key, value } => write!(f, "write({key:?}, {value:?})"),
        }
    }
}

/// What a completed operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpResult {
    /// A read's value (`None`: the key is absent).
    Read(Option<String>),
    /// A write took effect.
    Written,
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(Some(v)) => write!(f, "{v:?}"),
            Self::Read(None) => f.write_str("absent"),
            Self::Written => f.write_str("ok"),
        }
    }
}

/// Identifies an invoked operation within its [`History`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(usize);

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It completed at `at_us` with `result`.
    Completed {
        /// Completion time (virtual µs).
        at_us: u64,
        /// What it returned.
        result: OpResult,
    },
    /// Unknown: it may or may not have taken effect, at any time after its
    /// invocation. `at_us` is when the client gave up ([`History::fail`]),
    /// `None` if it is still pending.
    Unknown {
        /// When the client gave up, if it did.
        at_us: Option<u64>,
    },
}

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// Its id.
    pub id: OpId,
    /// The client that invoked it.
    pub client: u64,
    /// The operation.
    pub op: Op,
    /// Invocation time (virtual µs).
    pub invoked_us: u64,
    /// How it ended.
    pub outcome: Outcome,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} @{}..", self.client, self.invoked_us)?;
        match &self.outcome {
            Outcome::Completed { at_us, result } => write!(f, "{at_us}: {} -> {result}", self.op),
            Outcome::Unknown { .. } => write!(f, "?: {} -> ?", self.op),
        }
    }
}

/// A recorded concurrent history, built incrementally.
#[derive(Debug, Clone, Default)]
pub struct History {
    entries: Vec<Entry>,
}

/// What a successful [`History::check`] looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Operations recorded.
    pub ops: usize,
    /// Distinct keys.
    pub keys: usize,
    /// Operations with unknown outcome dropped before the search (reads,
    /// and writes whose value no read returned).
    pub dropped: usize,
    /// Search states explored, over all keys.
    pub states: u64,
}

/// A key whose history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Violation {
    /// The key.
    pub key: String,
    /// A non-linearizable sub-history of that key, ordered by invocation,
    /// shrunk until removing any one operation makes it linearizable. A
    /// read is only kept with every write of the value it returned, so a
    /// stale read shows the write it read and the one it missed, and the
    /// fault shown is one of the full history, not one made by shrinking.
    pub history: Vec<Entry>,
    /// Operations of that key in the full history.
    pub key_ops: usize,
    /// Whether shrinking finished (`false`: its work bound ran out first,
    /// so some operation of `history` may be superfluous).
    pub minimal: bool,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, n, of) = (&self.key, self.history.len(), self.key_ops);
        let more = if self.minimal {
            ""
        } else {
            " (not fully shrunk)"
        };
        write!(
            f,
            "key {key:?} is not linearizable; {n} of its {of} operations show it{more}:"
        )?;
        for e in &self.history {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Why [`History::check`] did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CheckError {
    /// A key's history is not linearizable.
    #[error("{0}")]
    NotLinearizable(Violation),
    /// A key needed more search states than the limit: undecided.
    #[error("key {key:?}: undecided after {states} search states")]
    TooComplex {
        /// The key.
        key: String,
        /// States explored before giving up.
        states: u64,
    },
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// A client invokes an operation at virtual time `at_us`; returns its id.
    pub fn invoke(&mut self, client: u64, op: Op, at_us: u64) -> OpId {
        let id = OpId(self.entries.len());
        self.entries.push(Entry {
            id,
            client,
            op,
            invoked_us: at_us,
            outcome: Outcome::Unknown { at_us: None },
        });
        id
    }

    /// The operation completes with `result` at `at_us` (times before its
    /// invocation count as its invocation). Ignored for an unknown id or an
    /// operation already completed or failed. A result of the wrong kind (a
    /// read answered [`OpResult::Written`]) can never be linearized.
    pub fn complete(&mut self, id: OpId, result: OpResult, at_us: u64) {
        if let Some(e) = self.pending(id) {
            let at_us = at_us.max(e.invoked_us);
            e.outcome = Outcome::Completed { at_us, result };
        }
    }

    /// The operation's outcome is unknown (timed out, node crashed): it may
    /// or may not have taken effect, at any time after its invocation.
    /// Ignored like [`complete`](Self::complete). Operations never completed
    /// nor failed are treated the same way by [`check`](Self::check).
    pub fn fail(&mut self, id: OpId, at_us: u64) {
        if let Some(e) = self.pending(id) {
            let at_us = Some(at_us.max(e.invoked_us));
            e.outcome = Outcome::Unknown { at_us };
        }
    }

    fn pending(&mut self, id: OpId) -> Option<&mut Entry> {
        let e = self.entries.get_mut(id.0)?;
        matches!(e.outcome, Outcome::Unknown { at_us: None }).then_some(e)
    }

    /// Operations recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every operation recorded, in invocation order of the calls.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Checks every key, with at most [`DEFAULT_MAX_STATES`] states each.
    ///
    /// # Errors
    /// See [`check_with_limit`](Self::check_with_limit).
    pub fn check(&self) -> Result<Report, CheckError> {
        self.check_with_limit(DEFAULT_MAX_STATES)
    }

    /// Checks every key (in key order), exploring at most `max_states`
    /// search states per key.
    ///
    /// # Errors
    /// [`CheckError::NotLinearizable`] for the first key found not
    /// linearizable; otherwise [`CheckError::TooComplex`] for the first key
    /// left undecided.
    pub fn check_with_limit(&self, max_states: u64) -> Result<Report, CheckError> {
        let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            by_key.entry(e.op.key()).or_default().push(i);
        }
        let mut report = Report {
            ops: self.entries.len(),
            keys: by_key.len(),
            dropped: 0,
            states: 0,
        };
        let mut undecided = None;
        for (key, idxs) in &by_key {
            let ops = prepare(&self.entries, idxs);
            report.dropped += idxs.len() - ops.len();
            match search(&ops, max_states) {
                Search::Linearizable(states) => report.states += states,
                Search::TooComplex(states) => {
                    report.states += states;
                    undecided.get_or_insert((key.to_string(), states));
                }
                Search::NotLinearizable(_) => {
                    let (history, minimal) = shrink(&self.entries, &ops, max_states);
                    return Err(CheckError::NotLinearizable(Violation {
                        key: key.to_string(),
                        history,
                        key_ops: idxs.len(),
                        minimal,
                    }));
                }
            }
        }
        match undecided {
            Some((key, states)) => Err(CheckError::TooComplex { key, states }),
            None => Ok(report),
        }
    }
}

/// What an operation does to the register, values interned (0: absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Read(u32),
    Write(u32),
    /// Its result does not fit the operation: it can never take effect.
    Never,
}

/// An operation of one key, prepared for the search.
#[derive(Debug, Clone, Copy)]
struct KOp {
    entry: usize,
    invoke: u64,
    /// `u64::MAX` when the outcome is unknown (it need not take effect).
    complete: u64,
    kind: Kind,
}

impl KOp {
    fn required(&self) -> bool {
        self.complete != u64::MAX
    }
}

/// The ops of one key, from entry indices: values interned, reads with
/// unknown outcome and unknown writes of values no read returned dropped,
/// sorted by invocation.
fn prepare<'a>(entries: &'a [Entry], idxs: &[usize]) -> Vec<KOp> {
    let mut values: HashMap<&'a str, u32> = HashMap::new();
    let mut intern = |v: &'a str| {
        let next = u32::try_from(values.len() + 1).unwrap_or(DEAD - 1);
        *values.entry(v).or_insert(next)
    };
    let mut ops = Vec::with_capacity(idxs.len());
    for &entry in idxs {
        let Some(e) = entries.get(entry) else {
            continue;
        };
        let invoke = e.invoked_us.min(u64::MAX - 1); // u64::MAX means unknown
        let (complete, result) = match &e.outcome {
            Outcome::Completed { at_us, result } => {
                ((*at_us).clamp(invoke, u64::MAX - 1), Some(result))
            }
            Outcome::Unknown { .. } => (u64::MAX, None),
        };
        let kind = match (&e.op, result) {
            (Op::Read { .. }, None) => continue,
            (Op::Read { .. }, Some(OpResult::Read(v))) => {
                Kind::Read(v.as_deref().map_or(0, &mut intern))
            }
            (Op::Write { value, .. }, None | Some(OpResult::Written)) => Kind::Write(intern(value)),
            _ => Kind::Never,
        };
        ops.push(KOp {
            entry,
            invoke,
            complete,
            kind,
        });
    }
    let kinds: HashSet<Kind> = ops.iter().map(|o| o.kind).collect();
    ops.retain(|o| {
        o.required() || matches!(o.kind, Kind::Write(v) if kinds.contains(&Kind::Read(v)))
    });
    ops.sort_by_key(|o| (o.invoke, o.complete, o.entry));
    ops
}

/// The result of searching one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Search {
    Linearizable(u64),
    NotLinearizable(u64),
    TooComplex(u64),
}

/// Quick sound refutations: an operation that can never take effect, a
/// read of a value no write invoked before the read completed wrote, or a
/// read of absent after a write completed.
fn refuted(ops: &[KOp]) -> bool {
    let first_done = ops
        .iter()
        .filter(|o| o.required() && matches!(o.kind, Kind::Write(_)))
        .map(|o| o.complete)
        .min()
        .unwrap_or(u64::MAX);
    ops.iter().any(|r| match r.kind {
        Kind::Never => true,
        Kind::Read(0) => first_done < r.invoke,
        Kind::Read(v) => !ops
            .iter()
            .any(|w| w.kind == Kind::Write(v) && w.invoke <= r.complete),
        Kind::Write(_) => false,
    })
}

/// The register value no op left reads (dead values are alike).
const DEAD: u32 = u32::MAX;

/// Where the search stands: which ops are placed, the register's value.
struct Walk<'a> {
    ops: &'a [KOp],
    bits: Vec<u64>,
    value: u32,
    /// Ops with known outcome not placed yet.
    remaining: usize,
    /// Per value, reads of it not placed yet.
    reads_left: Vec<usize>,
}

impl Walk<'_> {
    fn placed(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// Places or unplaces op `i`.
    fn flip(&mut self, i: usize, place: bool) {
        self.bits[i / 64] ^= 1 << (i % 64);
        let step = |n: &mut usize| *n = if place { *n - 1 } else { *n + 1 };
        if self.ops[i].required() {
            step(&mut self.remaining);
        }
        if let Kind::Read(v) = self.ops[i].kind {
            step(&mut self.reads_left[v as usize]);
        }
    }

    /// A write with known outcome whose value no read left returns: it
    /// can take effect just before any other write, as early as allowed.
    fn dead(&self, i: usize) -> bool {
        let o = &self.ops[i];
        matches!(o.kind, Kind::Write(v) if o.required() && self.reads_left[v as usize] == 0)
    }

    /// The value as the memo sees it: dead values are alike.
    fn canon(&self, v: u32) -> u32 {
        match self.reads_left.get(v as usize) {
            Some(&n) if n > 0 => v,
            _ => DEAD,
        }
    }

    /// Lowe's rule: ops not placed, invoked no later than the earliest
    /// completion among ops not placed.
    fn window(&self) -> Vec<usize> {
        let (mut out, mut min_complete) = (Vec::new(), u64::MAX);
        let start = self.bits.iter().take_while(|&&w| w == u64::MAX).count() * 64;
        for (i, o) in self.ops.iter().enumerate().skip(start) {
            if self.placed(i) {
                continue;
            }
            if o.invoke > min_complete {
                break;
            }
            min_complete = min_complete.min(o.complete);
            out.push(i);
        }
        out.retain(|&i| self.ops[i].invoke <= min_complete);
        out
    }

    /// The moves to try: the first read of the current value if there is
    /// one (nothing is lost); else the writes, but a write with unknown
    /// outcome only if a read of its value could follow at once (else a
    /// linearization can drop it), and dead writes as one move.
    fn moves(&self) -> Vec<usize> {
        let window = self.window();
        let ops = self.ops;
        if let Some(&r) = window
            .iter()
            .find(|&&i| ops[i].kind == Kind::Read(self.value))
        {
            return vec![r];
        }
        let kinds: Vec<Kind> = window.iter().map(|&i| ops[i].kind).collect();
        let mut dead = false;
        let mut moves = window;
        moves.retain(|&i| match ops[i].kind {
            Kind::Write(_) if self.dead(i) => !std::mem::replace(&mut dead, true),
            Kind::Write(v) => ops[i].required() || kinds.contains(&Kind::Read(v)),
            _ => false,
        });
        moves
    }

    /// Places op `i` (a write: after every dead write allowed); returns
    /// the ops placed.
    fn apply(&mut self, i: usize) -> Vec<usize> {
        let mut placed = Vec::new();
        if let Kind::Write(v) = self.ops[i].kind {
            loop {
                let dead: Vec<usize> = self
                    .window()
                    .into_iter()
                    .filter(|&j| self.dead(j))
                    .collect();
                if dead.is_empty() {
                    break;
                }
                for j in dead {
                    self.flip(j, true);
                    placed.push(j);
                }
            }
            self.value = if self.placed(i) { DEAD } else { v };
        }
        if !self.placed(i) {
            self.flip(i, true);
            placed.push(i);
        }
        self.value = self.canon(self.value);
        placed
    }

    /// The memo key: leading all-placed words are summarized by their count.
    fn key(&self) -> Box<[u64]> {
        let full = self.bits.iter().take_while(|&&w| w == u64::MAX).count();
        let full = full.min(self.bits.len().saturating_sub(1));
        let head = ((full as u64) << 32) | u64::from(self.value);
        std::iter::once(head)
            .chain(self.bits[full..].iter().copied())
            .collect()
    }
}

/// Depth-first search for a linearization of one key's ops (sorted by
/// invocation), memoizing (placed set, value), with at most `limit` states.
fn search(ops: &[KOp], limit: u64) -> Search {
    if refuted(ops) {
        return Search::NotLinearizable(0);
    }
    let values = ops.iter().map(|o| match o.kind {
        Kind::Read(v) | Kind::Write(v) => v as usize + 1,
        Kind::Never => 0,
    });
    let mut walk = Walk {
        ops,
        bits: vec![0; ops.len().div_ceil(64)],
        value: 0,
        remaining: ops.iter().filter(|o| o.required()).count(),
        reads_left: vec![0; values.max().unwrap_or(0)],
    };
    for o in ops {
        if let Kind::Read(v) = o.kind {
            walk.reads_left[v as usize] += 1;
        }
    }
    walk.value = walk.canon(0);
    if walk.remaining == 0 {
        return Search::Linearizable(0);
    }
    let mut seen: HashSet<Box<[u64]>> = HashSet::from([walk.key()]);
    // Per state: its moves, the next to try, the ops placed to reach it
    // and the value before them.
    type Frame = (Vec<usize>, usize, Vec<usize>, u32);
    let mut stack: Vec<Frame> = vec![(walk.moves(), 0, Vec::new(), walk.value)];
    while let Some((moves, next, _, _)) = stack.last_mut() {
        let Some(&i) = moves.get(*next) else {
            if let Some((_, _, placed, before)) = stack.pop() {
                placed.into_iter().for_each(|j| walk.flip(j, false));
                walk.value = before;
            }
            continue;
        };
        *next += 1;
        let before = walk.value;
        let placed = walk.apply(i);
        if walk.remaining == 0 {
            return Search::Linearizable(seen.len() as u64);
        }
        if !seen.insert(walk.key()) {
            placed.into_iter().for_each(|j| walk.flip(j, false));
            walk.value = before;
            continue;
        }
        if seen.len() as u64 > limit {
            return Search::TooComplex(seen.len() as u64);
        }
        stack.push((walk.moves(), 0, placed, before));
    }
    Search::NotLinearizable(seen.len() as u64)
}

/// Shrinks a failing set of entries (of one key): drops chunks, then single
/// ops, while the rest still fails. Only closed sets are tried: a read of
/// `v` stays with every write of `v`. A closed subset of a linearizable
/// history is linearizable (restrict its linearization), so what is left
/// shows a fault of the full history, not one made by removing ops.
/// Returns the rest by invocation, and whether it is 1-minimal (`false`
/// when a budget of `4 * limit` states ran out first).
fn shrink(entries: &[Entry], ops: &[KOp], limit: u64) -> (Vec<Entry>, bool) {
    let mut cur: Vec<usize> = ops.iter().map(|o| o.entry).collect();
    let writes = |set: &[usize]| {
        let mut n: HashMap<&str, usize> = HashMap::new();
        for &i in set {
            if let Op::Write { value, .. } = &entries[i].op {
                *n.entry(value.as_str()).or_default() += 1;
            }
        }
        n
    };
    let all = writes(&cur);
    let closed = |set: &[usize]| {
        let kept = writes(set);
        set.iter().all(|&i| match &entries[i].outcome {
            Outcome::Completed {
                result: OpResult::Read(Some(v)),
                ..
            } => kept.get(v.as_str()) == all.get(v.as_str()),
            _ => true,
        })
    };
    let (mut spent, budget) = (0u64, limit.saturating_mul(4));
    let done = |set: Vec<usize>, minimal| {
        let mut history: Vec<Entry> = set.into_iter().map(|i| entries[i].clone()).collect();
        history.sort_by_key(|e| (e.invoked_us, e.id));
        (history, minimal)
    };
    let mut chunk = (cur.len() / 2).max(1);
    loop {
        let mut removed = false;
        let mut at = 0;
        while at < cur.len() {
            let end = (at + chunk).min(cur.len());
            let rest: Vec<usize> = cur[..at].iter().chain(&cur[end..]).copied().collect();
            if !rest.is_empty() && closed(&rest) {
                if spent >= budget {
                    return done(cur, false);
                }
                match search(&prepare(entries, &rest), limit) {
                    Search::NotLinearizable(s) => {
                        spent += s;
                        cur = rest;
                        removed = true;
                        continue;
                    }
                    Search::Linearizable(s) | Search::TooComplex(s) => spent += s,
                }
            }
            at = end;
        }
        if chunk == 1 && !removed {
            return done(cur, true);
        }
        chunk = (chunk / 2).max(1);
    }
}

#[cfg(test)]
mod tests;

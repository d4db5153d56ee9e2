use super::*;
use crate::rng::SplitMix64;
use quickcheck::{quickcheck, TestResult};

/// `client r|w key value from to` per op, `;`-separated: a read's value
/// `-` is absent; `to` `?` is an unknown outcome (failed at `from`).
fn hist(spec: &str) -> History {
    let mut h = History::new();
    for f in spec
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>())
    {
        let (key, v) = (f[2].to_string(), f[3].to_string());
        let (op, res) = match f[1] {
            "w" => (Op::Write { key, value: v }, OpResult::Written),
            _ => (Op::Read { key }, OpResult::Read((v != "-").then_some(v))),
        };
        let from = f[4].parse().unwrap();
        let id = h.invoke(f[0].parse().unwrap(), op, from);
        match f[5].parse() {
            Ok(to) => h.complete(id, res, to),
            Err(_) => h.fail(id, from),
        }
    }
    h
}

fn violation(h: &History) -> Violation {
    match h.check() {
        Err(CheckError::NotLinearizable(v)) => v,
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn linearizable_histories_pass() {
    for spec in [
        "1 r k - 0 5; 1 w k a 10 15; 2 r k a 20 25; 2 w k b 30 35; 1 r k b 40 45",
        "1 w k a 0 100; 2 r k - 10 20", // concurrent: either order
        "1 w k a 0 100; 2 r k a 10 20",
        "1 w k a 0 ?; 2 r k a 20 30", // unknown outcome: took effect
        "1 w k a 0 ?; 2 r k - 20 30", // or not
        "1 w k a 0 ?; 2 r k - 20 30; 2 r k a 40 50; 3 w k b 0 ?; 4 r k - 60 ?",
        "1 w x 1 0 10; 2 w y 2 0 10; 1 r y 2 20 30; 2 r x 1 20 30",
    ] {
        assert!(hist(spec).check().is_ok(), "{spec}");
    }
    let report = hist("1 w k a 0 ?; 2 w k b 0 ?; 3 r k a 5 9; 4 r j - 0 ?").check();
    let report = report.unwrap();
    assert_eq!((report.ops, report.keys, report.dropped), (4, 2, 2));
}

#[test]
fn violations_are_caught_and_shrunk() {
    for (spec, shrunk) in [
        ("1 w k a 0 10; 1 w k b 20 30; 2 r k a 40 50", 3), // stale read
        ("1 w k a 0 10; 2 r k - 20 30", 2),                // absent after a write
        ("1 w k a 0 10; 2 r k zzz 5 50", 1),               // never written
        ("2 r k a 0 10; 1 w k a 20 30", 2),                // sees a later write
        ("2 r k a 0 10; 1 w k a 20 ?", 2),                 // even an unknown one
        ("1 w x 1 0 10; 2 w y 2 0 10; 3 r y 1 20 30", 1),  // keys are independent
        (
            "1 w k a 0 9; 2 w k b 0 9; 3 r k a 20 30; 4 r k b 40 50; 5 r k a 60 70",
            4,
        ),
    ] {
        let v = violation(&hist(spec));
        assert_eq!((v.history.len(), v.minimal), (shrunk, true), "{spec}: {v}");
    }
    let v = violation(&hist(
        "1 w k a 0 10; 1 w k b 20 30; 2 r k a 40 50; 3 w j a 0 ?",
    ));
    let text = v.to_string();
    assert!(v.key == "k" && text.lines().count() == 4, "{text}");
    assert!(
        text.contains("\n  client 2 @40..50: read(\"k\") -> \"a\""),
        "{text}"
    );
    let text = violation(&hist("2 r k a 0 10; 1 w k a 20 ?")).to_string();
    assert!(
        text.contains("\n  client 1 @20..?: write(\"k\", \"a\") -> ?"),
        "{text}"
    );
}

#[test]
fn odd_inputs_do_not_panic() {
    let mut h = History::new();
    assert!(h.is_empty() && h.check().is_ok());
    h.complete(OpId(99), OpResult::Written, 5);
    h.fail(OpId(7), 5);
    let a = h.invoke(1, Op::Read { key: "k".into() }, 50);
    h.complete(a, OpResult::Read(None), 10); // "before" it began: at 50
    h.complete(a, OpResult::Written, 60); // already complete: ignored
    h.fail(a, 70);
    assert!(h.check().is_ok() && h.len() == 1);
    assert!(matches!(
        h.entries()[0].outcome,
        Outcome::Completed { at_us: 50, .. }
    ));
    let b = h.invoke(2, Op::Read { key: "k".into() }, 80);
    h.complete(b, OpResult::Written, 90); // the wrong kind of result
    assert_eq!(violation(&h).history.len(), 1);
}

#[test]
fn the_work_is_bounded() {
    let ops: Vec<String> = (0..12)
        .map(|c| format!("{c} w k {c} 0 9; {c} r k {c} 0 9"))
        .collect();
    let h = hist(&ops.join(";"));
    let err = h.check_with_limit(3);
    assert!(matches!(err, Err(CheckError::TooComplex { states: 4, .. })));
    assert!(h.check().is_ok());
}

#[test]
fn a_buried_violation_shrinks_to_three_ops() {
    let mut spec = Vec::new();
    for i in 0..25u64 {
        let (key, t, c) = (["k", "j"][i as usize % 2], i * 40, i % 4);
        spec.push(format!("{c} w {key} v{i} {t} {}", t + 15));
        spec.push(format!("{c} r {key} v{i} {} {}", t + 10, t + 25));
    }
    spec.insert(30, "7 r k v4 510 515".into()); // stale: v12 was read at 490
    let v = violation(&hist(&spec.join(";")));
    assert_eq!(spec.len(), 51);
    assert!(v.key == "k" && v.history.len() <= 3 && v.minimal, "{v}");
    assert!(v.history.iter().any(|e| e.client == 7), "{v}");
}

/// 8 clients × 50 ops on 3 keys, each taking effect at a random point
/// between invocation and completion; 1 in 20 times out, taking effect
/// or not.
fn concurrent(seed: u64) -> History {
    let mut rng = SplitMix64::new(seed);
    let mut ops = Vec::new();
    for c in 0..8 {
        let mut t = rng.below(20);
        for n in 0..50 {
            let (len, key, write) = (1 + rng.below(100), rng.below(3), rng.below(2) == 0);
            let (fails, applies) = (rng.below(20) == 0, rng.below(2) == 0);
            let point = (t + rng.below(len)) * 8 + c;
            ops.push((point, c, n, key, write, fails, applies, t, t + len));
            t += len + rng.below(10);
        }
    }
    ops.sort_unstable();
    let mut map = BTreeMap::new();
    let mut spec = Vec::new();
    for (_, c, n, key, write, fails, applies, from, to) in ops {
        let seen = map.get(&key).cloned().unwrap_or_else(|| "-".to_string());
        let (rw, value) = if write {
            ("w", format!("{c}.{n}"))
        } else {
            ("r", seen)
        };
        if write && (applies || !fails) {
            map.insert(key, value.clone());
        }
        let to = if fails {
            "?".to_string()
        } else {
            to.to_string()
        };
        spec.push(format!("{c} {rw} k{key} {value} {from} {to}"));
    }
    hist(&spec.join(";"))
}

#[test]
fn a_large_concurrent_history_checks_with_little_search() {
    for seed in 0..5 {
        let mut h = concurrent(seed);
        let report = h.check().unwrap();
        // Work, not wall time: the pruning keeps the search near-linear.
        assert!(report.ops == 400 && report.keys == 3, "{report:?}");
        assert!(report.states < 20_000, "{report:?}");
        let read = h
            .entries
            .iter_mut()
            .rev()
            .find_map(|e| match &mut e.outcome {
                Outcome::Completed {
                    result: r @ OpResult::Read(Some(_)),
                    ..
                } => Some(r),
                _ => None,
            });
        *read.unwrap() = OpResult::Read(Some("never".into()));
        assert_eq!(violation(&h).history.len(), 1);
    }
}

/// The definition: some order of the ops with known outcome, and any
/// of those with unknown outcome, respecting real time and the map.
fn brute(es: &[&Entry], map: &BTreeMap<&str, &str>) -> bool {
    let done = |e: &Entry| match e.outcome {
        Outcome::Completed { at_us, .. } => at_us,
        Outcome::Unknown { .. } => u64::MAX,
    };
    (0..es.len()).any(|i| {
        let (e, mut map) = (es[i], map.clone());
        let fits = match (&e.op, &e.outcome) {
            (
                Op::Read { key },
                Outcome::Completed {
                    result: OpResult::Read(v),
                    ..
                },
            ) => v.as_deref() == map.get(key.as_str()).copied(),
            (
                Op::Write { key, value },
                Outcome::Completed {
                    result: OpResult::Written,
                    ..
                },
            )
            | (Op::Write { key, value }, Outcome::Unknown { .. }) => {
                map.insert(key, value);
                true
            }
            _ => false,
        };
        let rest: Vec<&Entry> = es.iter().filter(|o| o.id != e.id).copied().collect();
        fits && rest.iter().all(|o| done(o) >= e.invoked_us) && brute(&rest, &map)
    }) || es.iter().all(|e| done(e) == u64::MAX)
}

fn linearizable(es: &[Entry]) -> bool {
    brute(&es.iter().collect::<Vec<_>>(), &BTreeMap::new())
}

/// Applies ops one after the other to a model map: (key, write?, value).
fn sequential(ops: &[(u8, bool, u8)]) -> History {
    let mut model: BTreeMap<String, String> = BTreeMap::new();
    let mut spec = Vec::new();
    for (n, &(k, write, v)) in (0u64..).zip(ops.iter().chain([&(0, false, 0)])) {
        let (key, t) = (format!("k{}", k % 3), n * 10);
        if write {
            model.insert(key.clone(), format!("v{}", v % 4));
        }
        let value = model.get(&key).map_or("-", String::as_str);
        let rw = if write { "w" } else { "r" };
        spec.push(format!("{} {rw} {key} {value} {t} {}", n % 3, t + 5));
    }
    hist(&spec.join(";"))
}

quickcheck! {
    fn sequential_histories_pass(ops: Vec<(u8, bool, u8)>) -> bool {
        sequential(&ops).check().is_ok()
    }

    fn a_corrupted_read_is_caught(ops: Vec<(u8, bool, u8)>, pick: usize) -> bool {
        let mut h = sequential(&ops);
        let reads: Vec<usize> = (0..h.len())
            .filter(|&i| matches!(h.entries[i].op, Op::Read { .. }))
            .collect();
        let read = &mut h.entries[reads[pick % reads.len()]].outcome;
        if let Outcome::Completed { result, .. } = read {
            *result = OpResult::Read(Some("never".into()));
        }
        matches!(h.check(), Err(CheckError::NotLinearizable(v)) if v.history.len() == 1)
    }

    fn agrees_with_the_definition(ops: Vec<(bool, u8, u8, u8, u8)>) -> TestResult {
        let mut spec = Vec::new();
        for (c, &(write, key, value, from, len)) in ops.iter().take(7).enumerate() {
            let (from, rw) = (u64::from(from % 40), if write { "w" } else { "r" });
            let v = ["-", "a", "b", "c"][usize::from(value % 4)];
            let v = if write && v == "-" { "d" } else { v };
            let to = match len % 10 {
                0 => "?".into(),
                l => (from + u64::from(l) * 5).to_string(),
            };
            spec.push(format!("{c} {rw} k{} {v} {from} {to}", key % 2));
        }
        if spec.is_empty() {
            return TestResult::discard();
        }
        let h = hist(&spec.join(";"));
        TestResult::from_bool(match h.check() {
            Ok(_) => linearizable(h.entries()),
            Err(CheckError::NotLinearizable(v)) => {
                !linearizable(h.entries()) && !linearizable(&v.history) && v.minimal
            }
            Err(CheckError::TooComplex { .. }) => false,
        })
    }
}

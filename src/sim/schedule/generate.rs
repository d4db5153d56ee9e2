//! Random schedules: from fuzzer bytes ([`arbitrary`]) and from quickcheck
//! (with shrinking). Both name only members and sites of a topology (the
//! reference Denver/Paris layout unless one is given), so any input maps to
//! a schedule that runs. [`Schedule::to_fuzz_input`] goes the other way: the
//! bytes that give a schedule, so a printed line can seed a fuzzer.

use arbitrary::{Result, Unstructured};

use super::{Fault, Schedule, Step};
use crate::topology::{NodeId, Topology};

/// At most this many faults per schedule.
const MAX_STEPS: usize = 12;
/// At most this long between two faults.
const MAX_WAIT_MS: u64 = 8_000;
/// The round trips a generated `delay` sets, in ms.
const DELAY_MS: (u64, u64) = (1, 400);
/// The losses a generated `loss` sets, in percent.
const LOSS_PERCENT: (u8, u8) = (0, 100);
/// The skews a generated `skew` sets, in percent.
const SKEW: (u64, u64) = (25, 400);
/// The rates a generated `rate` sets, per second.
const RATE: (u64, u64) = (1, 500);

/// The names a generated schedule may use.
struct Alphabet {
    nodes: Vec<NodeId>,
    sites: Vec<String>,
}

impl Alphabet {
    fn of(t: &Topology) -> Self {
        Self {
            nodes: t.members().keys().copied().collect(),
            sites: t.sites().iter().map(|s| s.name.clone()).collect(),
        }
    }

    fn reference() -> Self {
        Self {
            nodes: (1..=5).map(NodeId).collect(),
            sites: ["denver", "paris", "kansas"].map(String::from).to_vec(),
        }
    }
}

/// Weighted fault kinds: crashes (silent or killed processes) and restarts
/// most, then partitions and heals.
const KINDS: [(u8, u32); 15] = [
    (0, 3),
    (1, 3),
    (2, 1),
    (3, 1),
    (4, 1),
    (5, 1),
    (6, 1),
    (7, 2),
    (8, 2),
    (9, 1),
    (10, 1),
    (11, 1),
    (12, 1),
    (13, 2),
    (14, 2),
];

/// A generated cut of `xs` in two: the first on side A, each other one on
/// side B when its bit of `mask` is set. `None` when side B is empty.
fn cut_by<T: Clone>(xs: &[T], mask: u32) -> Option<(Vec<T>, Vec<T>)> {
    let (mut a, mut b) = (vec![xs.first()?.clone()], Vec::new());
    for (i, x) in xs.iter().enumerate().skip(1) {
        if mask & (1 << ((i - 1) % 31)) != 0 {
            b.push(x.clone());
        } else {
            a.push(x.clone());
        }
    }
    (!b.is_empty()).then_some((a, b))
}

/// The largest mask [`cut_by`] is given for `n` things (at least 2).
fn max_mask(n: usize) -> u32 {
    (1u32 << (n - 1).min(31)) - 1
}

fn pick<T: Clone>(u: &mut Unstructured<'_>, xs: &[T]) -> Result<T> {
    Ok(xs[u.choose_index(xs.len())?].clone())
}

fn fault(u: &mut Unstructured<'_>, a: &Alphabet) -> Result<Fault> {
    let total: u32 = KINDS.iter().map(|k| k.1).sum();
    let mut roll = u.int_in_range(0..=total - 1)?;
    let mut kind = 0;
    for (k, w) in KINDS {
        if roll < w {
            kind = k;
            break;
        }
        roll -= w;
    }
    let n = pick(u, &a.nodes)?;
    Ok(match kind {
        0 => Fault::Crash(n),
        1 => Fault::Restart(n),
        2 => Fault::CrashSite(pick(u, &a.sites)?),
        3 => Fault::RestartSite(pick(u, &a.sites)?),
        4 => Fault::Pause(n),
        5 => Fault::Resume(n),
        6 => Fault::Isolate(n),
        7 if a.sites.len() >= 2 => {
            // A non-trivial split: the first site on side A, others by bit.
            let mask = u.int_in_range(1..=max_mask(a.sites.len()))?;
            cut_by(&a.sites, mask).map_or(Fault::Heal, |(x, y)| Fault::Partition(x, y))
        }
        13 if a.nodes.len() >= 2 => {
            // Any two groups of members, the first member on side A.
            let mask = u.int_in_range(1..=max_mask(a.nodes.len()))?;
            cut_by(&a.nodes, mask).map_or(Fault::Heal, |(x, y)| Fault::Split(x, y))
        }
        9 => Fault::Delay(
            n,
            pick(u, &a.nodes)?,
            u.int_in_range(DELAY_MS.0..=DELAY_MS.1)?,
        ),
        10 => Fault::Loss(
            n,
            pick(u, &a.nodes)?,
            u.int_in_range(LOSS_PERCENT.0..=LOSS_PERCENT.1)?,
        ),
        11 => Fault::Skew(n, u.int_in_range(SKEW.0..=SKEW.1)?),
        12 => Fault::Rate(u.int_in_range(RATE.0..=RATE.1)?),
        14 => Fault::Kill(n),
        _ => Fault::Heal,
    })
}

fn generate(u: &mut Unstructured<'_>, a: &Alphabet) -> Result<Schedule> {
    let seed = u.arbitrary()?;
    let len = u.int_in_range(0..=MAX_STEPS)?;
    let mut steps = Vec::with_capacity(len);
    for _ in 0..len {
        let after_ms = u.int_in_range(0..=MAX_WAIT_MS)?;
        steps.push(Step {
            after_ms,
            fault: fault(u, a)?,
        });
    }
    Ok(Schedule { seed, steps })
}

impl Schedule {
    /// A schedule from fuzzer bytes naming only `topology`'s members and
    /// sites. Any bytes give a schedule (short input just gives a short one).
    ///
    /// # Errors
    /// Only what [`Unstructured`] reports for malformed use, never for short data.
    pub fn arbitrary_for(u: &mut Unstructured<'_>, topology: &Topology) -> Result<Self> {
        generate(u, &Alphabet::of(topology))
    }
}

/// For the reference Denver/Paris layout (members 1 to 5, sites denver,
/// paris, kansas).
impl<'a> arbitrary::Arbitrary<'a> for Schedule {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        generate(u, &Alphabet::reference())
    }
}

/// For the reference Denver/Paris layout; shrinks by dropping faults,
/// halving waits and moving each fault's number toward its default (loss
/// toward 0 %, delay toward 1 ms, skew toward 100 %, rate toward 50/s).
impl quickcheck::Arbitrary for Schedule {
    fn arbitrary(g: &mut quickcheck::Gen) -> Self {
        let bytes: Vec<u8> = (0..256).map(|_| u8::arbitrary(g)).collect();
        let mut u = Unstructured::new(&bytes);
        generate(&mut u, &Alphabet::reference()).unwrap_or_default()
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Self>> {
        let s = self.clone();
        let mut out = Vec::new();
        for i in 0..s.steps.len() {
            let mut fewer = s.clone();
            fewer.steps.remove(i);
            out.push(fewer);
        }
        for i in 0..s.steps.len() {
            if s.steps[i].after_ms > 0 {
                let mut sooner = s.clone();
                sooner.steps[i].after_ms /= 2;
                out.push(sooner);
            }
        }
        for i in 0..s.steps.len() {
            if let Some(milder) = milder(&s.steps[i].fault) {
                let mut simpler = s.clone();
                simpler.steps[i].fault = milder;
                out.push(simpler);
            }
        }
        Box::new(out.into_iter())
    }
}

/// Half way from `v` to `target` (reaching it from one step away), or
/// `None` at the target.
fn toward(v: u64, target: u64) -> Option<u64> {
    match v.cmp(&target) {
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Greater => Some(target + (v - target) / 2),
        std::cmp::Ordering::Less => Some(target - (target - v) / 2),
    }
}

/// The fault with its number moved toward its default, if it has one
/// that is not there yet.
fn milder(fault: &Fault) -> Option<Fault> {
    Some(match *fault {
        Fault::Loss(a, b, p) if p > 0 => Fault::Loss(a, b, p / 2),
        Fault::Delay(a, b, ms) => Fault::Delay(a, b, toward(ms, 1)?),
        Fault::Skew(n, p) => Fault::Skew(n, toward(p, 100)?),
        Fault::Rate(r) => Fault::Rate(toward(r, 50)?),
        _ => return None,
    })
}

/// Writes the bytes [`Unstructured`] reads back as given values.
struct Encoder {
    out: Vec<u8>,
}

impl Encoder {
    /// `value`, as `int_in_range(start..=end)` reads it: the offset from
    /// `start`, big-endian, in as many bytes as the range's width needs.
    fn int(&mut self, value: u64, start: u64, end: u64) -> Option<()> {
        if !(start..=end).contains(&value) {
            return None;
        }
        let (delta, offset) = (end - start, value - start);
        let width = (0..8).take_while(|k| delta >> (k * 8) > 0).count();
        for k in (0..width).rev() {
            self.out.push((offset >> (k * 8)) as u8);
        }
        Some(())
    }

    /// The position of `x` in `xs`, as `choose_index` reads it.
    fn index<T: PartialEq>(&mut self, xs: &[T], x: &T) -> Option<()> {
        let i = xs.iter().position(|y| y == x)?;
        self.int(i as u64, 0, xs.len().checked_sub(1)? as u64)
    }

    /// The mask [`cut_by`] turns into exactly `(a, b)`.
    fn cut<T: PartialEq + Clone>(&mut self, xs: &[T], a: &[T], b: &[T]) -> Option<()> {
        if xs.len() < 2 {
            return None;
        }
        let mask = xs
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, x)| b.contains(x))
            .fold(0u32, |m, (i, _)| m | 1 << ((i - 1) % 31));
        let (x, y) = cut_by(xs, mask)?;
        (x == a && y == b).then_some(())?;
        self.int(u64::from(mask), 1, u64::from(max_mask(xs.len())))
    }

    fn fault(&mut self, fault: &Fault, a: &Alphabet) -> Option<()> {
        let kind = match fault {
            Fault::Crash(_) => 0,
            Fault::Restart(_) => 1,
            Fault::CrashSite(_) => 2,
            Fault::RestartSite(_) => 3,
            Fault::Pause(_) => 4,
            Fault::Resume(_) => 5,
            Fault::Isolate(_) => 6,
            Fault::Partition(..) => 7,
            Fault::Heal => 8,
            Fault::Delay(..) => 9,
            Fault::Loss(..) => 10,
            Fault::Skew(..) => 11,
            Fault::Rate(_) => 12,
            Fault::Split(..) => 13,
            Fault::Kill(_) => 14,
        };
        let roll: u32 = KINDS.iter().take_while(|k| k.0 != kind).map(|k| k.1).sum();
        let total: u32 = KINDS.iter().map(|k| k.1).sum();
        self.int(u64::from(roll), 0, u64::from(total - 1))?;
        // Every fault picks a member first, used or not.
        let first = match fault {
            Fault::Crash(n)
            | Fault::Kill(n)
            | Fault::Restart(n)
            | Fault::Pause(n)
            | Fault::Resume(n)
            | Fault::Isolate(n)
            | Fault::Delay(n, ..)
            | Fault::Loss(n, ..)
            | Fault::Skew(n, _) => *n,
            _ => *a.nodes.first()?,
        };
        self.index(&a.nodes, &first)?;
        match fault {
            Fault::CrashSite(s) | Fault::RestartSite(s) => self.index(&a.sites, s),
            Fault::Partition(x, y) => self.cut(&a.sites, x, y),
            Fault::Split(x, y) => self.cut(&a.nodes, x, y),
            Fault::Delay(_, b, ms) => {
                self.index(&a.nodes, b)?;
                self.int(*ms, DELAY_MS.0, DELAY_MS.1)
            }
            Fault::Loss(_, b, p) => {
                self.index(&a.nodes, b)?;
                self.int(
                    u64::from(*p),
                    u64::from(LOSS_PERCENT.0),
                    u64::from(LOSS_PERCENT.1),
                )
            }
            Fault::Skew(_, p) => self.int(*p, SKEW.0, SKEW.1),
            Fault::Rate(r) => self.int(*r, RATE.0, RATE.1),
            _ => Some(()),
        }
    }
}

impl Schedule {
    /// The bytes [`Schedule::arbitrary_for`] turns into this schedule for
    /// `topology`: a line printed by a failing property or fuzz run, parsed
    /// and encoded, seeds a fuzzer's corpus (`fuzz/corpus/<target>/`) so it
    /// mutates around that schedule. `None` when the generator cannot
    /// produce the schedule: more than 12 faults, waits above 8 s, names
    /// outside `topology`, or numbers outside the generator's ranges
    /// (delay 1 to 400 ms, skew 25 to 400 %, rate 1 to 500/s).
    pub fn to_fuzz_input(&self, topology: &Topology) -> Option<Vec<u8>> {
        let a = Alphabet::of(topology);
        let mut e = Encoder {
            out: self.seed.to_le_bytes().to_vec(),
        };
        e.int(self.steps.len() as u64, 0, MAX_STEPS as u64)?;
        for step in &self.steps {
            e.int(step.after_ms, 0, MAX_WAIT_MS)?;
            e.fault(&step.fault, &a)?;
        }
        Some(e.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arbitrary::Arbitrary as _;

    #[test]
    fn any_bytes_give_a_valid_schedule() {
        let t = crate::topology::denver_paris().build().unwrap();
        for seed in 0..200u32 {
            let bytes: Vec<u8> = (0..seed * 3)
                .map(|i| (i.wrapping_mul(2654435761u32) >> 7) as u8)
                .collect();
            let s = Schedule::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
            assert!(s.steps.len() <= MAX_STEPS);
            assert_eq!(s.validate(&t), Ok(()), "{s}");
            assert_eq!(s.to_string().parse::<Schedule>().unwrap(), s);
        }
        let empty = Schedule::arbitrary(&mut Unstructured::new(&[])).unwrap();
        assert!(empty.steps.is_empty());
    }

    #[test]
    fn shrinking_drops_faults_and_waits() {
        use quickcheck::Arbitrary as _;
        let s: Schedule = "seed=1; +100ms crash n1; +50ms heal".parse().unwrap();
        let smaller: Vec<Schedule> = s.shrink().collect();
        assert!(smaller.iter().any(|x| x.steps.len() == 1));
        assert!(smaller.iter().any(|x| x.steps[0].after_ms == 50));
    }

    #[test]
    fn shrinking_moves_numbers_toward_their_defaults() {
        use quickcheck::Arbitrary as _;
        let line = "seed=1; +0ms loss n1 n2 80%; +0ms delay n1 n2 301ms; \
                    +0ms skew n3 400%; +0ms rate 10/s; +0ms skew n4 100%";
        let s: Schedule = line.parse().unwrap();
        let milder: Vec<String> = s
            .shrink()
            .filter(|x| {
                x.steps.len() == 5
                    && x.steps
                        .iter()
                        .zip(&s.steps)
                        .all(|(a, b)| a.after_ms == b.after_ms)
            })
            .map(|x| x.to_string())
            .collect();
        let expect = [
            line.replace("80%", "40%"),
            line.replace("301ms", "151ms"),
            line.replace("400%;", "250%;"),
            line.replace("10/s", "30/s"),
        ];
        assert_eq!(milder, expect);
        // Every number reaches its default and stops there.
        let mut s: Schedule = "seed=1; +0ms loss n1 n2 100%; +0ms rate 10000/s"
            .parse()
            .unwrap();
        while let Some(next) = s.shrink().find(|x| x.steps.len() == 2) {
            s = next;
        }
        assert_eq!(s.to_string(), "seed=1; +0ms loss n1 n2 0%; +0ms rate 50/s");
    }

    #[test]
    fn generated_schedules_include_member_splits_and_kills() {
        let t = crate::topology::denver_paris().build().unwrap();
        let (mut splits, mut kills) = (0, 0);
        for seed in 0..300u32 {
            let bytes: Vec<u8> = (0..200u32)
                .map(|i| ((i + seed * 7919).wrapping_mul(2654435761u32) >> 11) as u8)
                .collect();
            let s = Schedule::arbitrary(&mut Unstructured::new(&bytes)).unwrap();
            for step in &s.steps {
                match &step.fault {
                    Fault::Split(a, b) => {
                        assert!(!a.is_empty() && !b.is_empty());
                        splits += 1;
                    }
                    Fault::Kill(_) => kills += 1,
                    _ => {}
                }
            }
            assert_eq!(s.validate(&t), Ok(()), "{s}");
        }
        assert!(splits > 10, "only {splits} splits");
        assert!(kills > 10, "only {kills} kills");
    }

    fn two_site() -> Topology {
        crate::topology::denver_paris_two_site().build().unwrap()
    }

    /// Any generated schedule, of the reference or the two-site layout,
    /// prints a line that reads back as the same schedule, and encodes to
    /// bytes the generator turns back into it.
    #[test]
    fn generated_schedules_print_parse_and_encode_back() {
        fn prop(bytes: Vec<u8>, two: bool) -> bool {
            let t = if two {
                two_site()
            } else {
                crate::topology::denver_paris().build().unwrap()
            };
            let s = Schedule::arbitrary_for(&mut Unstructured::new(&bytes), &t).unwrap();
            let printed = s.to_string().parse::<Schedule>() == Ok(s.clone());
            let encoded = s.to_fuzz_input(&t).is_some_and(|b| {
                Schedule::arbitrary_for(&mut Unstructured::new(&b), &t).unwrap() == s
            });
            printed && encoded && s.validate(&t).is_ok()
        }
        quickcheck::QuickCheck::new()
            .rng(quickcheck::Gen::new(400))
            .tests(1000)
            .quickcheck(prop as fn(Vec<u8>, bool) -> bool);
        fn quickcheck_schedules(s: Schedule) -> bool {
            s.to_string().parse::<Schedule>() == Ok(s)
        }
        quickcheck::QuickCheck::new()
            .tests(1000)
            .quickcheck(quickcheck_schedules as fn(Schedule) -> bool);
    }

    /// A printed line with characters replaced never makes the parser
    /// panic, and whatever it accepts prints back to the same schedule.
    #[test]
    fn mangled_lines_never_panic_and_what_parses_round_trips() {
        fn prop(s: Schedule, edits: Vec<(usize, u8)>) -> bool {
            const CHARS: &[u8] = b" ;+|%ms/0123456789n-=ehlx";
            let mut line = s.to_string().into_bytes();
            for (at, c) in edits {
                if !line.is_empty() {
                    let at = at % line.len();
                    line[at] = CHARS[usize::from(c) % CHARS.len()];
                }
            }
            let line = String::from_utf8(line).expect("ASCII");
            match line.parse::<Schedule>() {
                Ok(x) => x.to_string().parse::<Schedule>() == Ok(x),
                Err(_) => true,
            }
        }
        quickcheck::QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(Schedule, Vec<(usize, u8)>) -> bool);
    }

    #[test]
    fn schedules_outside_the_generator_have_no_fuzz_input() {
        let t = crate::topology::denver_paris().build().unwrap();
        for line in [
            "seed=1; +9000ms heal",
            "seed=1; +0ms crash n9",
            "seed=1; +0ms delay n1 n2 401ms",
            "seed=1; +0ms skew n1 10%",
            "seed=1; +0ms partition paris|denver",
            "seed=1; +0ms split n2|n1",
        ] {
            let s: Schedule = line.parse().unwrap();
            assert_eq!(s.to_fuzz_input(&t), None, "{line}");
        }
        let s: Schedule = "seed=1; +0ms split n1+n5|n2+n3+n4; +0ms partition denver+kansas|paris"
            .parse()
            .unwrap();
        let bytes = s.to_fuzz_input(&t).unwrap();
        assert_eq!(
            Schedule::arbitrary_for(&mut Unstructured::new(&bytes), &t).unwrap(),
            s
        );
    }
}

//! Random schedules: from fuzzer bytes ([`arbitrary`]) and from quickcheck
//! (with shrinking). Both name only members and sites of a topology (the
//! reference Denver/Paris layout unless one is given), so any input maps to
//! a schedule that runs.

use arbitrary::{Result, Unstructured};

use super::{Fault, Schedule, Step};
use crate::topology::{NodeId, Topology};

/// At most this many faults per schedule.
const MAX_STEPS: usize = 12;
/// At most this long between two faults.
const MAX_WAIT_MS: u64 = 8_000;

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

/// Weighted fault kinds: crashes and restarts most, then partitions and heals.
const KINDS: [(u8, u32); 13] = [
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
];

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
            let mask = u.int_in_range(1..=(1u32 << (a.sites.len() - 1).min(31)) - 1)?;
            let (mut x, mut y) = (vec![a.sites[0].clone()], Vec::new());
            for (i, s) in a.sites.iter().enumerate().skip(1) {
                if mask & (1 << ((i - 1) % 31)) != 0 {
                    y.push(s.clone());
                } else {
                    x.push(s.clone());
                }
            }
            if y.is_empty() {
                Fault::Heal
            } else {
                Fault::Partition(x, y)
            }
        }
        9 => Fault::Delay(n, pick(u, &a.nodes)?, u.int_in_range(1..=400)?),
        10 => Fault::Loss(n, pick(u, &a.nodes)?, u.int_in_range(0..=100)?),
        11 => Fault::Skew(n, u.int_in_range(25..=400)?),
        12 => Fault::Rate(u.int_in_range(1..=500)?),
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

/// For the reference Denver/Paris layout; shrinks by dropping faults and
/// halving waits.
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
        Box::new(out.into_iter())
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
}

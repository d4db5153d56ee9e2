//! Entry points for the fuzz targets under `fuzz/` (cargo-fuzz). Each target
//! is a one-line call into here, so `cargo test` replays the checked-in
//! corpus (`tests/fuzz_corpus.rs`) on stable Rust, and users can point the
//! same functions at their own builds.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::Unstructured;

use crate::policy::{HandBack, HandBackPolicy, Timers};
use crate::sim::{RunOptions, RunReport, Schedule, ScheduleError};
use crate::topology::{denver_paris, denver_paris_two_site, Topology, TopologyBuilder};
use crate::wire::{Envelope, FrameDecoder, Hello};

/// Frames larger than this are refused by the fuzzed decoder, so a run
/// can show it never buffers more than the limit plus one input.
const FUZZ_FRAME_LIMIT: usize = 64 << 10;

/// Every decoder of [`crate::wire`] on arbitrary bytes: an envelope and
/// the raft message inside it, a hello, and a stream of frames fed in
/// pieces whose sizes the bytes choose; and the reader of a certificate's
/// member identity ([`crate::transport::CertifiedAs::of_der`]). Must never
/// panic, and the stream decoder must never hold more than the frame
/// limit plus one input.
pub fn wire_decode(data: &[u8]) {
    let _ = crate::transport::CertifiedAs::of_der(data);
    if let Ok(env) = Envelope::from_bytes(data) {
        let _ = env.raft_message();
        let again = Envelope::from_bytes(&env.to_bytes()).expect("an envelope re-decodes");
        assert_eq!(again, env, "an envelope survives a round trip");
    }
    let _ = Hello::from_bytes(data);
    let mut dec = FrameDecoder::new(FUZZ_FRAME_LIMIT);
    let step = usize::from(data.first().copied().unwrap_or(1).max(1));
    for piece in data.chunks(step) {
        dec.push(piece);
        assert!(dec.buffered() <= FUZZ_FRAME_LIMIT + 4 + data.len());
        while let Ok(Some(env)) = dec.next_envelope() {
            let _ = env.raft_message();
        }
    }
    let _ = dec.finish();
}

/// Short timers (takeover after 1 s, hand-back after 1 s stable) so each
/// run is short and the fuzzer explores many.
fn fuzz_timers(b: &mut TopologyBuilder) -> Arc<Topology> {
    b.timers(Timers {
        survivable_after: Duration::from_secs(1),
        rank_step: Duration::from_millis(500),
        ..Timers::default()
    })
    .hand_back(HandBack {
        policy: HandBackPolicy::AfterStable(Duration::from_secs(1)),
        ..HandBack::default()
    });
    b.build().expect("a reference topology").shared()
}

/// The topology [`partition_schedule`] runs: the witness-mode reference
/// layout ([`denver_paris`]) with short timers (takeover after 1 s,
/// hand-back after 1 s stable).
pub fn witness_topology() -> Arc<Topology> {
    static T: OnceLock<Arc<Topology>> = OnceLock::new();
    T.get_or_init(|| fuzz_timers(&mut denver_paris())).clone()
}

/// The topology [`two_site_schedule`] runs: the two-site reference layout
/// ([`denver_paris_two_site`], main-site mode) with the same short timers.
pub fn two_site_topology() -> Arc<Topology> {
    static T: OnceLock<Arc<Topology>> = OnceLock::new();
    T.get_or_init(|| fuzz_timers(&mut denver_paris_two_site()))
        .clone()
}

/// How the schedule targets run a schedule: the defaults, with the main
/// site due back within 10 s.
pub fn run_options() -> RunOptions {
    RunOptions {
        main_site_within: Duration::from_secs(10),
        ..RunOptions::default()
    }
}

/// The schedule a schedule target plays for `data` on `topology`: what
/// [`Schedule::arbitrary_for`] makes of it, cut to 8 faults at most 2 s
/// apart so each run is short. `None` only if the generator fails.
pub fn fuzz_schedule(topology: &Topology, data: &[u8]) -> Option<Schedule> {
    let mut u = Unstructured::new(data);
    let mut schedule = Schedule::arbitrary_for(&mut u, topology).ok()?;
    schedule.steps.truncate(8);
    for step in &mut schedule.steps {
        step.after_ms %= 2_000;
    }
    Some(schedule)
}

/// Arbitrary bytes → a fault [`Schedule`] for the reference Denver/Paris
/// topology (witness mode) → a simulated run under the invariant checker.
/// Any byte string is a valid input. Panics when an invariant breaks,
/// printing the schedule line and how to replay it
/// ([`replay_partition_schedule`]).
pub fn partition_schedule(data: &[u8]) {
    run_fuzzed(Target::Witness, data);
}

/// As [`partition_schedule`], for the two-site layout in main-site mode:
/// activations, epochs, reconciliation and hand-back under the per-epoch
/// invariants (one leader per epoch and term, every acknowledged entry
/// applied or reconciled exactly once, convergence into one epoch, the
/// main site leading again). Replay a failure with
/// [`replay_two_site_schedule`].
pub fn two_site_schedule(data: &[u8]) {
    run_fuzzed(Target::TwoSite, data);
}

/// Replays a schedule line printed by a failing [`partition_schedule`] run
/// exactly as the target ran it ([`witness_topology`], [`run_options`]).
///
/// # Errors
/// [`ScheduleError`] when the line does not parse or names what the
/// topology lacks.
pub fn replay_partition_schedule(line: &str) -> Result<RunReport, ScheduleError> {
    line.parse::<Schedule>()?
        .run(witness_topology(), &run_options())
}

/// Replays a schedule line printed by a failing [`two_site_schedule`] run
/// exactly as the target ran it ([`two_site_topology`], [`run_options`]).
///
/// # Errors
/// [`ScheduleError`] when the line does not parse or names what the
/// topology lacks.
pub fn replay_two_site_schedule(line: &str) -> Result<RunReport, ScheduleError> {
    line.parse::<Schedule>()?
        .run(two_site_topology(), &run_options())
}

#[derive(Clone, Copy)]
enum Target {
    Witness,
    TwoSite,
}

impl Target {
    fn topology(self) -> Arc<Topology> {
        match self {
            Self::Witness => witness_topology(),
            Self::TwoSite => two_site_topology(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Witness => "partition_schedule",
            Self::TwoSite => "two_site_schedule",
        }
    }
}

fn run_fuzzed(target: Target, data: &[u8]) {
    let topology = target.topology();
    let Some(schedule) = fuzz_schedule(&topology, data) else {
        return;
    };
    let report = schedule
        .run(topology, &run_options())
        .expect("generated schedules name only topology members");
    let name = target.name();
    assert!(
        report.violations.is_empty(),
        "schedule {schedule} broke {:?}\nreplay it: FUZZ_TARGET={name} FUZZ_REPLAY='{schedule}' \
         cargo test --test fuzz_corpus replay -- --nocapture\n\
         or call survivable_core::fuzzing::replay_{name}(\"{schedule}\")",
        report.violations
    );
}

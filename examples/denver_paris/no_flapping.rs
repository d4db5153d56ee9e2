//! Behaviour 7, no flapping (witness mode, after `hand_back`): Denver is
//! cut off again and Paris takes over; then the WAN flaps, up for less
//! than the stability window each time, for twice the window; then it
//! heals for good. Leadership moves exactly twice: to Paris, and back to
//! Denver once the link has been steady for the whole window. No
//! hand-back is even attempted while the link flaps.
//!
//! The cut, the flapping and the heal are scripted and measured by the
//! library (`survivable_core::sim::scenarios::no_flapping`, which the
//! scenario tests assert on too); this step narrates and enforces its
//! outcome.

use std::time::Duration;

use survivable_core::sim::scenarios::no_flapping::{self, NoFlapping, NoFlappingOutcome};
use survivable_core::sim::scenarios::SiteCut;
use survivable_core::sim::Sim;

use crate::{finish, json_num, name, print, story_with, Args, CallTable, Checks, Report, Workload};

const STEP: &str = "no_flapping";

/// The flapping link: up for 400 ms (less than the window: half of it if
/// `--stable-ms` is under 800), down for 100 ms or half an election
/// timeout if longer (a silence the stability tracker must notice: it
/// counts any longer than a quarter election timeout).
fn flap_ms(args: &Args, election_ms: u64) -> (u64, u64) {
    ((args.stable_ms / 2).min(400), (election_ms / 2).max(100))
}

/// The script: Denver cut off for the takeover, then flaps for twice the
/// stability window, then steady for the window and 4 s more.
fn plan(sim: &Sim<CallTable>, args: &Args) -> NoFlapping {
    let election_ms = sim.topology().timers().election.as_millis() as u64;
    let (up, down) = flap_ms(args, election_ms);
    NoFlapping {
        cut: SiteCut::new(&["denver"], &["paris", "kansas"]),
        cut_for: Duration::from_millis(args.survivable_after_ms + 3_000),
        up: Duration::from_millis(up),
        down: Duration::from_millis(down),
        flaps: (2 * args.stable_ms).div_ceil(up + down),
        steady_for: Duration::from_millis(args.stable_ms + 4_000),
    }
}

/// Runs the step and checks it.
pub(crate) fn step(sim: &mut Sim<CallTable>, w: &mut Workload, c: &mut Checks, args: &Args) {
    let before = w.up.clone();
    let failed_before = w.failed;
    let plan = plan(sim, args);
    let out = no_flapping::run(sim, &plan, |s, d| w.run(s, d));
    let failed = w.failed - failed_before;
    let takeover = out.takeover_us.map(|us| us / 1000);
    let mut r = finish(
        sim,
        w,
        STEP,
        "behaviour 7",
        &before,
        takeover,
        out.cut_at_us,
    );
    let (up, down) = (plan.up.as_millis(), plan.down.as_millis());
    r.story = story_with(
        sim,
        out.cut_at_us,
        &[
            (out.cut_at_us, "Denver is cut off again".into()),
            (
                out.flapping_from_us,
                format!(
                    "the WAN flaps: up {up} ms, down {down} ms, {} times",
                    plan.flaps
                ),
            ),
            (out.steady_at_us, "the WAN heals for good".into()),
        ],
    );
    check(sim, c, args, &out, failed);
    c.leads(&r, sim, "denver");
    c.nothing_lost(&r);
    c.no_call_dropped(&r);
    extra(&mut r, &plan, &out, failed);
    print(sim, "witness", &r, args.json);
}

/// The step's own checks: no hand-back attempt while the link flaps, two
/// moves, home only after the window, no failed proposal.
fn check(sim: &Sim<CallTable>, c: &mut Checks, args: &Args, out: &NoFlappingOutcome, failed: u64) {
    let attempts = out.hand_back_attempts_while_flapping;
    c.check(
        STEP,
        "no hand-back attempted while the link flaps",
        attempts == 0,
        format!("{attempts} attempt(s)"),
    );
    let sites: Vec<&str> = out.moves.iter().map(|(_, id)| sim.site_of(*id)).collect();
    c.check(
        STEP,
        "leadership moves exactly twice: to Paris, then back to Denver",
        sites == ["paris", "denver"],
        format!(
            "{:?}",
            (out.moves.iter())
                .map(|(t, id)| format!("{} at {:.3} s", name(sim, *id), *t as f64 / 1e6))
                .collect::<Vec<_>>()
        ),
    );
    let back_after_ms = out.back_after_ms();
    c.check(
        STEP,
        "control goes home only once the link was steady for the window",
        back_after_ms.is_some_and(|ms| ms >= args.stable_ms),
        format!(
            "{back_after_ms:?} ms after the last heal, window {} ms",
            args.stable_ms
        ),
    );
    c.check(
        STEP,
        "no failed proposal",
        failed == 0,
        format!("{failed} failed"),
    );
}

/// The step's figures, for the report and `--json`.
fn extra(r: &mut Report, plan: &NoFlapping, out: &NoFlappingOutcome, failed: u64) {
    r.extra.extend([
        ("flaps", plan.flaps.to_string()),
        ("flap_up_ms", plan.up.as_millis().to_string()),
        ("flap_down_ms", plan.down.as_millis().to_string()),
        (
            "hand_back_attempts_while_flapping",
            out.hand_back_attempts_while_flapping.to_string(),
        ),
        ("leadership_moves", out.moves.len().to_string()),
        ("hand_back_after_ms", json_num(out.back_after_ms())),
        ("failed_proposals", failed.to_string()),
    ]);
}

//! Behaviour 7, no flapping (witness mode, after `hand_back`): Denver is
//! cut off again and Paris takes over; then the WAN flaps, up for less
//! than the stability window each time, for twice the window; then it
//! heals for good. Leadership moves exactly twice: to Paris, and back to
//! Denver once the link has been steady for the whole window. No
//! hand-back is even attempted while the link flaps.

use std::time::Duration;

use survivable_core::sim::Sim;
use survivable_core::Event;

use crate::{
    finish, first_commit_in_term, json_num, leader_term, leaders_since, name, print, story_with,
    Args, CallTable, Checks, Workload,
};

const STEP: &str = "no_flapping";

fn cut(sim: &mut Sim<CallTable>) {
    sim.partition_sites(&["denver"], &["paris", "kansas"]);
}

/// The flapping link: up for 400 ms (less than the window: half of it if
/// `--stable-ms` is under 800), down for 100 ms or half an election
/// timeout if longer (a silence the stability tracker must notice: it
/// counts any longer than a quarter election timeout).
fn flap_ms(args: &Args, election_ms: u64) -> (u64, u64) {
    ((args.stable_ms / 2).min(400), (election_ms / 2).max(100))
}

/// Runs the step and checks it.
pub(crate) fn step(sim: &mut Sim<CallTable>, w: &mut Workload, c: &mut Checks, args: &Args) {
    let before = w.up.clone();
    let since = sim.now_us();
    let failed_before = w.failed;
    let term = leader_term(sim).map_or(0, |(_, t)| t);
    cut(sim);
    w.run(sim, Duration::from_millis(args.survivable_after_ms + 3_000));
    let takeover = first_commit_in_term(sim, since, term);

    let election_ms = sim.topology().timers().election.as_millis() as u64;
    let (up, down) = flap_ms(args, election_ms);
    let flaps = (2 * args.stable_ms).div_ceil(up + down);
    let flapping_from = sim.now_us();
    for _ in 0..flaps {
        sim.heal();
        w.run(sim, Duration::from_millis(up));
        cut(sim);
        w.run(sim, Duration::from_millis(down));
    }
    let steady = sim.now_us();
    sim.heal();
    w.run(sim, Duration::from_millis(args.stable_ms + 4_000));

    let attempts_while_flapping = (sim.events().iter())
        .filter(|(t, _, _)| *t >= since && *t < steady)
        .filter(|(_, _, e)| matches!(e, Event::HandBackAttempt { .. }))
        .count();
    let moves = leaders_since(sim, since);
    let sites: Vec<&str> = moves.iter().map(|(_, id, _)| sim.site_of(*id)).collect();
    let back_after_ms = (moves.get(1)).map(|(t, _, _)| t.saturating_sub(steady) / 1000);
    let failed = w.failed - failed_before;

    let mut r = finish(sim, w, STEP, "behaviour 7", &before, takeover, since);
    r.story = story_with(
        sim,
        since,
        &[
            (since, "Denver is cut off again".into()),
            (
                flapping_from,
                format!("the WAN flaps: up {up} ms, down {down} ms, {flaps} times"),
            ),
            (steady, "the WAN heals for good".into()),
        ],
    );

    c.check(
        STEP,
        "no hand-back attempted while the link flaps",
        attempts_while_flapping == 0,
        format!("{attempts_while_flapping} attempt(s)"),
    );
    c.check(
        STEP,
        "leadership moves exactly twice: to Paris, then back to Denver",
        sites == ["paris", "denver"],
        format!(
            "{:?}",
            (moves.iter())
                .map(|(t, id, _)| format!("{} at {:.3} s", name(sim, *id), *t as f64 / 1e6))
                .collect::<Vec<_>>()
        ),
    );
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
    c.leads(&r, sim, "denver");
    c.nothing_lost(&r);
    c.no_call_dropped(&r);
    r.extra.extend([
        ("flaps", flaps.to_string()),
        ("flap_up_ms", up.to_string()),
        ("flap_down_ms", down.to_string()),
        (
            "hand_back_attempts_while_flapping",
            attempts_while_flapping.to_string(),
        ),
        ("leadership_moves", moves.len().to_string()),
        ("hand_back_after_ms", json_num(back_after_ms)),
        ("failed_proposals", failed.to_string()),
    ]);
    print(sim, "witness", &r, args.json);
}

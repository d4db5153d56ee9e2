//! The SVG timeline, checked as a real SVG renderer draws it: a simulated
//! main-site run (Denver leads, the WAN is cut, Paris activates an epoch
//! of its own, the WAN heals, control goes home) is drawn, the document is
//! parsed and rendered with resvg, and pixels are read at the coordinates
//! the layout gives: the leader's colour in Denver's lanes before the cut
//! and in a Paris lane after it, the fault line at the cut, the takeover
//! marker at the activation, the calls chart. The picture committed for
//! the README is parsed and rendered too.

use std::time::Duration;

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{Options, Tree};
use survivable_core::events::Event;
use survivable_core::sim::{KvStore, Sim};
use survivable_core::timeline::{
    LaneState, Layout, MarkerKind, Timeline, CALLS_COLOUR, FAULT_COLOUR,
};
use survivable_core::topology::{denver_paris_two_site, NodeId};

/// Parses and renders an SVG document at its own size.
fn render(svg: &str) -> (Tree, Pixmap) {
    let tree = Tree::from_str(svg, &Options::default()).expect("the timeline is valid SVG");
    let size = tree.size().to_int_size();
    let mut pixmap = Pixmap::new(size.width(), size.height()).expect("a non-empty picture");
    resvg::render(&tree, Transform::default(), &mut pixmap.as_mut());
    (tree, pixmap)
}

/// The colour of the pixel whose area holds (x, y).
fn pixel(p: &Pixmap, x: f64, y: f64) -> [u8; 3] {
    let c = p
        .pixel(x.floor() as u32, y.floor() as u32)
        .expect("inside the picture");
    [c.red(), c.green(), c.blue()]
}

/// The middle of lane `index`, vertically.
fn lane_mid(l: &Layout, index: usize) -> f64 {
    let (top, bottom) = l.lane(index).expect("the lane exists");
    (top + bottom) / 2.0
}

/// A main-site run with a write every 20 ms at each site: 3 s normal,
/// the WAN cut for `cut_ms`, then healed for 12 s (hand-back waits for the
/// 5 s stability window). Returns the sim, the cut's time (ms) and the
/// calls written over time (ms, acknowledged so far).
fn main_site_run(cut_ms: u64) -> (Sim<KvStore>, u64, Vec<(u64, u64)>) {
    let topology = denver_paris_two_site().build().expect("valid").shared();
    let mut sim = Sim::builder(topology).seed(7).build(|_| KvStore::default());
    let mut calls = Vec::new();
    let mut n = 0u64;
    let mut run = |sim: &mut Sim<KvStore>, ms: u64| {
        let end = sim.now_ms() + ms;
        while sim.now_ms() < end {
            for site in ["denver", "paris"] {
                let up: Vec<NodeId> = (sim.site_members(site).into_iter())
                    .filter(|&id| sim.is_up(id))
                    .collect();
                if let Some(&at) = up.get(n as usize % up.len().max(1)) {
                    n += 1;
                    let _ = sim.propose(at, format!("set k{n} v").into_bytes());
                }
            }
            sim.run_for(Duration::from_millis(20));
            let acked = sim.commits().iter().filter(|c| c.outcome.result.is_ok());
            calls.push((sim.now_ms(), acked.count() as u64));
        }
    };
    run(&mut sim, 3_000);
    let cut = sim.now_ms();
    sim.partition_sites(&["denver"], &["paris"]);
    run(&mut sim, cut_ms);
    sim.heal();
    run(&mut sim, 12_000);
    (sim, cut, calls)
}

#[test]
fn a_main_site_run_draws_who_led_when() {
    let (sim, cut, calls) = main_site_run(6_000);
    let activated = (sim.events().iter())
        .find_map(|(t, id, e)| matches!(e, Event::Activated { .. }).then_some((t / 1000, *id)));
    let (activated_ms, founder) = activated.expect("Paris activated an epoch during the cut");
    assert_eq!(sim.site_of(founder), "paris");

    let mut t = Timeline::from_sim(&sim);
    t.title("main-site run");
    for (at, n) in &calls {
        t.calls(*at, *n);
    }
    let svg = t.render();
    let (tree, p) = render(&svg);
    let l = t.layout();
    assert_eq!(p.width() as f64, l.width());

    // A lane per member, Denver's three (the pair and the tie-breaker)
    // before Paris's two, each a group the renderer keeps.
    let lanes = t.lanes();
    assert_eq!(lanes.len(), 5, "one lane per member: {lanes:?}");
    for id in &lanes {
        assert!(
            tree.node_by_id(&format!("lane-{id}")).is_some(),
            "lane of {id} rendered"
        );
    }
    assert!(tree.node_by_id("lane-n6").is_none());
    let denver: Vec<usize> = (0..5)
        .filter(|&i| sim.site_of(lanes[i]) == "denver")
        .collect();
    let paris: Vec<usize> = (0..5)
        .filter(|&i| sim.site_of(lanes[i]) == "paris")
        .collect();
    assert_eq!((denver.clone(), paris.clone()), (vec![0, 1, 2], vec![3, 4]));

    // Sample times outside every write outage (which shades the lanes).
    let clear = |at: u64| t.outages().iter().all(|&(a, b)| at + 50 < a || at > b + 50);
    let leader = LaneState::Leader.rgb();
    // Before the cut: Denver's leader (elected within the first second).
    let before = cut - 500;
    assert!(clear(before));
    let colours: Vec<[u8; 3]> = denver
        .iter()
        .map(|&i| pixel(&p, l.x(before), lane_mid(&l, i)))
        .collect();
    assert_eq!(
        colours.iter().filter(|&&c| c == leader).count(),
        1,
        "{colours:?}"
    );
    let paris_before: Vec<[u8; 3]> = paris
        .iter()
        .map(|&i| pixel(&p, l.x(before), lane_mid(&l, i)))
        .collect();
    assert!(
        paris_before.iter().all(|&c| c == LaneState::Learner.rgb()),
        "{paris_before:?}"
    );

    // After the activation: Paris leads its epoch (and, cut off from
    // Denver, Denver's leader still leads the old one: both serve).
    let after = activated_ms + 500;
    assert!(after < cut + 6_000 && clear(after));
    let paris_after: Vec<[u8; 3]> = paris
        .iter()
        .map(|&i| pixel(&p, l.x(after), lane_mid(&l, i)))
        .collect();
    assert!(paris_after.contains(&leader), "{paris_after:?}");
    let cut_off = LaneState::CutOff.rgb();
    let during_cut = cut + 1_000;
    let paris_cut: Vec<[u8; 3]> = paris
        .iter()
        .map(|&i| pixel(&p, l.x(during_cut), lane_mid(&l, i)))
        .collect();
    assert!(paris_cut.iter().all(|&c| c == cut_off), "{paris_cut:?}");

    // The cut: a fault line across Denver's and Paris's lanes (2 px wide,
    // so one of the pixels around its x is fully its colour).
    let red = rgb(FAULT_COLOUR);
    for i in [0, 3] {
        let x = l.x(cut);
        let found = (-2..=2).any(|dx| pixel(&p, x + f64::from(dx), lane_mid(&l, i)) == red);
        assert!(found, "the cut's line across lane {i}");
    }
    // The activation: a takeover marker above the lanes.
    let x = l.x(activated_ms);
    let y = l.lanes_top() - 5.0;
    let marker = MarkerKind::Takeover.rgb();
    assert!(
        (-1..=1).any(|dx| pixel(&p, x + f64::from(dx), y) == marker),
        "takeover marker"
    );
    // Home again at the end: Denver leads.
    let end = t.end_ms() - 200;
    let denver_end: Vec<[u8; 3]> = denver
        .iter()
        .map(|&i| pixel(&p, l.x(end), lane_mid(&l, i)))
        .collect();
    assert!(denver_end.contains(&leader), "{denver_end:?}");
    // The calls chart: its line in the chart's band.
    let (top, bottom) = l.chart();
    let blue = rgb(CALLS_COLOUR);
    let xm = l.x(cut);
    let line_seen = (top as u32..=bottom as u32).any(|y| pixel(&p, xm, f64::from(y)) == blue);
    assert!(line_seen, "the calls line crosses x of the cut");
}

/// `#rrggbb` as bytes.
fn rgb(hex: &str) -> [u8; 3] {
    let b = |i: usize| u8::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap();
    [b(0), b(1), b(2)]
}

#[test]
fn the_readme_picture_parses_and_renders() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/denver_paris/timeline.svg"
    );
    let svg = std::fs::read_to_string(path).expect("the README's timeline is committed");
    let (tree, p) = render(&svg);
    // The witness-mode run: Denver's pair, Paris's pair, the witness, and
    // CM01c (n6), which replaces CM01a after its host failed.
    for id in 1..=6 {
        assert!(
            tree.node_by_id(&format!("lane-n{id}")).is_some(),
            "lane of n{id}"
        );
    }
    assert!(tree.node_by_id("lane-n7").is_none());
    // Every lane state but none is drawn somewhere: scan all the pixels.
    let mut seen = std::collections::BTreeSet::new();
    for px in p.pixels() {
        seen.insert([px.red(), px.green(), px.blue()]);
    }
    for state in [
        LaneState::Leader,
        LaneState::Follower,
        LaneState::Down,
        LaneState::CutOff,
    ] {
        assert!(seen.contains(&state.rgb()), "{state} is drawn");
    }
    assert!(seen.contains(&rgb(FAULT_COLOUR)), "a fault is drawn");
}

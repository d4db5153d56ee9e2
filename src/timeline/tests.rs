//! The layout maths and the recorder.

use super::*;
use crate::topology::denver_paris_two_site;

fn timeline() -> Timeline {
    Timeline::new(&denver_paris_two_site().build().expect("valid"))
}

#[test]
fn nice_steps_are_one_two_or_five_times_a_power_of_ten() {
    assert_eq!(nice_step(10_000, 10), 1_000);
    assert_eq!(nice_step(10_001, 10), 2_000);
    assert_eq!(nice_step(45_000, 10), 5_000);
    assert_eq!(nice_step(95_000, 10), 10_000);
    assert_eq!(nice_step(7, 10), 1);
    assert_eq!(nice_step(0, 10), 1);
    // No ticks asked for: one step spans it all.
    assert_eq!(nice_step(3_000, 0), 5_000);
}

#[test]
fn time_maps_linearly_onto_the_plot_and_back() {
    let l = Layout::new(1000.0, (2_000, 12_000), &["a"], 0, false);
    assert_eq!(l.x(2_000), l.plot_left());
    assert_eq!(l.x(12_000), l.plot_right());
    let mid = (l.plot_left() + l.plot_right()) / 2.0;
    assert!((l.x(7_000) - mid).abs() < 1e-9);
    // Outside the span: clamped to the plot's edges.
    assert_eq!(l.x(0), l.plot_left());
    assert_eq!(l.x(99_000), l.plot_right());
    for t in [2_000, 2_001, 5_555, 12_000] {
        assert_eq!(l.t_ms(l.x(t)), t);
    }
    // An empty span is one ms wide, never a division by zero.
    let z = Layout::new(1000.0, (5, 5), &[], 0, false);
    assert_eq!(z.x(5), z.plot_left());
}

#[test]
fn lanes_are_grouped_by_site_with_a_gap_between_sites() {
    let l = Layout::new(800.0, (0, 1_000), &["denver", "denver", "paris"], 2, true);
    let (a, b, c) = (l.lane(0).unwrap(), l.lane(1).unwrap(), l.lane(2).unwrap());
    let step = b.0 - a.0;
    assert!(step > a.1 - a.0, "lanes of a site are apart");
    assert!(c.0 - b.0 > step, "a new site starts after a wider gap");
    assert!(l.lane(3).is_none());
    assert!(a.0 >= l.lanes_top() && l.lanes_bottom() == c.1);
    // Below the lanes the chart, then the axis and legend within the height.
    let (top, bottom) = l.chart();
    assert!(top > c.1 && bottom > top && l.height() > bottom);
    // Label rows push the lanes down.
    let fewer = Layout::new(800.0, (0, 1_000), &["denver"], 0, true);
    assert!(fewer.lanes_top() < l.lanes_top());
}

#[test]
fn labels_take_the_first_row_they_fit_in() {
    // Placed left to right: the first two overlap (rows 0 and 1); the
    // fourth (from 20) overlaps both rows and there are only two; the
    // third (from 55) is 2 px clear of row 0's label (ends at 50).
    let extents = [(0.0, 50.0), (10.0, 60.0), (55.0, 90.0), (20.0, 70.0)];
    let (rows, used) = label_rows(&extents, 2);
    assert_eq!(rows, vec![Some(0), Some(1), Some(0), None]);
    assert_eq!(used, 2);
    // With three rows the fourth gets the third.
    let (rows, used) = label_rows(&extents, 3);
    assert_eq!(rows, vec![Some(0), Some(1), Some(0), Some(2)]);
    assert_eq!(used, 3);
    // Touching (less than 2 px apart) is overlapping.
    assert_eq!(
        label_rows(&[(0.0, 50.0), (51.0, 60.0)], 1).0,
        vec![Some(0), None]
    );
    assert_eq!(label_rows(&[], 3), (vec![], 0));
}

#[test]
fn a_label_near_the_right_edge_ends_there() {
    assert_eq!(
        layout::label_extent(100.0, 50.0, 0.0, 500.0),
        (100.0, 150.0)
    );
    assert_eq!(
        layout::label_extent(480.0, 50.0, 0.0, 500.0),
        (450.0, 500.0)
    );
    // Wider than the plot: from its left edge.
    assert_eq!(layout::label_extent(10.0, 900.0, 5.0, 500.0), (5.0, 905.0));
}

#[test]
fn spans_merge_states_and_run_to_the_end() {
    let mut t = timeline();
    let n1 = NodeId(1);
    t.role(0, n1, LaneState::Follower).unwrap();
    t.role(100, n1, LaneState::Leader).unwrap();
    t.role(200, n1, LaneState::Leader).unwrap();
    t.role(300, n1, LaneState::Down).unwrap();
    // Replaced at the same instant: the later call wins.
    t.role(300, n1, LaneState::CutOff).unwrap();
    t.until(1_000).unwrap();
    assert_eq!(
        t.spans(n1),
        vec![
            (0, 100, LaneState::Follower),
            (100, 300, LaneState::Leader),
            (300, 1_000, LaneState::CutOff),
        ]
    );
    // Recorded out of order: the same spans.
    let mut u = timeline();
    u.role(300, n1, LaneState::CutOff).unwrap();
    u.role(100, n1, LaneState::Leader).unwrap();
    u.role(0, n1, LaneState::Follower).unwrap();
    u.until(1_000).unwrap();
    assert_eq!(u.spans(n1), t.spans(n1));
    assert!(t.spans(NodeId(2)).is_empty());
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    let mut t = timeline();
    assert_eq!(
        t.role(0, NodeId(9), LaneState::Leader),
        Err(TimelineError::UnknownMember(NodeId(9)))
    );
    assert_eq!(
        t.fault(0, "crash", &[NodeId(1), NodeId(9)]),
        Err(TimelineError::UnknownMember(NodeId(9)))
    );
    assert_eq!(
        t.outage(500, 400),
        Err(TimelineError::Backwards {
            from_ms: 500,
            to_ms: 400
        })
    );
    t.role(2_000, NodeId(1), LaneState::Leader).unwrap();
    assert_eq!(
        t.until(1_000),
        Err(TimelineError::Backwards {
            from_ms: 2_000,
            to_ms: 1_000
        })
    );
    assert!(t.faults.is_empty() && t.outages().is_empty());
    assert_eq!(t.end_ms(), 2_001, "no until: one ms past the latest");
    let message = TimelineError::UnknownMember(NodeId(9)).to_string();
    assert!(message.contains("n9") && message.contains("topology"));
}

#[test]
fn the_lanes_follow_the_topology() {
    let t = timeline();
    // Denver (main): the pair, then the tie-breaker; then Paris's pair.
    assert_eq!(
        t.lanes(),
        vec![NodeId(1), NodeId(2), NodeId(5), NodeId(3), NodeId(4)]
    );
}

#[test]
fn the_document_escapes_text_and_has_every_part() {
    let mut t = timeline();
    t.title("a <b> & c");
    t.role(0, NodeId(1), LaneState::Leader).unwrap();
    t.fault(10, "cut \"x\"", &[]).unwrap();
    t.marker(20, MarkerKind::HandBack, "home");
    t.outage(30, 40).unwrap();
    t.calls(0, 3);
    t.calls(50, 5);
    let svg = t.render();
    assert!(svg.contains("a &lt;b&gt; &amp; c"), "{svg}");
    assert!(!svg.contains("<b>"));
    for part in [
        "class=\"lanes\"",
        "class=\"outages\"",
        "class=\"faults\"",
        "class=\"markers\"",
        "class=\"calls\"",
        "class=\"axis\"",
        "class=\"legend\"",
        "id=\"lane-n1\"",
        LaneState::Leader.colour(),
        MarkerKind::HandBack.colour(),
    ] {
        assert!(svg.contains(part), "{part} missing");
    }
    assert_eq!(LaneState::CutOff.rgb(), [0xfd, 0xae, 0x61]);
}

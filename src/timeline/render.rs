//! The SVG document of a [`Timeline`], composed with the `svg` crate's
//! typed elements (it escapes every text and attribute).

use svg::node::element::{Group, Line, Polygon, Polyline, Rectangle, Text, Title};
use svg::Document;

use super::{
    LaneState, Layout, MarkerKind, Timeline, CALLS_COLOUR, FAULT_COLOUR, OUTAGE_COLOUR,
    OUTAGE_OPACITY,
};

/// Rounds a coordinate to 0.1 px (a shorter file, the same picture).
fn r(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// Seconds for a label: as many decimals as the tick step needs.
fn seconds(t_ms: u64, step_ms: u64) -> String {
    let decimals = match step_ms {
        s if s % 1000 == 0 => 0,
        s if s % 100 == 0 => 1,
        s if s % 10 == 0 => 2,
        _ => 3,
    };
    format!("{:.*} s", decimals, t_ms as f64 / 1000.0)
}

fn text(x: f64, y: f64, content: impl Into<String>) -> Text {
    Text::new(content).set("x", r(x)).set("y", r(y))
}

fn rect(x: f64, y: f64, w: f64, h: f64, fill: &str) -> Rectangle {
    Rectangle::new()
        .set("x", r(x))
        .set("y", r(y))
        .set("width", r(w))
        .set("height", r(h))
        .set("fill", fill)
}

fn line(x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, width: f64) -> Line {
    Line::new()
        .set("x1", r(x1))
        .set("y1", r(y1))
        .set("x2", r(x2))
        .set("y2", r(y2))
        .set("stroke", stroke)
        .set("stroke-width", width)
}

pub(super) fn render(t: &Timeline) -> String {
    let l = t.layout();
    let mut doc = Document::new()
        .set("width", r(l.width()))
        .set("height", r(l.height()))
        .set("viewBox", (0, 0, r(l.width()), r(l.height())))
        .set("font-family", "sans-serif")
        .set("font-size", 10)
        .add(rect(0.0, 0.0, l.width(), l.height(), "#ffffff"));
    if !t.title.is_empty() {
        doc = doc.add(
            text(l.site_x(), l.title_y(), t.title.clone())
                .set("font-size", 13)
                .set("font-weight", "bold"),
        );
    }
    doc.add(lanes(t, &l))
        .add(outages(t, &l))
        .add(faults(t, &l))
        .add(markers(t, &l))
        .add(calls(t, &l))
        .add(axis(&l))
        .add(legend(&l))
        .to_string()
}

/// The lanes: site and member names, a pale background, the state spans.
fn lanes(t: &Timeline, l: &Layout) -> Group {
    let mut g = Group::new().set("class", "lanes");
    let (left, right) = (l.plot_left(), l.plot_right());
    for (i, lane) in t.lanes.iter().enumerate() {
        let Some((top, bottom)) = l.lane(i) else {
            continue;
        };
        let h = bottom - top;
        if i == 0 || t.lanes[i - 1].site != lane.site {
            g = g.add(
                text(l.site_x(), bottom - 4.0, lane.site.clone())
                    .set("font-weight", "bold")
                    .set("font-size", 11),
            );
        }
        // Each lane a group with an id (`lane-n3`), for styling and tests.
        let mut one = Group::new()
            .set("id", format!("lane-{}", lane.id))
            .add(text(l.name_x(), bottom - 4.0, lane.name.clone()))
            .add(rect(left, top, right - left, h, "#f2f2f2"));
        for (from, to, state) in t.spans(lane.id) {
            let (x1, x2) = (l.x(from), l.x(to));
            // At least a pixel: a blink of leadership stays visible.
            let tip = format!(
                "{} ({}): {state} {}–{}",
                lane.name,
                lane.id,
                seconds(from, 1),
                seconds(to, 1)
            );
            one =
                one.add(rect(x1, top, (x2 - x1).max(1.0), h, state.colour()).add(Title::new(tip)));
        }
        g = g.add(one);
    }
    g
}

/// The write outages: shaded spans over the lanes and the chart.
fn outages(t: &Timeline, l: &Layout) -> Group {
    let mut g = Group::new().set("class", "outages");
    let (top, bottom) = (l.lanes_top() - 4.0, l.chart().1);
    for &(from, to) in &t.outages {
        let (x1, x2) = (l.x(from), l.x(to));
        let tip = format!(
            "write outage {}–{} ({} ms)",
            seconds(from, 1),
            seconds(to, 1),
            to - from
        );
        g = g.add(
            rect(x1, top, (x2 - x1).max(1.5), bottom - top, OUTAGE_COLOUR)
                .set("fill-opacity", OUTAGE_OPACITY)
                .add(Title::new(tip)),
        );
    }
    g
}

/// The label of item `i` (faults first, then markers), if it has a row.
fn label(t: &Timeline, l: &Layout, i: usize, content: &str, colour: &str) -> Option<Text> {
    let (extents, _, rows) = t.placed_labels();
    let row = rows.get(i).copied().flatten()?;
    let (start, _) = extents[i];
    Some(text(start + 3.0, l.label_y(row), content).set("fill", colour))
}

/// The faults: a red line across each lane hit, a thin one up to the label.
fn faults(t: &Timeline, l: &Layout) -> Group {
    let mut g = Group::new().set("class", "faults");
    for (i, f) in t.faults.iter().enumerate() {
        let x = l.x(f.t_ms);
        let mut one =
            Group::new().add(Title::new(format!("{} at {}", f.label, seconds(f.t_ms, 1))));
        if let Some(lb) = label(t, l, i, &f.label, FAULT_COLOUR) {
            one = one.add(lb);
        }
        one = one.add(
            line(x, l.lanes_top() - 8.0, x, l.lanes_top(), FAULT_COLOUR, 1.0)
                .set("stroke-dasharray", "2,2"),
        );
        for (lane_index, lane) in t.lanes.iter().enumerate() {
            if !f.members.is_empty() && !f.members.contains(&lane.id) {
                continue;
            }
            if let Some((top, bottom)) = l.lane(lane_index) {
                one = one.add(line(x, top - 1.0, x, bottom + 1.0, FAULT_COLOUR, 2.0));
            }
        }
        g = g.add(one);
    }
    g
}

/// The markers: a triangle above the lanes, a dashed line across them.
fn markers(t: &Timeline, l: &Layout) -> Group {
    let mut g = Group::new().set("class", "markers");
    for (i, m) in t.marks.iter().enumerate() {
        let x = l.x(m.t_ms);
        let top = l.lanes_top();
        let colour = m.kind.colour();
        let mut one = Group::new()
            .add(Title::new(format!("{} at {}", m.label, seconds(m.t_ms, 1))))
            .add(
                Polygon::new()
                    .set(
                        "points",
                        format!(
                            "{},{} {},{} {},{}",
                            r(x - 4.0),
                            r(top - 8.0),
                            r(x + 4.0),
                            r(top - 8.0),
                            r(x),
                            r(top - 1.0)
                        ),
                    )
                    .set("fill", colour),
            )
            .add(
                line(x, top, x, l.lanes_bottom(), colour, 1.0)
                    .set("stroke-dasharray", "3,2")
                    .set("stroke-opacity", 0.8),
            );
        if let Some(lb) = label(t, l, t.faults.len() + i, &m.label, colour) {
            one = one.add(lb);
        }
        g = g.add(one);
    }
    g
}

/// The calls chart: a step line of the active calls, scaled to the most.
fn calls(t: &Timeline, l: &Layout) -> Group {
    let (top, bottom) = l.chart();
    let (left, right) = (l.plot_left(), l.plot_right());
    let mut samples = t.calls.clone();
    samples.sort_by_key(|s| s.0);
    let most = samples.iter().map(|s| s.1).max().unwrap_or(0).max(1);
    let y = |v: u64| bottom - (v as f64 / most as f64) * (bottom - top);
    let mut g = Group::new()
        .set("class", "calls")
        .add(line(left, bottom, right, bottom, "#999999", 1.0))
        .add(line(left, top, right, top, "#dddddd", 1.0))
        .add(text(l.site_x(), top + 10.0, "calls active").set("font-weight", "bold"))
        .add(text(l.name_x(), top + 24.0, format!("max {most}")))
        .add(text(l.name_x(), bottom, "0"));
    if samples.is_empty() {
        return g;
    }
    // A step line, one point per pixel column at most (the last sample
    // in a column is the one that holds at its right edge).
    let mut points: Vec<(f64, f64)> = Vec::new();
    for (i, &(at, v)) in samples.iter().enumerate() {
        let x = r(l.x(at));
        let next_x = samples.get(i + 1).map_or(l.x(t.end_ms()), |n| l.x(n.0));
        if points.last().is_some_and(|p| p.0 == x) {
            points.pop();
        }
        let yv = r(y(v));
        if points.last().is_some_and(|p| p.1 != yv) {
            let prev = points.last().map_or(yv, |p| p.1);
            points.push((x, prev));
        }
        points.push((x, yv));
        if i + 1 == samples.len() {
            points.push((r(next_x), yv));
        }
    }
    let text: Vec<String> = points.iter().map(|(x, y)| format!("{x},{y}")).collect();
    g = g.add(
        Polyline::new()
            .set("points", text.join(" "))
            .set("fill", "none")
            .set("stroke", CALLS_COLOUR)
            .set("stroke-width", 1.5),
    );
    g
}

/// The time axis: a line, ticks and their times.
fn axis(l: &Layout) -> Group {
    let y = l.axis_y();
    let ticks = l.ticks();
    let step = match ticks.as_slice() {
        [a, b, ..] => b - a,
        _ => 1000,
    };
    let mut g = Group::new().set("class", "axis").add(line(
        l.plot_left(),
        y,
        l.plot_right(),
        y,
        "#333333",
        1.0,
    ));
    for t in ticks {
        let x = l.x(t);
        g = g
            .add(line(x, y, x, y + 4.0, "#333333", 1.0))
            .add(text(x, y + 15.0, seconds(t, step)).set("text-anchor", "middle"));
    }
    g
}

/// The legend: a swatch per lane state, the outage, a fault, the markers.
fn legend(l: &Layout) -> Group {
    let y = l.legend_y() + 4.0;
    // (swatch colour, opacity, whether it is a thin bar, name)
    let mut items: Vec<(&str, f64, bool, String)> = (LaneState::ALL.iter())
        .map(|s| (s.colour(), 1.0, false, s.to_string()))
        .collect();
    items.push((OUTAGE_COLOUR, OUTAGE_OPACITY, false, "write outage".into()));
    items.push((FAULT_COLOUR, 1.0, true, "fault".into()));
    for (kind, name) in [
        (MarkerKind::Failover, "pair failover"),
        (MarkerKind::Takeover, "takeover"),
        (MarkerKind::HandBack, "hand-back"),
    ] {
        items.push((kind.colour(), 1.0, true, name.into()));
    }
    let mut x = l.site_x();
    let mut g = Group::new().set("class", "legend");
    for (colour, opacity, bar, name) in items {
        let swatch = if bar {
            rect(x + 4.0, y - 1.0, 3.0, 12.0, colour)
        } else {
            rect(x, y, 12.0, 10.0, colour).set("fill-opacity", opacity)
        };
        g = g.add(swatch).add(text(x + 16.0, y + 9.0, name.clone()));
        x += 16.0 + super::layout::label_width(name.chars().count()) + 8.0;
    }
    g
}

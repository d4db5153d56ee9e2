//! Where the timeline draws things: pure arithmetic, unit-tested.
//!
//! Top to bottom: the title (if any), the label rows (the faults' and
//! markers' labels, as many rows as the labels need, at most
//! [`LABEL_ROWS`]), the lanes (one row per member, a gap before each new
//! site), the calls chart, the time axis, the legend. Left to right: the
//! site and member names, then the plot, where time runs linearly from the
//! picture's start to its end.

/// The most rows of labels above the lanes; a label that fits in none is
/// left out (its line or marker is still drawn, with the label as its
/// tooltip).
pub const LABEL_ROWS: usize = 6;

const MARGIN: f64 = 10.0;
/// The names column: site names at `MARGIN`, member names at `NAME_X`.
const LEFT: f64 = 150.0;
const NAME_X: f64 = 78.0;
const RIGHT: f64 = 20.0;
const TITLE_H: f64 = 22.0;
const LABEL_ROW_H: f64 = 13.0;
const LANE_H: f64 = 16.0;
const LANE_GAP: f64 = 4.0;
const SITE_GAP: f64 = 10.0;
const CHART_GAP: f64 = 14.0;
const CHART_H: f64 = 60.0;
const AXIS_H: f64 = 28.0;
const LEGEND_H: f64 = 22.0;
/// Average advance of a character of the 10 px sans-serif labels.
const CHAR_W: f64 = 5.6;

/// The width (px) a label of `chars` characters takes, with its padding.
pub(crate) fn label_width(chars: usize) -> f64 {
    chars as f64 * CHAR_W + 6.0
}

/// The positions of one rendering. Coordinates are SVG user units (px),
/// from the top left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    width: f64,
    t0: u64,
    t1: u64,
    title: bool,
    label_rows: usize,
    /// Each lane's top, in lane order.
    lane_tops: Vec<f64>,
}

impl Layout {
    /// The layout of a picture `width` px wide showing `span` (start and
    /// end, ms), with lanes in the given sites (one entry per lane, in lane
    /// order: a new site starts a group), `label_rows` rows of labels and a
    /// title or not.
    pub fn new(
        width: f64,
        span: (u64, u64),
        lane_sites: &[&str],
        label_rows: usize,
        title: bool,
    ) -> Self {
        let mut layout = Self {
            width,
            t0: span.0,
            t1: span.1.max(span.0 + 1),
            title,
            label_rows: label_rows.min(LABEL_ROWS),
            lane_tops: Vec::new(),
        };
        let mut y = layout.lanes_top();
        for (i, site) in lane_sites.iter().enumerate() {
            if i > 0 && lane_sites[i - 1] != *site {
                y += SITE_GAP;
            }
            layout.lane_tops.push(y);
            y += LANE_H + LANE_GAP;
        }
        layout
    }

    /// The picture's width (px).
    pub fn width(&self) -> f64 {
        self.width
    }

    /// The picture's height (px).
    pub fn height(&self) -> f64 {
        self.legend_y() + LEGEND_H
    }

    /// The plot's left edge: where the start of the picture is.
    pub fn plot_left(&self) -> f64 {
        LEFT
    }

    /// The plot's right edge: where the end of the picture is.
    pub fn plot_right(&self) -> f64 {
        (self.width - RIGHT).max(LEFT + 1.0)
    }

    /// The x of the member names.
    pub(crate) fn name_x(&self) -> f64 {
        NAME_X
    }

    /// The x of the site names.
    pub(crate) fn site_x(&self) -> f64 {
        MARGIN
    }

    /// The x of time `t_ms` (clamped to the plot).
    pub fn x(&self, t_ms: u64) -> f64 {
        let t = t_ms.clamp(self.t0, self.t1);
        let frac = (t - self.t0) as f64 / (self.t1 - self.t0) as f64;
        self.plot_left() + frac * (self.plot_right() - self.plot_left())
    }

    /// The time (ms) at `x`, the inverse of [`x`](Self::x) (clamped to the
    /// picture's span).
    pub fn t_ms(&self, x: f64) -> u64 {
        let frac =
            ((x - self.plot_left()) / (self.plot_right() - self.plot_left())).clamp(0.0, 1.0);
        self.t0 + (frac * (self.t1 - self.t0) as f64).round() as u64
    }

    /// The baseline of the title.
    pub(crate) fn title_y(&self) -> f64 {
        MARGIN + 12.0
    }

    /// The top of the label rows.
    fn labels_top(&self) -> f64 {
        MARGIN + if self.title { TITLE_H } else { 0.0 }
    }

    /// The baseline of label row `row` (0 is the top one).
    pub(crate) fn label_y(&self, row: usize) -> f64 {
        self.labels_top() + (row as f64 + 1.0) * LABEL_ROW_H - 3.0
    }

    /// The top of the first lane (markers hang above it).
    pub fn lanes_top(&self) -> f64 {
        self.labels_top() + self.label_rows as f64 * LABEL_ROW_H + 8.0
    }

    /// The bottom of the last lane.
    pub fn lanes_bottom(&self) -> f64 {
        self.lane_tops
            .last()
            .map_or(self.lanes_top(), |t| t + LANE_H)
    }

    /// Lane `index`'s top and bottom, if there is such a lane.
    pub fn lane(&self, index: usize) -> Option<(f64, f64)> {
        self.lane_tops.get(index).map(|&t| (t, t + LANE_H))
    }

    /// The calls chart's top and bottom (its zero line).
    pub fn chart(&self) -> (f64, f64) {
        let top = self.lanes_bottom() + CHART_GAP;
        (top, top + CHART_H)
    }

    /// The time axis's line.
    pub(crate) fn axis_y(&self) -> f64 {
        self.chart().1 + 2.0
    }

    /// The top of the legend row.
    pub(crate) fn legend_y(&self) -> f64 {
        self.axis_y() + AXIS_H
    }

    /// The time axis's ticks: every [`nice_step`] over the span, at most
    /// one every 70 px.
    pub fn ticks(&self) -> Vec<u64> {
        let room = ((self.plot_right() - self.plot_left()) / 70.0)
            .floor()
            .max(1.0) as u64;
        let step = nice_step(self.t1 - self.t0, room);
        let first = self.t0.div_ceil(step) * step;
        (0..)
            .map(|i| first + i * step)
            .take_while(|&t| t <= self.t1)
            .collect()
    }
}

/// The smallest step of 1, 2 or 5 times a power of ten (ms, at least 1)
/// that cuts `span_ms` into at most `max_ticks` steps.
pub fn nice_step(span_ms: u64, max_ticks: u64) -> u64 {
    let max_ticks = max_ticks.max(1);
    let mut power = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = m * power;
            if span_ms.div_ceil(step) <= max_ticks {
                return step;
            }
        }
        match power.checked_mul(10) {
            Some(p) => power = p,
            None => return u64::MAX,
        }
    }
}

/// Puts labels with the given horizontal extents (start, end x, in the
/// order given) in rows, each in the first row where it overlaps no label
/// already placed (2 px apart), with at most `max_rows` rows. Returns each
/// label's row (`None`: no room) and the number of rows used.
pub fn label_rows(extents: &[(f64, f64)], max_rows: usize) -> (Vec<Option<usize>>, usize) {
    let mut order: Vec<usize> = (0..extents.len()).collect();
    order.sort_by(|&a, &b| extents[a].0.total_cmp(&extents[b].0));
    // The right end of the last label placed in each row.
    let mut ends: Vec<f64> = Vec::new();
    let mut rows = vec![None; extents.len()];
    for i in order {
        let (start, end) = extents[i];
        let free = ends.iter().position(|&e| e + 2.0 <= start);
        let row = match free {
            Some(r) => r,
            None if ends.len() < max_rows => {
                ends.push(f64::NEG_INFINITY);
                ends.len() - 1
            }
            None => continue,
        };
        ends[row] = end;
        rows[i] = Some(row);
    }
    (rows, ends.len())
}

/// Where a label for an event at `x` goes: starting at `x`, or ending at
/// `right` when it would run past it (never before `left`).
pub(crate) fn label_extent(x: f64, width: f64, left: f64, right: f64) -> (f64, f64) {
    let start = if x + width > right { right - width } else { x };
    let start = start.max(left);
    (start, start + width)
}

//! The read-only dashboard of the reference server: per app, its releases
//! with their rollout state and what machines reported of them, adoption
//! over time as a chart, and failures by error code. One self-contained
//! HTML page (inline CSS and SVG, no script, nothing fetched from
//! elsewhere) and the same figures as JSON.
//!
//! Everything shown that clients sent (app ids, versions) is escaped:
//! the event store holds whatever any client posted.

use std::fmt::Write as _;

use serde::Serialize;

/// What the dashboard shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Dashboard {
    /// When the figures were read (RFC 3339).
    pub generated: String,
    /// The window the figures cover, in seconds back from `generated`.
    pub window_seconds: i64,
    /// Every app published or reported, by id.
    pub apps: Vec<AppPanel>,
}

/// One app.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AppPanel {
    /// The app id (as published, else as reported).
    pub app: String,
    /// Its versions, newest first.
    pub releases: Vec<ReleaseRow>,
    /// Machines reporting each version, per time step, oldest first.
    pub adoption: Vec<Series>,
    /// Failed installs and updates by version and error code.
    pub failures: Vec<FailureRow>,
}

/// One version of an app.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReleaseRow {
    /// The version.
    pub version: String,
    /// Whether the signed metadata lists it (a version only reported by
    /// clients is not).
    pub published: bool,
    /// Its channel (empty: the default one).
    pub channel: String,
    /// Its rollout: `everyone`, `25%`, `paused at 25%`, `pulled`.
    pub rollout: String,
    /// Distinct machines seen on it in the window.
    pub machines: u64,
    /// Successful installs of it.
    pub installs: u64,
    /// Successful updates to it.
    pub updates: u64,
    /// Failed installs and updates to it.
    pub failures: u64,
}

/// One line of the adoption chart.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    /// The version.
    pub version: String,
    /// (start of the time step in Unix seconds, machines).
    pub points: Vec<(i64, u64)>,
}

/// Failures of one kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FailureRow {
    /// The version being installed.
    pub version: String,
    /// Omaha `errorcat`.
    pub category: i64,
    /// Omaha `errorcode`.
    pub code: i64,
    /// What the code means, when upkeep's client reports it.
    pub meaning: String,
    /// How many.
    pub count: u64,
}

/// Escapes text for HTML element content and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Line colours of the chart, one per version in order.
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}\
table{border-collapse:collapse;margin:.5em 0}\
th,td{border:1px solid #ccc;padding:.3em .7em;text-align:left}\
td.n{text-align:right}th{background:#f3f3f3}\
.muted{color:#777}.pulled{color:#b00}.paused{color:#a60}\
svg{border:1px solid #ccc;background:#fff}";

/// The page.
pub fn render(d: &Dashboard) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>upkeep: rollouts</title><style>{STYLE}</style></head><body>\n\
         <h1>upkeep: releases and rollouts</h1>\n\
         <p class=\"muted\" id=\"generated\">figures of the last {} as of {}</p>\n",
        describe_window(d.window_seconds),
        escape(&d.generated)
    );
    if d.apps.is_empty() {
        h.push_str(
            "<p id=\"empty\">No releases are published and no machine has reported yet.</p>\n",
        );
    }
    for (i, app) in d.apps.iter().enumerate() {
        render_app(&mut h, i, app);
    }
    h.push_str("</body></html>\n");
    h
}

fn describe_window(seconds: i64) -> String {
    match seconds {
        s if s % 86_400 == 0 && s >= 86_400 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 && s >= 3600 => format!("{} hours", s / 3600),
        s => format!("{s} seconds"),
    }
}

fn render_app(h: &mut String, i: usize, app: &AppPanel) {
    let _ = write!(
        h,
        "<section class=\"app\" id=\"app-{i}\" data-app=\"{id}\">\n<h2>{id}</h2>\n\
         <table class=\"releases\"><tr><th>version</th><th>channel</th><th>rollout</th>\
         <th>machines</th><th>installs</th><th>updates</th><th>failures</th></tr>\n",
        id = escape(&app.app)
    );
    for r in &app.releases {
        let class = if r.rollout == "pulled" {
            " class=\"pulled\""
        } else if r.rollout.starts_with("paused") {
            " class=\"paused\""
        } else {
            ""
        };
        let version = if r.published {
            escape(&r.version)
        } else {
            format!(
                "{} <span class=\"muted\">(not published)</span>",
                escape(&r.version)
            )
        };
        let channel = if r.channel.is_empty() {
            "<span class=\"muted\">default</span>".to_owned()
        } else {
            escape(&r.channel)
        };
        let _ = writeln!(
            h,
            "<tr data-version=\"{v}\"><td>{version}</td><td>{channel}</td><td{class}>{rollout}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            r.machines,
            r.installs,
            r.updates,
            r.failures,
            v = escape(&r.version),
            rollout = escape(&r.rollout),
        );
    }
    h.push_str("</table>\n");
    h.push_str("<h3>Adoption</h3>\n");
    render_chart(h, &app.adoption);
    h.push_str("<h3>Failures</h3>\n");
    if app.failures.is_empty() {
        h.push_str("<p class=\"muted no-failures\">No failed install or update reported.</p>\n");
    } else {
        h.push_str(
            "<table class=\"failures\"><tr><th>version</th><th>errorcat</th><th>errorcode</th>\
             <th>meaning</th><th>count</th></tr>\n",
        );
        for f in &app.failures {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td>\
                 <td class=\"n\">{}</td></tr>",
                escape(&f.version),
                f.category,
                f.code,
                escape(&f.meaning),
                f.count
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
}

/// Width and height of the chart, and its margins.
const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 50.0;
const RIGHT: f64 = 130.0;
const TOP: f64 = 15.0;
const BOTTOM: f64 = 35.0;

fn render_chart(h: &mut String, series: &[Series]) {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut t0, mut t1, mut max) = (i64::MAX, i64::MIN, 0u64);
    for &(t, n) in points {
        t0 = t0.min(t);
        t1 = t1.max(t);
        max = max.max(n);
    }
    if t0 > t1 {
        h.push_str("<p class=\"muted no-adoption\">No machine has reported in the window.</p>\n");
        return;
    }
    let span = (t1 - t0).max(1) as f64;
    let top = nice_ceiling(max);
    let x = |t: i64| LEFT + (t - t0) as f64 / span * (W - LEFT - RIGHT);
    let y = |n: u64| TOP + (1.0 - n as f64 / top as f64) * (H - TOP - BOTTOM);
    let _ = writeln!(
        h,
        "<svg class=\"adoption\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         role=\"img\" aria-label=\"machines per version over time\">"
    );
    for k in 0..=4u64 {
        let n = top * k / 4;
        let _ = writeln!(
            h,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{n}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y(n) + 4.0,
            yy = y(n)
        );
    }
    for (t, anchor) in [(t0, "start"), (t1, "end")] {
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"{anchor}\">{}</text>",
            x(t),
            H - 12.0,
            escape(&clock(t))
        );
    }
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(t, n)| format!("{:.1},{:.1}", x(t), y(n)))
            .collect();
        let _ = writeln!(
            h,
            "<polyline class=\"series\" data-version=\"{v}\" fill=\"none\" stroke=\"{colour}\" \
             stroke-width=\"2.5\" points=\"{}\"/>",
            path.join(" "),
            v = escape(&s.version)
        );
        for &(t, n) in &s.points {
            let _ = writeln!(
                h,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                x(t),
                y(n)
            );
        }
        let ly = TOP + 18.0 * i as f64 + 8.0;
        let _ = writeln!(
            h,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
             <text class=\"legend\" x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            W - RIGHT + 12.0,
            ly - 10.0,
            W - RIGHT + 30.0,
            ly,
            escape(&s.version)
        );
    }
    h.push_str("</svg>\n");
}

/// The smallest of 1, 2, 5 × 10^k at or above `n` (at least 1).
fn nice_ceiling(n: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= n.max(1) {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time.
fn clock(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t).map_or_else(
        |_| t.to_string(),
        |d| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}",
                d.year(),
                u8::from(d.month()),
                d.day(),
                d.hour(),
                d.minute()
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dashboard {
        Dashboard {
            generated: "2026-12-03T12:00:00Z".into(),
            window_seconds: 7 * 86_400,
            apps: vec![AppPanel {
                app: "org.example.<app>".into(),
                releases: vec![
                    ReleaseRow {
                        version: "2.0".into(),
                        published: true,
                        channel: String::new(),
                        rollout: "paused at 25%".into(),
                        machines: 3,
                        installs: 0,
                        updates: 3,
                        failures: 1,
                    },
                    ReleaseRow {
                        version: "\"1.0\"<script>".into(),
                        published: false,
                        rollout: "everyone".into(),
                        machines: 7,
                        ..ReleaseRow::default()
                    },
                ],
                adoption: vec![
                    Series {
                        version: "1.0".into(),
                        points: vec![(1_700_000_000, 7), (1_700_003_600, 4)],
                    },
                    Series {
                        version: "2.0".into(),
                        points: vec![(1_700_003_600, 3)],
                    },
                ],
                failures: vec![FailureRow {
                    version: "2.0".into(),
                    category: 1,
                    code: 6,
                    meaning: "hash mismatch".into(),
                    count: 1,
                }],
            }],
        }
    }

    #[test]
    fn client_controlled_text_is_escaped() {
        let page = render(&sample());
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<app>"));
        assert!(page.contains("org.example.&lt;app&gt;"));
        assert!(page.contains("&quot;1.0&quot;&lt;script&gt;"));
        assert_eq!(escape("a&b'c"), "a&amp;b&#39;c");
    }

    #[test]
    fn the_page_has_the_releases_the_chart_and_the_failures() {
        let page = render(&sample());
        assert!(page.contains("figures of the last 7 days as of 2026-12-03T12:00:00Z"));
        assert!(page.contains("<td class=\"paused\">paused at 25%</td>"));
        assert!(page.contains("(not published)"));
        assert_eq!(page.matches("<polyline class=\"series\"").count(), 2);
        assert_eq!(page.matches("<circle ").count(), 3);
        assert!(
            page.contains("2023-11-14 22:13"),
            "the first time step is labelled"
        );
        assert!(page.contains("<td>hash mismatch</td>"));
        // Well formed enough for a browser: every section and table closes.
        assert_eq!(
            page.matches("<table").count(),
            page.matches("</table>").count()
        );
        assert_eq!(page.matches("<svg").count(), page.matches("</svg>").count());
    }

    #[test]
    fn an_empty_store_says_so() {
        let page = render(&Dashboard::default());
        assert!(page.contains("id=\"empty\""));
        let mut d = sample();
        d.apps[0].adoption.clear();
        d.apps[0].failures.clear();
        let page = render(&d);
        assert!(page.contains("no-adoption"));
        assert!(page.contains("no-failures"));
    }

    #[test]
    fn the_scale_rounds_up_to_a_readable_figure() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(1), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(4_000), 5_000);
        assert_eq!(nice_ceiling(u64::MAX), u64::MAX);
    }
}

//! `upkeep repo stats`: per app and version, the machines seen, installs,
//! updates and failures by error code, from the event store.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Args;
use upkeep_server::EventsUrl;
use upkeep_server::events_url::open_store;
use upkeep_server::stats::{StatsQuery, VersionStats, parse_duration};

/// Options of `upkeep repo stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The repository directory.
    dir: PathBuf,
    /// Only this app id (case-insensitive).
    app: Option<String>,
    /// Only what arrived in this last period: a whole number and s, m, h,
    /// d or w (24h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    since: Option<i64>,
    /// The event store: postgres://USER@HOST:PORT/DATABASE or sqlite:PATH
    /// (default: the repository's events.sqlite).
    #[arg(long, value_name = "URL")]
    events: Option<EventsUrl>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `upkeep repo stats`.
pub fn run(a: StatsArgs) -> Result<()> {
    let repo = crate::cmd_repo::open(&a.dir)?;
    let store = open_store(a.events.as_ref(), &repo).context("opening the event store")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let query = StatsQuery {
        app: a.app,
        since: a
            .since
            .map(|d| i64::try_from(now).unwrap_or(i64::MAX).saturating_sub(d)),
    };
    let stats = store.stats(&query).context("computing statistics")?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&stats)?)?;
    } else {
        out.write_all(table(&stats).as_bytes())?;
    }
    Ok(())
}

const HEADER: [&str; 6] = [
    "app", "version", "machines", "installs", "updates", "failures",
];

/// The human table: one line per app version, then one indented line per
/// error code of its failures.
fn table(stats: &[VersionStats]) -> String {
    if stats.is_empty() {
        return "no pings or events recorded\n".to_owned();
    }
    let rows: Vec<[String; 6]> = stats
        .iter()
        .map(|s| {
            [
                s.app_id.clone(),
                s.version.clone(),
                s.machines_seen.to_string(),
                s.installs.to_string(),
                s.updates.to_string(),
                s.failures.iter().map(|f| f.count).sum::<u64>().to_string(),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; 6]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
            w5 = widths[5],
        );
    };
    line(&mut out, HEADER);
    for (s, row) in stats.iter().zip(&rows) {
        line(&mut out, row.each_ref().map(String::as_str));
        for f in &s.failures {
            let code = |c: Option<i64>| c.map_or_else(|| "-".to_owned(), |c| c.to_string());
            let _ = writeln!(
                out,
                "    errorcat {} errorcode {}: {}",
                code(f.error_category),
                code(f.error_code),
                f.count
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_server::stats::FailureCount;

    #[test]
    fn the_table_lists_versions_and_their_failures() {
        let stats = vec![
            VersionStats {
                app_id: "{app-a}".into(),
                version: "2.0".into(),
                machines_seen: 120,
                installs: 3,
                updates: 110,
                failures: vec![
                    FailureCount {
                        error_category: Some(1),
                        error_code: Some(-2),
                        count: 4,
                    },
                    FailureCount {
                        error_category: None,
                        error_code: None,
                        count: 1,
                    },
                ],
            },
            VersionStats {
                app_id: "other".into(),
                version: "3".into(),
                machines_seen: 7,
                ..VersionStats::default()
            },
        ];
        assert_eq!(
            table(&stats),
            "app      version  machines  installs  updates  failures\n\
             {app-a}  2.0           120         3      110         5\n    \
             errorcat 1 errorcode -2: 4\n    \
             errorcat - errorcode -: 1\n\
             other    3               7         0        0         0\n"
        );
        assert_eq!(table(&[]), "no pings or events recorded\n");
    }
}

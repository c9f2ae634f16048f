//! The dashboard's figures, read from the releases, the rollout state and
//! the event store; and who may see them.

use std::collections::BTreeMap;

use crate::dashboard::{AppPanel, Dashboard, FailureRow, ReleaseRow, Series};
use crate::error::ServerError;
use crate::events::EventStore;
use crate::stats::StatsQuery;
use crate::view::View;

/// The window the dashboard covers by default: 7 days.
pub const DEFAULT_WINDOW: i64 = 7 * 86_400;

/// The time step of the adoption chart for a window: about 28 steps.
fn step_of(window: i64) -> i64 {
    match window {
        w if w <= 6 * 3600 => 900,
        w if w <= 2 * 86_400 => 3600,
        w if w <= 14 * 86_400 => 6 * 3600,
        _ => 86_400,
    }
}

/// The figures of the `window` seconds before `now` (Unix seconds).
pub fn build(
    view: &View,
    store: &dyn EventStore,
    window: i64,
    now: i64,
) -> Result<Dashboard, ServerError> {
    let since = now - window;
    let stats = store.stats(&StatsQuery {
        app: None,
        since: Some(since),
    })?;
    let mut apps: BTreeMap<String, AppPanel> = BTreeMap::new();
    let panel = |apps: &mut BTreeMap<String, AppPanel>, id: &str| {
        apps.entry(id.to_ascii_lowercase())
            .or_insert_with(|| AppPanel {
                app: id.to_owned(),
                ..AppPanel::default()
            })
            .releases
            .len()
    };
    for r in view.catalog.releases() {
        panel(&mut apps, &r.app);
        let rollout = view
            .rollouts
            .stage(&r.app, &r.version)
            .map_or_else(|| "everyone".to_owned(), |s| s.describe());
        if let Some(p) = apps.get_mut(&r.app.to_ascii_lowercase()) {
            p.releases.push(ReleaseRow {
                version: r.version.to_string(),
                published: true,
                channel: r.channel.clone(),
                rollout,
                ..ReleaseRow::default()
            });
        }
    }
    for s in &stats {
        panel(&mut apps, &s.app_id);
        let Some(p) = apps.get_mut(&s.app_id.to_ascii_lowercase()) else {
            continue;
        };
        let failures: u64 = s.failures.iter().map(|f| f.count).sum();
        match p.releases.iter_mut().find(|r| r.version == s.version) {
            Some(row) => {
                row.machines = s.machines_seen;
                row.installs = s.installs;
                row.updates = s.updates;
                row.failures = failures;
            }
            None => p.releases.push(ReleaseRow {
                version: s.version.clone(),
                published: false,
                rollout: "not offered".into(),
                machines: s.machines_seen,
                installs: s.installs,
                updates: s.updates,
                failures,
                ..ReleaseRow::default()
            }),
        }
        for f in &s.failures {
            let (category, code) = (f.error_category.unwrap_or(0), f.error_code.unwrap_or(0));
            p.failures.push(FailureRow {
                version: s.version.clone(),
                category,
                code,
                meaning: upkeep_core::omaha::codes::meaning(category, code)
                    .unwrap_or("")
                    .to_owned(),
                count: f.count,
            });
        }
    }
    let step = step_of(window);
    for (id, p) in &mut apps {
        p.releases
            .sort_by(|a, b| newest_first(&a.version, &b.version));
        let mut series: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
        for point in store.adoption(id, step, Some(since))? {
            series
                .entry(point.version)
                .or_default()
                .push((point.bucket_start, point.machines));
        }
        p.adoption = series
            .into_iter()
            .map(|(version, points)| Series { version, points })
            .collect();
        p.adoption
            .sort_by(|a, b| newest_first(&b.version, &a.version));
    }
    let generated = time::OffsetDateTime::from_unix_timestamp(now)
        .map(upkeep_core::tuf::metadata::format_time)
        .unwrap_or_else(|_| now.to_string());
    Ok(Dashboard {
        generated,
        window_seconds: window,
        apps: apps.into_values().collect(),
    })
}

/// Versions newest first; text that is not a version last.
fn newest_first(a: &str, b: &str) -> std::cmp::Ordering {
    use upkeep_core::version::Version;
    match (a.parse::<Version>(), b.parse::<Version>()) {
        (Ok(x), Ok(y)) => y.cmp(&x),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Who may see the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can connect (the server listens on loopback only).
    Loopback,
    /// Whoever presents this token.
    Token(String),
    /// No one: the server listens beyond loopback and no token is set.
    Closed,
}

/// Why a dashboard request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No token or a wrong one.
    #[error("the dashboard needs its access token (Authorization: Bearer TOKEN, or ?token=TOKEN)")]
    Token,
    /// The dashboard is off.
    #[error(
        "the dashboard is served beyond loopback only with an access token \
         (repo serve --dashboard-token-file FILE)"
    )]
    Closed,
}

impl Access {
    /// The access for a server listening on an address that is (or is not)
    /// loopback, with or without a token.
    pub fn new(loopback: bool, token: Option<String>) -> Access {
        match token {
            Some(t) => Access::Token(t),
            None if loopback => Access::Loopback,
            None => Access::Closed,
        }
    }

    /// Admits a request presenting `presented` (or nothing).
    pub fn admit(&self, presented: Option<&str>) -> Result<(), Refusal> {
        match self {
            Access::Loopback => Ok(()),
            Access::Closed => Err(Refusal::Closed),
            Access::Token(t) => match presented {
                Some(p) if same(p.as_bytes(), t.as_bytes()) => Ok(()),
                _ => Err(Refusal::Token),
            },
        }
    }
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_open_a_token_is_required_elsewhere() {
        assert_eq!(Access::new(true, None).admit(None), Ok(()));
        assert_eq!(
            Access::new(false, None).admit(Some("x")),
            Err(Refusal::Closed)
        );
        let t = Access::new(false, Some("s3cret".into()));
        assert_eq!(t.admit(Some("s3cret")), Ok(()));
        assert_eq!(t.admit(Some("s3creT")), Err(Refusal::Token));
        assert_eq!(t.admit(Some("s3cre")), Err(Refusal::Token));
        assert_eq!(t.admit(None), Err(Refusal::Token));
        // A token set for a loopback server is required too.
        assert_eq!(
            Access::new(true, Some("a".into())).admit(None),
            Err(Refusal::Token)
        );
    }

    #[test]
    fn versions_sort_newest_first() {
        let mut v = vec!["1.0", "10.0", "2.0", "junk"];
        v.sort_by(|a, b| newest_first(a, b));
        assert_eq!(v, ["10.0", "2.0", "1.0", "junk"]);
        assert_eq!(step_of(86_400), 3600);
        assert_eq!(step_of(DEFAULT_WINDOW), 6 * 3600);
    }
}

//! Rollout statistics over the event store: per app and version, the
//! machines seen, the installs and updates that succeeded and the failures
//! by error code; and the adoption of versions over time.
//!
//! The SQL backends compute them in the database with the queries of
//! [`Dialect`] (one text for SQLite and PostgreSQL, only the time
//! expression and the parameter sign differ) and merge the rows with
//! [`StatsBuilder`]; [`stats_of`] and [`adoption_of`] compute the same
//! numbers from records in memory (what [`EventStore`](crate::EventStore)
//! does for a store without SQL).
//!
//! Definitions, the same everywhere:
//!
//! * A **machine** is the identity the client sends (`machineid`, else
//!   `userid`, of the app or the request: [`EventRecord::machine`]); a
//!   request without one counts as the machine `session:<sessionid>`, so
//!   for such clients `machines_seen` counts update sessions, an upper
//!   bound of the machines.
//! * **Machines seen** at a version: distinct machines whose requests
//!   carried that app version (pings and events).
//! * **Installs** / **updates**: events of type 2 / 3 with a success result
//!   (1, 2 or 3), counted for the version they went to (`nextversion`,
//!   else the version the request carried).
//! * **Failures**: events of type 2 or 3 with an error result (0, 5, 6, 8,
//!   10), counted the same way, by error category and code.
//! * App ids are compared and reported in lower case; `since` is in Unix
//!   seconds and keeps the records received at or after it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::ServerError;
use crate::events::EventRecord;

/// `eventtype` of an install.
pub const EVENT_INSTALL: i64 = 2;
/// `eventtype` of an update.
pub const EVENT_UPDATE: i64 = 3;
/// `eventresult` values that mean success.
pub const SUCCESS_RESULTS: [i64; 3] = [1, 2, 3];
/// `eventresult` values that mean failure (error, MSI installer, other
/// installer, system error, hand-off error).
pub const ERROR_RESULTS: [i64; 5] = [0, 5, 6, 8, 10];

/// Which records statistics cover.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsQuery {
    /// Only this app (case-insensitive); all apps when `None`.
    pub app: Option<String>,
    /// Only records received at or after this instant, in Unix seconds.
    pub since: Option<i64>,
}

/// The numbers of one app version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionStats {
    /// The app id, in lower case.
    pub app_id: String,
    /// The version.
    pub version: String,
    /// Distinct machines whose requests carried this version.
    pub machines_seen: u64,
    /// Successful installs of this version.
    pub installs: u64,
    /// Successful updates to this version.
    pub updates: u64,
    /// Failed installs of and updates to this version, most frequent
    /// first.
    pub failures: Vec<FailureCount>,
}

/// How often one error was reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCount {
    /// `errorcat`, when sent.
    pub error_category: Option<i64>,
    /// `errorcode`, when sent.
    pub error_code: Option<i64>,
    /// The events with this category and code.
    pub count: u64,
}

/// The machines that reported one version in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptionPoint {
    /// The bucket's start, in Unix seconds (a multiple of the bucket
    /// size).
    pub bucket_start: i64,
    /// The version.
    pub version: String,
    /// Distinct machines whose requests carried it in that bucket.
    pub machines: u64,
}

/// The machine a record counts for (see the module documentation).
pub fn machine_key(record: &EventRecord) -> String {
    match &record.machine {
        Some(m) => m.clone(),
        None => format!("session:{}", record.session_id),
    }
}

/// The SQL spelling of one database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    /// `received_at` as whole Unix seconds (NULL or an error when
    /// unreadable).
    epoch: &'static str,
    /// What precedes a parameter's number.
    param: char,
}

/// SQLite: `unixepoch`, `?N`.
pub(crate) const SQLITE: Dialect = Dialect {
    epoch: "unixepoch(received_at)",
    param: '?',
};

/// PostgreSQL: `extract(epoch ...)`, `$N`.
pub(crate) const POSTGRES: Dialect = Dialect {
    epoch: "CAST(floor(extract(epoch FROM CAST(received_at AS timestamptz))) AS BIGINT)",
    param: '$',
};

/// The machine of a row, in SQL.
const WHO: &str = "COALESCE(machine, 'session:' || session_id)";
/// The version an install or update event counts for, in SQL.
const TARGET: &str = "COALESCE(next_version, app_version)";

impl Dialect {
    /// Parameters ?1 (app or NULL) and ?2 (since or NULL).
    fn filter(&self) -> String {
        format!(
            "(CAST(?1 AS TEXT) IS NULL OR lower(app_id) = lower(CAST(?1 AS TEXT)))
             AND (CAST(?2 AS BIGINT) IS NULL OR {epoch} >= CAST(?2 AS BIGINT))",
            epoch = self.epoch
        )
    }

    fn finish(&self, sql: String) -> String {
        sql.replace('?', &self.param.to_string())
    }

    /// Rows (app, version, machines). Parameters: app, since.
    pub(crate) fn seen_sql(&self) -> String {
        self.finish(format!(
            "SELECT lower(app_id), app_version, COUNT(DISTINCT {WHO})
             FROM events WHERE {filter}
             GROUP BY lower(app_id), app_version",
            filter = self.filter()
        ))
    }

    /// Rows (app, version, installs, updates). Parameters: app, since.
    pub(crate) fn outcomes_sql(&self) -> String {
        self.finish(format!(
            "SELECT lower(app_id), {TARGET},
                    SUM(CASE WHEN event_type = {EVENT_INSTALL} THEN 1 ELSE 0 END),
                    SUM(CASE WHEN event_type = {EVENT_UPDATE} THEN 1 ELSE 0 END)
             FROM events
             WHERE {filter} AND kind = 'event'
               AND event_type IN ({EVENT_INSTALL}, {EVENT_UPDATE})
               AND event_result IN ({results})
             GROUP BY lower(app_id), {TARGET}",
            filter = self.filter(),
            results = list(&SUCCESS_RESULTS),
        ))
    }

    /// Rows (app, version, category, code, count). Parameters: app, since.
    pub(crate) fn failures_sql(&self) -> String {
        self.finish(format!(
            "SELECT lower(app_id), {TARGET}, error_category, error_code, COUNT(*)
             FROM events
             WHERE {filter} AND kind = 'event'
               AND event_type IN ({EVENT_INSTALL}, {EVENT_UPDATE})
               AND event_result IN ({results})
             GROUP BY lower(app_id), {TARGET}, error_category, error_code",
            filter = self.filter(),
            results = list(&ERROR_RESULTS),
        ))
    }

    /// Rows (bucket start, version, machines). Parameters: app, since,
    /// bucket seconds.
    pub(crate) fn adoption_sql(&self) -> String {
        self.finish(format!(
            "SELECT b, app_version, COUNT(DISTINCT w) FROM (
                 SELECT ({epoch} / CAST(?3 AS BIGINT)) * CAST(?3 AS BIGINT) AS b,
                        app_version, {WHO} AS w
                 FROM events WHERE {filter} AND {epoch} IS NOT NULL
             ) AS t
             GROUP BY b, app_version",
            epoch = self.epoch,
            filter = self.filter(),
        ))
    }
}

fn list(values: &[i64]) -> String {
    values
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Collects the rows of the three statistics queries into
/// [`VersionStats`], sorted by app and version.
#[derive(Debug, Default)]
pub(crate) struct StatsBuilder {
    rows: BTreeMap<(String, String), VersionStats>,
}

impl StatsBuilder {
    fn entry(&mut self, app: String, version: String) -> &mut VersionStats {
        self.rows
            .entry((app.clone(), version.clone()))
            .or_insert_with(|| VersionStats {
                app_id: app,
                version,
                ..VersionStats::default()
            })
    }

    /// A row of [`Dialect::seen_sql`].
    pub(crate) fn seen(&mut self, app: String, version: String, machines: i64) {
        self.entry(app, version).machines_seen += count(machines);
    }

    /// A row of [`Dialect::outcomes_sql`].
    pub(crate) fn outcomes(&mut self, app: String, version: String, installs: i64, updates: i64) {
        let e = self.entry(app, version);
        e.installs += count(installs);
        e.updates += count(updates);
    }

    /// A row of [`Dialect::failures_sql`].
    pub(crate) fn failure(
        &mut self,
        app: String,
        version: String,
        error_category: Option<i64>,
        error_code: Option<i64>,
        n: i64,
    ) {
        self.entry(app, version).failures.push(FailureCount {
            error_category,
            error_code,
            count: count(n),
        });
    }

    /// The statistics, failures most frequent first (then by category and
    /// code).
    pub(crate) fn finish(self) -> Vec<VersionStats> {
        let mut out: Vec<_> = self.rows.into_values().collect();
        for v in &mut out {
            v.failures.sort_by(|a, b| {
                b.count
                    .cmp(&a.count)
                    .then(a.error_category.cmp(&b.error_category))
                    .then(a.error_code.cmp(&b.error_code))
            });
        }
        out
    }
}

/// Sorts adoption points by bucket, then version.
pub(crate) fn sorted(mut points: Vec<AdoptionPoint>) -> Vec<AdoptionPoint> {
    points.sort_by(|a, b| {
        a.bucket_start
            .cmp(&b.bucket_start)
            .then_with(|| a.version.cmp(&b.version))
    });
    points
}

/// Refuses a bucket that is not a positive number of seconds.
pub(crate) fn check_bucket(bucket_seconds: i64) -> Result<(), ServerError> {
    if bucket_seconds <= 0 {
        return Err(ServerError::InvalidBucket {
            seconds: bucket_seconds,
        });
    }
    Ok(())
}

/// Seconds in `text`: a whole number and a unit, `s`, `m`, `h`, `d` or
/// `w` (`24h`, `7d`).
pub fn parse_duration(text: &str) -> Result<i64, ServerError> {
    let bad = || ServerError::InvalidDuration {
        text: text.to_owned(),
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = t.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).filter(|s| *s > 0).ok_or_else(bad)
}

fn epoch_of(record: &EventRecord) -> Option<i64> {
    upkeep_core::tuf::metadata::parse_time(&record.received_at)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn selected<'a>(
    records: &'a [EventRecord],
    app: Option<&'a str>,
    since: Option<i64>,
) -> impl Iterator<Item = &'a EventRecord> {
    records.iter().filter(move |r| {
        app.is_none_or(|a| r.app_id.eq_ignore_ascii_case(a))
            && since.is_none_or(|s| epoch_of(r).is_some_and(|e| e >= s))
    })
}

fn is_outcome(r: &EventRecord, results: &[i64]) -> bool {
    r.kind == "event"
        && matches!(r.event_type, Some(EVENT_INSTALL | EVENT_UPDATE))
        && r.event_result.is_some_and(|x| results.contains(&x))
}

/// The statistics of `records`, computed in memory.
pub fn stats_of(records: &[EventRecord], query: &StatsQuery) -> Vec<VersionStats> {
    let mut machines: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut outcomes: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    let mut failures: BTreeMap<(String, String, Option<i64>, Option<i64>), i64> = BTreeMap::new();
    for r in selected(records, query.app.as_deref(), query.since) {
        let app = r.app_id.to_ascii_lowercase();
        machines
            .entry((app.clone(), r.app_version.clone()))
            .or_default()
            .insert(machine_key(r));
        let target = r
            .next_version
            .clone()
            .unwrap_or_else(|| r.app_version.clone());
        if is_outcome(r, &SUCCESS_RESULTS) {
            let e = outcomes.entry((app, target)).or_default();
            if r.event_type == Some(EVENT_INSTALL) {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        } else if is_outcome(r, &ERROR_RESULTS) {
            *failures
                .entry((app, target, r.error_category, r.error_code))
                .or_default() += 1;
        }
    }
    let mut b = StatsBuilder::default();
    for ((app, version), who) in machines {
        b.seen(app, version, i64::try_from(who.len()).unwrap_or(i64::MAX));
    }
    for ((app, version), (installs, updates)) in outcomes {
        b.outcomes(app, version, installs, updates);
    }
    for ((app, version, cat, code), n) in failures {
        b.failure(app, version, cat, code, n);
    }
    b.finish()
}

/// The adoption of `app`'s versions in `records`, computed in memory.
pub fn adoption_of(
    records: &[EventRecord],
    app: &str,
    bucket_seconds: i64,
    since: Option<i64>,
) -> Result<Vec<AdoptionPoint>, ServerError> {
    check_bucket(bucket_seconds)?;
    let mut buckets: BTreeMap<(i64, String), BTreeSet<String>> = BTreeMap::new();
    for r in selected(records, Some(app), since) {
        if let Some(e) = epoch_of(r) {
            buckets
                .entry((e / bucket_seconds * bucket_seconds, r.app_version.clone()))
                .or_default()
                .insert(machine_key(r));
        }
    }
    Ok(sorted(
        buckets
            .into_iter()
            .map(|((bucket_start, version), who)| AdoptionPoint {
                bucket_start,
                version,
                machines: who.len() as u64,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_a_number_and_a_unit() {
        assert_eq!(parse_duration("24h").unwrap(), 86_400);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert_eq!(parse_duration("90m").unwrap(), 5_400);
        assert_eq!(parse_duration("30s").unwrap(), 30);
        assert_eq!(parse_duration("2w").unwrap(), 1_209_600);
        for bad in [
            "",
            "h",
            "24",
            "24x",
            "-1h",
            "0d",
            "1.5h",
            "99999999999999999w",
            "24 h",
        ] {
            assert!(
                matches!(
                    parse_duration(bad),
                    Err(ServerError::InvalidDuration { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn both_dialects_share_one_query_text() {
        let sqlite = SQLITE.failures_sql();
        let postgres = POSTGRES.failures_sql();
        assert!(sqlite.contains("?1") && sqlite.contains("?2") && !sqlite.contains('$'));
        assert!(postgres.contains("$1") && postgres.contains("$2") && !postgres.contains('?'));
        assert_eq!(
            sqlite.replace(SQLITE.epoch, "E").replace('?', "$"),
            postgres.replace(POSTGRES.epoch, "E")
        );
    }

    #[test]
    fn buckets_must_be_positive() {
        assert!(check_bucket(3600).is_ok());
        for bad in [0, -60] {
            assert!(matches!(
                check_bucket(bad),
                Err(ServerError::InvalidBucket { seconds }) if seconds == bad
            ));
        }
    }
}

//! The event store: pings and events that arrive in update requests.
//!
//! [`EventStore`] is the interface; [`SqliteEventStore`] is the embedded
//! backend (one SQLite file, write-ahead logging, so `upkeep repo events`
//! can read while servers write, and several server processes on one host
//! can share it); [`PostgresEventStore`](crate::PostgresEventStore)
//! (`events_postgres.rs`) is the shared one for a fleet of servers.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use upkeep_core::omaha::{Request, RequestApp};

use crate::error::ServerError;
use crate::stats::{self, AdoptionPoint, SQLITE, StatsBuilder, StatsQuery, VersionStats};

/// One ping or event as received.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// When the server received it (RFC 3339, UTC).
    pub received_at: String,
    /// `ping` or `event`.
    pub kind: String,
    /// The app id as sent.
    pub app_id: String,
    /// The app version the request carried.
    pub app_version: String,
    /// `eventtype` (events only).
    pub event_type: Option<i64>,
    /// `eventresult` (events only).
    pub event_result: Option<i64>,
    /// `errorcat`.
    pub error_category: Option<i64>,
    /// `errorcode`.
    pub error_code: Option<i64>,
    /// `extracode1`.
    pub extra_code1: Option<i64>,
    /// `previousversion`.
    pub previous_version: Option<String>,
    /// `nextversion`.
    pub next_version: Option<String>,
    /// The request's `sessionid`.
    pub session_id: String,
    /// The request's `requestid`.
    pub request_id: String,
    /// The protocol label the request carried (`3.0`, `3.1`, `4.0`; `3.0`
    /// also for Fuchsia's 3.1 JSON).
    pub protocol: String,
    /// Further fields: the ping's `active`, `a`, `r`, `ad`, `rd`; other
    /// event attributes.
    pub detail: serde_json::Value,
    /// The machine's identity, when the client sends one: the app's or
    /// the request's `machineid`, else its `userid` (see [`machine_of`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
}

/// The attributes that identify a machine, in order of preference.
const MACHINE_ATTRIBUTES: [&str; 2] = ["machineid", "userid"];

/// The identity the client sends for its machine: `machineid`, else
/// `userid`, of the app, else of the request (Omaha 3.0 XML sends them on
/// `<request>`); blank values count as none.
pub fn machine_of(request: &Request, app: &RequestApp) -> Option<String> {
    MACHINE_ATTRIBUTES.iter().find_map(|k| {
        [app.extra.get(*k), request.extra.get(*k)]
            .into_iter()
            .flatten()
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
            .map(str::to_owned)
    })
}

/// The pings and events of a request, stamped with `received_at`.
pub fn records_of(request: &Request, received_at: &str) -> Vec<EventRecord> {
    let mut out = Vec::new();
    for app in &request.apps {
        let base = EventRecord {
            received_at: received_at.to_owned(),
            kind: String::new(),
            app_id: app.appid.as_str().to_owned(),
            app_version: app.version.clone(),
            event_type: None,
            event_result: None,
            error_category: None,
            error_code: None,
            extra_code1: None,
            previous_version: None,
            next_version: None,
            session_id: request.sessionid.clone(),
            request_id: request.requestid.clone(),
            protocol: request.flavor.label(request.protocol).to_owned(),
            detail: serde_json::Value::Null,
            machine: machine_of(request, app),
        };
        // The last record of the app takes `base`; the others copy it.
        let mut left = usize::from(app.ping.is_some()) + app.events.len();
        let mut base = Some(base);
        let mut next = || {
            left = left.saturating_sub(1);
            if left == 0 { base.take() } else { base.clone() }.unwrap_or_default()
        };
        if let Some(ping) = &app.ping {
            out.push(EventRecord {
                kind: "ping".into(),
                detail: serde_json::to_value(ping).unwrap_or_default(),
                ..next()
            });
        }
        for e in &app.events {
            out.push(EventRecord {
                kind: "event".into(),
                event_type: Some(e.eventtype.code()),
                event_result: Some(e.eventresult.code()),
                error_category: e.errorcat.map(|c| c.code()),
                error_code: e.errorcode,
                extra_code1: e.extracode1,
                previous_version: e.previousversion.clone(),
                next_version: e.nextversion.clone(),
                detail: if e.extra.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::to_value(&e.extra).unwrap_or_default()
                },
                ..next()
            });
        }
    }
    out
}

/// Durable storage of received pings and events.
pub trait EventStore: Send + Sync {
    /// Stores `records` durably (all or none).
    fn record(&self, records: &[EventRecord]) -> Result<(), ServerError>;
    /// The stored records in arrival order, only those of `app`
    /// (case-insensitive) when given.
    fn list(&self, app: Option<&str>) -> Result<Vec<EventRecord>, ServerError>;
    /// Per app and version: machines seen, installs, updates, failures by
    /// error code (definitions in [`stats`]). This default computes them
    /// from [`list`](EventStore::list) in memory; the SQL stores compute
    /// them in the database.
    fn stats(&self, query: &StatsQuery) -> Result<Vec<VersionStats>, ServerError> {
        Ok(stats::stats_of(&self.list(query.app.as_deref())?, query))
    }
    /// Per time bucket of `bucket_seconds` (aligned on multiples of it,
    /// in Unix seconds) and version: the machines whose requests for
    /// `app` carried that version; only records received at or after
    /// `since` (Unix seconds) when given. Sorted by bucket, then version.
    fn adoption(
        &self,
        app: &str,
        bucket_seconds: i64,
        since: Option<i64>,
    ) -> Result<Vec<AdoptionPoint>, ServerError> {
        stats::adoption_of(&self.list(Some(app))?, app, bucket_seconds, since)
    }
}

/// The stored columns but `id`, in the order both SQL stores write and
/// read them.
pub(crate) const COLUMNS: &str = "received_at, kind, app_id, app_version, event_type, \
    event_result, error_category, error_code, extra_code1, previous_version, next_version, \
    session_id, request_id, protocol, detail, machine";

/// The embedded SQLite event store.
#[derive(Debug)]
pub struct SqliteEventStore {
    conn: Mutex<Connection>,
}

/// `id` is the rowid: rows are never deleted, so each new row's id is one
/// more than the largest and `ORDER BY id` is arrival order, without the
/// `sqlite_sequence` bookkeeping `AUTOINCREMENT` adds to every insert
/// (stores created with it keep it and behave the same).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id               INTEGER PRIMARY KEY,
    received_at      TEXT NOT NULL,
    kind             TEXT NOT NULL,
    app_id           TEXT NOT NULL,
    app_version      TEXT NOT NULL,
    event_type       INTEGER,
    event_result     INTEGER,
    error_category   INTEGER,
    error_code       INTEGER,
    extra_code1      INTEGER,
    previous_version TEXT,
    next_version     TEXT,
    session_id       TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    protocol         TEXT NOT NULL,
    detail           TEXT,
    machine          TEXT
);
CREATE INDEX IF NOT EXISTS events_by_app ON events (app_id COLLATE NOCASE);
";

/// Adds the `machine` column to a store created before it existed.
fn add_machine_column(conn: &Connection) -> Result<(), ServerError> {
    let has: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('events') WHERE name = 'machine'",
        [],
        |row| row.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE events ADD COLUMN machine TEXT")?;
    }
    Ok(())
}

impl SqliteEventStore {
    /// Opens (creating when needed) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteEventStore, ServerError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        add_machine_column(&conn)?;
        Ok(SqliteEventStore {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, ServerError> {
        self.conn
            .lock()
            .map_err(|_| ServerError::Store("a previous write panicked".into()))
    }
}

impl EventStore for SqliteEventStore {
    fn record(&self, records: &[EventRecord]) -> Result<(), ServerError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut conn = self.lock()?;
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(&format!(
                "INSERT INTO events ({COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))?;
            for r in records {
                let detail = (!r.detail.is_null()).then(|| r.detail.to_string());
                stmt.execute(params![
                    r.received_at,
                    r.kind,
                    r.app_id,
                    r.app_version,
                    r.event_type,
                    r.event_result,
                    r.error_category,
                    r.error_code,
                    r.extra_code1,
                    r.previous_version,
                    r.next_version,
                    r.session_id,
                    r.request_id,
                    r.protocol,
                    detail,
                    r.machine,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn list(&self, app: Option<&str>) -> Result<Vec<EventRecord>, ServerError> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM events
             WHERE ?1 IS NULL OR app_id = ?1 COLLATE NOCASE
             ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![app], |row| {
            let detail: Option<String> = row.get(14)?;
            Ok(EventRecord {
                received_at: row.get(0)?,
                kind: row.get(1)?,
                app_id: row.get(2)?,
                app_version: row.get(3)?,
                event_type: row.get(4)?,
                event_result: row.get(5)?,
                error_category: row.get(6)?,
                error_code: row.get(7)?,
                extra_code1: row.get(8)?,
                previous_version: row.get(9)?,
                next_version: row.get(10)?,
                session_id: row.get(11)?,
                request_id: row.get(12)?,
                protocol: row.get(13)?,
                detail: parse_detail(detail),
                machine: row.get(15)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn stats(&self, query: &StatsQuery) -> Result<Vec<VersionStats>, ServerError> {
        let conn = self.lock()?;
        let p = params![query.app, query.since];
        let mut b = StatsBuilder::default();
        let mut stmt = conn.prepare(&SQLITE.seen_sql())?;
        let mut rows = stmt.query(p)?;
        while let Some(r) = rows.next()? {
            b.seen(r.get(0)?, r.get(1)?, r.get(2)?);
        }
        let mut stmt = conn.prepare(&SQLITE.outcomes_sql())?;
        let mut rows = stmt.query(p)?;
        while let Some(r) = rows.next()? {
            b.outcomes(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        }
        let mut stmt = conn.prepare(&SQLITE.failures_sql())?;
        let mut rows = stmt.query(p)?;
        while let Some(r) = rows.next()? {
            b.failure(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        }
        Ok(b.finish())
    }

    fn adoption(
        &self,
        app: &str,
        bucket_seconds: i64,
        since: Option<i64>,
    ) -> Result<Vec<AdoptionPoint>, ServerError> {
        stats::check_bucket(bucket_seconds)?;
        let conn = self.lock()?;
        let mut stmt = conn.prepare(&SQLITE.adoption_sql())?;
        let rows = stmt.query_map(params![app, since, bucket_seconds], |r| {
            Ok(AdoptionPoint {
                bucket_start: r.get(0)?,
                version: r.get(1)?,
                machines: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
            })
        })?;
        Ok(stats::sorted(rows.collect::<Result<Vec<_>, _>>()?))
    }
}

/// The `detail` column as JSON (null when absent or unreadable).
pub(crate) fn parse_detail(detail: Option<String>) -> serde_json::Value {
    detail
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::omaha::{Protocol, parse_request};

    const REQUEST: &str = r#"{"request":{"protocol":"3.1","sessionid":"{s}","requestid":"{r}",
        "app":[{"appid":"{ABC}","version":"1.0","ping":{"r":1,"rd":6000},
                "event":[{"eventtype":3,"eventresult":0,"errorcat":1,"errorcode":-2,
                          "extracode1":7,"previousversion":"1.0","nextversion":"2.0"}]},
               {"appid":"other","version":"3"}]}}"#;

    #[test]
    fn pings_and_events_are_stored_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteEventStore::open(&dir.path().join("events.sqlite")).unwrap();
        let request = parse_request(REQUEST.as_bytes(), Some(Protocol::Json31)).unwrap();
        let records = records_of(&request, "2030-01-01T00:00:00Z");
        assert_eq!(records.len(), 2);
        store.record(&records).unwrap();
        // Reopened: the records are durable.
        drop(store);
        let store = SqliteEventStore::open(&dir.path().join("events.sqlite")).unwrap();
        let all = store.list(None).unwrap();
        assert_eq!(all, records);
        let event = &all[1];
        assert_eq!(event.kind, "event");
        assert_eq!(event.event_type, Some(3));
        assert_eq!(event.event_result, Some(0));
        assert_eq!(event.error_category, Some(1));
        assert_eq!(event.error_code, Some(-2));
        assert_eq!(event.extra_code1, Some(7));
        assert_eq!(event.next_version.as_deref(), Some("2.0"));
        assert_eq!(event.session_id, "{s}");
        assert_eq!(all[0].kind, "ping");
        assert_eq!(all[0].detail["rd"], 6000);
        assert_eq!(store.list(Some("{abc}")).unwrap().len(), 2);
        assert!(store.list(Some("other")).unwrap().is_empty());
    }

    #[test]
    fn the_machine_is_the_identity_the_client_sends() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
            <request protocol="3.0" sessionid="{s}" requestid="{r}" userid="{U}">
              <app appid="{A}" version="1.0"><ping r="1"/></app>
              <app appid="{B}" version="2.0" machineid=" {M} "><ping r="1"/></app>
            </request>"#;
        let request = parse_request(xml.as_bytes(), Some(Protocol::Xml30)).unwrap();
        let records = records_of(&request, "2030-01-01T00:00:00Z");
        let machines: Vec<_> = records.iter().map(|r| r.machine.as_deref()).collect();
        assert_eq!(machines, [Some("{U}"), Some("{M}")]);
        // JSON without an identity: none, and the record serialises as
        // before the field existed.
        let request = parse_request(REQUEST.as_bytes(), Some(Protocol::Json31)).unwrap();
        let records = records_of(&request, "2030-01-01T00:00:00Z");
        assert!(records.iter().all(|r| r.machine.is_none()));
        let json = serde_json::to_value(&records[0]).unwrap();
        assert!(json.get("machine").is_none());
        let back: EventRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, records[0]);
    }

    #[test]
    fn a_store_created_before_the_machine_column_gets_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.sqlite");
        let old = Connection::open(&path).unwrap();
        let old_schema = SCHEMA.replace(",\n    machine          TEXT", "");
        assert!(!old_schema.contains("machine"));
        old.execute_batch(&old_schema).unwrap();
        old.execute(
            "INSERT INTO events (received_at, kind, app_id, app_version, session_id,
                 request_id, protocol) VALUES ('2030-01-01T00:00:00Z', 'ping', 'a', '1', 's', 'r', '3.1')",
            [],
        )
        .unwrap();
        drop(old);
        let store = SqliteEventStore::open(&path).unwrap();
        let all = store.list(None).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].machine, None);
        let mut r = all[0].clone();
        r.machine = Some("m".into());
        store.record(std::slice::from_ref(&r)).unwrap();
        assert_eq!(store.list(None).unwrap()[1], r);
    }
}

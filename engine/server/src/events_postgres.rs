//! The PostgreSQL event store: one database shared by every server of a
//! fleet.
//!
//! Same table and columns as the SQLite store (`events`, with a
//! `BIGSERIAL` id and an index on `lower(app_id)`), created when missing.
//! [`EventStore::record`] stores a batch in one transaction, durable once
//! committed (PostgreSQL's default `synchronous_commit = on`; nothing here
//! changes it).
//!
//! **One history.** Every writing transaction first takes one
//! transaction-scoped advisory lock ([`WRITE_LOCK`]), so the transactions
//! of all servers that share the database take their ids one after the
//! other, in commit order: a batch's rows have consecutive ids, and a
//! reader that has seen the records up to some id never sees an older id
//! appear later. The lock is held for one insert of a grouped batch (see
//! `group_commit.rs`), which is cheap next to the commit's flush.
//!
//! The connection is synchronous (the `postgres` crate, which runs its own
//! small runtime inside): call the store from ordinary threads, such as the
//! group-commit writer or the command line, not from inside an async
//! runtime (use `spawn_blocking` there). No TLS: the store is meant for a
//! database on the loopback interface or a private network
//! (`docs/adr/0012-postgresql-event-store.md`).

use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use postgres::config::Host;
use postgres::types::ToSql;
use postgres::{Client, Config, NoTls};

use crate::error::ServerError;
use crate::events::{COLUMNS, EventRecord, EventStore, parse_detail};
use crate::stats::{self, AdoptionPoint, POSTGRES, StatsBuilder, StatsQuery, VersionStats};

/// The advisory lock key every writing transaction (and the schema set-up)
/// holds: "upkeep" in ASCII.
pub const WRITE_LOCK: i64 = 0x7570_6b65_6570;

/// The columns of [`COLUMNS`].
const COLUMN_COUNT: usize = 16;
/// Rows per `INSERT` statement (PostgreSQL takes at most 65535 parameters).
const ROWS_PER_INSERT: usize = 1000;
/// How long connecting may take when the URL does not say
/// (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    id               BIGSERIAL PRIMARY KEY,
    received_at      TEXT NOT NULL,
    kind             TEXT NOT NULL,
    app_id           TEXT NOT NULL,
    app_version      TEXT NOT NULL,
    event_type       BIGINT,
    event_result     BIGINT,
    error_category   BIGINT,
    error_code       BIGINT,
    extra_code1      BIGINT,
    previous_version TEXT,
    next_version     TEXT,
    session_id       TEXT NOT NULL,
    request_id       TEXT NOT NULL,
    protocol         TEXT NOT NULL,
    detail           TEXT,
    machine          TEXT
);
ALTER TABLE events ADD COLUMN IF NOT EXISTS machine TEXT;
CREATE INDEX IF NOT EXISTS events_by_app ON events (lower(app_id));
";

/// The event store in a PostgreSQL database.
pub struct PostgresEventStore {
    client: Mutex<Client>,
    target: String,
}

impl std::fmt::Debug for PostgresEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresEventStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PostgresEventStore {
    /// Connects to the database of `url` (`postgres://USER@HOST:PORT/DB`,
    /// or PostgreSQL's `key=value` form) and creates the table when
    /// missing.
    pub fn connect(url: &str) -> Result<PostgresEventStore, ServerError> {
        let config: Config = url
            .parse()
            .map_err(|source| ServerError::EventsUrlPostgres {
                url: redact(url),
                source,
            })?;
        Self::with_config(config)
    }

    /// Connects with a parsed configuration (a 10 s connection timeout
    /// unless it sets one) and creates the table when missing.
    pub fn with_config(mut config: Config) -> Result<PostgresEventStore, ServerError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let target = describe(&config);
        let mut client = config
            .connect(NoTls)
            .map_err(|source| ServerError::PostgresConnect {
                target: target.clone(),
                source,
            })?;
        // Several servers may start at once: create the table under the
        // write lock, or two `CREATE TABLE IF NOT EXISTS` can collide.
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        tx.batch_execute(SCHEMA)?;
        tx.commit()?;
        tracing::debug!(%target, "PostgreSQL event store ready");
        Ok(PostgresEventStore {
            client: Mutex::new(client),
            target,
        })
    }

    /// `user@host:port/database`, as connected to (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    fn lock(&self) -> Result<MutexGuard<'_, Client>, ServerError> {
        self.client.lock().map_err(|_| ServerError::StorePoisoned)
    }
}

/// `user@host:port/database` of `config`.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db}")
}

/// `url` with the password of its user information replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// One `INSERT` of `rows` rows: `($1, ..., $16), ($17, ...)`.
fn insert_sql(rows: usize) -> String {
    let mut sql = format!("INSERT INTO events ({COLUMNS}) VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..COLUMN_COUNT {
            let sep = if col == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${}", row * COLUMN_COUNT + col + 1);
        }
        sql.push(')');
    }
    sql
}

impl EventStore for PostgresEventStore {
    fn record(&self, records: &[EventRecord]) -> Result<(), ServerError> {
        if records.is_empty() {
            return Ok(());
        }
        let details: Vec<Option<String>> = records
            .iter()
            .map(|r| (!r.detail.is_null()).then(|| r.detail.to_string()))
            .collect();
        let mut client = self.lock()?;
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
        for (chunk, details) in records
            .chunks(ROWS_PER_INSERT)
            .zip(details.chunks(ROWS_PER_INSERT))
        {
            let mut values: Vec<&(dyn ToSql + Sync)> =
                Vec::with_capacity(chunk.len() * COLUMN_COUNT);
            for (r, detail) in chunk.iter().zip(details) {
                values.extend_from_slice(&[
                    &r.received_at,
                    &r.kind,
                    &r.app_id,
                    &r.app_version,
                    &r.event_type,
                    &r.event_result,
                    &r.error_category,
                    &r.error_code,
                    &r.extra_code1,
                    &r.previous_version,
                    &r.next_version,
                    &r.session_id,
                    &r.request_id,
                    &r.protocol,
                    detail,
                    &r.machine,
                ]);
            }
            tx.execute(insert_sql(chunk.len()).as_str(), &values)?;
        }
        // Dropping `tx` on an error above rolls the whole batch back.
        tx.commit()?;
        Ok(())
    }

    fn list(&self, app: Option<&str>) -> Result<Vec<EventRecord>, ServerError> {
        let mut client = self.lock()?;
        let rows = client.query(
            format!(
                "SELECT {COLUMNS} FROM events
                 WHERE CAST($1 AS TEXT) IS NULL OR lower(app_id) = lower(CAST($1 AS TEXT))
                 ORDER BY id"
            )
            .as_str(),
            &[&app],
        )?;
        rows.iter()
            .map(|row| {
                Ok(EventRecord {
                    received_at: row.try_get(0)?,
                    kind: row.try_get(1)?,
                    app_id: row.try_get(2)?,
                    app_version: row.try_get(3)?,
                    event_type: row.try_get(4)?,
                    event_result: row.try_get(5)?,
                    error_category: row.try_get(6)?,
                    error_code: row.try_get(7)?,
                    extra_code1: row.try_get(8)?,
                    previous_version: row.try_get(9)?,
                    next_version: row.try_get(10)?,
                    session_id: row.try_get(11)?,
                    request_id: row.try_get(12)?,
                    protocol: row.try_get(13)?,
                    detail: parse_detail(row.try_get(14)?),
                    machine: row.try_get(15)?,
                })
            })
            .collect()
    }

    fn stats(&self, query: &StatsQuery) -> Result<Vec<VersionStats>, ServerError> {
        let mut client = self.lock()?;
        let p: [&(dyn ToSql + Sync); 2] = [&query.app, &query.since];
        let mut b = StatsBuilder::default();
        for r in client.query(POSTGRES.seen_sql().as_str(), &p)? {
            b.seen(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        }
        for r in client.query(POSTGRES.outcomes_sql().as_str(), &p)? {
            b.outcomes(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
        }
        for r in client.query(POSTGRES.failures_sql().as_str(), &p)? {
            b.failure(
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
            );
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
        let mut client = self.lock()?;
        let rows = client.query(
            POSTGRES.adoption_sql().as_str(),
            &[&app, &since, &bucket_seconds],
        )?;
        let points = rows
            .iter()
            .map(|r| {
                Ok(AdoptionPoint {
                    bucket_start: r.try_get(0)?,
                    version: r.try_get(1)?,
                    machines: u64::try_from(r.try_get::<_, i64>(2)?).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, ServerError>>()?;
        Ok(stats::sorted(points))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("postgres://ops:s3cret@db.internal:5432/upkeep"),
            "postgres://ops:***@db.internal:5432/upkeep"
        );
        assert_eq!(
            redact("postgres://ops@127.0.0.1:5433/upkeep"),
            "postgres://ops@127.0.0.1:5433/upkeep"
        );
        assert_eq!(redact("host=/tmp user=ops"), "host=/tmp user=ops");
    }

    #[test]
    fn targets_name_user_host_port_and_database() {
        let config: Config = "postgres://ops:pw@127.0.0.1:5433/upkeep".parse().unwrap();
        assert_eq!(describe(&config), "ops@127.0.0.1:5433/upkeep");
        let config: Config = "postgres://ops@localhost".parse().unwrap();
        assert_eq!(describe(&config), "ops@localhost:5432/ops");
    }

    #[test]
    fn inserts_number_every_parameter_once() {
        assert_eq!(
            insert_sql(2),
            format!(
                "INSERT INTO events ({COLUMNS}) VALUES ({}), ({})",
                (1..=16)
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                (17..=32)
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
    }
}

//! The PostgreSQL event store against a real PostgreSQL (a throwaway
//! cluster per test, `support/postgres.rs`): records round-trip, a failing
//! batch stores nothing, two stores writing at once (as two servers would)
//! give one history with nothing lost, and the rollout statistics are
//! exact, the same from PostgreSQL, SQLite and the in-memory computation.

mod support {
    pub mod postgres;
}

use std::sync::{Arc, Barrier, Mutex};

use support::postgres::Cluster;
use upkeep_core::omaha::{Protocol, parse_request};
use upkeep_server::events::{EventRecord, EventStore, SqliteEventStore, records_of};
use upkeep_server::stats::{AdoptionPoint, FailureCount, StatsQuery, VersionStats};
use upkeep_server::{EventsUrl, PostgresEventStore, ServerError};

const REQUEST: &str = r#"{"request":{"protocol":"3.1","sessionid":"{s}","requestid":"{r}",
    "app":[{"appid":"{ABC}","version":"1.0","machineid":"m-1","ping":{"r":1,"rd":6000},
            "event":[{"eventtype":3,"eventresult":0,"errorcat":1,"errorcode":-2,
                      "extracode1":7,"previousversion":"1.0","nextversion":"2.0",
                      "download_time_ms":"1500"}]},
           {"appid":"other","version":"3"}]}}"#;

#[test]
fn records_round_trip_and_survive_a_new_connection() {
    let pg = Cluster::start();
    let store = PostgresEventStore::connect(&pg.url).unwrap();
    let request = parse_request(REQUEST.as_bytes(), Some(Protocol::Json31)).unwrap();
    let records = records_of(&request, "2030-01-01T00:00:00.25Z");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].machine.as_deref(), Some("m-1"));
    store.record(&records).unwrap();
    store.record(&[]).unwrap();
    drop(store);
    // Another connection, as another server or `repo events` would open.
    let store = PostgresEventStore::connect(&pg.url).unwrap();
    assert_eq!(store.list(None).unwrap(), records);
    assert_eq!(store.list(Some("{abc}")).unwrap(), records);
    assert!(store.list(Some("other")).unwrap().is_empty());
    let event = &store.list(None).unwrap()[1];
    assert_eq!(event.detail["download_time_ms"], "1500");
    assert_eq!(event.error_code, Some(-2));
    // Through `--events`, too.
    let url: EventsUrl = pg.url.parse().unwrap();
    assert_eq!(url.open().unwrap().list(None).unwrap(), records);
}

fn record(n: usize, writer: &str) -> EventRecord {
    EventRecord {
        received_at: "2030-01-01T00:00:00Z".into(),
        kind: "event".into(),
        app_id: "{APP}".into(),
        app_version: "1.0".into(),
        event_type: Some(3),
        event_result: Some(1),
        error_category: None,
        error_code: None,
        extra_code1: None,
        previous_version: Some("1.0".into()),
        next_version: Some("2.0".into()),
        session_id: format!("{writer}-{n}"),
        request_id: format!("{{{writer}-{n}}}"),
        protocol: "3.1".into(),
        detail: serde_json::Value::Null,
        machine: Some(writer.into()),
    }
}

#[test]
fn a_failing_batch_stores_nothing() {
    let pg = Cluster::start();
    let store = PostgresEventStore::connect(&pg.url).unwrap();
    store.record(&[record(0, "a")]).unwrap();
    // 2500 rows take three INSERT statements; the last row is refused
    // (PostgreSQL's text holds no NUL), after 2499 were inserted.
    let mut batch: Vec<_> = (1..2500).map(|n| record(n, "a")).collect();
    let mut bad = record(2500, "a");
    bad.app_version = "1.0\0".into();
    batch.push(bad);
    assert!(matches!(
        store.record(&batch),
        Err(ServerError::Postgres(_))
    ));
    assert_eq!(store.list(None).unwrap(), vec![record(0, "a")]);
    // The connection is still usable after the rollback.
    store.record(&[record(1, "a")]).unwrap();
    assert_eq!(store.list(None).unwrap().len(), 2);
}

#[test]
fn two_servers_writing_at_once_give_one_history() {
    let pg = Cluster::start();
    let (writers, batches, per_batch) = (2, 40, 25);
    let stores: Vec<_> = (0..writers)
        .map(|_| Arc::new(PostgresEventStore::connect(&pg.url).unwrap()))
        .collect();
    let start = Arc::new(Barrier::new(writers));
    let threads: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(w, store)| {
            let (store, start) = (store.clone(), start.clone());
            std::thread::spawn(move || {
                let name = format!("w{w}");
                start.wait();
                for b in 0..batches {
                    let batch: Vec<_> = (0..per_batch)
                        .map(|i| record(b * per_batch + i, &name))
                        .collect();
                    store.record(&batch).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Both stores read the same history.
    let history = stores[0].list(None).unwrap();
    assert_eq!(history, stores[1].list(None).unwrap());
    assert_eq!(history.len(), writers * batches * per_batch);
    // Every batch is contiguous, and each writer's records are in the
    // order it wrote them: nothing lost, nothing interleaved.
    for chunk in history.chunks(per_batch) {
        let writer = chunk[0].machine.clone();
        assert!(
            chunk.iter().all(|r| r.machine == writer),
            "a batch was split"
        );
    }
    for w in 0..writers {
        let name = format!("w{w}");
        let mine: Vec<_> = history
            .iter()
            .filter(|r| r.machine.as_deref() == Some(name.as_str()))
            .map(|r| r.session_id.clone())
            .collect();
        let expected: Vec<_> = (0..batches * per_batch)
            .map(|n| format!("{name}-{n}"))
            .collect();
        assert_eq!(mine, expected);
    }
}

/// 2030-01-01T00:00:00Z, on an hour boundary.
const T0: i64 = 1_893_456_000;

fn at(offset: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(T0 + offset).unwrap();
    upkeep_core::tuf::metadata::format_time(t)
}

struct Seen<'a> {
    offset: i64,
    app: &'a str,
    version: &'a str,
    machine: Option<&'a str>,
    session: &'a str,
}

fn ping(s: Seen<'_>) -> EventRecord {
    EventRecord {
        received_at: at(s.offset),
        kind: "ping".into(),
        app_id: s.app.into(),
        app_version: s.version.into(),
        event_type: None,
        event_result: None,
        error_category: None,
        error_code: None,
        extra_code1: None,
        previous_version: None,
        next_version: None,
        session_id: s.session.into(),
        request_id: format!("{{r{}}}", s.offset),
        protocol: "3.1".into(),
        detail: serde_json::Value::Null,
        machine: s.machine.map(str::to_owned),
    }
}

/// An event of `kind` (type, result, category, code) going to 2.0.
fn event(s: Seen<'_>, kind: (i64, i64, Option<i64>, Option<i64>)) -> EventRecord {
    EventRecord {
        kind: "event".into(),
        event_type: Some(kind.0),
        event_result: Some(kind.1),
        error_category: kind.2,
        error_code: kind.3,
        previous_version: Some(s.version.into()),
        next_version: Some("2.0".into()),
        ..ping(s)
    }
}

/// Machines m1 and m2 send an identity; two others only a session each.
fn fleet() -> Vec<EventRecord> {
    let s = |offset, app, version, machine, session| Seen {
        offset,
        app,
        version,
        machine,
        session,
    };
    let mut records = vec![
        ping(s(0, "{APP-A}", "1.0", Some("m1"), "a")),
        ping(s(10, "{APP-A}", "1.0", Some("m2"), "b")),
        ping(s(20, "other", "3", Some("m1"), "a")),
        event(
            s(3600, "{APP-A}", "1.0", Some("m1"), "c"),
            (3, 1, None, None),
        ),
        event(
            s(3650, "{APP-A}", "1.0", Some("m2"), "d"),
            (3, 0, Some(1), Some(-2)),
        ),
        event(
            s(3660, "{APP-A}", "1.0", None, "s3"),
            (3, 0, Some(1), Some(-2)),
        ),
        event(
            s(3670, "{APP-A}", "1.0", None, "s3"),
            (3, 6, Some(3), Some(7)),
        ),
        // A download failure is not an install or update outcome.
        event(
            s(3680, "{APP-A}", "1.0", Some("m2"), "d"),
            (14, 0, Some(2), Some(9)),
        ),
        ping(s(3700, "{APP-A}", "2.0", Some("m1"), "e")),
        event(
            s(7200, "{APP-A}", "0.0.0.0", None, "s4"),
            (2, 1, None, None),
        ),
        ping(s(7300, "{APP-A}", "2.0", None, "s4")),
        ping(s(7400, "{app-a}", "2.0", Some("m1"), "f")),
    ];
    // A fraction of a second counts in its whole second.
    records[10].received_at = "2030-01-01T02:01:40.25Z".into();
    records
}

fn stats(app: &str, version: &str, seen: u64, installs: u64, updates: u64) -> VersionStats {
    VersionStats {
        app_id: app.into(),
        version: version.into(),
        machines_seen: seen,
        installs,
        updates,
        failures: vec![],
    }
}

fn failure(category: i64, code: i64, count: u64) -> FailureCount {
    FailureCount {
        error_category: Some(category),
        error_code: Some(code),
        count,
    }
}

fn point(offset: i64, version: &str, machines: u64) -> AdoptionPoint {
    AdoptionPoint {
        bucket_start: T0 + offset,
        version: version.into(),
        machines,
    }
}

/// The same numbers, whichever store computes them.
fn check_rollout_numbers(store: &dyn EventStore) {
    store.record(&fleet()).unwrap();

    let all = store.stats(&StatsQuery::default()).unwrap();
    let mut v2 = stats("{app-a}", "2.0", 2, 1, 1);
    v2.failures = vec![failure(1, -2, 2), failure(3, 7, 1)];
    assert_eq!(
        all,
        // By app id byte order (`o` before `{`), then version.
        vec![
            stats("other", "3", 1, 0, 0),
            stats("{app-a}", "0.0.0.0", 1, 0, 0),
            stats("{app-a}", "1.0", 3, 0, 0),
            v2,
        ]
    );

    let recent = store
        .stats(&StatsQuery {
            app: Some("{App-A}".into()),
            since: Some(T0 + 3655),
        })
        .unwrap();
    let mut v2 = stats("{app-a}", "2.0", 2, 1, 0);
    v2.failures = vec![failure(1, -2, 1), failure(3, 7, 1)];
    assert_eq!(
        recent,
        vec![
            stats("{app-a}", "0.0.0.0", 1, 0, 0),
            stats("{app-a}", "1.0", 2, 0, 0),
            v2,
        ]
    );
    assert!(
        store
            .stats(&StatsQuery {
                app: Some("nobody".into()),
                since: None,
            })
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        store.adoption("{app-A}", 3600, None).unwrap(),
        vec![
            point(0, "1.0", 2),
            point(3600, "1.0", 3),
            point(3600, "2.0", 1),
            point(7200, "0.0.0.0", 1),
            point(7200, "2.0", 2),
        ]
    );
    assert_eq!(
        store.adoption("{app-a}", 3600, Some(T0 + 3655)).unwrap(),
        vec![
            point(3600, "1.0", 2),
            point(3600, "2.0", 1),
            point(7200, "0.0.0.0", 1),
            point(7200, "2.0", 2),
        ]
    );
    assert_eq!(
        store.adoption("{app-a}", 86_400, None).unwrap(),
        vec![
            point(0, "0.0.0.0", 1),
            point(0, "1.0", 3),
            point(0, "2.0", 2),
        ]
    );
    assert!(matches!(
        store.adoption("{app-a}", 0, None),
        Err(ServerError::InvalidBucket { seconds: 0 })
    ));
}

#[test]
fn rollout_numbers_from_postgres() {
    let pg = Cluster::start();
    check_rollout_numbers(&PostgresEventStore::connect(&pg.url).unwrap());
}

#[test]
fn rollout_numbers_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check_rollout_numbers(&SqliteEventStore::open(&dir.path().join("events.sqlite")).unwrap());
}

/// A store without SQL: the trait's own computation.
#[derive(Default)]
struct Memory(Mutex<Vec<EventRecord>>);

impl EventStore for Memory {
    fn record(&self, records: &[EventRecord]) -> Result<(), ServerError> {
        self.0.lock().unwrap().extend_from_slice(records);
        Ok(())
    }

    fn list(&self, app: Option<&str>) -> Result<Vec<EventRecord>, ServerError> {
        let all = self.0.lock().unwrap();
        Ok(all
            .iter()
            .filter(|r| app.is_none_or(|a| r.app_id.eq_ignore_ascii_case(a)))
            .cloned()
            .collect())
    }
}

#[test]
fn rollout_numbers_in_memory() {
    check_rollout_numbers(&Memory::default());
}

#[test]
fn an_unreachable_database_is_a_connection_error() {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PostgresEventStore::connect(&format!("postgres://upkeep:pw@127.0.0.1:{port}/upkeep"))
        .unwrap_err();
    assert!(
        matches!(err, ServerError::PostgresConnect { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("upkeep@127.0.0.1:{port}/upkeep")),
        "{message}"
    );
    assert!(!message.contains("pw"), "{message}");
}

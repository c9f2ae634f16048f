//! The reference server's grouped event commits, over HTTP on 127.0.0.1:
//! an answer is sent only once its request's events are committed, a failed
//! commit is answered 503 (never 200), and the events of many concurrent
//! requests are all stored, in fewer transactions than requests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use upkeep_server::events::{EventRecord, EventStore, SqliteEventStore};
use upkeep_server::http::{ServeOptions, ServerState, router};
use upkeep_server::repo::{InitOptions, Repo};
use upkeep_server::{GroupCommitOptions, ServerError};

/// A store in front of another that counts transactions, can be made slow
/// or failing, and notes whether a commit finished.
struct Probe {
    inner: Arc<dyn EventStore>,
    delay: Duration,
    failing: AtomicBool,
    transactions: AtomicUsize,
    committed: AtomicBool,
}

impl Probe {
    fn over(inner: Arc<dyn EventStore>) -> Probe {
        Probe {
            inner,
            delay: Duration::ZERO,
            failing: AtomicBool::new(false),
            transactions: AtomicUsize::new(0),
            committed: AtomicBool::new(false),
        }
    }
}

impl EventStore for Probe {
    fn record(&self, records: &[EventRecord]) -> Result<(), ServerError> {
        std::thread::sleep(self.delay);
        if self.failing.load(Ordering::SeqCst) {
            return Err(ServerError::Store("simulated I/O error".into()));
        }
        self.inner.record(records)?;
        self.transactions.fetch_add(1, Ordering::SeqCst);
        self.committed.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn list(&self, app: Option<&str>) -> Result<Vec<EventRecord>, ServerError> {
        self.inner.list(app)
    }
}

/// An in-memory store.
#[derive(Default)]
struct Memory(Mutex<Vec<EventRecord>>);

impl EventStore for Memory {
    fn record(&self, records: &[EventRecord]) -> Result<(), ServerError> {
        self.0.lock().unwrap().extend_from_slice(records);
        Ok(())
    }

    fn list(&self, _app: Option<&str>) -> Result<Vec<EventRecord>, ServerError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

/// Serves a fresh repository in `dir` with `store` on a port of 127.0.0.1,
/// on a runtime that lives as long as the returned guard.
fn serve(dir: &Path, store: Arc<dyn EventStore>) -> (tokio::runtime::Runtime, SocketAddr) {
    let repo = Repo::init(&dir.join("repo"), &InitOptions::default()).unwrap();
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: None,
        keys_dir: None,
        events: None,
        dashboard_token: None,
    };
    let state = Arc::new(
        ServerState::with_store(&repo, &options, store, GroupCommitOptions::default()).unwrap(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(options.listen))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, router(state)).await });
    (runtime, addr)
}

/// A 3.1 update check of one app with a ping and an event: two records.
fn body(n: usize) -> String {
    format!(
        r#"{{"request":{{"protocol":"3.1","sessionid":"{{s}}","requestid":"{{r{n}}}","app":[
            {{"appid":"{{APP-{n}}}","version":"1.0","updatecheck":{{}},"ping":{{"r":1}},
              "event":[{{"eventtype":3,"eventresult":1}}]}}]}}}}"#
    )
}

/// POSTs `body` to the JSON endpoint; the status and the body.
fn post(addr: SocketAddr, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /service/update2/json HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

#[test]
fn an_answer_is_sent_only_once_its_events_are_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut probe = Probe::over(Arc::new(Memory::default()));
    probe.delay = Duration::from_millis(300);
    let probe = Arc::new(probe);
    let (_rt, addr) = serve(dir.path(), probe.clone());
    let (status, answer) = post(addr, &body(1));
    assert_eq!(status, 200, "{answer}");
    // The commit took 300 ms; the answer did not leave before it ended.
    assert!(probe.committed.load(Ordering::SeqCst));
    assert_eq!(probe.list(None).unwrap().len(), 2);
}

#[test]
fn a_failed_commit_is_answered_503_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Arc::new(Probe::over(Arc::new(Memory::default())));
    probe.failing.store(true, Ordering::SeqCst);
    let (_rt, addr) = serve(dir.path(), probe.clone());
    let (status, answer) = post(addr, &body(1));
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("simulated I/O error"), "{answer}");
    assert!(!answer.contains("response"), "no Omaha answer: {answer}");
    assert!(probe.list(None).unwrap().is_empty());
    // Once the store works again, so does the server.
    probe.failing.store(false, Ordering::SeqCst);
    assert_eq!(post(addr, &body(2)).0, 200);
    assert_eq!(probe.list(None).unwrap().len(), 2);
}

#[test]
fn events_of_concurrent_requests_are_all_stored_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sqlite");
    let sqlite = Arc::new(SqliteEventStore::open(&path).unwrap());
    // Each commit takes at least 20 ms, so requests pile up behind it.
    let mut probe = Probe::over(sqlite);
    probe.delay = Duration::from_millis(20);
    let probe = Arc::new(probe);
    let (_rt, addr) = serve(dir.path(), probe.clone());
    let requests = 120;
    let clients: Vec<_> = (0..requests)
        .map(|n| std::thread::spawn(move || post(addr, &body(n))))
        .collect();
    for c in clients {
        let (status, answer) = c.join().unwrap();
        assert_eq!(status, 200, "{answer}");
    }
    // Every event of every acknowledged request, read back from the file
    // by another connection.
    let stored = SqliteEventStore::open(&path).unwrap().list(None).unwrap();
    assert_eq!(stored.len(), 2 * requests);
    let mut ids: Vec<&str> = stored.iter().map(|r| r.request_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), requests);
    let transactions = probe.transactions.load(Ordering::SeqCst);
    assert!(
        transactions < requests / 2,
        "{transactions} transactions for {requests} requests"
    );
}

//! Group commit: many requests' events share one transaction and one fsync.
//!
//! Every update request that carries pings or events must have them stored
//! durably before the answer that acknowledges them is sent. Writing each
//! request in its own transaction makes every request pay a flush of its
//! own, one after the other. Instead, request handlers hand their records to
//! one writer thread ([`GroupCommit::record`]) and wait for its word; the
//! writer takes everything that queued up while its previous commit was
//! flushing (up to [`GroupCommitOptions::max_requests`] requests, optionally
//! waiting [`GroupCommitOptions::max_wait`] for more), stores it through
//! [`EventStore::record`] in one transaction, and then answers every waiting
//! request of the group at once: all of them stored, or all of them refused
//! (the handler then answers 503 and the client sends its events again).
//!
//! Under low load a group is one request and nothing waits longer than its
//! own commit; under high load the flush cost is shared by everything that
//! arrived during the previous one. The queue holds at most one entry per
//! request in flight (each handler waits for its answer before it can send
//! another), so its size is bounded by the connections the server accepts.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::ServerError;
use crate::events::{EventRecord, EventStore};

/// The knobs of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// The most requests one transaction stores (default 1024): bounds the
    /// transaction's size and the latency of the group's first request.
    pub max_requests: usize,
    /// How long the writer waits for more requests once it has taken what
    /// was queued, when that was more than one request (so others are
    /// coming) and less than `max_requests` (default 0.5 ms; zero: commit at
    /// once). A lone request is committed at once, so a quiet server adds
    /// no latency. Under load the wait makes groups about ten times larger
    /// and the writer's CPU per request a fraction of what it was (SQLite
    /// writes every page a transaction touches, however few rows it adds);
    /// it sleeps once rather than waking for every arrival, which cost more
    /// CPU than the larger groups saved (docs/benchmarks.md).
    pub max_wait: Duration,
}

impl Default for GroupCommitOptions {
    fn default() -> Self {
        GroupCommitOptions {
            max_requests: 1024,
            max_wait: Duration::from_micros(500),
        }
    }
}

/// One request's records and where to send the outcome.
struct Job {
    records: Vec<EventRecord>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The writer thread and its queue. Dropping it lets the writer store what
/// is queued, then joins it.
pub struct GroupCommit {
    queue: Option<Sender<Job>>,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the writer thread over `store`.
    pub fn start(
        store: Arc<dyn EventStore>,
        options: GroupCommitOptions,
    ) -> Result<GroupCommit, ServerError> {
        let (queue, jobs) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("upkeep-events".into())
            .spawn(move || write_groups(store.as_ref(), &jobs, options))
            .map_err(|e| ServerError::io("event writer thread", e))?;
        Ok(GroupCommit {
            queue: Some(queue),
            writer: Some(writer),
        })
    }

    /// Stores `records` durably, together with those of other requests
    /// waiting at the same time, and returns once they are committed (or
    /// the commit failed). No records: returns at once.
    pub async fn record(&self, records: Vec<EventRecord>) -> Result<(), ServerError> {
        if records.is_empty() {
            return Ok(());
        }
        let (done, outcome) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or(ServerError::WriterStopped)?
            .send(Job { records, done })
            .map_err(|_| ServerError::WriterStopped)?;
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(ServerError::Store(reason)),
            Err(_) => Err(ServerError::WriterStopped),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Closing the queue ends the writer's loop once it is drained.
        self.queue.take();
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the event writer panicked");
        }
    }
}

/// The writer's loop: one group per iteration until the queue is closed.
fn write_groups(store: &dyn EventStore, jobs: &Receiver<Job>, options: GroupCommitOptions) {
    let max = options.max_requests.max(1);
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        drain(jobs, &mut group, max);
        if group.len() > 1 && group.len() < max && !options.max_wait.is_zero() {
            // One sleep, not a wake-up per arriving request.
            std::thread::sleep(options.max_wait);
            drain(jobs, &mut group, max);
        }
        commit(store, group);
    }
}

/// Moves what is queued into `group`, up to `max` requests.
fn drain(jobs: &Receiver<Job>, group: &mut Vec<Job>, max: usize) {
    while group.len() < max {
        match jobs.try_recv() {
            Ok(job) => group.push(job),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
}

/// Stores one group in one transaction and tells every request of it.
fn commit(store: &dyn EventStore, group: Vec<Job>) {
    let mut records = Vec::with_capacity(group.iter().map(|j| j.records.len()).sum());
    let mut waiting = Vec::with_capacity(group.len());
    for job in group {
        records.extend(job.records);
        waiting.push(job.done);
    }
    let outcome = store.record(&records).map_err(|e| {
        tracing::error!(error = %e, requests = waiting.len(), "events not stored");
        e.to_string()
    });
    tracing::trace!(
        requests = waiting.len(),
        records = records.len(),
        "group committed"
    );
    for done in waiting {
        // A handler that went away (client disconnected) no longer waits.
        let _ = done.send(outcome.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    fn record(n: usize) -> EventRecord {
        EventRecord {
            received_at: "2030-01-01T00:00:00Z".into(),
            kind: "event".into(),
            app_id: format!("app-{n}"),
            app_version: "1.0".into(),
            event_type: Some(3),
            event_result: Some(1),
            error_category: None,
            error_code: None,
            extra_code1: None,
            previous_version: None,
            next_version: None,
            session_id: "{s}".into(),
            request_id: format!("{{r{n}}}"),
            protocol: "3.1".into(),
            detail: serde_json::Value::Null,
            machine: None,
        }
    }

    /// A store that keeps records in memory, counts its transactions,
    /// takes `delay` per transaction, and fails while `failing` is set.
    #[derive(Default)]
    struct TestStore {
        records: Mutex<Vec<EventRecord>>,
        transactions: AtomicUsize,
        delay: Duration,
        failing: AtomicBool,
        committed: AtomicBool,
    }

    impl EventStore for TestStore {
        fn record(&self, records: &[EventRecord]) -> Result<(), ServerError> {
            std::thread::sleep(self.delay);
            if self.failing.load(Ordering::SeqCst) {
                return Err(ServerError::Store("disk full".into()));
            }
            self.records
                .lock()
                .map_err(|_| ServerError::Store("poisoned".into()))?
                .extend_from_slice(records);
            self.transactions.fetch_add(1, Ordering::SeqCst);
            self.committed.store(true, Ordering::SeqCst);
            Ok(())
        }

        fn list(&self, _app: Option<&str>) -> Result<Vec<EventRecord>, ServerError> {
            Ok(self.records.lock().map(|r| r.clone()).unwrap_or_default())
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn record_returns_only_once_the_records_are_committed() {
        let store = Arc::new(TestStore {
            delay: Duration::from_millis(200),
            ..TestStore::default()
        });
        let writer = GroupCommit::start(store.clone(), GroupCommitOptions::default()).unwrap();
        runtime().block_on(async {
            writer.record(vec![record(1)]).await.unwrap();
            // The commit took 200 ms; `record` did not return before it.
            assert!(store.committed.load(Ordering::SeqCst));
            assert_eq!(store.list(None).unwrap(), vec![record(1)]);
        });
    }

    #[test]
    fn concurrent_requests_are_all_stored_in_fewer_transactions() {
        let store = Arc::new(TestStore {
            delay: Duration::from_millis(20),
            ..TestStore::default()
        });
        let writer =
            Arc::new(GroupCommit::start(store.clone(), GroupCommitOptions::default()).unwrap());
        let requests = 200;
        runtime().block_on(async {
            let tasks: Vec<_> = (0..requests)
                .map(|n| {
                    let writer = writer.clone();
                    tokio::spawn(async move { writer.record(vec![record(n), record(n)]).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        });
        let mut stored: Vec<String> = store
            .list(None)
            .unwrap()
            .into_iter()
            .map(|r| r.request_id)
            .collect();
        assert_eq!(stored.len(), 2 * requests);
        stored.sort();
        stored.dedup();
        assert_eq!(stored.len(), requests, "every request's records, once");
        let transactions = store.transactions.load(Ordering::SeqCst);
        assert!(
            transactions < requests / 4,
            "{transactions} transactions for {requests} requests"
        );
    }

    #[test]
    fn a_failed_commit_is_reported_to_every_request_of_the_group() {
        let store = Arc::new(TestStore::default());
        store.failing.store(true, Ordering::SeqCst);
        let writer =
            Arc::new(GroupCommit::start(store.clone(), GroupCommitOptions::default()).unwrap());
        runtime().block_on(async {
            let tasks: Vec<_> = (0..20)
                .map(|n| {
                    let writer = writer.clone();
                    tokio::spawn(async move { writer.record(vec![record(n)]).await })
                })
                .collect();
            for t in tasks {
                let err = t.await.unwrap().unwrap_err();
                assert!(matches!(err, ServerError::Store(_)), "{err}");
                assert!(err.to_string().contains("disk full"), "{err}");
            }
            assert!(store.list(None).unwrap().is_empty());
            // The writer goes on: the next commit succeeds.
            store.failing.store(false, Ordering::SeqCst);
            writer.record(vec![record(7)]).await.unwrap();
            assert_eq!(store.list(None).unwrap(), vec![record(7)]);
        });
    }

    #[test]
    fn max_requests_bounds_a_group_and_max_wait_gathers_one() {
        // Each commit takes a while, so what arrives during one queues up.
        let store = Arc::new(TestStore {
            delay: Duration::from_millis(100),
            ..TestStore::default()
        });
        let options = GroupCommitOptions {
            max_requests: 3,
            max_wait: Duration::from_millis(300),
        };
        let writer = Arc::new(GroupCommit::start(store.clone(), options).unwrap());
        runtime().block_on(async {
            let tasks: Vec<_> = (0..9)
                .map(|n| {
                    let writer = writer.clone();
                    tokio::spawn(async move { writer.record(vec![record(n)]).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        });
        assert_eq!(store.list(None).unwrap().len(), 9);
        // Nine requests sent at once, at most three per group. The first
        // may be taken alone (the writer waits only once it sees more than
        // one), the others then queue during its commit and fill groups of
        // three: three or four transactions, never one per request.
        let transactions = store.transactions.load(Ordering::SeqCst);
        assert!(
            (3..=4).contains(&transactions),
            "{transactions} transactions"
        );
    }

    #[test]
    fn a_lone_request_is_committed_without_waiting() {
        let store = Arc::new(TestStore::default());
        let options = GroupCommitOptions {
            max_requests: 1024,
            max_wait: Duration::from_secs(30),
        };
        let writer = GroupCommit::start(store.clone(), options).unwrap();
        // A wait of 30 s applied to one request would hang the test.
        runtime().block_on(async {
            tokio::time::timeout(Duration::from_secs(10), writer.record(vec![record(1)]))
                .await
                .expect("a lone request waited for company")
                .unwrap()
        });
        assert_eq!(store.transactions.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn no_records_need_no_commit() {
        let store = Arc::new(TestStore::default());
        let writer = GroupCommit::start(store.clone(), GroupCommitOptions::default()).unwrap();
        runtime().block_on(async { writer.record(Vec::new()).await.unwrap() });
        assert_eq!(store.transactions.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn dropping_the_writer_stores_what_is_queued() {
        let store = Arc::new(TestStore {
            delay: Duration::from_millis(50),
            ..TestStore::default()
        });
        let writer = GroupCommit::start(store.clone(), GroupCommitOptions::default()).unwrap();
        let rt = runtime();
        let pending: Vec<_> = (0..5)
            .map(|n| {
                let (done, outcome) = oneshot::channel();
                writer
                    .queue
                    .as_ref()
                    .unwrap()
                    .send(Job {
                        records: vec![record(n)],
                        done,
                    })
                    .unwrap();
                outcome
            })
            .collect();
        drop(writer);
        assert_eq!(store.list(None).unwrap().len(), 5);
        rt.block_on(async {
            for p in pending {
                assert_eq!(p.await.unwrap(), Ok(()));
            }
        });
    }
}

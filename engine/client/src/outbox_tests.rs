//! The event outbox with the fakes: a server that is down for passes, or
//! answers without acknowledging; telemetry sinks that refuse; the cap.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use upkeep_core::omaha::{Event, EventType};

use crate::tests::{APP, World};
use crate::{AppOutcome, Recorder, Registration, Selection};

const OTHER: &str = "org.example.other";

/// The events of type `kind` the server received for `APP`.
fn received(w: &World, kind: EventType) -> Vec<Event> {
    w.server
        .received()
        .into_iter()
        .filter(|(app, e)| app == APP && e.eventtype == kind)
        .map(|(_, e)| e)
        .collect()
}

/// A rollback event (type 3 from `from` to `to`).
fn is_rollback(e: &Event, from: &str, to: &str) -> bool {
    e.previousversion.as_deref() == Some(from) && e.nextversion.as_deref() == Some(to)
}

/// `APP` installed at 1.0, then updated to 2.0, the server up.
fn updated_to_2(w: &World) {
    w.server.publish(APP, "1.0", &[("app.tar", b"one")], None);
    w.register("0");
    w.update();
    w.server.publish(APP, "2.0", &[("app.tar", b"two")], None);
    assert!(matches!(w.update(), AppOutcome::Updated { .. }));
    assert!(w.prefs().outbox.entries.is_empty(), "all delivered");
}

#[test]
fn events_recorded_while_the_server_is_down_are_delivered_once_it_is_back() {
    let w = World::new();
    updated_to_2(&w);
    w.server.down.store(true, Ordering::SeqCst);
    let mut seen = Recorder::default();
    w.client.rollback(APP, &mut seen).unwrap();
    assert!(
        seen.warnings
            .iter()
            .any(|x| x.message.contains("event ping failed")),
        "{:?}",
        seen.warnings
    );
    // Three passes with the server down: the rollback's event waits.
    for _ in 0..3 {
        assert!(matches!(w.update(), AppOutcome::Failed { .. }));
        let waiting: Vec<_> = w.prefs().outbox.unacked().cloned().collect();
        assert_eq!(waiting.len(), 1, "{waiting:?}");
        assert!(is_rollback(&waiting[0].event, "2.0", "1.0"));
    }
    let before = w.server.requests.lock().unwrap().len();
    w.server.down.store(false, Ordering::SeqCst);
    // The update check carries it; the pass then updates again.
    assert!(matches!(w.update(), AppOutcome::Updated { .. }));
    let requests = w.server.requests.lock().unwrap();
    let check = &requests[before];
    assert!(check.apps[0].updatecheck.is_some());
    assert!(is_rollback(&check.apps[0].events[0], "2.0", "1.0"));
    drop(requests);
    let rollbacks: Vec<_> = received(&w, EventType::Update)
        .into_iter()
        .filter(|e| is_rollback(e, "2.0", "1.0"))
        .collect();
    assert_eq!(rollbacks.len(), 1, "delivered exactly once");
    // The failures of the passes that could not reach the server are not
    // the server's to hear.
    assert!(
        received(&w, EventType::Update)
            .iter()
            .all(|e| e.errorcode.unwrap_or(0) == 0),
        "{:?}",
        w.server.received()
    );
    assert!(w.prefs().outbox.entries.is_empty());
}

#[test]
fn an_app_uninstalled_while_the_server_is_down_is_reported_at_its_last_version() {
    let w = World::new();
    updated_to_2(&w);
    let other = Registration::new(
        OTHER,
        "1.0".parse().unwrap(),
        w.dir.path().join("apps/other"),
        "/plugins/installer.wasm",
    );
    w.client.register(other, &mut Recorder::default()).unwrap();
    w.server.down.store(true, Ordering::SeqCst);
    w.client
        .uninstall_app(APP, &mut Recorder::default())
        .unwrap();
    for _ in 0..3 {
        let pass = w
            .client
            .update(Selection::All, &mut Recorder::default())
            .unwrap();
        assert!(matches!(pass.apps[0].outcome, AppOutcome::Failed { .. }));
        assert_eq!(w.prefs().outbox.unacked().count(), 1);
    }
    w.server.down.store(false, Ordering::SeqCst);
    let before = w.server.requests.lock().unwrap().len();
    let pass = w
        .client
        .update(Selection::All, &mut Recorder::default())
        .unwrap();
    assert!(matches!(pass.apps[0].outcome, AppOutcome::UpToDate { .. }));
    // The update check of the other app carries the event, in an app of
    // its own at the version it was uninstalled at.
    let requests = w.server.requests.lock().unwrap();
    assert_eq!(requests.len(), before + 1, "no event ping was needed");
    let check = &requests[before];
    let gone = check.apps.iter().find(|a| a.appid.as_str() == APP).unwrap();
    assert!(gone.updatecheck.is_none());
    assert_eq!(gone.version, "2.0");
    drop(requests);
    assert_eq!(received(&w, EventType::Uninstall).len(), 1);
    assert!(w.prefs().outbox.is_empty());
}

#[test]
fn an_answer_that_acknowledges_nothing_keeps_the_events() {
    let w = World::new();
    w.server.publish(APP, "1.0", &[("app.tar", b"one")], None);
    w.register("0");
    w.server.acknowledge.store(false, Ordering::SeqCst);
    w.update();
    let kept: Vec<_> = w.prefs().outbox.entries.clone();
    assert_eq!(
        kept.iter().map(|e| e.event.eventtype).collect::<Vec<_>>(),
        [EventType::Download, EventType::Install]
    );
    assert!(kept.iter().all(|e| !e.acked));
    assert_eq!(received(&w, EventType::Install).len(), 1);
    // An answer that fails CUP verification acknowledges nothing either.
    w.server.acknowledge.store(true, Ordering::SeqCst);
    w.server.tamper.store(true, Ordering::SeqCst);
    assert!(matches!(w.update(), AppOutcome::Failed { .. }));
    let prefs = w.prefs();
    assert!(
        kept.iter()
            .all(|k| prefs.outbox.unacked().any(|e| e.seq == k.seq)),
        "{:?}",
        prefs.outbox
    );
    w.server.tamper.store(false, Ordering::SeqCst);
    assert!(matches!(w.update(), AppOutcome::UpToDate { .. }));
    assert!(w.prefs().outbox.entries.is_empty());
    // Sent with every request until acknowledged (at least once): the
    // first pass's ping, the tampered pass's check and ping, the last
    // pass's check.
    assert_eq!(received(&w, EventType::Install).len(), 4);
}

#[test]
fn each_sink_keeps_its_own_mark_and_gets_every_event_once() {
    let one = PathBuf::from("/sinks/one.wasm");
    let two = PathBuf::from("/sinks/two.wasm");
    let sinks = vec![one.clone(), two.clone()];
    let w = World::with_config(|c| c.telemetry = sinks);
    w.plugins.failing_sinks.lock().unwrap().push(two.clone());
    w.server.publish(APP, "1.0", &[("app.tar", b"one")], None);
    w.register("0");
    let mut seen = Recorder::default();
    w.client.update(Selection::All, &mut seen).unwrap();
    assert!(
        seen.warnings
            .iter()
            .any(|x| x.message.contains("refused the events")),
        "{:?}",
        seen.warnings
    );
    let prefs = w.prefs();
    // The server has them, sink two does not: they stay.
    assert_eq!(prefs.outbox.entries.len(), 2);
    assert!(prefs.outbox.entries.iter().all(|e| e.acked));
    assert_eq!(prefs.outbox.sinks.get(&one.display().to_string()), Some(&2));
    assert_eq!(prefs.outbox.sinks.get(&two.display().to_string()), None);
    // Another pass: sink one gets nothing again.
    w.update();
    let taken = |sink: &PathBuf| {
        w.plugins
            .telemetry
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == sink)
            .count()
    };
    assert_eq!(taken(&one), 2);
    assert_eq!(taken(&two), 0);
    w.plugins.failing_sinks.lock().unwrap().clear();
    w.update();
    assert_eq!(taken(&one), 2);
    assert_eq!(taken(&two), 2);
    let prefs = w.prefs();
    assert!(prefs.outbox.entries.is_empty());
    // The server got each event once.
    assert_eq!(received(&w, EventType::Install).len(), 1);
}

#[test]
fn the_cap_drops_the_oldest_with_a_counted_warning() {
    let w = World::with_config(|c| c.outbox_cap = 2);
    w.server.publish(APP, "1.0", &[("app.tar", b"one")], None);
    w.register("1.0");
    // Each pass records a failed check the server could not be told of:
    // its answer fails CUP verification, and so does the event ping's.
    w.server.tamper.store(true, Ordering::SeqCst);
    let mut warnings = Vec::new();
    for _ in 0..4 {
        let mut seen = Recorder::default();
        w.client.update(Selection::All, &mut seen).unwrap();
        warnings.extend(seen.warnings);
    }
    let dropped: Vec<_> = warnings
        .iter()
        .filter(|x| x.message.contains("outbox holds at most 2 events"))
        .collect();
    assert_eq!(dropped.len(), 2, "{warnings:?}");
    assert!(
        dropped[1]
            .message
            .contains("dropped the 1 oldest (2 dropped so far)"),
        "{}",
        dropped[1]
    );
    let prefs = w.prefs();
    assert_eq!(prefs.outbox.entries.len(), 2);
    assert_eq!(prefs.outbox.dropped, 2);
    // The newest are kept.
    let seqs: Vec<u64> = prefs.outbox.entries.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|p| p[0] < p[1]), "{seqs:?}");
    assert_eq!(w.client.status().unwrap().outbox.dropped, 2);
    assert_eq!(w.client.status().unwrap().outbox.unacknowledged, 2);
    w.server.tamper.store(false, Ordering::SeqCst);
    w.update();
    let status = w.client.status().unwrap();
    assert_eq!(status.outbox.pending, 0);
    assert_eq!(status.outbox.dropped, 2, "the count stays");
}

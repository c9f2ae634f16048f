//! The event outbox end to end against the REAL reference server: what the
//! client reports while `upkeep repo serve` is down (a rollback, an app
//! removed, passes that cannot reach it) waits in the outbox in
//! `prefs.json`, and the first update check after the server is back
//! carries it into the server's event store (`upkeep repo events`), each
//! event exactly once.

mod support;

use serde_json::Value;
use support::world::{World, expect_failure, expect_success, text};

const ALPHA: &str = "org.example.alpha";
const BETA: &str = "org.example.beta";

/// The events of `app` the server stored with this type, result 1, and
/// these versions.
fn stored(w: &World, app: &str, event_type: i64, from: &str, to: Option<&str>) -> usize {
    w.app_events(app)
        .iter()
        .filter(|e| {
            e["event_type"] == event_type
                && e["event_result"] == 1
                && e["previous_version"] == from
                && to.map_or(e["next_version"].is_null(), |t| e["next_version"] == t)
        })
        .count()
}

fn status(w: &World) -> Value {
    let out = w.client(&["status", "--json"]);
    serde_json::from_str(&expect_success(&out)).unwrap()
}

#[test]
fn events_recorded_while_the_server_is_down_reach_it_once_it_is_back() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    w.publish(BETA, "1.0", &[("bin/beta", "beta 1.0\n")]);
    w.serve();
    w.register(ALPHA, "0");
    w.register(BETA, "0");
    expect_success(&w.update(&[]));
    w.publish(ALPHA, "2.0", &[("bin/alpha", "alpha 2.0\n")]);
    expect_success(&w.update(&[]));
    assert_eq!(status(&w)["outbox"]["pending"], 0);
    let before = w.events().len();

    w.stop();
    let out = w.client(&["rollback", "--app", ALPHA]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("event ping failed"), "{err}");
    let out = w.client(&["remove", "--app", BETA]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for _ in 0..3 {
        expect_failure(&w.update(&[]), &["unreachable"]);
    }
    let s = status(&w);
    assert_eq!(s["outbox"]["unacknowledged"], 2, "{s:#}");
    let out = w.client(&["status"]);
    assert!(
        text(&out.stdout).contains("outbox      2 event(s) waiting (2 for the server), 0 dropped"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(w.events().len(), before, "nothing reached the server");

    // Back (on another port: the configuration follows it).
    w.serve();
    expect_success(&w.update(&[]));
    assert_eq!(stored(&w, ALPHA, 3, "2.0", Some("1.0")), 1, "the rollback");
    assert_eq!(stored(&w, BETA, 4, "1.0", None), 1, "the removal");
    // The passes that could not reach the server are not reported to it.
    let failures = w
        .app_events(ALPHA)
        .iter()
        .filter(|e| e["event_result"] == 0)
        .count();
    assert_eq!(failures, 0);
    // The update that followed is reported as well, and nothing waits.
    assert_eq!(stored(&w, ALPHA, 3, "1.0", Some("2.0")), 2);
    assert_eq!(status(&w)["outbox"]["pending"], 0);
    let out = w.client(&["status"]);
    assert!(
        !text(&out.stdout).contains("outbox"),
        "{}",
        text(&out.stdout)
    );
    // One more pass sends nothing again.
    expect_success(&w.update(&[]));
    assert_eq!(stored(&w, ALPHA, 3, "2.0", Some("1.0")), 1);
    assert_eq!(stored(&w, BETA, 4, "1.0", None), 1);
}

//! The reference server as a fleet: stock nginx (from the distribution,
//! started and stopped by the tests) as the load balancer in front of two
//! `upkeep repo serve` instances sharing one repository and one event
//! store (a real PostgreSQL cluster, started by the test), and as the
//! static host of the repository's TUF metadata and
//! targets while the Omaha endpoint only decides and signs.

#[path = "../engine/server/tests/support/postgres.rs"]
mod postgres;
mod support;

use std::collections::BTreeSet;

use support::nginx::{Nginx, Site};
use support::upkeep;
use support::world::{Served, World, check_app, expect_success, run_ok};
use upkeep_core::omaha::{Event, EventResult, EventType, RequestApp};
use upkeep_core::version::Version;

const APP: &str = "org.example.fleet";

/// `host:port` of a served instance.
fn addr(s: &Served) -> String {
    s.base.trim_start_matches("http://").to_owned()
}

/// The access-log lines of `path` prefix, as `(status, upstream)`.
fn served(nginx: &Nginx, prefix: &str) -> Vec<(String, String)> {
    nginx
        .access_log()
        .lines()
        .filter_map(|l| {
            let mut parts = l.split(' ');
            let (_, uri, status, upstream) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            uri.starts_with(prefix).then(|| {
                (
                    status.to_owned(),
                    upstream.trim_start_matches("upstream=").to_owned(),
                )
            })
        })
        .collect()
}

#[test]
fn nginx_hosts_the_repository_files_and_the_server_only_decides_and_signs() {
    let w = World::new();
    w.publish(APP, "1.0", &[("app.txt", "one\n")]);
    let server = Served::start(&w.repo, "127.0.0.1:0", &w.path("server.log")).unwrap();
    let nginx = Nginx::start(
        &w.path("nginx"),
        &Site {
            upstreams: &[addr(&server)],
            static_repo: Some(&w.repo),
        },
    );
    // The machine knows only nginx.
    w.write_config(&nginx.base);
    w.register(APP, "0");
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "1.0");
    let installed = w.install_dir(APP).join("current/app.txt");
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), "one\n");

    // A release published afterwards: the static files are new, the server
    // notices timestamp.json, and the machine updates through nginx.
    w.publish(APP, "2.0", &[("app.txt", "two\n")]);
    expect_success(&w.update(&[]));
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), "two\n");

    let omaha = served(&nginx, "/service/");
    assert!(!omaha.is_empty());
    assert!(
        omaha
            .iter()
            .all(|(s, up)| s == "200" && *up == addr(&server)),
        "{omaha:?}"
    );
    for prefix in ["/tuf/", "/targets/"] {
        let files = served(&nginx, prefix);
        assert!(files.iter().any(|(s, _)| s == "200"), "{prefix}: {files:?}");
        assert!(
            files.iter().all(|(_, up)| up == "-"),
            "{prefix} went to the server: {files:?}"
        );
    }
    // The next root version does not exist: nginx says 404, as the client
    // expects of a static host.
    let targets = served(&nginx, "/tuf/");
    assert!(targets.iter().any(|(s, _)| s == "404"), "{targets:?}");
}

/// One signed-less 3.1 update check with an event, through `base`: the
/// status of the answer.
fn check(base: &str, version: &str, cohort: &str, session: &str) -> Result<String, u16> {
    let mut app = RequestApp::new(APP.to_owned(), &version.parse::<Version>().unwrap());
    app.cohort.cohort = Some(cohort.to_owned());
    app.events
        .push(Event::new(EventType::Update, EventResult::Success));
    check_app(base, app, Some(session)).map(|a| a.result_status().to_owned())
}

#[test]
fn two_instances_on_one_postgresql_behind_nginx_answer_alike_and_keep_one_history() {
    let w = World::new();
    w.publish(APP, "1.0", &[("app.txt", "one\n")]);
    w.publish(APP, "2.0", &[("app.txt", "two\n")]);
    run_ok(
        upkeep()
            .args(["repo", "rollout"])
            .arg(&w.repo)
            .args([APP, "2.0", "--percent", "50"]),
    );
    let pg = postgres::Cluster::start();
    let events = ["--events", pg.url.as_str()];
    let a = Served::start_with(&w.repo, "127.0.0.1:0", &w.path("a.log"), &events).unwrap();
    let b = Served::start_with(&w.repo, "127.0.0.1:0", &w.path("b.log"), &events).unwrap();
    let nginx = Nginx::start(
        &w.path("nginx"),
        &Site {
            upstreams: &[addr(&a), addr(&b)],
            static_repo: None,
        },
    );

    // 40 machines, each checking twice through the balancer: the same
    // answer every time, whichever instance answers.
    let mut sessions = BTreeSet::new();
    for m in 0..40u16 {
        let cohort = format!("1:b{}:", m * 250);
        let expected = if m * 250 < 5000 { "ok" } else { "noupdate" };
        for round in 0..2 {
            let session = format!("{{m{m}-r{round}}}");
            assert_eq!(
                check(&nginx.base, "1.0", &cohort, &session).as_deref(),
                Ok(expected),
                "machine {m}"
            );
            sessions.insert(session);
        }
    }
    let upstreams: BTreeSet<String> = served(&nginx, "/service/")
        .into_iter()
        .map(|(_, u)| u)
        .collect();
    assert_eq!(
        upstreams,
        BTreeSet::from([addr(&a), addr(&b)]),
        "both instances answered"
    );

    // A release published while both serve is offered by both.
    w.publish(APP, "3.0", &[("app.txt", "three\n")]);
    for s in [&a, &b] {
        assert_eq!(
            check(&s.base, "2.0", "1:b9999:", "{late}").as_deref(),
            Ok("ok")
        );
    }
    sessions.insert("{late}".to_owned());

    // One history: every acknowledged request's event is stored once.
    let out = run_ok(
        upkeep()
            .args(["repo", "events"])
            .arg(&w.repo)
            .args(["--json", "--app", APP])
            .args(events),
    );
    let stored: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        !w.repo.join("events.sqlite").exists() || w.app_events(APP).is_empty(),
        "events went to SQLite, not PostgreSQL"
    );
    let stored: Vec<String> = stored
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "event")
        .map(|e| e["session_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(stored.len(), sessions.len() + 1, "{stored:?}");
    let distinct: BTreeSet<String> = stored.into_iter().collect();
    assert_eq!(distinct, sessions);
}

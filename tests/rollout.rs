//! Staged rollouts, pause and pull end to end: the real `upkeep repo
//! rollout` / `repo pull`, the real reference server (two instances on one
//! repository), and `upkeep update` with the real `install-archive` plugin.

mod support;

use std::process::Output;

use serde_json::Value;
use support::upkeep;
use support::world::{Served, World, check_app, expect_success, text};
use upkeep_core::omaha::RequestApp;
use upkeep_core::version::Version;

const APP: &str = "org.example.rollout";

fn repo(w: &World, args: &[&str]) -> Output {
    upkeep()
        .arg("repo")
        .args(&args[..1])
        .arg(&w.repo)
        .args(&args[1..])
        .output()
        .unwrap()
}

fn repo_ok(w: &World, args: &[&str]) -> String {
    let out = repo(w, args);
    assert!(out.status.success(), "repo {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The bucket the server gave the app, as the client keeps it.
fn bucket(w: &World) -> u16 {
    let cohort = w.prefs_json()["apps"][APP]["cohort"]["cohort"]
        .as_str()
        .expect("the client keeps the cohort")
        .to_owned();
    cohort
        .strip_prefix("1:b")
        .and_then(|c| c.strip_suffix(':'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cohort {cohort:?} names no bucket"))
}

/// The percentage covering buckets below `n`: `n` hundredths.
fn percent_below(n: u16) -> String {
    format!("{}.{:02}", n / 100, n % 100)
}

fn set_config(w: &World, line: &str) {
    let path = w.etc.join("config.toml");
    let mut config = std::fs::read_to_string(&path).unwrap();
    // Top-level keys go before the first table.
    match config.find("\n[") {
        Some(i) => config.insert_str(i + 1, &format!("{line}\n")),
        None => config.push_str(&format!("{line}\n")),
    }
    std::fs::write(&path, config).unwrap();
}

#[test]
fn a_staged_release_reaches_a_machine_once_its_bucket_is_in_and_a_pull_rolls_it_back() {
    let mut w = World::new();
    w.publish(APP, "1.0", &[("app.txt", "one\n")]);
    w.serve();
    w.register(APP, "0");
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "1.0");
    let b = bucket(&w);

    w.publish(APP, "2.0", &[("app.txt", "two\n")]);
    let out = repo_ok(&w, &["rollout", APP, "2.0", "--percent", &percent_below(b)]);
    assert!(out.contains("offered to "), "{out}");
    for _ in 0..2 {
        let out = expect_success(&w.update(&[]));
        assert_eq!(w.version(APP), "1.0", "bucket {b} is outside: {out}");
        assert_eq!(bucket(&w), b, "the bucket is stable across checks");
    }
    let listed = repo_ok(&w, &["list"]);
    assert!(listed.contains("rollout "), "{listed}");

    // Pausing first, then raising the share past the bucket: still paused.
    repo_ok(&w, &["rollout", APP, "2.0", "--pause"]);
    repo_ok(
        &w,
        &["rollout", APP, "2.0", "--percent", &percent_below(b + 1)],
    );
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "1.0", "a paused rollout offers nothing");
    let shown = repo_ok(&w, &["rollout", APP, "2.0", "--json"]);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["rollout"]["paused"], true);
    assert_eq!(shown["offered_to_percent"], 0.0);

    repo_ok(&w, &["rollout", APP, "2.0", "--resume"]);
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "2.0", "bucket {b} is inside now");
    let installed = w.install_dir(APP).join("current/app.txt");
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), "two\n");

    // Pulled: no rollback unless the machine allows one.
    let out = repo_ok(&w, &["pull", APP, "2.0"]);
    assert!(out.contains("pulled"), "{out}");
    assert!(repo_ok(&w, &["list"]).contains("rollout pulled"));
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "2.0");

    set_config(&w, "rollback_allowed = true");
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "1.0", "rolled back from the pulled release");
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), "one\n");
    let events = w.app_events(APP);
    assert!(
        events.iter().any(|e| e["event_type"] == 3
            && e["event_result"] == 1
            && e["previous_version"] == "2.0"
            && e["next_version"] == "1.0"),
        "no update event 2.0 -> 1.0: {events:#?}"
    );
    // And it stays there: 1.0 is what the machine is offered.
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "1.0");

    // The pull taken back: 2.0 is offered again.
    repo_ok(&w, &["pull", APP, "2.0", "--undo"]);
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "2.0");
    w.stop();
}

/// One signed-less 3.1 update check for `APP` at `version` with `cohort`:
/// the status and cohort of the answer.
fn check(base: &str, version: &str, cohort: Option<&str>) -> (String, Option<String>) {
    let mut app = RequestApp::new(APP.to_owned(), &version.parse::<Version>().unwrap());
    app.cohort.cohort = cohort.map(str::to_owned);
    let app = check_app(base, app, None).expect("answered 200");
    (app.result_status().to_owned(), app.cohort.cohort.clone())
}

#[test]
fn two_instances_on_one_repository_place_machines_alike_and_follow_changes() {
    let w = World::new();
    w.publish(APP, "1.0", &[("app.txt", "one\n")]);
    w.publish(APP, "2.0", &[("app.txt", "two\n")]);
    repo_ok(&w, &["rollout", APP, "2.0", "--percent", "30"]);
    let a = Served::start(&w.repo, "127.0.0.1:0", &w.path("a.log")).unwrap();
    let b = Served::start(&w.repo, "127.0.0.1:0", &w.path("b.log")).unwrap();

    // A new machine gets a bucket from whichever instance answers first;
    // the other places it alike.
    let (_, cohort) = check(&a.base, "1.0", None);
    let cohort = cohort.expect("a cohort is assigned");
    let mut offered = 0;
    for n in [0u16, 2999, 3000, 9999] {
        let c = format!("1:b{n}:");
        let from_a = check(&a.base, "1.0", Some(&c));
        let from_b = check(&b.base, "1.0", Some(&c));
        assert_eq!(from_a, from_b, "bucket {n}");
        assert_eq!(from_a.1.as_deref(), Some(c.as_str()), "the bucket is kept");
        let expect = if n < 3000 { "ok" } else { "noupdate" };
        assert_eq!(from_a.0, expect, "bucket {n} at 30%");
        offered += usize::from(from_a.0 == "ok");
    }
    assert_eq!(offered, 2);
    assert_eq!(
        check(&b.base, "1.0", Some(&cohort)).1.as_deref(),
        Some(cohort.as_str())
    );

    // A change made while both serve reaches both with their next request.
    repo_ok(&w, &["rollout", APP, "2.0", "--percent", "100"]);
    for s in [&a, &b] {
        assert_eq!(check(&s.base, "1.0", Some("1:b9999:")).0, "ok");
    }
    repo_ok(&w, &["pull", APP, "2.0"]);
    for s in [&a, &b] {
        assert_eq!(check(&s.base, "1.0", Some("1:b0:")).0, "noupdate");
    }

    // A hand edit gone wrong: servers keep what they last read, the verbs
    // refuse it and leave the file alone.
    let path = w.repo.join("rollouts.json");
    std::fs::write(&path, b"{ not json").unwrap();
    for s in [&a, &b] {
        assert_eq!(check(&s.base, "1.0", Some("1:b0:")).0, "noupdate");
    }
    for args in [
        &["rollout", APP, "2.0", "--percent", "5"][..],
        &["pull", APP, "2.0", "--undo"][..],
        &["list"][..],
    ] {
        let out = repo(&w, args);
        assert!(
            !out.status.success(),
            "{args:?} accepted a malformed rollouts.json"
        );
        assert!(
            text(&out.stderr).contains("rollouts.json"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"{ not json");
    }
}

#[test]
fn rollouts_of_unpublished_releases_and_bad_percentages_are_refused_and_change_nothing() {
    let w = World::new();
    w.publish(APP, "1.0", &[("app.txt", "one\n")]);
    let out = repo(&w, &["rollout", APP, "9.9", "--percent", "10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("no release {APP} 9.9 is published")),
        "{}",
        text(&out.stderr)
    );
    let out = repo(&w, &["pull", "org.example.nobody", "1.0"]);
    assert_eq!(out.status.code(), Some(1));
    for bad in ["101", "-5", "12.345", "ten", "50%"] {
        let flag = format!("--percent={bad}");
        let out = repo(&w, &["rollout", APP, "1.0", &flag]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("percentage"),
            "{}",
            text(&out.stderr)
        );
    }
    let out = repo(&w, &["rollout", APP, "1.0", "--pause", "--resume"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !w.repo.join("rollouts.json").exists(),
        "a refusal wrote the rollout state"
    );
    // Asking where a release stands writes nothing either.
    let out = repo_ok(&w, &["rollout", APP, "1.0"]);
    assert!(out.contains("offered to every machine"), "{out}");
    assert!(!w.repo.join("rollouts.json").exists());
}

//! The enterprise policy end to end with the real binary, the real
//! reference server and the real `install-archive` plugin: `upkeep policy`
//! and its sources, a file ignored as a whole, a pin the server moves an
//! app down to only when the policy allows the rollback, disabled updates,
//! a blocked install, and every request through the policy's proxy.

mod support;

use serde_json::Value;
use support::proxy::Proxy;
use support::world::{World, expect_failure, expect_success, text};

const APP: &str = "org.example.governed";

fn write_policy(w: &World, policy: &str) {
    std::fs::write(w.state.join("policy.toml"), policy).unwrap();
}

/// A world serving `APP` 1.0 and 2.0, the app installed at 2.0.
fn installed_at_two() -> World {
    let mut w = World::new();
    w.publish(APP, "1.0", &[("version.txt", "one\n")]);
    w.publish(APP, "2.0", &[("version.txt", "two\n")]);
    w.serve();
    w.register(APP, "0");
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "2.0");
    w
}

fn installed_text(w: &World) -> String {
    std::fs::read_to_string(w.install_dir(APP).join("current/version.txt")).unwrap()
}

#[test]
fn upkeep_policy_shows_every_value_and_where_it_comes_from() {
    let w = installed_at_two();
    write_policy(
        &w,
        &format!(
            "check_period_minutes = 45\nproxy = \"direct\"\n[updates_suppressed]\nstart = \"08:30\"\n\
             duration_minutes = 90\n[defaults]\nupdate = \"manual-only\"\n[apps.\"{APP}\"]\n\
             target_version_prefix = \"1.\"\nrollback_to_target = true\n\
             [apps.\"org.example.elsewhere\"]\ninstall = \"blocked\"\n"
        ),
    );
    let out = expect_success(&w.client(&["policy"]));
    for line in [
        "(loaded)",
        "45 min",
        "policy check_period_minutes",
        "from 08:30 for 90 min",
        "direct",
        "policy proxy",
        &format!("app {APP}"),
        "manual-only",
        "policy defaults.update",
        &format!("policy apps.\"{APP}\".target_version_prefix"),
        "app org.example.elsewhere",
        "policy apps.\"org.example.elsewhere\".install",
    ] {
        assert!(out.contains(line), "{line:?} not in\n{out}");
    }
    let json: Value =
        serde_json::from_str(&expect_success(&w.client(&["policy", "--json"]))).unwrap();
    assert_eq!(json["state"], "loaded");
    assert_eq!(json["check_period_minutes"]["value"], 45);
    let app = json["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == APP)
        .unwrap();
    assert_eq!(app["rollback_allowed"]["value"], true);
    assert_eq!(app["install"]["source"], "default");
    assert_eq!(app["channel"]["source"], "default");
    // Without a file: every value is the configuration's or the default.
    std::fs::remove_file(w.state.join("policy.toml")).unwrap();
    let json: Value =
        serde_json::from_str(&expect_success(&w.client(&["policy", "--json"]))).unwrap();
    assert_eq!(json["state"], "absent");
    assert_eq!(json["check_period_minutes"]["value"], 300);
    assert_eq!(json["proxy"]["value"], "system");
}

#[test]
fn an_invalid_policy_file_is_reported_and_nothing_of_it_applies() {
    let mut w = World::new();
    w.publish(APP, "1.0", &[("version.txt", "one\n")]);
    w.serve();
    w.register(APP, "0");
    // Valid but for the last key: installs would be blocked if it were half applied.
    write_policy(
        &w,
        "[defaults]\ninstall = \"blocked\"\nupdate = \"sometimes\"\n",
    );
    let out = w.client(&["policy"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("ignored as a whole") && err.contains("sometimes"),
        "{err}"
    );
    assert!(text(&out.stdout).contains("(ignored)"));
    let out = w.update(&[]);
    let stdout = expect_success(&out);
    assert!(stdout.contains("installed 1.0"), "{stdout}");
    assert!(
        text(&out.stderr).contains("ignored as a whole"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_pinned_app_moves_down_only_when_the_policy_allows_the_rollback() {
    let w = installed_at_two();
    write_policy(
        &w,
        &format!("[apps.\"{APP}\"]\ntarget_version_prefix = \"1\"\n"),
    );
    let out = expect_success(&w.update(&[]));
    assert!(out.contains("up to date at 2.0"), "{out}");
    assert_eq!(installed_text(&w), "two\n");
    write_policy(
        &w,
        &format!("[apps.\"{APP}\"]\ntarget_version_prefix = \"1\"\nrollback_to_target = true\n"),
    );
    let out = expect_success(&w.update(&[]));
    assert!(out.contains("updated 2.0 -> 1.0"), "{out}");
    assert_eq!(w.version(APP), "1.0");
    assert_eq!(installed_text(&w), "one\n");
    // On its pin it stays, though 2.0 is newer.
    let out = expect_success(&w.update(&[]));
    assert!(out.contains("up to date at 1.0"), "{out}");
}

#[test]
fn disabled_updates_and_blocked_installs_change_nothing() {
    let w = installed_at_two();
    w.publish(APP, "3.0", &[("version.txt", "three\n")]);
    write_policy(
        &w,
        &format!("[defaults]\ninstall = \"blocked\"\n[apps.\"{APP}\"]\nupdate = \"disabled\"\n"),
    );
    let out = expect_success(&w.update(&["--json"]));
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["apps"][0]["result"], "held");
    assert_eq!(json["apps"][0]["hold"], "updates-disabled");
    assert_eq!(w.version(APP), "2.0");
    assert_eq!(installed_text(&w), "two\n");

    let before = w.prefs();
    let other = w.install_dir("org.example.other");
    let out = w.client(&[
        "install",
        "--app",
        "org.example.other",
        "--install-dir",
        other.to_str().unwrap(),
        "--installer",
        support::plugin_path("install-archive").to_str().unwrap(),
        "--no-setup",
    ]);
    expect_failure(
        &out,
        &["installing org.example.other is blocked by policy defaults.install"],
    );
    assert_eq!(w.prefs(), before);
    assert!(!other.exists());
}

#[test]
fn every_request_goes_through_the_policy_proxy() {
    let mut w = World::new();
    w.publish(APP, "1.0", &[("version.txt", "one\n")]);
    w.serve();
    w.register(APP, "0");
    let proxy = Proxy::start();
    write_policy(&w, &format!("proxy = {:?}\n", proxy.url));
    let out = expect_success(&w.update(&[]));
    assert!(out.contains("installed 1.0"), "{out}");
    let seen = proxy.seen();
    let base = w.base();
    assert!(
        seen.iter().any(|l| l.starts_with(&format!("POST {base}/"))),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with(&format!("GET {base}/")) && l.contains("app.tar.gz")),
        "the download went through the proxy too: {seen:?}"
    );
    // A proxy that is not there: the check fails, nothing changes.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    write_policy(&w, &format!("proxy = {url:?}\n"));
    let before = w.prefs();
    let out = w.update(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("127.0.0.1"),
        "{}",
        text(&out.stderr)
    );
    let after: Value = serde_json::from_slice(&w.prefs()).unwrap();
    let before: Value = serde_json::from_slice(&before).unwrap();
    assert_eq!(after["apps"], before["apps"]);
}

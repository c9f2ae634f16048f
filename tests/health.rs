//! Health-gated updates end to end with the real binary, the real
//! reference server and the real plugins: a new version whose health check
//! fails once it is live (the `qualify-selftest` plugin, or an app command)
//! is switched back, reported to the server and not installed again until
//! a newer version, which passes, is published.

mod support;

use support::plugin_path;
use support::world::{World, expect_success, text};

const APP: &str = "org.example.checked";

/// The update events of `APP` the server stored with `errorcode`.
fn failures_with(w: &World, code: i64) -> usize {
    w.app_events(APP)
        .iter()
        .filter(|e| e["event_type"] == 3 && e["event_result"] == 0 && e["error_code"] == code)
        .count()
}

fn live_version_file(w: &World) -> String {
    std::fs::read_to_string(w.install_dir(APP).join("current/VERSION")).unwrap()
}

/// Publishes `APP` `version` whose VERSION file says `says`.
fn publish(w: &World, version: &str, says: &str) {
    w.publish(APP, version, &[("VERSION", &format!("{says}\n"))]);
}

fn gated(health: &[&str]) -> World {
    let mut w = World::new();
    publish(&w, "1.0", "1.0");
    w.serve();
    w.register_with(APP, "0", &plugin_path("install-archive"), health);
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "1.0");
    w
}

fn fails_then_recovers(w: &World, why: &str) {
    // 2.0 installs fine but is broken once live.
    publish(w, "2.0", "1.9");
    let out = w.update(&[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("2.0 failed its health check") && err.contains(why),
        "{err}"
    );
    assert!(err.contains("switched back to 1.0"), "{err}");
    assert_eq!(w.version(APP), "1.0");
    assert_eq!(live_version_file(w), "1.0\n");
    assert!(!w.install_dir(APP).join("versions/2.0").exists());
    assert_eq!(failures_with(w, 3), 1, "{:?}", w.app_events(APP));
    let prefs = w.prefs_json();
    assert_eq!(prefs["apps"][APP]["rejected"][0]["version"], "2.0");

    // Offered again: not installed.
    let out = w.update(&[]);
    let stdout = expect_success(&out);
    assert!(stdout.contains("up to date at 1.0"), "{stdout}");
    assert!(
        text(&out.stderr).contains("not installed again"),
        "{}",
        text(&out.stderr)
    );

    // A newer release that works is installed and kept.
    publish(w, "3.0", "3.0");
    let stdout = expect_success(&w.update(&[]));
    assert!(stdout.contains("updated 1.0 -> 3.0"), "{stdout}");
    assert_eq!(live_version_file(w), "3.0\n");
    let prefs = w.prefs_json();
    assert!(prefs["apps"][APP].get("rejected").is_none(), "{prefs}");
    assert!(
        prefs["apps"][APP].get("health_pending").is_none(),
        "{prefs}"
    );
}

#[test]
fn a_plugin_health_check_switches_a_broken_release_back() {
    let check = plugin_path("qualify-selftest");
    let w = gated(&[
        "--health-check",
        check.to_str().unwrap(),
        "--setting",
        "sums-required=false",
    ]);
    fails_then_recovers(&w, "VERSION says \"1.9\", expected \"2.0\"");
}

#[test]
fn an_app_command_health_check_switches_a_broken_release_back() {
    // The command runs in the live version's directory, without a shell
    // of its own: grep exits 1 when VERSION is not the one published.
    let w = gated(&[
        "--command",
        "selftest=/bin/grep -qx -e 1.0 -e 3.0 VERSION",
        "--health-check-command",
        "selftest",
        "--health-timeout",
        "20",
    ]);
    fails_then_recovers(&w, "exited with 1");
}

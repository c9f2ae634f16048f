//! `upkeep demo` end to end: the README's main job must work.

mod support;

use support::{plugin_path, upkeep};

#[test]
fn the_demo_installs_updates_and_reports() {
    let plugins = plugin_path("install-archive")
        .parent()
        .expect("plugin dir")
        .to_path_buf();
    let work = tempfile::tempdir().unwrap();
    let out = upkeep()
        .arg("demo")
        .arg("--plugins")
        .arg(&plugins)
        .arg("--keep")
        .arg(work.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for expected in [
        "the app says: hello from org.example.hello 1.0",
        "the app says: hello from org.example.hello 2.0",
        "files only 1.0 had were removed: yes",
        "/machine/apps/hello/current/bin/hello -> versions/2.0",
        "1.0 is kept in versions/1.0 for `upkeep rollback`: yes",
        "update served over IPC by",
        "org.example.hello 3.0: offered to ",
        "so the share leaves it out",
        "the app says: hello from org.example.hello 3.0",
        "the app says: hello from org.example.hello 2.0 (rolled back",
        "org.example.hello 3.0: rollout pulled, ",
        "installed org.example.notes 1.0 from the offline folder",
        "the app says: hello from org.example.notes 1.0",
        "org.example.notes: up to date at 1.0",
        "org.example.notes: stays at 1.0: updates are disabled by policy",
        "policy apps.\"org.example.notes\".update",
        "org.example.notes: updated 1.0 -> 1.1",
        "1.2 failed its health check",
        "the app says: hello from org.example.notes 1.1",
        "org.example.notes: updated 1.1 -> 1.3",
        "the app says: hello from org.example.notes 1.3",
        "patch hello-1.4.tar.gz.from-1.3.zpatch",
        "from hello-1.4.tar.gz.from-1.3.zpatch instead of the",
        "the app says: hello from org.example.notes 1.4",
        "exits: asked to stop (SIGTERM)",
        "demo complete",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The machine's state says 2.0 was the last version before the app was deleted,
    // and the app is forgotten now.
    let prefs = std::fs::read_to_string(work.path().join("machine/state/prefs.json")).unwrap();
    assert!(
        !prefs.contains("org.example.hello"),
        "the deleted app is forgotten: {prefs}"
    );
    // The telemetry sink saw the install and the update.
    let events = std::fs::read_to_string(
        work.path()
            .join("machine/state/telemetry/telemetry-jsonl/events.jsonl"),
    )
    .unwrap();
    let lines: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|e| e["eventtype"] == 2 && e["nextversion"] == "1.0" && e["eventresult"] == 1),
        "{events}"
    );
    assert!(
        lines
            .iter()
            .any(|e| e["eventtype"] == 3 && e["nextversion"] == "2.0" && e["eventresult"] == 1),
        "{events}"
    );
}

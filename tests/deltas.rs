//! Differential updates end to end with the real binary, the real
//! reference server and the real `install-archive` plugin: a release
//! published with `repo add --delta-from` reaches a machine on the older
//! release as a patch (fewer bytes, the ping says `diffresult` 1), and a
//! corrupt patch or a damaged copy of the old file falls back to the full
//! download in the same pass and installs the right bytes.

mod support;

use serde_json::Value;
use support::world::{World, expect_success, noise, run_ok, tar_gz, text};

const APP: &str = "org.example.delta";

/// The release archive of `version`: two megabytes that stay the same,
/// then a file saying the version (last, so the archives share all but
/// their ends).
fn archive(big: &[u8], version: &str) -> Vec<u8> {
    tar_gz(&[
        ("data/big.bin", big),
        ("version.txt", format!("{version}\n").as_bytes()),
    ])
}

fn add(w: &World, version: &str, bytes: &[u8], extra: &[&str]) -> String {
    let dir = w.path(&format!("payloads/{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.tar.gz");
    std::fs::write(&file, bytes).unwrap();
    run_ok(
        support::upkeep()
            .args(["repo", "add"])
            .arg(&w.repo)
            .args(["--app", APP, "--version", version])
            .args(extra)
            .arg(&file),
    )
}

/// A machine on 1.0, with 2.0 published with a patch from 1.0.
fn on_one_with_patch() -> (World, usize) {
    let mut w = World::new();
    let big = noise(2 << 20);
    add(&w, "1.0", &archive(&big, "1.0"), &[]);
    w.serve();
    w.register(APP, "0");
    expect_success(&w.update(&[]));
    assert_eq!(installed_version(&w), "1.0\n");
    let two = archive(&big, "2.0");
    let out = add(&w, "2.0", &two, &["--delta-from", "1.0"]);
    assert!(out.contains("patch app.tar.gz.from-1.0.zpatch"), "{out}");
    (w, two.len())
}

fn installed_version(w: &World) -> String {
    std::fs::read_to_string(w.install_dir(APP).join("current/version.txt")).unwrap()
}

/// The update's summary and the diff fields of its stored update event.
fn update_to_two(w: &World) -> (Value, Value) {
    let out = expect_success(&w.update(&["--json"]));
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["apps"][0]["version"], "2.0", "{summary:#}");
    assert_eq!(installed_version(w), "2.0\n");
    let event = w
        .app_events(APP)
        .into_iter()
        .rev()
        .find(|e| e["event_type"] == 3 && e["next_version"] == "2.0")
        .expect("the update event");
    (summary, event["detail"].clone())
}

#[test]
fn a_machine_on_the_older_release_updates_by_patch() {
    let (w, full) = on_one_with_patch();
    let listed = run_ok(support::upkeep().args(["repo", "list"]).arg(&w.repo));
    assert!(
        listed.contains("apps/org.example.delta/2.0/app.tar.gz.from-1.0.zpatch"),
        "{listed}"
    );
    let (summary, detail) = update_to_two(&w);
    let download = &summary["apps"][0]["downloads"][0];
    let moved = download["downloaded_bytes"].as_u64().unwrap();
    assert!(moved * 20 < full as u64, "{moved} bytes moved of {full}");
    assert!(
        download["url"].as_str().unwrap().ends_with(".zpatch"),
        "{download}"
    );
    assert_eq!(detail["diffresult"], "1", "{detail}");
}

#[test]
fn a_4_0_client_takes_the_diff_pipeline() {
    let (w, full) = on_one_with_patch();
    let config = w.etc.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let four = text.replace("protocol = \"3.1\"", "protocol = \"4.0\"");
    assert_ne!(four, text, "{text}");
    std::fs::write(&config, four).unwrap();
    // What the server answers a 4.0 request naming 1.0's file.
    let cached = w.state.join("downloads").join(APP).join("1.0/app.tar.gz");
    let fp = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&cached).unwrap(),
    ));
    let mut app = upkeep_core::omaha::RequestApp::new(APP, &"1.0".parse().unwrap());
    app.updatecheck = Some(Default::default());
    app.packages = vec![fp.clone()];
    let answer =
        support::world::check_app_in(&w.base(), upkeep_core::omaha::Protocol::Json40, app, None)
            .unwrap();
    let pipelines = &answer.updatecheck.as_ref().unwrap().pipelines;
    let ids: Vec<_> = pipelines
        .iter()
        .map(|p| p.pipeline_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["diff", "full"]);
    let kinds: Vec<_> = pipelines[0]
        .operations
        .iter()
        .map(|o| o.kind.as_str())
        .collect();
    assert_eq!(kinds, ["download", "upkeep_patch", "run"]);
    assert_eq!(
        pipelines[0].operations[1].sha256_previous.as_deref(),
        Some(fp.as_str())
    );
    // The client takes the diff pipeline.
    let (summary, detail) = update_to_two(&w);
    let download = &summary["apps"][0]["downloads"][0];
    let moved = download["downloaded_bytes"].as_u64().unwrap();
    assert!(moved * 20 < full as u64, "{moved} bytes moved of {full}");
    assert!(
        download["url"].as_str().unwrap().ends_with(".zpatch"),
        "{download}"
    );
    assert_eq!(detail["diffresult"], "1", "{detail}");
}

#[test]
fn a_corrupt_patch_falls_back_to_the_full_file() {
    let (w, full) = on_one_with_patch();
    // Every copy of the patch the server serves is damaged.
    let dir = w.repo.join("targets/apps/org.example.delta/2.0");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let path = entry.path();
        if path.to_string_lossy().ends_with(".zpatch") {
            let mut bytes = std::fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x5a;
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let (summary, detail) = update_to_two(&w);
    let moved = summary["apps"][0]["downloads"][0]["downloaded_bytes"]
        .as_u64()
        .unwrap();
    assert_eq!(moved, full as u64, "the full file was fetched");
    assert_eq!(detail["diffresult"], "0", "{detail}");
    assert_eq!(detail["differrorcode"], "3", "{detail}");
}

#[test]
fn a_damaged_old_file_falls_back_and_a_missing_one_asks_for_no_patch() {
    let (w, full) = on_one_with_patch();
    let cached = w.state.join("downloads/org.example.delta/1.0/app.tar.gz");
    std::fs::write(&cached, b"not the old release").unwrap();
    let (summary, detail) = update_to_two(&w);
    assert_eq!(
        summary["apps"][0]["downloads"][0]["downloaded_bytes"],
        full as u64
    );
    assert_eq!(detail["differrorcode"], "4", "{detail}");

    let (w, full) = on_one_with_patch();
    std::fs::remove_file(w.state.join("downloads/org.example.delta/1.0/app.tar.gz")).unwrap();
    let (summary, detail) = update_to_two(&w);
    assert_eq!(
        summary["apps"][0]["downloads"][0]["downloaded_bytes"],
        full as u64
    );
    assert!(
        detail.get("diffresult").is_none(),
        "no patch was offered: {detail}"
    );
    let _ = text;
}

#[test]
fn a_repository_setting_patches_from_the_last_releases() {
    let w = World::new();
    let settings = w.repo.join("repo.toml");
    let text = std::fs::read_to_string(&settings).unwrap();
    // A top-level key: before any [table] of repo.toml.
    std::fs::write(&settings, format!("delta_from_last = 2\n{text}")).unwrap();
    let big = noise(1 << 20);
    let out = add(&w, "1.0", &archive(&big, "1.0"), &[]);
    assert!(!out.contains("patch"), "nothing to patch from: {out}");
    add(&w, "1.1", &archive(&big, "1.1"), &[]);
    add(&w, "1.2", &archive(&big, "1.2"), &[]);
    let out = add(&w, "1.3", &archive(&big, "1.3"), &[]);
    assert!(out.contains("app.tar.gz.from-1.2.zpatch"), "{out}");
    assert!(out.contains("app.tar.gz.from-1.1.zpatch"), "{out}");
    assert!(!out.contains("from-1.0"), "only the last two: {out}");
}

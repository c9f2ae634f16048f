//! Attacks and faults end to end against the REAL reference server: every
//! test creates a repository with `upkeep repo init`, publishes releases with
//! `upkeep repo add`, runs `upkeep repo serve` on 127.0.0.1 as a child
//! process, points a client state directory at it (the repository's own
//! `client/` bundle with the real URL), registers apps with the real
//! installer plugins and runs `upkeep update`.
//!
//! A failing run must exit 1, say what failed on stderr, leave `prefs.json`
//! and the install directories byte for byte as they were, and (when the
//! server answered) report the error in the event ping the server stored
//! (`upkeep repo events DIR --json`).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::world::{
    World, copy_dir, expect_failure, expect_success, noise, run_ok, tar_gz, text, tree,
};
use support::{plugin_path, upkeep};
use upkeep_core::omaha::ErrorCategory;
use upkeep_core::omaha::codes::{download, install, service};

const ALPHA: &str = "org.example.alpha";
const BRAVO: &str = "org.example.bravo";
const CHARLIE: &str = "{6f0e3e2c-52f4-4c59-9a8b-5d1e2a9c0b11}";

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[test]
fn three_apps_install_and_update_in_one_request() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    w.publish(BRAVO, "2.5", &[("bravo.txt", "bravo 2.5\n")]);
    w.publish(CHARLIE, "1.0", &[("charlie.txt", "charlie 1.0\n")]);
    w.publish(
        CHARLIE,
        "2.0",
        &[("charlie.txt", "charlie 2.0\n"), ("doc/NEWS", "news\n")],
    );
    w.serve();
    w.register(ALPHA, "0");
    w.register(BRAVO, "0");
    // Charlie is installed; its existence checker finds the marker.
    w.register_with(
        CHARLIE,
        "1.0",
        &plugin_path("install-archive"),
        &[
            "--existence",
            plugin_path("exists-path").to_str().unwrap(),
            "--marker",
            "keep.txt",
        ],
    );
    let c_dir = w.install_dir(CHARLIE);
    std::fs::create_dir_all(&c_dir).unwrap();
    std::fs::write(c_dir.join("keep.txt"), "charlie settings\n").unwrap();

    let stdout = expect_success(&w.update(&[]));
    assert!(
        stdout.contains(&format!("{ALPHA}: installed 1.0")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{BRAVO}: installed 2.5")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{CHARLIE}: updated 1.0 -> 2.0")),
        "{stdout}"
    );

    // The server stored one request's events for all three apps.
    let events: Vec<Value> = w
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "event")
        .collect();
    let requests: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(requests.len(), 1, "{events:#?}");
    for (id, kind, from, to) in [
        (ALPHA, 2, None, "1.0"),
        (BRAVO, 2, None, "2.5"),
        (CHARLIE, 3, Some("1.0"), "2.0"),
    ] {
        let e = events
            .iter()
            .find(|e| e["app_id"] == id && e["event_type"] == kind)
            .unwrap_or_else(|| panic!("no event {kind} for {id}: {events:#?}"));
        assert_eq!(e["event_result"], 1, "{e:#}");
        assert_eq!(e["next_version"], to, "{e:#}");
        if let Some(from) = from {
            assert_eq!(e["previous_version"], from, "{e:#}");
        }
        assert!(
            events
                .iter()
                .any(|d| d["app_id"] == id && d["event_type"] == 14 && d["event_result"] == 1),
            "no download event for {id}: {events:#?}"
        );
    }

    // Installed by the real plugin into versions/<v>/, launched through
    // current, recorded in prefs. Charlie's files from before the engine
    // managed its versions stay where they were.
    let read = |id: &str, f: &str| std::fs::read_to_string(w.install_dir(id).join(f)).unwrap();
    assert_eq!(read(ALPHA, "current/bin/alpha"), "alpha 1.0\n");
    assert_eq!(read(BRAVO, "current/bravo.txt"), "bravo 2.5\n");
    assert_eq!(read(CHARLIE, "current/charlie.txt"), "charlie 2.0\n");
    assert_eq!(read(CHARLIE, "current/doc/NEWS"), "news\n");
    assert_eq!(read(CHARLIE, "keep.txt"), "charlie settings\n");
    for (id, v) in [(ALPHA, "1.0"), (BRAVO, "2.5"), (CHARLIE, "2.0")] {
        assert_eq!(
            std::fs::read_link(w.install_dir(id).join("current")).unwrap(),
            Path::new("versions").join(v)
        );
    }
    assert_eq!(w.version(ALPHA), "1.0");
    assert_eq!(w.version(BRAVO), "2.5");
    assert_eq!(w.version(CHARLIE), "2.0");

    // A second run finds all three up to date and changes no install.
    let installs = tree(&w.installs);
    let stdout = expect_success(&w.update(&[]));
    for (id, v) in [(ALPHA, "1.0"), (BRAVO, "2.5"), (CHARLIE, "2.0")] {
        assert!(
            stdout.contains(&format!("{id}: up to date at {v}")),
            "{stdout}"
        );
    }
    assert_eq!(tree(&w.installs), installs);
    assert_eq!(
        w.events().iter().filter(|e| e["kind"] == "event").count(),
        events.len(),
        "an up-to-date run sends no events"
    );
}

#[test]
fn older_signed_metadata_is_refused_as_a_rollback() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.publish(BRAVO, "1.0", &[("bravo.txt", "bravo 1.0\n")]);
    // The metadata as it was after this publication: validly signed.
    let old = w.path("metadata-old");
    copy_dir(&w.repo.join("metadata"), &old);
    w.publish(ALPHA, "2.0", &[("alpha.txt", "alpha 2.0\n")]);
    w.serve();
    w.register(ALPHA, "0");
    expect_success(&w.update(&[]));
    assert_eq!(w.version(ALPHA), "2.0");

    // The server's metadata is replaced by the older copy; it offers
    // bravo 1.0, which the older metadata lists too.
    w.register(BRAVO, "0");
    let md = w.repo.join("metadata");
    std::fs::remove_dir_all(&md).unwrap();
    copy_dir(&old, &md);
    let before = w.snapshot();
    let trusted = std::fs::read(w.state.join("tuf/timestamp.json")).unwrap();
    let out = w.update(&["--app", BRAVO]);
    expect_failure(
        &out,
        &[
            &format!("error: {BRAVO}: TUF refresh from"),
            "timestamp.json: version 3 is lower than the trusted version 4 (rollback)",
        ],
    );
    w.assert_unchanged(&before);
    assert_eq!(
        std::fs::read(w.state.join("tuf/timestamp.json")).unwrap(),
        trusted,
        "the trusted timestamp was replaced"
    );
    assert!(!w.state.join(format!("downloads/{BRAVO}")).exists());
    w.assert_error_event(BRAVO, ErrorCategory::Download, download::TUF_REFRESH);
}

#[test]
fn a_client_follows_root_and_targets_key_rotations() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.serve();
    w.register(ALPHA, "0");
    expect_success(&w.update(&[]));
    assert_eq!(w.version(ALPHA), "1.0");
    let pinned = std::fs::read(w.etc.join("root.json")).unwrap();

    let rotate = |role: &str| {
        run_ok(
            upkeep()
                .args(["repo", "rotate"])
                .arg(&w.repo)
                .args(["--role", role]),
        )
    };
    let out = rotate("root");
    assert!(out.contains("root key "), "{out}");
    assert!(out.contains("root version 2 published"), "{out}");
    assert!(out.contains("retired key file: "), "{out}");
    assert!(w.repo.join("keys/retired/root-1.v1.key").is_file());
    let out = rotate("targets");
    assert!(out.contains("targets key "), "{out}");
    assert!(out.contains("root version 3 published"), "{out}");
    assert!(w.repo.join("keys/retired/targets.v2.key").is_file());
    w.publish(ALPHA, "2.0", &[("alpha.txt", "alpha 2.0\n")]);

    // The client still pins root 1 in its configuration; it walks roots 2
    // and 3 and accepts the targets signed by the new key.
    assert_eq!(std::fs::read(w.etc.join("root.json")).unwrap(), pinned);
    expect_success(&w.update(&[]));
    assert_eq!(w.version(ALPHA), "2.0");
    let root_version = |path: &Path| -> u64 {
        let root: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        root["signed"]["version"].as_u64().unwrap()
    };
    assert_eq!(root_version(&w.state.join("tuf/root.json")), 3);

    // `upkeep tuf` from the original root does the same.
    let md = w.path("tuf-client");
    let root_file = w.path("root-v1.json");
    std::fs::write(&root_file, &pinned).unwrap();
    run_ok(
        upkeep()
            .arg("tuf")
            .arg("--metadata-dir")
            .arg(&md)
            .arg("init")
            .arg(&root_file),
    );
    run_ok(
        upkeep()
            .arg("tuf")
            .arg("--metadata-url")
            .arg(format!("{}/tuf/", w.base()))
            .arg("--metadata-dir")
            .arg(&md)
            .arg("refresh"),
    );
    assert_eq!(root_version(&md.join("root.json")), 3);
}

#[test]
fn an_expired_timestamp_is_refused_as_a_freeze() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.serve();
    w.register(ALPHA, "0");
    expect_success(&w.update(&[]));

    // `expiry_days` are whole days: 0 makes the new timestamp expire the
    // second it is signed (expiry dates are whole seconds, and a date that
    // is not in the future has expired).
    w.set_timestamp_expiry_days(0);
    w.publish(ALPHA, "2.0", &[("alpha.txt", "alpha 2.0\n")]);
    let before = w.snapshot();
    let trusted = std::fs::read(w.state.join("tuf/timestamp.json")).unwrap();
    let out = w.update(&[]);
    expect_failure(
        &out,
        &[
            &format!("error: {ALPHA}: TUF refresh from"),
            "timestamp.json: expired at",
        ],
    );
    w.assert_unchanged(&before);
    assert_eq!(
        std::fs::read(w.state.join("tuf/timestamp.json")).unwrap(),
        trusted,
        "the expired timestamp became trusted"
    );
    w.assert_error_event(ALPHA, ErrorCategory::Download, download::TUF_REFRESH);

    // A fresh timestamp (`repo refresh`) lets the update through.
    w.set_timestamp_expiry_days(7);
    run_ok(upkeep().args(["repo", "refresh"]).arg(&w.repo));
    let stdout = expect_success(&w.update(&[]));
    assert!(
        stdout.contains(&format!("{ALPHA}: updated 1.0 -> 2.0")),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(w.install_dir(ALPHA).join("current/alpha.txt")).unwrap(),
        "alpha 2.0\n"
    );
}

#[test]
fn a_snapshot_of_another_publication_is_refused() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.publish(BRAVO, "1.0", &[("bravo.txt", "bravo 1.0\n")]);
    w.serve();
    w.register(ALPHA, "0");
    // The server reads the catalog of timestamp 3 now and keeps it while
    // timestamp.json is unchanged; then 3.snapshot.json is swapped for the
    // (validly signed) snapshot of the previous publication, as a
    // tampered mirror would serve it.
    w.prime_server(ALPHA);
    let md = w.repo.join("metadata");
    std::fs::copy(md.join("2.snapshot.json"), md.join("3.snapshot.json")).unwrap();
    let before = w.snapshot();
    let out = w.update(&[]);
    let stderr = expect_failure(
        &out,
        &[
            &format!("error: {ALPHA}: TUF refresh from"),
            "snapshot.json",
        ],
    );
    // The timestamp names the snapshot's length and hashes: whichever
    // differs first is reported.
    assert!(
        stderr.contains("3.snapshot.json: length") || stderr.contains("3.snapshot.json: sha256"),
        "{stderr}"
    );
    w.assert_unchanged(&before);
    assert!(!w.install_dir(ALPHA).exists());
    assert!(
        !w.state.join("tuf/snapshot.json").exists(),
        "the mismatched snapshot became trusted"
    );
    w.assert_error_event(ALPHA, ErrorCategory::Download, download::TUF_REFRESH);
}

#[test]
fn an_unknown_app_fails_alone() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.serve();
    let stranger = "org.example.stranger";
    w.register(ALPHA, "0");
    w.register(stranger, "3.0");
    let entry = w.prefs_json()["apps"][stranger].clone();
    let stranger_files = tree(&w.install_dir(stranger));

    let out = w.update(&[]);
    let stderr = expect_failure(
        &out,
        &[&format!(
            "upkeep: error: {stranger}: the server answered error-unknownApplication for it"
        )],
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains("error:")).count(),
        1,
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains(&format!("{ALPHA}: installed 1.0")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(w.version(ALPHA), "1.0");
    assert_eq!(
        std::fs::read_to_string(w.install_dir(ALPHA).join("current/alpha.txt")).unwrap(),
        "alpha 1.0\n"
    );
    // The stranger's registration and files are as they were.
    assert_eq!(w.prefs_json()["apps"][stranger], entry);
    assert_eq!(tree(&w.install_dir(stranger)), stranger_files);
    // The ping reports alpha's install; the refused app sends no event.
    let alpha = w.app_events(ALPHA);
    assert!(
        alpha
            .iter()
            .any(|e| e["event_type"] == 2 && e["event_result"] == 1),
        "{alpha:#?}"
    );
    assert!(w.app_events(stranger).is_empty());
}

#[test]
fn an_installer_that_loops_forever_is_stopped() {
    let mut w = World::new();
    let payload = tar_gz(&[("trap.txt", b"never unpacked\n")]);
    w.publish_bytes(ALPHA, "2.0", "trap.tar.gz", &payload, &["loop"]);
    w.serve();
    w.register_with(ALPHA, "1.0", &plugin_path("hostile"), &[]);
    let dir = w.install_dir(ALPHA);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "alpha 1.0 data\n").unwrap();
    let before = w.snapshot();
    let started = Instant::now();
    let out = w.update(&[]);
    expect_failure(
        &out,
        &[
            &format!("error: {ALPHA}: installer plugin hostile failed"),
            "exceeded its time limit of 1000 ms",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    w.assert_unchanged(&before);
    w.assert_error_event(ALPHA, ErrorCategory::Service, service::PLUGIN_CALL);
}

#[test]
fn a_version_failing_its_post_install_check_is_discarded_and_current_stays() {
    let mut w = World::new();
    let release = |version: &str, says: &str| {
        let bin = format!("alpha {version}\n");
        let sums = format!(
            "{}  bin/alpha\n",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bin.as_bytes()))
        );
        tar_gz(&[
            ("VERSION", says.as_bytes()),
            ("bin/alpha", bin.as_bytes()),
            ("SHA256SUMS", sums.as_bytes()),
        ])
    };
    w.publish_bytes(ALPHA, "1.0", "app.tar.gz", &release("1.0", "1.0\n"), &[]);
    w.serve();
    let check = plugin_path("qualify-selftest");
    w.register_with(
        ALPHA,
        "0",
        &plugin_path("install-archive"),
        &["--post-install-check", check.to_str().unwrap()],
    );
    expect_success(&w.update(&[]));
    assert_eq!(w.version(ALPHA), "1.0");
    // 2.0 installs fine but its VERSION file lies: the check refuses it.
    w.publish_bytes(ALPHA, "2.0", "app.tar.gz", &release("2.0", "1.0\n"), &[]);
    let before = w.snapshot();
    let out = w.update(&[]);
    expect_failure(
        &out,
        &[
            "post-install check qualify-selftest refused 2.0",
            "VERSION says",
        ],
    );
    w.assert_unchanged(&before);
    let dir = w.install_dir(ALPHA);
    assert!(!dir.join("versions/2.0").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("current/bin/alpha")).unwrap(),
        "alpha 1.0\n"
    );
    w.assert_error_event(ALPHA, ErrorCategory::Install, install::POST_INSTALL_CHECK);
}

/// Mounts a 1 MiB tmpfs on a directory while it lives.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_during_the_download_changes_nothing() {
    let mut w = World::new();
    // 2 MiB that do not compress: more than the 1 MiB staging disk.
    let payload = tar_gz(&[("big.bin", &noise(2 << 20))]);
    assert!(payload.len() > 2 << 20);
    w.publish_bytes(ALPHA, "2.0", "big.tar.gz", &payload, &[]);
    w.serve();
    w.register(ALPHA, "1.0");
    let partial = w.state.join("downloads/.partial");
    // As root, staging goes to a 1 MiB tmpfs; elsewhere the staged file is
    // a symbolic link to /dev/full, where every write fails with ENOSPC.
    let disk = SmallDisk::mount(&partial);
    if disk.is_none() {
        let staged = partial.join(format!("{ALPHA}/2.0/big.tar.gz"));
        std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/dev/full", &staged).unwrap();
    }
    let before = w.snapshot();
    let out = w.update(&[]);
    expect_failure(
        &out,
        &[
            &format!("error: {ALPHA}: download of big.tar.gz failed"),
            "No space left on device",
        ],
    );
    w.assert_unchanged(&before);
    assert!(
        !w.state
            .join(format!("downloads/{ALPHA}/2.0/big.tar.gz"))
            .exists()
    );
    assert!(
        tree(&partial).keys().all(|k| k.ends_with('/')),
        "staged bytes were kept"
    );
    w.assert_error_event(ALPHA, ErrorCategory::Download, download::DISK);
    drop(disk);
}

#[test]
fn a_server_that_went_down_changes_nothing_and_a_restart_serves_again() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.serve();
    w.register(ALPHA, "0");
    let addr = w.base().trim_start_matches("http://").to_owned();
    w.stop();

    let before = w.snapshot();
    let out = w.update(&[]);
    let stderr = expect_failure(
        &out,
        &[&format!("error: {ALPHA}: the update server is unreachable")],
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains("error:")).count(),
        1,
        "{stderr}"
    );
    w.assert_unchanged(&before);
    assert!(w.events().is_empty(), "nothing reached the server");

    // The server keeps no state but the event store: restarted on the same
    // repository and address, it serves the update.
    w.serve_at(&addr);
    let stdout = expect_success(&w.update(&[]));
    assert!(
        stdout.contains(&format!("{ALPHA}: installed 1.0")),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(w.install_dir(ALPHA).join("current/alpha.txt")).unwrap(),
        "alpha 1.0\n"
    );
    let events = w.app_events(ALPHA);
    assert!(
        events
            .iter()
            .any(|e| e["event_type"] == 2 && e["event_result"] == 1),
        "{events:#?}"
    );
}

//! The sample plugins, built from source by scripts/build-plugins.sh, run
//! through the real host.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{host, load, plugin_path};
use upkeep_plugin_host::bindings::{
    existence::Presence, installer::Operation, qualifier::Verdict, types,
};
use upkeep_plugin_host::{CallOptions, ExistenceInput, InstallInput, QualifyInput, TelemetryInput};

// ---------- exists-path ----------

fn existence(app_dir: Option<&Path>, marker: Option<&str>) -> ExistenceInput {
    ExistenceInput {
        app_id: "org.example.app".into(),
        version: "1.0".into(),
        app_dir: app_dir.map(Path::to_path_buf),
        marker: marker.map(str::to_string),
        settings: vec![],
    }
}

#[test]
fn exists_path_tracks_the_marker() {
    let host = host();
    let plugin = load(&host, "exists-path");
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("bin")).unwrap();
    fs::write(dir.path().join("bin/app"), b"#!/bin/sh\n").unwrap();

    let r = host
        .check_existence(
            &plugin,
            &existence(Some(dir.path()), Some("bin/app")),
            CallOptions::default(),
        )
        .unwrap();
    assert_eq!(r.value, Presence::Present);
    let r = host
        .check_existence(
            &plugin,
            &existence(Some(dir.path()), None),
            CallOptions::default(),
        )
        .unwrap();
    assert_eq!(r.value, Presence::Present);

    fs::remove_file(dir.path().join("bin/app")).unwrap();
    let r = host
        .check_existence(
            &plugin,
            &existence(Some(dir.path()), Some("bin/app")),
            CallOptions::default(),
        )
        .unwrap();
    assert_eq!(r.value, Presence::Absent);

    let gone = dir.path().join("no-such-dir");
    let r = host
        .check_existence(
            &plugin,
            &existence(Some(&gone), Some("bin/app")),
            CallOptions::default(),
        )
        .unwrap();
    assert_eq!(r.value, Presence::Absent);

    let r = host
        .check_existence(
            &plugin,
            &existence(Some(dir.path()), Some("../etc/passwd")),
            CallOptions::default(),
        )
        .unwrap();
    match r.value {
        Presence::Error(e) => assert!(e.contains(".."), "{e}"),
        other => panic!("expected an error for a marker with '..', got {other:?}"),
    }
}

// ---------- install-archive ----------

struct Entry<'a> {
    path: &'a str,
    kind: Kind<'a>,
    mode: u32,
}

enum Kind<'a> {
    File(&'a [u8]),
    Dir,
    Symlink(&'a str),
}

/// Writes a .tar.gz with raw header names, so hostile names ('..',
/// absolute paths) can be written too.
fn write_tar_gz(path: &Path, entries: &[Entry]) {
    let file = fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let name = e.path.as_bytes();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.set_mode(e.mode);
        h.set_mtime(1_700_000_000);
        match e.kind {
            Kind::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append(&h, data).unwrap();
            }
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            Kind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                let t = target.as_bytes();
                h.as_gnu_mut().unwrap().linkname[..t.len()].copy_from_slice(t);
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap().finish().unwrap();
}

fn install_input(op: Operation, payload: &Path, install: &Path, to: &str) -> InstallInput {
    InstallInput {
        operation: op,
        app_id: "org.example.app".into(),
        from_version: None,
        to_version: to.into(),
        arguments: vec![],
        installer_data: None,
        payload_dir: Some(payload.to_path_buf()),
        install_dir: install.to_path_buf(),
    }
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn install_archive_installs_updates_and_uninstalls_a_tarball() {
    let host = host();
    let plugin = load(&host, "install-archive");
    let work = tempfile::tempdir().unwrap();
    let payload1 = work.path().join("payload1");
    let payload2 = work.path().join("payload2");
    let install = work.path().join("install");
    for d in [&payload1, &payload2, &install] {
        fs::create_dir(d).unwrap();
    }
    fs::write(install.join("user-settings.ini"), b"kept").unwrap();

    write_tar_gz(
        &payload1.join("app-1.0.tar.gz"),
        &[
            Entry {
                path: "bin/",
                kind: Kind::Dir,
                mode: 0o755,
            },
            Entry {
                path: "bin/app",
                kind: Kind::File(b"#!/bin/sh\necho 1.0\n"),
                mode: 0o755,
            },
            Entry {
                path: "share/doc/readme.txt",
                kind: Kind::File(b"read me"),
                mode: 0o640,
            },
            Entry {
                path: "old-only.txt",
                kind: Kind::File(b"gone in 2.0"),
                mode: 0o644,
            },
            Entry {
                path: "bin/app-link",
                kind: Kind::Symlink("app"),
                mode: 0o777,
            },
            Entry {
                path: "VERSION",
                kind: Kind::File(b"1.0"),
                mode: 0o4755,
            },
        ],
    );
    let r = host
        .install(
            &plugin,
            &install_input(Operation::Install, &payload1, &install, "1.0"),
            CallOptions::default(),
        )
        .unwrap();
    let ok = r.value.unwrap_or_else(|e| panic!("install failed: {e:?}"));
    assert!(ok.message.unwrap().contains("unpacked"));
    assert_eq!(
        fs::read(install.join("bin/app")).unwrap(),
        b"#!/bin/sh\necho 1.0\n"
    );
    assert_eq!(mode_of(&install.join("bin/app")), 0o755);
    assert_eq!(mode_of(&install.join("share/doc/readme.txt")), 0o640);
    // setuid is dropped, the permission bits are kept.
    assert_eq!(mode_of(&install.join("VERSION")), 0o755);
    assert_eq!(
        fs::read_link(install.join("bin/app-link")).unwrap(),
        Path::new("app")
    );
    assert!(install.join(".upkeep-install-archive").exists());

    write_tar_gz(
        &payload2.join("app-2.0.tgz"),
        &[
            Entry {
                path: "bin/app",
                kind: Kind::File(b"#!/bin/sh\necho 2.0\n"),
                mode: 0o700,
            },
            Entry {
                path: "share/doc/readme.txt",
                kind: Kind::File(b"read me 2"),
                mode: 0o644,
            },
            Entry {
                path: "VERSION",
                kind: Kind::File(b"2.0"),
                mode: 0o644,
            },
        ],
    );
    let mut input = install_input(Operation::Update, &payload2, &install, "2.0");
    input.from_version = Some("1.0".into());
    let r = host
        .install(&plugin, &input, CallOptions::default())
        .unwrap();
    r.value.unwrap_or_else(|e| panic!("update failed: {e:?}"));
    assert_eq!(
        fs::read(install.join("bin/app")).unwrap(),
        b"#!/bin/sh\necho 2.0\n"
    );
    assert_eq!(mode_of(&install.join("bin/app")), 0o700);
    assert!(
        !install.join("old-only.txt").exists(),
        "a file the new version dropped is removed"
    );
    assert!(
        fs::symlink_metadata(install.join("bin/app-link")).is_err(),
        "a link the new version dropped is removed"
    );

    let mut input = install_input(Operation::Uninstall, &payload2, &install, "2.0");
    input.payload_dir = None;
    let r = host
        .install(&plugin, &input, CallOptions::default())
        .unwrap();
    r.value
        .unwrap_or_else(|e| panic!("uninstall failed: {e:?}"));
    let left: Vec<String> = fs::read_dir(&install)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        left,
        vec!["user-settings.ini".to_string()],
        "uninstall removes exactly what was installed"
    );
}

#[test]
fn install_archive_unpacks_zip_with_modes() {
    let host = host();
    let plugin = load(&host, "install-archive");
    let work = tempfile::tempdir().unwrap();
    let payload = work.path().join("payload");
    let install = work.path().join("install");
    fs::create_dir(&payload).unwrap();
    fs::create_dir(&install).unwrap();
    {
        let f = fs::File::create(payload.join("app.zip")).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o750);
        z.start_file("tool/run.sh", opts).unwrap();
        z.write_all(b"#!/bin/sh\n").unwrap();
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o600);
        z.start_file("tool/secret.cfg", opts).unwrap();
        z.write_all(b"k=v\n").unwrap();
        z.finish().unwrap();
    }
    let r = host
        .install(
            &plugin,
            &install_input(Operation::Install, &payload, &install, "1.0"),
            CallOptions::default(),
        )
        .unwrap();
    r.value
        .unwrap_or_else(|e| panic!("zip install failed: {e:?}"));
    assert_eq!(
        fs::read(install.join("tool/run.sh")).unwrap(),
        b"#!/bin/sh\n"
    );
    assert_eq!(mode_of(&install.join("tool/run.sh")), 0o750);
    assert_eq!(mode_of(&install.join("tool/secret.cfg")), 0o600);
}

#[test]
fn install_archive_refuses_entries_that_escape() {
    let host = host();
    let plugin = load(&host, "install-archive");
    let cases: &[(&str, Vec<Entry>)] = &[
        (
            "dot-dot",
            vec![Entry {
                path: "../escaped.txt",
                kind: Kind::File(b"x"),
                mode: 0o644,
            }],
        ),
        (
            "nested dot-dot",
            vec![Entry {
                path: "a/../../escaped.txt",
                kind: Kind::File(b"x"),
                mode: 0o644,
            }],
        ),
        (
            "absolute",
            vec![Entry {
                path: "/tmp/escaped.txt",
                kind: Kind::File(b"x"),
                mode: 0o644,
            }],
        ),
        (
            "link out",
            vec![Entry {
                path: "out",
                kind: Kind::Symlink("../.."),
                mode: 0o777,
            }],
        ),
        (
            "absolute link",
            vec![Entry {
                path: "etc",
                kind: Kind::Symlink("/etc"),
                mode: 0o777,
            }],
        ),
        (
            "link out after files",
            vec![
                Entry {
                    path: "ok.txt",
                    kind: Kind::File(b"fine"),
                    mode: 0o644,
                },
                Entry {
                    path: "deep/out",
                    kind: Kind::Symlink("../../x"),
                    mode: 0o777,
                },
            ],
        ),
    ];
    for (label, entries) in cases {
        let work = tempfile::tempdir().unwrap();
        let payload = work.path().join("payload");
        let install = work.path().join("install");
        fs::create_dir(&payload).unwrap();
        fs::create_dir(&install).unwrap();
        write_tar_gz(&payload.join("evil.tar.gz"), entries);
        let r = host
            .install(
                &plugin,
                &install_input(Operation::Install, &payload, &install, "1.0"),
                CallOptions::default(),
            )
            .unwrap();
        let err = r.value.expect_err(label);
        assert_eq!(err.code, 20, "{label}: {err:?}");
        assert!(!work.path().join("escaped.txt").exists(), "{label}");
        let left = fs::read_dir(&install).unwrap().count();
        assert_eq!(left, 0, "{label}: a refused archive leaves nothing behind");
    }
}

#[test]
fn install_archive_reports_missing_and_corrupt_payloads() {
    let host = host();
    let plugin = load(&host, "install-archive");
    let work = tempfile::tempdir().unwrap();
    let payload = work.path().join("payload");
    let install = work.path().join("install");
    fs::create_dir(&payload).unwrap();
    fs::create_dir(&install).unwrap();
    let input = install_input(Operation::Install, &payload, &install, "1.0");
    let err = host
        .install(&plugin, &input, CallOptions::default())
        .unwrap()
        .value
        .unwrap_err();
    assert_eq!(err.code, 11, "{err:?}");
    fs::write(
        payload.join("broken.tar.gz"),
        b"\x1f\x8b\x08\x00 not really gzip",
    )
    .unwrap();
    let err = host
        .install(&plugin, &input, CallOptions::default())
        .unwrap()
        .value
        .unwrap_err();
    assert_eq!(err.code, 21, "{err:?}");
}

// ---------- qualify-selftest ----------

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[test]
fn qualify_selftest_checks_version_and_hashes() {
    let host = host();
    let plugin = load(&host, "qualify-selftest");
    let app = tempfile::tempdir().unwrap();
    fs::write(app.path().join("VERSION"), "2.1.0\n").unwrap();
    fs::create_dir(app.path().join("bin")).unwrap();
    fs::write(app.path().join("bin/qualapp"), b"binary").unwrap();
    fs::write(
        app.path().join("SHA256SUMS"),
        format!("{}  bin/qualapp\n", sha256_hex(b"binary")),
    )
    .unwrap();
    let input = QualifyInput {
        updater_version: "0.2.0".into(),
        app_id: "org.example.qualification".into(),
        app_version: "2.1.0".into(),
        app_dir: app.path().to_path_buf(),
        settings: vec![("required".into(), "bin/qualapp".into())],
    };
    assert_eq!(
        host.qualify(&plugin, &input, CallOptions::default())
            .unwrap()
            .value,
        Verdict::Pass
    );

    fs::write(app.path().join("bin/qualapp"), b"tampered").unwrap();
    match host
        .qualify(&plugin, &input, CallOptions::default())
        .unwrap()
        .value
    {
        Verdict::Fail(why) => assert!(why.contains("bin/qualapp has SHA-256"), "{why}"),
        Verdict::Pass => panic!("a tampered file must fail qualification"),
    }

    let mut wrong = input.clone();
    wrong.app_version = "2.2.0".into();
    match host
        .qualify(&plugin, &wrong, CallOptions::default())
        .unwrap()
        .value
    {
        Verdict::Fail(why) => assert!(why.contains("VERSION says \"2.1.0\""), "{why}"),
        Verdict::Pass => panic!("a version mismatch must fail qualification"),
    }
}

// ---------- telemetry-jsonl ----------

fn event(
    app: &str,
    kind: types::EventType,
    outcome: types::EventResult,
    code: i32,
) -> types::UpdateEvent {
    types::UpdateEvent {
        app_id: app.into(),
        event_type: kind,
        outcome,
        error_category: if code == 0 {
            types::ErrorCategory::None
        } else {
            types::ErrorCategory::Install
        },
        error_code: code,
        extra_code: 0,
        previous_version: Some("1.0".into()),
        next_version: Some("2.0".into()),
        download: None,
        timestamp_ms: 1_700_000_000_000,
        duration_ms: Some(1200),
        session_id: "{11111111-2222-3333-4444-555555555555}".into(),
    }
}

#[test]
fn telemetry_jsonl_appends_one_line_per_event() {
    let host = host();
    let plugin = load(&host, "telemetry-jsonl");
    let data = tempfile::tempdir().unwrap();
    let first = TelemetryInput {
        data_dir: data.path().to_path_buf(),
        events: vec![
            event(
                "a",
                types::EventType::Update,
                types::EventResult::Success,
                0,
            ),
            event(
                "b",
                types::EventType::Install,
                types::EventResult::Error,
                20,
            ),
        ],
    };
    host.consume_events(&plugin, &first, CallOptions::default())
        .unwrap()
        .value
        .unwrap();
    let second = TelemetryInput {
        data_dir: data.path().to_path_buf(),
        events: vec![event(
            "c",
            types::EventType::Other(50),
            types::EventResult::Other(12),
            0,
        )],
    };
    host.consume_events(&plugin, &second, CallOptions::default())
        .unwrap()
        .value
        .unwrap();
    let text = fs::read_to_string(data.path().join("events.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["appid"], "a");
    assert_eq!(lines[0]["eventtype"], 3);
    assert_eq!(lines[0]["eventresult"], 1);
    assert_eq!(lines[1]["eventtype"], 2);
    assert_eq!(lines[1]["errorcat"], 3);
    assert_eq!(lines[1]["errorcode"], 20);
    assert_eq!(lines[2]["eventtype"], 50);
    assert_eq!(lines[2]["eventresult"], 12);
    assert_eq!(lines[2]["previousversion"], "1.0");
}

// ---------- the host around them ----------

#[test]
fn a_mount_the_manifest_does_not_request_is_not_given() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("no-dirs.wasm");
    fs::copy(plugin_path("exists-path"), &wasm).unwrap();
    fs::write(
        dir.path().join("no-dirs.toml"),
        "[plugin]\nname = \"no-dirs\"\nversion = \"0.1.0\"\nworld = \"existence-checker\"\napi = \"0.1.0\"\n",
    )
    .unwrap();
    let plugin = host.load(&wasm).unwrap();
    let app = tempfile::tempdir().unwrap();
    fs::write(app.path().join("marker"), b"").unwrap();
    // The app exists, but the plugin asked for no directory: it sees none.
    let r = host
        .check_existence(
            &plugin,
            &existence(Some(app.path()), Some("marker")),
            CallOptions::default(),
        )
        .unwrap();
    assert_eq!(r.value, Presence::Absent);
}

#[test]
fn progress_reports_reach_the_caller() {
    use std::sync::{Arc, Mutex};
    let host = host();
    let plugin = load(&host, "install-archive");
    let work = tempfile::tempdir().unwrap();
    let payload = work.path().join("payload");
    let install = work.path().join("install");
    fs::create_dir(&payload).unwrap();
    fs::create_dir(&install).unwrap();
    let names: Vec<String> = (0..130).map(|i| format!("f{i:03}.txt")).collect();
    let entries: Vec<Entry> = names
        .iter()
        .map(|n| Entry {
            path: n,
            kind: Kind::File(b"x"),
            mode: 0o644,
        })
        .collect();
    write_tar_gz(&payload.join("many.tar.gz"), &entries);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let options = CallOptions {
        app: None,
        progress: Some(Box::new(move |p| sink.lock().unwrap().push(p.completed))),
    };
    let r = host
        .install(
            &plugin,
            &install_input(Operation::Install, &payload, &install, "1.0"),
            options,
        )
        .unwrap();
    r.value.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![64, 128]);
    assert_eq!(r.progress.unwrap().completed, 128);
}

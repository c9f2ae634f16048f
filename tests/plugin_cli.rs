//! `upkeep plugin inspect` and `upkeep plugin run` on the real binary with
//! the sample plugins built from source.

mod support;

use std::fs;
use std::process::Command;

use support::{plugin_path, upkeep};

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("run upkeep");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_shows_world_api_capabilities_size_and_hash() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = plugin_path("install-archive");
    let (code, out, err) = run(upkeep()
        .args(["plugin", "inspect", "--cache-dir"])
        .arg(cache.path())
        .arg(&wasm));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("world       installer"), "{out}");
    assert!(out.contains("api         upkeep:plugin@0.1.0"), "{out}");
    assert!(out.contains("payload (read-only) at /payload"), "{out}");
    assert!(out.contains("install (read-write) at /install"), "{out}");
    let size = fs::metadata(&wasm).unwrap().len();
    assert!(out.contains(&format!("size        {size} bytes")), "{out}");

    let (code, out, _) = run(upkeep()
        .args(["plugin", "inspect", "--json", "--no-cache"])
        .arg(&wasm));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["detected_world"], "installer");
    assert_eq!(v["manifest"]["name"], "install-archive");
    assert_eq!(v["size"], size);
    let sha = v["sha256"].as_str().unwrap();
    assert_eq!(sha.len(), 64);
    assert!(v["problems"].as_array().unwrap().is_empty());
}

#[test]
fn inspect_reports_a_missing_manifest_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("copy.wasm");
    fs::copy(plugin_path("exists-path"), &wasm).unwrap();
    let (code, out, _) = run(upkeep()
        .args(["plugin", "inspect", "--no-cache"])
        .arg(&wasm));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("world       existence-checker"), "{out}");
    assert!(
        out.contains("problem     plugin") && out.contains("has no manifest"),
        "{out}"
    );
}

#[test]
fn run_an_existence_checker() {
    let app = tempfile::tempdir().unwrap();
    fs::write(app.path().join("marker"), b"").unwrap();
    let wasm = plugin_path("exists-path");
    let (code, out, err) = run(upkeep()
        .args([
            "plugin",
            "run",
            "--no-cache",
            "--world",
            "existence-checker",
        ])
        .arg(&wasm)
        .arg("--app-dir")
        .arg(app.path())
        .args(["--marker", "marker"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("outcome  presence: present"), "{out}");
    let (code, out, _) = run(upkeep()
        .args(["plugin", "run", "--no-cache", "--json"])
        .arg(&wasm)
        .arg("--app-dir")
        .arg(app.path())
        .args(["--marker", "gone"]));
    assert_eq!(code, 3, "absent exits 3: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcome"]["presence"], "absent");
    assert_eq!(v["ok"], false);
}

#[test]
fn run_the_installer_on_a_sample_archive() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let payload = work.path().join("payload");
    let install = work.path().join("install");
    for d in [&src, &payload, &install] {
        fs::create_dir(d).unwrap();
    }
    fs::write(src.join("hello.sh"), "#!/bin/sh\necho hello\n").unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(src.join("hello.sh"))
        .status()
        .unwrap();
    let status = Command::new("tar")
        .arg("czf")
        .arg(payload.join("app.tar.gz"))
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let (code, out, err) = run(upkeep()
        .args(["plugin", "run", "--no-cache"])
        .arg(plugin_path("install-archive"))
        .arg("--payload")
        .arg(&payload)
        .arg("--install-dir")
        .arg(&install)
        .args(["--app-id", "org.example.hello", "--app-version", "1.0"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("outcome  message: unpacked"), "{out}");
    let installed = install.join("hello.sh");
    assert_eq!(
        fs::read_to_string(&installed).unwrap(),
        "#!/bin/sh\necho hello\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let hello = Command::new(&installed).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&hello.stdout), "hello\n");

    let (code, out, err) = run(upkeep()
        .args(["plugin", "run", "--no-cache", "--operation", "uninstall"])
        .arg(plugin_path("install-archive"))
        .arg("--install-dir")
        .arg(&install));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(fs::read_dir(&install).unwrap().count(), 0);
}

#[test]
fn run_a_telemetry_sink_with_events_from_a_file() {
    let data = tempfile::tempdir().unwrap();
    let events = data.path().join("events.json");
    fs::write(&events, r#"[{"appid": "A", "eventtype": 3, "eventresult": 0, "errorcat": 3, "errorcode": 7, "nextversion": "2.0"}]"#).unwrap();
    let sink_dir = data.path().join("sink");
    fs::create_dir(&sink_dir).unwrap();
    let (code, out, err) = run(upkeep()
        .args(["plugin", "run", "--no-cache"])
        .arg(plugin_path("telemetry-jsonl"))
        .arg("--data-dir")
        .arg(&sink_dir)
        .arg("--events")
        .arg(&events));
    assert_eq!(code, 0, "{out}{err}");
    let line: serde_json::Value = serde_json::from_str(
        fs::read_to_string(sink_dir.join("events.jsonl"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(line["appid"], "a");
    assert_eq!(line["errorcode"], 7);
    assert_eq!(line["errorcat"], 3);

    fs::write(
        &events,
        r#"[{"appid": "A", "eventtype": 3, "errorcat": 9}]"#,
    )
    .unwrap();
    let (code, _, err) = run(upkeep()
        .args(["plugin", "run", "--no-cache"])
        .arg(plugin_path("telemetry-jsonl"))
        .arg("--data-dir")
        .arg(&sink_dir)
        .arg("--events")
        .arg(&events));
    assert_eq!(code, 1);
    assert!(
        err.contains("errorcat 9 is not an Omaha error category"),
        "{err}"
    );
}

#[test]
fn run_reports_hostile_plugins_and_wrong_worlds_clearly() {
    let work = tempfile::tempdir().unwrap();
    let (code, _, err) = run(upkeep()
        .args(["plugin", "run", "--no-cache"])
        .arg(plugin_path("hostile"))
        .arg("--payload")
        .arg(work.path())
        .arg("--install-dir")
        .arg(work.path())
        .args(["--", "loop"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("upkeep: error: plugin hostile exceeded its time limit of 1000 ms"),
        "{err}"
    );

    let (code, _, err) = run(upkeep()
        .args(["plugin", "run", "--no-cache", "--world", "qualifier"])
        .arg(plugin_path("exists-path"))
        .arg("--app-dir")
        .arg(work.path()));
    assert_eq!(code, 1);
    assert!(
        err.contains("implements the existence-checker world"),
        "{err}"
    );

    let (code, _, err) = run(upkeep()
        .args(["plugin", "run", "--no-cache"])
        .arg(plugin_path("qualify-selftest")));
    assert_eq!(code, 1);
    assert!(
        err.contains("the qualifier world needs --app-dir DIR"),
        "{err}"
    );
}

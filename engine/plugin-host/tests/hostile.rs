//! Hostile plugins are contained: each misbehaviour ends in a clear error
//! naming the plugin and what it hit, within bounded time, and the host
//! keeps working afterwards.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{host, load, plugin_path};
use upkeep_plugin_host::bindings::installer::Operation;
use upkeep_plugin_host::{CallOptions, InstallInput, PluginError, PluginHost};

struct Sandbox {
    _root: tempfile::TempDir,
    outside: std::path::PathBuf,
    payload: std::path::PathBuf,
    install: std::path::PathBuf,
}

/// A payload and an install dir side by side with a secret next to them,
/// and links planted inside both pointing at the secret's directory.
fn sandbox() -> Sandbox {
    let root = tempfile::tempdir().unwrap();
    let outside = root.path().to_path_buf();
    let payload = root.path().join("payload");
    let install = root.path().join("install");
    fs::create_dir(&payload).unwrap();
    fs::create_dir(&install).unwrap();
    fs::write(outside.join("secret.txt"), b"the secret").unwrap();
    fs::set_permissions(
        outside.join("secret.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::write(payload.join("payload.txt"), b"payload").unwrap();
    fs::write(install.join("inside.txt"), b"inside").unwrap();
    std::os::unix::fs::symlink(&outside, install.join("link-out")).unwrap();
    std::os::unix::fs::symlink("..", payload.join("link-out")).unwrap();
    Sandbox {
        _root: root,
        outside,
        payload,
        install,
    }
}

fn call(host: &PluginHost, mode: &str, s: &Sandbox) -> (Result<String, PluginError>, Duration) {
    let plugin = load(host, "hostile");
    let input = InstallInput {
        operation: Operation::Install,
        app_id: "org.example.hostile".into(),
        from_version: None,
        to_version: "6.6.6".into(),
        arguments: vec![mode.into()],
        installer_data: None,
        payload_dir: Some(s.payload.clone()),
        install_dir: s.install.clone(),
    };
    let started = Instant::now();
    let r = host
        .install(&plugin, &input, CallOptions::default())
        .map(|r| match r.value {
            Ok(ok) => ok.message.unwrap_or_default(),
            Err(e) => format!("installer error {}: {}", e.code, e.message),
        });
    (r, started.elapsed())
}

#[test]
fn an_endless_loop_is_stopped_at_the_deadline() {
    let host = host();
    let s = sandbox();
    let (r, took) = call(&host, "loop", &s);
    match r {
        Err(PluginError::Timeout { plugin, limit_ms }) => {
            assert_eq!(plugin, "hostile");
            assert_eq!(limit_ms, 1000);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    let msg = call(&host, "loop", &s).0.unwrap_err().to_string();
    assert!(
        msg.contains("hostile exceeded its time limit of 1000 ms"),
        "{msg}"
    );
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    let host = host();
    let s = sandbox();
    let (r, took) = call(&host, "alloc", &s);
    match r {
        Err(PluginError::MemoryLimit {
            plugin,
            limit_mib,
            requested_bytes,
        }) => {
            assert_eq!(plugin, "hostile");
            assert_eq!(limit_mib, 32);
            assert!(requested_bytes > 32 << 20, "{requested_bytes}");
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn deep_recursion_overflows_the_wasm_stack_not_the_host() {
    let host = host();
    let s = sandbox();
    match call(&host, "recursion", &s).0 {
        Err(PluginError::StackOverflow { plugin, limit_kib }) => {
            assert_eq!(plugin, "hostile");
            assert_eq!(limit_kib, 512);
        }
        other => panic!("expected a stack overflow, got {other:?}"),
    }
}

#[test]
fn a_shadow_stack_overflow_is_a_trap() {
    let host = host();
    let s = sandbox();
    match call(&host, "stack-smash", &s).0 {
        Err(PluginError::Trap { plugin, reason }) => {
            assert_eq!(plugin, "hostile");
            assert!(reason.contains("out of bounds memory access"), "{reason}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn nothing_survives_from_one_call_to_the_next() {
    let host = host();
    let s = sandbox();
    // Many calls, so pooled slots are reused, statics and heap included.
    for _ in 0..50 {
        let message = call(&host, "remember", &s).0.unwrap();
        assert_eq!(
            message, "call 1; found: nothing",
            "state leaked between calls"
        );
    }
}

#[test]
fn a_log_flood_is_capped() {
    let host = host();
    let s = sandbox();
    let plugin = load(&host, "hostile");
    let input = InstallInput {
        operation: Operation::Install,
        app_id: "x".into(),
        from_version: None,
        to_version: "1".into(),
        arguments: vec!["log-flood".into()],
        installer_data: None,
        payload_dir: Some(s.payload.clone()),
        install_dir: s.install.clone(),
    };
    let r = host
        .install(&plugin, &input, CallOptions::default())
        .unwrap();
    assert!(r.value.is_ok());
    let kept: usize = r.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept <= host.config().max_log_bytes, "kept {kept} bytes");
    assert!(r.logs.len() > 100, "the first records are kept");
    assert_eq!(
        r.logs.len() as u64 + r.dropped_logs,
        200_000,
        "every record is kept or counted as dropped"
    );
}

#[test]
fn a_stdout_flood_stops_the_plugin_with_a_clear_error() {
    let host = host();
    let s = sandbox();
    match call(&host, "stdout-flood", &s).0 {
        Err(PluginError::Trap { plugin, reason }) => {
            assert_eq!(plugin, "hostile");
            assert!(reason.contains("filled its stdout cap"), "{reason}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn a_panic_is_a_trap_with_the_message() {
    let host = host();
    let s = sandbox();
    match call(&host, "panic", &s).0 {
        Err(PluginError::Trap { plugin, reason }) => {
            assert_eq!(plugin, "hostile");
            assert!(reason.contains("panics on purpose"), "{reason}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn escape_attempts_are_all_denied() {
    let host = host();
    let s = sandbox();
    let report = call(&host, "escape", &s).0.unwrap();
    let lines: Vec<&str> = report.lines().collect();
    for name in [
        "dotdot-read",
        "absolute-read",
        "symlink-read",
        "payload-symlink-read",
        "payload-write",
        "chmod-dotdot",
        "chmod-symlink",
        "chmod-absolute",
        "chmod-readonly-mount",
        "chmod-setuid",
        "environment",
        "network",
    ] {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!(" {name}:")))
            .unwrap_or_else(|| panic!("no line for {name}: {report}"));
        assert!(line.starts_with("denied "), "{line}");
    }
    assert!(lines.contains(&"allowed inside-write"), "{report}");
    assert_eq!(
        fs::read(s.install.join("written-inside.txt")).unwrap(),
        b"ok"
    );
    assert_eq!(
        fs::read(s.outside.join("secret.txt")).unwrap(),
        b"the secret"
    );
    assert_eq!(
        fs::metadata(s.outside.join("secret.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert!(!s.payload.join("planted").exists());
    assert_eq!(
        fs::metadata(s.install.join("inside.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7000,
        0
    );
}

fn write_plugin(dir: &Path, name: &str, bytes: &[u8], world: &str) -> std::path::PathBuf {
    let wasm = dir.join(format!("{name}.wasm"));
    fs::write(&wasm, bytes).unwrap();
    fs::write(
        dir.join(format!("{name}.toml")),
        format!("[plugin]\nname = \"{name}\"\nversion = \"0.1.0\"\nworld = \"{world}\"\napi = \"0.1.0\"\n"),
    )
    .unwrap();
    wasm
}

#[test]
fn an_import_the_host_does_not_provide_is_refused_at_load() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    let wat = r#"(component
        (import "upkeep:evil/backdoor@0.1.0" (instance (export "open-socket" (func))))
    )"#;
    let wasm = write_plugin(dir.path(), "needs-backdoor", wat.as_bytes(), "installer");
    match host.load(&wasm) {
        Err(PluginError::MissingImport { plugin, reason }) => {
            assert_eq!(plugin, "needs-backdoor");
            assert!(reason.contains("upkeep:evil/backdoor"), "{reason}");
        }
        Err(other) => panic!("expected a missing import, got {other}"),
        Ok(_) => panic!("a component with an unknown import must not load"),
    }
}

#[test]
fn malformed_components_are_refused() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("garbage", &b"\x00asm but not really a component"[..]),
        ("empty", &b""[..]),
        ("core-module", &b"\x00asm\x01\x00\x00\x00"[..]),
    ] {
        let wasm = write_plugin(dir.path(), name, bytes, "installer");
        match host.load(&wasm) {
            Err(PluginError::Malformed { plugin, .. }) => assert_eq!(plugin, name),
            Err(other) => panic!("{name}: expected Malformed, got {other}"),
            Ok(_) => panic!("{name}: must not load"),
        }
    }
    // A valid component that implements another world than its manifest says.
    let wasm = dir.path().join("liar.wasm");
    fs::copy(plugin_path("exists-path"), &wasm).unwrap();
    fs::write(
        dir.path().join("liar.toml"),
        "[plugin]\nname = \"liar\"\nversion = \"1.0.0\"\nworld = \"installer\"\napi = \"0.1.0\"\n",
    )
    .unwrap();
    match host.load(&wasm) {
        Err(PluginError::WorldMismatch { plugin, .. }) => assert_eq!(plugin, "liar"),
        Err(other) => panic!("expected a world mismatch, got {other}"),
        Ok(_) => panic!("must not load"),
    }
}

#[test]
fn the_host_survives_a_run_of_hostile_calls_in_parallel() {
    let host = host();
    let s = sandbox();
    std::thread::scope(|scope| {
        let handles: Vec<_> = [
            "loop",
            "alloc",
            "recursion",
            "stack-smash",
            "panic",
            "stdout-flood",
            "escape",
        ]
        .into_iter()
        .map(|mode| {
            let host = &host;
            let s = &s;
            scope.spawn(move || (mode, call(host, mode, s).0.is_ok()))
        })
        .collect();
        for h in handles {
            let (mode, ok) = h.join().expect("no host thread panics");
            assert_eq!(ok, mode == "escape", "{mode}");
        }
    });
    // And the same host still runs a well-behaved plugin.
    let plugin = load(&host, "exists-path");
    let input = upkeep_plugin_host::ExistenceInput {
        app_id: "a".into(),
        version: "1".into(),
        app_dir: Some(s.install.clone()),
        marker: Some("inside.txt".into()),
        settings: vec![],
    };
    let r = host
        .check_existence(&plugin, &input, CallOptions::default())
        .unwrap();
    assert_eq!(
        r.value,
        upkeep_plugin_host::bindings::existence::Presence::Present
    );
}

//! The real systemd shim, built as a shared library, loaded through
//! `Shim::load` and driven over the C ABI, with the unit files checked on
//! disk.
//!
//! Cargo does not build another package's `cdylib` for this test: run
//! `cargo build -p upkeep-shim-systemd` first (`scripts/test.sh` does), or
//! point `UPKEEP_SHIM_SYSTEMD_LIB` at the library.
#![cfg(target_os = "linux")]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use upkeep_shim_abi::abi::{STATUS_FAILED, STATUS_INVALID_ARGUMENT};
use upkeep_shim_abi::{Shim, ShimConfig, ShimError};

const LIB_NAME: &str = "libupkeep_shim_systemd.so";

/// The built shim: `target/<profile>/` (where `cargo build` puts it) or
/// `target/<profile>/deps/` (where `cargo test` of the shim crate leaves
/// it), whichever is newer. Fails, never skips, if neither exists.
fn systemd_shim_lib() -> PathBuf {
    if let Some(path) = std::env::var_os("UPKEEP_SHIM_SYSTEMD_LIB") {
        return PathBuf::from(path);
    }
    // This test runs as target/<profile>/deps/systemd_shim-<hash>.
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps directory");
    let profile = deps.parent().expect("profile directory");
    let newest = [profile.join(LIB_NAME), deps.join(LIB_NAME)]
        .into_iter()
        .filter_map(|p| {
            let modified = fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((modified, p))
        })
        .max_by_key(|(modified, _): &(SystemTime, PathBuf)| *modified);
    match newest {
        Some((_, path)) => path,
        None => panic!(
            "the systemd shim library is not built: no {LIB_NAME} in {} or {}. \
             Run `cargo build --locked -p upkeep-shim-systemd` first \
             (scripts/test.sh does), or set UPKEEP_SHIM_SYSTEMD_LIB.",
            profile.display(),
            deps.display()
        ),
    }
}

fn config(unit_dir: &Path) -> ShimConfig {
    ShimConfig::new()
        .with("unit_dir", unit_dir.to_str().unwrap())
        .unwrap()
        .with("name", "upkeep-test")
        .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn exec_start(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart= in {}", path.display()))
        .to_owned()
}

#[test]
fn register_describe_swap_wake_unregister() {
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("system units");
    let shim = Shim::load(&systemd_shim_lib(), &config(&units)).unwrap();
    assert_eq!(
        shim.describe().unwrap(),
        format!(
            "systemd: no units for \"upkeep-test\" in {}",
            units.display()
        )
    );

    let root = "/var/lib/up keep";
    let v1 = Path::new("/opt/upkeep/versions/1.0.0/upkeep");
    shim.register_service(v1, &args(&["wake", "--root", root]))
        .unwrap();
    let service = units.join("upkeep-test.service");
    assert_eq!(
        exec_start(&service),
        "/opt/upkeep/versions/1.0.0/upkeep wake --root \"/var/lib/up keep\""
    );
    assert!(
        fs::read_to_string(&service)
            .unwrap()
            .contains("\n[Service]\nType=oneshot\n")
    );

    // Activation of a new version: the service runs the new executable.
    let v2 = Path::new("/opt/upkeep/versions/2.0.0 beta/upkeep");
    shim.swap_service(v2, &args(&["wake", "--root", root, "100%"]))
        .unwrap();
    assert_eq!(
        exec_start(&service),
        "\"/opt/upkeep/versions/2.0.0 beta/upkeep\" wake --root \"/var/lib/up keep\" \"100%%\""
    );

    shim.register_wake(
        Duration::from_secs(5 * 3600),
        v2,
        &args(&["wake", "--root", root]),
    )
    .unwrap();
    let timer = fs::read_to_string(units.join("upkeep-test-wake.timer")).unwrap();
    assert!(timer.contains("\nOnUnitActiveSec=18000s\n"), "{timer}");
    assert!(
        timer.contains("\nUnit=upkeep-test-wake.service\n"),
        "{timer}"
    );
    assert!(timer.contains("\nWantedBy=timers.target\n"), "{timer}");
    assert_eq!(
        exec_start(&units.join("upkeep-test-wake.service")),
        "\"/opt/upkeep/versions/2.0.0 beta/upkeep\" wake --root \"/var/lib/up keep\""
    );
    let link = units.join("timers.target.wants/upkeep-test-wake.timer");
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("../upkeep-test-wake.timer")
    );

    let description = shim.describe().unwrap();
    assert_eq!(
        description,
        format!(
            "systemd units for \"upkeep-test\" in {}:\n\
             \x20 upkeep-test.service: ExecStart=\"/opt/upkeep/versions/2.0.0 beta/upkeep\" wake --root \"/var/lib/up keep\" \"100%%\"\n\
             \x20 upkeep-test-wake.timer: OnBootSec=300s, OnUnitActiveSec=18000s, enabled\n\
             \x20 upkeep-test-wake.service: ExecStart=\"/opt/upkeep/versions/2.0.0 beta/upkeep\" wake --root \"/var/lib/up keep\"",
            units.display()
        )
    );

    // A swap now moves both services.
    let v3 = Path::new("/opt/upkeep/versions/3.0.0/upkeep");
    shim.swap_service(v3, &args(&["wake"])).unwrap();
    assert_eq!(
        exec_start(&service),
        "/opt/upkeep/versions/3.0.0/upkeep wake"
    );
    assert_eq!(
        exec_start(&units.join("upkeep-test-wake.service")),
        "/opt/upkeep/versions/3.0.0/upkeep wake"
    );

    shim.unregister_wake().unwrap();
    assert!(!units.join("upkeep-test-wake.timer").exists());
    assert!(!units.join("upkeep-test-wake.service").exists());
    assert!(fs::symlink_metadata(&link).is_err());
    shim.unregister_service().unwrap();
    assert!(!service.exists());
    // Unregistering twice is fine.
    shim.unregister_wake().unwrap();
    shim.unregister_service().unwrap();
    assert_eq!(
        shim.describe().unwrap(),
        format!(
            "systemd: no units for \"upkeep-test\" in {}",
            units.display()
        )
    );
    // No temporary files were left behind.
    let mut left: Vec<String> = fs::read_dir(&units)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["timers.target.wants"]);
}

#[test]
fn shim_errors_come_back_through_the_buffer() {
    let tmp = tempfile::tempdir().unwrap();
    let shim = Shim::load(&systemd_shim_lib(), &config(tmp.path())).unwrap();

    let e = shim
        .register_service(Path::new("relative/upkeep"), &[])
        .unwrap_err();
    assert_eq!(e.status(), Some(STATUS_INVALID_ARGUMENT));
    let text = e.to_string();
    assert!(
        text.ends_with(
            "failed in register_service (invalid argument): \
             executable path \"relative/upkeep\": must be absolute"
        ),
        "{text}"
    );

    let e = shim
        .swap_service(Path::new("/opt/upkeep"), &[])
        .unwrap_err();
    assert_eq!(e.status(), Some(STATUS_FAILED));
    assert!(e.to_string().contains("nothing to swap"), "{e}");

    // Refused before the call: cannot cross the ABI.
    let e = shim
        .register_service(Path::new("/opt/upkeep"), &args(&["a\0b"]))
        .unwrap_err();
    assert!(matches!(e, ShimError::Argument { .. }), "{e}");
    let e = shim
        .register_wake(Duration::from_millis(500), Path::new("/opt/upkeep"), &[])
        .unwrap_err();
    assert!(e.to_string().contains("at least one second"), "{e}");
}

#[test]
fn bad_config_is_refused_with_a_clear_message() {
    let lib = systemd_shim_lib();
    let e = Shim::load(&lib, &ShimConfig::new().with("name", "x").unwrap()).unwrap_err();
    assert_eq!(e.status(), Some(STATUS_INVALID_ARGUMENT));
    assert_eq!(
        e.to_string(),
        format!(
            "shim {} failed in open (invalid argument): missing required configuration key \
             `unit_dir` (the directory for unit files, e.g. /etc/systemd/system or \
             ~/.config/systemd/user)",
            lib.display()
        )
    );

    let bad_name = ShimConfig::new()
        .with("unit_dir", "/tmp")
        .unwrap()
        .with("name", "../evil")
        .unwrap();
    let e = Shim::load(&lib, &bad_name).unwrap_err();
    assert!(e.to_string().contains("configuration key `name`"), "{e}");

    let typo = ShimConfig::new()
        .with("unit_dir", "/tmp")
        .unwrap()
        .with("reloda", "systemctl")
        .unwrap();
    let e = Shim::load(&lib, &typo).unwrap_err();
    assert!(
        e.to_string().contains("unknown configuration key `reloda`"),
        "{e}"
    );
}

#[test]
fn reload_runs_the_configured_systemctl() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("calls.log");
    let fake = tmp.path().join("fake-systemctl");
    fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    let config = config(&tmp.path().join("units"))
        .with("reload", "systemctl")
        .unwrap()
        .with("systemctl", fake.to_str().unwrap())
        .unwrap();
    let shim = Shim::load(&systemd_shim_lib(), &config).unwrap();
    shim.register_wake(
        Duration::from_secs(3600),
        Path::new("/opt/upkeep"),
        &args(&["wake"]),
    )
    .unwrap();
    shim.unregister_wake().unwrap();
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "daemon-reload\nstart upkeep-test-wake.timer\nstop upkeep-test-wake.timer\ndaemon-reload\n"
    );
}

#[test]
fn a_library_without_the_entry_point_is_not_a_shim() {
    let e = Shim::load(Path::new("libc.so.6"), &ShimConfig::new()).unwrap_err();
    assert!(matches!(e, ShimError::NotAShim { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with("libc.so.6 is not a upkeep shim: it does not export `upkeep_shim_v1`"),
        "{text}"
    );
}

#[test]
fn a_missing_library_names_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("libnothing.so");
    let e = Shim::load(&path, &ShimConfig::new()).unwrap_err();
    assert!(matches!(e, ShimError::Load { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot load shim library {}:", path.display())),
        "{e}"
    );
}

#[test]
fn a_long_description_is_fetched_with_a_larger_buffer() {
    let tmp = tempfile::tempdir().unwrap();
    let shim = Shim::load(&systemd_shim_lib(), &config(tmp.path())).unwrap();
    // Longer than the loader's first describe buffer (8 KiB): the shim
    // answers "buffer too small" with the size, and the loader asks again.
    let long = "x".repeat(20_000);
    shim.register_service(Path::new("/opt/upkeep"), std::slice::from_ref(&long))
        .unwrap();
    let description = shim.describe().unwrap();
    assert!(description.len() > 20_000);
    assert!(
        description.ends_with(&format!("ExecStart=/opt/upkeep {long}")),
        "{}",
        &description[..200]
    );
}

#[test]
fn one_shim_serves_several_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let shim = Shim::load(&systemd_shim_lib(), &config(tmp.path())).unwrap();
    shim.register_service(Path::new("/opt/upkeep"), &[])
        .unwrap();
    std::thread::scope(|s| {
        for i in 0..4 {
            let shim = &shim;
            s.spawn(move || {
                for j in 0..10 {
                    let exe = format!("/opt/upkeep/{i}/{j}/upkeep");
                    shim.swap_service(Path::new(&exe), &[]).unwrap();
                    assert!(shim.describe().unwrap().contains("upkeep-test.service"));
                }
            });
        }
    });
    let last = exec_start(&tmp.path().join("upkeep-test.service"));
    assert!(
        last.starts_with("/opt/upkeep/") && last.ends_with("/9/upkeep"),
        "{last}"
    );
}

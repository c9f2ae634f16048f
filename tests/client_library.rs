//! The engine as a library and the defects fixed with it, end to end
//! against the REAL reference server: `examples/embed.rs` driving an
//! update through `upkeep-client`, installer arguments with spaces,
//! registration settings reaching the post-install check, and `upkeep
//! remove` calling the installer's uninstall operation.

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::plugin_path;
use support::world::{World, expect_failure, expect_success, tar_gz, text};

const APP: &str = "org.example.alpha";

/// The `embed` example, built by `cargo test` beside the binaries.
fn embed_example() -> PathBuf {
    let bin = support::upkeep_bin();
    let path = bin.parent().unwrap().join("examples/embed");
    assert!(
        path.is_file(),
        "{} is not built; run the workspace's tests (scripts/test.sh) so cargo builds the examples",
        path.display()
    );
    path
}

#[test]
fn the_embed_example_installs_and_updates_through_the_library() {
    let mut w = World::new();
    w.publish(APP, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.serve();
    let root = w.path("embedded");
    let run = || {
        Command::new(embed_example())
            .arg(&root)
            .arg(w.etc.join("config.toml"))
            .arg(w.base())
            .arg(APP)
            .arg(plugin_path("install-archive"))
            .output()
            .unwrap()
    };
    let out = run();
    let stdout = expect_success(&out);
    assert!(stdout.contains(&format!("{APP}: 0 -> 1.0")), "{stdout}");
    assert!(
        text(&out.stderr).contains("embed: "),
        "{}",
        text(&out.stderr)
    );
    let current = root.join("apps").join(APP).join("current/alpha.txt");
    assert_eq!(std::fs::read_to_string(&current).unwrap(), "alpha 1.0\n");

    w.publish(APP, "2.0", &[("alpha.txt", "alpha 2.0\n")]);
    let stdout = expect_success(&run());
    assert!(stdout.contains(&format!("{APP}: 1.0 -> 2.0")), "{stdout}");
    assert_eq!(std::fs::read_to_string(&current).unwrap(), "alpha 2.0\n");
    let stdout = expect_success(&run());
    assert!(stdout.contains("up to date at 2.0"), "{stdout}");
    // The server saw the library's events like the binary's.
    assert!(
        w.app_events(APP)
            .iter()
            .any(|e| e["event_type"] == 3 && e["event_result"] == 1),
        "{:?}",
        w.app_events(APP)
    );
}

#[test]
fn an_installer_argument_with_a_space_arrives_whole() {
    let mut w = World::new();
    let archive = tar_gz(&[("alpha.txt", b"alpha 1.0\n")]);
    w.publish_bytes(APP, "1.0", "app.tar.gz", &archive, &["two words"]);
    w.serve();
    w.register(APP, "0");
    let out = w.update(&[]);
    // install-archive refuses an argument it does not know, and names it:
    // the whole argument, not its first word.
    let stderr = expect_failure(&out, &["unknown argument \"two words\""]);
    assert!(!stderr.contains("unknown argument \"two\""), "{stderr}");
}

#[test]
fn registration_settings_reach_the_post_install_check() {
    let mut w = World::new();
    w.publish(APP, "1.0", &[("VERSION", "1.0\n"), ("alpha.txt", "a\n")]);
    w.serve();
    let check = plugin_path("qualify-selftest");
    let check = check.to_str().unwrap();
    // Without SHA256SUMS the self-test passes only when told it is optional.
    w.register_with(
        APP,
        "0",
        &plugin_path("install-archive"),
        &[
            "--post-install-check",
            check,
            "--setting",
            "sums-required=false",
        ],
    );
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "1.0");

    // A required file the release lacks: the check refuses 2.0.
    w.publish(APP, "2.0", &[("VERSION", "2.0\n"), ("alpha.txt", "b\n")]);
    w.register_with(
        APP,
        "1.0",
        &plugin_path("install-archive"),
        &[
            "--post-install-check",
            check,
            "--setting",
            "sums-required=false",
            "--setting",
            "required=docs/README",
        ],
    );
    expect_failure(&w.update(&[]), &["required file docs/README"]);
    assert_eq!(w.version(APP), "1.0");
}

#[test]
fn remove_runs_the_installers_uninstall_and_forgets_the_app() {
    let mut w = World::new();
    w.publish(APP, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.serve();
    w.register(APP, "0");
    expect_success(&w.update(&[]));
    let version_dir = w.install_dir(APP).join("versions/1.0");
    assert!(version_dir.join("alpha.txt").is_file());

    let out = w.client(&["remove", "--app", APP]);
    let stdout = expect_success(&out);
    assert!(stdout.contains("uninstalled 1.0 and forgotten"), "{stdout}");
    // install-archive's uninstall removed what it had installed.
    assert!(
        text(&out.stderr).contains("removed"),
        "{}",
        text(&out.stderr)
    );
    assert!(!version_dir.exists());
    assert!(
        w.prefs_json()["apps"].get(APP).is_none(),
        "{}",
        w.prefs_json()
    );
    assert!(
        w.app_events(APP).iter().any(|e| e["event_type"] == 4),
        "{:?}",
        w.app_events(APP)
    );
    let out = w.client(&["remove", "--app", APP]);
    expect_failure(&out, &["is not registered"]);
}

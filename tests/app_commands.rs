//! `upkeep app-command` end to end with the real binary and the real
//! reference server: a command registered with `register --command` runs
//! with its parameter in place (no shell), its exit code reaches the
//! server's event store as event type 41, bent parameters and unknown
//! commands run nothing, and the commands go with their app.

mod support;

use support::world::{World, expect_failure, expect_success, text};

const APP: &str = "org.example.tools";

/// `upkeep app-command --root .. --config .. ARGS`: the state options
/// first, so that parameters after `--` stay parameters.
fn app_command(w: &World, args: &[&str]) -> std::process::Output {
    support::upkeep()
        .arg("app-command")
        .arg("--root")
        .arg(&w.state)
        .arg("--config")
        .arg(w.etc.join("config.toml"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn registered_commands_run_are_reported_and_go_with_their_app() {
    let mut w = World::new();
    w.publish(APP, "1.0", &[("bin/tool", "tool 1.0\n")]);
    w.serve();
    let marker = w.path("ran");
    // The script is fixed; the parameter reaches it as $1, data only.
    let write = format!(
        "write=/bin/sh -c \"printf %%s \\\"$1\\\" > {}\" sh %1",
        marker.display()
    );
    w.register_with(
        APP,
        "0",
        &support::plugin_path("install-archive"),
        &[
            "--command",
            "echo=/bin/echo --level=%1",
            "--command",
            &write,
            "--command",
            "fail=/bin/sh -c \"exit 7\"",
            "--command",
            "show=/bin/echo %1",
        ],
    );
    expect_success(&w.update(&[]));

    let out = app_command(&w, &[APP, "echo", "full; rm -rf /"]);
    assert_eq!(expect_success(&out), "--level=full; rm -rf /\n");
    assert!(
        text(&out.stderr).contains("command echo: exit code 0"),
        "{}",
        text(&out.stderr)
    );
    // A parameter with shell syntax is only data for the program.
    expect_success(&app_command(&w, &[APP, "write", "$(touch /tmp/x) `id`"]));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "$(touch /tmp/x) `id`"
    );
    let out = app_command(&w, &[APP, "fail"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("command fail: exit code 7"),
        "{}",
        text(&out.stderr)
    );

    let commands: Vec<_> = w
        .app_events(APP)
        .into_iter()
        .filter(|e| e["event_type"] == 41)
        .collect();
    assert_eq!(commands.len(), 3, "{commands:?}");
    assert_eq!(commands[0]["event_result"], 1);
    assert_eq!(commands[2]["event_result"], 0);
    assert_eq!(commands[2]["error_code"], 7);

    // Refusals run nothing and send nothing.
    let before = w.app_events(APP).len();
    expect_failure(
        &app_command(&w, &[APP, "show", "--", "--evil"]),
        &["would be an option of its own"],
    );
    expect_failure(
        &app_command(&w, &[APP, "echo"]),
        &["uses %1 but 0 parameter(s)"],
    );
    expect_failure(
        &app_command(&w, &[APP, "reboot"]),
        &["has no command \"reboot\"", "echo, fail, show, write"],
    );
    assert_eq!(w.app_events(APP).len(), before);

    // The commands go with the app.
    expect_success(&w.client(&["remove", "--app", APP]));
    expect_failure(
        &app_command(&w, &[APP, "echo", "x"]),
        &["is not registered"],
    );
    assert!(!text(&w.prefs()).contains("--level"));
}

/// A release archive holding an executable `bin/status` that prints its
/// version and its first argument.
fn release_with_status(version: &str) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let script = format!("#!/bin/sh\necho \"status of {version}: $1\"\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(script.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "bin/status", script.as_bytes())
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

fn repo_add(w: &World, version: &str, extra: &[&str]) -> std::process::Output {
    let file = w.path(&format!("status-{version}.tar.gz"));
    std::fs::write(&file, release_with_status(version)).unwrap();
    support::upkeep()
        .args(["repo", "add"])
        .arg(&w.repo)
        .args(["--app", APP, "--version", version])
        .args(extra)
        .arg(&file)
        .output()
        .unwrap()
}

#[test]
fn a_release_brings_its_signed_commands_and_the_next_release_replaces_them() {
    let mut w = World::new();
    // A release command's program must lie inside the app.
    for bad in [
        "status=/bin/sh -c id",
        "status=../../bin/sh",
        "status=bin/%1",
    ] {
        let out = repo_add(&w, "1.0", &["--command", bad]);
        expect_failure(&out, &["command \"status\""]);
    }
    expect_success(&repo_add(
        &w,
        "1.0",
        &["--command", "status=bin/status --check=%1"],
    ));
    w.serve();
    w.register_with(APP, "0", &support::plugin_path("install-archive"), &[]);
    expect_success(&w.update(&[]));
    let prefs = w.prefs_json();
    assert_eq!(
        prefs["apps"][APP]["release_commands"]["status"]["executable"],
        "bin/status"
    );
    let out = app_command(&w, &[APP, "status", "disk"]);
    assert_eq!(expect_success(&out), "status of 1.0: --check=disk\n");

    // 2.0 brings no command: the release's commands go with 1.0.
    expect_success(&repo_add(&w, "2.0", &[]));
    expect_success(&w.update(&[]));
    let out = app_command(&w, &[APP, "status", "disk"]);
    expect_failure(&out, &["has no command \"status\""]);
}

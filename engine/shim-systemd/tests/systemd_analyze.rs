//! The units the shim writes, checked by systemd's own parser:
//! `systemd-analyze verify` loads them in an offline manager (it does not
//! talk to the running systemd), exits non-zero on a bad setting, and at
//! debug level dumps each `ExecStart=` as it parsed it, which must give
//! back exactly the arguments the shim was given.
//!
//! Runs where `systemd-analyze` is installed (Debian's `systemd` package);
//! elsewhere it says so and passes, since the unit tests cover the text.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use upkeep_shim_systemd::{SystemdConfig, SystemdShim};

/// Whether `systemd-analyze` is here (else the test says so and passes).
fn have_systemd_analyze() -> bool {
    let probe = Command::new("systemd-analyze").arg("--version").output();
    let here = probe.is_ok_and(|o| o.status.success());
    if !here {
        eprintln!("systemd-analyze not installed: unit files not checked by systemd");
    }
    here
}

/// `systemd-analyze verify` of `units`; fails on an error or on a warning
/// about one of our files. Returns the unit dump (standard output).
fn verify(dir: &Path, units: &[&str], debug: bool) -> String {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["verify", "--man=no"]);
    for unit in units {
        cmd.arg(dir.join(unit));
    }
    if debug {
        cmd.env("SYSTEMD_LOG_LEVEL", "debug");
    }
    let output = cmd.output().unwrap();
    // Log messages go to standard error, the unit dump to standard output.
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "systemd-analyze verify: {log}");
    // Warnings about our files (a setting ignored, quoting) start with the
    // file's path and line number.
    let dir = dir.display().to_string();
    let warnings: Vec<&str> = log.lines().filter(|l| l.starts_with(&dir)).collect();
    assert!(
        warnings.is_empty(),
        "systemd-analyze verify warned: {warnings:#?}"
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An executable that exists (verify checks).
fn true_exe() -> &'static str {
    ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("true(1)")
}

#[test]
fn systemd_accepts_the_units() {
    if !have_systemd_analyze() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("units");
    let mut config = SystemdConfig::new(&units);
    config.name = "upkeep-verify-test".into();
    config.description = "upkeep 100% verified".into();
    let shim = SystemdShim::new(config);
    // An executable that exists, with arguments that need every kind of
    // quoting.
    let exe = true_exe();
    let args: Vec<String> = [
        "wake",
        "--root",
        "/var/lib/up keep",
        "",
        "100%",
        "%n is a specifier",
        "$HOME",
        ";",
        "it's \"quoted\"",
        "back\\slash",
        "line\nbreak",
        "\u{e9}t\u{e9}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    shim.register_service(exe, &args).unwrap();
    shim.register_wake(Duration::from_secs(3600), exe, &args)
        .unwrap();

    let dump = verify(
        &units,
        &[
            "upkeep-verify-test.service",
            "upkeep-verify-test-wake.timer",
            "upkeep-verify-test-wake.service",
        ],
        true,
    );

    // Both services, as systemd parsed them: the program, then the
    // arguments with `$` still doubled (systemd undoes that when it runs
    // the command, after substituting variables).
    let mut expected = vec![exe.to_owned()];
    expected.extend(args.iter().map(|a| a.replace('$', "$$")));
    let parsed: Vec<Vec<String>> = dump
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Command Line: "))
        .map(|l| split_dumped(l).unwrap_or_else(|| panic!("cannot read dump: {l}")))
        .collect();
    assert_eq!(parsed, [expected.clone(), expected], "{dump}");
}

/// Splits a command line as systemd dumps it: words separated by spaces,
/// bare or double-quoted with C escapes (and `\$`).
fn split_dumped(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Some(words);
        };
        let quoted = first == '"';
        if quoted {
            chars.next();
        }
        let mut word = String::new();
        loop {
            match chars.next() {
                None if quoted => return None,
                None => break,
                Some('"') if quoted => break,
                Some(' ') if !quoted => break,
                Some('\\') => word.push(match chars.next()? {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'v' => '\u{b}',
                    'x' => {
                        let hex: String = [chars.next()?, chars.next()?].iter().collect();
                        char::from(u8::from_str_radix(&hex, 16).ok()?)
                    }
                    c @ ('\\' | '"' | '\'' | '$' | ' ') => c,
                    _ => return None,
                }),
                Some(c) => word.push(c),
            }
        }
        words.push(word);
    }
}

#[test]
fn systemd_accepts_the_daemon_and_its_socket() {
    if !have_systemd_analyze() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("units");
    let mut config = SystemdConfig::new(&units);
    config.name = "upkeep-verify-daemon".into();
    let shim = SystemdShim::new(config);
    let args: Vec<String> = ["daemon", "--root", "/var/lib/upkeep"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    shim.register_service(true_exe(), &args).unwrap();
    verify(
        &units,
        &[
            "upkeep-verify-daemon.socket",
            "upkeep-verify-daemon.service",
        ],
        false,
    );
}

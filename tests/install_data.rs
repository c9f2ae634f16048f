//! Omaha install data end to end against the REAL reference server: a
//! release published with `upkeep repo add --install-data INDEX=FILE`, an app
//! registered with `upkeep register --install-data-index INDEX`, and
//! `upkeep update` installing it with the real `install-archive` plugin,
//! which writes the installer data it gets to `installerdata`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use support::world::{World, expect_success, run_ok, tar_gz, text};
use support::{plugin_path, upkeep};

const APP: &str = "org.example.alpha";
const DATA: &str =
    "{\"distribution\": {\"lang\": \"en\", \"note\": \"<a & b>\"}}\nzweite Zeile ✓\n";

/// Publishes `APP` `version` (one text file in a .tar.gz) with install data
/// under the given indexes.
fn publish(w: &World, version: &str, data: &[(&str, &str)]) {
    let dir = w.path("payloads").join(version);
    std::fs::create_dir_all(&dir).unwrap();
    let archive = dir.join("app.tar.gz");
    let content = format!("alpha {version}\n");
    std::fs::write(&archive, tar_gz(&[("alpha.txt", content.as_bytes())])).unwrap();
    let mut cmd = upkeep();
    cmd.args(["repo", "add"])
        .arg(&w.repo)
        .args(["--app", APP, "--version", version]);
    for (index, text) in data {
        let file = dir.join(format!("{index}.data"));
        std::fs::write(&file, text).unwrap();
        cmd.arg("--install-data")
            .arg(format!("{index}={}", file.display()));
    }
    let out = run_ok(cmd.arg(&archive));
    assert!(out.contains(&format!("published {APP} {version}")), "{out}");
}

/// Switches the client configuration to `protocol`.
fn use_protocol(w: &World, protocol: &str) {
    let path = w.etc.join("config.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let config = config.replace("protocol = \"3.1\"", &format!("protocol = {protocol:?}"));
    assert!(
        config.contains(&format!("protocol = {protocol:?}")),
        "{config}"
    );
    std::fs::write(&path, config).unwrap();
}

fn installed(w: &World, rel: &str) -> Option<String> {
    std::fs::read_to_string(w.install_dir(APP).join(rel)).ok()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn install_data_reaches_the_installer_in_3_1_and_4_0() {
    for protocol in ["3.1", "4.0"] {
        let mut w = World::new();
        publish(&w, "1.0", &[("en", DATA), ("fr", "lang=fr")]);
        let list = run_ok(upkeep().args(["repo", "list"]).arg(&w.repo));
        assert!(list.contains("install data [\"en\", \"fr\"]"), "{list}");
        w.serve();
        use_protocol(&w, protocol);
        w.register_with(
            APP,
            "0",
            &plugin_path("install-archive"),
            &["--install-data-index", "en"],
        );
        assert_eq!(
            w.prefs_json()["apps"][APP]["install_data_index"],
            "en",
            "{protocol}"
        );
        let out = w.update(&[]);
        expect_success(&out);
        assert!(
            !text(&out.stderr).contains("warning"),
            "{protocol}: {}",
            text(&out.stderr)
        );
        // The installer also found it as a file in its sandbox, after a
        // byte-order mark, the same text.
        assert!(
            text(&out.stderr)
                .contains("installer data also read from /installer-data/installerdata"),
            "{protocol}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            installed(&w, "current/alpha.txt").as_deref(),
            Some("alpha 1.0\n")
        );
        assert_eq!(
            installed(&w, "current/installerdata").as_deref(),
            Some(DATA),
            "{protocol}"
        );
        assert_eq!(
            mode(&w.install_dir(APP).join("current/installerdata")),
            0o644
        );
        assert_eq!(w.version(APP), "1.0");

        // Install data is for the first install only: an update neither
        // asks for it nor hands it to the installer.
        publish(&w, "2.0", &[("en", "newer")]);
        expect_success(&w.update(&[]));
        assert_eq!(
            installed(&w, "current/alpha.txt").as_deref(),
            Some("alpha 2.0\n")
        );
        assert_eq!(installed(&w, "current/installerdata"), None, "{protocol}");
    }
}

#[test]
fn an_unknown_index_warns_and_installs_without_data() {
    let mut w = World::new();
    publish(&w, "1.0", &[("en", DATA)]);
    w.serve();
    w.register_with(
        APP,
        "0",
        &plugin_path("install-archive"),
        &["--install-data-index", "de"],
    );
    let out = w.update(&[]);
    expect_success(&out);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("error-nodata") && stderr.contains("\"de\""),
        "{stderr}"
    );
    assert_eq!(
        installed(&w, "current/alpha.txt").as_deref(),
        Some("alpha 1.0\n")
    );
    assert_eq!(installed(&w, "current/installerdata"), None);
    assert_eq!(w.version(APP), "1.0");
}

#[test]
fn without_an_index_no_data_is_asked_for_or_written() {
    let mut w = World::new();
    publish(&w, "1.0", &[("en", DATA)]);
    w.serve();
    w.register(APP, "0");
    assert!(
        w.prefs_json()["apps"][APP]
            .get("install_data_index")
            .is_none()
    );
    let out = w.update(&[]);
    expect_success(&out);
    assert!(
        !text(&out.stderr).contains("install data"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        installed(&w, "current/alpha.txt").as_deref(),
        Some("alpha 1.0\n")
    );
    assert_eq!(installed(&w, "current/installerdata"), None);
}

#[test]
fn bad_install_data_options_are_refused() {
    let w = World::new();
    let dir = w.path("payloads");
    let archive = dir.join("app.tar.gz");
    std::fs::write(&archive, tar_gz(&[("a.txt", b"a\n")])).unwrap();
    for spec in [
        "no-equals-sign".to_owned(),
        format!("={}", archive.display()),
        "en=/nonexistent/file".to_owned(),
    ] {
        let out = upkeep()
            .args(["repo", "add"])
            .arg(&w.repo)
            .args(["--app", APP, "--version", "1.0", "--install-data", &spec])
            .arg(&archive)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{spec}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("install-data") || stderr.contains("install data"),
            "{spec}: {stderr}"
        );
    }
    let list = run_ok(upkeep().args(["repo", "list"]).arg(&w.repo));
    assert!(list.contains("no releases"), "{list}");

    let installer = plugin_path("install-archive");
    let dir = w.install_dir(APP);
    let out = w.client(&[
        "register",
        "--app",
        APP,
        "--version",
        "0",
        "--install-dir",
        dir.to_str().unwrap(),
        "--installer",
        installer.to_str().unwrap(),
        "--install-data-index",
        "",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--install-data-index"),
        "{}",
        text(&out.stderr)
    );
}

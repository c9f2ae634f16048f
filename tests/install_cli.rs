//! `upkeep install` end to end with the real binary, the real reference
//! server and the real `install-archive` plugin: an offline folder installed
//! while the server is stopped (and reported once it is back), a folder
//! that does not match its manifest refused with nothing changed, and a
//! tagged copy of upkeep that installs its app from the server in the scope
//! its tag asks for, setting upkeep up there first.

mod support;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use support::world::{World, expect_failure, expect_success, run_ok, tar_gz, text};
use support::{plugin_path, upkeep};

const APP: &str = "org.example.offline";

/// An offline folder for `APP` 1.5: `app.tar.gz` holding `alpha.txt`, and
/// a manifest listing it with `sha256` (the archive's when `None`).
fn offline_folder(w: &World, sha256: Option<&str>) -> PathBuf {
    let dir = w.path("offline");
    std::fs::create_dir_all(&dir).unwrap();
    let archive = tar_gz(&[("alpha.txt", b"alpha 1.5 from the folder\n")]);
    std::fs::write(dir.join("app.tar.gz"), &archive).unwrap();
    let hash = sha256.map_or_else(|| hex::encode(Sha256::digest(&archive)), str::to_owned);
    let manifest = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<response protocol="3.0">
<app appid="{APP}" status="ok">
<updatecheck status="ok">
<urls><url codebase="http://dl.example.com/offline/1.5/"/></urls>
<manifest version="1.5">
<packages><package hash_sha256="{hash}" name="app.tar.gz" required="true" size="{}"/></packages>
<actions>
<action event="install" needsadmin="false" run="app.tar.gz"/>
<action event="postinstall" onsuccess="exitsilentlyonlaunchcmd"/>
</actions>
</manifest>
</updatecheck>
<data index="verboselog" name="install" status="ok">verbose=1</data>
</app>
</response>"#,
        archive.len()
    );
    std::fs::write(dir.join("OfflineManifest.gup"), manifest).unwrap();
    dir
}

fn install_args<'a>(w: &'a World, dir: &'a Path, installer: &'a Path) -> Vec<String> {
    [
        "install",
        "--offline-dir",
        dir.to_str().unwrap(),
        "--app",
        APP,
        "--install-dir",
        w.install_dir(APP).to_str().unwrap(),
        "--installer",
        installer.to_str().unwrap(),
        "--install-data-index",
        "verboselog",
        "--no-setup",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn client(w: &World, args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    w.client(&args)
}

/// The installed version of `APP` holds `alpha` in `alpha.txt` and the
/// installer data `data`.
fn assert_installed(w: &World, alpha: &str, data: &str) {
    let current = w.install_dir(APP).join("current");
    assert_eq!(
        std::fs::read_to_string(current.join("alpha.txt")).unwrap(),
        alpha
    );
    assert_eq!(
        std::fs::read_to_string(current.join("installerdata")).unwrap(),
        data
    );
}

#[test]
fn an_offline_folder_installs_with_the_server_stopped_and_is_reported_later() {
    let mut w = World::new();
    w.serve();
    w.stop();
    let dir = offline_folder(&w, None);
    let installer = plugin_path("install-archive");
    let out = client(&w, &install_args(&w, &dir, &installer));
    let stdout = expect_success(&out);
    assert!(
        stdout.contains(&format!("installed {APP} 1.5 from the offline folder")),
        "{stdout}"
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("app.tar.gz copied from the offline folder and verified"),
        "{stderr}"
    );
    assert!(
        stderr.contains("installer data also read from /installer-data/installerdata"),
        "{stderr}"
    );
    assert_installed(&w, "alpha 1.5 from the folder\n", "verbose=1");
    assert_eq!(w.version(APP), "1.5");

    // The server back: the next update reports the install (eventtype 2,
    // success) and, nothing newer published, leaves 1.5.
    w.publish(APP, "1.5", &[("alpha.txt", "alpha 1.5\n")]);
    w.serve();
    expect_success(&w.update(&[]));
    let events = w.app_events(APP);
    assert!(
        events
            .iter()
            .any(|e| e["event_type"] == 2 && e["event_result"] == 1 && e["next_version"] == "1.5"),
        "{events:?}"
    );
    assert_eq!(w.version(APP), "1.5");
}

#[test]
fn a_folder_that_does_not_match_its_manifest_installs_nothing() {
    let mut w = World::new();
    w.serve();
    w.stop();
    let installer = plugin_path("install-archive");
    let dir = offline_folder(&w, Some(&"ab".repeat(32)));
    let out = client(&w, &install_args(&w, &dir, &installer));
    expect_failure(&out, &["app.tar.gz", "SHA-256", "the manifest says"]);
    assert!(!w.state.join("prefs.json").exists() || !text(&w.prefs()).contains(APP));
    assert!(!w.install_dir(APP).join("current").exists());
    // A manifest that is not XML, then a missing package.
    let dir = offline_folder(&w, None);
    std::fs::write(dir.join("OfflineManifest.gup"), "<response protocol=").unwrap();
    let out = client(&w, &install_args(&w, &dir, &installer));
    expect_failure(&out, &["cannot parse", "OfflineManifest.gup"]);
    let dir = offline_folder(&w, None);
    std::fs::remove_file(dir.join("app.tar.gz")).unwrap();
    let out = client(&w, &install_args(&w, &dir, &installer));
    expect_failure(&out, &["has no", "app.tar.gz"]);
    assert!(!w.state.join("prefs.json").exists() || !text(&w.prefs()).contains(APP));
    assert!(!w.install_dir(APP).join("current").exists());
}

#[test]
fn a_tagged_copy_installs_its_app_from_the_server_in_the_user_scope() {
    let mut w = World::new();
    // Published on the channel the tag names (`ap=beta`).
    let archive = w.path("payloads/tagged.tar.gz");
    std::fs::write(&archive, tar_gz(&[("alpha.txt", b"tagged 2.0\n")])).unwrap();
    run_ok(
        upkeep()
            .args(["repo", "add"])
            .arg(&w.repo)
            .args([
                "--app",
                "org.example.tagged",
                "--version",
                "2.0",
                "--channel",
                "beta",
            ])
            .arg(&archive),
    );
    w.serve();
    let tagged = w.path("tagged-setup");
    let upkeep_bin = PathBuf::from(env!("CARGO_BIN_EXE_upkeep"));
    run_ok(
        upkeep()
            .args(["tag", "write"])
            .arg(&tagged)
            .args(["--from"])
            .arg(&upkeep_bin)
            .args([
                "--tag",
                "appguid=org.example.tagged&appname=Tagged&needsadmin=false&ap=beta&installerdata=from%20the%20tag&brand=GGLS",
            ]),
    );
    let home = w.path("home");
    // The tagged copy's `install`, as this user (HOME and XDG_DATA_HOME
    // in the test's directory).
    let run_tagged = |extra: &[&str]| {
        std::process::Command::new(&tagged)
            .arg("install")
            .args(extra)
            .arg("--install-dir")
            .arg(w.installs.join("tagged"))
            .arg("--installer")
            .arg(plugin_path("install-archive"))
            .arg("--config")
            .arg(w.etc.join("config.toml"))
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join("data"))
            .output()
            .unwrap()
    };
    let out = run_tagged(&[]);
    expect_success(&out);
    let stderr = text(&out.stderr);
    let root = home.join("data/upkeep");
    assert!(
        stderr.contains(&format!("installing for this user in {}", root.display()))
            && stderr.contains("needsadmin=false"),
        "{stderr}"
    );
    assert!(stderr.contains("set up upkeep"), "{stderr}");
    let prefs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("prefs.json")).unwrap()).unwrap();
    let app = &prefs["apps"]["org.example.tagged"];
    assert_eq!(app["version"], "2.0", "{prefs}");
    assert_eq!(app["brand"], "GGLS");
    assert_eq!(app["channel"], "beta");
    assert!(prefs["active_version"].is_string(), "{prefs}");
    assert_eq!(
        std::fs::read_to_string(w.installs.join("tagged/current/alpha.txt")).unwrap(),
        "tagged 2.0\n"
    );
    // The tag's installer data reached the installer, and is not stored.
    assert_eq!(
        std::fs::read_to_string(w.installs.join("tagged/current/installerdata")).unwrap(),
        "from the tag"
    );
    assert!(!prefs.to_string().contains("from the tag"));
    // Installed now: a second install is refused.
    let again = run_tagged(&["--no-setup"]);
    expect_failure(&again, &["already installed at 2.0", "upkeep update"]);
}

#[test]
fn a_folder_written_by_repo_offline_installs_with_the_server_stopped() {
    let mut w = World::new();
    let archive = w.path("payloads/app.tar.gz");
    std::fs::write(
        &archive,
        tar_gz(&[("alpha.txt", b"alpha 3.1 from the repository\n")]),
    )
    .unwrap();
    let data = w.path("payloads/verbose.data");
    std::fs::write(&data, "verbose=yes").unwrap();
    run_ok(
        upkeep()
            .args(["repo", "add"])
            .arg(&w.repo)
            .args([
                "--app",
                APP,
                "--version",
                "3.1",
                "--installer-arg",
                "--max-bytes",
                "--installer-arg",
                "1000000",
            ])
            .arg("--install-data")
            .arg(format!("verboselog={}", data.display()))
            .arg(&archive),
    );
    // `upkeep repo offline REPO --app APP --version VERSION OUT`.
    let export = |version: &str, out: &Path| {
        upkeep()
            .args(["repo", "offline"])
            .arg(&w.repo)
            .args(["--app", APP, "--version", version])
            .arg(out)
            .output()
            .unwrap()
    };
    let folder = w.path("usb");
    let out = expect_success(&export("3.1", &folder));
    assert!(out.contains("OfflineManifest.gup and 1 file(s)"), "{out}");
    // Written whole: a second export into the same folder is refused and
    // leaves it as it was.
    let manifest = std::fs::read(folder.join("OfflineManifest.gup")).unwrap();
    expect_failure(&export("3.1", &folder), &["exists and is not empty"]);
    assert_eq!(
        std::fs::read(folder.join("OfflineManifest.gup")).unwrap(),
        manifest
    );
    expect_failure(&export("9.9", &w.path("none")), &["no release", "9.9"]);
    assert!(!w.path("none").exists());

    // The machine installs from it with no server running.
    w.serve();
    w.stop();
    let installer = plugin_path("install-archive");
    let out = client(&w, &install_args(&w, &folder, &installer));
    let stdout = expect_success(&out);
    assert!(
        stdout.contains(&format!("installed {APP} 3.1 from the offline folder")),
        "{stdout}"
    );
    assert_installed(&w, "alpha 3.1 from the repository\n", "verbose=yes");
}

//! [`Client::install`](crate::Client::install) against the in-memory server
//! of [`crate::tests`]: from the server, and from an offline folder with
//! the server down; every refusal leaves the prefs as they were.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};
use upkeep_core::omaha::offline::OFFLINE_MANIFEST;
use upkeep_plugin_host::bindings::installer::Operation;

use crate::tests::{APP, World};
use crate::{
    ClientError, InstallError, InstallFrom, InstallOptions, Recorder, Registration, UpdateError,
};

fn registration(w: &World) -> Registration {
    let mut r = Registration::new(
        APP,
        "0".parse().unwrap(),
        w.install_dir(),
        "/plugins/installer.wasm",
    );
    r.install_data_index = Some("verboselog".into());
    r
}

/// An offline folder holding `payload` as `app.tar` and a manifest for
/// version 1.2 that lists it with `sha256` and `size`.
fn offline_dir(w: &World, payload: &[u8], sha256: &str, size: usize) -> PathBuf {
    let dir = w.dir.path().join("offline");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.tar"), payload).unwrap();
    let manifest = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<response protocol="3.0">
<app appid="{APP}" status="ok">
<updatecheck status="ok">
<urls><url codebase="http://dl.example.com/app/1.2/"/></urls>
<manifest version="1.2">
<packages><package hash_sha256="{sha256}" name="app.tar" required="true" size="{size}"/></packages>
<actions>
<action event="install" needsadmin="false" run="app.tar" arguments="--mode &quot;quiet please&quot;"/>
<action event="postinstall" onsuccess="exitsilentlyonlaunchcmd"/>
</actions>
</manifest>
</updatecheck>
<data index="verboselog" name="install" status="ok">
{{"distribution": {{"verbose_logging": true}}}}
</data>
</app>
</response>"#
    );
    std::fs::write(dir.join(OFFLINE_MANIFEST), manifest).unwrap();
    dir
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn install(w: &World, from: InstallFrom) -> Result<crate::Installed, ClientError> {
    w.client
        .install(registration(w), from, &mut Recorder::default())
}

/// The prefs file's bytes, or none when it does not exist.
fn prefs_bytes(w: &World) -> Option<Vec<u8>> {
    std::fs::read(w.client.root().join(upkeep_core::state::PREFS_FILE)).ok()
}

#[test]
fn an_offline_install_uses_no_network_and_reports_at_the_next_check() {
    let w = World::new();
    w.server.down.store(true, Ordering::SeqCst);
    let payload = b"offline payload";
    let dir = offline_dir(&w, payload, &sha(payload), payload.len());
    let mut seen = Recorder::default();
    let done = w
        .client
        .install(
            registration(&w),
            InstallFrom::Offline(dir.clone()),
            &mut seen,
        )
        .unwrap();
    assert_eq!(done.version.to_string(), "1.2");
    assert_eq!(
        done.packages,
        [("app.tar".to_owned(), payload.len() as u64)]
    );
    assert!(w.server.requests.lock().unwrap().is_empty());
    assert!(seen.notices.iter().any(|n| matches!(
        n,
        crate::Notice::OfflinePackageVerified { file, .. } if file == "app.tar"
    )));
    // The installer saw the verified copy, the action's arguments and the
    // install data of the registered index.
    let installs = w.plugins.installs();
    assert_eq!(installs.len(), 1);
    assert_eq!(installs[0].operation, Operation::Install);
    assert_eq!(installs[0].arguments, ["--mode", "quiet please"]);
    assert_eq!(
        installs[0].installer_data.as_deref(),
        Some(r#"{"distribution": {"verbose_logging": true}}"#)
    );
    let payload_dir = installs[0].payload_dir.clone().unwrap();
    assert!(!payload_dir.starts_with(&dir));
    assert_eq!(std::fs::read(payload_dir.join("app.tar")).unwrap(), payload);
    assert_eq!(w.prefs().apps[APP].version.to_string(), "1.2");
    assert_eq!(w.current().as_deref(), Some("1.2"));
    // Once the server is back, the next check reports the install
    // (eventtype 2, success) and asks about 1.2.
    w.server.down.store(false, Ordering::SeqCst);
    w.server.publish(APP, "1.2", &[("app.tar", payload)], None);
    assert!(matches!(w.update(), crate::AppOutcome::UpToDate { .. }));
    assert!(w.server.events().contains(&(APP.to_owned(), 2, 1, 0, 0)));
    assert_eq!(w.server.requests.lock().unwrap()[0].apps[0].version, "1.2");
}

#[test]
fn a_bad_offline_folder_installs_nothing_and_registers_nothing() {
    let w = World::new();
    w.server.down.store(true, Ordering::SeqCst);
    let payload = b"offline payload";
    let before = prefs_bytes(&w);
    let expect = |dir: &Path, check: &dyn Fn(&ClientError) -> bool| {
        let e = install(&w, InstallFrom::Offline(dir.to_path_buf())).unwrap_err();
        assert!(check(&e), "{e}");
        assert_eq!(prefs_bytes(&w), before, "after: {e}");
        assert!(w.plugins.installs().is_empty(), "after: {e}");
        assert!(w.current().is_none(), "after: {e}");
        assert!(
            !w.client
                .root()
                .join("downloads")
                .join(APP)
                .join("1.2")
                .exists(),
            "after: {e}"
        );
    };
    // The wrong hash, then the wrong size.
    let dir = offline_dir(&w, payload, &sha(b"something else"), payload.len());
    expect(&dir, &|e| {
        matches!(e, ClientError::Install(InstallError::HashMismatch { .. }))
            && e.to_string().contains("app.tar")
    });
    let dir = offline_dir(&w, payload, &sha(payload), payload.len() + 1);
    expect(&dir, &|e| {
        matches!(e, ClientError::Install(InstallError::SizeMismatch { .. }))
    });
    // The package is missing.
    let dir = offline_dir(&w, payload, &sha(payload), payload.len());
    std::fs::remove_file(dir.join("app.tar")).unwrap();
    expect(&dir, &|e| {
        matches!(e, ClientError::Install(InstallError::MissingPackage { .. }))
    });
    // The manifest is not XML, then absent.
    std::fs::write(
        dir.join(OFFLINE_MANIFEST),
        "<response protocol=\"3.0\"><app",
    )
    .unwrap();
    expect(&dir, &|e| {
        matches!(e, ClientError::Install(InstallError::Offline(_)))
            && e.to_string().contains(OFFLINE_MANIFEST)
    });
    std::fs::remove_file(dir.join(OFFLINE_MANIFEST)).unwrap();
    expect(&dir, &|e| e.to_string().contains(&format!("{APP}.gup")));
    assert!(w.server.requests.lock().unwrap().is_empty());
}

#[test]
fn the_legacy_manifest_name_is_read_when_the_new_one_is_absent() {
    let w = World::new();
    w.server.down.store(true, Ordering::SeqCst);
    let payload = b"legacy";
    let dir = offline_dir(&w, payload, &sha(payload), payload.len());
    std::fs::rename(dir.join(OFFLINE_MANIFEST), dir.join(format!("{APP}.gup"))).unwrap();
    assert_eq!(
        install(&w, InstallFrom::Offline(dir))
            .unwrap()
            .version
            .to_string(),
        "1.2"
    );
}

#[test]
fn a_failing_installer_leaves_the_app_unregistered() {
    let w = World::new();
    let payload = b"offline payload";
    let dir = offline_dir(&w, payload, &sha(payload), payload.len());
    *w.plugins.install_fails.lock().unwrap() = Some((7, "disk full".into()));
    let before = prefs_bytes(&w);
    match install(&w, InstallFrom::Offline(dir)) {
        Err(ClientError::Install(InstallError::Failed { source, .. }))
            if matches!(*source, UpdateError::InstallerFailed { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(prefs_bytes(&w), before);
    assert!(w.current().is_none());
    // The copied packages went with it.
    assert!(
        !w.client
            .root()
            .join("downloads")
            .join(APP)
            .join("1.2")
            .exists()
    );
}

#[test]
fn a_server_install_asks_on_demand_and_records_the_app() {
    let w = World::new();
    w.server
        .publish(APP, "3.0", &[("app.tar", b"from the server")], None);
    let done = install(&w, InstallFrom::Server).unwrap();
    assert_eq!(done.version.to_string(), "3.0");
    assert_eq!(done.packages, [("app.tar".to_owned(), 15)]);
    let requests = w.server.requests.lock().unwrap();
    assert_eq!(
        requests[0].apps[0].installsource.as_deref(),
        Some("ondemand")
    );
    assert_eq!(requests[0].apps[0].version, "0");
    drop(requests);
    assert_eq!(w.prefs().apps[APP].version.to_string(), "3.0");
    // Installed now: a second install is refused and changes nothing.
    let before = prefs_bytes(&w);
    assert!(matches!(
        install(&w, InstallFrom::Server),
        Err(ClientError::Install(InstallError::AlreadyInstalled { .. }))
    ));
    assert_eq!(prefs_bytes(&w), before);
}

#[test]
fn a_server_that_offers_nothing_or_fails_leaves_nothing_registered() {
    let w = World::new();
    match install(&w, InstallFrom::Server) {
        Err(ClientError::Install(
            InstallError::NothingOffered { .. } | InstallError::Failed { .. },
        )) => {}
        other => panic!("{other:?}"),
    }
    assert!(!w.prefs().apps.contains_key(APP));
    w.server.down.store(true, Ordering::SeqCst);
    w.server.publish(APP, "3.0", &[("app.tar", b"x")], None);
    assert!(matches!(
        install(&w, InstallFrom::Server),
        Err(ClientError::Install(InstallError::Failed { .. }))
    ));
    assert!(!w.prefs().apps.contains_key(APP));
}

#[test]
fn a_tags_installer_data_reaches_the_installer_when_no_install_data_answers() {
    let w = World::new();
    w.server
        .publish(APP, "3.0", &[("app.tar", b"from the server")], None);
    let mut r = registration(&w);
    r.install_data_index = None;
    let options = InstallOptions {
        from: InstallFrom::Server,
        installer_data: Some("from the tag".into()),
    };
    w.client
        .install(r, options, &mut Recorder::default())
        .unwrap();
    let installs = w.plugins.installs();
    assert_eq!(installs[0].installer_data.as_deref(), Some("from the tag"));
    // Not stored anywhere in the prefs.
    assert!(
        !String::from_utf8(prefs_bytes(&w).unwrap())
            .unwrap()
            .contains("from the tag")
    );

    // Offline: the manifest's install data for the index comes first.
    let w = World::new();
    let payload = b"offline payload";
    let dir = offline_dir(&w, payload, &sha(payload), payload.len());
    let options = InstallOptions {
        from: InstallFrom::Offline(dir),
        installer_data: Some("from the tag".into()),
    };
    w.client
        .install(registration(&w), options, &mut Recorder::default())
        .unwrap();
    assert_eq!(
        w.plugins.installs()[0].installer_data.as_deref(),
        Some(r#"{"distribution": {"verbose_logging": true}}"#)
    );
}

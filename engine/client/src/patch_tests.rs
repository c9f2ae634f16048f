//! Offered patches the client must not use, against the in-memory server
//! of [`crate::tests`]: one the signed metadata does not list, one listed
//! with another hash, a signed one that does not apply and a signed one
//! that makes other bytes than the signed file. All fall back to the full
//! file, install the right bytes and report why on the update event.

use upkeep_core::omaha::codes::diff;

use crate::AppOutcome;
use crate::tests::{APP, World};

/// `APP` at 1.0 (its payload cached), 2.0 offered with the patch
/// `diff` = (name, sha256, size) named on every package.
fn offered(w: &World, diff: (&str, String, u64)) {
    w.server
        .publish(APP, "1.0", &[("app.tar", b"payload one")], None);
    w.register("0");
    assert!(matches!(w.update(), AppOutcome::Updated { .. }));
    assert!(
        w.client
            .root()
            .join("downloads")
            .join(APP)
            .join("1.0/.sha256")
            .is_file(),
        "the installed version's packages are cached"
    );
    w.server
        .publish(APP, "2.0", &[("app.tar", b"payload two")], None);
    *w.server.diff.lock().unwrap() = Some((diff.0.to_owned(), diff.1, diff.2));
}

/// The update to 2.0 used the full file and reported `code`.
fn fell_back(w: &World, code: i64) {
    match w.update() {
        AppOutcome::Updated { to, downloads, .. } => {
            assert_eq!(to.to_string(), "2.0");
            assert!(downloads[0].url.ends_with("/app.tar"), "{:?}", downloads[0]);
        }
        other => panic!("expected the update, got {other:?}"),
    }
    // The request named the cached 1.0 payload by its fingerprint.
    let requests = w.server.requests.lock().unwrap();
    let sent = requests
        .iter()
        .rev()
        .find_map(|r| r.apps.iter().find(|a| a.updatecheck.is_some()))
        .unwrap()
        .packages
        .clone();
    assert_eq!(
        sent,
        vec![hex::encode(upkeep_core::cup::sha256(b"payload one"))]
    );
    drop(requests);
    let update = w
        .server
        .received()
        .into_iter()
        .map(|(_, e)| e)
        .find(|e| e.eventtype.code() == 3 && e.nextversion.as_deref() == Some("2.0"))
        .expect("the update event");
    assert_eq!(
        update.extra.get("diffresult").map(String::as_str),
        Some("0")
    );
    assert_eq!(update.extra.get("differrorcode"), Some(&code.to_string()));
    let installed = w.plugins.installs();
    assert_eq!(installed.last().unwrap().to_version, "2.0");
}

#[test]
fn a_patch_the_signed_metadata_does_not_list_is_not_used() {
    let w = World::new();
    offered(&w, ("app.tar.from-1.0.zpatch", "ab".repeat(32), 40));
    fell_back(&w, diff::NOT_SIGNED);
}

/// Signs `patch` as the patch from 1.0's `app.tar` to 2.0's and serves
/// it; the offer naming it as it is signed.
fn signed_patch(w: &World, patch: &[u8]) -> (&'static str, String, u64) {
    const NAME: &str = "app.tar.from-1.0.zpatch";
    let mut repo = w.server.repo.lock().unwrap();
    let path = format!("apps/{APP}/2.0/{NAME}");
    let info = serde_json::json!({"upkeep_patch": {
        "app": APP, "version": "2.0", "from": "1.0", "base_file": "app.tar",
        "file": "app.tar",
        "target_sha256": hex::encode(upkeep_core::cup::sha256(b"payload two")),
        "base_sha256": hex::encode(upkeep_core::cup::sha256(b"payload one")),
    }});
    repo.add_target("targets", &path, patch).unwrap();
    repo.set_custom("targets", &path, info).unwrap();
    repo.bump_targets("targets").unwrap();
    repo.bump_snapshot().unwrap();
    repo.bump_timestamp().unwrap();
    w.server
        .corrupt
        .lock()
        .unwrap()
        .insert(NAME.to_owned(), patch.to_vec());
    (
        NAME,
        hex::encode(upkeep_core::cup::sha256(patch)),
        patch.len() as u64,
    )
}

#[test]
fn a_signed_patch_that_does_not_apply_is_not_used() {
    let w = World::new();
    let offer = signed_patch(&w, b"signed, but not a zstd frame");
    offered(&w, offer);
    fell_back(&w, diff::APPLY);
}

#[test]
fn a_signed_patch_that_makes_other_bytes_is_not_used() {
    let w = World::new();
    // It applies to 1.0's file, but makes what 2.0's is not.
    let patch = upkeep_core::delta::make_patch(b"payload one", b"payload 2!!").unwrap();
    let offer = signed_patch(&w, &patch);
    offered(&w, offer);
    fell_back(&w, diff::RESULT);
}

#[test]
fn a_patch_listed_with_another_hash_is_not_used() {
    let w = World::new();
    // A patch target the repository signed, that the answer misdescribes.
    let patch = upkeep_core::delta::make_patch(b"payload one", b"payload two").unwrap();
    {
        let mut repo = w.server.repo.lock().unwrap();
        let path = format!("apps/{APP}/2.0/app.tar.from-1.0.zpatch");
        let info = serde_json::json!({"upkeep_patch": {
            "app": APP, "version": "2.0", "from": "1.0", "base_file": "app.tar",
            "file": "app.tar",
            "target_sha256": hex::encode(upkeep_core::cup::sha256(b"payload two")),
            "base_sha256": hex::encode(upkeep_core::cup::sha256(b"payload one")),
        }});
        repo.add_target("targets", &path, &patch).unwrap();
        repo.set_custom("targets", &path, info).unwrap();
        repo.bump_targets("targets").unwrap();
        repo.bump_snapshot().unwrap();
        repo.bump_timestamp().unwrap();
    }
    offered(
        &w,
        (
            "app.tar.from-1.0.zpatch",
            "cd".repeat(32),
            patch.len() as u64,
        ),
    );
    fell_back(&w, diff::DISAGREEMENT);
}

//! The TUF client against a repository simulator: metadata built and signed
//! in code, served by an in-memory transport that records every request.
//! Each test plays one attack (or one piece of the workflow) and checks the
//! refusal, what stays trusted on disk and the exact sequence of fetches.

use std::cell::RefCell;
use std::path::Path;

use time::{Duration, OffsetDateTime};
use upkeep_core::tuf::metadata::Expiry;
use upkeep_core::tuf::repository::Repository;
use upkeep_core::tuf::{
    FetchError, FixedClock, Targets, Transport, TufError, Updater, UpdaterConfig,
    init_trusted_root, target_file_name,
};

const META: &str = "http://repo.test/metadata/";
const TARGETS: &str = "http://repo.test/targets/";

fn now() -> OffsetDateTime {
    // 2030-03-17T17:46:40Z
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

/// Serves a [`Repository`] and records the path of every request.
#[derive(Debug)]
struct Sim {
    repo: RefCell<Repository>,
    log: RefCell<Vec<String>>,
}

impl Sim {
    fn new(consistent: bool) -> Sim {
        let repo = Repository::new(now() + Duration::days(30), consistent).unwrap();
        Sim {
            repo: RefCell::new(repo),
            log: RefCell::new(Vec::new()),
        }
    }
    fn repo(&self) -> std::cell::RefMut<'_, Repository> {
        self.repo.borrow_mut()
    }
    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.borrow_mut())
    }
}

impl Transport for Sim {
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let path = url
            .strip_prefix("http://repo.test/")
            .ok_or_else(|| FetchError::Other(url.into()))?;
        self.log.borrow_mut().push(path.to_owned());
        match self.repo.borrow().serve(path) {
            Some(b) if b.len() as u64 > max_len => Err(FetchError::TooLong { max_len }),
            Some(b) => Ok(b),
            None => Err(FetchError::NotFound),
        }
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// A client directory initialised with the repository's first root.
fn client(sim: &Sim) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    init_trusted_root(dir.path(), sim.repo().initial_root().unwrap()).unwrap();
    dir
}

fn updater<'a>(
    sim: &'a Sim,
    dir: &Path,
    at: OffsetDateTime,
) -> Result<Updater<&'a Sim, FixedClock>, TufError> {
    Updater::new(dir, META, sim, FixedClock(at), UpdaterConfig::default())
}

fn refresh_at<'a>(
    sim: &'a Sim,
    dir: &Path,
    at: OffsetDateTime,
) -> Result<Updater<&'a Sim, FixedClock>, TufError> {
    let mut u = updater(sim, dir, at)?;
    u.refresh()?;
    Ok(u)
}

fn refresh<'a>(sim: &'a Sim, dir: &Path) -> Result<Updater<&'a Sim, FixedClock>, TufError> {
    refresh_at(sim, dir, now())
}

/// The version of a cached metadata file.
fn cached_version(dir: &Path, name: &str) -> Option<u64> {
    let bytes = std::fs::read(dir.join(name)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v["signed"]["version"].as_u64()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn past(days: i64) -> Expiry {
    Expiry(now() - Duration::days(days))
}

#[test]
fn refresh_fetches_top_level_metadata_in_order_and_caches_it() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    refresh(&sim, dir.path()).unwrap();
    assert_eq!(
        sim.take_log(),
        s(&[
            "metadata/2.root.json",
            "metadata/timestamp.json",
            "metadata/1.snapshot.json",
            "metadata/1.targets.json"
        ])
    );
    assert_eq!(
        files(dir.path()),
        s(&[
            "last-known-time",
            "root.json",
            "snapshot.json",
            "targets.json",
            "timestamp.json"
        ])
    );
    // Nothing new: snapshot and targets come from the cache.
    refresh(&sim, dir.path()).unwrap();
    assert_eq!(
        sim.take_log(),
        s(&["metadata/2.root.json", "metadata/timestamp.json"])
    );
    // New targets: fetched by version.
    sim.repo().bump_targets("targets").unwrap();
    refresh(&sim, dir.path()).unwrap();
    assert_eq!(
        sim.take_log(),
        s(&[
            "metadata/2.root.json",
            "metadata/timestamp.json",
            "metadata/2.snapshot.json",
            "metadata/2.targets.json"
        ])
    );
    assert_eq!(cached_version(dir.path(), "targets.json"), Some(2));
}

#[test]
fn without_consistent_snapshots_files_are_fetched_unversioned() {
    let sim = Sim::new(false);
    let dir = client(&sim);
    refresh(&sim, dir.path()).unwrap();
    assert_eq!(
        sim.take_log(),
        s(&[
            "metadata/2.root.json",
            "metadata/timestamp.json",
            "metadata/snapshot.json",
            "metadata/targets.json"
        ])
    );
}

#[test]
fn missing_timestamp_fails_the_refresh() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    sim.repo().published.remove("timestamp");
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(matches!(err, TufError::NotFound { .. }), "{err}");
    assert_eq!(
        sim.take_log(),
        s(&["metadata/2.root.json", "metadata/timestamp.json"])
    );
    assert_eq!(files(dir.path()), s(&["last-known-time", "root.json"]));
}

#[test]
fn root_rotation_one_version_at_a_time_with_both_thresholds() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    refresh(&sim, dir.path()).unwrap();
    sim.take_log();
    {
        let mut repo = sim.repo();
        let old = repo.signers["root"].clone();
        repo.rotate_keys("root", 2, 2);
        let new = repo.signers["root"].clone();
        // v2: signed by the old key and both new keys.
        repo.publish_root_signed_by(&[&old[0], &new[0], &new[1]])
            .unwrap();
        // v3: only the new keys (they are v2's root keys).
        repo.publish_root().unwrap();
    }
    let u = refresh(&sim, dir.path()).unwrap();
    assert_eq!(u.trusted().root().version, 3);
    assert_eq!(cached_version(dir.path(), "root.json"), Some(3));
    assert_eq!(
        sim.take_log(),
        s(&[
            "metadata/2.root.json",
            "metadata/3.root.json",
            "metadata/4.root.json",
            "metadata/timestamp.json"
        ])
    );
}

#[test]
fn new_root_without_the_old_roots_threshold_is_refused() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    {
        let mut repo = sim.repo();
        repo.rotate_keys("root", 1, 1);
        repo.publish_root().unwrap(); // signed by the new key only
    }
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::SignatureThreshold { file, role, .. } if file == "2.root.json" && role == "root (trusted)"),
        "{err}"
    );
    assert_eq!(cached_version(dir.path(), "root.json"), Some(1));
    assert_eq!(sim.take_log(), s(&["metadata/2.root.json"]));
}

#[test]
fn new_root_without_its_own_threshold_is_refused() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    {
        let mut repo = sim.repo();
        let old = repo.signers["root"].clone();
        repo.rotate_keys("root", 2, 2);
        let new = repo.signers["root"].clone();
        repo.publish_root_signed_by(&[&old[0], &new[0]]).unwrap(); // 1 of 2 new keys
    }
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::SignatureThreshold { role, valid: 1, threshold: 2, .. } if role == "root (new)"),
        "{err}"
    );
    assert_eq!(cached_version(dir.path(), "root.json"), Some(1));
}

#[test]
fn old_root_threshold_of_two_needs_two_old_signatures() {
    let sim = Sim::new(true);
    let dir = tempfile::tempdir().unwrap();
    {
        let mut repo = sim.repo();
        repo.rotate_keys("root", 2, 2);
        repo.roots.clear();
        repo.publish_root().unwrap(); // v1 with two keys, threshold 2
        let old = repo.signers["root"].clone();
        repo.root.unrecognized.insert("note".into(), "v2".into());
        repo.publish_root_signed_by(&[&old[0]]).unwrap(); // v2 signed by one of them
    }
    init_trusted_root(dir.path(), sim.repo().initial_root().unwrap()).unwrap();
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(
            &err,
            TufError::SignatureThreshold {
                valid: 1,
                threshold: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn root_with_the_wrong_version_is_refused() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    {
        let mut repo = sim.repo();
        repo.publish_root().unwrap(); // v2
        repo.publish_root().unwrap(); // v3
        let v3 = repo.roots[2].clone();
        repo.overrides.insert("metadata/2.root.json".into(), v3);
    }
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(
            &err,
            TufError::VersionMismatch {
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn timestamp_rollback_is_refused() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    sim.repo().bump_timestamp().unwrap(); // v2
    refresh(&sim, dir.path()).unwrap();
    let v1 = sim.repo().published["timestamp"][0].1.clone();
    sim.repo()
        .overrides
        .insert("metadata/timestamp.json".into(), v1);
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(
            &err,
            TufError::RollbackDetected {
                trusted: 2,
                new: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(cached_version(dir.path(), "timestamp.json"), Some(2));
}

#[test]
fn snapshot_version_rollback_in_timestamp_is_refused() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    sim.repo().bump_snapshot().unwrap(); // snapshot v2, timestamp v2
    refresh(&sim, dir.path()).unwrap();
    {
        let mut repo = sim.repo();
        repo.timestamp
            .meta
            .insert("snapshot.json".into(), upkeep_core::tuf::MetaFile::new(1));
        repo.timestamp.version += 1;
        let bytes =
            upkeep_core::tuf::sign_metadata(&repo.timestamp, &[&repo.signers["timestamp"][0]])
                .unwrap();
        repo.overrides
            .insert("metadata/timestamp.json".into(), bytes);
    }
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::RollbackDetected { file, trusted: 2, new: 1 } if file.contains("snapshot.json entry")),
        "{err}"
    );
}

#[test]
fn targets_version_rollback_in_snapshot_is_refused() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    sim.repo().bump_targets("targets").unwrap(); // targets v2
    refresh(&sim, dir.path()).unwrap();
    {
        let mut repo = sim.repo();
        repo.snapshot
            .meta
            .insert("targets.json".into(), upkeep_core::tuf::MetaFile::new(1));
        repo.snapshot.version += 1;
        let bytes =
            upkeep_core::tuf::sign_metadata(&repo.snapshot, &[&repo.signers["snapshot"][0]])
                .unwrap();
        let version = repo.snapshot.version;
        repo.published
            .get_mut("snapshot")
            .unwrap()
            .push((version, bytes));
        repo.bump_timestamp().unwrap();
    }
    sim.take_log();
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::RollbackDetected { file, trusted: 2, new: 1 } if file.contains("targets.json entry")),
        "{err}"
    );
    assert_eq!(cached_version(dir.path(), "snapshot.json"), Some(2));
}

#[test]
fn expired_timestamp_is_refused_and_not_cached() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    refresh(&sim, dir.path()).unwrap();
    sim.repo().timestamp.expires = past(5);
    sim.repo().bump_timestamp().unwrap();
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::MetadataExpired { file, .. } if file == "timestamp.json"),
        "{err}"
    );
    assert_eq!(cached_version(dir.path(), "timestamp.json"), Some(1));
}

#[test]
fn expired_snapshot_is_refused() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    refresh(&sim, dir.path()).unwrap();
    sim.repo().snapshot.expires = past(5);
    sim.repo().bump_snapshot().unwrap();
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::MetadataExpired { file, .. } if file == "2.snapshot.json"),
        "{err}"
    );
    assert_eq!(cached_version(dir.path(), "snapshot.json"), Some(1));
}

#[test]
fn expired_targets_is_refused() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    refresh(&sim, dir.path()).unwrap();
    sim.repo().targets.get_mut("targets").unwrap().expires = past(5);
    sim.repo().bump_targets("targets").unwrap();
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::MetadataExpired { file, .. } if file == "2.targets.json"),
        "{err}"
    );
    assert_eq!(cached_version(dir.path(), "targets.json"), Some(1));
}

#[test]
fn expired_final_root_is_stored_but_stops_the_update() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    refresh(&sim, dir.path()).unwrap();
    sim.take_log();
    sim.repo().root.expires = past(1);
    sim.repo().publish_root().unwrap();
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::MetadataExpired { file, .. } if file == "root.json"),
        "{err}"
    );
    assert_eq!(cached_version(dir.path(), "root.json"), Some(2));
    assert_eq!(
        sim.take_log(),
        s(&["metadata/2.root.json", "metadata/3.root.json"])
    );
}

#[test]
fn expired_intermediate_root_is_fine() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    {
        let mut repo = sim.repo();
        repo.root.expires = past(1);
        repo.publish_root().unwrap(); // v2 expired
        repo.root.expires = Expiry(now() + Duration::days(30));
        repo.publish_root().unwrap(); // v3 fine
    }
    let u = refresh(&sim, dir.path()).unwrap();
    assert_eq!(u.trusted().root().version, 3);
}

#[test]
fn expired_cached_timestamp_still_guards_against_rollback() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    sim.repo().timestamp.expires = Expiry(now() + Duration::days(7));
    sim.repo().bump_timestamp().unwrap(); // v2, expires day 7
    refresh(&sim, dir.path()).unwrap();
    sim.repo().timestamp.expires = Expiry(now() + Duration::days(21));
    sim.repo().bump_targets("targets").unwrap(); // timestamp v3, expires day 21
    let u = refresh_at(&sim, dir.path(), now() + Duration::days(18)).unwrap();
    assert_eq!(u.trusted().timestamp().unwrap().version, 3);
    assert_eq!(cached_version(dir.path(), "targets.json"), Some(2));
}

#[test]
fn snapshot_version_other_than_timestamps_is_mix_and_match() {
    let sim = Sim::new(false);
    let dir = client(&sim);
    {
        let mut repo = sim.repo();
        let old_snapshot = repo.published["snapshot"][0].1.clone();
        repo.bump_snapshot().unwrap(); // timestamp now says snapshot v2
        repo.overrides
            .insert("metadata/snapshot.json".into(), old_snapshot);
    }
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(
            &err,
            TufError::VersionMismatch {
                expected: 2,
                found: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(!dir.path().join("snapshot.json").exists());
}

#[test]
fn targets_version_other_than_snapshots_is_mix_and_match() {
    let sim = Sim::new(false);
    let dir = client(&sim);
    {
        let mut repo = sim.repo();
        let old_targets = repo.published["targets"][0].1.clone();
        repo.bump_targets("targets").unwrap();
        repo.overrides
            .insert("metadata/targets.json".into(), old_targets);
    }
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::VersionMismatch { file, expected: 2, found: 1 } if file == "targets.json"),
        "{err}"
    );
}

#[test]
fn metadata_not_matching_snapshot_hashes_is_refused() {
    let sim = Sim::new(true);
    sim.repo().meta_hashes = true;
    sim.repo().bump_targets("targets").unwrap();
    let dir = client(&sim);
    {
        let mut repo = sim.repo();
        // Same length, one byte of the signature changed.
        let mut bytes = repo.published["targets"].last().unwrap().1.clone();
        let at = bytes.windows(8).position(|w| w == b"\"sig\": \"").unwrap() + 8;
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        repo.overrides
            .insert("metadata/2.targets.json".into(), bytes);
    }
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::HashMismatch { file, .. } if file == "2.targets.json"),
        "{err}"
    );
    assert!(!dir.path().join("targets.json").exists());
}

#[test]
fn endless_data_is_cut_off() {
    // Timestamp bigger than its default cap.
    let sim = Sim::new(true);
    let dir = client(&sim);
    sim.repo()
        .overrides
        .insert("metadata/timestamp.json".into(), vec![b' '; 20_000]);
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::LengthExceeded { file, max: 16_384 } if file == "timestamp.json"),
        "{err}"
    );

    // Root bigger than its default cap.
    let sim = Sim::new(true);
    let dir = client(&sim);
    sim.repo()
        .overrides
        .insert("metadata/2.root.json".into(), vec![b' '; 600_000]);
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::LengthExceeded { max: 512_000, .. }),
        "{err}"
    );

    // Snapshot bigger than the length the timestamp gives.
    let sim = Sim::new(true);
    sim.repo().meta_hashes = true;
    sim.repo().bump_snapshot().unwrap();
    let dir = client(&sim);
    let len = sim.repo().timestamp.meta["snapshot.json"].length.unwrap();
    let mut long = sim.repo().published["snapshot"].last().unwrap().1.clone();
    long.extend_from_slice(&[b' '; 100]);
    sim.repo()
        .overrides
        .insert("metadata/2.snapshot.json".into(), long);
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::LengthExceeded { max, .. } if *max == len),
        "{err}"
    );
}

#[test]
fn clock_going_backwards_is_refused() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    refresh(&sim, dir.path()).unwrap();
    let err = refresh_at(&sim, dir.path(), now() - Duration::hours(1)).unwrap_err();
    assert!(matches!(&err, TufError::ClockWentBackwards { .. }), "{err}");
    sim.take_log();
    // Later is fine.
    refresh_at(&sim, dir.path(), now() + Duration::hours(1)).unwrap();
}

#[test]
fn target_download_with_consistent_snapshot_names_and_caching() {
    let sim = Sim::new(true);
    sim.repo()
        .add_target("targets", "dir/file.txt", b"content")
        .unwrap();
    sim.repo().bump_targets("targets").unwrap();
    let dir = client(&sim);
    let out = tempfile::tempdir().unwrap();
    let mut u = refresh(&sim, dir.path()).unwrap();
    sim.take_log();
    let info = u.get_target_info("dir/file.txt").unwrap();
    let dest = out.path().join(target_file_name(&info.path));
    assert!(!u.find_cached_target(&info, &dest));
    u.download_target(&info, TARGETS, &dest).unwrap();
    let hash = info.file.hashes["sha256"].clone();
    assert_eq!(sim.take_log(), vec![format!("targets/dir/{hash}.file.txt")]);
    assert_eq!(std::fs::read(&dest).unwrap(), b"content");
    assert_eq!(files(out.path()), s(&["dir%2Ffile.txt"]));
    assert!(u.find_cached_target(&info, &dest));
}

#[test]
fn target_with_other_content_is_refused() {
    let sim = Sim::new(false);
    sim.repo()
        .add_target("targets", "a.bin", b"good data")
        .unwrap();
    sim.repo().bump_targets("targets").unwrap();
    let dir = client(&sim);
    let out = tempfile::tempdir().unwrap();
    let mut u = refresh(&sim, dir.path()).unwrap();
    let info = u.get_target_info("a.bin").unwrap();
    let dest = out.path().join("a.bin");
    // Same length, other bytes.
    sim.repo()
        .artifacts
        .insert("a.bin".into(), b"evil data".to_vec());
    let err = u.download_target(&info, TARGETS, &dest).unwrap_err();
    assert!(
        matches!(&err, TufError::HashMismatch { file, .. } if file == "a.bin"),
        "{err}"
    );
    // Shorter.
    sim.repo()
        .artifacts
        .insert("a.bin".into(), b"evil".to_vec());
    let err = u.download_target(&info, TARGETS, &dest).unwrap_err();
    assert!(
        matches!(
            &err,
            TufError::LengthMismatch {
                expected: 9,
                actual: 4,
                ..
            }
        ),
        "{err}"
    );
    // Longer: cut off at the trusted length.
    sim.repo()
        .artifacts
        .insert("a.bin".into(), vec![b'x'; 1000]);
    let err = u.download_target(&info, TARGETS, &dest).unwrap_err();
    assert!(
        matches!(&err, TufError::LengthExceeded { max: 9, .. }),
        "{err}"
    );
    assert!(!dest.exists());
    // Unknown targets are not found.
    assert!(matches!(
        u.get_target_info("nope"),
        Err(TufError::TargetNotFound { .. })
    ));
}

/// targets delegates to A (paths `*.txt`), B (`*.txt`), C (`other/*`).
fn delegated_sim(a_terminating: bool) -> Sim {
    let sim = Sim::new(true);
    {
        let mut repo = sim.repo();
        repo.add_delegation(
            "targets",
            "A",
            a_terminating,
            Some(vec!["*.txt".into()]),
            None,
        )
        .unwrap();
        repo.add_delegation("targets", "B", false, Some(vec!["*.txt".into()]), None)
            .unwrap();
        repo.add_delegation("targets", "C", false, Some(vec!["other/*".into()]), None)
            .unwrap();
        repo.add_target("A", "both.txt", b"from A").unwrap();
        repo.add_target("B", "both.txt", b"from B!").unwrap();
        repo.add_target("B", "b-only.txt", b"only B").unwrap();
        repo.add_target("C", "other/c.bin", b"C").unwrap();
        for r in ["A", "B", "C"] {
            repo.publish_targets(r).unwrap();
        }
        repo.bump_targets("targets").unwrap();
    }
    sim
}

#[test]
fn delegations_are_searched_in_order() {
    let sim = delegated_sim(false);
    let dir = client(&sim);
    let mut u = refresh(&sim, dir.path()).unwrap();
    sim.take_log();
    let info = u.get_target_info("both.txt").unwrap();
    assert_eq!(info.file.length, 6); // A's, listed first
    assert_eq!(sim.take_log(), s(&["metadata/1.A.json"]));
    let info = u.get_target_info("b-only.txt").unwrap();
    assert_eq!(info.file.length, 6);
    assert_eq!(sim.take_log(), s(&["metadata/1.B.json"]));
    // C is reached only for paths under other/.
    u.get_target_info("other/c.bin").unwrap();
    assert_eq!(sim.take_log(), s(&["metadata/1.C.json"]));
    assert!(matches!(
        u.get_target_info("x.bin"),
        Err(TufError::TargetNotFound { .. })
    ));
    assert_eq!(sim.take_log(), Vec::<String>::new());
    for f in ["A.json", "B.json", "C.json"] {
        assert!(dir.path().join(f).exists(), "{f} cached");
    }
}

#[test]
fn terminating_delegation_stops_the_search() {
    let sim = delegated_sim(true);
    let dir = client(&sim);
    let mut u = refresh(&sim, dir.path()).unwrap();
    sim.take_log();
    let err = u.get_target_info("b-only.txt").unwrap_err();
    assert!(matches!(err, TufError::TargetNotFound { .. }), "{err}");
    assert_eq!(sim.take_log(), s(&["metadata/1.A.json"]));
}

#[test]
fn delegated_role_signed_by_the_wrong_key_is_refused() {
    let sim = delegated_sim(false);
    {
        let mut repo = sim.repo();
        let other = repo.new_signer();
        repo.signers.insert("A".into(), vec![other]);
        repo.bump_targets("A").unwrap();
    }
    let dir = client(&sim);
    let mut u = refresh(&sim, dir.path()).unwrap();
    let err = u.get_target_info("both.txt").unwrap_err();
    assert!(
        matches!(&err, TufError::SignatureThreshold { role, .. } if role == "A"),
        "{err}"
    );
    assert!(!dir.path().join("A.json").exists());
}

#[test]
fn hashed_bin_delegations_fetch_only_the_matching_bin() {
    use sha2::{Digest, Sha256};
    let sim = Sim::new(true);
    let target = "packages/app-1.0.tar";
    let prefix = hex::encode(Sha256::digest(target.as_bytes()))[..1].to_owned();
    {
        let mut repo = sim.repo();
        for i in 0..16u8 {
            let p = format!("{i:x}");
            repo.add_delegation("targets", &format!("bin-{p}"), false, None, Some(vec![p]))
                .unwrap();
        }
        repo.add_target(&format!("bin-{prefix}"), target, b"app")
            .unwrap();
        for i in 0..16u8 {
            repo.publish_targets(&format!("bin-{i:x}")).unwrap();
        }
        repo.bump_targets("targets").unwrap();
    }
    let dir = client(&sim);
    let mut u = refresh(&sim, dir.path()).unwrap();
    sim.take_log();
    let info = u.get_target_info(target).unwrap();
    assert_eq!(info.file.length, 3);
    assert_eq!(
        sim.take_log(),
        vec![format!("metadata/1.bin-{prefix}.json")]
    );
}

#[test]
fn odd_role_names_are_encoded_in_urls_and_file_names() {
    let sim = Sim::new(true);
    let role = "../evil/role?#";
    {
        let mut repo = sim.repo();
        repo.add_delegation("targets", role, false, Some(vec!["*".into()]), None)
            .unwrap();
        repo.publish_targets(role).unwrap();
        repo.bump_targets("targets").unwrap();
    }
    let dir = client(&sim);
    let mut u = refresh(&sim, dir.path()).unwrap();
    sim.take_log();
    assert!(u.get_target_info("nonexistent artifact").is_err());
    assert_eq!(
        sim.take_log(),
        s(&["metadata/1...%2Fevil%2Frole%3F%23.json"])
    );
    assert!(dir.path().join("..%2Fevil%2Frole%3F%23.json").exists());
    assert_eq!(files(dir.path()).len(), 6);
}

#[test]
fn timestamp_key_rotation_drops_the_cached_timestamp() {
    let sim = Sim::new(true);
    let dir = client(&sim);
    {
        // Fast-forward: the client trusts a timestamp with a huge version.
        let mut repo = sim.repo();
        repo.timestamp.version = 1000;
        repo.publish_timestamp().unwrap();
    }
    refresh(&sim, dir.path()).unwrap();
    {
        let mut repo = sim.repo();
        repo.rotate_keys("timestamp", 1, 1);
        repo.publish_root().unwrap();
        repo.timestamp.version = 1;
        repo.publish_timestamp().unwrap();
    }
    let u = refresh(&sim, dir.path()).unwrap();
    assert_eq!(u.trusted().timestamp().unwrap().version, 1);
    assert_eq!(cached_version(dir.path(), "timestamp.json"), Some(1));
}

#[test]
fn unsupported_key_types_are_named() {
    let sim = Sim::new(true);
    {
        let mut repo = sim.repo();
        let id = repo.root.roles["timestamp"].keyids[0].clone();
        let key = repo.root.keys.get_mut(&id).unwrap();
        key.keytype = "sm2".into();
        key.scheme = "sm2-sm3".into();
        repo.publish_root().unwrap();
    }
    let dir = client(&sim);
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::UnsupportedKeyType { keytype, .. } if keytype == "sm2"),
        "{err}"
    );
}

#[test]
fn delegated_targets_round_trip_through_json() {
    let sim = delegated_sim(false);
    let bytes = sim.repo().published["targets"].last().unwrap().1.clone();
    let env = upkeep_core::tuf::Envelope::<Targets>::from_bytes(&bytes, "targets.json").unwrap();
    let roles = env.signed.delegations.unwrap().roles.unwrap();
    assert_eq!(
        roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["A", "B", "C"]
    );
}

/// `signed` metadata whose first signature appears twice in `signatures`.
fn with_repeated_signature(bytes: &[u8]) -> Vec<u8> {
    let mut doc: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let sigs = doc["signatures"].as_array_mut().unwrap();
    let first = sigs[0].clone();
    sigs.push(first);
    serde_json::to_vec(&doc).unwrap()
}

#[test]
fn repeated_keyids_in_signatures_are_refused() {
    // Top-level metadata: a timestamp whose one valid signature is listed
    // twice. The threshold is met either way; the list itself is invalid.
    let sim = Sim::new(true);
    let dir = client(&sim);
    refresh(&sim, dir.path()).unwrap();
    {
        let mut repo = sim.repo();
        repo.bump_timestamp().unwrap();
        let bytes = repo.published["timestamp"].last().unwrap().1.clone();
        repo.overrides.insert(
            "metadata/timestamp.json".into(),
            with_repeated_signature(&bytes),
        );
    }
    sim.take_log();
    let err = refresh(&sim, dir.path()).unwrap_err();
    assert!(
        matches!(&err, TufError::DuplicateSignature { file, .. } if file == "timestamp.json"),
        "{err}"
    );
    assert_eq!(cached_version(dir.path(), "timestamp.json"), Some(1));

    // Delegated metadata the same way.
    let sim = delegated_sim(false);
    {
        let mut repo = sim.repo();
        let bytes = repo.published["A"].last().unwrap().1.clone();
        repo.overrides
            .insert("metadata/1.A.json".into(), with_repeated_signature(&bytes));
    }
    let dir = client(&sim);
    let mut u = refresh(&sim, dir.path()).unwrap();
    let err = u.get_target_info("both.txt").unwrap_err();
    assert!(matches!(err, TufError::DuplicateSignature { .. }), "{err}");
    assert!(!dir.path().join("A.json").exists());

    // And a trusted root given to `init`.
    let sim = Sim::new(true);
    let root = with_repeated_signature(sim.repo().initial_root().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let err = init_trusted_root(dir.path(), &root).unwrap_err();
    assert!(matches!(err, TufError::DuplicateSignature { .. }), "{err}");
}

/// A diamond: targets delegates `a/*` to parent-a and `b/*` to parent-b;
/// both delegate a role named `release` (parent-a for `a/*` with key KA,
/// parent-b for `b/*` with key KB). `release` lists `a/x` and `b/y` and is
/// signed by KA, plus KB when `signed_by_both`.
fn diamond_sim(signed_by_both: bool) -> Sim {
    let sim = Sim::new(true);
    {
        let mut repo = sim.repo();
        let paths = |p: &str| Some(vec![p.to_owned()]);
        repo.add_delegation("targets", "parent-a", false, paths("a/*"), None)
            .unwrap();
        repo.add_delegation("targets", "parent-b", false, paths("b/*"), None)
            .unwrap();
        repo.add_delegation("parent-a", "release", false, paths("a/*"), None)
            .unwrap();
        let ka = repo.signers["release"].clone();
        repo.add_delegation("parent-b", "release", false, paths("b/*"), None)
            .unwrap();
        let kb = repo.signers["release"].clone();
        let mut signers = ka;
        if signed_by_both {
            signers.extend(kb);
        }
        repo.signers.insert("release".into(), signers);
        repo.add_target("release", "a/x", b"for a").unwrap();
        repo.add_target("release", "b/y", b"for b").unwrap();
        for r in ["parent-a", "parent-b", "release"] {
            repo.publish_targets(r).unwrap();
        }
        repo.bump_targets("targets").unwrap();
    }
    sim
}

#[test]
fn a_role_reached_through_two_delegators_is_verified_against_each() {
    let sim = diamond_sim(false);
    let dir = client(&sim);
    let mut u = refresh(&sim, dir.path()).unwrap();
    sim.take_log();
    // Through parent-a, KA's signature is what counts.
    u.get_target_info("a/x").unwrap();
    assert_eq!(
        sim.take_log(),
        s(&["metadata/1.parent-a.json", "metadata/1.release.json"])
    );
    // Through parent-b the same file needs KB's: refused, although it was
    // trusted a moment ago through parent-a. It is not fetched again.
    let err = u.get_target_info("b/y").unwrap_err();
    assert!(
        matches!(&err, TufError::SignatureThreshold { role, .. } if role == "release"),
        "{err}"
    );
    assert_eq!(sim.take_log(), s(&["metadata/1.parent-b.json"]));
    // What parent-a delegates still resolves.
    assert_eq!(u.get_target_info("a/x").unwrap().file.length, 5);
    assert_eq!(sim.take_log(), Vec::<String>::new());

    // A new client that starts with b/y refuses it too.
    let dir = client(&sim);
    let mut u = refresh(&sim, dir.path()).unwrap();
    assert!(u.get_target_info("b/y").is_err());
}

#[test]
fn a_role_signed_for_both_delegators_serves_both_paths_with_one_fetch() {
    let sim = diamond_sim(true);
    let dir = client(&sim);
    let mut u = refresh(&sim, dir.path()).unwrap();
    sim.take_log();
    u.get_target_info("a/x").unwrap();
    assert_eq!(u.get_target_info("b/y").unwrap().file.length, 5);
    assert_eq!(
        sim.take_log(),
        s(&[
            "metadata/1.parent-a.json",
            "metadata/1.release.json",
            "metadata/1.parent-b.json"
        ])
    );
    // From the cache on the next run: no metadata beyond the top level.
    let mut u = refresh(&sim, dir.path()).unwrap();
    sim.take_log();
    u.get_target_info("b/y").unwrap();
    u.get_target_info("a/x").unwrap();
    assert_eq!(sim.take_log(), Vec::<String>::new());
}

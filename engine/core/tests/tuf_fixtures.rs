//! The TUF client against third-party fixtures in `shared/testdata`:
//! repositories and root files from awslabs/tough (MIT OR Apache-2.0,
//! expectations restated in `tough/expectations.yaml`) and python-tuf's test
//! repositories (theupdateframework/python-tuf, Apache-2.0 OR MIT). The data
//! files are used as they are; the clock is pinned because the fixtures
//! expire (some on purpose).

use std::cell::RefCell;
use std::path::{Component, Path, PathBuf};

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use time::OffsetDateTime;
use upkeep_core::tuf::{
    Envelope, FetchError, FixedClock, Root, Transport, TrustedSet, TufError, Updater,
    UpdaterConfig, init_trusted_root, target_file_name,
};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata");
const META: &str = "fixture://metadata/";
const TARGETS: &str = "fixture://targets/";

/// 2025-06-01T00:00:00Z: before every fixture's intended expiry.
fn pinned() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_748_736_000).unwrap()
}

/// Serves a fixture repository from disk: `fixture://metadata/NAME` from the
/// metadata folder, `fixture://targets/PATH` from the targets folder. Names
/// are looked up as requested (fixtures store percent-encoded role file
/// names) and then percent-decoded; target paths are normalised lexically
/// and never leave their folder.
#[derive(Debug)]
struct FsTransport {
    metadata: PathBuf,
    targets: PathBuf,
    aliases: Vec<(String, PathBuf)>,
    log: RefCell<Vec<String>>,
}

impl FsTransport {
    fn new(metadata: PathBuf, targets: PathBuf) -> FsTransport {
        FsTransport {
            metadata,
            targets,
            aliases: Vec::new(),
            log: RefCell::new(Vec::new()),
        }
    }

    fn resolve(&self, url: &str) -> Option<PathBuf> {
        if let Some((_, p)) = self.aliases.iter().find(|(u, _)| u == url) {
            return Some(p.clone());
        }
        if let Some(name) = url.strip_prefix(META) {
            let literal = self.metadata.join(name);
            if !name.contains('/') && literal.is_file() {
                return Some(literal);
            }
            let decoded = percent_decode_str(name).decode_utf8().ok()?;
            if decoded.contains('/') || decoded == ".." {
                return None;
            }
            return Some(self.metadata.join(decoded.as_ref()));
        }
        let path = url.strip_prefix(TARGETS)?;
        let decoded = percent_decode_str(path).decode_utf8().ok()?;
        let mut parts: Vec<&str> = Vec::new();
        for c in Path::new(decoded.as_ref()).components() {
            match c {
                Component::Normal(p) => parts.push(p.to_str()?),
                Component::ParentDir => {
                    parts.pop()?;
                }
                Component::CurDir => {}
                _ => return None,
            }
        }
        Some(
            parts
                .iter()
                .fold(self.targets.clone(), |acc, p| acc.join(p)),
        )
    }
}

impl Transport for FsTransport {
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        self.log.borrow_mut().push(url.to_owned());
        let path = self.resolve(url).ok_or(FetchError::NotFound)?;
        let bytes = std::fs::read(&path).map_err(|_| FetchError::NotFound)?;
        if bytes.len() as u64 > max_len {
            return Err(FetchError::TooLong { max_len });
        }
        Ok(bytes)
    }
}

#[derive(Debug, Deserialize)]
struct Expectations {
    repositories: Vec<RepoCase>,
    root_json_files: Vec<RootCase>,
}

#[derive(Debug, Deserialize)]
struct RepoCase {
    dir: String,
    trusted_root: String,
    metadata_base: Option<String>,
    targets_base: Option<String>,
    #[serde(default)]
    tough_test: serde_yaml_ng::Value,
    expected: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RootCase {
    file: String,
    parse: Option<String>,
    self_verify: Option<String>,
}

fn tough_dir(rel: &str) -> PathBuf {
    Path::new(TESTDATA).join("tough").join(rel)
}

fn expectations() -> Expectations {
    let text =
        std::fs::read_to_string(Path::new(TESTDATA).join("tough/expectations.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

struct Loaded {
    dir: tempfile::TempDir,
    transport: FsTransport,
}

fn setup(repo_dir: &Path, trusted_root: &str, metadata_base: &str, targets_base: &str) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::read(repo_dir.join(trusted_root)).unwrap();
    init_trusted_root(dir.path(), &root).unwrap();
    Loaded {
        dir,
        transport: FsTransport::new(repo_dir.join(metadata_base), repo_dir.join(targets_base)),
    }
}

fn refresh(
    l: &Loaded,
    config: UpdaterConfig,
) -> Result<Updater<&FsTransport, FixedClock>, TufError> {
    let mut u = Updater::new(
        l.dir.path(),
        META,
        &l.transport,
        FixedClock(pinned()),
        config,
    )?;
    u.refresh()?;
    Ok(u)
}

/// Downloads `target` into `out` and returns its bytes.
fn download(
    u: &mut Updater<&FsTransport, FixedClock>,
    target: &str,
    out: &Path,
) -> Result<Vec<u8>, TufError> {
    let info = u.get_target_info(target)?;
    let dest = out.join(target_file_name(&info.path));
    u.download_target(&info, TARGETS, &dest)
}

#[test]
fn tough_repositories() {
    let exp = expectations();
    let mut checked = 0;
    for case in &exp.repositories {
        let repo_dir = tough_dir(&case.dir);
        let meta = case.metadata_base.as_deref().unwrap_or("metadata/");
        let targets = case.targets_base.as_deref().unwrap_or("targets/");
        let l = setup(&repo_dir, &case.trusted_root, meta, targets);
        let out = tempfile::tempdir().unwrap();
        let name = repo_dir.file_name().unwrap().to_string_lossy().into_owned();
        let t = &case.tough_test;
        match name.as_str() {
            "tuf-reference-impl" => {
                let mut u =
                    refresh(&l, UpdaterConfig::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
                for (target, content) in t["targets"].as_mapping().unwrap() {
                    let got = download(&mut u, target.as_str().unwrap(), out.path()).unwrap();
                    assert_eq!(
                        got,
                        content.as_str().unwrap().as_bytes(),
                        "{name}: {target:?}"
                    );
                }
                let custom = &t["custom"];
                let info = u
                    .get_target_info(custom["target"].as_str().unwrap())
                    .unwrap();
                let value = &info.file.custom.as_ref().unwrap()[custom["key"].as_str().unwrap()];
                assert_eq!(value.as_str(), custom["value"].as_str(), "{name}: custom");
                // "file3.txt is delegated by top-level targets"
                let info = u.get_target_info("file3.txt").unwrap();
                assert!(
                    u.trusted().targets("role1").is_some(),
                    "{name}: role1 loaded"
                );
                assert!(
                    !u.trusted()
                        .targets("targets")
                        .unwrap()
                        .targets
                        .contains_key("file3.txt")
                );
                assert_eq!(info.path, "file3.txt");
                // Still loads with small caps.
                let lim = &t["with_limits"];
                let cap = |k: &str| lim[k].as_u64().unwrap();
                let l2 = setup(&repo_dir, &case.trusted_root, meta, targets);
                let config = UpdaterConfig {
                    root_max_length: cap("max_root_size"),
                    targets_max_length: cap("max_targets_size"),
                    timestamp_max_length: cap("max_timestamp_size"),
                    snapshot_max_length: cap("max_snapshot_size"),
                    max_root_rotations: cap("max_root_updates"),
                    ..UpdaterConfig::default()
                };
                refresh(&l2, config).unwrap_or_else(|e| panic!("{name} with limits: {e}"));
            }
            "dubious-role-names" => {
                let mut u = refresh(&l, UpdaterConfig::default()).unwrap();
                let role = t["delegated_role_exists"].as_str().unwrap();
                let roles = u
                    .trusted()
                    .targets("targets")
                    .unwrap()
                    .delegations
                    .clone()
                    .unwrap()
                    .roles
                    .unwrap();
                assert!(
                    roles.iter().any(|r| r.name == role),
                    "{name}: {role} delegated"
                );
                // "foo" is the delegated path: the search visits every role.
                assert!(matches!(
                    u.get_target_info("foo"),
                    Err(TufError::TargetNotFound { .. })
                ));
                let written = t["datastore_file_written"].as_str().unwrap();
                assert!(l.dir.path().join(written).is_file(), "{name}: {written}");
                for f in std::fs::read_dir(l.dir.path()).unwrap() {
                    assert!(f.unwrap().path().parent() == Some(l.dir.path()));
                }
                assert!(!l.dir.path().join("../../path").exists());
                assert_eq!(
                    download(&mut u, "1.txt", out.path()).unwrap(),
                    std::fs::read(repo_dir.join("targets/1.txt")).unwrap()
                );
            }
            "expired-repository" => {
                let err = refresh(&l, UpdaterConfig::default()).unwrap_err();
                let safe = &t["load_with_expiration_enforcement_safe"];
                assert_eq!(safe["error"].as_str(), Some("ExpiredMetadata"));
                let role = safe["role"].as_str().unwrap();
                assert!(
                    matches!(&err, TufError::MetadataExpired { file, .. } if file == &format!("{role}.json")),
                    "{name}: {err}"
                );
            }
            "rotated-root" => {
                let u =
                    refresh(&l, UpdaterConfig::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    u.trusted().root().version,
                    t["root_version_after_load"].as_u64().unwrap()
                );
            }
            "consistent-snapshots" | "tuf-sha512" => {
                if name == "tuf-sha512" {
                    assert!(
                        case.expected
                            .as_deref()
                            .is_some_and(|e| e.starts_with("loads")),
                        "{name}: expectation"
                    );
                }
                let mut u =
                    refresh(&l, UpdaterConfig::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
                let paths: Vec<String> = u
                    .trusted()
                    .targets("targets")
                    .unwrap()
                    .targets
                    .keys()
                    .cloned()
                    .collect();
                assert!(!paths.is_empty());
                for p in paths {
                    let got = download(&mut u, &p, out.path())
                        .unwrap_or_else(|e| panic!("{name}: {p}: {e}"));
                    let hash = u
                        .get_target_info(&p)
                        .unwrap()
                        .file
                        .prefix_hash()
                        .unwrap()
                        .to_owned();
                    assert_eq!(
                        got,
                        std::fs::read(repo_dir.join(format!("targets/{hash}.{p}"))).unwrap()
                    );
                }
            }
            "safe-target-paths" => {
                let mut u = refresh(&l, UpdaterConfig::default()).unwrap();
                let paths: Vec<String> = u
                    .trusted()
                    .targets("targets")
                    .unwrap()
                    .targets
                    .keys()
                    .cloned()
                    .collect();
                for p in &paths {
                    download(&mut u, p, out.path()).unwrap_or_else(|e| panic!("{name}: {p}: {e}"));
                }
                // "../delegated/foo/../subdir/data3.txt" is outside the
                // delegation's "delegated/*" pattern: not trusted.
                assert!(matches!(
                    u.get_target_info("../delegated/foo/../subdir/data3.txt"),
                    Err(TufError::TargetNotFound { .. })
                ));
                // Saved under the output dir only, one file per target.
                let saved: Vec<PathBuf> = std::fs::read_dir(out.path())
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
                assert_eq!(saved.len(), paths.len());
                assert!(
                    saved
                        .iter()
                        .all(|p| p.parent() == Some(out.path()) && p.is_file())
                );
            }
            other => panic!("no check written for tough repository {other}"),
        }
        checked += 1;
    }
    println!("tough repositories checked: {checked}");
    assert_eq!(checked, exp.repositories.len());
}

#[test]
fn tough_root_files() {
    let exp = expectations();
    let mut checked = 0;
    for case in &exp.root_json_files {
        let bytes = std::fs::read(tough_dir(&case.file)).unwrap();
        let parsed = Envelope::<Root>::from_bytes(&bytes, &case.file);
        if repeats_a_signature_keyid(&bytes) {
            // tough parses these and counts the key once ("must not count
            // twice toward the threshold"); the specification requires the
            // key ids of `signatures` to be unique, so upkeep refuses the
            // document outright, before any threshold is counted.
            assert_eq!(case.self_verify.as_deref(), Some("fails"), "{}", case.file);
            let err = parsed.unwrap_err();
            assert!(
                matches!(err, TufError::DuplicateSignature { .. }),
                "{}: {err}",
                case.file
            );
            assert!(TrustedSet::new(&bytes, pinned()).is_err());
            checked += 1;
            continue;
        }
        match case.parse.as_deref() {
            Some("fails") => {
                assert!(parsed.is_err(), "{}: must not parse", case.file);
                checked += 1;
                continue;
            }
            Some("ok") => {
                parsed
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{}: {e}", case.file));
            }
            _ => {}
        }
        let verified = TrustedSet::new(&bytes, pinned());
        match case.self_verify.as_deref() {
            Some("ok") => {
                verified.unwrap_or_else(|e| panic!("{}: {e}", case.file));
            }
            Some("fails") => {
                let err = verified.unwrap_err();
                assert!(
                    matches!(err, TufError::SignatureThreshold { .. }),
                    "{}: {err}",
                    case.file
                );
            }
            _ => {}
        }
        if case.file.ends_with("expired-root-json-signature/root.json") {
            // Self-verification passes; loading a repository refuses it.
            let dir = tempfile::tempdir().unwrap();
            init_trusted_root(dir.path(), &bytes).unwrap();
            let t = FsTransport::new(dir.path().join("none"), dir.path().join("none"));
            let mut u = Updater::new(
                dir.path(),
                META,
                &t,
                FixedClock(pinned()),
                UpdaterConfig::default(),
            )
            .unwrap();
            let err = u.refresh().unwrap_err();
            assert!(
                matches!(&err, TufError::MetadataExpired { file, .. } if file == "root.json"),
                "{err}"
            );
        }
        checked += 1;
    }
    println!("tough root.json files checked: {checked}");
    assert_eq!(checked, exp.root_json_files.len());
}

/// Whether a metadata document's `signatures` name one key id twice.
fn repeats_a_signature_keyid(bytes: &[u8]) -> bool {
    let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let ids: Vec<&str> = doc["signatures"]
        .as_array()
        .map(|sigs| sigs.iter().filter_map(|s| s["keyid"].as_str()).collect())
        .unwrap_or_default();
    let unique: std::collections::BTreeSet<&str> = ids.iter().copied().collect();
    unique.len() != ids.len()
}

fn python_tuf(rel: &str) -> PathBuf {
    Path::new(TESTDATA)
        .join("python-tuf/tests/repository_data")
        .join(rel)
}

#[test]
fn python_tuf_reference_repository() {
    let repo = python_tuf("repository");
    let mut checked = 0;
    // Fresh client, and clients holding python-tuf's cached metadata.
    let caches = [
        None,
        Some("client/test_repository1/metadata/current"),
        Some("client/test_repository2/metadata/current"),
    ];
    for cache in caches {
        let l = setup(&repo, "metadata/1.root.json", "metadata", "targets");
        if let Some(c) = cache {
            for f in [
                "root.json",
                "timestamp.json",
                "snapshot.json",
                "targets.json",
            ] {
                std::fs::copy(python_tuf(c).join(f), l.dir.path().join(f)).unwrap();
            }
        }
        let out = tempfile::tempdir().unwrap();
        let mut u =
            refresh(&l, UpdaterConfig::default()).unwrap_or_else(|e| panic!("{cache:?}: {e}"));
        let fetched = l.transport.log.borrow().clone();
        let expected: Vec<String> = match cache {
            None => [
                "2.root.json",
                "timestamp.json",
                "snapshot.json",
                "targets.json",
            ]
            .iter()
            .map(|f| format!("{META}{f}"))
            .collect(),
            // Same versions cached: snapshot and targets are not fetched.
            Some(_) => ["2.root.json", "timestamp.json"]
                .iter()
                .map(|f| format!("{META}{f}"))
                .collect(),
        };
        assert_eq!(fetched, expected, "{cache:?}");
        for f in ["file1.txt", "file2.txt", "file3.txt"] {
            let got = download(&mut u, f, out.path()).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(got, std::fs::read(repo.join("targets").join(f)).unwrap());
        }
        assert!(u.trusted().targets("role1").is_some());
        checked += 1;
    }
    println!("python-tuf repository runs checked: {checked}");
    assert_eq!(checked, caches.len());
}

#[test]
fn python_tuf_fishy_role_names() {
    let repo = python_tuf("fishy_rolenames");
    let mut l = setup(&repo, "metadata/1.root.json", "metadata", "targets");
    // Role "../a" lives outside metadata/ in the fixture.
    l.transport
        .aliases
        .push((format!("{META}1...%2Fa.json"), repo.join("1.a.json")));
    let mut u = refresh(&l, UpdaterConfig::default()).unwrap();
    l.transport.log.borrow_mut().clear();
    assert!(matches!(
        u.get_target_info("anything"),
        Err(TufError::TargetNotFound { .. })
    ));
    let fetched = l.transport.log.borrow().clone();
    let expected: Vec<String> = ["1...%2Fa.json", "1...json", "1.%C3%B6.json"]
        .iter()
        .map(|f| format!("{META}{f}"))
        .collect();
    assert_eq!(fetched, expected);
    let mut checked = 0;
    for f in ["..%2Fa.json", "..json", "%C3%B6.json"] {
        assert!(l.dir.path().join(f).is_file(), "{f} cached");
        checked += 1;
    }
    println!("python-tuf fishy role names checked: {checked}");
}

#[test]
fn python_tuf_ed25519_metadata() {
    let dir = python_tuf("../generated_data/ed25519_metadata");
    let root = std::fs::read(dir.join("root_with_ed25519.json")).unwrap();
    let trusted = TrustedSet::new(&root, pinned()).unwrap();
    let mut checked = 1;
    let keys = &trusted.root().keys;
    for (role, file) in [
        ("timestamp", "timestamp_with_ed25519.json"),
        ("snapshot", "snapshot_with_ed25519.json"),
        ("targets", "targets_with_ed25519.json"),
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let role_keys = trusted.root().role(role).unwrap();
        match role {
            "timestamp" => Envelope::<upkeep_core::tuf::Timestamp>::from_bytes(&bytes, file)
                .unwrap()
                .verify(keys, role_keys, role, file),
            "snapshot" => Envelope::<upkeep_core::tuf::Snapshot>::from_bytes(&bytes, file)
                .unwrap()
                .verify(keys, role_keys, role, file),
            _ => Envelope::<upkeep_core::tuf::Targets>::from_bytes(&bytes, file)
                .unwrap()
                .verify(keys, role_keys, role, file),
        }
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        // One changed byte in the signed part breaks the signature.
        let text =
            String::from_utf8(bytes)
                .unwrap()
                .replacen("\"version\": 1", "\"version\": 2", 1);
        let err = Envelope::<upkeep_core::tuf::Snapshot>::from_bytes(text.as_bytes(), file)
            .and_then(|e| e.verify(keys, role_keys, role, file));
        if role == "snapshot" {
            assert!(
                matches!(err, Err(TufError::SignatureThreshold { .. })),
                "{file}: tampered"
            );
        }
        checked += 1;
    }
    println!("python-tuf ed25519 files checked: {checked}");
}

//! The payload cache patches start from: after an update each app keeps the
//! packages of its installed version in `downloads/<app>/<version>/`,
//! indexed by [`VERIFIED_FILE`], and nothing of other versions. The cache
//! has a size cap (`[download] cache_mib`): past it, whole payloads are
//! removed, the least recently installed first, and an app without one
//! downloads its next update in full. `upkeep setup` seeds upkeep's own
//! entry with the binary it installs, so the first self-update can be a
//! patch too.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use upkeep_core::version::Version;

use crate::files::remove_old_payloads;
use crate::patch::VERIFIED_FILE;

/// The default cap: 1 GiB.
pub(crate) const DEFAULT_CAP_BYTES: u64 = 1 << 30;

/// One app version's cached payload.
#[derive(Debug)]
struct Entry {
    dir: PathBuf,
    bytes: u64,
    indexed_at: SystemTime,
}

/// After `id` is installed at `keep`: removes its other versions' payloads,
/// then enforces `cap` over every app's. Failures are only traced: they
/// cost disk space, nothing else.
pub(crate) fn after_install(root: &Path, id: &str, keep: &Version, cap: u64) {
    remove_old_payloads(root, id, keep);
    for dir in enforce_cap(root, cap) {
        tracing::info!(path = %dir.display(), cap, "payload removed from the cache (over its size cap)");
    }
}

/// Removes cached payloads, least recently indexed first, until the rest
/// fit in `cap` bytes; returns the directories removed.
pub(crate) fn enforce_cap(root: &Path, cap: u64) -> Vec<PathBuf> {
    let mut entries = entries(&root.join("downloads"));
    // Newest first: the ones kept.
    entries.sort_by_key(|e| std::cmp::Reverse(e.indexed_at));
    let mut total = 0u64;
    let mut removed = Vec::new();
    for entry in entries {
        total = total.saturating_add(entry.bytes);
        if total <= cap {
            continue;
        }
        // The index goes first: a payload half removed is never offered.
        let _ = std::fs::remove_file(entry.dir.join(VERIFIED_FILE));
        match std::fs::remove_dir_all(&entry.dir) {
            Ok(()) => removed.push(entry.dir),
            Err(e) => {
                tracing::warn!(path = %entry.dir.display(), error = %e, "cannot remove a cached payload");
            }
        }
    }
    removed
}

/// The indexed payload directories under `downloads` (the `.partial`
/// staging area is not the cache).
fn entries(downloads: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let Ok(apps) = std::fs::read_dir(downloads) else {
        return out;
    };
    for app in apps.flatten() {
        if app.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let Ok(versions) = std::fs::read_dir(app.path()) else {
            continue;
        };
        for version in versions.flatten() {
            let dir = version.path();
            let Ok(index) = std::fs::metadata(dir.join(VERIFIED_FILE)) else {
                continue;
            };
            let bytes = std::fs::read_dir(&dir)
                .map(|files| {
                    files
                        .flatten()
                        .filter_map(|f| f.metadata().ok())
                        .filter(std::fs::Metadata::is_file)
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            out.push(Entry {
                dir,
                bytes,
                indexed_at: index.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
    }
    out
}

/// Seeds the cache of `id` at `version` with `file` (a binary installed
/// without a download): hard-linked where it can be, else copied, and
/// indexed with its SHA-256 (`sha256` is asked only when it is needed).
/// Nothing is done when an index is there already or the file alone is
/// over `cap`.
pub(crate) fn seed(
    root: &Path,
    id: &str,
    version: &Version,
    file: &Path,
    sha256: impl FnOnce() -> std::io::Result<String>,
    cap: u64,
) {
    let dir = root.join("downloads").join(id).join(version.to_string());
    if dir.join(VERIFIED_FILE).exists() {
        return;
    }
    let Some(name) = file.file_name() else {
        return;
    };
    if std::fs::metadata(file).map_or(true, |m| m.len() > cap) {
        return;
    }
    let dest = dir.join(name);
    let placed = std::fs::create_dir_all(&dir)
        .and_then(|()| match std::fs::remove_file(&dest) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        })
        .and_then(|()| {
            std::fs::hard_link(file, &dest)
                .or_else(|_| crate::files::copy_file_synced(file, &dest).map_err(|(_, e)| e))
        });
    let indexed = placed.and_then(|()| sha256());
    match indexed {
        Ok(sha256) => crate::patch::record_verified(&dir, &[(dest, sha256)]),
        Err(e) => {
            tracing::warn!(path = %dest.display(), error = %e, "cannot seed the payload cache");
            let _ = std::fs::remove_file(&dest);
            return;
        }
    }
    for dir in enforce_cap(root, cap) {
        tracing::info!(path = %dir.display(), cap, "payload removed from the cache (over its size cap)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(root: &Path, app: &str, version: &str, bytes: usize) -> PathBuf {
        let dir = root.join("downloads").join(app).join(version);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p"), vec![7u8; bytes]).unwrap();
        crate::patch::record_verified(&dir, &[(dir.join("p"), "00".repeat(32))]);
        // Index times a filesystem tells apart.
        std::thread::sleep(std::time::Duration::from_millis(20));
        dir
    }

    #[test]
    fn the_least_recently_installed_payloads_go_first() {
        let root = tempfile::tempdir().unwrap();
        let a = cached(root.path(), "a", "1.0", 400);
        let b = cached(root.path(), "b", "2.0", 400);
        let c = cached(root.path(), "c", "3.0", 400);
        // A staging area and an unindexed directory are not the cache.
        let partial = root.path().join("downloads/.partial/a/2.0");
        std::fs::create_dir_all(&partial).unwrap();
        std::fs::write(partial.join("p"), vec![0u8; 5000]).unwrap();
        // Each payload is 400 bytes and its index (about 70).
        let removed = enforce_cap(root.path(), 1000);
        assert_eq!(removed, vec![a.clone()]);
        assert!(!a.exists() && b.exists() && c.exists() && partial.exists());
        assert!(enforce_cap(root.path(), 950).is_empty());
        // A cap of 0 keeps nothing.
        let mut gone = enforce_cap(root.path(), 0);
        gone.sort();
        assert_eq!(gone, vec![b, c]);
    }

    #[test]
    fn a_seeded_binary_is_indexed_once_and_not_over_the_cap() {
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin/upkeep");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, b"binary").unwrap();
        let sha = hex::encode(upkeep_core::cup::sha256(b"binary"));
        let v: Version = "1.0".parse().unwrap();
        seed(root.path(), "upkeep", &v, &bin, || Ok(sha.clone()), 3);
        let dir = root.path().join("downloads/upkeep/1.0");
        assert!(!dir.exists(), "over the cap: not seeded");
        seed(root.path(), "upkeep", &v, &bin, || Ok(sha.clone()), 1 << 20);
        // Seeded once: a second setup leaves the index as it is.
        seed(
            root.path(),
            "upkeep",
            &v,
            &bin,
            || panic!("hashed again"),
            1 << 20,
        );
        assert_eq!(std::fs::read(dir.join("upkeep")).unwrap(), b"binary");
        assert_eq!(
            crate::patch::cached_fingerprints(&dir),
            vec![upkeep_core::delta::fingerprint(&sha)]
        );
    }
}

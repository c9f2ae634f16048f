//! Taking one package of an offline install from its folder: copied into a
//! staging file while it is hashed, checked against the manifest's size and
//! SHA-256, flushed, and only then renamed into the payload directory the
//! installer sees. What is checked is the copy, so a file changed in the
//! folder after the check cannot reach the installer.

use std::path::Path;

use upkeep_core::omaha::offline::OfflinePackage;

use crate::app_install::InstallError;

/// Copies `package` into `payload_dir` (through `staging_dir`) once it
/// matches the manifest; its length on success. On failure nothing of it
/// is left in either directory.
pub(crate) fn copy_verified(
    package: &OfflinePackage,
    staging_dir: &Path,
    payload_dir: &Path,
) -> Result<u64, InstallError> {
    let source = &package.path;
    let mut input = std::fs::File::open(source).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => InstallError::MissingPackage {
            path: source.clone(),
        },
        _ => io("read", source, e),
    })?;
    let length = input.metadata().map_err(|e| io("read", source, e))?.len();
    if package.size != 0 && length != package.size {
        return Err(InstallError::SizeMismatch {
            name: package.name.clone(),
            expected: package.size,
            found: length,
        });
    }
    std::fs::create_dir_all(staging_dir).map_err(|e| io("create", staging_dir, e))?;
    let staged = staging_dir.join(&package.name);
    let copied = upkeep_core::durable::copy_hashed(&mut input, &staged)
        .map_err(|e| io("copy to the staging file", &staged, e));
    let result = copied.and_then(|(copied, sha256)| {
        if package.size != 0 && copied != package.size {
            return Err(InstallError::SizeMismatch {
                name: package.name.clone(),
                expected: package.size,
                found: copied,
            });
        }
        if sha256 != package.sha256 {
            return Err(InstallError::HashMismatch {
                name: package.name.clone(),
                expected: package.sha256.clone(),
                found: sha256,
            });
        }
        std::fs::create_dir_all(payload_dir).map_err(|e| io("create", payload_dir, e))?;
        let dest = payload_dir.join(&package.name);
        std::fs::rename(&staged, &dest).map_err(|e| io("move into place", &dest, e))?;
        Ok(copied)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    result
}

fn io(what: &'static str, path: &Path, source: std::io::Error) -> InstallError {
    InstallError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn package(dir: &Path, name: &str, bytes: &[u8], size: u64) -> OfflinePackage {
        std::fs::write(dir.join(name), bytes).unwrap();
        OfflinePackage {
            name: name.to_owned(),
            path: dir.join(name),
            sha256: hex::encode(Sha256::digest(bytes)),
            size,
        }
    }

    #[test]
    fn a_matching_package_lands_in_the_payload_dir() {
        let t = tempfile::tempdir().unwrap();
        let p = package(t.path(), "a.bin", b"hello", 5);
        let (staging, payload) = (t.path().join("s"), t.path().join("p"));
        assert_eq!(copy_verified(&p, &staging, &payload).unwrap(), 5);
        assert_eq!(std::fs::read(payload.join("a.bin")).unwrap(), b"hello");
        assert!(!staging.join("a.bin").exists());
        // Size not given: the hash alone decides.
        let p = package(t.path(), "b.bin", b"", 0);
        assert_eq!(copy_verified(&p, &staging, &payload).unwrap(), 0);
    }

    #[test]
    fn a_package_that_differs_leaves_nothing() {
        let t = tempfile::tempdir().unwrap();
        let (staging, payload) = (t.path().join("s"), t.path().join("p"));
        let mut p = package(t.path(), "a.bin", b"hello", 5);
        p.size = 6;
        assert!(matches!(
            copy_verified(&p, &staging, &payload),
            Err(InstallError::SizeMismatch {
                expected: 6,
                found: 5,
                ..
            })
        ));
        p.size = 5;
        p.sha256 = hex::encode(Sha256::digest(b"other"));
        assert!(matches!(
            copy_verified(&p, &staging, &payload),
            Err(InstallError::HashMismatch { .. })
        ));
        assert!(!payload.exists());
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
        p.path = t.path().join("gone.bin");
        assert!(matches!(
            copy_verified(&p, &staging, &payload),
            Err(InstallError::MissingPackage { .. })
        ));
    }
}

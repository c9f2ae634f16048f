//! Differential downloads in a pass: when the answer offers a patch for a
//! package and the installed version's packages are in the payload cache
//! (`downloads/<app>/<installed>/`, found by their hash), the patch must be a
//! target the signed metadata lists as joining exactly that file to the
//! offered one; it is downloaded (hash and length checked as it streams),
//! applied with the output capped at the file's signed length, and the
//! result must have the file's signed SHA-256 before it takes the file's
//! place. Anything else is a [`DiffFailure`], and the caller downloads the
//! full file instead.

use std::path::{Path, PathBuf};

use upkeep_core::delta::{PatchInfo, apply};
use upkeep_core::download::{DownloadReport, DownloadRequest};
use upkeep_core::offer::{AgreedFile, OfferedDiff, OfferedPackage};
use upkeep_core::omaha::codes::diff;
use upkeep_core::update_check::target_path;
use upkeep_core::version::Version;
use upkeep_core::writeback::SyncedWriter;

use crate::pass::Run;

/// The file in a payload directory listing the SHA-256 of each verified
/// package (`sha256sum` format), so the next check can send their
/// fingerprints without hashing them again.
pub(crate) const VERIFIED_FILE: &str = ".sha256";

/// Why an offered patch was not used (the full file was fetched instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiffFailure {
    /// Omaha `differrorcode` ([`upkeep_core::omaha::codes::diff`]).
    pub(crate) code: i64,
    /// For the log.
    pub(crate) why: String,
}

fn failed(code: i64, why: impl Into<String>) -> DiffFailure {
    DiffFailure {
        code,
        why: why.into(),
    }
}

/// How the patch of one package went.
pub(crate) enum PatchOutcome {
    /// No patch offered, or nothing to apply it to.
    NotTried,
    /// The file is in place, made from the patch.
    Patched(DownloadReport),
    /// The patch was tried and not used.
    Failed(DiffFailure),
}

/// The fingerprints of the packages in `payload_dir` (read from its
/// [`VERIFIED_FILE`], for files still there).
pub(crate) fn cached_fingerprints(payload_dir: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(payload_dir.join(VERIFIED_FILE)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split_once("  "))
        .filter(|(sha, name)| {
            upkeep_core::delta::fingerprint_sha256(sha).is_some()
                && !name.contains('/')
                && payload_dir.join(name).is_file()
        })
        .map(|(sha, _)| upkeep_core::delta::fingerprint(sha))
        .collect()
}

/// The file of `payload_dir` its [`VERIFIED_FILE`] lists with `sha256`.
fn cached_file(payload_dir: &Path, sha256: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(payload_dir.join(VERIFIED_FILE)).ok()?;
    text.lines()
        .filter_map(|l| l.split_once("  "))
        .find(|(sha, name)| sha.eq_ignore_ascii_case(sha256) && !name.contains('/'))
        .map(|(_, name)| payload_dir.join(name))
        .filter(|p| p.is_file())
}

/// Records the verified packages of `payload_dir`.
pub(crate) fn record_verified(payload_dir: &Path, files: &[(PathBuf, String)]) {
    let mut text = String::new();
    for (path, sha) in files {
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            text.push_str(&format!("{sha}  {name}\n"));
        }
    }
    let path = payload_dir.join(VERIFIED_FILE);
    if let Err(e) = upkeep_core::durable::write_atomic(&path, text.as_bytes()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot record the verified packages");
    }
}

impl Run<'_, '_> {
    /// Tries the patch offered for `package` of `id` (installed at
    /// `installed`) to make `full` at `request.dest`.
    pub(crate) fn try_patch(
        &mut self,
        id: &str,
        installed: &Version,
        next: &Version,
        package: &OfferedPackage,
        full: &AgreedFile,
        request: &DownloadRequest,
    ) -> PatchOutcome {
        let Some(offered) = &package.diff else {
            return PatchOutcome::NotTried;
        };
        let cache = self
            .env
            .root
            .join("downloads")
            .join(id)
            .join(installed.to_string());
        if !cache.join(VERIFIED_FILE).is_file() {
            return PatchOutcome::NotTried;
        }
        match self.patch(id, next, package, offered, &cache, full, request) {
            Ok(report) => PatchOutcome::Patched(report),
            Err(failure) => {
                tracing::info!(app = id, patch = %offered.name, why = %failure.why, "patch not used; downloading the full file");
                let _ = std::fs::remove_file(&request.staging);
                PatchOutcome::Failed(failure)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn patch(
        &mut self,
        id: &str,
        next: &Version,
        package: &OfferedPackage,
        offered: &OfferedDiff,
        cache: &Path,
        full: &AgreedFile,
        request: &DownloadRequest,
    ) -> Result<DownloadReport, DiffFailure> {
        let started = std::time::Instant::now();
        let path = target_path(id, next, &offered.name);
        let target = self
            .tuf_target(&path)
            .map_err(|e| failed(diff::NOT_SIGNED, e.to_string()))?;
        let full_hex = hex::encode(full.sha256);
        // The signed description must join exactly this file to the
        // offered one (an unknown format does not parse).
        let info = target
            .file
            .custom
            .as_ref()
            .and_then(PatchInfo::of)
            .filter(|i| i.file == package.name && i.target_sha256.eq_ignore_ascii_case(&full_hex))
            .ok_or_else(|| {
                failed(
                    diff::NOT_SIGNED,
                    format!("{path} is not signed as a patch to this file"),
                )
            })?;
        let (format, base_sha) = (info.format, info.base_sha256);
        let signed_sha = target
            .file
            .hashes
            .get("sha256")
            .map(|h| h.to_ascii_lowercase());
        if signed_sha.as_deref() != Some(offered.sha256.as_str())
            || target.file.length != offered.size
        {
            return Err(failed(
                diff::DISAGREEMENT,
                format!("{path}: the answer's hash or size is not the signed one"),
            ));
        }
        let mut patch_sha = [0u8; 32];
        hex::decode_to_slice(&offered.sha256, &mut patch_sha)
            .map_err(|_| failed(diff::DISAGREEMENT, "not a SHA-256"))?;
        let partial = request
            .staging
            .with_file_name(format!("{}.patch", offered.name));
        let patch_request = DownloadRequest {
            urls: offered.urls.clone(),
            length: offered.size,
            sha256: patch_sha,
            staging: partial.with_extension("partial"),
            dest: partial.clone(),
        };
        let mut report = self
            .fetch(id, &offered.name, &patch_request)
            .map_err(|e| failed(diff::DOWNLOAD, e.to_string()))?;
        let result = (|| {
            // The cached file the patch starts from, found by its hash.
            let base = cached_file(cache, &base_sha).ok_or_else(|| {
                failed(diff::BASE, format!("no cached file has SHA-256 {base_sha}"))
            })?;
            let old = std::fs::read(&base).map_err(|e| failed(diff::BASE, e.to_string()))?;
            if hex::encode(upkeep_core::cup::sha256(&old)) != base_sha {
                return Err(failed(
                    diff::BASE,
                    format!("{} is not the file the patch starts from", base.display()),
                ));
            }
            let patch =
                std::fs::File::open(&partial).map_err(|e| failed(diff::APPLY, e.to_string()))?;
            if let Some(dir) = request.staging.parent() {
                std::fs::create_dir_all(dir).map_err(|e| failed(diff::APPLY, e.to_string()))?;
            }
            let file = std::fs::File::create(&request.staging)
                .map_err(|e| failed(diff::APPLY, e.to_string()))?;
            let mut out = SyncedWriter::new(&file);
            let made = apply(format, &old, patch, &mut out, full.length)
                .map_err(|e| failed(diff::APPLY, e.to_string()))?;
            if made.sha256 != full.sha256 || made.length != full.length {
                return Err(failed(
                    diff::RESULT,
                    "the patched file is not the signed one",
                ));
            }
            out.finish()
                .map_err(|e| failed(diff::APPLY, e.to_string()))?;
            if let Some(dir) = request.dest.parent() {
                std::fs::create_dir_all(dir).map_err(|e| failed(diff::APPLY, e.to_string()))?;
            }
            std::fs::rename(&request.staging, &request.dest)
                .and_then(|()| match request.dest.parent() {
                    Some(dir) => upkeep_core::durable::sync_dir(dir),
                    None => Ok(()),
                })
                .map_err(|e| failed(diff::APPLY, e.to_string()))
        })();
        let _ = std::fs::remove_file(&partial);
        result?;
        // The file's report: its length, and the time to download the
        // patch, apply it and verify the result.
        report.total_bytes = full.length;
        report.duration = started.elapsed();
        Ok(report)
    }
}

//! Patches: at `repo add --delta-from V` each payload of the new release
//! that release V also has (by name, or the only file of each) gets a
//! patch from V's file
//! ([`upkeep_core::delta`]), published as a TUF target beside the
//! release's files (`apps/<app>/<version>/<file>.from-<V>.zpatch`) whose
//! `custom.upkeep_patch` says which files it joins. The answer to a
//! client whose request names V's file by its fingerprint (`fp`) offers
//! the patch too (`namediff`, `hashdiff_sha256`, `sizediff`,
//! `codebasediff`; in 4.0 a diff pipeline before the full one); the
//! client falls back to the full file on any failure.

use std::fs;
use std::path::PathBuf;

use serde::Serialize;
use upkeep_core::delta::{PatchFormat, PatchInfo, make_patch_as, patch_name};
use upkeep_core::omaha::{Operation, OperationType, Pipeline, RequestApp, UpdateCheck};
use upkeep_core::tuf::metadata::TargetFile;
use upkeep_core::version::Version;

use crate::answer::file_url;
use crate::decision::{Catalog, Release};
use crate::error::ServerError;

/// A patch as the catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Patch {
    /// What it joins.
    #[serde(flatten)]
    pub info: PatchInfo,
    /// Its file name (`namediff`).
    pub name: String,
    /// Its TUF target path.
    pub target_path: String,
    /// Its length.
    pub length: u64,
    /// Its hex SHA-256.
    pub sha256: String,
}

/// The patch a target is, if it is one.
pub(crate) fn from_target(path: &str, file: &TargetFile) -> Option<Patch> {
    let info = PatchInfo::of(file.custom.as_ref()?)?;
    Some(Patch {
        info,
        name: path.rsplit('/').next().unwrap_or(path).to_owned(),
        target_path: path.to_owned(),
        length: file.length,
        sha256: file.hashes.get("sha256")?.to_ascii_lowercase(),
    })
}

/// A patch made for a new release, not written yet.
pub(crate) struct MadePatch {
    pub(crate) name: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) info: PatchInfo,
}

/// Makes the patches from each release in `from` to the new release's
/// `payloads` (by file name): a file the older release does not have gets
/// none, and neither does one whose patch would not be smaller than the
/// file. `format` is the patches' (`None`: the smaller of both).
/// `old_file` reads an older release's file from the repository.
pub(crate) fn make_patches(
    catalog: &Catalog,
    app: &str,
    version: &Version,
    payloads: &[(PathBuf, String)],
    from: &[Version],
    format: Option<PatchFormat>,
    old_file: impl Fn(&Release, &str) -> PathBuf,
) -> Result<Vec<MadePatch>, ServerError> {
    let mut made = Vec::new();
    for v in from {
        let Some(old) = catalog.find(app, v) else {
            return Err(ServerError::Invalid(format!(
                "--delta-from {v}: {app} {v} is not published"
            )));
        };
        if v >= version {
            return Err(ServerError::Invalid(format!(
                "--delta-from {v}: patches go from an older release to {version}"
            )));
        }
        // Each file patches from the older release's file of the same name,
        // or from its only file when both releases have one (names often
        // carry the version).
        let single = old.files.len() == 1 && payloads.len() == 1;
        for (payload, name) in payloads {
            let Some(base_file) = old
                .files
                .iter()
                .find(|f| f.name == *name)
                .or_else(|| old.files.first().filter(|_| single))
            else {
                continue;
            };
            let base_path = old_file(old, &base_file.name);
            let base = fs::read(&base_path).map_err(|e| ServerError::io(&base_path, e))?;
            let base_sha = hex::encode(upkeep_core::cup::sha256(&base));
            if base_sha != base_file.sha256 {
                return Err(ServerError::Invalid(format!(
                    "{}: its SHA-256 is not the one the signed metadata lists",
                    base_path.display()
                )));
            }
            let new = fs::read(payload).map_err(|e| ServerError::io(payload, e))?;
            let (format, bytes) =
                make_patch_as(format, &base, &new).map_err(|e| ServerError::io(payload, e))?;
            if bytes.len() >= new.len() {
                continue;
            }
            made.push(MadePatch {
                name: patch_name(name, v),
                bytes,
                info: PatchInfo {
                    app: app.to_owned(),
                    version: version.clone(),
                    from: v.clone(),
                    file: name.clone(),
                    base_file: base_file.name.clone(),
                    base_sha256: base_sha,
                    target_sha256: hex::encode(upkeep_core::cup::sha256(&new)),
                    format,
                },
            });
        }
    }
    Ok(made)
}

/// The `n` newest releases of `app` on `channel` older than `version`
/// (newest first): what `delta_from_last = n` in `repo.toml` patches from.
pub(crate) fn last_releases(
    catalog: &Catalog,
    app: &str,
    version: &Version,
    channel: &str,
    n: usize,
) -> Vec<Version> {
    let mut older: Vec<Version> = catalog
        .releases()
        .iter()
        .filter(|r| r.app.eq_ignore_ascii_case(app) && r.channel == channel && r.version < *version)
        .map(|r| r.version.clone())
        .collect();
    older.sort();
    older.into_iter().rev().take(n).collect()
}

/// Adds to the offer of `release` the patch of each package from the file
/// the request names by its fingerprint, when the catalog has one: in 3.x
/// on the manifest's packages (`namediff`, `hashdiff_sha256`, `sizediff`,
/// `codebasediff`), in 4.0 as a diff pipeline before the full one (the
/// patch downloaded, then `upkeep_patch` applied to the cached file with
/// the `previous` hash; files without a patch downloaded whole). A client
/// that does not know `upkeep_patch` skips to the full pipeline.
pub(crate) fn offer(
    uc: &mut UpdateCheck,
    catalog: &Catalog,
    release: &Release,
    asked: &RequestApp,
    codebase: &str,
) {
    if asked.packages.is_empty() {
        return;
    }
    let patches: Vec<Option<&Patch>> = release
        .files
        .iter()
        .map(|f| {
            asked
                .packages
                .iter()
                .find_map(|fp| catalog.patch_for(&release.app, &release.version, &f.name, fp))
        })
        .collect();
    if patches.iter().all(Option::is_none) {
        return;
    }
    if let Some(manifest) = uc.manifest.as_mut() {
        for (package, patch) in manifest.packages.iter_mut().zip(&patches) {
            if let Some(p) = patch {
                package.namediff = Some(p.name.clone());
                package.hashdiff_sha256 = Some(p.sha256.clone());
                package.sizediff = p.length;
            }
        }
        uc.diff_urls = vec![codebase.to_owned()];
    }
    let mut operations = Vec::new();
    for (file, patch) in release.files.iter().zip(&patches) {
        let download = |name: &str, sha256: &str, size: u64| Operation {
            kind: OperationType::Download,
            urls: vec![file_url(codebase, name)],
            sha256_out: Some(sha256.to_owned()),
            sha256_in: None,
            sha256_previous: None,
            path: None,
            arguments: None,
            size,
        };
        match patch {
            Some(p) => {
                operations.push(download(&p.name, &p.sha256, p.length));
                operations.push(Operation {
                    kind: OperationType::UpkeepPatch,
                    urls: Vec::new(),
                    sha256_out: Some(file.sha256.clone()),
                    sha256_in: Some(p.sha256.clone()),
                    sha256_previous: Some(p.info.base_sha256.clone()),
                    path: Some(file.name.clone()),
                    arguments: None,
                    size: file.length,
                });
            }
            None => operations.push(download(&file.name, &file.sha256, file.length)),
        }
    }
    // The full pipeline's last operation runs the installer; so does this one's.
    let run = uc
        .pipelines
        .first()
        .and_then(|p| p.operations.last())
        .filter(|op| op.kind == OperationType::Run)
        .cloned();
    operations.extend(run);
    uc.pipelines.insert(
        0,
        Pipeline {
            pipeline_id: Some("diff".into()),
            operations,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Release;

    fn release(version: &str, channel: &str) -> Release {
        Release {
            app: "A".into(),
            version: version.parse().unwrap(),
            channel: channel.into(),
            installer_args: Vec::new(),
            install_data: Default::default(),
            files: Vec::new(),
        }
    }

    #[test]
    fn the_last_releases_are_the_newest_older_ones_on_the_channel() {
        let catalog = Catalog::from_releases(vec![
            release("1.0", ""),
            release("1.2", ""),
            release("1.1", ""),
            release("1.5", "beta"),
            release("2.0", ""),
        ]);
        let v = |s: &str| s.parse::<Version>().unwrap();
        let got = last_releases(&catalog, "a", &v("1.9"), "", 2);
        assert_eq!(got, vec![v("1.2"), v("1.1")]);
        assert!(last_releases(&catalog, "a", &v("1.0"), "", 3).is_empty());
        assert_eq!(
            last_releases(&catalog, "a", &v("1.9"), "beta", 3),
            vec![v("1.5")]
        );
        assert!(last_releases(&catalog, "a", &v("1.9"), "", 0).is_empty());
    }
}

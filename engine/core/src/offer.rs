//! What an `ok` update check offers: the packages (3.x manifest packages
//! or the download operations of a 4.0 pipeline), the patch offered for
//! each, and the agreement of each with the TUF-signed target it must be,
//! so that the update server can only choose among releases the offline
//! keys signed. The target given to [`agree`] comes from
//! `Updater::get_target_info`, which walks the whole delegation graph with
//! the search the reference server builds its catalog with
//! (`tuf::search::find_target`), so a release a team signed in its
//! delegated role agrees exactly when the server may offer it.

use crate::omaha::{Action, OperationType, Pipeline, UpdateCheck};
use crate::tuf::TargetInfo;

/// One package an update check offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedPackage {
    /// The file name (also the last component of its TUF target path).
    pub name: String,
    /// Where to fetch it, in order.
    pub urls: Vec<String>,
    /// The hex SHA-256 the response gives (lower case).
    pub sha256: String,
    /// The size the response gives (0: not given).
    pub size: u64,
    /// A patch the response offers to make this file from the one the
    /// client has (3.x `namediff`, `hashdiff_sha256`, `sizediff` and the
    /// `codebasediff` URLs).
    pub diff: Option<OfferedDiff>,
}

/// A patch an update check offers for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedDiff {
    /// The patch's file name (also the last component of its TUF target path).
    pub name: String,
    /// Where to fetch it, in order.
    pub urls: Vec<String>,
    /// The hex SHA-256 the response gives (lower case).
    pub sha256: String,
    /// Its size.
    pub size: u64,
}

/// Why an offered update cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OfferError {
    /// The update check has no version.
    #[error("the update check names no version")]
    NoVersion,
    /// Neither a 3.x manifest with packages nor a 4.0 download operation.
    #[error("the update check offers no package")]
    NoPackages,
    /// A package has no usable SHA-256.
    #[error("package {name:?} has no valid hash_sha256")]
    BadHash {
        /// The package.
        name: String,
    },
    /// A package name that is not a plain file name.
    #[error("package name {name:?} is not a plain file name")]
    BadPackageName {
        /// The name.
        name: String,
    },
    /// No codebase yields a URL for the package.
    #[error("package {name:?} has no valid download URL")]
    NoUrls {
        /// The package.
        name: String,
    },
    /// The release metadata lists no SHA-256 for the target.
    #[error("{path}: the TUF targets metadata lists no sha256")]
    NoTufSha256 {
        /// The target path.
        path: String,
    },
    /// The response's hash is not the one the release metadata signed.
    #[error(
        "{path}: the update response's SHA-256 {omaha} differs from the TUF targets metadata's {tuf}"
    )]
    HashDisagreement {
        /// The target path.
        path: String,
        /// The response's hash.
        omaha: String,
        /// The metadata's hash.
        tuf: String,
    },
    /// The response's size is not the one the release metadata signed.
    #[error(
        "{path}: the update response's size {omaha} differs from the TUF targets metadata's {tuf}"
    )]
    SizeDisagreement {
        /// The target path.
        path: String,
        /// The response's size.
        omaha: u64,
        /// The metadata's length.
        tuf: u64,
    },
}

/// What the downloader must get: the length and SHA-256 both sources agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgreedFile {
    /// The length in bytes.
    pub length: u64,
    /// The SHA-256.
    pub sha256: [u8; 32],
}

/// Whether `name` is a plain file name: no directory part, not hidden, no
/// control characters.
pub(crate) fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// `text` as a lower-case hex SHA-256, when it is one.
pub(crate) fn hex_sha256(text: Option<&str>) -> Option<String> {
    let t = text?.trim().to_ascii_lowercase();
    (t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())).then_some(t)
}

/// The `install` action of an update check: in the 3.0 manifest, else
/// among the 3.1 update check's actions.
pub fn install_action(check: &UpdateCheck) -> Option<&Action> {
    check
        .manifest
        .iter()
        .flat_map(|m| m.actions.iter())
        .chain(check.actions.iter())
        .find(|a| a.event.as_deref() == Some("install"))
}

/// Whether a 4.0 pipeline makes a file from a patch (Chromium's
/// `zucc`/`puff`, upkeep's `upkeep_patch`): the full pipeline is the first
/// one that does not.
fn is_diff_pipeline(pipeline: &Pipeline) -> bool {
    pipeline.operations.iter().any(|o| {
        matches!(
            o.kind,
            OperationType::UpkeepPatch | OperationType::Zucc | OperationType::Puff
        )
    })
}

/// The last path segment of a URL (empty when there is none).
fn url_file_name(url: Option<&String>) -> String {
    url.and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.path_segments()?.next_back().map(str::to_owned))
        .unwrap_or_default()
}

/// The patch a 4.0 diff pipeline offers for the file with `sha256`: its
/// `upkeep_patch` operation making that file and the download whose output
/// is the operation's input. A pipeline with an operation upkeep does not
/// run offers nothing (the full pipeline is used), and neither does an
/// operation without its hashes.
fn pipeline_patch(pipeline: &Pipeline, sha256: &str) -> Option<OfferedDiff> {
    let known = pipeline.operations.iter().all(|o| {
        matches!(
            o.kind,
            OperationType::Download | OperationType::UpkeepPatch | OperationType::Run
        )
    });
    if !known {
        return None;
    }
    let patch = pipeline.operations.iter().find(|o| {
        o.kind == OperationType::UpkeepPatch
            && hex_sha256(o.sha256_out.as_deref()).as_deref() == Some(sha256)
    })?;
    let input = hex_sha256(patch.sha256_in.as_deref())?;
    let download = pipeline.operations.iter().find(|o| {
        o.kind == OperationType::Download
            && hex_sha256(o.sha256_out.as_deref()).as_deref() == Some(input.as_str())
    })?;
    let name = url_file_name(download.urls.first());
    (plain_file_name(&name) && download.size > 0).then(|| OfferedDiff {
        name,
        urls: download.urls.clone(),
        sha256: input,
        size: download.size,
    })
}

/// The packages of an `ok` update check: 3.x manifest packages (URLs are
/// each codebase resolved against the package name), or the download
/// operations of the first 4.0 pipeline that makes no file from a patch
/// (the name is the URL's last path segment), with the patch a diff
/// pipeline offers for each.
pub fn offered_packages(check: &UpdateCheck) -> Result<Vec<OfferedPackage>, OfferError> {
    let mut out = Vec::new();
    if let Some(manifest) = &check.manifest {
        for p in &manifest.packages {
            if !plain_file_name(&p.name) {
                return Err(OfferError::BadPackageName {
                    name: p.name.clone(),
                });
            }
            let sha256 =
                hex_sha256(p.hash_sha256.as_deref()).ok_or_else(|| OfferError::BadHash {
                    name: p.name.clone(),
                })?;
            let urls: Vec<String> = check
                .urls
                .iter()
                .filter_map(|base| url::Url::parse(base).ok()?.join(&p.name).ok())
                .map(String::from)
                .collect();
            if urls.is_empty() {
                return Err(OfferError::NoUrls {
                    name: p.name.clone(),
                });
            }
            // A patch is an offer, never a requirement: one that cannot be
            // used is left out and the full file is fetched.
            let diff = p.namediff.as_ref().and_then(|name| {
                let sha256 = hex_sha256(p.hashdiff_sha256.as_deref())?;
                let urls: Vec<String> = check
                    .diff_urls
                    .iter()
                    .filter_map(|base| url::Url::parse(base).ok()?.join(name).ok())
                    .map(String::from)
                    .collect();
                (plain_file_name(name) && !urls.is_empty() && p.sizediff > 0).then(|| OfferedDiff {
                    name: name.clone(),
                    urls,
                    sha256,
                    size: p.sizediff,
                })
            });
            out.push(OfferedPackage {
                name: p.name.clone(),
                urls,
                sha256,
                size: p.size,
                diff,
            });
        }
    } else if let Some(full) = check.pipelines.iter().find(|p| !is_diff_pipeline(p)) {
        for op in full
            .operations
            .iter()
            .filter(|o| o.kind == OperationType::Download)
        {
            let name = url_file_name(op.urls.first());
            if !plain_file_name(&name) {
                return Err(OfferError::BadPackageName { name });
            }
            let sha256 = hex_sha256(op.sha256_out.as_deref())
                .ok_or_else(|| OfferError::BadHash { name: name.clone() })?;
            let diff = check
                .pipelines
                .iter()
                .filter(|p| is_diff_pipeline(p))
                .find_map(|p| pipeline_patch(p, &sha256));
            out.push(OfferedPackage {
                name,
                urls: op.urls.clone(),
                sha256,
                size: op.size,
                diff,
            });
        }
    }
    if out.is_empty() {
        return Err(OfferError::NoPackages);
    }
    Ok(out)
}

/// Checks an offered package against its TUF target: the SHA-256 must be
/// the same, and the size too when the response gives one.
pub fn agree(offered: &OfferedPackage, target: &TargetInfo) -> Result<AgreedFile, OfferError> {
    let tuf_hex = target
        .file
        .hashes
        .get("sha256")
        .map(|h| h.to_ascii_lowercase())
        .ok_or_else(|| OfferError::NoTufSha256 {
            path: target.path.clone(),
        })?;
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&tuf_hex, &mut sha256).map_err(|_| OfferError::NoTufSha256 {
        path: target.path.clone(),
    })?;
    if tuf_hex != offered.sha256 {
        return Err(OfferError::HashDisagreement {
            path: target.path.clone(),
            omaha: offered.sha256.clone(),
            tuf: tuf_hex,
        });
    }
    if offered.size != 0 && offered.size != target.file.length {
        return Err(OfferError::SizeDisagreement {
            path: target.path.clone(),
            omaha: offered.size,
            tuf: target.file.length,
        });
    }
    Ok(AgreedFile {
        length: target.file.length,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omaha::{Manifest, Package, UpdateCheckStatus};
    use crate::tuf::TargetFile;

    const HASH: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn check(names: &[&str], urls: &[&str]) -> UpdateCheck {
        let mut c = UpdateCheck::with_status(UpdateCheckStatus::Ok);
        c.next_version = Some("2.0".parse().unwrap());
        c.urls = urls.iter().map(|u| (*u).to_owned()).collect();
        c.manifest = Some(Manifest {
            version: "2.0".parse().unwrap(),
            prodversionmin: None,
            run: None,
            arguments: None,
            packages: names
                .iter()
                .map(|n| Package {
                    name: (*n).to_owned(),
                    hash_sha256: Some(HASH.to_uppercase()),
                    size: 5,
                    ..Package::default()
                })
                .collect(),
            actions: Vec::new(),
        });
        c
    }

    #[test]
    fn packages_resolve_against_every_codebase() {
        let c = check(&["app.tar.gz"], &["http://a/dl/", "http://b/x/"]);
        let p = offered_packages(&c).unwrap();
        assert_eq!(
            p[0].urls,
            ["http://a/dl/app.tar.gz", "http://b/x/app.tar.gz"]
        );
        assert_eq!(p[0].sha256, HASH);
        for bad in ["../evil", "a/b", ".hidden", ""] {
            let c = check(&[bad], &["http://a/"]);
            assert!(
                matches!(offered_packages(&c), Err(OfferError::BadPackageName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn protocol_4_download_operations_are_packages() {
        use crate::omaha::{Operation, Pipeline};
        let op = |kind, url: &str| Operation {
            kind,
            urls: vec![url.to_owned()],
            sha256_out: Some(HASH.to_owned()),
            sha256_in: None,
            sha256_previous: None,
            path: None,
            arguments: None,
            size: 5,
        };
        let mut c = UpdateCheck::with_status(UpdateCheckStatus::Ok);
        c.next_version = Some("2.0".parse().unwrap());
        c.pipelines = vec![Pipeline {
            pipeline_id: Some("full".into()),
            operations: vec![
                op(OperationType::Download, "http://a/dl/app.tar.gz"),
                op(OperationType::Run, "http://a/unused"),
            ],
        }];
        let p = offered_packages(&c).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "app.tar.gz");
        assert_eq!(p[0].urls, ["http://a/dl/app.tar.gz"]);
        assert_eq!(p[0].size, 5);
        c.pipelines.clear();
        assert_eq!(offered_packages(&c), Err(OfferError::NoPackages));
    }

    #[test]
    fn a_4_0_diff_pipeline_offers_its_patch_before_the_full_pipeline() {
        use crate::omaha::{Operation, Pipeline};
        const PATCH: &str = "1111111111111111111111111111111111111111111111111111111111111111";
        const BASE: &str = "2222222222222222222222222222222222222222222222222222222222222222";
        let op = |kind, url: Option<&str>, out: &str, size| Operation {
            kind,
            urls: url.map(|u| vec![u.to_owned()]).unwrap_or_default(),
            sha256_out: Some(out.to_owned()),
            sha256_in: None,
            sha256_previous: None,
            path: None,
            arguments: None,
            size,
        };
        let mut apply = op(OperationType::UpkeepPatch, None, HASH, 900);
        apply.sha256_in = Some(PATCH.to_owned());
        apply.sha256_previous = Some(BASE.to_owned());
        let diff = Pipeline {
            pipeline_id: Some("diff".into()),
            operations: vec![
                op(
                    OperationType::Download,
                    Some("http://a/dl/app.tar.gz.from-1.0.zpatch"),
                    PATCH,
                    40,
                ),
                apply,
            ],
        };
        let full = Pipeline {
            pipeline_id: Some("full".into()),
            operations: vec![op(
                OperationType::Download,
                Some("http://a/dl/app.tar.gz"),
                HASH,
                900,
            )],
        };
        let mut c = UpdateCheck::with_status(UpdateCheckStatus::Ok);
        c.next_version = Some("2.0".parse().unwrap());
        c.pipelines = vec![diff.clone(), full.clone()];
        let p = offered_packages(&c).unwrap();
        assert_eq!(
            (p.len(), p[0].name.as_str(), p[0].size),
            (1, "app.tar.gz", 900)
        );
        let d = p[0].diff.as_ref().expect("the diff pipeline's patch");
        assert_eq!(d.name, "app.tar.gz.from-1.0.zpatch");
        assert_eq!((d.sha256.as_str(), d.size), (PATCH, 40));
        assert_eq!(d.urls, ["http://a/dl/app.tar.gz.from-1.0.zpatch"]);
        // A diff pipeline with an operation upkeep does not run is skipped.
        let mut foreign = diff.clone();
        foreign
            .operations
            .push(op(OperationType::Other("crx3x".into()), None, HASH, 0));
        c.pipelines = vec![foreign, full.clone()];
        assert_eq!(offered_packages(&c).unwrap()[0].diff, None);
        // A patch operation whose input no download makes offers nothing.
        let mut unbound = diff;
        unbound.operations.remove(0);
        c.pipelines = vec![unbound, full];
        let p = offered_packages(&c).unwrap();
        assert_eq!((p[0].name.as_str(), &p[0].diff), ("app.tar.gz", &None));
    }

    #[test]
    fn omaha_and_tuf_must_agree() {
        let offered = offered_packages(&check(&["p"], &["http://a/"]))
            .unwrap()
            .remove(0);
        let mut target = TargetInfo {
            path: "apps/x/2.0/p".into(),
            file: TargetFile::from_bytes(b"hello"),
        };
        let agreed = agree(&offered, &target).unwrap();
        assert_eq!(agreed.length, 5);
        assert_eq!(hex::encode(agreed.sha256), HASH);
        target.file = TargetFile::from_bytes(b"other");
        assert!(matches!(
            agree(&offered, &target),
            Err(OfferError::HashDisagreement { .. })
        ));
        let mut sized = offered.clone();
        sized.size = 6;
        target.file = TargetFile::from_bytes(b"hello");
        assert!(matches!(
            agree(&sized, &target),
            Err(OfferError::SizeDisagreement {
                omaha: 6,
                tuf: 5,
                ..
            })
        ));
    }
}

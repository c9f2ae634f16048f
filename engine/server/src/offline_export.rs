//! An offline folder for one published release, for `upkeep install
//! --offline-dir`: the release's files, each copied from the repository
//! and checked against the signed targets metadata, and
//! `OfflineManifest.gup`, the Omaha 3.0 XML answer a first install would
//! get (the packages with sizes and SHA-256, the install action with the
//! installer arguments, every install data entry). The folder is written
//! under a temporary name and renamed into place, so it is whole or absent.

use std::path::{Path, PathBuf};

use upkeep_core::omaha::offline::OFFLINE_MANIFEST;
use upkeep_core::omaha::{
    Action, App, AppId, AppStatus, Data, DataStatus, Protocol, Response, join_args,
};
use upkeep_core::version::Version;

use crate::answer::update_check;
use crate::decision::{Release, ReleaseFile};
use crate::error::ServerError;
use crate::repo::Repo;

/// The codebase written into the manifest (offline installs never fetch
/// from it; the XML form requires one).
const OFFLINE_CODEBASE: &str = "https://offline.invalid";

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The folder.
    pub dir: PathBuf,
    /// The files copied, by name, with their lengths.
    pub files: Vec<(String, u64)>,
}

/// The offline manifest of `release`.
pub fn offline_manifest(release: &Release) -> Response {
    let mut check = update_check(release, OFFLINE_CODEBASE);
    check.pipelines.clear();
    if let Some(manifest) = check.manifest.as_mut() {
        manifest.actions = vec![Action {
            event: Some("install".into()),
            run: release.files.first().map(|f| f.name.clone()),
            arguments: (!release.installer_args.is_empty())
                .then(|| join_args(&release.installer_args)),
            needsadmin: None,
            onsuccess: None,
            attributes: Default::default(),
        }];
        manifest.run = None;
        manifest.arguments = None;
    }
    let mut app = App::new(AppId::new(release.app.clone()), AppStatus::Ok);
    app.updatecheck = Some(check);
    app.data = release
        .install_data
        .iter()
        .map(|(index, text)| Data {
            name: Some("install".into()),
            index: Some(index.clone()),
            status: DataStatus::Ok,
            text: text.clone(),
        })
        .collect();
    let mut response = Response::new(Protocol::Xml30);
    response.apps.push(app);
    response
}

impl Repo {
    /// Writes the offline folder of `app` `version` to `out`, which must
    /// not exist (or be an empty directory).
    pub fn export_offline(
        &self,
        app: &str,
        version: &Version,
        out: &Path,
    ) -> Result<Exported, ServerError> {
        let catalog = self.catalog()?;
        let release = catalog
            .find(app, version)
            .ok_or_else(|| ServerError::UnknownRelease {
                app: app.to_owned(),
                version: version.to_string(),
            })?;
        if out.exists() {
            let empty = std::fs::read_dir(out)
                .map_err(|e| ServerError::io(out, e))?
                .next()
                .is_none();
            if !empty {
                return Err(ServerError::io(
                    out,
                    std::io::Error::new(
                        std::io::ErrorKind::AlreadyExists,
                        "exists and is not empty; nothing was written",
                    ),
                ));
            }
        }
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "offline".into());
        let partial = out.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&partial).map_err(|e| ServerError::io(&partial, e))?;
        let written = self.write_folder(release, &partial);
        let result = written.and_then(|files| {
            if out.exists() {
                std::fs::remove_dir(out).map_err(|e| ServerError::io(out, e))?;
            }
            std::fs::rename(&partial, out).map_err(|e| ServerError::io(out, e))?;
            Ok(files)
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&partial);
        }
        let files = result?;
        Ok(Exported {
            dir: out.to_path_buf(),
            files,
        })
    }

    /// The files and the manifest of `release` in `dir`.
    fn write_folder(
        &self,
        release: &Release,
        dir: &Path,
    ) -> Result<Vec<(String, u64)>, ServerError> {
        let mut files = Vec::new();
        for file in &release.files {
            let from = self.targets_dir().join(&file.target_path);
            copy_checked(&from, &dir.join(&file.name), file)?;
            files.push((file.name.clone(), file.length));
        }
        let manifest = dir.join(OFFLINE_MANIFEST);
        let body = offline_manifest(release).to_body(Protocol::Xml30);
        std::fs::write(&manifest, body).map_err(|e| ServerError::io(&manifest, e))?;
        Ok(files)
    }
}

/// Copies `from` to `to`, refusing it unless its length and SHA-256 are
/// the ones the signed metadata lists.
fn copy_checked(from: &Path, to: &Path, file: &ReleaseFile) -> Result<(), ServerError> {
    let mut input = std::fs::File::open(from).map_err(|e| ServerError::io(from, e))?;
    let (length, sha256) =
        upkeep_core::durable::copy_hashed(&mut input, to).map_err(|e| ServerError::io(to, e))?;
    if length != file.length || sha256 != file.sha256 {
        return Err(ServerError::io(
            from,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{length} bytes with SHA-256 {sha256}, but the targets metadata lists {} bytes with {}",
                    file.length, file.sha256
                ),
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::offer::install_action;
    use upkeep_core::omaha::offline::offer;
    use upkeep_core::omaha::{parse_response_any, split_args};

    #[test]
    fn the_manifest_reads_back_as_the_offer_of_the_release() {
        let release = Release {
            app: "org.example.app".into(),
            version: "1.2.3".parse().unwrap(),
            channel: String::new(),
            installer_args: vec!["--dir".into(), "two words".into()],
            install_data: [("en".to_owned(), "lang=en <&>".to_owned())].into(),
            files: vec![ReleaseFile {
                name: "app.tar.gz".into(),
                target_path: "apps/org.example.app/1.2.3/app.tar.gz".into(),
                length: 42,
                sha256: "ab".repeat(32),
            }],
        };
        let body = offline_manifest(&release).to_body(Protocol::Xml30);
        let parsed = parse_response_any(body.as_bytes()).unwrap();
        let dir = Path::new("/media/usb");
        let o = offer(&parsed, "ORG.example.app", dir).unwrap();
        assert_eq!(o.version.to_string(), "1.2.3");
        assert_eq!(o.packages[0].path, dir.join("app.tar.gz"));
        assert_eq!(
            (o.packages[0].size, o.packages[0].sha256.as_str()),
            (42, "ab".repeat(32).as_str())
        );
        let action = install_action(o.check).unwrap();
        assert_eq!(action.run.as_deref(), Some("app.tar.gz"));
        assert_eq!(
            split_args(action.arguments.as_deref().unwrap()).unwrap(),
            ["--dir", "two words"]
        );
        assert_eq!(
            upkeep_core::omaha::offline::install_data(&parsed, "org.example.app", "en"),
            Some("lang=en <&>")
        );
    }
}

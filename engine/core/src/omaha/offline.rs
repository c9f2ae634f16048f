//! Offline installs: a 3.0 XML manifest (`.gup`) shipped beside the
//! installer says what to run and with which install data.

use std::path::{Component, Path, PathBuf};

use super::{App, ProtocolError, Response, parse_response_any};

/// The manifest name looked up first in an offline folder.
pub const OFFLINE_MANIFEST: &str = "OfflineManifest.gup";

/// Why an offline install could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineError {
    /// Neither manifest name exists in the folder.
    #[error("no {OFFLINE_MANIFEST} or {app_id}.gup in {}", dir.display())]
    NoManifest {
        /// The offline folder.
        dir: PathBuf,
        /// The app looked for.
        app_id: String,
    },
    /// The manifest could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The manifest.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest did not parse.
    #[error("cannot parse {}: {source}", path.display())]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// Why.
        source: ProtocolError,
    },
    /// The manifest does not list the app (or listed it malformed).
    #[error("the manifest has no usable app {0}")]
    UnknownApp(String),
    /// The app's update check offers nothing to install.
    #[error("the manifest offers no installer for app {0}")]
    NoInstaller(String),
    /// The install action names a path outside the offline folder.
    #[error("installer path {0:?} is not a plain file name inside the offline folder")]
    UnsafeInstallerPath(String),
}

/// The program an offline install runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallCommand {
    /// The installer, inside the offline folder.
    pub installer: PathBuf,
    /// Its arguments (empty when none).
    pub arguments: String,
}

/// Finds the manifest for `app_id` in `dir`: `OfflineManifest.gup`
/// first, then the legacy `<app_id>.gup`.
pub fn find_manifest(dir: &Path, app_id: &str) -> Result<PathBuf, OfflineError> {
    let candidates = [
        dir.join(OFFLINE_MANIFEST),
        dir.join(format!("{app_id}.gup")),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| OfflineError::NoManifest {
            dir: dir.to_path_buf(),
            app_id: app_id.to_owned(),
        })
}

/// Finds and parses the manifest for `app_id` in `dir`.
pub fn read_manifest(dir: &Path, app_id: &str) -> Result<Response, OfflineError> {
    let path = find_manifest(dir, app_id)?;
    let bytes = std::fs::read(&path).map_err(|source| OfflineError::Read {
        path: path.clone(),
        source,
    })?;
    parse_response_any(&bytes).map_err(|source| OfflineError::Parse { path, source })
}

fn app<'a>(response: &'a Response, app_id: &str) -> Result<&'a App, OfflineError> {
    response
        .app(app_id)
        .ok_or_else(|| OfflineError::UnknownApp(app_id.to_owned()))
}

/// The installer and arguments of the manifest's `install` action.
pub fn install_command(
    response: &Response,
    app_id: &str,
    offline_dir: &Path,
) -> Result<InstallCommand, OfflineError> {
    let app = app(response, app_id)?;
    let manifest = app
        .updatecheck
        .as_ref()
        .and_then(|uc| uc.manifest.as_ref())
        .ok_or_else(|| OfflineError::NoInstaller(app_id.to_owned()))?;
    let action = manifest
        .actions
        .iter()
        .find(|a| a.event.as_deref() == Some("install") && a.run.is_some())
        .ok_or_else(|| OfflineError::NoInstaller(app_id.to_owned()))?;
    let run = action.run.as_deref().unwrap_or_default();
    let mut parts = Path::new(run).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) if !run.contains(['/', '\\']) => {}
        _ => return Err(OfflineError::UnsafeInstallerPath(run.to_owned())),
    }
    Ok(InstallCommand {
        installer: offline_dir.join(run),
        arguments: action.arguments.clone().unwrap_or_default(),
    })
}

/// The install data stored under `index` for the app, if any.
pub fn install_data<'a>(response: &'a Response, app_id: &str, index: &str) -> Option<&'a str> {
    let app = response.app(app_id)?;
    app.data
        .iter()
        .find(|d| d.name.as_deref() == Some("install") && d.index.as_deref() == Some(index))
        .map(|d| d.text.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omaha::{Protocol, parse_response};

    const MANIFEST: &str = r#"<response protocol="3.0"><app appid="{AB}" status="ok"><updatecheck status="ok">
      <urls><url codebase="http://example.com/"/></urls><manifest version="1.0"><packages><package name="p.exe"/></packages>
      <actions><action event="install" run="RUN" arguments="-q"/></actions></manifest></updatecheck>
      <data index="x" name="install" status="ok">
        text
      </data></app></response>"#;

    fn with_run(run: &str) -> Response {
        parse_response(MANIFEST.replace("RUN", run).as_bytes(), Protocol::Xml30).unwrap()
    }

    #[test]
    fn installer_must_stay_in_the_folder() {
        let dir = Path::new("/offline");
        let ok = install_command(&with_run("setup.exe"), "{ab}", dir).unwrap();
        assert_eq!(ok.installer, dir.join("setup.exe"));
        assert_eq!(ok.arguments, "-q");
        for bad in ["../x.exe", "/bin/sh", "a/b.exe", "a\\b.exe", ".."] {
            assert!(
                matches!(
                    install_command(&with_run(bad), "{AB}", dir),
                    Err(OfflineError::UnsafeInstallerPath(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            install_command(&with_run("s"), "{CD}", dir),
            Err(OfflineError::UnknownApp(_))
        ));
    }

    #[test]
    fn install_data_is_trimmed() {
        assert_eq!(install_data(&with_run("s"), "{AB}", "x"), Some("text"));
        assert_eq!(install_data(&with_run("s"), "{AB}", "y"), None);
    }

    #[test]
    fn manifests_are_looked_up_by_both_names() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_manifest(dir.path(), "{AB}"),
            Err(OfflineError::NoManifest { .. })
        ));
        std::fs::write(
            dir.path().join("{AB}.gup"),
            with_run("s").to_body(Protocol::Xml30),
        )
        .unwrap();
        assert_eq!(
            find_manifest(dir.path(), "{AB}").unwrap(),
            dir.path().join("{AB}.gup")
        );
        std::fs::write(dir.path().join(OFFLINE_MANIFEST), "not xml").unwrap();
        assert_eq!(
            find_manifest(dir.path(), "{AB}").unwrap(),
            dir.path().join(OFFLINE_MANIFEST)
        );
        assert!(matches!(
            read_manifest(dir.path(), "{AB}"),
            Err(OfflineError::Parse { .. })
        ));
    }
}

//! Offline installs: a 3.0 XML manifest (`.gup`) shipped beside the
//! installer says what to run and with which install data.

use std::path::{Component, Path, PathBuf};

use super::{
    App, AppStatus, ProtocolError, Response, UpdateCheck, UpdateCheckStatus, parse_response_any,
};
use crate::offer::{hex_sha256, install_action, plain_file_name};
use crate::version::Version;

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
    /// The manifest does not list the app.
    #[error("the manifest has no app {0}")]
    UnknownApp(String),
    /// The manifest lists the app, malformed.
    #[error("the manifest's entry for the app is malformed: {0}")]
    MalformedApp(String),
    /// The app's update check offers nothing to install.
    #[error("the manifest offers no installer for app {0}")]
    NoInstaller(String),
    /// The install action names a path outside the offline folder.
    #[error("installer path {0:?} is not a plain file name inside the offline folder")]
    UnsafeInstallerPath(String),
    /// The app's entry says it is not available.
    #[error("the manifest's app {app} has status {status}")]
    AppStatus {
        /// The app.
        app: String,
        /// Its status as written.
        status: String,
    },
    /// The manifest names no version (or version 0) to install.
    #[error("the manifest names no version to install for app {0}")]
    NoVersion(String),
    /// A package entry the install cannot use.
    #[error("package {name:?} in the manifest: {reason}")]
    BadPackage {
        /// The package name as written.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The install action runs a file that is not one of the packages
    /// (so it would not be verified).
    #[error("the install action runs {0:?}, which is not one of the manifest's packages")]
    RunNotAPackage(String),
}

/// One file an offline install takes from the folder, as the manifest
/// describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflinePackage {
    /// The file name (plain, inside the folder).
    pub name: String,
    /// The file in the offline folder.
    pub path: PathBuf,
    /// The hex SHA-256 the manifest gives (lower case).
    pub sha256: String,
    /// The size the manifest gives (0: not given; the hash still binds it).
    pub size: u64,
}

/// What an offline manifest offers one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineOffer<'a> {
    /// The app id as the manifest writes it.
    pub app_id: &'a str,
    /// The version it installs.
    pub version: Version,
    /// The update check the offer comes from (installer arguments).
    pub check: &'a UpdateCheck,
    /// Every package, in manifest order.
    pub packages: Vec<OfflinePackage>,
}

/// The offer of `response` (a parsed offline manifest) for `app_id`, its
/// packages located in `offline_dir`. Every package must have a plain file
/// name and a SHA-256; the `install` action, when it names a program, must
/// name one of them. Nothing is read from the folder here.
pub fn offer<'a>(
    response: &'a Response,
    app_id: &str,
    offline_dir: &Path,
) -> Result<OfflineOffer<'a>, OfflineError> {
    let app = app(response, app_id)?;
    if app.status != AppStatus::Ok {
        return Err(OfflineError::AppStatus {
            app: app_id.to_owned(),
            status: app.status.to_string(),
        });
    }
    let check = app
        .updatecheck
        .as_ref()
        .filter(|c| c.status == UpdateCheckStatus::Ok)
        .ok_or_else(|| OfflineError::NoInstaller(app_id.to_owned()))?;
    let manifest = check
        .manifest
        .as_ref()
        .filter(|m| !m.packages.is_empty())
        .ok_or_else(|| OfflineError::NoInstaller(app_id.to_owned()))?;
    let version = check
        .next_version
        .clone()
        .unwrap_or_else(|| manifest.version.clone());
    if version == Version::default() {
        return Err(OfflineError::NoVersion(app_id.to_owned()));
    }
    let mut packages: Vec<OfflinePackage> = Vec::new();
    for p in &manifest.packages {
        let bad = |reason| OfflineError::BadPackage {
            name: p.name.clone(),
            reason,
        };
        if !plain_file_name(&p.name) {
            return Err(bad("not a plain file name inside the offline folder"));
        }
        if packages.iter().any(|q| q.name == p.name) {
            return Err(bad("listed twice"));
        }
        let sha256 =
            hex_sha256(p.hash_sha256.as_deref()).ok_or_else(|| bad("no valid hash_sha256"))?;
        packages.push(OfflinePackage {
            name: p.name.clone(),
            path: offline_dir.join(&p.name),
            sha256,
            size: p.size,
        });
    }
    let run = install_action(check).and_then(|a| a.run.as_deref());
    if let Some(run) = run
        && !packages.iter().any(|p| p.name == run)
    {
        return Err(OfflineError::RunNotAPackage(run.to_owned()));
    }
    Ok(OfflineOffer {
        app_id: app.appid.as_str(),
        version,
        check,
        packages,
    })
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
    if let Some(app) = response.app(app_id) {
        return Ok(app);
    }
    let malformed = response.app_errors.iter().find(|e| {
        e.appid
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(app_id))
    });
    Err(match malformed {
        Some(e) => OfflineError::MalformedApp(e.to_string()),
        None => OfflineError::UnknownApp(app_id.to_owned()),
    })
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

    const SHA: &str = "2c1e52f8b95eadd371cea8db78e5bd1dbd5e8ca5820b0efb5022e7e1f875f9a2";

    fn offline_manifest(packages: &str, run: &str) -> Response {
        let xml = format!(
            r#"<response protocol="3.0"><app appid="{{AB}}" status="ok"><updatecheck status="ok">
              <urls><url codebase="https://example.com/"/></urls><manifest version="1.2.3"><packages>{packages}</packages>
              <actions><action event="install" run="{run}" arguments="--quiet"/>
              <action event="postinstall" onsuccess="exitsilently"/></actions></manifest>
              </updatecheck></app></response>"#
        );
        parse_response(xml.as_bytes(), Protocol::Xml30).unwrap()
    }

    #[test]
    fn an_offer_lists_every_package_in_the_folder() {
        let response = offline_manifest(
            &format!(
                r#"<package name="app.tar.gz" hash_sha256="{}" size="12"/><package name="extra.bin" hash_sha256="{SHA}"/>"#,
                SHA.to_uppercase()
            ),
            "app.tar.gz",
        );
        let dir = Path::new("/media/offline");
        let offer = offer(&response, "{ab}", dir).unwrap();
        assert_eq!(offer.app_id, "{AB}");
        assert_eq!(offer.version.to_string(), "1.2.3");
        assert_eq!(offer.packages.len(), 2);
        assert_eq!(offer.packages[0].path, dir.join("app.tar.gz"));
        assert_eq!(offer.packages[0].sha256, SHA);
        assert_eq!(offer.packages[0].size, 12);
        assert_eq!(offer.packages[1].size, 0);
        let action = crate::offer::install_action(offer.check).unwrap();
        assert_eq!(action.arguments.as_deref(), Some("--quiet"));
    }

    #[test]
    fn an_offer_refuses_what_it_could_not_verify() {
        let dir = Path::new("/offline");
        let good = format!(r#"<package name="a.bin" hash_sha256="{SHA}" size="3"/>"#);
        let cases = [
            (
                format!(r#"<package name="../a.bin" hash_sha256="{SHA}"/>"#),
                "a.bin",
            ),
            (
                format!(r#"<package name=".hidden" hash_sha256="{SHA}"/>"#),
                "a.bin",
            ),
            (
                r#"<package name="a.bin" hash_sha256="abc"/>"#.to_owned(),
                "a.bin",
            ),
            (r#"<package name="a.bin"/>"#.to_owned(), "a.bin"),
            (format!("{good}{good}"), "a.bin"),
        ];
        for (packages, run) in cases {
            let response = offline_manifest(&packages, run);
            assert!(
                matches!(
                    offer(&response, "{AB}", dir),
                    Err(OfflineError::BadPackage { .. })
                ),
                "{packages}"
            );
        }
        let response = offline_manifest(&good, "setup.sh");
        assert!(matches!(
            offer(&response, "{AB}", dir),
            Err(OfflineError::RunNotAPackage(r)) if r == "setup.sh"
        ));
        assert!(matches!(
            offer(&offline_manifest(&good, "a.bin"), "{CD}", dir),
            Err(OfflineError::UnknownApp(_))
        ));
        let none = parse_response(
            br#"<response protocol="3.0"><app appid="{AB}" status="ok"><updatecheck status="noupdate"/></app></response>"#,
            Protocol::Xml30,
        )
        .unwrap();
        assert!(matches!(
            offer(&none, "{AB}", dir),
            Err(OfflineError::NoInstaller(_))
        ));
        let restricted = parse_response(
            br#"<response protocol="3.0"><app appid="{AB}" status="restricted"/></response>"#,
            Protocol::Xml30,
        )
        .unwrap();
        assert!(matches!(
            offer(&restricted, "{AB}", dir),
            Err(OfflineError::AppStatus { .. })
        ));
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

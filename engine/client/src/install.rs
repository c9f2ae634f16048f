//! Running an app's installer plugin into a fresh `versions/<version>/`
//! (payload read-only, that directory read-write, nothing else), then its
//! post-install check; install data for first installs.

use std::path::Path;

use upkeep_core::appdir;
use upkeep_core::crash;
use upkeep_core::offer::install_action;
use upkeep_core::omaha::{DataStatus, UpdateCheck, split_args};
use upkeep_core::state::{AppRecord, PluginRef};
use upkeep_core::version::Version;
use upkeep_plugin_host::bindings::{installer, qualifier, types};
use upkeep_plugin_host::{InstallInput, QualifyInput};

use crate::error::UpdateError;
use crate::observer::{Notice, Observer, Warning};
use crate::pass::Run;
use crate::plugins::{Plugins, Role};

/// The Omaha data name of install data.
pub(crate) const INSTALL_DATA: &str = "install";

/// The install data index to ask for: the registered one, and only while
/// the app is not installed yet (Omaha install data is for first installs).
pub(crate) fn install_data_wanted(record: &AppRecord) -> Option<&str> {
    record
        .install_data_index
        .as_deref()
        .filter(|_| !record.updater && record.version == Version::default())
}

/// The installer data for an install of `id`: the text of the answer's
/// `install` data entry for the requested index when its status is `ok`.
/// Any other answer (no entry, `error-nodata`, ...) is a warning and the
/// install goes on without installer data, as Chromium's updater treats
/// missing install data.
pub(crate) fn installer_data(
    id: &str,
    record: &AppRecord,
    app: &upkeep_core::omaha::App,
    observer: &mut dyn Observer,
) -> Option<String> {
    let index = install_data_wanted(record)?;
    let entry = app
        .data
        .iter()
        .find(|d| d.name.as_deref() == Some(INSTALL_DATA) && d.index.as_deref() == Some(index));
    let why = match entry {
        Some(d) if d.status == DataStatus::Ok => return Some(d.text.clone()),
        Some(d) => format!(
            "the server answered {} for install data index {index:?}",
            d.status
        ),
        None => format!("the server sent no install data for index {index:?}"),
    };
    observer.warning(&Warning::app(
        id,
        format!("{why}; installing without installer data"),
    ));
    None
}

/// The installer arguments of an offer: the 3.1 manifest's, else its
/// `install` action's (3.0 XML and offline manifests put them there), else
/// the first 4.0 operation's that has some; quoted as the server writes
/// them.
fn installer_arguments(check: &UpdateCheck) -> Result<Vec<String>, UpdateError> {
    let text = check
        .manifest
        .as_ref()
        .and_then(|m| m.arguments.as_deref())
        .or_else(|| install_action(check).and_then(|a| a.arguments.as_deref()))
        .or_else(|| {
            check
                .pipelines
                .first()
                .and_then(|p| p.operations.iter().find_map(|o| o.arguments.as_deref()))
        });
    match text {
        None => Ok(Vec::new()),
        Some(t) => split_args(t).map_err(UpdateError::BadArguments),
    }
}

/// The app as the host's `app` function returns it to a plugin.
pub(crate) fn app_info(id: &str, record: &AppRecord) -> types::AppInfo {
    types::AppInfo {
        app_id: id.to_owned(),
        version: record.version.to_string(),
        channel: record.channel.clone(),
        brand: record.brand.clone(),
    }
}

impl Run<'_, '_> {
    /// Installs `next` of `id` from `payload_dir` with its installer plugin
    /// into a fresh version directory; on failure that directory goes.
    pub(crate) fn install(
        &mut self,
        id: &str,
        record: &AppRecord,
        check: &UpdateCheck,
        next: &Version,
        payload_dir: &Path,
        installer_data: Option<&str>,
    ) -> Result<(), UpdateError> {
        let Some(installer) = record.installer.clone() else {
            return Err(UpdateError::NoInstaller { app: id.to_owned() });
        };
        let arguments = installer_arguments(check)?;
        let dir = &record.install_dir;
        std::fs::create_dir_all(dir).map_err(|source| UpdateError::InstallDir {
            path: dir.clone(),
            source,
        })?;
        // What an interrupted earlier run left goes first: every version
        // but the installed one and the kept previous one.
        let mut keep = vec![&record.version];
        keep.extend(record.previous_version.as_ref());
        for (path, e) in appdir::prune(dir, &keep) {
            self.observer.warning(&Warning::app(
                id,
                format!("cannot remove {}: {e}", path.display()),
            ));
        }
        let version_dir =
            appdir::fresh_version_dir(dir, next).map_err(|source| UpdateError::InstallDir {
                path: appdir::version_dir(dir, next),
                source,
            })?;
        crash::point("install.dir-created");
        let first_install = record.version == Version::default();
        let input = InstallInput {
            operation: if first_install {
                installer::Operation::Install
            } else {
                installer::Operation::Update
            },
            app_id: id.to_owned(),
            from_version: (!first_install).then(|| record.version.to_string()),
            to_version: next.to_string(),
            arguments,
            installer_data: installer_data.map(str::to_owned),
            payload_dir: Some(payload_dir.to_path_buf()),
            install_dir: version_dir.clone(),
        };
        let plugins = self.env.plugins;
        let result = run_installer(plugins, &installer, &input, app_info(id, record))
            .map(|note| {
                if let Some((plugin, message)) = note {
                    self.observer.notice(&Notice::InstallerNote {
                        app: id.to_owned(),
                        plugin,
                        message,
                    });
                }
            })
            .and_then(|()| {
                crash::point("install.installer-done");
                match &record.post_install_check {
                    Some(check) => {
                        post_install_check(plugins, check, id, record, next, &version_dir)
                    }
                    None => Ok(()),
                }
            });
        if result.is_err()
            && let Err(e) = appdir::discard(dir, next)
        {
            self.observer.warning(&Warning::app(
                id,
                format!("cannot remove {}: {e}", version_dir.display()),
            ));
        }
        result
    }
}

/// Runs the installer; its note (plugin name and message) on success.
pub(crate) fn run_installer(
    plugins: &dyn Plugins,
    installer: &PluginRef,
    input: &InstallInput,
    app: types::AppInfo,
) -> Result<Option<(String, String)>, UpdateError> {
    let answer = plugins
        .install(installer, input, app)
        .map_err(UpdateError::Installer)?;
    match answer.value {
        Ok(success) => Ok(success.message.map(|m| (answer.plugin, m))),
        Err(e) => Err(UpdateError::InstallerFailed {
            plugin: answer.plugin,
            code: e.code,
            extra: e.extra_code,
            message: e.message,
        }),
    }
}

/// Runs the app's post-install check (a qualifier-world plugin) on the
/// freshly installed `version_dir`.
fn post_install_check(
    plugins: &dyn Plugins,
    check: &PluginRef,
    id: &str,
    record: &AppRecord,
    next: &Version,
    version_dir: &Path,
) -> Result<(), UpdateError> {
    let input = QualifyInput {
        updater_version: env!("CARGO_PKG_VERSION").to_owned(),
        app_id: id.to_owned(),
        app_version: next.to_string(),
        app_dir: version_dir.to_path_buf(),
        settings: record.settings_list(),
    };
    let answer = plugins
        .qualify(check, Role::PostInstallCheck, &input)
        .map_err(UpdateError::PostInstallCheck)?;
    match answer.value {
        qualifier::Verdict::Pass => Ok(()),
        qualifier::Verdict::Fail(why) => Err(UpdateError::PostInstallRefused {
            plugin: answer.plugin,
            version: next.clone(),
            why,
        }),
    }
}

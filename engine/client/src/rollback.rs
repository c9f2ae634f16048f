//! Rolling an app back to the version kept since its last update, and
//! uninstalling an app through its installer plugin.

use upkeep_core::appdir;
use upkeep_core::crash;
use upkeep_core::lifecycle;
use upkeep_core::omaha::{EventType, random_id};
use upkeep_core::state::{AppRecord, PREFS_FILE, Prefs, StateLock, SwitchKind};
use upkeep_core::version::Version;
use upkeep_plugin_host::InstallInput;
use upkeep_plugin_host::bindings::installer;

use crate::client::Client;
use crate::error::{ClientError, UpdateError};
use crate::events::{Recorded, event};
use crate::files::{remove_old_payloads, unix_now};
use crate::install::{app_info, run_installer};
use crate::observer::{Observer, Warning};
use crate::outbox::Reporter;
use crate::recovery::lock_and_recover_held;

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The app.
    pub app: String,
    /// The version left.
    pub from: Version,
    /// The version restored.
    pub to: Version,
}

/// What uninstalling an app did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUninstalled {
    /// The app.
    pub app: String,
    /// The version that was installed.
    pub version: Version,
    /// The installer's note, if it gave one.
    pub note: Option<String>,
}

impl Client {
    /// Points the app's `current` back at the version kept since its last
    /// update, records it, and reports the switch in an event ping (type 3,
    /// `previousversion` the version left, `nextversion` the one restored)
    /// and to the telemetry sinks. A rollback is a recovery: it works
    /// without a usable configuration; only the report is then skipped.
    pub fn rollback(
        &self,
        app: &str,
        observer: &mut dyn Observer,
    ) -> Result<RolledBack, ClientError> {
        let config = self.config();
        let root = &self.root;
        let (_lock, mut prefs, id, record) =
            self.lock_app(app, "rollback", config.as_ref().ok().copied(), observer)?;
        let prefs_path = root.join(PREFS_FILE);
        let dir = &record.install_dir;
        let Some(to) = record.previous_version.clone() else {
            return Err(ClientError::NoPreviousVersion {
                app: id,
                version: record.version,
            });
        };
        let from = record.version.clone();
        if appdir::current_version(dir).as_deref() != Some(from.to_string().as_str()) {
            return Err(ClientError::CurrentMismatch {
                app: id,
                link: dir.join(appdir::CURRENT),
                version: from,
            });
        }
        if !appdir::version_dir(dir, &to).is_dir() {
            return Err(ClientError::PreviousGone {
                dir: appdir::version_dir(dir, &to),
                app: id,
                version: to,
            });
        }
        let session = random_id().map_err(|e| ClientError::Random(e.to_string()))?;
        let mut updated = record.clone();
        updated.version = to.clone();
        updated.previous_version = None;
        updated.updated_at = Some(unix_now());
        let events = vec![
            Recorded::new(&id, event(EventType::Update, None, &from, Some(&to)))
                .into_entry(to.clone(), &session),
        ];
        lifecycle::switch_app(
            &prefs_path,
            &mut prefs,
            &id,
            SwitchKind::Rollback,
            updated,
            events,
        )
        .map_err(|source| ClientError::Rollback {
            app: id.clone(),
            version: to.clone(),
            source,
        })?;
        // The version rolled back from is not kept: the next update installs
        // it afresh if the server still offers it.
        for (path, e) in appdir::prune(dir, &[&to]) {
            observer.warning(&Warning::app(
                &id,
                format!("cannot remove {}: {e}", path.display()),
            ));
        }
        remove_old_payloads(root, &id, &to);
        crash::point("rollback.pruned");
        self.report(config, &session, &mut prefs, &id, observer);
        Ok(RolledBack { app: id, from, to })
    }

    /// Uninstalls an app: its installer plugin runs the `uninstall`
    /// operation on the installed version's directory, then the app is
    /// forgotten, its install directory's versions removed, and an
    /// uninstall event reported. A refusing installer leaves everything as
    /// it was.
    pub fn uninstall_app(
        &self,
        app: &str,
        observer: &mut dyn Observer,
    ) -> Result<AppUninstalled, ClientError> {
        let config = self.config();
        let root = &self.root;
        let (_lock, mut prefs, id, record) =
            self.lock_app(app, "uninstall", config.as_ref().ok().copied(), observer)?;
        let session = random_id().map_err(|e| ClientError::Random(e.to_string()))?;
        let mut note = None;
        let version_dir = appdir::version_dir(&record.install_dir, &record.version);
        if let Some(plugin) = &record.installer
            && record.version != Version::default()
            && version_dir.is_dir()
        {
            let input = InstallInput {
                operation: installer::Operation::Uninstall,
                app_id: id.clone(),
                from_version: Some(record.version.to_string()),
                to_version: record.version.to_string(),
                arguments: Vec::new(),
                installer_data: None,
                payload_dir: None,
                install_dir: version_dir,
            };
            match run_installer(
                self.plugins.as_ref(),
                plugin,
                &input,
                app_info(&id, &record),
            ) {
                Ok(n) => note = n.map(|(_, message)| message),
                Err(UpdateError::InstallerFailed {
                    plugin,
                    code,
                    message,
                    ..
                }) => {
                    return Err(ClientError::UninstallRefused {
                        app: id,
                        plugin,
                        code,
                        message,
                    });
                }
                Err(UpdateError::Installer(f)) => return Err(ClientError::Plugin(f)),
                Err(other) => {
                    return Err(ClientError::UninstallRefused {
                        app: id,
                        plugin: plugin.path.display().to_string(),
                        code: 0,
                        message: other.to_string(),
                    });
                }
            }
        }
        crash::point("uninstall-app.installer-done");
        prefs.apps.remove(&id);
        prefs.outbox.push(
            Recorded::new(
                &id,
                event(EventType::Uninstall, None, &record.version, None),
            )
            .into_entry(record.version.clone(), &session),
        );
        prefs.save(&root.join(PREFS_FILE))?;
        crash::point("uninstall-app.forgotten");
        // The directories go after the prefs: a crash between leaves files,
        // never a registration pointing at nothing. `current` first, so
        // that no version is current any more and all of them go.
        let current = record.install_dir.join(appdir::CURRENT);
        if current.is_symlink()
            && let Err(e) = std::fs::remove_file(&current)
        {
            observer.warning(&Warning::app(
                &id,
                format!("cannot remove {}: {e}", current.display()),
            ));
        }
        for (path, e) in appdir::prune(&record.install_dir, &[]) {
            observer.warning(&Warning::app(
                &id,
                format!("cannot remove {}: {e}", path.display()),
            ));
        }
        let _ = std::fs::remove_dir(record.install_dir.join(appdir::VERSIONS));
        remove_old_payloads(root, &id, &Version::default());
        self.report(config, &session, &mut prefs, &id, observer);
        Ok(AppUninstalled {
            app: id,
            version: record.version,
            note,
        })
    }

    /// Takes the lock, recovers, and finds the registered app `app` (not
    /// upkeep itself, whose versions only activation changes).
    fn lock_app(
        &self,
        app: &str,
        operation: &'static str,
        config: Option<&crate::Config>,
        observer: &mut dyn Observer,
    ) -> Result<(StateLock, Prefs, String, AppRecord), ClientError> {
        let (lock, prefs) = lock_and_recover_held(&self.root, config, observer)?;
        let id = app.to_ascii_lowercase();
        let Some(record) = prefs.apps.get(&id).cloned() else {
            return Err(ClientError::NotRegistered {
                app: app.to_owned(),
                root: self.root.clone(),
            });
        };
        if record.updater {
            return Err(ClientError::IsUpdater { app: id, operation });
        }
        Ok((lock, prefs, id, record))
    }

    /// Delivers the outbox (the event of `id` just recorded in it, and
    /// whatever waits) to the server and the telemetry sinks, when the
    /// configuration is usable; otherwise the events wait, with a warning.
    pub(crate) fn report(
        &self,
        config: Result<&crate::Config, ClientError>,
        session: &str,
        prefs: &mut Prefs,
        id: &str,
        observer: &mut dyn Observer,
    ) {
        let config = match config {
            Ok(c) => c,
            Err(e) => {
                observer.warning(&Warning::app(
                    id,
                    format!("this is not reported yet (the event waits in the outbox): {e}"),
                ));
                return;
            }
        };
        let reporter = Reporter {
            root: &self.root,
            config,
            http: self.http.as_ref(),
            plugins: self.plugins.as_ref(),
            session,
        };
        reporter.deliver(&self.root.join(PREFS_FILE), prefs, true, observer);
    }
}

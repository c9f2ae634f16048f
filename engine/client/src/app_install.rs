//! Installing an app in one step: registered and installed together, from
//! the update server (an update check sent as `installsource=ondemand`,
//! then the whole verified path of an update) or from an offline folder
//! (the manifest and the packages beside it; no network at all). A failed
//! install leaves the prefs as they were: the app is not registered.

use std::path::{Path, PathBuf};
use std::time::Instant;

use upkeep_core::omaha::offline::{self, OfflineError, OfflineOffer};
use upkeep_core::omaha::random_id;
use upkeep_core::policy::InstallPolicy;
use upkeep_core::state::{PREFS_FILE, Prefs};
use upkeep_core::version::Version;

use crate::client::Client;
use crate::commit::Update;
use crate::error::{ClientError, UpdateError};
use crate::events::{Recorded, event, kind_for};
use crate::files::duration_ms;
use crate::install::INSTALL_DATA;
use crate::observer::{Observer, Warning};
use crate::offline_copy::copy_verified;
use crate::pass::{INSTALL_SOURCE_ON_DEMAND, PassOptions, Run, check_and_apply};
use crate::policy::{AppRules, Source};
use crate::recovery::lock_and_recover;
use crate::register::Registration;
use crate::report::AppOutcome;

/// Where an install takes the app from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum InstallFrom {
    /// The update server: the newest release it offers the app.
    #[default]
    Server,
    /// An offline folder: `OfflineManifest.gup` (else `<app-id>.gup`) and
    /// the packages it lists, side by side.
    Offline(PathBuf),
}

/// How to install.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallOptions {
    /// Where from.
    pub from: InstallFrom,
    /// Installer data from the installer tag (its `installerdata`): handed
    /// to the installer when the server or the offline manifest has no
    /// install data for the app's install data index. It is not stored.
    pub installer_data: Option<String>,
}

impl From<InstallFrom> for InstallOptions {
    fn from(from: InstallFrom) -> Self {
        InstallOptions {
            from,
            installer_data: None,
        }
    }
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The app id as stored.
    pub app: String,
    /// The version installed.
    pub version: Version,
    /// Where it came from.
    pub from: InstallFrom,
    /// The packages, by file name, with their sizes in bytes.
    pub packages: Vec<(String, u64)>,
}

/// Why an install was refused or failed. Nothing is registered after any
/// of them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// The app is installed already.
    #[error("{app} is already installed at {version}; `upkeep update` keeps it up to date")]
    AlreadyInstalled {
        /// The app.
        app: String,
        /// Its version.
        version: Version,
    },
    /// The enterprise policy blocks installing the app.
    #[error("installing {app} is blocked by {key} ({})", file.display())]
    BlockedByPolicy {
        /// The app.
        app: String,
        /// The policy file.
        file: PathBuf,
        /// The key that blocks it.
        key: Source,
    },
    /// The offline folder or its manifest cannot be used.
    #[error(transparent)]
    Offline(#[from] OfflineError),
    /// A package the manifest lists is not in the folder.
    #[error("the offline folder has no {} (the manifest lists it)", path.display())]
    MissingPackage {
        /// Where it should be.
        path: PathBuf,
    },
    /// A package could not be read or copied.
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        /// "read", "copy to", ...
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A package's size is not the one the manifest gives.
    #[error("package {name}: {found} bytes, the manifest says {expected}")]
    SizeMismatch {
        /// The package.
        name: String,
        /// The manifest's size.
        expected: u64,
        /// The file's.
        found: u64,
    },
    /// A package's SHA-256 is not the one the manifest gives.
    #[error("package {name}: SHA-256 {found}, the manifest says {expected}")]
    HashMismatch {
        /// The package.
        name: String,
        /// The manifest's hash.
        expected: String,
        /// The file's.
        found: String,
    },
    /// The server offers no release of the app.
    #[error(
        "the update server offers no release of {app} to install (it answered that there is no update for this machine, channel and version 0)"
    )]
    NothingOffered {
        /// The app.
        app: String,
    },
    /// The installer, the post-install check, the download or the switch
    /// failed.
    #[error("cannot install {app}{}: {source}", version.as_ref().map(|v| format!(" {v}")).unwrap_or_default())]
    Failed {
        /// The app.
        app: String,
        /// The version tried, when one was offered.
        version: Option<Version>,
        /// Why.
        source: Box<UpdateError>,
    },
}

impl Client {
    /// Registers the app of `registration` (its version is ignored: the
    /// app is not installed yet) and installs it as `options` say. The
    /// registration is stored only once the install succeeded.
    pub fn install(
        &self,
        registration: Registration,
        options: impl Into<InstallOptions>,
        observer: &mut dyn Observer,
    ) -> Result<Installed, ClientError> {
        let InstallOptions {
            from,
            installer_data,
        } = options.into();
        let config = self.config()?;
        let (id, mut record) = self.record_of(Registration {
            version: Version::default(),
            ..registration
        })?;
        if config
            .updater
            .as_ref()
            .is_some_and(|u| u.app.eq_ignore_ascii_case(&id))
        {
            return Err(ClientError::IsUpdater {
                app: id,
                operation: "an app install (use `upkeep setup`)",
            });
        }
        if let Some(problem) = self.policy.problem() {
            observer.warning(&Warning::general(problem));
        }
        let rules = AppRules::new(self.policy.policy(), Some(config), &id, None);
        if rules.install.value == InstallPolicy::Blocked {
            return Err(InstallError::BlockedByPolicy {
                app: id,
                file: self.policy.path.clone(),
                key: rules.install.source,
            }
            .into());
        }
        let root = &self.root;
        let (Some(lock), mut prefs, _) = lock_and_recover(root, Some(config), observer)? else {
            return Err(ClientError::Uninstalled { root: root.clone() });
        };
        self.check_active(&prefs)?;
        if let Some(existing) = prefs.apps.get(&id)
            && existing.version != Version::default()
        {
            return Err(InstallError::AlreadyInstalled {
                app: id,
                version: existing.version.clone(),
            }
            .into());
        }
        let before = prefs.clone();
        if let Some(existing) = prefs.apps.get(&id) {
            record.cohort = existing.cohort.clone();
            record.days = existing.days.clone();
            record.registered_at = existing.registered_at;
        }
        let prefs_path = root.join(PREFS_FILE);
        let mut env = self.env(config);
        env.installer_data = installer_data.as_deref();
        let installed = match &from {
            InstallFrom::Server => {
                prefs.apps.insert(id.clone(), record);
                check_and_apply(
                    &env,
                    &prefs_path,
                    &mut prefs,
                    vec![id.clone()],
                    PassOptions {
                        install_source: Some(INSTALL_SOURCE_ON_DEMAND),
                        ..PassOptions::default()
                    },
                    observer,
                )
                .and_then(|pass| {
                    let outcome = pass.apps.into_iter().next().map(|a| a.outcome);
                    Ok(server_outcome(&id, outcome)?)
                })
            }
            InstallFrom::Offline(dir) => {
                let mut run = Run {
                    env: &env,
                    observer,
                    tuf: None,
                    session: random_id().map_err(|e| ClientError::Random(e.to_string()))?,
                    events: Vec::new(),
                    staged_binary: None,
                    replaced: None,
                    on_demand: true,
                };
                prefs.apps.insert(id.clone(), record.clone());
                run.install_offline(&prefs_path, &mut prefs, &id, &record, dir)
                    .map_err(ClientError::from)
            }
        };
        match installed {
            Ok((version, packages)) => {
                drop(lock);
                Ok(Installed {
                    app: id,
                    version,
                    from,
                    packages,
                })
            }
            Err(e) => {
                // The registration goes with the failed install; what the
                // pass recorded (failure events already reported) stays.
                let mut now = Prefs::load(&prefs_path)?;
                let restore = before.apps.get(&id).cloned();
                let changed = match restore {
                    Some(r) => now.apps.insert(id.clone(), r.clone()) != Some(r),
                    None => now.apps.remove(&id).is_some(),
                };
                if changed {
                    now.save(&prefs_path)?;
                }
                Err(e)
            }
        }
    }
}

/// The version and packages of a server install, from its pass outcome.
fn server_outcome(
    id: &str,
    outcome: Option<AppOutcome>,
) -> Result<(Version, Vec<(String, u64)>), InstallError> {
    match outcome {
        Some(AppOutcome::Updated { to, downloads, .. }) => {
            let packages = downloads
                .into_iter()
                .map(|d| {
                    let name = d.url.rsplit('/').next().unwrap_or_default().to_owned();
                    (name, d.total_bytes)
                })
                .collect();
            Ok((to, packages))
        }
        Some(AppOutcome::Failed { next, error, .. }) => Err(InstallError::Failed {
            app: id.to_owned(),
            version: next,
            source: Box::new(error),
        }),
        _ => Err(InstallError::NothingOffered { app: id.to_owned() }),
    }
}

impl Run<'_, '_> {
    /// Installs `id` from the offline folder `dir`: every package copied
    /// into the downloads and checked against the manifest's size and
    /// SHA-256 before the installer plugin runs, then the post-install
    /// check, then the switch that records the app (with its install event
    /// in the outbox, for the next online check to report).
    fn install_offline(
        &mut self,
        prefs_path: &Path,
        prefs: &mut Prefs,
        id: &str,
        record: &upkeep_core::state::AppRecord,
        dir: &Path,
    ) -> Result<(Version, Vec<(String, u64)>), InstallError> {
        let started = Instant::now();
        let manifest = offline::read_manifest(dir, id)?;
        let offer = offline::offer(&manifest, id, dir)?;
        let OfflineOffer {
            version, packages, ..
        } = &offer;
        let root = self.env.root;
        let payload_dir = root.join("downloads").join(id).join(version.to_string());
        let staging = root
            .join("downloads/.partial")
            .join(id)
            .join(version.to_string());
        let mut copied = Vec::new();
        for package in packages {
            let bytes = copy_verified(package, &staging, &payload_dir).inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&payload_dir);
            })?;
            self.observer
                .notice(&crate::observer::Notice::OfflinePackageVerified {
                    app: id.to_owned(),
                    file: package.name.clone(),
                    bytes,
                });
            copied.push((package.name.clone(), bytes));
        }
        // From here on a failure also takes the copied packages away.
        let mut install_copied = || -> Result<(), InstallError> {
            let data = record.install_data_index.as_deref().and_then(|index| {
                let text = offline::install_data(&manifest, id, index);
                if text.is_none() && self.env.installer_data.is_none() {
                    self.observer.warning(&Warning::app(
                        id,
                        format!(
                            "the offline manifest has no {INSTALL_DATA} data for index {index:?}; installing without installer data"
                        ),
                    ));
                }
                text
            }).or(self.env.installer_data);
            let failed = |source| InstallError::Failed {
                app: id.to_owned(),
                version: Some(version.clone()),
                source: Box::new(source),
            };
            self.install(id, record, offer.check, version, &payload_dir, data)
                .map_err(failed)?;
            let mut done = Recorded::new(
                id,
                event(kind_for(record), None, &record.version, Some(version)),
            );
            done.duration_ms = Some(duration_ms(started.elapsed()));
            let update = Update {
                events: vec![done.into_entry(version.clone(), &self.session)],
                record: record.clone(),
            };
            self.commit(prefs_path, prefs, id, record, update, version)
                .map_err(failed)?;
            Ok(())
        };
        match install_copied() {
            Ok(()) => Ok((version.clone(), copied)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&payload_dir);
                Err(e)
            }
        }
    }
}

//! Setting upkeep up in a state root: the running binary installed side by
//! side as `versions/<v>/upkeep` and activated (qualification is skipped
//! when no version is active yet), or, in single-binary mode, the service
//! registered for the binary in place.

use std::path::{Path, PathBuf};

use upkeep_core::appdir;
use upkeep_core::crash;
use upkeep_core::lifecycle;
use upkeep_core::state::{AppRecord, PREFS_FILE};
use upkeep_core::version::Version;

use crate::client::Client;
use crate::config::UpdaterMode;
use crate::error::ClientError;
use crate::files::{copy_executable, unix_now};
use crate::lifecycle::{Stepped, start_versions, step};
use crate::observer::{Notice, Observer};
use crate::recovery::lock_and_recover_held;
use crate::service::Service;
use crate::statelog::log;

/// What a setup did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupOutcome {
    /// Single-binary mode: the service runs the binary where it is.
    SingleBinary {
        /// The version.
        version: Version,
        /// The binary.
        exe: PathBuf,
    },
    /// This version was already installed and active.
    AlreadyActive(Version),
    /// The lifecycle step's result for this version.
    Stepped {
        /// The version.
        version: Version,
        /// What the step did.
        stepped: Stepped,
    },
}

impl Client {
    /// Installs the running binary as an updater version side by side,
    /// registers upkeep itself as an app when `[updater]` is configured,
    /// then qualifies and activates it.
    pub fn setup(&self, observer: &mut dyn Observer) -> Result<SetupOutcome, ClientError> {
        let config = self.config()?;
        let root = &self.root;
        let (_, own) = self.own_version();
        let exe = match &self.exe {
            Some(e) => e.clone(),
            None => std::env::current_exe().map_err(ClientError::io(
                "cannot find",
                Path::new("the running binary"),
            ))?,
        };
        let (lock, mut prefs) = lock_and_recover_held(root, Some(config), observer)?;
        let mode = config.updater_mode();
        if let Some(updater) = &config.updater
            && !prefs.apps.contains_key(&updater.app)
        {
            let (install_dir, version) = match mode {
                UpdaterMode::SideBySide => (
                    root.clone(),
                    prefs.active_version.clone().unwrap_or_default(),
                ),
                UpdaterMode::SingleBinary => (
                    exe.parent().map(Path::to_path_buf).unwrap_or_default(),
                    own.clone(),
                ),
            };
            let mut record = AppRecord::new(version, install_dir, unix_now());
            record.updater = true;
            prefs.apps.insert(updater.app.clone(), record);
            prefs.save(&root.join(PREFS_FILE))?;
            observer.notice(&Notice::RegisteredSelf {
                app: updater.app.clone(),
            });
        }
        if let Some(updater) = &config.updater {
            seed_own_payload(root, &updater.app, &own, &exe, config.payload_cache_bytes);
        }
        if mode == UpdaterMode::SingleBinary {
            // The binary is replaced in place, so its path never changes: the
            // service is registered once, here.
            Service::from_config(root, Some(config))?
                .register(root, &exe, false)
                .map_err(|reason| ClientError::Service {
                    what: "make",
                    reason,
                })?;
            return Ok(SetupOutcome::SingleBinary { version: own, exe });
        }
        let dest = lifecycle::binary_path(root, &own);
        if exe != dest {
            let dir = appdir::version_dir(root, &own);
            std::fs::create_dir_all(&dir).map_err(ClientError::io("cannot create", &dir))?;
            if prefs.active_version.as_ref() == Some(&own) && dest.is_file() {
                return Ok(SetupOutcome::AlreadyActive(own));
            }
            copy_executable(&exe, &dest).map_err(|(path, source)| ClientError::Io {
                what: "cannot write",
                path,
                source,
            })?;
            crash::point("setup.binary-copied");
            if !lifecycle::local_prefs_path(root, &own).exists() {
                lifecycle::write_unqualified(root, &own)?;
            }
            log(root, &format!("installed {own} side by side"));
            observer.notice(&Notice::InstalledSideBySide {
                version: own.clone(),
                dir,
            });
        }
        let stepped = step(&self.env(config), &mut prefs, &own, observer)?;
        drop(lock);
        if let Stepped::Active { older } = &stepped {
            start_versions(root, self.config_arg(), older, observer);
        }
        Ok(SetupOutcome::Stepped {
            version: own,
            stepped,
        })
    }
}

/// Seeds the payload cache with the binary being set up as upkeep's own
/// release `version`, so that the first self-update can be a patch from it
/// (a tagged copy has other bytes than the release and is offered none).
fn seed_own_payload(root: &Path, app: &str, version: &Version, exe: &Path, cap: u64) {
    crate::payload_cache::seed(root, app, version, exe, || lifecycle::file_sha256(exe), cap);
}

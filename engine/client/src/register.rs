//! Registering an app: what it is, where it lives, which plugins install,
//! check and judge it. A re-registration keeps what the server assigned
//! (cohort, ping days) and the kept previous version while it names the
//! same installed version.

use std::collections::BTreeMap;
use std::path::PathBuf;

use upkeep_core::app_command::AppCommand;
use upkeep_core::health::{self, HealthCheck, HealthGate};
use upkeep_core::state::{AppRecord, PREFS_FILE, PluginRef};
use upkeep_core::version::Version;

use crate::client::Client;
use crate::error::ClientError;
use crate::files::unix_now;
use crate::ids::check_app_id;
use crate::observer::Observer;
use crate::plugins::{PluginFailure, Role};
use crate::recovery::lock_and_recover_held;

/// An app to register (serialised in the daemon's `register` request).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    /// The app id (stored lower-case).
    pub app: String,
    /// The installed version; `0` when it is not installed yet (the next
    /// update installs the newest release).
    pub version: Version,
    /// The install directory (handed read-write to the installer).
    pub install_dir: PathBuf,
    /// The installer plugin (installer world).
    pub installer: PathBuf,
    /// An existence-checker plugin.
    #[serde(default)]
    pub existence: Option<PathBuf>,
    /// The marker path the existence checker looks for.
    #[serde(default)]
    pub marker: Option<String>,
    /// The update channel (Omaha `ap`).
    #[serde(default)]
    pub channel: Option<String>,
    /// The brand code (Omaha `brand`, e.g. from an installer tag), sent
    /// with every update check of the app.
    #[serde(default)]
    pub brand: Option<String>,
    /// The app's language (Omaha `lang`), sent with every update check.
    #[serde(default)]
    pub lang: Option<String>,
    /// The install data index asked for on the first install.
    #[serde(default)]
    pub install_data_index: Option<String>,
    /// A post-install check (qualifier world) every new version must pass.
    #[serde(default)]
    pub post_install_check: Option<PathBuf>,
    /// Settings for the app's existence checker and post-install check.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The app's commands: name → command line (an absolute program, then
    /// arguments with `%1`..`%9` placeholders), run by `upkeep app-command`.
    #[serde(default)]
    pub commands: BTreeMap<String, String>,
    /// A health check (qualifier world) every new version must pass once
    /// live, or the app is switched back.
    #[serde(default)]
    pub health_check: Option<PathBuf>,
    /// Instead: one of `commands` as the health check (exit 0: healthy).
    #[serde(default)]
    pub health_check_command: Option<String>,
    /// The health check's time limit in seconds (default 60, at most 3600).
    #[serde(default)]
    pub health_timeout_seconds: Option<u64>,
}

impl Registration {
    /// A registration of `app` at `version` in `install_dir`, installed by
    /// `installer`, with nothing else.
    pub fn new(
        app: impl Into<String>,
        version: Version,
        install_dir: impl Into<PathBuf>,
        installer: impl Into<PathBuf>,
    ) -> Self {
        Self {
            app: app.into(),
            version,
            install_dir: install_dir.into(),
            installer: installer.into(),
            existence: None,
            marker: None,
            channel: None,
            brand: None,
            lang: None,
            install_data_index: None,
            post_install_check: None,
            settings: BTreeMap::new(),
            commands: BTreeMap::new(),
            health_check: None,
            health_check_command: None,
            health_timeout_seconds: None,
        }
    }
}

/// What a registration did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The app id as stored.
    pub app: String,
    /// The version registered.
    pub version: Version,
    /// The app was registered before (now replaced).
    pub replaced: bool,
}

fn valid_text(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(char::is_control)
}

impl Client {
    /// Registers (or re-registers) an app. Every plugin is loaded and
    /// hashed now; a later call refuses a component that changed.
    pub fn register(
        &self,
        registration: Registration,
        observer: &mut dyn Observer,
    ) -> Result<Registered, ClientError> {
        let (id, mut record) = self.record_of(registration)?;
        let config = self.config_if_present()?;
        let (_lock, mut prefs) = lock_and_recover_held(&self.root, config, observer)?;
        let previous = prefs.apps.get(&id).cloned();
        let version = record.version.clone();
        if let Some(p) = &previous {
            record.cohort = p.cohort.clone();
            record.days = p.days.clone();
            record.registered_at = p.registered_at;
            record.updated_at = p.updated_at;
            // The kept version stays usable only while the registration
            // names the same installed version.
            if p.version == version {
                record.previous_version = p.previous_version.clone();
            }
            record.rejected = p.rejected.clone();
            // The installed release's commands stay with it.
            if p.version == version {
                record.release_commands = p.release_commands.clone();
            }
        }
        prefs.apps.insert(id.clone(), record);
        prefs.save(&self.root.join(PREFS_FILE))?;
        Ok(Registered {
            app: id,
            version,
            replaced: previous.is_some(),
        })
    }

    /// The app id and record a registration makes, every field checked
    /// and every plugin loaded and hashed; nothing is stored.
    pub(crate) fn record_of(
        &self,
        registration: Registration,
    ) -> Result<(String, AppRecord), ClientError> {
        let id = check_app_id(&registration.app)?;
        let install_dir = std::path::absolute(&registration.install_dir)
            .map_err(ClientError::io("cannot resolve", &registration.install_dir))?;
        if install_dir.exists() && !install_dir.is_dir() {
            return Err(ClientError::InstallDirNotADirectory { path: install_dir });
        }
        if let Some(index) = &registration.install_data_index
            && !valid_text(index)
        {
            return Err(ClientError::BadInstallDataIndex {
                index: index.clone(),
            });
        }
        for (field, value) in [("brand", &registration.brand), ("lang", &registration.lang)] {
            if let Some(value) = value
                && !valid_text(value)
            {
                return Err(ClientError::BadAppAttribute {
                    field,
                    value: value.clone(),
                });
            }
        }
        if let Some(key) = registration
            .settings
            .keys()
            .find(|k| !valid_text(k) || k.contains('='))
        {
            return Err(ClientError::BadSetting { key: key.clone() });
        }
        let mut commands = BTreeMap::new();
        for (name, line) in &registration.commands {
            if !valid_text(name) || name.contains('=') {
                return Err(ClientError::BadAppCommandName { name: name.clone() });
            }
            let command = AppCommand::parse(line).map_err(|source| ClientError::BadAppCommand {
                name: name.clone(),
                source,
            })?;
            commands.insert(name.clone(), command);
        }
        let plugins = self.plugins.as_ref();
        let installer = plugins.identify(&registration.installer, Role::Installer)?;
        let existence = registration
            .existence
            .as_deref()
            .map(|p| plugins.identify(p, Role::ExistenceChecker))
            .transpose()?;
        let post_install_check = registration
            .post_install_check
            .as_deref()
            .map(|p| plugins.identify(p, Role::PostInstallCheck))
            .transpose()?;
        let health_check = health_gate(&registration, &commands, |p| {
            plugins.identify(p, Role::HealthCheck)
        })?;
        let mut record = AppRecord::new(registration.version, install_dir, unix_now());
        record.health_check = health_check;
        record.installer = Some(installer);
        record.post_install_check = post_install_check;
        record.existence = existence;
        record.marker = registration.marker;
        record.channel = registration.channel;
        record.brand = registration.brand;
        record.lang = registration.lang;
        record.install_data_index = registration.install_data_index;
        record.settings = registration.settings;
        record.commands = commands;
        Ok((id, record))
    }

    /// Marks `app` as used since its last active report (Omaha's
    /// "actives"): the next update check's ping carries `active`, `a` and
    /// `ad`, and the mark is cleared once the server has answered it. An
    /// app (or the agent embedding upkeep) calls this when the user uses
    /// it; marking twice is the same as once. Returns whether the mark was
    /// new.
    pub fn mark_active(&self, app: &str, observer: &mut dyn Observer) -> Result<bool, ClientError> {
        let config = self.config_if_present()?;
        let (_lock, mut prefs) = lock_and_recover_held(&self.root, config, observer)?;
        let id = app.to_ascii_lowercase();
        let Some(record) = prefs.apps.get_mut(&id) else {
            return Err(ClientError::NotRegistered {
                app: app.to_owned(),
                root: self.root.clone(),
            });
        };
        if record.days.active_since {
            return Ok(false);
        }
        record.days.active_since = true;
        prefs.save(&self.root.join(PREFS_FILE))?;
        Ok(true)
    }
}

/// The registration's health check: a plugin or one of its commands (not
/// both), with its time limit.
fn health_gate(
    registration: &Registration,
    commands: &BTreeMap<String, AppCommand>,
    identify: impl FnOnce(&std::path::Path) -> Result<PluginRef, PluginFailure>,
) -> Result<Option<HealthGate>, ClientError> {
    let timeout_secs = match registration.health_timeout_seconds {
        None => health::DEFAULT_TIMEOUT_SECS,
        Some(s) if (1..=health::MAX_TIMEOUT_SECS).contains(&s) => s,
        Some(s) => return Err(ClientError::BadHealthTimeout { seconds: s }),
    };
    let check = match (
        &registration.health_check,
        &registration.health_check_command,
    ) {
        (Some(_), Some(_)) => return Err(ClientError::TwoHealthChecks),
        (Some(plugin), None) => HealthCheck::Plugin {
            plugin: identify(plugin)?,
        },
        (None, Some(name)) if commands.contains_key(name) => {
            HealthCheck::Command { name: name.clone() }
        }
        (None, Some(name)) => {
            return Err(ClientError::UnknownHealthCommand {
                name: name.clone(),
                known: commands.keys().cloned().collect(),
            });
        }
        (None, None) if registration.health_timeout_seconds.is_some() => {
            return Err(ClientError::BadHealthTimeout {
                seconds: timeout_secs,
            });
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(HealthGate {
        check,
        timeout_secs,
    }))
}

//! The service registration of the active updater version, through the
//! native shim named in `[updater] shim` (see `docs/shims.md`). Without a
//! shim there is nothing to register and every call succeeds.
//!
//! The service and the wake timer run the active version's own binary, so
//! activation points them at the new version and deactivation never has
//! to: the wake timer `<root>/versions/<v>/upkeep wake --root <root>`, the
//! service that version's daemon (`… daemon --root <root>`, which the
//! systemd shim starts through a socket unit on `versions/<v>/ipc.sock`;
//! docs/service.md). A single binary's service is a wake too: it has no
//! daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use upkeep_core::lifecycle;
use upkeep_core::version::Version;
use upkeep_shim_abi::{Shim, ShimConfig};

use crate::config::Config;
use crate::error::ClientError;
use crate::policy::{LoadedPolicy, check_period, default_policy_path};

/// The service registration (possibly none).
pub struct Service {
    shim: Option<Shim>,
    interval: Duration,
    /// `--config` for the service's command line, when the configuration
    /// is not the state root's default `config.toml`.
    config_arg: Option<PathBuf>,
}

impl Service {
    /// Loads the shim `config` names, if any.
    pub fn from_config(root: &Path, config: Option<&Config>) -> Result<Self, ClientError> {
        // The timer wakes upkeep hourly (or more often when checks are
        // more frequent, by the scope's policy file or the configuration);
        // each wake checks for updates only when due.
        let hourly = Duration::from_secs(3600);
        let policy = LoadedPolicy::load(&default_policy_path(root));
        let period = check_period(policy.policy(), config).value;
        let interval = if period.is_zero() {
            hourly
        } else {
            period.min(hourly)
        };
        let config_arg = config
            .map(|c| c.path.clone())
            .filter(|p| *p != root.join("config.toml"));
        let none = || Self {
            shim: None,
            interval,
            config_arg: None,
        };
        let Some(updater) = config.and_then(|c| c.updater.as_ref()) else {
            return Ok(none());
        };
        let Some(path) = &updater.shim else {
            return Ok(none());
        };
        let mut shim_config = ShimConfig::new();
        for (k, v) in &updater.shim_config {
            shim_config
                .set(k.clone(), v.clone())
                .map_err(|source| ClientError::ShimConfig {
                    key: k.clone(),
                    source,
                })?;
        }
        let shim = Shim::load(path, &shim_config).map_err(|source| ClientError::Shim {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            shim: Some(shim),
            interval,
            config_arg,
        })
    }

    /// Points the service and the wake timer at updater version `to`: both
    /// are (re)registered, each unit file replaced atomically, so the call
    /// is the same on a first activation and on a swap, and a resumed
    /// activation can simply call it again.
    pub fn swap(&self, root: &Path, to: &Version) -> Result<(), String> {
        self.register(root, &lifecycle::binary_path(root, to), true)
    }

    /// Registers the wake timer to run `exe wake --root <root>` and the
    /// service to run `exe daemon --root <root>` (`daemon`: an updater
    /// version's binary) or the same wake (a single binary).
    pub fn register(&self, root: &Path, exe: &Path, daemon: bool) -> Result<(), String> {
        let Some(shim) = &self.shim else {
            return Ok(());
        };
        let args = |verb: &str| {
            let mut args = vec![
                verb.to_owned(),
                "--root".to_owned(),
                root.display().to_string(),
            ];
            if let Some(config) = &self.config_arg {
                args.push("--config".to_owned());
                args.push(config.display().to_string());
            }
            args
        };
        let service = if daemon { args("daemon") } else { args("wake") };
        shim.register_service(exe, &service)
            .map_err(|e| e.to_string())?;
        shim.register_wake(self.interval, exe, &args("wake"))
            .map_err(|e| e.to_string())
    }

    /// Removes the service and the wake timer (nothing registered is fine).
    pub fn unregister(&self) -> Result<(), String> {
        let Some(shim) = &self.shim else {
            return Ok(());
        };
        shim.unregister_wake().map_err(|e| e.to_string())?;
        shim.unregister_service().map_err(|e| e.to_string())
    }

    /// What the shim says is registered.
    pub fn describe(&self) -> Option<String> {
        let shim = self.shim.as_ref()?;
        Some(shim.describe().unwrap_or_else(|e| e.to_string()))
    }
}

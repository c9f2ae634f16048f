//! Removing upkeep from a state root (service, versions, state, leaving
//! only its log), crash-safe through the `uninstalling` flag in the prefs.

use std::path::{Path, PathBuf};

use upkeep_core::appdir;
use upkeep_core::crash;
use upkeep_core::lifecycle;
use upkeep_core::state::{LOCK_FILE, PREFS_FILE, Prefs};

use crate::config::Config;
use crate::error::ClientError;
use crate::observer::{Notice, Observer};
use crate::service::Service;
use crate::statelog::log;

/// The entries of the state root an uninstall removes, in order: the
/// versions and caches first, the prefs last, so a crash part way leaves
/// prefs that say an uninstall is in progress.
const REMOVED_IN_ORDER: &[&str] = &[
    appdir::CURRENT,
    appdir::VERSIONS,
    "downloads",
    "plugin-cache",
    "tuf",
    "config.toml",
];

fn remove(path: &Path) -> Result<(), ClientError> {
    let result = match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    result.map_err(ClientError::io("cannot remove", path))
}

/// Uninstalls upkeep from `root` (the caller holds the lock): flags the
/// prefs `uninstalling`, removes the service registration, then every
/// entry but the log, the lock file while held, the prefs last.
pub(crate) fn uninstall_locked(
    root: &Path,
    config: Option<&Config>,
    prefs: &mut Prefs,
    observer: &mut dyn Observer,
) -> Result<(), ClientError> {
    let prefs_path = root.join(PREFS_FILE);
    if !prefs.uninstalling {
        let mut next = prefs.clone();
        next.uninstalling = true;
        next.save(&prefs_path)?;
        *prefs = next;
        log(root, "uninstalling");
    }
    crash::point("uninstall.flagged");
    let shim = Service::from_config(root, config)?;
    shim.unregister().map_err(|reason| ClientError::Service {
        what: "remove",
        reason,
    })?;
    crash::point("uninstall.service-removed");
    for name in REMOVED_IN_ORDER {
        remove(&root.join(name))?;
        crash::point("uninstall.removed");
    }
    let leftovers: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(ClientError::io("cannot read", root))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name != lifecycle::LOG_FILE && name != PREFS_FILE && name != LOCK_FILE
        })
        .collect();
    for path in leftovers {
        remove(&path)?;
    }
    // The lock file goes while held (a process waiting on it notices and
    // takes a fresh one); the prefs, still saying `uninstalling`, go last.
    let lock = root.join(LOCK_FILE);
    match std::fs::remove_file(&lock) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ClientError::io("cannot remove", &lock)(e)),
    }
    crash::point("uninstall.lock-removed");
    log(root, "uninstalled; only this log is left");
    std::fs::remove_file(&prefs_path).map_err(ClientError::io("cannot remove", &prefs_path))?;
    crash::point("uninstall.prefs-removed");
    observer.notice(&Notice::Uninstalled {
        root: root.to_path_buf(),
    });
    Ok(())
}

/// What [`Client::uninstall`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UninstallOutcome {
    /// upkeep was removed; only its log is left.
    Uninstalled,
    /// Only a lock file was left from an earlier uninstall; it was removed.
    FinishedEarlier,
}

impl crate::Client {
    /// Removes upkeep from the state root: the service registration, every
    /// updater version and all state, leaving only the log. Apps stay
    /// installed where they are.
    pub fn uninstall(&self, observer: &mut dyn Observer) -> Result<UninstallOutcome, ClientError> {
        let root = &self.root;
        if !root.join(PREFS_FILE).exists() && !root.join(appdir::VERSIONS).exists() {
            // Only a lock file left (a command ran on an uninstalled root).
            let lock = root.join(LOCK_FILE);
            if lock.exists() {
                std::fs::remove_file(&lock).map_err(ClientError::io("cannot remove", &lock))?;
                return Ok(UninstallOutcome::FinishedEarlier);
            }
            return Err(ClientError::NotInstalled { root: root.clone() });
        }
        let config = self.config().ok();
        let _lock = crate::recovery::lock_state(root)?;
        let prefs_path = root.join(PREFS_FILE);
        let mut prefs = Prefs::load(&prefs_path)?;
        // Apps stay installed: a switch in flight is settled first. An
        // interrupted activation is not resumed: upkeep is going away.
        lifecycle::recover_switch(&prefs_path, &mut prefs, crate::files::unix_now())?;
        uninstall_locked(root, config, &mut prefs, observer)?;
        Ok(UninstallOutcome::Uninstalled)
    }
}

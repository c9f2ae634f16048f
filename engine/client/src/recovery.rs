//! Taking the state lock and settling what a dead process left.
//!
//! Every operation that takes the lock first calls [`recover`]: an
//! uninstall, an activation (the `swapping` bit), an app switch or a
//! health check a dead process left half done is finished or undone
//! before anything else.

use std::path::Path;
use std::time::Duration;

use upkeep_core::lifecycle::{self, Recovery};
use upkeep_core::state::{PREFS_FILE, Prefs, StateLock};

use crate::config::Config;
use crate::error::ClientError;
use crate::files::unix_now;
use crate::observer::{Notice, Observer, Settled};
use crate::scope::is_system;
use crate::service::Service;
use crate::statelog::log;
use crate::uninstall::uninstall_locked;

/// How long an operation waits for another process's lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// What [`recover`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// The state is settled; go on.
    Ready,
    /// An interrupted uninstall was finished: the state root is empty.
    Uninstalled,
}

/// Takes the state lock of `root`.
pub fn lock_state(root: &Path) -> Result<StateLock, ClientError> {
    StateLock::acquire(root, LOCK_TIMEOUT).map_err(|source| ClientError::Lock {
        root: root.to_path_buf(),
        system: is_system(root),
        source,
    })
}

/// Takes the lock, loads the prefs and settles what a dead process left
/// ([`recover`]). After a finished uninstall no lock is held (its file went
/// with the rest; a caller that goes on takes it afresh) and the prefs are
/// empty.
pub fn lock_and_recover(
    root: &Path,
    config: Option<&Config>,
    observer: &mut dyn Observer,
) -> Result<(Option<StateLock>, Prefs, Recovered), ClientError> {
    let lock = lock_state(root)?;
    let mut prefs = Prefs::load(&root.join(PREFS_FILE))?;
    let recovered = recover(root, config, &mut prefs, observer)?;
    if recovered == Recovered::Uninstalled {
        drop(lock);
        return Ok((None, Prefs::default(), recovered));
    }
    Ok((Some(lock), prefs, recovered))
}

/// [`lock_and_recover`] for an operation that goes on after a finished
/// uninstall: the lock is always held.
pub fn lock_and_recover_held(
    root: &Path,
    config: Option<&Config>,
    observer: &mut dyn Observer,
) -> Result<(StateLock, Prefs), ClientError> {
    match lock_and_recover(root, config, observer)? {
        (Some(lock), prefs, _) => Ok((lock, prefs)),
        (None, prefs, _) => Ok((lock_state(root)?, prefs)),
    }
}

/// Finishes or undoes what a dead process left: an uninstall in progress,
/// an activation (the `swapping` bit), a journalled app switch. The caller
/// holds the lock. Without the configuration (it names the service shim)
/// an interrupted uninstall or activation is not touched: that is an
/// error asking for `upkeep uninstall` or `upkeep wake`.
pub fn recover(
    root: &Path,
    config: Option<&Config>,
    prefs: &mut Prefs,
    observer: &mut dyn Observer,
) -> Result<Recovered, ClientError> {
    if prefs.uninstalling {
        if config.is_none() {
            return Err(ClientError::UninstallPending {
                root: root.to_path_buf(),
            });
        }
        observer.notice(&Notice::FinishingUninstall);
        uninstall_locked(root, config, prefs, observer)?;
        return Ok(Recovered::Uninstalled);
    }
    if prefs.swapping.is_some() && config.is_none() {
        return Err(ClientError::ActivationPending {
            root: root.to_path_buf(),
        });
    }
    if let Some(swapping) = prefs.swapping.clone() {
        observer.notice(&Notice::ResumingActivation {
            to: swapping.to.clone(),
            from: swapping.from.clone(),
        });
        let shim = Service::from_config(root, config)?;
        lifecycle::resume_activation(root, prefs, &mut |v| shim.swap(root, v))
            .map_err(ClientError::Resume)?;
        let active = prefs
            .active_version
            .as_ref()
            .map_or("none".to_owned(), ToString::to_string);
        log(
            root,
            &format!(
                "resumed the activation of {}: active is {active}",
                swapping.to
            ),
        );
    }
    if let Some(recovery) = lifecycle::recover_switch(&root.join(PREFS_FILE), prefs, unix_now())? {
        let (p, how) = match recovery {
            Recovery::Completed(p) => (p, Settled::Completed),
            Recovery::RolledBack(p) => (p, Settled::Undone),
        };
        let word = match how {
            Settled::Completed => "completed",
            Settled::Undone => "undone",
        };
        log(
            root,
            &format!("{}: {word} the switch {} -> {}", p.app, p.from, p.to),
        );
        observer.notice(&Notice::SwitchSettled {
            app: p.app,
            from: p.from,
            to: p.to,
            how,
        });
    }
    // A health check a dead process owed counts as failed.
    for (id, failed, back_to) in
        crate::health::recover_unfinished(&root.join(PREFS_FILE), prefs, observer)?
    {
        log(
            root,
            &format!(
                "{id}: the health check of {failed} was left unfinished; switched back to {back_to}"
            ),
        );
    }
    if prefs.pending.is_none() {
        let exe = std::env::current_exe().ok();
        lifecycle::sweep_leftovers(root, exe.as_deref().and_then(Path::parent));
    }
    Ok(Recovered::Ready)
}

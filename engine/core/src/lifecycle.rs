//! The updater's own lifecycle and the journal of every switch.
//!
//! An updater version lives side by side with the others in
//! `<root>/versions/<version>/` (its binary `upkeep` and its local prefs
//! `prefs.json`); `<root>/current` points at the active one. A version is
//! **Unqualified** when installed, **Qualified** once its qualification run
//! passed (recorded in its local prefs), and **Active** when the global
//! prefs name it (`active_version`): Active is unique by construction.
//!
//! Every change that spans more than one file is journalled in the global
//! prefs before it starts and cleared in the write that completes it, so a
//! process that dies at any step leaves enough on disk for the next one to
//! finish the change or undo it:
//!
//! - an activation sets the `swapping` bit ([`Swapping`]) and flushes it,
//!   swaps `current`, the `ipc.sock` link and the service, then records the new active version
//!   and clears the bit in one write ([`activate`], [`resume_activation`]);
//! - an app switch writes a [`PendingSwitch`], renames `current`, then
//!   records the version and clears the journal in one write
//!   ([`switch_app`]); [`recover_switch`] reads which side of the rename the
//!   link is on and completes or abandons it.
//!
//! See `docs/lifecycle.md`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::appdir;
use crate::crash;
use crate::durable::sync_dir;
use crate::outbox::OutboxEntry;
use crate::state::{
    AppRecord, PREFS_FILE, PendingSwitch, Prefs, Qualification, StagedBinary, StateError, Swapping,
    SwitchKind,
};
use crate::version::Version;

/// The updater binary's name in a version directory.
pub const BINARY: &str = "upkeep";
/// The log the updater keeps in its state root (the one file an uninstall
/// leaves behind).
pub const LOG_FILE: &str = "upkeep.log";
/// The name of a daemon's socket in its version directory, and of the
/// stable endpoint in the state root: a symlink to the active version's
/// socket, `<root>/ipc.sock -> versions/<active>/ipc.sock`.
pub const IPC_SOCKET: &str = "ipc.sock";
/// The file name of a version's UpdateServiceInternal socket.
pub const INTERNAL_SOCKET: &str = "internal.sock";

/// Why a lifecycle step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// The prefs could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A file or link could not be changed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The service could not be swapped.
    #[error("cannot swap the service to {to}: {reason}")]
    Service {
        /// The version being activated.
        to: Version,
        /// What the shim said.
        reason: String,
    },
    /// The version to activate is not installed.
    #[error("cannot activate {version}: {} does not exist", binary.display())]
    NotInstalled {
        /// The version.
        version: Version,
        /// Its binary, which is missing.
        binary: PathBuf,
    },
    /// Another activation is in progress (the swapping bit is set).
    #[error("an activation of {to} is already in progress")]
    ActivationInProgress {
        /// The version being activated.
        to: Version,
    },
    /// The version to remove is active or being activated.
    #[error("{version} is active or being activated; it is not removed")]
    StillActive {
        /// The version.
        version: Version,
    },
    /// The app to switch is not registered.
    #[error("{app} is not registered")]
    NotRegistered {
        /// The app id.
        app: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> LifecycleError {
    let what = what.into();
    move |source| LifecycleError::Io { what, source }
}

/// Where an updater binary is installed: `<root>/versions/<version>/upkeep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The state root it belongs to.
    pub root: PathBuf,
    /// The version it was installed as.
    pub version: Version,
}

/// The installation `exe` belongs to, when it sits at
/// `<root>/versions/<version>/upkeep`.
pub fn installed_at(exe: &Path) -> Option<Installed> {
    if exe.file_name()? != BINARY {
        return None;
    }
    let version_dir = exe.parent()?;
    let version: Version = version_dir.file_name()?.to_str()?.parse().ok()?;
    let versions = version_dir.parent()?;
    if versions.file_name()? != appdir::VERSIONS {
        return None;
    }
    Some(Installed {
        root: versions.parent()?.to_path_buf(),
        version,
    })
}

/// The global prefs file of a state root.
pub fn prefs_path(root: &Path) -> PathBuf {
    root.join(PREFS_FILE)
}

/// The local prefs of updater version `version`.
pub fn local_prefs_path(root: &Path, version: &Version) -> PathBuf {
    appdir::version_dir(root, version).join(PREFS_FILE)
}

/// The binary of updater version `version`.
pub fn binary_path(root: &Path, version: &Version) -> PathBuf {
    appdir::version_dir(root, version).join(BINARY)
}

/// The socket the daemon of updater version `version` listens on.
pub fn ipc_socket_path(root: &Path, version: &Version) -> PathBuf {
    appdir::version_dir(root, version).join(IPC_SOCKET)
}

/// The socket of updater version `version`'s UpdateServiceInternal: its
/// own lifecycle, for its own binary only.
pub fn internal_socket_path(root: &Path, version: &Version) -> PathBuf {
    appdir::version_dir(root, version).join(INTERNAL_SOCKET)
}

/// The stable endpoint clients connect to: `<root>/ipc.sock`, a symlink
/// to the active version's socket.
pub fn ipc_link_path(root: &Path) -> PathBuf {
    root.join(IPC_SOCKET)
}

/// Points `<root>/ipc.sock` at `versions/<version>/ipc.sock` atomically
/// (whether a daemon listens there or not). Unix only: elsewhere there is
/// no socket and nothing to do.
pub fn switch_ipc_link(root: &Path, version: &Version) -> io::Result<()> {
    #[cfg(unix)]
    {
        let target = Path::new(appdir::VERSIONS)
            .join(version.to_string())
            .join(IPC_SOCKET);
        appdir::switch_link(root, IPC_SOCKET, &target)
    }
    #[cfg(not(unix))]
    {
        let _ = (root, version);
        Ok(())
    }
}

/// The version `<root>/ipc.sock` names, if it is a symlink to
/// `versions/<version>/ipc.sock`.
pub fn ipc_link_version(root: &Path) -> Option<String> {
    let target = fs::read_link(ipc_link_path(root)).ok()?;
    let mut parts = target.components();
    let first = parts.next()?.as_os_str().to_str()?;
    let second = parts.next()?.as_os_str().to_str()?;
    let third = parts.next()?.as_os_str().to_str()?;
    (first == appdir::VERSIONS && third == IPC_SOCKET && parts.next().is_none())
        .then(|| second.to_owned())
}

/// Writes the local prefs of a freshly installed updater version:
/// Unqualified, no attempt yet.
pub fn write_unqualified(root: &Path, version: &Version) -> Result<(), StateError> {
    Prefs {
        qualification: Some(Qualification {
            qualified: false,
            attempts: 0,
            last_attempt: None,
            detail: None,
        }),
        ..Prefs::default()
    }
    .save(&local_prefs_path(root, version))
}

/// What an updater version is, given the global prefs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// It is the active version.
    Active,
    /// It is newer than the active version (or none is active): it
    /// qualifies, then activates.
    Candidate {
        /// Its local prefs say it passed qualification.
        qualified: bool,
    },
    /// A newer version is active: it uninstalls itself.
    Outdated {
        /// The active version.
        active: Version,
    },
}

/// The role of installed version `own` in `root`.
pub fn role(root: &Path, prefs: &Prefs, own: &Version) -> Result<Role, LifecycleError> {
    match &prefs.active_version {
        Some(active) if active == own => Ok(Role::Active),
        Some(active) if active > own => Ok(Role::Outdated {
            active: active.clone(),
        }),
        _ => {
            let local = Prefs::load(&local_prefs_path(root, own))?;
            Ok(Role::Candidate {
                qualified: local.qualification.is_some_and(|q| q.qualified),
            })
        }
    }
}

/// Every updater version installed under `root`, oldest first.
pub fn installed_versions(root: &Path) -> Vec<Version> {
    let Ok(entries) = fs::read_dir(root.join(appdir::VERSIONS)) else {
        return Vec::new();
    };
    let mut out: Vec<Version> = entries
        .flatten()
        .filter(|e| e.path().join(BINARY).is_file())
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    out.sort();
    out
}

/// Activates version `to`: sets the `swapping` bit and flushes it, then
/// finishes as [`resume_activation`] does. `swap_service` points the
/// service registration at the new version (a no-op without a shim); it
/// must be idempotent, since a resumed activation calls it again.
pub fn activate(
    root: &Path,
    prefs: &mut Prefs,
    to: &Version,
    now: i64,
    swap_service: &mut dyn FnMut(&Version) -> Result<(), String>,
) -> Result<(), LifecycleError> {
    if !binary_path(root, to).is_file() {
        return Err(LifecycleError::NotInstalled {
            version: to.clone(),
            binary: binary_path(root, to),
        });
    }
    if let Some(s) = &prefs.swapping {
        return Err(LifecycleError::ActivationInProgress { to: s.to.clone() });
    }
    let mut next = prefs.clone();
    next.swapping = Some(Swapping {
        from: prefs.active_version.clone(),
        to: to.clone(),
        since: now,
    });
    next.save(&prefs_path(root))?;
    *prefs = next;
    crash::point("activate.swapping-set");
    resume_activation(root, prefs, swap_service)
}

/// Finishes the activation the `swapping` bit records: points `current`
/// and then `ipc.sock` at the new version, swaps the service, then records
/// the new active version and clears the bit in one write. When the new
/// version's binary is gone, the activation is undone instead: `current`
/// and `ipc.sock` go back to the version that was active. Does nothing
/// when the bit is clear.
pub fn resume_activation(
    root: &Path,
    prefs: &mut Prefs,
    swap_service: &mut dyn FnMut(&Version) -> Result<(), String>,
) -> Result<(), LifecycleError> {
    let Some(swapping) = prefs.swapping.clone() else {
        return Ok(());
    };
    let to = &swapping.to;
    if !binary_path(root, to).is_file() {
        // Nothing to activate: go back to the version that was active.
        if let Some(from) = &swapping.from {
            appdir::switch_current(root, from)
                .map_err(io_err(format!("cannot point current back at {from}")))?;
            switch_ipc_link(root, from)
                .map_err(io_err(format!("cannot point {IPC_SOCKET} back at {from}")))?;
            swap_service(from).map_err(|reason| LifecycleError::Service {
                to: from.clone(),
                reason,
            })?;
        }
        let mut next = prefs.clone();
        next.swapping = None;
        next.save(&prefs_path(root))?;
        *prefs = next;
        return Ok(());
    }
    appdir::switch_current(root, to).map_err(io_err(format!("cannot point current at {to}")))?;
    crash::point("activate.current-switched");
    switch_ipc_link(root, to).map_err(io_err(format!("cannot point {IPC_SOCKET} at {to}")))?;
    crash::point("activate.ipc-swapped");
    swap_service(to).map_err(|reason| LifecycleError::Service {
        to: to.clone(),
        reason,
    })?;
    crash::point("activate.service-swapped");
    let mut next = prefs.clone();
    next.active_version = Some(to.clone());
    next.swapping = None;
    for record in next.apps.values_mut().filter(|r| r.updater) {
        record.previous_version = swapping.from.clone();
        record.version = to.clone();
    }
    next.save(&prefs_path(root))?;
    *prefs = next;
    crash::point("activate.recorded");
    Ok(())
}

/// Removes updater version `own` (an outdated one) from `root`: its
/// directory goes first under a temporary name, so a crash never leaves a
/// half-removed version that still looks installed.
pub fn deactivate(root: &Path, prefs: &Prefs, own: &Version) -> Result<(), LifecycleError> {
    if prefs.active_version.as_ref() == Some(own) || prefs.swapping.is_some() {
        return Err(LifecycleError::StillActive {
            version: own.clone(),
        });
    }
    let dir = appdir::version_dir(root, own);
    let doomed = root.join(appdir::VERSIONS).join(format!(".removing-{own}"));
    match fs::rename(&dir, &doomed) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(format!("cannot remove {}", dir.display()))(e)),
    }
    crash::point("deactivate.renamed");
    sync_dir(&root.join(appdir::VERSIONS))
        .map_err(io_err(format!("cannot flush {}", root.display())))?;
    fs::remove_dir_all(&doomed).map_err(io_err(format!("cannot remove {}", doomed.display())))?;
    Ok(())
}

/// The prefixes of the temporary files a binary copy leaves when the
/// process dies before renaming it into place.
pub const STAGING_PREFIXES: [&str; 2] = [".upkeep.new-", ".upkeep.tmp-"];

/// Removes what interrupted work left: temporary files of atomic writes
/// (`.prefs.json.tmp-*`) and link switches (`current.tmp-*`,
/// `ipc.sock.tmp-*`) in the root,
/// `versions/.removing-*` of deactivations, and staged binary copies in
/// each version directory and in `exe_dir` (the running binary's folder). Call under the lock, after
/// the journal is settled (a journalled binary replacement names its
/// staged copy).
pub fn sweep_leftovers(root: &Path, exe_dir: Option<&Path>) {
    let is_temp = |name: &str| {
        (name.starts_with('.') && name.contains(".tmp-"))
            || name.starts_with(&format!("{}.tmp-", appdir::CURRENT))
            || name.starts_with(&format!("{IPC_SOCKET}.tmp-"))
    };
    // (directory, whether any temporary file goes or only staged binaries)
    let mut dirs: Vec<(PathBuf, bool)> = vec![(root.to_path_buf(), true)];
    dirs.extend(exe_dir.map(|d| (d.to_path_buf(), false)));
    if let Ok(entries) = fs::read_dir(root.join(appdir::VERSIONS)) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".removing-") {
                if let Err(err) = fs::remove_dir_all(e.path()) {
                    tracing::warn!(path = %e.path().display(), error = %err, "cannot remove a deactivated version");
                }
            } else {
                dirs.push((e.path(), true));
            }
        }
    }
    for (dir, any_temp) in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let staged = STAGING_PREFIXES.iter().any(|p| name.starts_with(p));
            if (staged || (any_temp && is_temp(&name)))
                && e.file_type().is_ok_and(|t| !t.is_dir())
                && let Err(err) = fs::remove_file(e.path())
            {
                tracing::warn!(path = %e.path().display(), error = %err, "cannot remove a leftover file");
            }
        }
    }
}

// ------------------------------------------------------------ app switch ----

/// Switches app `id` from its recorded version to `to` through the journal:
/// the [`PendingSwitch`] is saved first, then `current` is renamed, then
/// `record` (the caller's updated record, with `version` set to `to`) is
/// saved with the journal cleared. On an error after the rename, `current`
/// is put back and the journal cleared (best effort; a crash instead leaves
/// the journal for [`recover_switch`]).
pub fn switch_app(
    prefs_path: &Path,
    prefs: &mut Prefs,
    id: &str,
    kind: SwitchKind,
    record: AppRecord,
    events: Vec<OutboxEntry>,
) -> Result<(), LifecycleError> {
    let Some(old) = prefs.apps.get(id).cloned() else {
        return Err(LifecycleError::NotRegistered { app: id.to_owned() });
    };
    let pending = PendingSwitch {
        app: id.to_owned(),
        kind,
        from: old.version.clone(),
        to: record.version.clone(),
        keep: record.previous_version.clone(),
        binary: None,
        events: prefs.outbox.number(events),
        record: Some(Box::new(record.clone())),
    };
    let mut journal = prefs.clone();
    journal.pending = Some(pending);
    journal.save(prefs_path)?;
    *prefs = journal;
    crash::point("switch.journaled");
    let dir = record.install_dir.clone();
    let dir = &dir;
    if let Err(e) = appdir::switch_current(dir, &record.version) {
        abandon(prefs_path, prefs, id);
        return Err(io_err(format!(
            "cannot switch {} to {}",
            dir.join(appdir::CURRENT).display(),
            record.version
        ))(e));
    }
    crash::point("switch.current-renamed");
    let done = completed(prefs, id, record);
    if let Err(e) = done.save(prefs_path) {
        let back = appdir::switch_current(dir, &old.version);
        if back.is_ok() {
            abandon(prefs_path, prefs, id);
        }
        return Err(e.into());
    }
    *prefs = done;
    crash::point("switch.recorded");
    Ok(())
}

/// `prefs` with the journalled switch of `id` recorded as `record`: the
/// journal cleared, its events in the outbox.
fn completed(prefs: &Prefs, id: &str, record: AppRecord) -> Prefs {
    let mut done = prefs.clone();
    if let Some(pending) = done.pending.take() {
        done.outbox.extend(pending.events);
    }
    done.apps.insert(id.to_owned(), record);
    done
}

fn abandon(prefs_path: &Path, prefs: &mut Prefs, id: &str) {
    let mut cleared = prefs.clone();
    cleared.pending = None;
    match cleared.save(prefs_path) {
        Ok(()) => *prefs = cleared,
        Err(e) => tracing::warn!(app = id, error = %e, "cannot clear the switch journal"),
    }
}

/// Journals the replacement of a single-binary updater (`binary.path`) by
/// its staged copy, renames the copy over it, then records `record` and
/// clears the journal.
pub fn replace_binary(
    prefs_path: &Path,
    prefs: &mut Prefs,
    id: &str,
    record: AppRecord,
    binary: StagedBinary,
    events: Vec<OutboxEntry>,
) -> Result<(), LifecycleError> {
    let Some(old) = prefs.apps.get(id).cloned() else {
        return Err(LifecycleError::NotRegistered { app: id.to_owned() });
    };
    let mut journal = prefs.clone();
    journal.pending = Some(PendingSwitch {
        app: id.to_owned(),
        kind: SwitchKind::ReplaceBinary,
        from: old.version.clone(),
        to: record.version.clone(),
        keep: record.previous_version.clone(),
        binary: Some(binary.clone()),
        events: prefs.outbox.number(events),
        record: Some(Box::new(record.clone())),
    });
    journal.save(prefs_path)?;
    *prefs = journal;
    crash::point("replace-binary.journaled");
    if let Err(e) = fs::rename(&binary.staged, &binary.path) {
        let _ = fs::remove_file(&binary.staged);
        abandon(prefs_path, prefs, id);
        return Err(io_err(format!(
            "cannot rename {} over {}",
            binary.staged.display(),
            binary.path.display()
        ))(e));
    }
    if let Some(dir) = binary.path.parent() {
        sync_dir(dir).map_err(io_err(format!("cannot flush {}", dir.display())))?;
    }
    crash::point("replace-binary.renamed");
    let done = completed(prefs, id, record);
    done.save(prefs_path)?;
    *prefs = done;
    crash::point("replace-binary.recorded");
    Ok(())
}

/// How [`recover_switch`] settled a journalled switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The switch had happened: it is now recorded.
    Completed(PendingSwitch),
    /// The switch had not happened: the journal is cleared and what the
    /// new version left is removed.
    RolledBack(PendingSwitch),
}

/// Settles a switch a dead process left in the journal: if `current` (or
/// the binary) is already the new version the switch is recorded, else it
/// is abandoned. Returns `None` when the journal is empty.
pub fn recover_switch(
    prefs_path: &Path,
    prefs: &mut Prefs,
    now: i64,
) -> Result<Option<Recovery>, LifecycleError> {
    let Some(pending) = prefs.pending.clone() else {
        return Ok(None);
    };
    let Some(record) = prefs.apps.get(&pending.app).cloned() else {
        // The app was forgotten meanwhile; nothing to settle.
        let mut cleared = prefs.clone();
        cleared.pending = None;
        cleared.save(prefs_path)?;
        *prefs = cleared;
        return Ok(Some(Recovery::RolledBack(pending)));
    };
    let happened = match (&pending.kind, &pending.binary) {
        (SwitchKind::ReplaceBinary, Some(b)) => {
            file_sha256(&b.path).is_ok_and(|h| h.eq_ignore_ascii_case(&b.sha256))
        }
        _ => {
            appdir::current_version(&record.install_dir).as_deref()
                == Some(pending.to.to_string().as_str())
        }
    };
    let mut next = prefs.clone();
    next.pending = None;
    if happened && let Some(r) = next.apps.get_mut(&pending.app) {
        // The record the switch meant to store (its health mark and failed
        // versions included), else what older journals say.
        if let Some(meant) = &pending.record {
            *r = (**meant).clone();
        }
        r.version = pending.to.clone();
        r.previous_version = pending.keep.clone();
        r.updated_at = Some(now);
        next.outbox.extend(pending.events.clone());
    }
    next.save(prefs_path)?;
    *prefs = next;
    if happened {
        return Ok(Some(Recovery::Completed(pending)));
    }
    match (&pending.kind, &pending.binary) {
        (SwitchKind::Update, _) => {
            if let Err(e) = appdir::discard(&record.install_dir, &pending.to) {
                tracing::warn!(app = %pending.app, error = %e, "cannot remove an abandoned version");
            }
        }
        (SwitchKind::ReplaceBinary, Some(b)) => {
            let _ = fs::remove_file(&b.staged);
        }
        _ => {}
    }
    Ok(Some(Recovery::RolledBack(pending)))
}

/// The hex SHA-256 of a file.
pub fn file_sha256(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    io::copy(&mut fs::File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::PluginRef;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn reported(app: &str) -> OutboxEntry {
        let event = crate::omaha::Event::new(
            crate::omaha::EventType::Update,
            crate::omaha::EventResult::Success,
        );
        OutboxEntry::new(app, v("2.0"), event, "{s}", 1)
    }

    fn app(dir: &Path, version: &str) -> AppRecord {
        let mut record = AppRecord::new(v(version), dir.to_path_buf(), 0);
        record.installer = Some(PluginRef {
            path: "/p.wasm".into(),
            sha256: "00".repeat(32),
        });
        record
    }

    fn install_version(root: &Path, version: &str) {
        let dir = appdir::version_dir(root, &v(version));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(BINARY), version).unwrap();
    }

    #[test]
    fn an_installed_binary_knows_its_root_and_version() {
        let got = installed_at(Path::new("/var/lib/upkeep/versions/1.2.3/upkeep")).unwrap();
        assert_eq!(got.root, Path::new("/var/lib/upkeep"));
        assert_eq!(got.version, v("1.2.3"));
        for other in [
            "/usr/bin/upkeep",
            "/x/versions/1.2/other",
            "/x/elsewhere/1.2/upkeep",
            "/x/versions/notaversion/upkeep",
        ] {
            assert_eq!(installed_at(Path::new(other)), None, "{other}");
        }
    }

    #[test]
    fn roles_follow_the_active_version() {
        let root = tempfile::tempdir().unwrap();
        let mut prefs = Prefs::default();
        assert_eq!(
            role(root.path(), &prefs, &v("1.0")).unwrap(),
            Role::Candidate { qualified: false }
        );
        prefs.active_version = Some(v("2.0"));
        assert_eq!(role(root.path(), &prefs, &v("2.0")).unwrap(), Role::Active);
        assert_eq!(
            role(root.path(), &prefs, &v("1.0")).unwrap(),
            Role::Outdated { active: v("2.0") }
        );
        install_version(root.path(), "3.0");
        let local = Prefs {
            qualification: Some(Qualification {
                qualified: true,
                attempts: 1,
                last_attempt: None,
                detail: None,
            }),
            ..Prefs::default()
        };
        local
            .save(&local_prefs_path(root.path(), &v("3.0")))
            .unwrap();
        assert_eq!(
            role(root.path(), &prefs, &v("3.0")).unwrap(),
            Role::Candidate { qualified: true }
        );
    }

    #[test]
    fn activation_swaps_current_and_the_service_and_clears_the_bit() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        install_version(root, "1.0");
        install_version(root, "2.0");
        let mut prefs = Prefs::default();
        let mut swapped = Vec::new();
        activate(root, &mut prefs, &v("1.0"), 5, &mut |to| {
            swapped.push(to.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(prefs.active_version, Some(v("1.0")));
        activate(root, &mut prefs, &v("2.0"), 6, &mut |to| {
            swapped.push(to.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(swapped, vec![v("1.0"), v("2.0")]);
        assert_eq!(appdir::current_version(root).as_deref(), Some("2.0"));
        #[cfg(unix)]
        assert_eq!(ipc_link_version(root).as_deref(), Some("2.0"));
        let on_disk = Prefs::load(&prefs_path(root)).unwrap();
        assert_eq!(on_disk.active_version, Some(v("2.0")));
        assert_eq!(on_disk.swapping, None);
    }

    #[test]
    fn a_set_bit_is_resumed_and_a_vanished_target_is_undone() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        install_version(root, "1.0");
        install_version(root, "2.0");
        let mut prefs = Prefs::default();
        activate(root, &mut prefs, &v("1.0"), 1, &mut |_| Ok(())).unwrap();
        // A process died right after setting the bit.
        prefs.swapping = Some(Swapping {
            from: Some(v("1.0")),
            to: v("2.0"),
            since: 2,
        });
        resume_activation(root, &mut prefs, &mut |_| Ok(())).unwrap();
        assert_eq!(prefs.active_version, Some(v("2.0")));
        assert_eq!(appdir::current_version(root).as_deref(), Some("2.0"));
        // Now one whose target disappeared: current goes back.
        prefs.swapping = Some(Swapping {
            from: Some(v("2.0")),
            to: v("3.0"),
            since: 3,
        });
        resume_activation(root, &mut prefs, &mut |_| Ok(())).unwrap();
        assert_eq!(prefs.active_version, Some(v("2.0")));
        assert_eq!(prefs.swapping, None);
        assert_eq!(appdir::current_version(root).as_deref(), Some("2.0"));
        #[cfg(unix)]
        assert_eq!(ipc_link_version(root).as_deref(), Some("2.0"));
    }

    #[test]
    fn a_failed_service_swap_keeps_the_bit_for_the_next_process() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        install_version(root, "1.0");
        let mut prefs = Prefs::default();
        let err = activate(root, &mut prefs, &v("1.0"), 1, &mut |_| Err("no".into())).unwrap_err();
        assert!(err.to_string().contains("cannot swap the service"), "{err}");
        let on_disk = Prefs::load(&prefs_path(root)).unwrap();
        assert!(on_disk.swapping.is_some());
        resume_activation(root, &mut prefs, &mut |_| Ok(())).unwrap();
        assert_eq!(prefs.active_version, Some(v("1.0")));
    }

    #[test]
    fn deactivation_removes_only_an_outdated_version() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        install_version(root, "1.0");
        install_version(root, "2.0");
        let prefs = Prefs {
            active_version: Some(v("2.0")),
            ..Prefs::default()
        };
        assert!(deactivate(root, &prefs, &v("2.0")).is_err());
        deactivate(root, &prefs, &v("1.0")).unwrap();
        assert_eq!(installed_versions(root), vec![v("2.0")]);
    }

    #[test]
    fn a_journalled_switch_is_completed_or_rolled_back_from_the_link() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("app");
        let prefs_file = tmp.path().join("prefs.json");
        for ver in ["1.0", "2.0"] {
            fs::create_dir_all(appdir::version_dir(&dir, &v(ver))).unwrap();
        }
        appdir::switch_current(&dir, &v("1.0")).unwrap();
        let mut prefs = Prefs::default();
        prefs.apps.insert("a".into(), app(&dir, "1.0"));
        let journal = PendingSwitch {
            app: "a".into(),
            kind: SwitchKind::Update,
            from: v("1.0"),
            to: v("2.0"),
            keep: Some(v("1.0")),
            binary: None,
            events: prefs.outbox.number(vec![reported("a")]),
            record: None,
        };
        // Died before the rename: rolled back, the new version removed.
        prefs.pending = Some(journal.clone());
        let got = recover_switch(&prefs_file, &mut prefs, 9).unwrap();
        assert!(matches!(got, Some(Recovery::RolledBack(_))));
        assert_eq!(prefs.apps["a"].version, v("1.0"));
        assert!(
            prefs.outbox.entries.is_empty(),
            "an undone switch reports nothing"
        );
        assert!(!appdir::version_dir(&dir, &v("2.0")).exists());
        // Died after the rename: completed.
        fs::create_dir_all(appdir::version_dir(&dir, &v("2.0"))).unwrap();
        appdir::switch_current(&dir, &v("2.0")).unwrap();
        prefs.pending = Some(journal);
        let got = recover_switch(&prefs_file, &mut prefs, 9).unwrap();
        assert!(matches!(got, Some(Recovery::Completed(_))));
        assert_eq!(prefs.apps["a"].version, v("2.0"));
        assert_eq!(prefs.outbox.entries.len(), 1, "a completed switch reports");
        assert_eq!(prefs.apps["a"].previous_version, Some(v("1.0")));
        assert_eq!(Prefs::load(&prefs_file).unwrap(), prefs);
        assert_eq!(recover_switch(&prefs_file, &mut prefs, 9).unwrap(), None);
    }

    #[test]
    fn switch_app_records_and_clears_the_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("app");
        let prefs_file = tmp.path().join("prefs.json");
        fs::create_dir_all(appdir::version_dir(&dir, &v("2.0"))).unwrap();
        let mut prefs = Prefs::default();
        prefs.apps.insert("a".into(), app(&dir, "1.0"));
        let mut record = app(&dir, "2.0");
        record.previous_version = Some(v("1.0"));
        switch_app(
            &prefs_file,
            &mut prefs,
            "a",
            SwitchKind::Update,
            record,
            vec![reported("a")],
        )
        .unwrap();
        assert_eq!(prefs.outbox.entries.len(), 1);
        assert_eq!(prefs.outbox.entries[0].seq, 1);
        let on_disk = Prefs::load(&prefs_file).unwrap();
        assert_eq!(on_disk.pending, None);
        assert_eq!(on_disk.apps["a"].version, v("2.0"));
        assert_eq!(appdir::current_version(&dir).as_deref(), Some("2.0"));
    }
}

//! What is in a state root: the scope, the updater versions and their
//! states, the apps, the lock, anything in flight, the service and the IPC
//! endpoint. Reading it changes nothing and creates nothing.

use std::path::{Path, PathBuf};

use serde::Serialize;
use upkeep_core::lifecycle;
use upkeep_core::state::{PREFS_FILE, Prefs, StateLock};

use crate::client::Client;
use crate::error::ClientError;
use crate::scope::is_system;
use crate::service::Service;

/// An updater version installed in the state root.
#[derive(Debug, Clone, Serialize)]
pub struct VersionStatus {
    /// The version.
    pub version: String,
    /// `active`, `qualified`, `unqualified` or `unreadable`.
    pub state: &'static str,
    /// The last qualification's detail (or why the local prefs are unreadable).
    pub qualification: Option<String>,
}

/// A registered app.
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    /// The app id.
    pub app: String,
    /// The installed version.
    pub version: String,
    /// It is upkeep itself.
    pub updater: bool,
    /// Its install directory.
    pub install_dir: PathBuf,
    /// The version kept for rollback.
    pub previous_version: Option<String>,
}

/// A switch in flight.
#[derive(Debug, Clone, Serialize)]
pub struct PendingStatus {
    /// The app.
    pub app: String,
    /// From.
    pub from: String,
    /// To.
    pub to: String,
}

/// The event outbox.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OutboxStatus {
    /// Events waiting for the server or a telemetry sink.
    pub pending: usize,
    /// Of those, the events the server has not acknowledged.
    pub unacknowledged: usize,
    /// Events the outbox's cap dropped, ever.
    pub dropped: u64,
}

/// The daemon answering on the IPC endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonStatus {
    /// Its version.
    pub version: String,
    /// Its process id.
    pub pid: u32,
}

/// The IPC endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct IpcStatus {
    /// Where `<root>/ipc.sock` points.
    pub link: Option<PathBuf>,
    /// The daemon that answers there, if one does.
    pub daemon: Option<DaemonStatus>,
}

/// Everything `upkeep status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The state root.
    pub root: PathBuf,
    /// `system` or `user`.
    pub scope: &'static str,
    /// `free`, or who holds the lock.
    pub lock: String,
    /// The active updater version.
    pub active_version: Option<String>,
    /// The version an activation in progress switches to.
    pub swapping: Option<String>,
    /// An app switch in flight.
    pub pending_switch: Option<PendingStatus>,
    /// An uninstall of upkeep is in progress.
    pub uninstalling: bool,
    /// When the last update check completed (Unix seconds).
    pub last_check: Option<i64>,
    /// The event outbox.
    pub outbox: OutboxStatus,
    /// The updater versions.
    pub versions: Vec<VersionStatus>,
    /// The apps.
    pub apps: Vec<AppStatus>,
    /// What the service shim says is registered.
    pub service: Option<String>,
    /// The IPC endpoint.
    pub ipc: IpcStatus,
}

fn ipc_status(root: &Path) -> IpcStatus {
    let path = lifecycle::ipc_link_path(root);
    let link = std::fs::read_link(&path).ok();
    #[cfg(unix)]
    let daemon = link
        .as_ref()
        .and_then(|_| crate::ipc::ping(&path).ok())
        .map(|p| DaemonStatus {
            version: p.version,
            pid: p.pid,
        });
    #[cfg(not(unix))]
    let daemon = None;
    IpcStatus { link, daemon }
}

impl Client {
    /// What is in the state root.
    pub fn status(&self) -> Result<Status, ClientError> {
        let root = &self.root;
        if !root.is_dir() {
            return Err(ClientError::EmptyRoot { root: root.clone() });
        }
        let prefs = Prefs::load(&root.join(PREFS_FILE))?;
        let lock = match StateLock::acquire(root, std::time::Duration::ZERO) {
            Ok(_) => "free".to_owned(),
            Err(e) => e.to_string(),
        };
        let mut versions = Vec::new();
        for v in lifecycle::installed_versions(root) {
            let (q, unreadable) = match Prefs::load(&lifecycle::local_prefs_path(root, &v)) {
                Ok(local) => (local.qualification, None),
                Err(e) => (None, Some(e.to_string())),
            };
            let state = if prefs.active_version.as_ref() == Some(&v) {
                "active"
            } else if unreadable.is_some() {
                "unreadable"
            } else if q.as_ref().is_some_and(|q| q.qualified) {
                "qualified"
            } else {
                "unqualified"
            };
            versions.push(VersionStatus {
                version: v.to_string(),
                state,
                qualification: unreadable.or_else(|| q.and_then(|q| q.detail)),
            });
        }
        let apps = prefs
            .apps
            .iter()
            .map(|(id, r)| AppStatus {
                app: id.clone(),
                version: r.version.to_string(),
                updater: r.updater,
                install_dir: r.install_dir.clone(),
                previous_version: r.previous_version.as_ref().map(ToString::to_string),
            })
            .collect();
        let service = self
            .config()
            .ok()
            .and_then(|c| Service::from_config(root, Some(c)).ok())
            .and_then(|s| s.describe());
        Ok(Status {
            root: root.clone(),
            scope: if is_system(root) { "system" } else { "user" },
            lock,
            active_version: prefs.active_version.as_ref().map(ToString::to_string),
            swapping: prefs.swapping.as_ref().map(|s| s.to.to_string()),
            pending_switch: prefs.pending.as_ref().map(|p| PendingStatus {
                app: p.app.clone(),
                from: p.from.to_string(),
                to: p.to.to_string(),
            }),
            uninstalling: prefs.uninstalling,
            last_check: prefs.last_check,
            outbox: OutboxStatus {
                pending: prefs.outbox.entries.len(),
                unacknowledged: prefs.outbox.unacked().count(),
                dropped: prefs.outbox.dropped,
            },
            versions,
            apps,
            service,
            ipc: ipc_status(root),
        })
    }
}

//! The client's state directory: the registered apps and what the client
//! remembers of its last update check (`prefs.json`, written atomically),
//! and the lock that keeps two processes from updating at once
//! (`prefs.lock`).
//!
//! A prefs file that does not parse is an error, never silently replaced:
//! it holds the only record of what is installed.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::durable::write_atomic;
use crate::omaha::{ActivityDays, Cohort};
use crate::outbox::{Outbox, OutboxEntry};
use crate::version::Version;

/// The prefs file's name in the state directory.
pub const PREFS_FILE: &str = "prefs.json";
/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "prefs.lock";
/// The prefs format this client writes and reads.
pub const PREFS_FORMAT: u32 = 1;

/// Why the state could not be read, written or locked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The prefs file exists but is not valid prefs.
    #[error("{} is corrupt ({reason}); it was left as it is: repair or remove it", path.display())]
    Corrupt {
        /// The prefs file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The prefs file was written by a newer client.
    #[error("{} has format {found}; this client reads format {PREFS_FORMAT}", path.display())]
    UnsupportedFormat {
        /// The prefs file.
        path: PathBuf,
        /// The format it declares.
        found: u32,
    },
    /// Another process holds the lock.
    #[error("{} is held by {} (waited {:.1} s)", path.display(), holder_text(*holder), waited.as_secs_f64())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, when it could be read.
        holder: Option<u32>,
        /// How long this process waited.
        waited: Duration,
    },
}

fn holder_text(holder: Option<u32>) -> String {
    match holder {
        Some(pid) => format!("process {pid}"),
        None => "another process".to_owned(),
    }
}

impl StateError {
    fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A plugin an app registration names: where it is and the SHA-256 of its
/// component when it was registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRef {
    /// The component's absolute path.
    pub path: PathBuf,
    /// The hex SHA-256 of the component file.
    pub sha256: String,
}

/// One registered app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// The installed version (`0` before the first install).
    pub version: Version,
    /// The install directory.
    pub install_dir: PathBuf,
    /// The installer plugin; `None` for the updater itself, which the
    /// engine installs (see [`AppRecord::updater`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<PluginRef>,
    /// This app is upkeep itself: the engine installs its releases side by
    /// side (`versions/<v>/upkeep` under the state root) or over the
    /// running binary, and activation (not the install) switches to them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub updater: bool,
    /// A check (qualifier-world plugin) every freshly installed version
    /// must pass before `current` switches to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install_check: Option<PluginRef>,
    /// The existence-checker plugin, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existence: Option<PluginRef>,
    /// The marker path the existence checker looks for, relative to the
    /// install directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    /// The update channel (Omaha `ap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The brand code the app was installed with (Omaha `brand`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// The app's language (Omaha `lang`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// The install data index (Omaha `data name="install" index=...`)
    /// asked for when the app is first installed; the server's text for it
    /// goes to the installer as its installer data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_data_index: Option<String>,
    /// The cohort the server assigned.
    #[serde(default)]
    pub cohort: Cohort,
    /// Install date and counting days.
    #[serde(default)]
    pub days: ActivityDays,
    /// When the app was registered (Unix seconds).
    pub registered_at: i64,
    /// When the installed version was recorded (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    /// The version installed before this one, kept in
    /// `versions/<previous_version>/` for `upkeep rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<Version>,
    /// Settings from the registration, handed to the app's existence
    /// checker and post-install check.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
    /// The app's commands by name (`upkeep app-command`); they go with the
    /// app.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub commands: BTreeMap<String, crate::app_command::AppCommand>,
    /// The commands the installed release brought (its signed metadata's
    /// `commands`, programs inside the live version), replaced with every
    /// update; a registered command of the same name wins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub release_commands: BTreeMap<String, crate::app_command::AppCommand>,
    /// The check a new version must pass once it is live, or it is
    /// switched back (`crate::health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<crate::health::HealthGate>,
    /// The recorded version's health check is owed (written with the
    /// switch to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_pending: Option<crate::health::HealthPending>,
    /// Versions that failed their health check, not installed again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<crate::health::RejectedVersion>,
}

impl AppRecord {
    /// A fresh registration at `version` in `install_dir`, registered at
    /// `now` (Unix seconds), without plugins.
    pub fn new(version: Version, install_dir: PathBuf, now: i64) -> Self {
        Self {
            version,
            install_dir,
            installer: None,
            updater: false,
            post_install_check: None,
            existence: None,
            marker: None,
            channel: None,
            brand: None,
            lang: None,
            install_data_index: None,
            cohort: Cohort::default(),
            days: ActivityDays::default(),
            registered_at: now,
            updated_at: None,
            previous_version: None,
            settings: BTreeMap::new(),
            commands: BTreeMap::new(),
            release_commands: BTreeMap::new(),
            health_check: None,
            health_pending: None,
            rejected: Vec::new(),
        }
    }

    /// The command `name`: the registered one, else the release's.
    pub fn command(&self, name: &str) -> Option<&crate::app_command::AppCommand> {
        self.commands
            .get(name)
            .or_else(|| self.release_commands.get(name))
    }

    /// The names of every command the app has, registered or the release's.
    pub fn command_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .commands
            .keys()
            .chain(self.release_commands.keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The settings as the plugin interface carries them.
    pub fn settings_list(&self) -> Vec<(String, String)> {
        self.settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Everything in `prefs.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prefs {
    /// The file format ([`PREFS_FORMAT`]).
    pub format: u32,
    /// Registered apps by lower-case app id.
    #[serde(default)]
    pub apps: BTreeMap<String, AppRecord>,
    /// When the last update check completed (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_check: Option<i64>,
    /// The spread of the next scheduled check, in thousandths of the check
    /// interval, drawn whenever `last_check` moves
    /// ([`crate::check_schedule`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_spread: Option<i16>,
    /// The server asked not to be contacted before this time (Unix seconds,
    /// from a signed `X-Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_until: Option<i64>,
    /// The active updater version (global prefs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_version: Option<Version>,
    /// The `swapping` bit: set (with what is being swapped) while an
    /// activation changes the non-side-by-side pieces. A process that finds
    /// it set finishes the activation before anything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swapping: Option<Swapping>,
    /// The journal of an app switch in flight: written before `current`
    /// moves, cleared in the same write that records the new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingSwitch>,
    /// Set when the updater began uninstalling itself; the next process
    /// finishes the job.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uninstalling: bool,
    /// Local prefs of an updater version only: its qualification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qualification: Option<Qualification>,
    /// The events waiting for the server and the telemetry sinks.
    #[serde(default, skip_serializing_if = "Outbox::is_empty")]
    pub outbox: Outbox,
}

/// What an activation swaps: the `swapping` bit with its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Swapping {
    /// The version that was active (none on a first activation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Version>,
    /// The version being activated.
    pub to: Version,
    /// When the bit was set (Unix seconds).
    pub since: i64,
}

/// Which kind of switch a [`PendingSwitch`] journals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwitchKind {
    /// A freshly installed version replaces the recorded one.
    Update,
    /// The kept previous version replaces the recorded one.
    Rollback,
    /// A single-binary updater: the staged binary is renamed over the
    /// running one.
    ReplaceBinary,
}

/// An app switch in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSwitch {
    /// The app id.
    pub app: String,
    /// Update, rollback or binary replacement.
    pub kind: SwitchKind,
    /// The recorded version being left.
    pub from: Version,
    /// The version being switched to.
    pub to: Version,
    /// The `previous_version` to record once the switch is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<Version>,
    /// For a binary replacement: the binary and the SHA-256 it has once
    /// the new version is in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<StagedBinary>,
    /// The events the switch reports, numbered: they enter the outbox in
    /// the write that completes the switch, and go with it when it is
    /// undone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<OutboxEntry>,
    /// The app's record as the completing write stores it (its version is
    /// `to`). Journals written before it existed lack it; completing one
    /// of those sets the version, the kept version and the time only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<Box<AppRecord>>,
}

/// The binary a [`SwitchKind::ReplaceBinary`] switch replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedBinary {
    /// The running binary's path.
    pub path: PathBuf,
    /// The staged copy beside it.
    pub staged: PathBuf,
    /// The hex SHA-256 of the new binary.
    pub sha256: String,
}

/// An updater version's qualification state (its local prefs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qualification {
    /// Unqualified until a qualification run passes.
    pub qualified: bool,
    /// How many qualification runs were tried.
    #[serde(default)]
    pub attempts: u32,
    /// When the last one ran (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt: Option<i64>,
    /// Why the last one did not pass, or how it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Default for Prefs {
    fn default() -> Self {
        Self {
            format: PREFS_FORMAT,
            apps: BTreeMap::new(),
            last_check: None,
            check_spread: None,
            retry_after_until: None,
            active_version: None,
            swapping: None,
            pending: None,
            uninstalling: false,
            qualification: None,
            outbox: Outbox::default(),
        }
    }
}

impl Prefs {
    /// Reads `path`; a missing file is empty prefs, an unreadable or
    /// malformed one an error.
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(StateError::io(path, e)),
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let format = value.get("format").and_then(serde_json::Value::as_u64);
        match format {
            Some(f) if f == u64::from(PREFS_FORMAT) => {}
            Some(f) => {
                return Err(StateError::UnsupportedFormat {
                    path: path.to_path_buf(),
                    found: u32::try_from(f).unwrap_or(u32::MAX),
                });
            }
            None => {
                return Err(StateError::Corrupt {
                    path: path.to_path_buf(),
                    reason: "no numeric \"format\" member".to_owned(),
                });
            }
        }
        serde_json::from_value(value).map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Writes `path` atomically (the parent directory is created).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| StateError::io(dir, e))?;
        }
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| StateError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(e),
        })?;
        text.push(b'\n');
        write_atomic(path, &text).map_err(|e| StateError::io(path, e))
    }
}

/// An exclusive lock on a state directory, held until dropped.
///
/// It is an advisory whole-file lock (`flock` on Unix) on `prefs.lock`,
/// released by the system when the holder exits, even by a crash. The
/// holder writes its process id into the file so a waiting process can
/// name it.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    /// Takes the lock on `root/prefs.lock`, waiting at most `timeout`.
    ///
    /// A lock file removed (by an uninstall) while this process waited on
    /// it is opened afresh, so two processes never hold locks on two
    /// different files of the same name.
    pub fn acquire(root: &Path, timeout: Duration) -> Result<Self, StateError> {
        let path = root.join(LOCK_FILE);
        let started = Instant::now();
        let mut file = loop {
            fs::create_dir_all(root).map_err(|e| StateError::io(root, e))?;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| StateError::io(&path, e))?;
            match file.try_lock() {
                Ok(()) => {
                    if same_file(&file, &path) {
                        break file;
                    }
                    // Locked a file that is no longer at `path`: again.
                    continue;
                }
                Err(TryLockError::WouldBlock) => {
                    if started.elapsed() >= timeout {
                        let holder = fs::read_to_string(&path)
                            .ok()
                            .and_then(|t| t.trim().parse().ok());
                        return Err(StateError::Locked {
                            path,
                            holder,
                            waited: started.elapsed(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(TryLockError::Error(e)) => return Err(StateError::io(&path, e)),
            }
        };
        let write_pid = |file: &mut File| -> io::Result<()> {
            file.set_len(0)?;
            let mut f: &File = file;
            io::Seek::seek(&mut f, io::SeekFrom::Start(0))?;
            writeln!(f, "{}", std::process::id())?;
            f.flush()
        };
        write_pid(&mut file).map_err(|e| StateError::io(&path, e))?;
        Ok(Self { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether the open `file` is the one at `path` now.
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AppRecord {
        AppRecord {
            version: "1.2".parse().unwrap(),
            install_dir: "/opt/app".into(),
            installer: Some(PluginRef {
                path: "/p/install-archive.wasm".into(),
                sha256: "ab".repeat(32),
            }),
            updater: false,
            post_install_check: None,
            existence: None,
            marker: None,
            channel: Some("beta".into()),
            brand: Some("GGLS".into()),
            lang: None,
            install_data_index: None,
            cohort: Cohort::default(),
            days: ActivityDays::default(),
            registered_at: 1_700_000_000,
            updated_at: None,
            previous_version: Some("1.1".parse().unwrap()),
            settings: BTreeMap::new(),
            commands: BTreeMap::from([(
                "repair".to_owned(),
                crate::app_command::AppCommand::parse("/opt/app/repair --level=%1").unwrap(),
            )]),
            release_commands: BTreeMap::new(),
            health_check: None,
            health_pending: None,
            rejected: Vec::new(),
        }
    }

    #[test]
    fn prefs_round_trip_and_missing_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/prefs.json");
        assert_eq!(Prefs::load(&path).unwrap(), Prefs::default());
        let mut prefs = Prefs::default();
        prefs.apps.insert("org.example.app".into(), record());
        prefs.last_check = Some(1_700_000_100);
        prefs.save(&path).unwrap();
        assert_eq!(Prefs::load(&path).unwrap(), prefs);
    }

    #[test]
    fn corrupt_prefs_are_an_error_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prefs.json");
        for (text, want_format) in [
            (&b"{\"format\": 1, \"apps\": {\"a\": 3}}"[..], false),
            (b"{\"format\": 1, \"apps\"", false),
            (b"[]", false),
            (b"{\"format\": 7}", true),
        ] {
            fs::write(&path, text).unwrap();
            let err = Prefs::load(&path).unwrap_err();
            if want_format {
                assert!(
                    matches!(err, StateError::UnsupportedFormat { found: 7, .. }),
                    "{err}"
                );
            } else {
                assert!(matches!(err, StateError::Corrupt { .. }), "{err}");
                assert!(err.to_string().contains("prefs.json"), "{err}");
            }
            assert_eq!(fs::read(&path).unwrap(), text);
        }
    }

    #[test]
    fn the_lock_is_exclusive_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = StateLock::acquire(dir.path(), Duration::from_secs(1)).unwrap();
        let err = StateLock::acquire(dir.path(), Duration::from_millis(120)).unwrap_err();
        match &err {
            StateError::Locked { holder, waited, .. } => {
                assert_eq!(*holder, Some(std::process::id()));
                assert!(*waited >= Duration::from_millis(120));
            }
            other => panic!("expected Locked, got {other}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("process {}", std::process::id()))
        );
        drop(held);
        StateLock::acquire(dir.path(), Duration::from_millis(100)).unwrap();
    }
}

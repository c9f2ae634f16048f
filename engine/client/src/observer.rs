//! How the engine reports while it works. The library never prints: what a
//! person (or a log, or an IPC client) should hear about reaches an
//! [`Observer`] — bytes of a download, a step starting or done, a state
//! change a dead process left and the engine settled, a warning that does
//! not stop the operation. The final answer of each operation is its
//! return value.
//!
//! Every method has an empty default, so an observer implements only what
//! it shows. [`NullObserver`] shows nothing.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use upkeep_core::version::Version;

/// Receives what the engine reports while it works.
pub trait Observer {
    /// Something happened that a person watching would want to know.
    fn notice(&mut self, notice: &Notice) {
        let _ = notice;
    }

    /// Something went wrong that does not stop the operation.
    fn warning(&mut self, warning: &Warning) {
        let _ = warning;
    }

    /// Bytes of a download arrived (called often: throttle what you draw).
    fn progress(&mut self, progress: &Progress<'_>) {
        let _ = progress;
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullObserver;

impl Observer for NullObserver {}

/// A download in progress.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The app.
    pub app: &'a str,
    /// The package's file name.
    pub file: &'a str,
    /// The URL being read.
    pub url: &'a str,
    /// Bytes staged so far (resumed bytes included).
    pub received: u64,
    /// The signed length.
    pub total: u64,
}

/// A warning: what happened, and the app it concerns (if one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The app, if the warning concerns one.
    pub app: Option<String>,
    /// What happened, for a person.
    pub message: String,
}

impl Warning {
    /// A warning about `app`.
    pub fn app(app: &str, message: impl Into<String>) -> Self {
        Self {
            app: Some(app.to_owned()),
            message: message.into(),
        }
    }

    /// A warning about the operation as a whole.
    pub fn general(message: impl Into<String>) -> Self {
        Self {
            app: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.app {
            Some(app) => write!(f, "{app}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// How a journalled app switch a dead process left was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Settled {
    /// The switch had happened: it was recorded.
    Completed,
    /// It had not: the journal entry was dropped.
    Undone,
}

/// Something the engine did, in the order it did it. Serialised (for the
/// daemon's progress frames) as `{"kind": "<kebab-case name>", "data": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Notice {
    /// A download started from `url`.
    Downloading {
        /// The app.
        app: String,
        /// The URL.
        url: String,
        /// The signed length.
        total: u64,
    },
    /// A package was downloaded and verified.
    Downloaded {
        /// The app.
        app: String,
        /// The package's file name.
        file: String,
        /// Its length.
        bytes: u64,
        /// How long the transfer took.
        took: Duration,
        /// It was already in place from an earlier run, verified.
        reused: bool,
    },
    /// A package of an offline install was copied from the offline folder
    /// and matched the manifest's size and SHA-256.
    OfflinePackageVerified {
        /// The app.
        app: String,
        /// The package's file name.
        file: String,
        /// Its length.
        bytes: u64,
    },
    /// A download failed (the error is in the pass report).
    DownloadFailed {
        /// The app.
        app: String,
        /// The package's file name.
        file: String,
    },
    /// An installer plugin finished with a note.
    InstallerNote {
        /// The app.
        app: String,
        /// The plugin's name.
        plugin: String,
        /// Its note.
        message: String,
    },
    /// An updater version offered is already installed side by side.
    AlreadyStaged(Version),
    /// An uninstall of upkeep a dead process began is being finished.
    FinishingUninstall,
    /// An activation a dead process left is being resumed.
    ResumingActivation {
        /// The version being activated.
        to: Version,
        /// The version active before, if any.
        from: Option<Version>,
    },
    /// A journalled app switch a dead process left was settled.
    SwitchSettled {
        /// The app.
        app: String,
        /// The version switched from.
        from: Version,
        /// The version switched to.
        to: Version,
        /// How.
        how: Settled,
    },
    /// An app's new version is live; its health check runs.
    HealthCheck {
        /// The app.
        app: String,
        /// The new version.
        version: Version,
    },
    /// A health check a dead process left unfinished counted as failed:
    /// the app was switched back (a check that fails in the pass is
    /// reported in the pass report instead).
    HealthFailed {
        /// The app.
        app: String,
        /// The version that failed.
        version: Version,
        /// The version the app is back at.
        back_to: Version,
        /// Why it failed.
        why: String,
    },
    /// An updater version started qualifying.
    Qualifying(Version),
    /// An updater version's qualification ended.
    Qualification {
        /// The version.
        version: Version,
        /// Whether it passed.
        passed: bool,
        /// What the qualifier said.
        detail: String,
    },
    /// An updater version was activated.
    Activated {
        /// The version.
        version: Version,
        /// The version active before, if any.
        was: Option<Version>,
    },
    /// upkeep registered itself as an app (`[updater] app`).
    RegisteredSelf {
        /// Its app id.
        app: String,
    },
    /// The running binary was installed side by side.
    InstalledSideBySide {
        /// The version.
        version: Version,
        /// Its directory.
        dir: PathBuf,
    },
    /// The last app went: upkeep uninstalls itself.
    LastAppGone,
    /// upkeep was uninstalled from a state root.
    Uninstalled {
        /// The state root.
        root: PathBuf,
    },
}

fn or_none(v: Option<&Version>) -> String {
    v.map_or("none".to_owned(), ToString::to_string)
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Downloading { app, url, total } => {
                write!(f, "{app}: downloading {url} ({total} bytes)")
            }
            Notice::Downloaded {
                app,
                file,
                bytes,
                took,
                reused,
            } => {
                if *reused {
                    write!(f, "{app}: {file} already downloaded and verified")
                } else {
                    write!(
                        f,
                        "{app}: downloaded {file} ({bytes} bytes in {:.1} s)",
                        took.as_secs_f64()
                    )
                }
            }
            Notice::OfflinePackageVerified { app, file, bytes } => {
                write!(
                    f,
                    "{app}: {file} copied from the offline folder and verified ({bytes} bytes)"
                )
            }
            Notice::DownloadFailed { app, file } => write!(f, "{app}: download of {file} failed"),
            Notice::InstallerNote {
                app,
                plugin,
                message,
            } => write!(f, "{app}: {plugin}: {message}"),
            Notice::AlreadyStaged(v) => write!(f, "{v} is already installed side by side"),
            Notice::FinishingUninstall => {
                f.write_str("finishing the uninstall an earlier process began")
            }
            Notice::ResumingActivation { to, from } => write!(
                f,
                "resuming the activation of {to} (was {}) an earlier process left",
                or_none(from.as_ref())
            ),
            Notice::SwitchSettled { app, from, to, how } => write!(
                f,
                "{app}: the switch from {from} to {to} an earlier process left was {}",
                match how {
                    Settled::Completed => "completed",
                    Settled::Undone => "undone",
                }
            ),
            Notice::HealthCheck { app, version } => {
                write!(f, "{app}: {version} is live; running its health check")
            }
            Notice::HealthFailed {
                app,
                version,
                back_to,
                why,
            } => write!(
                f,
                "{app}: {version} failed its health check ({why}); switched back to {back_to}"
            ),
            Notice::Qualifying(v) => write!(f, "{v}: qualifying"),
            Notice::Qualification {
                version, detail, ..
            } => write!(f, "{version}: {detail}"),
            Notice::Activated { version, was } => {
                write!(f, "{version}: activated (was {})", or_none(was.as_ref()))
            }
            Notice::RegisteredSelf { app } => write!(f, "registered upkeep itself as {app}"),
            Notice::InstalledSideBySide { version, dir } => {
                write!(f, "installed upkeep {version} in {}", dir.display())
            }
            Notice::LastAppGone => f.write_str("the last app is gone: uninstalling upkeep"),
            Notice::Uninstalled { root } => write!(
                f,
                "upkeep is uninstalled from {}; only {} is left",
                root.display(),
                upkeep_core::lifecycle::LOG_FILE
            ),
        }
    }
}

/// An observer that keeps everything it is told, for tests and for
/// callers that report at the end.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    /// The notices, in order.
    pub notices: Vec<Notice>,
    /// The warnings, in order.
    pub warnings: Vec<Warning>,
    /// How many progress reports arrived.
    pub progress_reports: u64,
}

impl Observer for Recorder {
    fn notice(&mut self, notice: &Notice) {
        self.notices.push(notice.clone());
    }
    fn warning(&mut self, warning: &Warning) {
        self.warnings.push(warning.clone());
    }
    fn progress(&mut self, _progress: &Progress<'_>) {
        self.progress_reports += 1;
    }
}

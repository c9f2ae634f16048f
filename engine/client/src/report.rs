//! What an update pass did, per app: the typed result the library returns
//! (the command line renders it as lines or JSON).

use std::path::PathBuf;
use std::time::Duration;

use upkeep_core::download::DownloadReport;
use upkeep_core::version::Version;

use crate::error::UpdateError;
use crate::policy::PolicyHold;

/// What happened to one app.
#[derive(Debug)]
pub enum AppOutcome {
    /// The existence checker said the app is gone; it was forgotten.
    Removed {
        /// The version it was registered at.
        version: Version,
    },
    /// The server has nothing newer.
    UpToDate {
        /// The installed version.
        version: Version,
    },
    /// The enterprise policy holds the app back: the server was asked with
    /// `updatedisabled` and nothing was applied.
    Held {
        /// The installed version.
        version: Version,
        /// What holds it.
        hold: PolicyHold,
    },
    /// A new version was installed.
    Updated {
        /// The version before (`0`: a first install).
        from: Version,
        /// The version now.
        to: Version,
        /// The downloads, one per package.
        downloads: Vec<DownloadReport>,
        /// Wall time of the installer.
        install_time: Duration,
        /// An updater version installed side by side, not switched to yet.
        staged: bool,
    },
    /// The update failed; nothing of the app was changed.
    Failed {
        /// The installed version, if the app is still registered.
        version: Option<Version>,
        /// The version offered, if any.
        next: Option<Version>,
        /// Why.
        error: UpdateError,
    },
}

/// One app's line of the report.
#[derive(Debug)]
pub struct AppReport {
    /// The app id.
    pub app: String,
    /// What happened.
    pub outcome: AppOutcome,
}

/// What one update pass did.
#[derive(Debug)]
pub struct PassReport {
    /// Per app, in the order the pass took them.
    pub apps: Vec<AppReport>,
    /// The server's `X-Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
    /// The Omaha session id of the pass.
    pub session: String,
    /// Updater versions this pass installed side by side.
    pub staged: Vec<Version>,
    /// The single-binary updater this pass replaced: its path and version.
    /// The caller restarts it (`exec` on Unix).
    pub replaced_binary: Option<(PathBuf, Version)>,
}

impl PassReport {
    /// Whether an app's update failed.
    pub fn failed(&self) -> bool {
        self.apps
            .iter()
            .any(|a| matches!(a.outcome, AppOutcome::Failed { .. }))
    }

    /// The failures of this pass, `app: why` joined with `; `.
    pub fn failure_text(&self) -> String {
        self.apps
            .iter()
            .filter_map(|a| match &a.outcome {
                AppOutcome::Failed { error, .. } => Some(format!("{}: {error}", a.app)),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether the existence checks forgot an app.
    pub fn removed_any(&self) -> bool {
        self.apps
            .iter()
            .any(|a| matches!(a.outcome, AppOutcome::Removed { .. }))
    }

    /// The report of `app`.
    pub fn app(&self, app: &str) -> Option<&AppOutcome> {
        self.apps.iter().find(|a| a.app == app).map(|a| &a.outcome)
    }
}

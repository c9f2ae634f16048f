//! The errors of the client library.
//!
//! - [`UpdateError`]: why one app's update failed. It is part of the pass
//!   report (the other apps go on) and knows the Omaha `(errorcat,
//!   errorcode, extracode1)` its event reports ([`UpdateError::omaha`]).
//! - [`ClientError`]: why an operation as a whole was refused or failed;
//!   nothing it concerns was changed.

use std::path::PathBuf;
use std::sync::Arc;

use upkeep_core::download::DownloadError;
use upkeep_core::lifecycle::LifecycleError;
use upkeep_core::offer::OfferError;
use upkeep_core::omaha::codes::{check, download, install, service};
use upkeep_core::omaha::{AppStatus, ArgsError, ErrorCategory};
use upkeep_core::state::StateError;
use upkeep_core::tuf::TufError;
use upkeep_core::update_check::CheckError;
use upkeep_core::version::Version;

use crate::config::ConfigError;
use crate::ids::InvalidAppId;
use crate::plugins::PluginFailure;
use crate::scope::ScopeError;

/// Why the TUF metadata could not be brought up to date.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TufRefreshError {
    /// The pinned root metadata file cannot be read.
    #[error("cannot read the pinned TUF root {}: {source}", path.display())]
    PinnedRootUnreadable {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The pinned root metadata is not valid.
    #[error("the pinned TUF root {} is refused: {source}", path.display())]
    PinnedRootRefused {
        /// The file.
        path: PathBuf,
        /// Why.
        source: TufError,
    },
    /// The metadata trusted so far cannot be loaded.
    #[error("the trusted TUF metadata in {} is unusable: {source}", dir.display())]
    TrustedUnusable {
        /// The metadata directory.
        dir: PathBuf,
        /// Why.
        source: TufError,
    },
    /// The repository's new metadata is refused.
    #[error("TUF refresh from {url} refused: {source}")]
    Refused {
        /// The metadata URL.
        url: String,
        /// Why.
        source: TufError,
    },
}

/// Why installing a release of upkeep itself failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelfInstallError {
    /// A file could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A copy does not have the signed hash.
    #[error("{} has SHA-256 {got}, the signed release {want}", path.display())]
    CopyMismatch {
        /// The copy.
        path: PathBuf,
        /// Its hash.
        got: String,
        /// The signed hash.
        want: String,
    },
    /// The new version's local prefs could not be written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Why one app's update failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The update check failed (no trustworthy answer).
    #[error("{0}")]
    Check(Arc<CheckError>),
    /// The response has no answer for the app.
    #[error("the response has no answer for it")]
    NoAnswer,
    /// The response's answer for the app is malformed.
    #[error("the server's answer for it is malformed: {0}")]
    MalformedAnswer(String),
    /// The server answered an error status for the app.
    #[error("the server answered {0} for it")]
    AppStatus(AppStatus),
    /// The server's update check answered an error status.
    #[error("the server's update check answered {0}")]
    UpdateCheckStatus(String),
    /// The update check names no version.
    #[error("the update check names no version")]
    NoVersion,
    /// The offered version is not newer than the installed one.
    #[error("the server offers {offered}, which is not newer than the installed {installed}")]
    NotNewer {
        /// What the server offers.
        offered: Version,
        /// What is installed.
        installed: Version,
    },
    /// The offer cannot be used.
    #[error("the offer of {version} is unusable: {source}")]
    BadOffer {
        /// The version offered.
        version: Version,
        /// Why.
        source: OfferError,
    },
    /// The offer's installer arguments cannot be read.
    #[error("the offer's installer arguments are unusable: {0}")]
    BadArguments(ArgsError),
    /// The TUF metadata could not be refreshed.
    #[error("{0}")]
    TufRefresh(Arc<TufRefreshError>),
    /// The signed targets metadata does not list the package.
    #[error("TUF refuses {path}: {source}")]
    TufTarget {
        /// The target path.
        path: String,
        /// Why.
        source: TufError,
    },
    /// The update response and the signed metadata disagree.
    #[error("refused: {0}")]
    Disagreement(OfferError),
    /// The operation was cancelled before it changed the app; a download
    /// begun is kept for a later resume.
    #[error("cancelled; nothing of the app was changed")]
    Cancelled,
    /// A download failed.
    #[error("download of {file} failed: {source}")]
    Download {
        /// The package's file name.
        file: String,
        /// Why.
        source: DownloadError,
    },
    /// A release of upkeep is not exactly one file.
    #[error("an upkeep release must be exactly one file (the binary); {version} has {count}")]
    UpdaterFileCount {
        /// The release.
        version: Version,
        /// Its file count.
        count: usize,
    },
    /// A release of upkeep could not be installed side by side.
    #[error("cannot install upkeep {version} side by side: {source}")]
    SelfInstall {
        /// The release.
        version: Version,
        /// Why.
        source: SelfInstallError,
    },
    /// A single-binary release could not be staged beside the binary.
    #[error("cannot stage upkeep {version} beside {}: {source}", exe.display())]
    SelfStage {
        /// The release.
        version: Version,
        /// The running binary.
        exe: PathBuf,
        /// Why.
        source: SelfInstallError,
    },
    /// The running binary cannot be found (single-binary mode).
    #[error("cannot find the running binary: {0}")]
    NoRunningBinary(std::io::Error),
    /// The app has no installer plugin.
    #[error("{app} has no installer plugin; register it again with --installer")]
    NoInstaller {
        /// The app.
        app: String,
    },
    /// The installer plugin could not be loaded or run.
    #[error("{0}")]
    Installer(PluginFailure),
    /// The installer plugin reported a failure.
    #[error("installer {plugin} failed with code {code}: {message}")]
    InstallerFailed {
        /// The plugin.
        plugin: String,
        /// Its code.
        code: i32,
        /// Its secondary code.
        extra: i32,
        /// Its message.
        message: String,
    },
    /// The post-install check could not be loaded or run.
    #[error("{0}")]
    PostInstallCheck(PluginFailure),
    /// The post-install check refused the new version.
    #[error("post-install check {plugin} refused {version}: {why}")]
    PostInstallRefused {
        /// The plugin.
        plugin: String,
        /// The version.
        version: Version,
        /// What it said.
        why: String,
    },
    /// The new version failed its health check once live; the app is back
    /// at the version before (and the failed one is not installed again).
    #[error("{version} failed its health check ({why}); switched back to {back_to}")]
    Unhealthy {
        /// The version that failed.
        version: Version,
        /// The version the app is back at.
        back_to: Version,
        /// Why it failed.
        why: String,
    },
    /// The install directory could not be made.
    #[error("cannot create the install directory {}: {source}", path.display())]
    InstallDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The version was installed but the switch to it failed.
    #[error("installed {version}, but cannot switch to it: {source}")]
    Switch {
        /// The installed version.
        version: Version,
        /// Why.
        source: LifecycleError,
    },
}

impl UpdateError {
    /// The Omaha `(errorcat, errorcode, extracode1)` reporting this error.
    pub fn omaha(&self) -> (ErrorCategory, i64, i64) {
        use ErrorCategory as C;
        match self {
            UpdateError::Check(e) => (C::UpdateCheck, e.omaha_code(), 0),
            UpdateError::NoAnswer | UpdateError::MalformedAnswer(_) => {
                (C::UpdateCheck, check::APP_MISSING, 0)
            }
            UpdateError::AppStatus(_) | UpdateError::UpdateCheckStatus(_) => {
                (C::UpdateCheck, check::APP_STATUS, 0)
            }
            UpdateError::NotNewer { .. } => (C::UpdateCheck, check::NOT_NEWER, 0),
            UpdateError::NoVersion
            | UpdateError::BadOffer { .. }
            | UpdateError::BadArguments(_) => (C::UpdateCheck, check::BAD_OFFER, 0),
            UpdateError::TufRefresh(_) => (C::Download, download::TUF_REFRESH, 0),
            UpdateError::TufTarget { .. } => (C::Download, download::TUF_TARGET, 0),
            UpdateError::Disagreement(_) => (C::Download, download::DISAGREEMENT, 0),
            UpdateError::Download { source, .. } => (C::Download, source.omaha_code(), 0),
            UpdateError::Cancelled => (C::Service, service::CANCELLED, 0),
            UpdateError::UpdaterFileCount { .. }
            | UpdateError::SelfInstall { .. }
            | UpdateError::SelfStage { .. }
            | UpdateError::NoRunningBinary(_) => (C::Install, install::UPDATER, 0),
            UpdateError::NoInstaller { .. } => (C::Service, service::PLUGIN_LOAD, 0),
            UpdateError::Installer(f) => match f {
                PluginFailure::Call { .. } => (C::Service, service::PLUGIN_CALL, 0),
                _ => (C::Service, service::PLUGIN_LOAD, 0),
            },
            UpdateError::InstallerFailed { code, extra, .. } => {
                (C::Install, i64::from(*code), i64::from(*extra))
            }
            UpdateError::PostInstallCheck(_) | UpdateError::PostInstallRefused { .. } => {
                (C::Install, install::POST_INSTALL_CHECK, 0)
            }
            UpdateError::Unhealthy { .. } => (C::Install, install::HEALTH_CHECK, 0),
            UpdateError::InstallDir { .. } => (C::Service, service::INSTALL_DIR, 0),
            UpdateError::Switch { source, .. } => match source {
                LifecycleError::State(_) => (C::Service, service::PREFS, 0),
                _ => (C::Service, service::SWITCH, 0),
            },
        }
    }
}

/// Why an operation was refused or failed as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No state root could be found.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The operation needs a configuration and there is none.
    #[error("no client configuration at {}; write one (see docs/client.md)", path.display())]
    NoConfig {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The state lock could not be taken.
    #[error("cannot lock the state directory {} ({}){}", root.display(), upkeep_core::state::LOCK_FILE, if *system { " (the system scope belongs to root; without root, use the per-user scope)" } else { "" })]
    Lock {
        /// The state root.
        root: PathBuf,
        /// Whether it is the system scope.
        system: bool,
        /// Why.
        source: StateError,
    },
    /// The prefs could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A lifecycle step failed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// A plugin could not be loaded or run.
    #[error(transparent)]
    Plugin(#[from] PluginFailure),
    /// An app id is not valid.
    #[error(transparent)]
    AppId(#[from] InvalidAppId),
    /// A file or directory could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot create", ...).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot set up HTTP: {0}")]
    Http(String),
    /// No random session id could be drawn.
    #[error("cannot draw a session id: {0}")]
    Random(String),
    /// The app is not registered.
    #[error("app {app} is not registered in {}", root.display())]
    NotRegistered {
        /// The app id as given.
        app: String,
        /// The state root.
        root: PathBuf,
    },
    /// No app is registered at all.
    #[error("no app is registered in {}; register one with `upkeep register`", root.display())]
    NothingRegistered {
        /// The state root.
        root: PathBuf,
    },
    /// The install directory given is a file.
    #[error("--install-dir {} exists and is not a directory", path.display())]
    InstallDirNotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The install data index is empty or has control characters.
    #[error("--install-data-index {index:?}: give 1 to 128 characters without control characters")]
    BadInstallDataIndex {
        /// The index.
        index: String,
    },
    /// A registration's brand or language is empty, too long or has
    /// control characters.
    #[error("{field} {value:?}: 1 to 128 characters without control characters")]
    BadAppAttribute {
        /// `brand` or `lang`.
        field: &'static str,
        /// The value given.
        value: String,
    },
    /// A plugin setting's key is empty or has control characters.
    #[error("setting {key:?}: keys are 1 to 128 characters without control characters or '='")]
    BadSetting {
        /// The key.
        key: String,
    },
    /// The server asked not to be contacted yet.
    #[error(
        "the update server asked not to be contacted for another {seconds} s (X-Retry-After); nothing was sent"
    )]
    RetryAfter {
        /// Seconds left.
        seconds: i64,
    },
    /// An interrupted uninstall of upkeep was finished: nothing is left.
    #[error("an interrupted uninstall of upkeep from {} was finished; nothing is left to update", root.display())]
    Uninstalled {
        /// The state root.
        root: PathBuf,
    },
    /// This updater version is not the active one.
    #[error("upkeep {own} is not the active version in {} ({active} is); run `upkeep wake` (it moves {own} through its lifecycle) or the active version's `update`", root.display())]
    NotActive {
        /// This version.
        own: Version,
        /// The active one.
        active: Version,
        /// The state root.
        root: PathBuf,
    },
    /// upkeep is being uninstalled and the configuration is needed to finish.
    #[error("upkeep is being uninstalled from {}; run `upkeep uninstall` to finish", root.display())]
    UninstallPending {
        /// The state root.
        root: PathBuf,
    },
    /// An activation was interrupted and the configuration is needed.
    #[error("an activation in {} was interrupted and needs the configuration to finish; run `upkeep wake`", root.display())]
    ActivationPending {
        /// The state root.
        root: PathBuf,
    },
    /// The interrupted activation could not be resumed.
    #[error("cannot resume the interrupted activation: {0}")]
    Resume(#[source] LifecycleError),
    /// An updater version could not be activated.
    #[error("cannot activate {version}: {source}")]
    Activate {
        /// The version.
        version: Version,
        /// Why.
        source: LifecycleError,
    },
    /// The service shim could not be loaded or configured.
    #[error("cannot load the service shim {}: {source}", path.display())]
    Shim {
        /// The shim library.
        path: PathBuf,
        /// Why.
        source: upkeep_shim_abi::ShimError,
    },
    /// A shim setting is not valid.
    #[error("[updater] shim_config {key:?}: {source}")]
    ShimConfig {
        /// The key.
        key: String,
        /// Why.
        source: upkeep_shim_abi::ConfigError,
    },
    /// The shim refused a (un)registration.
    #[error("cannot {what} the service registration: {reason}")]
    Service {
        /// "make" or "remove".
        what: &'static str,
        /// What the shim said.
        reason: String,
    },
    /// The app is upkeep itself (rollback, uninstall of an app).
    #[error(
        "{app} is upkeep itself: its versions change by activation, not {operation} (see `upkeep status`)"
    )]
    IsUpdater {
        /// The app id.
        app: String,
        /// The operation refused.
        operation: &'static str,
    },
    /// No previous version is kept.
    #[error(
        "{app} has no previous version to roll back to (it is at {version}; a version is kept only by a successful update, and a rollback uses it up)"
    )]
    NoPreviousVersion {
        /// The app.
        app: String,
        /// Its version.
        version: Version,
    },
    /// `current` does not point at the recorded version.
    #[error("{app}: {} does not point at the recorded version {version}; nothing was changed", link.display())]
    CurrentMismatch {
        /// The app.
        app: String,
        /// The link.
        link: PathBuf,
        /// The recorded version.
        version: Version,
    },
    /// The kept version's directory is gone.
    #[error("{app}: the previous version {version} is gone ({} does not exist); nothing was changed", dir.display())]
    PreviousGone {
        /// The app.
        app: String,
        /// The kept version.
        version: Version,
        /// Its directory.
        dir: PathBuf,
    },
    /// The rollback switch failed.
    #[error("{app}: cannot roll back to {version}; nothing was changed: {source}")]
    Rollback {
        /// The app.
        app: String,
        /// The version.
        version: Version,
        /// Why.
        source: LifecycleError,
    },
    /// The app's installer refused to uninstall it.
    #[error(
        "{app}: installer {plugin} could not uninstall it (code {code}): {message}; it stays registered"
    )]
    UninstallRefused {
        /// The app.
        app: String,
        /// The plugin.
        plugin: String,
        /// Its code.
        code: i32,
        /// Its message.
        message: String,
    },
    /// upkeep is not installed in the state root.
    #[error("upkeep is not installed in {}", root.display())]
    NotInstalled {
        /// The state root.
        root: PathBuf,
    },
    /// The app has no command of that name.
    #[error("{app} has no command {name:?} (it has: {})", if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    UnknownAppCommand {
        /// The app.
        app: String,
        /// The name asked for.
        name: String,
        /// The names it has.
        known: Vec<String>,
    },
    /// A command's parameters were refused; nothing ran.
    #[error("{app} command {name:?}: {source}; nothing was run")]
    AppCommand {
        /// The app.
        app: String,
        /// The command.
        name: String,
        /// Why.
        source: upkeep_core::app_command::AppCommandError,
    },
    /// A registration's command line was refused.
    #[error("--command {name}: {source}")]
    BadAppCommand {
        /// The command's name.
        name: String,
        /// Why.
        source: upkeep_core::app_command::AppCommandError,
    },
    /// A registration's command name is empty, too long or has control
    /// characters or `=`.
    #[error("--command name {name:?}: 1 to 128 characters without control characters or '='")]
    BadAppCommandName {
        /// The name.
        name: String,
    },
    /// A registration gives a health check plugin and a health check
    /// command.
    #[error("give a health check plugin or a health check command, not both")]
    TwoHealthChecks,
    /// The health check command is not one of the app's commands.
    #[error("the health check command {name:?} is not one of the app's commands (registered: {})", if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    UnknownHealthCommand {
        /// The name given.
        name: String,
        /// The commands the registration has.
        known: Vec<String>,
    },
    /// The health check's time limit is out of range, or given without a
    /// health check.
    #[error("health check time limit {seconds} s: give 1 to 3600 seconds, with a health check")]
    BadHealthTimeout {
        /// The value given.
        seconds: u64,
    },
    /// An app install was refused or failed.
    #[error(transparent)]
    Install(#[from] crate::app_install::InstallError),
    /// Nothing at all is in the state root.
    #[error("nothing is installed in {} (set up with `upkeep setup`, or register an app)", root.display())]
    EmptyRoot {
        /// The state root.
        root: PathBuf,
    },
}

impl ClientError {
    pub(crate) fn io(
        what: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| ClientError::Io { what, path, source }
    }
}

//! The server crate's errors.

use std::path::PathBuf;

use upkeep_core::cup::CupError;
use upkeep_core::tuf::TufError;

/// Why a repository operation or the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// TUF metadata could not be parsed, verified or signed.
    #[error(transparent)]
    Tuf(#[from] TufError),
    /// A CUP key could not be loaded or a response could not be signed.
    #[error("CUP: {0}")]
    Cup(CupError),
    /// The event store failed.
    #[error("event store: {0}")]
    Store(String),
    /// The thread that commits events has stopped (the server is shutting
    /// down, or the writer panicked): nothing was stored.
    #[error("event store: the event writer has stopped")]
    WriterStopped,
    /// `repo.toml` is missing or malformed.
    #[error("{}: {reason}", path.display())]
    Settings {
        /// The settings file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key file is missing, malformed, or not the key the root names.
    #[error("key {}: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Arguments of an operation are invalid (app id, version, file name...).
    #[error("{0}")]
    Invalid(String),
    /// The repository's metadata is inconsistent.
    #[error("repository metadata: {0}")]
    Metadata(String),
    /// A delegated role name that is not allowed.
    #[error(
        "invalid role name {name:?}: use 1 to 64 characters from a-z 0-9 . _ - starting with a \
         letter or digit, other than root, targets, snapshot and timestamp"
    )]
    InvalidRoleName {
        /// The name given.
        name: String,
    },
    /// A rollout percentage that is not 0 to 100 with at most two decimals.
    #[error("invalid percentage {given:?}: give 0 to 100, with at most two decimals (12.5)")]
    InvalidPercent {
        /// The text given.
        given: String,
    },
    /// `rollouts.json` cannot be used.
    #[error("{}: {reason}", path.display())]
    Rollouts {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A rollout or pull names a release that is not published.
    #[error("no release {app} {version} is published (see `upkeep repo list`)")]
    UnknownRelease {
        /// The app id given.
        app: String,
        /// The version given.
        version: String,
    },
    /// No delegated role of that name is reachable in the repository.
    #[error("no role {role:?} is delegated in this repository (see `upkeep repo roles`)")]
    UnknownRole {
        /// The role asked for.
        role: String,
    },
    /// A role of that name is already delegated.
    #[error("role {role:?} is already delegated by {delegator:?}")]
    RoleExists {
        /// The role.
        role: String,
        /// Who delegates it.
        delegator: String,
    },
    /// A revoked role's name given again with only public keys: its old
    /// metadata is still listed, and the tool cannot sign a fresh version.
    #[error(
        "role {role:?} was delegated before and its last metadata is still listed; delegate it \
         again with keys the tool generates, or choose another name"
    )]
    RoleNameRetired {
        /// The role.
        role: String,
    },
    /// A path pattern that can never match a release file.
    #[error(
        "path pattern {pattern:?} can never match a release: {reason}; release files are \
         apps/<app id, lower case>/<version>/<file>, for example apps/org.team-a.*/*/*"
    )]
    PatternMatchesNoRelease {
        /// The pattern.
        pattern: String,
        /// Why not.
        reason: String,
    },
    /// A delegation needs at least one path pattern.
    #[error("give the paths the role is trusted for with --paths")]
    NoPaths,
    /// A delegated role needs 1 to 64 keys.
    #[error("a role needs 1 to 64 keys, not {keys}")]
    BadKeyCount {
        /// The number of keys asked for.
        keys: usize,
    },
    /// A threshold outside 1 to the number of keys.
    #[error("threshold {threshold} must be between 1 and the number of keys ({keys})")]
    BadThreshold {
        /// The threshold given.
        threshold: u64,
        /// The number of keys.
        keys: usize,
    },
    /// A public key that is not 64 hex digits of an ed25519 key.
    #[error("public key {key:?} is not an ed25519 public key (64 hex digits)")]
    InvalidPublicKey {
        /// The key given.
        key: String,
    },
    /// A hashed bin count that is not a power of two from 2 to 4096.
    #[error("--bins {bins}: give a power of two from 2 to 4096")]
    InvalidBins {
        /// The count given.
        bins: u32,
    },
    /// Hashed bins are signed by the role's keys, which the tool must hold.
    #[error(
        "role {role:?}: hashed bins are signed with the role's own keys; create them with \
         keys the repository tool generates (without --public-key)"
    )]
    BinsNeedRoleKeys {
        /// The role.
        role: String,
    },
    /// Fewer key files of a role than its threshold were found.
    #[error(
        "role {role:?}: {found} of its key(s) found, signing needs {threshold}; give them with \
         --role-key or put them in the key directory as {hint}"
    )]
    RoleKeysMissing {
        /// The role.
        role: String,
        /// How many usable keys were found.
        found: usize,
        /// How many are needed.
        threshold: u64,
        /// Where the tool looked.
        hint: String,
    },
    /// A release path the role is not delegated (by every delegation on
    /// the way from the top-level targets).
    #[error(
        "role {role:?} is not trusted for {path}: no delegation path from the top-level targets \
         to it covers that release (see the --paths of the delegations)"
    )]
    PathNotDelegated {
        /// The role.
        role: String,
        /// The target path.
        path: String,
    },
    /// Clients would take a release path from another role, found first.
    #[error(
        "{path}: clients would take it from role {by:?}, which the search reaches before \
         {role:?}; publish it there or change the order of delegations"
    )]
    ReleaseShadowed {
        /// The target path.
        path: String,
        /// The role published to.
        role: String,
        /// The role clients would use.
        by: String,
    },
    /// The PostgreSQL event store could not be reached or refused the
    /// connection (server down, wrong port, authentication, no such
    /// database).
    #[error("event store: cannot connect to PostgreSQL at {target}: {source}")]
    PostgresConnect {
        /// Where it was asked for (host, port and database; never a
        /// password).
        target: String,
        /// The cause.
        source: postgres::Error,
    },
    /// A statement of the PostgreSQL event store failed (nothing of the
    /// transaction it was part of was stored).
    #[error("event store (PostgreSQL): {0}")]
    Postgres(#[from] postgres::Error),
    /// A previous call on the event store's connection panicked; the
    /// connection is not used again.
    #[error("event store: a previous call panicked while holding the connection")]
    StorePoisoned,
    /// An event store address that is neither `postgres://...` (or
    /// `postgresql://...`) nor `sqlite:PATH`.
    #[error("event store {url:?}: give postgres://USER@HOST:PORT/DATABASE or sqlite:PATH")]
    EventsUrlScheme {
        /// The address given.
        url: String,
    },
    /// `sqlite:` without a path.
    #[error("event store {url:?}: sqlite: needs a file path, e.g. sqlite:/srv/events.sqlite")]
    EventsUrlNoPath {
        /// The address given.
        url: String,
    },
    /// A `postgres://` address PostgreSQL's client cannot read.
    #[error("event store {url:?}: not a PostgreSQL connection URL: {source}")]
    EventsUrlPostgres {
        /// The address given (password hidden).
        url: String,
        /// What the parser said.
        source: postgres::Error,
    },
    /// A statistics time bucket that is not a positive number of seconds.
    #[error("time bucket of {seconds} s: give a positive number of seconds")]
    InvalidBucket {
        /// The bucket asked for.
        seconds: i64,
    },
    /// A duration that is not a number followed by s, m, h, d or w.
    #[error("duration {text:?}: give a whole number and a unit, e.g. 90m, 24h, 7d or 2w")]
    InvalidDuration {
        /// The text given.
        text: String,
    },
    /// The system random number generator failed.
    #[error("random number generator: {0}")]
    Random(String),
}

impl ServerError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ServerError::Io {
            path: path.into(),
            source,
        }
    }

    /// A key error on `path`.
    pub fn key(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        ServerError::Key {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<CupError> for ServerError {
    fn from(e: CupError) -> Self {
        ServerError::Cup(e)
    }
}

impl From<rusqlite::Error> for ServerError {
    fn from(e: rusqlite::Error) -> Self {
        ServerError::Store(e.to_string())
    }
}

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
    Cup(#[from] CupError),
    /// The event store failed.
    #[error("event store: {0}")]
    Store(String),
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

impl From<rusqlite::Error> for ServerError {
    fn from(e: rusqlite::Error) -> Self {
        ServerError::Store(e.to_string())
    }
}

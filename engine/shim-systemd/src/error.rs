//! Errors of the systemd shim, and how they cross the ABI.

use std::path::PathBuf;

use upkeep_shim_abi::export::ShimFailure;

/// Why a systemd shim operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SystemdError {
    /// The configuration lacks `unit_dir`.
    #[error(
        "missing required configuration key `unit_dir` (the directory for unit files, \
         e.g. /etc/systemd/system or ~/.config/systemd/user)"
    )]
    MissingUnitDir,
    /// A configuration key has an unusable value.
    #[error("configuration key `{key}`: {reason}")]
    BadConfig {
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The configuration has a key this shim does not know.
    #[error(
        "unknown configuration key `{0}` (known: unit_dir, name, description, reload, systemctl)"
    )]
    UnknownKey(String),
    /// The executable cannot be written into `ExecStart=`.
    #[error("executable path {exe:?}: {reason}")]
    BadExecutable {
        /// The path as given.
        exe: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `swap_service` found no unit to point at the new executable.
    #[error("nothing to swap: neither {service} nor {wake} exists in {}", dir.display())]
    NothingToSwap {
        /// The unit directory.
        dir: PathBuf,
        /// The service unit looked for.
        service: String,
        /// The wake service unit looked for.
        wake: String,
    },
    /// A file system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `systemctl` (run because `reload` asks for it) failed.
    #[error("`{command}` failed: {detail}")]
    Systemctl {
        /// The command line run.
        command: String,
        /// Exit status and standard error, or why it could not start.
        detail: String,
    },
}

impl SystemdError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SystemdError::Io {
            path: path.into(),
            source,
        }
    }

    /// The failure reported through the ABI: bad input is
    /// `STATUS_INVALID_ARGUMENT`, everything else `STATUS_FAILED`.
    pub fn into_failure(self) -> ShimFailure {
        let message = self.to_string();
        match self {
            SystemdError::MissingUnitDir
            | SystemdError::BadConfig { .. }
            | SystemdError::UnknownKey(_)
            | SystemdError::BadExecutable { .. } => ShimFailure::invalid_argument(message),
            SystemdError::NothingToSwap { .. }
            | SystemdError::Io { .. }
            | SystemdError::Systemctl { .. } => ShimFailure::failed(message),
        }
    }
}

//! The refusals of the TUF client. Each attack the client defends against has
//! its own variant, so callers and tests can tell them apart; every message
//! names the file (or role) that failed.

use std::path::PathBuf;

use crate::tuf::transport::FetchError;

/// Everything the TUF client can refuse or fail at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TufError {
    /// A document is not valid JSON, or not valid TUF metadata.
    #[error("{file}: malformed metadata: {reason}")]
    MalformedMetadata {
        /// The file (or role) that failed to parse.
        file: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A document's `_type` is not the role it was fetched as.
    #[error("{file}: expected metadata of type {expected:?}, found {found:?}")]
    WrongType {
        /// The file that was fetched.
        file: String,
        /// The type the client asked for.
        expected: String,
        /// The type the document declares.
        found: String,
    },
    /// Fewer valid signatures than the role's threshold.
    #[error(
        "{file}: {valid} valid signature(s) from the keys of role {role:?}, threshold is {threshold}"
    )]
    SignatureThreshold {
        /// The file whose signatures were checked.
        file: String,
        /// The role whose keys and threshold apply.
        role: String,
        /// How many distinct trusted keys signed it.
        valid: usize,
        /// How many are needed.
        threshold: u64,
    },
    /// A role uses a key type or signature scheme this client does not verify.
    #[error("key {keyid}: unsupported key type {keytype:?} with scheme {scheme:?}")]
    UnsupportedKeyType {
        /// The key id.
        keyid: String,
        /// The declared key type.
        keytype: String,
        /// The declared scheme.
        scheme: String,
    },
    /// A new metadata version is lower than the trusted one (rollback attack).
    #[error("{file}: version {new} is lower than the trusted version {trusted} (rollback)")]
    RollbackDetected {
        /// The file or meta entry that went backwards.
        file: String,
        /// The trusted version.
        trusted: u64,
        /// The version offered.
        new: u64,
    },
    /// A version does not match what the signing role said it must be
    /// (mix-and-match attack), or a root is not the next version.
    #[error("{file}: version {found}, expected {expected}")]
    VersionMismatch {
        /// The file whose version is wrong.
        file: String,
        /// The version the referring metadata (or root chain) requires.
        expected: u64,
        /// The version found.
        found: u64,
    },
    /// Metadata is past its expiry date (freeze attack).
    #[error("{file}: expired at {expires}, now is {now}")]
    MetadataExpired {
        /// The expired file.
        file: String,
        /// Its expiry date.
        expires: String,
        /// The client's reference time.
        now: String,
    },
    /// The clock is earlier than the last time this client saw.
    #[error("clock went backwards: now is {now}, but {last} was already seen (recorded in {path})")]
    ClockWentBackwards {
        /// The current reading of the clock.
        now: String,
        /// The latest time recorded before.
        last: String,
        /// Where the latest time is recorded.
        path: PathBuf,
    },
    /// A file's hash differs from the trusted one (arbitrary package attack).
    #[error("{file}: {algorithm} hash mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        /// The file whose hash is wrong.
        file: String,
        /// The hash algorithm.
        algorithm: String,
        /// The trusted hash.
        expected: String,
        /// The hash of the received bytes.
        actual: String,
    },
    /// A file's length differs from the trusted one.
    #[error("{file}: length {actual} bytes, expected {expected}")]
    LengthMismatch {
        /// The file whose length is wrong.
        file: String,
        /// The trusted length.
        expected: u64,
        /// The received length.
        actual: u64,
    },
    /// The server sent more than the allowed number of bytes (endless data attack).
    #[error("{file}: more than the allowed {max} bytes")]
    LengthExceeded {
        /// The file being downloaded.
        file: String,
        /// The cap.
        max: u64,
    },
    /// None of the trusted hash algorithms is one this client computes.
    #[error("{file}: no supported hash algorithm among {algorithms:?}")]
    NoSupportedHash {
        /// The file.
        file: String,
        /// The algorithms listed for it.
        algorithms: Vec<String>,
    },
    /// A delegation is inconsistent (missing role metadata, bad path patterns,
    /// too many delegations, a role delegated twice...).
    #[error("delegation {role:?}: {reason}")]
    BadDelegation {
        /// The delegated role.
        role: String,
        /// What was wrong.
        reason: String,
    },
    /// Two entries of a metadata file's `signatures` name the same key id
    /// (the specification requires them to be unique).
    #[error("{file}: key {keyid} appears more than once in signatures")]
    DuplicateSignature {
        /// The file whose signatures were read.
        file: String,
        /// The repeated key id.
        keyid: String,
    },
    /// A delegated role reached through a second delegator is not the same
    /// metadata as the copy already trusted through the first.
    #[error(
        "delegation {role:?}: the copy offered through {delegator:?} differs from the one trusted through {trusted_via:?}"
    )]
    ConflictingRoleMetadata {
        /// The delegated role.
        role: String,
        /// The delegator of the path being walked.
        delegator: String,
        /// A delegator through which the role is already trusted.
        trusted_via: String,
    },
    /// A role that the trusted metadata does not know.
    #[error("unknown role {role:?}: {reason}")]
    UnknownRole {
        /// The role name.
        role: String,
        /// Where it was looked for.
        reason: String,
    },
    /// A target path is not listed by any trusted targets role.
    #[error("target {path:?} is not listed by any trusted targets role")]
    TargetNotFound {
        /// The target path.
        path: String,
    },
    /// A required file was not on the server.
    #[error("{url}: not found on the repository")]
    NotFound {
        /// The URL fetched.
        url: String,
    },
    /// The transport failed (connection, HTTP status...).
    #[error("fetching {url}: {source}")]
    Fetch {
        /// The URL fetched.
        url: String,
        /// The transport's error.
        #[source]
        source: FetchError,
    },
    /// A new snapshot dropped a file the trusted snapshot listed.
    #[error("{file}: no longer lists {entry} (rollback)")]
    MetaEntryRemoved {
        /// The new snapshot file.
        file: String,
        /// The entry it dropped.
        entry: String,
    },
    /// No trusted root: the client was not initialised.
    #[error("no trusted root in {0}; initialise the client first")]
    NoTrustedRoot(PathBuf),
    /// Signing failed on the repository side (bad key material).
    #[error("signing failed: {0}")]
    Signing(String),
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl TufError {
    /// Shorthand for a [`TufError::MalformedMetadata`].
    pub fn malformed(file: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        TufError::MalformedMetadata {
            file: file.into(),
            reason: reason.to_string(),
        }
    }

    /// Shorthand for a [`TufError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TufError::Io {
            path: path.into(),
            source,
        }
    }
}

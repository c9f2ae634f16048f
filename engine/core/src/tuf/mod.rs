//! A client for The Update Framework (TUF) specification 1.0, and the
//! repository-side pieces to build and sign metadata in code.
//!
//! The client follows the specification's "Detailed client workflow":
//! a trusted root, root rotation one version at a time (each new root signed
//! by a threshold of the old root's keys and of its own), then timestamp,
//! snapshot and targets with rollback, freeze, mix-and-match, length and
//! hash checks, then delegated targets searched in order. Network and time
//! sit behind [`Transport`] and [`Clock`]; the crate has no HTTP client.
//!
//! Key types: ed25519 is the project's signature scheme; rsassa-pss-sha256,
//! rsa-pkcs1v15-sha256 and ecdsa-sha2-nistp256 signatures also verify (see
//! [`keys`]). Others parse but never count toward a threshold.
//!
//! See `docs/trust.md` for the checks and the attacks they refuse.

pub mod cjson;
pub mod error;
pub mod keys;
pub mod metadata;
pub mod repository;
pub mod search;
pub mod transport;
pub mod trusted;
pub mod updater;

pub use error::TufError;
pub use keys::{Ed25519Signer, Key, Signer};
pub use metadata::{
    DelegatedRole, Delegations, Envelope, Expiry, MetaFile, RoleKeys, Root, Snapshot, TargetFile,
    Targets, Timestamp, sign_metadata,
};
pub use search::{Found, RoleSource, find_target};
pub use transport::{Clock, FetchError, FixedClock, SystemClock, Transport};
pub use trusted::TrustedSet;
pub use updater::{
    TargetInfo, Updater, UpdaterConfig, encode_role, init_trusted_root, target_file_name,
};

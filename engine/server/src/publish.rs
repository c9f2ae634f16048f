//! Publishing metadata: the one place new versions of targets roles,
//! snapshot and timestamp are signed and written.
//!
//! A [`Publication`] starts from the current snapshot and timestamp (or
//! from nothing, for a new repository), stages new versions of targets
//! roles as `N.ROLE.json` (never replacing a file), then seals them in a
//! new `N.snapshot.json` and returns the signed timestamp that would
//! publish them. Writing `timestamp.json` is the commit point
//! ([`commit`]); until then clients and servers see the previous metadata,
//! and a failed publication removes the files it staged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use time::{Duration, OffsetDateTime};
use upkeep_core::durable::write_atomic;
use upkeep_core::tuf::metadata::{
    Expiry, MetaFile, SPEC_VERSION, Snapshot, Targets, Timestamp, sign_metadata,
};
use upkeep_core::tuf::{Ed25519Signer, Signer};

use crate::error::ServerError;
use crate::graph::role_file;
use crate::repo::ExpiryDays;

/// The metadata versions a publication produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The targets version now listed.
    pub targets: u64,
    /// The new snapshot version.
    pub snapshot: u64,
    /// The new timestamp version.
    pub timestamp: u64,
}

/// An expiry date `days` from now, to the second.
pub fn expiry_in(days: u32) -> Expiry {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(OffsetDateTime::now_utc());
    Expiry(now + Duration::days(i64::from(days)))
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    write_atomic(path, bytes).map_err(|e| ServerError::io(path, e))
}

/// Writes a new versioned metadata file; an existing one is never replaced.
pub fn create_new(path: &Path, bytes: &[u8]) -> Result<(), ServerError> {
    if path.exists() {
        return Err(ServerError::Metadata(format!(
            "{} already exists; is another publication running?",
            path.display()
        )));
    }
    write(path, bytes)
}

/// Replaces `metadata/timestamp.json`: the commit point of a publication.
pub fn commit(metadata_dir: &Path, timestamp_bytes: &[u8]) -> Result<(), ServerError> {
    write(&metadata_dir.join("timestamp.json"), timestamp_bytes)
}

/// New versions of targets roles, sealed by a new snapshot and timestamp.
#[derive(Debug)]
pub struct Publication {
    metadata_dir: PathBuf,
    days: ExpiryDays,
    snapshot: Snapshot,
    timestamp: Timestamp,
}

impl Publication {
    /// A publication into `metadata_dir` on top of the current snapshot
    /// and timestamp, with the lifetimes of `days`.
    pub fn new(
        metadata_dir: PathBuf,
        days: ExpiryDays,
        snapshot: &Snapshot,
        timestamp: &Timestamp,
    ) -> Publication {
        Publication {
            metadata_dir,
            days,
            snapshot: snapshot.clone(),
            timestamp: timestamp.clone(),
        }
    }

    /// The first publication of a new repository: snapshot and timestamp
    /// will be version 1.
    pub fn first(metadata_dir: PathBuf, days: ExpiryDays) -> Publication {
        let zero = Expiry(OffsetDateTime::UNIX_EPOCH);
        Publication {
            metadata_dir,
            days,
            snapshot: Snapshot {
                type_: "snapshot".into(),
                spec_version: SPEC_VERSION.into(),
                version: 0,
                expires: zero,
                meta: BTreeMap::new(),
                unrecognized: BTreeMap::new(),
            },
            timestamp: Timestamp {
                type_: "timestamp".into(),
                spec_version: SPEC_VERSION.into(),
                version: 0,
                expires: zero,
                meta: BTreeMap::new(),
                unrecognized: BTreeMap::new(),
            },
        }
    }

    /// The version the next staged `role` gets: one more than the
    /// snapshot lists (a role once listed stays listed, so a role removed
    /// and delegated again continues its numbering).
    pub fn next_version(&self, role: &str) -> u64 {
        self.snapshot
            .meta
            .get(&format!("{role}.json"))
            .map_or(1, |m| m.version + 1)
    }

    /// Signs `targets` as the next version of `role` with `signers`, with
    /// a fresh expiry date, and writes it as `N.ROLE.json` (recorded in
    /// `written`). Returns the version.
    pub fn stage_targets(
        &mut self,
        role: &str,
        mut targets: Targets,
        signers: &[&Ed25519Signer],
        written: &mut Vec<PathBuf>,
    ) -> Result<u64, ServerError> {
        targets.version = self.next_version(role);
        targets.expires = expiry_in(self.days.targets);
        let dyns: Vec<&dyn Signer> = signers.iter().map(|s| *s as &dyn Signer).collect();
        let bytes = sign_metadata(&targets, &dyns)?;
        let path = self.metadata_dir.join(role_file(role, targets.version));
        create_new(&path, &bytes)?;
        written.push(path);
        self.snapshot.meta.insert(
            format!("{role}.json"),
            MetaFile::with_hashes(targets.version, &bytes),
        );
        Ok(targets.version)
    }

    /// Writes the new snapshot (recorded in `written`) and returns the
    /// versions and the signed timestamp that publishes it, not written.
    pub fn seal(
        mut self,
        snapshot_signer: &Ed25519Signer,
        timestamp_signer: &Ed25519Signer,
        written: &mut Vec<PathBuf>,
    ) -> Result<(Published, Vec<u8>), ServerError> {
        let snapshot = &mut self.snapshot;
        snapshot.version += 1;
        snapshot.expires = expiry_in(self.days.snapshot);
        let snapshot_bytes = sign_metadata(&*snapshot, &[snapshot_signer as &dyn Signer])?;
        let path = self
            .metadata_dir
            .join(format!("{}.snapshot.json", snapshot.version));
        create_new(&path, &snapshot_bytes)?;
        written.push(path);
        let timestamp = &mut self.timestamp;
        timestamp.version += 1;
        timestamp.expires = expiry_in(self.days.timestamp);
        timestamp.meta.insert(
            "snapshot.json".into(),
            MetaFile::with_hashes(snapshot.version, &snapshot_bytes),
        );
        let timestamp_bytes = sign_metadata(&*timestamp, &[timestamp_signer as &dyn Signer])?;
        let targets = snapshot
            .meta
            .get("targets.json")
            .map(|m| m.version)
            .unwrap_or_default();
        Ok((
            Published {
                targets,
                snapshot: snapshot.version,
                timestamp: timestamp.version,
            },
            timestamp_bytes,
        ))
    }

    /// Seals the publication and writes `timestamp.json` (the commit
    /// point). On success nothing staged needs removing: `written` is
    /// cleared.
    pub fn publish(
        self,
        snapshot_signer: &Ed25519Signer,
        timestamp_signer: &Ed25519Signer,
        written: &mut Vec<PathBuf>,
    ) -> Result<Published, ServerError> {
        let metadata_dir = self.metadata_dir.clone();
        let (published, timestamp_bytes) = self.seal(snapshot_signer, timestamp_signer, written)?;
        commit(&metadata_dir, &timestamp_bytes)?;
        written.clear();
        Ok(published)
    }
}

/// Removes the files a failed publication staged, newest first.
pub fn remove_staged(written: &[PathBuf]) {
    for p in written.iter().rev() {
        let _ = std::fs::remove_file(p);
    }
}

/// Runs `body`, which records every file it stages in the list it is
/// given; when it fails, those files are removed.
pub fn staging<T>(
    body: impl FnOnce(&mut Vec<PathBuf>) -> Result<T, ServerError>,
) -> Result<T, ServerError> {
    let mut written = Vec::new();
    let result = body(&mut written);
    if result.is_err() {
        remove_staged(&written);
    }
    result
}

//! The set of metadata the client trusts, and the rules for letting new
//! metadata in (specification 1.0, "Detailed client workflow", 5.3–5.6).
//!
//! Every update method either accepts the new metadata or refuses it with a
//! [`TufError`] naming the attack; it never touches the network or the disk.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use crate::tuf::error::TufError;
use crate::tuf::metadata::{
    Envelope, Expiry, RoleKeys, Root, Snapshot, Targets, Timestamp, format_time,
};

/// Trusted metadata, filled in workflow order: root, timestamp, snapshot,
/// then targets and delegated targets.
#[derive(Debug, Clone)]
pub struct TrustedSet {
    now: OffsetDateTime,
    root: Root,
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    targets: BTreeMap<String, Targets>,
    /// Every (delegator, role) pair a role's metadata was verified for: a
    /// role reached through two delegators is checked against each.
    verified: BTreeSet<(String, String)>,
}

/// What [`TrustedSet::update_timestamp`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// The new timestamp is now trusted.
    Accepted,
    /// It has the trusted version: the trusted one is kept.
    SameVersion,
}

fn check_expiry(expires: Expiry, now: OffsetDateTime, file: &str) -> Result<(), TufError> {
    if expires.0 <= now {
        return Err(TufError::MetadataExpired {
            file: file.into(),
            expires: expires.to_tuf_string(),
            now: format_time(now),
        });
    }
    Ok(())
}

impl TrustedSet {
    /// Starts from a trusted root (5.2): it must be signed by a threshold of
    /// its own root keys. Its expiry is not checked here (a newer root may
    /// replace it).
    pub fn new(root_bytes: &[u8], now: OffsetDateTime) -> Result<TrustedSet, TufError> {
        let file = "root.json";
        let env = Envelope::<Root>::from_bytes(root_bytes, file)?;
        let role = root_role(&env.signed, file)?;
        env.verify(&env.signed.keys, role, "root", file)?;
        Ok(TrustedSet {
            now,
            root: env.signed,
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
            verified: BTreeSet::new(),
        })
    }

    /// The reference time expiry is checked against.
    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The trusted timestamp, if loaded.
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, if loaded.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The trusted targets metadata of `role` (`targets` or a delegated role),
    /// trusted through at least one delegator.
    pub fn targets(&self, role: &str) -> Option<&Targets> {
        self.targets.get(role)
    }

    /// Whether `role`'s metadata was verified against the keys `delegator`
    /// gives it (`root` for the top-level targets). A role delegated by
    /// several roles must be verified through the delegator of each path
    /// before that path may use it.
    pub fn is_trusted_via(&self, role: &str, delegator: &str) -> bool {
        self.verified
            .contains(&(delegator.to_owned(), role.to_owned()))
    }

    /// Rotates to the next root (5.3.4–5.3.8): signed by a threshold of the
    /// trusted root's keys and of its own, with version exactly one more.
    pub fn update_root(&mut self, bytes: &[u8], file: &str) -> Result<(), TufError> {
        if self.timestamp.is_some() {
            return Err(TufError::malformed(
                file,
                "root cannot change after timestamp was loaded",
            ));
        }
        let env = Envelope::<Root>::from_bytes(bytes, file)?;
        env.verify(
            &self.root.keys,
            root_role(&self.root, "root.json")?,
            "root (trusted)",
            file,
        )?;
        let expected = self.root.version + 1;
        if env.signed.version != expected {
            if env.signed.version < self.root.version {
                return Err(TufError::RollbackDetected {
                    file: file.into(),
                    trusted: self.root.version,
                    new: env.signed.version,
                });
            }
            return Err(TufError::VersionMismatch {
                file: file.into(),
                expected,
                found: env.signed.version,
            });
        }
        env.verify(
            &env.signed.keys,
            root_role(&env.signed, file)?,
            "root (new)",
            file,
        )?;
        self.root = env.signed;
        Ok(())
    }

    /// Checks the final root for a freeze attack (5.3.10).
    pub fn check_root_expiry(&self) -> Result<(), TufError> {
        check_expiry(self.root.expires, self.now, "root.json")
    }

    /// Updates the timestamp (5.4). A lower version, or a lower snapshot
    /// version in it, is a rollback. An expired timestamp is kept as trusted
    /// (so the rollback checks of the next one use it) but refused.
    pub fn update_timestamp(
        &mut self,
        bytes: &[u8],
        file: &str,
    ) -> Result<TimestampUpdate, TufError> {
        if self.snapshot.is_some() {
            return Err(TufError::malformed(
                file,
                "timestamp cannot change after snapshot was loaded",
            ));
        }
        self.check_root_expiry()?;
        let env = Envelope::<Timestamp>::from_bytes(bytes, file)?;
        let role = top_role(&self.root, "timestamp")?;
        env.verify(&self.root.keys, role, "timestamp", file)?;
        let new = env.signed;
        if let Some(old) = &self.timestamp {
            if new.version < old.version {
                return Err(TufError::RollbackDetected {
                    file: file.into(),
                    trusted: old.version,
                    new: new.version,
                });
            }
            if new.version == old.version {
                return Ok(TimestampUpdate::SameVersion);
            }
            let (old_snap, new_snap) = (snapshot_version(old), snapshot_version(&new));
            if new_snap < old_snap {
                return Err(TufError::RollbackDetected {
                    file: format!("{file} (snapshot.json entry)"),
                    trusted: old_snap,
                    new: new_snap,
                });
            }
        }
        let expires = new.expires;
        self.timestamp = Some(new);
        check_expiry(expires, self.now, file)?;
        Ok(TimestampUpdate::Accepted)
    }

    fn final_timestamp(&self) -> Result<&Timestamp, TufError> {
        let ts = self
            .timestamp
            .as_ref()
            .ok_or_else(|| TufError::UnknownRole {
                role: "timestamp".into(),
                reason: "not loaded yet".into(),
            })?;
        check_expiry(ts.expires, self.now, "timestamp.json")?;
        Ok(ts)
    }

    /// Updates the snapshot (5.5). `trusted` skips the length and hash check
    /// against the timestamp (for the copy cached on disk). A snapshot that
    /// drops a targets file or lowers a targets version is a rollback; a
    /// version other than the timestamp's is a mix-and-match.
    pub fn update_snapshot(
        &mut self,
        bytes: &[u8],
        file: &str,
        trusted: bool,
    ) -> Result<(), TufError> {
        if !self.targets.is_empty() {
            return Err(TufError::malformed(
                file,
                "snapshot cannot change after targets were loaded",
            ));
        }
        let meta = self
            .final_timestamp()?
            .snapshot_meta()
            .cloned()
            .ok_or_else(|| TufError::malformed("timestamp.json", "no snapshot.json entry"))?;
        if !trusted {
            meta.verify(file, bytes)?;
        }
        let env = Envelope::<Snapshot>::from_bytes(bytes, file)?;
        env.verify(
            &self.root.keys,
            top_role(&self.root, "snapshot")?,
            "snapshot",
            file,
        )?;
        let new = env.signed;
        if let Some(old) = &self.snapshot {
            for (name, info) in &old.meta {
                let Some(new_info) = new.meta.get(name) else {
                    return Err(TufError::MetaEntryRemoved {
                        file: file.into(),
                        entry: name.clone(),
                    });
                };
                if new_info.version < info.version {
                    return Err(TufError::RollbackDetected {
                        file: format!("{file} ({name} entry)"),
                        trusted: info.version,
                        new: new_info.version,
                    });
                }
            }
        }
        self.snapshot = Some(new);
        self.check_final_snapshot(file)
    }

    fn check_final_snapshot(&self, file: &str) -> Result<(), TufError> {
        let snap = self
            .snapshot
            .as_ref()
            .ok_or_else(|| TufError::UnknownRole {
                role: "snapshot".into(),
                reason: "not loaded yet".into(),
            })?;
        check_expiry(snap.expires, self.now, file)?;
        let expected = self
            .final_timestamp()?
            .snapshot_meta()
            .map(|m| m.version)
            .unwrap_or_default();
        if snap.version != expected {
            return Err(TufError::VersionMismatch {
                file: file.into(),
                expected,
                found: snap.version,
            });
        }
        Ok(())
    }

    /// Updates the top-level targets (`delegator` = `root`) or a delegated
    /// targets role (5.6): length, hashes and version must be those listed in
    /// the snapshot, signatures those of the delegating role, not expired.
    ///
    /// A role already trusted through another delegator is verified again
    /// against `delegator`'s keys, and must be the same metadata: trust in a
    /// role never carries over from one delegation path to another.
    pub fn update_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        delegator: &str,
        file: &str,
    ) -> Result<(), TufError> {
        self.check_final_snapshot("snapshot.json")?;
        let meta_name = format!("{role}.json");
        let meta = self
            .snapshot
            .as_ref()
            .and_then(|s| s.meta.get(&meta_name))
            .cloned()
            .ok_or_else(|| TufError::UnknownRole {
                role: role.into(),
                reason: "not listed in snapshot.json".into(),
            })?;
        meta.verify(file, bytes)?;
        let env = Envelope::<Targets>::from_bytes(bytes, file)?;
        if delegator == "root" {
            env.verify(
                &self.root.keys,
                top_role(&self.root, "targets")?,
                "targets",
                file,
            )?;
        } else {
            let parent = self
                .targets
                .get(delegator)
                .ok_or_else(|| TufError::BadDelegation {
                    role: role.into(),
                    reason: format!("delegating role {delegator:?} is not loaded"),
                })?;
            let delegations =
                parent
                    .delegations
                    .as_ref()
                    .ok_or_else(|| TufError::BadDelegation {
                        role: role.into(),
                        reason: format!("{delegator:?} has no delegations"),
                    })?;
            delegations.verify_delegated(&env, role, delegator, file)?;
        }
        if env.signed.version != meta.version {
            return Err(TufError::VersionMismatch {
                file: file.into(),
                expected: meta.version,
                found: env.signed.version,
            });
        }
        check_expiry(env.signed.expires, self.now, file)?;
        if let Some(trusted) = self.targets.get(role)
            && *trusted != env.signed
        {
            let trusted_via = self
                .verified
                .iter()
                .find(|(_, r)| r == role)
                .map(|(d, _)| d.clone())
                .unwrap_or_default();
            return Err(TufError::ConflictingRoleMetadata {
                role: role.into(),
                delegator: delegator.into(),
                trusted_via,
            });
        }
        self.targets.insert(role.to_owned(), env.signed);
        self.verified
            .insert((delegator.to_owned(), role.to_owned()));
        Ok(())
    }
}

fn snapshot_version(ts: &Timestamp) -> u64 {
    ts.snapshot_meta().map(|m| m.version).unwrap_or_default()
}

fn root_role<'a>(root: &'a Root, file: &str) -> Result<&'a RoleKeys, TufError> {
    root.role("root")
        .ok_or_else(|| TufError::malformed(file, "no root role"))
}

fn top_role<'a>(root: &'a Root, role: &str) -> Result<&'a RoleKeys, TufError> {
    root.role(role).ok_or_else(|| TufError::UnknownRole {
        role: role.into(),
        reason: "not in root.json".into(),
    })
}

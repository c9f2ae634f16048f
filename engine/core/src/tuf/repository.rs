//! A TUF repository built and signed in code: metadata for the four
//! top-level roles and delegated targets, every published version of each
//! file, and the target files, served by URL path the way a static web
//! server lays them out (`metadata/…`, `targets/…`).
//!
//! It backs the reference server and the client's tests. Keys are ed25519
//! signers derived from seeds, so a repository is reproducible.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use time::OffsetDateTime;

use crate::tuf::error::TufError;
use crate::tuf::keys::{Ed25519Signer, Signer};
use crate::tuf::metadata::{
    DelegatedRole, Delegations, Expiry, MetaFile, Role, RoleKeys, Root, SPEC_VERSION, Snapshot,
    TargetFile, Targets, Timestamp, sign_metadata,
};

/// A repository held in memory.
#[derive(Debug)]
pub struct Repository {
    /// The root being edited (publish with [`Repository::publish_root`]).
    pub root: Root,
    /// The timestamp being edited.
    pub timestamp: Timestamp,
    /// The snapshot being edited.
    pub snapshot: Snapshot,
    /// Top-level (`targets`) and delegated targets being edited.
    pub targets: BTreeMap<String, Targets>,
    /// Signers by role.
    pub signers: BTreeMap<String, Vec<Ed25519Signer>>,
    /// Published roots; index `v - 1` holds version `v`.
    pub roots: Vec<Vec<u8>>,
    /// Published versions of the other roles, oldest first: (version, bytes).
    pub published: BTreeMap<String, Vec<(u64, Vec<u8>)>>,
    /// Target contents by target path.
    pub artifacts: BTreeMap<String, Vec<u8>>,
    /// Put lengths and hashes in timestamp and snapshot meta entries.
    pub meta_hashes: bool,
    /// Bytes served for a URL path instead of the published ones (for
    /// attack tests).
    pub overrides: BTreeMap<String, Vec<u8>>,
    next_seed: u64,
}

fn seed(n: u64) -> [u8; 32] {
    let mut s = [0x5e; 32];
    s[..8].copy_from_slice(&n.to_le_bytes());
    s
}

impl Repository {
    /// A repository with one key per top-level role, every role at
    /// version 1, expiring at `expires`, all published.
    pub fn new(expires: OffsetDateTime, consistent_snapshot: bool) -> Result<Repository, TufError> {
        let expires = Expiry(expires);
        let mut repo = Repository {
            root: Root {
                type_: "root".into(),
                spec_version: SPEC_VERSION.into(),
                version: 1,
                expires,
                consistent_snapshot,
                keys: BTreeMap::new(),
                roles: BTreeMap::new(),
                unrecognized: BTreeMap::new(),
            },
            timestamp: Timestamp {
                type_: "timestamp".into(),
                spec_version: SPEC_VERSION.into(),
                version: 1,
                expires,
                meta: BTreeMap::from([("snapshot.json".to_owned(), MetaFile::new(1))]),
                unrecognized: BTreeMap::new(),
            },
            snapshot: Snapshot {
                type_: "snapshot".into(),
                spec_version: SPEC_VERSION.into(),
                version: 1,
                expires,
                meta: BTreeMap::from([("targets.json".to_owned(), MetaFile::new(1))]),
                unrecognized: BTreeMap::new(),
            },
            targets: BTreeMap::from([("targets".to_owned(), Self::empty_targets(expires.0))]),
            signers: BTreeMap::new(),
            roots: Vec::new(),
            published: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            meta_hashes: false,
            overrides: BTreeMap::new(),
            next_seed: 1,
        };
        for role in ["root", "timestamp", "snapshot", "targets"] {
            let signer = repo.new_signer();
            repo.root
                .keys
                .insert(signer.key_id(), signer.public_key().clone());
            repo.root
                .roles
                .insert(role.into(), RoleKeys::new(vec![signer.key_id()], 1));
            repo.signers.insert(role.into(), vec![signer]);
        }
        repo.publish_root()?;
        repo.publish_targets("targets")?;
        repo.publish_snapshot()?;
        repo.publish_timestamp()?;
        Ok(repo)
    }

    /// Empty targets metadata at version 1.
    pub fn empty_targets(expires: OffsetDateTime) -> Targets {
        Targets {
            type_: "targets".into(),
            spec_version: SPEC_VERSION.into(),
            version: 1,
            expires: Expiry(expires),
            targets: BTreeMap::new(),
            delegations: None,
            unrecognized: BTreeMap::new(),
        }
    }

    /// A fresh signer (deterministic: the n-th signer of every repository
    /// is the same key).
    pub fn new_signer(&mut self) -> Ed25519Signer {
        let s = Ed25519Signer::from_seed(&seed(self.next_seed));
        self.next_seed += 1;
        s
    }

    /// Replaces the keys of a top-level role with `count` new keys and sets
    /// its threshold (the root still needs publishing).
    pub fn rotate_keys(&mut self, role: &str, count: usize, threshold: u64) {
        let mut ids = Vec::new();
        let mut signers = Vec::new();
        for _ in 0..count {
            let s = self.new_signer();
            self.root.keys.insert(s.key_id(), s.public_key().clone());
            ids.push(s.key_id());
            signers.push(s);
        }
        self.root
            .roles
            .insert(role.into(), RoleKeys::new(ids, threshold));
        self.signers.insert(role.into(), signers);
    }

    /// Signs the current root with the root role's signers and publishes it
    /// as the next version (the root's version field is set accordingly).
    pub fn publish_root(&mut self) -> Result<(), TufError> {
        let signers: Vec<Ed25519Signer> = self.signers.get("root").cloned().unwrap_or_default();
        let refs: Vec<&Ed25519Signer> = signers.iter().collect();
        self.publish_root_signed_by(&refs)
    }

    /// Publishes the current root as the next version, signed by exactly
    /// `signers` (e.g. old and new root keys during a rotation).
    pub fn publish_root_signed_by(&mut self, signers: &[&Ed25519Signer]) -> Result<(), TufError> {
        self.root.version = self.roots.len() as u64 + 1;
        let dyns: Vec<&dyn Signer> = signers.iter().map(|s| *s as &dyn Signer).collect();
        let bytes = sign_metadata(&self.root, &dyns)?;
        self.roots.push(bytes);
        Ok(())
    }

    fn sign_role<T: Role>(&self, role: &str, signed: &T) -> Result<Vec<u8>, TufError> {
        let dyns: Vec<&dyn Signer> = self
            .signers
            .get(role)
            .map(|v| v.iter().map(|s| s as &dyn Signer).collect())
            .unwrap_or_default();
        sign_metadata(signed, &dyns)
    }

    /// Signs and publishes targets role `role` at its current version.
    pub fn publish_targets(&mut self, role: &str) -> Result<(), TufError> {
        let t = self
            .targets
            .get(role)
            .ok_or_else(|| TufError::UnknownRole {
                role: role.into(),
                reason: "not in the repository".into(),
            })?;
        let bytes = self.sign_role(role, t)?;
        let version = t.version;
        self.published
            .entry(role.into())
            .or_default()
            .push((version, bytes));
        Ok(())
    }

    /// Lists the latest published version of every targets role in the
    /// snapshot, signs and publishes it.
    pub fn publish_snapshot(&mut self) -> Result<(), TufError> {
        for (role, versions) in &self.published {
            if role == "timestamp" || role == "snapshot" {
                continue;
            }
            if let Some((version, bytes)) = versions.last() {
                let meta = if self.meta_hashes {
                    MetaFile::with_hashes(*version, bytes)
                } else {
                    MetaFile::new(*version)
                };
                self.snapshot.meta.insert(format!("{role}.json"), meta);
            }
        }
        let bytes = self.sign_role("snapshot", &self.snapshot)?;
        self.published
            .entry("snapshot".into())
            .or_default()
            .push((self.snapshot.version, bytes));
        Ok(())
    }

    /// Lists the latest published snapshot in the timestamp, signs and
    /// publishes it.
    pub fn publish_timestamp(&mut self) -> Result<(), TufError> {
        if let Some((version, bytes)) = self.published.get("snapshot").and_then(|v| v.last()) {
            let meta = if self.meta_hashes {
                MetaFile::with_hashes(*version, bytes)
            } else {
                MetaFile::new(*version)
            };
            self.timestamp.meta.insert("snapshot.json".into(), meta);
        }
        let bytes = self.sign_role("timestamp", &self.timestamp)?;
        self.published
            .entry("timestamp".into())
            .or_default()
            .push((self.timestamp.version, bytes));
        Ok(())
    }

    /// Bumps the version of targets role `role` and of snapshot and
    /// timestamp, and publishes all three.
    pub fn bump_targets(&mut self, role: &str) -> Result<(), TufError> {
        if let Some(t) = self.targets.get_mut(role) {
            t.version += 1;
        }
        self.publish_targets(role)?;
        self.bump_snapshot()
    }

    /// Bumps and publishes snapshot and timestamp.
    pub fn bump_snapshot(&mut self) -> Result<(), TufError> {
        self.snapshot.version += 1;
        self.publish_snapshot()?;
        self.bump_timestamp()
    }

    /// Bumps and publishes the timestamp.
    pub fn bump_timestamp(&mut self) -> Result<(), TufError> {
        self.timestamp.version += 1;
        self.publish_timestamp()
    }

    /// Adds a target file to targets role `role` (not yet published).
    pub fn add_target(&mut self, role: &str, path: &str, data: &[u8]) -> Result<(), TufError> {
        let t = self
            .targets
            .get_mut(role)
            .ok_or_else(|| TufError::UnknownRole {
                role: role.into(),
                reason: "not in the repository".into(),
            })?;
        t.targets.insert(path.into(), TargetFile::from_bytes(data));
        self.artifacts.insert(path.into(), data.to_vec());
        Ok(())
    }

    /// Sets the `custom` object of target `path` of role `role` (not yet
    /// published).
    pub fn set_custom(
        &mut self,
        role: &str,
        path: &str,
        custom: serde_json::Value,
    ) -> Result<(), TufError> {
        let file = self
            .targets
            .get_mut(role)
            .and_then(|t| t.targets.get_mut(path))
            .ok_or_else(|| TufError::UnknownRole {
                role: role.into(),
                reason: format!("has no target {path}"),
            })?;
        file.custom = Some(custom);
        Ok(())
    }

    /// Delegates from `delegator` to a new role `name` with one new key,
    /// appended last in search order, and creates its empty targets
    /// (nothing is published).
    pub fn add_delegation(
        &mut self,
        delegator: &str,
        name: &str,
        terminating: bool,
        paths: Option<Vec<String>>,
        path_hash_prefixes: Option<Vec<String>>,
    ) -> Result<(), TufError> {
        let signer = self.new_signer();
        let keyid = signer.key_id();
        let expires = self.root.expires.0;
        let parent = self
            .targets
            .get_mut(delegator)
            .ok_or_else(|| TufError::UnknownRole {
                role: delegator.into(),
                reason: "not in the repository".into(),
            })?;
        let d = parent.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Some(Vec::new()),
            succinct_roles: None,
            unrecognized: BTreeMap::new(),
        });
        d.keys.insert(keyid.clone(), signer.public_key().clone());
        d.roles.get_or_insert_with(Vec::new).push(DelegatedRole {
            name: name.into(),
            keyids: vec![keyid],
            threshold: 1,
            terminating,
            paths,
            path_hash_prefixes,
            unrecognized: BTreeMap::new(),
        });
        self.signers.insert(name.into(), vec![signer]);
        self.targets
            .insert(name.into(), Self::empty_targets(expires));
        Ok(())
    }

    /// The bytes served at URL path `path` (relative to the server root:
    /// `metadata/…` or `targets/…`), or `None` for "404".
    pub fn serve(&self, path: &str) -> Option<Vec<u8>> {
        if let Some(bytes) = self.overrides.get(path) {
            return Some(bytes.clone());
        }
        if let Some(name) = path.strip_prefix("metadata/") {
            let stem = name.strip_suffix(".json")?;
            if stem == "timestamp" {
                return self.latest("timestamp");
            }
            if let Some((v, role)) = stem.split_once('.')
                && let Ok(version) = v.parse::<u64>()
            {
                let role = percent_decode_str(role).decode_utf8().ok()?;
                if role == "root" {
                    let idx = usize::try_from(version).ok()?.checked_sub(1)?;
                    return self.roots.get(idx).cloned();
                }
                if self.root.consistent_snapshot {
                    return self
                        .published
                        .get(role.as_ref())?
                        .iter()
                        .rev()
                        .find(|(ver, _)| *ver == version)
                        .map(|(_, b)| b.clone());
                }
                return None;
            }
            if self.root.consistent_snapshot {
                return None;
            }
            let role = percent_decode_str(stem).decode_utf8().ok()?;
            return self.latest(&role);
        }
        if let Some(target) = path.strip_prefix("targets/") {
            let target = percent_decode_str(target).decode_utf8().ok()?.into_owned();
            if !self.root.consistent_snapshot {
                return self.artifacts.get(&target).cloned();
            }
            let (dir, file) = match target.rsplit_once('/') {
                Some((d, f)) => (format!("{d}/"), f.to_owned()),
                None => (String::new(), target.clone()),
            };
            let (hash, name) = file.split_once('.')?;
            let path = format!("{dir}{name}");
            let data = self.artifacts.get(&path)?;
            let listed = self
                .targets
                .values()
                .filter_map(|t| t.targets.get(&path))
                .any(|f| f.hashes.values().any(|h| h == hash));
            return listed.then(|| data.clone());
        }
        None
    }

    fn latest(&self, role: &str) -> Option<Vec<u8>> {
        self.published.get(role)?.last().map(|(_, b)| b.clone())
    }

    /// The published root of version 1, the one a client starts from.
    pub fn initial_root(&self) -> Option<&[u8]> {
        self.roots.first().map(Vec::as_slice)
    }
}

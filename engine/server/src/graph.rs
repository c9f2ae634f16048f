//! The current metadata of a repository and its delegation graph: the
//! newest root, timestamp, snapshot, top-level targets and every delegated
//! targets role the snapshot lists, and the catalog of releases a TUF
//! client would accept from them.
//!
//! The catalog is built with the client's own search
//! ([`upkeep_core::tuf::search::find_target`]): every path some role lists
//! is looked up from the top-level targets, in the order the specification
//! prescribes, each delegated role verified against the delegator of the
//! path walked. What the search finds is offered; a path listed only by a
//! role the search never reaches (or only through a role that does not
//! verify) is not.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use upkeep_core::tuf::metadata::{
    DelegatedRole, Envelope, Role, Root, Snapshot, TargetFile, Targets, Timestamp,
};
use upkeep_core::tuf::search::{Found, RoleSource, find_target};
use upkeep_core::tuf::{TufError, UpdaterConfig, encode_role};

use crate::decision::Catalog;
use crate::error::ServerError;

/// The current (newest) metadata of a repository.
#[derive(Debug, Clone)]
pub struct Current {
    /// The newest root.
    pub root: Root,
    /// The timestamp.
    pub timestamp: Timestamp,
    /// The snapshot the timestamp names.
    pub snapshot: Snapshot,
    /// The targets the snapshot names, signature-checked against the root.
    pub targets: Targets,
    /// Every delegated targets role the snapshot lists, by name, as parsed
    /// and checked against the snapshot's hashes. Their signatures are
    /// checked per delegation path, by [`Current::source`].
    pub delegated: BTreeMap<String, Envelope<Targets>>,
}

fn parse<T: Role>(md: &Path, name: &str) -> Result<(Envelope<T>, Vec<u8>), ServerError> {
    let path = md.join(name);
    let bytes = std::fs::read(&path).map_err(|e| ServerError::io(&path, e))?;
    Ok((Envelope::<T>::from_bytes(&bytes, name)?, bytes))
}

/// The versioned file name of a targets role: `N.targets.json`,
/// `N.<role, percent-encoded>.json`.
pub fn role_file(role: &str, version: u64) -> String {
    format!("{version}.{}.json", encode_role(role))
}

/// Reads the newest metadata in `md` (`root.json`, `timestamp.json`, the
/// snapshot and targets versions it names, every delegated role the
/// snapshot lists), checking each against the hashes listed for it and
/// the top-level targets signatures against the root.
pub fn load_current(md: &Path) -> Result<Current, ServerError> {
    let (root, _) = parse::<Root>(md, "root.json")?;
    let (timestamp, _) = parse::<Timestamp>(md, "timestamp.json")?;
    let snapshot_meta = timestamp
        .signed
        .snapshot_meta()
        .ok_or_else(|| ServerError::Metadata("timestamp lists no snapshot".into()))?;
    let name = format!("{}.snapshot.json", snapshot_meta.version);
    let (snapshot, bytes) = parse::<Snapshot>(md, &name)?;
    snapshot_meta.verify(&name, &bytes)?;
    let mut delegated = BTreeMap::new();
    let mut targets = None;
    for (entry, meta) in &snapshot.signed.meta {
        let Some(role) = entry.strip_suffix(".json") else {
            continue;
        };
        let name = role_file(role, meta.version);
        let (env, bytes) = parse::<Targets>(md, &name)?;
        meta.verify(&name, &bytes)?;
        if role == "targets" {
            let keys = root
                .signed
                .role("targets")
                .ok_or_else(|| ServerError::Metadata("root has no targets role".into()))?;
            env.verify(&root.signed.keys, keys, "targets", &name)?;
            targets = Some(env.signed);
        } else {
            delegated.insert(role.to_owned(), env);
        }
    }
    let targets = targets.ok_or_else(|| {
        ServerError::Metadata(format!("{} lists no targets.json", snapshot.signed.version))
    })?;
    Ok(Current {
        root: root.signed,
        timestamp: timestamp.signed,
        snapshot: snapshot.signed,
        targets,
        delegated,
    })
}

impl Current {
    /// The targets metadata of `role` (`targets` or a delegated role listed
    /// in the snapshot), signatures not checked.
    pub fn role(&self, role: &str) -> Option<&Targets> {
        if role == "targets" {
            return Some(&self.targets);
        }
        self.delegated.get(role).map(|e| &e.signed)
    }

    /// The roles that delegate to `role`, in the order of the snapshot.
    pub fn delegators_of(&self, role: &str) -> Vec<String> {
        std::iter::once("targets")
            .chain(self.delegated.keys().map(String::as_str))
            .filter(|name| {
                self.role(name)
                    .and_then(|t| t.delegations.as_ref())
                    .is_some_and(|d| d.role_keys(role).is_some())
            })
            .map(str::to_owned)
            .collect()
    }

    /// The graph as the search reads it: each role verified against the
    /// delegator of the path being walked.
    pub fn source(&self) -> Graph<'_> {
        Graph {
            current: self,
            overlay: BTreeMap::new(),
            verify: true,
            verified: BTreeSet::new(),
        }
    }

    /// The graph with the content of some roles replaced by `overlay`
    /// (edits not signed yet), signatures not checked: where a search
    /// would lead once the edits are published.
    pub fn source_with(&self, overlay: BTreeMap<String, Targets>) -> Graph<'_> {
        Graph {
            current: self,
            overlay,
            verify: false,
            verified: BTreeSet::new(),
        }
    }

    /// Looks `path` up as a client would.
    pub fn find(&self, path: &str) -> Result<Option<Found>, TufError> {
        find_target(
            &mut self.source(),
            path,
            UpdaterConfig::default().max_delegations,
        )
    }

    /// The releases a TUF client would accept: every path listed by some
    /// role, looked up through the graph; what the search finds for it is
    /// what is offered.
    pub fn catalog(&self) -> Catalog {
        let mut paths = BTreeSet::new();
        paths.extend(self.targets.targets.keys());
        for env in self.delegated.values() {
            paths.extend(env.signed.targets.keys());
        }
        let mut source = self.source();
        let max = UpdaterConfig::default().max_delegations;
        let mut files: Vec<(String, TargetFile)> = Vec::new();
        for path in paths {
            match find_target(&mut source, path, max) {
                Ok(Some(found)) => files.push((path.clone(), found.file)),
                Ok(None) => {
                    tracing::debug!(target = %path, "not reachable through the delegations")
                }
                Err(e) => tracing::warn!(target = %path, error = %e, "not offered"),
            }
        }
        Catalog::from_files(files.iter().map(|(p, f)| (p, f)))
    }
}

/// [`Current`] as a [`RoleSource`].
#[derive(Debug)]
pub struct Graph<'a> {
    current: &'a Current,
    overlay: BTreeMap<String, Targets>,
    verify: bool,
    verified: BTreeSet<(String, String)>,
}

impl RoleSource for Graph<'_> {
    fn load(&mut self, role: &str, delegator: &str) -> Result<&Targets, TufError> {
        let current = self.current;
        if self.overlay.contains_key(role) {
            return Ok(&self.overlay[role]);
        }
        if role == "targets" {
            return Ok(&current.targets);
        }
        let env = current
            .delegated
            .get(role)
            .ok_or_else(|| TufError::UnknownRole {
                role: role.into(),
                reason: "not listed in the snapshot".into(),
            })?;
        let edge = (delegator.to_owned(), role.to_owned());
        if self.verify && !self.verified.contains(&edge) {
            let delegations = current
                .role(delegator)
                .and_then(|t| t.delegations.as_ref())
                .ok_or_else(|| TufError::BadDelegation {
                    role: role.into(),
                    reason: format!("{delegator:?} has no delegations"),
                })?;
            let file = role_file(role, env.signed.version);
            delegations.verify_delegated(env, role, delegator, &file)?;
            self.verified.insert(edge);
        }
        Ok(&env.signed)
    }
}

/// One delegation of the graph, as [`Current::delegations`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DelegationInfo {
    /// The delegated role.
    pub role: String,
    /// The role delegating it.
    pub delegator: String,
    /// How deep it is (1: delegated by the top-level targets).
    pub depth: usize,
    /// Path patterns, for a path delegation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Hash prefixes, for a hashed bin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Key ids.
    pub keyids: Vec<String>,
    /// Threshold.
    pub threshold: u64,
    /// Whether it is terminating.
    pub terminating: bool,
    /// The version of its metadata the snapshot lists (none yet: the
    /// role has not published).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// How many targets its metadata lists.
    pub targets: usize,
}

impl Current {
    /// Every delegation reachable from the top-level targets, in search
    /// order (pre-order, each delegator's roles in their listed order);
    /// a role reached twice is listed once per delegator, its own
    /// delegations once.
    pub fn delegations(&self) -> Vec<DelegationInfo> {
        let children = |role: &str, depth: usize| -> Vec<(String, DelegatedRole, usize)> {
            self.role(role)
                .and_then(|t| t.delegations.as_ref())
                .and_then(|d| d.roles.as_ref())
                .map(|roles| {
                    roles
                        .iter()
                        .rev()
                        .map(|r| (role.to_owned(), r.clone(), depth + 1))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut out = Vec::new();
        let mut expanded = BTreeSet::from(["targets".to_owned()]);
        let mut stack = children("targets", 0);
        while let Some((delegator, r, depth)) = stack.pop() {
            let child = self.role(&r.name);
            out.push(DelegationInfo {
                role: r.name.clone(),
                delegator,
                depth,
                paths: r.paths.clone(),
                path_hash_prefixes: r.path_hash_prefixes.clone(),
                keyids: r.keyids.clone(),
                threshold: r.threshold,
                terminating: r.terminating,
                version: child.map(|t| t.version),
                targets: child.map_or(0, |t| t.targets.len()),
            });
            if expanded.insert(r.name.clone()) {
                stack.extend(children(&r.name, depth));
            }
        }
        out
    }
}

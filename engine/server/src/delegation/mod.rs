//! Delegated targets roles: a team signs its own apps with its own key.
//!
//! `repo delegate` adds a role to a delegator's metadata (the top-level
//! targets, or another delegated role for nested delegations) with the
//! paths it is trusted for, its keys and threshold, and whether it is
//! terminating; optionally it splits the role into hashed bins. `repo add
//! --role` publishes a release into a role with that role's keys only (plus
//! the online snapshot and timestamp keys); `repo undelegate` and `repo
//! rotate --role` revoke or replace a role's keys by re-signing its
//! delegator.
//!
//! Key files of delegated roles live in `KEYDIR/delegated/<role>-<i>.key`;
//! a team that keeps its private key gives only its public key
//! (`--public-key`) and signs with `--role-key FILE`. Every operation
//! stages new metadata versions through [`Publication`] and commits with
//! `timestamp.json`; on failure, staged files, generated keys and moved key
//! files are put back.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use upkeep_core::tuf::metadata::{DelegatedRole, Delegations, RoleKeys, Targets, path_matches};
use upkeep_core::tuf::repository::Repository;
use upkeep_core::tuf::search::find_target;
use upkeep_core::tuf::{Ed25519Signer, Key, Signer, UpdaterConfig};

use crate::error::ServerError;
use crate::graph::Current;
use crate::keys::{self, DELEGATED_KEYS_DIR, delegated_key_file};
use crate::publish::{Published, commit, staging};
use crate::repo::{NewRelease, RETIRED_KEYS_DIR, Repo, prepare_release};

/// Options of [`Repo::delegate`].
#[derive(Debug, Clone)]
pub struct DelegateOptions {
    /// The new role's name.
    pub name: String,
    /// The delegating role: `targets` or a delegated role (nested).
    pub parent: String,
    /// Path patterns the role is trusted for (shell-style per `/`
    /// component, as in TUF: `apps/org.team-a.*/*/*`).
    pub paths: Vec<String>,
    /// Whether the search for a matching path ends with this role.
    pub terminating: bool,
    /// How many fresh keys to generate (without `public_keys`).
    pub keys: usize,
    /// How many of the keys must sign.
    pub threshold: u64,
    /// The role's ed25519 public keys (hex), when the team keeps its
    /// private keys; then no key is generated and the role's first
    /// metadata is the team's first `repo add --role`.
    pub public_keys: Vec<String>,
    /// Split the role into this many hashed bins (a power of two).
    pub bins: Option<u32>,
    /// Key files of the parent role (default: the key directory's).
    pub parent_keys: Vec<PathBuf>,
}

impl Default for DelegateOptions {
    fn default() -> Self {
        DelegateOptions {
            name: String::new(),
            parent: "targets".into(),
            paths: Vec::new(),
            terminating: false,
            keys: 1,
            threshold: 1,
            public_keys: Vec::new(),
            bins: None,
            parent_keys: Vec::new(),
        }
    }
}

/// What [`Repo::delegate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegated {
    /// The new role.
    pub role: String,
    /// Its delegator.
    pub parent: String,
    /// Its key ids.
    pub key_ids: Vec<String>,
    /// The key files generated (none with public keys).
    pub key_files: Vec<PathBuf>,
    /// The hashed bins, when asked for.
    pub bins: Vec<String>,
    /// The metadata versions now published.
    pub published: Published,
}

/// What [`Repo::undelegate`] and [`Repo::rotate_role`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleKeysChanged {
    /// The role.
    pub role: String,
    /// Its delegator, re-signed.
    pub parent: String,
    /// The key ids it had.
    pub old_key_ids: Vec<String>,
    /// The key ids it has now (none after `undelegate`).
    pub new_key_ids: Vec<String>,
    /// Key files generated.
    pub key_files: Vec<PathBuf>,
    /// Where the old key files went.
    pub retired: Vec<PathBuf>,
    /// Whether the role's own metadata was re-signed with the new keys
    /// (not when only public keys were given: the team publishes next).
    pub resigned: bool,
    /// The metadata versions now published.
    pub published: Published,
}

/// Checks a delegated role name: 1 to 64 characters from `a-z 0-9 . _ -`,
/// starting with a letter or digit, not a top-level role.
pub fn check_role_name(name: &str) -> Result<(), ServerError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && !upkeep_core::tuf::metadata::TOP_LEVEL_ROLES.contains(&name);
    if !ok {
        return Err(ServerError::InvalidRoleName { name: name.into() });
    }
    Ok(())
}

/// Checks that a path pattern can match a release file
/// `apps/<app id, lower case>/<version>/<file>`.
pub fn check_release_pattern(pattern: &str) -> Result<(), ServerError> {
    let parts: Vec<&str> = pattern.split('/').collect();
    let refuse = |reason: String| ServerError::PatternMatchesNoRelease {
        pattern: pattern.into(),
        reason,
    };
    if parts.len() != 4 {
        return Err(refuse(format!(
            "it has {} component(s) and patterns match component by component",
            parts.len()
        )));
    }
    if !path_matches(parts[0], crate::decision::APPS_DIR) {
        return Err(refuse("its first component does not match apps".into()));
    }
    if parts[1].chars().any(|c| c.is_ascii_uppercase()) {
        return Err(refuse("app ids are lower case in release paths".into()));
    }
    Ok(())
}

/// The bins of a role split `count` ways: names and hash prefixes.
/// `count` is a power of two; prefixes have as many hex digits as it takes.
pub fn bins(role: &str, count: u32) -> Result<Vec<(String, Vec<String>)>, ServerError> {
    if !count.is_power_of_two() || !(2..=4096).contains(&count) {
        return Err(ServerError::InvalidBins { bins: count });
    }
    let digits = count.trailing_zeros().div_ceil(4) as usize;
    let total = 16u32.pow(digits as u32);
    let per = total / count;
    Ok((0..count)
        .map(|i| {
            let prefixes: Vec<String> = (i * per..(i + 1) * per)
                .map(|p| format!("{p:0digits$x}"))
                .collect();
            let name = match (prefixes.first(), prefixes.last()) {
                (Some(lo), Some(hi)) if lo != hi => format!("{role}-{lo}-{hi}"),
                (Some(lo), _) => format!("{role}-{lo}"),
                _ => role.to_owned(),
            };
            (name, prefixes)
        })
        .collect())
}

fn parse_public_key(hex_key: &str) -> Result<Key, ServerError> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ServerError::InvalidPublicKey {
            key: hex_key.into(),
        })?;
    Ok(Key::ed25519(&bytes))
}

fn check_threshold(threshold: u64, keys: usize) -> Result<(), ServerError> {
    if threshold == 0 || threshold > keys as u64 {
        return Err(ServerError::BadThreshold { threshold, keys });
    }
    Ok(())
}

/// The delegator of `role` and the keys it gives it.
fn delegation_of(current: &Current, role: &str) -> Result<(String, RoleKeys), ServerError> {
    let unknown = || ServerError::UnknownRole { role: role.into() };
    let parent = current
        .delegators_of(role)
        .into_iter()
        .next()
        .ok_or_else(unknown)?;
    let keys = current
        .role(&parent)
        .and_then(|t| t.delegations.as_ref())
        .and_then(|d| d.role_keys(role))
        .ok_or_else(unknown)?;
    Ok((parent, keys))
}

/// Loads the signers of delegated `role`: the `given` key files, else
/// `KEYDIR/delegated/<role>-<i>.key`; each must be one of `keys`, and at
/// least the threshold must be found.
fn role_signers(
    keys_dir: &Path,
    role: &str,
    keys: &RoleKeys,
    given: &[PathBuf],
) -> Result<Vec<Ed25519Signer>, ServerError> {
    let candidates: Vec<PathBuf> = if given.is_empty() {
        (1..=keys.keyids.len().max(1))
            .map(|i| keys_dir.join(delegated_key_file(role, i)))
            .filter(|p| p.exists())
            .collect()
    } else {
        given.to_vec()
    };
    let mut signers: Vec<Ed25519Signer> = Vec::new();
    for path in candidates {
        let signer = keys::load_ed25519(&path)?;
        if !keys.keyids.contains(&signer.key_id()) {
            return Err(ServerError::key(
                &path,
                format!("not a key of role {role:?} in its delegator's metadata"),
            ));
        }
        if !signers.iter().any(|s| s.key_id() == signer.key_id()) {
            signers.push(signer);
        }
    }
    if (signers.len() as u64) < keys.threshold {
        return Err(ServerError::RoleKeysMissing {
            role: role.into(),
            found: signers.len(),
            threshold: keys.threshold,
            hint: delegated_key_file(role, 1).display().to_string(),
        });
    }
    Ok(signers)
}

/// The signers of the delegator `parent`: the top-level targets key, or a
/// delegated role's keys.
fn delegator_signers(
    repo: &Repo,
    keys_dir: &Path,
    current: &Current,
    parent: &str,
    given: &[PathBuf],
) -> Result<Vec<Ed25519Signer>, ServerError> {
    if parent == "targets" {
        return Ok(vec![repo.signer(keys_dir, &current.root, "targets")?]);
    }
    let (_, keys) = delegation_of(current, parent)?;
    role_signers(keys_dir, parent, &keys, given)
}

/// The metadata of `role` to edit: the current one, else empty.
fn editable(current: &Current, role: &str) -> Targets {
    current
        .role(role)
        .cloned()
        .unwrap_or_else(|| Repository::empty_targets(time::OffsetDateTime::now_utc()))
}

/// Key files moved aside, put back on failure.
#[derive(Debug, Default)]
struct KeyMoves {
    generated: Vec<PathBuf>,
    renamed: Vec<(PathBuf, PathBuf)>,
    created_dirs: Vec<PathBuf>,
}

impl KeyMoves {
    /// Creates the folders of `path` that are missing, remembering them.
    fn make_parent(&mut self, path: &Path) -> Result<(), ServerError> {
        let mut missing = Vec::new();
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            missing.push(d.to_owned());
            dir = d.parent();
        }
        for d in missing.into_iter().rev() {
            fs::create_dir(&d).map_err(|e| ServerError::io(&d, e))?;
            self.created_dirs.push(d);
        }
        Ok(())
    }

    fn generate(&mut self, path: &Path) -> Result<Ed25519Signer, ServerError> {
        self.make_parent(path)?;
        let signer = keys::generate_ed25519(path)?;
        self.generated.push(path.to_owned());
        Ok(signer)
    }

    fn rename(&mut self, from: &Path, to: &Path) -> Result<(), ServerError> {
        self.make_parent(to)?;
        if to.exists() {
            return Err(ServerError::key(to, "already exists"));
        }
        fs::rename(from, to).map_err(|e| ServerError::io(from, e))?;
        self.renamed.push((to.to_owned(), from.to_owned()));
        Ok(())
    }

    fn undo(&self) {
        for (from, to) in self.renamed.iter().rev() {
            let _ = fs::rename(from, to);
        }
        for p in &self.generated {
            let _ = fs::remove_file(p);
        }
        for d in self.created_dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

/// Moves the key files of `role` that are among `old_ids` to
/// `KEYDIR/retired/delegated/<role>-<i>.v<N>.key` (N: the delegator's last
/// version trusting them).
fn retire_role_keys(
    moves: &mut KeyMoves,
    keys_dir: &Path,
    role: &str,
    count: usize,
    version: u64,
) -> Result<Vec<PathBuf>, ServerError> {
    let mut retired = Vec::new();
    for i in 1..=count.max(1) {
        let from = keys_dir.join(delegated_key_file(role, i));
        if !from.exists() {
            continue;
        }
        let to = keys_dir
            .join(RETIRED_KEYS_DIR)
            .join(DELEGATED_KEYS_DIR)
            .join(format!("{role}-{i}.v{version}.key"));
        moves.rename(&from, &to)?;
        retired.push(to);
    }
    Ok(retired)
}

/// Runs `body` with the staged-file list and the key moves it records;
/// when it fails, staged files are removed and key files put back.
fn with_key_moves<T>(
    body: impl FnOnce(&mut Vec<PathBuf>, &mut KeyMoves) -> Result<T, ServerError>,
) -> Result<T, ServerError> {
    let mut moves = KeyMoves::default();
    let result = staging(|written| body(written, &mut moves));
    if result.is_err() {
        moves.undo();
    }
    result
}

/// The new keys of a role: signers (none for public keys only), public
/// keys, key ids.
type RoleKeySet = (Vec<Ed25519Signer>, Vec<Key>, Vec<String>);

/// The keys of a role: the `public` keys given (no signer), else `count`
/// fresh ones generated at `path(1)` … `path(count)`.
fn new_role_keys(
    moves: &mut KeyMoves,
    public: &[Key],
    count: usize,
    path: impl Fn(usize) -> PathBuf,
) -> Result<RoleKeySet, ServerError> {
    let mut signers = Vec::new();
    let mut keys = public.to_vec();
    if keys.is_empty() {
        for i in 1..=count {
            let signer = moves.generate(&path(i))?;
            keys.push(signer.public_key().clone());
            signers.push(signer);
        }
    }
    let ids = keys
        .iter()
        .map(Key::key_id)
        .collect::<Result<_, _>>()
        .map_err(ServerError::from)?;
    Ok((signers, keys, ids))
}

fn signer_refs(signers: &[Ed25519Signer]) -> Vec<&Ed25519Signer> {
    signers.iter().collect()
}

/// The bins of `role` in its metadata: hash-prefix delegations.
fn bins_of(targets: &Targets) -> Vec<&DelegatedRole> {
    targets
        .delegations
        .as_ref()
        .and_then(|d| d.roles.as_ref())
        .map(|roles| {
            roles
                .iter()
                .filter(|r| r.path_hash_prefixes.is_some())
                .collect()
        })
        .unwrap_or_default()
}

/// Adds (or replaces) a delegation in `targets`, with its keys.
fn add_delegation(targets: &mut Targets, delegation: DelegatedRole, keys: &[Key]) {
    let d = targets.delegations.get_or_insert_with(|| Delegations {
        keys: BTreeMap::new(),
        roles: Some(Vec::new()),
        succinct_roles: None,
        unrecognized: BTreeMap::new(),
    });
    for k in keys {
        if let Ok(id) = k.key_id() {
            d.keys.insert(id, k.clone());
        }
    }
    let roles = d.roles.get_or_insert_with(Vec::new);
    match roles.iter().position(|r| r.name == delegation.name) {
        Some(i) => roles[i] = delegation,
        None => roles.push(delegation),
    }
    prune_keys(targets);
}

/// Removes delegation `role` from `targets`.
fn remove_delegation(targets: &mut Targets, role: &str) {
    if let Some(roles) = targets.delegations.as_mut().and_then(|d| d.roles.as_mut()) {
        roles.retain(|r| r.name != role);
    }
    prune_keys(targets);
}

/// Drops keys no delegation uses, and empty delegations.
fn prune_keys(targets: &mut Targets) {
    let Some(d) = targets.delegations.as_mut() else {
        return;
    };
    let roles = d.roles.clone().unwrap_or_default();
    d.keys
        .retain(|id, _| roles.iter().any(|r| r.keyids.contains(id)));
    if roles.is_empty() && d.succinct_roles.is_none() {
        targets.delegations = None;
    }
}

mod release;
mod roles;

#[cfg(test)]
mod tests;

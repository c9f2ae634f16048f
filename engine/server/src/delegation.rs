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

impl Repo {
    /// Delegates release paths to a new role (see [`DelegateOptions`]):
    /// re-signs the parent with the delegation and publishes the role's
    /// empty first version (and its bins) signed with freshly generated
    /// keys. With public keys only, the role's first metadata is the
    /// team's first publication. Needs the parent's key, `snapshot.key`
    /// and `timestamp.key`.
    pub fn delegate(
        &self,
        keys_dir: Option<&Path>,
        options: &DelegateOptions,
    ) -> Result<Delegated, ServerError> {
        let name = options.name.as_str();
        check_role_name(name)?;
        if options.parent != "targets" {
            check_role_name(&options.parent)?;
        }
        if options.paths.is_empty() {
            return Err(ServerError::NoPaths);
        }
        for p in &options.paths {
            check_release_pattern(p)?;
        }
        let public: Vec<Key> = options
            .public_keys
            .iter()
            .map(|k| parse_public_key(k))
            .collect::<Result<_, _>>()?;
        let key_count = if public.is_empty() {
            options.keys
        } else {
            public.len()
        };
        if key_count == 0 || key_count > 64 {
            return Err(ServerError::BadKeyCount { keys: key_count });
        }
        check_threshold(options.threshold, key_count)?;
        let bin_plan = match options.bins {
            Some(_) if !public.is_empty() => {
                return Err(ServerError::BinsNeedRoleKeys { role: name.into() });
            }
            Some(n) => bins(name, n)?,
            None => Vec::new(),
        };

        let current = self.current()?;
        for role in std::iter::once(name).chain(bin_plan.iter().map(|(b, _)| b.as_str())) {
            if let Some(delegator) = current.delegators_of(role).into_iter().next() {
                return Err(ServerError::RoleExists {
                    role: role.into(),
                    delegator,
                });
            }
        }
        if !public.is_empty() && current.delegated.contains_key(name) {
            // The old metadata would be the role's content until the team
            // publishes: the new team would inherit the old one's releases.
            return Err(ServerError::RoleNameRetired { role: name.into() });
        }
        if options.parent != "targets" && current.delegators_of(&options.parent).is_empty() {
            return Err(ServerError::UnknownRole {
                role: options.parent.clone(),
            });
        }
        let keys_dir = self.keys_dir(keys_dir);
        let parent_signers = delegator_signers(
            self,
            &keys_dir,
            &current,
            &options.parent,
            &options.parent_keys,
        )?;
        let (snapshot_signer, timestamp_signer) = self.online_signers(&keys_dir, &current.root)?;

        with_key_moves(|written, moves| {
            let (signers, keys, key_ids) = new_role_keys(moves, &public, key_count, |i| {
                keys_dir.join(delegated_key_file(name, i))
            })?;
            let mut publication = self.publication(&current);
            let mut parent = editable(&current, &options.parent);
            let delegation = DelegatedRole {
                name: name.into(),
                keyids: key_ids.clone(),
                threshold: options.threshold,
                terminating: options.terminating,
                paths: Some(options.paths.clone()),
                path_hash_prefixes: None,
                unrecognized: BTreeMap::new(),
            };
            add_delegation(&mut parent, delegation, &keys);
            publication.stage_targets(
                &options.parent,
                parent,
                &signer_refs(&parent_signers),
                written,
            )?;
            if !signers.is_empty() {
                let mut role = Repository::empty_targets(time::OffsetDateTime::now_utc());
                for (bin, prefixes) in &bin_plan {
                    let delegation = DelegatedRole {
                        name: bin.clone(),
                        keyids: key_ids.clone(),
                        threshold: options.threshold,
                        terminating: true,
                        paths: None,
                        path_hash_prefixes: Some(prefixes.clone()),
                        unrecognized: BTreeMap::new(),
                    };
                    add_delegation(&mut role, delegation, &keys);
                    let empty = Repository::empty_targets(time::OffsetDateTime::now_utc());
                    publication.stage_targets(bin, empty, &signer_refs(&signers), written)?;
                }
                publication.stage_targets(name, role, &signer_refs(&signers), written)?;
            }
            let published = publication.publish(&snapshot_signer, &timestamp_signer, written)?;
            Ok(Delegated {
                role: name.into(),
                parent: options.parent.clone(),
                key_ids,
                key_files: moves.generated.clone(),
                bins: bin_plan.iter().map(|(b, _)| b.clone()).collect(),
                published,
            })
        })
    }

    /// Revokes a delegation: re-signs the delegator without it, so clients
    /// no longer trust anything the role (or roles below it) signs. The
    /// role's last metadata stays listed in the snapshot (a snapshot may
    /// never drop a file clients know), unreachable. Its key files move to
    /// `KEYDIR/retired/delegated/`.
    pub fn undelegate(
        &self,
        keys_dir: Option<&Path>,
        role: &str,
        parent_keys: &[PathBuf],
    ) -> Result<RoleKeysChanged, ServerError> {
        check_role_name(role)?;
        let current = self.current()?;
        let (parent, old) = delegation_of(&current, role)?;
        let keys_dir = self.keys_dir(keys_dir);
        let parent_signers = delegator_signers(self, &keys_dir, &current, &parent, parent_keys)?;
        let (snapshot_signer, timestamp_signer) = self.online_signers(&keys_dir, &current.root)?;
        let md = self.metadata_dir();
        with_key_moves(|written, moves| {
            let mut publication = self.publication(&current);
            let parent_version = publication.next_version(&parent) - 1;
            let mut edited = editable(&current, &parent);
            remove_delegation(&mut edited, role);
            publication.stage_targets(&parent, edited, &signer_refs(&parent_signers), written)?;
            let (published, timestamp_bytes) =
                publication.seal(&snapshot_signer, &timestamp_signer, written)?;
            let retired =
                retire_role_keys(moves, &keys_dir, role, old.keyids.len(), parent_version)?;
            commit(&md, &timestamp_bytes)?;
            Ok(RoleKeysChanged {
                role: role.into(),
                parent: parent.clone(),
                old_key_ids: old.keyids.clone(),
                new_key_ids: Vec::new(),
                key_files: Vec::new(),
                retired,
                resigned: false,
                published,
            })
        })
    }

    /// Replaces the keys of delegated `role` (as many as it had, the same
    /// threshold): freshly generated ones, or the `public_keys` a team
    /// gives. The delegator is re-signed listing the new keys; with
    /// generated keys the role (and its bins) are re-signed with them too,
    /// while with public keys the team's next `repo add --role` signs it.
    /// Metadata signed by the old keys is refused by clients from then on.
    /// The old key files move to `KEYDIR/retired/delegated/`.
    pub fn rotate_role(
        &self,
        keys_dir: Option<&Path>,
        role: &str,
        public_keys: &[String],
        parent_keys: &[PathBuf],
    ) -> Result<RoleKeysChanged, ServerError> {
        check_role_name(role)?;
        let public: Vec<Key> = public_keys
            .iter()
            .map(|k| parse_public_key(k))
            .collect::<Result<_, _>>()?;
        let current = self.current()?;
        let (parent, old) = delegation_of(&current, role)?;
        let role_md = editable(&current, role);
        let bin_names: Vec<String> = bins_of(&role_md)
            .into_iter()
            .filter(|b| b.keyids == old.keyids)
            .map(|b| b.name.clone())
            .collect();
        if !public.is_empty() && !bin_names.is_empty() {
            return Err(ServerError::BinsNeedRoleKeys { role: role.into() });
        }
        let count = if public.is_empty() {
            old.keyids.len().max(1)
        } else {
            public.len()
        };
        let threshold = old.threshold.min(count as u64);
        let keys_dir = self.keys_dir(keys_dir);
        let parent_signers = delegator_signers(self, &keys_dir, &current, &parent, parent_keys)?;
        let (snapshot_signer, timestamp_signer) = self.online_signers(&keys_dir, &current.root)?;
        let staged_name = |i: usize| {
            let mut p = keys_dir.join(delegated_key_file(role, i)).into_os_string();
            p.push(".new");
            PathBuf::from(p)
        };
        let md = self.metadata_dir();
        with_key_moves(|written, moves| {
            let (signers, keys, key_ids) = new_role_keys(moves, &public, count, staged_name)?;
            let mut publication = self.publication(&current);
            let parent_version = publication.next_version(&parent) - 1;
            let mut edited = editable(&current, &parent);
            let mut delegation = edited
                .delegations
                .as_ref()
                .and_then(|d| d.roles.as_ref())
                .and_then(|roles| roles.iter().find(|r| r.name == role))
                .cloned()
                .ok_or_else(|| ServerError::UnknownRole { role: role.into() })?;
            delegation.keyids = key_ids.clone();
            delegation.threshold = threshold;
            add_delegation(&mut edited, delegation, &keys);
            publication.stage_targets(&parent, edited, &signer_refs(&parent_signers), written)?;
            if !signers.is_empty() {
                let mut role_md = role_md.clone();
                for bin in &bin_names {
                    if let Some(mut b) = bins_of(&role_md)
                        .into_iter()
                        .find(|b| &b.name == bin)
                        .cloned()
                    {
                        b.keyids = key_ids.clone();
                        b.threshold = threshold;
                        add_delegation(&mut role_md, b, &keys);
                    }
                    publication.stage_targets(
                        bin,
                        editable(&current, bin),
                        &signer_refs(&signers),
                        written,
                    )?;
                }
                publication.stage_targets(role, role_md, &signer_refs(&signers), written)?;
            }
            let (published, timestamp_bytes) =
                publication.seal(&snapshot_signer, &timestamp_signer, written)?;
            let retired =
                retire_role_keys(moves, &keys_dir, role, old.keyids.len(), parent_version)?;
            let mut key_files = Vec::new();
            for i in 1..=signers.len() {
                let to = keys_dir.join(delegated_key_file(role, i));
                moves.rename(&staged_name(i), &to)?;
                key_files.push(to);
            }
            commit(&md, &timestamp_bytes)?;
            Ok(RoleKeysChanged {
                role: role.into(),
                parent: parent.clone(),
                old_key_ids: old.keyids.clone(),
                new_key_ids: key_ids,
                key_files,
                retired,
                resigned: !signers.is_empty(),
                published,
            })
        })
    }

    /// Re-signs delegated `role` (and its hashed bins) unchanged with a
    /// fresh expiry date (`expiry_days.targets`), with the role's keys (the
    /// `role_keys` files, else `KEYDIR/delegated/<role>-<i>.key`), plus new
    /// snapshot and timestamp versions. A team whose role would expire
    /// before its next release runs it.
    pub fn refresh_role(
        &self,
        keys_dir: Option<&Path>,
        role: &str,
        role_keys: &[PathBuf],
    ) -> Result<Published, ServerError> {
        check_role_name(role)?;
        let current = self.current()?;
        let (_, keys) = delegation_of(&current, role)?;
        let keys_dir = self.keys_dir(keys_dir);
        let signers = role_signers(&keys_dir, role, &keys, role_keys)?;
        let (snapshot_signer, timestamp_signer) = self.online_signers(&keys_dir, &current.root)?;
        let role_md = editable(&current, role);
        staging(|written| {
            let mut publication = self.publication(&current);
            for bin in bins_of(&role_md) {
                if bin.keyids.iter().any(|id| keys.keyids.contains(id)) {
                    let bin_md = editable(&current, &bin.name);
                    publication.stage_targets(
                        &bin.name,
                        bin_md,
                        &signer_refs(&signers),
                        written,
                    )?;
                }
            }
            publication.stage_targets(role, role_md.clone(), &signer_refs(&signers), written)?;
            publication.publish(&snapshot_signer, &timestamp_signer, written)
        })
    }

    /// Publishes a release into delegated `role` with that role's keys
    /// (the `role_keys` files, else `KEYDIR/delegated/<role>-<i>.key`),
    /// plus `snapshot.key` and `timestamp.key`. A role split into hashed
    /// bins gets each file in its bin. Refused before anything is written
    /// when the search from the top-level targets would not reach the
    /// role for the release's paths (not delegated, or found first in
    /// another role).
    pub fn add_to_role(
        &self,
        keys_dir: Option<&Path>,
        role: &str,
        role_keys: &[PathBuf],
        release: &NewRelease,
    ) -> Result<Published, ServerError> {
        if role == "targets" {
            return self.add(keys_dir, release);
        }
        check_role_name(role)?;
        let prepared = prepare_release(release)?;
        let current = self.current()?;
        let (_, keys) = delegation_of(&current, role)?;
        let keys_dir = self.keys_dir(keys_dir);
        let signers = role_signers(&keys_dir, role, &keys, role_keys)?;
        let (snapshot_signer, timestamp_signer) = self.online_signers(&keys_dir, &current.root)?;

        // Where each file goes: the role, or the bin of the role covering
        // its path; then check that a client's search would find it there.
        let base = editable(&current, role);
        let mut homes: Vec<(String, String)> = Vec::new();
        for name in &prepared.names {
            let path = prepared.target_path(name);
            let home = bins_of(&base)
                .into_iter()
                .find(|b| b.matches(&path))
                .map_or_else(|| role.to_owned(), |b| b.name.clone());
            homes.push((path, home));
        }
        let mut overlay: BTreeMap<String, Targets> = BTreeMap::new();
        for (path, home) in &homes {
            let md = overlay
                .entry(home.clone())
                .or_insert_with(|| editable(&current, home));
            md.targets.insert(
                path.clone(),
                upkeep_core::tuf::metadata::TargetFile::from_bytes(b""),
            );
        }
        overlay.entry(role.to_owned()).or_insert(base);
        prepared.check_unpublished(&current.catalog())?;
        let max = UpdaterConfig::default().max_delegations;
        for (path, home) in &homes {
            let mut source = current.source_with(overlay.clone());
            match find_target(&mut source, path, max)? {
                Some(found) if &found.role == home => {}
                Some(found) => {
                    return Err(ServerError::ReleaseShadowed {
                        path: path.clone(),
                        role: role.into(),
                        by: found.role,
                    });
                }
                None => {
                    return Err(ServerError::PathNotDelegated {
                        role: role.into(),
                        path: path.clone(),
                    });
                }
            }
        }

        staging(|written| {
            let files = self.copy_release(&prepared, release, written)?;
            let mut changed: BTreeMap<String, Targets> = BTreeMap::new();
            for ((path, file), (_, home)) in files.into_iter().zip(&homes) {
                changed
                    .entry(home.clone())
                    .or_insert_with(|| editable(&current, home))
                    .targets
                    .insert(path, file);
            }
            let mut publication = self.publication(&current);
            if current.role(role).is_none() && !changed.contains_key(role) {
                // The role's first metadata (it lists its bins).
                publication.stage_targets(
                    role,
                    editable(&current, role),
                    &signer_refs(&signers),
                    written,
                )?;
            }
            for (home, targets) in changed {
                publication.stage_targets(&home, targets, &signer_refs(&signers), written)?;
            }
            publication.publish(&snapshot_signer, &timestamp_signer, written)
        })
    }
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

#[cfg(test)]
#[path = "delegation_tests.rs"]
mod tests;

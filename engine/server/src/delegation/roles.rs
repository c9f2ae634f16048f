//! Creating, revoking and re-keying delegated roles: `repo delegate`,
//! `repo undelegate`, `repo rotate --role ROLE`.

use super::*;

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
}

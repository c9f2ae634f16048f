//! Publishing into a delegated role with the team's own keys: `repo add
//! --role ROLE`, `repo refresh --role ROLE`.

use super::*;

impl Repo {
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

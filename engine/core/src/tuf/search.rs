//! The search for a target through the delegation graph (specification
//! 1.0, 5.6.7, "Preorder depth-first search of delegated targets roles").
//!
//! The client ([`crate::tuf::Updater`]) and the repository tools walk the
//! graph with this one function, so a repository offers exactly what a
//! client accepts. Where the metadata of a role comes from, and how it is
//! verified against the delegator of the path being walked, is the
//! [`RoleSource`]'s business.

use crate::tuf::error::TufError;
use crate::tuf::metadata::{TargetFile, Targets};

/// Gives the search the metadata of a targets role, verified against the
/// keys its delegator gives it.
pub trait RoleSource {
    /// The metadata of `role` as reached from `delegator` (`root` for the
    /// top-level `targets`), verified against `delegator`'s delegation of
    /// it. A role reached through two delegators must be verified through
    /// each: trust never carries over from one path to another.
    fn load(&mut self, role: &str, delegator: &str) -> Result<&Targets, TufError>;
}

/// A target found by [`find_target`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The role whose metadata lists the target.
    pub role: String,
    /// The delegator of that role on the path the search took.
    pub delegator: String,
    /// The target's length, hashes and custom data.
    pub file: TargetFile,
}

/// Looks `target_path` up from the top-level targets: pre-order depth
/// first, delegations in their listed order, a delegation followed only
/// when its `paths` (or hash prefixes, or succinct bin) cover the path, a
/// matching terminating delegation ending the search once its subtree is
/// done. A role already searched is not searched again (its metadata is
/// the same on every path), and at most `max_roles` roles are visited.
///
/// `Ok(None)`: no trusted role lists the path. An error of the source
/// (a role that does not verify, is expired or missing) ends the search.
pub fn find_target<S: RoleSource + ?Sized>(
    source: &mut S,
    target_path: &str,
    max_roles: usize,
) -> Result<Option<Found>, TufError> {
    let mut to_visit: Vec<(String, String)> = vec![("targets".into(), "root".into())];
    let mut visited: Vec<String> = Vec::new();
    while let Some((role, delegator)) = to_visit.pop() {
        if visited.len() > max_roles {
            tracing::warn!(max = max_roles, "too many delegations visited");
            break;
        }
        if visited.contains(&role) {
            continue;
        }
        let targets = source.load(&role, &delegator)?;
        if let Some(file) = targets.targets.get(target_path) {
            return Ok(Some(Found {
                role,
                delegator,
                file: file.clone(),
            }));
        }
        let mut children = Vec::new();
        if let Some(d) = &targets.delegations {
            for child in d.roles_for_target(target_path) {
                let terminating = child.terminating;
                children.push((child.name, role.clone()));
                if terminating {
                    to_visit.clear();
                    break;
                }
            }
        }
        visited.push(role);
        children.reverse();
        to_visit.extend(children);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::tuf::metadata::{DelegatedRole, Delegations};
    use crate::tuf::repository::Repository;

    /// Roles by name, no verification: enough to check the order.
    struct Plain {
        roles: BTreeMap<String, Targets>,
        loads: Vec<(String, String)>,
    }

    impl RoleSource for Plain {
        fn load(&mut self, role: &str, delegator: &str) -> Result<&Targets, TufError> {
            self.loads.push((role.into(), delegator.into()));
            self.roles.get(role).ok_or_else(|| TufError::UnknownRole {
                role: role.into(),
                reason: "absent".into(),
            })
        }
    }

    fn delegate(parent: &mut Targets, name: &str, paths: &[&str], terminating: bool) {
        let d = parent.delegations.get_or_insert_with(|| Delegations {
            keys: BTreeMap::new(),
            roles: Some(Vec::new()),
            succinct_roles: None,
            unrecognized: BTreeMap::new(),
        });
        d.roles.get_or_insert_with(Vec::new).push(DelegatedRole {
            name: name.into(),
            keyids: vec!["k".into()],
            threshold: 1,
            terminating,
            paths: Some(paths.iter().map(|p| (*p).to_owned()).collect()),
            path_hash_prefixes: None,
            unrecognized: BTreeMap::new(),
        });
    }

    fn graph(terminating: bool) -> Plain {
        let empty = || Repository::empty_targets(time::OffsetDateTime::UNIX_EPOCH);
        let mut top = empty();
        delegate(&mut top, "a", &["*"], terminating);
        delegate(&mut top, "b", &["*"], false);
        let mut a = empty();
        delegate(&mut a, "a1", &["*"], false);
        let mut a1 = empty();
        a1.targets
            .insert("deep".into(), TargetFile::from_bytes(b"a1"));
        let mut b = empty();
        b.targets
            .insert("deep".into(), TargetFile::from_bytes(b"b!"));
        b.targets
            .insert("only-b".into(), TargetFile::from_bytes(b"b"));
        Plain {
            roles: BTreeMap::from([
                ("targets".into(), top),
                ("a".into(), a),
                ("a1".into(), a1),
                ("b".into(), b),
            ]),
            loads: Vec::new(),
        }
    }

    #[test]
    fn depth_first_in_order() {
        let mut g = graph(false);
        let found = find_target(&mut g, "deep", 32).unwrap().unwrap();
        assert_eq!((found.role.as_str(), found.delegator.as_str()), ("a1", "a"));
        let order: Vec<&str> = g.loads.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(order, ["targets", "a", "a1"]);
        g.loads.clear();
        let found = find_target(&mut g, "only-b", 32).unwrap().unwrap();
        assert_eq!(found.role, "b");
        assert_eq!(g.loads.len(), 4);
        assert_eq!(find_target(&mut g, "nowhere", 32).unwrap(), None);
    }

    #[test]
    fn a_terminating_delegation_ends_the_search_after_its_subtree() {
        let mut g = graph(true);
        assert_eq!(find_target(&mut g, "only-b", 32).unwrap(), None);
        let order: Vec<&str> = g.loads.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(order, ["targets", "a", "a1"]);
    }

    #[test]
    fn the_visit_cap_stops_the_search() {
        let mut g = graph(false);
        assert_eq!(find_target(&mut g, "only-b", 1).unwrap(), None);
    }
}

//! Who may ask the daemon for what.
//!
//! - A **per-user** daemon (running as a uid other than 0) serves only its
//!   own uid.
//! - A **system** daemon (uid 0) lets any local user ask for status and
//!   have registered apps checked and updated, as Chromium's system
//!   service does; registering, rolling back and removing apps needs root
//!   or membership of the group the configuration names
//!   (`[service] admin_group`).
//! - An operation in flight may be cancelled by whoever started it and by
//!   anyone allowed to administer.
//!
//! Every refusal is a [`Refusal`]; none changes state.

use crate::ipc::Access;
use crate::peer::Peer;

/// The group allowed to administer a system daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminGroup {
    /// Its name, as configured.
    pub name: String,
    /// Its id.
    pub gid: u32,
}

/// The access rules of one daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// The uid the daemon runs as.
    pub owner: u32,
    /// The group that may administer a system daemon besides root.
    pub admin_group: Option<AdminGroup>,
}

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Another user asked a per-user daemon.
    #[error("refused: this daemon serves uid {owner} only; uid {uid} asked for {op}")]
    NotOwner {
        /// The operation.
        op: &'static str,
        /// The caller.
        uid: u32,
        /// The daemon's uid.
        owner: u32,
    },
    /// An administrative operation from a caller not allowed it.
    #[error(
        "refused: {op} needs root{}; uid {uid} is not allowed",
        .group.as_ref().map(|g| format!(" or group {g}")).unwrap_or_default()
    )]
    NotAdmin {
        /// The operation.
        op: &'static str,
        /// The caller.
        uid: u32,
        /// The admin group, if one is configured.
        group: Option<String>,
    },
    /// A cancel of somebody else's operation.
    #[error(
        "refused: the {op} in flight was started by uid {starter}; uid {uid} may not cancel it"
    )]
    NotYours {
        /// The operation in flight.
        op: &'static str,
        /// The caller.
        uid: u32,
        /// Who started it.
        starter: u32,
    },
}

impl AccessPolicy {
    /// Whether this is the system daemon.
    pub fn is_system(&self) -> bool {
        self.owner == 0
    }

    /// Whether `peer` may administer this daemon.
    pub fn may_administer(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || peer.uid == self.owner
            || self
                .admin_group
                .as_ref()
                .is_some_and(|g| peer.in_group(g.gid))
    }

    /// Whether `peer` may send operation `op`, which needs `access`.
    pub fn check(&self, peer: &Peer, op: &'static str, access: Access) -> Result<(), Refusal> {
        if !self.is_system() {
            return if peer.uid == self.owner {
                Ok(())
            } else {
                Err(Refusal::NotOwner {
                    op,
                    uid: peer.uid,
                    owner: self.owner,
                })
            };
        }
        match access {
            Access::Read | Access::Update => Ok(()),
            Access::Admin if self.may_administer(peer) => Ok(()),
            Access::Admin => Err(Refusal::NotAdmin {
                op,
                uid: peer.uid,
                group: self.admin_group.as_ref().map(|g| g.name.clone()),
            }),
        }
    }

    /// Whether `peer` may cancel operation `op` that uid `starter` started.
    pub fn check_cancel(&self, peer: &Peer, op: &'static str, starter: u32) -> Result<(), Refusal> {
        if peer.uid == starter || self.may_administer(peer) {
            Ok(())
        } else {
            Err(Refusal::NotYours {
                op,
                uid: peer.uid,
                starter,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32) -> Peer {
        // A pid no process has: no supplementary groups.
        Peer {
            uid,
            gid: uid,
            pid: i32::MAX,
        }
    }

    #[test]
    fn a_per_user_daemon_serves_its_own_uid_only() {
        let p = AccessPolicy {
            owner: 1000,
            admin_group: None,
        };
        for access in [Access::Read, Access::Update, Access::Admin] {
            assert!(p.check(&peer(1000), "x", access).is_ok());
            assert!(matches!(
                p.check(&peer(1001), "x", access),
                Err(Refusal::NotOwner { uid: 1001, .. })
            ));
            assert!(p.check(&peer(0), "x", access).is_err());
        }
    }

    #[test]
    fn a_system_daemon_lets_anyone_read_and_update_and_root_or_the_group_administer() {
        let p = AccessPolicy {
            owner: 0,
            admin_group: Some(AdminGroup {
                name: "upkeep-admin".into(),
                gid: 4242,
            }),
        };
        assert!(p.check(&peer(1000), "status", Access::Read).is_ok());
        assert!(p.check(&peer(1000), "update", Access::Update).is_ok());
        let refused = p.check(&peer(1000), "register", Access::Admin).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "refused: register needs root or group upkeep-admin; uid 1000 is not allowed"
        );
        assert!(p.check(&peer(0), "register", Access::Admin).is_ok());
        let mut member = peer(1000);
        member.gid = 4242;
        assert!(p.check(&member, "register", Access::Admin).is_ok());
    }

    #[test]
    fn only_the_starter_or_an_administrator_cancels() {
        let p = AccessPolicy {
            owner: 0,
            admin_group: None,
        };
        assert!(p.check_cancel(&peer(1000), "update", 1000).is_ok());
        assert!(p.check_cancel(&peer(0), "update", 1000).is_ok());
        assert!(matches!(
            p.check_cancel(&peer(1001), "update", 1000),
            Err(Refusal::NotYours { starter: 1000, .. })
        ));
    }
}

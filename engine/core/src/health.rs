//! Health-gated updates: what an app registers to prove a new version
//! works once `current` points at it, the mark that says a check is
//! owed (written with the switch itself, so a process that dies before
//! the check finished leaves it for the next one), and the versions that
//! failed, which are not installed again until a newer one is offered.

use serde::{Deserialize, Serialize};

use crate::state::{AppRecord, PluginRef};
use crate::version::Version;

/// The time a health check gets when the registration gives none.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// The longest time limit a registration may give.
pub const MAX_TIMEOUT_SECS: u64 = 3600;
/// How many failed versions an app's record remembers.
pub const MAX_REJECTED: usize = 8;

/// What runs the check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum HealthCheck {
    /// A qualifier-world plugin, given the live version's directory.
    Plugin {
        /// The plugin.
        plugin: PluginRef,
    },
    /// One of the app's registered commands; exit status 0 is healthy.
    Command {
        /// The command's name.
        name: String,
    },
}

/// An app's health check and its time limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthGate {
    /// What runs.
    pub check: HealthCheck,
    /// Seconds it may take; past them it counts as failed.
    pub timeout_secs: u64,
}

/// A health check owed: the app switched to its recorded version and the
/// check has not passed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthPending {
    /// The version to go back to when the check fails.
    pub previous: Version,
    /// When the switch was made (Unix seconds).
    pub since: i64,
}

/// A version that failed its health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedVersion {
    /// The version.
    pub version: Version,
    /// Why, for a person.
    pub why: String,
    /// When (Unix seconds).
    pub at: i64,
}

/// The failed record of `version`, if `record` has one.
pub fn rejected<'a>(record: &'a AppRecord, version: &Version) -> Option<&'a RejectedVersion> {
    record.rejected.iter().find(|r| r.version == *version)
}

/// The record of an app that failed the check of its recorded version:
/// back at `pending.previous`, no check owed, no previous version kept
/// (the failed one is removed), the failure remembered. Also the failure
/// itself.
pub fn switched_back(
    record: &AppRecord,
    pending: &HealthPending,
    why: &str,
    now: i64,
) -> (AppRecord, RejectedVersion) {
    let failed = RejectedVersion {
        version: record.version.clone(),
        why: why.to_owned(),
        at: now,
    };
    let mut back = record.clone();
    back.version = pending.previous.clone();
    back.previous_version = None;
    back.health_pending = None;
    back.updated_at = Some(now);
    remember(&mut back, failed.clone());
    (back, failed)
}

/// Adds `failed` to the record's failed versions (replacing an older entry
/// for the same version), keeping the newest [`MAX_REJECTED`].
pub fn remember(record: &mut AppRecord, failed: RejectedVersion) {
    record.rejected.retain(|r| r.version != failed.version);
    record.rejected.push(failed);
    if record.rejected.len() > MAX_REJECTED {
        let extra = record.rejected.len() - MAX_REJECTED;
        record.rejected.drain(..extra);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn switching_back_remembers_the_failure_and_owes_nothing() {
        let mut record = AppRecord::new(v("2.0"), "/apps/a".into(), 0);
        record.previous_version = Some(v("1.0"));
        let pending = HealthPending {
            previous: v("1.0"),
            since: 5,
        };
        record.health_pending = Some(pending.clone());
        let (back, failed) = switched_back(&record, &pending, "exit status 3", 9);
        assert_eq!(back.version, v("1.0"));
        assert_eq!(back.previous_version, None);
        assert_eq!(back.health_pending, None);
        assert_eq!(failed.version, v("2.0"));
        assert_eq!(rejected(&back, &v("2.0")).map(|r| r.at), Some(9));
        assert!(rejected(&back, &v("3.0")).is_none());
    }

    #[test]
    fn only_the_newest_failures_are_kept_and_one_per_version() {
        let mut record = AppRecord::new(v("1.0"), "/apps/a".into(), 0);
        for i in 0..12 {
            remember(
                &mut record,
                RejectedVersion {
                    version: v(&format!("2.{i}")),
                    why: "x".into(),
                    at: i,
                },
            );
        }
        remember(
            &mut record,
            RejectedVersion {
                version: v("2.11"),
                why: "again".into(),
                at: 99,
            },
        );
        assert_eq!(record.rejected.len(), MAX_REJECTED);
        assert_eq!(record.rejected.last().unwrap().why, "again");
        assert!(rejected(&record, &v("2.0")).is_none());
    }
}

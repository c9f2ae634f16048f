//! Recording an installed update: the app's `current` switched through the
//! journal, or (for upkeep itself) the staged version left to activation or
//! the staged binary renamed in place; then what the new version made
//! obsolete is removed.

use std::path::{Path, PathBuf};

use upkeep_core::appdir;
use upkeep_core::crash;
use upkeep_core::health::HealthPending;
use upkeep_core::lifecycle;
use upkeep_core::outbox::OutboxEntry;
use upkeep_core::state::{AppRecord, Prefs, SwitchKind};
use upkeep_core::version::Version;

use crate::error::UpdateError;
use crate::files::unix_now;
use crate::observer::Warning;
use crate::pass::Run;
use crate::payload_cache::after_install;

/// How a verified and installed update was committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Committed {
    /// The app's `current` now points at it (recorded).
    Switched,
    /// An updater version installed side by side: activation switches.
    Staged,
    /// A single-binary updater replaced in place: restarted once the pass
    /// ends.
    Replaced(PathBuf),
}

/// What a commit records: the app's record once updated (version, cohort,
/// days as the answer left them) and the events that report the update.
pub(crate) struct Update {
    pub(crate) record: AppRecord,
    pub(crate) events: Vec<OutboxEntry>,
}

impl Run<'_, '_> {
    /// Records the installed version `to` of `id` (at `record` until now),
    /// with the events that report it in the same write.
    pub(crate) fn commit(
        &mut self,
        prefs_path: &Path,
        prefs: &mut Prefs,
        id: &str,
        record: &AppRecord,
        update: Update,
        to: &Version,
    ) -> Result<Committed, UpdateError> {
        let Update {
            record: mut updated,
            events,
        } = update;
        let root = self.env.root;
        let switch_failed = |source| UpdateError::Switch {
            version: to.clone(),
            source,
        };
        if record.updater {
            if let Some(binary) = self.staged_binary.take() {
                let exe = binary.path.clone();
                updated.previous_version = Some(record.version.clone());
                updated.version = to.clone();
                updated.updated_at = Some(unix_now());
                lifecycle::replace_binary(prefs_path, prefs, id, updated, binary, events)
                    .map_err(switch_failed)?;
                after_install(root, id, to, self.env.config.payload_cache_bytes);
                return Ok(Committed::Replaced(exe));
            }
            // The version is recorded when it activates; the pass writes
            // the record and its events.
            prefs.apps.insert(id.to_owned(), updated);
            for entry in events {
                prefs.outbox.push(entry);
            }
            after_install(root, id, to, self.env.config.payload_cache_bytes);
            return Ok(Committed::Staged);
        }
        let dir = &record.install_dir;
        let previous = (appdir::current_version(dir).as_deref()
            == Some(record.version.to_string().as_str())
            && appdir::version_dir(dir, &record.version).is_dir())
        .then(|| record.version.clone());
        updated.version = to.clone();
        updated.updated_at = Some(unix_now());
        updated.previous_version = previous.clone();
        // A version at or below this one is no longer offered: forget the
        // failures up to it.
        updated.rejected.retain(|r| r.version > *to);
        // A health check is owed from the switch on (written with it); a
        // first install has nothing to go back to and is not gated.
        updated.health_pending = match (&updated.health_check, &previous) {
            (Some(_), Some(previous)) => Some(HealthPending {
                previous: previous.clone(),
                since: unix_now(),
            }),
            _ => None,
        };
        if let Err(e) =
            lifecycle::switch_app(prefs_path, prefs, id, SwitchKind::Update, updated, events)
        {
            let _ = appdir::discard(dir, to);
            return Err(switch_failed(e));
        }
        after_install(root, id, to, self.env.config.payload_cache_bytes);
        let mut keep = vec![to];
        keep.extend(previous.as_ref());
        for (path, e) in appdir::prune(dir, &keep) {
            self.observer.warning(&Warning::app(
                id,
                format!("cannot remove the old version {}: {e}", path.display()),
            ));
        }
        crash::point("update.pruned");
        Ok(Committed::Switched)
    }
}

//! Existence checker: an app is present while its install directory exists
//! and, when the registration names a marker, while that marker exists
//! inside it (a file, a directory or a link).

use upkeep_plugin_sdk::{ExistenceChecker, Presence, Registration, debug, join_inside};

struct ExistsPath;

impl ExistenceChecker for ExistsPath {
    fn check(registration: Registration) -> Presence {
        let Some(app_dir) = registration.app_dir else {
            debug!("{}: install directory is gone", registration.app_id);
            return Presence::Absent;
        };
        let Some(marker) = registration.marker.filter(|m| !m.is_empty()) else {
            return Presence::Present;
        };
        let path = match join_inside(&app_dir, &marker) {
            Ok(p) => p,
            Err(e) => return Presence::Error(format!("marker of {}: {e}", registration.app_id)),
        };
        match std::fs::symlink_metadata(&path) {
            Ok(_) => Presence::Present,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                debug!("{}: marker {marker} is gone", registration.app_id);
                Presence::Absent
            }
            Err(e) => Presence::Error(format!("cannot look at marker {marker}: {e}")),
        }
    }
}

upkeep_plugin_sdk::export_existence_checker!(ExistsPath);

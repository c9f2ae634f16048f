//! `upkeep.log` in the state root: one line per lifecycle event, the one
//! file an uninstall leaves. Failures are only traced: the log is for
//! people.

use std::io::Write;
use std::path::Path;

use upkeep_core::lifecycle;

use crate::files::unix_now;

/// Appends `line` to the state root's log (and traces it).
pub fn log(root: &Path, line: &str) {
    tracing::info!("{line}");
    let path = root.join(lifecycle::LOG_FILE);
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{} [{}] {line}", unix_now(), std::process::id()));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the log");
    }
}

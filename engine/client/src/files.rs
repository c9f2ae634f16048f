//! File chores of the engine: copying executables into place durably,
//! removing payloads a new version made obsolete, the clock.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use upkeep_core::lifecycle;

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A duration in whole milliseconds.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Copies `from` to `to` (created, mode 0755), flushed to disk. The error
/// names the file that failed.
pub(crate) fn copy_file_synced(
    from: &Path,
    to: &Path,
) -> Result<(), (std::path::PathBuf, io::Error)> {
    let _ = std::fs::remove_file(to);
    let mut src = std::fs::File::open(from).map_err(|e| (from.to_path_buf(), e))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o755);
    let mut dst = options.open(to).map_err(|e| (to.to_path_buf(), e))?;
    io::copy(&mut src, &mut dst).map_err(|e| (to.to_path_buf(), e))?;
    dst.sync_all().map_err(|e| (to.to_path_buf(), e))?;
    Ok(())
}

/// Copies an executable into place atomically: a flushed temporary copy
/// renamed over `to`, then the directory flushed.
pub(crate) fn copy_executable(
    from: &Path,
    to: &Path,
) -> Result<(), (std::path::PathBuf, io::Error)> {
    let tmp = to.with_file_name(format!(
        "{}{}",
        lifecycle::STAGING_PREFIXES[1],
        std::process::id()
    ));
    copy_file_synced(from, &tmp)?;
    std::fs::rename(&tmp, to).map_err(|e| (to.to_path_buf(), e))?;
    if let Some(dir) = to.parent() {
        upkeep_core::durable::sync_dir(dir).map_err(|e| (dir.to_path_buf(), e))?;
    }
    Ok(())
}

/// Removes the payloads of an app's other versions once a new one is
/// installed (failures are only traced: they cost disk space, nothing else).
pub(crate) fn remove_old_payloads(root: &Path, id: &str, keep: &upkeep_core::version::Version) {
    let keep = keep.to_string();
    for base in [
        root.join("downloads").join(id),
        root.join("downloads/.partial").join(id),
    ] {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy() == keep {
                continue;
            }
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove an old payload");
            }
        }
    }
}

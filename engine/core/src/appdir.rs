//! An app's install directory as the engine lays it out: every version in
//! its own directory, `versions/<version>/`, and `current`, a symlink to
//! `versions/<version>` that the engine switches in one atomic rename.
//!
//! ```text
//! <install-dir>/
//!   current -> versions/2.0        what the app is launched through
//!   versions/1.0/                  the previous version (kept for rollback)
//!   versions/2.0/                  the running version
//! ```
//!
//! A version directory is written only while it is not `current`; a failed
//! install removes it, so `current` and the version it names are never
//! touched by an install.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::durable::sync_dir;
use crate::version::Version;

/// The name of the symlink the app is launched through.
pub const CURRENT: &str = "current";
/// The folder holding one directory per version.
pub const VERSIONS: &str = "versions";

/// The directory of `version` in `install_dir`.
pub fn version_dir(install_dir: &Path, version: &Version) -> PathBuf {
    install_dir.join(VERSIONS).join(version.to_string())
}

/// The version `current` points to, if it is a symlink to
/// `versions/<version>`.
pub fn current_version(install_dir: &Path) -> Option<String> {
    let target = fs::read_link(install_dir.join(CURRENT)).ok()?;
    let mut parts = target.components();
    let first = parts.next()?.as_os_str().to_str()?;
    let second = parts.next()?.as_os_str().to_str()?;
    (first == VERSIONS && parts.next().is_none()).then(|| second.to_owned())
}

/// Creates an empty directory for `version`, removing whatever an earlier,
/// interrupted install left there. Refuses the version `current` points to.
pub fn fresh_version_dir(install_dir: &Path, version: &Version) -> io::Result<PathBuf> {
    let dir = version_dir(install_dir, version);
    if current_version(install_dir).as_deref() == Some(version.to_string().as_str()) {
        return Err(io::Error::other(format!(
            "{} is the current version; it is never written in place",
            dir.display()
        )));
    }
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Removes a version directory that did not become current (a failed
/// install), and `versions/` itself when that leaves it empty.
pub fn discard(install_dir: &Path, version: &Version) -> io::Result<()> {
    if current_version(install_dir).as_deref() == Some(version.to_string().as_str()) {
        return Ok(());
    }
    match fs::remove_dir_all(version_dir(install_dir, version)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // Only succeeds when empty, which is the point.
    let _ = fs::remove_dir(install_dir.join(VERSIONS));
    Ok(())
}

/// Points `current` at `versions/<version>` atomically: a new symlink
/// `current.tmp-<pid>` is renamed over `current`, then the directory is
/// fsynced. At every instant `current` names either the old version or the
/// new one.
pub fn switch_current(install_dir: &Path, version: &Version) -> io::Result<()> {
    let dir = version_dir(install_dir, version);
    if !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} does not exist", dir.display()),
        ));
    }
    let target = Path::new(VERSIONS).join(version.to_string());
    switch_link(install_dir, CURRENT, &target)
}

/// Points the symlink `dir/<name>` at `target` atomically: a new symlink
/// `<name>.tmp-<pid>` is created and renamed over `<name>`, then `dir` is
/// fsynced. At every instant `<name>` names either the old target or the
/// new one. `target` is stored as given (relative to `dir` when relative)
/// and need not exist.
pub fn switch_link(dir: &Path, name: &str, target: &Path) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp-{}", std::process::id()));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    symlink(target, &tmp)?;
    if let Err(e) = fs::rename(&tmp, dir.join(name)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "switching links needs symbolic links (Unix)",
    ))
}

/// Removes every version directory but `keep`, and `current.tmp-*` links
/// left by interrupted switches. Returns what could not be removed.
pub fn prune(install_dir: &Path, keep: &[&Version]) -> Vec<(PathBuf, io::Error)> {
    let keep: Vec<String> = keep.iter().map(ToString::to_string).collect();
    let current = current_version(install_dir);
    let mut errors = Vec::new();
    if let Ok(entries) = fs::read_dir(install_dir.join(VERSIONS)) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if keep.contains(&name) || current.as_deref() == Some(name.as_str()) {
                continue;
            }
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                errors.push((entry.path(), e));
            }
        }
    }
    if let Ok(entries) = fs::read_dir(install_dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{CURRENT}.tmp-"))
                && let Err(e) = fs::remove_file(entry.path())
            {
                errors.push((entry.path(), e));
            }
        }
    }
    errors
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn switching_points_current_at_the_version_and_leaves_no_temp_link() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(current_version(d), None);
        let one = fresh_version_dir(d, &v("1.0")).unwrap();
        fs::write(one.join("app"), "one").unwrap();
        switch_current(d, &v("1.0")).unwrap();
        assert_eq!(current_version(d).as_deref(), Some("1.0"));
        assert_eq!(fs::read_to_string(d.join("current/app")).unwrap(), "one");
        let two = fresh_version_dir(d, &v("2.0")).unwrap();
        fs::write(two.join("app"), "two").unwrap();
        // Until the switch, current still runs the old version.
        assert_eq!(fs::read_to_string(d.join("current/app")).unwrap(), "one");
        switch_current(d, &v("2.0")).unwrap();
        assert_eq!(fs::read_to_string(d.join("current/app")).unwrap(), "two");
        assert_eq!(
            fs::read_link(d.join("current")).unwrap(),
            Path::new("versions/2.0")
        );
        let mut names: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["current", "versions"]);
    }

    #[test]
    fn the_current_version_is_never_rewritten_or_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let one = fresh_version_dir(d, &v("1.0")).unwrap();
        fs::write(one.join("app"), "one").unwrap();
        switch_current(d, &v("1.0")).unwrap();
        assert!(fresh_version_dir(d, &v("1.0")).is_err());
        discard(d, &v("1.0")).unwrap();
        assert_eq!(fs::read_to_string(d.join("current/app")).unwrap(), "one");
        assert!(switch_current(d, &v("3.0")).is_err());
        assert_eq!(current_version(d).as_deref(), Some("1.0"));
    }

    #[test]
    fn a_fresh_dir_drops_leftovers_and_discard_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let two = fresh_version_dir(d, &v("2.0")).unwrap();
        fs::write(two.join("half"), "x").unwrap();
        let two = fresh_version_dir(d, &v("2.0")).unwrap();
        assert_eq!(fs::read_dir(&two).unwrap().count(), 0);
        discard(d, &v("2.0")).unwrap();
        assert!(!d.join("versions").exists());
    }

    #[test]
    fn prune_keeps_the_named_and_current_versions() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for s in ["1.0", "2.0", "3.0"] {
            fresh_version_dir(d, &v(s)).unwrap();
        }
        switch_current(d, &v("3.0")).unwrap();
        symlink(Path::new("versions/1.0"), &d.join("current.tmp-1")).unwrap();
        assert!(prune(d, &[&v("2.0")]).is_empty());
        let mut left: Vec<_> = fs::read_dir(d.join("versions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["2.0", "3.0"]);
        assert!(fs::symlink_metadata(d.join("current.tmp-1")).is_err());
    }

    #[test]
    fn a_link_to_a_missing_target_is_switched_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        switch_link(d, "ipc.sock", Path::new("versions/1.0/ipc.sock")).unwrap();
        switch_link(d, "ipc.sock", Path::new("versions/2.0/ipc.sock")).unwrap();
        assert_eq!(
            fs::read_link(d.join("ipc.sock")).unwrap(),
            Path::new("versions/2.0/ipc.sock")
        );
        let names: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["ipc.sock"]);
    }
}

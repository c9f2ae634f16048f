//! Atomic, durable file changes in the unit directory: write a temporary
//! file beside the target, fsync it, rename it over the target, fsync the
//! directory. systemd (or a crash) sees the old unit or the new one, never
//! a torn mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::SystemdError;

/// Writes `bytes` to `path` atomically, creating the directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SystemdError> {
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(|e| SystemdError::io(dir, e))?;
    let tmp = temp_path(path);
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(SystemdError::io(path, e));
    }
    sync_dir(dir).map_err(|e| SystemdError::io(dir, e))
}

/// Points the symbolic link `link` at `target` atomically (a link at a
/// temporary name renamed over `link`), creating the directory if needed.
/// Nothing is done if it already points there.
pub fn symlink_atomic(target: &Path, link: &Path) -> Result<(), SystemdError> {
    if fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let dir = parent(link);
    fs::create_dir_all(dir).map_err(|e| SystemdError::io(dir, e))?;
    let tmp = temp_path(link);
    let result = symlink(target, &tmp).and_then(|()| fs::rename(&tmp, link));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(SystemdError::io(link, e));
    }
    sync_dir(dir).map_err(|e| SystemdError::io(dir, e))
}

/// Removes the file or link at `path`; a missing one is fine. Returns
/// whether something was removed.
pub fn remove(path: &Path) -> Result<bool, SystemdError> {
    match fs::remove_file(path) {
        Ok(()) => {
            let dir = parent(path);
            sync_dir(dir).map_err(|e| SystemdError::io(dir, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(SystemdError::io(path, e)),
    }
}

/// Whether a file, or a link (even dangling), is at `path`.
pub fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
}

/// A hidden name beside `path`, unique in this process. systemd ignores it:
/// it does not end in a unit suffix.
fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    parent(path).join(name)
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "symbolic links for systemd units need a Unix system",
    ))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, File::open);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/a.service");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(names(&dir.path().join("sub")), ["a.service"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & !0o644, 0, "{mode:o}");
        }
    }

    #[test]
    fn failed_write_leaves_target_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("blocked.service");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"x").unwrap();
        let e = write_atomic(&blocked, b"new").unwrap_err();
        assert!(e.to_string().starts_with(&blocked.display().to_string()));
        assert_eq!(names(dir.path()), ["blocked.service"]);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_is_created_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("timers.target.wants/a.timer");
        symlink_atomic(Path::new("../a.timer"), &link).unwrap();
        symlink_atomic(Path::new("../a.timer"), &link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../a.timer"));
        symlink_atomic(Path::new("../b.timer"), &link).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("../b.timer"));
        assert!(exists(&link), "a dangling link exists");
        assert_eq!(names(&dir.path().join("timers.target.wants")), ["a.timer"]);
        assert!(remove(&link).unwrap());
        assert!(!remove(&link).unwrap());
        assert!(!exists(&link));
    }
}

//! Telling cheaply whether anything was put into, renamed in or removed from
//! a few directories since the last look.
//!
//! On Linux this is an inotify instance, asked without blocking: one `read`
//! that finds nothing costs a fraction of the `stat`s it spares. The kernel
//! queues an event before the `rename` that caused it returns, so a change
//! made by any process on this machine is seen by every look that starts
//! after it. Changes made on another machine (a repository on a network file
//! system) raise no event; the caller re-checks the files now and then all
//! the same. Where inotify is missing, every look says "maybe changed".

use std::path::Path;

/// A watch over some directories.
#[derive(Debug)]
pub struct DirWatch {
    #[cfg(target_os = "linux")]
    inotify: Option<rustix::fd::OwnedFd>,
}

impl DirWatch {
    /// Watches `dirs` for entries created, closed after writing, renamed or
    /// removed (not for writes into files kept open, such as the event
    /// store's journal). A directory that cannot be watched makes the whole
    /// watch say "maybe changed" every time.
    pub fn new(dirs: &[&Path]) -> DirWatch {
        #[cfg(target_os = "linux")]
        {
            DirWatch {
                inotify: linux::watch(dirs)
                    .map_err(|e| tracing::debug!(error = %e, "no inotify; the files are looked at per request"))
                    .ok(),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = dirs;
            DirWatch {}
        }
    }

    /// Whether something may have changed since the last call: false only
    /// when the kernel says nothing happened.
    pub fn changed(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            match &self.inotify {
                Some(fd) => linux::drain(fd),
                None => true,
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            true
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::mem::MaybeUninit;
    use std::path::Path;

    use rustix::fd::OwnedFd;
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    use rustix::io::Errno;

    pub(super) fn watch(dirs: &[&Path]) -> rustix::io::Result<OwnedFd> {
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
        let flags = WatchFlags::CREATE
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR;
        for dir in dirs {
            inotify::add_watch(&fd, *dir, flags)?;
        }
        Ok(fd)
    }

    /// Reads every queued event; true if there was one (or the queue
    /// overflowed, or reading failed).
    pub(super) fn drain(fd: &OwnedFd) -> bool {
        let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
        let mut events = inotify::Reader::new(fd, &mut buf);
        let mut any = false;
        loop {
            match events.next() {
                Ok(_) => any = true,
                Err(Errno::AGAIN) => return any,
                Err(Errno::INTR) => {}
                Err(_) => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_and_new_files_are_seen_and_then_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DirWatch::new(&[dir.path()]);
        assert!(!watch.changed(), "nothing happened yet");
        std::fs::write(dir.path().join("a.tmp"), b"x").unwrap();
        std::fs::rename(dir.path().join("a.tmp"), dir.path().join("a")).unwrap();
        assert!(watch.changed());
        assert!(!watch.changed(), "the events were read");
        std::fs::remove_file(dir.path().join("a")).unwrap();
        assert!(watch.changed());
    }

    #[test]
    fn writes_into_an_open_file_are_not_changes() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut journal = std::fs::File::create(dir.path().join("journal")).unwrap();
        let watch = DirWatch::new(&[dir.path()]);
        journal.write_all(b"frame").unwrap();
        journal.sync_all().unwrap();
        assert!(!watch.changed());
    }

    #[test]
    fn a_directory_that_cannot_be_watched_means_always_look() {
        let dir = tempfile::tempdir().unwrap();
        let watch = DirWatch::new(&[&dir.path().join("missing")]);
        assert!(watch.changed());
        assert!(watch.changed());
    }
}

//! What a server instance decides from: the releases of the current signed
//! metadata and the repository's rollout state, re-read when either
//! changes on disk (a `repo add`, `repo rollout` or `repo pull`, by this
//! process or any other sharing the directory).
//!
//! Whether they changed is asked of the kernel ([`DirWatch`]: an event
//! queued by the `rename` that published the change) rather than of the
//! files on every request; the files are looked at after an event, and at
//! least once per [`RECHECK`] for changes made on another machine sharing
//! the directory over a network file system, which raise no event here.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::decision::Catalog;
use crate::dir_watch::DirWatch;
use crate::error::ServerError;
use crate::repo;
use crate::rollout::{ROLLOUTS_FILE, Rollouts};

/// The releases and the rollouts, as of one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The releases clients would accept.
    pub catalog: Catalog,
    /// Who is offered which release.
    pub rollouts: Rollouts,
}

/// How long a look at the files stays good when no event says otherwise
/// (two `stat`s per request were 4 % of the server's CPU under load).
pub const RECHECK: Duration = Duration::from_secs(1);

/// What identifies the files a view was read from: the identity of
/// `timestamp.json` and of `rollouts.json` (both replaced by rename: a new
/// inode, size and modification time per change), taken with one `stat`
/// each per request instead of reading them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    timestamp: FileId,
    rollouts: Option<FileId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    inode: u64,
}

fn file_id(path: &Path) -> Result<Option<FileId>, ServerError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(FileId {
            len: m.len(),
            modified: m.modified().ok(),
            #[cfg(unix)]
            inode: std::os::unix::fs::MetadataExt::ino(&m),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ServerError::io(path, e)),
    }
}

/// The current view of a repository, cached while its files are unchanged.
#[derive(Debug)]
pub struct Views {
    dir: PathBuf,
    metadata_dir: PathBuf,
    /// `metadata_dir/timestamp.json` and `dir/rollouts.json`, joined once:
    /// they are looked at on every request.
    timestamp_path: PathBuf,
    rollouts_path: PathBuf,
    cached: Mutex<Option<Cached>>,
    watch: DirWatch,
}

/// The last view read, what it was read from, and when that was last
/// confirmed (`None`: the files changed since).
#[derive(Debug, Clone)]
struct Cached {
    stamp: Stamp,
    view: Arc<View>,
    checked: Option<Instant>,
}

impl Views {
    /// Views of the repository in `dir` with its metadata in `metadata_dir`.
    pub fn new(dir: &Path, metadata_dir: &Path) -> Views {
        Views {
            dir: dir.to_path_buf(),
            metadata_dir: metadata_dir.to_path_buf(),
            timestamp_path: metadata_dir.join("timestamp.json"),
            rollouts_path: dir.join(ROLLOUTS_FILE),
            cached: Mutex::new(None),
            watch: DirWatch::new(&[dir, metadata_dir]),
        }
    }

    /// The current view. Unreadable metadata is an error; a rollout state
    /// that cannot be read while an earlier one was is logged and the
    /// earlier one kept (a hand edit gone wrong does not stop updates).
    pub fn current(&self) -> Result<Arc<View>, ServerError> {
        // Held throughout: a request that finds no new event must not use
        // a view another request is about to replace because of one.
        let mut cache = self
            .cached
            .lock()
            .map_err(|_| ServerError::Store("a previous look at the repository panicked".into()))?;
        if self.watch.changed()
            && let Some(c) = &mut *cache
        {
            // Looked at on this request or, if that fails, the next.
            c.checked = None;
        }
        if let Some(c) = &*cache
            && c.checked.is_some_and(|t| t.elapsed() < RECHECK)
        {
            return Ok(c.view.clone());
        }
        let checked = Instant::now();
        let path = &self.timestamp_path;
        let timestamp = file_id(path)?.ok_or_else(|| {
            ServerError::io(path, std::io::Error::from(std::io::ErrorKind::NotFound))
        })?;
        let stamp = Stamp {
            timestamp,
            rollouts: file_id(&self.rollouts_path)?,
        };
        if let Some(c) = &mut *cache
            && c.stamp == stamp
        {
            c.checked = Some(checked);
            return Ok(c.view.clone());
        }
        let previous = cache.as_ref();
        let catalog = match previous {
            Some(c) if c.stamp.timestamp == stamp.timestamp => c.view.catalog.clone(),
            _ => {
                let current = repo::load_current(&self.metadata_dir)?;
                if current.targets.expires.0 < OffsetDateTime::now_utc() {
                    tracing::warn!("the targets metadata has expired; clients will refuse it");
                }
                current.catalog()
            }
        };
        let rollouts = match (Rollouts::load(&self.dir), previous) {
            (Ok(r), _) => r,
            (Err(e), Some(c)) => {
                tracing::error!(error = %e, "rollout state unreadable; the last one read stays");
                c.view.rollouts.clone()
            }
            (Err(e), None) => return Err(e),
        };
        let view = Arc::new(View { catalog, rollouts });
        *cache = Some(Cached {
            stamp,
            view: view.clone(),
            checked: Some(checked),
        });
        Ok(view)
    }
}

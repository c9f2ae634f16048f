//! The client workflow: refresh the top-level metadata, look a target up
//! through the delegation graph, download and verify it. Trusted metadata is
//! cached in a directory under unversioned names (`root.json`,
//! `timestamp.json`, `snapshot.json`, `targets.json`, `ROLE.json` with the
//! role name percent-encoded), every file written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;

use crate::durable::write_atomic;
use crate::tuf::error::TufError;
use crate::tuf::metadata::{Root, TargetFile, Targets, format_time, parse_time};
use crate::tuf::search::{RoleSource, find_target};
use crate::tuf::transport::{Clock, FetchError, Transport};
use crate::tuf::trusted::{TimestampUpdate, TrustedSet};

/// Characters kept as they are in role and target file names: the URL
/// "unreserved" set. Everything else, `/` included, is percent-encoded, so a
/// role or target name always maps to a single file inside its directory.
const FILE_NAME_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Like [`FILE_NAME_SET`] but keeps `/`, for target paths in URLs.
const URL_PATH_SET: &AsciiSet = &FILE_NAME_SET.remove(b'/');

/// The file in the metadata directory holding the latest time the client
/// has seen (RFC 3339). It has no `.json` suffix, so it is never taken for
/// metadata.
pub const LAST_TIME_FILE: &str = "last-known-time";

/// The encoded file name stem of a role (`a/b` → `a%2Fb`).
pub fn encode_role(role: &str) -> String {
    utf8_percent_encode(role, FILE_NAME_SET).to_string()
}

/// The single file name a target path is stored under in a target directory.
pub fn target_file_name(target_path: &str) -> String {
    utf8_percent_encode(target_path, FILE_NAME_SET).to_string()
}

/// Limits and options of the client.
#[derive(Debug, Clone)]
pub struct UpdaterConfig {
    /// Most root versions fetched in one refresh.
    pub max_root_rotations: u64,
    /// Most delegated roles visited when looking a target up.
    pub max_delegations: usize,
    /// Cap on a root file's size.
    pub root_max_length: u64,
    /// Cap on timestamp.json's size.
    pub timestamp_max_length: u64,
    /// Cap on snapshot.json's size when the timestamp gives no length.
    pub snapshot_max_length: u64,
    /// Cap on a targets file's size when the snapshot gives no length.
    pub targets_max_length: u64,
    /// With consistent snapshots, fetch targets as `HASH.NAME`.
    pub prefix_targets_with_hash: bool,
}

impl Default for UpdaterConfig {
    fn default() -> Self {
        UpdaterConfig {
            max_root_rotations: 32,
            max_delegations: 32,
            root_max_length: 512_000,
            timestamp_max_length: 16_384,
            snapshot_max_length: 2_000_000,
            targets_max_length: 5_000_000,
            prefix_targets_with_hash: true,
        }
    }
}

/// A target found in trusted metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInfo {
    /// The target path.
    pub path: String,
    /// Its length and hashes.
    pub file: TargetFile,
}

/// Stores `root_bytes` as the trusted root in `metadata_dir` (creating the
/// directory). The root must parse and be signed by a threshold of its own
/// keys; nothing is fetched.
pub fn init_trusted_root(metadata_dir: &Path, root_bytes: &[u8]) -> Result<(), TufError> {
    TrustedSet::new(root_bytes, OffsetDateTime::UNIX_EPOCH)?;
    std::fs::create_dir_all(metadata_dir).map_err(|e| TufError::io(metadata_dir, e))?;
    let path = metadata_dir.join("root.json");
    write_atomic(&path, root_bytes).map_err(|e| TufError::io(path, e))
}

/// A TUF client bound to one repository and one metadata directory.
#[derive(Debug)]
pub struct Updater<T, C> {
    dir: PathBuf,
    metadata_url: String,
    transport: T,
    clock: C,
    config: UpdaterConfig,
    trusted: TrustedSet,
    /// The bytes of every targets role trusted so far, by role name.
    accepted: BTreeMap<String, Vec<u8>>,
}

/// The updater as the search's [`RoleSource`]: fetching and verifying as it
/// goes.
struct Fetching<'a, T, C>(&'a mut Updater<T, C>);

impl<T: Transport, C: Clock> RoleSource for Fetching<'_, T, C> {
    fn load(&mut self, role: &str, delegator: &str) -> Result<&Targets, TufError> {
        self.0.load_targets(role, delegator)?;
        self.0
            .trusted
            .targets(role)
            .ok_or_else(|| TufError::UnknownRole {
                role: role.into(),
                reason: "not loaded".into(),
            })
    }
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

impl<T: Transport, C: Clock> Updater<T, C> {
    /// Loads the trusted root from `metadata_dir` and checks the clock
    /// against the latest time recorded there.
    pub fn new(
        metadata_dir: impl Into<PathBuf>,
        metadata_url: &str,
        transport: T,
        clock: C,
        config: UpdaterConfig,
    ) -> Result<Self, TufError> {
        let dir = metadata_dir.into();
        let now = clock.now();
        check_clock(&dir, now)?;
        let root_path = dir.join("root.json");
        let root = match std::fs::read(&root_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TufError::NoTrustedRoot(dir));
            }
            Err(e) => return Err(TufError::io(root_path, e)),
        };
        let trusted = TrustedSet::new(&root, now)?;
        Ok(Updater {
            dir,
            metadata_url: with_slash(metadata_url),
            transport,
            clock,
            config,
            trusted,
            accepted: BTreeMap::new(),
        })
    }

    /// The trusted metadata.
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// The transport (for inspection in tests).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Runs the top-level update: root rotation, timestamp, snapshot,
    /// targets (5.3–5.6). Call once per `Updater`.
    pub fn refresh(&mut self) -> Result<(), TufError> {
        self.record_time()?;
        self.load_root()?;
        self.load_timestamp()?;
        self.load_snapshot()?;
        self.load_targets("targets", "root")?;
        Ok(())
    }

    fn record_time(&self) -> Result<(), TufError> {
        let now = self.clock.now();
        check_clock(&self.dir, now)?;
        let path = self.dir.join(LAST_TIME_FILE);
        write_atomic(&path, format_time(now).as_bytes()).map_err(|e| TufError::io(path, e))
    }

    fn fetch(&self, url: &str, max_len: u64, file: &str) -> Result<Vec<u8>, TufError> {
        tracing::debug!(url, max_len, "fetching");
        match self.transport.fetch(url, max_len) {
            Ok(b) if b.len() as u64 > max_len => Err(TufError::LengthExceeded {
                file: file.into(),
                max: max_len,
            }),
            Ok(b) => Ok(b),
            Err(FetchError::NotFound) => Err(TufError::NotFound { url: url.into() }),
            Err(FetchError::TooLong { .. }) => Err(TufError::LengthExceeded {
                file: file.into(),
                max: max_len,
            }),
            Err(source) => Err(TufError::Fetch {
                url: url.into(),
                source,
            }),
        }
    }

    fn persist(&self, name: &str, bytes: &[u8]) -> Result<(), TufError> {
        let path = self.dir.join(name);
        write_atomic(&path, bytes).map_err(|e| TufError::io(path, e))
    }

    fn read_local(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(name)).ok()
    }

    fn load_root(&mut self) -> Result<(), TufError> {
        let original: Root = self.trusted.root().clone();
        let first = original.version + 1;
        for version in first..first + self.config.max_root_rotations {
            let file = format!("{version}.root.json");
            let url = format!("{}{file}", self.metadata_url);
            let bytes = match self.fetch(&url, self.config.root_max_length, &file) {
                Ok(b) => b,
                Err(TufError::NotFound { .. }) => break,
                Err(e) => return Err(e),
            };
            self.trusted.update_root(&bytes, &file)?;
            self.persist("root.json", &bytes)?;
            tracing::info!(version, "rotated to new root");
        }
        self.trusted.check_root_expiry()?;
        // 5.3.11: new timestamp or snapshot keys make the cached copies
        // untrustworthy (fast-forward attack recovery).
        let root = self.trusted.root();
        if root.version != original.version {
            for role in ["timestamp", "snapshot"] {
                if root.role_keys_changed(&original, role) {
                    for name in ["timestamp.json", "snapshot.json"] {
                        let path = self.dir.join(name);
                        match std::fs::remove_file(&path) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(TufError::io(path, e)),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn load_timestamp(&mut self) -> Result<(), TufError> {
        if let Some(local) = self.read_local("timestamp.json")
            && let Err(e) = self
                .trusted
                .update_timestamp(&local, "timestamp.json (cached)")
        {
            tracing::debug!(error = %e, "cached timestamp not usable");
        }
        let url = format!("{}timestamp.json", self.metadata_url);
        let bytes = self.fetch(&url, self.config.timestamp_max_length, "timestamp.json")?;
        match self.trusted.update_timestamp(&bytes, "timestamp.json")? {
            TimestampUpdate::Accepted => self.persist("timestamp.json", &bytes),
            TimestampUpdate::SameVersion => Ok(()),
        }
    }

    fn load_snapshot(&mut self) -> Result<(), TufError> {
        if let Some(local) = self.read_local("snapshot.json") {
            match self
                .trusted
                .update_snapshot(&local, "snapshot.json (cached)", true)
            {
                Ok(()) => return Ok(()),
                Err(e) => tracing::debug!(error = %e, "cached snapshot not usable"),
            }
        }
        let meta = self
            .trusted
            .timestamp()
            .and_then(|t| t.snapshot_meta())
            .cloned()
            .ok_or_else(|| TufError::malformed("timestamp.json", "no snapshot.json entry"))?;
        let max = meta.length.unwrap_or(self.config.snapshot_max_length);
        let file = if self.trusted.root().consistent_snapshot {
            format!("{}.snapshot.json", meta.version)
        } else {
            "snapshot.json".to_owned()
        };
        let url = format!("{}{file}", self.metadata_url);
        let bytes = self.fetch(&url, max, &file)?;
        self.trusted.update_snapshot(&bytes, &file, false)?;
        self.persist("snapshot.json", &bytes)
    }

    fn load_targets(&mut self, role: &str, delegator: &str) -> Result<(), TufError> {
        if self.trusted.is_trusted_via(role, delegator) {
            return Ok(());
        }
        let encoded = encode_role(role);
        let local_name = format!("{encoded}.json");
        if let Some(bytes) = self.accepted.get(role) {
            // Trusted through another delegator: the same bytes must
            // verify against this one's keys too; nothing is fetched.
            let file = format!("{local_name} (through {delegator:?})");
            return self.trusted.update_targets(bytes, role, delegator, &file);
        }
        if let Some(local) = self.read_local(&local_name) {
            match self.trusted.update_targets(
                &local,
                role,
                delegator,
                &format!("{local_name} (cached)"),
            ) {
                Ok(()) => {
                    self.accepted.insert(role.to_owned(), local);
                    return Ok(());
                }
                Err(e) => tracing::debug!(role, error = %e, "cached targets not usable"),
            }
        }
        let meta = self
            .trusted
            .snapshot()
            .and_then(|s| s.meta.get(&format!("{role}.json")))
            .cloned()
            .ok_or_else(|| TufError::UnknownRole {
                role: role.into(),
                reason: "not listed in snapshot.json".into(),
            })?;
        let max = meta.length.unwrap_or(self.config.targets_max_length);
        let file = if self.trusted.root().consistent_snapshot {
            format!("{}.{encoded}.json", meta.version)
        } else {
            local_name.clone()
        };
        let url = format!("{}{file}", self.metadata_url);
        let bytes = self.fetch(&url, max, &file)?;
        self.trusted
            .update_targets(&bytes, role, delegator, &file)?;
        self.persist(&local_name, &bytes)?;
        self.accepted.insert(role.to_owned(), bytes);
        Ok(())
    }

    /// Looks `target_path` up: a pre-order depth-first search of the
    /// delegation graph from the top-level targets
    /// ([`crate::tuf::search::find_target`]), honouring order, terminating
    /// delegations, path patterns and hash prefixes. Delegated metadata is
    /// fetched (and cached) as the search reaches it, and verified against
    /// the delegator of the path being walked; a role reached again through
    /// another delegator is verified again without a second fetch.
    /// [`Updater::refresh`] must have succeeded first.
    pub fn get_target_info(&mut self, target_path: &str) -> Result<TargetInfo, TufError> {
        if self.trusted.targets("targets").is_none() {
            return Err(TufError::UnknownRole {
                role: "targets".into(),
                reason: "refresh first".into(),
            });
        }
        let max = self.config.max_delegations;
        match find_target(&mut Fetching(self), target_path, max)? {
            Some(found) => Ok(TargetInfo {
                path: target_path.to_owned(),
                file: found.file,
            }),
            None => Err(TufError::TargetNotFound {
                path: target_path.to_owned(),
            }),
        }
    }

    /// Whether `local` already holds the verified content of `info`.
    pub fn find_cached_target(&self, info: &TargetInfo, local: &Path) -> bool {
        match std::fs::read(local) {
            Ok(bytes) => info.file.verify(&info.path, &bytes).is_ok(),
            Err(_) => false,
        }
    }

    /// The URL a target is fetched from: `BASE/PATH`, or `BASE/DIR/HASH.NAME`
    /// with consistent snapshots.
    pub fn target_url(&self, info: &TargetInfo, target_base_url: &str) -> String {
        let mut path = info.path.clone();
        if self.trusted.root().consistent_snapshot
            && self.config.prefix_targets_with_hash
            && let Some(hash) = info.file.prefix_hash()
        {
            path = match info.path.rsplit_once('/') {
                Some((dir, name)) => format!("{dir}/{hash}.{name}"),
                None => format!("{hash}.{}", info.path),
            };
        }
        format!(
            "{}{}",
            with_slash(target_base_url),
            utf8_percent_encode(&path, URL_PATH_SET)
        )
    }

    /// Downloads a target (at most its trusted length), verifies length and
    /// hashes, and writes it atomically to `dest`. Returns the bytes.
    pub fn download_target(
        &self,
        info: &TargetInfo,
        target_base_url: &str,
        dest: &Path,
    ) -> Result<Vec<u8>, TufError> {
        let url = self.target_url(info, target_base_url);
        let bytes = self.fetch(&url, info.file.length, &info.path)?;
        info.file.verify(&info.path, &bytes)?;
        write_atomic(dest, &bytes).map_err(|e| TufError::io(dest, e))?;
        Ok(bytes)
    }
}

/// Refuses a clock earlier than the latest time recorded in `dir`.
fn check_clock(dir: &Path, now: OffsetDateTime) -> Result<(), TufError> {
    let path = dir.join(LAST_TIME_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TufError::io(path, e)),
    };
    let last =
        parse_time(text.trim()).map_err(|e| TufError::malformed(path.display().to_string(), e))?;
    // Recorded to the second: compare at that precision.
    if now.unix_timestamp() < last.unix_timestamp() {
        return Err(TufError::ClockWentBackwards {
            now: format_time(now),
            last: format_time(last),
            path,
        });
    }
    Ok(())
}

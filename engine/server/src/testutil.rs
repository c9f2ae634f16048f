//! Helpers for the crate's unit tests: a TUF client reading a repository
//! directory the way `/tuf/` and `/targets/` serve it, payload files and
//! releases.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use upkeep_core::tuf::{FetchError, SystemClock, Transport, Updater, UpdaterConfig};

use crate::repo::NewRelease;

/// Serves a repository directory: `repo://tuf/NAME` from `metadata/`,
/// `repo://targets/PATH` from `targets/`.
pub struct DirTransport(pub PathBuf);

impl Transport for DirTransport {
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let rel = url.strip_prefix("repo://").ok_or(FetchError::NotFound)?;
        let rel = rel.replacen("tuf/", "metadata/", 1);
        let rel = percent_encoding::percent_decode_str(&rel)
            .decode_utf8()
            .map_err(|e| FetchError::Other(e.to_string()))?
            .into_owned();
        match fs::read(self.0.join(rel)) {
            Ok(b) if b.len() as u64 > max_len => Err(FetchError::TooLong { max_len }),
            Ok(b) => Ok(b),
            Err(_) => Err(FetchError::NotFound),
        }
    }
}

/// Writes `content` to `dir/name`.
pub fn payload(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, content).unwrap();
    p
}

/// A client whose trusted metadata lives in `md`,
/// pinned to `root`, reading the repository in `repo`.
pub fn client(md: &Path, root: &[u8], repo: &Path) -> Updater<DirTransport, SystemClock> {
    if !md.join("root.json").exists() {
        upkeep_core::tuf::init_trusted_root(md, root).unwrap();
    }
    Updater::new(
        md,
        "repo://tuf/",
        DirTransport(repo.to_path_buf()),
        SystemClock,
        UpdaterConfig::default(),
    )
    .unwrap()
}

/// A release of `app` `version` with one payload.
pub fn release(app: &str, version: &str, payload: PathBuf) -> NewRelease {
    NewRelease {
        app: app.into(),
        version: version.into(),
        channel: String::new(),
        installer_args: vec![],
        install_data: BTreeMap::new(),
        commands: BTreeMap::new(),
        delta_from: Vec::new(),
        patch_format: None,
        payloads: vec![payload],
    }
}

/// Every file under `dir` with its content, by relative path.
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    out
}

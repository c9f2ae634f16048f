//! The on-disk cache of precompiled components.
//!
//! An entry is named `<component sha256>-<engine compatibility hash>.cwasm`
//! and holds wasmtime's serialized component followed by the SHA-256 of those
//! bytes. The trailer is checked before anything is deserialized, so a torn,
//! truncated or tampered entry is recompiled, never trusted; a new engine
//! build or configuration yields a new key, so stale entries are never read.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// What the cache did for one load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A valid entry was loaded.
    Hit,
    /// No entry existed; the component was compiled and stored.
    Miss,
    /// An entry existed but failed its check; it was recompiled and replaced.
    Replaced,
    /// No cache is configured; the component was compiled.
    Disabled,
}

/// A directory of precompiled components for one engine configuration.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

const TRAILER: usize = 32;

impl ComponentCache {
    /// A cache in `dir` for artefacts of `engine`.
    pub fn new(dir: &Path, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", h.finish()),
        }
    }

    /// Where the entry for a component with this content hash lives.
    pub fn entry_path(&self, content_hash: &str) -> PathBuf {
        self.dir
            .join(format!("{content_hash}-{}.cwasm", self.engine_key))
    }

    /// Loads the precompiled component, or compiles `wasm` and stores it.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
        content_hash: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.entry_path(content_hash);
        let mut outcome = CacheOutcome::Miss;
        match std::fs::read(&path) {
            Ok(bytes) => match verified_payload(&bytes) {
                Some(payload) => {
                    // SAFETY: `payload` was produced by `Component::serialize`
                    // of this engine configuration (the file name carries the
                    // engine's compatibility hash) and written by this host;
                    // its SHA-256 trailer matched, so it is the exact byte
                    // string that was written, not a torn or altered one.
                    match unsafe { Component::deserialize(engine, payload) } {
                        Ok(c) => return Ok((c, CacheOutcome::Hit)),
                        Err(e) => {
                            tracing::warn!(entry = %path.display(), error = %e, "cached component refused; recompiling");
                            outcome = CacheOutcome::Replaced;
                        }
                    }
                }
                None => {
                    tracing::warn!(entry = %path.display(), "cached component failed its checksum; recompiling");
                    outcome = CacheOutcome::Replaced;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(entry = %path.display(), error = %e, "cached component unreadable; recompiling");
                outcome = CacheOutcome::Replaced;
            }
        }
        let component = Component::new(engine, wasm)?;
        if let Err(e) = self.store(&path, &component) {
            // A cache that cannot be written costs speed, never correctness.
            tracing::warn!(entry = %path.display(), error = %e, "could not write the component cache");
        }
        Ok((component, outcome))
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut bytes = component.serialize()?;
        let digest = Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
        upkeep_core::durable::write_atomic(path, &bytes)?;
        Ok(())
    }
}

fn verified_payload(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() <= TRAILER {
        return None;
    }
    let (payload, trailer) = bytes.split_at(bytes.len() - TRAILER);
    (Sha256::digest(payload).as_slice() == trailer).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_check() {
        let mut b = b"hello".to_vec();
        b.extend_from_slice(&Sha256::digest(b"hello"));
        assert_eq!(verified_payload(&b), Some(&b"hello"[..]));
        b[0] ^= 1;
        assert_eq!(verified_payload(&b), None);
        assert_eq!(verified_payload(&b[..10]), None);
        assert_eq!(verified_payload(&[]), None);
    }
}

//! Differential updates: a patch turns a file a machine already has (the
//! base: the same file of an earlier release) into the new release's file.
//! A patch is one zstd frame compressed with the base as its reference
//! prefix and a window as large as the files (zstd's `--patch-from`), so
//! what the new file shares with the old one costs almost nothing
//! (`docs/deltas.md`, ADR 0016).
//!
//! Applying never trusts the patch: the output is capped at the signed
//! length of the new file and the caller checks its signed SHA-256 before
//! anything uses it.

use std::io::{self, BufReader, Read, Write};

use sha2::{Digest, Sha256};

use crate::version::Version;

/// The file name suffix of a patch.
pub const PATCH_SUFFIX: &str = ".zpatch";
/// The largest window a patch may use: 2 GiB (zstd's limit on 64-bit).
pub const MAX_WINDOW_LOG: u32 = 31;
/// The compression level patches are made with.
pub const PATCH_LEVEL: i32 = 19;

/// The file name of the patch from `file` of release `from` to the same
/// file of a newer release: `<file>.from-<from>.zpatch`.
pub fn patch_name(file: &str, from: &Version) -> String {
    format!("{file}.from-{from}{PATCH_SUFFIX}")
}

/// The fingerprint a client sends for a package it has, and the server
/// gives for a package it offers (Omaha's `fp`): its hex SHA-256.
pub fn fingerprint(sha256_hex: &str) -> String {
    sha256_hex.to_ascii_lowercase()
}

/// The hex SHA-256 a fingerprint names, if it is one of [`fingerprint`]'s.
pub fn fingerprint_sha256(fp: &str) -> Option<&str> {
    (fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit())).then_some(fp)
}

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The patch is not a zstd frame that decodes against this base.
    #[error("the patch does not decode against the base: {0}")]
    Corrupt(io::Error),
    /// The patch makes more bytes than the signed length of the result.
    #[error("the patch makes more than the signed {limit} bytes")]
    TooLong {
        /// The signed length.
        limit: u64,
    },
    /// The output could not be written.
    #[error("cannot write the patched file: {0}")]
    Write(io::Error),
}

/// The window (log2 bytes) that covers `len` bytes: at least 2^10.
fn window_log_for(len: usize) -> u32 {
    let bits = usize::BITS - len.max(1).leading_zeros();
    bits.clamp(10, MAX_WINDOW_LOG)
}

/// A patch from `base` to `new`.
pub fn make_patch(base: &[u8], new: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(&mut out, PATCH_LEVEL, base)?;
    encoder.window_log(window_log_for(base.len().max(new.len())))?;
    encoder.long_distance_matching(true)?;
    encoder.include_checksum(true)?;
    encoder.set_pledged_src_size(Some(new.len() as u64))?;
    encoder.write_all(new)?;
    encoder.finish()?;
    Ok(out)
}

/// What applying a patch made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patched {
    /// Bytes written.
    pub length: u64,
    /// Their SHA-256.
    pub sha256: [u8; 32],
}

/// Applies `patch` to `base`, writing the result to `out`: at most
/// `limit` bytes (the signed length of the result), hashed on the way.
/// Memory is the base, the window and a buffer.
pub fn apply_patch(
    base: &[u8],
    patch: impl Read,
    mut out: impl Write,
    limit: u64,
) -> Result<Patched, PatchError> {
    let mut decoder = zstd::stream::read::Decoder::with_ref_prefix(BufReader::new(patch), base)
        .map_err(PatchError::Corrupt)?;
    decoder
        .window_log_max(MAX_WINDOW_LOG)
        .map_err(PatchError::Corrupt)?;
    let mut hasher = Sha256::new();
    let mut length = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(PatchError::Corrupt(e)),
        };
        length += n as u64;
        if length > limit {
            return Err(PatchError::TooLong { limit });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(PatchError::Write)?;
    }
    out.flush().map_err(PatchError::Write)?;
    Ok(Patched {
        length,
        sha256: hasher.finalize().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn a_small_change_makes_a_small_patch_that_applies() {
        let base = noise(1 << 20, 7);
        let mut new = base.clone();
        new[1000..1100].copy_from_slice(&noise(100, 9));
        new.extend_from_slice(&noise(5000, 11));
        let patch = make_patch(&base, &new).unwrap();
        assert!(patch.len() < 8_000, "{} bytes", patch.len());
        let mut out = Vec::new();
        let done = apply_patch(&base, &patch[..], &mut out, new.len() as u64).unwrap();
        assert_eq!(out, new);
        assert_eq!(done.length, new.len() as u64);
        assert_eq!(done.sha256, <[u8; 32]>::from(Sha256::digest(&new)));
    }

    #[test]
    fn a_wrong_base_a_corrupt_patch_or_too_many_bytes_are_refused() {
        let base = noise(100_000, 3);
        let mut new = base.clone();
        new.truncate(90_000);
        let patch = make_patch(&base, &new).unwrap();
        let mut sink = Vec::new();
        let wrong = noise(100_000, 5);
        match apply_patch(&wrong, &patch[..], &mut sink, new.len() as u64) {
            Err(PatchError::Corrupt(_)) => {}
            Ok(p) => assert_ne!(p.sha256, <[u8; 32]>::from(Sha256::digest(&new))),
            Err(e) => panic!("{e}"),
        }
        let mut bent = patch.clone();
        let mid = bent.len() / 2;
        bent[mid] ^= 0xff;
        assert!(apply_patch(&base, &bent[..], &mut Vec::new(), new.len() as u64).is_err());
        assert!(matches!(
            apply_patch(&base, &patch[..], &mut Vec::new(), 10),
            Err(PatchError::TooLong { limit: 10 })
        ));
        assert!(apply_patch(&base, &b"not zstd"[..], &mut Vec::new(), 100).is_err());
    }

    #[test]
    fn names_and_fingerprints() {
        let v: Version = "1.2".parse().unwrap();
        assert_eq!(patch_name("app.tar.gz", &v), "app.tar.gz.from-1.2.zpatch");
        let hex = "ab".repeat(32);
        assert_eq!(fingerprint_sha256(&fingerprint(&hex)), Some(hex.as_str()));
        assert_eq!(fingerprint_sha256("abc"), None);
        assert_eq!(fingerprint_sha256(&"g".repeat(64)), None);
    }
}

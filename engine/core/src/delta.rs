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

/// The key of a patch target's `custom` object.
pub const PATCH_KEY: &str = "upkeep_patch";

/// What a patch target's `custom.upkeep_patch` says: the files it joins.
/// Written by the repository, read by the reference server and checked by
/// the client before it uses the patch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PatchInfo {
    /// The app.
    pub app: String,
    /// The release the patch makes a file of.
    pub version: Version,
    /// The release whose file it starts from.
    pub from: Version,
    /// The name of the file it makes.
    pub file: String,
    /// The name of the file it starts from (in release `from`).
    pub base_file: String,
    /// The hex SHA-256 of the file it starts from.
    pub base_sha256: String,
    /// The hex SHA-256 of the file it makes.
    pub target_sha256: String,
    /// How it is encoded (absent: zstd).
    #[serde(default = "zstd_format")]
    pub format: PatchFormat,
}

fn zstd_format() -> PatchFormat {
    PatchFormat::Zstd
}

impl PatchInfo {
    /// The patch a target's `custom` object describes, if it is one.
    pub fn of(custom: &serde_json::Value) -> Option<PatchInfo> {
        serde_json::from_value(custom.get(PATCH_KEY)?.clone()).ok()
    }
}

/// How a patch is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatchFormat {
    /// One zstd frame with the old file as its reference prefix.
    Zstd,
    /// bsdiff's control, difference and extra stream (the format of the
    /// `bsdiff` crate), compressed as one zstd frame: smaller on
    /// executables, whose code changes shift addresses everywhere.
    Bsdiff,
}
/// The largest window a patch may use: 2 GiB (zstd's limit on 64-bit).
pub const MAX_WINDOW_LOG: u32 = 31;
/// The compression level bsdiff's stream is compressed with.
pub const PATCH_LEVEL: i32 = 19;
/// The levels a zstd patch is made at; the smallest result is kept. zstd's
/// optimal parser (levels 16 and up) finds the new bytes' best encoding
/// but can miss a reference that covers whole blocks: a file identical to
/// the old one but for a few bytes made an 899,254-byte patch at level 19
/// and an 11,367-byte one at level 3 (a 46 MB binary, zstd 1.5.7). The
/// lower levels take a small fraction of level 19's time.
const REFERENCE_LEVELS: [i32; 3] = [PATCH_LEVEL, 9, 3];

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

/// The smaller of the two patch formats from `base` to `new`.
pub fn make_best_patch(base: &[u8], new: &[u8]) -> io::Result<(PatchFormat, Vec<u8>)> {
    make_patch_as(None, base, new)
}

/// A patch from `base` to `new` in `format`, or with none given the smaller
/// of both formats ([`make_best_patch`]). bsdiff takes the most time and
/// memory (about nine times the old file's size) to make.
pub fn make_patch_as(
    format: Option<PatchFormat>,
    base: &[u8],
    new: &[u8],
) -> io::Result<(PatchFormat, Vec<u8>)> {
    match format {
        Some(PatchFormat::Zstd) => return Ok((PatchFormat::Zstd, make_patch(base, new)?)),
        Some(PatchFormat::Bsdiff) => {
            return Ok((PatchFormat::Bsdiff, make_bsdiff_patch(base, new)?));
        }
        None => {}
    }
    let zstd = make_patch(base, new)?;
    let bsdiff = make_bsdiff_patch(base, new)?;
    Ok(if bsdiff.len() < zstd.len() {
        (PatchFormat::Bsdiff, bsdiff)
    } else {
        (PatchFormat::Zstd, zstd)
    })
}

impl PatchFormat {
    /// The name used in the metadata (`zstd`, `bsdiff`).
    pub fn name(self) -> &'static str {
        match self {
            PatchFormat::Zstd => "zstd",
            PatchFormat::Bsdiff => "bsdiff",
        }
    }
}

/// A bsdiff patch from `base` to `new`, compressed with zstd.
pub fn make_bsdiff_patch(base: &[u8], new: &[u8]) -> io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    bsdiff::diff(base, new, &mut raw)?;
    let mut out = Vec::new();
    let mut encoder = zstd::stream::write::Encoder::new(&mut out, PATCH_LEVEL)?;
    encoder.long_distance_matching(true)?;
    encoder.include_checksum(true)?;
    encoder.write_all(&raw)?;
    encoder.finish()?;
    Ok(out)
}

/// Applies `patch` of `format` to `base`, as [`apply_patch`] does.
pub fn apply(
    format: PatchFormat,
    base: &[u8],
    patch: impl Read,
    out: impl Write,
    limit: u64,
) -> Result<Patched, PatchError> {
    match format {
        PatchFormat::Zstd => apply_patch(base, patch, out, limit),
        PatchFormat::Bsdiff => apply_bsdiff_patch(base, patch, out, limit),
    }
}

/// Applies a [`PatchFormat::Bsdiff`] patch to `base`, streaming: at most
/// `limit` bytes out, hashed on the way. The stream is a series of
/// controls (three little-endian 64-bit numbers: bytes to add to the old
/// file, bytes to copy from the patch, how far to move in the old file,
/// the last in sign-magnitude), each followed by its added and copied
/// bytes.
pub fn apply_bsdiff_patch(
    base: &[u8],
    patch: impl Read,
    mut out: impl Write,
    limit: u64,
) -> Result<Patched, PatchError> {
    let corrupt = |what: &str| {
        PatchError::Corrupt(io::Error::new(io::ErrorKind::InvalidData, what.to_owned()))
    };
    let mut stream = zstd::stream::read::Decoder::new(patch).map_err(PatchError::Corrupt)?;
    let mut hasher = Sha256::new();
    let mut length = 0u64;
    let mut old_pos: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut control = [0u8; 24];
        match read_full(&mut stream, &mut control).map_err(PatchError::Corrupt)? {
            0 => break,
            24 => {}
            _ => return Err(corrupt("a control is cut short")),
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&control[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let (add, copy, seek) = (word(0), word(1), word(2));
        let grown = length
            .checked_add(add)
            .and_then(|n| n.checked_add(copy))
            .ok_or_else(|| corrupt("lengths overflow"))?;
        if grown > limit {
            return Err(PatchError::TooLong { limit });
        }
        // The added bytes: patch bytes plus the old file's at old_pos.
        let mut left = add;
        while left > 0 {
            let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            if read_full(&mut stream, &mut buf[..n]).map_err(PatchError::Corrupt)? != n {
                return Err(corrupt("the added bytes are cut short"));
            }
            let start = usize::try_from(old_pos).map_err(|_| corrupt("old position"))?;
            let old = base
                .get(start..start + n)
                .ok_or_else(|| corrupt("the patch reads past the old file"))?;
            for (b, o) in buf[..n].iter_mut().zip(old) {
                *b = b.wrapping_add(*o);
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(PatchError::Write)?;
            old_pos += n as u64;
            left -= n as u64;
        }
        // The copied bytes, as they are.
        let mut left = copy;
        while left > 0 {
            let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            if read_full(&mut stream, &mut buf[..n]).map_err(PatchError::Corrupt)? != n {
                return Err(corrupt("the copied bytes are cut short"));
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(PatchError::Write)?;
            left -= n as u64;
        }
        length = grown;
        let magnitude = seek & !(1 << 63);
        old_pos = if seek & (1 << 63) == 0 {
            old_pos.checked_add(magnitude)
        } else {
            old_pos.checked_sub(magnitude)
        }
        .ok_or_else(|| corrupt("the patch moves before the old file"))?;
    }
    out.flush().map_err(PatchError::Write)?;
    Ok(Patched {
        length,
        sha256: hasher.finalize().into(),
    })
}

/// Reads until `buf` is full or the stream ends: the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A patch from `base` to `new`.
pub fn make_patch(base: &[u8], new: &[u8]) -> io::Result<Vec<u8>> {
    let mut best: Option<Vec<u8>> = None;
    for level in REFERENCE_LEVELS {
        let patch = make_patch_at(level, base, new)?;
        if best.as_ref().is_none_or(|b| patch.len() < b.len()) {
            best = Some(patch);
        }
    }
    Ok(best.unwrap_or_default())
}

/// [`make_patch`] at one compression level.
fn make_patch_at(level: i32, base: &[u8], new: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = zstd::stream::write::Encoder::with_ref_prefix(&mut out, level, base)?;
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

    #[test]
    fn a_bsdiff_patch_applies_streaming_and_is_capped() {
        let base = noise(200_000, 13);
        let mut new = base.clone();
        for i in (0..new.len()).step_by(4096) {
            new[i] = new[i].wrapping_add(3);
        }
        new.extend_from_slice(b"and a tail");
        let patch = make_bsdiff_patch(&base, &new).unwrap();
        let mut out = Vec::new();
        let made = apply(
            PatchFormat::Bsdiff,
            &base,
            &patch[..],
            &mut out,
            new.len() as u64,
        )
        .unwrap();
        assert_eq!(out, new);
        assert_eq!(made.sha256, <[u8; 32]>::from(Sha256::digest(&new)));
        assert!(matches!(
            apply_bsdiff_patch(&base, &patch[..], &mut Vec::new(), 100),
            Err(PatchError::TooLong { limit: 100 })
        ));
        assert!(apply_bsdiff_patch(&base[..10], &patch[..], &mut Vec::new(), u64::MAX).is_err());
        let (format, best) = make_best_patch(&base, &new).unwrap();
        assert!(best.len() <= patch.len());
        let mut again = Vec::new();
        apply(format, &base, &best[..], &mut again, new.len() as u64).unwrap();
        assert_eq!(again, new);
    }
}

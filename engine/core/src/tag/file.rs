//! A tag appended to a copy of a binary, so a vendor can hand out one
//! tagged installer per app from one signed build.
//!
//! The layout, after the binary's own bytes:
//!
//! ```text
//! "Gact2.0Omaha" | tag length (u16, big-endian) | tag (UTF-8)
//! | block length (u32, little-endian: the three parts above) | "UPKEEPT1"
//! ```
//!
//! The block is Omaha's tag block; the trailer lets a reader find it from
//! the end of the file without scanning. Writing a tag replaces one that
//! is there. The tag is checked with [`Tag::parse`] before anything is
//! written; the tagged file is written beside its destination, synced and
//! renamed over it, with the source's permissions.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{MAX_TAG_BYTES, Tag, TagError};
use crate::durable::write_atomic_with;

/// The start of the tag block.
const BLOCK_MAGIC: &[u8; 12] = b"Gact2.0Omaha";
/// The end of a tagged file.
const TRAILER_MAGIC: &[u8; 8] = b"UPKEEPT1";
/// Block length (u32) and trailer magic.
const TRAILER_LEN: u64 = 4 + 8;

/// Why a tag could not be read from or written to a file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TagFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The file ends in a tag trailer whose block is damaged.
    #[error("{path}: the tag block at its end is damaged ({problem})")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        problem: &'static str,
    },
    /// The tag in the file, or the one to write, is not a valid tag.
    #[error("{path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why the tag was refused.
        #[source]
        source: TagError,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> TagFileError + '_ {
    move |source| TagFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a file's own bytes end and its tag (if any) begins.
struct Layout {
    /// The length of the untagged bytes.
    body: u64,
    /// The tag text, when the file has one.
    tag: Option<String>,
}

fn layout(path: &Path, file: &mut File) -> Result<Layout, TagFileError> {
    let len = file.metadata().map_err(io_error(path))?.len();
    let untagged = Layout {
        body: len,
        tag: None,
    };
    if len < TRAILER_LEN {
        return Ok(untagged);
    }
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.seek(SeekFrom::Start(len - TRAILER_LEN))
        .and_then(|_| file.read_exact(&mut trailer))
        .map_err(io_error(path))?;
    if &trailer[4..] != TRAILER_MAGIC {
        return Ok(untagged);
    }
    let damaged = |problem| TagFileError::Damaged {
        path: path.to_path_buf(),
        problem,
    };
    let block_len = u64::from(u32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ]));
    let head = (BLOCK_MAGIC.len() + 2) as u64;
    if block_len < head || block_len > head + MAX_TAG_BYTES as u64 {
        return Err(damaged("its length is out of range"));
    }
    let body = len
        .checked_sub(TRAILER_LEN + block_len)
        .ok_or_else(|| damaged("it claims more bytes than the file has"))?;
    let mut block = vec![0u8; block_len as usize];
    file.seek(SeekFrom::Start(body))
        .and_then(|_| file.read_exact(&mut block))
        .map_err(io_error(path))?;
    if &block[..BLOCK_MAGIC.len()] != BLOCK_MAGIC {
        return Err(damaged("it does not start with the tag magic"));
    }
    let tag_len = u16::from_be_bytes([block[12], block[13]]) as u64;
    if tag_len + head != block_len {
        return Err(damaged("the tag length and the block length disagree"));
    }
    let text = String::from_utf8(block[BLOCK_MAGIC.len() + 2..].to_vec())
        .map_err(|_| damaged("the tag is not UTF-8"))?;
    Ok(Layout {
        body,
        tag: Some(text),
    })
}

/// The tag text appended to `path`, if it has one (not parsed).
pub fn read_tag_text(path: &Path) -> Result<Option<String>, TagFileError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    Ok(layout(path, &mut file)?.tag)
}

/// The tag appended to `path`, parsed; `None` for an untagged file.
pub fn read_tag(path: &Path) -> Result<Option<Tag>, TagFileError> {
    read_tag_text(path)?
        .map(|text| {
            Tag::parse(&text).map_err(|source| TagFileError::Invalid {
                path: path.to_path_buf(),
                source,
            })
        })
        .transpose()
}

/// Writes a copy of `source` tagged with `tag` to `dest` (which may be
/// `source` itself), replacing a tag `source` has. Returns the parsed tag.
/// `dest` is replaced atomically ([`write_atomic_with`]): on any error it
/// is as it was.
pub fn write_tagged(source: &Path, tag: &str, dest: &Path) -> Result<Tag, TagFileError> {
    let tag_text = tag.trim();
    let parsed = Tag::parse(tag_text).map_err(|source| TagFileError::Invalid {
        path: dest.to_path_buf(),
        source,
    })?;
    // Tag::parse refused anything over MAX_TAG_BYTES (< u16::MAX).
    let tag_len = u16::try_from(tag_text.len()).map_err(|_| TagFileError::Invalid {
        path: dest.to_path_buf(),
        source: TagError::TooLong(tag_text.len()),
    })?;
    let mut input = File::open(source).map_err(io_error(source))?;
    let body = layout(source, &mut input)?.body;
    let permissions = input.metadata().map_err(io_error(source))?.permissions();
    input.seek(SeekFrom::Start(0)).map_err(io_error(source))?;

    let block_len = (BLOCK_MAGIC.len() + 2 + tag_text.len()) as u32;
    let mut block = Vec::with_capacity(block_len as usize + TRAILER_LEN as usize);
    block.extend_from_slice(BLOCK_MAGIC);
    block.extend_from_slice(&tag_len.to_be_bytes());
    block.extend_from_slice(tag_text.as_bytes());
    block.extend_from_slice(&block_len.to_le_bytes());
    block.extend_from_slice(TRAILER_MAGIC);

    // A failure reading the source is reported against the source.
    let mut source_error = None;
    let written = write_atomic_with(dest, |out| {
        match io::copy(&mut (&mut input).take(body), out) {
            Ok(n) if n == body => {}
            Ok(_) => {
                source_error = Some(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was copied",
                ));
                return Err(io::Error::other("source unreadable"));
            }
            Err(e) => {
                source_error = Some(e);
                return Err(io::Error::other("source unreadable"));
            }
        }
        out.write_all(&block)?;
        out.set_permissions(permissions)
    });
    match (written, source_error) {
        (Ok(()), _) => Ok(parsed),
        (Err(_), Some(e)) => Err(io_error(source)(e)),
        (Err(e), None) => Err(io_error(dest)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const TAG: &str = "appguid=org.example.app&appname=Example&needsadmin=prefers";

    #[test]
    fn a_tag_written_reads_back_and_the_binary_bytes_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("upkeep");
        fs::write(&bin, b"\x7fELF binary bytes").unwrap();
        assert!(read_tag(&bin).unwrap().is_none());
        let tagged = dir.path().join("tagged");
        let tag = write_tagged(&bin, TAG, &tagged).unwrap();
        assert_eq!(tag.apps[0].appid, "org.example.app");
        assert_eq!(read_tag_text(&tagged).unwrap().as_deref(), Some(TAG));
        assert_eq!(read_tag(&tagged).unwrap(), Some(tag));
        let bytes = fs::read(&tagged).unwrap();
        assert!(bytes.starts_with(b"\x7fELF binary bytes"));
        // The source is untouched.
        assert_eq!(fs::read(&bin).unwrap(), b"\x7fELF binary bytes");

        // Re-tagging replaces the tag rather than stacking a second one.
        write_tagged(&tagged, "appguid=org.example.other", &tagged).unwrap();
        let again = fs::read(&tagged).unwrap();
        assert_eq!(
            read_tag_text(&tagged).unwrap().as_deref(),
            Some("appguid=org.example.other")
        );
        assert_eq!(&again[..17], b"\x7fELF binary bytes");
        assert_eq!(
            again.len(),
            17 + 12 + 2 + "appguid=org.example.other".len() + 12
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_tagged_copy_keeps_the_execute_bit() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("upkeep");
        fs::write(&bin, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let tagged = dir.path().join("tagged");
        write_tagged(&bin, TAG, &tagged).unwrap();
        let mode = fs::metadata(&tagged).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn an_invalid_tag_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("upkeep");
        fs::write(&bin, b"bytes").unwrap();
        let tagged = dir.path().join("tagged");
        fs::write(&tagged, b"was here").unwrap();
        let e = write_tagged(&bin, "appname=X", &tagged).unwrap_err();
        assert!(matches!(e, TagFileError::Invalid { .. }), "{e}");
        assert_eq!(fs::read(&tagged).unwrap(), b"was here");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "no temporary file left");
    }

    #[test]
    fn damaged_tag_blocks_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("upkeep");
        fs::write(&bin, b"bytes").unwrap();
        write_tagged(&bin, TAG, &bin).unwrap();
        let good = fs::read(&bin).unwrap();

        // A flipped byte in the block magic.
        let mut bad = good.clone();
        bad[5] ^= 0xff;
        fs::write(&bin, &bad).unwrap();
        assert!(matches!(read_tag(&bin), Err(TagFileError::Damaged { .. })));

        // A block length larger than the file.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 12..n - 8].copy_from_slice(&4000u32.to_le_bytes());
        fs::write(&bin, &bad).unwrap();
        assert!(matches!(read_tag(&bin), Err(TagFileError::Damaged { .. })));

        // A tag that is not valid.
        let mut bad = good.clone();
        let at = 5 + 14;
        bad[at..at + 7].copy_from_slice(b"appnam=");
        fs::write(&bin, &bad).unwrap();
        assert!(matches!(read_tag(&bin), Err(TagFileError::Invalid { .. })));
        assert!(read_tag_text(&bin).unwrap().is_some());
    }
}

//! Static files: safe resolution of request paths inside a directory, and
//! single-range `Range` headers.

use std::path::{Path, PathBuf};

/// Why a request path does not name a servable file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The path is malformed or tries to leave the directory
    /// (`..`, `.`, empty components, absolute, backslashes, NUL, bad UTF-8).
    #[error("invalid path: {0}")]
    Invalid(String),
    /// The path resolves (through a symbolic link) outside the directory.
    #[error("path leaves the served directory")]
    Escapes,
    /// No such regular file.
    #[error("not found")]
    NotFound,
}

/// Resolves the percent-encoded `raw` path (relative, `/`-separated) inside
/// `root`. The file must be a regular file whose canonical path lies inside
/// the canonical `root`.
pub fn resolve(root: &Path, raw: &str) -> Result<PathBuf, PathError> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::Invalid("not UTF-8".into()))?;
    if decoded.is_empty() {
        return Err(PathError::Invalid("empty path".into()));
    }
    if decoded.starts_with('/') {
        return Err(PathError::Invalid("absolute path".into()));
    }
    if decoded.contains('\\') || decoded.contains('\0') {
        return Err(PathError::Invalid("backslash or NUL in path".into()));
    }
    let mut rel = PathBuf::new();
    for part in decoded.split('/') {
        match part {
            "" | "." | ".." => {
                return Err(PathError::Invalid(format!("component {part:?} in path")));
            }
            p if p.contains(':') && cfg!(windows) => {
                return Err(PathError::Invalid("drive or stream in path".into()));
            }
            p => rel.push(p),
        }
    }
    let root = root.canonicalize().map_err(|_| PathError::NotFound)?;
    let full = root
        .join(&rel)
        .canonicalize()
        .map_err(|_| PathError::NotFound)?;
    if !full.starts_with(&root) {
        return Err(PathError::Escapes);
    }
    if !full.is_file() {
        return Err(PathError::NotFound);
    }
    Ok(full)
}

/// What to send for a `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// The whole file (no header, an unsupported or malformed one, or
    /// several ranges).
    Full,
    /// Bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// No byte of the range exists: 416.
    Unsatisfiable,
}

/// Reads a `Range` header for a file of `len` bytes. Only single byte
/// ranges are honoured (`bytes=a-b`, `bytes=a-`, `bytes=-n`); anything the
/// server cannot read is ignored, as RFC 9110 allows, and the whole file is
/// sent.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(value) = header else {
        return RangeRequest::Full;
    };
    let value = value.trim();
    let Some((unit, spec)) = value.split_once('=') else {
        return RangeRequest::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match number(last) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(_) if len == 0 => RangeRequest::Unsatisfiable,
            Some(n) => RangeRequest::Partial {
                start: len - n.min(len),
                end: len - 1,
            },
            None => RangeRequest::Full,
        },
        // bytes=a-: from a to the end.
        (false, true) => match number(first) {
            Some(a) if a >= len => RangeRequest::Unsatisfiable,
            Some(a) => RangeRequest::Partial {
                start: a,
                end: len - 1,
            },
            None => RangeRequest::Full,
        },
        (false, false) => match (number(first), number(last)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= len {
                    RangeRequest::Unsatisfiable
                } else {
                    RangeRequest::Partial {
                        start: a,
                        end: b.min(len - 1),
                    }
                }
            }
            _ => RangeRequest::Full,
        },
        (true, true) => RangeRequest::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeRequest::*;
        let p = |s, e| Partial { start: s, end: e };
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), p(0, 3));
        assert_eq!(parse_range(Some("bytes=2-"), 10), p(2, 9));
        assert_eq!(parse_range(Some("bytes=-4"), 10), p(6, 9));
        assert_eq!(parse_range(Some("bytes=-40"), 10), p(0, 9));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), p(5, 9));
        assert_eq!(parse_range(Some(" Bytes = 1-1 "), 10), p(1, 1));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=10-20"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-1"), 0), Unsatisfiable);
        // Ignored: other units, several ranges, malformed specs.
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Full);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes=a-b"), 10), Full);
        assert_eq!(parse_range(Some("bytes=-"), 10), Full);
        assert_eq!(parse_range(Some("bytes=+1-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes"), 10), Full);
        assert_eq!(
            parse_range(Some("bytes=0-99999999999999999999999"), 10),
            Full
        );
    }

    #[test]
    fn paths_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("served");
        std::fs::create_dir_all(root.join("apps/x")).unwrap();
        std::fs::write(root.join("apps/x/a b.bin"), b"ok").unwrap();
        std::fs::write(dir.path().join("secret"), b"no").unwrap();
        assert!(resolve(&root, "apps/x/a%20b.bin").is_ok());
        assert_eq!(resolve(&root, "apps/x/missing"), Err(PathError::NotFound));
        assert_eq!(resolve(&root, "apps/x"), Err(PathError::NotFound));
        for bad in [
            "../secret",
            "apps/../../secret",
            "%2e%2e/secret",
            "..%2fsecret",
            "apps/./x/a%20b.bin",
            "apps//x/a%20b.bin",
            "/etc/passwd",
            "%2fetc%2fpasswd",
            "apps\\x",
            "apps%00",
            "",
            "%ff",
        ] {
            assert!(
                matches!(resolve(&root, bad), Err(PathError::Invalid(_))),
                "{bad:?}"
            );
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
            std::os::unix::fs::symlink(dir.path(), root.join("up")).unwrap();
            assert_eq!(resolve(&root, "link"), Err(PathError::Escapes));
            assert_eq!(resolve(&root, "up/secret"), Err(PathError::Escapes));
            std::os::unix::fs::symlink(root.join("apps/x/a b.bin"), root.join("inside")).unwrap();
            assert!(resolve(&root, "inside").is_ok());
        }
    }
}

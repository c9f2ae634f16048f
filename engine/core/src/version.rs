//! Omaha versions: up to four dot-separated unsigned 32-bit numbers.
//!
//! Missing trailing parts count as zero, so `1.2` equals `1.2.0.0`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A version of up to four numeric parts.
#[derive(Debug, Clone, Eq)]
pub struct Version {
    parts: [u32; 4],
    /// How many parts the text named (1 to 4), kept for display.
    len: usize,
}

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The string was empty.
    #[error("empty version string")]
    Empty,
    /// More than four parts.
    #[error("version {0:?} has more than four parts")]
    TooManyParts(String),
    /// A part is not a number in 0..=4294967295.
    #[error("version {text:?}: part {part:?} is not a number from 0 to 4294967295")]
    BadPart {
        /// The whole version text.
        text: String,
        /// The offending part.
        part: String,
    },
}

impl Default for Version {
    /// Version `0`: an app registered before its first install.
    fn default() -> Self {
        Self {
            parts: [0; 4],
            len: 1,
        }
    }
}

impl Version {
    /// Builds a version from its parts.
    pub fn new(parts: &[u32]) -> Result<Self, VersionError> {
        if parts.is_empty() {
            return Err(VersionError::Empty);
        }
        if parts.len() > 4 {
            return Err(VersionError::TooManyParts(
                parts
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join("."),
            ));
        }
        let mut all = [0u32; 4];
        all[..parts.len()].copy_from_slice(parts);
        Ok(Self {
            parts: all,
            len: parts.len(),
        })
    }

    /// The four parts, missing ones as zero.
    pub fn parts(&self) -> [u32; 4] {
        self.parts
    }

    /// The parts as the text named them.
    pub fn named_parts(&self) -> &[u32] {
        &self.parts[..self.len]
    }

    /// Whether `prefix` matches this version component by component:
    /// "1.2.3" matches 1.2.3.4 but not 1.2.34. An empty prefix matches all.
    pub fn matches_prefix(&self, prefix: &str) -> bool {
        let prefix = prefix.trim_end_matches('.');
        if prefix.is_empty() {
            return true;
        }
        let mut n = 0;
        for (i, part) in prefix.split('.').enumerate() {
            if i >= 4 {
                return false;
            }
            match part.parse::<u32>() {
                Ok(p) if p == self.parts[i] && is_plain_number(part) => n += 1,
                _ => return false,
            }
        }
        n > 0
    }
}

fn is_plain_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        let mut parts = [0u32; 4];
        let mut len = 0;
        for part in text.split('.') {
            if len == 4 {
                return Err(VersionError::TooManyParts(text.to_owned()));
            }
            if !is_plain_number(part) {
                return Err(VersionError::BadPart {
                    text: text.to_owned(),
                    part: part.to_owned(),
                });
            }
            parts[len] = part.parse().map_err(|_| VersionError::BadPart {
                text: text.to_owned(),
                part: part.to_owned(),
            })?;
            len += 1;
        }
        Ok(Self { parts, len })
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.parts.hash(state);
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.named_parts().iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn missing_parts_are_zero() {
        assert_eq!(v("1.2"), v("1.2.0.0"));
        assert_eq!(v("1.2").to_string(), "1.2");
        assert!(v("1.2") < v("1.10"));
        assert!(v("1.2.3.4") > v("1.2.3"));
        assert!(v("4294967295") > v("4294967294.9"));
    }

    #[test]
    fn refuses_bad_text() {
        assert_eq!("".parse::<Version>(), Err(VersionError::Empty));
        assert!(matches!(
            "1.2.3.4.5".parse::<Version>(),
            Err(VersionError::TooManyParts(_))
        ));
        for bad in [
            "1..2",
            "1.-2",
            "1.+2",
            "a.b",
            "1.2 ",
            "4294967296",
            "1.2.",
            ".1",
        ] {
            assert!(
                matches!(bad.parse::<Version>(), Err(VersionError::BadPart { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn prefix_matches_whole_components() {
        assert!(v("1.2.3.4").matches_prefix("1.2.3"));
        assert!(v("1.2.3.4").matches_prefix("1.2.3."));
        assert!(!v("1.2.34").matches_prefix("1.2.3"));
        assert!(v("1.2.34").matches_prefix(""));
        assert!(!v("1.2").matches_prefix("1.2.0.0.0"));
        assert!(v("1.2").matches_prefix("1.2.0"));
    }

    #[test]
    fn serde_round_trip() {
        let json = serde_json::to_string(&v("10.0.1")).unwrap();
        assert_eq!(json, "\"10.0.1\"");
        assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), v("10.0.1"));
        assert!(serde_json::from_str::<Version>("\"x\"").is_err());
    }
}

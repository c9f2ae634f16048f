//! The configuration handed to a shim's `open`: UTF-8 text of `key=value`
//! lines.
//!
//! Keys are made of ASCII letters, digits, `_`, `-` and `.`. A value is
//! everything after the first `=` up to the end of the line; surrounding
//! spaces and tabs are trimmed on both sides, and a value cannot contain a
//! line break. Blank lines and lines starting with `#` are ignored. A key
//! may appear once. What the keys mean is up to each shim (see
//! `docs/shims.md`).

/// A configuration entry or text that breaks the rules above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key is empty or has a character outside the allowed set.
    #[error("invalid configuration key {0:?} (allowed: ASCII letters, digits, '_', '-', '.')")]
    InvalidKey(String),
    /// A value has a line break (or a NUL), which the text form cannot carry.
    #[error("the value of configuration key {0:?} contains a line break or NUL")]
    InvalidValue(String),
    /// A line of the text has no `=`.
    #[error("configuration line {line} is not key=value: {text:?}")]
    NotKeyValue {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A key appears twice.
    #[error("configuration key {0:?} is given twice")]
    Duplicate(String),
}

/// An ordered set of configuration entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShimConfig {
    entries: Vec<(String, String)>,
}

impl ShimConfig {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `key`, checking both parts. Builder style.
    pub fn with(
        mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        self.set(key, value)?;
        Ok(self)
    }

    /// Adds `key`, or replaces its value if present.
    pub fn set(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), ConfigError> {
        let key = key.into();
        let value = value.into();
        check_key(&key)?;
        let trimmed = value.trim_matches([' ', '\t']);
        if value.contains(['\n', '\r', '\0']) {
            return Err(ConfigError::InvalidValue(key));
        }
        let value = trimmed.to_owned();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
        Ok(())
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every entry, in order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The text form: one `key=value` line per entry.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.entries {
            out.push_str(k);
            out.push('=');
            out.push_str(v);
            out.push('\n');
        }
        out
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut config = Self::new();
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim_matches([' ', '\t']);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((key, value)) = trimmed.split_once('=') else {
                return Err(ConfigError::NotKeyValue {
                    line: i + 1,
                    text: line.to_owned(),
                });
            };
            let key = key.trim_matches([' ', '\t']);
            if config.get(key).is_some() {
                return Err(ConfigError::Duplicate(key.to_owned()));
            }
            config.set(key, value)?;
        }
        Ok(config)
    }
}

impl TryFrom<&[(String, String)]> for ShimConfig {
    type Error = ConfigError;

    fn try_from(pairs: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut config = Self::new();
        for (k, v) in pairs {
            config.set(k.as_str(), v.as_str())?;
        }
        Ok(config)
    }
}

fn check_key(key: &str) -> Result<(), ConfigError> {
    let ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidKey(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_comments_and_trims() {
        let c = ShimConfig::parse(
            "# a comment\n\n unit_dir = /etc/systemd/my dir \nname=upkeep\r\nempty=\n",
        )
        .unwrap();
        assert_eq!(c.get("unit_dir"), Some("/etc/systemd/my dir"));
        assert_eq!(c.get("name"), Some("upkeep"));
        assert_eq!(c.get("empty"), Some(""));
        assert_eq!(c.get("missing"), None);
    }

    #[test]
    fn value_keeps_later_equals_signs() {
        let c = ShimConfig::parse("args=a=b=c").unwrap();
        assert_eq!(c.get("args"), Some("a=b=c"));
    }

    #[test]
    fn text_round_trips() {
        let c = ShimConfig::new()
            .with("unit_dir", "/tmp/x y")
            .unwrap()
            .with("name", "upkeep")
            .unwrap();
        assert_eq!(c.to_text(), "unit_dir=/tmp/x y\nname=upkeep\n");
        assert_eq!(ShimConfig::parse(&c.to_text()).unwrap(), c);
    }

    #[test]
    fn refuses_what_text_cannot_carry() {
        assert_eq!(
            ShimConfig::new().with("a b", "x"),
            Err(ConfigError::InvalidKey("a b".into()))
        );
        assert_eq!(
            ShimConfig::new().with("", "x"),
            Err(ConfigError::InvalidKey(String::new()))
        );
        assert_eq!(
            ShimConfig::new().with("k", "x\ny"),
            Err(ConfigError::InvalidValue("k".into()))
        );
        assert!(matches!(
            ShimConfig::parse("just text"),
            Err(ConfigError::NotKeyValue { line: 1, .. })
        ));
        assert_eq!(
            ShimConfig::parse("a=1\na=2"),
            Err(ConfigError::Duplicate("a".into()))
        );
    }

    #[test]
    fn set_replaces() {
        let mut c = ShimConfig::new();
        c.set("k", "1").unwrap();
        c.set("k", "2").unwrap();
        assert_eq!(c.entries().collect::<Vec<_>>(), [("k", "2")]);
    }

    #[test]
    fn from_pairs() {
        let pairs = vec![("name".to_owned(), "x".to_owned())];
        let c = ShimConfig::try_from(pairs.as_slice()).unwrap();
        assert_eq!(c.get("name"), Some("x"));
    }
}

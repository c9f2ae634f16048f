//! The shim's configuration keys, checked once at `open`.

use std::path::PathBuf;

use upkeep_shim_abi::ShimConfig;

use crate::error::SystemdError;

/// The default base name of the units.
pub const DEFAULT_NAME: &str = "upkeep";
/// The default `Description=` of the units.
pub const DEFAULT_DESCRIPTION: &str = "upkeep update engine";
/// The longest base name: leaves room for `-wake.service` within systemd's
/// 255-byte unit names.
pub const MAX_NAME_LEN: usize = 200;

/// Whether and how to tell systemd about changed unit files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Run nothing (the default): whoever installs runs `systemctl`.
    None,
    /// `systemctl daemon-reload` (and start/stop the timer).
    System,
    /// `systemctl --user daemon-reload` (and start/stop the timer).
    User,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemdConfig {
    /// Where unit files are written (absolute).
    pub unit_dir: PathBuf,
    /// The base name of the units: `<name>.service`, `<name>-wake.timer`,
    /// `<name>-wake.service`.
    pub name: String,
    /// The `Description=` of the units.
    pub description: String,
    /// Whether to run `systemctl` after changes.
    pub reload: Reload,
    /// The `systemctl` program (looked up on `PATH` if it has no slash).
    pub systemctl: PathBuf,
}

impl SystemdConfig {
    /// A configuration with defaults for everything but the directory.
    pub fn new(unit_dir: impl Into<PathBuf>) -> Self {
        SystemdConfig {
            unit_dir: unit_dir.into(),
            name: DEFAULT_NAME.into(),
            description: DEFAULT_DESCRIPTION.into(),
            reload: Reload::None,
            systemctl: PathBuf::from("systemctl"),
        }
    }

    /// Reads and checks the keys of a shim configuration. Unknown keys are
    /// refused, so a typo does not pass silently.
    pub fn from_shim_config(config: &ShimConfig) -> Result<Self, SystemdError> {
        for (key, _) in config.entries() {
            if !matches!(
                key,
                "unit_dir" | "name" | "description" | "reload" | "systemctl"
            ) {
                return Err(SystemdError::UnknownKey(key.to_owned()));
            }
        }
        let unit_dir = match config.get("unit_dir") {
            None | Some("") => return Err(SystemdError::MissingUnitDir),
            Some(dir) => PathBuf::from(dir),
        };
        if !unit_dir.is_absolute() {
            return Err(SystemdError::BadConfig {
                key: "unit_dir",
                reason: format!("{} is not an absolute path", unit_dir.display()),
            });
        }
        let mut c = SystemdConfig::new(unit_dir);
        if let Some(name) = config.get("name") {
            check_name(name)?;
            c.name = name.to_owned();
        }
        if let Some(description) = config.get("description") {
            check_description(description)?;
            c.description = description.to_owned();
        }
        if let Some(reload) = config.get("reload") {
            c.reload = match reload {
                "none" => Reload::None,
                "systemctl" => Reload::System,
                "systemctl-user" => Reload::User,
                other => {
                    return Err(SystemdError::BadConfig {
                        key: "reload",
                        reason: format!(
                            "{other:?} is not one of \"none\", \"systemctl\", \"systemctl-user\""
                        ),
                    });
                }
            };
        }
        if let Some(systemctl) = config.get("systemctl") {
            if systemctl.is_empty() {
                return Err(SystemdError::BadConfig {
                    key: "systemctl",
                    reason: "empty program".into(),
                });
            }
            c.systemctl = PathBuf::from(systemctl);
        }
        Ok(c)
    }
}

/// A unit base name: ASCII letters, digits and `-_.@`, not starting with
/// `.`, `-` or `@`, at most one `@` and not at the end (systemd's template
/// syntax), at most [`MAX_NAME_LEN`] bytes.
pub fn check_name(name: &str) -> Result<(), SystemdError> {
    let bad = |reason: &str| SystemdError::BadConfig {
        key: "name",
        reason: format!("{name:?} {reason}"),
    };
    if name.is_empty() {
        return Err(bad("is empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(bad(&format!("is longer than {MAX_NAME_LEN} bytes")));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
    {
        return Err(bad(
            "has a character other than ASCII letters, digits, '-', '_', '.', '@'",
        ));
    }
    if name.starts_with(['.', '-', '@']) {
        return Err(bad("starts with '.', '-' or '@'"));
    }
    if name.matches('@').count() > 1 || name.ends_with('@') {
        return Err(bad(
            "uses '@' other than once in the middle (systemd template syntax)",
        ));
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), SystemdError> {
    let bad = |reason: &str| SystemdError::BadConfig {
        key: "description",
        reason: reason.into(),
    };
    if description.is_empty() {
        return Err(bad("is empty"));
    }
    if description.chars().any(char::is_control) {
        return Err(bad("contains a control character"));
    }
    if description.ends_with('\\') {
        return Err(bad(
            "ends with a backslash (a line continuation in unit files)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SystemdConfig, SystemdError> {
        SystemdConfig::from_shim_config(&ShimConfig::parse(text).unwrap())
    }

    #[test]
    fn defaults() {
        let c = parse("unit_dir=/etc/systemd/system").unwrap();
        assert_eq!(c, SystemdConfig::new("/etc/systemd/system"));
        assert_eq!(c.name, "upkeep");
        assert_eq!(c.reload, Reload::None);
    }

    #[test]
    fn every_key() {
        let c = parse(
            "unit_dir=/u\nname=acme-up_1.2@x\ndescription=Acme 100% up\n\
             reload=systemctl-user\nsystemctl=/bin/fake",
        )
        .unwrap();
        assert_eq!(c.name, "acme-up_1.2@x");
        assert_eq!(c.description, "Acme 100% up");
        assert_eq!(c.reload, Reload::User);
        assert_eq!(c.systemctl, PathBuf::from("/bin/fake"));
        assert_eq!(
            parse("unit_dir=/u\nreload=none").unwrap().reload,
            Reload::None
        );
        assert_eq!(
            parse("unit_dir=/u\nreload=systemctl").unwrap().reload,
            Reload::System
        );
    }

    #[test]
    fn refusals_say_why() {
        let msg = |text: &str| parse(text).unwrap_err().to_string();
        assert!(msg("name=x").starts_with("missing required configuration key `unit_dir`"));
        assert!(msg("unit_dir=").starts_with("missing required configuration key `unit_dir`"));
        assert_eq!(
            msg("unit_dir=rel/dir"),
            "configuration key `unit_dir`: rel/dir is not an absolute path"
        );
        assert!(msg("unit_dir=/u\nunitdir=/v").starts_with("unknown configuration key `unitdir`"));
        assert!(msg("unit_dir=/u\nreload=yes").contains("\"yes\" is not one of"));
        assert!(msg("unit_dir=/u\nname=a b").contains("has a character other than"));
        assert!(msg("unit_dir=/u\nname=a/b").contains("has a character other than"));
        assert!(msg("unit_dir=/u\nname=.hidden").contains("starts with"));
        assert!(msg("unit_dir=/u\nname=-x").contains("starts with"));
        assert!(msg("unit_dir=/u\nname=a@b@c").contains("'@'"));
        assert!(msg("unit_dir=/u\nname=a@").contains("'@'"));
        assert!(msg(&format!("unit_dir=/u\nname={}", "a".repeat(201))).contains("longer"));
        assert!(msg("unit_dir=/u\ndescription=ends\\").contains("backslash"));
        assert!(msg("unit_dir=/u\nsystemctl=").contains("empty program"));
    }
}

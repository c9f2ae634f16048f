//! Plugin manifests: who a plugin is, which world it implements, which API
//! version it was built against, and which capabilities it asks for.
//!
//! The manifest is a TOML file next to the component (`NAME.wasm` →
//! `NAME.toml`). It is read and checked before anything is compiled.
//!
//! ```toml
//! [plugin]
//! name = "install-archive"
//! version = "0.1.0"
//! world = "installer"
//! api = "0.1.0"
//! description = "Unpacks .tar.gz and .zip payloads"
//!
//! [[directories]]
//! mount = "payload"
//! access = "read-only"
//!
//! [[directories]]
//! mount = "install"
//! access = "read-write"
//!
//! [limits]
//! timeout-ms = 20000
//! memory-mib = 128
//! ```

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::PluginError;
use crate::world::World;

/// The WIT package versions this host can load, newest first.
pub const SUPPORTED_API_VERSIONS: &[ApiVersion] = &[ApiVersion {
    major: 0,
    minor: 1,
    patch: 0,
}];

/// A parsed plugin manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Identity and contract.
    pub plugin: PluginSection,
    /// Directories the plugin asks to see.
    #[serde(default)]
    pub directories: Vec<DirectoryRequest>,
    /// Per-call limits the plugin asks for (the host caps them).
    #[serde(default)]
    pub limits: LimitRequest,
}

/// The `[plugin]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    /// A short lower-case name: letters, digits and `-`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The world it implements.
    pub world: World,
    /// The `upkeep:plugin` package version it was built against.
    pub api: ApiVersion,
    /// One line for people.
    #[serde(default)]
    pub description: Option<String>,
}

/// One requested directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryRequest {
    /// Which of the world's mounts (see [`World::mounts`]).
    pub mount: String,
    /// The access asked for.
    pub access: Access,
}

/// Access to a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Read files and list directories.
    ReadOnly,
    /// Also create, write, rename and remove.
    ReadWrite,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        })
    }
}

/// The `[limits]` table: what the plugin would like per call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitRequest {
    /// Wall-time budget of one call, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// Linear memory budget, in MiB.
    pub memory_mib: Option<u64>,
}

/// A semantic version of the WIT package (`major.minor.patch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl ApiVersion {
    /// Whether a host speaking `self` loads plugins built against `other`:
    /// same major (and, before 1.0, same minor), and not newer than the host.
    pub fn can_load(&self, other: &ApiVersion) -> bool {
        if self.major != other.major {
            return false;
        }
        if self.major == 0 && self.minor != other.minor {
            return false;
        }
        other <= self
    }
}

impl FromStr for ApiVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        let [a, b, c] = parts.as_slice() else {
            return Err(format!("API version {s:?} is not major.minor.patch"));
        };
        let num = |p: &str| {
            p.parse::<u32>()
                .map_err(|_| format!("API version {s:?} has a non-numeric part {p:?}"))
        };
        Ok(ApiVersion {
            major: num(a)?,
            minor: num(b)?,
            patch: num(c)?,
        })
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for ApiVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Manifest {
    /// Parses and checks a manifest. `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, PluginError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| PluginError::ManifestInvalid {
                path: origin.to_path_buf(),
                reason: e.to_string(),
            })?;
        manifest
            .check()
            .map_err(|reason| PluginError::ManifestInvalid {
                path: origin.to_path_buf(),
                reason,
            })?;
        Ok(manifest)
    }

    /// Reads the manifest that sits next to `component` (`x.wasm` → `x.toml`).
    pub fn load_beside(component: &Path) -> Result<Self, PluginError> {
        let path = component.with_extension("toml");
        let text = std::fs::read_to_string(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                PluginError::ManifestMissing {
                    component: component.to_path_buf(),
                    expected: path.clone(),
                }
            } else {
                PluginError::Io {
                    path: path.clone(),
                    source,
                }
            }
        })?;
        Self::parse(&text, &path)
    }

    fn check(&self) -> Result<(), String> {
        let name = &self.plugin.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "plugin name {name:?} must be 1 to 64 characters of lower-case letters, digits and '-'"
            ));
        }
        let known = self.plugin.world.mounts();
        let mut seen = Vec::new();
        for d in &self.directories {
            let Some(m) = known.iter().find(|m| m.name == d.mount) else {
                let names: Vec<_> = known.iter().map(|m| m.name).collect();
                return Err(format!(
                    "directory {:?} is not a mount of the {} world (it has: {})",
                    d.mount,
                    self.plugin.world,
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ));
            };
            if d.access > m.max_access {
                return Err(format!(
                    "directory {:?} can be at most {} in the {} world, the manifest asks for {}",
                    d.mount, m.max_access, self.plugin.world, d.access
                ));
            }
            if seen.contains(&d.mount) {
                return Err(format!("directory {:?} is requested twice", d.mount));
            }
            seen.push(d.mount.clone());
        }
        if self.limits.timeout_ms == Some(0) || self.limits.memory_mib == Some(0) {
            return Err("limits must be greater than zero".into());
        }
        Ok(())
    }

    /// The access requested for `mount`, if any.
    pub fn requested(&self, mount: &str) -> Option<Access> {
        self.directories
            .iter()
            .find(|d| d.mount == mount)
            .map(|d| d.access)
    }
}

/// Checks the manifest's API version against what this host supports.
pub fn check_api(manifest: &Manifest) -> Result<ApiVersion, PluginError> {
    SUPPORTED_API_VERSIONS
        .iter()
        .find(|host| host.can_load(&manifest.plugin.api))
        .copied()
        .ok_or_else(|| PluginError::UnsupportedApi {
            plugin: manifest.plugin.name.clone(),
            requested: manifest.plugin.api,
            supported: SUPPORTED_API_VERSIONS
                .iter()
                .map(ApiVersion::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, PluginError> {
        Manifest::parse(text, Path::new("test.toml"))
    }

    const GOOD: &str = r#"
[plugin]
name = "install-archive"
version = "0.1.0"
world = "installer"
api = "0.1.0"

[[directories]]
mount = "payload"
access = "read-only"

[[directories]]
mount = "install"
access = "read-write"

[limits]
timeout-ms = 1000
"#;

    #[test]
    fn parses_a_good_manifest() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.plugin.world, World::Installer);
        assert_eq!(m.requested("install"), Some(Access::ReadWrite));
        assert_eq!(m.requested("payload"), Some(Access::ReadOnly));
        assert_eq!(m.limits.timeout_ms, Some(1000));
        assert_eq!(check_api(&m).unwrap().to_string(), "0.1.0");
    }

    #[test]
    fn refuses_what_the_world_does_not_offer() {
        let bad = GOOD.replace("mount = \"install\"", "mount = \"home\"");
        let err = parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains("\"home\" is not a mount of the installer world"),
            "{err}"
        );
        let bad = GOOD.replace(
            "mount = \"payload\"\naccess = \"read-only\"",
            "mount = \"payload\"\naccess = \"read-write\"",
        );
        let err = parse(&bad).unwrap_err().to_string();
        assert!(err.contains("at most read-only"), "{err}");
        let bad = GOOD.replace("install-archive", "Install Archive");
        assert!(parse(&bad).unwrap_err().to_string().contains("lower-case"));
        let bad = GOOD.replace("[limits]", "[limits]\nnetwork = true");
        assert!(
            parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("unknown field")
        );
        let bad = GOOD.replace("world = \"installer\"", "world = \"miner\"");
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn api_versions() {
        let host: ApiVersion = "0.1.0".parse().unwrap();
        assert!(host.can_load(&"0.1.0".parse().unwrap()));
        assert!(!host.can_load(&"0.2.0".parse().unwrap()));
        assert!(!host.can_load(&"0.1.1".parse().unwrap()));
        assert!(!host.can_load(&"1.1.0".parse().unwrap()));
        let host: ApiVersion = "1.3.0".parse().unwrap();
        assert!(host.can_load(&"1.1.4".parse().unwrap()));
        assert!("1.2".parse::<ApiVersion>().is_err());
        let m = parse(&GOOD.replace("api = \"0.1.0\"", "api = \"0.9.0\"")).unwrap();
        let err = check_api(&m).unwrap_err().to_string();
        assert!(err.contains("0.9.0") && err.contains("0.1.0"), "{err}");
    }
}

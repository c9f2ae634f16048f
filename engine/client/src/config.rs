//! The client configuration (`config.toml` in the state root, or the file
//! given with `--config`): which server, which pinned keys, which plugins
//! the engine itself runs, and how upkeep updates itself. See
//! `docs/client.md` for every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use upkeep_core::cup::{CupClient, CupError};
use upkeep_core::download::DownloadOptions;
use upkeep_core::omaha::Protocol;

use crate::ids::{InvalidAppId, check_app_id};

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the client configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the configuration's schema.
    #[error("{} is not a valid client configuration: {source}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser says.
        source: toml::de::Error,
    },
    /// `server` is not an http(s) URL.
    #[error("{}: server {server:?} must be an http or https URL", path.display())]
    Server {
        /// The file.
        path: PathBuf,
        /// The value given.
        server: String,
    },
    /// `protocol` is not one the client speaks.
    #[error("{}: protocol {protocol:?} is not supported (use \"3.1\" or \"4.0\")", path.display())]
    Protocol {
        /// The file.
        path: PathBuf,
        /// The value given.
        protocol: String,
    },
    /// The CUP public key cannot be read.
    #[error("cannot read the CUP public key {}: {source}", path.display())]
    CupKeyRead {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The CUP public key is not a P-256 public key.
    #[error("{} is not a usable CUP key: {source}", path.display())]
    CupKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        source: CupError,
    },
    /// An app id in `[updater]` or `[qualification]` is not valid.
    #[error("{}: [{section}] app: {source}", path.display())]
    AppId {
        /// The file.
        path: PathBuf,
        /// The section naming it.
        section: &'static str,
        /// What is wrong with it.
        source: InvalidAppId,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: String,
    #[serde(default = "default_protocol")]
    protocol: String,
    tuf_root: PathBuf,
    cup_key_id: u32,
    cup_public_key: PathBuf,
    #[serde(default)]
    telemetry: Vec<PathBuf>,
    #[serde(default)]
    download: DownloadConfig,
    /// Minutes between update checks on `upkeep wake` (default 300).
    check_interval_minutes: Option<u64>,
    /// The most events the outbox keeps undelivered (default 1000).
    outbox_cap: Option<usize>,
    /// Whether apps may be offered an older version (default false).
    rollback_allowed: Option<bool>,
    updater: Option<UpdaterConfigFile>,
    qualification: Option<QualificationConfigFile>,
    #[serde(default)]
    service: ServiceConfigFile,
}

/// `[service]`: the daemon.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceConfigFile {
    admin_group: Option<String>,
    idle_exit_seconds: Option<u64>,
}

/// `[updater]`: upkeep updates itself as this app.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdaterConfigFile {
    app: String,
    #[serde(default)]
    mode: UpdaterMode,
    shim: Option<PathBuf>,
    #[serde(default)]
    shim_config: BTreeMap<String, String>,
}

/// `[qualification]`: what a new updater version must pass.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QualificationConfigFile {
    app: String,
    installer: PathBuf,
    qualifier: PathBuf,
    /// Settings handed to the qualifier plugin.
    #[serde(default)]
    settings: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadConfig {
    min_bytes_per_second: Option<u64>,
    slow_window_seconds: Option<u64>,
    /// The payload cache's cap in MiB (default 1024; 0 keeps no payload).
    cache_mib: Option<u64>,
}

fn default_protocol() -> String {
    "3.1".to_owned()
}

/// How upkeep replaces itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdaterMode {
    /// New versions install into `versions/<v>/`, qualify and activate.
    #[default]
    SideBySide,
    /// The running binary is replaced in place and re-executed.
    SingleBinary,
}

/// The `[updater]` section, resolved.
#[derive(Debug, Clone)]
pub struct SelfUpdateConfig {
    /// The app id upkeep's own releases are published as.
    pub app: String,
    /// How a new release replaces the running one.
    pub mode: UpdaterMode,
    /// The native host shim registering the service and the wake timer.
    pub shim: Option<PathBuf>,
    /// Key–value settings handed to the shim.
    pub shim_config: Vec<(String, String)>,
}

/// The `[qualification]` section, resolved.
#[derive(Debug, Clone)]
pub struct QualificationConfig {
    /// The qualification app's id.
    pub app: String,
    /// The installer plugin for it.
    pub installer: PathBuf,
    /// The qualifier plugin judging it.
    pub qualifier: PathBuf,
    /// Settings handed to the qualifier.
    pub settings: Vec<(String, String)>,
}

/// The `[service]` section: how the daemon serves (docs/service.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceConfig {
    /// A group whose members may register, roll back and remove apps
    /// through a system daemon, besides root.
    pub admin_group: Option<String>,
    /// How long a socket-activated daemon waits idle before it exits
    /// (default [`DEFAULT_IDLE_EXIT`]; 0: never).
    pub idle_exit: Option<Duration>,
}

/// How long a socket-activated daemon stays without a request before it
/// exits (the service manager starts it again on the next connection).
pub const DEFAULT_IDLE_EXIT: Duration = Duration::from_secs(10);

/// The client configuration, with paths resolved and keys loaded.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// The update server's base URL, without a trailing `/`.
    pub server: String,
    /// The Omaha protocol spoken.
    pub protocol: Protocol,
    /// The pinned TUF root metadata.
    pub tuf_root: PathBuf,
    /// The pinned CUP key.
    pub cup: CupClient,
    /// Telemetry sink plugins.
    pub telemetry: Vec<PathBuf>,
    /// Download limits.
    pub download: DownloadOptions,
    /// The most bytes of payloads kept to patch from (`[download]
    /// cache_mib`; past it the least recently installed are removed).
    pub payload_cache_bytes: u64,
    /// Time between update checks on `wake`.
    pub check_interval: Duration,
    /// The most events the outbox keeps undelivered; beyond it the oldest
    /// are dropped with a warning.
    pub outbox_cap: usize,
    /// Whether the server may offer an app an older version than it has
    /// (Omaha's `rollback_allowed`: the server does so for a release it
    /// pulled). upkeep's own app is never downgraded.
    pub rollback_allowed: bool,
    /// `[updater]`: how upkeep updates itself.
    pub updater: Option<SelfUpdateConfig>,
    /// `[qualification]`: what a new updater version must pass.
    pub qualification: Option<QualificationConfig>,
    /// `[service]`: how the daemon serves.
    pub service: ServiceConfig,
    /// The top-level keys the file sets of those a policy can override
    /// (`check_interval_minutes`, `rollback_allowed`), so that the
    /// effective policy can name its sources.
    pub set_keys: Vec<&'static str>,
}

impl Config {
    /// Reads and checks the configuration at `path`. Relative paths in it
    /// are relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: ConfigFile = toml::from_str(&text).map_err(|source| ConfigError::Syntax {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let server_ok = url::Url::parse(&file.server)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && !u.cannot_be_a_base());
        if !server_ok {
            return Err(ConfigError::Server {
                path: path.to_path_buf(),
                server: file.server,
            });
        }
        let protocol = match file.protocol.trim() {
            "3.1" => Protocol::Json31,
            "4.0" => Protocol::Json40,
            _ => {
                return Err(ConfigError::Protocol {
                    path: path.to_path_buf(),
                    protocol: file.protocol,
                });
            }
        };
        let key_path = resolve(&file.cup_public_key);
        let pem = std::fs::read_to_string(&key_path).map_err(|source| ConfigError::CupKeyRead {
            path: key_path.clone(),
            source,
        })?;
        let cup = CupClient::from_public_key_pem(file.cup_key_id, &pem).map_err(|source| {
            ConfigError::CupKey {
                path: key_path.clone(),
                source,
            }
        })?;
        let defaults = DownloadOptions::default();
        let download = DownloadOptions {
            min_bytes_per_second: file
                .download
                .min_bytes_per_second
                .unwrap_or(defaults.min_bytes_per_second),
            slow_window: file
                .download
                .slow_window_seconds
                .map_or(defaults.slow_window, Duration::from_secs),
            resume_attempts: defaults.resume_attempts,
            cancel: defaults.cancel,
        };
        let app_id = |section: &'static str, id: &str| {
            check_app_id(id).map_err(|source| ConfigError::AppId {
                path: path.to_path_buf(),
                section,
                source,
            })
        };
        let updater = match file.updater {
            None => None,
            Some(u) => Some(SelfUpdateConfig {
                app: app_id("updater", &u.app)?,
                mode: u.mode,
                shim: u.shim.as_deref().map(resolve),
                shim_config: u.shim_config.into_iter().collect(),
            }),
        };
        let qualification = match file.qualification {
            None => None,
            Some(q) => Some(QualificationConfig {
                app: app_id("qualification", &q.app)?,
                installer: resolve(&q.installer),
                qualifier: resolve(&q.qualifier),
                settings: q.settings.into_iter().collect(),
            }),
        };
        let mut set_keys = Vec::new();
        if file.check_interval_minutes.is_some() {
            set_keys.push("check_interval_minutes");
        }
        if file.rollback_allowed.is_some() {
            set_keys.push("rollback_allowed");
        }
        Ok(Self {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            server: file.server.trim_end_matches('/').to_owned(),
            protocol,
            tuf_root: resolve(&file.tuf_root),
            cup,
            telemetry: file.telemetry.iter().map(|p| resolve(p)).collect(),
            payload_cache_bytes: file
                .download
                .cache_mib
                .map_or(crate::payload_cache::DEFAULT_CAP_BYTES, |m| {
                    m.saturating_mul(1 << 20)
                }),
            download,
            check_interval: Duration::from_secs(
                file.check_interval_minutes
                    .unwrap_or(300)
                    .saturating_mul(60),
            ),
            outbox_cap: file.outbox_cap.unwrap_or(upkeep_core::outbox::DEFAULT_CAP),
            rollback_allowed: file.rollback_allowed.unwrap_or(false),
            updater,
            qualification,
            service: ServiceConfig {
                admin_group: file.service.admin_group,
                idle_exit: file.service.idle_exit_seconds.map(Duration::from_secs),
            },
            set_keys,
        })
    }

    /// Whether the file sets `key` (one of [`Config::set_keys`]).
    pub fn sets(&self, key: &str) -> bool {
        self.set_keys.contains(&key)
    }

    /// How upkeep replaces itself (side by side unless `[updater]` says).
    pub fn updater_mode(&self) -> UpdaterMode {
        self.updater.as_ref().map(|u| u.mode).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path, text: &str) -> PathBuf {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        std::fs::write(dir.join("cup.pub.pem"), pem).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn config_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            dir.path(),
            "server = \"http://127.0.0.1:8080/\"\ntuf_root = \"root.json\"\ncup_key_id = 1\n\
             cup_public_key = \"cup.pub.pem\"\ntelemetry = [\"sinks/t.wasm\"]\noutbox_cap = 50\n\
             [download]\nmin_bytes_per_second = 10\n\
             [qualification]\napp = \"Q\"\ninstaller = \"i.wasm\"\nqualifier = \"q.wasm\"\n\
             settings = { level = \"full\" }\n",
        );
        let config = Config::load(&path).unwrap();
        assert_eq!(config.server, "http://127.0.0.1:8080");
        assert_eq!(config.protocol, Protocol::Json31);
        assert_eq!(config.tuf_root, dir.path().join("root.json"));
        assert_eq!(config.telemetry, vec![dir.path().join("sinks/t.wasm")]);
        assert_eq!(config.cup.key_id(), 1);
        assert_eq!(config.download.min_bytes_per_second, 10);
        assert_eq!(config.outbox_cap, 50);
        let q = config.qualification.unwrap();
        assert_eq!(q.app, "q");
        assert_eq!(q.qualifier, dir.path().join("q.wasm"));
        assert_eq!(q.settings, vec![("level".to_owned(), "full".to_owned())]);
    }

    #[test]
    fn config_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let base = "tuf_root = \"root.json\"\ncup_key_id = 1\ncup_public_key = \"cup.pub.pem\"\n";
        for (text, needle) in [
            (
                format!("server = \"http://x\"\nprotocol = \"xml\"\n{base}"),
                "protocol",
            ),
            (format!("server = \"ftp://x\"\n{base}"), "http or https"),
            (
                format!("server = \"http://x\"\nsevrer = 1\n{base}"),
                "sevrer",
            ),
            ("server = \"http://x\"\n".to_owned(), "tuf_root"),
            (
                format!("server = \"http://x\"\n{base}[updater]\napp = \"a b\"\n"),
                "[updater] app",
            ),
        ] {
            let path = write_config(dir.path(), &text);
            let err = Config::load(&path).err().unwrap().to_string();
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
    }
}

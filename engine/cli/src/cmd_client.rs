//! `upkeep register`, `upkeep update` and `upkeep rollback`: the machine
//! side of the update path. One signed Omaha request for the registered
//! apps; for each offered update, a TUF refresh and target lookup, a
//! verified download, the app's installer plugin writing a fresh
//! `versions/<version>/`, the atomic switch of `current`, the new version
//! recorded atomically, an event ping and the telemetry sinks. See
//! `docs/client.md`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};
use upkeep_core::appdir;
use upkeep_core::crash;
use upkeep_core::cup::CupClient;
use upkeep_core::download::{
    DownloadError, DownloadOptions, DownloadProgress, DownloadReport, DownloadRequest, Downloader,
};
use upkeep_core::http::HttpTransport;
use upkeep_core::lifecycle;
use upkeep_core::omaha::{
    AppStatus, DataRequest, DataStatus, ErrorCategory, Event, EventResult, EventType, Os, Protocol,
    RequestApp, RequestBuilder, UpdateCheck, UpdateCheckStatus, random_id,
};
use upkeep_core::state::{
    AppRecord, LOCK_FILE, PREFS_FILE, PluginRef, Prefs, StagedBinary, StateLock, SwitchKind,
};
use upkeep_core::tuf::{SystemClock, Updater, UpdaterConfig, init_trusted_root};
use upkeep_core::update_check::{
    self, CheckError, OfferedPackage, agree, offered_packages, target_path,
};
use upkeep_core::version::Version;
use upkeep_plugin_host::bindings::{existence, installer, qualifier, types};
use upkeep_plugin_host::{
    CallOptions, ExistenceInput, HostConfig, InstallInput, Plugin, PluginHost, QualifyInput,
    TelemetryInput, World,
};

use crate::ExitCode;
use crate::http::ReqwestHttp;

/// How long `update` and `register` wait for another process's lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// The downloader's name in download events.
const DOWNLOADER: &str = "upkeep-http";

/// Where the client keeps its state and finds its configuration.
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// The state directory. Default: the installation the running binary
    /// belongs to (`<root>/versions/<v>/upkeep`), else the per-user scope
    /// ($XDG_DATA_HOME/upkeep, else ~/.local/share/upkeep).
    #[arg(long, value_name = "DIR", conflicts_with = "system")]
    pub(crate) root: Option<PathBuf>,

    /// Use the system-wide scope, /var/lib/upkeep (root-owned), instead of
    /// the per-user one. The two never touch each other.
    #[arg(long)]
    pub(crate) system: bool,

    /// The client configuration [default: <root>/config.toml].
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// `upkeep register`.
#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct RegisterArgs {
    /// The app id (stored lower-case; Omaha ids compare case-insensitively).
    #[arg(long = "app", value_name = "ID")]
    app: String,

    /// The installed version; 0 when the app is not installed yet (the next
    /// `update` then installs the newest release).
    #[arg(long = "version", id = "app_version", value_name = "VERSION")]
    version: String,

    /// The app's install directory (handed read-write to the installer).
    #[arg(long, value_name = "DIR")]
    install_dir: PathBuf,

    /// The installer plugin (.wasm, installer world).
    #[arg(long, value_name = "PLUGIN")]
    installer: PathBuf,

    /// An existence-checker plugin (.wasm, existence-checker world).
    #[arg(long, value_name = "PLUGIN")]
    existence: Option<PathBuf>,

    /// The marker path the existence checker looks for, relative to the install directory.
    #[arg(long, value_name = "PATH", requires = "existence")]
    marker: Option<String>,

    /// The update channel (sent as Omaha `ap`).
    #[arg(long, value_name = "NAME")]
    channel: Option<String>,

    /// An install data index: when the app is installed (registered at
    /// version 0), the update check asks the server for the install data
    /// under this index and hands its text to the installer plugin as its
    /// installer data.
    #[arg(long, value_name = "INDEX")]
    install_data_index: Option<String>,

    /// A post-install check (.wasm, qualifier world): run on every freshly
    /// installed version (mounted read-only at /app) before `current`
    /// switches to it; a failing check discards the version.
    #[arg(long, value_name = "PLUGIN")]
    post_install_check: Option<PathBuf>,

    #[command(flatten)]
    state: StateArgs,
}

/// `upkeep update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Only this registered app (default: every registered app).
    #[arg(long = "app", value_name = "ID")]
    app: Option<String>,

    /// Print a machine-readable JSON summary on stdout.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// `upkeep rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The registered app to switch back to its previous version.
    #[arg(long = "app", value_name = "ID")]
    app: String,

    #[command(flatten)]
    state: StateArgs,
}

// ------------------------------------------------------------ config ----

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
    updater: Option<UpdaterConfigFile>,
    qualification: Option<QualificationConfigFile>,
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
}

/// How upkeep replaces itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum UpdaterMode {
    /// New versions install into `versions/<v>/`, qualify and activate.
    #[default]
    SideBySide,
    /// The running binary is replaced in place and re-executed.
    SingleBinary,
}

/// The `[updater]` section, resolved.
#[derive(Debug, Clone)]
pub(crate) struct SelfUpdateConfig {
    pub(crate) app: String,
    pub(crate) mode: UpdaterMode,
    pub(crate) shim: Option<PathBuf>,
    pub(crate) shim_config: Vec<(String, String)>,
}

/// The `[qualification]` section, resolved.
#[derive(Debug, Clone)]
pub(crate) struct QualificationConfig {
    pub(crate) app: String,
    pub(crate) installer: PathBuf,
    pub(crate) qualifier: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DownloadConfig {
    min_bytes_per_second: Option<u64>,
    slow_window_seconds: Option<u64>,
}

fn default_protocol() -> String {
    "3.1".to_owned()
}

/// The client configuration, with paths resolved and keys loaded.
pub(crate) struct Config {
    /// The file it was read from.
    pub(crate) path: PathBuf,
    server: String,
    protocol: Protocol,
    tuf_root: PathBuf,
    cup: CupClient,
    telemetry: Vec<PathBuf>,
    download: DownloadOptions,
    pub(crate) check_interval: Duration,
    pub(crate) updater: Option<SelfUpdateConfig>,
    pub(crate) qualification: Option<QualificationConfig>,
}

impl Config {
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the client configuration {}", path.display()))?;
        let file: ConfigFile = toml::from_str(&text)
            .with_context(|| format!("{} is not a valid client configuration", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let url = reqwest::Url::parse(&file.server).with_context(|| {
            format!("{}: server {:?} is not a URL", path.display(), file.server)
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            bail!(
                "{}: server {:?} must be an http or https URL",
                path.display(),
                file.server
            );
        }
        let protocol = match file.protocol.trim() {
            "3.1" => Protocol::Json31,
            "4.0" => Protocol::Json40,
            other => bail!(
                "{}: protocol {other:?} is not supported (use \"3.1\" or \"4.0\")",
                path.display()
            ),
        };
        let key_path = resolve(&file.cup_public_key);
        let pem = std::fs::read_to_string(&key_path)
            .with_context(|| format!("cannot read the CUP public key {}", key_path.display()))?;
        let cup = CupClient::from_public_key_pem(file.cup_key_id, &pem)
            .with_context(|| format!("{} is not a usable CUP key", key_path.display()))?;
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
        };
        Ok(Self {
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            server: file.server.trim_end_matches('/').to_owned(),
            protocol,
            tuf_root: resolve(&file.tuf_root),
            cup,
            telemetry: file.telemetry.iter().map(|p| resolve(p)).collect(),
            download,
            check_interval: Duration::from_secs(
                file.check_interval_minutes
                    .unwrap_or(300)
                    .saturating_mul(60),
            ),
            updater: match file.updater {
                None => None,
                Some(u) => Some(SelfUpdateConfig {
                    app: check_app_id(&u.app)
                        .with_context(|| format!("{}: [updater] app", path.display()))?,
                    mode: u.mode,
                    shim: u.shim.as_deref().map(resolve),
                    shim_config: u.shim_config.into_iter().collect(),
                }),
            },
            qualification: match file.qualification {
                None => None,
                Some(q) => Some(QualificationConfig {
                    app: check_app_id(&q.app)
                        .with_context(|| format!("{}: [qualification] app", path.display()))?,
                    installer: resolve(&q.installer),
                    qualifier: resolve(&q.qualifier),
                }),
            },
        })
    }
}

/// The system-wide state root.
pub(crate) const SYSTEM_ROOT: &str = "/var/lib/upkeep";

/// Resolves the state root: `--root`, else `--system`, else the
/// installation the running binary belongs to, else the per-user scope.
pub(crate) fn state_root(args: &StateArgs) -> Result<PathBuf> {
    if let Some(root) = &args.root {
        return std::path::absolute(root)
            .with_context(|| format!("cannot resolve --root {}", root.display()));
    }
    if args.system {
        return Ok(PathBuf::from(SYSTEM_ROOT));
    }
    if let Some(installed) = std::env::current_exe()
        .ok()
        .and_then(|exe| lifecycle::installed_at(&exe))
    {
        return Ok(installed.root);
    }
    user_root()
}

/// The per-user state root.
pub(crate) fn user_root() -> Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from)
        && xdg.is_absolute()
    {
        return Ok(xdg.join("upkeep"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/upkeep")),
        None => bail!("no state directory: pass --root or --system, or set XDG_DATA_HOME or HOME"),
    }
}

pub(crate) fn config_path(args: &StateArgs, root: &Path) -> PathBuf {
    args.config
        .clone()
        .unwrap_or_else(|| root.join("config.toml"))
}

pub(crate) fn plugin_host(root: &Path) -> Result<PluginHost> {
    PluginHost::new(HostConfig::with_cache(root.join("plugin-cache")))
        .context("cannot start the plugin host")
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// App ids become directory names: ASCII letters, digits and `._-{}` only.
fn check_app_id(id: &str) -> Result<String> {
    let lower = id.trim().to_ascii_lowercase();
    if lower.is_empty()
        || lower.len() > 128
        || lower.starts_with('.')
        || !lower
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-{}".contains(&b))
    {
        bail!(
            "app id {id:?} is not valid: use 1 to 128 ASCII letters, digits, '.', '_', '-', '{{' or '}}', not starting with '.'"
        );
    }
    Ok(lower)
}

pub(crate) fn load_plugin(host: &PluginHost, path: &Path, world: World) -> Result<Plugin> {
    let plugin = host
        .load(path)
        .with_context(|| format!("cannot load plugin {}", path.display()))?;
    if plugin.world() != world {
        bail!(
            "plugin {} implements the {} world, but a {world} plugin is needed",
            path.display(),
            plugin.world()
        );
    }
    Ok(plugin)
}

// ---------------------------------------------------------- register ----

/// A fresh registration at `version` in `install_dir`, without plugins.
pub(crate) fn new_record(version: Version, install_dir: PathBuf) -> AppRecord {
    AppRecord {
        version,
        install_dir,
        installer: None,
        updater: false,
        post_install_check: None,
        existence: None,
        marker: None,
        channel: None,
        install_data_index: None,
        cohort: Default::default(),
        days: Default::default(),
        registered_at: unix_now(),
        updated_at: None,
        previous_version: None,
    }
}

/// Runs `upkeep register`.
pub fn register(args: RegisterArgs) -> Result<ExitCode> {
    let root = state_root(&args.state)?;
    let config = config_path(&args.state, &root);
    if !config.exists() {
        eprintln!(
            "upkeep: note: no client configuration at {} yet; `upkeep update` needs one",
            config.display()
        );
    }
    let id = check_app_id(&args.app)?;
    let version: Version = args
        .version
        .parse()
        .with_context(|| format!("--version {:?} is not a version", args.version))?;
    let install_dir = std::path::absolute(&args.install_dir)
        .with_context(|| format!("cannot resolve {}", args.install_dir.display()))?;
    if install_dir.exists() && !install_dir.is_dir() {
        bail!(
            "--install-dir {} exists and is not a directory",
            install_dir.display()
        );
    }
    if let Some(index) = &args.install_data_index
        && (index.is_empty() || index.len() > 128 || index.chars().any(char::is_control))
    {
        bail!(
            "--install-data-index {index:?}: give 1 to 128 characters without control characters"
        );
    }
    let host = plugin_host(&root)?;
    let plugin_ref = |path: &Path, world: World| -> Result<PluginRef> {
        let path = std::path::absolute(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        let plugin = load_plugin(&host, &path, world)?;
        Ok(PluginRef {
            sha256: plugin.content_hash().to_owned(),
            path,
        })
    };
    let installer = plugin_ref(&args.installer, World::Installer)?;
    let existence = args
        .existence
        .as_deref()
        .map(|p| plugin_ref(p, World::ExistenceChecker))
        .transpose()?;
    let post_install_check = args
        .post_install_check
        .as_deref()
        .map(|p| plugin_ref(p, World::Qualifier))
        .transpose()?;

    let config = if config.exists() {
        Some(Config::load(&config)?)
    } else {
        None
    };
    let (_lock, mut prefs) = crate::cmd_lifecycle::lock_and_recover_held(&root, config.as_ref())?;
    let prefs_path = root.join(PREFS_FILE);
    let previous = prefs.apps.get(&id).cloned();
    let record = AppRecord {
        version: version.clone(),
        install_dir,
        installer: Some(installer),
        updater: false,
        post_install_check,
        existence,
        marker: args.marker,
        channel: args.channel,
        install_data_index: args.install_data_index,
        cohort: previous
            .as_ref()
            .map(|p| p.cohort.clone())
            .unwrap_or_default(),
        days: previous
            .as_ref()
            .map(|p| p.days.clone())
            .unwrap_or_default(),
        registered_at: previous.as_ref().map_or_else(unix_now, |p| p.registered_at),
        updated_at: previous.as_ref().and_then(|p| p.updated_at),
        // The kept version stays usable only while the registration names
        // the same installed version.
        previous_version: previous
            .as_ref()
            .filter(|p| p.version == version)
            .and_then(|p| p.previous_version.clone()),
    };
    prefs.apps.insert(id.clone(), record);
    prefs
        .save(&prefs_path)
        .with_context(|| format!("cannot record the registration of {id}"))?;
    println!(
        "{} {id} at version {version} in {}",
        if previous.is_some() {
            "re-registered"
        } else {
            "registered"
        },
        root.display()
    );
    Ok(ExitCode::Ok)
}

// ------------------------------------------------------------ update ----

/// A failure of one app's update, with the codes its event reports.
#[derive(Debug, Clone)]
struct Failure {
    category: ErrorCategory,
    code: i64,
    extra: i64,
    message: String,
}

impl Failure {
    fn new(category: ErrorCategory, code: i64, message: impl Into<String>) -> Self {
        Self {
            category,
            code,
            extra: 0,
            message: message.into(),
        }
    }
}

/// Error codes of the update check (errorcat 5).
mod check_code {
    pub const UNREACHABLE: i64 = 1;
    pub const HTTP_STATUS: i64 = 2;
    pub const READ: i64 = 3;
    pub const CUP: i64 = 4;
    pub const MALFORMED: i64 = 5;
    pub const APP_MISSING: i64 = 6;
    pub const APP_STATUS: i64 = 7;
    pub const NOT_NEWER: i64 = 10;
    pub const BAD_OFFER: i64 = 11;
}

/// Error codes of downloads and their verification (errorcat 1).
mod download_code {
    pub const NETWORK: i64 = 1;
    pub const HTTP_STATUS: i64 = 2;
    pub const TRUNCATED: i64 = 3;
    pub const ENDLESS_DATA: i64 = 4;
    pub const SLOW: i64 = 5;
    pub const HASH: i64 = 6;
    pub const DISK: i64 = 7;
    pub const CONTENT_RANGE: i64 = 8;
    pub const NO_URLS: i64 = 9;
    pub const TUF_REFRESH: i64 = 20;
    pub const TUF_TARGET: i64 = 21;
    pub const DISAGREEMENT: i64 = 22;
}

/// Error codes of installs the engine does itself (errorcat 3).
mod install_code {
    pub const UPDATER: i64 = 1;
    pub const POST_INSTALL_CHECK: i64 = 2;
}

/// Error codes of the engine itself (errorcat 4).
mod service_code {
    pub const PREFS: i64 = 1;
    pub const PLUGIN_LOAD: i64 = 10;
    pub const PLUGIN_CALL: i64 = 11;
    pub const INSTALL_DIR: i64 = 12;
    pub const SWITCH: i64 = 13;
}

fn check_failure(e: &CheckError) -> Failure {
    let code = match e {
        CheckError::Sign(_) | CheckError::Unreachable(_) => check_code::UNREACHABLE,
        CheckError::Status { .. } => check_code::HTTP_STATUS,
        CheckError::Read(_) | CheckError::TooLarge { .. } => check_code::READ,
        CheckError::Cup(_) => check_code::CUP,
        CheckError::Malformed(_) => check_code::MALFORMED,
        _ => check_code::MALFORMED,
    };
    Failure::new(ErrorCategory::UpdateCheck, code, e.to_string())
}

fn download_failure(name: &str, e: &DownloadError) -> Failure {
    let code = match e {
        DownloadError::NoUrls => download_code::NO_URLS,
        DownloadError::Network { .. } => download_code::NETWORK,
        DownloadError::Status { .. } => download_code::HTTP_STATUS,
        DownloadError::BadContentRange { .. } => download_code::CONTENT_RANGE,
        DownloadError::Truncated { .. } => download_code::TRUNCATED,
        DownloadError::LengthExceeded { .. } => download_code::ENDLESS_DATA,
        DownloadError::SlowRetrieval { .. } => download_code::SLOW,
        DownloadError::HashMismatch { .. } => download_code::HASH,
        _ => download_code::DISK,
    };
    Failure::new(
        ErrorCategory::Download,
        code,
        format!("download of {name} failed: {e}"),
    )
}

/// An event to report, in both the Omaha and the plugin form.
struct Recorded {
    app_id: String,
    event: Event,
    download: Option<(String, DownloadReport)>,
    timestamp_ms: u64,
    duration_ms: Option<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn event(
    kind: EventType,
    failure: Option<&Failure>,
    previous: &Version,
    next: Option<&Version>,
) -> Event {
    let mut e = Event::new(
        kind,
        if failure.is_some() {
            EventResult::Error
        } else {
            EventResult::Success
        },
    );
    e.errorcat = Some(failure.map_or(ErrorCategory::None, |f| f.category));
    e.errorcode = Some(failure.map_or(0, |f| f.code));
    e.extracode1 = Some(failure.map_or(0, |f| f.extra));
    e.previousversion = Some(previous.to_string());
    e.nextversion = next.map(ToString::to_string);
    e
}

/// What happened to one app.
enum Outcome {
    /// The existence checker said the app is gone; it was forgotten.
    Removed {
        version: Version,
    },
    UpToDate,
    Updated {
        from: Version,
        to: Version,
        downloads: Vec<DownloadReport>,
        install_time: Duration,
        /// An updater version installed side by side, not switched to yet.
        staged: bool,
    },
    Failed {
        next: Option<Version>,
        failure: Failure,
    },
}

/// What applying one update did.
struct Applied {
    downloads: Vec<DownloadReport>,
    /// Wall time of the installer: plugin load and call.
    install_time: Duration,
}

/// How a verified and installed update was committed.
enum Committed {
    /// The app's `current` now points at it (recorded).
    Switched,
    /// An updater version installed side by side: activation switches.
    Staged,
    /// A single-binary updater replaced in place (this path): re-executed
    /// once the run ends.
    Replaced(PathBuf),
}

/// Everything one `update` run shares.
struct Run<'a> {
    root: PathBuf,
    config: &'a Config,
    http: &'a ReqwestHttp,
    host: Option<PluginHost>,
    tuf: Option<Result<Updater<HttpTransport<&'a ReqwestHttp>, SystemClock>, String>>,
    session: String,
    events: Vec<Recorded>,
    tty: bool,
    /// A single-binary updater staged beside the running binary by
    /// [`Run::install_updater`], renamed over it by [`Run::commit`].
    staged_binary: Option<StagedBinary>,
}

impl<'a> Run<'a> {
    /// Records an installed update: switches the app's `current` through the
    /// journal (or, for the updater itself, leaves the staged version to
    /// activation or renames the staged binary in place), then removes
    /// what the new version made obsolete.
    fn commit(
        &mut self,
        prefs_path: &Path,
        prefs: &mut Prefs,
        id: &str,
        record: &AppRecord,
        mut updated: AppRecord,
        to: &Version,
    ) -> Result<Committed, Failure> {
        let record_failure = |e: lifecycle::LifecycleError| {
            let code = match e {
                lifecycle::LifecycleError::State(_) => service_code::PREFS,
                _ => service_code::SWITCH,
            };
            Failure::new(
                ErrorCategory::Service,
                code,
                format!("installed {to}, but cannot switch to it: {e}"),
            )
        };
        if record.updater {
            if let Some(binary) = self.staged_binary.take() {
                let exe = binary.path.clone();
                updated.previous_version = Some(record.version.clone());
                updated.version = to.clone();
                updated.updated_at = Some(unix_now());
                lifecycle::replace_binary(prefs_path, prefs, id, updated, binary)
                    .map_err(record_failure)?;
                remove_old_payloads(&self.root, id, to);
                return Ok(Committed::Replaced(exe));
            }
            // The version is recorded when it activates.
            prefs.apps.insert(id.to_owned(), updated);
            remove_old_payloads(&self.root, id, to);
            return Ok(Committed::Staged);
        }
        let dir = &record.install_dir;
        let previous = (appdir::current_version(dir).as_deref()
            == Some(record.version.to_string().as_str())
            && appdir::version_dir(dir, &record.version).is_dir())
        .then(|| record.version.clone());
        updated.version = to.clone();
        updated.updated_at = Some(unix_now());
        updated.previous_version = previous.clone();
        if let Err(e) = lifecycle::switch_app(prefs_path, prefs, id, SwitchKind::Update, updated) {
            let _ = appdir::discard(dir, to);
            return Err(record_failure(e));
        }
        remove_old_payloads(&self.root, id, to);
        let mut keep = vec![to];
        keep.extend(previous.as_ref());
        for (path, e) in appdir::prune(dir, &keep) {
            eprintln!(
                "upkeep: warning: {id}: cannot remove the old version {}: {e}",
                path.display()
            );
        }
        crash::point("update.pruned");
        Ok(Committed::Switched)
    }

    fn host(&mut self) -> Result<&PluginHost, Failure> {
        if self.host.is_none() {
            let host = plugin_host(&self.root).map_err(|e| {
                Failure::new(
                    ErrorCategory::Service,
                    service_code::PLUGIN_LOAD,
                    format!("{e:#}"),
                )
            })?;
            self.host = Some(host);
        }
        self.host.as_ref().ok_or_else(|| {
            Failure::new(
                ErrorCategory::Service,
                service_code::PLUGIN_LOAD,
                "the plugin host is not available",
            )
        })
    }

    /// Whether the app's existence checker says it is gone. Apps at
    /// version 0 (not installed yet) and apps without a checker are never
    /// gone; a checker that cannot tell, fails or changed since
    /// registration is a warning and keeps the app.
    fn is_gone(&mut self, id: &str, record: &AppRecord) -> bool {
        let Some(checker) = &record.existence else {
            return false;
        };
        if record.version == Version::default() {
            return false;
        }
        let result = (|| -> Result<bool> {
            let host = self.host().map_err(|f| anyhow::anyhow!(f.message))?;
            let plugin = load_plugin(host, &checker.path, World::ExistenceChecker)?;
            if plugin.content_hash() != checker.sha256 {
                bail!(
                    "existence checker {} changed since {id} was registered; register the app again to trust it",
                    checker.path.display()
                );
            }
            let input = ExistenceInput {
                app_id: id.to_owned(),
                version: record.version.to_string(),
                app_dir: Some(record.install_dir.clone()),
                marker: record.marker.clone(),
                settings: Vec::new(),
            };
            let report = host
                .check_existence(&plugin, &input, CallOptions::default())
                .with_context(|| format!("existence checker {} failed", plugin.name()))?;
            match report.value {
                existence::Presence::Present => Ok(false),
                existence::Presence::Absent => Ok(true),
                existence::Presence::Error(e) => {
                    bail!("existence checker {} cannot tell: {e}", plugin.name())
                }
            }
        })();
        match result {
            Ok(gone) => gone,
            Err(e) => {
                eprintln!("upkeep: warning: {id}: {e:#}; keeping the app");
                false
            }
        }
    }

    /// The TUF client after a full refresh (done once per run).
    fn tuf(
        &mut self,
    ) -> Result<&mut Updater<HttpTransport<&'a ReqwestHttp>, SystemClock>, Failure> {
        if self.tuf.is_none() {
            self.tuf = Some(self.refresh_tuf());
        }
        match self.tuf.as_mut() {
            Some(Ok(updater)) => Ok(updater),
            Some(Err(message)) => Err(Failure::new(
                ErrorCategory::Download,
                download_code::TUF_REFRESH,
                message.clone(),
            )),
            None => Err(Failure::new(
                ErrorCategory::Download,
                download_code::TUF_REFRESH,
                "no TUF client",
            )),
        }
    }

    fn refresh_tuf(&self) -> Result<Updater<HttpTransport<&'a ReqwestHttp>, SystemClock>, String> {
        let dir = self.root.join("tuf");
        if !dir.join("root.json").exists() {
            let bytes = std::fs::read(&self.config.tuf_root).map_err(|e| {
                format!(
                    "cannot read the pinned TUF root {}: {e}",
                    self.config.tuf_root.display()
                )
            })?;
            init_trusted_root(&dir, &bytes).map_err(|e| {
                format!(
                    "the pinned TUF root {} is refused: {e}",
                    self.config.tuf_root.display()
                )
            })?;
        }
        let url = format!("{}/tuf/", self.config.server);
        let mut updater = Updater::new(
            &dir,
            &url,
            HttpTransport::new(self.http),
            SystemClock,
            UpdaterConfig::default(),
        )
        .map_err(|e| {
            format!(
                "the trusted TUF metadata in {} is unusable: {e}",
                dir.display()
            )
        })?;
        updater
            .refresh()
            .map_err(|e| format!("TUF refresh from {url} refused: {e}"))?;
        Ok(updater)
    }

    /// Downloads, verifies and installs an offered update.
    fn apply(
        &mut self,
        id: &str,
        record: &AppRecord,
        check: &UpdateCheck,
        next: &Version,
        installer_data: Option<&str>,
    ) -> Result<Applied, Failure> {
        let packages = offered_packages(check).map_err(|e| {
            Failure::new(
                ErrorCategory::UpdateCheck,
                check_code::BAD_OFFER,
                format!("the offer of {next} is unusable: {e}"),
            )
        })?;
        // Every package must be a release the TUF targets metadata signed.
        let mut agreed = Vec::new();
        for package in &packages {
            let path = target_path(id, next, &package.name);
            let tuf = self.tuf()?;
            let target = tuf.get_target_info(&path).map_err(|e| {
                Failure::new(
                    ErrorCategory::Download,
                    download_code::TUF_TARGET,
                    format!("TUF refuses {path}: {e}"),
                )
            })?;
            let file = agree(package, &target).map_err(|e| {
                Failure::new(
                    ErrorCategory::Download,
                    download_code::DISAGREEMENT,
                    format!("refused: {e}"),
                )
            })?;
            agreed.push((package, file));
        }
        let payload_dir = self.root.join("downloads").join(id).join(next.to_string());
        let mut reports = Vec::new();
        let mut verified = Vec::new();
        for (package, file) in agreed {
            let request = DownloadRequest {
                urls: package.urls.clone(),
                length: file.length,
                sha256: file.sha256,
                staging: self
                    .root
                    .join("downloads/.partial")
                    .join(id)
                    .join(next.to_string())
                    .join(&package.name),
                dest: payload_dir.join(&package.name),
            };
            let report = self.download(id, package, &request)?;
            reports.push(report);
            verified.push((request.dest, hex::encode(file.sha256)));
        }
        crash::point("update.downloaded");
        let install_started = Instant::now();
        if record.updater {
            let [(binary, sha256)] = verified.as_slice() else {
                return Err(Failure::new(
                    ErrorCategory::Install,
                    install_code::UPDATER,
                    format!(
                        "an upkeep release must be exactly one file (the binary); {next} has {}",
                        verified.len()
                    ),
                ));
            };
            self.install_updater(next, binary, sha256)?;
        } else {
            self.install(id, record, check, next, &payload_dir, installer_data)?;
        }
        crash::point("install.done");
        Ok(Applied {
            downloads: reports,
            install_time: install_started.elapsed(),
        })
    }

    fn download(
        &mut self,
        id: &str,
        package: &OfferedPackage,
        request: &DownloadRequest,
    ) -> Result<DownloadReport, Failure> {
        let downloader = Downloader::new(self.http, self.config.download.clone());
        let tty = self.tty;
        let name = package.name.clone();
        let mut last_draw = Instant::now() - Duration::from_secs(1);
        let mut current_url = String::new();
        let mut progress = |p: &DownloadProgress<'_>| {
            if tty {
                if last_draw.elapsed() >= Duration::from_millis(100) || p.received == p.total {
                    last_draw = Instant::now();
                    let pct = (p.received as f64 * 100.0 / p.total.max(1) as f64) as u64;
                    let width = 30usize;
                    let filled = (pct as usize * width / 100).min(width);
                    eprint!(
                        "\r{name} [{}{}] {pct:>3}% {}/{} bytes",
                        "#".repeat(filled),
                        " ".repeat(width - filled),
                        p.received,
                        p.total
                    );
                    let _ = std::io::stderr().flush();
                }
            } else if current_url != p.url {
                current_url = p.url.to_owned();
                eprintln!("{id}: downloading {} ({} bytes)", p.url, p.total);
            }
        };
        let started = Instant::now();
        let result = downloader.download(request, &mut progress);
        if tty && result.as_ref().is_ok_and(|r| !r.reused) {
            eprintln!();
        }
        match result {
            Ok(report) => {
                if report.reused {
                    eprintln!("{id}: {} already downloaded and verified", package.name);
                } else {
                    eprintln!(
                        "{id}: downloaded {} ({} bytes in {:.1} s)",
                        package.name,
                        report.total_bytes,
                        report.duration.as_secs_f64()
                    );
                }
                Ok(report)
            }
            Err(e) => {
                if tty {
                    eprintln!();
                }
                let failure = download_failure(&package.name, &e);
                let report = DownloadReport {
                    url: package.urls.first().cloned().unwrap_or_default(),
                    downloaded_bytes: 0,
                    total_bytes: request.length,
                    resumed_from: 0,
                    reused: false,
                    duration: started.elapsed(),
                };
                let mut ev = event(
                    EventType::Download,
                    Some(&failure),
                    &Version::default(),
                    None,
                );
                ev.previousversion = None;
                self.events.push(Recorded {
                    app_id: id.to_owned(),
                    event: ev,
                    download: Some((package.name.clone(), report)),
                    timestamp_ms: now_ms(),
                    duration_ms: Some(duration_ms(started.elapsed())),
                });
                Err(failure)
            }
        }
    }

    fn install(
        &mut self,
        id: &str,
        record: &AppRecord,
        check: &UpdateCheck,
        next: &Version,
        payload_dir: &Path,
        installer_data: Option<&str>,
    ) -> Result<(), Failure> {
        let Some(installer) = record.installer.clone() else {
            return Err(Failure::new(
                ErrorCategory::Service,
                service_code::PLUGIN_LOAD,
                format!("{id} has no installer plugin; register it again with --installer"),
            ));
        };
        let plugin_path = installer.path.clone();
        let host = self.host()?;
        let plugin = load_plugin(host, &plugin_path, World::Installer).map_err(|e| {
            Failure::new(
                ErrorCategory::Service,
                service_code::PLUGIN_LOAD,
                format!("{e:#}"),
            )
        })?;
        if plugin.content_hash() != installer.sha256 {
            return Err(Failure::new(
                ErrorCategory::Service,
                service_code::PLUGIN_LOAD,
                format!(
                    "installer plugin {} changed since {id} was registered (sha256 {} now, {} then); register the app again to trust it",
                    plugin_path.display(),
                    plugin.content_hash(),
                    installer.sha256
                ),
            ));
        }
        std::fs::create_dir_all(&record.install_dir).map_err(|e| {
            Failure::new(
                ErrorCategory::Service,
                service_code::INSTALL_DIR,
                format!(
                    "cannot create the install directory {}: {e}",
                    record.install_dir.display()
                ),
            )
        })?;
        // What an interrupted earlier run left goes first: every version
        // but the installed one and the kept previous one.
        let mut keep = vec![&record.version];
        keep.extend(record.previous_version.as_ref());
        for (path, e) in appdir::prune(&record.install_dir, &keep) {
            eprintln!(
                "upkeep: warning: {id}: cannot remove {}: {e}",
                path.display()
            );
        }
        let version_dir = appdir::fresh_version_dir(&record.install_dir, next).map_err(|e| {
            Failure::new(
                ErrorCategory::Service,
                service_code::INSTALL_DIR,
                format!(
                    "cannot create the install directory {}: {e}",
                    appdir::version_dir(&record.install_dir, next).display()
                ),
            )
        })?;
        crash::point("install.dir-created");
        let target = InstallTarget {
            id,
            record,
            check,
            next,
            payload_dir,
            version_dir: &version_dir,
            installer_data,
        };
        let result = run_installer(host, &plugin, &target).and_then(|()| {
            crash::point("install.installer-done");
            match &record.post_install_check {
                Some(check) => post_install_check(host, check, id, next, &version_dir),
                None => Ok(()),
            }
        });
        if result.is_err()
            && let Err(e) = appdir::discard(&record.install_dir, next)
        {
            eprintln!(
                "upkeep: warning: {id}: cannot remove {}: {e}",
                version_dir.display()
            );
        }
        result
    }

    /// Installs a release of upkeep itself, `binary` (downloaded and
    /// verified to have SHA-256 `sha256`): side by side as
    /// `versions/<next>/upkeep` with unqualified local prefs (kept as they
    /// are when that very binary is already there, so qualification
    /// attempts add up), or (single binary) staged beside the running
    /// binary for [`Run::commit`]. Every copy is checked against `sha256`.
    fn install_updater(
        &mut self,
        next: &Version,
        binary: &Path,
        sha256: &str,
    ) -> Result<(), Failure> {
        let fail = |what: String| Failure::new(ErrorCategory::Install, install_code::UPDATER, what);
        let check_copy = |copy: &Path| -> Result<()> {
            let got = lifecycle::file_sha256(copy)
                .with_context(|| format!("cannot read {}", copy.display()))?;
            if !got.eq_ignore_ascii_case(sha256) {
                bail!(
                    "{} has SHA-256 {got}, the signed release {sha256}",
                    copy.display()
                );
            }
            Ok(())
        };
        let mode = self
            .config
            .updater
            .as_ref()
            .map(|u| u.mode)
            .unwrap_or_default();
        match mode {
            UpdaterMode::SideBySide => {
                let dest = lifecycle::binary_path(&self.root, next);
                let local_path = lifecycle::local_prefs_path(&self.root, next);
                if check_copy(&dest).is_ok()
                    && Prefs::load(&local_path).is_ok_and(|l| l.qualification.is_some())
                {
                    eprintln!("upkeep: {next} is already installed side by side");
                    return Ok(());
                }
                appdir::fresh_version_dir(&self.root, next).map_err(|e| {
                    fail(format!(
                        "cannot create {}: {e}",
                        appdir::version_dir(&self.root, next).display()
                    ))
                })?;
                crash::point("self-install.dir-created");
                let result = (|| {
                    copy_executable(binary, &dest)?;
                    check_copy(&dest)?;
                    crash::point("self-install.binary-written");
                    lifecycle::write_unqualified(&self.root, next)?;
                    crash::point("self-install.local-prefs-written");
                    Ok::<(), anyhow::Error>(())
                })();
                result.map_err(|e| {
                    let _ = appdir::discard(&self.root, next);
                    fail(format!("cannot install upkeep {next} side by side: {e:#}"))
                })
            }
            UpdaterMode::SingleBinary => {
                let exe = std::env::current_exe()
                    .map_err(|e| fail(format!("cannot find the running binary: {e}")))?;
                let staged = exe.with_file_name(format!(
                    "{}{}",
                    lifecycle::STAGING_PREFIXES[0],
                    std::process::id()
                ));
                let result = copy_file_synced(binary, &staged).and_then(|()| check_copy(&staged));
                match result {
                    Ok(()) => {
                        crash::point("self-install.binary-staged");
                        self.staged_binary = Some(StagedBinary {
                            path: exe,
                            staged,
                            sha256: sha256.to_ascii_lowercase(),
                        });
                        Ok(())
                    }
                    Err(e) => {
                        let _ = std::fs::remove_file(&staged);
                        Err(fail(format!(
                            "cannot stage upkeep {next} beside {}: {e:#}",
                            exe.display()
                        )))
                    }
                }
            }
        }
    }
}

/// Runs the app's post-install check (a qualifier-world plugin) on the
/// freshly installed `version_dir`.
fn post_install_check(
    host: &PluginHost,
    check: &PluginRef,
    id: &str,
    next: &Version,
    version_dir: &Path,
) -> Result<(), Failure> {
    let fail = |code: i64, message: String| Failure::new(ErrorCategory::Install, code, message);
    let plugin = load_plugin(host, &check.path, World::Qualifier)
        .map_err(|e| fail(install_code::POST_INSTALL_CHECK, format!("{e:#}")))?;
    if plugin.content_hash() != check.sha256 {
        return Err(fail(
            install_code::POST_INSTALL_CHECK,
            format!(
                "post-install check {} changed since {id} was registered; register the app again to trust it",
                check.path.display()
            ),
        ));
    }
    let input = QualifyInput {
        updater_version: env!("CARGO_PKG_VERSION").to_owned(),
        app_id: id.to_owned(),
        app_version: next.to_string(),
        app_dir: version_dir.to_path_buf(),
        settings: Vec::new(),
    };
    let verdict = host
        .qualify(&plugin, &input, CallOptions::default())
        .map_err(|e| {
            fail(
                install_code::POST_INSTALL_CHECK,
                format!("post-install check {} failed: {e}", plugin.name()),
            )
        })?;
    match verdict.value {
        qualifier::Verdict::Pass => Ok(()),
        qualifier::Verdict::Fail(why) => Err(fail(
            install_code::POST_INSTALL_CHECK,
            format!("post-install check {} refused {next}: {why}", plugin.name()),
        )),
    }
}

/// What one installer call installs, and where.
struct InstallTarget<'a> {
    id: &'a str,
    record: &'a AppRecord,
    check: &'a UpdateCheck,
    next: &'a Version,
    payload_dir: &'a Path,
    /// The fresh `versions/<next>/` handed to the plugin as `/install`.
    version_dir: &'a Path,
    /// The install data the server sent for the app's install data index.
    installer_data: Option<&'a str>,
}

/// The Omaha data name of install data.
const INSTALL_DATA: &str = "install";

/// The install data index to ask for: the registered one, and only while
/// the app is not installed yet (Omaha install data is for first installs).
fn install_data_wanted(record: &AppRecord) -> Option<&str> {
    record
        .install_data_index
        .as_deref()
        .filter(|_| !record.updater && record.version == Version::default())
}

/// The installer data for an install of `id`: the text of the answer's
/// `install` data entry for the requested index when its status is `ok`.
/// Any other answer (no entry, `error-nodata`, ...) is a warning on stderr
/// and the install goes on without installer data, as Chromium's updater
/// treats missing install data.
fn installer_data(id: &str, record: &AppRecord, app: &upkeep_core::omaha::App) -> Option<String> {
    let index = install_data_wanted(record)?;
    let entry = app
        .data
        .iter()
        .find(|d| d.name.as_deref() == Some(INSTALL_DATA) && d.index.as_deref() == Some(index));
    match entry {
        Some(d) if d.status == DataStatus::Ok => Some(d.text.clone()),
        Some(d) => {
            eprintln!(
                "upkeep: warning: {id}: the server answered {} for install data index {index:?}; installing without installer data",
                d.status
            );
            None
        }
        None => {
            eprintln!(
                "upkeep: warning: {id}: the server sent no install data for index {index:?}; installing without installer data"
            );
            None
        }
    }
}

/// Runs the installer plugin into the target's fresh version directory.
fn run_installer(host: &PluginHost, plugin: &Plugin, t: &InstallTarget<'_>) -> Result<(), Failure> {
    let InstallTarget {
        id,
        record,
        check,
        next,
        payload_dir,
        version_dir,
        installer_data,
    } = *t;
    let first_install = record.version == Version::default();
    let arguments = check
        .manifest
        .as_ref()
        .and_then(|m| m.arguments.as_deref())
        .or_else(|| {
            check
                .pipelines
                .first()
                .and_then(|p| p.operations.iter().find_map(|o| o.arguments.as_deref()))
        })
        .map(|a| a.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let input = InstallInput {
        operation: if first_install {
            installer::Operation::Install
        } else {
            installer::Operation::Update
        },
        app_id: id.to_owned(),
        from_version: (!first_install).then(|| record.version.to_string()),
        to_version: next.to_string(),
        arguments,
        installer_data: installer_data.map(str::to_owned),
        payload_dir: Some(payload_dir.to_path_buf()),
        install_dir: version_dir.to_path_buf(),
    };
    let options = CallOptions {
        app: Some(types::AppInfo {
            app_id: id.to_owned(),
            version: record.version.to_string(),
            channel: record.channel.clone(),
            brand: None,
        }),
        progress: None,
    };
    let report = host.install(plugin, &input, options).map_err(|e| {
        Failure::new(
            ErrorCategory::Service,
            service_code::PLUGIN_CALL,
            format!("installer plugin {} failed: {e}", plugin.name()),
        )
    })?;
    for log in &report.logs {
        tracing::info!(plugin = plugin.name(), level = log.level, "{}", log.message);
    }
    match report.value {
        Ok(success) => {
            if let Some(message) = success.message {
                eprintln!("{id}: {}: {message}", plugin.name());
            }
            Ok(())
        }
        Err(e) => Err(Failure {
            category: ErrorCategory::Install,
            code: i64::from(e.code),
            extra: i64::from(e.extra_code),
            message: format!(
                "installer {} failed with code {}: {}",
                plugin.name(),
                e.code,
                e.message
            ),
        }),
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What one check-and-apply pass did.
pub(crate) struct Pass {
    outcomes: BTreeMap<String, Outcome>,
    all_ids: Vec<String>,
    removed: BTreeMap<String, Version>,
    retry_after: Option<Duration>,
    session: String,
    /// Updater versions this pass installed side by side.
    pub(crate) staged: Vec<Version>,
    /// The single-binary updater this pass replaced: its path and version.
    pub(crate) replaced_binary: Option<(PathBuf, Version)>,
}

impl Pass {
    /// Whether an app's update failed.
    pub(crate) fn failed(&self) -> bool {
        self.outcomes
            .values()
            .any(|o| matches!(o, Outcome::Failed { .. }))
    }

    /// The failures of this pass, one line each.
    pub(crate) fn failure_text(&self) -> String {
        self.outcomes
            .iter()
            .filter_map(|(id, o)| match o {
                Outcome::Failed { failure, .. } => Some(format!("{id}: {}", failure.message)),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether the existence checks forgot an app.
    pub(crate) fn removed_any(&self) -> bool {
        !self.removed.is_empty()
    }
}

/// What a pass does besides the existence checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PassOptions {
    /// Contact the update server (else only the existence checks run).
    pub(crate) check: bool,
    /// When the existence checks forget the last app (all that is left is
    /// upkeep itself), flag the prefs `uninstalling` in the same write.
    pub(crate) self_uninstall: bool,
}

impl Default for PassOptions {
    fn default() -> Self {
        Self {
            check: true,
            self_uninstall: false,
        }
    }
}

/// Selects the apps of a pass: `only`, or every registered one.
pub(crate) fn select_apps(root: &Path, prefs: &Prefs, only: Option<&str>) -> Result<Vec<String>> {
    let ids: Vec<String> = match only {
        Some(app) => {
            let id = app.to_ascii_lowercase();
            if !prefs.apps.contains_key(&id) {
                bail!("app {app} is not registered in {}", root.display());
            }
            vec![id]
        }
        None => prefs.apps.keys().cloned().collect(),
    };
    if ids.is_empty() {
        bail!(
            "no app is registered in {}; register one with `upkeep register`",
            root.display()
        );
    }
    Ok(ids)
}

/// Takes the state lock of `root`.
pub(crate) fn lock_state(root: &Path) -> Result<StateLock> {
    StateLock::acquire(root, LOCK_TIMEOUT).with_context(|| {
        let hint = if root == Path::new(SYSTEM_ROOT) {
            " (the system scope belongs to root; without root, use the per-user scope)"
        } else {
            ""
        };
        format!(
            "cannot lock the state directory {} ({LOCK_FILE}){hint}",
            root.display()
        )
    })
}

/// Runs `upkeep update`.
pub fn update(args: UpdateArgs) -> Result<ExitCode> {
    let root = state_root(&args.state)?;
    let config_file = config_path(&args.state, &root);
    let config = Config::load(&config_file)?;
    let (Some(lock), mut prefs, _) = crate::cmd_lifecycle::lock_and_recover(&root, Some(&config))?
    else {
        bail!(
            "an interrupted uninstall of upkeep from {} was finished; nothing is left to update",
            root.display()
        );
    };
    // An installed updater version that is not the active one leaves the
    // apps to the active version.
    if let (Some(installed), own) = crate::cmd_lifecycle::own_version()
        && installed.root == root
        && let Some(active) = &prefs.active_version
        && *active != own
    {
        bail!(
            "upkeep {own} is not the active version in {} ({active} is); run `upkeep wake` (it moves {own} through its lifecycle) or the active version's `update`",
            root.display()
        );
    }
    let prefs_path = root.join(PREFS_FILE);
    let ids = select_apps(&root, &prefs, args.app.as_deref())?;
    let pass = check_and_apply(
        &root,
        &config,
        &prefs_path,
        &mut prefs,
        ids,
        PassOptions::default(),
    )?;
    let code = print_pass(&pass, &prefs, args.json)?;
    drop(lock);
    crate::cmd_lifecycle::after_pass(&root, &args.state, &pass)?;
    Ok(code)
}

/// One signed update check for `ids`, then every offered update
/// downloaded, verified, installed and recorded; events reported to the
/// server and the telemetry sinks. The caller holds the state lock.
pub(crate) fn check_and_apply(
    root: &Path,
    config: &Config,
    prefs_path: &Path,
    prefs: &mut Prefs,
    ids: Vec<String>,
    options: PassOptions,
) -> Result<Pass> {
    let now = unix_now();
    if let Some(until) = prefs.retry_after_until
        && until > now
    {
        bail!(
            "the update server asked not to be contacted for another {} s (X-Retry-After); nothing was sent",
            until - now
        );
    }
    let http = ReqwestHttp::new()?;
    let session = random_id().context("cannot draw a session id")?;
    let mut run = Run {
        root: root.to_path_buf(),
        config,
        http: &http,
        host: None,
        tuf: None,
        session: session.clone(),
        events: Vec::new(),
        tty: std::io::stderr().is_terminal(),
        staged_binary: None,
    };
    let mut staged = Vec::new();
    let mut replaced_binary = None;
    let mut outcomes: BTreeMap<String, Outcome> = BTreeMap::new();

    // Existence checks: an app whose checker says it is gone is forgotten
    // and reported with an uninstall event.
    let mut removed: BTreeMap<String, Version> = BTreeMap::new();
    for id in &ids {
        let record = prefs.apps[id].clone();
        if run.is_gone(id, &record) {
            prefs.apps.remove(id);
            if options.self_uninstall && prefs.apps.values().all(|r| r.updater) {
                prefs.uninstalling = true;
            }
            prefs
                .save(prefs_path)
                .with_context(|| format!("cannot forget {id} in {}", prefs_path.display()))?;
            run.events.push(Recorded {
                app_id: id.clone(),
                event: event(EventType::Uninstall, None, &record.version, None),
                download: None,
                timestamp_ms: now_ms(),
                duration_ms: None,
            });
            outcomes.insert(
                id.clone(),
                Outcome::Removed {
                    version: record.version.clone(),
                },
            );
            removed.insert(id.clone(), record.version);
        }
    }
    let all_ids = ids;
    // When the last app went and only upkeep itself is left, upkeep is
    // about to uninstall itself: nothing is checked for.
    let only_updater_left = !removed.is_empty() && prefs.apps.values().all(|record| record.updater);
    let ids: Vec<String> = all_ids
        .iter()
        .filter(|id| !removed.contains_key(*id) && !only_updater_left && options.check)
        .cloned()
        .collect();

    let mut builder = RequestBuilder::new(run.config.protocol)
        .updater("upkeep", env!("CARGO_PKG_VERSION"))
        .os(Os {
            platform: Some(std::env::consts::OS.to_owned()),
            arch: Some(std::env::consts::ARCH.to_owned()),
            ..Os::default()
        })
        .sessionid(&session);
    for id in &ids {
        let record = &prefs.apps[id];
        let mut app = RequestApp::new(id.clone(), &record.version);
        app.ap = record.channel.clone();
        app.cohort = record.cohort.clone();
        app.installdate = Some(record.days.install_date_to_send());
        app.ping = Some(record.days.ping(None));
        if let Some(index) = install_data_wanted(record) {
            app.data.push(DataRequest {
                name: INSTALL_DATA.to_owned(),
                index: Some(index.to_owned()),
            });
        }
        builder = builder.app(app);
    }
    let request = builder.build().context("cannot draw a request id")?;

    let mut server_answered = true;
    let mut retry_after = None;
    let answer = (!ids.is_empty())
        .then(|| update_check::exchange(&http, &run.config.server, &run.config.cup, &request));
    match answer {
        None => {}
        Some(Err(e)) => {
            server_answered = e.server_answered();
            let failure = check_failure(&e);
            for id in &ids {
                let record = &prefs.apps[id];
                run.events.push(Recorded {
                    app_id: id.clone(),
                    event: event(kind_for(record), Some(&failure), &record.version, None),
                    download: None,
                    timestamp_ms: now_ms(),
                    duration_ms: None,
                });
                outcomes.insert(
                    id.clone(),
                    Outcome::Failed {
                        next: None,
                        failure: failure.clone(),
                    },
                );
            }
        }
        Some(Ok(exchange)) => {
            retry_after = exchange.retry_after;
            if let Some(wait) = exchange.retry_after {
                prefs.retry_after_until =
                    Some(now.saturating_add(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX)));
            }
            let response = exchange.response;
            for id in &ids {
                let record = prefs.apps[id].clone();
                let started = Instant::now();
                let Some(app) = response.app(id) else {
                    let reason = response
                        .app_errors
                        .iter()
                        .find(|e| {
                            e.appid
                                .as_deref()
                                .is_some_and(|a| a.eq_ignore_ascii_case(id))
                        })
                        .map_or_else(
                            || "the response has no answer for it".to_owned(),
                            |e| format!("the server's answer for it is malformed: {e}"),
                        );
                    let failure =
                        Failure::new(ErrorCategory::UpdateCheck, check_code::APP_MISSING, reason);
                    run.events.push(Recorded {
                        app_id: id.clone(),
                        event: event(kind_for(&record), Some(&failure), &record.version, None),
                        download: None,
                        timestamp_ms: now_ms(),
                        duration_ms: None,
                    });
                    outcomes.insert(
                        id.clone(),
                        Outcome::Failed {
                            next: None,
                            failure,
                        },
                    );
                    continue;
                };
                let mut updated = record.clone();
                merge_cohort(&mut updated, app);
                if let Some(day) = response.daystart.elapsed_days {
                    updated.days.record_response(day);
                }
                if app.status != AppStatus::Ok {
                    let failure = Failure::new(
                        ErrorCategory::UpdateCheck,
                        check_code::APP_STATUS,
                        format!("the server answered {} for it", app.status),
                    );
                    outcomes.insert(
                        id.clone(),
                        Outcome::Failed {
                            next: None,
                            failure,
                        },
                    );
                    continue;
                }
                let check = app.updatecheck.as_ref();
                match check.map(|c| &c.status) {
                    Some(UpdateCheckStatus::NoUpdate) => {
                        prefs.apps.insert(id.clone(), updated);
                        outcomes.insert(id.clone(), Outcome::UpToDate);
                    }
                    Some(UpdateCheckStatus::Ok) => {
                        let Some(check) = check else { continue };
                        let next = check.next_version.clone();
                        let result = match &next {
                            None => Err(Failure::new(
                                ErrorCategory::UpdateCheck,
                                check_code::BAD_OFFER,
                                "the update check names no version",
                            )),
                            Some(v) if *v <= record.version => Err(Failure::new(
                                ErrorCategory::UpdateCheck,
                                check_code::NOT_NEWER,
                                format!(
                                    "the server offers {v}, which is not newer than the installed {}",
                                    record.version
                                ),
                            )),
                            Some(v) => {
                                let data = installer_data(id, &record, app);
                                run.apply(id, &record, check, v, data.as_deref())
                            }
                        };
                        let result = result.and_then(|applied| {
                            let to = next.clone().unwrap_or_default();
                            let how =
                                run.commit(prefs_path, prefs, id, &record, updated.clone(), &to)?;
                            Ok((to, applied, how))
                        });
                        let elapsed = Some(duration_ms(started.elapsed()));
                        match result {
                            Ok((
                                to,
                                Applied {
                                    downloads,
                                    install_time,
                                },
                                how,
                            )) => {
                                match how {
                                    Committed::Staged => staged.push(to.clone()),
                                    Committed::Replaced(ref exe) => {
                                        replaced_binary = Some((exe.clone(), to.clone()));
                                    }
                                    Committed::Switched => {}
                                }
                                for (i, report) in downloads.iter().enumerate() {
                                    if report.reused {
                                        continue;
                                    }
                                    let mut ev = event(
                                        EventType::Download,
                                        None,
                                        &record.version,
                                        Some(&to),
                                    );
                                    ev.errorcat = None;
                                    run.events.push(Recorded {
                                        app_id: id.clone(),
                                        event: ev,
                                        download: Some((format!("package {i}"), report.clone())),
                                        timestamp_ms: now_ms(),
                                        duration_ms: Some(duration_ms(report.duration)),
                                    });
                                }
                                run.events.push(Recorded {
                                    app_id: id.clone(),
                                    event: event(
                                        kind_for(&record),
                                        None,
                                        &record.version,
                                        Some(&to),
                                    ),
                                    download: None,
                                    timestamp_ms: now_ms(),
                                    duration_ms: elapsed,
                                });
                                outcomes.insert(
                                    id.clone(),
                                    Outcome::Updated {
                                        from: record.version.clone(),
                                        to,
                                        downloads,
                                        install_time,
                                        staged: matches!(how, Committed::Staged),
                                    },
                                );
                            }
                            Err(failure) => {
                                run.events.push(Recorded {
                                    app_id: id.clone(),
                                    event: event(
                                        kind_for(&record),
                                        Some(&failure),
                                        &record.version,
                                        next.as_ref(),
                                    ),
                                    download: None,
                                    timestamp_ms: now_ms(),
                                    duration_ms: elapsed,
                                });
                                outcomes.insert(id.clone(), Outcome::Failed { next, failure });
                            }
                        }
                    }
                    other => {
                        let status = other.map_or("none".to_owned(), ToString::to_string);
                        let failure = Failure::new(
                            ErrorCategory::UpdateCheck,
                            check_code::APP_STATUS,
                            format!("the server's update check answered {status}"),
                        );
                        outcomes.insert(
                            id.clone(),
                            Outcome::Failed {
                                next: None,
                                failure,
                            },
                        );
                    }
                }
            }
            let all_ok = outcomes
                .values()
                .all(|o| !matches!(o, Outcome::Failed { .. }));
            if all_ok {
                prefs.last_check = Some(unix_now());
            }
            let on_disk = Prefs::load(prefs_path)?;
            if on_disk != *prefs {
                prefs
                    .save(prefs_path)
                    .with_context(|| format!("cannot write {}", prefs_path.display()))?;
            }
        }
    }

    // Report the events: to the server (when it answered), then to the sinks.
    if server_answered && !run.events.is_empty() {
        send_ping(&run, prefs, &all_ids, &removed);
    }
    if !run.events.is_empty() {
        feed_telemetry(&mut run);
    }

    Ok(Pass {
        outcomes,
        all_ids,
        removed,
        retry_after,
        session,
        staged,
        replaced_binary,
    })
}

/// Prints what a pass did (lines, or JSON with `json`) and returns the exit
/// status.
pub(crate) fn print_pass(pass: &Pass, prefs: &Prefs, json: bool) -> Result<ExitCode> {
    let Pass {
        outcomes,
        all_ids,
        retry_after,
        session,
        ..
    } = pass;
    let retry_after = *retry_after;
    let failed = outcomes
        .values()
        .any(|o| matches!(o, Outcome::Failed { .. }));
    let mut summary = Vec::new();
    for id in all_ids {
        let version = prefs.apps.get(id).map(|r| r.version.to_string());
        let Some(outcome) = outcomes.get(id) else {
            continue;
        };
        match outcome {
            Outcome::Removed { version } => {
                if !json {
                    println!("{id}: no longer installed (existence check); forgotten");
                }
                summary
                    .push(json!({"app": id, "result": "removed", "version": version.to_string()}));
            }
            Outcome::UpToDate => {
                if !json {
                    println!(
                        "{id}: up to date at {}",
                        version.clone().unwrap_or_default()
                    );
                }
                summary.push(json!({"app": id, "result": "up-to-date", "version": version}));
            }
            Outcome::Updated {
                from,
                to,
                downloads,
                install_time,
                staged,
            } => {
                if !json {
                    if *staged {
                        println!(
                            "{id}: installed {to} side by side (running {from}); it takes over once qualified and activated"
                        );
                    } else if *from == Version::default() {
                        println!("{id}: installed {to}");
                    } else {
                        println!("{id}: updated {from} -> {to}");
                    }
                }
                let downloads: Vec<Value> = downloads
                    .iter()
                    .map(|d| {
                        json!({
                            "url": d.url, "downloaded_bytes": d.downloaded_bytes,
                            "total_bytes": d.total_bytes, "resumed_from": d.resumed_from,
                            "reused": d.reused, "download_time_ms": duration_ms(d.duration),
                        })
                    })
                    .collect();
                summary.push(json!({
                    "app": id, "result": if *staged { "staged" } else { "updated" }, "previous_version": from.to_string(),
                    "version": to.to_string(), "downloads": downloads,
                    "install_time_ms": duration_ms(*install_time),
                }));
            }
            Outcome::Failed { next, failure } => {
                eprintln!("upkeep: error: {id}: {}", failure.message);
                summary.push(json!({
                    "app": id, "result": "error", "version": version,
                    "next_version": next.as_ref().map(ToString::to_string),
                    "error": {
                        "category": failure.category.code(), "code": failure.code,
                        "extra_code": failure.extra, "message": failure.message,
                    },
                }));
            }
        }
    }
    if json {
        let out = json!({
            "apps": summary,
            "retry_after_seconds": retry_after.map(|d| d.as_secs()),
            "session_id": session,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).context("cannot write the summary")?
        );
    }
    Ok(if failed {
        ExitCode::Failed
    } else {
        ExitCode::Ok
    })
}

// ---------------------------------------------------------- rollback ----

/// Runs `upkeep rollback`: points the app's `current` back at the version
/// kept since its last update, records it, and reports the switch in an
/// event ping (type 3, `previousversion` the version left,
/// `nextversion` the one restored) and to the telemetry sinks.
pub fn rollback(args: RollbackArgs) -> Result<ExitCode> {
    let root = state_root(&args.state)?;
    let config_file = config_path(&args.state, &root);
    // A rollback is a recovery: it works without a usable configuration,
    // only the report is then skipped.
    let config = Config::load(&config_file);
    let (_lock, mut prefs) =
        crate::cmd_lifecycle::lock_and_recover_held(&root, config.as_ref().ok())?;
    let prefs_path = root.join(PREFS_FILE);
    let id = args.app.to_ascii_lowercase();
    let Some(record) = prefs.apps.get(&id).cloned() else {
        bail!("app {} is not registered in {}", args.app, root.display());
    };
    if record.updater {
        bail!(
            "{id} is upkeep itself: its versions change by activation, not rollback (see `upkeep status`)"
        );
    }
    let dir = &record.install_dir;
    let Some(to) = record.previous_version.clone() else {
        bail!(
            "{id} has no previous version to roll back to (it is at {}; a version is kept only by a successful update, and a rollback uses it up)",
            record.version
        );
    };
    let from = record.version.clone();
    if appdir::current_version(dir).as_deref() != Some(from.to_string().as_str()) {
        bail!(
            "{id}: {} does not point at the recorded version {from}; nothing was changed",
            dir.join(appdir::CURRENT).display()
        );
    }
    if !appdir::version_dir(dir, &to).is_dir() {
        bail!(
            "{id}: the previous version {to} is gone ({} does not exist); nothing was changed",
            appdir::version_dir(dir, &to).display()
        );
    }
    let mut updated = record.clone();
    updated.version = to.clone();
    updated.previous_version = None;
    updated.updated_at = Some(unix_now());
    lifecycle::switch_app(&prefs_path, &mut prefs, &id, SwitchKind::Rollback, updated)
        .with_context(|| format!("{id}: cannot roll back to {to}; nothing was changed"))?;
    // The version rolled back from is not kept: the next update installs
    // it afresh if the server still offers it.
    for (path, e) in appdir::prune(dir, &[&to]) {
        eprintln!(
            "upkeep: warning: {id}: cannot remove {}: {e}",
            path.display()
        );
    }
    remove_old_payloads(&root, &id, &to);
    crash::point("rollback.pruned");
    println!("{id}: rolled back {from} -> {to}");

    match config {
        Err(e) => eprintln!("upkeep: warning: {id}: the rollback is not reported: {e:#}"),
        Ok(config) => {
            let http = ReqwestHttp::new()?;
            let session = random_id().context("cannot draw a session id")?;
            let mut run = Run {
                root: root.clone(),
                config: &config,
                http: &http,
                host: None,
                tuf: None,
                session,
                events: vec![Recorded {
                    app_id: id.clone(),
                    event: event(EventType::Update, None, &from, Some(&to)),
                    download: None,
                    timestamp_ms: now_ms(),
                    duration_ms: None,
                }],
                tty: false,
                staged_binary: None,
            };
            send_ping(&run, &prefs, std::slice::from_ref(&id), &BTreeMap::new());
            feed_telemetry(&mut run);
        }
    }
    Ok(ExitCode::Ok)
}

/// Removes the payloads of an app's other versions once a new one is
/// installed (failures are only logged: they cost disk space, nothing else).
fn remove_old_payloads(root: &Path, id: &str, keep: &Version) {
    let keep = keep.to_string();
    for base in [
        root.join("downloads").join(id),
        root.join("downloads/.partial").join(id),
    ] {
        let Ok(entries) = std::fs::read_dir(&base) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy() == keep {
                continue;
            }
            if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove an old payload");
            }
        }
    }
}

/// Copies `from` to `to` (created, mode 0755), flushed to disk.
fn copy_file_synced(from: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    let mut src =
        std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o755);
    let mut dst = options
        .open(to)
        .with_context(|| format!("cannot create {}", to.display()))?;
    std::io::copy(&mut src, &mut dst).with_context(|| format!("cannot write {}", to.display()))?;
    dst.sync_all()
        .with_context(|| format!("cannot flush {}", to.display()))?;
    Ok(())
}

/// Copies an executable into place atomically: a flushed temporary copy
/// renamed over `to`, then the directory flushed.
pub(crate) fn copy_executable(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_file_name(format!(
        "{}{}",
        lifecycle::STAGING_PREFIXES[1],
        std::process::id()
    ));
    copy_file_synced(from, &tmp)?;
    std::fs::rename(&tmp, to).with_context(|| format!("cannot create {}", to.display()))?;
    if let Some(dir) = to.parent() {
        upkeep_core::durable::sync_dir(dir)
            .with_context(|| format!("cannot flush {}", dir.display()))?;
    }
    Ok(())
}

fn kind_for(record: &AppRecord) -> EventType {
    if record.version == Version::default() {
        EventType::Install
    } else {
        EventType::Update
    }
}

fn merge_cohort(record: &mut AppRecord, app: &upkeep_core::omaha::App) {
    if app.cohort.cohort.is_some() {
        record.cohort.cohort.clone_from(&app.cohort.cohort);
    }
    if app.cohort.cohorthint.is_some() {
        record.cohort.cohorthint.clone_from(&app.cohort.cohorthint);
    }
    if app.cohort.cohortname.is_some() {
        record.cohort.cohortname.clone_from(&app.cohort.cohortname);
    }
}

/// Sends the events as one Omaha request (same session), signed like the
/// update check. A failure is a warning: the update itself is done.
fn send_ping(run: &Run<'_>, prefs: &Prefs, ids: &[String], removed: &BTreeMap<String, Version>) {
    let mut builder = RequestBuilder::new(run.config.protocol)
        .updater("upkeep", env!("CARGO_PKG_VERSION"))
        .sessionid(&run.session);
    for id in ids {
        let events: Vec<Event> = run
            .events
            .iter()
            .filter(|r| &r.app_id == id)
            .map(|r| {
                let mut e = r.event.clone();
                if let Some((_, d)) = &r.download {
                    e.extra.insert("url".into(), d.url.clone());
                    e.extra.insert("downloader".into(), DOWNLOADER.into());
                    e.extra
                        .insert("downloaded".into(), d.downloaded_bytes.to_string());
                    e.extra.insert("total".into(), d.total_bytes.to_string());
                    e.extra.insert(
                        "download_time_ms".into(),
                        duration_ms(d.duration).to_string(),
                    );
                }
                e
            })
            .collect();
        if events.is_empty() {
            continue;
        }
        let version = prefs
            .apps
            .get(id)
            .map(|r| r.version.clone())
            .or_else(|| removed.get(id).cloned())
            .unwrap_or_default();
        let mut app = RequestApp::new(id.clone(), &version);
        app.updatecheck = None;
        app.events = events;
        builder = builder.app(app);
    }
    let request = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("upkeep: warning: event ping not sent: cannot draw a request id: {e}");
            return;
        }
    };
    if let Err(e) =
        update_check::send_events(run.http, &run.config.server, &run.config.cup, &request)
    {
        eprintln!("upkeep: warning: event ping failed: {e}");
    }
    crash::point("update.reported");
}

fn wit_event(r: &Recorded, session: &str) -> types::UpdateEvent {
    let e = &r.event;
    let event_type = match e.eventtype {
        EventType::Install => types::EventType::Install,
        EventType::Update => types::EventType::Update,
        EventType::Uninstall => types::EventType::Uninstall,
        EventType::Download => types::EventType::Download,
        EventType::AppCommand => types::EventType::AppCommand,
        EventType::Action => types::EventType::Action,
        other => types::EventType::Other(u16::try_from(other.code()).unwrap_or(u16::MAX)),
    };
    let outcome = match e.eventresult {
        EventResult::Error => types::EventResult::Error,
        EventResult::Success => types::EventResult::Success,
        EventResult::SuccessReboot => types::EventResult::SuccessReboot,
        EventResult::Cancelled => types::EventResult::Cancelled,
        EventResult::NoUpdate => types::EventResult::NoUpdate,
        EventResult::UpdateDeferred => types::EventResult::UpdateDeferred,
        other => types::EventResult::Other(u16::try_from(other.code()).unwrap_or(u16::MAX)),
    };
    let error_category = match e.errorcat {
        None | Some(ErrorCategory::None) => types::ErrorCategory::None,
        Some(ErrorCategory::Download) => types::ErrorCategory::Download,
        Some(ErrorCategory::Unpack) => types::ErrorCategory::Unpack,
        Some(ErrorCategory::UpdateCheck) => types::ErrorCategory::UpdateCheck,
        Some(ErrorCategory::Service) => types::ErrorCategory::Service,
        Some(_) => types::ErrorCategory::Install,
    };
    let clamp = |v: Option<i64>| {
        i32::try_from(v.unwrap_or(0)).unwrap_or(if v.unwrap_or(0) < 0 {
            i32::MIN
        } else {
            i32::MAX
        })
    };
    types::UpdateEvent {
        app_id: r.app_id.clone(),
        event_type,
        outcome,
        error_category,
        error_code: clamp(e.errorcode),
        extra_code: clamp(e.extracode1),
        previous_version: e.previousversion.clone(),
        next_version: e.nextversion.clone(),
        download: r.download.as_ref().map(|(_, d)| types::DownloadStats {
            url: d.url.clone(),
            downloader: DOWNLOADER.into(),
            downloaded_bytes: d.downloaded_bytes,
            total_bytes: d.total_bytes,
            download_time_ms: duration_ms(d.duration),
        }),
        timestamp_ms: r.timestamp_ms,
        duration_ms: r.duration_ms,
        session_id: session.to_owned(),
    }
}

/// Hands the run's events to every configured telemetry sink. A sink that
/// fails is a warning.
fn feed_telemetry(run: &mut Run<'_>) {
    if run.config.telemetry.is_empty() {
        return;
    }
    let events: Vec<types::UpdateEvent> = run
        .events
        .iter()
        .map(|r| wit_event(r, &run.session))
        .collect();
    let sinks = run.config.telemetry.clone();
    let root = run.root.clone();
    let host = match run.host() {
        Ok(h) => h,
        Err(f) => {
            eprintln!("upkeep: warning: telemetry not delivered: {}", f.message);
            return;
        }
    };
    for path in sinks {
        let result = (|| -> Result<()> {
            let plugin = load_plugin(host, &path, World::TelemetrySink)?;
            let data_dir = root.join("telemetry").join(plugin.name());
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
            let input = TelemetryInput {
                data_dir,
                events: events.clone(),
            };
            let report = host
                .consume_events(&plugin, &input, CallOptions::default())
                .with_context(|| format!("telemetry sink {} failed", plugin.name()))?;
            if let Err(e) = report.value {
                bail!("telemetry sink {} refused the events: {e}", plugin.name());
            }
            Ok(())
        })();
        if let Err(e) = result {
            eprintln!("upkeep: warning: {e:#}");
        }
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
             cup_public_key = \"cup.pub.pem\"\ntelemetry = [\"sinks/t.wasm\"]\n\
             [download]\nmin_bytes_per_second = 10\n",
        );
        let config = Config::load(&path).unwrap();
        assert_eq!(config.server, "http://127.0.0.1:8080");
        assert_eq!(config.protocol, Protocol::Json31);
        assert_eq!(config.tuf_root, dir.path().join("root.json"));
        assert_eq!(config.telemetry, vec![dir.path().join("sinks/t.wasm")]);
        assert_eq!(config.cup.key_id(), 1);
        assert_eq!(config.download.min_bytes_per_second, 10);
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
        ] {
            let path = write_config(dir.path(), &text);
            let err = format!("{:#}", Config::load(&path).err().unwrap());
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
    }

    #[test]
    fn app_ids_are_lower_case_and_path_safe() {
        assert_eq!(check_app_id("Org.Example.App").unwrap(), "org.example.app");
        assert_eq!(check_app_id("{ABC-1}").unwrap(), "{abc-1}");
        for bad in ["", "../x", "a/b", ".hidden", "a b"] {
            assert!(check_app_id(bad).is_err(), "{bad:?}");
        }
    }
}

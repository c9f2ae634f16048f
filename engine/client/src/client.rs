//! [`Client`]: the engine as one value an embedder opens on a state root.
//!
//! ```no_run
//! use upkeep_client::{Client, NullObserver, Selection};
//! let client = Client::open("/var/lib/my-agent/updates")?;
//! let report = client.update(Selection::All, &mut NullObserver)?;
//! for app in &report.apps {
//!     println!("{}: {:?}", app.app, app.outcome);
//! }
//! # Ok::<(), upkeep_client::ClientError>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use upkeep_core::cancel::Cancel;
use upkeep_core::http::HttpClient;
use upkeep_core::policy::Proxy;
use upkeep_core::state::PREFS_FILE;
use upkeep_core::version::Version;

use crate::config::Config;
use crate::error::ClientError;
use crate::lifecycle::{own_version, start_versions};
use crate::observer::Observer;
use crate::pass::{Env, PassOptions, check_and_apply};
use crate::plugins::{Plugins, WasmPlugins};
use crate::policy::{EffectivePolicy, LoadedPolicy};
use crate::recovery::lock_and_recover;
use crate::report::PassReport;
use crate::scope::default_config_path;

/// Which apps an update pass takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every registered app.
    All,
    /// This one (by id, compared case-insensitively).
    App(String),
}

/// How to open a [`Client`]; [`Client::builder`].
pub struct ClientBuilder {
    root: PathBuf,
    config: Option<PathBuf>,
    config_value: Option<Config>,
    http: Option<Box<dyn HttpClient + Send + Sync>>,
    plugins: Option<Box<dyn Plugins + Send + Sync>>,
    exe: Option<PathBuf>,
    cancel: Option<Cancel>,
    policy: Option<PathBuf>,
}

impl ClientBuilder {
    /// The enterprise policy file (default: `/etc/upkeep/policy.toml` for
    /// the system scope, `<root>/policy.toml` for any other;
    /// `docs/policy.md`).
    pub fn policy(mut self, path: impl Into<PathBuf>) -> Self {
        self.policy = Some(path.into());
        self
    }

    /// The flag that cancels this client's operations (default: a new one,
    /// [`Client::canceller`] hands it out). Raised, an update stops before
    /// the next step that changes anything; what it had not finished stays
    /// as it was.
    pub fn cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// The configuration file (default `<root>/config.toml`).
    pub fn config(mut self, path: impl Into<PathBuf>) -> Self {
        self.config = Some(path.into());
        self
    }

    /// A configuration already loaded (or built in code): used instead of
    /// reading the file.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = Some(config.path.clone());
        self.config_value = Some(config);
        self
    }

    /// The HTTP client (default: reqwest, with the `reqwest` feature).
    pub fn http(mut self, http: impl HttpClient + Send + Sync + 'static) -> Self {
        self.http = Some(Box::new(http));
        self
    }

    /// The plugin runner (default: the wasmtime host, [`WasmPlugins`]).
    pub fn plugins(mut self, plugins: impl Plugins + Send + Sync + 'static) -> Self {
        self.plugins = Some(Box::new(plugins));
        self
    }

    /// The binary this process runs as, for upkeep's own lifecycle
    /// (default: the running executable).
    pub fn exe(mut self, exe: impl Into<PathBuf>) -> Self {
        self.exe = Some(exe.into());
        self
    }

    /// Opens the client. Only the policy file is read (its proxy shapes
    /// the HTTP client); nothing is written.
    pub fn open(self) -> Result<Client, ClientError> {
        let root = std::path::absolute(&self.root)
            .map_err(ClientError::io("cannot resolve", &self.root))?;
        let policy_path = self
            .policy
            .unwrap_or_else(|| crate::policy::default_policy_path(&root));
        let policy = LoadedPolicy::load(&policy_path);
        let http = match self.http {
            Some(h) => h,
            None => default_http(policy.policy().proxy.as_ref())?,
        };
        let plugins = self
            .plugins
            .unwrap_or_else(|| Box::new(WasmPlugins::new(&root)));
        let explicit_config = self.config.is_some();
        let config_path = self.config.unwrap_or_else(|| default_config_path(&root));
        let exe = self.exe.or_else(|| std::env::current_exe().ok());
        let config = OnceLock::new();
        if let Some(value) = self.config_value {
            let _ = config.set(value);
        }
        Ok(Client {
            root,
            policy,
            config_path,
            explicit_config,
            config,
            http,
            plugins,
            exe,
            cancel: self.cancel.unwrap_or_default(),
        })
    }
}

#[cfg(feature = "reqwest")]
fn default_http(proxy: Option<&Proxy>) -> Result<Box<dyn HttpClient + Send + Sync>, ClientError> {
    Ok(Box::new(crate::http::ReqwestHttp::with_proxy(
        proxy.unwrap_or(&Proxy::System),
    )?))
}

#[cfg(not(feature = "reqwest"))]
fn default_http(_: Option<&Proxy>) -> Result<Box<dyn HttpClient + Send + Sync>, ClientError> {
    Err(ClientError::Http(
        "built without the reqwest feature: give an HttpClient with ClientBuilder::http".to_owned(),
    ))
}

/// The update engine on one state root.
pub struct Client {
    pub(crate) root: PathBuf,
    pub(crate) policy: LoadedPolicy,
    pub(crate) config_path: PathBuf,
    explicit_config: bool,
    config: OnceLock<Config>,
    pub(crate) http: Box<dyn HttpClient + Send + Sync>,
    pub(crate) plugins: Box<dyn Plugins + Send + Sync>,
    pub(crate) exe: Option<PathBuf>,
    cancel: Cancel,
}

impl Client {
    /// The flag that cancels this client's operation in flight, for another
    /// thread to raise.
    pub fn canceller(&self) -> Cancel {
        self.cancel.clone()
    }

    /// A client on state root `root` with the defaults: `<root>/config.toml`,
    /// the reqwest HTTP client, the wasmtime plugin host.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ClientError> {
        Self::builder(root).open()
    }

    /// A builder for a client on `root`.
    pub fn builder(root: impl Into<PathBuf>) -> ClientBuilder {
        ClientBuilder {
            root: root.into(),
            config: None,
            config_value: None,
            http: None,
            plugins: None,
            exe: None,
            cancel: None,
            policy: None,
        }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The configuration, read on first use.
    pub fn config(&self) -> Result<&Config, ClientError> {
        if let Some(c) = self.config.get() {
            return Ok(c);
        }
        let loaded = Config::load(&self.config_path)?;
        Ok(self.config.get_or_init(|| loaded))
    }

    /// The configuration if its file exists (an error if it is unusable).
    pub(crate) fn config_if_present(&self) -> Result<Option<&Config>, ClientError> {
        if self.config.get().is_some() || self.config_path.exists() {
            self.config().map(Some)
        } else {
            Ok(None)
        }
    }

    /// The version this process is (installed as, else built as), and
    /// where it is installed.
    pub fn own_version(&self) -> (Option<upkeep_core::lifecycle::Installed>, Version) {
        own_version(self.exe.as_deref())
    }

    pub(crate) fn env<'a>(&'a self, config: &'a Config) -> Env<'a> {
        Env {
            root: &self.root,
            config,
            http: self.http.as_ref(),
            plugins: self.plugins.as_ref(),
            exe: self.exe.as_deref(),
            cancel: &self.cancel,
            installer_data: None,
            policy: &self.policy,
        }
    }

    /// The enterprise policy as read when the client was opened (absent,
    /// loaded, or ignored as a whole and why).
    pub fn loaded_policy(&self) -> &LoadedPolicy {
        &self.policy
    }

    /// The effective policy of this scope: every setting the policy file
    /// governs, for every registered app and every app the file names,
    /// with the source of each value. The configuration is used when its
    /// file exists; the prefs are read without the lock.
    pub fn policy(&self) -> Result<EffectivePolicy, ClientError> {
        let config = self.config_if_present()?;
        let prefs = upkeep_core::state::Prefs::load(&self.root.join(PREFS_FILE))?;
        Ok(EffectivePolicy::new(&self.policy, config, &prefs.apps))
    }

    /// `Err(NotActive)` when this binary is an installed updater version of
    /// this state root that is not the active one: the apps are left to the
    /// active version.
    pub(crate) fn check_active(
        &self,
        prefs: &upkeep_core::state::Prefs,
    ) -> Result<(), ClientError> {
        if let (Some(installed), own) = self.own_version()
            && installed.root == self.root
            && let Some(active) = &prefs.active_version
            && *active != own
        {
            return Err(ClientError::NotActive {
                own,
                active: active.clone(),
                root: self.root.clone(),
            });
        }
        Ok(())
    }

    /// `--config` for the updater versions this client starts.
    pub(crate) fn config_arg(&self) -> Option<&PathBuf> {
        self.explicit_config.then_some(&self.config_path)
    }

    /// Checks for updates of the selected apps and applies them: one signed
    /// update check; for each offer the TUF agreement, the download, the
    /// installer, the switch; the events reported. Apps fail one by one in
    /// the report; an `Err` means nothing was attempted. A release of
    /// upkeep installed side by side is started to qualify once the lock is
    /// released; a replaced single binary is named in the report for the
    /// caller to restart.
    pub fn update(
        &self,
        selection: Selection,
        observer: &mut dyn Observer,
    ) -> Result<PassReport, ClientError> {
        let config = self.config()?;
        let root = &self.root;
        let (Some(lock), mut prefs, _) = lock_and_recover(root, Some(config), observer)? else {
            return Err(ClientError::Uninstalled { root: root.clone() });
        };
        self.check_active(&prefs)?;
        let ids = select_apps(root, &prefs, &selection)?;
        let prefs_path = root.join(PREFS_FILE);
        let env = self.env(config);
        let pass = check_and_apply(
            &env,
            &prefs_path,
            &mut prefs,
            ids,
            PassOptions {
                install_source: Some(crate::pass::INSTALL_SOURCE_ON_DEMAND),
                ..PassOptions::default()
            },
            observer,
        )?;
        drop(lock);
        start_versions(root, self.config_arg(), &pass.staged, observer);
        Ok(pass)
    }
}

/// The apps of a pass: the selected one, or every registered one.
pub(crate) fn select_apps(
    root: &Path,
    prefs: &upkeep_core::state::Prefs,
    selection: &Selection,
) -> Result<Vec<String>, ClientError> {
    let ids: Vec<String> = match selection {
        Selection::App(app) => {
            let id = app.to_ascii_lowercase();
            if !prefs.apps.contains_key(&id) {
                return Err(ClientError::NotRegistered {
                    app: app.clone(),
                    root: root.to_path_buf(),
                });
            }
            vec![id]
        }
        Selection::All => prefs.apps.keys().cloned().collect(),
    };
    if ids.is_empty() {
        return Err(ClientError::NothingRegistered {
            root: root.to_path_buf(),
        });
    }
    Ok(ids)
}

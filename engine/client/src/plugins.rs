//! The four plugin roles as the engine sees them: small traits, one per
//! world, implemented over the wasmtime [`PluginHost`] by [`WasmPlugins`].
//! The engine never touches the host directly, so its tests can run the
//! update pass with stub plugins.
//!
//! Every call names the plugin by its registration ([`PluginRef`]: path
//! and SHA-256); a component that changed since it was registered is
//! refused before it runs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use upkeep_core::state::PluginRef;
use upkeep_plugin_host::bindings::{existence, installer, qualifier, types};
use upkeep_plugin_host::{
    CallOptions, ExistenceInput, HostConfig, InstallInput, Plugin, PluginError, PluginHost,
    QualifyInput, TelemetryInput, World,
};

/// A plugin's answer, with the plugin's name for messages.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The plugin's name (from its manifest).
    pub plugin: String,
    /// What it answered.
    pub value: T,
}

/// What a plugin does for the engine, in messages ("installer plugin
/// install-archive failed: ...").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An app's installer.
    Installer,
    /// An app's existence checker.
    ExistenceChecker,
    /// An app's post-install check (a qualifier-world plugin).
    PostInstallCheck,
    /// An app's health check once a new version is live (a
    /// qualifier-world plugin).
    HealthCheck,
    /// The qualifier of new updater versions.
    Qualifier,
    /// A telemetry sink.
    TelemetrySink,
}

impl Role {
    /// The world a plugin in this role implements.
    pub fn world(self) -> World {
        match self {
            Role::Installer => World::Installer,
            Role::ExistenceChecker => World::ExistenceChecker,
            Role::PostInstallCheck | Role::HealthCheck | Role::Qualifier => World::Qualifier,
            Role::TelemetrySink => World::TelemetrySink,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Installer => "installer plugin",
            Role::ExistenceChecker => "existence checker",
            Role::PostInstallCheck => "post-install check",
            Role::HealthCheck => "health check",
            Role::Qualifier => "qualifier",
            Role::TelemetrySink => "telemetry sink",
        })
    }
}

/// Why a plugin could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginFailure {
    /// The plugin host (wasmtime) could not start.
    #[error("cannot start the plugin host: {0}")]
    Host(#[source] Box<PluginError>),
    /// The component or its manifest cannot be loaded.
    #[error("cannot load plugin {}: {source}", path.display())]
    Load {
        /// The component.
        path: PathBuf,
        /// The cause.
        source: Box<PluginError>,
    },
    /// The component implements another world than its role needs.
    #[error("plugin {} implements the {found} world, but a {wanted} plugin is needed", path.display())]
    WrongWorld {
        /// The component.
        path: PathBuf,
        /// What it implements.
        found: World,
        /// What was needed.
        wanted: World,
    },
    /// The component is not the one registered.
    #[error(
        "{role} {} changed since it was registered (sha256 {now} now, {then} then); register it again to trust it",
        path.display()
    )]
    Changed {
        /// The role.
        role: Role,
        /// The component.
        path: PathBuf,
        /// Its hash now.
        now: String,
        /// Its hash at registration.
        then: String,
    },
    /// The call failed: a trap, a limit, a refused grant.
    #[error("{role} {plugin} failed: {source}")]
    Call {
        /// The role.
        role: Role,
        /// The plugin's name.
        plugin: String,
        /// The cause.
        source: Box<PluginError>,
    },
}

/// Finds plugins and tells what they are.
pub trait PluginLoader {
    /// Loads the plugin at `path`, checks that it can serve `role`, and
    /// returns its registration (absolute path and content hash).
    fn identify(&self, path: &Path, role: Role) -> Result<PluginRef, PluginFailure>;
}

/// Installs, updates and uninstalls apps.
pub trait Installer {
    /// Runs the installer `plugin` on `input` for the app `app`.
    #[allow(clippy::type_complexity)]
    fn install(
        &self,
        plugin: &PluginRef,
        input: &InstallInput,
        app: types::AppInfo,
    ) -> Result<Answer<Result<installer::InstallSuccess, installer::InstallError>>, PluginFailure>;
}

/// Tells whether an app is still installed.
pub trait ExistenceChecker {
    /// Runs the existence checker `plugin` on `input`.
    fn check_existence(
        &self,
        plugin: &PluginRef,
        input: &ExistenceInput,
    ) -> Result<Answer<existence::Presence>, PluginFailure>;
}

/// Judges an installed version: a new updater version's qualification, or
/// an app's post-install check.
pub trait Qualifier {
    /// Runs the qualifier-world `plugin` in `role` on `input`.
    fn qualify(
        &self,
        plugin: &PluginRef,
        role: Role,
        input: &QualifyInput,
    ) -> Result<Answer<qualifier::Verdict>, PluginFailure>;
}

/// Receives update events.
pub trait TelemetrySink {
    /// Hands `events` to the sink at `path`, with its own data directory
    /// under `data_root`. `Ok(Err(why))` when the sink refused them.
    fn consume_events(
        &self,
        path: &Path,
        data_root: &Path,
        events: &[types::UpdateEvent],
    ) -> Result<Answer<Result<(), String>>, PluginFailure>;
}

/// Everything the engine asks of plugins.
pub trait Plugins: PluginLoader + Installer + ExistenceChecker + Qualifier + TelemetrySink {}

impl<T: PluginLoader + Installer + ExistenceChecker + Qualifier + TelemetrySink> Plugins for T {}

/// The plugin roles over a real [`PluginHost`], started on first use with
/// its compile cache in `<root>/plugin-cache`.
pub struct WasmPlugins {
    cache: PathBuf,
    host: OnceLock<PluginHost>,
}

impl WasmPlugins {
    /// Plugins run with the compile cache of state root `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            cache: root.join("plugin-cache"),
            host: OnceLock::new(),
        }
    }

    fn host(&self) -> Result<&PluginHost, PluginFailure> {
        if let Some(host) = self.host.get() {
            return Ok(host);
        }
        let host = PluginHost::new(HostConfig::with_cache(self.cache.clone()))
            .map_err(|e| PluginFailure::Host(Box::new(e)))?;
        Ok(self.host.get_or_init(|| host))
    }

    fn load(&self, path: &Path, role: Role) -> Result<Plugin, PluginFailure> {
        let plugin = self
            .host()?
            .load(path)
            .map_err(|source| PluginFailure::Load {
                path: path.to_path_buf(),
                source: Box::new(source),
            })?;
        if plugin.world() != role.world() {
            return Err(PluginFailure::WrongWorld {
                path: path.to_path_buf(),
                found: plugin.world(),
                wanted: role.world(),
            });
        }
        Ok(plugin)
    }

    /// Loads the registered plugin, refusing one whose content changed.
    fn load_registered(&self, plugin: &PluginRef, role: Role) -> Result<Plugin, PluginFailure> {
        let loaded = self.load(&plugin.path, role)?;
        if loaded.content_hash() != plugin.sha256 {
            return Err(PluginFailure::Changed {
                role,
                path: plugin.path.clone(),
                now: loaded.content_hash().to_owned(),
                then: plugin.sha256.clone(),
            });
        }
        Ok(loaded)
    }
}

fn logged<T>(plugin: &Plugin, report: upkeep_plugin_host::CallReport<T>) -> Answer<T> {
    for log in &report.logs {
        tracing::info!(plugin = plugin.name(), level = log.level, "{}", log.message);
    }
    Answer {
        plugin: plugin.name().to_owned(),
        value: report.value,
    }
}

fn call_failed(role: Role, plugin: &Plugin) -> impl FnOnce(PluginError) -> PluginFailure + '_ {
    move |source| PluginFailure::Call {
        role,
        plugin: plugin.name().to_owned(),
        source: Box::new(source),
    }
}

impl PluginLoader for WasmPlugins {
    fn identify(&self, path: &Path, role: Role) -> Result<PluginRef, PluginFailure> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let plugin = self.load(&path, role)?;
        Ok(PluginRef {
            sha256: plugin.content_hash().to_owned(),
            path,
        })
    }
}

impl Installer for WasmPlugins {
    fn install(
        &self,
        plugin: &PluginRef,
        input: &InstallInput,
        app: types::AppInfo,
    ) -> Result<Answer<Result<installer::InstallSuccess, installer::InstallError>>, PluginFailure>
    {
        let role = Role::Installer;
        let loaded = self.load_registered(plugin, role)?;
        let options = CallOptions {
            app: Some(app),
            progress: None,
        };
        let report = self
            .host()?
            .install(&loaded, input, options)
            .map_err(call_failed(role, &loaded))?;
        Ok(logged(&loaded, report))
    }
}

impl ExistenceChecker for WasmPlugins {
    fn check_existence(
        &self,
        plugin: &PluginRef,
        input: &ExistenceInput,
    ) -> Result<Answer<existence::Presence>, PluginFailure> {
        let role = Role::ExistenceChecker;
        let loaded = self.load_registered(plugin, role)?;
        let report = self
            .host()?
            .check_existence(&loaded, input, CallOptions::default())
            .map_err(call_failed(role, &loaded))?;
        Ok(logged(&loaded, report))
    }
}

impl Qualifier for WasmPlugins {
    fn qualify(
        &self,
        plugin: &PluginRef,
        role: Role,
        input: &QualifyInput,
    ) -> Result<Answer<qualifier::Verdict>, PluginFailure> {
        let loaded = self.load_registered(plugin, role)?;
        let report = self
            .host()?
            .qualify(&loaded, input, CallOptions::default())
            .map_err(call_failed(role, &loaded))?;
        Ok(logged(&loaded, report))
    }
}

impl TelemetrySink for WasmPlugins {
    fn consume_events(
        &self,
        path: &Path,
        data_root: &Path,
        events: &[types::UpdateEvent],
    ) -> Result<Answer<Result<(), String>>, PluginFailure> {
        let role = Role::TelemetrySink;
        let loaded = self.load(path, role)?;
        let data_dir = data_root.join(loaded.name());
        std::fs::create_dir_all(&data_dir).map_err(|source| PluginFailure::Call {
            role,
            plugin: loaded.name().to_owned(),
            source: Box::new(PluginError::Io {
                path: data_dir.clone(),
                source,
            }),
        })?;
        let input = TelemetryInput {
            data_dir,
            events: events.to_vec(),
        };
        let report = self
            .host()?
            .consume_events(&loaded, &input, CallOptions::default())
            .map_err(call_failed(role, &loaded))?;
        Ok(logged(&loaded, report))
    }
}

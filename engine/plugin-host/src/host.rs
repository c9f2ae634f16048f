//! The plugin host: one engine, one linker, a compile cache and the epoch
//! clock; [`PluginHost::load`] turns a component file into a [`Plugin`] ready
//! to be called many times, each call in a fresh, limited store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::bindings::{existence, installer, qualifier, telemetry, types};
use crate::cache::{CacheOutcome, ComponentCache};
use crate::config::HostConfig;
use crate::error::PluginError;
use crate::manifest::{self, Access, Manifest};
use crate::state::{CallLimiter, CallState, LogBudget, LogRecord, Progress, ProgressSink};
use crate::ticker::EpochTicker;
use crate::world::World;

/// Loads and runs plugins. Cheap to share by reference across threads.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<CallState>,
    config: HostConfig,
    cache: Option<ComponentCache>,
    _ticker: EpochTicker,
}

/// A loaded plugin: checked manifest, compiled and pre-linked component.
pub struct Plugin {
    path: PathBuf,
    manifest: Manifest,
    content_hash: String,
    size: u64,
    pre: WorldPre,
    limits: EffectiveLimits,
    cache: CacheOutcome,
    load_time: Duration,
}

enum WorldPre {
    Qualifier(qualifier::QualifierPre<CallState>),
    Existence(existence::ExistenceCheckerPre<CallState>),
    Installer(installer::InstallerPre<CallState>),
    Telemetry(telemetry::TelemetrySinkPre<CallState>),
}

/// The limits a plugin's calls run under, after the host capped what the
/// manifest asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct EffectiveLimits {
    /// Wall-time budget per call, in milliseconds.
    pub timeout_ms: u64,
    /// Linear-memory budget per call, in MiB.
    pub memory_mib: u64,
}

/// A directory the caller offers to a call, with the most access it allows.
/// The plugin gets it only if its manifest requested that mount, and never
/// with more access than both the manifest and the offer allow.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The mount name (see [`World::mounts`]).
    pub mount: String,
    /// The host directory.
    pub dir: PathBuf,
    /// The most access the caller allows.
    pub access: Access,
}

/// What one call returned besides its value.
#[derive(Debug, Clone)]
pub struct CallReport<T> {
    /// The plugin's answer.
    pub value: T,
    /// Log records the plugin emitted.
    pub logs: Vec<LogRecord>,
    /// Records dropped over the log cap.
    pub dropped_logs: u64,
    /// The last progress report.
    pub progress: Option<Progress>,
    /// What the plugin wrote to stdout and stderr (capped).
    pub stdout: String,
    /// See `stdout`.
    pub stderr: String,
    /// Wall time of instantiate + call.
    pub duration: Duration,
}

/// Context of a call that is not world-specific.
#[derive(Default)]
pub struct CallOptions {
    /// The app the call concerns, returned by the host `app` function.
    pub app: Option<types::AppInfo>,
    /// Receives progress reports as they come.
    pub progress: Option<ProgressSink>,
}

impl PluginHost {
    /// Builds the engine described by `config`.
    pub fn new(config: HostConfig) -> Result<Self, PluginError> {
        let engine = match build_engine(&config, config.pooling) {
            Ok(e) => e,
            Err(e) if config.pooling => {
                tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand allocation");
                build_engine(&config, false).map_err(|e| PluginError::Engine(format!("{e:#}")))?
            }
            Err(e) => return Err(PluginError::Engine(format!("{e:#}"))),
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        // `host` and `types` are shared by every world; adding them once
        // through any world's bindings serves all four.
        qualifier::Qualifier::add_to_linker::<CallState, wasmtime::component::HasSelf<CallState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        let ticker = EpochTicker::start(&engine, config.epoch_tick)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        let cache = config
            .cache_dir
            .as_deref()
            .map(|d| ComponentCache::new(d, &engine));
        Ok(Self {
            engine,
            linker,
            config,
            cache,
            _ticker: ticker,
        })
    }

    /// The engine configuration in force.
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// The wasmtime engine (for tools that inspect components).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads the component at `path` with the manifest beside it.
    pub fn load(&self, path: &Path) -> Result<Plugin, PluginError> {
        let manifest = Manifest::load_beside(path)?;
        self.load_with_manifest(path, manifest)
    }

    /// Loads the component at `path` with the given manifest.
    pub fn load_with_manifest(
        &self,
        path: &Path,
        manifest: Manifest,
    ) -> Result<Plugin, PluginError> {
        let started = Instant::now();
        // The API version is checked before anything is compiled.
        manifest::check_api(&manifest)?;
        let wasm = std::fs::read(path).map_err(|source| PluginError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let content_hash = hex::encode(Sha256::digest(&wasm));
        let name = manifest.plugin.name.clone();
        let (component, cache) = self.compile(&wasm, &content_hash, &name)?;
        let pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| PluginError::MissingImport {
                    plugin: name.clone(),
                    reason: format!("{e:#}"),
                })?;
        let world = manifest.plugin.world;
        let mismatch = |e: wasmtime::Error| PluginError::WorldMismatch {
            plugin: name.clone(),
            world,
            reason: format!("{e:#}"),
        };
        let pre = match world {
            World::Qualifier => {
                WorldPre::Qualifier(qualifier::QualifierPre::new(pre).map_err(mismatch)?)
            }
            World::ExistenceChecker => {
                WorldPre::Existence(existence::ExistenceCheckerPre::new(pre).map_err(mismatch)?)
            }
            World::Installer => {
                WorldPre::Installer(installer::InstallerPre::new(pre).map_err(mismatch)?)
            }
            World::TelemetrySink => {
                WorldPre::Telemetry(telemetry::TelemetrySinkPre::new(pre).map_err(mismatch)?)
            }
        };
        let limits = self.effective_limits(&manifest);
        Ok(Plugin {
            path: path.to_path_buf(),
            manifest,
            content_hash,
            size: wasm.len() as u64,
            pre,
            limits,
            cache,
            load_time: started.elapsed(),
        })
    }

    /// Compiles (or loads from the cache) a component, mapping failures to
    /// [`PluginError::Malformed`].
    pub fn compile(
        &self,
        wasm: &[u8],
        content_hash: &str,
        name: &str,
    ) -> Result<(Component, CacheOutcome), PluginError> {
        let malformed = |e: wasmtime::Error| PluginError::Malformed {
            plugin: name.to_string(),
            reason: format!("{e:#}"),
        };
        match &self.cache {
            Some(cache) => cache
                .load_or_compile(&self.engine, wasm, content_hash)
                .map_err(malformed),
            None => Component::new(&self.engine, wasm)
                .map(|c| (c, CacheOutcome::Disabled))
                .map_err(malformed),
        }
    }

    fn effective_limits(&self, manifest: &Manifest) -> EffectiveLimits {
        let c = &self.config;
        let max_ms = c.max_timeout.as_millis() as u64;
        let timeout_ms = manifest
            .limits
            .timeout_ms
            .unwrap_or(c.default_timeout.as_millis() as u64)
            .min(max_ms);
        let memory_mib = manifest
            .limits
            .memory_mib
            .unwrap_or(c.default_memory_mib)
            .min(c.max_memory_mib);
        if manifest.limits.timeout_ms.is_some_and(|t| t > max_ms)
            || manifest
                .limits
                .memory_mib
                .is_some_and(|m| m > c.max_memory_mib)
        {
            tracing::warn!(plugin = %manifest.plugin.name, timeout_ms, memory_mib, "manifest limits capped by the host maximum");
        }
        EffectiveLimits {
            timeout_ms,
            memory_mib,
        }
    }

    fn new_store(
        &self,
        plugin: &Plugin,
        offers: &[Offer],
        options: CallOptions,
    ) -> Result<(Store<CallState>, BTreeMap<&'static str, bool>), PluginError> {
        let name = plugin.name();
        let world = plugin.world();
        let mut wasi = WasiCtxBuilder::new();
        // Nothing ambient: no environment, no arguments, no stdin, no
        // network. Only the mounts below.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        // Calls are synchronous: let file operations block this thread
        // rather than hop to tokio's blocking pool and back for each one
        // (a 4 KiB write each, for a plugin writing with Rust's std).
        wasi.allow_blocking_current_thread(true);
        let stdout = MemoryOutputPipe::new(self.config.max_stdio_bytes);
        let stderr = MemoryOutputPipe::new(self.config.max_stdio_bytes);
        wasi.stdout(stdout.clone()).stderr(stderr.clone());
        let mut writable = BTreeMap::new();
        let mut mounted = BTreeMap::new();
        for offer in offers {
            let Some(mount) = world.mount(&offer.mount) else {
                return Err(PluginError::UnknownMount {
                    plugin: name.into(),
                    world,
                    mount: offer.mount.clone(),
                });
            };
            let Some(requested) = plugin.manifest.requested(mount.name) else {
                tracing::debug!(
                    plugin = name,
                    mount = mount.name,
                    "not requested by the manifest; not mounted"
                );
                continue;
            };
            let access = requested.min(offer.access).min(mount.max_access);
            if access < requested {
                tracing::warn!(plugin = name, mount = mount.name, %requested, granted = %access, "mount granted with less access than requested");
            }
            let perms = match access {
                Access::ReadOnly => FsPerms::ReadOnly,
                Access::ReadWrite => FsPerms::ReadWrite,
            };
            let mount_err = |reason: String| PluginError::Mount {
                plugin: name.into(),
                mount: mount.name.into(),
                path: offer.dir.clone(),
                reason,
            };
            wasi.preopened_dir(&offer.dir, mount.guest_path, perms)
                .map_err(|e| mount_err(format!("{e:#}")))?;
            if access == Access::ReadWrite {
                let dir =
                    cap_std::fs::Dir::open_ambient_dir(&offer.dir, cap_std::ambient_authority())
                        .map_err(|e| mount_err(e.to_string()))?;
                writable.insert(mount.guest_path.to_string(), dir);
            }
            mounted.insert(mount.name, true);
        }
        let state = CallState {
            plugin: name.to_string(),
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: CallLimiter {
                memory_bytes: (plugin.limits.memory_mib as usize).saturating_mul(1024 * 1024),
                table_elements: self.config.max_table_elements,
                instances: self.config.max_instances,
                memory_refused: None,
            },
            app: options.app,
            writable,
            log: LogBudget::new(self.config.max_log_bytes),
            progress: options.progress,
            last_progress: None,
            stdout,
            stderr,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        let tick = self.config.epoch_tick.as_millis().max(1) as u64;
        store.set_epoch_deadline(plugin.limits.timeout_ms.div_ceil(tick) + 1);
        store.epoch_deadline_trap();
        Ok((store, mounted))
    }

    fn finish<T>(
        &self,
        plugin: &Plugin,
        store: Store<CallState>,
        started: Instant,
        result: wasmtime::Result<T>,
    ) -> Result<CallReport<T>, PluginError> {
        let state = store.into_data();
        let stdout = String::from_utf8_lossy(&state.stdout.contents()).into_owned();
        let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
        for (stream, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            for line in text.lines() {
                tracing::debug!(plugin = plugin.name(), stream, "{line}");
            }
        }
        if state.log.dropped > 0 {
            tracing::warn!(
                plugin = plugin.name(),
                dropped = state.log.dropped,
                "plugin log output over the cap was dropped"
            );
        }
        let value = result.map_err(|e| self.classify(plugin, &state, e))?;
        Ok(CallReport {
            value,
            logs: state.log.records,
            dropped_logs: state.log.dropped,
            progress: state.last_progress,
            stdout,
            stderr,
            duration: started.elapsed(),
        })
    }

    fn classify(&self, plugin: &Plugin, state: &CallState, e: wasmtime::Error) -> PluginError {
        let name = plugin.name().to_string();
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                return PluginError::Timeout {
                    plugin: name,
                    limit_ms: plugin.limits.timeout_ms,
                };
            }
            Some(Trap::StackOverflow) => {
                return PluginError::StackOverflow {
                    plugin: name,
                    limit_kib: self.config.max_wasm_stack / 1024,
                };
            }
            _ => {}
        }
        if let Some(requested) = state.limiter.memory_refused {
            return PluginError::MemoryLimit {
                plugin: name,
                limit_mib: plugin.limits.memory_mib,
                requested_bytes: requested as u64,
            };
        }
        let mut reason = format!("{e:?}");
        let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
        if !stderr.trim().is_empty() {
            let tail: String = stderr
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            reason.push_str(&format!("\nplugin stderr: {}", tail.trim_end()));
        }
        for (stream, pipe) in [("stdout", &state.stdout), ("stderr", &state.stderr)] {
            if pipe.contents().len() >= self.config.max_stdio_bytes {
                reason.push_str(&format!(
                    "\n(the plugin filled its {stream} cap of {} bytes; write logs through the host `log` function)",
                    self.config.max_stdio_bytes
                ));
            }
        }
        PluginError::Trap {
            plugin: name,
            reason,
        }
    }
}

fn build_engine(c: &HostConfig, pooling: bool) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Deadlines: an epoch interrupt traps a call that runs too long, at the
    // cost of a cheap check on loop back-edges and function entries.
    config.epoch_interruption(true);
    config.max_wasm_stack(c.max_wasm_stack);
    // Plugins are small; optimise their code for speed once, then cache it.
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        let n = c.pool_instances;
        pool.total_component_instances(n);
        // A wasip2 component is a handful of core instances (the program
        // plus adapters), each with at most a memory and a table or two.
        pool.total_core_instances(n * 8);
        pool.total_memories(n * 2);
        pool.total_tables(n * 8);
        pool.max_memories_per_component(4);
        pool.max_tables_per_component(16);
        pool.max_memory_size((c.max_memory_mib as usize).saturating_mul(1024 * 1024));
        pool.table_elements(c.max_table_elements);
        // A freed slot's pages are reset for the next store either by
        // `madvise` (which the next call pays back in page faults, and a
        // TLB flush) or by rewriting them in place, keeping them resident.
        // Tables are small: rewrite their first 64 KiB in place. Linear
        // memory is rewritten in place only where Linux's PAGEMAP_SCAN
        // tells which pages the last call touched (up to 1 MiB of them);
        // without it a plain `memset` of the whole range costs more than
        // it saves. Either way the next store sees the original contents;
        // the cost is that those pages stay resident while a slot is free.
        pool.table_keep_resident(64 * 1024);
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            pool.pagemap_scan(wasmtime::Enabled::Yes);
            pool.linear_memory_keep_resident(1024 * 1024);
        }
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config)
}

impl Plugin {
    /// The manifest's name.
    pub fn name(&self) -> &str {
        &self.manifest.plugin.name
    }

    /// The world the plugin implements.
    pub fn world(&self) -> World {
        self.manifest.plugin.world
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the component bytes, hex.
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The component file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The limits its calls run under.
    pub fn limits(&self) -> EffectiveLimits {
        self.limits
    }

    /// What the compile cache did when this plugin was loaded.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    /// How long loading took (read, hash, compile or cache load, link).
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    fn wrong_world(&self, wanted: World) -> PluginError {
        PluginError::WorldMismatch {
            plugin: self.name().to_string(),
            world: wanted,
            reason: format!("it implements the {} world", self.world()),
        }
    }
}

/// Inputs of a qualifier call.
#[derive(Debug, Clone, Default)]
pub struct QualifyInput {
    /// The updater version under test.
    pub updater_version: String,
    /// The qualification app's id.
    pub app_id: String,
    /// Its freshly installed version.
    pub app_version: String,
    /// Its install directory (mounted read-only at `/app`).
    pub app_dir: PathBuf,
    /// Settings from the registration.
    pub settings: Vec<(String, String)>,
}

/// Inputs of an existence check.
#[derive(Debug, Clone, Default)]
pub struct ExistenceInput {
    /// The app id.
    pub app_id: String,
    /// The registered version.
    pub version: String,
    /// The registered install directory; mounted read-only at `/app` when it exists.
    pub app_dir: Option<PathBuf>,
    /// The marker path, relative to the install directory.
    pub marker: Option<String>,
    /// Settings from the registration.
    pub settings: Vec<(String, String)>,
}

/// Inputs of an installer call.
#[derive(Debug, Clone)]
pub struct InstallInput {
    /// What to do.
    pub operation: installer::Operation,
    /// The app id.
    pub app_id: String,
    /// The version installed before.
    pub from_version: Option<String>,
    /// The version being installed.
    pub to_version: String,
    /// Installer arguments.
    pub arguments: Vec<String>,
    /// The installerdata blob.
    pub installer_data: Option<String>,
    /// The payload directory (mounted read-only at `/payload`).
    pub payload_dir: Option<PathBuf>,
    /// The install directory (mounted read-write at `/install`).
    pub install_dir: PathBuf,
}

/// Inputs of a telemetry-sink call.
#[derive(Debug, Clone, Default)]
pub struct TelemetryInput {
    /// The sink's data directory (mounted read-write at `/data`).
    pub data_dir: PathBuf,
    /// The events, oldest first.
    pub events: Vec<types::UpdateEvent>,
}

fn offer(mount: &str, dir: &Path, access: Access) -> Offer {
    Offer {
        mount: mount.into(),
        dir: dir.to_path_buf(),
        access,
    }
}

impl PluginHost {
    /// Runs a qualifier.
    pub fn qualify(
        &self,
        plugin: &Plugin,
        input: &QualifyInput,
        options: CallOptions,
    ) -> Result<CallReport<qualifier::Verdict>, PluginError> {
        let WorldPre::Qualifier(pre) = &plugin.pre else {
            return Err(plugin.wrong_world(World::Qualifier));
        };
        let started = Instant::now();
        let (mut store, _) = self.new_store(
            plugin,
            &[offer("app", &input.app_dir, Access::ReadOnly)],
            options,
        )?;
        let request = qualifier::QualificationRequest {
            updater_version: input.updater_version.clone(),
            app_id: input.app_id.clone(),
            app_version: input.app_version.clone(),
            app_dir: "/app".into(),
            settings: input.settings.clone(),
        };
        let result = pre
            .instantiate(&mut store)
            .and_then(|b| b.call_qualify(&mut store, &request));
        self.finish(plugin, store, started, result)
    }

    /// Runs an existence checker.
    pub fn check_existence(
        &self,
        plugin: &Plugin,
        input: &ExistenceInput,
        options: CallOptions,
    ) -> Result<CallReport<existence::Presence>, PluginError> {
        let WorldPre::Existence(pre) = &plugin.pre else {
            return Err(plugin.wrong_world(World::ExistenceChecker));
        };
        let started = Instant::now();
        let dir = input.app_dir.as_deref().filter(|d| d.is_dir());
        let offers: Vec<Offer> = dir
            .map(|d| offer("app", d, Access::ReadOnly))
            .into_iter()
            .collect();
        let (mut store, mounted) = self.new_store(plugin, &offers, options)?;
        let registration = existence::Registration {
            app_id: input.app_id.clone(),
            version: input.version.clone(),
            app_dir: mounted.contains_key("app").then(|| "/app".to_string()),
            marker: input.marker.clone(),
            settings: input.settings.clone(),
        };
        let result = pre
            .instantiate(&mut store)
            .and_then(|b| b.call_check(&mut store, &registration));
        self.finish(plugin, store, started, result)
    }

    /// Runs an installer.
    pub fn install(
        &self,
        plugin: &Plugin,
        input: &InstallInput,
        options: CallOptions,
    ) -> Result<CallReport<Result<installer::InstallSuccess, installer::InstallError>>, PluginError>
    {
        let WorldPre::Installer(pre) = &plugin.pre else {
            return Err(plugin.wrong_world(World::Installer));
        };
        let started = Instant::now();
        let mut offers = vec![offer("install", &input.install_dir, Access::ReadWrite)];
        if let Some(p) = &input.payload_dir {
            offers.push(offer("payload", p, Access::ReadOnly));
        }
        // Installer data as a file, only for an installer that asks for it;
        // the directory is removed when this call returns.
        let data_dir = match &input.installer_data {
            Some(text) if plugin.manifest.requested("installer-data").is_some() => Some(
                crate::installer_data::installer_data_dir(text).map_err(|e| {
                    PluginError::Mount {
                        plugin: plugin.name().into(),
                        mount: "installer-data".into(),
                        path: std::env::temp_dir(),
                        reason: e.to_string(),
                    }
                })?,
            ),
            _ => None,
        };
        if let Some(d) = &data_dir {
            offers.push(offer("installer-data", d.path(), Access::ReadOnly));
        }
        let (mut store, mounted) = self.new_store(plugin, &offers, options)?;
        let request = installer::InstallRequest {
            operation: input.operation,
            app_id: input.app_id.clone(),
            from_version: input.from_version.clone(),
            to_version: input.to_version.clone(),
            arguments: input.arguments.clone(),
            installer_data: input.installer_data.clone(),
            payload_dir: mounted
                .contains_key("payload")
                .then(|| "/payload".to_string()),
            install_dir: "/install".into(),
        };
        let result = pre
            .instantiate(&mut store)
            .and_then(|b| b.call_run(&mut store, &request));
        self.finish(plugin, store, started, result)
    }

    /// Hands a batch of events to a telemetry sink.
    pub fn consume_events(
        &self,
        plugin: &Plugin,
        input: &TelemetryInput,
        options: CallOptions,
    ) -> Result<CallReport<Result<(), String>>, PluginError> {
        let WorldPre::Telemetry(pre) = &plugin.pre else {
            return Err(plugin.wrong_world(World::TelemetrySink));
        };
        let started = Instant::now();
        let (mut store, _) = self.new_store(
            plugin,
            &[offer("data", &input.data_dir, Access::ReadWrite)],
            options,
        )?;
        let batch = telemetry::EventBatch {
            data_dir: "/data".into(),
            events: input.events.clone(),
        };
        let result = pre
            .instantiate(&mut store)
            .and_then(|b| b.call_consume(&mut store, &batch));
        self.finish(plugin, store, started, result)
    }
}

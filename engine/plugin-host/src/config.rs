//! The one place the plugin engine is configured. Every knob is here, with
//! the reason for its default.

use std::path::PathBuf;
use std::time::Duration;

/// How the host compiles, caches and limits plugins.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where precompiled components are kept, keyed by the component's
    /// SHA-256 and the engine's compatibility hash. `None` compiles every
    /// load (tests, one-shot tools).
    pub cache_dir: Option<PathBuf>,
    /// Use the pooling instance allocator: instantiation reuses pre-reserved
    /// slots instead of mapping fresh memory each call, which is what makes a
    /// per-call store cheap. Falls back to on-demand allocation (with a
    /// warning) where the address space cannot be reserved.
    pub pooling: bool,
    /// How many plugin instances may be alive at once with pooling.
    pub pool_instances: u32,
    /// Default wall-time budget of one call; a manifest may ask for another
    /// value up to [`HostConfig::max_timeout`].
    pub default_timeout: Duration,
    /// The largest time budget any plugin may have.
    pub max_timeout: Duration,
    /// Default linear-memory budget of one call, in MiB.
    pub default_memory_mib: u64,
    /// The largest memory budget any plugin may have, in MiB.
    pub max_memory_mib: u64,
    /// Most table elements one table may hold.
    pub max_table_elements: usize,
    /// Most core instances, tables and memories one call's store may create.
    pub max_instances: usize,
    /// Wasm stack limit in bytes. A deep recursion traps here, long before
    /// the host's native stack is at risk.
    pub max_wasm_stack: usize,
    /// How often the epoch clock ticks. Deadlines are counted in ticks, so
    /// this is the resolution of the time limit.
    pub epoch_tick: Duration,
    /// Most bytes of log messages (host `log` calls) one call may emit;
    /// records past the cap are dropped and counted.
    pub max_log_bytes: usize,
    /// Most bytes a plugin may write to its stdout and stderr each in one
    /// call; they are captured and forwarded to the log.
    pub max_stdio_bytes: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            pooling: true,
            pool_instances: 32,
            default_timeout: Duration::from_secs(5),
            max_timeout: Duration::from_secs(300),
            default_memory_mib: 64,
            max_memory_mib: 1024,
            max_table_elements: 100_000,
            max_instances: 32,
            max_wasm_stack: 512 * 1024,
            epoch_tick: Duration::from_millis(10),
            max_log_bytes: 256 * 1024,
            max_stdio_bytes: 64 * 1024,
        }
    }
}

impl HostConfig {
    /// The default configuration with a compile cache in `dir`.
    pub fn with_cache(dir: impl Into<PathBuf>) -> Self {
        Self {
            cache_dir: Some(dir.into()),
            ..Self::default()
        }
    }
}

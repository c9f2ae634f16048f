//! Errors of the plugin host. Each refusal is its own variant so callers,
//! logs and event pings can name it.

use std::path::PathBuf;

use crate::manifest::{Access, ApiVersion};
use crate::world::World;

/// Why a plugin could not be loaded or a call did not return a result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No manifest beside the component.
    #[error("plugin {} has no manifest: expected {}", component.display(), expected.display())]
    ManifestMissing {
        /// The component.
        component: PathBuf,
        /// Where the manifest was looked for.
        expected: PathBuf,
    },
    /// The manifest does not parse or breaks a rule.
    #[error("manifest {}: {reason}", path.display())]
    ManifestInvalid {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The manifest names an API version this host cannot load.
    #[error(
        "plugin {plugin} was built against upkeep:plugin@{requested}; this host loads {supported}"
    )]
    UnsupportedApi {
        /// The plugin.
        plugin: String,
        /// What it was built against.
        requested: ApiVersion,
        /// What the host loads.
        supported: String,
    },
    /// The bytes are not a valid WebAssembly component.
    #[error("plugin {plugin} is not a valid WebAssembly component: {reason}")]
    Malformed {
        /// The plugin.
        plugin: String,
        /// What the validator said.
        reason: String,
    },
    /// The component does not implement the world its manifest names.
    #[error("plugin {plugin} does not implement the {world} world: {reason}")]
    WorldMismatch {
        /// The plugin.
        plugin: String,
        /// The world of the manifest.
        world: World,
        /// What is missing or different.
        reason: String,
    },
    /// The component imports something the host does not provide.
    #[error("plugin {plugin} needs an import the host does not provide: {reason}")]
    MissingImport {
        /// The plugin.
        plugin: String,
        /// The linker's words.
        reason: String,
    },
    /// A call handed a directory for a mount the plugin's world lacks.
    #[error("plugin {plugin}: the {world} world has no mount named {mount:?}")]
    UnknownMount {
        /// The plugin.
        plugin: String,
        /// Its world.
        world: World,
        /// The mount named by the caller.
        mount: String,
    },
    /// A directory to mount could not be opened.
    #[error("plugin {plugin}: cannot mount {} as {mount}: {reason}", path.display())]
    Mount {
        /// The plugin.
        plugin: String,
        /// The mount.
        mount: String,
        /// The host directory.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// The plugin ran past its time budget.
    #[error("plugin {plugin} exceeded its time limit of {limit_ms} ms and was stopped")]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The budget.
        limit_ms: u64,
    },
    /// The plugin tried to use more memory than allowed.
    #[error(
        "plugin {plugin} hit its memory limit of {limit_mib} MiB (it asked for {requested_bytes} bytes) and was stopped"
    )]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// The budget.
        limit_mib: u64,
        /// The size the plugin asked its memory to grow to.
        requested_bytes: u64,
    },
    /// The plugin's call stack grew past the host's wasm stack limit.
    #[error("plugin {plugin} overflowed its call stack (limit {limit_kib} KiB) and was stopped")]
    StackOverflow {
        /// The plugin.
        plugin: String,
        /// The limit.
        limit_kib: usize,
    },
    /// The plugin trapped (a panic, an `unreachable`, a failed check).
    #[error("plugin {plugin} crashed: {reason}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap and its backtrace, as wasmtime tells it.
        reason: String,
    },
    /// The engine could not be set up.
    #[error("plugin engine set-up failed: {0}")]
    Engine(String),
    /// A grant asked for more than a mount allows.
    #[error("plugin {plugin}: mount {mount:?} cannot be granted {access}")]
    GrantRefused {
        /// The plugin.
        plugin: String,
        /// The mount.
        mount: String,
        /// The access asked for.
        access: Access,
    },
}

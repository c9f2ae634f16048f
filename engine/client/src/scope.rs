//! Which state root an operation works on: the one given, the system-wide
//! one, the installation a binary belongs to, or the per-user one. The
//! scopes never touch each other (`docs/lifecycle.md`, "Scopes").

use std::path::{Path, PathBuf};

use upkeep_core::lifecycle;

/// The system-wide state root.
pub const SYSTEM_ROOT: &str = "/var/lib/upkeep";

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// This directory.
    Root(PathBuf),
    /// The system-wide scope, [`SYSTEM_ROOT`] (root-owned).
    System,
    /// The installation `exe` belongs to (`<root>/versions/<v>/upkeep`),
    /// else the per-user scope.
    Default {
        /// The running binary, if known.
        exe: Option<PathBuf>,
    },
}

/// Why no state root could be found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// The given root cannot be made absolute.
    #[error("cannot resolve the state directory {}: {source}", path.display())]
    Resolve {
        /// The path given.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No home directory to put the per-user scope in.
    #[error("no state directory: pass --root or --system, or set XDG_DATA_HOME or HOME")]
    NoHome,
}

impl Scope {
    /// The state root of this scope.
    pub fn resolve(&self) -> Result<PathBuf, ScopeError> {
        match self {
            Scope::Root(root) => std::path::absolute(root).map_err(|source| ScopeError::Resolve {
                path: root.clone(),
                source,
            }),
            Scope::System => Ok(PathBuf::from(SYSTEM_ROOT)),
            Scope::Default { exe } => {
                if let Some(installed) = exe.as_deref().and_then(lifecycle::installed_at) {
                    return Ok(installed.root);
                }
                user_root()
            }
        }
    }
}

/// The per-user state root: `$XDG_DATA_HOME/upkeep`, else
/// `~/.local/share/upkeep`.
pub fn user_root() -> Result<PathBuf, ScopeError> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from)
        && xdg.is_absolute()
    {
        return Ok(xdg.join("upkeep"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/upkeep")),
        None => Err(ScopeError::NoHome),
    }
}

/// Whether `root` is the system-wide scope.
pub fn is_system(root: &Path) -> bool {
    root == Path::new(SYSTEM_ROOT)
}

/// The default configuration file of a state root.
pub fn default_config_path(root: &Path) -> PathBuf {
    root.join("config.toml")
}

//! `--root`, `--system`, `--config`: which state root a command works on,
//! and the client library opened on it.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use upkeep_client::{Client, Scope};

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

    /// The enterprise policy file [default: /etc/upkeep/policy.toml with
    /// --system, else <root>/policy.toml]. `upkeep policy` shows what it
    /// sets (docs/policy.md).
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
}

impl StateArgs {
    /// The scope these arguments name.
    pub(crate) fn scope(&self) -> Scope {
        match (&self.root, self.system) {
            (Some(root), _) => Scope::Root(root.clone()),
            (None, true) => Scope::System,
            (None, false) => Scope::Default {
                exe: std::env::current_exe().ok(),
            },
        }
    }

    /// The state root.
    pub(crate) fn root(&self) -> Result<PathBuf> {
        Ok(self.scope().resolve()?)
    }

    /// The client on the state root.
    pub(crate) fn client(&self) -> Result<Client> {
        let mut builder = Client::builder(self.root()?);
        if let Some(config) = &self.config {
            builder = builder.config(config);
        }
        if let Some(policy) = &self.policy {
            builder = builder.policy(policy);
        }
        Ok(builder.open()?)
    }
}

//! `upkeep daemon`: the active updater version's UpdateService.
//!
//! The daemon of installed version `<v>` listens on
//! `<root>/versions/<v>/ipc.sock` (or on the socket the service manager
//! hands it) and serves each connection on a thread of its own
//! ([`upkeep_client::ipc`] has the protocol, [`upkeep_client::access`] the
//! rules of who may ask what). Reads run side by side; operations that
//! change state run one at a time, in this process, reporting to the
//! client as they go; a `wake` runs `<its binary> wake --in-process` as a
//! child. Every few seconds it re-reads the global prefs and exits
//! (removing its socket) once it is no longer the active version or its
//! version directory is gone; SIGTERM cancels the operation in flight and
//! exits once it stopped; a socket-activated daemon also exits when idle.
//! See `docs/service.md`.

use anyhow::Result;
use clap::Args;

use crate::ExitCode;
use crate::state::StateArgs;

#[cfg(unix)]
mod listen;
#[cfg(unix)]
mod serve;

/// `upkeep daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Exit after this many seconds without a request (0: never). Default:
    /// `[service] idle_exit_seconds` (10) when the service manager passed
    /// the socket, never otherwise.
    #[arg(long, value_name = "SECONDS")]
    idle_exit: Option<u64>,

    #[command(flatten)]
    state: StateArgs,
}

/// Runs `upkeep daemon`.
#[cfg(not(unix))]
pub fn run(_args: DaemonArgs) -> Result<ExitCode> {
    anyhow::bail!("upkeep daemon needs Unix domain sockets; here `upkeep wake` runs in-process")
}

/// Runs `upkeep daemon` until this version is no longer active.
#[cfg(unix)]
pub fn run(args: DaemonArgs) -> Result<ExitCode> {
    listen::run(args)
}

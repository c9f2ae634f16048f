//! The daemon as the other transport: a command that a running daemon can
//! serve is sent to it, its progress shown here as it streams in, its
//! output printed and its exit status returned. Without a daemon (or told
//! `--in-process`, or given its own `--config`) the command runs here.

use anyhow::Result;
use upkeep_client::ipc::Request;
use upkeep_client::lifecycle::WAKE_IN_PROCESS_ENV;

use crate::ExitCode;
use crate::state::StateArgs;

/// Whether this command must run here: asked to, or an environment that
/// says so (the daemon's own children), or a configuration of its own
/// (the daemon serves with the configuration it was started with).
fn must_run_here(state: &StateArgs, in_process: bool) -> bool {
    in_process
        || state.config.is_some()
        || state.policy.is_some()
        || std::env::var_os(WAKE_IN_PROCESS_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Runs `request` in the daemon of the state root when one answers and
/// returns the exit status; `None` when there is none (run it here).
#[cfg(unix)]
pub(crate) fn through_daemon(
    state: &StateArgs,
    in_process: bool,
    request: &Request,
) -> Result<Option<ExitCode>> {
    use upkeep_client::ipc::{self, CallError};
    if must_run_here(state, in_process) {
        return Ok(None);
    }
    let root = state.root()?;
    let link = upkeep_core::lifecycle::ipc_link_path(&root);
    if std::fs::symlink_metadata(&link).is_err() {
        return Ok(None);
    }
    match ipc::run(&link, request, &mut crate::render::Terminal::new()) {
        Ok(reply) => {
            let code = match reply.code {
                0 => ExitCode::Ok,
                3 => ExitCode::Negative,
                _ => ExitCode::Failed,
            };
            let rendered = crate::render::Rendered {
                code,
                stdout: reply.stdout,
                stderr: reply.stderr,
                result: reply.result,
            };
            Ok(Some(rendered.print()))
        }
        Err(CallError::NoDaemon(e)) => {
            tracing::debug!(socket = %link.display(), error = %e, "no daemon answers; running here");
            Ok(None)
        }
        Err(CallError::Refused(why)) => Err(anyhow::anyhow!("{why}")),
        Err(CallError::Failed(why)) => Err(anyhow::anyhow!(
            "the daemon behind {} did not finish answering {} ({why}); `upkeep status` shows what \
             it did, `--in-process` runs the command here",
            link.display(),
            request.name()
        )),
    }
}

/// Without Unix sockets every command runs here.
#[cfg(not(unix))]
pub(crate) fn through_daemon(
    state: &StateArgs,
    in_process: bool,
    _request: &Request,
) -> Result<Option<ExitCode>> {
    let _ = must_run_here(state, in_process);
    Ok(None)
}

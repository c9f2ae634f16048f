//! `upkeep setup`, `upkeep wake`, `upkeep status` and `upkeep uninstall`:
//! the updater's own lifecycle over `upkeep-client` (see
//! `docs/lifecycle.md`), and restarting a replaced binary.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use clap::Args;
use upkeep_client::lifecycle::{Stepped, WAKE_IN_PROCESS_ENV};
use upkeep_client::{SetupOutcome, WakeOptions};
use upkeep_core::crash;
use upkeep_core::lifecycle;
use upkeep_core::version::Version;

use crate::ExitCode;
use crate::render::{Terminal, render_pass};
use crate::state::StateArgs;

/// `upkeep setup`.
#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    state: StateArgs,
}

/// `upkeep wake`.
#[derive(Debug, Args)]
pub struct WakeArgs {
    /// Check for updates now, however recent the last check.
    #[arg(long)]
    now: bool,

    /// Print the update summary as JSON on stdout.
    #[arg(long)]
    json: bool,

    /// Run here, not through the daemon (the daemon runs its wakes this
    /// way). `UPKEEP_WAKE_IN_PROCESS=1` does the same.
    #[arg(long)]
    in_process: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// `upkeep status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,

    /// Read the state root here, not through the daemon.
    #[arg(long)]
    in_process: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// `upkeep uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Run here, not through the daemon that serves the state root.
    #[arg(long)]
    in_process: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// Replaces this process with the new binary at `exe`, same arguments.
#[cfg(unix)]
pub(crate) fn reexec(exe: &Path, version: &Version) -> Result<()> {
    use std::os::unix::process::CommandExt;
    eprintln!("upkeep: restarting as {version} ({})", exe.display());
    let _ = std::io::stdout().flush();
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env("UPKEEP_RESTARTED_AS", version.to_string());
    if let Some(tag) = crash::child_tag() {
        cmd.env(crash::CRASH_PROC_ENV, tag);
    }
    let err = cmd.exec();
    Err(err).with_context(|| format!("cannot execute the new binary {}", exe.display()))
}

/// On Windows the service manager restarts the service (docs/adr/0007).
#[cfg(not(unix))]
pub(crate) fn reexec(exe: &Path, version: &Version) -> Result<()> {
    eprintln!(
        "upkeep: {version} is in place at {}; it runs from the next start",
        exe.display()
    );
    Ok(())
}

/// Reports what the lifecycle step did with version `own`.
fn print_step(root: &Path, own: &Version, stepped: &Stepped, setup: bool) -> ExitCode {
    match stepped {
        Stepped::Active { .. } => {
            if setup {
                println!("upkeep {own} is active in {}", root.display());
            }
            ExitCode::Ok
        }
        Stepped::Unqualified(why) => {
            eprintln!(
                "upkeep: error: {own} did not qualify (it stays unqualified and retries on the next wake): {why}"
            );
            ExitCode::Failed
        }
        Stepped::Deactivated(active) => {
            println!("upkeep {own}: {active} is active; this version uninstalled itself");
            ExitCode::Ok
        }
    }
}

/// Runs `upkeep setup`.
pub fn setup(args: SetupArgs) -> Result<ExitCode> {
    let client = args.state.client()?;
    match client.setup(&mut Terminal::new())? {
        SetupOutcome::SingleBinary { version, exe } => {
            println!(
                "upkeep {version} runs as a single binary from {}",
                exe.display()
            );
            Ok(ExitCode::Ok)
        }
        SetupOutcome::AlreadyActive(version) => {
            println!(
                "upkeep {version} is already installed and active in {}",
                client.root().display()
            );
            Ok(ExitCode::Ok)
        }
        SetupOutcome::Stepped { version, stepped } => {
            Ok(print_step(client.root(), &version, &stepped, true))
        }
    }
}

/// Runs `upkeep wake`: through the daemon when one answers (unless told
/// to run here), else in this process.
pub fn wake(args: WakeArgs) -> Result<ExitCode> {
    let root = args.state.root()?;
    let in_process = args.in_process
        || std::env::var_os(WAKE_IN_PROCESS_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    #[cfg(unix)]
    if !in_process
        && let Some(code) =
            wake_through_internal(&root).or_else(|| wake_through_daemon(&root, args.now, args.json))
    {
        // The daemon's child did the work and its output is printed: end
        // with its exit status, whatever it is.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        std::process::exit(code.clamp(0, 255));
    }
    #[cfg(not(unix))]
    let _ = in_process;
    let client = args.state.client()?;
    let report = client.wake(WakeOptions { now: args.now }, &mut Terminal::new())?;
    let (_, own) = client.own_version();
    if let Some(stepped) = &report.stepped
        && !matches!(stepped, Stepped::Active { .. })
    {
        return Ok(print_step(&root, &own, stepped, false));
    }
    if report.nothing_registered {
        println!("no app is registered; nothing to check");
        return Ok(ExitCode::Ok);
    }
    let code = match &report.pass {
        Some(pass) if report.checked || pass.removed_any() => render_pass(pass, args.json)?.print(),
        _ => ExitCode::Ok,
    };
    if let Some(rest) = report.suppressed {
        println!(
            "a check is due, but the policy suppresses scheduled checks now; next check in {} min",
            rest.as_secs() / 60
        );
    } else if let Some(next) = report.next_check {
        println!(
            "up to date as of the last check; next check in {} min",
            next.as_secs() / 60 + 1
        );
    } else if report.scheduled_checks_off && !report.checked {
        println!(
            "the policy turns scheduled checks off (check_period_minutes = 0); `upkeep update` checks now"
        );
    }
    if let Some((exe, version)) = report
        .pass
        .as_ref()
        .and_then(|p| p.replaced_binary.as_ref())
    {
        reexec(exe, version)?;
    }
    Ok(code)
}

/// A version that is installed but not active asks its own daemon's
/// UpdateServiceInternal (`versions/<v>/internal.sock`) to run its
/// lifecycle step, and prints what it printed. `None` when this binary is
/// not such a version or no daemon of its own answers.
#[cfg(unix)]
fn wake_through_internal(root: &Path) -> Option<i32> {
    use upkeep_client::ipc::{self, CallError, InternalRequest};
    let exe = std::env::current_exe().ok()?;
    let (installed, own) = upkeep_client::lifecycle::own_version(Some(&exe));
    if installed.is_none_or(|i| i.root != root) {
        return None;
    }
    let prefs = upkeep_core::state::Prefs::load(&root.join(upkeep_core::state::PREFS_FILE)).ok()?;
    if prefs.active_version.as_ref() == Some(&own) {
        return None;
    }
    let socket = lifecycle::internal_socket_path(root, &own);
    if !socket.exists() {
        return None;
    }
    match ipc::run(
        &socket,
        &InternalRequest::Run {},
        &mut upkeep_client::NullObserver,
    ) {
        Ok(reply) => {
            let _ = std::io::stdout().write_all(reply.stdout.as_bytes());
            let _ = std::io::stderr().write_all(reply.stderr.as_bytes());
            Some(reply.code)
        }
        Err(CallError::NoDaemon(e)) => {
            tracing::debug!(socket = %socket.display(), error = %e, "no daemon of this version answers");
            None
        }
        Err(e) => {
            eprintln!(
                "upkeep: warning: the internal service of {own} did not run the step ({e}); going on without it"
            );
            None
        }
    }
}

/// Asks the daemon behind `<root>/ipc.sock` to run the wake and prints
/// what it printed. `None` when no daemon answers (or the exchange fails
/// before the wake ran): the caller wakes in-process.
#[cfg(unix)]
fn wake_through_daemon(root: &Path, now: bool, json: bool) -> Option<i32> {
    use upkeep_client::ipc;
    let link = lifecycle::ipc_link_path(root);
    let pong = match ipc::ping(&link) {
        Ok(pong) => pong,
        Err(e) => {
            tracing::debug!(socket = %link.display(), error = %e, "no daemon answers; waking in-process");
            return None;
        }
    };
    tracing::debug!(version = %pong.version, pid = pong.pid, "waking through the daemon");
    match ipc::wake(&link, now, json) {
        Ok(reply) => {
            let _ = std::io::stdout().write_all(reply.stdout.as_bytes());
            let _ = std::io::stderr().write_all(reply.stderr.as_bytes());
            Some(reply.code)
        }
        Err(ipc::CallError::NoDaemon(e)) => {
            // It went away since the ping (it noticed it is no longer active).
            tracing::debug!(error = %e, "the daemon is gone; waking in-process");
            None
        }
        Err(e) => {
            eprintln!(
                "upkeep: warning: the daemon {} (pid {}) did not run the wake ({e}); waking in-process",
                pong.version, pong.pid
            );
            None
        }
    }
}

/// Runs `upkeep status`: through the daemon when one answers.
pub fn status(args: StatusArgs) -> Result<ExitCode> {
    if let Some(code) = crate::remote::through_daemon(
        &args.state,
        args.in_process,
        &upkeep_client::ipc::Request::Status { json: args.json },
    )? {
        return Ok(code);
    }
    let client = args.state.client()?;
    Ok(crate::ops::status(&client, args.json)?.print())
}

/// Runs `upkeep uninstall`.
pub fn uninstall(args: UninstallArgs) -> Result<ExitCode> {
    let request = upkeep_client::ipc::Request::Uninstall {};
    if let Some(code) = crate::remote::through_daemon(&args.state, args.in_process, &request)? {
        return Ok(code);
    }
    let client = args.state.client()?;
    Ok(crate::ops::uninstall(&client, &mut Terminal::new())?.print())
}

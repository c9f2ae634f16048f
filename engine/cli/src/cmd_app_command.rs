//! `upkeep app-command`: run a command an app registered (see
//! `docs/installing.md`, App commands).

use anyhow::Result;
use clap::Args;
use upkeep_client::ipc::Request;

use crate::ExitCode;
use crate::ops;
use crate::remote::through_daemon;
use crate::render::Terminal;
use crate::state::StateArgs;

/// `upkeep app-command`.
///
/// Runs the command NAME that APP registered (`register --command`), with
/// PARAMETERS in its %1..%9. Only a registered command runs; no shell is
/// involved: each parameter goes into the one argument its placeholder is
/// in, so it can neither add arguments nor change the program. Parameters
/// with control characters or %, or that would be an option of their own
/// (a whole argument starting with -), are refused and nothing runs. The
/// command runs in the app's current version directory with a plain
/// environment; its output is printed, and its exit code is reported to
/// the update server (event type 41). Exits 0 when the command exited 0,
/// else 1.
#[derive(Debug, Args)]
pub struct AppCommandArgs {
    /// The registered app.
    #[arg(value_name = "APP")]
    app: String,

    /// The command's name.
    #[arg(value_name = "NAME")]
    name: String,

    /// Its parameters, for %1..%9 in order (after `--` when one starts
    /// with -).
    #[arg(value_name = "PARAMETERS")]
    parameters: Vec<String>,

    /// Run here, not through the daemon that serves the state root.
    #[arg(long)]
    in_process: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// Runs `upkeep app-command`: through the daemon when one answers.
pub fn run(args: AppCommandArgs) -> Result<ExitCode> {
    let request = Request::AppCommand {
        app: args.app.clone(),
        name: args.name.clone(),
        parameters: args.parameters.clone(),
    };
    if let Some(code) = through_daemon(&args.state, args.in_process, &request)? {
        return Ok(code);
    }
    let client = args.state.client()?;
    let rendered = ops::app_command(
        &client,
        &args.app,
        &args.name,
        &args.parameters,
        &mut Terminal::new(),
    )?;
    Ok(rendered.print())
}

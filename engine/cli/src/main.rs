//! `upkeep`: the update engine's command line.

use clap::{Parser, Subcommand};

mod cmd_omaha;
mod cmd_plugin;
mod cmd_repo;
mod cmd_tuf;
mod logging;

/// upkeep — a plugin-extensible software update engine.
///
/// upkeep keeps software up to date over the Omaha protocol, verifies every
/// release against signed metadata, and runs vendor customisations
/// (qualification, existence checks, installers, telemetry) as sandboxed
/// WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "upkeep", version, about, long_about, propagate_version = true)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides this.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect and try out plugins (for plugin authors).
    Plugin(cmd_plugin::PluginArgs),
    /// Omaha protocol tools: decode responses, print requests (for server operators).
    Omaha(cmd_omaha::OmahaArgs),
    /// TUF client: init, refresh, download (the tuf-conformance client contract).
    Tuf(cmd_tuf::TufArgs),
    /// Publish and serve update repositories (for vendors).
    Repo(cmd_repo::RepoArgs),
}

/// How a command ended, as the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    Ok = 0,
    /// The operation failed (error printed on stderr).
    Failed = 1,
    /// The operation ran and the answer was negative (a plugin said fail, absent or error).
    Negative = 3,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let result = match cli.command {
        Command::Plugin(args) => cmd_plugin::run(args),
        Command::Omaha(args) => cmd_omaha::run(args).map(|()| ExitCode::Ok),
        Command::Tuf(args) => cmd_tuf::run(args).map(|()| ExitCode::Ok),
        Command::Repo(args) => cmd_repo::run(args).map(|()| ExitCode::Ok),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("upkeep: error: {e:#}");
            std::process::ExitCode::from(ExitCode::Failed as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}

//! `upkeep`: the update engine's command line.

use anyhow::Result;
use clap::{Parser, Subcommand};

mod cmd_tuf;
mod logging;

/// upkeep — a plugin-extensible software update engine.
#[derive(Debug, Parser)]
#[command(name = "upkeep", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides this.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// TUF client: init, refresh, download (tuf-conformance contract).
    Tuf(cmd_tuf::TufArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    match cli.command {
        Command::Tuf(args) => cmd_tuf::run(args),
    }
}

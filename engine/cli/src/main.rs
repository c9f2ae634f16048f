//! `upkeep`: the update engine's command line.

use clap::{Parser, Subcommand};

mod cmd_app_command;
mod cmd_client;
mod cmd_daemon;
mod cmd_demo;
mod cmd_install;
mod cmd_lifecycle;
mod cmd_omaha;
mod cmd_plugin;
mod cmd_policy;
mod cmd_repo;
mod cmd_repo_add;
mod cmd_repo_offline;
mod cmd_repo_show;
mod cmd_repo_stats;
mod cmd_rollout;
mod cmd_tag;
mod cmd_tuf;
mod exit;
mod logging;
mod ops;
mod remote;
mod render;
mod state;

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
    /// Run the whole loop on loopback: publish, serve, install, update, report.
    Demo(cmd_demo::DemoArgs),
    /// Inspect and try out plugins (for plugin authors).
    Plugin(cmd_plugin::PluginArgs),
    /// Omaha protocol tools: decode responses, print requests (for server operators).
    Omaha(cmd_omaha::OmahaArgs),
    /// TUF client: init, refresh, download (the tuf-conformance client contract).
    Tuf(cmd_tuf::TufArgs),
    /// Publish and serve update repositories (for vendors).
    Repo(cmd_repo::RepoArgs),
    /// Register an installed (or to-be-installed) app with this client: id, version, install dir, plugins.
    Register(cmd_client::RegisterArgs),
    /// Install an app that is not here yet: register it and install its newest release in one step, from the
    /// update server or an offline folder, as --app or an installer tag says.
    Install(cmd_install::InstallArgs),
    /// Check the update server for every registered app (or one), then download, verify and install updates.
    ///
    /// Exit status 0 when every app is up to date or was updated, 1 otherwise.
    Update(cmd_client::UpdateArgs),
    /// Run a command a registered app offers (`register --command`), with parameters for its %1..%9.
    #[command(name = "app-command")]
    AppCmd(cmd_app_command::AppCommandArgs),
    /// Switch a registered app back to its previous version (kept since its last update).
    Rollback(cmd_client::RollbackArgs),
    /// Uninstall a registered app: its installer plugin's uninstall operation, then it is forgotten
    /// (an uninstall event reports it).
    Remove(cmd_client::RemoveArgs),
    /// Install this binary as an updater version side by side in the state root, then qualify and activate it.
    Setup(cmd_lifecycle::SetupArgs),
    /// The periodic task (run by the service timer): finish interrupted work, qualify and activate a newer
    /// updater version or retire an older one, and check for updates once the interval has passed.
    Wake(cmd_lifecycle::WakeArgs),
    /// Show the state root: updater versions and their states, apps, the lock, anything in flight.
    Status(cmd_lifecycle::StatusArgs),
    /// Show the enterprise policy in force: every setting, for every app, and where each value comes from
    /// (the policy file, the configuration, the registration, or the default).
    ///
    /// Exit status 1 when the policy file is invalid (it is then ignored as a whole).
    Policy(cmd_policy::PolicyArgs),
    /// Remove upkeep from the state root (service, versions, state), leaving only its log. Apps stay installed.
    Uninstall(cmd_lifecycle::UninstallArgs),
    /// Read and write the installer tag of a tagged copy of upkeep (what it installs).
    Tag(cmd_tag::TagArgs),
    /// Serve the active version's IPC socket (versions/<v>/ipc.sock): `wake` asks it to run the periodic
    /// task. Runs until this version is no longer active. Unix only.
    Daemon(cmd_daemon::DaemonArgs),
}

/// How a command ended, as the process exit status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExitCode {
    /// Success.
    #[default]
    Ok = 0,
    /// The operation failed (error printed on stderr).
    Failed = 1,
    /// The operation ran and the answer was negative (a plugin said fail, absent or error).
    Negative = 3,
}

/// mimalloc rather than the system allocator: the reference server's
/// requests allocate many small strings and maps, and glibc's malloc and
/// free were a tenth of its CPU (docs/adr/0014-mimalloc.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    exit::quiet_on_closed_stdout();
    let cli = Cli::parse();
    logging::init(cli.verbose);
    if let Some(version) = std::env::var_os("UPKEEP_RESTARTED_AS") {
        eprintln!(
            "upkeep: running {} after replacing itself",
            version.to_string_lossy()
        );
    }
    let result = match cli.command {
        Command::Demo(args) => cmd_demo::run(args),
        Command::Plugin(args) => cmd_plugin::run(args),
        Command::Omaha(args) => cmd_omaha::run(args).map(|()| ExitCode::Ok),
        Command::Tuf(args) => cmd_tuf::run(args).map(|()| ExitCode::Ok),
        Command::Repo(args) => cmd_repo::run(args).map(|()| ExitCode::Ok),
        Command::Register(args) => cmd_client::register(args),
        Command::Install(args) => cmd_install::run(args),
        Command::Update(args) => cmd_client::update(args),
        Command::AppCmd(args) => cmd_app_command::run(args),
        Command::Rollback(args) => cmd_client::rollback(args),
        Command::Remove(args) => cmd_client::remove(args),
        Command::Setup(args) => cmd_lifecycle::setup(args),
        Command::Wake(args) => cmd_lifecycle::wake(args),
        Command::Status(args) => cmd_lifecycle::status(args),
        Command::Policy(args) => cmd_policy::run(args),
        Command::Uninstall(args) => cmd_lifecycle::uninstall(args),
        Command::Daemon(args) => cmd_daemon::run(args),
        Command::Tag(args) => cmd_tag::run(args).map(|()| ExitCode::Ok),
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) if exit::closed_output(&e) => std::process::ExitCode::from(141),
        Err(e) => {
            eprintln!("upkeep: error: {}", exit::error_text(&e));
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

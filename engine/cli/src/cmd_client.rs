//! `upkeep register`, `upkeep update`, `upkeep rollback` and `upkeep
//! remove`: the machine side of the update path, over `upkeep-client`.
//! See `docs/client.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use upkeep_client::Registration;
use upkeep_client::ipc::Request;
use upkeep_core::version::Version;

use crate::ExitCode;
use crate::ops;
use crate::remote::through_daemon;
use crate::render::Terminal;
use crate::state::StateArgs;

/// `upkeep register`.
#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct RegisterArgs {
    /// The app id (stored lower-case; Omaha ids compare case-insensitively).
    #[arg(long = "app", value_name = "ID")]
    app: String,

    /// The installed version; 0 when the app is not installed yet (the next
    /// `update` then installs the newest release).
    #[arg(long = "version", id = "app_version", value_name = "VERSION")]
    version: String,

    #[command(flatten)]
    how: AppArgs,

    /// Run here, not through the daemon that serves the state root.
    #[arg(long)]
    in_process: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// How an app is installed and checked: what `register` and `install`
/// both take.
#[derive(Debug, Clone, Args)]
pub(crate) struct AppArgs {
    /// The app's install directory (handed read-write to the installer).
    #[arg(long, value_name = "DIR")]
    pub(crate) install_dir: PathBuf,

    /// The installer plugin (.wasm, installer world).
    #[arg(long, value_name = "PLUGIN")]
    pub(crate) installer: PathBuf,

    /// An existence-checker plugin (.wasm, existence-checker world).
    #[arg(long, value_name = "PLUGIN")]
    existence: Option<PathBuf>,

    /// The marker path the existence checker looks for, relative to the install directory.
    #[arg(long, value_name = "PATH", requires = "existence")]
    marker: Option<String>,

    /// The update channel (sent as Omaha `ap`).
    #[arg(long, value_name = "NAME")]
    pub(crate) channel: Option<String>,

    /// The brand code, sent as Omaha `brand` with every update check.
    #[arg(long, value_name = "CODE")]
    pub(crate) brand: Option<String>,

    /// The app's language, sent as Omaha `lang` with every update check.
    #[arg(long, value_name = "LANG")]
    pub(crate) lang: Option<String>,

    /// An install data index: when the app is installed (registered at
    /// version 0), the update check asks the server for the install data
    /// under this index and hands its text to the installer plugin as its
    /// installer data.
    #[arg(long, value_name = "INDEX")]
    pub(crate) install_data_index: Option<String>,

    /// A post-install check (.wasm, qualifier world): run on every freshly
    /// installed version (mounted read-only at /app) before `current`
    /// switches to it; a failing check discards the version.
    #[arg(long, value_name = "PLUGIN")]
    post_install_check: Option<PathBuf>,

    /// A setting handed to the app's existence checker and post-install
    /// check (repeat for more).
    #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,

    /// A command the app offers (repeat for more), run by `upkeep
    /// app-command`: NAME=PROGRAM ARGS..., the program an absolute path,
    /// the arguments quoted as Omaha quotes them, with %1..%9 where a
    /// caller's parameters go (%% for a %). E.g.
    /// --command 'repair=/opt/app/bin/repair --level=%1'.
    #[arg(long = "command", value_name = "NAME=COMMAND_LINE", value_parser = parse_setting)]
    commands: Vec<(String, String)>,

    /// A health check (.wasm, qualifier world) run on every new version
    /// once `current` points at it (the live version mounted read-only at
    /// /app): a failure, a time-out or a crash before it finished switches
    /// the app back to the version before, and the failed version is not
    /// installed again until a newer one is offered.
    #[arg(long, value_name = "PLUGIN", conflicts_with = "health_check_command")]
    health_check: Option<PathBuf>,

    /// Instead of a plugin: one of the --command names as the health
    /// check, run without parameters in the live version's directory;
    /// exit status 0 means healthy.
    #[arg(long, value_name = "NAME")]
    health_check_command: Option<String>,

    /// How long the health check may take [default: 60; at most 3600].
    #[arg(long = "health-timeout", value_name = "SECONDS")]
    health_timeout: Option<u64>,
}

impl AppArgs {
    /// The registration of `app` at `version` these arguments describe,
    /// its paths made absolute.
    pub(crate) fn registration(self, app: String, version: Version) -> Result<Registration> {
        let absolute = |p: PathBuf| {
            std::path::absolute(&p).with_context(|| format!("cannot resolve {}", p.display()))
        };
        let mut registration = Registration::new(
            app,
            version,
            absolute(self.install_dir)?,
            absolute(self.installer)?,
        );
        registration.existence = self.existence.map(absolute).transpose()?;
        registration.marker = self.marker;
        registration.channel = self.channel;
        registration.brand = self.brand;
        registration.lang = self.lang;
        registration.install_data_index = self.install_data_index;
        registration.post_install_check = self.post_install_check.map(absolute).transpose()?;
        registration.settings = self.settings.into_iter().collect::<BTreeMap<_, _>>();
        registration.commands = self.commands.into_iter().collect::<BTreeMap<_, _>>();
        registration.health_check = self.health_check.map(absolute).transpose()?;
        registration.health_check_command = self.health_check_command;
        registration.health_timeout_seconds = self.health_timeout;
        Ok(registration)
    }
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// `upkeep update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Only this registered app (default: every registered app).
    #[arg(long = "app", value_name = "ID")]
    app: Option<String>,

    /// Print a machine-readable JSON summary on stdout.
    #[arg(long)]
    json: bool,

    /// Run here, not through the daemon that serves the state root.
    #[arg(long)]
    in_process: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// `upkeep rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The registered app to switch back to its previous version.
    #[arg(long = "app", value_name = "ID")]
    app: String,

    /// Run here, not through the daemon that serves the state root.
    #[arg(long)]
    in_process: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// `upkeep remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The registered app to uninstall.
    #[arg(long = "app", value_name = "ID")]
    app: String,

    /// Run here, not through the daemon that serves the state root.
    #[arg(long)]
    in_process: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// Runs `upkeep register`: through the daemon when one answers.
pub fn register(args: RegisterArgs) -> Result<ExitCode> {
    let version: Version = args
        .version
        .parse()
        .with_context(|| format!("--version {:?} is not a version", args.version))?;
    let registration = args.how.registration(args.app, version)?;
    let request = Request::Register {
        registration: Box::new(registration.clone()),
    };
    if let Some(code) = through_daemon(&args.state, args.in_process, &request)? {
        return Ok(code);
    }
    let client = args.state.client()?;
    if !client.config_path().exists() {
        eprintln!(
            "upkeep: note: no client configuration at {} yet; `upkeep update` needs one",
            client.config_path().display()
        );
    }
    Ok(ops::register(&client, registration, &mut Terminal::new())?.print())
}

/// Runs `upkeep update`: through the daemon when one answers.
pub fn update(args: UpdateArgs) -> Result<ExitCode> {
    let request = Request::Update {
        app: args.app.clone(),
        json: args.json,
    };
    if let Some(code) = through_daemon(&args.state, args.in_process, &request)? {
        return Ok(code);
    }
    let client = args.state.client()?;
    let (rendered, replaced) = ops::update(&client, args.app, args.json, &mut Terminal::new())?;
    let code = rendered.print();
    if let Some((exe, version)) = &replaced {
        crate::cmd_lifecycle::reexec(exe, version)?;
    }
    Ok(code)
}

/// Runs `upkeep rollback`: through the daemon when one answers.
pub fn rollback(args: RollbackArgs) -> Result<ExitCode> {
    let request = Request::Rollback {
        app: args.app.clone(),
    };
    if let Some(code) = through_daemon(&args.state, args.in_process, &request)? {
        return Ok(code);
    }
    let client = args.state.client()?;
    Ok(ops::rollback(&client, &args.app, &mut Terminal::new())?.print())
}

/// Runs `upkeep remove`: through the daemon when one answers.
pub fn remove(args: RemoveArgs) -> Result<ExitCode> {
    if args.app.trim().is_empty() {
        bail!("--app needs an app id");
    }
    let request = Request::Remove {
        app: args.app.clone(),
    };
    if let Some(code) = through_daemon(&args.state, args.in_process, &request)? {
        return Ok(code);
    }
    let client = args.state.client()?;
    Ok(ops::remove(&client, &args.app, &mut Terminal::new())?.print())
}

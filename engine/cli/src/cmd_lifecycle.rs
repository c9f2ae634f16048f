//! `upkeep setup`, `upkeep wake`, `upkeep status` and `upkeep uninstall`:
//! the updater's own lifecycle (see `docs/lifecycle.md`).
//!
//! Every command that takes the state lock first calls [`recover`]: an
//! uninstall, an activation (the `swapping` bit) or an app switch a dead
//! process left half done is finished or undone before anything else.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;
use upkeep_core::appdir;
use upkeep_core::crash;
use upkeep_core::lifecycle::{self, Installed, Recovery, Role};
use upkeep_core::state::{AppRecord, PREFS_FILE, PluginRef, Prefs, Qualification, StateLock};
use upkeep_core::version::Version;
use upkeep_plugin_host::bindings::qualifier;
use upkeep_plugin_host::{CallOptions, QualifyInput, World};

use crate::ExitCode;
use crate::cmd_client::{
    self, Config, PassOptions, StateArgs, UpdaterMode, check_and_apply, config_path, lock_state,
    print_pass, state_root, unix_now,
};
use crate::service;

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

/// Set for the `wake` of each version a command starts: it runs in that
/// process, not through the daemon (which may be busy serving the very wake
/// that started it). An environment variable rather than `--in-process`, so
/// that releases older than the flag accept it too.
pub(crate) const WAKE_IN_PROCESS_ENV: &str = "UPKEEP_WAKE_IN_PROCESS";

/// `upkeep status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// `upkeep uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    state: StateArgs,
}

/// The version this process is: the one it is installed as, else the
/// version it was built as.
pub(crate) fn own_version() -> (Option<Installed>, Version) {
    let installed = std::env::current_exe()
        .ok()
        .and_then(|exe| lifecycle::installed_at(&exe));
    let version = installed.as_ref().map_or_else(
        || env!("CARGO_PKG_VERSION").parse().unwrap_or_default(),
        |i| i.version.clone(),
    );
    (installed, version)
}

/// Appends a line to the state root's log (the one file an uninstall
/// leaves). Failures are only traced: the log is for people.
pub(crate) fn log(root: &Path, line: &str) {
    tracing::info!("{line}");
    let path = root.join(lifecycle::LOG_FILE);
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{} [{}] {line}", unix_now(), std::process::id()));
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the log");
    }
}

/// What [`recover`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovered {
    /// The state is settled; go on.
    Ready,
    /// An interrupted uninstall was finished: the state root is empty.
    Uninstalled,
}

/// Takes the lock, loads the prefs and settles what a dead process left
/// ([`recover`]). After a finished uninstall no lock is held (its file went
/// with the rest; a caller that goes on takes it afresh) and the prefs are
/// empty.
pub(crate) fn lock_and_recover(
    root: &Path,
    config: Option<&Config>,
) -> Result<(Option<StateLock>, Prefs, Recovered)> {
    let lock = lock_state(root)?;
    let mut prefs = Prefs::load(&root.join(PREFS_FILE))?;
    let recovered = recover(root, config, &mut prefs)?;
    if recovered == Recovered::Uninstalled {
        drop(lock);
        return Ok((None, Prefs::default(), recovered));
    }
    Ok((Some(lock), prefs, recovered))
}

/// [`lock_and_recover`] for a command that goes on after a finished
/// uninstall: the lock is always held.
pub(crate) fn lock_and_recover_held(
    root: &Path,
    config: Option<&Config>,
) -> Result<(StateLock, Prefs)> {
    match lock_and_recover(root, config)? {
        (Some(lock), prefs, _) => Ok((lock, prefs)),
        (None, prefs, _) => Ok((lock_state(root)?, prefs)),
    }
}

/// Finishes or undoes what a dead process left: an uninstall in progress,
/// an activation (the `swapping` bit), a journalled app switch. The caller
/// holds the lock. Without the configuration (it names the service shim)
/// an interrupted uninstall or activation is not touched: that is an
/// error asking for `upkeep uninstall` or `upkeep wake`.
pub(crate) fn recover(
    root: &Path,
    config: Option<&Config>,
    prefs: &mut Prefs,
) -> Result<Recovered> {
    if prefs.uninstalling {
        if config.is_none() {
            bail!(
                "upkeep is being uninstalled from {}; run `upkeep uninstall` to finish",
                root.display()
            );
        }
        eprintln!("upkeep: finishing the uninstall an earlier process began");
        uninstall_locked(root, config, prefs)?;
        return Ok(Recovered::Uninstalled);
    }
    if prefs.swapping.is_some() && config.is_none() {
        bail!(
            "an activation in {} was interrupted and needs the configuration to finish; run `upkeep wake`",
            root.display()
        );
    }
    if let Some(swapping) = prefs.swapping.clone() {
        let from = swapping
            .from
            .as_ref()
            .map_or("none".to_owned(), ToString::to_string);
        eprintln!(
            "upkeep: resuming the activation of {} (was {from}) an earlier process left",
            swapping.to
        );
        let shim = service::Service::from_config(root, config)?;
        lifecycle::resume_activation(root, prefs, &mut |v| shim.swap(root, v))
            .context("cannot resume the interrupted activation")?;
        log(
            root,
            &format!("resumed the activation of {}: active is {}", swapping.to, {
                prefs
                    .active_version
                    .as_ref()
                    .map_or("none".to_owned(), ToString::to_string)
            }),
        );
    }
    if let Some(recovery) = lifecycle::recover_switch(&root.join(PREFS_FILE), prefs, unix_now())? {
        let (p, how) = match recovery {
            Recovery::Completed(p) => (p, "completed"),
            Recovery::RolledBack(p) => (p, "undone"),
        };
        eprintln!(
            "upkeep: {}: the switch from {} to {} an earlier process left was {how}",
            p.app, p.from, p.to
        );
        log(
            root,
            &format!("{}: {how} the switch {} -> {}", p.app, p.from, p.to),
        );
    }
    if prefs.pending.is_none() {
        let exe = std::env::current_exe().ok();
        lifecycle::sweep_leftovers(root, exe.as_deref().and_then(Path::parent));
    }
    Ok(Recovered::Ready)
}

/// What [`step`] did with this updater version.
enum Stepped {
    /// It is the active version (now or already).
    Active {
        /// Older versions to start so they deactivate themselves.
        older: Vec<Version>,
    },
    /// It did not pass qualification.
    Unqualified(String),
    /// A newer version is active; this one was removed.
    Deactivated(Version),
}

/// Moves installed updater version `own` through its lifecycle: an outdated
/// version removes itself, a candidate qualifies (unless nothing is active
/// yet) and activates. The caller holds the lock.
fn step(root: &Path, config: &Config, prefs: &mut Prefs, own: &Version) -> Result<Stepped> {
    match lifecycle::role(root, prefs, own)? {
        Role::Active => Ok(Stepped::Active {
            older: older_than(root, own),
        }),
        Role::Outdated { active } => {
            lifecycle::deactivate(root, prefs, own)?;
            log(
                root,
                &format!("{own}: {active} is active; uninstalled itself"),
            );
            Ok(Stepped::Deactivated(active))
        }
        Role::Candidate { qualified } => {
            if !qualified {
                if prefs.active_version.is_none() {
                    record_qualification(
                        root,
                        own,
                        true,
                        "no version was active: qualification skipped".to_owned(),
                    )?;
                } else {
                    eprintln!("upkeep {own}: qualifying");
                    if let Err(why) = qualify(root, config, own)? {
                        log(root, &format!("{own}: not qualified: {why}"));
                        return Ok(Stepped::Unqualified(why));
                    }
                }
            }
            let from = prefs.active_version.clone();
            let shim = service::Service::from_config(root, Some(config))?;
            lifecycle::activate(root, prefs, own, unix_now(), &mut |v| shim.swap(root, v))
                .with_context(|| format!("cannot activate {own}"))?;
            let was = from.as_ref().map_or("none".to_owned(), ToString::to_string);
            log(root, &format!("activated {own} (was {was})"));
            eprintln!("upkeep {own}: activated (was {was})");
            Ok(Stepped::Active {
                older: older_than(root, own),
            })
        }
    }
}

/// The updater versions installed in `root` older than `own`.
fn older_than(root: &Path, own: &Version) -> Vec<Version> {
    lifecycle::installed_versions(root)
        .into_iter()
        .filter(|v| v < own)
        .collect()
}

/// Writes version `own`'s qualification result into its local prefs.
fn record_qualification(root: &Path, own: &Version, qualified: bool, detail: String) -> Result<()> {
    let path = lifecycle::local_prefs_path(root, own);
    let mut local = Prefs::load(&path)?;
    let previous = local.qualification.take();
    local.qualification = Some(Qualification {
        qualified,
        attempts: previous.map_or(0, |q| q.attempts) + 1,
        last_attempt: Some(unix_now()),
        detail: Some(detail),
    });
    local.save(&path)?;
    crash::point("qualify.recorded");
    Ok(())
}

/// Qualifies updater version `own`: registers the qualification app in its
/// local prefs, updates it from the server through the whole verified path
/// (into `versions/<own>/qualification/<app>/`), then runs the vendor's
/// qualifier plugin on it. `Ok(Err(why))` when it did not pass.
fn qualify(root: &Path, config: &Config, own: &Version) -> Result<Result<(), String>> {
    let Some(q) = &config.qualification else {
        record_qualification(
            root,
            own,
            true,
            "no [qualification] is configured: qualified by starting".to_owned(),
        )?;
        return Ok(Ok(()));
    };
    let local_path = lifecycle::local_prefs_path(root, own);
    let mut local = Prefs::load(&local_path)?;
    lifecycle::recover_switch(&local_path, &mut local, unix_now())?;
    let host = cmd_client::plugin_host(root)?;
    let installer = cmd_client::load_plugin(&host, &q.installer, World::Installer)?;
    let installer = PluginRef {
        path: q.installer.clone(),
        sha256: installer.content_hash().to_owned(),
    };
    let install_dir = appdir::version_dir(root, own)
        .join("qualification")
        .join(&q.app);
    let existing = local.apps.get(&q.app).cloned();
    let record = AppRecord {
        installer: Some(installer),
        ..existing.unwrap_or_else(|| cmd_client::new_record(Version::default(), install_dir))
    };
    local.apps.insert(q.app.clone(), record);
    local.save(&local_path)?;
    crash::point("qualify.registered");
    let pass = check_and_apply(
        root,
        config,
        &local_path,
        &mut local,
        vec![q.app.clone()],
        PassOptions::default(),
    );
    let why = match pass {
        Err(e) => Some(format!("{e:#}")),
        Ok(pass) if pass.failed() => Some(pass.failure_text()),
        Ok(_) => None,
    };
    if let Some(why) = why {
        let why = format!("the qualification app {} did not update: {why}", q.app);
        record_qualification(root, own, false, why.clone())?;
        return Ok(Err(why));
    }
    crash::point("qualify.app-installed");
    let Some(app) = local
        .apps
        .get(&q.app)
        .filter(|a| a.version != Version::default())
    else {
        let why = format!(
            "the server offered no version of the qualification app {}",
            q.app
        );
        record_qualification(root, own, false, why.clone())?;
        return Ok(Err(why));
    };
    let plugin = cmd_client::load_plugin(&host, &q.qualifier, World::Qualifier)?;
    let input = QualifyInput {
        updater_version: own.to_string(),
        app_id: q.app.clone(),
        app_version: app.version.to_string(),
        app_dir: appdir::version_dir(&app.install_dir, &app.version),
        settings: Vec::new(),
    };
    let verdict = host
        .qualify(&plugin, &input, CallOptions::default())
        .map(|r| r.value);
    let (qualified, detail) = match verdict {
        Ok(qualifier::Verdict::Pass) => (
            true,
            format!(
                "{} {} passed qualifier {}",
                q.app,
                app.version,
                plugin.name()
            ),
        ),
        Ok(qualifier::Verdict::Fail(why)) => {
            (false, format!("qualifier {} failed: {why}", plugin.name()))
        }
        Err(e) => (false, format!("qualifier {} failed: {e}", plugin.name())),
    };
    record_qualification(root, own, qualified, detail.clone())?;
    eprintln!("upkeep {own}: {detail}");
    Ok(if qualified { Ok(()) } else { Err(detail) })
}

/// Starts `upkeep wake` of each of `versions` (older updater versions that
/// deactivate themselves, or a freshly staged one that qualifies and
/// activates), waiting for each. Call without the lock held.
fn start_versions(root: &Path, state: &StateArgs, versions: &[Version]) {
    for v in versions {
        let binary = lifecycle::binary_path(root, v);
        let mut cmd = Command::new(&binary);
        cmd.arg("wake")
            .arg("--root")
            .arg(root)
            .env(WAKE_IN_PROCESS_ENV, "1")
            .env_remove("UPKEEP_RESTARTED_AS");
        if let Some(config) = &state.config {
            cmd.arg("--config").arg(config);
        }
        if let Some(tag) = crash::child_tag() {
            cmd.env(crash::CRASH_PROC_ENV, tag);
        }
        match cmd.status() {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("upkeep: warning: {} wake ended with {s}", binary.display()),
            Err(e) => eprintln!("upkeep: warning: cannot start {}: {e}", binary.display()),
        }
    }
}

/// What follows a check-and-apply pass once the lock is released: a staged
/// updater version starts to qualify and activate; a replaced single
/// binary re-executes itself.
pub(crate) fn after_pass(root: &Path, state: &StateArgs, pass: &cmd_client::Pass) -> Result<()> {
    start_versions(root, state, &pass.staged);
    if let Some((exe, version)) = &pass.replaced_binary {
        reexec(exe, version)?;
    }
    Ok(())
}

/// Replaces this process with the new binary at `exe`, same arguments.
#[cfg(unix)]
fn reexec(exe: &Path, version: &Version) -> Result<()> {
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
fn reexec(exe: &Path, version: &Version) -> Result<()> {
    eprintln!(
        "upkeep: {version} is in place at {}; it runs from the next start",
        exe.display()
    );
    Ok(())
}

fn load_config(state: &StateArgs, root: &Path) -> Result<Config> {
    Config::load(&config_path(state, root))
}

// ------------------------------------------------------------- setup ----

/// Runs `upkeep setup`: installs the running binary as an updater version
/// side by side (`<root>/versions/<v>/upkeep`), registers upkeep itself as
/// an app when `[updater]` is configured, then qualifies and activates it
/// (qualification is skipped when no version is active yet).
pub fn setup(args: SetupArgs) -> Result<ExitCode> {
    let root = state_root(&args.state)?;
    let config = load_config(&args.state, &root)?;
    let (_, own) = own_version();
    let exe = std::env::current_exe().context("cannot find the running binary")?;
    let (lock, mut prefs) = lock_and_recover_held(&root, Some(&config))?;
    let prefs_path = root.join(PREFS_FILE);
    let mode = config.updater.as_ref().map(|u| u.mode).unwrap_or_default();
    if let Some(updater) = &config.updater
        && !prefs.apps.contains_key(&updater.app)
    {
        let install_dir = match mode {
            UpdaterMode::SideBySide => root.clone(),
            UpdaterMode::SingleBinary => exe.parent().map(Path::to_path_buf).unwrap_or_default(),
        };
        let version = match mode {
            UpdaterMode::SideBySide => prefs.active_version.clone().unwrap_or_default(),
            UpdaterMode::SingleBinary => own.clone(),
        };
        let mut record = cmd_client::new_record(version, install_dir);
        record.updater = true;
        prefs.apps.insert(updater.app.clone(), record);
        prefs.save(&prefs_path)?;
        println!("registered upkeep itself as {}", updater.app);
    }
    if mode == UpdaterMode::SingleBinary {
        // The binary is replaced in place, so its path never changes: the
        // service is registered once, here.
        service::Service::from_config(&root, Some(&config))?
            .register(&root, &exe)
            .map_err(|e| anyhow::anyhow!("cannot register the service: {e}"))?;
        println!(
            "upkeep {own} runs as a single binary from {}",
            exe.display()
        );
        return Ok(ExitCode::Ok);
    }
    let dest = lifecycle::binary_path(&root, &own);
    if exe != dest {
        std::fs::create_dir_all(appdir::version_dir(&root, &own)).with_context(|| {
            format!(
                "cannot create {}",
                appdir::version_dir(&root, &own).display()
            )
        })?;
        if prefs.active_version.as_ref() == Some(&own) && dest.is_file() {
            println!(
                "upkeep {own} is already installed and active in {}",
                root.display()
            );
            return Ok(ExitCode::Ok);
        }
        cmd_client::copy_executable(&exe, &dest)?;
        crash::point("setup.binary-copied");
        if !lifecycle::local_prefs_path(&root, &own).exists() {
            lifecycle::write_unqualified(&root, &own)?;
        }
        log(&root, &format!("installed {own} side by side"));
        println!(
            "installed upkeep {own} in {}",
            appdir::version_dir(&root, &own).display()
        );
    }
    let stepped = step(&root, &config, &mut prefs, &own)?;
    drop(lock);
    finish_step(&root, &args.state, &own, stepped)
}

/// Reports what [`step`] did and starts the older versions.
fn finish_step(
    root: &Path,
    state: &StateArgs,
    own: &Version,
    stepped: Stepped,
) -> Result<ExitCode> {
    match stepped {
        Stepped::Active { older } => {
            println!("upkeep {own} is active in {}", root.display());
            start_versions(root, state, &older);
            Ok(ExitCode::Ok)
        }
        Stepped::Unqualified(why) => {
            eprintln!(
                "upkeep: error: {own} did not qualify (it stays unqualified and retries on the next wake): {why}"
            );
            Ok(ExitCode::Failed)
        }
        Stepped::Deactivated(active) => {
            println!("upkeep {own}: {active} is active; this version uninstalled itself");
            Ok(ExitCode::Ok)
        }
    }
}

// -------------------------------------------------------------- wake ----

/// Runs `upkeep wake`: the periodic task. Finishes what a dead process
/// left, moves this updater version through its lifecycle, and (as the
/// active version) checks for updates when the interval has passed.
pub fn wake(args: WakeArgs) -> Result<ExitCode> {
    let root = state_root(&args.state)?;
    let in_process = args.in_process
        || std::env::var_os(WAKE_IN_PROCESS_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    #[cfg(unix)]
    if !in_process && let Some(code) = wake_through_daemon(&root, args.now, args.json) {
        // The daemon's child did the work and its output is printed: end
        // with its exit status, whatever it is.
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        std::process::exit(code.clamp(0, 255));
    }
    #[cfg(not(unix))]
    let _ = in_process;
    let config = load_config(&args.state, &root)?;
    let (Some(lock), mut prefs, _) = lock_and_recover(&root, Some(&config))? else {
        return Ok(ExitCode::Ok);
    };
    let prefs_path = root.join(PREFS_FILE);
    let (installed, own) = own_version();
    // Other versions to start once the lock is released: older ones retire
    // themselves, newer ones not active yet (re)try qualification.
    let mut others = Vec::new();
    if installed.as_ref().is_some_and(|i| i.root == root) {
        match step(&root, &config, &mut prefs, &own)? {
            Stepped::Active { older } => {
                others = older;
                others.extend(
                    lifecycle::installed_versions(&root)
                        .into_iter()
                        .filter(|v| *v > own),
                );
            }
            other => {
                drop(lock);
                return finish_step(&root, &args.state, &own, other);
            }
        }
    }
    if prefs.apps.is_empty() {
        println!("no app is registered; nothing to check");
        drop(lock);
        start_versions(&root, &args.state, &others);
        return Ok(ExitCode::Ok);
    }
    let now = unix_now();
    let interval = i64::try_from(config.check_interval.as_secs()).unwrap_or(i64::MAX);
    let due = prefs
        .last_check
        .is_none_or(|last| now.saturating_sub(last) >= interval || last > now);
    let checking = args.now || due;
    // Existence checks run on every wake; the update check when it is due.
    let has_checkers = prefs.apps.values().any(|r| r.existence.is_some());
    let pass = if checking || has_checkers {
        let ids = prefs.apps.keys().cloned().collect();
        let options = PassOptions {
            check: checking,
            self_uninstall: true,
        };
        Some(check_and_apply(
            &root,
            &config,
            &prefs_path,
            &mut prefs,
            ids,
            options,
        )?)
    } else {
        None
    };
    let code = match &pass {
        Some(pass) if checking || pass.removed_any() => print_pass(pass, &prefs, args.json)?,
        _ => ExitCode::Ok,
    };
    if !checking && !prefs.uninstalling {
        let next = prefs.last_check.unwrap_or(now).saturating_add(interval) - now;
        println!(
            "up to date as of the last check; next check in {} min",
            next / 60 + 1
        );
    }
    if prefs.uninstalling {
        println!("the last app is gone: uninstalling upkeep");
        uninstall_locked(&root, Some(&config), &mut prefs)?;
        return Ok(code);
    }
    drop(lock);
    if let Some(pass) = &pass {
        // A version this pass staged is started once, by `after_pass`.
        others.retain(|v| !pass.staged.contains(v));
    }
    start_versions(&root, &args.state, &others);
    if let Some(pass) = &pass {
        after_pass(&root, &args.state, pass)?;
    }
    Ok(code)
}

/// Asks the daemon behind `<root>/ipc.sock` to run the wake and prints
/// what it printed. `None` when no daemon answers (or the exchange fails
/// before the wake ran): the caller wakes in-process.
#[cfg(unix)]
fn wake_through_daemon(root: &Path, now: bool, json: bool) -> Option<i32> {
    use crate::ipc;
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

/// The `ipc` part of the status: where `<root>/ipc.sock` points and which
/// daemon, if any, answers there.
fn ipc_status(root: &Path) -> serde_json::Value {
    let link = std::fs::read_link(lifecycle::ipc_link_path(root)).ok();
    #[cfg(unix)]
    let daemon = link
        .as_ref()
        .and_then(|_| crate::ipc::ping(&lifecycle::ipc_link_path(root)).ok())
        .map(|p| json!({"version": p.version, "pid": p.pid}));
    #[cfg(not(unix))]
    let daemon: Option<serde_json::Value> = None;
    json!({"link": link, "daemon": daemon})
}

// ------------------------------------------------------------ status ----

/// Runs `upkeep status`: the scope, the updater versions and their states,
/// the registered apps, and anything in flight.
pub fn status(args: StatusArgs) -> Result<ExitCode> {
    let root = state_root(&args.state)?;
    if !root.is_dir() {
        bail!(
            "nothing is installed in {} (set up with `upkeep setup`, or register an app)",
            root.display()
        );
    }
    let prefs = Prefs::load(&root.join(PREFS_FILE))?;
    let lock = match StateLock::acquire(&root, std::time::Duration::ZERO) {
        Ok(_) => "free".to_owned(),
        Err(e) => e.to_string(),
    };
    let scope = if root == Path::new(cmd_client::SYSTEM_ROOT) {
        "system"
    } else {
        "user"
    };
    let mut versions = Vec::new();
    for v in lifecycle::installed_versions(&root) {
        let (q, unreadable) = match Prefs::load(&lifecycle::local_prefs_path(&root, &v)) {
            Ok(local) => (local.qualification, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let state = if prefs.active_version.as_ref() == Some(&v) {
            "active"
        } else if unreadable.is_some() {
            "unreadable"
        } else if q.as_ref().is_some_and(|q| q.qualified) {
            "qualified"
        } else {
            "unqualified"
        };
        versions.push(json!({
            "version": v.to_string(), "state": state,
            "qualification": unreadable.or_else(|| q.and_then(|q| q.detail)),
        }));
    }
    let apps: Vec<_> = prefs
        .apps
        .iter()
        .map(|(id, r)| {
            json!({
                "app": id, "version": r.version.to_string(), "updater": r.updater,
                "install_dir": r.install_dir, "previous_version": r.previous_version.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    let shim = load_config(&args.state, &root)
        .ok()
        .and_then(|c| service::Service::from_config(&root, Some(&c)).ok())
        .and_then(|s| s.describe());
    let out = json!({
        "root": root, "scope": scope, "lock": lock,
        "active_version": prefs.active_version.as_ref().map(ToString::to_string),
        "swapping": prefs.swapping.as_ref().map(|s| s.to.to_string()),
        "pending_switch": prefs.pending.as_ref().map(|p| json!({"app": p.app, "from": p.from.to_string(), "to": p.to.to_string()})),
        "uninstalling": prefs.uninstalling,
        "last_check": prefs.last_check,
        "versions": versions, "apps": apps, "service": shim,
        "ipc": ipc_status(&root),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::Ok);
    }
    println!("state root  {} ({scope} scope)", root.display());
    println!("lock        {lock}");
    println!(
        "active      {}",
        out["active_version"].as_str().unwrap_or("none")
    );
    if let Some(s) = &prefs.swapping {
        println!(
            "swapping    to {} (an activation is in progress or was interrupted)",
            s.to
        );
    }
    if let Some(p) = &prefs.pending {
        println!("pending     {} {} -> {}", p.app, p.from, p.to);
    }
    for v in &versions {
        println!(
            "version     {} {}{}",
            v["version"].as_str().unwrap_or_default(),
            v["state"].as_str().unwrap_or_default(),
            v["qualification"]
                .as_str()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
    }
    for (id, r) in &prefs.apps {
        println!(
            "app         {id} {}{} in {}",
            r.version,
            if r.updater { " (upkeep itself)" } else { "" },
            r.install_dir.display()
        );
    }
    if let Some(s) = out["service"].as_str() {
        println!("service     {s}");
    }
    if let Some(link) = out["ipc"]["link"].as_str() {
        let daemon = &out["ipc"]["daemon"];
        let daemon = match (daemon["version"].as_str(), daemon["pid"].as_u64()) {
            (Some(v), Some(pid)) => format!("daemon {v} answers (pid {pid})"),
            _ => "no daemon answers; wake runs in-process".to_owned(),
        };
        println!(
            "ipc         {} -> {link}: {daemon}",
            lifecycle::ipc_link_path(&root).display()
        );
    }
    Ok(ExitCode::Ok)
}

// --------------------------------------------------------- uninstall ----

/// Runs `upkeep uninstall`: removes the service registration, every
/// updater version and all state from the state root, leaving only the
/// log. Apps stay installed where they are.
pub fn uninstall(args: UninstallArgs) -> Result<ExitCode> {
    let root = state_root(&args.state)?;
    if !root.join(PREFS_FILE).exists() && !root.join(appdir::VERSIONS).exists() {
        // Only a lock file left (a command ran on an uninstalled root).
        let lock = root.join(upkeep_core::state::LOCK_FILE);
        if lock.exists() {
            std::fs::remove_file(&lock)
                .with_context(|| format!("cannot remove {}", lock.display()))?;
            println!(
                "finished uninstalling upkeep from {}; only {} is left",
                root.display(),
                lifecycle::LOG_FILE
            );
            return Ok(ExitCode::Ok);
        }
        bail!("upkeep is not installed in {}", root.display());
    }
    let config = load_config(&args.state, &root).ok();
    let _lock = lock_state(&root)?;
    let prefs_path = root.join(PREFS_FILE);
    let mut prefs = Prefs::load(&prefs_path)?;
    // Apps stay installed: a switch in flight is settled first. An
    // interrupted activation is not resumed: upkeep is going away.
    lifecycle::recover_switch(&prefs_path, &mut prefs, unix_now())?;
    uninstall_locked(&root, config.as_ref(), &mut prefs)?;
    Ok(ExitCode::Ok)
}

/// The entries of the state root an uninstall removes, in order: the
/// versions and caches first, the prefs last, so a crash part way leaves
/// prefs that say an uninstall is in progress.
const REMOVED_IN_ORDER: &[&str] = &[
    appdir::CURRENT,
    appdir::VERSIONS,
    "downloads",
    "plugin-cache",
    "tuf",
    "config.toml",
];

fn uninstall_locked(root: &Path, config: Option<&Config>, prefs: &mut Prefs) -> Result<()> {
    let prefs_path = root.join(PREFS_FILE);
    if !prefs.uninstalling {
        let mut next = prefs.clone();
        next.uninstalling = true;
        next.save(&prefs_path)?;
        *prefs = next;
        log(root, "uninstalling");
    }
    crash::point("uninstall.flagged");
    let shim = service::Service::from_config(root, config)?;
    shim.unregister()
        .map_err(|e| anyhow::anyhow!("cannot remove the service registration: {e}"))?;
    crash::point("uninstall.service-removed");
    for name in REMOVED_IN_ORDER {
        let path = root.join(name);
        let result = match std::fs::symlink_metadata(&path) {
            Err(_) => Ok(()),
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
        };
        result.with_context(|| format!("cannot remove {}", path.display()))?;
        crash::point("uninstall.removed");
    }
    let leftovers: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("cannot read {}", root.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name != lifecycle::LOG_FILE
                && name != PREFS_FILE
                && name != upkeep_core::state::LOCK_FILE
        })
        .collect();
    for path in leftovers {
        let result = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.with_context(|| format!("cannot remove {}", path.display()))?;
    }
    // The lock file goes while held (a process waiting on it notices and
    // takes a fresh one); the prefs, still saying `uninstalling`, go last.
    let lock = root.join(upkeep_core::state::LOCK_FILE);
    match std::fs::remove_file(&lock) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", lock.display())),
    }
    crash::point("uninstall.lock-removed");
    log(root, "uninstalled; only this log is left");
    std::fs::remove_file(&prefs_path)
        .with_context(|| format!("cannot remove {}", prefs_path.display()))?;
    crash::point("uninstall.prefs-removed");
    println!(
        "upkeep is uninstalled from {}; only {} is left",
        root.display(),
        lifecycle::LOG_FILE
    );
    Ok(())
}

//! `upkeep plugin …`: verbs for plugin authors — look inside a component and
//! run one call of it against local directories, without an update server.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};
use upkeep_plugin_host::bindings::{existence, installer, qualifier, types};
use upkeep_plugin_host::inspect::inspect;
use upkeep_plugin_host::state::{LogRecord, Progress, ProgressSink};
use upkeep_plugin_host::{
    CallOptions, CallReport, ExistenceInput, HostConfig, InstallInput, Plugin, PluginHost,
    QualifyInput, TelemetryInput, World,
};

use crate::ExitCode;

/// Verbs for plugin authors.
#[derive(Debug, Args)]
pub struct PluginArgs {
    #[command(subcommand)]
    command: PluginCommand,

    /// Where compiled plugins are cached [default: $XDG_CACHE_HOME/upkeep/plugins].
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile every time; read and write no cache.
    #[arg(long, global = true)]
    no_cache: bool,
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Show a component's world, API version, requested capabilities, size and content hash.
    ///
    /// The manifest is read from the TOML file beside the component
    /// (`NAME.wasm` → `NAME.toml`). Exits 1 when the manifest is missing or
    /// disagrees with the component.
    Inspect {
        /// The component (.wasm).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run one call of a plugin against directories and inputs given here, and print the result.
    ///
    /// Directories are handed to the plugin only if its manifest asks for
    /// them: --app-dir (qualifier, existence-checker; read-only at /app),
    /// --payload (installer; read-only at /payload), --install-dir
    /// (installer; read-write at /install), --data-dir (telemetry-sink;
    /// read-write at /data).
    ///
    /// Exit status: 0 when the plugin answered pass / present / success,
    /// 3 when it answered fail / absent / error, 1 when the call itself
    /// failed (the plugin could not be loaded, trapped or hit a limit).
    Run(Box<RunArgs>),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The component (.wasm); its manifest sits beside it.
    file: PathBuf,

    /// The world to call; must match the manifest (default: the manifest's).
    #[arg(long, value_name = "WORLD")]
    world: Option<WorldArg>,

    /// The app id the call concerns.
    #[arg(long, default_value = "org.example.app")]
    app_id: String,

    /// The app's version (existence-checker: registered version; installer: version being installed).
    #[arg(long, default_value = "1.0.0", value_name = "VERSION")]
    app_version: String,

    /// The app's install directory (qualifier, existence-checker).
    #[arg(long, value_name = "DIR")]
    app_dir: Option<PathBuf>,

    /// The marker path inside the app directory (existence-checker).
    #[arg(long, value_name = "PATH")]
    marker: Option<String>,

    /// The updater version under test (qualifier).
    #[arg(long, default_value = "0.1.0", value_name = "VERSION")]
    updater_version: String,

    /// A registration setting, KEY=VALUE (qualifier, existence-checker); repeatable.
    #[arg(long = "setting", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,

    /// What the installer should do.
    #[arg(long, value_enum, default_value_t = OperationArg::Install)]
    operation: OperationArg,

    /// The payload directory (installer).
    #[arg(long, value_name = "DIR")]
    payload: Option<PathBuf>,

    /// The install directory (installer).
    #[arg(long, value_name = "DIR")]
    install_dir: Option<PathBuf>,

    /// The version installed before (installer).
    #[arg(long, value_name = "VERSION")]
    from_version: Option<String>,

    /// Installer data: a string, or @FILE to read it from a file.
    #[arg(long, value_name = "DATA")]
    installer_data: Option<String>,

    /// The sink's data directory (telemetry-sink).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Events for a telemetry sink: a JSON file (or - for stdin) holding an
    /// array of objects with Omaha event fields (appid, eventtype,
    /// eventresult, errorcat, errorcode, extracode1, previousversion,
    /// nextversion). Without it, one successful update event for --app-id.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,

    /// Print the result as JSON.
    #[arg(long)]
    json: bool,

    /// Installer arguments (after --).
    #[arg(last = true, value_name = "ARGS")]
    arguments: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum WorldArg {
    Qualifier,
    ExistenceChecker,
    Installer,
    TelemetrySink,
}

impl From<WorldArg> for World {
    fn from(w: WorldArg) -> World {
        match w {
            WorldArg::Qualifier => World::Qualifier,
            WorldArg::ExistenceChecker => World::ExistenceChecker,
            WorldArg::Installer => World::Installer,
            WorldArg::TelemetrySink => World::TelemetrySink,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OperationArg {
    Install,
    Update,
    Uninstall,
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// Runs `upkeep plugin …`.
pub fn run(args: PluginArgs) -> Result<ExitCode> {
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir.or_else(default_cache_dir)
    };
    let host = PluginHost::new(HostConfig {
        cache_dir,
        ..HostConfig::default()
    })?;
    match args.command {
        PluginCommand::Inspect { file, json } => inspect_cmd(&host, &file, json),
        PluginCommand::Run(run) => run_cmd(&host, *run),
    }
}

/// `$XDG_CACHE_HOME/upkeep/plugins`, else `$HOME/.cache/upkeep/plugins`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("upkeep").join("plugins"))
}

fn inspect_cmd(host: &PluginHost, file: &Path, json: bool) -> Result<ExitCode> {
    let report = inspect(host, file)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("file        {}", report.path);
        println!("size        {} bytes", report.size);
        println!("sha256      {}", report.sha256);
        println!(
            "world       {}",
            report
                .detected_world
                .map_or_else(|| "none detected".to_string(), |w| w.to_string())
        );
        println!(
            "api         {}",
            report.detected_api.as_deref().map_or_else(
                || "none detected".to_string(),
                |a| format!("upkeep:plugin@{a}")
            )
        );
        match &report.manifest {
            Some(m) => {
                println!(
                    "manifest    {} {} (world {}, api {})",
                    m.name, m.version, m.world, m.api
                );
                if m.directories.is_empty() {
                    println!("directories none");
                }
                for (i, (mount, access, guest)) in m.directories.iter().enumerate() {
                    let label = if i == 0 { "directories" } else { "" };
                    println!("{label:<11} {mount} ({access}) at {guest}");
                }
                let limits: Vec<String> = [
                    m.timeout_ms.map(|t| format!("{t} ms per call")),
                    m.memory_mib.map(|m| format!("{m} MiB memory")),
                ]
                .into_iter()
                .flatten()
                .collect();
                println!(
                    "limits      {}",
                    if limits.is_empty() {
                        "host defaults".into()
                    } else {
                        limits.join(", ")
                    }
                );
            }
            None => println!("manifest    none"),
        }
        println!("imports     {}", report.imports.join(", "));
        println!("exports     {}", report.exports.join(", "));
        for p in &report.problems {
            println!("problem     {p}");
        }
    }
    Ok(if report.problems.is_empty() {
        ExitCode::Ok
    } else {
        ExitCode::Failed
    })
}

/// Prints progress to stderr at most a few times a second.
fn progress_printer(enabled: bool) -> Option<ProgressSink> {
    if !enabled {
        return None;
    }
    let tty = std::io::stderr().is_terminal();
    let mut last = Instant::now() - Duration::from_secs(1);
    Some(Box::new(move |p: &Progress| {
        if last.elapsed() < Duration::from_millis(200) {
            return;
        }
        last = Instant::now();
        let amount = if p.total > 0 {
            format!("{}/{}", p.completed, p.total)
        } else {
            p.completed.to_string()
        };
        if tty {
            eprint!("\r\x1b[2Kprogress: {amount} {}", p.note);
        } else {
            eprintln!("progress: {amount} {}", p.note);
        }
    }))
}

fn required(dir: &Option<PathBuf>, flag: &str, world: World) -> Result<PathBuf> {
    let Some(d) = dir else {
        bail!("the {world} world needs {flag} DIR")
    };
    if !d.is_dir() {
        bail!("{flag} {}: not a directory", d.display());
    }
    Ok(d.clone())
}

fn run_cmd(host: &PluginHost, args: RunArgs) -> Result<ExitCode> {
    let plugin = host.load(&args.file)?;
    let world = plugin.world();
    if let Some(w) = args.world.map(World::from)
        && w != world
    {
        bail!(
            "--world {w} was given, but {} implements the {world} world (its manifest says so)",
            plugin.name()
        );
    }
    let app = types::AppInfo {
        app_id: args.app_id.to_lowercase(),
        version: args.app_version.clone(),
        channel: None,
        brand: None,
    };
    let options = CallOptions {
        app: Some(app),
        progress: progress_printer(!args.json),
    };
    let outcome = match world {
        World::Qualifier => {
            let input = QualifyInput {
                updater_version: args.updater_version.clone(),
                app_id: args.app_id.clone(),
                app_version: args.app_version.clone(),
                app_dir: required(&args.app_dir, "--app-dir", world)?,
                settings: args.settings.clone(),
            };
            let r = host.qualify(&plugin, &input, options)?;
            let (ok, summary) = match &r.value {
                qualifier::Verdict::Pass => (true, json!({"verdict": "pass"})),
                qualifier::Verdict::Fail(why) => (false, json!({"verdict": "fail", "reason": why})),
            };
            Outcome::new(ok, summary, &r)
        }
        World::ExistenceChecker => {
            let input = ExistenceInput {
                app_id: args.app_id.clone(),
                version: args.app_version.clone(),
                app_dir: args.app_dir.clone(),
                marker: args.marker.clone(),
                settings: args.settings.clone(),
            };
            let r = host.check_existence(&plugin, &input, options)?;
            let (ok, summary) = match &r.value {
                existence::Presence::Present => (true, json!({"presence": "present"})),
                existence::Presence::Absent => (false, json!({"presence": "absent"})),
                existence::Presence::Error(e) => (false, json!({"presence": "error", "reason": e})),
            };
            Outcome::new(ok, summary, &r)
        }
        World::Installer => {
            let operation = match args.operation {
                OperationArg::Install => installer::Operation::Install,
                OperationArg::Update => installer::Operation::Update,
                OperationArg::Uninstall => installer::Operation::Uninstall,
            };
            let payload_dir = match (&args.payload, args.operation) {
                (None, OperationArg::Uninstall) => None,
                _ => Some(required(&args.payload, "--payload", world)?),
            };
            let installer_data = match args.installer_data.as_deref() {
                Some(d) if d.starts_with('@') => Some(
                    std::fs::read_to_string(&d[1..])
                        .with_context(|| format!("reading installer data from {}", &d[1..]))?,
                ),
                other => other.map(str::to_string),
            };
            let input = InstallInput {
                operation,
                app_id: args.app_id.clone(),
                from_version: args.from_version.clone(),
                to_version: args.app_version.clone(),
                arguments: args.arguments.clone(),
                installer_data,
                payload_dir,
                install_dir: required(&args.install_dir, "--install-dir", world)?,
            };
            let r = host.install(&plugin, &input, options)?;
            let (ok, summary) = match &r.value {
                Ok(s) => (true, json!({"result": "success", "message": s.message})),
                Err(e) => (
                    false,
                    json!({"result": "error", "code": e.code, "extra_code": e.extra_code, "message": e.message}),
                ),
            };
            Outcome::new(ok, summary, &r)
        }
        World::TelemetrySink => {
            let events = match &args.events {
                Some(path) => read_events(path)?,
                None => vec![default_event(&args.app_id, &args.app_version)],
            };
            let input = TelemetryInput {
                data_dir: required(&args.data_dir, "--data-dir", world)?,
                events,
            };
            let r = host.consume_events(&plugin, &input, options)?;
            let (ok, summary) = match &r.value {
                Ok(()) => (
                    true,
                    json!({"result": "accepted", "events": input.events.len()}),
                ),
                Err(e) => (false, json!({"result": "error", "message": e})),
            };
            Outcome::new(ok, summary, &r)
        }
    };
    print_outcome(&plugin, &outcome, args.json)?;
    Ok(if outcome.ok {
        ExitCode::Ok
    } else {
        ExitCode::Negative
    })
}

struct Outcome {
    ok: bool,
    summary: Value,
    logs: Vec<LogRecord>,
    dropped_logs: u64,
    stdout: String,
    stderr: String,
    duration: Duration,
}

impl Outcome {
    fn new<T>(ok: bool, summary: Value, r: &CallReport<T>) -> Self {
        Self {
            ok,
            summary,
            logs: r.logs.clone(),
            dropped_logs: r.dropped_logs,
            stdout: r.stdout.clone(),
            stderr: r.stderr.clone(),
            duration: r.duration,
        }
    }
}

fn print_outcome(plugin: &Plugin, o: &Outcome, json_out: bool) -> Result<()> {
    if json_out {
        let v = json!({
            "plugin": plugin.name(),
            "version": plugin.manifest().plugin.version,
            "world": plugin.world(),
            "sha256": plugin.content_hash(),
            "outcome": o.summary,
            "ok": o.ok,
            "logs": o.logs,
            "dropped_logs": o.dropped_logs,
            "stdout": o.stdout,
            "stderr": o.stderr,
            "load_ms": plugin.load_time().as_secs_f64() * 1000.0,
            "cache": format!("{:?}", plugin.cache_outcome()).to_lowercase(),
            "call_ms": o.duration.as_secs_f64() * 1000.0,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
    println!(
        "plugin   {} {} ({} world)",
        plugin.name(),
        plugin.manifest().plugin.version,
        plugin.world()
    );
    let mut parts = Vec::new();
    if let Some(obj) = o.summary.as_object() {
        for (k, v) in obj {
            if !v.is_null() {
                parts.push(format!(
                    "{k}: {}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                ));
            }
        }
    }
    println!("outcome  {}", parts.join(", "));
    for rec in &o.logs {
        println!("log      [{}] {}", rec.level, rec.message);
    }
    if o.dropped_logs > 0 {
        println!(
            "log      ({} records dropped over the log cap)",
            o.dropped_logs
        );
    }
    for line in o.stdout.lines() {
        println!("stdout   {line}");
    }
    for line in o.stderr.lines() {
        println!("stderr   {line}");
    }
    println!(
        "time     load {:.1} ms (cache {}), call {:.2} ms",
        plugin.load_time().as_secs_f64() * 1000.0,
        format!("{:?}", plugin.cache_outcome()).to_lowercase(),
        o.duration.as_secs_f64() * 1000.0
    );
    Ok(())
}

fn default_event(app_id: &str, version: &str) -> types::UpdateEvent {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    types::UpdateEvent {
        app_id: app_id.to_lowercase(),
        event_type: types::EventType::Update,
        outcome: types::EventResult::Success,
        error_category: types::ErrorCategory::None,
        error_code: 0,
        extra_code: 0,
        previous_version: None,
        next_version: Some(version.to_string()),
        download: None,
        timestamp_ms: now.as_millis() as u64,
        duration_ms: None,
        // A random id, as a real update session has; all-zero only if the
        // system's random source fails.
        session_id: upkeep_core::omaha::random_id()
            .unwrap_or_else(|_| "{00000000-0000-0000-0000-000000000000}".into()),
    }
}

fn read_events(path: &Path) -> Result<Vec<types::UpdateEvent>> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading events from stdin")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("reading events from {}", path.display()))?
    };
    let values: Vec<Value> = serde_json::from_str(&text)
        .with_context(|| format!("{}: expected a JSON array of event objects", path.display()))?;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| event_from_json(v).with_context(|| format!("{}: event {i}", path.display())))
        .collect()
}

fn event_from_json(v: &Value) -> Result<types::UpdateEvent> {
    let obj = v.as_object().context("not a JSON object")?;
    let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let n = |k: &str| obj.get(k).and_then(Value::as_i64);
    let app_id = s("appid").context("missing \"appid\"")?.to_lowercase();
    let event_type = match n("eventtype").context("missing numeric \"eventtype\"")? {
        2 => types::EventType::Install,
        3 => types::EventType::Update,
        4 => types::EventType::Uninstall,
        14 => types::EventType::Download,
        41 => types::EventType::AppCommand,
        42 => types::EventType::Action,
        other => types::EventType::Other(u16::try_from(other).context("eventtype out of range")?),
    };
    let outcome = match n("eventresult").unwrap_or(1) {
        0 => types::EventResult::Error,
        1 => types::EventResult::Success,
        2 => types::EventResult::SuccessReboot,
        4 => types::EventResult::Cancelled,
        7 => types::EventResult::NoUpdate,
        9 => types::EventResult::UpdateDeferred,
        other => {
            types::EventResult::Other(u16::try_from(other).context("eventresult out of range")?)
        }
    };
    let error_category = match n("errorcat").unwrap_or(0) {
        0 => types::ErrorCategory::None,
        1 => types::ErrorCategory::Download,
        2 => types::ErrorCategory::Unpack,
        3 => types::ErrorCategory::Install,
        4 => types::ErrorCategory::Service,
        5 => types::ErrorCategory::UpdateCheck,
        other => bail!("errorcat {other} is not an Omaha error category (0 to 5)"),
    };
    let int = |k: &str| -> Result<i32> {
        i32::try_from(n(k).unwrap_or(0)).with_context(|| format!("{k} out of range"))
    };
    let mut e = default_event(&app_id, "");
    e.event_type = event_type;
    e.outcome = outcome;
    e.error_category = error_category;
    e.error_code = int("errorcode")?;
    e.extra_code = int("extracode1")?;
    e.previous_version = s("previousversion");
    e.next_version = s("nextversion");
    Ok(e)
}

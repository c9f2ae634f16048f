//! `upkeep demo`: the whole loop on one machine, in a temporary directory.
//!
//! A vendor publishes two versions of a small app into a signed repository
//! and serves it on loopback; a machine registers the app, installs 1.0
//! through the sample installer plugin, updates to 2.0, and reports events
//! to the server and to the sample telemetry sink; finally the app is
//! removed by hand and the sample existence checker notices. Every step runs
//! the real `upkeep` binary as its own process, as an operator would.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::ExitCode;
use payload::{run_hello, write_payload};

mod delta;
mod health;
mod offline;
mod payload;
mod policy;
mod rollout;

const APP: &str = "org.example.hello";

/// Run the whole update loop on loopback and explain each step.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the sample plugins are [default: $UPKEEP_PLUGIN_DIR, else the
    /// `plugins` folder beside the binary's folder, e.g. target/plugins].
    #[arg(long, value_name = "DIR")]
    plugins: Option<PathBuf>,

    /// Work in DIR and keep it afterwards (default: a temporary directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

/// Finds the folder holding the sample plugins.
fn plugin_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    } else {
        if let Some(p) = std::env::var_os("UPKEEP_PLUGIN_DIR") {
            candidates.push(PathBuf::from(p));
        }
        if let Ok(exe) = std::env::current_exe()
            && let Some(bin_dir) = exe.parent()
        {
            if let Some(up) = bin_dir.parent() {
                candidates.push(up.join("plugins"));
            }
            candidates.push(bin_dir.join("plugins"));
        }
    }
    for c in &candidates {
        if [
            "install-archive",
            "exists-path",
            "telemetry-jsonl",
            "qualify-selftest",
        ]
        .iter()
        .all(|n| c.join(format!("{n}.wasm")).is_file())
        {
            // Absolute: the machine's config.toml names them, and its
            // relative paths are relative to the file.
            return Ok(std::path::absolute(c).unwrap_or_else(|_| c.clone()));
        }
    }
    bail!(
        "the sample plugins were not found (looked in {}); build them with scripts/build-plugins.sh, or pass --plugins DIR",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A child `upkeep repo serve`, killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Demo {
    exe: PathBuf,
    work: PathBuf,
    plugins: PathBuf,
    step: u32,
}

impl Demo {
    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n{}. {title}", self.step);
    }

    fn note(&self, line: &str) {
        println!("   {line}");
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }

    /// Shows the last line of `<state>/upkeep.log` that contains `needle`,
    /// without its time and pid.
    fn note_log(&self, state: &Path, needle: &str) {
        let log = std::fs::read_to_string(state.join(upkeep_core::lifecycle::LOG_FILE))
            .unwrap_or_default();
        if let Some(line) = log.lines().rev().find(|l| l.contains(needle)) {
            let line = line.split_once("] ").map_or(line, |(_, l)| l);
            self.note(&format!("upkeep.log: {line}"));
        }
    }

    /// Runs `upkeep ARGS`: its exit status, stdout and stderr.
    fn run(&self, args: &[&std::ffi::OsStr]) -> Result<(Option<i32>, String, String)> {
        let out = Command::new(&self.exe)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .with_context(|| format!("running {}", self.exe.display()))?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Runs `upkeep ARGS`, which is to fail (exit 1), and shows what it
    /// printed; its standard error.
    fn upkeep_refused(&self, args: &[&std::ffi::OsStr]) -> Result<String> {
        let (code, stdout, stderr) = self.run(args)?;
        if code != Some(1) {
            bail!("expected `upkeep` to fail (exit {code:?}):\n{stdout}{stderr}");
        }
        for line in stdout
            .lines()
            .chain(stderr.lines())
            .filter(|l| !l.trim().is_empty())
        {
            println!("   | {line}");
        }
        Ok(stderr)
    }

    /// Runs `upkeep ARGS`, shows its stdout indented, fails with its stderr.
    fn upkeep(&self, args: &[&std::ffi::OsStr], show: bool) -> Result<String> {
        let (code, stdout, stderr) = self.run(args)?;
        if code != Some(0) {
            let shown: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            bail!(
                "`upkeep {}` failed (exit {code:?}):\n{}{}",
                shown.join(" "),
                stdout,
                stderr
            );
        }
        if show {
            for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
                println!("   | {line}");
            }
        }
        Ok(stdout)
    }

    /// Builds the payload of `version` of the demo's app and adds it to
    /// the repository.
    fn publish(&self, repo: &Path, version: &str) -> Result<PathBuf> {
        self.publish_app(repo, APP, &format!("build-{version}"), version)
    }

    /// Builds the payload of `app` `version` in `vendor/<build>` and adds
    /// it to the repository.
    fn publish_app(&self, repo: &Path, app: &str, build: &str, version: &str) -> Result<PathBuf> {
        self.publish_saying(repo, app, build, version, version)
    }

    /// [`Demo::publish_app`] with a VERSION file that says `says` (a
    /// broken build when it is not `version`).
    fn publish_saying(
        &self,
        repo: &Path,
        app: &str,
        build: &str,
        version: &str,
        says: &str,
    ) -> Result<PathBuf> {
        self.publish_with(repo, app, build, (version, says), &[])
            .map(|(payload, _)| payload)
    }

    /// Builds a payload of `app` (its version, and what its VERSION file
    /// says) and adds it with `repo add` and `extra` arguments: the
    /// payload and what `repo add` printed.
    fn publish_with(
        &self,
        repo: &Path,
        app: &str,
        build: &str,
        (version, says): (&str, &str),
        extra: &[&std::ffi::OsStr],
    ) -> Result<(PathBuf, String)> {
        let payload = write_payload(&self.path(&format!("vendor/{build}")), app, version, says)?;
        let mut args = vec![
            os("repo"),
            os("add"),
            repo.as_os_str(),
            os("--app"),
            os(app),
            os("--version"),
            os(version),
        ];
        args.extend_from_slice(extra);
        args.push(payload.as_os_str());
        let out = self.upkeep(&args, false)?;
        Ok((payload, out))
    }

    fn serve(&self, repo: &Path) -> Result<Server> {
        let mut child = Command::new(&self.exe)
            .args(["repo", "serve"])
            .arg(repo)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting `upkeep repo serve`")?;
        let stdout = child.stdout.take().context("no stdout from the server")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let server = |url| Server { child, url };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => match line.trim().strip_prefix("listening on ") {
                Some(url) => Ok(server(url.to_string())),
                None => bail!("the server said {line:?} instead of its address"),
            },
            Err(_) => bail!("the server did not report its address within 20 s"),
        }
    }
}

/// The machine's daemon, killed when dropped.
struct Service {
    child: Option<Child>,
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `upkeep setup` (this binary becomes the active version), then its
/// daemon, waited for until it answers.
#[cfg(unix)]
fn start_service(d: &Demo, state: &Path) -> Result<Service> {
    d.upkeep(&[os("setup"), os("--root"), state.as_os_str()], true)?;
    let prefs = upkeep_core::state::Prefs::load(&state.join(upkeep_core::state::PREFS_FILE))?;
    let version = prefs
        .active_version
        .context("`upkeep setup` left no active version")?;
    let exe = upkeep_core::lifecycle::binary_path(state, &version);
    let child = Command::new(&exe)
        .arg("daemon")
        .arg("--root")
        .arg(state)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} daemon", exe.display()))?;
    let service = Service { child: Some(child) };
    let socket = state.join("ipc.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    let pong = loop {
        match upkeep_client::ipc::ping(&socket) {
            Ok(pong) => break pong,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => bail!("the daemon did not answer on {}: {e}", socket.display()),
        }
    };
    d.note(&format!(
        "daemon {} (pid {}) answers on {} (protocol {})",
        pong.version,
        pong.pid,
        socket.display(),
        pong.protocol.unwrap_or(1)
    ));
    d.note("`update`, `status`, `register`, `rollback` and `remove` go through it, with progress streamed back;");
    d.note(
        "any local user may ask it for status and updates, only root changes what is registered",
    );
    Ok(service)
}

#[cfg(not(unix))]
fn start_service(d: &Demo, _state: &Path) -> Result<Service> {
    d.note("the daemon needs Unix domain sockets; here every command runs in-process");
    Ok(Service { child: None })
}

/// SIGTERM to the daemon, and what it logged on its way out.
#[cfg(unix)]
fn stop_service(d: &Demo, state: &Path, mut service: Service) -> Result<()> {
    let Some(mut child) = service.child.take() else {
        return Ok(());
    };
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id())?)
        .context("the daemon has no pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        .context("cannot signal the daemon")?;
    let status = child.wait().context("waiting for the daemon")?;
    d.note(&format!("the daemon ended: {status}"));
    d.note_log(state, " exits: ");
    Ok(())
}

#[cfg(not(unix))]
fn stop_service(_d: &Demo, _state: &Path, _service: Service) -> Result<()> {
    Ok(())
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// Runs `upkeep demo`.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let plugins = plugin_dir(args.plugins.as_deref())?;
    let exe = std::env::current_exe().context("locating the upkeep binary")?;
    let temp;
    let work = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.canonicalize()?
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("upkeep-demo-")
                .tempdir()
                .context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let mut d = Demo {
        exe,
        work,
        plugins,
        step: 0,
    };
    println!("upkeep demo: a vendor publishes, a machine installs and updates, all on loopback");
    println!("working in {}", d.work.display());

    d.step("The vendor creates a signed repository");
    let repo = d.path("vendor/repo");
    d.upkeep(&[os("repo"), os("init"), repo.as_os_str()], false)?;
    d.note("TUF roles root, targets, snapshot, timestamp (ed25519) and a P-256 key for signed responses");

    d.step("The vendor publishes version 1.0 of the app");
    let v1 = d.publish(&repo, "1.0")?;
    d.note(&format!(
        "{APP} 1.0: {}",
        v1.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));

    d.step("The vendor serves the repository on loopback");
    let server = d.serve(&repo)?;
    d.note(&format!(
        "reference server at {} (Omaha JSON, TUF metadata, targets, event store)",
        server.url
    ));

    d.step("A machine trusts the repository and registers the app");
    let state = d.path("machine/state");
    let install = d.path("machine/apps/hello");
    std::fs::create_dir_all(&state)?;
    std::fs::create_dir_all(&install)?;
    let client_dir = repo.join("client");
    let template = std::fs::read_to_string(client_dir.join("config.toml"))
        .context("reading the repository's client config")?;
    let mut config = String::new();
    for line in template.lines() {
        let line = line.trim_start();
        let rewritten = if line.starts_with("server") {
            format!("server = \"{}\"", server.url)
        } else if line.starts_with("tuf_root") {
            format!("tuf_root = \"{}\"", client_dir.join("root.json").display())
        } else if line.starts_with("cup_public_key") {
            format!(
                "cup_public_key = \"{}\"",
                client_dir.join("cup.pub.pem").display()
            )
        } else if line.starts_with("telemetry") {
            continue;
        } else {
            line.to_string()
        };
        config.push_str(&rewritten);
        config.push('\n');
    }
    // The machine accepts an older release when the vendor pulls the one it
    // has (the rollout steps show it).
    config.push_str("rollback_allowed = true\n");
    config.push_str(&format!(
        "telemetry = [\"{}\"]\n",
        d.plugins.join("telemetry-jsonl.wasm").display()
    ));
    let config_path = state.join("config.toml");
    std::fs::File::create(&config_path)?.write_all(config.as_bytes())?;
    let installer = d.plugins.join("install-archive.wasm");
    let existence = d.plugins.join("exists-path.wasm");
    d.upkeep(
        &[
            os("register"),
            os("--app"),
            os(APP),
            os("--version"),
            os("0"),
            os("--install-dir"),
            install.as_os_str(),
            os("--installer"),
            installer.as_os_str(),
            os("--existence"),
            existence.as_os_str(),
            os("--marker"),
            os("current/bin/hello"),
            os("--root"),
            state.as_os_str(),
        ],
        false,
    )?;
    d.note(
        "pinned: the TUF root and the server's response key, from the repository's client/ folder",
    );
    d.note("plugins: install-archive (installer), exists-path (existence checker), telemetry-jsonl (telemetry sink)");

    let update = |d: &Demo| d.upkeep(&[os("update"), os("--root"), state.as_os_str()], true);

    d.step("The machine checks for updates and installs 1.0");
    update(&d)?;
    d.note(&format!("the app says: {}", run_hello(&install)?));

    d.step("The vendor publishes 2.0; the server picks it up without a restart");
    d.publish(&repo, "2.0")?;

    d.step("The machine runs upkeep as a service; the next commands go through its daemon");
    let service = start_service(&d, &state)?;

    d.step(
        "The machine updates to 2.0 (signed response, TUF-checked package, sandboxed installer)",
    );
    update(&d)?;
    d.note(&format!("the app says: {}", run_hello(&install)?));
    d.note_log(&state, "update served over IPC");
    let link = std::fs::read_link(install.join("current"))
        .with_context(|| format!("reading {}", install.join("current").display()))?;
    d.note(&format!(
        "launched as {} -> {}",
        install.join("current/bin/hello").display(),
        link.display()
    ));
    let kept = install.join("versions/1.0/bin/hello").is_file();
    d.note(&format!(
        "1.0 is kept in versions/1.0 for `upkeep rollback`: {}",
        if kept { "yes" } else { "no" }
    ));
    if !kept {
        bail!("versions/1.0 was not kept after the update to 2.0");
    }
    let gone = !install.join("current/NOTES-1.0.txt").exists();
    d.note(&format!(
        "files only 1.0 had were removed: {}",
        if gone { "yes" } else { "no" }
    ));
    if !gone {
        bail!("NOTES-1.0.txt is still installed after the update to 2.0");
    }

    d.step("Nothing newer: the next check changes nothing");
    update(&d)?;

    rollout::run(&mut d, &repo, &state, &install, &update)?;
    rollout::dashboard(&mut d, &server.url)?;

    offline::run(&mut d, &repo, &state, &update)?;
    policy::run(&mut d, &repo, &state, &update)?;
    health::run(&mut d, &repo, &state, &update)?;
    delta::run(&mut d, &repo, &state)?;

    d.step("What the telemetry sink recorded on the machine");
    let sink = state.join("telemetry/telemetry-jsonl/events.jsonl");
    let events =
        std::fs::read_to_string(&sink).with_context(|| format!("reading {}", sink.display()))?;
    for line in events.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: not JSON", sink.display()))?;
        let kind = match v["eventtype"].as_u64() {
            Some(2) => "install".to_string(),
            Some(3) => "update".to_string(),
            Some(4) => "uninstall".to_string(),
            Some(14) => "download".to_string(),
            other => format!("event type {}", other.unwrap_or_default()),
        };
        let result = if v["eventresult"] == 1 {
            "success".to_string()
        } else {
            format!("result {}", v["eventresult"])
        };
        let from = v["previousversion"]
            .as_str()
            .filter(|p| *p != "0")
            .unwrap_or("nothing");
        let to = v["nextversion"].as_str().unwrap_or("-");
        d.note(&format!("{kind:<9} {from} -> {to}: {result}"));
    }

    d.step("What reached the server's event store");
    let out = d.upkeep(
        &[os("repo"), os("events"), repo.as_os_str(), os("--json")],
        false,
    )?;
    let stored: serde_json::Value =
        serde_json::from_str(&out).context("`repo events --json` did not print JSON")?;
    let count = stored.as_array().map_or(0, Vec::len);
    d.note(&format!(
        "{count} events stored in {}",
        repo.join("events.sqlite").display()
    ));

    d.step("The app is deleted by hand; the existence checker notices");
    std::fs::remove_dir_all(&install).with_context(|| format!("removing {}", install.display()))?;
    update(&d)?;

    d.step("The service stops on SIGTERM, after the operation in flight");
    stop_service(&d, &state, service)?;

    drop(server);
    println!(
        "\ndemo complete in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if args.keep.is_some() {
        println!("everything is kept in {}", d.work.display());
    }
    Ok(ExitCode::Ok)
}

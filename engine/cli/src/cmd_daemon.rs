//! `upkeep daemon`: the active updater version's IPC endpoint.
//!
//! The daemon of installed version `<v>` listens on
//! `<root>/versions/<v>/ipc.sock` and serves one connection at a time
//! ([`upkeep_client::ipc`] has the protocol). A `wake` request runs
//! `<its binary> wake --in-process` as a child process, so the lock and a
//! crash stay per run. After each request and every few seconds it
//! re-reads the global prefs and exits (removing its socket) once it is no
//! longer the active version or its version directory is gone: activation
//! and deactivation need no signal. See `docs/lifecycle.md`.

use anyhow::Result;
use clap::Args;

use crate::ExitCode;
use crate::state::StateArgs;

/// `upkeep daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    state: StateArgs,
}

/// Runs `upkeep daemon`.
#[cfg(not(unix))]
pub fn run(_args: DaemonArgs) -> Result<ExitCode> {
    anyhow::bail!("upkeep daemon needs Unix domain sockets; here `upkeep wake` runs in-process")
}

/// Runs `upkeep daemon` until this version is no longer active.
#[cfg(unix)]
pub fn run(args: DaemonArgs) -> Result<ExitCode> {
    unix::run(args)
}

#[cfg(unix)]
mod unix {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::{UnixListener, UnixStream};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use anyhow::{Context, Result, bail};
    use serde_json::{Value, json};
    use upkeep_core::lifecycle;
    use upkeep_core::state::{PREFS_FILE, Prefs};
    use upkeep_core::version::Version;

    use super::DaemonArgs;
    use crate::ExitCode;
    use upkeep_client::ipc::{self, LineError, Request};
    use upkeep_client::lifecycle::own_version;
    use upkeep_client::statelog::log;

    /// How often an idle daemon checks that it is still wanted.
    const CHECK_EVERY: Duration = Duration::from_secs(2);
    /// How long the daemon waits before accepting again after a failed
    /// accept (out of file descriptors, say).
    const ACCEPT_RETRY: Duration = Duration::from_millis(100);
    /// How long a client has to send its request line, and each write of
    /// the answer may take.
    const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

    /// What the daemon serves.
    struct Daemon {
        root: PathBuf,
        config: Option<PathBuf>,
        own: Version,
        exe: PathBuf,
        pid: u32,
    }

    /// The bound socket; removed on drop unless another process has
    /// replaced it meanwhile.
    struct Bound {
        path: PathBuf,
        id: (u64, u64),
    }

    impl Drop for Bound {
        fn drop(&mut self) {
            let ours =
                std::fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
            if ours && let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the socket");
            }
        }
    }

    pub(super) fn run(args: DaemonArgs) -> Result<ExitCode> {
        let root = args.state.root()?;
        let exe = std::env::current_exe().context("cannot find the running binary")?;
        let (installed, own) = own_version(Some(&exe));
        if installed.as_ref().is_none_or(|i| i.root != root) {
            bail!(
                "upkeep daemon runs only from a version installed in the state root, \
                 {}/versions/<version>/upkeep (this binary is {}); run {}",
                root.display(),
                exe.display(),
                root.join("current/upkeep daemon").display()
            );
        }
        let prefs = Prefs::load(&root.join(PREFS_FILE))?;
        if prefs.active_version.as_ref() != Some(&own) {
            bail!(
                "upkeep {own} is not the active version in {} (active: {}); only the active version's daemon serves",
                root.display(),
                prefs
                    .active_version
                    .as_ref()
                    .map_or("none".to_owned(), ToString::to_string)
            );
        }
        let socket = lifecycle::ipc_socket_path(&root, &own);
        let (listener, _bound) = bind(&socket)?;
        let d = Daemon {
            root,
            config: args.state.config,
            own,
            exe,
            pid: std::process::id(),
        };
        log(
            &d.root,
            &format!(
                "daemon {} (pid {}) listening on {}",
                d.own,
                d.pid,
                socket.display()
            ),
        );
        eprintln!(
            "upkeep {}: daemon listening on {} (pid {})",
            d.own,
            socket.display(),
            d.pid
        );
        // Connections are accepted as they come (blocking accept, so a
        // client waits for nothing); a watcher looks every few seconds
        // whether the daemon is still wanted and, when not, wakes the
        // accept with a connection of its own.
        let stop: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let watcher = {
            let stop = stop.clone();
            let root = d.root.clone();
            let own = d.own.clone();
            let socket = socket.clone();
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(CHECK_EVERY);
                    if let Some(why) = unwanted(&root, &own) {
                        if let Ok(mut slot) = stop.lock() {
                            *slot = Some(why);
                        }
                        let _ = UnixStream::connect(&socket);
                        return;
                    }
                }
            })
        };
        let stopped = |stop: &Mutex<Option<String>>| stop.lock().ok().and_then(|s| s.clone());
        let why = loop {
            if let Some(why) = stopped(&stop) {
                break why;
            }
            match listener.accept() {
                Ok((stream, _)) => {
                    if let Some(why) = stopped(&stop) {
                        break why;
                    }
                    serve(&d, stream);
                    if let Some(why) = unwanted(&d.root, &d.own) {
                        break why;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a connection");
                    std::thread::sleep(ACCEPT_RETRY);
                }
            }
        };
        drop(watcher);
        log(
            &d.root,
            &format!("daemon {} (pid {}) exits: {why}", d.own, d.pid),
        );
        eprintln!("upkeep {}: daemon exits: {why}", d.own);
        Ok(ExitCode::Ok)
    }

    /// Binds `socket`, replacing a stale socket file (one nothing answers
    /// on); refuses when a daemon already listens there.
    fn bind(socket: &Path) -> Result<(UnixListener, Bound)> {
        let listener = match UnixListener::bind(socket) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if UnixStream::connect(socket).is_ok() {
                    bail!("a daemon already listens on {}", socket.display());
                }
                std::fs::remove_file(socket)
                    .with_context(|| format!("cannot remove the stale {}", socket.display()))?;
                UnixListener::bind(socket)
                    .with_context(|| format!("cannot listen on {}", socket.display()))?
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot listen on {}", socket.display()));
            }
        };
        let meta = std::fs::symlink_metadata(socket)
            .with_context(|| format!("cannot read {}", socket.display()))?;
        let bound = Bound {
            path: socket.to_path_buf(),
            id: (meta.dev(), meta.ino()),
        };
        Ok((listener, bound))
    }

    /// Why the daemon should stop, if it should: it is no longer the active
    /// version, its version directory is gone, or upkeep is being
    /// uninstalled. Unreadable prefs keep it running (the next look may
    /// succeed; commands report the damage).
    fn unwanted(root: &Path, own: &Version) -> Option<String> {
        if !lifecycle::binary_path(root, own).is_file() {
            return Some(format!("{own} is no longer installed"));
        }
        match Prefs::load(&root.join(PREFS_FILE)) {
            Ok(p) if p.uninstalling => Some("upkeep is being uninstalled".to_owned()),
            Ok(p) if p.active_version.as_ref() != Some(own) => Some(format!(
                "{} is active",
                p.active_version
                    .as_ref()
                    .map_or("no version".to_owned(), ToString::to_string)
            )),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the prefs; serving on");
                None
            }
        }
    }

    /// Serves one connection: one request line, one answer line. Failures
    /// are the client's problem and only traced.
    fn serve(d: &Daemon, mut stream: UnixStream) {
        let setup = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_write_timeout(Some(CLIENT_TIMEOUT)));
        if let Err(e) = setup {
            tracing::warn!(error = %e, "cannot set up a connection");
            return;
        }
        let deadline = Some(Instant::now() + CLIENT_TIMEOUT);
        let answer = match ipc::read_line(&mut stream, ipc::MAX_REQUEST, deadline) {
            Ok(None) => return,
            Ok(Some(line)) => answer(d, &line),
            Err(e @ LineError::TooLong(_)) => refuse(format!("request refused: {e}")),
            Err(e) => {
                tracing::debug!(error = %e, "a client sent no request");
                refuse(format!("no request: {e}"))
            }
        };
        if let Err(e) = ipc::write_line(&mut stream, &answer) {
            tracing::debug!(error = %e, "cannot answer a client");
        }
    }

    fn refuse(error: String) -> Value {
        json!({"ok": false, "error": error})
    }

    fn answer(d: &Daemon, line: &[u8]) -> Value {
        let request: Request = match serde_json::from_slice(line) {
            Ok(r) => r,
            Err(e) => return refuse(format!("unknown or malformed request: {e}")),
        };
        match request {
            Request::Ping {} => json!({"ok": true, "version": d.own.to_string(), "pid": d.pid}),
            Request::Wake { now, json } => wake(d, now, json),
        }
    }

    /// Runs `<exe> wake --in-process` and reports how it went.
    fn wake(d: &Daemon, now: bool, as_json: bool) -> Value {
        let mut cmd = Command::new(&d.exe);
        cmd.arg("wake")
            .arg("--in-process")
            .arg("--root")
            .arg(&d.root)
            .stdin(Stdio::null())
            .env_remove("UPKEEP_RESTARTED_AS");
        if let Some(config) = &d.config {
            cmd.arg("--config").arg(config);
        }
        if now {
            cmd.arg("--now");
        }
        if as_json {
            cmd.arg("--json");
        }
        let out = match cmd.output() {
            Ok(out) => out,
            Err(e) => return refuse(format!("cannot start {} wake: {e}", d.exe.display())),
        };
        let code = out.status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + out.status.signal().unwrap_or(0)
        });
        log(
            &d.root,
            &format!(
                "wake served over IPC by {} (pid {}): exit {code}",
                d.own, d.pid
            ),
        );
        json!({
            "ok": true,
            "code": code,
            "stdout": String::from_utf8_lossy(&out.stdout),
            "stderr": String::from_utf8_lossy(&out.stderr),
        })
    }
}

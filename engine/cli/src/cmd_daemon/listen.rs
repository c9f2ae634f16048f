//! Starting, listening and stopping: who may run the daemon, the socket
//! (bound here or handed over by the service manager), the accept loop,
//! and the watcher that ends it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use upkeep_client::access::{AccessPolicy, AdminGroup};
use upkeep_client::config::{Config, DEFAULT_IDLE_EXIT, ServiceConfig};
use upkeep_client::lifecycle::own_version;
use upkeep_client::peer::{group_id, own_uid};
use upkeep_client::scope::default_config_path;
use upkeep_client::statelog::log;
use upkeep_core::lifecycle;
use upkeep_core::state::{PREFS_FILE, Prefs};
use upkeep_core::version::Version;

use super::DaemonArgs;
use super::serve::{Daemon, Endpoints, serve, serve_internal};
use crate::ExitCode;

/// How often an idle daemon checks that it is still wanted.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// How often the watcher looks for a signal or the idle deadline.
const TICK: Duration = Duration::from_millis(100);
/// How long the daemon waits before accepting again after a failed
/// accept (out of file descriptors, say).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// The most connections served at once; more are refused at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a stopping daemon lets the connections it serves finish
/// sending their answers.
const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// Set by SIGTERM or SIGINT.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

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
    let active = prefs.active_version.as_ref() == Some(&own);
    let service = service_config(&root, args.state.config.as_deref());
    let owner = own_uid();
    let policy = AccessPolicy {
        owner,
        admin_group: admin_group(&root, service.admin_group.as_deref()),
    };
    // UpdateServiceInternal: every version, its own binary only.
    let internal_socket = lifecycle::internal_socket_path(&root, &own);
    let (internal, _internal_bound) = bind(&internal_socket, 0o600)?;
    let mut wakers = vec![
        internal
            .try_clone()
            .context("cannot keep a handle on the socket")?,
    ];
    // UpdateService: the active version only.
    let socket = lifecycle::ipc_socket_path(&root, &own);
    let mut activated = false;
    let mut _bound = None;
    let listener = if active {
        match handed_socket()? {
            Some(listener) => {
                activated = true;
                Some(listener)
            }
            None => {
                let mode = if policy.is_system() { 0o666 } else { 0o600 };
                let (listener, bound) = bind(&socket, mode)?;
                _bound = Some(bound);
                wakers.push(
                    listener
                        .try_clone()
                        .context("cannot keep a handle on the socket")?,
                );
                Some(listener)
            }
        }
    } else {
        None
    };
    let idle_exit = match args.idle_exit {
        Some(0) => None,
        Some(secs) => Some(Duration::from_secs(secs)),
        None if activated => match service.idle_exit.unwrap_or(DEFAULT_IDLE_EXIT) {
            d if d.is_zero() => None,
            d => Some(d),
        },
        None => None,
    };
    let d = Arc::new(Daemon::new(
        root,
        (args.state.config, args.state.policy),
        own,
        exe,
        policy,
        Endpoints {
            socket: active.then(|| socket.clone()),
            wakers,
        },
    ));
    let serving = if active {
        format!(
            "{} (UpdateService{}) and {} (internal)",
            socket.display(),
            if activated {
                ", socket from the service manager"
            } else {
                ""
            },
            internal_socket.display()
        )
    } else {
        format!(
            "{} (internal only: {} is not the active version)",
            internal_socket.display(),
            d.own
        )
    };
    log(
        &d.root,
        &format!(
            "daemon {} (pid {}, uid {owner}) listening on {serving}",
            d.own, d.pid
        ),
    );
    eprintln!(
        "upkeep {}: daemon listening on {serving} (pid {})",
        d.own, d.pid
    );
    watch_signals();
    let watcher = {
        let d = d.clone();
        std::thread::spawn(move || watch(&d, idle_exit, active))
    };
    let why = match listener {
        Some(listener) => {
            let internal_loop = {
                let d = d.clone();
                std::thread::spawn(move || accept_loop(&d, &internal, serve_internal))
            };
            let why = accept_loop(&d, &listener, serve);
            drop(internal_loop);
            why
        }
        None => accept_loop(&d, &internal, serve_internal),
    };
    drop(watcher);
    // An operation in flight stops at its next safe point; wait for it.
    if d.cancel_running() {
        log(
            &d.root,
            &format!(
                "daemon {} (pid {}): cancelling the operation in flight",
                d.own, d.pid
            ),
        );
    }
    d.wait_idle();
    // The operation's reply is sent after it releases the writer lock.
    d.wait_connections(ANSWER_GRACE);
    log(
        &d.root,
        &format!("daemon {} (pid {}) exits: {why}", d.own, d.pid),
    );
    eprintln!("upkeep {}: daemon exits: {why}", d.own);
    Ok(ExitCode::Ok)
}

/// Accepts on `listener`, each connection served by `serve` on a thread of
/// its own, until the daemon stops; returns why it stopped.
fn accept_loop(d: &Arc<Daemon>, listener: &UnixListener, serve: fn(&Daemon, UnixStream)) -> String {
    loop {
        if let Some(why) = d.stopping() {
            return why;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(why) = d.stopping() {
                    return why;
                }
                d.touch();
                if d.connections() >= MAX_CONNECTIONS {
                    super::serve::refuse_busy(stream);
                    continue;
                }
                let entered = d.enter();
                std::thread::spawn(move || serve(&entered.0, stream));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if d.stopping().is_some() => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a connection");
                std::thread::sleep(ACCEPT_RETRY);
            }
        }
    }
}

/// The watcher: stops the daemon once it is unwanted, signalled, or idle
/// for `idle_exit`.
fn watch(d: &Daemon, idle_exit: Option<Duration>, active: bool) {
    let mut last_check = Instant::now();
    loop {
        if d.stopping().is_some() {
            return;
        }
        std::thread::sleep(TICK);
        let why = if SIGNALLED.load(Ordering::SeqCst) {
            Some("asked to stop (SIGTERM)".to_owned())
        } else if let Some(idle) = idle_exit
            && d.idle_for() >= idle
        {
            Some(format!("idle for {} s", idle.as_secs()))
        } else if last_check.elapsed() >= CHECK_EVERY {
            last_check = Instant::now();
            unwanted(&d.root, &d.own, active)
        } else {
            None
        };
        if let Some(why) = why {
            d.stop(why);
            return;
        }
    }
}

/// SIGTERM and SIGINT raise [`SIGNALLED`] (a small thread waits for them).
fn watch_signals() {
    std::thread::spawn(|| {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch for signals; SIGTERM ends the daemon at once");
                return;
            }
        };
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::warn!("cannot watch for signals; SIGTERM ends the daemon at once");
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            SIGNALLED.store(true, Ordering::SeqCst);
        });
    });
}

/// The `[service]` section of the configuration, or the defaults when it
/// cannot be read (the daemon still serves status; commands report why).
fn service_config(root: &Path, config: Option<&Path>) -> ServiceConfig {
    let path = config.map_or_else(|| default_config_path(root), Path::to_path_buf);
    if !path.exists() {
        return ServiceConfig::default();
    }
    match Config::load(&path) {
        Ok(c) => c.service,
        Err(e) => {
            log(
                root,
                &format!("daemon: cannot read the [service] section ({e}); using its defaults"),
            );
            ServiceConfig::default()
        }
    }
}

/// The configured admin group with its id; a group that does not exist is
/// logged and ignored (root alone administers).
fn admin_group(root: &Path, name: Option<&str>) -> Option<AdminGroup> {
    let name = name?;
    match group_id(name) {
        Some(gid) => Some(AdminGroup {
            name: name.to_owned(),
            gid,
        }),
        None => {
            log(
                root,
                &format!(
                    "daemon: [service] admin_group {name:?} is not a group here; only root administers"
                ),
            );
            None
        }
    }
}

/// The listening socket the service manager passed (`LISTEN_PID` is this
/// process and `LISTEN_FDS` is at least 1: descriptor 3), if it did.
fn handed_socket() -> Result<Option<UnixListener>> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    // Children must not take the socket for theirs.
    // SAFETY: no other thread runs yet that could read the environment.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if !ours || count == 0 {
        return Ok(None);
    }
    use std::os::fd::{FromRawFd, OwnedFd};
    const SD_LISTEN_FDS_START: i32 = 3;
    // SAFETY: the service manager passes descriptor 3 open, to this
    // process only (LISTEN_PID), and nothing else in it owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START) };
    let listener = UnixListener::from(fd);
    listener
        .local_addr()
        .context("the socket the service manager passed is not a Unix socket")?;
    Ok(Some(listener))
}

/// Binds `socket` with `mode`, replacing a stale socket file (one nothing
/// answers on); refuses when a daemon already listens there. The socket
/// appears at its path with its mode already set. A system
/// daemon's UpdateService socket is open to every local user (the access
/// rules decide per request); a per-user daemon's, and every internal
/// one, to the owner only.
fn bind(socket: &Path, mode: u32) -> Result<(UnixListener, Bound)> {
    if socket.exists() && UnixStream::connect(socket).is_ok() {
        bail!("a daemon already listens on {}", socket.display());
    }
    // Bound under a temporary name, given its mode, then renamed into
    // place (over a stale socket): the path never names a socket with the
    // umask's mode, not even for a moment.
    // (A short name: a socket's path is limited to about 100 bytes.)
    let staging = socket.with_file_name(format!(".s{}", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", socket.display()))
        .and_then(|()| {
            std::fs::rename(&staging, socket)
                .with_context(|| format!("cannot listen on {}", socket.display()))
        });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(e);
    }
    let meta = std::fs::symlink_metadata(socket)
        .with_context(|| format!("cannot read {}", socket.display()))?;
    let bound = Bound {
        path: socket.to_path_buf(),
        id: (meta.dev(), meta.ino()),
    };
    Ok((listener, bound))
}

/// Why the daemon should stop, if it should: its version directory is
/// gone, upkeep is being uninstalled, or its role changed (the `active`
/// daemon's version is no longer active; an internal-only daemon's version
/// became active, and must start again to serve UpdateService).
/// Unreadable prefs keep it running (the next look may succeed; commands
/// report the damage).
pub(super) fn unwanted(root: &Path, own: &Version, active: bool) -> Option<String> {
    if !lifecycle::binary_path(root, own).is_file() {
        return Some(format!("{own} is no longer installed"));
    }
    match Prefs::load(&root.join(PREFS_FILE)) {
        Ok(p) if p.uninstalling => Some("upkeep is being uninstalled".to_owned()),
        Ok(p) if !active && p.active_version.as_ref() == Some(own) => Some(format!(
            "{own} is active now; start the daemon again to serve UpdateService"
        )),
        Ok(p) if active && p.active_version.as_ref() != Some(own) => Some(format!(
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

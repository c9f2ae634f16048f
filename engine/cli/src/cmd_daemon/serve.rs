//! One connection: who is asking, what, whether they may, and the answer.
//! Reads run at once; an operation that changes state waits for the one in
//! flight and runs in this process with a [`Relay`] streaming what it
//! reports to the client.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};
use upkeep_client::access::AccessPolicy;
use upkeep_client::ipc::{
    self, InternalRequest, LineError, LineReader, PROTOCOL, Relay, Request, parse_request,
};
use upkeep_client::peer::Peer;
use upkeep_client::statelog::log;
use upkeep_client::{Client, InstallFrom, InstallOptions, Registration};
use upkeep_core::cancel::Cancel;
use upkeep_core::version::Version;

use crate::ops;
use crate::render::Rendered;

/// How long a client has to send its request line, and each write of an
/// answer or event may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the daemon listens.
pub(super) struct Endpoints {
    /// UpdateService's socket, when this is the active version's daemon.
    pub(super) socket: Option<PathBuf>,
    /// Handles on the listening sockets this daemon bound, to end their
    /// accepts with (not one the service manager owns).
    pub(super) wakers: Vec<UnixListener>,
}

/// The state-changing operation in flight.
struct Running {
    op: &'static str,
    uid: u32,
    cancel: Option<Cancel>,
}

/// What the daemon serves, shared by the connection threads.
pub(super) struct Daemon {
    pub(super) root: PathBuf,
    config: Option<PathBuf>,
    /// `--policy`, when the daemon was given one.
    policy_file: Option<PathBuf>,
    pub(super) own: Version,
    exe: PathBuf,
    pub(super) pid: u32,
    policy: AccessPolicy,
    endpoints: Endpoints,
    /// Held by the state-changing operation in flight.
    writer: Mutex<()>,
    running: Mutex<Option<Running>>,
    connections: AtomicUsize,
    last_active: Mutex<Instant>,
    stop: Mutex<Option<String>>,
}

/// Counts a connection while it is served; the daemon it is served by.
pub(super) struct Entered(pub(super) Arc<Daemon>);

impl Drop for Entered {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Daemon {
    pub(super) fn new(
        root: PathBuf,
        (config, policy_file): (Option<PathBuf>, Option<PathBuf>),
        own: Version,
        exe: PathBuf,
        policy: AccessPolicy,
        endpoints: Endpoints,
    ) -> Self {
        Self {
            root,
            config,
            policy_file,
            own,
            exe,
            pid: std::process::id(),
            policy,
            endpoints,
            writer: Mutex::new(()),
            running: Mutex::new(None),
            connections: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
            stop: Mutex::new(None),
        }
    }

    /// A request arrived: the idle clock starts again.
    pub(super) fn touch(&self) {
        *lock(&self.last_active) = Instant::now();
    }

    /// Connections being served.
    pub(super) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Counts a connection until the guard drops.
    pub(super) fn enter(self: &Arc<Self>) -> Entered {
        self.connections.fetch_add(1, Ordering::SeqCst);
        Entered(self.clone())
    }

    /// How long nothing was served (zero while a connection is open).
    pub(super) fn idle_for(&self) -> Duration {
        if self.connections() > 0 {
            return Duration::ZERO;
        }
        lock(&self.last_active).elapsed()
    }

    /// Why the daemon stops, once it does.
    pub(super) fn stopping(&self) -> Option<String> {
        lock(&self.stop).clone()
    }

    /// Stops the daemon: the accept loops end, woken by shutting the
    /// sockets this daemon bound down (their files may be gone already,
    /// with their version directory) and, for one the service manager
    /// owns, by a connection of our own.
    pub(super) fn stop(&self, why: String) {
        let mut slot = lock(&self.stop);
        if slot.is_none() {
            *slot = Some(why);
        }
        drop(slot);
        for listener in &self.endpoints.wakers {
            if let Err(e) = rustix::net::shutdown(listener, rustix::net::Shutdown::Both) {
                tracing::debug!(error = %e, "cannot shut a socket down");
            }
        }
        if let Some(socket) = &self.endpoints.socket {
            let _ = UnixStream::connect(socket);
        }
    }

    /// Whether this daemon serves UpdateService (it is the active version's).
    pub(super) fn serves_update_service(&self) -> bool {
        self.endpoints.socket.is_some()
    }

    /// Raises the cancel flag of the operation in flight; whether there
    /// was one to cancel.
    pub(super) fn cancel_running(&self) -> bool {
        match &*lock(&self.running) {
            Some(Running {
                cancel: Some(c), ..
            }) => {
                c.cancel();
                true
            }
            _ => false,
        }
    }

    /// Waits until no state-changing operation runs.
    pub(super) fn wait_idle(&self) {
        drop(lock(&self.writer));
    }

    /// Waits, at most `limit`, for the connections being served to end:
    /// an answer computed before the daemon stopped (the reply to the
    /// uninstall that made it stop, say) still reaches its client.
    pub(super) fn wait_connections(&self, limit: Duration) {
        let start = Instant::now();
        while self.connections() > 0 && start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A client for one operation, with the daemon's configuration.
    fn client(&self, cancel: Option<Cancel>) -> Result<Client> {
        let mut builder = Client::builder(&self.root).exe(&self.exe);
        if let Some(config) = &self.config {
            builder = builder.config(config);
        }
        if let Some(policy) = &self.policy_file {
            builder = builder.policy(policy);
        }
        if let Some(cancel) = cancel {
            builder = builder.cancel(cancel);
        }
        Ok(builder.open()?)
    }
}

fn refuse(error: impl std::fmt::Display) -> Value {
    json!({"ok": false, "error": error.to_string()})
}

fn answer(rendered: &Rendered) -> Value {
    json!({
        "ok": true,
        "code": rendered.code as i32,
        "stdout": rendered.stdout,
        "stderr": rendered.stderr,
        "result": rendered.result,
    })
}

/// Answers a connection beyond the limit at once.
pub(super) fn refuse_busy(mut stream: UnixStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = ipc::write_line(
        &mut stream,
        &refuse("the daemon is serving too many clients; try again"),
    );
}

/// Reads a connection's request line and who sent it; answers and ends
/// the connection itself when there is none, it is too long, or the
/// caller's credentials cannot be read (`service` names the endpoint in
/// the log).
fn receive(d: &Daemon, stream: UnixStream, service: &str) -> Option<(Peer, LineReader, Vec<u8>)> {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|()| stream.set_write_timeout(Some(CLIENT_TIMEOUT)));
    if let Err(e) = setup {
        tracing::warn!(error = %e, "cannot set up a connection");
        return None;
    }
    let peer = Peer::of(&stream);
    let mut reader = LineReader::new(stream);
    let deadline = Some(Instant::now() + CLIENT_TIMEOUT);
    let line = match reader.read_line(ipc::MAX_REQUEST, deadline) {
        Ok(None) => return None,
        Ok(Some(line)) => line,
        Err(e @ LineError::TooLong(_)) => {
            send(&mut reader, &refuse(format!("request refused: {e}")));
            return None;
        }
        Err(e) => {
            tracing::debug!(error = %e, "a client sent no request");
            send(&mut reader, &refuse(format!("no request: {e}")));
            return None;
        }
    };
    match peer {
        Ok(p) => Some((p, reader, line)),
        Err(e) => {
            let why = format!("refused: cannot read the caller's credentials: {e}");
            log(&d.root, &format!("daemon {}{service}: {why}", d.own));
            send(&mut reader, &refuse(why));
            None
        }
    }
}

/// Serves one connection: who, what, whether they may, the answer.
/// Failures are the client's problem and only traced.
pub(super) fn serve(d: &Daemon, stream: UnixStream) {
    let Some((peer, mut reader, line)) = receive(d, stream, "") else {
        return;
    };
    let request = match parse_request(&line) {
        Ok(r) => r,
        Err(e) => {
            send(&mut reader, &refuse(e));
            return;
        }
    };
    if let Err(refusal) = d.policy.check(&peer, request.name(), request.access()) {
        log(
            &d.root,
            &format!(
                "daemon {}: {refusal} (pid {}, gid {})",
                d.own, peer.pid, peer.gid
            ),
        );
        send(&mut reader, &refuse(refusal));
        return;
    }
    let reply = dispatch(d, &peer, request, &mut reader);
    send(&mut reader, &reply);
}

/// Serves one connection of UpdateServiceInternal: this version's own
/// binary, as this uid, may ping it and have it run its lifecycle step.
pub(super) fn serve_internal(d: &Daemon, stream: UnixStream) {
    let Some((peer, mut reader, line)) = receive(d, stream, " (internal)") else {
        return;
    };
    let request = match ipc::parse::<InternalRequest>(&line) {
        Ok(r) => r,
        Err(e) => {
            send(&mut reader, &refuse(e));
            return;
        }
    };
    if let Err(refusal) = d
        .policy
        .check_internal(&peer, ipc::Op::name(&request), &d.exe)
    {
        log(&d.root, &format!("daemon {} (internal): {refusal}", d.own));
        send(&mut reader, &refuse(refusal));
        return;
    }
    let reply = match request {
        InternalRequest::Ping {} => json!({
            "ok": true, "version": d.own.to_string(), "pid": d.pid,
            "protocol": PROTOCOL, "service": "internal",
        }),
        InternalRequest::Run {} => {
            let _writer = lock(&d.writer);
            let result = wake(d, false, false);
            log_served(d, "run served over internal IPC", &result, peer.uid);
            match result {
                Ok((_, reply)) => reply,
                Err(e) => refuse(format!("{e:#}")),
            }
        }
    };
    send(&mut reader, &reply);
    if let Some(why) = super::listen::unwanted(&d.root, &d.own, d.serves_update_service()) {
        d.stop(why);
    }
}

/// `<what> by <v> (pid N): exit C (uid U)` (or `failed: …`) in the log.
fn log_served(d: &Daemon, what: &str, result: &Result<(i32, Value)>, uid: u32) {
    let how = match result {
        Ok((code, _)) => format!("exit {code}"),
        Err(e) => format!("failed: {e:#}"),
    };
    log(
        &d.root,
        &format!("{what} by {} (pid {}): {how} (uid {uid})", d.own, d.pid),
    );
}

fn send(reader: &mut LineReader, value: &Value) {
    if let Err(e) = ipc::write_line(reader.stream(), value) {
        tracing::debug!(error = %e, "cannot answer a client");
    }
}

fn dispatch(d: &Daemon, peer: &Peer, request: Request, reader: &mut LineReader) -> Value {
    match request {
        Request::Ping {} => json!({
            "ok": true, "version": d.own.to_string(), "pid": d.pid, "protocol": PROTOCOL,
        }),
        Request::Status { json } => match d.client(None).and_then(|c| ops::status(&c, json)) {
            Ok(rendered) => answer(&rendered),
            Err(e) => refuse(format!("{e:#}")),
        },
        Request::Policy { json } => match d.client(None).and_then(|c| ops::policy(&c, json)) {
            Ok(rendered) => answer(&rendered),
            Err(e) => refuse(format!("{e:#}")),
        },
        Request::Cancel {} => cancel(d, peer),
        request => exclusive(d, peer, request, reader),
    }
}

fn cancel(d: &Daemon, peer: &Peer) -> Value {
    let running = lock(&d.running);
    let Some(r) = &*running else {
        return refuse("nothing is in flight to cancel");
    };
    if let Err(refusal) = d.policy.check_cancel(peer, r.op, r.uid) {
        log(&d.root, &format!("daemon {}: {refusal}", d.own));
        return refuse(refusal);
    }
    let Some(flag) = &r.cancel else {
        return refuse(format!("the {} in flight cannot be cancelled", r.op));
    };
    flag.cancel();
    log(
        &d.root,
        &format!(
            "daemon {}: uid {} cancelled the {} in flight",
            d.own, peer.uid, r.op
        ),
    );
    json!({"ok": true, "cancelled": r.op})
}

/// Runs a state-changing request: after the one in flight, alone.
fn exclusive(d: &Daemon, peer: &Peer, request: Request, reader: &mut LineReader) -> Value {
    let _writer = lock(&d.writer);
    if let Some(why) = d.stopping() {
        return refuse(format!("the daemon is stopping ({why})"));
    }
    let op = request.name();
    let cancel = (!matches!(request, Request::Wake { .. })).then(Cancel::new);
    *lock(&d.running) = Some(Running {
        op,
        uid: peer.uid,
        cancel: cancel.clone(),
    });
    let out = match reader.stream().try_clone() {
        Ok(out) => out,
        Err(e) => {
            *lock(&d.running) = None;
            return refuse(format!("cannot stream to the client: {e}"));
        }
    };
    let mut relay = Relay::new(out);
    let result = match request {
        Request::Wake { now, json } => wake(d, now, json),
        request => d
            .client(cancel)
            .and_then(|client| run_op(&client, request, &mut relay))
            .map(|r| (r.code as i32, answer(&r))),
    };
    *lock(&d.running) = None;
    log_served(d, &format!("{op} served over IPC"), &result, peer.uid);
    if let Some(why) = super::listen::unwanted(&d.root, &d.own, d.serves_update_service()) {
        d.stop(why);
    }
    match result {
        Ok((_, reply)) => reply,
        Err(e) => refuse(format!("{e:#}")),
    }
}

fn run_op(client: &Client, request: Request, relay: &mut Relay<UnixStream>) -> Result<Rendered> {
    match request {
        Request::Update { app, json } => {
            let (rendered, replaced) = ops::update(client, app, json, relay)?;
            if let Some((exe, version)) = replaced {
                tracing::warn!(exe = %exe.display(), %version, "a replaced single binary is not the daemon's to restart");
            }
            Ok(rendered)
        }
        Request::Register { registration } => {
            absolute_paths(&registration, None)?;
            ops::register(client, *registration, relay)
        }
        Request::Install {
            registration,
            offline_dir,
            installer_data,
        } => {
            absolute_paths(&registration, offline_dir.as_ref())?;
            let options = InstallOptions {
                from: offline_dir.map_or(InstallFrom::Server, InstallFrom::Offline),
                installer_data,
            };
            ops::install(client, *registration, options, relay)
        }
        Request::AppCommand {
            app,
            name,
            parameters,
        } => ops::app_command(client, &app, &name, &parameters, relay),
        Request::Rollback { app } => ops::rollback(client, &app, relay),
        Request::Remove { app } => ops::remove(client, &app, relay),
        Request::Uninstall {} => ops::uninstall(client, relay),
        other => anyhow::bail!("{} is not an operation of its own", other.name()),
    }
}

/// Refuses a registration (and offline folder) naming a relative path: the
/// daemon's working directory is not the caller's.
fn absolute_paths(r: &Registration, offline_dir: Option<&PathBuf>) -> Result<()> {
    let paths = [Some(&r.install_dir), Some(&r.installer)]
        .into_iter()
        .chain([
            r.existence.as_ref(),
            r.post_install_check.as_ref(),
            r.health_check.as_ref(),
            offline_dir,
        ]);
    if let Some(relative) = paths.flatten().find(|p| !p.is_absolute()) {
        anyhow::bail!(
            "refused: {} is a relative path; a request sent to the daemon names absolute paths",
            relative.display()
        );
    }
    Ok(())
}

/// Runs `<exe> wake --in-process` and reports how it went (its exit
/// status, 128 + the signal when it was killed, and its output): the lock,
/// recovery and a crash belong to that run, never to the daemon.
fn wake(d: &Daemon, now: bool, as_json: bool) -> Result<(i32, Value)> {
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
    if let Some(policy) = &d.policy_file {
        cmd.arg("--policy").arg(policy);
    }
    if now {
        cmd.arg("--now");
    }
    if as_json {
        cmd.arg("--json");
    }
    let out = cmd
        .output()
        .map_err(|e| anyhow::anyhow!("cannot start {} wake: {e}", d.exe.display()))?;
    let code = out.status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + out.status.signal().unwrap_or(0)
    });
    Ok((
        code,
        json!({
            "ok": true,
            "code": code,
            "stdout": String::from_utf8_lossy(&out.stdout),
            "stderr": String::from_utf8_lossy(&out.stderr),
        }),
    ))
}

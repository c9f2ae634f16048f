//! The client side: connect, send one request, hand the event frames to an
//! observer, return the answer.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::frames::{Event, write_line};
use super::line::{LineReader, MAX_RESPONSE};
use super::request::Request;
use crate::observer::{NullObserver, Observer};

/// How long a client waits for a ping's answer.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// Nothing listens: no link, no socket, or a stale one. The caller may
    /// do the work itself.
    #[error("no daemon listens: {0}")]
    NoDaemon(io::Error),
    /// A daemon was there but the exchange broke.
    #[error("{0}")]
    Failed(String),
    /// The daemon answered with a refusal or the operation's error.
    #[error("{0}")]
    Refused(String),
}

/// The answer to a ping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pong {
    /// The daemon's updater version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The protocol version it speaks (daemons before version 1 of the
    /// protocol did not say).
    #[serde(default)]
    pub protocol: Option<u64>,
}

/// The answer to an operation the daemon ran: what the command line would
/// have printed, its exit status, and the typed result as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OpReply {
    /// The exit status.
    pub code: i32,
    /// The standard output.
    #[serde(default)]
    pub stdout: String,
    /// The standard error (a wake's child process).
    #[serde(default)]
    pub stderr: String,
    /// The typed result (a pass report's summary, a registration, …).
    #[serde(default)]
    pub result: Value,
}

/// Sends `request` to the daemon on `socket`, hands each event frame to
/// `observer`, and returns the answer when it says `ok`. `timeout` bounds
/// each read and write (`None`: as long as the operation runs).
pub fn call(
    socket: &Path,
    request: &Request,
    timeout: Option<Duration>,
    observer: &mut dyn Observer,
) -> Result<Value, CallError> {
    let stream = UnixStream::connect(socket).map_err(CallError::NoDaemon)?;
    let failed = |what: &str, e: &dyn std::fmt::Display| CallError::Failed(format!("{what}: {e}"));
    stream
        .set_write_timeout(timeout)
        .map_err(|e| failed("cannot set timeouts", &e))?;
    let mut reader = LineReader::new(stream);
    write_line(reader.stream(), &request.to_json())
        .map_err(|e| failed("cannot send the request", &e))?;
    loop {
        let deadline = timeout.map(|t| Instant::now() + t);
        let line = reader
            .read_line(MAX_RESPONSE, deadline)
            .map_err(|e| failed("no answer", &e))?
            .ok_or_else(|| {
                CallError::Failed("the daemon closed the connection before answering".to_owned())
            })?;
        let frame: Value =
            serde_json::from_slice(&line).map_err(|e| failed("the answer is not JSON", &e))?;
        if Event::is_event(&frame) {
            match serde_json::from_value::<Event>(frame) {
                Ok(event) => event.deliver(observer),
                Err(e) => tracing::debug!(error = %e, "an event frame this client does not know"),
            }
            continue;
        }
        return if frame["ok"] == Value::Bool(true) {
            Ok(frame)
        } else {
            Err(CallError::Refused(
                frame["error"]
                    .as_str()
                    .unwrap_or("the daemon refused without a reason")
                    .to_owned(),
            ))
        };
    }
}

/// Pings the daemon behind `socket`, waiting at most [`PING_TIMEOUT`].
pub fn ping(socket: &Path) -> Result<Pong, CallError> {
    let answer = call(
        socket,
        &Request::Ping {},
        Some(PING_TIMEOUT),
        &mut NullObserver,
    )?;
    serde_json::from_value(answer)
        .map_err(|e| CallError::Failed(format!("a malformed answer to ping: {e}")))
}

/// Asks the daemon behind `socket` to run `request` and waits for it,
/// handing what it reports on the way to `observer`.
pub fn run(
    socket: &Path,
    request: &Request,
    observer: &mut dyn Observer,
) -> Result<OpReply, CallError> {
    let answer = call(socket, request, None, observer)?;
    serde_json::from_value(answer)
        .map_err(|e| CallError::Failed(format!("a malformed answer to {}: {e}", request.name())))
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::ipc::frames::Relay;
    use crate::observer::{Notice, Recorder};

    /// A one-connection daemon that reads the request and writes `frames`.
    fn serve_once(dir: &Path, frames: Vec<Value>) -> std::path::PathBuf {
        let socket = dir.join("s.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = LineReader::new(stream);
            let line = reader.read_line(1024, None).unwrap().unwrap();
            let request: Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(request["v"], 1);
            for f in frames {
                write_line(reader.stream(), &f).unwrap();
            }
        });
        socket
    }

    #[test]
    fn events_reach_the_observer_before_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let mut relay = Relay::new(Vec::new());
        relay.notice(&Notice::LastAppGone);
        let mut frames: Vec<Value> = relay
            .into_inner()
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        frames.push(serde_json::json!({"ok": true, "code": 0, "stdout": "done\n"}));
        let socket = serve_once(dir.path(), frames);
        let mut seen = Recorder::default();
        let reply = run(&socket, &Request::Status { json: false }, &mut seen).unwrap();
        assert_eq!(reply.code, 0);
        assert_eq!(reply.stdout, "done\n");
        assert_eq!(seen.notices, [Notice::LastAppGone]);
    }

    #[test]
    fn a_refusal_and_a_vanished_daemon_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let socket = serve_once(
            dir.path(),
            vec![serde_json::json!({"ok": false, "error": "not for you"})],
        );
        match call(
            &socket,
            &Request::Status { json: false },
            None,
            &mut NullObserver,
        ) {
            Err(CallError::Refused(why)) => assert_eq!(why, "not for you"),
            other => panic!("{other:?}"),
        }
        let dir = tempfile::tempdir().unwrap();
        let socket = serve_once(dir.path(), vec![]);
        assert!(matches!(
            call(
                &socket,
                &Request::Status { json: false },
                None,
                &mut NullObserver
            ),
            Err(CallError::Failed(_))
        ));
        assert!(matches!(
            ping(&dir.path().join("none.sock")),
            Err(CallError::NoDaemon(_))
        ));
    }
}

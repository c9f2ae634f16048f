//! The daemon's IPC protocol and its client (Unix only).
//!
//! The daemon of updater version `<v>` listens on
//! `<root>/versions/<v>/ipc.sock`; clients connect through the stable
//! `<root>/ipc.sock`, a symlink that activation points at the active
//! version's socket. One connection carries one exchange: the client writes
//! one JSON request line, the daemon answers with one JSON response line
//! and closes.
//!
//! ```text
//! {"op":"ping"}                  -> {"ok":true,"version":"0.2.0","pid":4242}
//! {"op":"wake","now":true}       -> {"ok":true,"code":0,"stdout":"…","stderr":"…"}
//! anything else                  -> {"ok":false,"error":"…"}
//! ```
//!
//! See `docs/lifecycle.md` ("Daemon and IPC").

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The longest request line the daemon reads (bytes, without the newline).
pub const MAX_REQUEST: usize = 64 * 1024;
/// The longest response line a client reads: a wake's whole output.
pub const MAX_RESPONSE: usize = 64 * 1024 * 1024;
/// How long a client waits for a ping's answer.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// A request, as the JSON object on the request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    /// Is a daemon there, and which version is it? (A struct variant, so
    /// that unknown fields are refused as for `wake`.)
    Ping {},
    /// Run `upkeep wake` (in a child process of the daemon).
    Wake {
        /// `--now`: check for updates however recent the last check.
        #[serde(default)]
        now: bool,
        /// `--json`: the update summary as JSON.
        #[serde(default)]
        json: bool,
    },
}

/// The answer to a ping.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Pong {
    /// The daemon's updater version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
}

/// The answer to a wake: what the child `wake` printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WakeReply {
    /// Its exit status.
    pub code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Why a line could not be read.
#[derive(Debug)]
pub enum LineError {
    /// The line is longer than allowed.
    TooLong(usize),
    /// The connection failed or timed out.
    Io(io::Error),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::TooLong(max) => write!(f, "the line is longer than {max} bytes"),
            LineError::Io(e) if is_timeout(e) => write!(f, "timed out"),
            LineError::Io(e) => write!(f, "{e}"),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads one line from `stream` (without its newline): at most `max`
/// bytes, and, with a `deadline`, no later than it however slowly the
/// other side writes. `None` when the other side closed before sending a
/// byte; a last line without a newline counts as a line.
pub fn read_line(
    stream: &mut UnixStream,
    max: usize,
    deadline: Option<Instant>,
) -> Result<Option<Vec<u8>>, LineError> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LineError::Io(io::ErrorKind::TimedOut.into()));
            }
            stream.set_read_timeout(Some(left)).map_err(LineError::Io)?;
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        };
        if n == 0 {
            return Ok((!line.is_empty()).then_some(line));
        }
        let got = &chunk[..n];
        if let Some(end) = got.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&got[..end]);
            return if line.len() > max {
                Err(LineError::TooLong(max))
            } else {
                Ok(Some(line))
            };
        }
        line.extend_from_slice(got);
        if line.len() > max {
            return Err(LineError::TooLong(max));
        }
    }
}

/// Writes `value` as one line.
pub fn write_line(stream: &mut UnixStream, value: &Value) -> io::Result<()> {
    let mut text = serde_json::to_vec(value).map_err(io::Error::other)?;
    text.push(b'\n');
    stream.write_all(&text)?;
    stream.flush()
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// Nothing listens: no link, no socket, or a stale one. The caller does
    /// the work itself.
    NoDaemon(io::Error),
    /// A daemon was there but the exchange failed.
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NoDaemon(e) => write!(f, "no daemon listens: {e}"),
            CallError::Failed(why) => write!(f, "{why}"),
        }
    }
}

/// Sends `request` to the daemon listening on `socket` and returns its
/// answer when it says `ok`. `timeout` bounds each read and write (`None`:
/// wait as long as the daemon works, as a wake does).
pub fn call(
    socket: &Path,
    request: &Request,
    timeout: Option<Duration>,
) -> Result<Value, CallError> {
    let mut stream = UnixStream::connect(socket).map_err(CallError::NoDaemon)?;
    let failed = |what: &str, e: &dyn std::fmt::Display| CallError::Failed(format!("{what}: {e}"));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| failed("cannot set timeouts", &e))?;
    let request = serde_json::to_value(request).map_err(|e| failed("cannot encode", &e))?;
    write_line(&mut stream, &request).map_err(|e| failed("cannot send the request", &e))?;
    let line = read_line(&mut stream, MAX_RESPONSE, None)
        .map_err(|e| failed("no answer", &e))?
        .ok_or_else(|| CallError::Failed("the daemon closed the connection".to_owned()))?;
    let answer: Value =
        serde_json::from_slice(&line).map_err(|e| failed("the answer is not JSON", &e))?;
    if answer["ok"] == Value::Bool(true) {
        Ok(answer)
    } else {
        Err(CallError::Failed(format!(
            "the daemon refused: {}",
            answer["error"].as_str().unwrap_or("no reason given")
        )))
    }
}

/// Pings the daemon behind `socket`, waiting at most [`PING_TIMEOUT`].
pub fn ping(socket: &Path) -> Result<Pong, CallError> {
    let answer = call(socket, &Request::Ping {}, Some(PING_TIMEOUT))?;
    serde_json::from_value(answer)
        .map_err(|e| CallError::Failed(format!("a malformed answer to ping: {e}")))
}

/// Asks the daemon behind `socket` to run a wake, and waits for it.
pub fn wake(socket: &Path, now: bool, json: bool) -> Result<WakeReply, CallError> {
    let answer = call(socket, &Request::Wake { now, json }, None)?;
    serde_json::from_value(answer)
        .map_err(|e| CallError::Failed(format!("a malformed answer to wake: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_unknown_ones_do_not() {
        let parse = |s: &str| serde_json::from_str::<Request>(s);
        assert_eq!(parse(r#"{"op":"ping"}"#).unwrap(), Request::Ping {});
        assert_eq!(
            parse(r#"{"op":"wake","now":true}"#).unwrap(),
            Request::Wake {
                now: true,
                json: false
            }
        );
        assert_eq!(
            parse(r#"{"op":"wake"}"#).unwrap(),
            Request::Wake {
                now: false,
                json: false
            }
        );
        for bad in [
            r#"{"op":"reboot"}"#,
            r#"{"op":"wake","now":"yes"}"#,
            r#"{"op":"ping","x":1}"#,
            "[]",
            "",
            "\u{0}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lines_are_capped_and_split_at_the_newline() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(b"{\"op\":\"ping\"}\nrest").unwrap();
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        assert_eq!(
            read_line(&mut b, 100, deadline).unwrap().unwrap(),
            b"{\"op\":\"ping\"}"
        );
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&[b'x'; 300]).unwrap();
        assert!(matches!(
            read_line(&mut b, 100, deadline),
            Err(LineError::TooLong(100))
        ));
        // A silent peer runs into the deadline.
        let (_a, mut b) = UnixStream::pair().unwrap();
        let soon = Some(Instant::now() + Duration::from_millis(100));
        assert!(matches!(
            read_line(&mut b, 100, soon),
            Err(LineError::Io(_))
        ));
        // A closed one is the end.
        let (a, mut b) = UnixStream::pair().unwrap();
        drop(a);
        assert!(read_line(&mut b, 100, deadline).unwrap().is_none());
    }
}

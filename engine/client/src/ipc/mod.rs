//! The daemon's IPC protocol, UpdateService, and its client (the socket
//! parts on Unix only).
//!
//! The daemon of updater version `<v>` listens on
//! `<root>/versions/<v>/ipc.sock`; clients connect through the stable
//! `<root>/ipc.sock`, a symlink that activation points at the active
//! version's socket. One connection carries one exchange: the client
//! writes one request line (a JSON object, at most [`MAX_REQUEST`] bytes,
//! `"v"` the protocol version); the daemon may stream event frames (one
//! JSON object per line, `"event"` set) and ends with one answer frame
//! (`"ok"` set), then closes.
//!
//! ```text
//! {"op":"ping","v":1}            -> {"ok":true,"version":"0.2.0","pid":4242,"protocol":1}
//! {"op":"update","app":"a","v":1} -> {"event":"notice","notice":{…}} … {"ok":true,"code":0,"stdout":"…","result":[…]}
//! anything refused               -> {"ok":false,"error":"…"}
//! ```
//!
//! Which caller may send what is [`crate::access`]'s business. See
//! `docs/service.md`.

#[cfg(unix)]
mod call;
mod frames;
#[cfg(unix)]
mod line;
mod request;

#[cfg(unix)]
pub use call::{CallError, OpReply, PING_TIMEOUT, Pong, call, ping, run};
pub use frames::{Event, PROGRESS_EVERY, Relay, write_line};
#[cfg(unix)]
pub use line::{LineError, LineReader, MAX_REQUEST, MAX_RESPONSE};
pub use request::{Access, PROTOCOL, Request, RequestError, parse_request};

/// Asks the daemon behind `socket` to run a wake, and waits for it.
#[cfg(unix)]
pub fn wake(socket: &std::path::Path, now: bool, json: bool) -> Result<OpReply, CallError> {
    run(
        socket,
        &Request::Wake { now, json },
        &mut crate::observer::NullObserver,
    )
}

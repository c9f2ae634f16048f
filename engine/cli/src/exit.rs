//! How a run of the binary ends when it fails: the error printed once per
//! cause, and a reader that closed standard output taken as a quiet end.

/// A reader that went away (`upkeep repo events | head`) ends the output:
/// `println!` panics on a closed standard output, and that panic is turned
/// into a quiet exit with the status a shell gives a process killed by
/// SIGPIPE. Every other panic is reported as before. (Restoring SIGPIPE's
/// default action instead would also kill the daemon when a client closes
/// its socket.)
pub(crate) fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info);
    }));
}

/// The error and its causes joined by `: `, leaving out a cause whose text
/// the message says already (errors that write their cause into their own
/// message and also name it as their source).
pub(crate) fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

/// Whether a command failed because its reader closed standard output: a
/// broken pipe in the error and a standard output that is closed (a broken
/// pipe to anything else is reported as usual).
pub(crate) fn closed_output(e: &anyhow::Error) -> bool {
    let broken_pipe = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    });
    broken_pipe && stdout_closed()
}

#[cfg(unix)]
fn stdout_closed() -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::OUT)];
    poll(&mut fds, Some(&rustix::event::Timespec::default())).is_ok()
        && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
}

#[cfg(not(unix))]
fn stdout_closed() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_the_message_says_already_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(upkeep_core::tag::file::TagFileError::Io {
            path: "f".into(),
            source: io,
        })
        .context("reading the tag");
        assert_eq!(error_text(&e), "reading the tag: f: gone");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&e), "outer: inner");
    }
}

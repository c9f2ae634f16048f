//! The framing: one JSON value per line, each side with a size cap.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::time::Instant;

/// The longest request line the daemon reads (bytes, without the newline).
pub const MAX_REQUEST: usize = 64 * 1024;
/// The longest frame a client reads: a wake's whole output, a status.
pub const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// The line is longer than allowed.
    #[error("the line is longer than {0} bytes")]
    TooLong(usize),
    /// The connection failed or timed out.
    #[error("{}", describe(.0))]
    Io(io::Error),
}

fn describe(e: &io::Error) -> String {
    if is_timeout(e) {
        "timed out".to_owned()
    } else {
        e.to_string()
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reads lines from a stream, keeping what arrived after a line's newline
/// for the next one.
#[derive(Debug)]
pub struct LineReader {
    stream: UnixStream,
    pending: Vec<u8>,
}

impl LineReader {
    /// A reader on `stream`.
    pub fn new(stream: UnixStream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    /// The stream, to write on or set options of.
    pub fn stream(&mut self) -> &mut UnixStream {
        &mut self.stream
    }

    /// Reads one line (without its newline): at most `max` bytes, and,
    /// with a `deadline`, no later than it however slowly the other side
    /// writes. `None` when the other side closed before sending a byte; a
    /// last line without a newline counts as a line.
    pub fn read_line(
        &mut self,
        max: usize,
        deadline: Option<Instant>,
    ) -> Result<Option<Vec<u8>>, LineError> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=i).collect();
                line.pop();
                if line.len() > max {
                    return Err(LineError::TooLong(max));
                }
                return Ok(Some(line));
            }
            if self.pending.len() > max {
                return Err(LineError::TooLong(max));
            }
            if let Some(deadline) = deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(LineError::Io(io::ErrorKind::TimedOut.into()));
                }
                self.stream
                    .set_read_timeout(Some(left))
                    .map_err(LineError::Io)?;
            } else {
                self.stream.set_read_timeout(None).map_err(LineError::Io)?;
            }
            let n = match self.stream.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LineError::Io(e)),
            };
            if n == 0 {
                let line = std::mem::take(&mut self.pending);
                return Ok((!line.is_empty()).then_some(line));
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    #[test]
    fn lines_are_capped_and_split_at_the_newline() {
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut b = LineReader::new(b);
        a.write_all(b"{\"op\":\"ping\"}\nrest\n").unwrap();
        let deadline = Some(Instant::now() + Duration::from_secs(5));
        assert_eq!(
            b.read_line(100, deadline).unwrap().unwrap(),
            b"{\"op\":\"ping\"}"
        );
        // What followed the newline is the next line.
        assert_eq!(b.read_line(100, deadline).unwrap().unwrap(), b"rest");
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut b = LineReader::new(b);
        a.write_all(&[b'x'; 300]).unwrap();
        assert!(matches!(
            b.read_line(100, deadline),
            Err(LineError::TooLong(100))
        ));
        // A silent peer runs into the deadline.
        let (_a, b) = UnixStream::pair().unwrap();
        let mut b = LineReader::new(b);
        let soon = Some(Instant::now() + Duration::from_millis(100));
        assert!(matches!(b.read_line(100, soon), Err(LineError::Io(_))));
        // A closed one is the end; a half line before the close counts.
        let (a, b) = UnixStream::pair().unwrap();
        let mut b = LineReader::new(b);
        drop(a);
        assert!(b.read_line(100, deadline).unwrap().is_none());
        let (mut a, b) = UnixStream::pair().unwrap();
        let mut b = LineReader::new(b);
        a.write_all(b"{\"op\":").unwrap();
        drop(a);
        assert_eq!(b.read_line(100, deadline).unwrap().unwrap(), b"{\"op\":");
    }
}

//! The frames a daemon streams before its answer: what the operation's
//! [`Observer`] heard, so the client's own observer hears the same.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::observer::{Notice, Observer, Progress, Warning};

/// How often at most a download's progress is sent (its last bytes always are).
pub const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Writes `value` as one line.
pub fn write_line(stream: &mut impl Write, value: &Value) -> io::Result<()> {
    let mut text = serde_json::to_vec(value).map_err(io::Error::other)?;
    text.push(b'\n');
    stream.write_all(&text)?;
    stream.flush()
}

/// One frame before the answer: `{"event": "notice" | "warning" | "progress", …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A [`Notice`].
    Notice {
        /// It.
        notice: Notice,
    },
    /// A [`Warning`].
    Warning {
        /// It.
        warning: Warning,
    },
    /// A download's [`Progress`].
    Progress {
        /// The app.
        app: String,
        /// The package's file name.
        file: String,
        /// The URL being read.
        url: String,
        /// Bytes staged so far.
        received: u64,
        /// The signed length.
        total: u64,
    },
}

impl Event {
    /// Hands the event to `observer`.
    pub fn deliver(&self, observer: &mut dyn Observer) {
        match self {
            Event::Notice { notice } => observer.notice(notice),
            Event::Warning { warning } => observer.warning(warning),
            Event::Progress {
                app,
                file,
                url,
                received,
                total,
            } => observer.progress(&Progress {
                app,
                file,
                url,
                received: *received,
                total: *total,
            }),
        }
    }

    /// Whether a frame is an event (else it is the answer).
    pub fn is_event(frame: &Value) -> bool {
        frame.get("event").is_some()
    }
}

/// An observer that sends what it hears as event frames to `out`. A client
/// that went away stops the frames, not the operation.
pub struct Relay<W: Write> {
    out: W,
    gone: bool,
    last_progress: Option<Instant>,
}

impl<W: Write> Relay<W> {
    /// A relay writing to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            gone: false,
            last_progress: None,
        }
    }

    /// Whether the client stopped reading.
    pub fn client_gone(&self) -> bool {
        self.gone
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn send(&mut self, event: &Event) {
        if self.gone {
            return;
        }
        let value = serde_json::to_value(event).unwrap_or(Value::Null);
        if let Err(e) = write_line(&mut self.out, &value) {
            tracing::debug!(error = %e, "the client stopped reading; the operation goes on");
            self.gone = true;
        }
    }
}

impl<W: Write> Observer for Relay<W> {
    fn notice(&mut self, notice: &Notice) {
        self.send(&Event::Notice {
            notice: notice.clone(),
        });
    }

    fn warning(&mut self, warning: &Warning) {
        self.send(&Event::Warning {
            warning: warning.clone(),
        });
    }

    fn progress(&mut self, p: &Progress<'_>) {
        let due = self
            .last_progress
            .is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
        if !due && p.received != p.total {
            return;
        }
        self.last_progress = Some(Instant::now());
        self.send(&Event::Progress {
            app: p.app.to_owned(),
            file: p.file.to_owned(),
            url: p.url.to_owned(),
            received: p.received,
            total: p.total,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::Recorder;

    #[test]
    fn what_a_relay_sends_reaches_the_other_observer() {
        let mut relay = Relay::new(Vec::new());
        relay.notice(&Notice::Qualifying("1.2".parse().unwrap()));
        relay.warning(&Warning::app("a", "careful"));
        for received in [10, 20, 30] {
            relay.progress(&Progress {
                app: "a",
                file: "f",
                url: "http://x/f",
                received,
                total: 30,
            });
        }
        let bytes = relay.into_inner();
        let mut seen = Recorder::default();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let value: Value = serde_json::from_slice(line).unwrap();
            assert!(Event::is_event(&value));
            serde_json::from_value::<Event>(value)
                .unwrap()
                .deliver(&mut seen);
        }
        assert_eq!(seen.notices, [Notice::Qualifying("1.2".parse().unwrap())]);
        assert_eq!(seen.warnings, [Warning::app("a", "careful")]);
        // The first report and the last; the one between was too soon.
        assert_eq!(seen.progress_reports, 2);
    }

    #[test]
    fn a_client_gone_stops_the_frames() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut relay = Relay::new(Broken);
        relay.warning(&Warning::general("x"));
        assert!(relay.client_gone());
    }
}

//! How the command line shows the engine at work: an [`Observer`] writing
//! to stderr (a progress bar on a terminal, a line per download
//! otherwise), and an update pass's report as lines or JSON on stdout.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use upkeep_client::{AppOutcome, Notice, Observer, PassReport, Progress, Status, Warning};
use upkeep_core::version::Version;

use crate::ExitCode;

/// Writes what the engine reports to stderr.
pub struct Terminal {
    tty: bool,
    last_draw: Option<Instant>,
    /// A progress bar is on the current line.
    drawing: bool,
}

impl Terminal {
    /// Progress bars when stderr is a terminal.
    pub fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            last_draw: None,
            drawing: false,
        }
    }

    fn end_bar(&mut self) {
        if self.drawing {
            eprintln!();
            self.drawing = false;
        }
    }
}

impl Observer for Terminal {
    fn notice(&mut self, notice: &Notice) {
        match notice {
            Notice::Downloading { .. } if self.tty => {}
            Notice::DownloadFailed { .. } => self.end_bar(),
            Notice::Downloading { .. }
            | Notice::Downloaded { .. }
            | Notice::OfflinePackageVerified { .. }
            | Notice::InstallerNote { .. } => {
                self.end_bar();
                eprintln!("{notice}");
            }
            Notice::Qualifying(_) | Notice::Qualification { .. } | Notice::Activated { .. } => {
                eprintln!("upkeep {notice}");
            }
            Notice::RegisteredSelf { .. }
            | Notice::InstalledSideBySide { .. }
            | Notice::LastAppGone
            | Notice::Uninstalled { .. } => println!("{notice}"),
            _ => eprintln!("upkeep: {notice}"),
        }
    }

    fn warning(&mut self, warning: &Warning) {
        self.end_bar();
        eprintln!("upkeep: warning: {warning}");
    }

    fn progress(&mut self, p: &Progress<'_>) {
        if !self.tty {
            return;
        }
        let due = self
            .last_draw
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if !due && p.received != p.total {
            return;
        }
        self.last_draw = Some(Instant::now());
        let pct = (p.received as f64 * 100.0 / p.total.max(1) as f64) as u64;
        let width = 30usize;
        let filled = (pct as usize * width / 100).min(width);
        eprint!(
            "\r{} [{}{}] {pct:>3}% {}/{} bytes",
            p.file,
            "#".repeat(filled),
            " ".repeat(width - filled),
            p.received,
            p.total
        );
        let _ = std::io::stderr().flush();
        self.drawing = true;
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What a command prints and how it ends: made once, then printed here or
/// sent by the daemon to the client that asked.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// How it ends.
    pub code: ExitCode,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error (besides what the observer wrote as it went).
    pub stderr: String,
    /// The typed result, as JSON (for IPC clients).
    pub result: Value,
}

impl Rendered {
    /// `line` on stdout, exit status 0, `result`.
    pub fn line(line: String, result: Value) -> Self {
        Self {
            code: ExitCode::Ok,
            stdout: line + "\n",
            stderr: String::new(),
            result,
        }
    }

    /// Writes it out and returns the exit status.
    pub fn print(&self) -> ExitCode {
        let _ = std::io::stdout().write_all(self.stdout.as_bytes());
        let _ = std::io::stderr().write_all(self.stderr.as_bytes());
        let _ = std::io::stdout().flush();
        self.code
    }
}

/// Renders what a pass did (lines, or JSON with `json`); the exit status is
/// failed when an app failed.
pub fn render_pass(pass: &PassReport, json: bool) -> Result<Rendered> {
    let mut out = String::new();
    let mut err = String::new();
    let mut summary = Vec::new();
    for report in &pass.apps {
        let id = &report.app;
        match &report.outcome {
            AppOutcome::Removed { version } => {
                if !json {
                    out += &format!("{id}: no longer installed (existence check); forgotten\n");
                }
                summary
                    .push(json!({"app": id, "result": "removed", "version": version.to_string()}));
            }
            AppOutcome::UpToDate { version } => {
                if !json {
                    out += &format!("{id}: up to date at {version}\n");
                }
                summary.push(
                    json!({"app": id, "result": "up-to-date", "version": version.to_string()}),
                );
            }
            AppOutcome::Held { version, hold } => {
                if !json {
                    out += &format!("{id}: stays at {version}: {hold}\n");
                }
                summary.push(json!({
                    "app": id, "result": "held", "version": version.to_string(),
                    "hold": hold.code(), "reason": hold.to_string(),
                }));
            }
            AppOutcome::Updated {
                from,
                to,
                downloads,
                install_time,
                staged,
            } => {
                if !json {
                    if *staged {
                        out += &format!(
                            "{id}: installed {to} side by side (running {from}); it takes over once qualified and activated\n"
                        );
                    } else if *from == Version::default() {
                        out += &format!("{id}: installed {to}\n");
                    } else {
                        out += &format!("{id}: updated {from} -> {to}\n");
                    }
                }
                let downloads: Vec<Value> = downloads
                    .iter()
                    .map(|d| {
                        json!({
                            "url": d.url, "downloaded_bytes": d.downloaded_bytes,
                            "total_bytes": d.total_bytes, "resumed_from": d.resumed_from,
                            "reused": d.reused, "download_time_ms": ms(d.duration),
                        })
                    })
                    .collect();
                summary.push(json!({
                    "app": id, "result": if *staged { "staged" } else { "updated" },
                    "previous_version": from.to_string(), "version": to.to_string(),
                    "downloads": downloads, "install_time_ms": ms(*install_time),
                }));
            }
            AppOutcome::Failed {
                version,
                next,
                error,
            } => {
                err += &format!("upkeep: error: {id}: {error}\n");
                let (category, code, extra) = error.omaha();
                summary.push(json!({
                    "app": id, "result": "error",
                    "version": version.as_ref().map(ToString::to_string),
                    "next_version": next.as_ref().map(ToString::to_string),
                    "error": {
                        "category": category.code(), "code": code,
                        "extra_code": extra, "message": error.to_string(),
                    },
                }));
            }
        }
    }
    let result = json!({
        "apps": summary,
        "retry_after_seconds": pass.retry_after.map(|d| d.as_secs()),
        "session_id": pass.session,
    });
    if json {
        out = serde_json::to_string_pretty(&result).context("cannot write the summary")? + "\n";
    }
    Ok(Rendered {
        code: if pass.failed() {
            ExitCode::Failed
        } else {
            ExitCode::Ok
        },
        stdout: out,
        stderr: err,
        result,
    })
}

/// `upkeep status` as lines.
pub fn status_text(s: &Status) -> String {
    let mut out = String::new();
    let mut line = |l: String| {
        out.push_str(&l);
        out.push('\n');
    };
    line(format!(
        "state root  {} ({} scope)",
        s.root.display(),
        s.scope
    ));
    line(format!("lock        {}", s.lock));
    line(format!(
        "active      {}",
        s.active_version.as_deref().unwrap_or("none")
    ));
    if let Some(to) = &s.swapping {
        line(format!(
            "swapping    to {to} (an activation is in progress or was interrupted)"
        ));
    }
    if let Some(p) = &s.pending_switch {
        line(format!("pending     {} {} -> {}", p.app, p.from, p.to));
    }
    if s.outbox.pending > 0 || s.outbox.dropped > 0 {
        line(format!(
            "outbox      {} event(s) waiting ({} for the server), {} dropped by the cap",
            s.outbox.pending, s.outbox.unacknowledged, s.outbox.dropped
        ));
    }
    for v in &s.versions {
        line(format!(
            "version     {} {}{}",
            v.version,
            v.state,
            v.qualification
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ));
    }
    for a in &s.apps {
        line(format!(
            "app         {} {}{} in {}",
            a.app,
            a.version,
            if a.updater { " (upkeep itself)" } else { "" },
            a.install_dir.display()
        ));
    }
    if let Some(service) = &s.service {
        line(format!("service     {service}"));
    }
    if let Some(link) = &s.ipc.link {
        let daemon = match &s.ipc.daemon {
            Some(d) => format!("daemon {} answers (pid {})", d.version, d.pid),
            None => "no daemon answers; wake runs in-process".to_owned(),
        };
        line(format!(
            "ipc         {} -> {}: {daemon}",
            upkeep_core::lifecycle::ipc_link_path(&s.root).display(),
            link.display()
        ));
    }
    out
}

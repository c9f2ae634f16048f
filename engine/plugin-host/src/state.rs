//! What a store carries during one plugin call: the WASI context (only the
//! granted preopens), the limits, the log budget, and the host interface
//! implementation the plugin imports.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cap_std::fs::Dir;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{host, types};

/// A progress report from a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Units done.
    pub completed: u64,
    /// Units in all; 0 when unknown.
    pub total: u64,
    /// A short note.
    pub note: String,
}

/// A log record from a plugin, as kept in a call's report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogRecord {
    /// Severity.
    pub level: &'static str,
    /// The message (cut at [`MAX_LOG_MESSAGE`] bytes).
    pub message: String,
}

/// Longest single log message kept; longer ones are cut.
pub const MAX_LOG_MESSAGE: usize = 4096;

/// Receives progress reports during a call.
pub type ProgressSink = Box<dyn FnMut(&Progress) + Send>;

/// The store data of one call.
pub struct CallState {
    pub(crate) plugin: String,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: CallLimiter,
    pub(crate) app: Option<types::AppInfo>,
    /// Read-write mounts by guest path, for `set-permissions`.
    pub(crate) writable: BTreeMap<String, Dir>,
    pub(crate) log: LogBudget,
    pub(crate) progress: Option<ProgressSink>,
    pub(crate) last_progress: Option<Progress>,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Bytes of log output one call may still emit, and what was dropped.
#[derive(Debug)]
pub(crate) struct LogBudget {
    pub(crate) remaining: usize,
    pub(crate) dropped: u64,
    pub(crate) records: Vec<LogRecord>,
}

impl LogBudget {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            remaining: max_bytes,
            dropped: 0,
            records: Vec::new(),
        }
    }
}

/// Memory and table limits of one call, remembering what tripped them.
#[derive(Debug)]
pub(crate) struct CallLimiter {
    pub(crate) memory_bytes: usize,
    pub(crate) table_elements: usize,
    pub(crate) instances: usize,
    /// The size a refused memory growth asked for.
    pub(crate) memory_refused: Option<usize>,
}

impl wasmtime::ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_refused = Some(desired);
            // Refuse the growth: memory.grow returns -1 and the plugin decides
            // (Rust's allocator aborts, which traps; the host reports the limit).
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.instances
    }

    fn memories(&self) -> usize {
        self.instances
    }
}

fn level_name(level: types::LogLevel) -> &'static str {
    match level {
        types::LogLevel::Trace => "trace",
        types::LogLevel::Debug => "debug",
        types::LogLevel::Info => "info",
        types::LogLevel::Warn => "warn",
        types::LogLevel::Error => "error",
    }
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl types::Host for CallState {}

impl host::Host for CallState {
    fn log(&mut self, level: types::LogLevel, message: String) {
        let message = cut(message, MAX_LOG_MESSAGE);
        let cost = message.len().max(1);
        if cost > self.log.remaining {
            self.log.remaining = 0;
            self.log.dropped += 1;
            return;
        }
        self.log.remaining -= cost;
        let plugin = self.plugin.as_str();
        match level {
            types::LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            types::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            types::LogLevel::Info => tracing::info!(plugin, "{message}"),
            types::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            types::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
        self.log.records.push(LogRecord {
            level: level_name(level),
            message,
        });
    }

    fn report_progress(&mut self, completed: u64, total: u64, note: String) {
        let p = Progress {
            completed,
            total,
            note: cut(note, 256),
        };
        if let Some(sink) = self.progress.as_mut() {
            sink(&p);
        }
        self.last_progress = Some(p);
    }

    fn app(&mut self) -> Option<types::AppInfo> {
        self.app.clone()
    }

    fn set_permissions(&mut self, mount: String, path: String, mode: u32) -> Result<(), String> {
        if mode & !0o777 != 0 {
            return Err(format!(
                "mode {mode:#o} has bits beyond 0o777; setuid, setgid and sticky bits are not allowed"
            ));
        }
        let Some(dir) = self.writable.get(&mount) else {
            return Err(format!("{mount:?} is not a read-write mount of this call"));
        };
        set_mode(dir, &path, mode)
    }
}

#[cfg(unix)]
fn set_mode(dir: &Dir, path: &str, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let rel = PathBuf::from(path);
    if rel.is_absolute() {
        return Err(format!(
            "{path:?} is absolute; give a path relative to the mount"
        ));
    }
    let perms = cap_std::fs::Permissions::from_std(std::fs::Permissions::from_mode(mode));
    // cap-std resolves the path inside `dir` only: `..` past the root and
    // symlinks that lead outside are refused.
    dir.set_permissions(&rel, perms)
        .map_err(|e| format!("cannot set mode of {path:?}: {e}"))
}

#[cfg(not(unix))]
fn set_mode(_dir: &Dir, path: &str, _mode: u32) -> Result<(), String> {
    Err(format!(
        "cannot set mode of {path:?}: Unix permissions do not exist on this platform"
    ))
}

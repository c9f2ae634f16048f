//! Named crash points: the steps of an update, an install, an activation and
//! a self-update at which a process may die.
//!
//! Every step that changes state on disk calls [`point`] with a stable
//! name. In debug builds (the ones the test suite runs) two environment
//! variables act on them:
//!
//! - `UPKEEP_CRASH_TRACE=FILE` appends one line per point reached to `FILE`,
//!   `PROC:NAME#N`: the `N`-th time process `PROC` reached `NAME`, so a
//!   test can list every step an operation takes;
//! - `UPKEEP_CRASH_AT=PROC:NAME#N` aborts process `PROC` the `N`-th time it
//!   reaches `NAME`: no destructor runs, no buffer is flushed, no lock is
//!   released except by the kernel, as if the process had been killed at
//!   that instant.
//!
//! `PROC` names a process in the tree one command starts: `0` is the first,
//! `0.1` the first `upkeep` it starts (through [`child_tag`]), and so on.
//!
//! Release builds compile [`point`] to nothing and never read either
//! variable, so a production machine cannot be told to crash.

/// The environment variable naming the point to abort at.
pub const CRASH_AT_ENV: &str = "UPKEEP_CRASH_AT";
/// The environment variable naming the trace file.
pub const CRASH_TRACE_ENV: &str = "UPKEEP_CRASH_TRACE";
/// The environment variable naming this process in the trace.
pub const CRASH_PROC_ENV: &str = "UPKEEP_CRASH_PROC";

/// The tag the next `upkeep` process this one starts goes by, to pass in
/// [`CRASH_PROC_ENV`] (`None` when crash points are compiled out or
/// unused).
pub fn child_tag() -> Option<String> {
    #[cfg(debug_assertions)]
    {
        armed::child_tag()
    }
    #[cfg(not(debug_assertions))]
    {
        None
    }
}

/// Marks the crash point `name` (a release build does nothing).
#[inline]
pub fn point(name: &'static str) {
    #[cfg(debug_assertions)]
    armed::reach(name);
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Whether this build honours the crash-point variables.
pub const fn enabled() -> bool {
    cfg!(debug_assertions)
}

#[cfg(debug_assertions)]
mod armed {
    use std::collections::HashMap;
    use std::io::Write;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Mutex, OnceLock};

    static COUNTS: OnceLock<Mutex<HashMap<&'static str, u32>>> = OnceLock::new();
    static CHILDREN: AtomicU32 = AtomicU32::new(0);

    fn proc_tag() -> String {
        std::env::var(super::CRASH_PROC_ENV).unwrap_or_else(|_| "0".to_owned())
    }

    pub(super) fn child_tag() -> Option<String> {
        if std::env::var_os(super::CRASH_AT_ENV).is_none()
            && std::env::var_os(super::CRASH_TRACE_ENV).is_none()
        {
            return None;
        }
        let n = CHILDREN.fetch_add(1, Ordering::Relaxed) + 1;
        Some(format!("{}.{n}", proc_tag()))
    }

    pub(super) fn reach(name: &'static str) {
        let target = std::env::var(super::CRASH_AT_ENV).ok();
        let trace = std::env::var_os(super::CRASH_TRACE_ENV);
        if target.is_none() && trace.is_none() {
            return;
        }
        let occurrence = {
            let counts = COUNTS.get_or_init(|| Mutex::new(HashMap::new()));
            let mut counts = match counts.lock() {
                Ok(c) => c,
                Err(poisoned) => poisoned.into_inner(),
            };
            let n = counts.entry(name).or_insert(0);
            *n += 1;
            *n
        };
        let here = format!("{}:{name}#{occurrence}", proc_tag());
        if let Some(path) = trace
            && let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
        {
            let _ = writeln!(f, "{here}");
        }
        if target.as_deref() == Some(here.as_str()) {
            let _ = writeln!(
                std::io::stderr(),
                "upkeep: crash point {here} reached: aborting"
            );
            std::process::abort();
        }
    }
}

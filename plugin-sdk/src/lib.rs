//! Write upkeep plugins in Rust.
//!
//! An upkeep plugin is a WebAssembly component implementing one world of the
//! `upkeep:plugin@0.1.0` WIT package (`wit/` at the repository root). This
//! crate carries the generated guest bindings for the world you pick with a
//! cargo feature, one trait per world, an export macro per world and a few
//! helpers around the `host` interface (logging, progress, app info, file
//! modes).
//!
//! | feature             | trait to implement | export macro              |
//! |---------------------|--------------------|---------------------------|
//! | `qualifier`         | [`Qualifier`]      | `export_qualifier!`       |
//! | `existence-checker` | [`ExistenceChecker`] | `export_existence_checker!` |
//! | `installer`         | [`Installer`]      | `export_installer!`       |
//! | `telemetry-sink`    | [`TelemetrySink`]  | `export_telemetry_sink!`  |
//!
//! Directories reach a plugin as WASI preopens at fixed guest paths: the
//! installer sees the payload at `/payload` (read-only) and the install
//! directory at `/install` (read-write); qualifiers and existence checkers see
//! the app at `/app` (read-only); telemetry sinks keep data in `/data`
//! (read-write). Use `std::fs` on those paths. Only mounts the plugin's
//! manifest requests are there.
//!
//! # An existence checker
//!
//! ```ignore
//! use upkeep_plugin_sdk::{ExistenceChecker, Presence, Registration, info};
//!
//! struct Checker;
//!
//! impl ExistenceChecker for Checker {
//!     fn check(registration: Registration) -> Presence {
//!         let Some(dir) = registration.app_dir else { return Presence::Absent };
//!         let marker = registration.marker.unwrap_or_default();
//!         let path = std::path::Path::new(&dir).join(marker);
//!         info!("looking for {}", path.display());
//!         if path.exists() { Presence::Present } else { Presence::Absent }
//!     }
//! }
//!
//! upkeep_plugin_sdk::export_existence_checker!(Checker);
//! ```
//!
//! # An installer
//!
//! ```ignore
//! use upkeep_plugin_sdk::{Installer, InstallRequest, InstallSuccess, InstallError, Operation};
//!
//! struct Copy;
//!
//! impl Installer for Copy {
//!     fn run(req: InstallRequest) -> Result<InstallSuccess, InstallError> {
//!         let fail = |code, message: String| InstallError { code, extra_code: 0, message };
//!         match req.operation {
//!             Operation::Uninstall => std::fs::remove_file("/install/app.bin")
//!                 .map_err(|e| fail(2, e.to_string()))?,
//!             _ => {
//!                 let payload = req.payload_dir.ok_or_else(|| fail(1, "no payload".into()))?;
//!                 std::fs::copy(format!("{payload}/app.bin"), "/install/app.bin")
//!                     .map_err(|e| fail(3, e.to_string()))?;
//!             }
//!         }
//!         Ok(InstallSuccess { message: None })
//!     }
//! }
//!
//! upkeep_plugin_sdk::export_installer!(Copy);
//! ```
//!
//! # A qualifier
//!
//! ```ignore
//! use upkeep_plugin_sdk::{Qualifier, QualificationRequest, Verdict};
//!
//! struct SelfTest;
//!
//! impl Qualifier for SelfTest {
//!     fn qualify(req: QualificationRequest) -> Verdict {
//!         match std::fs::read_to_string(format!("{}/VERSION", req.app_dir)) {
//!             Ok(v) if v.trim() == req.app_version => Verdict::Pass,
//!             Ok(v) => Verdict::Fail(format!("VERSION says {}, expected {}", v.trim(), req.app_version)),
//!             Err(e) => Verdict::Fail(format!("cannot read VERSION: {e}")),
//!         }
//!     }
//! }
//!
//! upkeep_plugin_sdk::export_qualifier!(SelfTest);
//! ```
//!
//! # A telemetry sink
//!
//! ```ignore
//! use std::io::Write;
//! use upkeep_plugin_sdk::{TelemetrySink, EventBatch};
//!
//! struct Count;
//!
//! impl TelemetrySink for Count {
//!     fn consume(batch: EventBatch) -> Result<(), String> {
//!         let mut f = std::fs::OpenOptions::new().create(true).append(true)
//!             .open(format!("{}/count", batch.data_dir)).map_err(|e| e.to_string())?;
//!         writeln!(f, "{}", batch.events.len()).map_err(|e| e.to_string())
//!     }
//! }
//!
//! upkeep_plugin_sdk::export_telemetry_sink!(Count);
//! ```
#![deny(missing_docs)]

#[cfg(any(
    all(feature = "qualifier", any(feature = "existence-checker", feature = "installer", feature = "telemetry-sink")),
    all(feature = "existence-checker", any(feature = "installer", feature = "telemetry-sink")),
    all(feature = "installer", feature = "telemetry-sink"),
))]
compile_error!(
    "upkeep-plugin-sdk: enable exactly one world feature. When several plugins share a \
     cargo workspace, build each on its own (`cargo build -p NAME`) so their features are not merged."
);

#[cfg(not(any(
    feature = "qualifier",
    feature = "existence-checker",
    feature = "installer",
    feature = "telemetry-sink"
)))]
compile_error!(
    "upkeep-plugin-sdk: enable one world feature: qualifier, existence-checker, installer or telemetry-sink"
);

#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs)]

    #[cfg(feature = "qualifier")]
    wit_bindgen::generate!({
        world: "qualifier",
        path: "../wit/upkeep-plugin@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_qualifier",
        default_bindings_module: "upkeep_plugin_sdk::bindings",
    });

    #[cfg(feature = "existence-checker")]
    wit_bindgen::generate!({
        world: "existence-checker",
        path: "../wit/upkeep-plugin@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_existence_checker",
        default_bindings_module: "upkeep_plugin_sdk::bindings",
    });

    #[cfg(feature = "installer")]
    wit_bindgen::generate!({
        world: "installer",
        path: "../wit/upkeep-plugin@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_installer",
        default_bindings_module: "upkeep_plugin_sdk::bindings",
    });

    #[cfg(feature = "telemetry-sink")]
    wit_bindgen::generate!({
        world: "telemetry-sink",
        path: "../wit/upkeep-plugin@0.1.0",
        pub_export_macro: true,
        export_macro_name: "export_telemetry_sink",
        default_bindings_module: "upkeep_plugin_sdk::bindings",
    });
}

pub use bindings::upkeep::plugin::types::{AppInfo, LogLevel};

#[cfg(feature = "qualifier")]
pub use bindings::{Guest as Qualifier, QualificationRequest, Verdict, export_qualifier};

#[cfg(feature = "existence-checker")]
pub use bindings::{Guest as ExistenceChecker, Presence, Registration, export_existence_checker};

#[cfg(feature = "installer")]
pub use bindings::{Guest as Installer, InstallError, InstallRequest, InstallSuccess, Operation, export_installer};

#[cfg(feature = "telemetry-sink")]
pub use bindings::{EventBatch, export_telemetry_sink};
#[cfg(feature = "telemetry-sink")]
pub use bindings::Guest as TelemetrySink;
#[cfg(feature = "telemetry-sink")]
pub use bindings::upkeep::plugin::types::{DownloadStats, ErrorCategory, EventResult, EventType, UpdateEvent};

use bindings::upkeep::plugin::host;

/// Writes a log record into the engine's log.
pub fn log(level: LogLevel, message: &str) {
    host::log(level, message);
}

/// Reports progress: `completed` of `total` units (0 when unknown).
pub fn progress(completed: u64, total: u64, note: &str) {
    host::report_progress(completed, total, note);
}

/// The app the current call concerns, if any.
pub fn app() -> Option<AppInfo> {
    host::app()
}

/// Sets the Unix permission bits (at most 0o777) of `path`, relative to the
/// read-write mount at `mount` (for example `"/install"`).
pub fn set_permissions(mount: &str, path: &str, mode: u32) -> Result<(), String> {
    host::set_permissions(mount, path, mode)
}

/// Logs at info level with `format!` syntax.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log($crate::LogLevel::Info, &format!($($arg)*)) };
}

/// Logs at debug level with `format!` syntax.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log($crate::LogLevel::Debug, &format!($($arg)*)) };
}

/// Logs at warn level with `format!` syntax.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log($crate::LogLevel::Warn, &format!($($arg)*)) };
}

/// Logs at error level with `format!` syntax.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log($crate::LogLevel::Error, &format!($($arg)*)) };
}

/// Joins `relative` onto a guest mount path, refusing absolute paths and
/// `..` so a value taken from a payload or a registration cannot leave the
/// mount. (The host enforces this too; this gives a clear error early.)
pub fn join_inside(mount: &str, relative: &str) -> Result<String, String> {
    let mut out = mount.trim_end_matches('/').to_string();
    if relative.starts_with('/') || relative.starts_with('\\') {
        return Err(format!("{relative:?} is absolute; expected a path inside {mount}"));
    }
    for part in relative.split(['/', '\\']) {
        match part {
            "" | "." => continue,
            ".." => return Err(format!("{relative:?} leaves {mount} through '..'")),
            p => {
                out.push('/');
                out.push_str(p);
            }
        }
    }
    Ok(out)
}

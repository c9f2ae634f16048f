//! The upkeep plugin host.
//!
//! Vendors customise upkeep with WebAssembly components that implement one
//! world of the `upkeep:plugin` WIT package (`wit/` at the repository root):
//! qualifier, existence checker, installer or telemetry sink. This crate
//! loads them with wasmtime and runs every call in its own store, under
//! memory, table, instance, stack and time limits, with nothing from the
//! machine but the directories the plugin's manifest asked for and the
//! caller offered.
//!
//! ```no_run
//! use upkeep_plugin_host::{HostConfig, PluginHost, ExistenceInput, CallOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let host = PluginHost::new(HostConfig::with_cache("/var/cache/upkeep/plugins"))?;
//! let plugin = host.load("plugins/exists-path.wasm".as_ref())?;
//! let input = ExistenceInput {
//!     app_id: "org.example.app".into(),
//!     version: "1.2.3".into(),
//!     app_dir: Some("/opt/example".into()),
//!     marker: Some("bin/example".into()),
//!     ..Default::default()
//! };
//! let report = host.check_existence(&plugin, &input, CallOptions::default())?;
//! println!("{:?}", report.value);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod bindings;
pub mod cache;
pub mod config;
pub mod error;
mod host;
pub mod inspect;
pub mod installer_data;
pub mod manifest;
pub mod state;
mod ticker;
pub mod world;

pub use cache::CacheOutcome;
pub use config::HostConfig;
pub use error::PluginError;
pub use host::{
    CallOptions, CallReport, EffectiveLimits, ExistenceInput, InstallInput, Offer, Plugin,
    PluginHost, QualifyInput, TelemetryInput,
};
pub use manifest::{Access, Manifest};
pub use world::World;

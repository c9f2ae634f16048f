//! `upkeep-client`: the upkeep update engine as a library.
//!
//! Open a [`Client`] on a state root and call what the `upkeep` command
//! line offers: [`Client::register`], [`Client::update`],
//! [`Client::rollback`], [`Client::uninstall_app`], [`Client::status`],
//! [`Client::wake`], [`Client::setup`], [`Client::uninstall`]. Each returns
//! a typed result; while it works, it reports to an [`Observer`] (download
//! bytes, steps, settled leftovers, warnings) and never prints.
//!
//! The engine reaches plugins through the role traits in [`plugins`]
//! (implemented over the wasmtime host by [`WasmPlugins`]) and the network
//! through [`upkeep_core::http::HttpClient`] (a reqwest client with the
//! default `reqwest` feature), so both can be replaced — by stubs in tests,
//! or by an embedder's own transport.
//!
//! See `docs/embedding.md` and `examples/embed.rs`.

#[cfg(unix)]
pub mod access;
mod app_command;
mod app_install;
mod apply;
mod client;
mod commit;
pub mod config;
pub mod error;
mod events;
mod files;
mod health;
#[cfg(feature = "reqwest")]
pub mod http;
mod ids;
mod install;
pub mod ipc;
pub mod lifecycle;
pub mod observer;
mod offline_copy;
mod outbox;
mod pass;
mod patch;
mod payload_cache;
#[cfg(unix)]
pub mod peer;
pub mod plugins;
pub mod policy;
pub mod recovery;
mod register;
pub mod report;
mod request;
mod rollback;
pub mod scope;
mod self_install;
pub mod service;
mod setup;
pub mod statelog;
pub mod status;
mod uninstall;
mod wake;

#[cfg(test)]
mod app_command_tests;
#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod install_tests;
#[cfg(test)]
mod outbox_tests;
#[cfg(test)]
mod patch_tests;
#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod request_tests;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

pub use app_command::CommandRun;
pub use app_install::{InstallError, InstallFrom, InstallOptions, Installed};
pub use client::{Client, ClientBuilder, Selection};
pub use config::{Config, UpdaterMode};
pub use error::{ClientError, UpdateError};
pub use files::unix_now;
pub use ids::{InvalidAppId, check_app_id};
pub use observer::{Notice, NullObserver, Observer, Progress, Recorder, Warning};
pub use pass::PassOptions;
pub use plugins::{Plugins, WasmPlugins};
pub use policy::{AppRules, EffectivePolicy, LoadedPolicy, PolicyHold};
pub use register::{Registered, Registration};
pub use report::{AppOutcome, AppReport, PassReport};
pub use rollback::{AppUninstalled, RolledBack};
pub use scope::{SYSTEM_ROOT, Scope};
pub use setup::SetupOutcome;
pub use status::Status;
pub use uninstall::UninstallOutcome;
pub use wake::{WakeOptions, WakeReport};

//! The upkeep engine core.
//!
//! Everything whose failure could brick a machine lives here: version
//! arithmetic, durable file writes and, as the engine grows, the update
//! protocol, verification, state and lifecycle. This crate never depends on a
//! WebAssembly runtime, so it builds and tests quickly.
//!
//! ```
//! use upkeep_core::version::Version;
//! let v: Version = "1.2".parse().unwrap();
//! assert_eq!(v, "1.2.0.0".parse().unwrap());
//! assert!(v < "1.10".parse().unwrap());
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod app_command;
pub mod app_id;
pub mod appdir;
pub mod cancel;
pub mod check_schedule;
pub mod crash;
pub mod cup;
pub mod delta;
pub mod download;
pub mod durable;
pub mod hash_thread;
pub mod health;
pub mod http;
pub mod lifecycle;
pub mod offer;
pub mod omaha;
pub mod outbox;
pub mod policy;
pub mod state;
pub mod tag;
pub mod tuf;
pub mod update_check;
pub mod version;
pub mod writeback;

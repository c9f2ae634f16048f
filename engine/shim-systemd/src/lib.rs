//! upkeep's native host shim for Linux: registers the engine with systemd
//! by writing unit files.
//!
//! Built as a `cdylib` exporting `upkeep_shim_v1` (the table of
//! [`upkeep_shim_abi`]) and loaded by the engine through
//! [`upkeep_shim_abi::Shim`]; also an `rlib`, so the logic below is tested
//! like any crate.
//!
//! Configuration keys (`docs/shims.md`):
//!
//! | key | meaning |
//! |---|---|
//! | `unit_dir` | required, absolute: where unit files go (`/etc/systemd/system` for the system manager, `~/.config/systemd/user` for a user's) |
//! | `name` | base name of the units, default `upkeep`: ASCII letters, digits, `-_.@` |
//! | `description` | `Description=` of the units, default `upkeep update engine` |
//! | `reload` | `none` (default): run nothing; `systemctl` / `systemctl-user`: run `systemctl [--user] daemon-reload` after changes, and start/stop the timer |
//! | `systemctl` | the program `reload` runs, default `systemctl` on `PATH` |
//!
//! Files (each written atomically: temporary file, fsync, rename, fsync of
//! the directory):
//!
//! - `register_service` → `<name>.service`, `Type=oneshot`, `ExecStart=` the
//!   executable and arguments given; when the command is `daemon` (what the
//!   engine registers for an updater version) a long-running service
//!   started by `<name>.socket`, which listens on `ipc.sock` beside the
//!   executable and is enabled in `sockets.target.wants/`;
//! - `register_wake` → `<name>-wake.service` (the same shape) and
//!   `<name>-wake.timer`, enabled by a link in `timers.target.wants/`;
//! - `swap_service` → rewrites each of the two services that exists;
//! - `unregister_*` → removes them (missing files are fine);
//! - `describe` → the files present and their `ExecStart=` / timer lines.
//!
//! By default the shim never runs a program or talks to systemd: tests and
//! packaging scripts can use it on any directory.
#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod fsio;
pub mod quote;
pub mod shim;
pub mod units;

pub use config::{Reload, SystemdConfig};
pub use error::SystemdError;
pub use shim::SystemdShim;

upkeep_shim_abi::export_shim_v1!(SystemdShim);

//! The native host shim ABI of upkeep.
//!
//! A *shim* is a shared library that registers the engine with the
//! operating system's service manager: systemd on Linux, COM and the task
//! scheduler on Windows, launchd/XPC on macOS. The engine loads it at run
//! time (through `libloading`) and speaks to it through one versioned C
//! entry point, so a shim can be written in any language and built apart
//! from the engine.
//!
//! This crate holds the three sides of that contract:
//!
//! - [`abi`]: the `#[repr(C)]` types and constants,
//! - [`Shim`]: the engine's safe loader,
//! - [`export`]: helpers (and [`export_shim_v1!`]) for shims written in
//!   Rust.
//!
//! # The contract, version 1
//!
//! **Entry point.** A shim exports the C symbol `upkeep_shim_v1`
//! ([`abi::ENTRY_POINT_V1`]) of type `const ShimTableV1 *(void)`. It returns
//! a pointer to a table that is static in the library: valid until the
//! library is unloaded, never written by the caller, never freed. It may be
//! called any number of times, from any thread.
//!
//! **Table.** [`abi::ShimTableV1`] starts with `uint32_t abi_version` (= 1)
//! and `uint32_t size` (the table's size in bytes as the shim was built),
//! then eight function pointers in a fixed order: `open`, `close`,
//! `register_service`, `swap_service`, `unregister_service`,
//! `register_wake`, `unregister_wake`, `describe`. The loader refuses a
//! table that is null, of another version, smaller than version 1's, or
//! with a null function.
//!
//! **Strings in.** Every string is UTF-8 passed as `(const uint8_t *ptr,
//! size_t len)`, not NUL-terminated; `ptr` may be null only when `len` is 0.
//! The configuration of `open` is `key=value` lines ([`ShimConfig`]). The
//! arguments of a command are one string where each argument is followed by
//! a NUL byte ([`args`]); the executable is a separate string.
//!
//! **Memory.** The caller owns everything it passes: the shim borrows input
//! strings and the output buffer for the duration of the call only and
//! copies what it keeps. The shim owns its handle ([`abi::ShimHandle`]),
//! from a successful `open` until `close`; the caller closes each handle
//! exactly once, before unloading the library, and uses no handle after
//! closing it. No memory is ever freed across the boundary, so the two
//! sides may use different allocators.
//!
//! **Errors.** Every function returns an `int32_t` status:
//! [`abi::STATUS_OK`] (0) or a non-zero code ([`abi::STATUS_FAILED`],
//! [`abi::STATUS_INVALID_ARGUMENT`], [`abi::STATUS_PANIC`]; callers must
//! treat unknown non-zero codes as failures). On failure the shim writes a
//! UTF-8 message into the caller's [`abi::ShimBuffer`] (`ptr`, `cap`, and an
//! out `len`), cut at a character boundary if longer than `cap`; the buffer
//! pointer may be null. `describe` writes its text into the same buffer on
//! success, or returns [`abi::STATUS_BUFFER_TOO_SMALL`] with `len` set to
//! the size it needs, and the caller retries with a larger buffer. No
//! function may unwind (a Rust panic, a C++ exception) into the caller: a
//! shim catches at its boundary and returns [`abi::STATUS_PANIC`].
//!
//! **Threads.** The entry point and `open` may be called concurrently. A
//! handle may be used from any thread but by one thread at a time: the
//! caller serialises calls on one handle ([`Shim`] does, with a lock).
//! Different handles are independent.
//!
//! **Side effects.** A shim does what its calls say and nothing more: it
//! does not start processes or talk to the service manager unless its
//! configuration asks for it (see each shim's documentation). Unregistering
//! what is not registered succeeds.
//!
//! # Adding version 2
//!
//! Version 1 never changes meaning. Two ways to grow:
//!
//! - *Additions a version 1 caller may ignore*: append new (nullable)
//!   function pointers at the end of the version 1 table and report the
//!   larger `size`; a newer caller reads a new field only when `size`
//!   covers it, an older caller never looks past what it knows.
//! - *Changes in meaning or signature*: a new symbol `upkeep_shim_v2`
//!   returning a `ShimTableV2` that starts with the same two header fields
//!   (`abi_version` = 2). A shim may export both symbols to serve old and
//!   new engines; a loader looks up the newest symbol it speaks first and
//!   falls back to older ones.
//!
//! # Use
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//! use upkeep_shim_abi::{Shim, ShimConfig};
//!
//! let config = ShimConfig::new()
//!     .with("unit_dir", "/etc/systemd/system")?
//!     .with("name", "upkeep")?;
//! let shim = Shim::load(Path::new("/usr/lib/upkeep/libupkeep_shim_systemd.so"), &config)?;
//! let exe = Path::new("/opt/upkeep/versions/2.0/upkeep");
//! let args = ["wake".to_owned(), "--root".to_owned(), "/var/lib/upkeep".to_owned()];
//! shim.register_wake(Duration::from_secs(3600), exe, &args)?;
//! shim.swap_service(exe, &args)?;
//! println!("{}", shim.describe()?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod abi;
pub mod args;
pub mod config;
pub mod export;
mod loader;

pub use config::{ConfigError, ShimConfig};
pub use loader::{Shim, ShimError, status_name};

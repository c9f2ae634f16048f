//! Shared helpers for the end-to-end tests in `tests/`.
//!
//! Each test file is a test target of the `upkeep-cli` package (see
//! `engine/cli/Cargo.toml`), so cargo builds the real `upkeep` binary first
//! and hands its path over in `CARGO_BIN_EXE_upkeep`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the folder holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared/testdata` beside the checkout.
pub fn shared_testdata() -> PathBuf {
    workspace_root().join("../shared/testdata")
}

/// The `upkeep` binary under test.
pub fn upkeep_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_upkeep"))
}

/// A `Command` for the `upkeep` binary with a quiet environment.
pub fn upkeep() -> Command {
    let mut cmd = Command::new(upkeep_bin());
    cmd.env_remove("RUST_LOG");
    cmd
}

/// A plugin built by `scripts/build-plugins.sh` (sample plugins in
/// `target/plugins/`, test-only ones in `target/plugins/test/`), or
/// `UPKEEP_PLUGIN_DIR` when set.
pub fn plugin_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("UPKEEP_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/plugins"));
    for candidate in [
        dir.join(format!("{name}.wasm")),
        dir.join("test").join(format!("{name}.wasm")),
    ] {
        if candidate.exists() {
            return candidate;
        }
    }
    panic!(
        "plugin {name} is not built in {}; run scripts/build-plugins.sh (scripts/test.sh does it for you)",
        dir.display()
    );
}
pub mod nginx;
pub mod proxy;
pub mod world;

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

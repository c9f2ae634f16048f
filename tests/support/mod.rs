//! Finding the `upkeep` binary and the shared test data.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the folder holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// `../shared/testdata` beside the checkout.
pub fn shared_testdata() -> PathBuf {
    workspace_root().join("../shared/testdata")
}

/// The `upkeep` binary of this build, built on first use if cargo has not
/// built it yet (cargo builds a package's binaries only for its own tests).
pub fn upkeep_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current test executable");
        // target/<profile>/deps/<test> -> target/<profile>/upkeep
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
        let bin = profile_dir.join(format!("upkeep{}", std::env::consts::EXE_SUFFIX));
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-q", "-p", "upkeep-cli", "--bin", "upkeep"]).current_dir(workspace_root());
        if release {
            cmd.arg("--release");
        }
        // Always ask cargo: it is a no-op when the binary is fresh, and it
        // rebuilds one left over from an older tree.
        let status = cmd.status().expect("run cargo build for the upkeep binary");
        assert!(status.success(), "building the upkeep binary failed");
        assert!(bin.exists(), "no upkeep binary at {}", bin.display());
        bin
    })
}

/// A `Command` for the `upkeep` binary with a clean, quiet environment.
pub fn upkeep() -> Command {
    let mut cmd = Command::new(upkeep_bin());
    cmd.env_remove("RUST_LOG");
    cmd
}

//! `upkeep repo offline`: an offline folder of one published release, for
//! `upkeep install --offline-dir` (see `docs/installing.md`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use upkeep_core::version::Version;

use crate::cmd_repo::open;

/// `upkeep repo offline`.
#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct OfflineArgs {
    /// The repository.
    dir: PathBuf,

    /// The app.
    #[arg(long = "app", value_name = "ID")]
    app: String,

    /// The published version.
    #[arg(long = "version", id = "release_version", value_name = "VERSION")]
    version: String,

    /// The folder to write (must not exist, or be empty).
    #[arg(value_name = "OUT")]
    out: PathBuf,
}

/// Runs `upkeep repo offline`.
pub fn run(a: OfflineArgs) -> Result<()> {
    let version: Version = a
        .version
        .parse()
        .with_context(|| format!("--version {:?} is not a version", a.version))?;
    let repo = open(&a.dir)?;
    let done = repo
        .export_offline(&a.app, &version, &a.out)
        .with_context(|| format!("writing the offline folder {}", a.out.display()))?;
    let bytes: u64 = done.files.iter().map(|(_, n)| n).sum();
    println!(
        "wrote {}: OfflineManifest.gup and {} file(s), {bytes} bytes, of {} {version}",
        done.dir.display(),
        done.files.len(),
        a.app
    );
    Ok(())
}

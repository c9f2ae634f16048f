//! `upkeep repo add`: publish a release (payloads, installer arguments,
//! install data, app commands) into the repository's signed metadata.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use upkeep_server::repo::NewRelease;

use crate::cmd_repo::open;

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The repository directory.
    dir: PathBuf,
    /// The app id (compared case-insensitively; stored in lower case in paths).
    #[arg(long, value_name = "ID")]
    app: String,
    /// The release version (1 to 4 dot-separated numbers).
    #[arg(long = "version", id = "release_version", value_name = "V")]
    release_version: String,
    /// The channel clients ask for with `ap` (default: the empty channel).
    #[arg(long, value_name = "NAME", default_value = "")]
    channel: String,
    /// An argument for the installer (repeat for several, in order).
    #[arg(long = "installer-arg", value_name = "ARG", allow_hyphen_values = true)]
    installer_args: Vec<String>,
    /// Omaha install data: the UTF-8 text of FILE, answered to clients that
    /// ask for INDEX (repeat for several indexes). Signed with the release
    /// in the targets metadata; at most 64 KiB each.
    #[arg(long = "install-data", value_name = "INDEX=FILE")]
    install_data: Vec<String>,
    /// A command the release brings to every machine that installs it
    /// (repeat for more), run there by `upkeep app-command`:
    /// NAME=PROGRAM ARGS..., the program a path inside the app's live
    /// version (relative, e.g. bin/repair), %1..%9 where a caller's
    /// parameters go. Signed with the release in the targets metadata.
    #[arg(long = "command", value_name = "NAME=COMMAND_LINE")]
    commands: Vec<String>,
    /// Also publish a patch from each of these earlier releases (comma
    /// separated, or repeated) to every payload file they have too, so a
    /// machine on one of them downloads only what changed (docs/deltas.md).
    /// A patch not smaller than the file is left out. Without it,
    /// `delta_from_last = N` in repo.toml patches from the app's N newest
    /// older releases on the same channel.
    #[arg(long = "delta-from", value_name = "V", value_delimiter = ',')]
    delta_from: Vec<upkeep_core::version::Version>,
    /// The patches' format: `zstd` (fast to make), `bsdiff` (smaller on
    /// executables; takes about nine times the old file's size in memory
    /// to make) or `best` (both made, the smaller published).
    #[arg(long = "patch-format", value_name = "FORMAT", value_enum, default_value_t = PatchFormatArg::Best)]
    patch_format: PatchFormatArg,
    /// The key directory (default: the one `repo init` used).
    #[arg(long, value_name = "KEYDIR")]
    keys: Option<PathBuf>,
    /// Publish into this delegated role instead of the top-level targets:
    /// signed with the role's keys only (plus snapshot.key and
    /// timestamp.key). Refused before anything is written when clients
    /// would not find the release there.
    #[arg(long, value_name = "ROLE", default_value = "targets")]
    role: String,
    /// A key file of the role (repeat up to its threshold; default:
    /// KEYDIR/delegated/ROLE-<i>.key).
    #[arg(long = "role-key", value_name = "FILE")]
    role_keys: Vec<PathBuf>,
    /// The payload files.
    #[arg(required = true, value_name = "PAYLOAD")]
    payloads: Vec<PathBuf>,
}

/// Runs `upkeep repo add`.
pub fn run(a: AddArgs) -> Result<()> {
    let repo = open(&a.dir)?;
    let mut install_data = BTreeMap::new();
    for spec in &a.install_data {
        let Some((index, file)) = spec.split_once('=') else {
            bail!("--install-data {spec:?}: give INDEX=FILE");
        };
        let text = std::fs::read_to_string(file).with_context(|| {
            format!("--install-data {spec:?}: cannot read {file} as UTF-8 text")
        })?;
        if install_data.insert(index.to_owned(), text).is_some() {
            bail!("--install-data: index {index:?} given twice");
        }
    }
    let mut commands = BTreeMap::new();
    for spec in &a.commands {
        let Some((name, line)) = spec.split_once('=') else {
            bail!("--command {spec:?}: give NAME=COMMAND_LINE");
        };
        if commands.insert(name.to_owned(), line.to_owned()).is_some() {
            bail!("--command: {name:?} given twice");
        }
    }
    if a.role == "targets" && !a.role_keys.is_empty() {
        bail!("--role-key needs --role ROLE (a delegated role)");
    }
    let release = NewRelease {
        app: a.app,
        version: a.release_version,
        channel: a.channel,
        installer_args: a.installer_args,
        install_data,
        commands,
        delta_from: a.delta_from,
        patch_format: a.patch_format.format(),
        payloads: a.payloads,
    };
    let published = repo
        .add_to_role(a.keys.as_deref(), &a.role, &a.role_keys, &release)
        .with_context(|| format!("publishing {} {}", release.app, release.version))?;
    println!(
        "published {} {}: targets {}, snapshot {}, timestamp {}",
        release.app, release.version, published.targets, published.snapshot, published.timestamp
    );
    if !release.delta_from.is_empty() || repo.settings().delta_from_last > 0 {
        let catalog = repo.catalog()?;
        let version: upkeep_core::version::Version = release.version.parse()?;
        let made: Vec<_> = catalog
            .patches()
            .iter()
            .filter(|p| p.info.app.eq_ignore_ascii_case(&release.app) && p.info.version == version)
            .collect();
        for p in &made {
            println!(
                "patch {}: {} bytes (from {} {}, {} format)",
                p.name,
                p.length,
                release.app,
                p.info.from,
                p.info.format.name()
            );
        }
        if made.is_empty() && !release.delta_from.is_empty() {
            println!("no patch: no file of those releases makes one smaller than the file itself");
        }
    }
    Ok(())
}

/// `--patch-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PatchFormatArg {
    /// zstd with the old file as reference.
    Zstd,
    /// bsdiff, compressed with zstd.
    Bsdiff,
    /// Both, the smaller published.
    Best,
}

impl PatchFormatArg {
    fn format(self) -> Option<upkeep_core::delta::PatchFormat> {
        match self {
            PatchFormatArg::Zstd => Some(upkeep_core::delta::PatchFormat::Zstd),
            PatchFormatArg::Bsdiff => Some(upkeep_core::delta::PatchFormat::Bsdiff),
            PatchFormatArg::Best => None,
        }
    }
}

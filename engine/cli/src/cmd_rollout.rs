//! `upkeep repo rollout` and `upkeep repo pull`: to which machines a
//! published release is offered.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use upkeep_core::version::Version;
use upkeep_server::repo::Repo;
use upkeep_server::rollout::{self, Change, Percent, Stage};

/// Options of `upkeep repo rollout`.
#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct RolloutArgs {
    /// The repository directory.
    dir: PathBuf,
    /// The app id (case-insensitive).
    app: String,
    /// The published version.
    version: Version,
    /// Offer the release to this share of machines: 0 to 100, with at most
    /// two decimals. Raising it only adds machines; a paused rollout stays
    /// paused.
    #[arg(long, value_name = "P", conflicts_with_all = ["pause", "resume"])]
    percent: Option<Percent>,
    /// Stop offering the release (the percentage is kept); machines that
    /// have it keep it.
    #[arg(long, conflicts_with = "resume")]
    pause: bool,
    /// Offer the release again at its percentage.
    #[arg(long)]
    resume: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Options of `upkeep repo pull`.
#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct PullArgs {
    /// The repository directory.
    dir: PathBuf,
    /// The app id (case-insensitive).
    app: String,
    /// The published version.
    version: Version,
    /// Take the pull back: offer the release again at its percentage.
    #[arg(long)]
    undo: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn open(dir: &std::path::Path) -> Result<Repo> {
    Repo::open(dir).with_context(|| format!("opening repository {}", dir.display()))
}

/// Runs `upkeep repo rollout`: changes a release's rollout, or prints it
/// when no change is asked for.
pub fn rollout(a: RolloutArgs) -> Result<()> {
    let repo = open(&a.dir)?;
    let what = match (a.percent, a.pause, a.resume) {
        (Some(p), _, _) => Some(Change::Percent(p)),
        (None, true, _) => Some(Change::Pause),
        (None, false, true) => Some(Change::Resume),
        (None, false, false) => None,
    };
    let stage = match what {
        Some(what) => Some(
            rollout::change_published(&repo, &a.app, &a.version, what)
                .with_context(|| format!("changing the rollout of {} {}", a.app, a.version))?,
        ),
        None => rollout::stage_of_published(&repo, &a.app, &a.version)?,
    };
    print_stage(&a.app, &a.version, stage.as_ref(), a.json)
}

/// Runs `upkeep repo pull`.
pub fn pull(a: PullArgs) -> Result<()> {
    let repo = open(&a.dir)?;
    let what = if a.undo {
        Change::Restore
    } else {
        Change::Pull
    };
    let stage = rollout::change_published(&repo, &a.app, &a.version, what)
        .with_context(|| format!("pulling {} {}", a.app, a.version))?;
    print_stage(&a.app, &a.version, Some(&stage), a.json)
}

fn print_stage(app: &str, version: &Version, stage: Option<&Stage>, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let v = serde_json::json!({
            "app": app,
            "version": version.to_string(),
            "rollout": stage,
            "offered_to_percent": stage.map_or(100.0, |s| if s.pulled || s.paused {
                0.0
            } else {
                f64::from(s.percent.hundredths()) / 100.0
            }),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    match stage {
        None => writeln!(
            out,
            "{app} {version}: offered to every machine (no rollout set)"
        )?,
        Some(s) => writeln!(
            out,
            "{app} {version}: {} (changed {})",
            describe_long(s),
            s.changed
        )?,
    }
    Ok(())
}

fn describe_long(s: &Stage) -> String {
    if s.pulled {
        "pulled: offered to no machine; machines that have it and allow a rollback are offered \
         the newest good release below it"
            .into()
    } else if s.paused {
        format!(
            "paused at {} of machines: offered to no machine until resumed",
            s.percent
        )
    } else {
        format!("offered to {} of machines", s.percent)
    }
}

//! `upkeep repo list` and `upkeep repo events`: what a repository publishes
//! and what clients reported to its server.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use upkeep_server::EventsUrl;
use upkeep_server::events_url::open_store;
use upkeep_server::rollout::Rollouts;

use crate::cmd_repo::open;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The repository directory.
    dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The repository directory.
    dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Only events of this app id (case-insensitive).
    #[arg(long, value_name = "ID")]
    app: Option<String>,
    /// The event store: postgres://USER@HOST:PORT/DATABASE or sqlite:PATH
    /// (default: DIR/events.sqlite).
    #[arg(long, value_name = "URL")]
    events: Option<EventsUrl>,
}

pub fn list(a: ListArgs) -> Result<()> {
    let repo = open(&a.dir)?;
    let catalog = repo.catalog().context("reading the targets metadata")?;
    let rollouts = Rollouts::load(repo.dir()).context("reading the rollout state")?;
    let mut out = std::io::stdout().lock();
    if a.json {
        let mut releases = Vec::new();
        for r in catalog.releases() {
            let mut v = serde_json::to_value(r)?;
            v["rollout"] = serde_json::to_value(rollouts.stage(&r.app, &r.version))?;
            v["patches"] = serde_json::to_value(patches_of(&catalog, r))?;
            releases.push(v);
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&releases)?)?;
        return Ok(());
    }
    if catalog.releases().is_empty() {
        writeln!(out, "no releases")?;
    }
    for r in catalog.releases() {
        let channel = if r.channel.is_empty() {
            "(default)"
        } else {
            &r.channel
        };
        write!(out, "{} {}  channel {channel}", r.app, r.version)?;
        if let Some(stage) = rollouts.stage(&r.app, &r.version) {
            write!(out, "  rollout {}", stage.describe())?;
        }
        if !r.installer_args.is_empty() {
            write!(out, "  installer args {:?}", r.installer_args)?;
        }
        if !r.install_data.is_empty() {
            let indexes: Vec<&String> = r.install_data.keys().collect();
            write!(out, "  install data {indexes:?}")?;
        }
        writeln!(out)?;
        for f in &r.files {
            writeln!(
                out,
                "  {}  {} bytes  sha256 {}",
                f.target_path, f.length, f.sha256
            )?;
        }
        for p in patches_of(&catalog, r) {
            let full = r
                .files
                .iter()
                .find(|f| f.name == p.info.file)
                .map_or(0, |f| f.length);
            writeln!(
                out,
                "  {}  {} bytes  patch from {} ({}, {:.1} % of {} bytes)",
                p.target_path,
                p.length,
                p.info.from,
                p.info.format.name(),
                100.0 * p.length as f64 / full.max(1) as f64,
                full
            )?;
        }
    }
    Ok(())
}

/// The patches that make files of release `r`.
pub(crate) fn patches_of<'a>(
    catalog: &'a upkeep_server::decision::Catalog,
    r: &upkeep_server::decision::Release,
) -> Vec<&'a upkeep_server::patches::Patch> {
    catalog
        .patches()
        .iter()
        .filter(|p| p.info.app.eq_ignore_ascii_case(&r.app) && p.info.version == r.version)
        .collect()
}

pub fn events(a: EventsArgs) -> Result<()> {
    let repo = open(&a.dir)?;
    let store = open_store(a.events.as_ref(), &repo).with_context(|| match &a.events {
        Some(url) => format!("opening the event store {url}"),
        None => format!("opening the event store {}", repo.events_path().display()),
    })?;
    let records = store.list(a.app.as_deref()).context("reading events")?;
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&records)?)?;
        return Ok(());
    }
    for r in &records {
        write!(
            out,
            "{}  {}  {} {}",
            r.received_at, r.kind, r.app_id, r.app_version
        )?;
        if let (Some(t), Some(res)) = (r.event_type, r.event_result) {
            write!(out, "  type {t} result {res}")?;
        }
        if let Some(c) = r.error_category {
            write!(out, "  errorcat {c}")?;
        }
        if let Some(c) = r.error_code {
            write!(out, "  errorcode {c}")?;
        }
        if let Some(c) = r.extra_code1 {
            write!(out, "  extracode1 {c}")?;
        }
        if let Some(v) = &r.previous_version {
            write!(out, "  from {v}")?;
        }
        if let Some(v) = &r.next_version {
            write!(out, "  to {v}")?;
        }
        writeln!(out, "  session {}", r.session_id)?;
    }
    Ok(())
}

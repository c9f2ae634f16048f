//! The demo's staged rollout: 3.0 offered to a share of the machines that
//! leaves this one out, widened to everyone, then pulled, and the machine
//! rolling back to 2.0.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::{APP, Demo, os, run_hello};

/// The machine's rollout bucket for the app: the Omaha cohort the server
/// gave it, as its prefs keep it.
fn bucket(state: &Path) -> Result<u16> {
    let path = state.join("prefs.json");
    let prefs: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{}: not JSON", path.display()))?;
    let cohort = prefs["apps"][APP]["cohort"]["cohort"]
        .as_str()
        .context("the machine keeps no cohort for the app")?;
    cohort
        .strip_prefix("1:b")
        .and_then(|c| c.strip_suffix(':'))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("cohort {cohort:?} names no rollout bucket"))
}

/// Runs the rollout steps; `update` runs `upkeep update` on the machine.
pub(super) fn run(
    d: &mut Demo,
    repo: &Path,
    state: &Path,
    install: &Path,
    update: &dyn Fn(&Demo) -> Result<String>,
) -> Result<()> {
    let rollout = |d: &Demo, args: &[&str]| {
        let mut all = vec![
            os("repo"),
            os("rollout"),
            repo.as_os_str(),
            os(APP),
            os("3.0"),
        ];
        all.extend(args.iter().map(|a| os(a)));
        d.upkeep(&all, true)
    };

    d.step("The vendor publishes 3.0 as a staged rollout; this machine is not in the first share");
    d.publish(repo, "3.0")?;
    let b = bucket(state)?;
    let share = format!("{}.{:02}", b / 100, b % 100);
    rollout(d, &["--percent", &share])?;
    d.note(&format!(
        "the machine's bucket is {b} of 0-9999 (its Omaha cohort 1:b{b}:), so the share leaves it out ({share}%)"
    ));
    update(d)?;
    d.note(&format!("the app says: {}", run_hello(install)?));

    d.step("The vendor widens the rollout to every machine; this one installs 3.0");
    rollout(d, &["--percent", "100"])?;
    update(d)?;
    let says = run_hello(install)?;
    d.note(&format!("the app says: {says}"));
    if !says.ends_with("3.0") {
        bail!("the machine did not install 3.0 at 100%");
    }

    d.step("3.0 is bad: the vendor pulls it and the machine rolls back to 2.0");
    d.upkeep(
        &[os("repo"), os("pull"), repo.as_os_str(), os(APP), os("3.0")],
        true,
    )?;
    update(d)?;
    let says = run_hello(install)?;
    d.note(&format!(
        "the app says: {says} (rolled back: the machine allows rollbacks)"
    ));
    if !says.ends_with("2.0") {
        bail!("the machine did not roll back to 2.0 after the pull");
    }
    Ok(())
}

/// The dashboard step: what the vendor's page at `server`/dashboard shows,
/// read from its JSON twin.
pub(super) fn dashboard(d: &mut Demo, server: &str) -> Result<()> {
    d.step("The vendor's dashboard: releases, rollouts, adoption, failures");
    let url = format!("{server}/dashboard.json");
    let figures: serde_json::Value = reqwest::blocking::get(&url)
        .and_then(reqwest::blocking::Response::error_for_status)
        .and_then(reqwest::blocking::Response::text)
        .with_context(|| format!("fetching {url}"))
        .and_then(|t| serde_json::from_str(&t).with_context(|| format!("{url}: not JSON")))?;
    d.note(&format!(
        "{server}/dashboard (open it in a browser while the demo runs with --keep)"
    ));
    let apps = figures["apps"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for app in apps {
        let releases = app["releases"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for r in releases {
            d.note(&format!(
                "{} {}: rollout {}, {} machine(s) seen, {} install(s), {} update(s), {} failure(s)",
                app["app"].as_str().unwrap_or_default(),
                r["version"].as_str().unwrap_or_default(),
                r["rollout"].as_str().unwrap_or_default(),
                r["machines"],
                r["installs"],
                r["updates"],
                r["failures"],
            ));
        }
    }
    if apps.is_empty() {
        bail!("the dashboard shows no app");
    }
    Ok(())
}

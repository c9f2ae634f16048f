//! The demo's differential update: the vendor publishes notes 1.4 with a
//! patch from 1.3, and the machine downloads the patch, not the archive.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::offline::NOTES;
use super::payload::run_hello;
use super::{Demo, os};

/// Runs the delta step on the machine's state root `state`.
pub(super) fn run(d: &mut Demo, repo: &Path, state: &Path) -> Result<()> {
    let install = d.path("machine/apps/notes");
    d.step("The vendor publishes notes 1.4 with a patch from 1.3; the machine downloads only the patch");
    let (payload, added) = d.publish_with(
        repo,
        NOTES,
        "build-notes-1.4",
        ("1.4", "1.4"),
        &[os("--delta-from"), os("1.3")],
    )?;
    for line in added.lines().filter(|l| l.starts_with("patch ")) {
        d.note(line);
    }
    let full = std::fs::metadata(&payload).map(|m| m.len()).unwrap_or(0);
    let out = d.upkeep(
        &[os("update"), os("--root"), state.as_os_str(), os("--json")],
        false,
    )?;
    let summary: serde_json::Value =
        serde_json::from_str(&out).context("`update --json` did not print JSON")?;
    let Some(notes) = summary["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["app"] == NOTES))
    else {
        bail!("{NOTES} is not in the update summary:\n{out}");
    };
    if notes["result"] != "updated" || notes["version"] != "1.4" {
        bail!("{NOTES} was not updated to 1.4:\n{out}");
    }
    let download = &notes["downloads"][0];
    let url = download["url"].as_str().unwrap_or_default();
    if !url.ends_with(".zpatch") {
        bail!("{NOTES} 1.4 came whole, not as a patch:\n{out}");
    }
    d.note(&format!(
        "updated 1.3 -> 1.4 with {} bytes from {} instead of the {full}-byte archive",
        download["downloaded_bytes"],
        url.rsplit('/').next().unwrap_or(url)
    ));
    d.note(
        "the patch was applied to the cached 1.3 archive; the result matched 1.4's signed SHA-256",
    );
    d.note(&format!("the app says: {}", run_hello(&install)?));
    Ok(())
}

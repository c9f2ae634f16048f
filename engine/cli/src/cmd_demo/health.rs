//! The demo's health-gated update: notes registers the vendor's selftest
//! plugin as its health check, a release that installs fine but is broken
//! once live is switched back (and reported), is not installed again, and
//! the fixed release after it is.

use std::path::Path;

use anyhow::{Result, bail};

use super::offline::NOTES;
use super::payload::run_hello;
use super::{Demo, os};

/// Runs the health steps; `update` runs `upkeep update` on the machine.
pub(super) fn run(
    d: &mut Demo,
    repo: &Path,
    state: &Path,
    update: &dyn Fn(&Demo) -> Result<String>,
) -> Result<()> {
    d.step("notes gets a health check; the vendor's 1.2 installs fine but is broken once live");
    let install = d.path("machine/apps/notes");
    let installer = d.plugins.join("install-archive.wasm");
    let check = d.plugins.join("qualify-selftest.wasm");
    d.upkeep(
        &[
            os("register"),
            os("--app"),
            os(NOTES),
            os("--version"),
            os("1.1"),
            os("--install-dir"),
            install.as_os_str(),
            os("--installer"),
            installer.as_os_str(),
            os("--health-check"),
            check.as_os_str(),
            os("--setting"),
            os("sums-required=false"),
            os("--root"),
            state.as_os_str(),
        ],
        false,
    )?;
    d.note("health check: qualify-selftest (the live version's VERSION file must name it)");
    // A build whose VERSION file still says 1.1.
    d.publish_saying(repo, NOTES, "build-notes-1.2", "1.2", "1.1")?;
    let err = d.upkeep_refused(&[os("update"), os("--root"), state.as_os_str()])?;
    if !err.contains("1.2 failed its health check") {
        bail!("1.2 was not switched back:\n{err}");
    }
    d.note(&format!("the app says: {}", run_hello(&install)?));
    d.note("the failure went to the server as an update event with errorcode 3 (health check)");

    d.step("1.2 is not installed again; the fixed 1.3 is, and passes its check");
    update(d)?;
    d.note("the server offered 1.2 again; the machine left it out, as it failed its health check");
    d.publish_app(repo, NOTES, "build-notes-1.3", "1.3")?;
    let out = update(d)?;
    if !out.contains(&format!("{NOTES}: updated 1.1 -> 1.3")) {
        bail!("{NOTES} was not updated to 1.3:\n{out}");
    }
    d.note(&format!("the app says: {}", run_hello(&install)?));

    Ok(())
}

//! The demo's offline install: the vendor writes an offline folder of a
//! second app (`upkeep repo offline`), the machine installs from it
//! without a word to the server, and its next check reports the install.

use std::path::Path;

use anyhow::{Result, bail};

use super::{Demo, os};

/// The app the offline folder carries.
pub(super) const NOTES: &str = "org.example.notes";

/// Runs the offline steps; `update` runs `upkeep update` on the machine.
pub(super) fn run(
    d: &mut Demo,
    repo: &Path,
    state: &Path,
    update: &dyn Fn(&Demo) -> Result<String>,
) -> Result<()> {
    d.step("The vendor publishes a second app and writes it to an offline folder (a USB stick)");
    d.publish_app(repo, NOTES, "build-notes-1.0", "1.0")?;
    let folder = d.path("usb/notes");
    d.upkeep(
        &[
            os("repo"),
            os("offline"),
            repo.as_os_str(),
            os("--app"),
            os(NOTES),
            os("--version"),
            os("1.0"),
            folder.as_os_str(),
        ],
        true,
    )?;
    d.note("OfflineManifest.gup lists the package with its size and SHA-256, as the signed metadata does");

    d.step("The machine installs it from the folder, with no network");
    let install = d.path("machine/apps/notes");
    let installer = d.plugins.join("install-archive.wasm");
    d.upkeep(
        &[
            os("install"),
            os("--offline-dir"),
            folder.as_os_str(),
            os("--app"),
            os(NOTES),
            os("--install-dir"),
            install.as_os_str(),
            os("--installer"),
            installer.as_os_str(),
            os("--no-setup"),
            os("--root"),
            state.as_os_str(),
        ],
        true,
    )?;
    d.note(&format!(
        "the app says: {}",
        super::payload::run_hello(&install)?
    ));
    d.note("the copy of each package was checked before the installer ran");
    let prefs = std::fs::read_to_string(state.join("prefs.json")).unwrap_or_default();
    if !prefs.contains(NOTES) {
        bail!("{NOTES} was not recorded in the machine's prefs");
    }
    d.note("no request went to the server: the install event waits in the machine's outbox");

    d.step("The machine's next check reports the install");
    update(d)?;
    Ok(())
}

//! The demo's offline install: a second app installed from a folder, as
//! from a USB stick, without a word to the server; the machine's next
//! check reports it.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::{Demo, os, write_payload};

/// The app the offline folder carries.
const NOTES: &str = "org.example.notes";

/// The offline manifest for `NOTES` 1.0 with one package.
fn manifest(package: &str, sha256: &str, size: usize) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<response protocol="3.0">
<app appid="{NOTES}" status="ok">
<updatecheck status="ok">
<urls><url codebase="http://127.0.0.1/unused/"/></urls>
<manifest version="1.0">
<packages><package hash_sha256="{sha256}" name="{package}" required="true" size="{size}"/></packages>
<actions><action event="install" run="{package}"/></actions>
</manifest>
</updatecheck>
</app>
</response>
"#
    )
}

/// Runs the offline steps; `update` runs `upkeep update` on the machine.
pub(super) fn run(
    d: &mut Demo,
    repo: &Path,
    state: &Path,
    update: &dyn Fn(&Demo) -> Result<String>,
) -> Result<()> {
    d.step("A second app arrives as an offline folder and is installed with no network");
    let folder = d.path("usb/notes");
    let archive = write_payload(&folder, NOTES, "1.0")?;
    let bytes =
        std::fs::read(&archive).with_context(|| format!("reading {}", archive.display()))?;
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sha256 = hex::encode(upkeep_core::cup::sha256(&bytes));
    std::fs::write(
        folder.join("OfflineManifest.gup"),
        manifest(&name, &sha256, bytes.len()),
    )?;
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
    d.note(&format!("the app says: {}", super::run_hello(&install)?));
    d.note("OfflineManifest.gup lists the package with its size and SHA-256: the copy was checked before the installer ran");
    let prefs = std::fs::read_to_string(state.join("prefs.json")).unwrap_or_default();
    if !prefs.contains(NOTES) {
        bail!("{NOTES} was not recorded in the machine's prefs");
    }
    d.note("no request went to the server: the install event waits in the machine's outbox");

    d.step("The vendor publishes the same release online; the machine's next check reports the install");
    d.upkeep(
        &[
            os("repo"),
            os("add"),
            repo.as_os_str(),
            os("--app"),
            os(NOTES),
            os("--version"),
            os("1.0"),
            archive.as_os_str(),
        ],
        false,
    )?;
    update(d)?;
    Ok(())
}

//! The demo's release payloads (a script, a VERSION file, notes, and
//! assets every release shares) and running the installed app.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

/// Writes `hello-VERSION.tar.gz` of `app`: a script, a VERSION file
/// saying `says` and notes.
pub(super) fn write_payload(dir: &Path, app: &str, version: &str, says: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("hello-{version}.tar.gz"));
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::default(),
    ));
    let mut add = |name: &str, mode: u32, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        tar.append_data(&mut h, name, data)
    };
    // What every release shares, first: the archives differ only after it,
    // so a patch from one release to the next is a fraction of either.
    add("share/assets.bin", 0o644, &assets())?;
    add(
        "bin/hello",
        0o755,
        format!("#!/bin/sh\necho \"hello from {app} {version}\"\n").as_bytes(),
    )?;
    add("VERSION", 0o644, format!("{says}\n").as_bytes())?;
    add(
        &format!("NOTES-{version}.txt"),
        0o644,
        format!("release notes of {version}\n").as_bytes(),
    )?;
    tar.into_inner()?.finish()?.sync_all()?;
    Ok(path)
}

/// 256 KiB every release of the demo's apps ships unchanged (the same
/// pseudo-random bytes each time: they do not compress).
fn assets() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// Runs the app the way it is launched: through the install directory's
/// `current` link, which the engine switches atomically on every update.
pub(super) fn run_hello(install: &Path) -> Result<String> {
    let out = Command::new(install.join("current/bin/hello"))
        .output()
        .context("running the installed app")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

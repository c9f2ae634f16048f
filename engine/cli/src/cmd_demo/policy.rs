//! The demo's enterprise policy: the administrator holds an app back with
//! a policy file, the machine's check leaves it where it is though a newer
//! release is out, and once the policy lets updates someone asks for
//! through, the next `upkeep update` applies it.

use std::path::Path;

use anyhow::{Context, Result, bail};

use super::offline::NOTES;
use super::{Demo, os};

/// Runs the policy steps; `update` runs `upkeep update` on the machine.
pub(super) fn run(
    d: &mut Demo,
    repo: &Path,
    state: &Path,
    update: &dyn Fn(&Demo) -> Result<String>,
) -> Result<()> {
    d.step("The vendor publishes notes 1.1; the administrator holds it back with a policy");
    d.publish_app(repo, NOTES, "build-notes-1.1", "1.1")?;
    let policy = state.join("policy.toml");
    let write = |text: &str| {
        std::fs::write(&policy, text).with_context(|| format!("writing {}", policy.display()))
    };
    write(&format!(
        "# the machine's enterprise policy (docs/policy.md)\n[apps.\"{NOTES}\"]\nupdate = \"disabled\"\n"
    ))?;
    d.note(&format!(
        "{}: [apps.\"{NOTES}\"] update = \"disabled\"",
        policy.display()
    ));
    let out = update(d)?;
    if !out.contains("disabled by policy") {
        bail!("the policy did not hold {NOTES} back:\n{out}");
    }
    d.note(
        "the server was asked with updatedisabled=\"true\", so the check still counts the machine",
    );

    d.step("The policy allows only updates someone asks for; `upkeep update` is such a request");
    write(&format!("[apps.\"{NOTES}\"]\nupdate = \"manual-only\"\n"))?;
    let shown = d.upkeep(&[os("policy"), os("--root"), state.as_os_str()], false)?;
    for line in shown
        .lines()
        .filter(|l| l.contains("update ") || l.starts_with("app "))
    {
        d.note(&format!("upkeep policy: {}", line.trim()));
    }
    let out = update(d)?;
    if !out.contains(&format!("{NOTES}: updated 1.0 -> 1.1")) {
        bail!("{NOTES} was not updated to 1.1:\n{out}");
    }
    d.note("the service's scheduled checks would still leave it at 1.0");
    std::fs::remove_file(&policy).with_context(|| format!("removing {}", policy.display()))?;
    Ok(())
}

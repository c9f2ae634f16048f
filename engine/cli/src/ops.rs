//! The operations the command line and the daemon both run, over one
//! [`Client`]: each reports to the observer it is given while it works and
//! returns what to print, so `upkeep update` prints the same lines whether
//! it ran here or in the daemon (docs/service.md).

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use upkeep_client::{
    Client, InstallFrom, InstallOptions, Observer, Registration, Selection, UninstallOutcome,
};
use upkeep_core::version::Version;

use crate::ExitCode;
use crate::render::{Rendered, render_pass};

/// `update`: the rendered pass, and the replaced single binary to restart.
pub(crate) fn update(
    client: &Client,
    app: Option<String>,
    json: bool,
    observer: &mut dyn Observer,
) -> Result<(Rendered, Option<(PathBuf, Version)>)> {
    let selection = app.map_or(Selection::All, Selection::App);
    let pass = client.update(selection, observer)?;
    Ok((render_pass(&pass, json)?, pass.replaced_binary))
}

/// `register`.
pub(crate) fn register(
    client: &Client,
    registration: Registration,
    observer: &mut dyn Observer,
) -> Result<Rendered> {
    let done = client.register(registration, observer)?;
    Ok(Rendered::line(
        format!(
            "{} {} at version {} in {}",
            if done.replaced {
                "re-registered"
            } else {
                "registered"
            },
            done.app,
            done.version,
            client.root().display()
        ),
        json!({"app": done.app, "version": done.version, "replaced": done.replaced}),
    ))
}

/// `install`: one app.
pub(crate) fn install(
    client: &Client,
    registration: Registration,
    options: InstallOptions,
    observer: &mut dyn Observer,
) -> Result<Rendered> {
    let done = client.install(registration, options, observer)?;
    let (source, offline_dir) = match &done.from {
        InstallFrom::Server => ("the update server".to_owned(), None),
        InstallFrom::Offline(dir) => (format!("the offline folder {}", dir.display()), Some(dir)),
    };
    let packages: Vec<Value> = done
        .packages
        .iter()
        .map(|(name, bytes)| json!({"name": name, "bytes": bytes}))
        .collect();
    Ok(Rendered::line(
        format!(
            "installed {} {} from {source} in {}",
            done.app,
            done.version,
            client.root().display()
        ),
        json!({
            "app": done.app,
            "version": done.version,
            "offline_dir": offline_dir,
            "packages": packages,
            "root": client.root(),
        }),
    ))
}

/// `app-command`: the command's output as its own, then how it ended;
/// a non-zero exit (or a signal) makes the exit status 1.
pub(crate) fn app_command(
    client: &Client,
    app: &str,
    name: &str,
    parameters: &[String],
    observer: &mut dyn Observer,
) -> Result<Rendered> {
    let run = client.run_app_command(app, name, parameters, observer)?;
    let ended = match run.exit_code {
        Some(code) => format!("exit code {code}"),
        None => "ended by a signal".to_owned(),
    };
    Ok(Rendered {
        code: if run.exit_code == Some(0) {
            ExitCode::Ok
        } else {
            ExitCode::Failed
        },
        stdout: run.stdout.clone(),
        stderr: format!("{}{}: command {}: {ended}\n", run.stderr, run.app, run.name),
        result: json!({
            "app": run.app,
            "name": run.name,
            "argv": run.argv,
            "exit_code": run.exit_code,
        }),
    })
}

/// `rollback`.
pub(crate) fn rollback(
    client: &Client,
    app: &str,
    observer: &mut dyn Observer,
) -> Result<Rendered> {
    let done = client.rollback(app, observer)?;
    Ok(Rendered::line(
        format!("{}: rolled back {} -> {}", done.app, done.from, done.to),
        json!({"app": done.app, "from": done.from, "to": done.to}),
    ))
}

/// `remove`.
pub(crate) fn remove(client: &Client, app: &str, observer: &mut dyn Observer) -> Result<Rendered> {
    if app.trim().is_empty() {
        bail!("--app needs an app id");
    }
    let done = client.uninstall_app(app, observer)?;
    let mut rendered = Rendered::line(
        format!("{}: uninstalled {} and forgotten", done.app, done.version),
        json!({"app": done.app, "version": done.version, "note": done.note}),
    );
    if let Some(note) = &done.note {
        rendered.stderr = format!("{}: {note}\n", done.app);
    }
    Ok(rendered)
}

/// `status`: lines, or the JSON with `json`.
pub(crate) fn status(client: &Client, json: bool) -> Result<Rendered> {
    let s = client.status()?;
    let result: Value = serde_json::to_value(&s)?;
    let stdout = if json {
        serde_json::to_string_pretty(&result)? + "\n"
    } else {
        crate::render::status_text(&s)
    };
    Ok(Rendered {
        stdout,
        result,
        ..Rendered::default()
    })
}

/// `policy`: the effective policy with its sources; failed when the policy
/// file was ignored.
pub(crate) fn policy(client: &Client, json: bool) -> Result<Rendered> {
    crate::cmd_policy::render(&client.policy()?, json)
}

/// `uninstall`: a line when it finished what an earlier process began
/// (the observer hears the rest).
pub(crate) fn uninstall(client: &Client, observer: &mut dyn Observer) -> Result<Rendered> {
    let outcome = client.uninstall(observer)?;
    if outcome == UninstallOutcome::FinishedEarlier {
        return Ok(Rendered::line(
            format!(
                "finished uninstalling upkeep from {}; only {} is left",
                client.root().display(),
                upkeep_core::lifecycle::LOG_FILE
            ),
            json!({"finished_earlier": true}),
        ));
    }
    Ok(Rendered {
        result: json!({"finished_earlier": false}),
        ..Rendered::default()
    })
}

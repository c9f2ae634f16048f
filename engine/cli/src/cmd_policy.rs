//! `upkeep policy`: the enterprise policy in force, with the source of
//! every value.

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};
use upkeep_client::EffectivePolicy;
use upkeep_client::policy::{PolicyFileState, Sourced};

use crate::ExitCode;
use crate::render::Rendered;
use crate::state::StateArgs;

/// `upkeep policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Print machine-readable JSON.
    #[arg(long)]
    json: bool,

    /// Read the state root here, not through the daemon.
    #[arg(long)]
    in_process: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// Runs `upkeep policy`.
pub fn run(args: PolicyArgs) -> Result<ExitCode> {
    if let Some(code) = crate::remote::through_daemon(
        &args.state,
        args.in_process,
        &upkeep_client::ipc::Request::Policy { json: args.json },
    )? {
        return Ok(code);
    }
    let client = args.state.client()?;
    Ok(crate::ops::policy(&client, args.json)?.print())
}

/// The effective policy as lines or JSON; failed when the file was ignored.
pub(crate) fn render(p: &EffectivePolicy, as_json: bool) -> Result<Rendered> {
    let (state, problem) = match &p.state {
        PolicyFileState::Absent => ("absent", None),
        PolicyFileState::Loaded => ("loaded", None),
        PolicyFileState::Ignored(why) => ("ignored", Some(why.as_str())),
    };
    let apps: Vec<Value> = p
        .apps
        .iter()
        .map(|a| {
            json!({
                "app": a.app,
                "update": entry(&a.update, a.update.value.name()),
                "install": entry(&a.install, a.install.value.name()),
                "target_version_prefix": entry(&a.target_version_prefix, &a.target_version_prefix.value),
                "rollback_allowed": entry(&a.rollback_allowed, a.rollback_allowed.value),
                "channel": entry(&a.channel, &a.channel.value),
            })
        })
        .collect();
    let result = json!({
        "policy_file": p.file,
        "state": state,
        "problem": problem,
        "config_file": p.config,
        "check_period_minutes": entry(&p.check_period, p.check_period.value.as_secs() / 60),
        "updates_suppressed": entry(&p.updates_suppressed, p.updates_suppressed.value.map(|w| json!({
            "start": w.start_text(), "duration_minutes": w.duration,
        }))),
        "download_preference": entry(&p.download_preference, p.download_preference.value.map(|d| d.name())),
        "proxy": entry(&p.proxy, p.proxy.value.to_string()),
        "apps": apps,
    });
    let stderr = problem.map_or_else(String::new, |why| {
        format!(
            "upkeep: error: policy file {} is ignored as a whole (the defaults apply): {why}\n",
            p.file.display()
        )
    });
    let stdout = if as_json {
        serde_json::to_string_pretty(&result)? + "\n"
    } else {
        text(p, state)
    };
    Ok(Rendered {
        code: if problem.is_some() {
            ExitCode::Failed
        } else {
            ExitCode::Ok
        },
        stdout,
        stderr,
        result,
    })
}

fn entry<T: serde::Serialize>(sourced: &Sourced<impl Sized>, value: T) -> Value {
    json!({"value": value, "source": sourced.source.to_string()})
}

fn text(p: &EffectivePolicy, state: &str) -> String {
    let mut out = format!("policy file  {} ({state})\n", p.file.display());
    if let Some(config) = &p.config {
        out += &format!("config       {}\n", config.display());
    }
    out += "\n";
    let mut line = |name: &str, value: String, source: &dyn std::fmt::Display| {
        out += &format!("{name:<24}{value:<28}{source}\n");
    };
    let period = p.check_period.value.as_secs() / 60;
    line(
        "check period",
        if period == 0 {
            "none (no scheduled checks)".to_owned()
        } else {
            format!("{period} min")
        },
        &p.check_period.source,
    );
    line(
        "updates suppressed",
        p.updates_suppressed
            .value
            .map_or("never".to_owned(), |w| w.to_string()),
        &p.updates_suppressed.source,
    );
    line(
        "download preference",
        p.download_preference
            .value
            .map_or("none".to_owned(), |d| d.name().to_owned()),
        &p.download_preference.source,
    );
    line("proxy", p.proxy.value.to_string(), &p.proxy.source);
    for a in &p.apps {
        out += &format!("\napp {}\n", a.app);
        let mut app_line = |name: &str, value: String, source: &dyn std::fmt::Display| {
            out += &format!("  {name:<22}{value:<28}{source}\n");
        };
        app_line("update", a.update.value.name().to_owned(), &a.update.source);
        app_line(
            "install",
            a.install.value.name().to_owned(),
            &a.install.source,
        );
        app_line(
            "target version prefix",
            a.target_version_prefix
                .value
                .clone()
                .unwrap_or_else(|| "none".to_owned()),
            &a.target_version_prefix.source,
        );
        app_line(
            "rollback allowed",
            if a.rollback_allowed.value {
                "yes"
            } else {
                "no"
            }
            .to_owned(),
            &a.rollback_allowed.source,
        );
        app_line(
            "channel",
            a.channel
                .value
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            &a.channel.source,
        );
    }
    out
}

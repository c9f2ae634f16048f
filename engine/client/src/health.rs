//! Health-gated updates in the engine. An app may register a health check
//! (a qualifier-world plugin, or one of its app commands) with a time
//! limit. The switch to a new version writes the mark that the check is
//! owed ([`HealthPending`]) in the same prefs write that records the
//! version; then the check runs on the live version. Passed, the mark is
//! cleared. Failed, out of time, or never finished (the process died:
//! the next one finds the mark at recovery), the app is switched back to
//! the version it left through the same journal as every switch, the
//! failure is recorded in its record and reported (an update event with
//! `errorcode` [`codes::install::HEALTH_CHECK`]), and the failed version
//! is removed and not installed again until a newer one is offered.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use upkeep_core::appdir;
use upkeep_core::crash;
use upkeep_core::health::{self, HealthCheck, HealthGate, HealthPending};
use upkeep_core::lifecycle::{self, LifecycleError};
use upkeep_core::omaha::{ErrorCategory, Event, EventResult, EventType, codes};
use upkeep_core::state::{AppRecord, Prefs, SwitchKind};
use upkeep_core::version::Version;
use upkeep_plugin_host::QualifyInput;
use upkeep_plugin_host::bindings::qualifier;

use crate::app_command::command_process;
use crate::error::UpdateError;
use crate::events::Recorded;
use crate::files::unix_now;
use crate::observer::{Notice, Observer, Warning};
use crate::pass::Run;
use crate::plugins::{Plugins, Role};

/// How often a running health command is looked at.
const POLL: Duration = Duration::from_millis(20);

impl Run<'_, '_> {
    /// Runs the health check `id` owes, if its record carries the mark,
    /// and settles it: passed, the mark is cleared; failed, the app is
    /// switched back (`Err(Unhealthy)`, the failure already reported).
    pub(crate) fn health_gate(
        &mut self,
        prefs_path: &Path,
        prefs: &mut Prefs,
        id: &str,
    ) -> Result<(), UpdateError> {
        let Some(record) = prefs.apps.get(id).cloned() else {
            return Ok(());
        };
        let (Some(gate), Some(pending)) = (&record.health_check, &record.health_pending) else {
            return Ok(());
        };
        crash::point("health.started");
        self.observer.notice(&Notice::HealthCheck {
            app: id.to_owned(),
            version: record.version.clone(),
        });
        match run_check(self.env.plugins, id, &record, gate) {
            Ok(()) => {
                let mut next = prefs.clone();
                if let Some(r) = next.apps.get_mut(id) {
                    r.health_pending = None;
                }
                next.save(prefs_path).map_err(|e| UpdateError::Switch {
                    version: record.version.clone(),
                    source: e.into(),
                })?;
                *prefs = next;
                crash::point("health.passed");
                Ok(())
            }
            Err(why) => {
                crash::point("health.failed");
                switch_back(prefs_path, prefs, id, &why, &self.session, self.observer).map_err(
                    |source| UpdateError::Switch {
                        version: pending.previous.clone(),
                        source,
                    },
                )?;
                Err(UpdateError::Unhealthy {
                    version: record.version.clone(),
                    back_to: pending.previous.clone(),
                    why,
                })
            }
        }
    }
}

/// Runs `gate` for `id` at its recorded version: `Err` says why it failed.
fn run_check(
    plugins: &dyn Plugins,
    id: &str,
    record: &AppRecord,
    gate: &HealthGate,
) -> Result<(), String> {
    let live = record.install_dir.join(appdir::CURRENT);
    let limit = Duration::from_secs(gate.timeout_secs);
    match &gate.check {
        HealthCheck::Plugin { plugin } => {
            let input = QualifyInput {
                updater_version: env!("CARGO_PKG_VERSION").to_owned(),
                app_id: id.to_owned(),
                app_version: record.version.to_string(),
                app_dir: live,
                settings: record.settings_list(),
            };
            let started = Instant::now();
            let answer = plugins
                .qualify(plugin, Role::HealthCheck, &input)
                .map_err(|e| format!("the health check plugin failed: {e}"))?;
            if started.elapsed() > limit {
                return Err(format!(
                    "the health check plugin {} took longer than {} s",
                    answer.plugin, gate.timeout_secs
                ));
            }
            match answer.value {
                qualifier::Verdict::Pass => Ok(()),
                qualifier::Verdict::Fail(why) => Err(format!(
                    "the health check plugin {} says: {why}",
                    answer.plugin
                )),
            }
        }
        HealthCheck::Command { name } => {
            let Some(command) = record.command(name) else {
                return Err(format!(
                    "the health check command {name:?} is not registered"
                ));
            };
            let arguments = command
                .arguments_with(&[])
                .map_err(|e| format!("the health check command {name:?}: {e}"))?;
            run_command(name, &command.program_in(&live), &arguments, &live, limit)
        }
    }
}

/// Runs a health command in `dir` with the app commands' environment, at
/// most `limit`: killed past it.
fn run_command(
    name: &str,
    executable: &Path,
    arguments: &[String],
    dir: &Path,
    limit: Duration,
) -> Result<(), String> {
    let mut child = command_process(executable, arguments, dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run the health check command {name:?}: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(match status.code() {
                    Some(code) => format!("the health check command {name:?} exited with {code}"),
                    None => format!("the health check command {name:?} was killed by a signal"),
                });
            }
            Ok(None) if started.elapsed() >= limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the health check command {name:?} did not finish within {} s",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => {
                return Err(format!(
                    "cannot wait for the health check command {name:?}: {e}"
                ));
            }
        }
    }
}

/// Switches `id` back from its recorded version, which failed its health
/// check (`why`), to the one it left: journalled, with the failure
/// recorded and its event in the same write; then the failed version's
/// directory is removed. Returns the version switched back to.
pub(crate) fn switch_back(
    prefs_path: &Path,
    prefs: &mut Prefs,
    id: &str,
    why: &str,
    session: &str,
    observer: &mut dyn Observer,
) -> Result<Version, LifecycleError> {
    let Some(record) = prefs.apps.get(id).cloned() else {
        return Err(LifecycleError::NotRegistered { app: id.to_owned() });
    };
    let Some(pending) = record.health_pending.clone() else {
        return Ok(record.version);
    };
    let (back, _) = health::switched_back(&record, &pending, why, unix_now());
    let events = vec![
        Recorded::new(id, failure_event(&record.version, &pending, why))
            .into_entry(record.version.clone(), session),
    ];
    lifecycle::switch_app(prefs_path, prefs, id, SwitchKind::Rollback, back, events)?;
    crash::point("health.switched-back");
    if let Err(e) = appdir::discard(&record.install_dir, &record.version) {
        observer.warning(&Warning::app(
            id,
            format!("cannot remove the failed version {}: {e}", record.version),
        ));
    }
    Ok(pending.previous)
}

/// The update event reporting that `failed` did not pass its health check
/// and the app went back to `pending.previous`.
fn failure_event(failed: &Version, pending: &HealthPending, why: &str) -> Event {
    let mut event = Event::new(EventType::Update, EventResult::Error);
    event.errorcat = Some(ErrorCategory::Install);
    event.errorcode = Some(codes::install::HEALTH_CHECK);
    event.previousversion = Some(failed.to_string());
    event.nextversion = Some(pending.previous.to_string());
    event.extra.insert("healthcheck".into(), why.to_owned());
    event
}

/// At recovery: every app whose health check a dead process left owed
/// (the mark on its record) is switched back, as if the check had failed.
/// Returns each app with the version that failed and the one it is back at.
pub(crate) fn recover_unfinished(
    prefs_path: &Path,
    prefs: &mut Prefs,
    observer: &mut dyn Observer,
) -> Result<Vec<(String, Version, Version)>, LifecycleError> {
    let owed: Vec<(String, Version)> = prefs
        .apps
        .iter()
        .filter(|(_, r)| r.health_pending.is_some())
        .map(|(id, r)| (id.clone(), r.version.clone()))
        .collect();
    let mut settled = Vec::new();
    if owed.is_empty() {
        return Ok(settled);
    }
    let session = upkeep_core::omaha::random_id().unwrap_or_default();
    for (id, version) in owed {
        let why =
            format!("the health check of {version} did not finish (the process running it ended)");
        let back_to = switch_back(prefs_path, prefs, &id, &why, &session, observer)?;
        observer.notice(&Notice::HealthFailed {
            app: id.clone(),
            version: version.clone(),
            back_to: back_to.clone(),
            why,
        });
        settled.push((id, version, back_to));
    }
    Ok(settled)
}

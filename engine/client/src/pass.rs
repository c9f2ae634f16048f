//! One update pass: the existence checks, one signed Omaha request for the
//! apps, and for each offered update the whole verified path ([`crate::apply`]:
//! TUF agreement, download, installer, post-install check, the journalled
//! switch, the health check once live: [`crate::health`]), then the events
//! to the server and the telemetry sinks. The request is built in
//! [`crate::request`]. The caller holds the state lock.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use upkeep_core::cancel::Cancel;
use upkeep_core::check_schedule;
use upkeep_core::health;
use upkeep_core::http::{HttpClient, HttpTransport};
use upkeep_core::omaha::{AppStatus, EventType, Response, UpdateCheckStatus, random_id};
use upkeep_core::state::{AppRecord, Prefs, StagedBinary};
use upkeep_core::tuf::{SystemClock, Updater};
use upkeep_core::update_check;
use upkeep_core::version::Version;
use upkeep_plugin_host::ExistenceInput;
use upkeep_plugin_host::bindings::existence;

use upkeep_core::outbox::OutboxEntry;

use crate::apply::Applied;
use crate::commit::{Committed, Update};
use crate::config::Config;
use crate::error::{ClientError, TufRefreshError, UpdateError};
use crate::events::{Recorded, event, kind_for};
use crate::files::{duration_ms, unix_now};
use crate::install::installer_data;
use crate::observer::{Observer, Warning};
use crate::outbox::Reporter;
use crate::plugins::Plugins;
use crate::policy::{AppRules, LoadedPolicy};
use crate::report::{AppOutcome, AppReport, PassReport};
use crate::request::build_request;

/// What a pass does besides the existence checks.
#[derive(Debug, Clone, Copy)]
pub struct PassOptions {
    /// Contact the update server (else only the existence checks run).
    pub check: bool,
    /// When the existence checks forget the last app (all that is left is
    /// upkeep itself), flag the prefs `uninstalling` in the same write.
    pub self_uninstall: bool,
    /// Why the check runs, sent as each app's Omaha `installsource`:
    /// `ondemand` when a user or an embedder asked for it, `None` for the
    /// scheduled checks of a wake.
    pub install_source: Option<&'static str>,
}

/// The `installsource` of a check someone asked for.
pub const INSTALL_SOURCE_ON_DEMAND: &str = "ondemand";

impl Default for PassOptions {
    fn default() -> Self {
        Self {
            check: true,
            self_uninstall: false,
            install_source: None,
        }
    }
}

/// `last_check` moves forward only in steps of at least this many seconds,
/// so checks in quick succession (a single binary's restart re-running the
/// command that replaced it, a burst of on-demand checks) cost no durable
/// write of their own and repeat exactly the same steps.
pub(crate) const LAST_CHECK_STEP_SECS: i64 = 60;

/// The `last_check` to record for a check that succeeded at `now`.
pub(crate) fn advance_last_check(recorded: Option<i64>, now: i64) -> i64 {
    match recorded {
        Some(t) if now >= t && now - t < LAST_CHECK_STEP_SECS => t,
        _ => now,
    }
}

/// The TUF client of a pass.
pub(crate) type Tuf<'a> = Updater<HttpTransport<&'a dyn HttpClient>, SystemClock>;

/// What the engine needs from its surroundings for a pass.
pub(crate) struct Env<'a> {
    pub(crate) root: &'a Path,
    pub(crate) config: &'a Config,
    pub(crate) http: &'a dyn HttpClient,
    pub(crate) plugins: &'a dyn Plugins,
    /// The running binary (replaced in single-binary mode).
    pub(crate) exe: Option<&'a Path>,
    /// Raised, the pass stops before the next step that changes anything.
    pub(crate) cancel: &'a Cancel,
    /// Installer data from an installer tag, for a first install the
    /// server sends no install data for (only `Client::install` sets it).
    pub(crate) installer_data: Option<&'a str>,
    /// The enterprise policy in force.
    pub(crate) policy: &'a LoadedPolicy,
}

/// Everything one pass shares.
pub(crate) struct Run<'a, 'o> {
    pub(crate) env: &'a Env<'a>,
    pub(crate) observer: &'o mut dyn Observer,
    pub(crate) tuf: Option<Result<Tuf<'a>, Arc<TufRefreshError>>>,
    /// The session id of the pass's requests and events.
    pub(crate) session: String,
    /// Failures recorded so far: they change nothing in the prefs, so they
    /// enter the outbox only at the end of the pass.
    pub(crate) events: Vec<Recorded>,
    /// A single-binary updater staged beside the running binary, renamed
    /// over it by the commit.
    pub(crate) staged_binary: Option<StagedBinary>,
    /// The single-binary updater the commit replaced, and its new version.
    pub(crate) replaced: Option<(PathBuf, Version)>,
    /// Someone asked for this check (the policy's `manual-only` lets it
    /// update).
    pub(crate) on_demand: bool,
}

/// One signed update check for `ids` (carrying the outbox's waiting
/// events), then every offered update downloaded, verified, installed and
/// recorded, its events in the outbox in the same write; then the outbox
/// delivered to the server and the telemetry sinks. The caller holds the
/// state lock.
pub(crate) fn check_and_apply(
    env: &Env<'_>,
    prefs_path: &Path,
    prefs: &mut Prefs,
    ids: Vec<String>,
    options: PassOptions,
    observer: &mut dyn Observer,
) -> Result<PassReport, ClientError> {
    let now = unix_now();
    if let Some(until) = prefs.retry_after_until
        && until > now
    {
        return Err(ClientError::RetryAfter {
            seconds: until - now,
        });
    }
    let session = random_id().map_err(|e| ClientError::Random(e.to_string()))?;
    if options.check
        && let Some(problem) = env.policy.problem()
    {
        observer.warning(&Warning::general(problem));
    }
    let mut run = Run {
        env,
        observer,
        tuf: None,
        session: session.clone(),
        events: Vec::new(),
        staged_binary: None,
        replaced: None,
        on_demand: options.install_source.is_some(),
    };
    let mut outcomes: BTreeMap<String, AppOutcome> = BTreeMap::new();

    // Existence checks: an app whose checker says it is gone is forgotten
    // and reported with an uninstall event.
    let mut removed: BTreeMap<String, Version> = BTreeMap::new();
    for id in &ids {
        let record = prefs.apps[id].clone();
        if run.is_gone(id, &record) {
            prefs.apps.remove(id);
            if options.self_uninstall && prefs.apps.values().all(|r| r.updater) {
                prefs.uninstalling = true;
            }
            prefs.outbox.push(
                Recorded::new(id, event(EventType::Uninstall, None, &record.version, None))
                    .into_entry(record.version.clone(), &session),
            );
            prefs.save(prefs_path)?;
            outcomes.insert(
                id.clone(),
                AppOutcome::Removed {
                    version: record.version.clone(),
                },
            );
            removed.insert(id.clone(), record.version);
        }
    }
    let all_ids = ids;
    // When the last app went and only upkeep itself is left, upkeep is
    // about to uninstall itself: nothing is checked for.
    let only_updater_left = !removed.is_empty() && prefs.apps.values().all(|record| record.updater);
    let ids: Vec<String> = all_ids
        .iter()
        .filter(|id| !removed.contains_key(*id) && !only_updater_left && options.check)
        .cloned()
        .collect();

    let mut server_answered = true;
    let mut retry_after = None;
    let mut staged = Vec::new();
    if !ids.is_empty() {
        let (request, sent) = build_request(env, prefs, &ids, &session, options.install_source)?;
        match update_check::exchange(env.http, &env.config.server, &env.config.cup, &request) {
            Err(e) => {
                server_answered = e.server_answered();
                let e = Arc::new(e);
                for id in &ids {
                    let record = &prefs.apps[id];
                    let error = UpdateError::Check(e.clone());
                    run.events.push(Recorded::new(
                        id,
                        event(kind_for(record), Some(&error), &record.version, None),
                    ));
                    outcomes.insert(
                        id.clone(),
                        AppOutcome::Failed {
                            version: Some(record.version.clone()),
                            next: None,
                            error,
                        },
                    );
                }
            }
            Ok(exchange) => {
                if !sent.is_empty() {
                    prefs
                        .outbox
                        .acknowledge(&sent.acknowledged(&exchange.response));
                }
                retry_after = exchange.retry_after;
                if let Some(wait) = exchange.retry_after {
                    prefs.retry_after_until =
                        Some(now.saturating_add(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX)));
                }
                for id in &ids {
                    let outcome = run.answer(prefs_path, prefs, id, &exchange.response);
                    if let AppOutcome::Updated {
                        to, staged: true, ..
                    } = &outcome
                    {
                        staged.push(to.clone());
                    }
                    outcomes.insert(id.clone(), outcome);
                }
                let all_ok = outcomes
                    .values()
                    .all(|o| !matches!(o, AppOutcome::Failed { .. }));
                if all_ok {
                    let last = Some(advance_last_check(prefs.last_check, unix_now()));
                    if last != prefs.last_check {
                        prefs.last_check = last;
                        prefs.check_spread = Some(check_schedule::draw_spread());
                    }
                }
                let on_disk = Prefs::load(prefs_path)?;
                if on_disk != *prefs {
                    prefs.save(prefs_path)?;
                }
            }
        }
    }

    // The failures join the outbox (a server that could not be reached at
    // all is told nothing of it: the sinks are), then the outbox goes to
    // the server (unless unreachable) and the sinks.
    for failure in std::mem::take(&mut run.events) {
        let version = prefs
            .apps
            .get(&failure.app_id)
            .map(|r| r.version.clone())
            .unwrap_or_default();
        let mut entry = failure.into_entry(version, &session);
        entry.acked = !server_answered;
        prefs.outbox.push(entry);
    }
    let reporter = Reporter {
        root: env.root,
        config: env.config,
        http: env.http,
        plugins: env.plugins,
        session: &session,
    };
    reporter.deliver(prefs_path, prefs, server_answered, run.observer);

    let apps = all_ids
        .iter()
        .filter_map(|id| {
            outcomes.remove(id).map(|outcome| AppReport {
                app: id.clone(),
                outcome,
            })
        })
        .collect();
    Ok(PassReport {
        apps,
        retry_after,
        session,
        staged,
        replaced_binary: run.replaced.take(),
    })
}

fn merge_cohort(record: &mut AppRecord, app: &upkeep_core::omaha::App) {
    if app.cohort.cohort.is_some() {
        record.cohort.cohort.clone_from(&app.cohort.cohort);
    }
    if app.cohort.cohorthint.is_some() {
        record.cohort.cohorthint.clone_from(&app.cohort.cohorthint);
    }
    if app.cohort.cohortname.is_some() {
        record.cohort.cohortname.clone_from(&app.cohort.cohortname);
    }
}

impl<'a> Run<'a, '_> {
    /// Whether the app's existence checker says it is gone. Apps at
    /// version 0 (not installed yet) and apps without a checker are never
    /// gone; a checker that cannot tell, fails or changed since
    /// registration is a warning and keeps the app.
    fn is_gone(&mut self, id: &str, record: &AppRecord) -> bool {
        let Some(checker) = &record.existence else {
            return false;
        };
        if record.version == Version::default() {
            return false;
        }
        let input = ExistenceInput {
            app_id: id.to_owned(),
            version: record.version.to_string(),
            app_dir: Some(record.install_dir.clone()),
            marker: record.marker.clone(),
            settings: record.settings_list(),
        };
        let why = match self.env.plugins.check_existence(checker, &input) {
            Ok(answer) => match answer.value {
                existence::Presence::Present => return false,
                existence::Presence::Absent => return true,
                existence::Presence::Error(e) => {
                    format!("existence checker {} cannot tell: {e}", answer.plugin)
                }
            },
            Err(e) => e.to_string(),
        };
        self.observer
            .warning(&Warning::app(id, format!("{why}; keeping the app")));
        false
    }

    /// What the server answered for `id`, and everything that follows.
    fn answer(
        &mut self,
        prefs_path: &Path,
        prefs: &mut Prefs,
        id: &str,
        response: &Response,
    ) -> AppOutcome {
        let record = prefs.apps[id].clone();
        let started = Instant::now();
        let failed = |next: Option<Version>, error: UpdateError| AppOutcome::Failed {
            version: Some(record.version.clone()),
            next,
            error,
        };
        let Some(app) = response.app(id) else {
            let error = response
                .app_errors
                .iter()
                .find(|e| {
                    e.appid
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(id))
                })
                .map_or(UpdateError::NoAnswer, |e| {
                    UpdateError::MalformedAnswer(e.to_string())
                });
            self.events.push(Recorded::new(
                id,
                event(kind_for(&record), Some(&error), &record.version, None),
            ));
            return failed(None, error);
        };
        let mut updated = record.clone();
        merge_cohort(&mut updated, app);
        if let Some(day) = response.daystart.elapsed_days {
            updated.days.record_response(day);
        }
        if app.status != AppStatus::Ok {
            return failed(None, UpdateError::AppStatus(app.status.clone()));
        }
        let rules = AppRules::new(
            self.env.policy.policy(),
            Some(self.env.config),
            id,
            Some(&record),
        );
        if let Some(hold) = rules.hold(&record.version, self.on_demand) {
            // Whatever the server answered (it was told updatedisabled),
            // nothing is applied.
            prefs.apps.insert(id.to_owned(), updated);
            return AppOutcome::Held {
                version: record.version.clone(),
                hold,
            };
        }
        let check = match &app.updatecheck {
            Some(c) if c.status == UpdateCheckStatus::NoUpdate => {
                prefs.apps.insert(id.to_owned(), updated);
                return AppOutcome::UpToDate {
                    version: record.version.clone(),
                };
            }
            Some(c) if c.status == UpdateCheckStatus::Ok => c,
            other => {
                let status = other
                    .as_ref()
                    .map_or("none".to_owned(), |c| c.status.to_string());
                return failed(None, UpdateError::UpdateCheckStatus(status));
            }
        };
        let next = check.next_version.clone();
        if let Some(v) = &next
            && let Some(failed) = health::rejected(&record, v)
        {
            self.observer.warning(&Warning::app(
                id,
                format!(
                    "{v} failed its health check ({}); it is not installed again until a newer version is offered",
                    failed.why
                ),
            ));
            prefs.apps.insert(id.to_owned(), updated);
            return AppOutcome::UpToDate {
                version: record.version.clone(),
            };
        }
        let result = match &next {
            None => Err(UpdateError::NoVersion),
            Some(v)
                if *v == record.version
                    || (*v < record.version && !rules.rollback_allowed.value) =>
            {
                Err(UpdateError::NotNewer {
                    offered: v.clone(),
                    installed: record.version.clone(),
                })
            }
            Some(_) if self.env.cancel.is_cancelled() => Err(UpdateError::Cancelled),
            Some(v) => {
                let data = installer_data(id, &record, app, self.observer).or_else(|| {
                    let tagged = self
                        .env
                        .installer_data
                        .filter(|_| record.version == Version::default());
                    tagged.map(str::to_owned)
                });
                self.apply(id, &record, check, v, data.as_deref())
                    .and_then(|applied| {
                        let mut updated = updated;
                        updated.release_commands.clone_from(&applied.commands);
                        let update = Update {
                            events: self.succeeded(id, &record, v, &applied, started),
                            record: updated,
                        };
                        let how = self.commit(prefs_path, prefs, id, &record, update, v)?;
                        if how == Committed::Switched {
                            self.health_gate(prefs_path, prefs, id)?;
                        }
                        Ok((v.clone(), applied, how))
                    })
            }
        };
        let elapsed = Some(duration_ms(started.elapsed()));
        match result {
            Ok((to, applied, how)) => {
                let staged = how == Committed::Staged;
                if let Committed::Replaced(exe) = how {
                    self.replaced = Some((exe, to.clone()));
                }
                AppOutcome::Updated {
                    from: record.version.clone(),
                    to,
                    downloads: applied.downloads,
                    install_time: applied.install_time,
                    staged,
                }
            }
            Err(error @ UpdateError::Unhealthy { .. }) => {
                // Reported with the switch back, in the same write.
                failed(next, error)
            }
            Err(error) => {
                let mut failure = Recorded::new(
                    id,
                    event(
                        kind_for(&record),
                        Some(&error),
                        &record.version,
                        next.as_ref(),
                    ),
                );
                failure.duration_ms = elapsed;
                self.events.push(failure);
                failed(next, error)
            }
        }
    }
}

impl Run<'_, '_> {
    /// The events of a successful update of `id` to `to`: its downloads
    /// (type 14) and the install or update itself, recorded with it.
    fn succeeded(
        &self,
        id: &str,
        record: &AppRecord,
        to: &Version,
        applied: &Applied,
        started: Instant,
    ) -> Vec<OutboxEntry> {
        let mut events = Vec::new();
        for report in applied.downloads.iter().filter(|r| !r.reused) {
            let mut ev = event(EventType::Download, None, &record.version, Some(to));
            ev.errorcat = None;
            let mut recorded = Recorded::new(id, ev);
            recorded.duration_ms = Some(duration_ms(report.duration));
            recorded.download = Some(report.clone());
            events.push(recorded);
        }
        let mut done = Recorded::new(id, event(kind_for(record), None, &record.version, Some(to)));
        done.duration_ms = Some(duration_ms(started.elapsed()));
        // Omaha's diff fields: whether a patch made the files.
        match &applied.diff {
            Some(Ok(())) => {
                done.event.extra.insert("diffresult".into(), "1".into());
            }
            Some(Err(failure)) => {
                let extra = &mut done.event.extra;
                extra.insert("diffresult".into(), "0".into());
                extra.insert("differrorcat".into(), "1".into());
                extra.insert("differrorcode".into(), failure.code.to_string());
            }
            None => {}
        }
        events.push(done);
        events
            .into_iter()
            .map(|r| r.into_entry(to.clone(), &self.session))
            .collect()
    }
}

#[cfg(test)]
mod last_check_tests {
    use super::{LAST_CHECK_STEP_SECS, advance_last_check};

    #[test]
    fn a_check_within_the_step_keeps_the_recorded_time() {
        assert_eq!(advance_last_check(Some(1_000), 1_000), 1_000);
        assert_eq!(
            advance_last_check(Some(1_000), 1_000 + LAST_CHECK_STEP_SECS - 1),
            1_000
        );
    }

    #[test]
    fn a_check_a_step_later_or_with_the_clock_set_back_records_now() {
        assert_eq!(advance_last_check(None, 5), 5);
        assert_eq!(
            advance_last_check(Some(1_000), 1_000 + LAST_CHECK_STEP_SECS),
            1_060
        );
        assert_eq!(advance_last_check(Some(1_000), 900), 900);
    }
}

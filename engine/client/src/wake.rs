//! The periodic task (`upkeep wake`): finish what a dead process left, move
//! this updater version through its lifecycle, run the existence checks,
//! and check for updates once the interval has passed.

use std::time::Duration;

use upkeep_core::check_schedule;
use upkeep_core::lifecycle;
use upkeep_core::state::PREFS_FILE;

use crate::client::Client;
use crate::error::ClientError;
use crate::files::unix_now;
use crate::lifecycle::{Stepped, start_versions, step};
use crate::observer::{Notice, Observer, Warning};
use crate::pass::{PassOptions, check_and_apply};
use crate::policy::{check_period, local_minute_now};
use crate::recovery::lock_and_recover;
use crate::report::PassReport;
use crate::uninstall::uninstall_locked;

/// What to do on a wake.
#[derive(Debug, Clone, Copy, Default)]
pub struct WakeOptions {
    /// Check for updates now, however recent the last check.
    pub now: bool,
}

/// What a wake did.
#[derive(Debug)]
pub struct WakeReport {
    /// An interrupted uninstall was finished; nothing else ran.
    pub finished_uninstall: bool,
    /// The lifecycle step of this updater version, when it is installed in
    /// the state root. Anything but `Active` ends the wake there.
    pub stepped: Option<Stepped>,
    /// No app is registered; nothing was checked.
    pub nothing_registered: bool,
    /// The pass, when one ran (existence checks, and the update check when
    /// `checked`).
    pub pass: Option<PassReport>,
    /// The update server was asked.
    pub checked: bool,
    /// When the next check is due, when this wake did not check.
    pub next_check: Option<Duration>,
    /// The last app went and upkeep uninstalled itself.
    pub self_uninstalled: bool,
    /// A scheduled check was due but the policy's daily window suppresses
    /// it for this long yet.
    pub suppressed: Option<Duration>,
    /// The policy's check period is zero: no scheduled checks run.
    pub scheduled_checks_off: bool,
}

impl WakeReport {
    fn empty() -> Self {
        Self {
            finished_uninstall: false,
            stepped: None,
            nothing_registered: false,
            pass: None,
            checked: false,
            next_check: None,
            self_uninstalled: false,
            suppressed: None,
            scheduled_checks_off: false,
        }
    }
}

impl Client {
    /// Runs the periodic task in this process.
    pub fn wake(
        &self,
        options: WakeOptions,
        observer: &mut dyn Observer,
    ) -> Result<WakeReport, ClientError> {
        let config = self.config()?;
        let root = &self.root;
        let mut report = WakeReport::empty();
        let (Some(lock), mut prefs, _) = lock_and_recover(root, Some(config), observer)? else {
            report.finished_uninstall = true;
            return Ok(report);
        };
        let prefs_path = root.join(PREFS_FILE);
        let (installed, own) = self.own_version();
        let env = self.env(config);
        // Other versions to start once the lock is released: older ones retire
        // themselves, newer ones not active yet (re)try qualification.
        let mut others = Vec::new();
        if installed.as_ref().is_some_and(|i| i.root == *root) {
            let stepped = step(&env, &mut prefs, &own, observer)?;
            let Stepped::Active { older } = &stepped else {
                drop(lock);
                report.stepped = Some(stepped);
                return Ok(report);
            };
            others.clone_from(older);
            others.extend(
                lifecycle::installed_versions(root)
                    .into_iter()
                    .filter(|v| *v > own),
            );
            report.stepped = Some(stepped);
        }
        if prefs.apps.is_empty() {
            drop(lock);
            report.nothing_registered = true;
            start_versions(root, self.config_arg(), &others, observer);
            return Ok(report);
        }
        let now = unix_now();
        let policy = self.policy.policy();
        let period = check_period(policy, Some(config)).value;
        let interval = i64::try_from(period.as_secs()).unwrap_or(i64::MAX);
        let until_due =
            check_schedule::seconds_until_due(prefs.last_check, now, interval, prefs.check_spread);
        // A period of zero: no scheduled checks at all.
        let due = until_due <= 0 && !period.is_zero();
        let suppressed = policy
            .updates_suppressed
            .filter(|_| due && !options.now)
            .and_then(|window| window.remaining(local_minute_now()))
            .map(|minutes| Duration::from_secs(u64::from(minutes) * 60));
        report.suppressed = suppressed;
        report.scheduled_checks_off = period.is_zero();
        let checking = options.now || (due && suppressed.is_none());
        report.checked = checking;
        if !checking && let Some(problem) = self.policy.problem() {
            // (A check warns of it itself.)
            observer.warning(&Warning::general(problem));
        }
        // Existence checks run on every wake; the update check when it is due.
        let has_checkers = prefs.apps.values().any(|r| r.existence.is_some());
        if checking || has_checkers {
            let ids = prefs.apps.keys().cloned().collect();
            let pass_options = PassOptions {
                check: checking,
                self_uninstall: true,
                // `wake --now` is asked for; a due check is the schedule's.
                install_source: options.now.then_some(crate::pass::INSTALL_SOURCE_ON_DEMAND),
            };
            report.pass = Some(check_and_apply(
                &env,
                &prefs_path,
                &mut prefs,
                ids,
                pass_options,
                observer,
            )?);
        }
        if !checking && !prefs.uninstalling && !period.is_zero() {
            report.next_check = Some(match suppressed {
                Some(rest) => rest,
                None => Duration::from_secs(u64::try_from(until_due).unwrap_or(0)),
            });
        }
        if prefs.uninstalling {
            observer.notice(&Notice::LastAppGone);
            uninstall_locked(root, Some(config), &mut prefs, observer)?;
            report.self_uninstalled = true;
            return Ok(report);
        }
        drop(lock);
        if let Some(pass) = &report.pass {
            // A version this pass staged is started once, below.
            others.retain(|v| !pass.staged.contains(v));
            others.extend(pass.staged.iter().cloned());
        }
        start_versions(root, self.config_arg(), &others, observer);
        Ok(report)
    }
}

//! Health-gated updates against the in-memory server of [`crate::tests`]:
//! a check that fails, passes or runs out of time once the new version is
//! live, a check a dead process left unfinished, the failed version not
//! installed again until a newer one is offered, and the registrations
//! refused.

use std::collections::BTreeMap;

use upkeep_core::health::HealthPending;
use upkeep_core::omaha::codes;
use upkeep_core::state::PREFS_FILE;

use crate::plugins::Role;
use crate::testkit::Call;
use crate::tests::{APP, World};
use crate::{AppOutcome, ClientError, Notice, Recorder, Registration, Selection, UpdateError};

/// A world with `APP` installed at 1.0 under `health`'s registration, 2.0
/// published.
fn at_one(health: impl FnOnce(&mut Registration)) -> World {
    let w = World::new();
    w.server.publish(APP, "1.0", &[("app.tar", b"one")], None);
    let mut r = Registration::new(APP, "0".parse().unwrap(), w.install_dir(), "/p/i.wasm");
    health(&mut r);
    w.client.register(r, &mut Recorder::default()).unwrap();
    assert!(matches!(w.update(), AppOutcome::Updated { .. }));
    w.server.publish(APP, "2.0", &[("app.tar", b"two")], None);
    w
}

fn command(r: &mut Registration, name: &str, line: &str, timeout: Option<u64>) {
    r.commands = BTreeMap::from([(name.to_owned(), line.to_owned())]);
    r.health_check_command = Some(name.to_owned());
    r.health_timeout_seconds = timeout;
}

/// The app went back to 1.0 after 2.0 failed, with `why_part` in the
/// failure; the failure is recorded, reported and its version removed.
fn switched_back(w: &World, outcome: AppOutcome, why_part: &str) {
    match outcome {
        AppOutcome::Failed {
            error:
                UpdateError::Unhealthy {
                    version,
                    back_to,
                    why,
                },
            ..
        } => {
            assert_eq!(
                (version.to_string(), back_to.to_string()),
                ("2.0".into(), "1.0".into())
            );
            assert!(why.contains(why_part), "{why}");
        }
        other => panic!("expected a switch back, got {other:?}"),
    }
    assert_eq!(w.current().as_deref(), Some("1.0"));
    let record = &w.prefs().apps[APP];
    assert_eq!(record.version.to_string(), "1.0");
    assert_eq!(record.health_pending, None);
    assert_eq!(record.rejected.len(), 1);
    assert_eq!(record.rejected[0].version.to_string(), "2.0");
    assert!(
        !w.install_dir().join("versions/2.0").exists(),
        "the failed version is removed"
    );
    assert!(w.install_dir().join("versions/1.0").is_dir());
    // eventtype 3 (update), result 0 (error), errorcat 3 (install).
    let reported = w.server.events();
    assert!(
        reported.contains(&(APP.to_owned(), 3, 0, 3, codes::install::HEALTH_CHECK)),
        "{reported:?}"
    );
}

#[test]
fn a_failing_check_switches_back_and_the_version_is_not_installed_again() {
    let w = at_one(|r| r.health_check = Some("/p/health.wasm".into()));
    *w.plugins.refuse.lock().unwrap() = Some("the app does not answer".into());
    switched_back(&w, w.update(), "the app does not answer");
    let calls = w.plugins.calls.lock().unwrap().clone();
    let checked = calls.iter().rev().find_map(|c| match c {
        Call::Qualify(Role::HealthCheck, input) => Some(input.clone()),
        _ => None,
    });
    let input = checked.expect("the health check ran");
    assert_eq!(input.app_version, "2.0");
    assert_eq!(input.app_dir, w.install_dir().join("current"));

    // Offered again: refused without a download, with a warning.
    *w.plugins.refuse.lock().unwrap() = None;
    let installs = w.plugins.installs().len();
    let mut recorder = Recorder::default();
    let pass = w.client.update(Selection::All, &mut recorder).unwrap();
    assert!(matches!(pass.apps[0].outcome, AppOutcome::UpToDate { .. }));
    assert_eq!(w.plugins.installs().len(), installs);
    assert!(
        recorder
            .warnings
            .iter()
            .any(|x| x.message.contains("not installed again")),
        "{:?}",
        recorder.warnings
    );
    // A newer one is installed, checked, and the failure forgotten.
    w.server.publish(APP, "3.0", &[("app.tar", b"three")], None);
    assert!(matches!(w.update(), AppOutcome::Updated { .. }));
    let record = &w.prefs().apps[APP];
    assert_eq!(record.version.to_string(), "3.0");
    assert!(record.rejected.is_empty() && record.health_pending.is_none());
}

#[test]
fn a_passing_command_keeps_the_new_version() {
    let w = at_one(|r| command(r, "healthy", "/bin/true", None));
    let mut recorder = Recorder::default();
    let pass = w.client.update(Selection::All, &mut recorder).unwrap();
    assert!(matches!(pass.apps[0].outcome, AppOutcome::Updated { .. }));
    assert!(
        recorder
            .notices
            .iter()
            .any(|n| matches!(n, Notice::HealthCheck { .. }))
    );
    assert_eq!(w.current().as_deref(), Some("2.0"));
    let record = &w.prefs().apps[APP];
    assert_eq!(record.health_pending, None);
    assert_eq!(
        record.previous_version.as_ref().map(ToString::to_string),
        Some("1.0".into())
    );
}

#[test]
fn a_failing_or_slow_command_switches_back() {
    let w = at_one(|r| command(r, "healthy", "/bin/false", None));
    switched_back(&w, w.update(), "exited with 1");
    let w = at_one(|r| command(r, "healthy", "/bin/sleep 30", Some(1)));
    let started = std::time::Instant::now();
    switched_back(&w, w.update(), "did not finish within 1 s");
    assert!(
        started.elapsed().as_secs() < 20,
        "the command was killed at its limit"
    );
}

#[test]
fn a_check_a_dead_process_left_unfinished_counts_as_failed() {
    let w = at_one(|r| command(r, "healthy", "/bin/true", None));
    assert!(matches!(w.update(), AppOutcome::Updated { .. }));
    // As the switch to 2.0 wrote it, before the check finished.
    let mut prefs = w.prefs();
    prefs.apps.get_mut(APP).unwrap().health_pending = Some(HealthPending {
        previous: "1.0".parse().unwrap(),
        since: 1,
    });
    prefs.save(&w.client.root().join(PREFS_FILE)).unwrap();
    let mut recorder = Recorder::default();
    let pass = w.client.update(Selection::All, &mut recorder).unwrap();
    assert!(
        recorder.notices.iter().any(
            |n| matches!(n, Notice::HealthFailed { why, .. } if why.contains("did not finish"))
        ),
        "{:?}",
        recorder.notices
    );
    // Recovered before the check, which then offered the failed 2.0 again.
    assert!(matches!(pass.apps[0].outcome, AppOutcome::UpToDate { .. }));
    let record = &w.prefs().apps[APP];
    assert_eq!(record.version.to_string(), "1.0");
    assert_eq!(w.current().as_deref(), Some("1.0"));
    assert_eq!(record.rejected[0].version.to_string(), "2.0");
}

#[test]
fn health_check_registrations_that_cannot_work_are_refused() {
    let w = World::new();
    let base = || Registration::new(APP, "0".parse().unwrap(), w.install_dir(), "/p/i.wasm");
    let mut both = base();
    command(&mut both, "h", "/bin/true", None);
    both.health_check = Some("/p/health.wasm".into());
    let mut unknown = base();
    unknown.health_check_command = Some("nope".into());
    let mut zero = base();
    command(&mut zero, "h", "/bin/true", Some(0));
    let mut alone = base();
    alone.health_timeout_seconds = Some(5);
    for (r, expect) in [
        (both, "not both"),
        (unknown, "\"nope\" is not one of the app's commands"),
        (zero, "1 to 3600"),
        (alone, "with a health check"),
    ] {
        match w.client.register(r, &mut Recorder::default()) {
            Err(
                e @ (ClientError::TwoHealthChecks
                | ClientError::UnknownHealthCommand { .. }
                | ClientError::BadHealthTimeout { .. }),
            ) => {
                assert!(e.to_string().contains(expect), "{e}");
            }
            other => panic!("expected a refusal ({expect}), got {other:?}"),
        }
    }
    assert!(w.prefs().apps.is_empty());
}

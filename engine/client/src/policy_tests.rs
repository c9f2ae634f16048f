//! The enterprise policy against the in-memory server of [`crate::tests`]
//! (which offers whatever is published, whatever the request says, so the
//! client's own refusal to apply is what is tested): the update policies,
//! blocked installs, pins and channels in the request, the check period,
//! the daily window, and a file ignored as a whole.

use upkeep_core::omaha::RequestApp;
use upkeep_core::state::PREFS_FILE;

use crate::policy::{PolicyFileState, local_minute_now};
use crate::tests::{APP, World};
use crate::{
    AppOutcome, ClientError, InstallError, PolicyHold, Recorder, Registration, Selection,
    WakeOptions,
};

/// The app entry of the last update check the server received.
fn last_check(w: &World) -> RequestApp {
    let requests = w.server.requests.lock().unwrap();
    requests
        .iter()
        .rev()
        .flat_map(|r| r.apps.iter())
        .find(|a| a.updatecheck.is_some())
        .expect("an update check")
        .clone()
}

fn installed(w: &World, version: &str) {
    w.server
        .publish(APP, version, &[("app.tar", b"payload one")], None);
    w.register("0");
    assert!(matches!(w.update(), AppOutcome::Updated { .. }));
}

fn wake(w: &World) -> crate::WakeReport {
    w.client
        .wake(WakeOptions { now: false }, &mut Recorder::default())
        .unwrap()
}

fn held(outcome: AppOutcome) -> PolicyHold {
    match outcome {
        AppOutcome::Held { hold, .. } => hold,
        other => panic!("expected the policy to hold the app, got {other:?}"),
    }
}

#[test]
fn disabled_updates_are_asked_for_as_disabled_and_never_applied() {
    let w = World::with_policy(&format!("[apps.\"{APP}\"]\nupdate = \"disabled\"\n"));
    installed(&w, "1.0");
    w.server
        .publish(APP, "2.0", &[("app.tar", b"payload two")], None);
    let installs = w.plugins.installs().len();
    assert_eq!(held(w.update()), PolicyHold::UpdatesDisabled);
    assert!(last_check(&w).updatecheck.unwrap().updatedisabled);
    assert_eq!(w.plugins.installs().len(), installs, "no installer ran");
    assert_eq!(w.prefs().apps[APP].version.to_string(), "1.0");
    assert_eq!(w.current().as_deref(), Some("1.0"));
}

#[test]
fn manual_only_updates_wait_for_someone_to_ask() {
    let w = World::with_policy("[defaults]\nupdate = \"manual-only\"\n");
    installed(&w, "1.0");
    w.server
        .publish(APP, "2.0", &[("app.tar", b"payload two")], None);
    // Make the scheduled check due.
    let prefs_path = w.client.root().join(PREFS_FILE);
    let mut prefs = w.prefs();
    prefs.last_check = None;
    prefs.save(&prefs_path).unwrap();
    let report = wake(&w);
    assert!(report.checked);
    let pass = report.pass.unwrap();
    assert_eq!(
        held(pass.apps.into_iter().next().unwrap().outcome),
        PolicyHold::ManualOnly
    );
    assert!(last_check(&w).updatecheck.unwrap().updatedisabled);
    assert_eq!(w.prefs().apps[APP].version.to_string(), "1.0");
    match w.update() {
        AppOutcome::Updated { to, .. } => assert_eq!(to.to_string(), "2.0"),
        other => panic!("an update someone asked for goes ahead: {other:?}"),
    }
    assert!(!last_check(&w).updatecheck.unwrap().updatedisabled);
}

#[test]
fn the_pin_the_channel_the_rollback_and_the_download_preference_reach_the_request() {
    let w = World::with_policy(&format!(
        "download_preference = \"cacheable\"\n[apps.\"{APP}\"]\ntarget_version_prefix = \"1.2\"\n\
         rollback_to_target = true\ntarget_channel = \"stable\"\n"
    ));
    let mut r = Registration::new(APP, "0".parse().unwrap(), w.install_dir(), "/p.wasm");
    r.channel = Some("beta".into());
    w.client.register(r, &mut Recorder::default()).unwrap();
    w.client
        .update(Selection::All, &mut Recorder::default())
        .unwrap();
    let app = last_check(&w);
    assert_eq!(
        app.ap.as_deref(),
        Some("stable"),
        "the policy's channel wins"
    );
    let check = app.updatecheck.unwrap();
    assert_eq!(check.targetversionprefix.as_deref(), Some("1.2"));
    assert!(check.rollback_allowed);
    assert!(!check.updatedisabled);
    let requests = w.server.requests.lock().unwrap();
    assert_eq!(
        requests[0].extra.get("dlpref").map(String::as_str),
        Some("cacheable")
    );
    drop(requests);
    // The registration keeps its own channel: the policy is not stored.
    assert_eq!(w.prefs().apps[APP].channel.as_deref(), Some("beta"));
}

#[test]
fn an_older_version_is_taken_only_when_the_policy_allows_the_rollback() {
    for (allowed, expect) in [(true, Some("1.0")), (false, None)] {
        let w = World::with_policy(&format!(
            "[apps.\"{APP}\"]\ntarget_version_prefix = \"1.0\"\nrollback_to_target = {allowed}\n"
        ));
        installed(&w, "1.5");
        // The server moves the app down to its pin (asked or not).
        w.server
            .publish(APP, "1.0", &[("app.tar", b"payload old")], None);
        w.server
            .offer_older
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let outcome = w.update();
        match (expect, outcome) {
            (Some(v), AppOutcome::Updated { to, .. }) => assert_eq!(to.to_string(), v),
            (None, AppOutcome::Failed { error, .. }) => {
                assert!(
                    matches!(error, crate::UpdateError::NotNewer { .. }),
                    "{error}"
                );
            }
            (_, other) => panic!("allowed {allowed}: {other:?}"),
        }
    }
}

#[test]
fn a_blocked_install_is_refused_and_changes_nothing() {
    let w = World::with_policy("[defaults]\ninstall = \"blocked\"\n");
    w.server
        .publish(APP, "1.0", &[("app.tar", b"payload one")], None);
    let before = std::fs::read(w.client.root().join(PREFS_FILE)).ok();
    let r = Registration::new(APP, "0".parse().unwrap(), w.install_dir(), "/p.wasm");
    match w
        .client
        .install(r, crate::InstallFrom::Server, &mut Recorder::default())
    {
        Err(ClientError::Install(InstallError::BlockedByPolicy { app, key, .. })) => {
            assert_eq!(app, APP);
            assert_eq!(key.to_string(), "policy defaults.install");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read(w.client.root().join(PREFS_FILE)).ok(), before);
    // A registration at version 0 is not installed by an update either.
    w.register("0");
    assert_eq!(held(w.update()), PolicyHold::InstallBlocked);
    assert!(w.plugins.installs().is_empty());
    assert!(w.current().is_none());
}

#[test]
fn the_policy_period_and_window_govern_scheduled_checks_only() {
    // Checked eleven minutes ago: due under a ten-minute policy period,
    // not under the configuration's five hours.
    let set_last_check = |w: &World| {
        let mut prefs = w.prefs();
        prefs.last_check = Some(crate::unix_now() - 11 * 60);
        prefs.check_spread = Some(0);
        prefs.save(&w.client.root().join(PREFS_FILE)).unwrap();
    };
    let plain = World::new();
    installed(&plain, "1.0");
    set_last_check(&plain);
    assert!(!wake(&plain).checked);

    let w = World::with_policy("check_period_minutes = 10\n");
    installed(&w, "1.0");
    set_last_check(&w);
    assert!(wake(&w).checked);

    // Inside the daily window: due, but not checked; `--now` still checks.
    let start = (local_minute_now() + 1440 - 1) % 1440;
    let w = World::with_policy(&format!(
        "check_period_minutes = 10\n[updates_suppressed]\nstart = \"{:02}:{:02}\"\n\
         duration_minutes = 30\n",
        start / 60,
        start % 60
    ));
    installed(&w, "1.0");
    set_last_check(&w);
    let report = wake(&w);
    assert!(!report.checked);
    let rest = report.suppressed.expect("suppressed").as_secs() / 60;
    assert!((27..=29).contains(&rest), "{rest} min left");
    assert_eq!(report.next_check, report.suppressed);
    let now = w
        .client
        .wake(WakeOptions { now: true }, &mut Recorder::default())
        .unwrap();
    assert!(now.checked);

    // A period of zero: no scheduled checks at all.
    let w = World::with_policy("check_period_minutes = 0\n");
    installed(&w, "1.0");
    let mut prefs = w.prefs();
    prefs.last_check = None;
    prefs.save(&w.client.root().join(PREFS_FILE)).unwrap();
    let report = wake(&w);
    assert!(!report.checked && report.scheduled_checks_off);
    assert_eq!(report.next_check, None);
}

#[test]
fn an_invalid_policy_file_is_reported_and_ignored_as_a_whole() {
    // The first line alone would disable updates; the second is a typo.
    let w = World::with_policy(&format!(
        "[apps.\"{APP}\"]\nupdate = \"disabled\"\ninstal = \"blocked\"\n"
    ));
    assert!(matches!(
        w.client.loaded_policy().state,
        PolicyFileState::Ignored(_)
    ));
    w.server
        .publish(APP, "1.0", &[("app.tar", b"payload one")], None);
    w.register("0");
    let mut recorder = Recorder::default();
    let pass = w.client.update(Selection::All, &mut recorder).unwrap();
    assert!(matches!(pass.apps[0].outcome, AppOutcome::Updated { .. }));
    let warned = recorder
        .warnings
        .iter()
        .any(|w| w.message.contains("ignored as a whole") && w.message.contains("instal"));
    assert!(warned, "{:?}", recorder.warnings);
    let effective = w.client.policy().unwrap();
    let rules = effective.apps.iter().find(|a| a.app == APP).unwrap();
    assert_eq!(rules.update.source, crate::policy::Source::Default);
}

//! What the update check says about the machine and its apps (OS, brand,
//! language, install source, actives) and when a scheduled check is due,
//! against the in-memory server of [`crate::tests`].

use upkeep_core::state::PREFS_FILE;

use crate::tests::{APP, World};
use crate::{ClientError, Recorder, Registration};

#[test]
fn the_request_carries_the_registered_brand_and_language_and_the_os_version() {
    let w = World::new();
    w.server
        .publish(APP, "1.0", &[("app.tar", b"payload one")], None);
    let mut r = Registration::new(APP, "0".parse().unwrap(), w.install_dir(), "/p.wasm");
    r.brand = Some("GGLS".into());
    r.lang = Some("de".into());
    w.client.register(r, &mut Recorder::default()).unwrap();
    assert_eq!(w.prefs().apps[APP].brand.as_deref(), Some("GGLS"));
    w.update();
    let requests = w.server.requests.lock().unwrap();
    // The update check, then the ping reporting the install.
    assert_eq!(requests.len(), 2);
    assert!(requests[0].apps[0].updatecheck.is_some());
    assert!(!requests[1].apps[0].events.is_empty());
    for sent in requests.iter() {
        let app = &sent.apps[0];
        assert_eq!(app.brand.as_deref(), Some("GGLS"));
        assert_eq!(app.lang.as_deref(), Some("de"));
        let os = sent.os.as_ref().expect("os");
        assert_eq!(os.platform.as_deref(), Some(std::env::consts::OS));
        #[cfg(target_os = "linux")]
        {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
            assert_eq!(os.version.as_deref(), Some(release.trim()));
        }
    }
}

#[test]
fn a_brand_with_a_control_character_is_refused_and_nothing_registered() {
    let w = World::new();
    let mut r = Registration::new(APP, "0".parse().unwrap(), w.install_dir(), "/p.wasm");
    r.brand = Some("GG\nLS".into());
    match w.client.register(r, &mut Recorder::default()) {
        Err(ClientError::BadAppAttribute { field: "brand", .. }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    let mut r = Registration::new(APP, "0".parse().unwrap(), w.install_dir(), "/p.wasm");
    r.lang = Some(String::new());
    assert!(matches!(
        w.client.register(r, &mut Recorder::default()),
        Err(ClientError::BadAppAttribute { field: "lang", .. })
    ));
    assert!(w.prefs().apps.is_empty());
}

#[test]
fn an_active_mark_rides_on_the_next_ping_and_is_cleared_by_the_answer() {
    let w = World::new();
    w.server
        .publish(APP, "1.0", &[("app.tar", b"payload one")], None);
    *w.server.elapsed_days.lock().unwrap() = Some(7000);
    w.register("0");
    assert!(matches!(
        w.client
            .mark_active("org.example.other", &mut Recorder::default()),
        Err(ClientError::NotRegistered { .. })
    ));
    assert!(w.client.mark_active(APP, &mut Recorder::default()).unwrap());
    assert!(!w.client.mark_active(APP, &mut Recorder::default()).unwrap());
    let check = |w: &World| {
        let requests = w.server.requests.lock().unwrap();
        requests
            .iter()
            .rev()
            .map(|r| &r.apps[0])
            .find(|a| a.updatecheck.is_some())
            .expect("an update check")
            .clone()
    };
    w.update();
    let app = check(&w);
    let ping = app.ping.expect("a ping");
    // The first active report: `a` and `ad` say "first" (-1).
    assert_eq!(
        (ping.active, ping.a, ping.ad),
        (Some(true), Some(-1), Some(-1))
    );
    assert_eq!(app.installsource.as_deref(), Some("ondemand"));
    assert!(
        !w.prefs().apps[APP].days.active_since,
        "cleared by the answer"
    );
    assert_eq!(w.prefs().apps[APP].days.last_active, Some(7000));
    w.update();
    let ping = check(&w).ping.expect("a ping");
    assert_eq!((ping.active, ping.a, ping.ad), (None, None, None));
}

#[test]
fn a_scheduled_check_waits_for_the_spread_interval_and_a_check_draws_a_new_spread() {
    use upkeep_core::check_schedule::{SPREAD_MAX_PERMILLE, SPREAD_MIN_PERMILLE};
    let w = World::new();
    w.server
        .publish(APP, "1.0", &[("app.tar", b"payload one")], None);
    w.register("0");
    w.update();
    let prefs = w.prefs();
    let spread = prefs.check_spread.expect("a spread drawn with the check");
    assert!((SPREAD_MIN_PERMILLE..=SPREAD_MAX_PERMILLE).contains(&spread));
    let sent = w.server.requests.lock().unwrap().len();

    let report = w
        .client
        .wake(crate::WakeOptions { now: false }, &mut Recorder::default())
        .unwrap();
    assert!(!report.checked, "not due right after a check");
    assert_eq!(w.server.requests.lock().unwrap().len(), sent);
    // The testkit's interval is 300 min: the next check is 270 to 360 min
    // away, as the spread says.
    let next = report.next_check.expect("when the next check is").as_secs();
    let expected = 300 * 60 * (1000 + i64::from(spread)) / 1000;
    let expected = u64::try_from(expected).unwrap();
    assert!(
        next <= expected && next + 5 >= expected,
        "{next} s, expected about {expected} s"
    );

    // A check that was due (the last one long ago) runs and draws anew.
    let mut prefs = w.prefs();
    prefs.last_check = Some(prefs.last_check.unwrap() - 400 * 60);
    prefs.check_spread = Some(SPREAD_MAX_PERMILLE);
    prefs.save(&w.client.root().join(PREFS_FILE)).unwrap();
    let report = w
        .client
        .wake(crate::WakeOptions { now: false }, &mut Recorder::default())
        .unwrap();
    assert!(report.checked, "due after 400 min");
    let sent_after = w.server.requests.lock().unwrap();
    let check = sent_after
        .iter()
        .rev()
        .find(|r| r.apps.iter().any(|a| a.updatecheck.is_some()))
        .unwrap();
    assert_eq!(check.apps[0].installsource, None, "a scheduled check");
}

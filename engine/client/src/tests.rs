//! The update pass with fakes: an in-memory server, stub plugins. Each
//! step's failure is checked for its Omaha code and for leaving the prefs
//! and the install directory as they were.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use upkeep_core::appdir;
use upkeep_core::omaha::codes::{check, download, install};
use upkeep_core::omaha::{ErrorCategory, join_args};
use upkeep_core::state::{PREFS_FILE, Prefs};
use upkeep_plugin_host::bindings::installer::Operation;

use crate::testkit::{Call, FakeServer, Shared, StubPlugins};
use crate::{AppOutcome, Client, ClientError, Recorder, Registration, Selection, UpdateError};

pub(crate) const APP: &str = "org.example.app";

pub(crate) struct World {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) server: Shared<FakeServer>,
    pub(crate) plugins: Shared<StubPlugins>,
    pub(crate) client: Client,
}

impl World {
    pub(crate) fn new() -> Self {
        Self::with_config(|_| {})
    }

    /// A world whose client configuration `tweak` changed.
    pub(crate) fn with_config(tweak: impl FnOnce(&mut crate::Config)) -> Self {
        Self::build(tweak, None)
    }

    /// A world whose state root holds `policy` as its `policy.toml`.
    pub(crate) fn with_policy(policy: &str) -> Self {
        Self::build(|_| {}, Some(policy))
    }

    fn build(tweak: impl FnOnce(&mut crate::Config), policy: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = policy {
            let state = dir.path().join("state");
            std::fs::create_dir_all(&state).unwrap();
            std::fs::write(state.join(crate::policy::POLICY_FILE), text).unwrap();
        }
        let server = Shared(Arc::new(FakeServer::new()));
        let plugins = Shared(Arc::new(StubPlugins::default()));
        let mut config = server.config(dir.path());
        tweak(&mut config);
        let client = Client::builder(dir.path().join("state"))
            .with_config(config)
            .http(server.clone())
            .plugins(plugins.clone())
            .exe("/nonexistent/upkeep")
            .open()
            .unwrap();
        Self {
            dir,
            server,
            plugins,
            client,
        }
    }

    pub(crate) fn install_dir(&self) -> PathBuf {
        self.dir.path().join("apps/app")
    }

    pub(crate) fn register(&self, version: &str) -> Registration {
        let mut r = Registration::new(
            APP,
            version.parse().unwrap(),
            self.install_dir(),
            "/plugins/installer.wasm",
        );
        r.existence = Some("/plugins/exists.wasm".into());
        r.settings = BTreeMap::from([("marker".to_owned(), "bin/app".to_owned())]);
        self.client
            .register(r.clone(), &mut Recorder::default())
            .unwrap();
        r
    }

    pub(crate) fn prefs(&self) -> Prefs {
        Prefs::load(&self.client.root().join(PREFS_FILE)).unwrap()
    }

    pub(crate) fn update(&self) -> AppOutcome {
        let mut pass = self
            .client
            .update(Selection::All, &mut Recorder::default())
            .unwrap();
        pass.apps.remove(0).outcome
    }

    /// The version `current` points at.
    pub(crate) fn current(&self) -> Option<String> {
        appdir::current_version(&self.install_dir())
    }
}

fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walk(dir);
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            let mut v = vec![p.clone()];
            if p.is_dir() && !p.is_symlink() {
                v.extend(walk(&p));
            }
            v
        })
        .collect()
}

fn error_of(outcome: AppOutcome) -> UpdateError {
    match outcome {
        AppOutcome::Failed { error, .. } => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_first_install_runs_the_installer_and_records_the_version() {
    let w = World::new();
    w.server
        .publish(APP, "1.0", &[("app.tar", b"payload one")], None);
    w.register("0");
    match w.update() {
        AppOutcome::Updated {
            from,
            to,
            downloads,
            staged,
            ..
        } => {
            assert_eq!(from.to_string(), "0");
            assert_eq!(to.to_string(), "1.0");
            assert_eq!(downloads.len(), 1);
            assert!(!staged);
        }
        other => panic!("{other:?}"),
    }
    let installs = w.plugins.installs();
    assert_eq!(installs.len(), 1);
    assert_eq!(installs[0].operation, Operation::Install);
    assert_eq!(
        std::fs::read(installs[0].payload_dir.as_ref().unwrap().join("app.tar")).unwrap(),
        b"payload one"
    );
    assert_eq!(w.prefs().apps[APP].version.to_string(), "1.0");
    assert_eq!(w.current().as_deref(), Some("1.0"));
    // The install event reached the server: eventtype 2, success.
    assert!(
        w.server.events().contains(&(APP.to_owned(), 2, 1, 0, 0)),
        "{:?}",
        w.server.events()
    );
}

#[test]
fn an_update_reports_progress_and_keeps_the_previous_version() {
    let w = World::new();
    w.server.publish(APP, "1.0", &[("app.tar", b"one")], None);
    w.register("0");
    w.update();
    w.server
        .publish(APP, "2.0", &[("app.tar", &[7u8; 100_000])], None);
    let mut seen = Recorder::default();
    let pass = w
        .client
        .update(Selection::App(APP.to_uppercase()), &mut seen)
        .unwrap();
    assert!(matches!(pass.apps[0].outcome, AppOutcome::Updated { .. }));
    assert!(seen.progress_reports > 0);
    assert!(
        seen.notices
            .iter()
            .any(|n| matches!(n, crate::Notice::Downloaded { bytes: 100_000, .. })),
        "{:?}",
        seen.notices
    );
    let record = &w.prefs().apps[APP];
    assert_eq!(record.version.to_string(), "2.0");
    assert_eq!(
        record
            .previous_version
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("1.0")
    );
    assert_eq!(w.plugins.installs()[1].operation, Operation::Update);
    assert_eq!(w.plugins.installs()[1].from_version.as_deref(), Some("1.0"));
    // Nothing newer: up to date, and the installer is not called again.
    assert!(matches!(w.update(), AppOutcome::UpToDate { .. }));
    assert_eq!(w.plugins.installs().len(), 2);
}

#[test]
fn installer_arguments_with_spaces_arrive_whole() {
    let w = World::new();
    let args = vec![
        "--dir".to_owned(),
        "C:\\Program Files\\App".to_owned(),
        "--label=two words".to_owned(),
        String::new(),
    ];
    w.server
        .publish(APP, "1.0", &[("app.tar", b"x")], Some(&join_args(&args)));
    w.register("0");
    assert!(matches!(w.update(), AppOutcome::Updated { .. }));
    assert_eq!(w.plugins.installs()[0].arguments, args);
}

#[test]
fn badly_quoted_arguments_fail_the_offer_before_anything_is_installed() {
    let w = World::new();
    w.server
        .publish(APP, "1.0", &[("app.tar", b"x")], Some("--dir \"C:\\open"));
    w.register("0");
    let before = w.prefs();
    let error = error_of(w.update());
    assert!(matches!(error, UpdateError::BadArguments(_)), "{error}");
    assert_eq!(
        error.omaha(),
        (ErrorCategory::UpdateCheck, check::BAD_OFFER, 0)
    );
    assert!(w.plugins.installs().is_empty());
    assert_eq!(w.prefs().apps, before.apps);
}

#[test]
fn registration_settings_reach_the_existence_checker() {
    let w = World::new();
    w.register("1.0");
    w.client
        .update(Selection::All, &mut Recorder::default())
        .unwrap();
    let calls = w.plugins.calls.lock().unwrap().clone();
    let settings = calls
        .iter()
        .find_map(|c| match c {
            Call::Existence(input) => Some(input.settings.clone()),
            _ => None,
        })
        .expect("the existence checker ran");
    assert_eq!(settings, vec![("marker".to_owned(), "bin/app".to_owned())]);
}

#[test]
fn an_app_the_checker_finds_gone_is_forgotten_and_reported() {
    let w = World::new();
    w.register("1.0");
    w.plugins.absent.store(true, Ordering::SeqCst);
    assert!(matches!(w.update(), AppOutcome::Removed { .. }));
    assert!(w.prefs().apps.is_empty());
    // eventtype 4 (uninstall) reported.
    assert!(w.server.events().iter().any(|e| e.0 == APP && e.1 == 4));
}

/// Runs a failing update of an installed 1.0 to 2.0 and checks that it is
/// reported with `code` and changed nothing.
fn fails_cleanly(prepare: impl FnOnce(&World), code: (ErrorCategory, i64)) -> (World, UpdateError) {
    let w = World::new();
    w.server.publish(APP, "1.0", &[("app.tar", b"one")], None);
    w.register("0");
    w.update();
    prepare(&w);
    let prefs = w.prefs();
    let files = tree(&w.install_dir());
    let error = error_of(w.update());
    let (cat, errorcode, _) = error.omaha();
    assert_eq!((cat, errorcode), code, "{error}");
    let after = w.prefs();
    assert_eq!(after.apps[APP].version, prefs.apps[APP].version, "{error}");
    assert_eq!(after.pending, None);
    assert_eq!(tree(&w.install_dir()), files, "{error}");
    assert_eq!(w.current().as_deref(), Some("1.0"));
    (w, error)
}

#[test]
fn an_unreachable_server_fails_the_check() {
    let (w, e) = fails_cleanly(
        |w| w.server.down.store(true, Ordering::SeqCst),
        (ErrorCategory::UpdateCheck, check::UNREACHABLE),
    );
    assert!(e.to_string().contains("unreachable"), "{e}");
    assert_eq!(w.plugins.installs().len(), 1);
}

#[test]
fn an_altered_answer_fails_cup_verification() {
    fails_cleanly(
        |w| {
            w.server.publish(APP, "2.0", &[("app.tar", b"two")], None);
            w.server.tamper.store(true, Ordering::SeqCst);
        },
        (ErrorCategory::UpdateCheck, check::CUP),
    );
}

#[test]
fn an_offer_tuf_never_signed_is_refused() {
    fails_cleanly(
        |w| {
            w.server
                .offer_only(APP, &"2.0".parse().unwrap(), &[("app.tar", b"two")], None)
        },
        (ErrorCategory::Download, download::TUF_TARGET),
    );
}

#[test]
fn a_payload_with_the_wrong_hash_is_refused() {
    fails_cleanly(
        |w| {
            w.server
                .publish(APP, "2.0", &[("big.tar", b"the signed bytes")], None);
            w.server
                .corrupt
                .lock()
                .unwrap()
                .insert("big.tar".into(), b"the served bytes".to_vec());
        },
        (ErrorCategory::Download, download::HASH),
    );
}

#[test]
fn a_failing_installer_leaves_the_installed_version() {
    let (_, e) = fails_cleanly(
        |w| {
            w.server.publish(APP, "2.0", &[("app.tar", b"two")], None);
            *w.plugins.install_fails.lock().unwrap() = Some((21, "disk full".into()));
        },
        (ErrorCategory::Install, 21),
    );
    assert_eq!(
        e.to_string(),
        "installer stub failed with code 21: disk full"
    );
}

#[test]
fn a_refusing_post_install_check_discards_the_new_version() {
    let (w, _) = fails_cleanly(
        |w| {
            let mut r =
                Registration::new(APP, "1.0".parse().unwrap(), w.install_dir(), "/p/i.wasm");
            r.post_install_check = Some("/p/check.wasm".into());
            w.client.register(r, &mut Recorder::default()).unwrap();
            w.server.publish(APP, "2.0", &[("app.tar", b"two")], None);
            *w.plugins.refuse.lock().unwrap() = Some("it does not start".into());
        },
        (ErrorCategory::Install, install::POST_INSTALL_CHECK),
    );
    let calls = w.plugins.calls.lock().unwrap().clone();
    let checked = calls.iter().find_map(|c| match c {
        Call::Qualify(role, input) => Some((*role, input.app_version.clone())),
        _ => None,
    });
    assert_eq!(
        checked,
        Some((crate::plugins::Role::PostInstallCheck, "2.0".to_owned()))
    );
}

#[test]
fn a_failure_is_reported_with_its_code() {
    let (w, _) = fails_cleanly(
        |w| {
            w.server.publish(APP, "2.0", &[("app.tar", b"two")], None);
            *w.plugins.install_fails.lock().unwrap() = Some((21, "disk full".into()));
        },
        (ErrorCategory::Install, 21),
    );
    // eventtype 3 (update), result 0 (error), errorcat 3, errorcode 21.
    assert!(
        w.server.events().contains(&(APP.to_owned(), 3, 0, 3, 21)),
        "{:?}",
        w.server.events()
    );
}

#[test]
fn uninstalling_an_app_calls_its_installer_then_forgets_it() {
    let w = World::new();
    w.server.publish(APP, "1.0", &[("app.tar", b"one")], None);
    w.register("0");
    w.update();
    let done = w
        .client
        .uninstall_app(APP, &mut Recorder::default())
        .unwrap();
    assert_eq!(done.version.to_string(), "1.0");
    let installs = w.plugins.installs();
    let last = installs.last().unwrap();
    assert_eq!(last.operation, Operation::Uninstall);
    assert_eq!(
        last.install_dir,
        appdir::version_dir(&w.install_dir(), &"1.0".parse().unwrap())
    );
    assert!(last.payload_dir.is_none());
    assert!(w.prefs().apps.is_empty());
    assert!(w.current().is_none());
    assert!(!w.install_dir().join("versions").exists());
    assert!(w.server.events().iter().any(|e| e.0 == APP && e.1 == 4));
}

#[test]
fn a_refusing_uninstaller_keeps_the_app() {
    let w = World::new();
    w.server.publish(APP, "1.0", &[("app.tar", b"one")], None);
    w.register("0");
    w.update();
    *w.plugins.install_fails.lock().unwrap() = Some((5, "in use".into()));
    let err = w
        .client
        .uninstall_app(APP, &mut Recorder::default())
        .unwrap_err();
    assert!(
        matches!(err, ClientError::UninstallRefused { code: 5, .. }),
        "{err}"
    );
    assert_eq!(w.prefs().apps[APP].version.to_string(), "1.0");
    assert_eq!(w.current().as_deref(), Some("1.0"));
}

#[test]
fn selecting_an_unknown_app_is_refused_before_anything_is_sent() {
    let w = World::new();
    w.register("1.0");
    let err = w
        .client
        .update(
            Selection::App("org.example.nobody".into()),
            &mut Recorder::default(),
        )
        .unwrap_err();
    assert!(matches!(err, ClientError::NotRegistered { .. }), "{err}");
    assert!(w.server.requests.lock().unwrap().is_empty());
}

/// Raises a cancel flag at the first bytes of a download.
struct CancelOnProgress(upkeep_core::cancel::Cancel, Recorder);

impl crate::Observer for CancelOnProgress {
    fn notice(&mut self, notice: &crate::Notice) {
        self.1.notice(notice);
    }

    fn progress(&mut self, progress: &crate::Progress<'_>) {
        self.0.cancel();
        self.1.progress(progress);
    }
}

#[test]
fn a_cancel_mid_download_leaves_prefs_current_and_install_dir_and_resumes_later() {
    let w = World::new();
    w.server.publish(APP, "1.0", &[("app.tar", b"one")], None);
    w.register("0");
    w.update();
    // Larger than the downloader's read buffer (1 MiB): cancelled midway.
    let payload = vec![9u8; 3_000_000];
    w.server.publish(APP, "2.0", &[("app.tar", &payload)], None);
    let prefs_before = std::fs::read(w.client.root().join(PREFS_FILE)).unwrap();
    let tree_before = tree(&w.install_dir());
    let mut observer = CancelOnProgress(w.client.canceller(), Recorder::default());
    let mut pass = w.client.update(Selection::All, &mut observer).unwrap();
    let error = error_of(pass.apps.remove(0).outcome);
    assert!(matches!(error, UpdateError::Cancelled), "{error}");
    assert_eq!(
        error.omaha(),
        (
            ErrorCategory::Service,
            upkeep_core::omaha::codes::service::CANCELLED,
            0
        )
    );
    assert_eq!(
        std::fs::read(w.client.root().join(PREFS_FILE)).unwrap(),
        prefs_before,
        "prefs changed"
    );
    assert_eq!(tree(&w.install_dir()), tree_before, "install dir changed");
    assert_eq!(w.current().as_deref(), Some("1.0"));
    assert_eq!(w.plugins.installs().len(), 1, "the installer ran");
    // The event says cancelled (eventresult 4); the staged bytes stay.
    assert!(
        w.server.events().iter().any(|e| e.0 == APP && e.2 == 4),
        "{:?}",
        w.server.events()
    );
    let partial = w
        .client
        .root()
        .join("downloads/.partial")
        .join(APP)
        .join("2.0/app.tar");
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < payload.len() as u64, "{kept}");
    // A client with a fresh flag finishes the update from the staged bytes.
    let again = Client::builder(w.client.root())
        .with_config(w.server.config(w.dir.path()))
        .http(w.server.clone())
        .plugins(w.plugins.clone())
        .exe("/nonexistent/upkeep")
        .open()
        .unwrap();
    let mut pass = again
        .update(Selection::All, &mut Recorder::default())
        .unwrap();
    match pass.apps.remove(0).outcome {
        AppOutcome::Updated { downloads, .. } => assert_eq!(downloads[0].resumed_from, kept),
        other => panic!("{other:?}"),
    }
    assert_eq!(w.current().as_deref(), Some("2.0"));
}

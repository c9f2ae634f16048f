//! The updater's own lifecycle step: an outdated version removes itself, a
//! candidate qualifies (a real update of the qualification app, then the
//! vendor's qualifier plugin) and activates. See `docs/lifecycle.md`.

use std::path::{Path, PathBuf};
use std::process::Command;

use upkeep_core::appdir;
use upkeep_core::crash;
use upkeep_core::lifecycle::{self, Installed, Role as UpdaterRole};
use upkeep_core::state::{AppRecord, Prefs, Qualification};
use upkeep_core::version::Version;
use upkeep_plugin_host::QualifyInput;
use upkeep_plugin_host::bindings::qualifier;

use crate::error::ClientError;
use crate::files::unix_now;
use crate::observer::{Notice, Observer, Warning};
use crate::pass::{Env, PassOptions, check_and_apply};
use crate::plugins::Role;
use crate::service::Service;
use crate::statelog::log;

/// Set for the `wake` of each version a command starts: it runs in that
/// process, not through the daemon (which may be busy serving the very wake
/// that started it). An environment variable rather than `--in-process`, so
/// that releases older than the flag accept it too.
pub const WAKE_IN_PROCESS_ENV: &str = "UPKEEP_WAKE_IN_PROCESS";

/// What the lifecycle step did with this updater version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stepped {
    /// It is the active version (now or already).
    Active {
        /// Older versions, started so they deactivate themselves.
        older: Vec<Version>,
    },
    /// It did not pass qualification (it retries on the next wake).
    Unqualified(String),
    /// A newer version is active; this one was removed.
    Deactivated(Version),
}

/// The version the binary `exe` is: the one it is installed as, else the
/// version this library was built as.
pub fn own_version(exe: Option<&Path>) -> (Option<Installed>, Version) {
    let installed = exe.and_then(lifecycle::installed_at);
    let version = installed.as_ref().map_or_else(
        || env!("CARGO_PKG_VERSION").parse().unwrap_or_default(),
        |i| i.version.clone(),
    );
    (installed, version)
}

/// Moves installed updater version `own` through its lifecycle. The
/// caller holds the lock.
pub(crate) fn step(
    env: &Env<'_>,
    prefs: &mut Prefs,
    own: &Version,
    observer: &mut dyn Observer,
) -> Result<Stepped, ClientError> {
    let root = env.root;
    match lifecycle::role(root, prefs, own)? {
        UpdaterRole::Active => Ok(Stepped::Active {
            older: older_than(root, own),
        }),
        UpdaterRole::Outdated { active } => {
            lifecycle::deactivate(root, prefs, own)?;
            log(
                root,
                &format!("{own}: {active} is active; uninstalled itself"),
            );
            Ok(Stepped::Deactivated(active))
        }
        UpdaterRole::Candidate { qualified } => {
            if !qualified {
                if prefs.active_version.is_none() {
                    record_qualification(
                        root,
                        own,
                        true,
                        "no version was active: qualification skipped".to_owned(),
                    )?;
                } else {
                    observer.notice(&Notice::Qualifying(own.clone()));
                    if let Err(why) = qualify(env, own, observer)? {
                        log(root, &format!("{own}: not qualified: {why}"));
                        return Ok(Stepped::Unqualified(why));
                    }
                }
            }
            let was = prefs.active_version.clone();
            let shim = Service::from_config(root, Some(env.config))?;
            lifecycle::activate(root, prefs, own, unix_now(), &mut |v| shim.swap(root, v))
                .map_err(|source| ClientError::Activate {
                    version: own.clone(),
                    source,
                })?;
            let was_text = was.as_ref().map_or("none".to_owned(), ToString::to_string);
            log(root, &format!("activated {own} (was {was_text})"));
            observer.notice(&Notice::Activated {
                version: own.clone(),
                was,
            });
            Ok(Stepped::Active {
                older: older_than(root, own),
            })
        }
    }
}

/// The updater versions installed in `root` older than `own`.
fn older_than(root: &Path, own: &Version) -> Vec<Version> {
    lifecycle::installed_versions(root)
        .into_iter()
        .filter(|v| v < own)
        .collect()
}

/// Writes version `own`'s qualification result into its local prefs.
fn record_qualification(
    root: &Path,
    own: &Version,
    qualified: bool,
    detail: String,
) -> Result<(), ClientError> {
    let path = lifecycle::local_prefs_path(root, own);
    let mut local = Prefs::load(&path)?;
    let previous = local.qualification.take();
    local.qualification = Some(Qualification {
        qualified,
        attempts: previous.map_or(0, |q| q.attempts) + 1,
        last_attempt: Some(unix_now()),
        detail: Some(detail),
    });
    local.save(&path)?;
    crash::point("qualify.recorded");
    Ok(())
}

/// Qualifies updater version `own`: registers the qualification app in its
/// local prefs, updates it from the server through the whole verified path
/// (into `versions/<own>/qualification/<app>/`), then runs the vendor's
/// qualifier plugin on it. `Ok(Err(why))` when it did not pass.
fn qualify(
    env: &Env<'_>,
    own: &Version,
    observer: &mut dyn Observer,
) -> Result<Result<(), String>, ClientError> {
    let root = env.root;
    let Some(q) = &env.config.qualification else {
        record_qualification(
            root,
            own,
            true,
            "no [qualification] is configured: qualified by starting".to_owned(),
        )?;
        return Ok(Ok(()));
    };
    let local_path = lifecycle::local_prefs_path(root, own);
    let mut local = Prefs::load(&local_path)?;
    lifecycle::recover_switch(&local_path, &mut local, unix_now())?;
    let installer = env.plugins.identify(&q.installer, Role::Installer)?;
    let install_dir = appdir::version_dir(root, own)
        .join("qualification")
        .join(&q.app);
    let existing = local.apps.get(&q.app).cloned();
    let record = AppRecord {
        installer: Some(installer),
        ..existing.unwrap_or_else(|| AppRecord::new(Version::default(), install_dir, unix_now()))
    };
    local.apps.insert(q.app.clone(), record);
    local.save(&local_path)?;
    crash::point("qualify.registered");
    let pass = check_and_apply(
        env,
        &local_path,
        &mut local,
        vec![q.app.clone()],
        PassOptions::default(),
        observer,
    );
    let why = match pass {
        Err(e) => Some(e.to_string()),
        Ok(pass) if pass.failed() => Some(pass.failure_text()),
        Ok(_) => None,
    };
    if let Some(why) = why {
        let why = format!("the qualification app {} did not update: {why}", q.app);
        record_qualification(root, own, false, why.clone())?;
        return Ok(Err(why));
    }
    crash::point("qualify.app-installed");
    let Some(app) = local
        .apps
        .get(&q.app)
        .filter(|a| a.version != Version::default())
    else {
        let why = format!(
            "the server offered no version of the qualification app {}",
            q.app
        );
        record_qualification(root, own, false, why.clone())?;
        return Ok(Err(why));
    };
    let qualifier = env.plugins.identify(&q.qualifier, Role::Qualifier)?;
    let input = QualifyInput {
        updater_version: own.to_string(),
        app_id: q.app.clone(),
        app_version: app.version.to_string(),
        app_dir: appdir::version_dir(&app.install_dir, &app.version),
        settings: q.settings.clone(),
    };
    let (qualified, detail) = match env.plugins.qualify(&qualifier, Role::Qualifier, &input) {
        Ok(answer) => match answer.value {
            qualifier::Verdict::Pass => (
                true,
                format!(
                    "{} {} passed qualifier {}",
                    q.app, app.version, answer.plugin
                ),
            ),
            qualifier::Verdict::Fail(why) => {
                (false, format!("qualifier {} failed: {why}", answer.plugin))
            }
        },
        Err(e) => (false, e.to_string()),
    };
    record_qualification(root, own, qualified, detail.clone())?;
    observer.notice(&Notice::Qualification {
        version: own.clone(),
        passed: qualified,
        detail: detail.clone(),
    });
    Ok(if qualified { Ok(()) } else { Err(detail) })
}

/// Starts `upkeep wake` of each of `versions` (older updater versions that
/// deactivate themselves, or a freshly staged one that qualifies and
/// activates), waiting for each. Call without the lock held.
pub(crate) fn start_versions(
    root: &Path,
    config_arg: Option<&PathBuf>,
    versions: &[Version],
    observer: &mut dyn Observer,
) {
    for v in versions {
        let binary = lifecycle::binary_path(root, v);
        let mut cmd = Command::new(&binary);
        cmd.arg("wake")
            .arg("--root")
            .arg(root)
            .env(WAKE_IN_PROCESS_ENV, "1")
            .env_remove("UPKEEP_RESTARTED_AS");
        if let Some(config) = config_arg {
            cmd.arg("--config").arg(config);
        }
        if let Some(tag) = crash::child_tag() {
            cmd.env(crash::CRASH_PROC_ENV, tag);
        }
        match cmd.status() {
            Ok(s) if s.success() => {}
            Ok(s) => observer.warning(&Warning::general(format!(
                "{} wake ended with {s}",
                binary.display()
            ))),
            Err(e) => observer.warning(&Warning::general(format!(
                "cannot start {}: {e}",
                binary.display()
            ))),
        }
    }
}

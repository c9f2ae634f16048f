//! `upkeep install`: register and install apps in one step, from the
//! update server or an offline folder, as a tag (given, or appended to this
//! binary) describes them. See `docs/installing.md`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use upkeep_client::ipc::Request;
use upkeep_client::scope::user_root;
use upkeep_client::{ClientError, InstallFrom, InstallOptions, SYSTEM_ROOT, SetupOutcome};
use upkeep_core::tag::file::read_tag;
use upkeep_core::tag::{NeedsAdmin, Tag, TagApp};
use upkeep_core::version::Version;

use crate::ExitCode;
use crate::cmd_client::AppArgs;
use crate::ops;
use crate::remote::through_daemon;
use crate::render::Terminal;
use crate::state::StateArgs;

/// `upkeep install`.
///
/// Installs an app that is not on this machine yet: it is registered and
/// its newest release installed in one step, and it is registered only if
/// the install succeeds. From the update server (an update check sent as
/// an on-demand install, then the same verified download and installer as
/// an update), or with --offline-dir from an offline folder without any
/// network: its OfflineManifest.gup (else <app-id>.gup) and the packages it
/// lists, each checked against the manifest's size and SHA-256 before the
/// installer runs.
///
/// What to install comes from --app, or from an installer tag: --tag, else
/// the tag appended to this binary (`upkeep tag write`). The tag's `ap`,
/// `brand`, `lang` and `installdataindex` become the registration's
/// channel, brand, language and install data index unless given here, its
/// `installerdata` goes to the installer when no install data answers for
/// the index (and is not stored), and
/// its `needsadmin` picks the scope when neither --root nor --system is
/// given: `true` the system scope, `false` this user's, `prefers` the
/// system scope when it can be written, else this user's (the choice is
/// printed). A tag naming several apps installs each, into
/// <install-dir>/<app-id>.
///
/// Unless --no-setup is given, upkeep itself is set up in the scope first
/// when no version of it is active there.
#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct InstallArgs {
    /// The app to install (default: every app of the tag).
    #[arg(long = "app", value_name = "ID")]
    app: Option<String>,

    /// An installer tag, e.g. 'appguid={...}&needsadmin=prefers&brand=GGLS'
    /// (default: the tag appended to this binary, if it has one).
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,

    /// Install from this offline folder; no network is used.
    #[arg(long, value_name = "DIR")]
    offline_dir: Option<PathBuf>,

    #[command(flatten)]
    how: AppArgs,

    /// Do not set upkeep itself up in the scope when it is not there.
    #[arg(long)]
    no_setup: bool,

    /// Run here, not through the daemon that serves the state root.
    #[arg(long)]
    in_process: bool,

    #[command(flatten)]
    state: StateArgs,
}

/// Runs `upkeep install`.
pub fn run(args: InstallArgs) -> Result<ExitCode> {
    let tag = match &args.tag {
        Some(text) => Some(Tag::parse(text).context("--tag")?),
        None => own_tag()?,
    };
    let apps = apps_to_install(args.app.as_deref(), tag.as_ref())?;
    let needs = strictest(apps.iter().filter_map(|a| a.needsadmin));
    let (state, why) = scope_for(&args.state, needs, Path::new(SYSTEM_ROOT))?;
    if let Some(why) = why {
        eprintln!("upkeep: {why}");
    }
    let offline_dir = args
        .offline_dir
        .as_deref()
        .map(|d| std::path::absolute(d).with_context(|| format!("cannot resolve {}", d.display())))
        .transpose()?;
    if !args.no_setup {
        set_up(&state)?;
    }
    let several = apps.len() > 1;
    let base_dir = args.how.install_dir.clone();
    let mut how = args.how;
    let mut failed = Vec::new();
    for app in &apps {
        how.install_dir = if several {
            base_dir.join(app.appid.to_ascii_lowercase())
        } else {
            base_dir.clone()
        };
        let result = install_one(
            &state,
            args.in_process,
            &how,
            app,
            tag.as_ref(),
            offline_dir.clone(),
        );
        match result {
            Ok(ExitCode::Ok) => {}
            Ok(_) => failed.push(app.appid.clone()),
            Err(e) if !several => return Err(e),
            Err(e) => {
                eprintln!(
                    "upkeep: error: {}: {}",
                    app.appid,
                    crate::exit::error_text(&e)
                );
                failed.push(app.appid.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::Ok)
    } else {
        if several {
            eprintln!("upkeep: not installed: {}", failed.join(", "));
        }
        Ok(ExitCode::Failed)
    }
}

/// The tag appended to this binary, if it has one.
fn own_tag() -> Result<Option<Tag>> {
    let exe = std::env::current_exe().context("cannot find this upkeep binary")?;
    read_tag(&exe).with_context(|| format!("the tag of {}", exe.display()))
}

/// The apps to install: `app` (with what the tag says of it), else every
/// app of the tag.
fn apps_to_install(app: Option<&str>, tag: Option<&Tag>) -> Result<Vec<TagApp>> {
    match (app, tag) {
        (Some(id), Some(tag)) => match tag.apps.iter().find(|a| a.appid.eq_ignore_ascii_case(id)) {
            Some(a) => Ok(vec![a.clone()]),
            None => bail!("the tag does not name app {id}"),
        },
        (Some(id), None) => Ok(vec![TagApp {
            appid: id.to_owned(),
            ..TagApp::default()
        }]),
        (None, Some(tag)) => Ok(tag.apps.clone()),
        (None, None) => {
            bail!("nothing to install: give --app or --tag (this binary carries no tag)")
        }
    }
}

/// The scope the tag asks for, when several apps ask: any `true` wins,
/// then any `prefers`.
fn strictest(asked: impl Iterator<Item = NeedsAdmin>) -> Option<NeedsAdmin> {
    asked.max_by_key(|n| match n {
        NeedsAdmin::No => 0,
        NeedsAdmin::Prefers => 1,
        NeedsAdmin::Yes => 2,
    })
}

/// The state arguments to install with, and why that scope, when the tag
/// chose it. `--root` and `--system` always win over the tag.
fn scope_for(
    state: &StateArgs,
    needs: Option<NeedsAdmin>,
    system_root: &Path,
) -> Result<(StateArgs, Option<String>)> {
    let Some(needs) = needs.filter(|_| state.root.is_none() && !state.system) else {
        return Ok((state.clone(), None));
    };
    let chosen = |root: PathBuf, why: String| {
        let mut s = state.clone();
        s.root = Some(root);
        (s, Some(why))
    };
    let user = || user_root().map_err(anyhow::Error::from);
    Ok(match needs {
        NeedsAdmin::Yes => chosen(
            system_root.to_path_buf(),
            format!(
                "installing for all users in {} (the tag says needsadmin=true)",
                system_root.display()
            ),
        ),
        NeedsAdmin::No => {
            let root = user()?;
            let why = format!(
                "installing for this user in {} (the tag says needsadmin=false)",
                root.display()
            );
            chosen(root, why)
        }
        NeedsAdmin::Prefers if writable(system_root) => chosen(
            system_root.to_path_buf(),
            format!(
                "installing for all users in {} (the tag says needsadmin=prefers and it is writable)",
                system_root.display()
            ),
        ),
        NeedsAdmin::Prefers => {
            let root = user()?;
            let why = format!(
                "installing for this user in {} (the tag says needsadmin=prefers and {} is not writable)",
                root.display(),
                system_root.display()
            );
            chosen(root, why)
        }
    })
}

/// Whether this process can create files in `dir` (creating it when it
/// does not exist yet, as the install would).
fn writable(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let probe = dir.join(format!(".upkeep-probe-{}", std::process::id()));
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .is_ok();
    if made {
        let _ = std::fs::remove_file(&probe);
    }
    made
}

/// Sets upkeep up in the scope when it has a configuration and no active
/// version yet.
fn set_up(state: &StateArgs) -> Result<()> {
    let client = state.client()?;
    if !client.config_path().exists() {
        return Ok(());
    }
    let active = match client.status() {
        Ok(status) => status.active_version,
        Err(ClientError::EmptyRoot { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if active.is_some() {
        return Ok(());
    }
    match client.setup(&mut Terminal::new())? {
        SetupOutcome::Stepped { version, .. } | SetupOutcome::AlreadyActive(version) => {
            eprintln!(
                "upkeep: set up upkeep {version} in {}",
                client.root().display()
            );
        }
        SetupOutcome::SingleBinary { version, exe } => {
            eprintln!(
                "upkeep: upkeep {version} runs as a single binary from {}",
                exe.display()
            );
        }
    }
    Ok(())
}

/// Installs one app: through the daemon when one answers, else here.
fn install_one(
    state: &StateArgs,
    in_process: bool,
    how: &AppArgs,
    app: &TagApp,
    tag: Option<&Tag>,
    offline_dir: Option<PathBuf>,
) -> Result<ExitCode> {
    let mut how = how.clone();
    how.channel = how.channel.or_else(|| app.ap.clone());
    how.install_data_index = how
        .install_data_index
        .or_else(|| app.installdataindex.clone());
    how.brand = how.brand.or_else(|| tag.and_then(|t| t.brand.clone()));
    how.lang = how.lang.or_else(|| tag.and_then(|t| t.lang.clone()));
    let registration = how.registration(app.appid.clone(), Version::default())?;
    let request = Request::Install {
        registration: Box::new(registration.clone()),
        offline_dir: offline_dir.clone(),
        installer_data: app.installerdata.clone(),
    };
    if let Some(code) = through_daemon(state, in_process, &request)? {
        return Ok(code);
    }
    let client = state.client()?;
    let options = InstallOptions {
        from: offline_dir.map_or(InstallFrom::Server, InstallFrom::Offline),
        installer_data: app.installerdata.clone(),
    };
    Ok(ops::install(&client, registration, options, &mut Terminal::new())?.print())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> StateArgs {
        StateArgs {
            root: None,
            system: false,
            config: None,
            policy: None,
        }
    }

    #[test]
    fn needsadmin_picks_the_scope_unless_one_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let system = dir.path().join("system");
        let (s, why) = scope_for(&state(), Some(NeedsAdmin::Yes), &system).unwrap();
        assert_eq!(s.root.as_deref(), Some(system.as_path()));
        assert!(why.unwrap().contains("needsadmin=true"));
        let (s, _) = scope_for(&state(), Some(NeedsAdmin::Prefers), &system).unwrap();
        assert_eq!(s.root.as_deref(), Some(system.as_path()));
        // A system root that cannot be created (its parent is a file):
        // prefers falls back to the user's scope and says so.
        std::fs::write(dir.path().join("file"), "").unwrap();
        let blocked = dir.path().join("file/system");
        let (s, why) = scope_for(&state(), Some(NeedsAdmin::Prefers), &blocked).unwrap();
        assert_eq!(s.root, Some(user_root().unwrap()));
        assert!(why.unwrap().contains("not writable"));
        let (s, _) = scope_for(&state(), Some(NeedsAdmin::No), &system).unwrap();
        assert_eq!(s.root, Some(user_root().unwrap()));
        // --root wins over the tag; no tag, no choice.
        let mut given = state();
        given.root = Some(dir.path().join("mine"));
        let (s, why) = scope_for(&given, Some(NeedsAdmin::Yes), &system).unwrap();
        assert_eq!(s.root, given.root);
        assert!(why.is_none());
        assert!(scope_for(&state(), None, &system).unwrap().1.is_none());
    }

    #[test]
    fn the_strictest_request_of_several_apps_wins() {
        use NeedsAdmin::*;
        assert_eq!(strictest([No, Prefers, No].into_iter()), Some(Prefers));
        assert_eq!(strictest([Prefers, Yes].into_iter()), Some(Yes));
        assert_eq!(strictest(std::iter::empty()), None);
    }

    #[test]
    fn apps_come_from_the_app_or_the_tag() {
        let tag =
            Tag::parse("appguid={A}&ap=beta&appguid={B}&needsadmin=false&brand=GGLS").unwrap();
        let both = apps_to_install(None, Some(&tag)).unwrap();
        assert_eq!(both.len(), 2);
        let b = apps_to_install(Some("{b}"), Some(&tag)).unwrap();
        assert_eq!(b[0].needsadmin, Some(NeedsAdmin::No));
        assert!(apps_to_install(Some("{C}"), Some(&tag)).is_err());
        assert_eq!(apps_to_install(Some("x"), None).unwrap()[0].appid, "x");
        assert!(apps_to_install(None, None).is_err());
    }
}

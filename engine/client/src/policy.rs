//! Enterprise policy in the engine: where a scope's policy file is, what
//! it says once read (or why it was ignored as a whole), and the effective
//! value of every setting with its source — the policy file over the
//! operator's `config.toml` over the app's registration over the defaults
//! (`docs/policy.md`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use upkeep_core::omaha::RequestApp;
use upkeep_core::policy::{
    DownloadPreference, InstallPolicy, MAX_POLICY_BYTES, Policy, Proxy, UpdatePolicy, Window,
};
use upkeep_core::state::AppRecord;
use upkeep_core::version::Version;

use crate::config::Config;
use crate::scope::is_system;

/// The system scope's policy file.
pub const SYSTEM_POLICY_FILE: &str = "/etc/upkeep/policy.toml";
/// The policy file's name in any other state root.
pub const POLICY_FILE: &str = "policy.toml";
/// Minutes between scheduled checks when neither the policy nor the
/// configuration says (five hours, as Chromium's updater).
pub const DEFAULT_CHECK_PERIOD_MINUTES: u64 = 300;

/// The policy file of `root`: [`SYSTEM_POLICY_FILE`] for the system scope,
/// `<root>/policy.toml` for any other.
pub fn default_policy_path(root: &Path) -> PathBuf {
    if is_system(root) {
        PathBuf::from(SYSTEM_POLICY_FILE)
    } else {
        root.join(POLICY_FILE)
    }
}

/// What was found at the policy file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyFileState {
    /// No file: nothing is governed by policy.
    Absent,
    /// The file, read and checked.
    Loaded,
    /// The file is unusable and was ignored as a whole: why.
    Ignored(String),
}

/// A scope's policy as the engine uses it.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// The file.
    pub path: PathBuf,
    /// Whether it was read.
    pub state: PolicyFileState,
    policy: Policy,
}

impl LoadedPolicy {
    /// Reads the policy file at `path`. A missing file is no policy; an
    /// unreadable, oversized, non-UTF-8 or invalid one is ignored whole.
    pub fn load(path: &Path) -> Self {
        let ignored = |why: String| Self {
            path: path.to_path_buf(),
            state: PolicyFileState::Ignored(why),
            policy: Policy::default(),
        };
        let mut bytes = Vec::new();
        let limit = u64::try_from(MAX_POLICY_BYTES).unwrap_or(u64::MAX) + 1;
        match std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes)) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::none(path),
            Err(e) => return ignored(format!("cannot read it: {e}")),
        }
        let Ok(text) = String::from_utf8(bytes) else {
            return ignored("it is not UTF-8".to_owned());
        };
        match Policy::parse(&text) {
            Ok(policy) => Self {
                path: path.to_path_buf(),
                state: PolicyFileState::Loaded,
                policy,
            },
            Err(e) => ignored(e.to_string()),
        }
    }

    /// No policy file at `path`.
    pub fn none(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            state: PolicyFileState::Absent,
            policy: Policy::default(),
        }
    }

    /// The policy in force: the file's, or the empty one when it is
    /// absent or ignored.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A line saying the file was ignored, and why, when it was.
    pub fn problem(&self) -> Option<String> {
        match &self.state {
            PolicyFileState::Ignored(why) => Some(format!(
                "policy file {} ignored as a whole, the defaults apply: {why}",
                self.path.display()
            )),
            _ => None,
        }
    }
}

/// Where an effective value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The policy file, at this key.
    Policy(String),
    /// The client configuration, at this key.
    Config(&'static str),
    /// The app's registration (or a tag it was installed from).
    Registration,
    /// Built in.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Policy(key) => write!(f, "policy {key}"),
            Source::Config(key) => write!(f, "config {key}"),
            Source::Registration => f.write_str("registration"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A value and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its source.
    pub source: Source,
}

fn from<T>(value: T, source: Source) -> Sourced<T> {
    Sourced { value, source }
}

/// What holds back an app's update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyHold {
    /// Updates of the app are disabled.
    UpdatesDisabled,
    /// The app updates only when someone asks; this check was scheduled.
    ManualOnly,
    /// The app is not installed yet and installing it is blocked.
    InstallBlocked,
}

impl PolicyHold {
    /// A short stable name (`updates-disabled`, `manual-only`,
    /// `install-blocked`), for JSON.
    pub fn code(self) -> &'static str {
        match self {
            PolicyHold::UpdatesDisabled => "updates-disabled",
            PolicyHold::ManualOnly => "manual-only",
            PolicyHold::InstallBlocked => "install-blocked",
        }
    }
}

impl std::fmt::Display for PolicyHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PolicyHold::UpdatesDisabled => "updates are disabled by policy",
            PolicyHold::ManualOnly => "policy allows only updates someone asks for",
            PolicyHold::InstallBlocked => "installing it is blocked by policy",
        })
    }
}

/// The effective rules for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRules {
    /// The app id.
    pub app: String,
    /// Whether and when it updates.
    pub update: Sourced<UpdatePolicy>,
    /// Whether it may be installed.
    pub install: Sourced<InstallPolicy>,
    /// Only versions matching this prefix.
    pub target_version_prefix: Sourced<Option<String>>,
    /// Whether the server may offer an older version (Omaha's
    /// `rollback_allowed`: down to the target prefix, or below a pulled
    /// release). Never for upkeep itself.
    pub rollback_allowed: Sourced<bool>,
    /// The channel asked for (`ap`).
    pub channel: Sourced<Option<String>>,
}

impl AppRules {
    /// The rules for `id` (registered as `record`, if it is).
    pub fn new(
        policy: &Policy,
        config: Option<&Config>,
        id: &str,
        record: Option<&AppRecord>,
    ) -> Self {
        let app = policy.app(id);
        let key = |name: &str| Source::Policy(format!("apps.\"{id}\".{name}"));
        let default_key = |name: &str| Source::Policy(format!("defaults.{name}"));
        let update = match (app.and_then(|a| a.update), policy.update_default) {
            (Some(u), _) => from(u, key("update")),
            (None, Some(u)) => from(u, default_key("update")),
            (None, None) => from(UpdatePolicy::Automatic, Source::Default),
        };
        let install = match (app.and_then(|a| a.install), policy.install_default) {
            (Some(i), _) => from(i, key("install")),
            (None, Some(i)) => from(i, default_key("install")),
            (None, None) => from(InstallPolicy::Allowed, Source::Default),
        };
        let target_version_prefix = match app.and_then(|a| a.target_version_prefix.clone()) {
            Some(p) => from(Some(p), key("target_version_prefix")),
            None => from(None, Source::Default),
        };
        let is_updater = record.is_some_and(|r| r.updater)
            || config
                .and_then(|c| c.updater.as_ref())
                .is_some_and(|u| u.app.eq_ignore_ascii_case(id));
        let rollback_allowed = match (app.and_then(|a| a.rollback_to_target), config) {
            _ if is_updater => from(false, Source::Default),
            (Some(r), _) => from(r, key("rollback_to_target")),
            (None, Some(c)) if c.sets("rollback_allowed") => {
                from(c.rollback_allowed, Source::Config("rollback_allowed"))
            }
            _ => from(false, Source::Default),
        };
        let channel = match (app.and_then(|a| a.target_channel.clone()), record) {
            (Some(c), _) => from(Some(c), key("target_channel")),
            (None, Some(r)) if r.channel.is_some() => from(r.channel.clone(), Source::Registration),
            _ => from(None, Source::Default),
        };
        Self {
            app: id.to_owned(),
            update,
            install,
            target_version_prefix,
            rollback_allowed,
            channel,
        }
    }

    /// What holds back a check of the app at `version`: `on_demand` when
    /// someone asked for it. An app not installed yet (version 0) is
    /// governed by the install policy, an installed one by the update
    /// policy.
    pub fn hold(&self, version: &Version, on_demand: bool) -> Option<PolicyHold> {
        if *version == Version::default() {
            return (self.install.value == InstallPolicy::Blocked)
                .then_some(PolicyHold::InstallBlocked);
        }
        match self.update.value {
            UpdatePolicy::Disabled => Some(PolicyHold::UpdatesDisabled),
            u if !u.allows(on_demand) => Some(PolicyHold::ManualOnly),
            _ => None,
        }
    }

    /// Puts the rules into the app's update check: `ap`, the target prefix,
    /// `rollback_allowed`, and `updatedisabled` when `hold`.
    pub(crate) fn apply_to(&self, app: &mut RequestApp, hold: Option<PolicyHold>) {
        app.ap.clone_from(&self.channel.value);
        let check = app.updatecheck.get_or_insert_default();
        check
            .targetversionprefix
            .clone_from(&self.target_version_prefix.value);
        check.rollback_allowed = self.rollback_allowed.value;
        check.updatedisabled = hold.is_some();
    }
}

/// The whole effective policy of a scope, for `upkeep policy`.
#[derive(Debug, Clone)]
pub struct EffectivePolicy {
    /// The policy file and whether it was read.
    pub file: PathBuf,
    /// Whether it was read, absent or ignored.
    pub state: PolicyFileState,
    /// The configuration file, when there is one.
    pub config: Option<PathBuf>,
    /// Time between scheduled checks (zero: none).
    pub check_period: Sourced<Duration>,
    /// The daily window without scheduled checks.
    pub updates_suppressed: Sourced<Option<Window>>,
    /// Sent as `dlpref`.
    pub download_preference: Sourced<Option<DownloadPreference>>,
    /// How the network is reached.
    pub proxy: Sourced<Proxy>,
    /// Every registered app and every app the policy names.
    pub apps: Vec<AppRules>,
}

impl EffectivePolicy {
    /// The effective policy from the loaded file, the configuration and
    /// the registered apps.
    pub fn new<'a>(
        loaded: &LoadedPolicy,
        config: Option<&Config>,
        apps: impl IntoIterator<Item = (&'a String, &'a AppRecord)>,
    ) -> Self {
        let policy = loaded.policy();
        let mut rules: Vec<AppRules> = apps
            .into_iter()
            .map(|(id, record)| AppRules::new(policy, config, id, Some(record)))
            .collect();
        for id in policy.apps.keys() {
            if !rules.iter().any(|r| r.app == *id) {
                rules.push(AppRules::new(policy, config, id, None));
            }
        }
        rules.sort_by(|a, b| a.app.cmp(&b.app));
        let keyed = |name: &str| Source::Policy(name.to_owned());
        Self {
            file: loaded.path.clone(),
            state: loaded.state.clone(),
            config: config.map(|c| c.path.clone()),
            check_period: check_period(policy, config),
            updates_suppressed: match policy.updates_suppressed {
                Some(w) => from(Some(w), keyed("updates_suppressed")),
                None => from(None, Source::Default),
            },
            download_preference: match policy.download_preference {
                Some(d) => from(Some(d), keyed("download_preference")),
                None => from(None, Source::Default),
            },
            proxy: match &policy.proxy {
                Some(p) => from(p.clone(), keyed("proxy")),
                None => from(Proxy::System, Source::Default),
            },
            apps: rules,
        }
    }
}

/// The time between scheduled checks: the policy's, else the
/// configuration's, else five hours. Zero: no scheduled checks.
pub fn check_period(policy: &Policy, config: Option<&Config>) -> Sourced<Duration> {
    let minutes = |m: u64| Duration::from_secs(m.saturating_mul(60));
    match (policy.check_period_minutes, config) {
        (Some(m), _) => from(
            minutes(u64::from(m)),
            Source::Policy("check_period_minutes".to_owned()),
        ),
        (None, Some(c)) if c.sets("check_interval_minutes") => {
            from(c.check_interval, Source::Config("check_interval_minutes"))
        }
        _ => from(minutes(DEFAULT_CHECK_PERIOD_MINUTES), Source::Default),
    }
}

/// Minutes after local midnight now (the zone of `TZ`, else the system's).
pub fn local_minute_now() -> u32 {
    use chrono::Timelike;
    let now = chrono::Local::now();
    now.hour() * 60 + now.minute()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(version: &str) -> AppRecord {
        let mut r = AppRecord::new(version.parse().unwrap(), PathBuf::from("/x"), 0);
        r.channel = Some("beta".into());
        r
    }

    #[test]
    fn the_policy_file_wins_and_every_value_says_where_it_is_from() {
        let policy = Policy::parse(
            "[defaults]\nupdate = \"manual-only\"\n[apps.a]\ntarget_channel = \"stable\"\n\
             rollback_to_target = true\ntarget_version_prefix = \"1.\"\n",
        )
        .unwrap();
        let a = AppRules::new(&policy, None, "a", Some(&record("1.5")));
        assert_eq!(
            a.update,
            from(
                UpdatePolicy::ManualOnly,
                Source::Policy("defaults.update".into())
            )
        );
        assert_eq!(a.install, from(InstallPolicy::Allowed, Source::Default));
        assert_eq!(a.channel.value.as_deref(), Some("stable"));
        assert_eq!(
            a.channel.source.to_string(),
            "policy apps.\"a\".target_channel"
        );
        assert!(a.rollback_allowed.value);
        let b = AppRules::new(&policy, None, "b", Some(&record("1.5")));
        assert_eq!(b.channel, from(Some("beta".into()), Source::Registration));
        assert_eq!(b.rollback_allowed, from(false, Source::Default));
        let mut updater = record("1.5");
        updater.updater = true;
        let u = AppRules::new(&policy, None, "a", Some(&updater));
        assert!(
            !u.rollback_allowed.value,
            "upkeep itself is never moved down"
        );
    }

    #[test]
    fn holds_follow_the_install_and_update_policies() {
        let policy = Policy::parse(
            "[defaults]\ninstall = \"blocked\"\n[apps.m]\nupdate = \"manual-only\"\n\
             [apps.d]\nupdate = \"disabled\"\n",
        )
        .unwrap();
        let zero = Version::default();
        let one: Version = "1".parse().unwrap();
        let rules = |id| AppRules::new(&policy, None, id, None);
        assert_eq!(
            rules("x").hold(&zero, true),
            Some(PolicyHold::InstallBlocked)
        );
        assert_eq!(rules("x").hold(&one, false), None);
        assert_eq!(rules("m").hold(&one, false), Some(PolicyHold::ManualOnly));
        assert_eq!(rules("m").hold(&one, true), None);
        assert_eq!(
            rules("d").hold(&one, true),
            Some(PolicyHold::UpdatesDisabled)
        );
    }

    #[test]
    fn a_bad_file_is_ignored_whole_and_a_missing_one_is_no_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(POLICY_FILE);
        assert_eq!(LoadedPolicy::load(&path).state, PolicyFileState::Absent);
        std::fs::write(
            &path,
            "check_period_minutes = 10\n[apps.a]\nupdate = \"never\"\n",
        )
        .unwrap();
        let loaded = LoadedPolicy::load(&path);
        assert!(matches!(loaded.state, PolicyFileState::Ignored(_)));
        assert_eq!(loaded.policy(), &Policy::default(), "nothing half applied");
        assert!(loaded.problem().unwrap().contains("ignored as a whole"));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(
            LoadedPolicy::load(&path)
                .problem()
                .unwrap()
                .contains("UTF-8")
        );
        std::fs::write(&path, vec![b'#'; MAX_POLICY_BYTES + 1]).unwrap();
        assert!(
            LoadedPolicy::load(&path)
                .problem()
                .unwrap()
                .contains("bytes")
        );
        std::fs::write(&path, "check_period_minutes = 10\n").unwrap();
        let loaded = LoadedPolicy::load(&path);
        assert_eq!(loaded.state, PolicyFileState::Loaded);
        let period = check_period(loaded.policy(), None);
        assert_eq!(period.value, Duration::from_secs(600));
        assert_eq!(
            default_policy_path(Path::new(crate::scope::SYSTEM_ROOT)),
            Path::new(SYSTEM_POLICY_FILE)
        );
    }
}

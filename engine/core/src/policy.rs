//! Enterprise policy: the file an administrator puts beside a scope
//! (`/etc/upkeep/policy.toml` for the system scope), read and checked as a
//! whole. A file with any mistake is refused entirely ([`PolicyError`]) so
//! that a policy is never half applied; the client then keeps its defaults
//! and says why (`docs/policy.md`).
//!
//! ```toml
//! check_period_minutes = 120
//! download_preference = "cacheable"
//! proxy = "http://proxy.internal:3128"     # or "direct", "system"
//!
//! [updates_suppressed]                     # daily, in local time
//! start = "09:00"
//! duration_minutes = 480
//!
//! [defaults]
//! update = "automatic"                     # automatic | manual-only | disabled
//! install = "allowed"                      # allowed | blocked
//!
//! [apps."org.example.notes"]
//! update = "manual-only"
//! install = "blocked"
//! target_version_prefix = "1.2"
//! rollback_to_target = true
//! target_channel = "stable"
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::app_id::check_app_id;

/// The longest check period a policy may set: 30 days, in minutes.
pub const MAX_CHECK_PERIOD_MINUTES: u32 = 43_200;
/// The largest policy file read, in bytes.
pub const MAX_POLICY_BYTES: usize = 256 * 1024;
/// Minutes in a day.
const DAY: u32 = 24 * 60;

/// Whether an app's updates are applied, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdatePolicy {
    /// Scheduled checks and checks someone asks for both update the app.
    Automatic,
    /// Only checks someone asks for (`upkeep update`) update the app; the
    /// scheduled ones tell the server updates are disabled.
    ManualOnly,
    /// No check updates the app.
    Disabled,
}

impl UpdatePolicy {
    /// Whether a check updates the app: `on_demand` when someone asked.
    pub fn allows(self, on_demand: bool) -> bool {
        match self {
            UpdatePolicy::Automatic => true,
            UpdatePolicy::ManualOnly => on_demand,
            UpdatePolicy::Disabled => false,
        }
    }

    /// The name used in the policy file.
    pub fn name(self) -> &'static str {
        match self {
            UpdatePolicy::Automatic => "automatic",
            UpdatePolicy::ManualOnly => "manual-only",
            UpdatePolicy::Disabled => "disabled",
        }
    }
}

/// Whether an app may be installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstallPolicy {
    /// Installs are allowed.
    Allowed,
    /// Installs are refused (an installed app still updates).
    Blocked,
}

impl InstallPolicy {
    /// The name used in the policy file.
    pub fn name(self) -> &'static str {
        match self {
            InstallPolicy::Allowed => "allowed",
            InstallPolicy::Blocked => "blocked",
        }
    }
}

/// Which download URLs the server should prefer (Omaha's `dlpref`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DownloadPreference {
    /// URLs a caching proxy can serve (plain HTTP where the server has it).
    Cacheable,
}

impl DownloadPreference {
    /// The value sent as `dlpref`.
    pub fn name(self) -> &'static str {
        match self {
            DownloadPreference::Cacheable => "cacheable",
        }
    }
}

/// How the client reaches the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proxy {
    /// No proxy, whatever the environment says.
    Direct,
    /// The environment's `http_proxy`, `https_proxy` and `no_proxy`.
    System,
    /// Every request through this HTTP(S) proxy.
    Url(String),
}

impl std::fmt::Display for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proxy::Direct => f.write_str("direct"),
            Proxy::System => f.write_str("system"),
            Proxy::Url(url) => f.write_str(url),
        }
    }
}

/// A daily window, in minutes after local midnight, in which scheduled
/// update checks do not run. It may run past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    /// The first minute of the window (0..1440).
    pub start: u32,
    /// Its length in minutes (1..=1440).
    pub duration: u32,
}

impl Window {
    /// Minutes from `minute` (after local midnight) to the end of the
    /// window when `minute` is inside it; `None` outside.
    pub fn remaining(&self, minute: u32) -> Option<u32> {
        let into = (minute % DAY + DAY - self.start) % DAY;
        (into < self.duration).then(|| self.duration - into)
    }

    /// `HH:MM` of the start.
    pub fn start_text(&self) -> String {
        format!("{:02}:{:02}", self.start / 60, self.start % 60)
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "from {} for {} min", self.start_text(), self.duration)
    }
}

/// What the policy says of one app.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppPolicy {
    /// Whether and when the app updates.
    pub update: Option<UpdatePolicy>,
    /// Whether it may be installed.
    pub install: Option<InstallPolicy>,
    /// Only versions matching this prefix (whole components) are wanted.
    pub target_version_prefix: Option<String>,
    /// Whether the server may move the app down to the target prefix.
    pub rollback_to_target: Option<bool>,
    /// The channel (Omaha `ap`) asked for, over the registration's.
    pub target_channel: Option<String>,
}

/// A policy file, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Minutes between scheduled update checks (0: none).
    pub check_period_minutes: Option<u32>,
    /// The daily window without scheduled checks.
    pub updates_suppressed: Option<Window>,
    /// The update policy of apps the file does not name.
    pub update_default: Option<UpdatePolicy>,
    /// The install policy of apps the file does not name.
    pub install_default: Option<InstallPolicy>,
    /// Sent as `dlpref`.
    pub download_preference: Option<DownloadPreference>,
    /// How to reach the network.
    pub proxy: Option<Proxy>,
    /// Per app, by lower-case app id.
    pub apps: BTreeMap<String, AppPolicy>,
}

/// Why a policy file is refused (as a whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Larger than [`MAX_POLICY_BYTES`].
    #[error("the policy file has {0} bytes; at most {MAX_POLICY_BYTES} are read")]
    TooLarge(usize),
    /// Not TOML of the policy's schema (an unknown key included).
    #[error("{0}")]
    Syntax(String),
    /// `check_period_minutes` out of range.
    #[error(
        "check_period_minutes = {0}: use 0 (no scheduled checks) to {MAX_CHECK_PERIOD_MINUTES}"
    )]
    CheckPeriod(u64),
    /// `updates_suppressed.start` is not `HH:MM`.
    #[error("updates_suppressed.start = {0:?}: use HH:MM, 00:00 to 23:59")]
    WindowStart(String),
    /// `updates_suppressed.duration_minutes` out of range.
    #[error("updates_suppressed.duration_minutes = {0}: use 1 to 1440")]
    WindowDuration(u64),
    /// `proxy` is none of `direct`, `system` or an http(s) URL.
    #[error("proxy = {0:?}: use \"direct\", \"system\" or an http:// or https:// URL")]
    Proxy(String),
    /// A key of `[apps]` is not a valid app id.
    #[error("[apps.{0:?}]: not a valid app id")]
    AppId(String),
    /// The same app is named twice (ids compare case-insensitively).
    #[error("[apps.{0:?}]: the app is named twice")]
    DuplicateApp(String),
    /// A target version prefix that no version could match.
    #[error(
        "[apps.{app:?}] target_version_prefix = {prefix:?}: use up to four numbers separated by '.'"
    )]
    TargetVersionPrefix {
        /// The app.
        app: String,
        /// The value.
        prefix: String,
    },
    /// A target channel that cannot be sent as `ap`.
    #[error("[apps.{app:?}] target_channel = {channel:?}: use 1 to 256 printable characters")]
    TargetChannel {
        /// The app.
        app: String,
        /// The value.
        channel: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    check_period_minutes: Option<u64>,
    updates_suppressed: Option<WindowFile>,
    #[serde(default)]
    defaults: DefaultsFile,
    download_preference: Option<DownloadPreference>,
    proxy: Option<String>,
    #[serde(default)]
    apps: BTreeMap<String, AppFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    start: String,
    duration_minutes: u64,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultsFile {
    update: Option<UpdatePolicy>,
    install: Option<InstallPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppFile {
    update: Option<UpdatePolicy>,
    install: Option<InstallPolicy>,
    target_version_prefix: Option<String>,
    rollback_to_target: Option<bool>,
    target_channel: Option<String>,
}

impl Policy {
    /// Reads a policy file's text: all of it, or an error and nothing.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge(text.len()));
        }
        let file: PolicyFile =
            toml::from_str(text).map_err(|e| PolicyError::Syntax(one_line(&e.to_string())))?;
        let check_period_minutes = match file.check_period_minutes {
            None => None,
            Some(m) => Some(
                u32::try_from(m)
                    .ok()
                    .filter(|m| *m <= MAX_CHECK_PERIOD_MINUTES)
                    .ok_or(PolicyError::CheckPeriod(m))?,
            ),
        };
        let updates_suppressed = file.updates_suppressed.map(window).transpose()?;
        let proxy = file.proxy.map(|p| proxy(&p)).transpose()?;
        let mut apps = BTreeMap::new();
        for (name, app) in file.apps {
            let id = check_app_id(&name).map_err(|_| PolicyError::AppId(name.clone()))?;
            let policy = app_policy(&name, app)?;
            if apps.insert(id, policy).is_some() {
                return Err(PolicyError::DuplicateApp(name));
            }
        }
        Ok(Policy {
            check_period_minutes,
            updates_suppressed,
            update_default: file.defaults.update,
            install_default: file.defaults.install,
            download_preference: file.download_preference,
            proxy,
            apps,
        })
    }

    /// What the policy says of `app` (any case), if it names it.
    pub fn app(&self, app: &str) -> Option<&AppPolicy> {
        self.apps.get(&app.to_ascii_lowercase())
    }

    /// The update policy of `app`: its own, else the default.
    pub fn update_policy(&self, app: &str) -> Option<UpdatePolicy> {
        self.app(app).and_then(|a| a.update).or(self.update_default)
    }

    /// The install policy of `app`: its own, else the default.
    pub fn install_policy(&self, app: &str) -> Option<InstallPolicy> {
        self.app(app)
            .and_then(|a| a.install)
            .or(self.install_default)
    }
}

/// TOML's errors span lines (a source excerpt under a gutter of line
/// numbers and `|`, carets under the spot); the policy's message is one
/// line: the excerpt's text in backquotes, the carets dropped.
fn one_line(text: &str) -> String {
    text.split('\n')
        .filter_map(|l| {
            let l = l.trim();
            let after_number = l
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            match after_number.strip_prefix('|') {
                Some(source) => {
                    let source = source.trim();
                    let carets = source.chars().all(|c| c == '^' || c == ' ');
                    (!carets).then(|| format!("`{source}`"))
                }
                None => (!l.is_empty()).then(|| l.to_owned()),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn window(w: WindowFile) -> Result<Window, PolicyError> {
    let start = parse_hh_mm(&w.start).ok_or_else(|| PolicyError::WindowStart(w.start.clone()))?;
    let duration = u32::try_from(w.duration_minutes)
        .ok()
        .filter(|d| (1..=DAY).contains(d))
        .ok_or(PolicyError::WindowDuration(w.duration_minutes))?;
    Ok(Window { start, duration })
}

/// `HH:MM` (24-hour clock) as minutes after midnight.
fn parse_hh_mm(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let digits = |s: &str| (1..=2).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || m.len() != 2 || !digits(m) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

fn proxy(text: &str) -> Result<Proxy, PolicyError> {
    match text {
        "direct" => return Ok(Proxy::Direct),
        "system" => return Ok(Proxy::System),
        _ => {}
    }
    let ok = url::Url::parse(text).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    if ok {
        Ok(Proxy::Url(text.to_owned()))
    } else {
        Err(PolicyError::Proxy(text.to_owned()))
    }
}

fn app_policy(name: &str, app: AppFile) -> Result<AppPolicy, PolicyError> {
    if let Some(prefix) = &app.target_version_prefix
        && !valid_prefix(prefix)
    {
        return Err(PolicyError::TargetVersionPrefix {
            app: name.to_owned(),
            prefix: prefix.clone(),
        });
    }
    if let Some(channel) = &app.target_channel
        && (channel.is_empty() || channel.len() > 256 || channel.chars().any(char::is_control))
    {
        return Err(PolicyError::TargetChannel {
            app: name.to_owned(),
            channel: channel.clone(),
        });
    }
    Ok(AppPolicy {
        update: app.update,
        install: app.install,
        target_version_prefix: app.target_version_prefix,
        rollback_to_target: app.rollback_to_target,
        target_channel: app.target_channel,
    })
}

/// One to four plain numbers separated by `.`, a trailing `.` allowed.
fn valid_prefix(prefix: &str) -> bool {
    let body = prefix.strip_suffix('.').unwrap_or(prefix);
    let parts: Vec<&str> = body.split('.').collect();
    (1..=4).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 10
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
check_period_minutes = 120
download_preference = "cacheable"
proxy = "http://proxy.internal:3128"

[updates_suppressed]
start = "22:30"
duration_minutes = 120

[defaults]
update = "manual-only"
install = "blocked"

[apps."Org.Example.Notes"]
update = "automatic"
install = "allowed"
target_version_prefix = "1.2."
rollback_to_target = true
target_channel = "stable"
"#;

    #[test]
    fn a_full_file_reads_back() {
        let p = Policy::parse(FULL).unwrap();
        assert_eq!(p.check_period_minutes, Some(120));
        assert_eq!(p.download_preference, Some(DownloadPreference::Cacheable));
        assert_eq!(
            p.proxy,
            Some(Proxy::Url("http://proxy.internal:3128".into()))
        );
        let w = p.updates_suppressed.unwrap();
        assert_eq!((w.start, w.duration), (22 * 60 + 30, 120));
        assert_eq!(
            p.update_policy("ORG.example.notes"),
            Some(UpdatePolicy::Automatic)
        );
        assert_eq!(p.update_policy("other"), Some(UpdatePolicy::ManualOnly));
        assert_eq!(
            p.install_policy("org.example.notes"),
            Some(InstallPolicy::Allowed)
        );
        assert_eq!(p.install_policy("other"), Some(InstallPolicy::Blocked));
        let app = p.app("org.example.notes").unwrap();
        assert_eq!(app.target_version_prefix.as_deref(), Some("1.2."));
        assert_eq!(app.rollback_to_target, Some(true));
        assert_eq!(app.target_channel.as_deref(), Some("stable"));
        assert_eq!(Policy::parse("").unwrap(), Policy::default());
    }

    #[test]
    fn the_window_runs_past_midnight() {
        let w = Window {
            start: 22 * 60 + 30,
            duration: 120,
        };
        assert_eq!(w.remaining(22 * 60 + 29), None);
        assert_eq!(w.remaining(22 * 60 + 30), Some(120));
        assert_eq!(w.remaining(23 * 60 + 59), Some(31));
        assert_eq!(w.remaining(0), Some(30));
        assert_eq!(w.remaining(29), Some(1));
        assert_eq!(w.remaining(30), None);
        let all_day = Window {
            start: 0,
            duration: DAY,
        };
        assert!((0..DAY).all(|m| all_day.remaining(m).is_some()));
        assert_eq!(w.to_string(), "from 22:30 for 120 min");
    }

    #[test]
    fn update_policies_by_who_asked() {
        assert!(UpdatePolicy::Automatic.allows(false));
        assert!(UpdatePolicy::ManualOnly.allows(true));
        assert!(!UpdatePolicy::ManualOnly.allows(false));
        assert!(!UpdatePolicy::Disabled.allows(true));
    }

    #[test]
    fn every_mistake_refuses_the_whole_file() {
        for (text, needle) in [
            ("check_period_minutes = 99999999", "check_period_minutes"),
            ("check_period_minutes = -1", "check_period_minutes"),
            ("check_perod_minutes = 5", "check_perod_minutes"),
            (
                "[updates_suppressed]\nstart = \"24:00\"\nduration_minutes = 5",
                "HH:MM",
            ),
            (
                "[updates_suppressed]\nstart = \"9:5\"\nduration_minutes = 5",
                "HH:MM",
            ),
            (
                "[updates_suppressed]\nstart = \"09:00\"\nduration_minutes = 0",
                "1 to 1440",
            ),
            (
                "[updates_suppressed]\nstart = \"09:00\"",
                "duration_minutes",
            ),
            ("proxy = \"socks5://x:1\"", "proxy"),
            ("proxy = \"http://\"", "proxy"),
            ("download_preference = \"fast\"", "cacheable"),
            ("[defaults]\nupdate = \"sometimes\"", "manual-only"),
            (
                "[apps.\"a b\"]\nupdate = \"disabled\"",
                "not a valid app id",
            ),
            (
                "[apps.A]\nupdate = \"disabled\"\n[apps.a]\nupdate = \"disabled\"",
                "twice",
            ),
            (
                "[apps.a]\ntarget_version_prefix = \"1.x\"",
                "target_version_prefix",
            ),
            (
                "[apps.a]\ntarget_version_prefix = \"1.2.3.4.5\"",
                "target_version_prefix",
            ),
            (
                "[apps.a]\ntarget_version_prefix = \"\"",
                "target_version_prefix",
            ),
            ("[apps.a]\ntarget_channel = \"\"", "target_channel"),
            ("[apps.a]\ntarget_channel = \"a\\nb\"", "target_channel"),
            (
                "[apps.a]\nrollback_to_target = \"yes\"",
                "rollback_to_target",
            ),
            ("[apps.a]\ninstal = \"blocked\"", "instal"),
            ("this is not toml", ""),
            ("check_period_minutes = \"x\"", "invalid type"),
        ] {
            let err = Policy::parse(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{needle:?} not in {err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let huge = format!("# {}", "x".repeat(MAX_POLICY_BYTES));
        assert!(matches!(
            Policy::parse(&huge),
            Err(PolicyError::TooLarge(_))
        ));
    }

    #[test]
    fn prefixes_are_whole_numbers() {
        for good in ["1", "1.", "1.2", "1.2.3.4", "0.0.0."] {
            assert!(valid_prefix(good), "{good}");
        }
        for bad in ["", ".", "1..2", "a", "1.2.3.4.5", "99999999999", "-1", " 1"] {
            assert!(!valid_prefix(bad), "{bad}");
        }
    }
}

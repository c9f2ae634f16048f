//! Staged rollouts: to which machines a published release is offered.
//!
//! The rollout state of a repository is `DIR/rollouts.json`, beside the
//! metadata every server instance reads, so all instances sharing the
//! directory agree. A release it does not list is offered to everyone (as
//! before rollouts existed). A listed release has a percentage, and may be
//! paused (offered to no one until resumed) or pulled (never offered; the
//! machines that have it are offered the newest good release below it when
//! their request allows a rollback).
//!
//! Which machines are in the percentage: every app of every machine has a
//! bucket in `0..BUCKETS`, assigned at random by the first server that
//! answers it and kept by the client as its Omaha `cohort` (`1:b<bucket>:`),
//! which it sends with every request. A release at p % is offered to the
//! buckets below `p × BUCKETS / 100`, so raising the percentage only adds
//! machines and every instance places a machine alike.
//!
//! The state is not part of the signed metadata: it decides what is offered,
//! never what a client trusts (a client verifies every offer against TUF).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use upkeep_core::version::Version;

use crate::error::ServerError;
use crate::repo::Repo;

/// The rollout state's file in the repository directory.
pub const ROLLOUTS_FILE: &str = "rollouts.json";

/// The lock taken by every change of the rollout state.
pub const ROLLOUTS_LOCK: &str = "rollouts.lock";

/// How many buckets machines fall into (a percentage has two decimals).
pub const BUCKETS: u16 = 10_000;

/// The format version of `rollouts.json`.
const FORMAT: u32 = 1;

/// A machine's bucket for one app, `0..BUCKETS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bucket(u16);

impl Bucket {
    /// The bucket numbered `n` (`None` outside `0..BUCKETS`).
    pub fn new(n: u16) -> Option<Bucket> {
        (n < BUCKETS).then_some(Bucket(n))
    }

    /// A bucket drawn at random, uniformly.
    pub fn random() -> Bucket {
        // Rejection sampling keeps the draw uniform over 0..BUCKETS.
        let limit = u16::MAX - u16::MAX % BUCKETS;
        loop {
            let Some(n) = draw16() else {
                // No randomness at all: every machine in the last bucket,
                // reached only at 100 %, is the cautious answer.
                return Bucket(BUCKETS - 1);
            };
            if n < limit {
                return Bucket(n % BUCKETS);
            }
        }
    }

    /// The bucket an Omaha cohort names, when it is one this server gave.
    pub fn from_cohort(cohort: &str) -> Option<Bucket> {
        let digits = cohort.strip_prefix("1:b")?.strip_suffix(':')?;
        if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().and_then(Bucket::new)
    }

    /// The cohort a client keeps and sends back.
    pub fn cohort(self) -> String {
        format!("1:b{}:", self.0)
    }

    /// Its number.
    pub fn get(self) -> u16 {
        self.0
    }
}

/// A share of the machines, in hundredths of a percent (`0..=10000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Percent(u16);

impl Percent {
    /// Everyone.
    pub const ALL: Percent = Percent(BUCKETS);

    /// Whether a machine in `bucket` is within the share.
    pub fn includes(self, bucket: Bucket) -> bool {
        bucket.0 < self.0
    }

    /// Hundredths of a percent.
    pub fn hundredths(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for Percent {
    type Error = String;
    fn try_from(n: u16) -> Result<Percent, String> {
        if n <= BUCKETS {
            Ok(Percent(n))
        } else {
            Err(format!(
                "{n} is more than {BUCKETS} hundredths of a percent"
            ))
        }
    }
}

impl From<Percent> for u16 {
    fn from(p: Percent) -> u16 {
        p.0
    }
}

impl std::str::FromStr for Percent {
    type Err = ServerError;
    /// `0` to `100`, with at most two decimals (`12.5`, `0.25`).
    fn from_str(s: &str) -> Result<Percent, ServerError> {
        let bad = || ServerError::InvalidPercent {
            given: s.to_owned(),
        };
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty()
            || whole.len() > 3
            || frac.len() > 2
            || !whole
                .bytes()
                .chain(frac.bytes())
                .all(|b| b.is_ascii_digit())
            || (s.contains('.') && frac.is_empty())
        {
            return Err(bad());
        }
        let whole: u16 = whole.parse().map_err(|_| bad())?;
        let frac: u16 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
        let n = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(bad)?;
        Percent::try_from(n).map_err(|_| bad())
    }
}

impl std::fmt::Display for Percent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}%"),
            n if n % 10 == 0 => write!(f, "{whole}.{}%", n / 10),
            n => write!(f, "{whole}.{n:02}%"),
        }
    }
}

/// The rollout of one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The share of machines it is offered to.
    pub percent: Percent,
    /// Offered to no one until resumed (the percentage is kept).
    #[serde(default)]
    pub paused: bool,
    /// Never offered; machines that have it may be offered an older one.
    #[serde(default)]
    pub pulled: bool,
    /// When it last changed (RFC 3339).
    pub changed: String,
}

impl Stage {
    /// Whether a machine in `bucket` is offered the release.
    pub fn offers(&self, bucket: Bucket) -> bool {
        !self.pulled && !self.paused && self.percent.includes(bucket)
    }

    /// One word for it: `pulled`, `paused at P`, `P`.
    pub fn describe(&self) -> String {
        if self.pulled {
            "pulled".into()
        } else if self.paused {
            format!("paused at {}", self.percent)
        } else {
            self.percent.to_string()
        }
    }
}

/// The rollout state of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rollouts {
    format: u32,
    /// By app id (lower case), then version.
    #[serde(default)]
    releases: BTreeMap<String, BTreeMap<String, Stage>>,
}

/// A change of one release's rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Offer it to this share of machines (a paused rollout stays paused).
    Percent(Percent),
    /// Stop offering it, keeping the percentage.
    Pause,
    /// Offer it again at its percentage.
    Resume,
    /// Never offer it again; offer its machines an older release.
    Pull,
    /// Take a pull back: offer it again at its percentage.
    Restore,
}

impl Default for Rollouts {
    fn default() -> Rollouts {
        Rollouts::new()
    }
}

impl Rollouts {
    /// The state in repository `dir` (none yet: every release offered to
    /// everyone).
    pub fn load(dir: &Path) -> Result<Rollouts, ServerError> {
        let path = dir.join(ROLLOUTS_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Rollouts::new()),
            Err(e) => return Err(ServerError::io(&path, e)),
        };
        Rollouts::parse(&bytes).map_err(|reason| ServerError::Rollouts { path, reason })
    }

    fn new() -> Rollouts {
        Rollouts {
            format: FORMAT,
            releases: BTreeMap::new(),
        }
    }

    fn parse(bytes: &[u8]) -> Result<Rollouts, String> {
        let r: Rollouts = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if r.format != FORMAT {
            return Err(format!("format {} is not {FORMAT}", r.format));
        }
        for (app, versions) in &r.releases {
            if *app != app.to_ascii_lowercase() {
                return Err(format!("app id {app:?} is not lower case"));
            }
            if let Some(v) = versions.keys().find(|v| v.parse::<Version>().is_err()) {
                return Err(format!("{app}: {v:?} is not a version"));
            }
        }
        Ok(r)
    }

    /// The rollout of `app` (case-insensitive) at `version`; `None`: offered
    /// to everyone.
    pub fn stage(&self, app: &str, version: &Version) -> Option<&Stage> {
        self.releases
            .get(&app.to_ascii_lowercase())?
            .get(&version.to_string())
    }

    /// Whether a machine in `bucket` is offered `app` at `version`.
    pub fn offers(&self, app: &str, version: &Version, bucket: Bucket) -> bool {
        self.stage(app, version).is_none_or(|s| s.offers(bucket))
    }

    /// Whether `app` at `version` was pulled.
    pub fn is_pulled(&self, app: &str, version: &Version) -> bool {
        self.stage(app, version).is_some_and(|s| s.pulled)
    }

    /// Every listed release: app (lower case), version, stage.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &Stage)> {
        self.releases.iter().flat_map(|(app, versions)| {
            versions
                .iter()
                .map(move |(v, s)| (app.as_str(), v.as_str(), s))
        })
    }

    /// Applies `change` to `app` at `version` at time `now` (RFC 3339);
    /// returns the new stage.
    pub fn apply(&mut self, app: &str, version: &Version, change: Change, now: &str) -> Stage {
        let stage = self
            .releases
            .entry(app.to_ascii_lowercase())
            .or_default()
            .entry(version.to_string())
            .or_insert_with(|| Stage {
                percent: Percent::ALL,
                paused: false,
                pulled: false,
                changed: String::new(),
            });
        match change {
            Change::Percent(p) => stage.percent = p,
            Change::Pause => stage.paused = true,
            Change::Resume => stage.paused = false,
            Change::Pull => stage.pulled = true,
            Change::Restore => stage.pulled = false,
        }
        stage.changed = now.to_owned();
        stage.clone()
    }

    /// Writes the state to repository `dir` (temp, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), ServerError> {
        let path = dir.join(ROLLOUTS_FILE);
        let mut text = serde_json::to_string_pretty(self).map_err(|e| ServerError::Rollouts {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        upkeep_core::durable::write_atomic(&path, text.as_bytes())
            .map_err(|e| ServerError::io(&path, e))
    }
}

/// Changes the rollout of `app` at `version` in repository `dir` under the
/// rollout lock: read, change, write. A failure leaves the file as it was.
pub fn change(
    dir: &Path,
    app: &str,
    version: &Version,
    change: Change,
    now: &str,
) -> Result<Stage, ServerError> {
    let _lock = lock(dir)?;
    let mut rollouts = Rollouts::load(dir)?;
    let stage = rollouts.apply(app, version, change, now);
    rollouts.save(dir)?;
    Ok(stage)
}

/// Changes the rollout of a release published in `repo`, now. A release
/// the signed metadata does not list is refused.
pub fn change_published(
    repo: &Repo,
    app: &str,
    version: &Version,
    what: Change,
) -> Result<Stage, ServerError> {
    check_published(repo, app, version)?;
    let now = time::OffsetDateTime::now_utc();
    let now = upkeep_core::tuf::metadata::format_time(now.replace_nanosecond(0).unwrap_or(now));
    change(repo.dir(), app, version, what, &now)
}

/// The rollout of a release published in `repo` (`None`: offered to
/// everyone). A release the signed metadata does not list is refused.
pub fn stage_of_published(
    repo: &Repo,
    app: &str,
    version: &Version,
) -> Result<Option<Stage>, ServerError> {
    check_published(repo, app, version)?;
    Ok(Rollouts::load(repo.dir())?.stage(app, version).cloned())
}

fn check_published(repo: &Repo, app: &str, version: &Version) -> Result<(), ServerError> {
    if repo.catalog()?.find(app, version).is_none() {
        return Err(ServerError::UnknownRelease {
            app: app.to_owned(),
            version: version.to_string(),
        });
    }
    Ok(())
}

/// Holds the rollout lock of `dir` until dropped.
fn lock(dir: &Path) -> Result<File, ServerError> {
    let path: PathBuf = dir.join(ROLLOUTS_LOCK);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ServerError::io(&path, e))?;
    file.lock().map_err(|e| ServerError::io(&path, e))?;
    Ok(file)
}

/// 16 random bits from a per-thread generator seeded once from the
/// operating system (a bucket needs to be spread evenly, not secret; a
/// system call per update check showed in the server's profile).
fn draw16() -> Option<u16> {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<Option<u64>> = const { Cell::new(None) };
    }
    STATE.with(|state| {
        let s = match state.get() {
            Some(s) => s,
            None => {
                let mut seed = [0u8; 8];
                getrandom::fill(&mut seed).ok()?;
                u64::from_le_bytes(seed)
            }
        };
        // SplitMix64.
        let s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(Some(s));
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        u16::try_from(z >> 48).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn percentages_parse_with_up_to_two_decimals() {
        let p = |s: &str| s.parse::<Percent>().map(Percent::hundredths);
        assert_eq!(p("0").unwrap(), 0);
        assert_eq!(p("100").unwrap(), 10_000);
        assert_eq!(p("12.5").unwrap(), 1250);
        assert_eq!(p("0.25").unwrap(), 25);
        assert_eq!(p("007").unwrap(), 700);
        for bad in [
            "", "101", "100.01", "-1", "1.", ".5", "1.234", "1e2", "1,5", "12.5%", " 5",
        ] {
            assert!(
                matches!(p(bad), Err(ServerError::InvalidPercent { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn percentages_print_as_given() {
        for s in ["0%", "100%", "12.5%", "0.25%", "7%"] {
            let p: Percent = s.trim_end_matches('%').parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn cohorts_round_trip_and_foreign_ones_are_not_buckets() {
        for n in [0, 1, 4821, BUCKETS - 1] {
            let b = Bucket::new(n).unwrap();
            assert_eq!(Bucket::from_cohort(&b.cohort()), Some(b));
        }
        for foreign in [
            "",
            "1:",
            "1:b:",
            "1:b10000:",
            "1:b12",
            "1:2f:",
            "1:b-1:",
            "1:b+12:",
            "2:b1:",
            "1:b00001:",
        ] {
            assert_eq!(Bucket::from_cohort(foreign), None, "{foreign:?}");
        }
        assert!(Bucket::new(BUCKETS).is_none());
    }

    #[test]
    fn random_buckets_cover_the_range_evenly() {
        let mut counts = [0u32; 10];
        for _ in 0..20_000 {
            counts[usize::from(Bucket::random().get() / 1000)] += 1;
        }
        // 2,000 expected per tenth; 5 standard deviations is about 212.
        for c in counts {
            assert!((1_700..=2_300).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn a_stage_offers_its_share_unless_paused_or_pulled() {
        let mut r = Rollouts::new();
        let low = Bucket::new(999).unwrap();
        let high = Bucket::new(1000).unwrap();
        assert!(r.offers("A", &v("2"), high), "unlisted: everyone");
        r.apply("A", &v("2"), Change::Percent("10".parse().unwrap()), "t");
        assert!(r.offers("a", &v("2"), low));
        assert!(!r.offers("a", &v("2"), high));
        assert!(r.offers("a", &v("1"), high), "other versions unaffected");
        r.apply("A", &v("2"), Change::Pause, "t");
        assert!(!r.offers("a", &v("2"), low));
        assert_eq!(r.stage("a", &v("2")).unwrap().describe(), "paused at 10%");
        r.apply("A", &v("2"), Change::Resume, "t");
        assert!(r.offers("a", &v("2"), low));
        r.apply("A", &v("2"), Change::Pull, "t");
        assert!(!r.offers("a", &v("2"), low));
        assert!(r.is_pulled("a", &v("2")));
        r.apply("A", &v("2"), Change::Restore, "t");
        assert!(r.offers("a", &v("2"), low));
        assert!(!r.is_pulled("a", &v("2")));
    }

    #[test]
    fn raising_the_percentage_only_adds_machines() {
        let mut r = Rollouts::new();
        let mut before: Vec<u16> = Vec::new();
        for p in ["1", "5", "25", "50", "99.99", "100"] {
            r.apply("a", &v("2"), Change::Percent(p.parse().unwrap()), "t");
            let now: Vec<u16> = (0..BUCKETS)
                .filter(|&n| r.offers("a", &v("2"), Bucket::new(n).unwrap()))
                .collect();
            assert!(
                before.iter().all(|b| now.contains(b)),
                "{p}: a machine left"
            );
            assert_eq!(
                now.len(),
                usize::from(r.stage("a", &v("2")).unwrap().percent.hundredths())
            );
            before = now;
        }
    }

    #[test]
    fn the_state_survives_a_save_and_a_malformed_file_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Rollouts::load(dir.path()).unwrap(), Rollouts::new());
        let s = change(
            dir.path(),
            "A",
            &v("2"),
            Change::Percent("30".parse().unwrap()),
            "now",
        )
        .unwrap();
        assert_eq!(s.percent.hundredths(), 3000);
        let loaded = Rollouts::load(dir.path()).unwrap();
        assert_eq!(loaded.stage("a", &v("2")), Some(&s));
        for bad in [
            &b"{"[..],
            br#"{"format":2,"releases":{}}"#,
            br#"{"format":1,"releases":{"A":{}}}"#,
            br#"{"format":1,"releases":{"a":{"x y":{"percent":1,"changed":""}}}}"#,
            br#"{"format":1,"releases":{"a":{"1":{"percent":10001,"changed":""}}}}"#,
            br#"{"format":1,"releases":{},"extra":1}"#,
        ] {
            std::fs::write(dir.path().join(ROLLOUTS_FILE), bad).unwrap();
            assert!(
                matches!(
                    Rollouts::load(dir.path()),
                    Err(ServerError::Rollouts { .. })
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
            let err = change(dir.path(), "a", &v("2"), Change::Pause, "now");
            assert!(err.is_err());
            assert_eq!(std::fs::read(dir.path().join(ROLLOUTS_FILE)).unwrap(), bad);
        }
    }
}

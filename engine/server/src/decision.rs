//! Releases as the signed targets metadata lists them, and the update
//! decision for one application of a request.
//!
//! A release payload is the TUF target `apps/<app id, lower-case>/<version>/<file>`
//! whose `custom` object is
//! `{"upkeep": {"app": ID, "version": V, "channel": NAME, "installer_args": [...],
//! "install_data": {INDEX: TEXT, ...}}}` (`install_data` optional). The files
//! of one app and version form one release. Install data thus lives in the
//! signed targets metadata like the rest of the catalog.
//!
//! The decision uses the request and the catalog only (no server state):
//! the newest release of the app (id compared case-insensitively) on the
//! request's channel (`ap`; where it is missing, the `cohorthint`, as
//! Fuchsia's client names its channel there; neither, or an empty one, means
//! releases with an empty channel), newer than the request's version (or equal with
//! `sameversionupdate`), matching `targetversionprefix` by whole
//! components (a machine above its pin is moved down to it only when the
//! request says `rollback_allowed`); `updatedisabled` always yields
//! `noupdate`. Staged rollouts
//! ([`crate::rollout`]) narrow it to the releases offered to the machine's
//! bucket, and offer the machines of a pulled release an older one.

use std::collections::BTreeMap;

use serde::Serialize;
use upkeep_core::omaha::RequestApp;
use upkeep_core::tuf::metadata::{TargetFile, Targets};
use upkeep_core::version::Version;

use crate::rollout::{Bucket, Rollouts};

/// The first component of every release target path.
pub const APPS_DIR: &str = "apps";

/// The TUF target directory of a release: `apps/<app lower-case>/<version>`.
pub fn release_dir(app: &str, version: &Version) -> String {
    format!("{APPS_DIR}/{}/{version}", app.to_ascii_lowercase())
}

/// One file of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseFile {
    /// The file name.
    pub name: String,
    /// The TUF target path.
    pub target_path: String,
    /// The length in bytes.
    pub length: u64,
    /// The lower-case hex SHA-256.
    pub sha256: String,
}

/// A release: one version of one app, with its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    /// The app id as published.
    pub app: String,
    /// The version.
    pub version: Version,
    /// The channel (`ap`), empty for the default channel.
    pub channel: String,
    /// Arguments for the installer.
    pub installer_args: Vec<String>,
    /// Omaha install data of the release: text by index.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub install_data: BTreeMap<String, String>,
    /// The files, by name.
    pub files: Vec<ReleaseFile>,
}

impl Release {
    /// The TUF target directory of the release.
    pub fn dir(&self) -> String {
        release_dir(&self.app, &self.version)
    }
}

/// What the server answers for one app's update check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// No release of this app id is published.
    UnknownApplication,
    /// Nothing to offer.
    NoUpdate,
    /// This release is offered.
    Update(&'a Release),
}

/// Every release the targets metadata lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    releases: Vec<Release>,
    patches: Vec<crate::patches::Patch>,
    /// Index into `patches` by (app lower-case, version, file, base
    /// SHA-256 lower-case): the answer looks a patch up per request.
    patch_index: BTreeMap<(String, Version, String, String), usize>,
}

#[derive(serde::Deserialize)]
struct UpkeepCustom {
    app: String,
    version: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    installer_args: Vec<String>,
    #[serde(default)]
    install_data: BTreeMap<String, String>,
}

impl Catalog {
    /// Reads the releases from targets metadata. Targets without a valid
    /// `custom.upkeep` object are not releases and are skipped.
    pub fn from_targets(targets: &Targets) -> Catalog {
        Catalog::from_files(&targets.targets)
    }

    /// Reads the releases from target files by path (for example those
    /// found through a repository's delegations). Targets without a valid
    /// `custom.upkeep` object are skipped.
    pub fn from_files<'a>(
        files: impl IntoIterator<Item = (&'a String, &'a TargetFile)>,
    ) -> Catalog {
        let mut by_key: BTreeMap<(String, Version), Release> = BTreeMap::new();
        let mut patches = Vec::new();
        for (path, file) in files {
            if let Some(patch) = crate::patches::from_target(path, file) {
                patches.push(patch);
                continue;
            }
            let Some(custom) = file.custom.as_ref().and_then(|c| c.get("upkeep")) else {
                continue;
            };
            let Ok(custom) = serde_json::from_value::<UpkeepCustom>(custom.clone()) else {
                tracing::warn!(target = %path, "malformed custom.upkeep; target skipped");
                continue;
            };
            let Ok(version) = custom.version.parse::<Version>() else {
                tracing::warn!(target = %path, "invalid version; target skipped");
                continue;
            };
            let Some(sha256) = file.hashes.get("sha256") else {
                tracing::warn!(target = %path, "no sha256; target skipped");
                continue;
            };
            let name = path.rsplit('/').next().unwrap_or(path).to_owned();
            let release = by_key
                .entry((custom.app.to_ascii_lowercase(), version.clone()))
                .or_insert_with(|| Release {
                    app: custom.app.clone(),
                    version,
                    channel: custom.channel.clone(),
                    installer_args: custom.installer_args.clone(),
                    install_data: custom.install_data.clone(),
                    files: Vec::new(),
                });
            release.files.push(ReleaseFile {
                name,
                target_path: path.clone(),
                length: file.length,
                sha256: sha256.to_ascii_lowercase(),
            });
        }
        let mut releases: Vec<Release> = by_key.into_values().collect();
        for r in &mut releases {
            r.files.sort_by(|a, b| a.name.cmp(&b.name));
        }
        patches.sort_by(|a, b| a.target_path.cmp(&b.target_path));
        let patch_index = patches
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let key = (
                    p.info.app.to_ascii_lowercase(),
                    p.info.version.clone(),
                    p.info.file.clone(),
                    p.info.base_sha256.to_ascii_lowercase(),
                );
                (key, i)
            })
            .collect();
        Catalog {
            releases,
            patches,
            patch_index,
        }
    }

    /// A catalog of the given releases (for tests and tools).
    pub fn from_releases(releases: Vec<Release>) -> Catalog {
        Catalog {
            releases,
            patches: Vec::new(),
            patch_index: BTreeMap::new(),
        }
    }

    /// Every patch the targets metadata lists ([`crate::patches`]).
    pub fn patches(&self) -> &[crate::patches::Patch] {
        &self.patches
    }

    /// The patch that makes `file` of `app` `version` from the file with
    /// SHA-256 `base_sha256`, if one is published.
    pub fn patch_for(
        &self,
        app: &str,
        version: &Version,
        file: &str,
        base_sha256: &str,
    ) -> Option<&crate::patches::Patch> {
        let key = (
            app.to_ascii_lowercase(),
            version.clone(),
            file.to_owned(),
            base_sha256.to_ascii_lowercase(),
        );
        self.patch_index.get(&key).map(|&i| &self.patches[i])
    }

    /// All releases, by app (lower-case) and version.
    pub fn releases(&self) -> &[Release] {
        &self.releases
    }

    /// Whether any release of `app` (case-insensitive) exists.
    pub fn knows_app(&self, app: &str) -> bool {
        self.releases
            .iter()
            .any(|r| r.app.eq_ignore_ascii_case(app))
    }

    /// The release of `app` with exactly `version`, if any.
    pub fn find(&self, app: &str, version: &Version) -> Option<&Release> {
        self.releases
            .iter()
            .find(|r| r.app.eq_ignore_ascii_case(app) && &r.version == version)
    }

    /// The install data of `app` (case-insensitive) under `index`: from
    /// the `offered` release when there is one, else from the newest
    /// release of the app that has data under that index.
    pub fn install_data<'a>(
        &'a self,
        app: &str,
        offered: Option<&'a Release>,
        index: &str,
    ) -> Option<&'a str> {
        match offered {
            Some(r) => r.install_data.get(index),
            None => self
                .releases
                .iter()
                .filter(|r| r.app.eq_ignore_ascii_case(app))
                .filter_map(|r| r.install_data.get(index).map(|t| (&r.version, t)))
                .max_by(|a, b| a.0.cmp(b.0))
                .map(|(_, t)| t),
        }
        .map(String::as_str)
    }

    /// The answer to `app`'s update check from a machine in `bucket`, under
    /// the repository's `rollouts`. A request version that does not parse
    /// (an install sends an empty one) counts as 0.
    ///
    /// Of the releases on the request's channel matching its prefix and
    /// offered to the bucket, the newest newer one; when there is none and
    /// the machine's own version was pulled or does not match the
    /// request's `targetversionprefix` (a pin below it), the newest below
    /// it, but only if the request allows a rollback (`rollback_allowed`).
    pub fn decide(&self, app: &RequestApp, rollouts: &Rollouts, bucket: Bucket) -> Decision<'_> {
        let id = app.appid.as_str();
        if !self.knows_app(id) {
            return Decision::UnknownApplication;
        }
        let check = app.updatecheck.clone().unwrap_or_default();
        if check.updatedisabled {
            return Decision::NoUpdate;
        }
        let current = app.parsed_version();
        let channel = app
            .ap
            .as_deref()
            .or(app.cohort.cohorthint.as_deref())
            .unwrap_or("");
        let offered = || {
            self.releases
                .iter()
                .filter(|r| r.app.eq_ignore_ascii_case(id) && r.channel == channel)
                .filter(|r| check.allows(&r.version))
                .filter(|r| rollouts.offers(&r.app, &r.version, bucket))
        };
        let newer = offered()
            .filter(|r| {
                current
                    .as_ref()
                    .is_none_or(|c| r.version > *c || (check.sameversionupdate && r.version == *c))
            })
            .max_by(|a, b| a.version.cmp(&b.version));
        if let Some(release) = newer {
            return Decision::Update(release);
        }
        match &current {
            // Below a pulled release, or down to the target prefix the
            // machine's version is above (a policy's rollback to target).
            Some(c)
                if check.rollback_allowed && (rollouts.is_pulled(id, c) || !check.allows(c)) =>
            {
                offered()
                    .filter(|r| r.version < *c)
                    .max_by(|a, b| a.version.cmp(&b.version))
                    .map_or(Decision::NoUpdate, Decision::Update)
            }
            _ => Decision::NoUpdate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::Change;
    use upkeep_core::omaha::UpdateCheckRequest;

    fn release(app: &str, version: &str, channel: &str) -> Release {
        let version: Version = version.parse().unwrap();
        Release {
            app: app.into(),
            channel: channel.into(),
            installer_args: vec![],
            install_data: BTreeMap::new(),
            files: vec![ReleaseFile {
                name: "setup.bin".into(),
                target_path: format!("{}/setup.bin", release_dir(app, &version)),
                length: 3,
                sha256: "00".repeat(32),
            }],
            version,
        }
    }

    fn catalog() -> Catalog {
        Catalog::from_releases(vec![
            release("{ABC}", "1.0", ""),
            release("{ABC}", "1.2.3.4", ""),
            release("{ABC}", "1.2.34", ""),
            release("{ABC}", "2.0", "beta"),
            release("other", "5", ""),
        ])
    }

    fn ask(app: &str, version: &str) -> RequestApp {
        let mut a = RequestApp::new(app, &"0".parse().unwrap());
        a.version = version.into();
        a.updatecheck = Some(UpdateCheckRequest::default());
        a
    }

    fn any_bucket() -> Bucket {
        Bucket::random()
    }

    fn offered(c: &Catalog, app: &RequestApp) -> Option<String> {
        match c.decide(app, &Rollouts::default(), any_bucket()) {
            Decision::Update(r) => Some(r.version.to_string()),
            Decision::NoUpdate => None,
            Decision::UnknownApplication => Some("unknown".into()),
        }
    }

    #[test]
    fn the_newest_release_of_the_default_channel_is_offered() {
        let c = catalog();
        assert_eq!(offered(&c, &ask("{ABC}", "1.0")).as_deref(), Some("1.2.34"));
        assert_eq!(offered(&c, &ask("{ABC}", "")).as_deref(), Some("1.2.34"));
        assert_eq!(offered(&c, &ask("{ABC}", "1.2.34")), None);
        assert_eq!(offered(&c, &ask("{ABC}", "9")), None);
    }

    #[test]
    fn a_machine_above_its_pin_moves_down_only_when_it_allows_a_rollback() {
        let c = catalog();
        let mut pinned = ask("{ABC}", "1.2.34");
        pinned.updatecheck.as_mut().unwrap().targetversionprefix = Some("1.0".into());
        assert_eq!(offered(&c, &pinned), None, "no downgrade unless allowed");
        pinned.updatecheck.as_mut().unwrap().rollback_allowed = true;
        assert_eq!(offered(&c, &pinned).as_deref(), Some("1.0"));
        // Already on the pin, or pinned above what is published: nothing.
        let mut on_pin = ask("{ABC}", "1.0");
        on_pin.updatecheck = pinned.updatecheck.clone();
        assert_eq!(offered(&c, &on_pin), None);
        let mut ahead = ask("{ABC}", "1.2.34");
        let check = ahead.updatecheck.as_mut().unwrap();
        check.targetversionprefix = Some("3".into());
        check.rollback_allowed = true;
        assert_eq!(offered(&c, &ahead), None);
    }

    #[test]
    fn app_ids_are_case_insensitive() {
        let c = catalog();
        assert_eq!(offered(&c, &ask("{abc}", "1.0")).as_deref(), Some("1.2.34"));
        assert_eq!(offered(&c, &ask("OTHER", "1")).as_deref(), Some("5"));
    }

    #[test]
    fn channels_match_the_ap() {
        let c = catalog();
        let mut a = ask("{ABC}", "1.0");
        a.ap = Some("beta".into());
        assert_eq!(offered(&c, &a).as_deref(), Some("2.0"));
        a.ap = Some("nightly".into());
        assert_eq!(offered(&c, &a), None);
        a.ap = Some(String::new());
        assert_eq!(offered(&c, &a).as_deref(), Some("1.2.34"));
    }

    #[test]
    fn the_cohort_hint_names_the_channel_where_ap_is_absent() {
        let c = catalog();
        let mut a = ask("{ABC}", "1.0");
        a.cohort.cohorthint = Some("beta".into());
        assert_eq!(offered(&c, &a).as_deref(), Some("2.0"));
        // `ap` wins, even an empty one.
        a.ap = Some(String::new());
        assert_eq!(offered(&c, &a).as_deref(), Some("1.2.34"));
        a.ap = Some("nightly".into());
        assert_eq!(offered(&c, &a), None);
    }

    #[test]
    fn target_version_prefix_matches_whole_components() {
        let c = catalog();
        let mut a = ask("{ABC}", "1.0");
        a.updatecheck.as_mut().unwrap().targetversionprefix = Some("1.2.3".into());
        assert_eq!(offered(&c, &a).as_deref(), Some("1.2.3.4"));
        a.updatecheck.as_mut().unwrap().targetversionprefix = Some("1.1".into());
        assert_eq!(offered(&c, &a), None);
        a.updatecheck.as_mut().unwrap().targetversionprefix = Some("1.".into());
        assert_eq!(offered(&c, &a).as_deref(), Some("1.2.34"));
    }

    #[test]
    fn update_disabled_means_no_update() {
        let c = catalog();
        let mut a = ask("{ABC}", "1.0");
        a.updatecheck.as_mut().unwrap().updatedisabled = true;
        assert_eq!(
            c.decide(&a, &Rollouts::default(), any_bucket()),
            Decision::NoUpdate
        );
    }

    #[test]
    fn same_version_update_reoffers_the_current_version() {
        let c = catalog();
        let mut a = ask("other", "5");
        assert_eq!(offered(&c, &a), None);
        a.updatecheck.as_mut().unwrap().sameversionupdate = true;
        assert_eq!(offered(&c, &a).as_deref(), Some("5"));
    }

    fn offered_in(c: &Catalog, r: &Rollouts, app: &RequestApp, bucket: u16) -> Option<String> {
        match c.decide(app, r, Bucket::new(bucket).unwrap()) {
            Decision::Update(r) => Some(r.version.to_string()),
            _ => None,
        }
    }

    fn stage(r: &mut Rollouts, app: &str, version: &str, change: Change) {
        r.apply(app, &version.parse().unwrap(), change, "t");
    }

    #[test]
    fn a_staged_release_reaches_only_its_buckets_and_others_get_the_one_before() {
        let c = catalog();
        let mut r = Rollouts::default();
        stage(
            &mut r,
            "{abc}",
            "1.2.34",
            Change::Percent("20".parse().unwrap()),
        );
        let a = ask("{ABC}", "1.0");
        assert_eq!(offered_in(&c, &r, &a, 1999).as_deref(), Some("1.2.34"));
        assert_eq!(offered_in(&c, &r, &a, 2000).as_deref(), Some("1.2.3.4"));
        stage(&mut r, "{abc}", "1.2.34", Change::Pause);
        assert_eq!(offered_in(&c, &r, &a, 0).as_deref(), Some("1.2.3.4"));
        // A machine already on a paused release keeps it.
        assert_eq!(offered_in(&c, &r, &ask("{ABC}", "1.2.34"), 0), None);
    }

    #[test]
    fn a_pulled_release_is_not_offered_and_its_machines_may_roll_back() {
        let c = catalog();
        let mut r = Rollouts::default();
        stage(&mut r, "{abc}", "1.2.34", Change::Pull);
        assert_eq!(
            offered_in(&c, &r, &ask("{ABC}", "1.0"), 0).as_deref(),
            Some("1.2.3.4")
        );
        let mut on_pulled = ask("{ABC}", "1.2.34");
        assert_eq!(
            offered_in(&c, &r, &on_pulled, 0),
            None,
            "no rollback unless allowed"
        );
        on_pulled.updatecheck.as_mut().unwrap().rollback_allowed = true;
        assert_eq!(
            offered_in(&c, &r, &on_pulled, 0).as_deref(),
            Some("1.2.3.4")
        );
        // The rollback target must itself be offered to the machine.
        stage(
            &mut r,
            "{abc}",
            "1.2.3.4",
            Change::Percent("0".parse().unwrap()),
        );
        assert_eq!(offered_in(&c, &r, &on_pulled, 0).as_deref(), Some("1.0"));
        // A machine on a good release is never offered a downgrade.
        let mut good = ask("{ABC}", "1.2.3.4");
        good.updatecheck.as_mut().unwrap().rollback_allowed = true;
        assert_eq!(offered_in(&c, &r, &good, 0), None);
        stage(&mut r, "{abc}", "1.2.34", Change::Restore);
        assert_eq!(offered_in(&c, &r, &on_pulled, 0), None);
    }

    #[test]
    fn the_offered_share_matches_the_percentage_over_many_machines() {
        let c = catalog();
        let mut r = Rollouts::default();
        let a = ask("{ABC}", "1.0");
        let mut reached_before = 0;
        for p in ["5", "25", "50", "100"] {
            stage(
                &mut r,
                "{abc}",
                "1.2.34",
                Change::Percent(p.parse().unwrap()),
            );
            let machines: Vec<Bucket> = (0..20_000).map(|_| Bucket::random()).collect();
            let reached = machines
                .iter()
                .filter(|b| matches!(c.decide(&a, &r, **b), Decision::Update(rel) if rel.version.to_string() == "1.2.34"))
                .count();
            let expected = 20_000.0 * p.parse::<f64>().unwrap() / 100.0;
            let sd = (20_000.0 * (expected / 20_000.0) * (1.0 - expected / 20_000.0)).sqrt();
            assert!(
                (reached as f64 - expected).abs() <= 5.0 * sd + 1.0,
                "{p}%: {reached} of 20000 machines"
            );
            assert!(reached >= reached_before);
            reached_before = reached;
        }
    }

    #[test]
    fn unknown_apps_are_reported() {
        let c = catalog();
        assert_eq!(
            c.decide(&ask("{nope}", "1"), &Rollouts::default(), any_bucket()),
            Decision::UnknownApplication
        );
        assert_eq!(
            Catalog::default().decide(&ask("{ABC}", "1"), &Rollouts::default(), any_bucket()),
            Decision::UnknownApplication
        );
    }

    #[test]
    fn releases_are_read_from_targets_custom_data() {
        use upkeep_core::tuf::metadata::TargetFile;
        let mut t = upkeep_core::tuf::repository::Repository::empty_targets(
            time::OffsetDateTime::UNIX_EPOCH,
        );
        let mut f = TargetFile::from_bytes(b"abc");
        f.custom = Some(serde_json::json!({"upkeep": {
            "app": "{ABC}", "version": "1.5", "channel": "", "installer_args": ["--quiet"],
            "install_data": {"en": "{\"lang\":\"en\"}"}}}));
        t.targets
            .insert("apps/{abc}/1.5/setup.bin".into(), f.clone());
        let mut g = TargetFile::from_bytes(b"data");
        g.custom = f.custom.clone();
        t.targets.insert("apps/{abc}/1.5/data.pak".into(), g);
        t.targets
            .insert("unrelated.txt".into(), TargetFile::from_bytes(b"x"));
        let c = Catalog::from_targets(&t);
        assert_eq!(c.releases().len(), 1);
        let r = &c.releases()[0];
        assert_eq!(r.installer_args, vec!["--quiet"]);
        assert_eq!(r.install_data["en"], r#"{"lang":"en"}"#);
        assert_eq!(
            c.install_data("{abc}", None, "en"),
            Some(r#"{"lang":"en"}"#)
        );
        assert_eq!(c.install_data("{abc}", Some(r), "fr"), None);
        assert_eq!(c.install_data("other", None, "en"), None);
        let names: Vec<&str> = r.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["data.pak", "setup.bin"]);
        assert_eq!(r.files[1].length, 3);
    }
}

//! Tests of delegated roles: the tool makes the repository, the TUF client
//! reads it.

use super::*;
use crate::repo::InitOptions;
use crate::testutil::{client, payload, release, tree};
use upkeep_core::tuf::TufError;

const TEAM_A: &str = "apps/org.team-a.*/*/*";
const TEAM_B: &str = "apps/org.team-b.*/*/*";

/// The length of the payload [`Fixture::release`] writes.
fn size(app: &str, version: &str) -> u64 {
    format!("{app} {version}").len() as u64
}

struct Fixture {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    repo: Repo,
    pinned: Vec<u8>,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let repo = Repo::init(&dir, &InitOptions::default()).unwrap();
        let pinned = fs::read(dir.join("client/root.json")).unwrap();
        Fixture {
            tmp,
            dir,
            repo,
            pinned,
        }
    }

    fn keys(&self) -> PathBuf {
        self.dir.join("keys")
    }

    fn delegate(
        &self,
        name: &str,
        paths: &[&str],
        f: impl FnOnce(&mut DelegateOptions),
    ) -> Delegated {
        let mut o = DelegateOptions {
            name: name.into(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            ..DelegateOptions::default()
        };
        f(&mut o);
        self.repo.delegate(None, &o).unwrap()
    }

    fn release(&self, app: &str, version: &str) -> NewRelease {
        let d = self.tmp.path().join(format!("{app}-{version}"));
        fs::create_dir_all(&d).unwrap();
        release(
            app,
            version,
            payload(&d, "app.bin", format!("{app} {version}").as_bytes()),
        )
    }

    fn add(&self, role: &str, app: &str, version: &str) -> Result<Published, ServerError> {
        self.repo
            .add_to_role(None, role, &[], &self.release(app, version))
    }

    /// A fresh client's answer for `app` `version`.
    fn lookup(&self, app: &str, version: &str) -> Result<u64, TufError> {
        let md = tempfile::tempdir().unwrap();
        let mut c = client(md.path(), &self.pinned, &self.dir);
        c.refresh()?;
        let path = format!("apps/{app}/{version}/app.bin");
        c.get_target_info(&path).map(|i| i.file.length)
    }

    /// Publishes `targets` as the next version of `role`, signed by `key`
    /// (whoever holds it), in correctly signed snapshot and timestamp.
    fn publish_signed_by(&self, role: &str, targets: Targets, key: &Ed25519Signer) {
        let current = self.repo.current().unwrap();
        let (snapshot, timestamp) = self
            .repo
            .online_signers(&self.keys(), &current.root)
            .unwrap();
        let mut p = self.repo.publication(&current);
        let mut written = Vec::new();
        p.stage_targets(role, targets, &[key], &mut written)
            .unwrap();
        p.publish(&snapshot, &timestamp, &mut written).unwrap();
    }

    fn offered(&self) -> Vec<String> {
        let catalog = self.repo.catalog().unwrap();
        catalog
            .releases()
            .iter()
            .map(|r| format!("{} {}", r.app, r.version))
            .collect()
    }
}

#[test]
fn role_names_and_patterns() {
    for ok in ["team-a", "org.team_b", "0"] {
        check_role_name(ok).unwrap();
    }
    for bad in ["", "Team", "targets", "-a", "a/b", &"x".repeat(65)] {
        assert!(check_role_name(bad).is_err(), "{bad}");
    }
    check_release_pattern("apps/org.team-a.*/*/*").unwrap();
    check_release_pattern("*/x/1.*/setup.exe").unwrap();
    for bad in [
        "apps/org.team-a.*/*",
        "apps/*",
        "files/*/*/*",
        "apps/Org.*/*/*",
    ] {
        let err = check_release_pattern(bad).unwrap_err();
        assert!(
            matches!(err, ServerError::PatternMatchesNoRelease { .. }),
            "{bad}"
        );
    }
}

#[test]
fn bins_cover_every_prefix_once() {
    let b = bins("apps", 16).unwrap();
    assert_eq!(b.len(), 16);
    assert_eq!(b[0], ("apps-0".to_owned(), vec!["0".to_owned()]));
    let b = bins("apps", 2).unwrap();
    assert_eq!(b[1].0, "apps-8-f");
    assert_eq!(b[1].1.len(), 8);
    let b = bins("apps", 32).unwrap();
    assert_eq!(b[31].0, "apps-f8-ff");
    let all: Vec<String> = b.into_iter().flat_map(|(_, p)| p).collect();
    assert_eq!(all.len(), 256);
    for bad in [0, 1, 3, 8192] {
        assert!(bins("apps", bad).is_err(), "{bad}");
    }
}

#[test]
fn teams_publish_with_their_own_keys_and_clients_find_their_releases() {
    let f = Fixture::new();
    let a = f.delegate("team-a", &[TEAM_A], |_| {});
    assert_eq!(a.key_files, [f.keys().join("delegated/team-a-1.key")]);
    f.delegate("team-b", &[TEAM_B], |_| {});
    // Publishing into a team's role needs neither the targets key nor
    // the other team's.
    fs::rename(
        f.keys().join("targets.key"),
        f.tmp.path().join("targets.key"),
    )
    .unwrap();
    fs::rename(
        f.keys().join("delegated/team-b-1.key"),
        f.tmp.path().join("team-b-1.key"),
    )
    .unwrap();
    f.add("team-a", "org.team-a.app", "1.0").unwrap();
    assert!(f.add("team-b", "org.team-b.app", "1.0").is_err());
    let b_key = f.tmp.path().join("team-b-1.key");
    f.repo
        .add_to_role(
            None,
            "team-b",
            &[b_key],
            &f.release("org.team-b.app", "1.0"),
        )
        .unwrap();
    assert_eq!(
        f.lookup("org.team-a.app", "1.0").unwrap(),
        size("org.team-a.app", "1.0")
    );
    assert_eq!(
        f.lookup("org.team-b.app", "1.0").unwrap(),
        size("org.team-b.app", "1.0")
    );
    assert_eq!(f.offered(), ["org.team-a.app 1.0", "org.team-b.app 1.0"]);
    // The top-level targets lists neither: they are the teams'.
    let current = f.repo.current().unwrap();
    assert!(current.targets.targets.is_empty());
    assert_eq!(current.delegated["team-a"].signed.targets.len(), 1);
    let roles: Vec<String> = current.delegations().into_iter().map(|d| d.role).collect();
    assert_eq!(roles, ["team-a", "team-b"]);
}

#[test]
fn a_path_the_role_is_not_delegated_is_refused_before_anything_is_written() {
    let f = Fixture::new();
    f.delegate("team-a", &[TEAM_A], |_| {});
    f.delegate("team-b", &[TEAM_B], |_| {});
    let before = tree(&f.dir);
    let err = f.add("team-a", "org.team-b.app", "1.0").unwrap_err();
    assert!(
        matches!(&err, ServerError::PathNotDelegated { role, path }
            if role == "team-a" && path == "apps/org.team-b.app/1.0/app.bin"),
        "{err}"
    );
    assert!(err.to_string().contains("not trusted for"), "{err}");
    let err = f.add("team-c", "org.team-c.app", "1.0").unwrap_err();
    assert!(matches!(err, ServerError::UnknownRole { .. }), "{err}");
    assert_eq!(tree(&f.dir), before);
    // A bad pattern, a taken name, a missing parent: refused, nothing written.
    let refused = [
        DelegateOptions {
            name: "team-c".into(),
            paths: vec!["apps/org.team-c.*/*".into()],
            ..DelegateOptions::default()
        },
        DelegateOptions {
            name: "team-a".into(),
            paths: vec![TEAM_A.into()],
            ..DelegateOptions::default()
        },
        DelegateOptions {
            name: "team-c".into(),
            parent: "nobody".into(),
            paths: vec![TEAM_A.into()],
            ..DelegateOptions::default()
        },
        DelegateOptions {
            name: "team-c".into(),
            paths: vec![TEAM_A.into()],
            public_keys: vec!["zz".into()],
            ..DelegateOptions::default()
        },
    ];
    for o in &refused {
        assert!(f.repo.delegate(None, o).is_err(), "{o:?}");
    }
    assert_eq!(tree(&f.dir), before);
}

#[test]
fn a_failed_delegation_leaves_metadata_and_keys_intact() {
    let f = Fixture::new();
    let before = tree(&f.dir);
    // A versioned snapshot in the way: signing fails after keys were made.
    fs::write(f.dir.join("metadata/2.snapshot.json"), b"{}").unwrap();
    let o = DelegateOptions {
        name: "team-a".into(),
        paths: vec![TEAM_A.into()],
        ..DelegateOptions::default()
    };
    assert!(f.repo.delegate(None, &o).is_err());
    fs::remove_file(f.dir.join("metadata/2.snapshot.json")).unwrap();
    assert_eq!(tree(&f.dir), before);
    assert!(!f.keys().join("delegated").exists());
    // Without the targets key nothing happens either.
    fs::remove_file(f.keys().join("targets.key")).unwrap();
    let before = tree(&f.dir);
    assert!(f.repo.delegate(None, &o).is_err());
    assert_eq!(tree(&f.dir), before);
}

#[test]
fn nested_delegations_are_bounded_by_every_delegation_on_the_way() {
    let f = Fixture::new();
    f.delegate("team-a", &[TEAM_A], |_| {});
    f.delegate("team-a-web", &["apps/org.team-a.web*/*/*"], |o| {
        o.parent = "team-a".into();
    });
    // Trusted for everything by its parent, but the parent only holds
    // team A's paths.
    f.delegate("team-a-any", &["apps/*/*/*"], |o| {
        o.parent = "team-a".into()
    });
    f.add("team-a-web", "org.team-a.web-shop", "2.0").unwrap();
    assert_eq!(
        f.lookup("org.team-a.web-shop", "2.0").unwrap(),
        size("org.team-a.web-shop", "2.0")
    );
    let err = f.add("team-a-web", "org.team-a.tools", "1.0").unwrap_err();
    assert!(matches!(err, ServerError::PathNotDelegated { .. }), "{err}");
    let err = f.add("team-a-any", "org.other.app", "1.0").unwrap_err();
    assert!(matches!(err, ServerError::PathNotDelegated { .. }), "{err}");
    f.add("team-a-any", "org.team-a.tools", "1.0").unwrap();
    assert_eq!(
        f.lookup("org.team-a.tools", "1.0").unwrap(),
        size("org.team-a.tools", "1.0")
    );
    let depths: Vec<(String, usize)> = f
        .repo
        .current()
        .unwrap()
        .delegations()
        .into_iter()
        .map(|d| (d.role, d.depth))
        .collect();
    assert_eq!(
        depths,
        [
            ("team-a".to_owned(), 1),
            ("team-a-web".to_owned(), 2),
            ("team-a-any".to_owned(), 2)
        ]
    );
}

#[test]
fn a_terminating_delegation_ends_the_search_for_its_paths() {
    let f = Fixture::new();
    f.delegate("org", &["apps/org.*/*/*"], |o| o.terminating = true);
    f.delegate("team-b", &[TEAM_B], |_| {});
    f.delegate("others", &["apps/*/*/*"], |_| {});
    // team-b comes after the terminating org role, which covers its paths:
    // clients would never look there, so the tool refuses.
    let err = f.add("team-b", "org.team-b.app", "1.0").unwrap_err();
    assert!(matches!(err, ServerError::PathNotDelegated { .. }), "{err}");
    let err = f.add("others", "org.x", "1.0").unwrap_err();
    assert!(matches!(err, ServerError::PathNotDelegated { .. }), "{err}");
    f.add("org", "org.team-b.app", "1.0").unwrap();
    f.add("others", "com.x", "1.0").unwrap();
    assert_eq!(
        f.lookup("org.team-b.app", "1.0").unwrap(),
        size("org.team-b.app", "1.0")
    );
    assert_eq!(f.lookup("com.x", "1.0").unwrap(), size("com.x", "1.0"));
}

#[test]
fn the_catalog_offers_what_the_search_finds_in_its_order() {
    let f = Fixture::new();
    f.delegate("first", &["apps/*/*/*"], |_| {});
    f.delegate("second", &["apps/*/*/*"], |_| {});
    f.add("second", "app", "1.0").unwrap();
    f.add("first", "app", "2.0").unwrap();
    // Someone with second's key lists app 2.0 there too, other bytes: the
    // search finds first's, and so does the catalog.
    let current = f.repo.current().unwrap();
    let mut second = current.delegated["second"].signed.clone();
    let mut evil = current.delegated["first"].signed.targets["apps/app/2.0/app.bin"].clone();
    evil.length += 1;
    second.targets.insert("apps/app/2.0/app.bin".into(), evil);
    let key = keys::load_ed25519(&f.keys().join("delegated/second-1.key")).unwrap();
    f.publish_signed_by("second", second, &key);
    let catalog = f.repo.catalog().unwrap();
    let v2 = catalog.find("app", &"2.0".parse().unwrap()).unwrap();
    assert_eq!(v2.files[0].length, size("app", "2.0"));
    assert_eq!(f.lookup("app", "2.0").unwrap(), size("app", "2.0"));
    assert_eq!(catalog.releases().len(), 2);
}

#[test]
fn rotating_a_team_key_refuses_its_old_signatures_and_spares_other_teams() {
    let f = Fixture::new();
    f.delegate("team-a", &[TEAM_A], |_| {});
    f.delegate("team-b", &[TEAM_B], |_| {});
    f.add("team-a", "org.team-a.app", "1.0").unwrap();
    f.add("team-b", "org.team-b.app", "1.0").unwrap();
    let old = f.repo.current().unwrap().delegated["team-a"].signed.clone();

    let r = f.repo.rotate_role(None, "team-a", &[], &[]).unwrap();
    assert!(r.resigned);
    assert_eq!(r.parent, "targets");
    assert_eq!(
        r.retired,
        [f.keys().join("retired/delegated/team-a-1.v3.key")]
    );
    assert_ne!(r.old_key_ids, r.new_key_ids);
    let new = keys::load_ed25519(&f.keys().join("delegated/team-a-1.key")).unwrap();
    assert_eq!(r.new_key_ids, [new.key_id()]);
    // Re-signed with the new key: still offered and accepted.
    assert_eq!(
        f.lookup("org.team-a.app", "1.0").unwrap(),
        size("org.team-a.app", "1.0")
    );
    assert_eq!(f.offered().len(), 2);

    // The retired key signs a new team-a version listing an evil release.
    let retired = keys::load_ed25519(&r.retired[0]).unwrap();
    assert!(
        f.repo
            .add_to_role(
                None,
                "team-a",
                &[r.retired[0].clone()],
                &f.release("org.team-a.app", "6.6")
            )
            .is_err()
    );
    let mut evil = old;
    let file = evil.targets["apps/org.team-a.app/1.0/app.bin"].clone();
    evil.targets
        .insert("apps/org.team-a.app/6.6/app.bin".into(), file);
    f.publish_signed_by("team-a", evil, &retired);
    let err = f.lookup("org.team-a.app", "6.6").unwrap_err();
    assert!(
        matches!(&err, TufError::SignatureThreshold { role, .. } if role == "team-a"),
        "{err}"
    );
    assert!(f.lookup("org.team-a.app", "1.0").is_err());
    // Team B is unaffected; the catalog offers only what clients accept.
    assert_eq!(
        f.lookup("org.team-b.app", "1.0").unwrap(),
        size("org.team-b.app", "1.0")
    );
    assert_eq!(f.offered(), ["org.team-b.app 1.0"]);
}

#[test]
fn a_team_that_keeps_its_key_publishes_with_it_and_rotates_to_a_new_one() {
    let f = Fixture::new();
    let team_key = f.tmp.path().join("team.key");
    let signer = keys::generate_ed25519(&team_key).unwrap();
    let public = signer.public_key().keyval.public.clone();
    let d = f.delegate("team-a", &[TEAM_A], |o| {
        o.public_keys = vec![public.clone()]
    });
    assert!(d.key_files.is_empty());
    assert!(!f.keys().join("delegated").exists());
    // Not published yet: clients looking there fail, others do not care.
    assert!(f.lookup("org.team-a.app", "1.0").is_err());
    assert!(f.offered().is_empty());
    let err = f.add("team-a", "org.team-a.app", "1.0").unwrap_err();
    assert!(matches!(err, ServerError::RoleKeysMissing { .. }), "{err}");
    let publish = |version: &str, key: &Path| {
        f.repo.add_to_role(
            None,
            "team-a",
            &[key.to_path_buf()],
            &f.release("org.team-a.app", version),
        )
    };
    publish("1.0", &team_key).unwrap();
    assert_eq!(
        f.lookup("org.team-a.app", "1.0").unwrap(),
        size("org.team-a.app", "1.0")
    );

    // The team lost its key: the operator rotates to the team's new
    // public key. The old signatures are refused until the team publishes.
    let new_key = f.tmp.path().join("team-new.key");
    let new = keys::generate_ed25519(&new_key).unwrap();
    let r = f
        .repo
        .rotate_role(
            None,
            "team-a",
            &[new.public_key().keyval.public.clone()],
            &[],
        )
        .unwrap();
    assert!(!r.resigned);
    assert!(r.retired.is_empty());
    assert!(f.lookup("org.team-a.app", "1.0").is_err());
    assert!(publish("1.1", &team_key).is_err());
    publish("1.1", &new_key).unwrap();
    assert_eq!(
        f.lookup("org.team-a.app", "1.0").unwrap(),
        size("org.team-a.app", "1.0")
    );
    assert_eq!(
        f.lookup("org.team-a.app", "1.1").unwrap(),
        size("org.team-a.app", "1.1")
    );
}

#[test]
fn undelegating_revokes_a_team_and_keeps_the_snapshot_listing_it() {
    let f = Fixture::new();
    f.delegate("team-a", &[TEAM_A], |_| {});
    f.delegate("team-b", &[TEAM_B], |_| {});
    f.add("team-a", "org.team-a.app", "1.0").unwrap();
    f.add("team-b", "org.team-b.app", "1.0").unwrap();
    let md = tempfile::tempdir().unwrap();
    let mut steady = client(md.path(), &f.pinned, &f.dir);
    steady.refresh().unwrap();
    steady
        .get_target_info("apps/org.team-a.app/1.0/app.bin")
        .unwrap();

    let r = f.repo.undelegate(None, "team-a", &[]).unwrap();
    assert_eq!(
        r.retired,
        [f.keys().join("retired/delegated/team-a-1.v3.key")]
    );
    let current = f.repo.current().unwrap();
    assert!(current.snapshot.meta.contains_key("team-a.json"));
    assert!(current.delegators_of("team-a").is_empty());
    // A client that knew the role refreshes fine and no longer finds it.
    let mut steady = client(md.path(), &f.pinned, &f.dir);
    steady.refresh().unwrap();
    let err = steady
        .get_target_info("apps/org.team-a.app/1.0/app.bin")
        .unwrap_err();
    assert!(matches!(err, TufError::TargetNotFound { .. }), "{err}");
    assert_eq!(
        f.lookup("org.team-b.app", "1.0").unwrap(),
        size("org.team-b.app", "1.0")
    );
    assert_eq!(f.offered(), ["org.team-b.app 1.0"]);
    assert!(matches!(
        f.repo.undelegate(None, "team-a", &[]),
        Err(ServerError::UnknownRole { .. })
    ));
    // Not to a team's public key: the old metadata would stay its content.
    let o = DelegateOptions {
        name: "team-a".into(),
        paths: vec![TEAM_A.into()],
        public_keys: vec![hex::encode([7u8; 32])],
        ..DelegateOptions::default()
    };
    assert!(matches!(
        f.repo.delegate(None, &o),
        Err(ServerError::RoleNameRetired { .. })
    ));
    // Delegated again with new keys: its versions go on from the old ones.
    f.delegate("team-a", &[TEAM_A], |_| {});
    let current = f.repo.current().unwrap();
    assert_eq!(current.delegated["team-a"].signed.version, 3);
    assert!(current.delegated["team-a"].signed.targets.is_empty());
    let mut steady = client(md.path(), &f.pinned, &f.dir);
    steady.refresh().unwrap();
    assert!(
        steady
            .get_target_info("apps/org.team-a.app/1.0/app.bin")
            .is_err()
    );
}

#[test]
fn hashed_bins_hold_each_file_in_the_bin_of_its_hash() {
    let f = Fixture::new();
    let d = f.delegate("apps", &["apps/*/*/*"], |o| o.bins = Some(16));
    assert_eq!(d.bins.len(), 16);
    let apps: Vec<String> = (0..12).map(|i| format!("app{i}")).collect();
    for a in &apps {
        f.add("apps", a, "1.0").unwrap();
    }
    let current = f.repo.current().unwrap();
    assert!(current.delegated["apps"].signed.targets.is_empty());
    let listed: usize = d
        .bins
        .iter()
        .map(|b| current.delegated[b].signed.targets.len())
        .sum();
    assert_eq!(listed, 12);
    assert_eq!(f.offered().len(), 12);
    // A client fetches the role and one bin per lookup.
    let md = tempfile::tempdir().unwrap();
    let mut c = client(md.path(), &f.pinned, &f.dir);
    c.refresh().unwrap();
    for a in &apps {
        c.get_target_info(&format!("apps/{a}/1.0/app.bin")).unwrap();
    }
    let cached = fs::read_dir(md.path()).unwrap().count();
    assert!(cached <= 6 + 1 + 12, "{cached} files");
    // Rotating the role re-signs its bins with the new key.
    f.repo.rotate_role(None, "apps", &[], &[]).unwrap();
    assert_eq!(f.lookup("app3", "1.0").unwrap(), size("app3", "1.0"));
    let o = DelegateOptions {
        name: "more".into(),
        paths: vec!["apps/*/*/*".into()],
        public_keys: vec![hex::encode([7u8; 32])],
        bins: Some(4),
        ..DelegateOptions::default()
    };
    assert!(matches!(
        f.repo.delegate(None, &o),
        Err(ServerError::BinsNeedRoleKeys { .. })
    ));
}

#[test]
fn refreshing_a_role_re_signs_it_and_its_bins_with_a_later_expiry() {
    let f = Fixture::new();
    let settings = f.dir.join(crate::repo::SETTINGS_FILE);
    let text = fs::read_to_string(&settings).unwrap();
    fs::write(&settings, text.replace("targets = 90", "targets = 1")).unwrap();
    let repo = Repo::open(&f.dir).unwrap();
    let o = DelegateOptions {
        name: "apps".into(),
        paths: vec!["apps/*/*/*".into()],
        bins: Some(2),
        ..DelegateOptions::default()
    };
    let d = repo.delegate(None, &o).unwrap();
    repo.add_to_role(None, "apps", &[], &f.release("app", "1.0"))
        .unwrap();
    let before = repo.current().unwrap();
    fs::write(&settings, text).unwrap();
    let repo = Repo::open(&f.dir).unwrap();
    repo.refresh_role(None, "apps", &[]).unwrap();
    let after = repo.current().unwrap();
    for role in std::iter::once("apps").chain(d.bins.iter().map(String::as_str)) {
        let (old, new) = (
            &before.delegated[role].signed,
            &after.delegated[role].signed,
        );
        assert_eq!(new.version, old.version + 1, "{role}");
        assert!(new.expires.0 > old.expires.0, "{role}");
        assert_eq!(new.targets, old.targets, "{role}");
    }
    assert_eq!(after.targets.version, before.targets.version);
    assert_eq!(f.lookup("app", "1.0").unwrap(), size("app", "1.0"));
    // Only with the role's key.
    fs::remove_file(f.keys().join("delegated/apps-1.key")).unwrap();
    assert!(matches!(
        repo.refresh_role(None, "apps", &[]),
        Err(ServerError::RoleKeysMissing { .. })
    ));
}

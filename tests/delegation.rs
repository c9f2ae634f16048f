//! Delegated trust end to end: repositories made with `upkeep repo
//! delegate`, `repo add --role`, `repo rotate --role` and `repo
//! undelegate`, served by the REAL reference server, read by the real
//! client (`upkeep update` with the `install-archive` plugin, and the TUF
//! conformance CLI `upkeep tuf`).

mod support;

use std::path::{Path, PathBuf};

use support::upkeep;
use support::world::{World, expect_success, run_ok, tar_gz, text, tree};
use upkeep_core::tuf::target_file_name;

const ALPHA: &str = "org.team-a.alpha";
const BRAVO: &str = "org.team-b.bravo";
const TEAM_A: &str = "apps/org.team-a.*/*/*";
const TEAM_B: &str = "apps/org.team-b.*/*/*";

/// `upkeep repo delegate REPO --name NAME --paths PATTERN EXTRA...`.
fn delegate(w: &World, name: &str, paths: &str, extra: &[&str]) -> String {
    run_ok(
        upkeep()
            .args(["repo", "delegate"])
            .arg(&w.repo)
            .args(["--name", name, "--paths", paths])
            .args(extra),
    )
}

/// A new key file from `upkeep repo keygen`, and its public key.
fn keygen(w: &World, name: &str) -> (PathBuf, String) {
    let file = w.path(name);
    let out = run_ok(upkeep().args(["repo", "keygen"]).arg(&file));
    let public = out
        .lines()
        .find_map(|l| l.strip_prefix("public key "))
        .unwrap_or_else(|| panic!("no public key in {out:?}"))
        .to_owned();
    (file, public)
}

/// `upkeep repo add --role ROLE [--role-key KEY]` of a `.tar.gz` holding
/// one text file; the command's output.
fn publish_as(
    w: &World,
    role: &str,
    key: Option<&Path>,
    app: &str,
    version: &str,
) -> std::process::Output {
    let dir = w.path("payloads").join(format!("{app}-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.tar.gz");
    let content = format!("{app} {version}\n");
    std::fs::write(&file, tar_gz(&[("version.txt", content.as_bytes())])).unwrap();
    let mut cmd = upkeep();
    cmd.args(["repo", "add"]).arg(&w.repo).args([
        "--role",
        role,
        "--app",
        app,
        "--version",
        version,
    ]);
    if let Some(k) = key {
        cmd.arg("--role-key").arg(k);
    }
    cmd.arg(&file).output().unwrap()
}

fn published(out: std::process::Output) {
    assert!(out.status.success(), "repo add: {}", text(&out.stderr));
}

fn installed(w: &World, app: &str) -> String {
    std::fs::read_to_string(w.install_dir(app).join("current/version.txt")).unwrap_or_default()
}

/// `upkeep tuf … download` of one release file from the served
/// repository, with a client directory of its own pinned to
/// `client/root.json`; the output and the downloaded bytes.
fn tuf_download(w: &World, app: &str, version: &str) -> (std::process::Output, Option<Vec<u8>>) {
    let client = tempfile::tempdir().unwrap();
    let md = client.path().join("md");
    let out_dir = client.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    run_ok(
        upkeep()
            .args(["tuf", "--metadata-dir"])
            .arg(&md)
            .arg("init")
            .arg(w.repo.join("client/root.json")),
    );
    let target = format!("apps/{app}/{version}/app.tar.gz");
    let out = upkeep()
        .args(["tuf", "--metadata-dir"])
        .arg(&md)
        .args(["--metadata-url", &format!("{}/tuf/", w.base())])
        .args(["--target-name", &target])
        .args(["--target-base-url", &format!("{}/targets/", w.base())])
        .arg("--target-dir")
        .arg(&out_dir)
        .arg("download")
        .output()
        .unwrap();
    let bytes = std::fs::read(out_dir.join(target_file_name(&target))).ok();
    (out, bytes)
}

#[test]
fn a_team_publishes_with_its_own_key_and_machines_install_its_apps() {
    let mut w = World::new();
    // Team A keeps its private key; the operator gets the public half.
    let (team_key, public) = keygen(&w, "team-a.key");
    let out = delegate(&w, "team-a", TEAM_A, &["--public-key", &public]);
    assert!(out.contains("delegated team-a from targets"), "{out}");
    let out = delegate(&w, "team-b", TEAM_B, &[]);
    assert!(out.contains("delegated/team-b-1.key"), "{out}");
    let roles = run_ok(upkeep().args(["repo", "roles"]).arg(&w.repo));
    assert!(roles.contains("team-a (from targets)"), "{roles}");
    assert!(roles.contains("not published yet"), "{roles}");

    // Teams publish without the top-level targets key.
    let keys = w.repo.join("keys");
    std::fs::rename(keys.join("targets.key"), w.path("targets.key")).unwrap();
    published(publish_as(&w, "team-a", Some(&team_key), ALPHA, "1.0"));
    published(publish_as(&w, "team-b", None, BRAVO, "1.0"));
    // A team cannot publish another team's app, and nothing is written.
    let before = tree(&w.repo);
    let out = publish_as(&w, "team-a", Some(&team_key), "org.team-b.evil", "1.0");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("role \"team-a\" is not trusted for apps/org.team-b.evil/1.0/app.tar.gz"),
        "{stderr}"
    );
    // Nor publish with team B's key.
    let b_key = keys.join("delegated/team-b-1.key");
    let out = publish_as(&w, "team-a", Some(&b_key), "org.team-a.other", "1.0");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a key of role"), "{out:?}");
    assert_eq!(tree(&w.repo), before);

    let list = run_ok(upkeep().args(["repo", "list"]).arg(&w.repo));
    assert!(list.contains(&format!("{ALPHA} 1.0")), "{list}");
    assert!(list.contains(&format!("{BRAVO} 1.0")), "{list}");

    w.serve();
    w.register(ALPHA, "0");
    w.register(BRAVO, "0");
    let stdout = expect_success(&w.update(&[]));
    assert!(
        stdout.contains(&format!("{ALPHA}: installed 1.0")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{BRAVO}: installed 1.0")),
        "{stdout}"
    );
    assert_eq!(installed(&w, ALPHA), format!("{ALPHA} 1.0\n"));

    published(publish_as(&w, "team-a", Some(&team_key), ALPHA, "2.0"));
    let stdout = expect_success(&w.update(&[]));
    assert!(
        stdout.contains(&format!("{ALPHA}: updated 1.0 -> 2.0")),
        "{stdout}"
    );
    assert_eq!(installed(&w, ALPHA), format!("{ALPHA} 2.0\n"));
    assert_eq!(w.version(BRAVO), "1.0");
}

#[test]
fn a_revoked_team_key_is_refused_and_other_teams_are_unaffected() {
    let mut w = World::new();
    delegate(&w, "team-a", TEAM_A, &[]);
    delegate(&w, "team-b", TEAM_B, &[]);
    published(publish_as(&w, "team-a", None, ALPHA, "1.0"));
    published(publish_as(&w, "team-b", None, BRAVO, "1.0"));
    w.serve();
    w.register(ALPHA, "0");
    w.register(BRAVO, "0");
    expect_success(&w.update(&[]));
    assert_eq!(w.version(ALPHA), "1.0");

    // Team A's key leaked: the operator replaces it with the team's new
    // public key. What the old key signed is refused from now on.
    let (new_key, public) = keygen(&w, "team-a-new.key");
    let out = run_ok(upkeep().args(["repo", "rotate"]).arg(&w.repo).args([
        "--role",
        "team-a",
        "--public-key",
        &public,
    ]));
    assert!(out.contains("targets re-signed"), "{out}");
    assert!(out.contains("is not trusted until it publishes"), "{out}");
    let retired = w.repo.join("keys/retired/delegated/team-a-1.v3.key");
    assert!(out.contains(&retired.display().to_string()), "{out}");
    let out = publish_as(&w, "team-a", Some(&retired), ALPHA, "6.6");
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // The TUF client refuses team A's metadata, signed by the old key.
    let (out, bytes) = tuf_download(&w, ALPHA, "1.0");
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("team-a"), "{stderr}");
    assert!(stderr.contains("signature"), "{stderr}");
    assert!(bytes.is_none());
    let (out, bytes) = tuf_download(&w, BRAVO, "1.0");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(bytes.is_some());

    // Team B releases go on; the server offers nothing for team A, as no
    // client would accept it.
    published(publish_as(&w, "team-b", None, BRAVO, "2.0"));
    let out = w.update(&[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!("{BRAVO}: updated 1.0 -> 2.0")),
        "{stdout}"
    );
    let all = format!("{stdout}{}", text(&out.stderr));
    assert!(all.contains("error-unknownApplication"), "{all}");
    assert_eq!(w.version(ALPHA), "1.0");
    assert_eq!(installed(&w, ALPHA), format!("{ALPHA} 1.0\n"));

    // Signed with the new key, team A is back.
    published(publish_as(&w, "team-a", Some(&new_key), ALPHA, "2.0"));
    let stdout = expect_success(&w.update(&[]));
    assert!(
        stdout.contains(&format!("{ALPHA}: updated 1.0 -> 2.0")),
        "{stdout}"
    );

    // Revoking team B altogether: its files are no longer trusted.
    let out = run_ok(
        upkeep()
            .args(["repo", "undelegate"])
            .arg(&w.repo)
            .args(["--name", "team-b"]),
    );
    assert!(out.contains("(revoked)"), "{out}");
    let (out, _) = tuf_download(&w, BRAVO, "2.0");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not listed"), "{out:?}");
    let (out, bytes) = tuf_download(&w, ALPHA, "2.0");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(bytes.is_some());
}

#[test]
fn nested_terminating_and_hashed_bin_delegations_are_read_by_the_client() {
    let mut w = World::new();
    delegate(&w, "org", "apps/org.*/*/*", &["--terminating"]);
    delegate(
        &w,
        "org-web",
        "apps/org.web*/*/*",
        &["--parent", "org", "--keys", "2", "--threshold", "2"],
    );
    delegate(&w, "late", "apps/org.late/*/*", &[]);
    let out = delegate(&w, "bins", "apps/*/*/*", &["--bins", "16"]);
    assert!(out.contains("16 hashed bins"), "{out}");
    let roles = run_ok(upkeep().args(["repo", "roles"]).arg(&w.repo));
    assert!(roles.contains("  org-web (from org)"), "{roles}");
    assert!(roles.contains("2 of 2 key(s)"), "{roles}");
    assert!(roles.contains("terminating"), "{roles}");

    published(publish_as(&w, "org-web", None, "org.web-shop", "1.0"));
    published(publish_as(&w, "org", None, "org.tools", "1.0"));
    let apps = ["com.a", "com.b", "net.c", "io.d"];
    for app in apps {
        published(publish_as(&w, "bins", None, app, "1.0"));
    }
    // `late` comes after the terminating `org`, which covers its paths:
    // clients never look there, so the tool refuses to publish there.
    let out = publish_as(&w, "late", None, "org.late", "1.0");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not trusted for"), "{out:?}");
    // Nested roles are bounded by their parent's paths too.
    let out = publish_as(&w, "org-web", None, "com.web", "1.0");
    assert_eq!(out.status.code(), Some(1));

    w.serve();
    for (app, version) in [("org.web-shop", "1.0"), ("org.tools", "1.0")]
        .into_iter()
        .chain(apps.map(|a| (a, "1.0")))
    {
        let (out, bytes) = tuf_download(&w, app, version);
        assert!(out.status.success(), "{app}: {}", text(&out.stderr));
        let want = tar_gz(&[("version.txt", format!("{app} {version}\n").as_bytes())]);
        assert_eq!(bytes.unwrap(), want, "{app}");
    }
    let (out, _) = tuf_download(&w, "org.late", "1.0");
    assert_eq!(out.status.code(), Some(1));
}

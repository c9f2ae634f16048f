//! Attacks and faults end to end against the REAL reference server: every
//! test creates a repository with `upkeep repo init`, publishes releases with
//! `upkeep repo add`, runs `upkeep repo serve` on 127.0.0.1 as a child
//! process, points a client state directory at it (the repository's own
//! `client/` bundle with the real URL), registers apps with the real
//! installer plugins and runs `upkeep update`.
//!
//! A failing run must exit 1, say what failed on stderr, leave `prefs.json`
//! and the install directories byte for byte as they were, and (when the
//! server answered) report the error in the event ping the server stored
//! (`upkeep repo events DIR --json`).

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{plugin_path, upkeep};
use upkeep_core::omaha::{Protocol, RequestApp, RequestBuilder};
use upkeep_core::version::Version;

const ALPHA: &str = "org.example.alpha";
const BRAVO: &str = "org.example.bravo";
const CHARLIE: &str = "{6f0e3e2c-52f4-4c59-9a8b-5d1e2a9c0b11}";

// ---------------------------------------------------------------------------
// Helpers: processes, payloads, file trees
// ---------------------------------------------------------------------------

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run upkeep");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A `.tar.gz` holding the given files.
fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, *data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// `len` bytes that do not compress (xorshift64).
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every file under `dir` with its content, and every folder (as `name/`,
/// empty), so that a created empty folder counts as a change too. An
/// absent dir is empty.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// `upkeep repo serve` as a child process, killed when dropped (also on
/// panic).
struct Served {
    child: Child,
    base: String,
}

impl Served {
    /// Starts the server on `listen`; `Err` when it exits before printing
    /// its address (the port is taken, for instance).
    fn start(repo: &Path, listen: &str, log: &Path) -> Result<Served, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = upkeep()
            .args(["repo", "serve"])
            .arg(repo)
            .args(["--listen", listen])
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start the server");
        let mut served = Served {
            child,
            base: String::new(),
        };
        let stdout = served.child.stdout.take().expect("server stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("the server printed {line:?}"))?;
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        served.base = base.to_owned();
        Ok(served)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a failing run must not touch.
#[derive(Debug, PartialEq)]
struct Snapshot {
    prefs: Vec<u8>,
    installs: BTreeMap<String, Vec<u8>>,
}

// ---------------------------------------------------------------------------
// The world of one test: a repository, its server, one client machine
// ---------------------------------------------------------------------------

struct World {
    tmp: tempfile::TempDir,
    /// The repository directory.
    repo: PathBuf,
    /// The client's state directory (`--root`).
    state: PathBuf,
    /// The client's configuration folder (copy of the repository's `client/`).
    etc: PathBuf,
    /// Install directories, one per app.
    installs: PathBuf,
    server: Option<Served>,
}

impl World {
    /// A repository made by `repo init`, nothing published, no server.
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        run_ok(upkeep().args(["repo", "init"]).arg(&repo));
        let state = tmp.path().join("state");
        let etc = tmp.path().join("etc");
        let installs = tmp.path().join("installs");
        for d in [&state, &installs, &tmp.path().join("payloads")] {
            std::fs::create_dir_all(d).unwrap();
        }
        World {
            tmp,
            repo,
            state,
            etc,
            installs,
            server: None,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Publishes `app` `version` with one payload file, `repo add`.
    fn publish_bytes(&self, app: &str, version: &str, name: &str, bytes: &[u8], args: &[&str]) {
        let dir = self.path("payloads").join(format!("{app}-{version}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, bytes).unwrap();
        let mut cmd = upkeep();
        cmd.args(["repo", "add"])
            .arg(&self.repo)
            .args(["--app", app, "--version", version]);
        for a in args {
            cmd.arg("--installer-arg").arg(a);
        }
        let out = run_ok(cmd.arg(&file));
        assert!(out.contains(&format!("published {app} {version}")), "{out}");
    }

    /// Publishes a `.tar.gz` release holding one text file per entry.
    fn publish(&self, app: &str, version: &str, files: &[(&str, &str)]) {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
        self.publish_bytes(app, version, "app.tar.gz", &tar_gz(&files), &[]);
    }

    fn set_timestamp_expiry_days(&self, days: u32) {
        let path = self.repo.join("repo.toml");
        let settings = std::fs::read_to_string(&path).unwrap();
        let mut lines = Vec::new();
        let mut replaced = false;
        for line in settings.lines() {
            if line.trim_start().starts_with("timestamp =") {
                lines.push(format!("timestamp = {days}"));
                replaced = true;
            } else {
                lines.push(line.to_owned());
            }
        }
        assert!(replaced, "no timestamp expiry in repo.toml:\n{settings}");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }

    /// Starts `repo serve` on a port of the system's choice and writes the
    /// client configuration for it.
    fn serve(&mut self) {
        self.serve_at("127.0.0.1:0");
    }

    /// Starts `repo serve` on `listen`, retrying until the address is free
    /// again (after a restart) or 10 s have passed.
    fn serve_at(&mut self, listen: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let served = loop {
            match Served::start(&self.repo, listen, &self.path("server.log")) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!(
                    "the server did not start on {listen}: {e}; log:\n{}",
                    std::fs::read_to_string(self.path("server.log")).unwrap_or_default()
                ),
            }
        };
        self.write_config(&served.base);
        self.server = Some(served);
    }

    /// Kills the server.
    fn stop(&mut self) {
        self.server = None;
    }

    fn base(&self) -> String {
        self.server.as_ref().expect("a running server").base.clone()
    }

    /// The repository's `client/` bundle, with the real server URL.
    fn write_config(&self, base: &str) {
        copy_dir(&self.repo.join("client"), &self.etc);
        let config = std::fs::read_to_string(self.repo.join("client/config.toml")).unwrap();
        let mut lines = Vec::new();
        for line in config.lines() {
            if line.trim_start().starts_with("server =") {
                lines.push(format!("server = {base:?}"));
            } else {
                lines.push(line.to_owned());
            }
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("server = \"http://127.0.0.1:")),
            "{config}"
        );
        std::fs::write(self.etc.join("config.toml"), lines.join("\n") + "\n").unwrap();
    }

    /// Runs a client verb against this world's state and configuration.
    fn client(&self, args: &[&str]) -> Output {
        upkeep()
            .args(args)
            .arg("--root")
            .arg(&self.state)
            .arg("--config")
            .arg(self.etc.join("config.toml"))
            .output()
            .unwrap()
    }

    fn update(&self, args: &[&str]) -> Output {
        let mut all = vec!["update"];
        all.extend_from_slice(args);
        self.client(&all)
    }

    fn install_dir(&self, id: &str) -> PathBuf {
        self.installs.join(id.to_ascii_lowercase())
    }

    /// Registers `id` at `version` with an installer plugin (and more
    /// `register` options).
    fn register_with(&self, id: &str, version: &str, installer: &Path, extra: &[&str]) {
        let dir = self.install_dir(id);
        let mut args = vec![
            "register",
            "--app",
            id,
            "--version",
            version,
            "--install-dir",
            dir.to_str().unwrap(),
            "--installer",
            installer.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = self.client(&args);
        assert!(out.status.success(), "register: {}", text(&out.stderr));
    }

    /// Registers `id` with the real `install-archive` plugin; an installed
    /// version (not 0) gets a file in its install directory.
    fn register(&self, id: &str, version: &str) {
        self.register_with(id, version, &plugin_path("install-archive"), &[]);
        if version != "0" {
            let dir = self.install_dir(id);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("keep.txt"), format!("{id} {version} data\n")).unwrap();
        }
    }

    fn prefs(&self) -> Vec<u8> {
        std::fs::read(self.state.join("prefs.json")).unwrap()
    }

    fn prefs_json(&self) -> Value {
        serde_json::from_slice(&self.prefs()).unwrap()
    }

    fn version(&self, id: &str) -> String {
        self.prefs_json()["apps"][id.to_ascii_lowercase()]["version"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} is not in prefs"))
            .to_owned()
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            prefs: self.prefs(),
            installs: tree(&self.installs),
        }
    }

    fn assert_unchanged(&self, before: &Snapshot) {
        let now = self.snapshot();
        assert!(now.prefs == before.prefs, "prefs.json changed");
        assert!(now.installs == before.installs, "an install dir changed");
    }

    /// Every ping and event the server stored, oldest first.
    fn events(&self) -> Vec<Value> {
        let out = run_ok(
            upkeep()
                .args(["repo", "events"])
                .arg(&self.repo)
                .arg("--json"),
        );
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// The events (not pings) the server stored for `id`.
    fn app_events(&self, id: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["kind"] == "event" && e["app_id"] == id.to_ascii_lowercase())
            .collect()
    }

    /// The last install (2) or update (3) event stored for `id` must be a
    /// failure with this category and code.
    fn assert_error_event(&self, id: &str, errorcat: i64, errorcode: i64) {
        let events = self.app_events(id);
        let last = events
            .iter()
            .rev()
            .find(|e| e["event_type"] == 2 || e["event_type"] == 3)
            .unwrap_or_else(|| panic!("no install/update event for {id}: {events:#?}"));
        assert_eq!(last["event_result"], 0, "{last:#}");
        assert_eq!(last["error_category"], errorcat, "{last:#}");
        assert_eq!(last["error_code"], errorcode, "{last:#}");
    }

    /// Sends one (unsigned) update check, so the server loads the catalog
    /// of the current `timestamp.json` and keeps it until that file changes.
    fn prime_server(&self, id: &str) {
        let body = RequestBuilder::new(Protocol::Json31)
            .app(RequestApp::new(id.to_owned(), &Version::default()))
            .build()
            .unwrap()
            .to_body();
        let resp = reqwest::blocking::Client::new()
            .post(format!("{}/service/update2/json", self.base()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
}

/// The run failed with exit status 1 and stderr says every phrase.
fn expect_failure(out: &Output, phrases: &[&str]) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    for p in phrases {
        assert!(stderr.contains(p), "expected {p:?} in stderr:\n{stderr}");
    }
    stderr
}

fn expect_success(out: &Output) -> String {
    assert!(
        out.status.success(),
        "update failed: {}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

#[test]
fn three_apps_install_and_update_in_one_request() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("bin/alpha", "alpha 1.0\n")]);
    w.publish(BRAVO, "2.5", &[("bravo.txt", "bravo 2.5\n")]);
    w.publish(CHARLIE, "1.0", &[("charlie.txt", "charlie 1.0\n")]);
    w.publish(
        CHARLIE,
        "2.0",
        &[("charlie.txt", "charlie 2.0\n"), ("doc/NEWS", "news\n")],
    );
    w.serve();
    w.register(ALPHA, "0");
    w.register(BRAVO, "0");
    // Charlie is installed; its existence checker finds the marker.
    w.register_with(
        CHARLIE,
        "1.0",
        &plugin_path("install-archive"),
        &[
            "--existence",
            plugin_path("exists-path").to_str().unwrap(),
            "--marker",
            "keep.txt",
        ],
    );
    let c_dir = w.install_dir(CHARLIE);
    std::fs::create_dir_all(&c_dir).unwrap();
    std::fs::write(c_dir.join("keep.txt"), "charlie settings\n").unwrap();

    let stdout = expect_success(&w.update(&[]));
    assert!(
        stdout.contains(&format!("{ALPHA}: installed 1.0")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{BRAVO}: installed 2.5")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{CHARLIE}: updated 1.0 -> 2.0")),
        "{stdout}"
    );

    // The server stored one request's events for all three apps.
    let events: Vec<Value> = w
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "event")
        .collect();
    let requests: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(requests.len(), 1, "{events:#?}");
    for (id, kind, from, to) in [
        (ALPHA, 2, None, "1.0"),
        (BRAVO, 2, None, "2.5"),
        (CHARLIE, 3, Some("1.0"), "2.0"),
    ] {
        let e = events
            .iter()
            .find(|e| e["app_id"] == id && e["event_type"] == kind)
            .unwrap_or_else(|| panic!("no event {kind} for {id}: {events:#?}"));
        assert_eq!(e["event_result"], 1, "{e:#}");
        assert_eq!(e["next_version"], to, "{e:#}");
        if let Some(from) = from {
            assert_eq!(e["previous_version"], from, "{e:#}");
        }
        assert!(
            events
                .iter()
                .any(|d| d["app_id"] == id && d["event_type"] == 14 && d["event_result"] == 1),
            "no download event for {id}: {events:#?}"
        );
    }

    // Installed by the real plugin into versions/<v>/, launched through
    // current, recorded in prefs. Charlie's files from before the engine
    // managed its versions stay where they were.
    let read = |id: &str, f: &str| std::fs::read_to_string(w.install_dir(id).join(f)).unwrap();
    assert_eq!(read(ALPHA, "current/bin/alpha"), "alpha 1.0\n");
    assert_eq!(read(BRAVO, "current/bravo.txt"), "bravo 2.5\n");
    assert_eq!(read(CHARLIE, "current/charlie.txt"), "charlie 2.0\n");
    assert_eq!(read(CHARLIE, "current/doc/NEWS"), "news\n");
    assert_eq!(read(CHARLIE, "keep.txt"), "charlie settings\n");
    for (id, v) in [(ALPHA, "1.0"), (BRAVO, "2.5"), (CHARLIE, "2.0")] {
        assert_eq!(
            std::fs::read_link(w.install_dir(id).join("current")).unwrap(),
            Path::new("versions").join(v)
        );
    }
    assert_eq!(w.version(ALPHA), "1.0");
    assert_eq!(w.version(BRAVO), "2.5");
    assert_eq!(w.version(CHARLIE), "2.0");

    // A second run finds all three up to date and changes no install.
    let installs = tree(&w.installs);
    let stdout = expect_success(&w.update(&[]));
    for (id, v) in [(ALPHA, "1.0"), (BRAVO, "2.5"), (CHARLIE, "2.0")] {
        assert!(
            stdout.contains(&format!("{id}: up to date at {v}")),
            "{stdout}"
        );
    }
    assert_eq!(tree(&w.installs), installs);
    assert_eq!(
        w.events().iter().filter(|e| e["kind"] == "event").count(),
        events.len(),
        "an up-to-date run sends no events"
    );
}

#[test]
fn older_signed_metadata_is_refused_as_a_rollback() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.publish(BRAVO, "1.0", &[("bravo.txt", "bravo 1.0\n")]);
    // The metadata as it was after this publication: validly signed.
    let old = w.path("metadata-old");
    copy_dir(&w.repo.join("metadata"), &old);
    w.publish(ALPHA, "2.0", &[("alpha.txt", "alpha 2.0\n")]);
    w.serve();
    w.register(ALPHA, "0");
    expect_success(&w.update(&[]));
    assert_eq!(w.version(ALPHA), "2.0");

    // The server's metadata is replaced by the older copy; it offers
    // bravo 1.0, which the older metadata lists too.
    w.register(BRAVO, "0");
    let md = w.repo.join("metadata");
    std::fs::remove_dir_all(&md).unwrap();
    copy_dir(&old, &md);
    let before = w.snapshot();
    let trusted = std::fs::read(w.state.join("tuf/timestamp.json")).unwrap();
    let out = w.update(&["--app", BRAVO]);
    expect_failure(
        &out,
        &[
            &format!("error: {BRAVO}: TUF refresh from"),
            "timestamp.json: version 3 is lower than the trusted version 4 (rollback)",
        ],
    );
    w.assert_unchanged(&before);
    assert_eq!(
        std::fs::read(w.state.join("tuf/timestamp.json")).unwrap(),
        trusted,
        "the trusted timestamp was replaced"
    );
    assert!(!w.state.join(format!("downloads/{BRAVO}")).exists());
    w.assert_error_event(BRAVO, 1, 20);
}

#[test]
fn an_expired_timestamp_is_refused_as_a_freeze() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.serve();
    w.register(ALPHA, "0");
    expect_success(&w.update(&[]));

    // `expiry_days` are whole days: 0 makes the new timestamp expire the
    // second it is signed (expiry dates are whole seconds, and a date that
    // is not in the future has expired).
    w.set_timestamp_expiry_days(0);
    w.publish(ALPHA, "2.0", &[("alpha.txt", "alpha 2.0\n")]);
    let before = w.snapshot();
    let trusted = std::fs::read(w.state.join("tuf/timestamp.json")).unwrap();
    let out = w.update(&[]);
    expect_failure(
        &out,
        &[
            &format!("error: {ALPHA}: TUF refresh from"),
            "timestamp.json: expired at",
        ],
    );
    w.assert_unchanged(&before);
    assert_eq!(
        std::fs::read(w.state.join("tuf/timestamp.json")).unwrap(),
        trusted,
        "the expired timestamp became trusted"
    );
    w.assert_error_event(ALPHA, 1, 20);

    // A fresh timestamp (`repo refresh`) lets the update through.
    w.set_timestamp_expiry_days(7);
    run_ok(upkeep().args(["repo", "refresh"]).arg(&w.repo));
    let stdout = expect_success(&w.update(&[]));
    assert!(
        stdout.contains(&format!("{ALPHA}: updated 1.0 -> 2.0")),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(w.install_dir(ALPHA).join("current/alpha.txt")).unwrap(),
        "alpha 2.0\n"
    );
}

#[test]
fn a_snapshot_of_another_publication_is_refused() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.publish(BRAVO, "1.0", &[("bravo.txt", "bravo 1.0\n")]);
    w.serve();
    w.register(ALPHA, "0");
    // The server reads the catalog of timestamp 3 now and keeps it while
    // timestamp.json is unchanged; then 3.snapshot.json is swapped for the
    // (validly signed) snapshot of the previous publication, as a
    // tampered mirror would serve it.
    w.prime_server(ALPHA);
    let md = w.repo.join("metadata");
    std::fs::copy(md.join("2.snapshot.json"), md.join("3.snapshot.json")).unwrap();
    let before = w.snapshot();
    let out = w.update(&[]);
    let stderr = expect_failure(
        &out,
        &[
            &format!("error: {ALPHA}: TUF refresh from"),
            "snapshot.json",
        ],
    );
    // The timestamp names the snapshot's length and hashes: whichever
    // differs first is reported.
    assert!(
        stderr.contains("3.snapshot.json: length") || stderr.contains("3.snapshot.json: sha256"),
        "{stderr}"
    );
    w.assert_unchanged(&before);
    assert!(!w.install_dir(ALPHA).exists());
    assert!(
        !w.state.join("tuf/snapshot.json").exists(),
        "the mismatched snapshot became trusted"
    );
    w.assert_error_event(ALPHA, 1, 20);
}

#[test]
fn an_unknown_app_fails_alone() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.serve();
    let stranger = "org.example.stranger";
    w.register(ALPHA, "0");
    w.register(stranger, "3.0");
    let entry = w.prefs_json()["apps"][stranger].clone();
    let stranger_files = tree(&w.install_dir(stranger));

    let out = w.update(&[]);
    let stderr = expect_failure(
        &out,
        &[&format!(
            "upkeep: error: {stranger}: the server answered error-unknownApplication for it"
        )],
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains("error:")).count(),
        1,
        "{stderr}"
    );
    assert!(
        text(&out.stdout).contains(&format!("{ALPHA}: installed 1.0")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(w.version(ALPHA), "1.0");
    assert_eq!(
        std::fs::read_to_string(w.install_dir(ALPHA).join("current/alpha.txt")).unwrap(),
        "alpha 1.0\n"
    );
    // The stranger's registration and files are as they were.
    assert_eq!(w.prefs_json()["apps"][stranger], entry);
    assert_eq!(tree(&w.install_dir(stranger)), stranger_files);
    // The ping reports alpha's install; the refused app sends no event.
    let alpha = w.app_events(ALPHA);
    assert!(
        alpha
            .iter()
            .any(|e| e["event_type"] == 2 && e["event_result"] == 1),
        "{alpha:#?}"
    );
    assert!(w.app_events(stranger).is_empty());
}

#[test]
fn an_installer_that_loops_forever_is_stopped() {
    let mut w = World::new();
    let payload = tar_gz(&[("trap.txt", b"never unpacked\n")]);
    w.publish_bytes(ALPHA, "2.0", "trap.tar.gz", &payload, &["loop"]);
    w.serve();
    w.register_with(ALPHA, "1.0", &plugin_path("hostile"), &[]);
    let dir = w.install_dir(ALPHA);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "alpha 1.0 data\n").unwrap();
    let before = w.snapshot();
    let started = Instant::now();
    let out = w.update(&[]);
    expect_failure(
        &out,
        &[
            &format!("error: {ALPHA}: installer plugin hostile failed"),
            "exceeded its time limit of 1000 ms",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    w.assert_unchanged(&before);
    w.assert_error_event(ALPHA, 4, 11);
}

/// Mounts a 1 MiB tmpfs on a directory while it lives.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path) -> Option<SmallDisk> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| SmallDisk(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_during_the_download_changes_nothing() {
    let mut w = World::new();
    // 2 MiB that do not compress: more than the 1 MiB staging disk.
    let payload = tar_gz(&[("big.bin", &noise(2 << 20))]);
    assert!(payload.len() > 2 << 20);
    w.publish_bytes(ALPHA, "2.0", "big.tar.gz", &payload, &[]);
    w.serve();
    w.register(ALPHA, "1.0");
    let partial = w.state.join("downloads/.partial");
    // As root, staging goes to a 1 MiB tmpfs; elsewhere the staged file is
    // a symbolic link to /dev/full, where every write fails with ENOSPC.
    let disk = SmallDisk::mount(&partial);
    if disk.is_none() {
        let staged = partial.join(format!("{ALPHA}/2.0/big.tar.gz"));
        std::fs::create_dir_all(staged.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/dev/full", &staged).unwrap();
    }
    let before = w.snapshot();
    let out = w.update(&[]);
    expect_failure(
        &out,
        &[
            &format!("error: {ALPHA}: download of big.tar.gz failed"),
            "No space left on device",
        ],
    );
    w.assert_unchanged(&before);
    assert!(
        !w.state
            .join(format!("downloads/{ALPHA}/2.0/big.tar.gz"))
            .exists()
    );
    assert!(
        tree(&partial).keys().all(|k| k.ends_with('/')),
        "staged bytes were kept"
    );
    w.assert_error_event(ALPHA, 1, 7);
    drop(disk);
}

#[test]
fn a_server_that_went_down_changes_nothing_and_a_restart_serves_again() {
    let mut w = World::new();
    w.publish(ALPHA, "1.0", &[("alpha.txt", "alpha 1.0\n")]);
    w.serve();
    w.register(ALPHA, "0");
    let addr = w.base().trim_start_matches("http://").to_owned();
    w.stop();

    let before = w.snapshot();
    let out = w.update(&[]);
    let stderr = expect_failure(
        &out,
        &[&format!("error: {ALPHA}: the update server is unreachable")],
    );
    assert_eq!(
        stderr.lines().filter(|l| l.contains("error:")).count(),
        1,
        "{stderr}"
    );
    w.assert_unchanged(&before);
    assert!(w.events().is_empty(), "nothing reached the server");

    // The server keeps no state but the event store: restarted on the same
    // repository and address, it serves the update.
    w.serve_at(&addr);
    let stdout = expect_success(&w.update(&[]));
    assert!(
        stdout.contains(&format!("{ALPHA}: installed 1.0")),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(w.install_dir(ALPHA).join("current/alpha.txt")).unwrap(),
        "alpha 1.0\n"
    );
    let events = w.app_events(ALPHA);
    assert!(
        events
            .iter()
            .any(|e| e["event_type"] == 2 && e["event_result"] == 1),
        "{events:#?}"
    );
}

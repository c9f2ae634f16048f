//! The world of an end-to-end test against the REAL reference server: a
//! repository made with `upkeep repo init`, releases published with
//! `upkeep repo add`, `upkeep repo serve` on 127.0.0.1 as a child process,
//! and one client machine (state directory, configuration, install dirs).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use upkeep_core::omaha::{App, Protocol, RequestApp, RequestBuilder, parse_response};
use upkeep_core::version::Version;

use super::{plugin_path, upkeep};

// ---------------------------------------------------------------------------
// Helpers: processes, payloads, file trees
// ---------------------------------------------------------------------------

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run upkeep");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A `.tar.gz` holding the given files.
pub fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
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
pub fn noise(len: usize) -> Vec<u8> {
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
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
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

pub fn copy_dir(from: &Path, to: &Path) {
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
pub struct Served {
    pub child: Child,
    pub base: String,
}

impl Served {
    /// Starts the server on `listen`; `Err` when it exits before printing
    /// its address (the port is taken, for instance).
    pub fn start(repo: &Path, listen: &str, log: &Path) -> Result<Served, String> {
        Served::start_with(repo, listen, log, &[])
    }

    /// Starts the server on `listen` with more `repo serve` options.
    pub fn start_with(
        repo: &Path,
        listen: &str,
        log: &Path,
        extra: &[&str],
    ) -> Result<Served, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = upkeep()
            .args(["repo", "serve"])
            .arg(repo)
            .args(["--listen", listen])
            .args(extra)
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
pub struct Snapshot {
    pub prefs: Vec<u8>,
    pub installs: BTreeMap<String, Vec<u8>>,
}

// ---------------------------------------------------------------------------
// The world of one test: a repository, its server, one client machine
// ---------------------------------------------------------------------------

pub struct World {
    pub tmp: tempfile::TempDir,
    /// The repository directory.
    pub repo: PathBuf,
    /// The client's state directory (`--root`).
    pub state: PathBuf,
    /// The client's configuration folder (copy of the repository's `client/`).
    pub etc: PathBuf,
    /// Install directories, one per app.
    pub installs: PathBuf,
    pub server: Option<Served>,
}

impl World {
    /// A repository made by `repo init`, nothing published, no server.
    pub fn new() -> World {
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

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Publishes `app` `version` with one payload file, `repo add`.
    pub fn publish_bytes(&self, app: &str, version: &str, name: &str, bytes: &[u8], args: &[&str]) {
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
    pub fn publish(&self, app: &str, version: &str, files: &[(&str, &str)]) {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
        self.publish_bytes(app, version, "app.tar.gz", &tar_gz(&files), &[]);
    }

    pub fn set_timestamp_expiry_days(&self, days: u32) {
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
    pub fn serve(&mut self) {
        self.serve_at("127.0.0.1:0");
    }

    /// Starts `repo serve` on `listen`, retrying until the address is free
    /// again (after a restart) or 10 s have passed.
    pub fn serve_at(&mut self, listen: &str) {
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
    pub fn stop(&mut self) {
        self.server = None;
    }

    pub fn base(&self) -> String {
        self.server.as_ref().expect("a running server").base.clone()
    }

    /// The repository's `client/` bundle, with the real server URL.
    pub fn write_config(&self, base: &str) {
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
    pub fn client(&self, args: &[&str]) -> Output {
        upkeep()
            .args(args)
            .arg("--root")
            .arg(&self.state)
            .arg("--config")
            .arg(self.etc.join("config.toml"))
            .output()
            .unwrap()
    }

    pub fn update(&self, args: &[&str]) -> Output {
        let mut all = vec!["update"];
        all.extend_from_slice(args);
        self.client(&all)
    }

    pub fn install_dir(&self, id: &str) -> PathBuf {
        self.installs.join(id.to_ascii_lowercase())
    }

    /// Registers `id` at `version` with an installer plugin (and more
    /// `register` options).
    pub fn register_with(&self, id: &str, version: &str, installer: &Path, extra: &[&str]) {
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
    pub fn register(&self, id: &str, version: &str) {
        self.register_with(id, version, &plugin_path("install-archive"), &[]);
        if version != "0" {
            let dir = self.install_dir(id);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("keep.txt"), format!("{id} {version} data\n")).unwrap();
        }
    }

    pub fn prefs(&self) -> Vec<u8> {
        std::fs::read(self.state.join("prefs.json")).unwrap()
    }

    pub fn prefs_json(&self) -> Value {
        serde_json::from_slice(&self.prefs()).unwrap()
    }

    pub fn version(&self, id: &str) -> String {
        self.prefs_json()["apps"][id.to_ascii_lowercase()]["version"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} is not in prefs"))
            .to_owned()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            prefs: self.prefs(),
            installs: tree(&self.installs),
        }
    }

    pub fn assert_unchanged(&self, before: &Snapshot) {
        let now = self.snapshot();
        assert!(now.prefs == before.prefs, "prefs.json changed");
        assert!(now.installs == before.installs, "an install dir changed");
    }

    /// Every ping and event the server stored, oldest first.
    pub fn events(&self) -> Vec<Value> {
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
    pub fn app_events(&self, id: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["kind"] == "event" && e["app_id"] == id.to_ascii_lowercase())
            .collect()
    }

    /// The last install (2) or update (3) event stored for `id` must be a
    /// failure with this category and code.
    pub fn assert_error_event(
        &self,
        id: &str,
        errorcat: upkeep_core::omaha::ErrorCategory,
        errorcode: i64,
    ) {
        let events = self.app_events(id);
        let last = events
            .iter()
            .rev()
            .find(|e| e["event_type"] == 2 || e["event_type"] == 3)
            .unwrap_or_else(|| panic!("no install/update event for {id}: {events:#?}"));
        assert_eq!(last["event_result"], 0, "{last:#}");
        assert_eq!(last["error_category"], errorcat.code(), "{last:#}");
        assert_eq!(last["error_code"], errorcode, "{last:#}");
    }

    /// Sends one (unsigned) update check, so the server loads the catalog
    /// of the current `timestamp.json` and keeps it until that file changes.
    pub fn prime_server(&self, id: &str) {
        let answer = check_app(
            &self.base(),
            RequestApp::new(id.to_owned(), &Version::default()),
            None,
        );
        assert!(answer.is_ok(), "{answer:?}");
    }
}

/// Sends one unsigned 3.1 update check for `app` (in session `session`)
/// to the server at `base`: the answer's app, or the HTTP status.
pub fn check_app(base: &str, app: RequestApp, session: Option<&str>) -> Result<App, u16> {
    check_app_in(base, Protocol::Json31, app, session)
}

/// [`check_app`] in another JSON dialect.
pub fn check_app_in(
    base: &str,
    protocol: Protocol,
    app: RequestApp,
    session: Option<&str>,
) -> Result<App, u16> {
    let mut builder = RequestBuilder::new(protocol);
    if let Some(s) = session {
        builder = builder.sessionid(s);
    }
    let body = builder.app(app).build().unwrap().to_body();
    let resp = reqwest::blocking::Client::new()
        .post(format!("{base}/service/update2/json"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    if resp.status().as_u16() != 200 {
        return Err(resp.status().as_u16());
    }
    let mut parsed = parse_response(&resp.bytes().unwrap(), protocol).unwrap();
    assert_eq!(parsed.apps.len(), 1, "one app asked, one answered");
    Ok(parsed.apps.remove(0))
}

/// The run failed with exit status 1 and stderr says every phrase.
pub fn expect_failure(out: &Output, phrases: &[&str]) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    for p in phrases {
        assert!(stderr.contains(p), "expected {p:?} in stderr:\n{stderr}");
    }
    stderr
}

pub fn expect_success(out: &Output) -> String {
    assert!(
        out.status.success(),
        "update failed: {}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

//! `upkeep register` and `upkeep update` end to end: a threaded HTTP server on
//! 127.0.0.1 answers signed Omaha 3.1 update checks (CUP, with a key made
//! here), serves a TUF repository built in code (consistent snapshots) and
//! the release payloads, and misbehaves on demand. The real binary installs
//! with the real `install-archive` plugin. Every failure must leave
//! `prefs.json` and the install directories exactly as they were.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::Value;
use support::{upkeep, workspace_root};
use time::OffsetDateTime;
use upkeep_core::cup::{CupServer, RequestParams, sha256};
use upkeep_core::omaha::ErrorCategory;
use upkeep_core::omaha::codes::{check, download};
use upkeep_core::omaha::{
    App, AppId, AppStatus, Manifest, Package, Protocol, Response, UpdateCheck, UpdateCheckStatus,
    parse_request,
};
use upkeep_core::tuf::repository::Repository;
use upkeep_core::version::Version;

const KEY_ID: u32 = 7;
const APP_A: &str = "org.example.alpha";
const APP_B: &str = "{6F0E3E2C-52F4-4C59-9A8B-5D1E2A9C0B11}";

/// How the server misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    /// Serves other bytes (same length) for every payload.
    WrongHash,
    /// Serves each payload with extra bytes after it.
    Longer,
    /// Signs another body than the one it sends.
    BadProof,
    /// Sends (and signs) half of its JSON answer.
    TruncatedJson,
    /// Offers a package TUF never signed, with its true hash and size.
    UnsignedPackage,
    /// Breaks the first payload transfer after half its bytes.
    CutOnce,
    /// Sends payloads one byte every 50 ms.
    Trickle,
}

struct Release {
    version: Version,
    name: String,
    bytes: Vec<u8>,
}

struct State {
    repo: Repository,
    cup: CupServer,
    releases: BTreeMap<String, Release>,
    mode: Mode,
    /// Bodies of the Omaha requests received.
    posts: Vec<String>,
    /// Paths of the payload GETs received, with the range start asked for.
    downloads: Vec<String>,
    /// Range starts of the payload GETs, in order.
    ranges: Vec<Option<usize>>,
}

struct Server {
    addr: String,
    state: Arc<Mutex<State>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Server {
    fn start(releases: Vec<(&str, &str, &str, Vec<u8>)>, key: &SigningKey) -> Server {
        let expires = OffsetDateTime::now_utc() + time::Duration::days(30);
        let mut repo = Repository::new(expires, true).unwrap();
        let mut map = BTreeMap::new();
        for (id, version, name, bytes) in releases {
            let id = id.to_ascii_lowercase();
            repo.add_target("targets", &format!("apps/{id}/{version}/{name}"), &bytes)
                .unwrap();
            map.insert(
                id,
                Release {
                    version: version.parse().unwrap(),
                    name: name.to_owned(),
                    bytes,
                },
            );
        }
        repo.bump_targets("targets").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State {
            repo,
            cup: CupServer::new(KEY_ID, key.clone()),
            releases: map,
            mode: Mode::Normal,
            posts: Vec::new(),
            downloads: Vec::new(),
            ranges: Vec::new(),
        }));
        let (shared, base) = (state.clone(), format!("http://{addr}"));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s, b) = (shared.clone(), base.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, &s, &b);
                });
            }
        });
        Server { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Publishes `version` of `id` (signed in new TUF targets); the server
    /// offers it from now on.
    fn publish(&self, id: &str, version: &str, name: &str, bytes: Vec<u8>) {
        let mut st = self.state.lock().unwrap();
        let id = id.to_ascii_lowercase();
        st.repo
            .add_target("targets", &format!("apps/{id}/{version}/{name}"), &bytes)
            .unwrap();
        st.repo.bump_targets("targets").unwrap();
        st.releases.insert(
            id,
            Release {
                version: version.parse().unwrap(),
                name: name.to_owned(),
                bytes,
            },
        );
    }

    fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    fn posts(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .posts
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }

    fn downloads(&self) -> Vec<String> {
        self.state.lock().unwrap().downloads.clone()
    }

    fn initial_root(&self) -> Vec<u8> {
        self.state
            .lock()
            .unwrap()
            .repo
            .initial_root()
            .unwrap()
            .to_vec()
    }
}

fn respond(
    conn: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        404 => "Not Found",
        _ => "Bad Request",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    conn.write_all(head.as_bytes())?;
    conn.write_all(body)?;
    conn.flush()
}

fn handle(mut conn: TcpStream, state: &Mutex<State>, base: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    let mut range: Option<usize> = None;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            let v = v.trim();
            if n.eq_ignore_ascii_case("content-length") {
                length = v.parse().unwrap_or(0);
            } else if n.eq_ignore_ascii_case("range") {
                range = v
                    .strip_prefix("bytes=")
                    .and_then(|r| r.strip_suffix('-'))
                    .and_then(|r| r.parse().ok());
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let path = percent_decode(path);
    let path = path.as_str();
    let mut st = state.lock().unwrap();
    if method == "POST" && path == "/service/update2/json" {
        st.posts.push(String::from_utf8_lossy(&body).into_owned());
        let (status, headers, answer) = omaha(&st, base, query, &body);
        drop(st);
        return respond(&mut conn, status, &headers, &answer);
    }
    if let Some(file) = path.strip_prefix("/tuf/") {
        let found = st.repo.serve(&format!("metadata/{file}"));
        drop(st);
        return match found {
            Some(b) => respond(&mut conn, 200, &[], &b),
            None => respond(&mut conn, 404, &[], b""),
        };
    }
    if let Some(rest) = path.strip_prefix("/dl/") {
        st.downloads.push(rest.to_owned());
        st.ranges.push(range);
        let mode = st.mode;
        let first = st.ranges.len() == 1;
        let found = st
            .releases
            .iter()
            .find(|(id, r)| rest == format!("{id}/{}/{}", r.version, r.name))
            .map(|(_, r)| served_bytes(r, mode));
        drop(st);
        let Some(bytes) = found else {
            return respond(&mut conn, 404, &[], b"");
        };
        if (mode == Mode::CutOnce && first) || mode == Mode::Trickle {
            let head = format!(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                bytes.len()
            );
            conn.write_all(head.as_bytes())?;
            if mode == Mode::CutOnce {
                conn.write_all(&bytes[..bytes.len() / 2])?;
                conn.flush()?;
                return conn.shutdown(std::net::Shutdown::Both);
            }
            for b in &bytes {
                conn.write_all(&[*b])?;
                conn.flush()?;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            return Ok(());
        }
        return match range {
            Some(start) if start <= bytes.len() => {
                let cr = format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len());
                respond(
                    &mut conn,
                    206,
                    &[("Content-Range".into(), cr)],
                    &bytes[start..],
                )
            }
            _ => respond(&mut conn, 200, &[], &bytes),
        };
    }
    drop(st);
    respond(&mut conn, 404, &[], b"")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn evil(r: &Release) -> Vec<u8> {
    r.bytes.iter().map(|b| b ^ 0x55).collect()
}

fn served_bytes(r: &Release, mode: Mode) -> Vec<u8> {
    match mode {
        Mode::WrongHash | Mode::UnsignedPackage => evil(r),
        Mode::Longer => {
            let mut b = r.bytes.clone();
            b.extend(std::iter::repeat_n(b'!', 4096));
            b
        }
        _ => r.bytes.clone(),
    }
}

/// Answers an update check or an event ping, signed with CUP.
fn omaha(
    st: &State,
    base: &str,
    query: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let Ok(params) = RequestParams::from_query(query) else {
        return (400, vec![], b"no cup2key".to_vec());
    };
    let Ok(request) = parse_request(body, Some(Protocol::Json31)) else {
        return (400, vec![], b"bad request".to_vec());
    };
    let mut response = Response::new(Protocol::Json31);
    response.daystart.elapsed_days = Some(6900);
    for app in &request.apps {
        let id = app.appid.as_str().to_ascii_lowercase();
        if app.updatecheck.is_none() {
            // An app that only carries events: `noupdate`, as the
            // reference server answers.
            let mut out = App::new(app.appid.clone(), AppStatus::Ok);
            out.updatecheck = Some(UpdateCheck::with_status(UpdateCheckStatus::NoUpdate));
            response.apps.push(out);
            continue;
        }
        let Some(release) = st.releases.get(&id) else {
            response
                .apps
                .push(App::new(app.appid.clone(), AppStatus::UnknownApplication));
            continue;
        };
        let mut out = App::new(AppId::new(app.appid.as_str()), AppStatus::Ok);
        out.cohort.cohort = Some("1:a:".into());
        let installed = app.parsed_version().unwrap_or_default();
        if installed >= release.version {
            out.updatecheck = Some(UpdateCheck::with_status(UpdateCheckStatus::NoUpdate));
        } else {
            let offered = if st.mode == Mode::UnsignedPackage {
                evil(release)
            } else {
                release.bytes.clone()
            };
            let mut uc = UpdateCheck::with_status(UpdateCheckStatus::Ok);
            uc.next_version = Some(release.version.clone());
            uc.urls = vec![format!("{base}/dl/{id}/{}/", release.version)];
            uc.manifest = Some(Manifest {
                version: release.version.clone(),
                prodversionmin: None,
                run: None,
                arguments: None,
                packages: vec![Package {
                    name: release.name.clone(),
                    hash_sha256: Some(hex(&sha256(&offered))),
                    size: offered.len() as u64,
                    ..Package::default()
                }],
                actions: Vec::new(),
            });
            out.updatecheck = Some(uc);
        }
        response.apps.push(out);
    }
    // Every event is acknowledged, one status per event sent.
    for (out, asked) in response.apps.iter_mut().zip(&request.apps) {
        out.event_statuses = asked.events.iter().map(|_| "ok".to_owned()).collect();
    }
    let mut text = response.to_body(Protocol::Json31).into_bytes();
    if st.mode == Mode::TruncatedJson {
        text.truncate(text.len() / 2);
    }
    let signed_body = if st.mode == Mode::BadProof {
        let mut other = text.clone();
        other.extend_from_slice(b" ");
        other
    } else {
        text.clone()
    };
    let proof = st.cup.sign_response(&params, body, &signed_body).unwrap();
    let headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("X-Cup-Server-Proof".to_owned(), proof.clone()),
        ("ETag".to_owned(), format!("W/\"{proof}\"")),
    ];
    (200, headers, text)
}

/// A `.tar.gz` holding the given files.
fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, name, text.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

fn plugin(name: &str) -> PathBuf {
    let path = workspace_root().join(format!("target/plugins/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-plugins.sh first",
        path.display()
    );
    path
}

/// A client state directory with its configuration, pinned root and key.
struct Client {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    installs: PathBuf,
}

impl Client {
    fn new(server_url: &str, root_json: &[u8], key: &SigningKey, telemetry: bool) -> Client {
        Self::with_config(server_url, root_json, key, telemetry, "")
    }

    fn with_config(
        server_url: &str,
        root_json: &[u8],
        key: &SigningKey,
        telemetry: bool,
        extra: &str,
    ) -> Client {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        let etc = tmp.path().join("etc");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("root.json"), root_json).unwrap();
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        std::fs::write(etc.join("cup.pub.pem"), pem).unwrap();
        let sinks = if telemetry {
            format!("[{:?}]", plugin("telemetry-jsonl").display().to_string())
        } else {
            "[]".to_owned()
        };
        let config = format!(
            "server = {server_url:?}\nprotocol = \"3.1\"\ntuf_root = \"root.json\"\n\
             cup_key_id = {KEY_ID}\ncup_public_key = \"cup.pub.pem\"\ntelemetry = {sinks}\n{extra}"
        );
        // The configuration lives outside the state dir: relative paths
        // resolve against its own folder.
        std::fs::write(etc.join("config.toml"), config).unwrap();
        std::fs::write(
            root.join("config.toml"),
            format!("# see {}\n", etc.display()),
        )
        .unwrap();
        let installs = tmp.path().join("installs");
        Client {
            root,
            installs,
            _tmp: tmp,
        }
    }

    fn config(&self) -> PathBuf {
        self.root.parent().unwrap().join("etc/config.toml")
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = upkeep();
        cmd.args(args)
            .arg("--root")
            .arg(&self.root)
            .arg("--config")
            .arg(self.config());
        cmd.output().unwrap()
    }

    fn register(&self, id: &str, version: &str) {
        self.register_with(id, version, &[]);
    }

    fn register_with(&self, id: &str, version: &str, extra: &[&str]) {
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
        ];
        let installer = plugin("install-archive");
        args.push(installer.to_str().unwrap());
        args.extend_from_slice(extra);
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "register failed: {}",
            text(&out.stderr)
        );
    }

    fn install_dir(&self, id: &str) -> PathBuf {
        self.installs.join(id.to_ascii_lowercase())
    }

    fn prefs(&self) -> Vec<u8> {
        std::fs::read(self.root.join("prefs.json")).unwrap()
    }

    fn prefs_json(&self) -> Value {
        serde_json::from_slice(&self.prefs()).unwrap()
    }

    fn version(&self, id: &str) -> String {
        self.prefs_json()["apps"][id.to_ascii_lowercase()]["version"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file under `dir` with its content.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn test_key() -> SigningKey {
    // A fixed scalar keeps failures reproducible.
    SigningKey::from_slice(&sha256(b"upkeep update_client test key")).unwrap()
}

fn payload_a() -> Vec<u8> {
    tar_gz(&[
        ("bin/alpha", "alpha 2.0\n"),
        ("share/alpha/README", "the alpha app\n"),
    ])
}

fn payload_b() -> Vec<u8> {
    tar_gz(&[("bravo.txt", "bravo 1.5\n")])
}

/// A server with alpha 2.0 and bravo 1.5, and a client with alpha 1.0
/// installed (one file in its install dir) and bravo registered at 0.
fn setup(telemetry: bool) -> (Server, Client) {
    let key = test_key();
    let server = Server::start(
        vec![
            (APP_A, "2.0", "alpha-2.0.tar.gz", payload_a()),
            (APP_B, "1.5", "bravo.tar.gz", payload_b()),
        ],
        &key,
    );
    let client = Client::new(&server.url(), &server.initial_root(), &key, telemetry);
    client.register(APP_A, "1.0");
    client.register(APP_B, "0");
    let a = client.install_dir(APP_A);
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(a.join("keep.txt"), "alpha 1.0 data\n").unwrap();
    (server, client)
}

/// The events of the last request that carried any.
fn ping_events(server: &Server) -> Vec<(String, Value)> {
    let posts = server.posts();
    let ping = posts
        .iter()
        .rev()
        .find(|p| {
            p["request"]["app"]
                .as_array()
                .is_some_and(|apps| apps.iter().any(|a| a.get("event").is_some()))
        })
        .expect("an event ping");
    let mut out = Vec::new();
    for app in ping["request"]["app"].as_array().unwrap() {
        for e in app["event"].as_array().into_iter().flatten() {
            out.push((app["appid"].as_str().unwrap().to_owned(), e.clone()));
        }
    }
    out
}

/// Runs `update` against a misbehaving server and checks nothing changed
/// but the event outbox: the failure waits there when the server's answer
/// to the event ping is as broken as its update answer.
fn failing_update(mode: Mode, expect: &str) -> (Server, Client, String) {
    let (server, client) = setup(false);
    server.set_mode(mode);
    let prefs = client.prefs();
    let installed = tree(&client.installs);
    let out = client.run(&["update", "--app", APP_A]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains(expect), "expected {expect:?} in: {stderr}");
    assert!(
        stderr.contains(&format!("error: {APP_A}:")),
        "the error names the app: {stderr}"
    );
    let mut after = client.prefs_json();
    let outbox = after
        .as_object_mut()
        .and_then(|o| o.remove("outbox"))
        .unwrap_or(Value::Null);
    let before: Value = serde_json::from_slice(&prefs).unwrap();
    assert_eq!(after, before, "prefs.json changed");
    for entry in outbox["entries"].as_array().into_iter().flatten() {
        assert_eq!(entry["app"], APP_A, "{outbox:#}");
        assert_eq!(entry["event"]["eventresult"], 0, "only the failure waits");
    }
    assert_eq!(tree(&client.installs), installed, "an install dir changed");
    let payload = client
        .root
        .join(format!("downloads/{APP_A}/2.0/alpha-2.0.tar.gz"));
    assert!(!payload.exists(), "an unverified payload was kept");
    (server, client, stderr)
}

fn assert_error_event(server: &Server, errorcat: ErrorCategory, errorcode: i64) {
    let events = ping_events(server);
    let update = events
        .iter()
        .find(|(id, e)| id == APP_A && e["eventtype"] == 3)
        .unwrap_or_else(|| panic!("no update event for {APP_A} in {events:?}"));
    assert_eq!(update.1["eventresult"], 0, "{events:?}");
    assert_eq!(update.1["errorcat"], errorcat.code(), "{events:?}");
    assert_eq!(update.1["errorcode"], errorcode, "{events:?}");
    assert_eq!(update.1["previousversion"], "1.0");
}

#[test]
fn two_apps_update_in_one_request_and_report() {
    let (server, client) = setup(true);
    let out = client.run(&["update", "--json"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let apps = summary["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2, "{summary}");
    for app in apps {
        assert_eq!(app["result"], "updated", "{summary}");
        assert!(app["install_time_ms"].is_u64(), "{summary}");
        assert!(
            app["downloads"][0]["download_time_ms"].is_u64(),
            "{summary}"
        );
    }

    // One update check for both apps, then one event ping.
    let posts = server.posts();
    assert_eq!(posts.len(), 2, "{posts:?}");
    let check_apps = posts[0]["request"]["app"].as_array().unwrap();
    assert_eq!(check_apps.len(), 2);
    assert!(check_apps.iter().all(|a| a.get("updatecheck").is_some()));
    let events = ping_events(&server);
    let kind = |id: &str, t: i64| {
        events
            .iter()
            .find(|(a, e)| a.eq_ignore_ascii_case(id) && e["eventtype"] == t)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("no event {t} for {id}: {events:?}"))
    };
    let a = kind(APP_A, 3);
    assert_eq!(
        (
            a["eventresult"].clone(),
            a["previousversion"].clone(),
            a["nextversion"].clone()
        ),
        (1.into(), "1.0".into(), "2.0".into())
    );
    let b = kind(APP_B, 2);
    assert_eq!(
        (b["eventresult"].clone(), b["nextversion"].clone()),
        (1.into(), "1.5".into())
    );
    let dl = kind(APP_A, 14);
    assert_eq!(dl["downloaded"], payload_a().len().to_string());

    // Installed by the real plugin into versions/<v>/, launched through
    // current, recorded in prefs.
    let a_dir = client.install_dir(APP_A);
    assert_eq!(
        std::fs::read_to_string(a_dir.join("current/bin/alpha")).unwrap(),
        "alpha 2.0\n"
    );
    assert_eq!(
        std::fs::read_link(a_dir.join("current")).unwrap(),
        Path::new("versions/2.0")
    );
    assert_eq!(
        std::fs::read_to_string(client.install_dir(APP_B).join("current/bravo.txt")).unwrap(),
        "bravo 1.5\n"
    );
    assert_eq!(
        std::fs::read_link(client.install_dir(APP_B).join("current")).unwrap(),
        Path::new("versions/1.5")
    );
    // Alpha 1.0 was installed before the engine managed its versions: its
    // files are left alone, and there is no previous version to go back to.
    assert_eq!(
        std::fs::read_to_string(a_dir.join("keep.txt")).unwrap(),
        "alpha 1.0 data\n"
    );
    assert!(
        client.prefs_json()["apps"][APP_A]
            .get("previous_version")
            .is_none()
    );
    assert_eq!(client.version(APP_A), "2.0");
    assert_eq!(client.version(APP_B), "1.5");
    let prefs = client.prefs_json();
    assert_eq!(prefs["apps"][APP_A]["cohort"]["cohort"], "1:a:");
    assert!(prefs["last_check"].is_i64());
    assert!(client.root.join("tuf/root.json").exists());
    assert!(client.root.join("tuf/targets.json").exists());
    assert!(
        client
            .root
            .join(format!("downloads/{APP_A}/2.0/alpha-2.0.tar.gz"))
            .exists()
    );

    // The telemetry sink got the same events.
    let lines = std::fs::read_to_string(client.root.join("telemetry/telemetry-jsonl/events.jsonl"))
        .unwrap();
    assert_eq!(lines.lines().count(), events.len(), "{lines}");

    // A second run finds both up to date and downloads nothing more.
    let before = server.downloads().len();
    let out = client.run(&["update"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("{APP_A}: up to date at 2.0")),
        "{stdout}"
    );
    assert_eq!(server.downloads().len(), before);
}

#[test]
fn a_wrong_hash_is_refused() {
    let (server, _client, _) = failing_update(Mode::WrongHash, "SHA-256 mismatch");
    assert_error_event(&server, ErrorCategory::Download, download::HASH);
}

#[test]
fn endless_data_is_refused() {
    let (server, _client, _) = failing_update(Mode::Longer, "endless data");
    assert_error_event(&server, ErrorCategory::Download, download::ENDLESS_DATA);
}

#[test]
fn a_package_tuf_never_signed_is_refused() {
    let (server, _client, stderr) = failing_update(
        Mode::UnsignedPackage,
        "differs from the TUF targets metadata",
    );
    assert_error_event(&server, ErrorCategory::Download, download::DISAGREEMENT);
    assert!(
        server.downloads().is_empty(),
        "downloaded before checking TUF: {stderr}"
    );
}

#[test]
fn a_bad_cup_signature_is_refused() {
    let (server, client, stderr) = failing_update(Mode::BadProof, "CUP");
    assert_error_event(&server, ErrorCategory::UpdateCheck, check::CUP);
    assert!(server.downloads().is_empty());
    // The ping's answer failed CUP verification too: it acknowledges
    // nothing, and the failure waits for the next request.
    assert!(stderr.contains("event ping failed"), "{stderr}");
    let outbox = &client.prefs_json()["outbox"]["entries"];
    assert_eq!(outbox.as_array().map(Vec::len), Some(1), "{outbox:#}");
    assert_eq!(outbox[0]["event"]["errorcode"], check::CUP);
    server.set_mode(Mode::Normal);
    let out = client.run(&["update", "--app", APP_A]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(client.prefs_json().get("outbox").is_none());
}

#[test]
fn malformed_json_is_refused() {
    let (server, _client, _) = failing_update(Mode::TruncatedJson, "malformed");
    assert_error_event(&server, ErrorCategory::UpdateCheck, check::MALFORMED);
}

#[test]
fn an_installer_failure_changes_nothing() {
    let key = test_key();
    let server = Server::start(
        vec![(
            APP_A,
            "2.0",
            "alpha-2.0.tar.gz",
            b"not a gzip stream at all".to_vec(),
        )],
        &key,
    );
    let client = Client::new(&server.url(), &server.initial_root(), &key, false);
    client.register(APP_A, "1.0");
    let a = client.install_dir(APP_A);
    std::fs::create_dir_all(&a).unwrap();
    std::fs::write(a.join("keep.txt"), "alpha 1.0 data\n").unwrap();
    let prefs = client.prefs();
    let installed = tree(&client.installs);
    let out = client.run(&["update", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("installer install-archive failed with code 21"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["apps"][0]["result"], "error");
    assert_eq!(summary["apps"][0]["error"]["category"], 3);
    assert_eq!(summary["apps"][0]["version"], "1.0");
    assert_eq!(client.prefs(), prefs);
    assert_eq!(tree(&client.installs), installed);
    assert_error_event(&server, ErrorCategory::Install, 21);
}

#[test]
fn a_server_that_is_down_changes_nothing() {
    let key = test_key();
    // Bind a port, then free it: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::start(vec![], &key);
    let client = Client::new(
        &format!("http://127.0.0.1:{port}"),
        &server.initial_root(),
        &key,
        false,
    );
    client.register(APP_A, "1.0");
    let prefs = client.prefs();
    let out = client.run(&["update"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.contains("error:")).count(),
        1,
        "{stderr}"
    );
    assert_eq!(client.prefs(), prefs);
}

#[test]
fn unknown_apps_and_corrupt_prefs_are_clear_errors() {
    let (_server, client) = setup(false);
    let out = client.run(&["update", "--app", "org.example.nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("app org.example.nobody is not registered"),
        "{}",
        text(&out.stderr)
    );

    // A plugin of another world is refused at registration.
    let out = client.run(&[
        "register",
        "--app",
        "org.example.other",
        "--version",
        "1.0",
        "--install-dir",
        client.installs.join("other").to_str().unwrap(),
        "--installer",
        plugin("telemetry-jsonl").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("implements the telemetry-sink world"),
        "{stderr}"
    );
    assert!(
        client.prefs_json()["apps"]
            .get("org.example.other")
            .is_none()
    );

    std::fs::write(
        client.root.join("prefs.json"),
        b"{\"format\": 1, \"apps\": [",
    )
    .unwrap();
    let out = client.run(&["update"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("prefs.json is corrupt"), "{stderr}");
    assert_eq!(client.prefs(), b"{\"format\": 1, \"apps\": [");
}

#[test]
fn an_app_its_existence_checker_finds_gone_is_forgotten() {
    let key = test_key();
    let server = Server::start(vec![(APP_A, "2.0", "alpha-2.0.tar.gz", payload_a())], &key);
    let client = Client::new(&server.url(), &server.initial_root(), &key, false);
    let checker = plugin("exists-path");
    client.register_with(
        APP_A,
        "1.0",
        &[
            "--existence",
            checker.to_str().unwrap(),
            "--marker",
            "bin/alpha",
        ],
    );
    // The install dir exists, but the marker does not: the app is gone.
    std::fs::create_dir_all(client.install_dir(APP_A)).unwrap();
    let out = client.run(&["update", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["apps"][0]["result"], "removed", "{summary}");
    assert!(client.prefs_json()["apps"].get(APP_A).is_none());
    // No update check for a forgotten app; the ping reports the uninstall.
    let posts = server.posts();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let events = ping_events(&server);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["eventtype"], 4);
    assert_eq!(events[0].1["previousversion"], "1.0");
    assert!(server.downloads().is_empty());
}

#[test]
fn a_cut_transfer_resumes_with_a_range_request() {
    let (server, client) = setup(false);
    server.set_mode(Mode::CutOnce);
    let out = client.run(&["update", "--app", APP_A, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["apps"][0]["result"], "updated", "{summary}");
    let half = payload_a().len() / 2;
    assert_eq!(server.state.lock().unwrap().ranges, vec![None, Some(half)]);
    assert_eq!(client.version(APP_A), "2.0");
}

#[test]
fn a_slow_server_is_abandoned() {
    let key = test_key();
    let server = Server::start(vec![(APP_A, "2.0", "alpha-2.0.tar.gz", payload_a())], &key);
    let client = Client::with_config(
        &server.url(),
        &server.initial_root(),
        &key,
        false,
        "[download]\nmin_bytes_per_second = 1000\nslow_window_seconds = 1\n",
    );
    client.register(APP_A, "1.0");
    server.set_mode(Mode::Trickle);
    let prefs = client.prefs();
    let started = std::time::Instant::now();
    let out = client.run(&["update"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("slow retrieval"), "{stderr}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(client.prefs(), prefs);
    assert_error_event(&server, ErrorCategory::Download, download::SLOW);
}

fn payload_alpha(version: &str) -> Vec<u8> {
    tar_gz(&[
        ("bin/alpha", &format!("alpha {version}\n")),
        (&format!("NOTES-{version}.txt"), "notes\n"),
    ])
}

#[test]
fn versions_switch_atomically_keep_the_previous_one_and_roll_back() {
    let key = test_key();
    let server = Server::start(
        vec![(APP_A, "1.0", "alpha-1.0.tar.gz", payload_alpha("1.0"))],
        &key,
    );
    let client = Client::new(&server.url(), &server.initial_root(), &key, false);
    client.register(APP_A, "0");
    let dir = client.install_dir(APP_A);
    let current = || {
        std::fs::read_link(dir.join("current"))
            .unwrap()
            .display()
            .to_string()
    };
    let running = || std::fs::read_to_string(dir.join("current/bin/alpha")).unwrap();
    let versions = || {
        let mut v: Vec<String> = std::fs::read_dir(dir.join("versions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let previous = || client.prefs_json()["apps"][APP_A]["previous_version"].clone();

    // First install: versions/1.0, current points at it, nothing to go back to.
    let out = client.run(&["update"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(current(), "versions/1.0");
    assert_eq!(running(), "alpha 1.0\n");
    assert_eq!(versions(), ["1.0"]);
    assert_eq!(previous(), Value::Null);

    // A 2.0 the installer cannot unpack: current and 1.0 stay, no versions/2.0.
    server.publish(
        APP_A,
        "2.0",
        "alpha-2.0.tar.gz",
        b"not a gzip stream".to_vec(),
    );
    let prefs = client.prefs();
    let installed = tree(&dir);
    let out = client.run(&["update"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("installer install-archive failed with code 21"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(current(), "versions/1.0");
    assert_eq!(running(), "alpha 1.0\n");
    assert_eq!(versions(), ["1.0"]);
    assert!(!dir.join("versions/2.0").exists());
    assert_eq!(tree(&dir), installed);
    assert_eq!(client.prefs(), prefs);

    // 3.0 works: current switches, 1.0 is kept as the previous version.
    server.publish(APP_A, "3.0", "alpha-3.0.tar.gz", payload_alpha("3.0"));
    let out = client.run(&["update"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(current(), "versions/3.0");
    assert_eq!(running(), "alpha 3.0\n");
    assert!(!dir.join("current/NOTES-1.0.txt").exists());
    assert_eq!(versions(), ["1.0", "3.0"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("versions/1.0/bin/alpha")).unwrap(),
        "alpha 1.0\n"
    );
    assert_eq!(previous(), "1.0");

    // 4.0: 3.0 becomes the previous version, 1.0 is removed.
    server.publish(APP_A, "4.0", "alpha-4.0.tar.gz", payload_alpha("4.0"));
    let out = client.run(&["update"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(current(), "versions/4.0");
    assert_eq!(versions(), ["3.0", "4.0"]);
    assert_eq!(previous(), "3.0");
    assert!(
        std::fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp-")),
        "a temporary link was left"
    );

    // Rollback: current goes back to 3.0, recorded and reported.
    let posts_before = server.posts().len();
    let out = client.run(&["rollback", "--app", APP_A]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("{APP_A}: rolled back 4.0 -> 3.0")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(current(), "versions/3.0");
    assert_eq!(running(), "alpha 3.0\n");
    assert_eq!(versions(), ["3.0"]);
    assert_eq!(client.version(APP_A), "3.0");
    assert_eq!(previous(), Value::Null);
    assert_eq!(server.posts().len(), posts_before + 1, "one event ping");
    let events = ping_events(&server);
    assert_eq!(events.len(), 1, "{events:?}");
    let (app, e) = &events[0];
    assert!(app.eq_ignore_ascii_case(APP_A));
    assert_eq!(
        (
            e["eventtype"].clone(),
            e["eventresult"].clone(),
            e["previousversion"].clone(),
            e["nextversion"].clone()
        ),
        (3.into(), 1.into(), "4.0".into(), "3.0".into())
    );

    // A second rollback has nothing to go back to and changes nothing.
    let prefs = client.prefs();
    let installed = tree(&dir);
    let out = client.run(&["rollback", "--app", APP_A]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no previous version to roll back to"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(client.prefs(), prefs);
    assert_eq!(tree(&dir), installed);
    assert_eq!(current(), "versions/3.0");
    assert_eq!(
        server.posts().len(),
        posts_before + 1,
        "no ping for a refused rollback"
    );

    // An unregistered app is a clear error too.
    let out = client.run(&["rollback", "--app", "org.example.nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not registered"),
        "{}",
        text(&out.stderr)
    );
}

//! End to end: `upkeep repo init / add / list / serve / events` with the real
//! binary, talked to over HTTP on 127.0.0.1 the way a client does: CUP-signed
//! Omaha 3.1 and 4.0 update checks, TUF metadata and targets with upkeep's own
//! TUF client, Range requests, event pings, and refused path escapes.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::upkeep;
use upkeep_core::cup::CupClient;
use upkeep_core::omaha::{
    Event, EventResult, EventType, OperationType, Protocol, RequestApp, RequestBuilder,
    parse_response,
};
use upkeep_core::tuf::{
    FetchError, SystemClock, Transport, Updater, UpdaterConfig, init_trusted_root,
};
use upkeep_core::version::Version;

const APP: &str = "{8A69D345-D564-463C-AFF1-A69D9E530F96}";
const CUP_KEY_ID: u32 = 5;

/// Kills the server when the test ends, also on panic.
struct ServerGuard {
    child: Child,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run upkeep");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn start_server(dir: &Path) -> (ServerGuard, String) {
    let child = upkeep()
        .args(["repo", "serve"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server");
    let mut guard = ServerGuard { child };
    let stdout = guard.child.stdout.take().expect("server stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the address");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    (guard, base)
}

/// The TUF client's transport over HTTP.
struct HttpTransport(reqwest::blocking::Client);

impl Transport for HttpTransport {
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let resp = self
            .0
            .get(url)
            .send()
            .map_err(|e| FetchError::Other(e.to_string()))?;
        match resp.status().as_u16() {
            200 => {}
            403 | 404 => return Err(FetchError::NotFound),
            s => return Err(FetchError::Status(s)),
        }
        let mut bytes = Vec::new();
        resp.take(max_len + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| FetchError::Other(e.to_string()))?;
        if bytes.len() as u64 > max_len {
            return Err(FetchError::TooLong { max_len });
        }
        Ok(bytes)
    }
}

/// Sends a raw request line (no client-side URL normalisation) and returns
/// the status code.
fn raw_get_status(base: &str, target: &str) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read response");
    assert!(!text.contains("cup_key_id"), "leaked repo.toml: {text}");
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

struct Exchange {
    status: u16,
    body: Vec<u8>,
}

/// POSTs a CUP-signed update check and verifies the proof.
fn signed_check(
    http: &reqwest::blocking::Client,
    cup: &CupClient,
    url: &str,
    body: &str,
) -> Exchange {
    let signed = cup.sign_request(body.as_bytes()).unwrap();
    let resp = http
        .post(format!("{url}?{}", signed.query()))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .expect("POST update check");
    let status = resp.status().as_u16();
    let proof = resp
        .headers()
        .get("x-cup-server-proof")
        .map(|v| v.to_str().unwrap().to_owned());
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.bytes().unwrap().to_vec();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert!(proof.is_some() && etag.is_some(), "CUP headers missing");
    cup.verify_response(&signed, &bytes, proof.as_deref(), None)
        .expect("X-Cup-Server-Proof verifies");
    cup.verify_response(&signed, &bytes, None, etag.as_deref())
        .expect("ETag verifies");
    // A tampered body fails.
    let mut tampered = bytes.clone();
    tampered.push(b' ');
    assert!(
        cup.verify_response(&signed, &tampered, proof.as_deref(), None)
            .is_err()
    );
    Exchange {
        status,
        body: bytes,
    }
}

fn request_body(protocol: Protocol, version: &str, with_event: bool) -> String {
    let mut app = RequestApp::new(
        APP.to_ascii_lowercase(),
        &version.parse::<Version>().unwrap(),
    );
    if with_event {
        let mut e = Event::new(EventType::Update, EventResult::Error);
        e.errorcat = Some(upkeep_core::omaha::ErrorCategory::from_code(1));
        e.errorcode = Some(-7);
        e.extracode1 = Some(42);
        e.previousversion = Some("1.0".into());
        e.nextversion = Some("2.0".into());
        app.events.push(e);
    }
    let other = RequestApp::new("unknown-app", &"1".parse::<Version>().unwrap());
    RequestBuilder::new(protocol)
        .app(app)
        .app(other)
        .build()
        .unwrap()
        .to_body()
}

#[test]
fn repository_and_reference_server_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    run_ok(
        upkeep()
            .args(["repo", "init"])
            .arg(&dir)
            .args(["--root-keys", "2", "--root-threshold", "2"])
            .args(["--cup-key-id", &CUP_KEY_ID.to_string()]),
    );
    let config = std::fs::read_to_string(dir.join("client/config.toml")).unwrap();
    assert!(config.contains("cup_key_id = 5"), "{config}");
    assert!(
        config.contains("server = \"http://127.0.0.1:8080\""),
        "{config}"
    );

    let v1 = b"payload one".to_vec();
    let v2: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let p1 = tmp.path().join("v1");
    let p2 = tmp.path().join("v2");
    std::fs::create_dir_all(&p1).unwrap();
    std::fs::create_dir_all(&p2).unwrap();
    std::fs::write(p1.join("setup.bin"), &v1).unwrap();
    std::fs::write(p2.join("setup.bin"), &v2).unwrap();
    for (version, payload) in [("1.0", &p1), ("2.0", &p2)] {
        run_ok(
            upkeep()
                .args(["repo", "add"])
                .arg(&dir)
                .args(["--app", APP, "--version", version])
                .args([
                    "--installer-arg",
                    "--quiet",
                    "--installer-arg",
                    "--mode=full",
                ])
                .arg(payload.join("setup.bin")),
        );
    }
    let listed: serde_json::Value = serde_json::from_str(&run_ok(
        upkeep().args(["repo", "list"]).arg(&dir).arg("--json"),
    ))
    .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1]["version"], "2.0");
    assert_eq!(listed[1]["files"][0]["length"], 5000);

    let (server, base) = start_server(&dir);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let pem = std::fs::read_to_string(dir.join("client/cup.pub.pem")).unwrap();
    let cup = CupClient::from_public_key_pem(CUP_KEY_ID, &pem).unwrap();
    let json_url = format!("{base}/service/update2/json");

    // 3.1, with an event: an update to 2.0.
    let x = signed_check(
        &http,
        &cup,
        &json_url,
        &request_body(Protocol::Json31, "1.0", true),
    );
    assert_eq!(x.status, 200);
    assert!(x.body.starts_with(b")]}'\n"));
    let r31 = parse_response(&x.body, Protocol::Json31).unwrap();
    assert!(r31.app_errors.is_empty(), "{:?}", r31.app_errors);
    let app = r31.app(APP).unwrap();
    assert_eq!(app.result_status(), "ok");
    let uc = app.updatecheck.as_ref().unwrap();
    let codebase = uc.urls[0].clone();
    assert_eq!(
        codebase,
        format!("{base}/targets/apps/%7B8a69d345-d564-463c-aff1-a69d9e530f96%7D/2.0/")
    );
    let manifest = uc.manifest.as_ref().unwrap();
    assert_eq!(manifest.version.to_string(), "2.0");
    assert_eq!(manifest.arguments.as_deref(), Some("--quiet --mode=full"));
    let package = manifest.packages[0].clone();
    assert_eq!(package.name, "setup.bin");
    assert_eq!(package.size, 5000);
    assert_eq!(
        r31.app("unknown-app").unwrap().result_status(),
        "error-unknownApplication"
    );

    // 4.0: the same decision as a download + run pipeline.
    let x = signed_check(
        &http,
        &cup,
        &json_url,
        &request_body(Protocol::Json40, "1.0", false),
    );
    let r40 = parse_response(&x.body, Protocol::Json40).unwrap();
    let uc40 = r40.app(APP).unwrap().updatecheck.as_ref().unwrap();
    assert_eq!(uc40.next_version.as_ref().unwrap().to_string(), "2.0");
    let ops = &uc40.pipelines[0].operations;
    assert_eq!(ops[0].kind, OperationType::Download);
    assert_eq!(ops[0].sha256_out, package.hash_sha256);
    assert_eq!(ops[0].urls, [format!("{codebase}setup.bin")]);
    assert_eq!(ops[1].kind, OperationType::Run);
    assert_eq!(ops[1].arguments.as_deref(), Some("--quiet --mode=full"));
    // Up to date: noupdate.
    let x = signed_check(
        &http,
        &cup,
        &json_url,
        &request_body(Protocol::Json40, "2.0", false),
    );
    let r = parse_response(&x.body, Protocol::Json40).unwrap();
    assert_eq!(r.app(APP).unwrap().result_status(), "noupdate");

    // TUF: upkeep's client pinned to client/root.json agrees with Omaha.
    let md = tmp.path().join("client-metadata");
    init_trusted_root(&md, &std::fs::read(dir.join("client/root.json")).unwrap()).unwrap();
    let mut updater = Updater::new(
        &md,
        &format!("{base}/tuf/"),
        HttpTransport(http.clone()),
        SystemClock,
        UpdaterConfig::default(),
    )
    .unwrap();
    updater.refresh().unwrap();
    let target = format!("apps/{}/2.0/setup.bin", APP.to_ascii_lowercase());
    let info = updater.get_target_info(&target).unwrap();
    assert_eq!(info.file.length, package.size);
    assert_eq!(info.file.hashes.get("sha256"), package.hash_sha256.as_ref());
    assert_eq!(info.file.custom.as_ref().unwrap()["upkeep"]["app"], APP);
    let out = tmp.path().join("download.bin");
    let bytes = updater
        .download_target(&info, &format!("{base}/targets/"), &out)
        .unwrap();
    assert_eq!(bytes, v2);

    // The plain codebase URL, whole and in ranges.
    let url = format!("{codebase}setup.bin");
    let full = http.get(&url).send().unwrap();
    assert_eq!(full.status().as_u16(), 200);
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert_eq!(full.headers()["content-length"], "5000");
    assert_eq!(full.bytes().unwrap().to_vec(), v2);
    let part = http
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/5000");
    assert_eq!(part.bytes().unwrap().to_vec(), v2[100..200].to_vec());
    let tail = http
        .get(&url)
        .header("range", "bytes=4990-")
        .send()
        .unwrap();
    assert_eq!(tail.status().as_u16(), 206);
    assert_eq!(tail.bytes().unwrap().to_vec(), v2[4990..].to_vec());
    let none = http
        .get(&url)
        .header("range", "bytes=5000-")
        .send()
        .unwrap();
    assert_eq!(none.status().as_u16(), 416);
    assert_eq!(none.headers()["content-range"], "bytes */5000");

    // Refusals: oversized and malformed bodies, bad CUP parameters.
    let big = vec![b' '; 1024 * 1024 + 1];
    let resp = http.post(&json_url).body(big).send().unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let resp = http.post(&json_url).body("not json").send().unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().unwrap().contains("malformed Omaha request"));
    let body = request_body(Protocol::Json31, "1.0", false);
    let resp = http
        .post(format!("{json_url}?cup2key=99:abc"))
        .body(body.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp = http
        .post(format!(
            "{json_url}?cup2key=5:abc&cup2hreq={}",
            "0".repeat(64)
        ))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);

    // 3.0 XML on its endpoint.
    let xml = request_body(Protocol::Xml30, "1.0", false);
    let resp = http
        .post(format!("{base}/service/update2"))
        .body(xml)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let rx = parse_response(&resp.bytes().unwrap(), Protocol::Xml30).unwrap();
    assert_eq!(
        rx.app(APP).unwrap().next_version().unwrap().to_string(),
        "2.0"
    );

    // Path escapes are refused, whatever the spelling.
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.join("repo.toml"), dir.join("targets/leak")).unwrap();
    for (target, expected) in [
        ("/tuf/../repo.toml", 400),
        ("/tuf/%2e%2e/repo.toml", 400),
        ("/targets/..%2Frepo.toml", 400),
        ("/targets/apps/..%2F..%2Frepo.toml", 400),
        ("/tuf/%2Fetc%2Fpasswd", 400),
        ("/tuf/nothing.json", 404),
        ("/tuf/1.root.json", 200),
    ] {
        assert_eq!(raw_get_status(&base, target), expected, "{target}");
    }
    #[cfg(unix)]
    assert_eq!(raw_get_status(&base, "/targets/leak"), 403);

    // The event of the first request arrived.
    let events: serde_json::Value = serde_json::from_str(&run_ok(
        upkeep()
            .args(["repo", "events"])
            .arg(&dir)
            .args(["--json", "--app", APP]),
    ))
    .unwrap();
    let events = events.as_array().unwrap();
    let event = events
        .iter()
        .find(|e| e["kind"] == "event")
        .expect("an event was stored");
    assert_eq!(event["event_type"], 3);
    assert_eq!(event["event_result"], 0);
    assert_eq!(event["error_category"], 1);
    assert_eq!(event["error_code"], -7);
    assert_eq!(event["extra_code1"], 42);
    assert_eq!(event["next_version"], "2.0");
    assert_eq!(event["protocol"], "3.1");

    // SIGTERM: the server exits 0.
    #[cfg(unix)]
    {
        let mut server = server;
        let pid = server.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        let exit = server.child.wait().unwrap();
        assert!(exit.success(), "server exit: {exit:?}");
    }
    #[cfg(not(unix))]
    drop(server);
}

#[test]
fn a_new_release_is_served_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    run_ok(upkeep().args(["repo", "init"]).arg(&dir));
    let payload = tmp.path().join("app.bin");
    std::fs::write(&payload, b"one").unwrap();
    let add = |version: &str, channel: &str| {
        run_ok(
            upkeep()
                .args(["repo", "add"])
                .arg(&dir)
                .args(["--app", "Demo", "--version", version, "--channel", channel])
                .arg(&payload),
        )
    };
    add("1.0", "");
    let (_server, base) = start_server(&dir);
    let http = reqwest::blocking::Client::new();
    let ask = |ap: Option<&str>| -> String {
        let mut app = RequestApp::new("demo", &"0.9".parse::<Version>().unwrap());
        app.ap = ap.map(str::to_owned);
        let body = RequestBuilder::new(Protocol::Json31)
            .app(app)
            .build()
            .unwrap()
            .to_body();
        let resp = http
            .post(format!("{base}/service/update2/json"))
            .body(body)
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let r = parse_response(&resp.bytes().unwrap(), Protocol::Json31).unwrap();
        let app = r.app("demo").unwrap();
        app.next_version()
            .map_or_else(|| app.result_status().to_owned(), |v| v.to_string())
    };
    assert_eq!(ask(None), "1.0");
    assert_eq!(ask(Some("beta")), "noupdate");
    add("1.1", "beta");
    assert_eq!(ask(Some("beta")), "1.1");
    assert_eq!(ask(None), "1.0");
    let text = run_ok(upkeep().args(["repo", "list"]).arg(&dir));
    assert!(text.contains("Demo 1.1  channel beta"), "{text}");
}

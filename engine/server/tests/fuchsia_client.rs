//! An independent Omaha client against the reference server: Fuchsia's
//! `omaha_client` crate builds and CUP-signs its request with its own
//! builder, the server answers over HTTP on 127.0.0.1, and the crate's own
//! verifier and parser check the answer. Its channel travels as the cohort
//! hint. What is still malformed is refused with 400.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use omaha_client::common::App;
use omaha_client::configuration::{Config, Updater};
use omaha_client::cup_ecdsa::{Cupv2RequestHandler, PublicKeys, StandardCupv2Handler};
use omaha_client::protocol::Cohort;
use omaha_client::protocol::request::{Event, EventType, OS};
use omaha_client::protocol::response::{OmahaStatus, parse_json_response};
use omaha_client::request_builder::{RequestBuilder, RequestParams};
use upkeep_server::events::{EventStore, SqliteEventStore};
use upkeep_server::http::{ServeOptions, ServerState, router};
use upkeep_server::repo::{InitOptions, NewRelease, Repo};

const APP: &str = "{F0C5A1A0-0000-4000-8000-000000000001}";

/// A repository with a 1.5 release on the default channel and a 2.0 one
/// on `beta`, served on 127.0.0.1.
fn serve(dir: &Path) -> (tokio::runtime::Runtime, SocketAddr, Repo) {
    let repo = Repo::init(&dir.join("repo"), &InitOptions::default()).unwrap();
    for (version, channel) in [("1.5", ""), ("2.0", "beta")] {
        let payload = dir.join(format!("system-{version}.bin"));
        std::fs::write(&payload, format!("image {version}")).unwrap();
        repo.add(
            None,
            &NewRelease {
                app: APP.into(),
                version: version.into(),
                channel: channel.into(),
                installer_args: Vec::new(),
                install_data: Default::default(),
                commands: Default::default(),
                delta_from: Vec::new(),
                patch_format: None,
                payloads: vec![payload],
            },
        )
        .unwrap();
    }
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: None,
        keys_dir: None,
        events: None,
        dashboard_token: None,
    };
    let state = Arc::new(ServerState::new(&repo, &options).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(options.listen))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, router(state)).await });
    (runtime, addr, repo)
}

/// One HTTP exchange: the status, the headers (names lower-case) and the
/// body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn exchange(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// The path and query of an absolute URL.
fn target_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    &rest[rest.find('/').unwrap_or(rest.len())..]
}

fn config(addr: SocketAddr, repo: &Repo) -> Config {
    let pem = std::fs::read_to_string(repo.dir().join("client/cup.pub.pem")).unwrap();
    // The crate's own reader of its key configuration.
    let keys: PublicKeys = serde_json::from_value(serde_json::json!({
        "latest": {"key": pem, "id": repo.settings().cup_key_id},
        "historical": [],
    }))
    .unwrap();
    Config {
        updater: Updater {
            name: "fuchsia-test".into(),
            version: [0, 0, 1, 0].into(),
        },
        os: OS {
            platform: "Fuchsia".into(),
            version: "14.0".into(),
            service_pack: String::new(),
            arch: "x86_64".into(),
        },
        service_url: format!("http://{addr}/service/update2/json"),
        omaha_public_keys: Some(keys),
    }
}

#[test]
fn omaha_client_checks_verifies_and_parses_an_update() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, addr, repo) = serve(dir.path());
    let config = config(addr, &repo);
    let cup = StandardCupv2Handler::new(config.omaha_public_keys.as_ref().unwrap());
    let app = App::builder()
        .id(APP)
        .version([1, 0, 0, 0])
        .cohort(Cohort::from_hint("beta"))
        .build();
    let (request, metadata) = RequestBuilder::new(&config, &RequestParams::default())
        .add_update_check(&app)
        .add_ping(&app)
        .add_event(&app, Event::success(EventType::UpdateDownloadFinished))
        .build(Some(&cup))
        .unwrap();
    let metadata = metadata.expect("CUP metadata");
    let body: serde_json::Value = serde_json::from_slice(&metadata.request_body).unwrap();
    assert_eq!(body["request"]["protocol"], "3.0", "the crate's own label");

    let answer = exchange(
        addr,
        "POST",
        target_of(&request.uri().to_string()),
        &metadata.request_body,
    );
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );

    // Its verifier accepts the signature, and only for this body.
    let mut response = axum::http::Response::builder();
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    let response = response.body(answer.body.clone()).unwrap();
    cup.verify_response(&metadata, &response, metadata.public_key_id)
        .expect("the proof verifies");
    let mut tampered = answer.body.clone();
    let last = tampered.len() - 2;
    tampered[last] ^= 1;
    let (parts, _) = response.into_parts();
    let forged = axum::http::Response::from_parts(parts, tampered);
    assert!(
        cup.verify_response(&metadata, &forged, metadata.public_key_id)
            .is_err()
    );

    // Its parser reads the answer: the beta release, named by the hint.
    let parsed = parse_json_response(&answer.body).expect("omaha_client parses the answer");
    assert_eq!(parsed.protocol_version, "3.0");
    assert_eq!(parsed.apps.len(), 1);
    let app_answer = &parsed.apps[0];
    assert_eq!(app_answer.id, APP);
    assert_eq!(app_answer.status, OmahaStatus::Ok);
    let check = app_answer.update_check.as_ref().expect("an update check");
    assert_eq!(check.status, OmahaStatus::Ok);
    assert_eq!(app_answer.get_manifest_version().as_deref(), Some("2.0"));
    let package = check.get_all_packages().next().expect("a package");
    assert_eq!(package.name, "system-2.0.bin");
    assert!(package.required);
    assert_eq!(package.size, Some(9));
    let urls: Vec<String> = check.get_all_full_urls().collect();
    assert_eq!(urls.len(), 1);
    // The URL it would download from serves the payload.
    let payload = exchange(addr, "GET", target_of(&urls[0]), b"");
    assert_eq!(payload.status, 200);
    assert_eq!(payload.body, b"image 2.0");

    // Its ping and event are in the store, under the label it sent.
    let stored = SqliteEventStore::open(&repo.events_path())
        .unwrap()
        .list(Some(APP))
        .unwrap();
    let kinds: Vec<&str> = stored.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["ping", "event"]);
    assert_eq!(stored[1].event_type, Some(14));
    assert!(stored.iter().all(|r| r.protocol == "3.0"));
}

#[test]
fn without_a_hint_the_default_channel_answers_and_no_update_parses() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, addr, repo) = serve(dir.path());
    let config = config(addr, &repo);
    let cup = StandardCupv2Handler::new(config.omaha_public_keys.as_ref().unwrap());
    for (version, expected) in [([1, 0, 0, 0], Some("1.5")), ([1, 5, 0, 0], None)] {
        let app = App::builder().id(APP).version(version).build();
        let (request, metadata) = RequestBuilder::new(&config, &RequestParams::default())
            .add_update_check(&app)
            .build(Some(&cup))
            .unwrap();
        let metadata = metadata.unwrap();
        let answer = exchange(
            addr,
            "POST",
            target_of(&request.uri().to_string()),
            &metadata.request_body,
        );
        assert_eq!(answer.status, 200);
        assert!(answer.header("etag").is_some());
        let parsed = parse_json_response(&answer.body).expect("parses");
        let check = parsed.apps[0].update_check.as_ref().unwrap();
        match expected {
            Some(v) => {
                assert_eq!(check.status, OmahaStatus::Ok);
                assert_eq!(parsed.apps[0].get_manifest_version().as_deref(), Some(v));
            }
            None => assert_eq!(check.status, OmahaStatus::NoUpdate),
        }
    }
}

#[test]
fn malformed_3_0_json_is_still_refused_with_400() {
    let dir = tempfile::tempdir().unwrap();
    let (_rt, addr, _repo) = serve(dir.path());
    for (body, message) in [
        (
            r#"{"request":{"protocol":"3.0","app":[{"version":"1.0"}]}}"#,
            "missing appid",
        ),
        (
            r#"{"request":{"protocol":"2.0","app":[]}}"#,
            "unsupported protocol '2.0'",
        ),
        (r#"{"request":{"protocol":"3.0","app":["#, "JSON read error"),
    ] {
        let answer = exchange(addr, "POST", "/service/update2/json", body.as_bytes());
        let text = String::from_utf8_lossy(&answer.body);
        assert_eq!(answer.status, 400, "{body}: {text}");
        assert!(text.contains(message), "{body}: {text}");
    }
}

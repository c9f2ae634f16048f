//! The reference server's dashboard in a real headless browser (Debian's
//! Chromium, installed by scripts/install-test-servers.sh and started by
//! the test), fed by a real machine's updates and a failure it reported,
//! and its access rule: open on loopback, a token beyond it.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::upkeep;
use support::world::{World, check_app, expect_success, run_ok};
use upkeep_core::omaha::{ErrorCategory, Event, EventResult, EventType, RequestApp};
use upkeep_core::version::Version;

const APP: &str = "org.example.dash";

fn chromium() -> &'static str {
    let path = "/usr/bin/chromium";
    assert!(
        Path::new(path).exists(),
        "Chromium is not installed: scripts/test.sh installs it (apt-get install chromium)"
    );
    path
}

/// Runs headless Chromium on `url` with `args`, within 90 s: its stdout.
fn browse(profile: &Path, url: &str, args: &[&str]) -> String {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    out
}

#[test]
fn the_dashboard_shows_releases_rollouts_adoption_and_failures_in_a_browser() {
    let mut w = World::new();
    w.publish(APP, "1.0", &[("app.txt", "one\n")]);
    w.serve();
    w.register(APP, "0");
    expect_success(&w.update(&[]));
    w.publish(APP, "2.0", &[("app.txt", "two\n")]);
    run_ok(
        upkeep()
            .args(["repo", "rollout"])
            .arg(&w.repo)
            .args([APP, "2.0", "--percent", "100"]),
    );
    expect_success(&w.update(&[]));
    assert_eq!(w.version(APP), "2.0");
    // Another machine failed its update to 2.0 on a hash mismatch.
    let mut app = RequestApp::new(APP.to_owned(), &"1.0".parse::<Version>().unwrap());
    let mut failed = Event::new(EventType::Update, EventResult::Error);
    failed.errorcat = Some(ErrorCategory::Download);
    failed.errorcode = Some(upkeep_core::omaha::codes::download::HASH);
    failed.nextversion = Some("2.0".into());
    app.events.push(failed);
    check_app(&w.base(), app, Some("{other-machine}")).unwrap();
    run_ok(
        upkeep()
            .args(["repo", "rollout"])
            .arg(&w.repo)
            .args([APP, "2.0", "--pause"]),
    );

    let url = format!("{}/dashboard", w.base());
    let dom = browse(&w.path("profile-dom"), &url, &["--dump-dom"]);
    for expected in [
        "upkeep: releases and rollouts",
        &format!("data-app=\"{APP}\""),
        "<td class=\"paused\">paused at 100%</td>",
        "<polyline class=\"series\" data-version=\"2.0\"",
        "<td>download hash mismatch</td>",
    ] {
        assert!(
            dom.contains(expected),
            "missing {expected:?} in the page:\n{dom}"
        );
    }
    // The row of 2.0: one successful update, one failure.
    let row = dom
        .lines()
        .find(|l| l.contains("<tr data-version=\"2.0\">"))
        .unwrap_or_else(|| panic!("no row for 2.0:\n{dom}"));
    assert!(
        row.ends_with("<td class=\"n\">1</td><td class=\"n\">1</td></tr>"),
        "{row}"
    );

    let shot = w.path("dashboard.png");
    browse(
        &w.path("profile-shot"),
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1000,1200",
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1000, 1200));
    assert!(
        png.len() > 20_000,
        "a {}-byte screenshot shows next to nothing",
        png.len()
    );

    let figures: serde_json::Value = serde_json::from_str(
        &reqwest::blocking::get(format!("{url}.json"))
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(figures["apps"][0]["app"], APP);
    w.stop();
}

/// Starts `repo serve` on all interfaces: its port.
fn serve_everywhere(w: &World, extra: &[&str]) -> (std::process::Child, u16) {
    let mut child = upkeep()
        .args(["repo", "serve"])
        .arg(&w.repo)
        .args(["--listen", "0.0.0.0:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the server said {line:?}"));
    (child, port)
}

#[test]
fn beyond_loopback_the_dashboard_needs_its_token() {
    let w = World::new();
    w.publish(APP, "1.0", &[("app.txt", "one\n")]);
    let get = |port: u16, query: &str, bearer: Option<&str>| {
        let mut r = reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{port}/dashboard{query}"));
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        let resp = r.send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };

    let (mut open, port) = serve_everywhere(&w, &[]);
    let (status, body) = get(port, "", None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("--dashboard-token-file"), "{body}");
    let _ = open.kill();
    let _ = open.wait();

    let token = w.path("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let (mut guarded, port) =
        serve_everywhere(&w, &["--dashboard-token-file", token.to_str().unwrap()]);
    assert_eq!(get(port, "", None).0, 401);
    assert_eq!(get(port, "", Some("wrong")).0, 401);
    assert_eq!(get(port, "?token=s3cret-toke", None).0, 401);
    let (status, body) = get(port, "", Some("s3cret-token"));
    assert_eq!(status, 200);
    assert!(body.contains(APP), "{body}");
    assert_eq!(get(port, "?token=s3cret-token&window=24h", None).0, 200);
    assert_eq!(get(port, "?token=s3cret-token&window=soon", None).0, 400);
    // Update checks need no token.
    let answered = check_app(
        &format!("http://127.0.0.1:{port}"),
        RequestApp::new(APP.to_owned(), &Version::default()),
        None,
    );
    assert!(answered.is_ok(), "{answered:?}");
    let _ = guarded.kill();
    let _ = guarded.wait();

    std::fs::write(&token, "\n").unwrap();
    let out = upkeep()
        .args(["repo", "serve"])
        .arg(&w.repo)
        .args(["--listen", "127.0.0.1:0", "--dashboard-token-file"])
        .arg(&token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"));
}

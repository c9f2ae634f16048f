//! End-to-end tests of `upkeep omaha decode` and `upkeep omaha request`
//! with the real binary, over fixtures from `../shared/testdata`
//! (chromium/: BSD-3-Clause, see chromium/LICENSE; nebraska/: Apache-2.0,
//! see nebraska/LICENSE).

mod support;

use std::io::Write as _;
use std::process::{Output, Stdio};

use serde_json::Value;
use support::{shared_testdata, upkeep};

fn run(args: &[&str]) -> Output {
    upkeep().args(args).output().expect("run upkeep")
}

fn fixture(rel: &str) -> String {
    shared_testdata().join(rel).display().to_string()
}

fn json_stdout(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn decode_a_good_4_0_reply() {
    let out = run(&[
        "omaha",
        "decode",
        &fixture("chromium/update_client/updatecheck_reply_1.json"),
    ]);
    let v = json_stdout(&out);
    assert_eq!(v["protocol"], "4.0");
    let app = &v["apps"][0];
    assert_eq!(app["appid"], "jebgalgnebhfojomionfpkfelancnnkf");
    assert_eq!(app["status"], "ok");
    assert_eq!(app["updatecheck"]["status"], "ok");
    assert_eq!(app["updatecheck"]["next_version"], "1.0");
    let ops = app["updatecheck"]["pipelines"][0]["operations"]
        .as_array()
        .expect("operations");
    assert_eq!(ops[0]["type"], "download");
    assert_eq!(
        ops[0]["urls"][0],
        "http://localhost/download/jebgalgnebhfojomionfpkfelancnnkf.crx3"
    );
    assert_eq!(ops[2]["type"], "run");
    assert_eq!(ops[2]["path"], "this");
    assert_eq!(v["app_errors"].as_array().map(Vec::len), Some(0));
}

#[test]
fn decode_reports_dropped_apps_but_succeeds() {
    let out = run(&[
        "omaha",
        "decode",
        "--protocol",
        "4.0",
        &fixture("chromium/protocol_parser_json/v4.0/kJSONInvalidCodebase.json"),
    ]);
    let v = json_stdout(&out);
    assert_eq!(v["apps"].as_array().map(Vec::len), Some(0));
    let errors = v["app_errors"].as_array().expect("app_errors");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["appid"], "12345");
    assert!(
        errors[0]["kind"]
            .as_str()
            .unwrap_or_default()
            .contains("malformed url 'nonurl'"),
        "{errors:?}"
    );
}

#[test]
fn decode_3_1_sizes_cohorts_and_daystart() {
    let v = json_stdout(&run(&[
        "omaha",
        "decode",
        &fixture("chromium/protocol_parser_json/v3.1/kJSONInvalidSizes.json"),
    ]));
    let packages = v["apps"][0]["updatecheck"]["manifest"]["packages"]
        .as_array()
        .expect("packages");
    let sizes: Vec<u64> = packages
        .iter()
        .map(|p| p["size"].as_u64().expect("size"))
        .collect();
    assert_eq!(&sizes[..7], &[1234, 9007199254740991, 0, 0, 0, 0, 0]);

    let v = json_stdout(&run(&[
        "omaha",
        "decode",
        &fixture("chromium/protocol_parser_json/v3.1/kJSONTwoAppsSetCohort.json"),
    ]));
    assert_eq!(v["apps"][0]["cohort"], "1:2q3/");
    assert_eq!(v["apps"][0]["result_status"], "noupdate");
    assert_eq!(v["apps"][1]["cohortname"], "cname");

    let v = json_stdout(&run(&[
        "omaha",
        "decode",
        &fixture("chromium/update_client/updatecheck_reply_noupdate.json"),
    ]));
    assert_eq!(v["daystart"]["elapsed_days"], 3383);
    assert_eq!(v["daystart"]["date"], "2016-04-06");
}

#[test]
fn decode_xml_from_a_file_and_from_stdin() {
    let path = fixture("nebraska/extracted/updater_update_exists_response.xml");
    let v = json_stdout(&run(&["omaha", "decode", "--protocol", "xml", &path]));
    let uc = &v["apps"][0]["updatecheck"];
    assert_eq!(uc["next_version"], "2191.5.0");
    assert_eq!(uc["manifest"]["packages"][0]["size"], 465881871);
    assert_eq!(uc["manifest"]["packages"][0]["hash"], "test+x2zIoeClk=");

    let body =
        std::fs::read(fixture("chromium/offline_install/OfflineManifest.gup")).expect("fixture");
    let mut child = upkeep()
        .args(["omaha", "decode", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&body)
        .expect("write stdin");
    let v = json_stdout(&child.wait_with_output().expect("wait"));
    assert_eq!(v["protocol"], "3.0");
    assert_eq!(v["apps"][0]["data"][0]["index"], "verboselogging");
    assert_eq!(
        v["apps"][0]["updatecheck"]["manifest"]["actions"][0]["arguments"],
        "-baz"
    );
}

#[test]
fn decode_refuses_bad_documents_with_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let no_prefix = dir.path().join("no_prefix.json");
    std::fs::write(
        &no_prefix,
        "{\"response\":{\"protocol\":\"4.0\",\"apps\":[]}}",
    )
    .expect("write");
    let garbage = dir.path().join("garbage.xml");
    std::fs::write(&garbage, "<response protocol=\"3.0\"><app>").expect("write");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--protocol".into(),
                "3.1".into(),
                fixture("chromium/protocol_parser_json/v4.0/kJSONValid.json"),
            ],
            "expected '3.1', found '4.0'",
        ),
        (
            vec![
                "--protocol".into(),
                "4.0".into(),
                no_prefix.display().to_string(),
            ],
            "safe-JSON prefix",
        ),
        // Detected, the dialect still needs its prefix.
        (vec![no_prefix.display().to_string()], "safe-JSON prefix"),
        (vec![garbage.display().to_string()], "not closed"),
        (
            vec![dir.path().join("missing.json").display().to_string()],
            "cannot read",
        ),
    ];
    for (args, message) in cases {
        let mut full = vec!["omaha".to_owned(), "decode".to_owned()];
        full.extend(args);
        let out = upkeep().args(&full).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{full:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{full:?}: nothing on stdout");
        assert!(
            stderr.contains(message),
            "{full:?}: stderr {stderr:?} lacks {message:?}"
        );
    }
}

#[test]
fn decode_names_the_cause_of_a_parse_error_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, ")]}'\nnot json").expect("write");
    for protocol in [None, Some("4.0")] {
        let mut args = vec!["omaha", "decode"];
        if let Some(p) = protocol {
            args.extend(["--protocol", p]);
        }
        let path = bad.display().to_string();
        args.push(&path);
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("JSON read error: expected"), "{stderr}");
        assert_eq!(
            stderr.matches("expected ident").count() + stderr.matches("expected value").count(),
            1,
            "the cause once: {stderr}"
        );
    }
}

#[test]
fn request_prints_each_dialect() {
    let out = run(&[
        "omaha",
        "request",
        "--protocol",
        "4.0",
        "--app",
        "{ABC}:1.2.3.4",
        "--app",
        "def:7",
        "--channel",
        "beta",
        "--installdate",
        "3381",
        "--last-rollcall",
        "3383",
        "--today",
        "3390",
        "--updatedisabled",
        "--target-version-prefix",
        "1.2.",
        "--event",
        "3:1",
    ]);
    let v = json_stdout(&out);
    let r = &v["request"];
    assert_eq!(r["protocol"], "4.0");
    assert_ne!(r["sessionid"], r["requestid"]);
    assert_eq!(r["sessionid"].as_str().map(str::len), Some(38));
    let app = &r["apps"][0];
    assert_eq!(app["appid"], "{ABC}");
    assert_eq!(app["version"], "1.2.3.4");
    assert_eq!(app["ap"], "beta");
    assert_eq!(app["installdate"], 3381);
    assert_eq!(app["ping"]["rd"], 3383);
    assert_eq!(app["ping"]["r"], 7);
    assert_eq!(app["updatecheck"]["updatedisabled"], true);
    assert_eq!(app["updatecheck"]["targetversionprefix"], "1.2.");
    assert_eq!(app["events"][0]["eventtype"], 3);
    assert_eq!(r["apps"][1]["appid"], "def");

    let v = json_stdout(&run(&[
        "omaha",
        "request",
        "--protocol",
        "3.1",
        "--app",
        "abc:1",
    ]));
    assert_eq!(v["request"]["protocol"], "3.1");
    assert_eq!(v["request"]["app"][0]["ping"]["r"], -1);

    let out = run(&[
        "omaha",
        "request",
        "--protocol",
        "xml",
        "--app",
        "abc:2.0",
        "--attr",
        "track=stable",
    ]);
    assert!(out.status.success());
    let xml = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(xml.contains("<request protocol=\"3.0\""), "{xml}");
    assert!(xml.contains("appid=\"abc\" version=\"2.0\""), "{xml}");
    assert!(xml.contains("track=\"stable\""), "{xml}");
}

#[test]
fn request_refuses_bad_arguments() {
    for (args, message) in [
        (vec!["--protocol", "4.0", "--app", "abc:1.x"], "bad version"),
        (vec!["--protocol", "4.0", "--app", "abc"], "ID:VERSION"),
        (
            vec!["--protocol", "4.0", "--app", "abc:1", "--event", "x:1"],
            "type \"x\" is not a number",
        ),
        (
            vec!["--protocol", "2.0", "--app", "abc:1"],
            "unsupported protocol",
        ),
    ] {
        let mut full = vec!["omaha", "request"];
        full.extend(args);
        let out = run(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{full:?}");
        assert!(stderr.contains(message), "{full:?}: {stderr}");
    }
}

#[test]
fn help_explains_the_verbs() {
    let out = run(&["omaha", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("decode") && text.contains("request"),
        "{text}"
    );
    let out = run(&["omaha", "decode", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--protocol") && text.contains("app_errors"),
        "{text}"
    );
}

//! Data-driven tests of the Omaha codecs over the shared fixture collection.
//!
//! The fixtures live in `../shared/testdata` beside the checkout (see its
//! README.md). Sources and licenses:
//! * `chromium/` — chromium/chromium, BSD-3-Clause (`chromium/LICENSE`):
//!   protocol 3.1 / 4.0 JSON responses, update-checker replies, offline manifests;
//! * `nebraska/` — flatcar/nebraska, Apache-2.0 (`nebraska/LICENSE`):
//!   3.0 XML requests and responses.
//!
//! Every fixture family has an `expectations.yaml` restating what the
//! upstream tests assert; each test walks every case of its file, checks
//! every expectation key it states (an unknown key fails the test, so no
//! expectation is silently skipped) and prints how many fixtures it checked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use upkeep_core::omaha::{
    self, App, AppErrorKind, EventResult, EventType, Protocol, ProtocolError, Response, offline,
};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata");

fn testdata(rel: &str) -> PathBuf {
    Path::new(TESTDATA).join(rel)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

fn expectations(rel: &str) -> Value {
    let path = testdata(rel);
    let text = String::from_utf8(read(&path)).expect("expectations are UTF-8");
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases(doc: &Value) -> &Vec<Value> {
    doc["cases"]
        .as_array()
        .expect("expectations have a 'cases' list")
}

/// Fails on expectation keys the test does not know how to check.
fn known_keys(ctx: &str, obj: &Value, known: &[&str]) {
    let Some(map) = obj.as_object() else { return };
    let unknown: Vec<&String> = map
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "{ctx}: expectation keys not checked by this test: {unknown:?}"
    );
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string in expectations, got {v}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected a number in expectations, got {v}"))
}

fn list(v: &Value) -> &Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list in expectations, got {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    list(v).iter().map(|x| s(x).to_owned()).collect()
}

/// Input of a Chromium JSON case: the file, or the inline `input`.
fn case_input(dir: &str, case: &Value) -> Vec<u8> {
    match case["file"].as_str() {
        Some(file) => read(&testdata(&format!("{dir}/{file}"))),
        None => s(&case["input"]).as_bytes().to_vec(),
    }
}

/// Checks `parse`, `errors`, `apps_count`, `apps_nonempty` and an empty
/// `apps` list; returns the response when the document parsed.
fn check_outcome(
    ctx: &str,
    case: &Value,
    result: Result<Response, ProtocolError>,
) -> Option<Response> {
    match s(&case["parse"]) {
        "fails" => {
            let err = result
                .err()
                .unwrap_or_else(|| panic!("{ctx}: parsed, but must be refused"));
            assert_eq!(s(&case["errors"]), "present", "{ctx}");
            println!("  {ctx}: refused as expected: {err}");
            None
        }
        "ok" => {
            let r = result.unwrap_or_else(|e| panic!("{ctx}: must parse, got {e}"));
            match s(&case["errors"]) {
                "none" => assert!(
                    r.app_errors.is_empty(),
                    "{ctx}: unexpected app errors {:?}",
                    r.app_errors
                ),
                "present" => assert!(
                    !r.app_errors.is_empty(),
                    "{ctx}: an app error must be recorded"
                ),
                other => panic!("{ctx}: unknown errors value {other}"),
            }
            if let Some(n) = case.get("apps_count") {
                assert_eq!(r.apps.len() as u64, u(n), "{ctx}: apps_count");
            }
            if case.get("apps_nonempty").and_then(Value::as_bool) == Some(true) {
                assert!(!r.apps.is_empty(), "{ctx}: apps must not be empty");
            }
            if let Some(apps) = case.get("apps") {
                if list(apps).is_empty() {
                    assert!(
                        r.apps.is_empty(),
                        "{ctx}: no app may survive, got {:?}",
                        r.apps
                    );
                } else {
                    assert!(r.apps.len() >= list(apps).len(), "{ctx}: too few apps");
                }
            }
            Some(r)
        }
        other => panic!("{ctx}: unknown parse value {other}"),
    }
}

fn check_nextversion(ctx: &str, app: &App, want: &Value) {
    match s(want) {
        "absent" => assert!(
            app.next_version().is_none(),
            "{ctx}: nextversion must be absent"
        ),
        v => assert_eq!(
            app.next_version().map(ToString::to_string).as_deref(),
            Some(v),
            "{ctx}: nextversion"
        ),
    }
}

const CASE_KEYS: &[&str] = &[
    "name",
    "file",
    "input",
    "what",
    "parse",
    "errors",
    "apps",
    "apps_count",
    "apps_nonempty",
    "note",
    "daystart_elapsed_days",
];

#[test]
fn chromium_protocol_4_0_json() {
    let dir = "chromium/protocol_parser_json/v4.0";
    let doc = expectations(&format!("{dir}/expectations.yaml"));
    assert_eq!(s(&doc["protocol"]), "4.0");
    let mut checked = 0;
    let mut files = BTreeSet::new();
    for case in cases(&doc) {
        let ctx = format!("v4.0 {}", s(&case["name"]));
        known_keys(&ctx, case, CASE_KEYS);
        if let Some(f) = case["file"].as_str() {
            files.insert(f.to_owned());
        }
        let result = omaha::parse_response(&case_input(dir, case), Protocol::Json40);
        let Some(r) = check_outcome(&ctx, case, result) else {
            checked += 1;
            continue;
        };
        if let Some(days) = case.get("daystart_elapsed_days") {
            assert_eq!(
                r.daystart.elapsed_days,
                Some(u(days) as i64),
                "{ctx}: daystart"
            );
        }
        for (i, want) in case.get("apps").map(list).into_iter().flatten().enumerate() {
            let ctx = format!("{ctx} app #{i}");
            known_keys(
                &ctx,
                want,
                &[
                    "app_id",
                    "status",
                    "nextversion",
                    "pipelines_count",
                    "pipelines",
                ],
            );
            let app = &r.apps[i];
            if let Some(id) = want.get("app_id") {
                assert_eq!(app.appid.as_str(), s(id), "{ctx}: app_id");
            }
            if let Some(st) = want.get("status") {
                assert_eq!(app.result_status(), s(st), "{ctx}: status");
            }
            if let Some(nv) = want.get("nextversion") {
                check_nextversion(&ctx, app, nv);
            }
            let pipelines = app
                .updatecheck
                .as_ref()
                .map(|uc| uc.pipelines.as_slice())
                .unwrap_or_default();
            if let Some(n) = want.get("pipelines_count") {
                assert_eq!(pipelines.len() as u64, u(n), "{ctx}: pipelines_count");
            }
            for (j, wp) in want
                .get("pipelines")
                .map(list)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let ctx = format!("{ctx} pipeline #{j}");
                known_keys(&ctx, wp, &["pipeline_id", "operations_count", "operations"]);
                let p = &pipelines[j];
                if let Some(id) = wp.get("pipeline_id") {
                    assert_eq!(p.pipeline_id.as_deref(), Some(s(id)), "{ctx}: pipeline_id");
                }
                if let Some(n) = wp.get("operations_count") {
                    assert_eq!(p.operations.len() as u64, u(n), "{ctx}: operations_count");
                }
                for wo in wp.get("operations").map(list).into_iter().flatten() {
                    known_keys(&ctx, wo, &["index", "urls", "sha256_out", "type", "path"]);
                    let op = &p.operations[u(&wo["index"]) as usize];
                    if let Some(urls) = wo.get("urls") {
                        assert_eq!(op.urls, strings(urls), "{ctx}: urls");
                    }
                    if let Some(h) = wo.get("sha256_out") {
                        assert_eq!(op.sha256_out.as_deref(), Some(s(h)), "{ctx}: sha256_out");
                    }
                    if let Some(t) = wo.get("type") {
                        assert_eq!(op.kind.as_str(), s(t), "{ctx}: type");
                    }
                    if let Some(path) = wo.get("path") {
                        assert_eq!(op.path.as_deref(), Some(s(path)), "{ctx}: path");
                    }
                }
            }
        }
        // What parses must survive a write and a second parse unchanged.
        let again = omaha::parse_response(r.to_body(Protocol::Json40).as_bytes(), Protocol::Json40)
            .unwrap();
        assert_eq!(again.apps, r.apps, "{ctx}: round trip");
        checked += 1;
    }
    assert_all_files_covered(dir, &files);
    println!("checked {checked} v4.0 fixtures");
}

/// Every `.json` in the folder must be named by some case.
fn assert_all_files_covered(dir: &str, files: &BTreeSet<String>) {
    for entry in std::fs::read_dir(testdata(dir)).expect("fixture folder") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".json") {
            assert!(files.contains(&name), "{dir}/{name} has no expectation");
        }
    }
}

#[test]
fn chromium_protocol_3_1_json() {
    let dir = "chromium/protocol_parser_json/v3.1";
    let doc = expectations(&format!("{dir}/expectations.yaml"));
    assert_eq!(s(&doc["protocol"]), "3.1");
    let mut checked = 0;
    let mut files = BTreeSet::new();
    for case in cases(&doc) {
        let ctx = format!("v3.1 {}", s(&case["name"]));
        known_keys(&ctx, case, CASE_KEYS);
        if let Some(f) = case["file"].as_str() {
            files.insert(f.to_owned());
        }
        let result = omaha::parse_response(&case_input(dir, case), Protocol::Json31);
        let Some(r) = check_outcome(&ctx, case, result) else {
            checked += 1;
            continue;
        };
        for (i, want) in case.get("apps").map(list).into_iter().flatten().enumerate() {
            let ctx = format!("{ctx} app #{i}");
            known_keys(
                &ctx,
                want,
                &[
                    "app_id",
                    "status",
                    "crx_urls",
                    "crx_diffurls",
                    "manifest",
                    "cohort_attrs",
                    "action_run",
                    "custom_attributes_count",
                    "custom_attributes",
                ],
            );
            let app = &r.apps[i];
            let uc = app.updatecheck.as_ref();
            if let Some(id) = want.get("app_id") {
                assert_eq!(app.appid.as_str(), s(id), "{ctx}: app_id");
            }
            if let Some(st) = want.get("status") {
                assert_eq!(app.result_status(), s(st), "{ctx}: status");
            }
            if let Some(urls) = want.get("crx_urls") {
                assert_eq!(
                    uc.map(|u| u.urls.clone()),
                    Some(strings(urls)),
                    "{ctx}: crx_urls"
                );
            }
            if let Some(urls) = want.get("crx_diffurls") {
                assert_eq!(
                    uc.map(|u| u.diff_urls.clone()),
                    Some(strings(urls)),
                    "{ctx}: crx_diffurls"
                );
            }
            if let Some(run) = want.get("action_run") {
                assert_eq!(
                    uc.and_then(|u| u.action_run()),
                    Some(s(run)),
                    "{ctx}: action_run"
                );
            }
            if let Some(cohort) = want.get("cohort_attrs") {
                known_keys(&ctx, cohort, &["cohort", "cohorthint", "cohortname"]);
                let get = |k: &str| cohort.get(k).map(|v| s(v).to_owned());
                assert_eq!(app.cohort.cohort, get("cohort"), "{ctx}: cohort");
                assert_eq!(
                    app.cohort.cohorthint,
                    get("cohorthint"),
                    "{ctx}: cohorthint"
                );
                assert_eq!(
                    app.cohort.cohortname,
                    get("cohortname"),
                    "{ctx}: cohortname"
                );
            }
            let attrs = uc.map(|u| u.custom_attributes.clone()).unwrap_or_default();
            if let Some(n) = want.get("custom_attributes_count") {
                assert_eq!(attrs.len() as u64, u(n), "{ctx}: custom_attributes_count");
            }
            if let Some(map) = want.get("custom_attributes").and_then(Value::as_object) {
                for (k, v) in map {
                    assert_eq!(
                        attrs.get(k).map(String::as_str),
                        Some(s(v)),
                        "{ctx}: custom attribute {k}"
                    );
                }
            }
            if let Some(m) = want.get("manifest") {
                check_manifest31(&ctx, app, m);
            }
        }
        let again = omaha::parse_response(r.to_body(Protocol::Json31).as_bytes(), Protocol::Json31)
            .unwrap();
        assert_eq!(again.apps, r.apps, "{ctx}: round trip");
        checked += 1;
    }
    assert_all_files_covered(dir, &files);
    println!("checked {checked} v3.1 fixtures");
}

fn check_manifest31(ctx: &str, app: &App, want: &Value) {
    known_keys(
        ctx,
        want,
        &[
            "version",
            "browser_min_version",
            "packages_count",
            "packages",
            "package_sizes",
            "run",
            "arguments",
        ],
    );
    let manifest = app.updatecheck.as_ref().and_then(|u| u.manifest.as_ref());
    if let Some(v) = want.get("version") {
        match s(v) {
            "" => {
                assert!(manifest.is_none(), "{ctx}: no manifest expected");
                return;
            }
            v => assert_eq!(
                manifest.map(|m| m.version.to_string()).as_deref(),
                Some(v),
                "{ctx}: version"
            ),
        }
    }
    let m = manifest.unwrap_or_else(|| panic!("{ctx}: manifest expected"));
    if let Some(v) = want.get("browser_min_version") {
        assert_eq!(
            m.prodversionmin
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some(s(v)),
            "{ctx}: prodversionmin"
        );
    }
    if let Some(n) = want.get("packages_count") {
        assert_eq!(m.packages.len() as u64, u(n), "{ctx}: packages_count");
    }
    for (i, p) in want
        .get("packages")
        .map(list)
        .into_iter()
        .flatten()
        .enumerate()
    {
        assert_eq!(m.packages[i].name, s(&p["name"]), "{ctx}: package name");
    }
    for p in want.get("package_sizes").map(list).into_iter().flatten() {
        known_keys(ctx, p, &["index", "name", "size", "sizediff"]);
        let got = &m.packages[u(&p["index"]) as usize];
        assert_eq!(got.name, s(&p["name"]), "{ctx}: package name");
        if let Some(size) = p.get("size") {
            assert_eq!(got.size, u(size), "{ctx}: size of package {}", got.name);
        }
        if let Some(size) = p.get("sizediff") {
            assert_eq!(
                got.sizediff,
                u(size),
                "{ctx}: sizediff of package {}",
                got.name
            );
        }
    }
    if let Some(run) = want.get("run") {
        assert_eq!(m.run.as_deref(), Some(s(run)), "{ctx}: run");
    }
    if let Some(args) = want.get("arguments") {
        assert_eq!(m.arguments.as_deref(), Some(s(args)), "{ctx}: arguments");
    }
}

#[test]
fn chromium_update_client_replies() {
    let dir = "chromium/update_client";
    let doc = expectations(&format!("{dir}/expectations.yaml"));
    let mut checked = 0;
    for case in cases(&doc) {
        let file = s(&case["file"]);
        let ctx = format!("update_client {file}");
        known_keys(
            &ctx,
            case,
            &["file", "index_commit", "content", "chromium_test"],
        );
        let body = read(&testdata(&format!("{dir}/{file}")));
        let c = &case["content"];
        known_keys(
            &ctx,
            c,
            &[
                "protocol",
                "apps_count",
                "app_id",
                "app_status",
                "updatecheck_status",
                "nextversion",
                "pipelines_count",
                "operations",
                "daystart_elapsed_days",
                "updatecheck",
            ],
        );
        let protocol: Protocol = s(&c["protocol"]).parse().expect("protocol");
        let r = omaha::parse_response(&body, protocol).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        // Auto-detection must agree.
        assert_eq!(
            omaha::parse_response_any(&body).expect("auto-detect"),
            r,
            "{ctx}: auto-detect"
        );
        assert!(r.app_errors.is_empty(), "{ctx}: {:?}", r.app_errors);
        assert_eq!(
            r.apps.len() as u64,
            u(&c["apps_count"]),
            "{ctx}: apps_count"
        );
        let app = r
            .app(s(&c["app_id"]))
            .unwrap_or_else(|| panic!("{ctx}: app missing"));
        assert_eq!(
            app.status.as_str(),
            s(&c["app_status"]),
            "{ctx}: app_status"
        );
        if let Some(st) = c.get("updatecheck_status") {
            assert_eq!(
                app.updatecheck.as_ref().map(|u| u.status.as_str()),
                Some(s(st)),
                "{ctx}: updatecheck_status"
            );
        }
        if let Some(absent) = c.get("updatecheck") {
            assert_eq!(s(absent), "absent");
            assert!(app.updatecheck.is_none(), "{ctx}: no updatecheck expected");
        }
        if let Some(nv) = c.get("nextversion") {
            check_nextversion(&ctx, app, nv);
        }
        if let Some(days) = c.get("daystart_elapsed_days") {
            assert_eq!(
                r.daystart.elapsed_days,
                Some(u(days) as i64),
                "{ctx}: daystart"
            );
        }
        let pipelines = app
            .updatecheck
            .as_ref()
            .map(|uc| uc.pipelines.as_slice())
            .unwrap_or_default();
        if let Some(n) = c.get("pipelines_count") {
            assert_eq!(pipelines.len() as u64, u(n), "{ctx}: pipelines_count");
        }
        if let Some(ops) = c.get("operations") {
            let got = &pipelines[0].operations;
            assert_eq!(got.len(), list(ops).len(), "{ctx}: operation count");
            for (op, want) in got.iter().zip(list(ops)) {
                known_keys(&ctx, want, &["type", "urls", "path"]);
                assert_eq!(op.kind.as_str(), s(&want["type"]), "{ctx}: type");
                if let Some(urls) = want.get("urls") {
                    assert_eq!(op.urls, strings(urls), "{ctx}: urls");
                }
                if let Some(path) = want.get("path") {
                    assert_eq!(op.path.as_deref(), Some(s(path)), "{ctx}: path");
                }
            }
        }
        if let Some(t) = case.get("chromium_test").filter(|t| t.is_object()) {
            known_keys(
                &ctx,
                t,
                &[
                    "test",
                    "update_check_error_category",
                    "update_check_error",
                    "results_count",
                    "result_status",
                ],
            );
            assert_eq!(
                r.apps.len() as u64,
                u(&t["results_count"]),
                "{ctx}: results_count"
            );
            assert_eq!(
                app.result_status(),
                s(&t["result_status"]),
                "{ctx}: result_status"
            );
        }
        checked += 1;
    }
    println!("checked {checked} update_client fixtures");
}

#[test]
fn chromium_offline_install_manifests() {
    let dir = "chromium/offline_install";
    let doc = expectations(&format!("{dir}/expectations.yaml"));
    let mut checked = 0;
    for case in cases(&doc) {
        let file = s(&case["file"]);
        let ctx = format!("offline {file}");
        known_keys(
            &ctx,
            case,
            &[
                "file",
                "origin",
                "index_commit",
                "line_endings",
                "content",
                "chromium_test",
            ],
        );
        let body = read(&testdata(&format!("{dir}/{file}")));
        match s(&case["line_endings"]) {
            "LF" => assert!(!body.contains(&b'\r'), "{ctx}: LF file has CR"),
            crlf if crlf.starts_with("CRLF") => assert!(
                body.windows(2).any(|w| w == b"\r\n"),
                "{ctx}: CRLF expected"
            ),
            other => panic!("{ctx}: unknown line_endings {other}"),
        }
        let c = &case["content"];
        let placeholders = c.get("placeholders").map(strings).unwrap_or_default();
        let r =
            omaha::parse_response(&body, Protocol::Xml30).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(r.protocol.version(), s(&c["protocol"]), "{ctx}: protocol");
        let (r, subst): (Response, Vec<(String, String)>) = if placeholders.is_empty() {
            (r, Vec::new())
        } else {
            // A template: its placeholder version is not a version, so the app
            // is dropped with an error while the document itself parses.
            assert!(
                r.apps.is_empty(),
                "{ctx}: template app must not pass as valid"
            );
            assert!(
                r.app_errors
                    .iter()
                    .any(|e| matches!(e.kind, AppErrorKind::InvalidVersion { .. })),
                "{ctx}: {:?}",
                r.app_errors
            );
            check_sysreq(&ctx, &r, c);
            // Filled in, as an offline installer build would, it must be valid.
            let subst: Vec<(String, String)> = placeholders
                .iter()
                .map(|p| (format!("${{{p}}}"), sample_value(p).to_owned()))
                .collect();
            let mut text = String::from_utf8(body).expect("UTF-8");
            for (from, to) in &subst {
                assert!(
                    text.contains(from.as_str()),
                    "{ctx}: placeholder {from} not in the template"
                );
                text = text.replace(from.as_str(), to);
            }
            let filled = omaha::parse_response(text.as_bytes(), Protocol::Xml30)
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert!(
                filled.app_errors.is_empty(),
                "{ctx}: {:?}",
                filled.app_errors
            );
            (filled, subst)
        };
        let fill = |v: &str| {
            subst.iter().fold(v.to_owned(), |acc, (from, to)| {
                acc.replace(from.as_str(), to)
            })
        };
        known_keys(
            &ctx,
            c,
            &[
                "kind",
                "placeholders",
                "protocol",
                "systemrequirements",
                "app_id",
                "app_status",
                "updatecheck_status",
                "codebase",
                "manifest_version",
                "package",
                "actions",
                "data_indexes",
            ],
        );
        check_sysreq(
            &ctx,
            &r,
            &serde_json::from_str::<Value>(&fill(&c.to_string())).expect("json"),
        );
        assert_eq!(r.apps.len(), 1, "{ctx}: one app");
        let app = &r.apps[0];
        if let Some(id) = c.get("app_id") {
            assert_eq!(app.appid.as_str(), s(id), "{ctx}: app_id");
        }
        if let Some(st) = c.get("app_status") {
            assert_eq!(app.status.as_str(), s(st), "{ctx}: app_status");
        }
        let uc = app.updatecheck.as_ref().expect("updatecheck");
        if let Some(st) = c.get("updatecheck_status") {
            assert_eq!(uc.status.as_str(), s(st), "{ctx}: updatecheck_status");
        }
        assert_eq!(uc.urls, vec![fill(s(&c["codebase"]))], "{ctx}: codebase");
        let m = uc.manifest.as_ref().expect("manifest");
        if let Some(v) = c.get("manifest_version") {
            assert_eq!(m.version.to_string(), s(v), "{ctx}: manifest_version");
        }
        if let Some(p) = c.get("package") {
            known_keys(
                &ctx,
                p,
                &["name", "hash", "hash_sha256", "size", "required"],
            );
            let got = &m.packages[0];
            assert_eq!(got.name, s(&p["name"]), "{ctx}: package name");
            assert_eq!(got.hash.as_deref(), Some(s(&p["hash"])), "{ctx}: hash");
            assert_eq!(
                got.hash_sha256.as_deref(),
                Some(s(&p["hash_sha256"])),
                "{ctx}: hash_sha256"
            );
            assert_eq!(got.size, u(&p["size"]), "{ctx}: size");
            assert_eq!(got.required, p["required"].as_bool(), "{ctx}: required");
        }
        let actions = list(&c["actions"]);
        assert_eq!(m.actions.len(), actions.len(), "{ctx}: action count");
        for (got, want) in m.actions.iter().zip(actions) {
            known_keys(
                &ctx,
                want,
                &["event", "run", "arguments", "needsadmin", "onsuccess"],
            );
            let field = |k: &str| want.get(k).map(|v| fill(s(v)));
            assert_eq!(got.event, field("event"), "{ctx}: event");
            assert_eq!(got.run, field("run"), "{ctx}: run");
            assert_eq!(got.arguments, field("arguments"), "{ctx}: arguments");
            assert_eq!(got.needsadmin, field("needsadmin"), "{ctx}: needsadmin");
            assert_eq!(got.onsuccess, field("onsuccess"), "{ctx}: onsuccess");
        }
        if let Some(indexes) = c.get("data_indexes") {
            let got: Vec<String> = app.data.iter().filter_map(|d| d.index.clone()).collect();
            assert_eq!(got, strings(indexes), "{ctx}: data indexes");
            assert!(
                app.data
                    .iter()
                    .all(|d| d.name.as_deref() == Some("install")),
                "{ctx}: data names"
            );
        }
        if let Some(t) = case.get("chromium_test") {
            check_offline_install(&ctx, &testdata(&format!("{dir}/{file}")), t);
        }
        checked += 1;
    }
    println!("checked {checked} offline_install fixtures");
}

fn sample_value(placeholder: &str) -> &'static str {
    match placeholder {
        "APP_ID" => "{8A69D345-D564-463C-AFF1-A69D9E530F96}",
        "INSTALLER_VERSION" => "1.2.3.4",
        "INSTALLER_FILENAME" => "setup.exe",
        "INSTALLER_HASH_SHA256" => "0123456789abcdef",
        "INSTALLER_SIZE" => "4096",
        "ARCH_REQUIREMENT" => "x64",
        other => panic!("no sample value for placeholder {other}"),
    }
}

fn check_sysreq(ctx: &str, r: &Response, content: &Value) {
    let Some(want) = content.get("systemrequirements") else {
        return;
    };
    known_keys(ctx, want, &["platform", "arch", "min_os_version"]);
    let got = r
        .systemrequirements
        .as_ref()
        .unwrap_or_else(|| panic!("{ctx}: systemrequirements"));
    assert_eq!(
        got.platform.as_deref(),
        want.get("platform").map(s),
        "{ctx}: platform"
    );
    assert_eq!(got.arch.as_deref(), want.get("arch").map(s), "{ctx}: arch");
    assert_eq!(
        got.min_os_version.as_deref(),
        want.get("min_os_version").map(s),
        "{ctx}: min_os_version"
    );
}

/// Restates ManifestUtil.ReadInstallCommandFromManifest: the manifest is
/// found in the offline folder, the installer lies inside it.
fn check_offline_install(ctx: &str, manifest: &Path, t: &Value) {
    known_keys(ctx, t, &["test", "inputs", "expected", "lookup_rule"]);
    let app_id = s(&t["inputs"]["app_id"]);
    let index = s(&t["inputs"]["install_data_index"]);
    let bytes = read(manifest);
    for name in [
        offline::OFFLINE_MANIFEST.to_owned(),
        format!("{app_id}.gup"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(&name), &bytes).expect("write manifest");
        assert_eq!(
            offline::find_manifest(dir.path(), app_id).expect("lookup"),
            dir.path().join(&name),
            "{ctx}"
        );
        let r = offline::read_manifest(dir.path(), app_id).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        // App ids compare case-insensitively.
        let cmd = offline::install_command(&r, &app_id.to_ascii_lowercase(), dir.path())
            .expect("install command");
        let want_path = s(&t["expected"]["installer_path"]).replace("<offline_dir>/", "");
        assert_eq!(
            cmd.installer,
            dir.path().join(want_path),
            "{ctx}: installer_path"
        );
        assert_eq!(
            cmd.arguments,
            s(&t["expected"]["install_args"]),
            "{ctx}: install_args"
        );
        assert_eq!(
            offline::install_data(&r, app_id, index),
            Some(s(&t["expected"]["install_data"])),
            "{ctx}: install_data"
        );
    }
}

#[test]
fn nebraska_xml_samples() {
    let doc = expectations("nebraska/expectations.yaml");
    let mut checked = 0;
    for case in cases(&doc) {
        let file = s(&case["file"]);
        let ctx = format!("nebraska {file}");
        known_keys(
            &ctx,
            case,
            &[
                "file",
                "origin",
                "what",
                "nebraska_test",
                "expected_update_info",
                "also",
            ],
        );
        let body = read(&testdata(&format!("nebraska/{file}")));
        let name = Path::new(file)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with("_response.xml") {
            check_nebraska_response(&ctx, &body, case);
        } else {
            check_nebraska_request(&ctx, name, &body);
        }
        checked += 1;
    }
    println!("checked {checked} nebraska fixtures");
}

const FLATCAR_APP: &str = "e96281a6-d1af-4bde-9a0a-97b76e56dc57";
const MISSING_APP: &str = "h96281a6-d1af-4bde-9a0a-97b76e56dc57";

fn check_nebraska_response(ctx: &str, body: &[u8], case: &Value) {
    let r = omaha::parse_response(body, Protocol::Xml30).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert_eq!(
        omaha::parse_response_any(body).expect("auto-detect"),
        r,
        "{ctx}: auto-detect"
    );
    assert!(r.app_errors.is_empty(), "{ctx}: {:?}", r.app_errors);
    assert_eq!(r.server.as_deref(), Some("nebraska"), "{ctx}: server");
    assert_eq!(r.daystart.elapsed_seconds, Some(0), "{ctx}: daystart");
    let want = &case["expected_update_info"];
    let app = &r.apps[0];
    if want.is_string() {
        // "error / no update info": the app is there, without an update check.
        assert!(s(want).contains("no update info"), "{ctx}: {want}");
        assert!(app.updatecheck.is_none(), "{ctx}: no update check expected");
        assert_eq!(app.status.as_str(), "error-internal", "{ctx}: app status");
        return;
    }
    known_keys(
        ctx,
        want,
        &[
            "has_update",
            "update_status",
            "version",
            "url_count",
            "package_count",
            "package",
            "postinstall_action",
        ],
    );
    let uc = app
        .updatecheck
        .as_ref()
        .unwrap_or_else(|| panic!("{ctx}: update check expected"));
    let has_update = uc.status == omaha::UpdateCheckStatus::Ok;
    assert_eq!(
        Some(has_update),
        want["has_update"].as_bool(),
        "{ctx}: has_update"
    );
    assert_eq!(
        uc.status.as_str(),
        s(&want["update_status"]),
        "{ctx}: update_status"
    );
    assert_eq!(
        uc.urls.len() as u64,
        u(&want["url_count"]),
        "{ctx}: url_count"
    );
    let packages = uc
        .manifest
        .as_ref()
        .map(|m| m.packages.as_slice())
        .unwrap_or_default();
    assert_eq!(
        packages.len() as u64,
        u(&want["package_count"]),
        "{ctx}: package_count"
    );
    if let Some(v) = want.get("version") {
        assert_eq!(
            app.next_version().map(ToString::to_string).as_deref(),
            Some(s(v)),
            "{ctx}: version"
        );
    }
    if let Some(p) = want.get("package") {
        assert_eq!(packages[0].name, s(&p["name"]), "{ctx}: package name");
        assert_eq!(
            packages[0].hash.as_deref(),
            Some(s(&p["hash"])),
            "{ctx}: package hash"
        );
        assert_eq!(packages[0].size, u(&p["size"]), "{ctx}: package size");
        assert_eq!(
            packages[0].required,
            p["required"].as_bool(),
            "{ctx}: required"
        );
    }
    if let Some(a) = want.get("postinstall_action") {
        let actions = &uc.manifest.as_ref().expect("manifest").actions;
        let post = actions
            .iter()
            .find(|x| x.event.as_deref() == Some("postinstall"))
            .expect("postinstall");
        for (k, v) in a.as_object().expect("map") {
            assert_eq!(
                post.attributes.get(k).map(String::as_str),
                Some(s(v)),
                "{ctx}: postinstall {k}"
            );
        }
    }
    if s(&want["update_status"]) == "error-internal" {
        assert_eq!(
            app.status.as_str(),
            "error-failedToRetrieveUpdatePackageInfo",
            "{ctx}: app status"
        );
        assert!(r.app(FLATCAR_APP).is_none(), "{ctx}");
    }
    if case.get("also").is_some() {
        assert!(r.app(FLATCAR_APP).is_some(), "{ctx}");
        assert!(
            r.app(&FLATCAR_APP.to_ascii_uppercase()).is_some(),
            "{ctx}: ids ignore case"
        );
        assert!(
            r.app(MISSING_APP).is_none(),
            "{ctx}: asking for an absent app yields nothing"
        );
    }
    let again =
        omaha::parse_response(r.to_body(Protocol::Xml30).as_bytes(), Protocol::Xml30).unwrap();
    assert_eq!(again.apps, r.apps, "{ctx}: round trip");
}

/// Fills the Go `%s` verbs in order, as the Nebraska tests' fmt.Sprintf does.
fn sprintf(template: &[u8], values: &[&str]) -> Vec<u8> {
    let mut text = String::from_utf8(template.to_vec()).expect("UTF-8");
    for v in values {
        text = text.replacen("%s", v, 1);
    }
    assert!(!text.contains("%s"), "template has more %s than values");
    text.into_bytes()
}

fn check_nebraska_request(ctx: &str, name: &str, body: &[u8]) {
    match name {
        "big_omaha_request.xml" => {
            assert_eq!(body.len(), 95_507, "{ctx}: size");
            let err = omaha::parse_request(body, Some(Protocol::Xml30))
                .expect_err("oversized body must be refused");
            assert!(
                matches!(err, ProtocolError::TooLarge { size: 95_507, .. }),
                "{ctx}: {err}"
            );
            let r = omaha::parse_request_with_limit(body, Some(Protocol::Xml30), usize::MAX)
                .expect("parses unbounded");
            assert_eq!(r.apps.len(), 315, "{ctx}: app count");
            assert_eq!(r.installsource.as_deref(), Some("scheduler"));
            assert!(
                r.apps
                    .iter()
                    .all(|a| a.appid.as_str() == "%s" && a.extra["track"] == "%s"),
                "{ctx}"
            );
        }
        "api_scheduler_request_template.xml" | "api_ping_only_request_template.xml" => {
            let filled = sprintf(
                body,
                &["{ABC}", "stable", "9fe0c0d4-1111-4222-8333-444455556666"],
            );
            let r = omaha::parse_request(&filled, Some(Protocol::Xml30))
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(r.installsource.as_deref(), Some("scheduler"), "{ctx}");
            assert_eq!(
                r.os.as_ref().and_then(|o| o.platform.as_deref()),
                Some("CoreOS"),
                "{ctx}"
            );
            assert_eq!(r.apps.len(), 1, "{ctx}");
            let app = &r.apps[0];
            assert_eq!(app.appid.as_str(), "{ABC}", "{ctx}");
            assert_eq!(app.version, "0.0.0", "{ctx}");
            assert_eq!(
                app.extra.get("track").map(String::as_str),
                Some("stable"),
                "{ctx}"
            );
            assert_eq!(
                app.extra.get("machineid").map(String::as_str),
                Some("9fe0c0d4-1111-4222-8333-444455556666")
            );
            assert_eq!(
                app.extra.get("oem").map(String::as_str),
                Some("fakeclient"),
                "{ctx}"
            );
            assert_eq!(
                app.ping.as_ref().and_then(|p| p.r),
                Some(1),
                "{ctx}: ping r"
            );
            if name.starts_with("api_ping_only") {
                assert!(
                    app.updatecheck.is_none() && app.events.is_empty(),
                    "{ctx}: only a ping"
                );
            } else {
                assert!(app.updatecheck.is_some(), "{ctx}: updatecheck");
                assert_eq!(app.events.len(), 1, "{ctx}");
                assert_eq!(app.events[0].eventtype, EventType::Update, "{ctx}");
                assert_eq!(app.events[0].eventresult, EventResult::Success, "{ctx}");
            }
        }
        "updater_sample_request.xml" => {
            let r = omaha::parse_request(body, Some(Protocol::Xml30))
                .unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(
                r.os.as_ref().and_then(|o| o.platform.as_deref()),
                Some("Chrome OS"),
                "{ctx}"
            );
            assert_eq!(r.ismachine, Some(true), "{ctx}");
            let app = &r.apps[0];
            assert_eq!(
                app.appid,
                omaha::AppId::new("{87EFFACE-864D-49A5-9BB3-4B050A7C227A}"),
                "{ctx}"
            );
            assert_eq!(
                app.version, "ForcedUpdate",
                "{ctx}: versions in requests are kept as sent"
            );
            assert!(app.parsed_version().is_none(), "{ctx}");
            for key in ["bootid", "machineid", "track", "board", "delta_okay"] {
                assert!(app.extra.contains_key(key), "{ctx}: {key}");
            }
            assert_eq!(app.extra["track"], "dev-channel");
            let ping = app.ping.as_ref().expect("ping");
            assert_eq!(
                (ping.active, ping.a, ping.r),
                (Some(true), Some(-1), Some(-1)),
                "{ctx}: ping"
            );
            assert!(app.updatecheck.is_some(), "{ctx}");
            assert_eq!(app.events[0].eventtype, EventType::Update, "{ctx}");
            assert_eq!(
                app.events[0].eventresult,
                EventResult::SuccessReboot,
                "{ctx}"
            );
            // What parses is written back to the same request.
            let again = omaha::parse_request(r.to_body().as_bytes(), Some(Protocol::Xml30))
                .expect("round trip");
            assert_eq!(again, r, "{ctx}: round trip");
        }
        other => panic!("{ctx}: no checks for request fixture {other}"),
    }
}

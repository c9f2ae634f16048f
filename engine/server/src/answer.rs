//! The Omaha answer to an update check, decided from the releases and the
//! rollout state alone ([`View`]): per app the offer (manifest and 4.0
//! pipeline), `noupdate` or an error status, the cohort naming the
//! machine's rollout bucket, and install data.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use time::OffsetDateTime;
use upkeep_core::omaha::{
    App, AppStatus, Data, DataRequest, DataStatus, Daystart, Manifest, Operation, OperationType,
    Package, Pipeline, Request, Response, UpdateCheck, UpdateCheckStatus,
};

use crate::decision::{Catalog, Decision, Release};
use crate::rollout::Bucket;
use crate::view::View;

/// The `server` member of every response.
pub const SERVER_NAME: &str = "upkeep";

/// Characters escaped in a URL path component.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub use upkeep_core::omaha::join_args;

/// The codebase URL of a release: `<base>/targets/apps/<app>/<version>/`.
pub fn codebase(base: &str, release: &Release) -> String {
    let dir: Vec<String> = release
        .dir()
        .split('/')
        .map(|c| utf8_percent_encode(c, COMPONENT).to_string())
        .collect();
    format!("{}/targets/{}/", base.trim_end_matches('/'), dir.join("/"))
}

/// The URL of the file `name` under a release's `codebase`.
pub(crate) fn file_url(codebase: &str, name: &str) -> String {
    format!("{codebase}{}", utf8_percent_encode(name, COMPONENT))
}

fn daystart(now: OffsetDateTime) -> Daystart {
    let epoch = time::Date::from_calendar_date(2007, time::Month::January, 1)
        .map(|d| d.midnight().assume_utc());
    let days = epoch.map(|e| (now - e).whole_days()).ok();
    let (h, m, s) = now.to_hms();
    Daystart {
        elapsed_days: days,
        elapsed_seconds: Some(i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s)),
    }
}

/// The `ok` update check offering `release`, its files under `base`.
pub(crate) fn update_check(release: &Release, base: &str) -> UpdateCheck {
    let url = codebase(base, release);
    let arguments =
        (!release.installer_args.is_empty()).then(|| join_args(&release.installer_args));
    let run = release.files.first().map(|f| f.name.clone());
    let mut uc = UpdateCheck::with_status(UpdateCheckStatus::Ok);
    uc.next_version = Some(release.version.clone());
    uc.urls = vec![url.clone()];
    uc.manifest = Some(Manifest {
        version: release.version.clone(),
        prodversionmin: None,
        run: run.clone(),
        arguments: arguments.clone(),
        packages: release
            .files
            .iter()
            .map(|f| Package {
                name: f.name.clone(),
                fingerprint: Some(f.sha256.clone()),
                hash_sha256: Some(f.sha256.clone()),
                size: f.length,
                ..Package::default()
            })
            .collect(),
        actions: Vec::new(),
    });
    let mut operations: Vec<Operation> = release
        .files
        .iter()
        .map(|f| Operation {
            kind: OperationType::Download,
            urls: vec![file_url(&url, &f.name)],
            sha256_out: Some(f.sha256.clone()),
            sha256_in: None,
            sha256_previous: None,
            path: None,
            arguments: None,
            size: f.length,
        })
        .collect();
    operations.push(Operation {
        kind: OperationType::Run,
        urls: Vec::new(),
        sha256_out: None,
        sha256_in: None,
        sha256_previous: None,
        path: run,
        arguments,
        size: 0,
    });
    uc.pipelines = vec![Pipeline {
        pipeline_id: Some("full".into()),
        operations,
    }];
    uc
}

/// The answer to one data request: `ok` with the text for a known install
/// data index, `error-nodata` for an unknown one, `error-invalidargs` for
/// another kind of data or a missing index.
fn data_answer(
    catalog: &Catalog,
    appid: &str,
    offered: Option<&Release>,
    asked: &DataRequest,
) -> Data {
    let mut answer = Data {
        name: Some(asked.name.clone()),
        index: asked.index.clone(),
        status: DataStatus::InvalidArgs,
        text: String::new(),
    };
    if asked.name != "install" {
        return answer;
    }
    let Some(index) = asked.index.as_deref() else {
        return answer;
    };
    match catalog.install_data(appid, offered, index) {
        Some(text) => {
            answer.status = DataStatus::Ok;
            answer.text = text.to_owned();
        }
        None => answer.status = DataStatus::NoData,
    }
    answer
}

/// The response to `request`, decided from `view` alone. `base` is the
/// public base URL of the server (no trailing slash).
///
/// Every known app is answered with the cohort naming its rollout bucket:
/// the one the request sent when this server gave it, else a new one drawn
/// at random (see [`crate::rollout`]).
pub fn answer(view: &View, request: &Request, base: &str, now: OffsetDateTime) -> Response {
    let catalog = &view.catalog;
    let mut response = Response::new(request.protocol);
    response.server = Some(SERVER_NAME.into());
    response.daystart = daystart(now);
    for asked in &request.apps {
        let bucket = asked
            .cohort
            .cohort
            .as_deref()
            .and_then(Bucket::from_cohort)
            .unwrap_or_else(Bucket::random);
        let decision = catalog.decide(asked, &view.rollouts, bucket);
        let mut app = App::new(asked.appid.clone(), AppStatus::Ok);
        app.cohort = asked.cohort.clone();
        if asked.ping.is_some() {
            app.ping_status = Some("ok".into());
        }
        app.event_statuses = asked.events.iter().map(|_| "ok".to_owned()).collect();
        // An app that only pings still gets `noupdate`: clients (upkeep's
        // own parser among them) drop an `ok` app without an update check.
        match decision {
            Decision::UnknownApplication => app.status = AppStatus::UnknownApplication,
            _ if asked.updatecheck.is_none() => {
                app.updatecheck = Some(UpdateCheck::with_status(UpdateCheckStatus::NoUpdate));
            }
            Decision::NoUpdate => {
                app.updatecheck = Some(UpdateCheck::with_status(UpdateCheckStatus::NoUpdate));
            }
            Decision::Update(release) => {
                let mut uc = update_check(release, base);
                crate::patches::offer(&mut uc, catalog, release, asked, &codebase(base, release));
                app.updatecheck = Some(uc);
            }
        }
        if app.status == AppStatus::Ok {
            app.cohort.cohort = Some(bucket.cohort());
            let offered = match decision {
                Decision::Update(release) if asked.updatecheck.is_some() => Some(release),
                _ => None,
            };
            app.data = asked
                .data
                .iter()
                .map(|d| data_answer(catalog, asked.appid.as_str(), offered, d))
                .collect();
        }
        response.apps.push(app);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::ReleaseFile;
    use upkeep_core::omaha::Protocol;
    use upkeep_core::omaha::{parse_request, parse_response};
    use upkeep_core::version::Version;

    fn catalog() -> Catalog {
        let version: Version = "2.0".parse().unwrap();
        Catalog::from_releases(vec![Release {
            app: "{ABC}".into(),
            channel: String::new(),
            installer_args: vec!["--quiet".into(), "a b".into()],
            install_data: [("en".to_owned(), "lang=en".to_owned())].into(),
            files: vec![ReleaseFile {
                name: "setup.bin".into(),
                target_path: "apps/{abc}/2.0/setup.bin".into(),
                length: 42,
                sha256: "ab".repeat(32),
            }],
            version,
        }])
    }

    fn view() -> View {
        View {
            catalog: catalog(),
            rollouts: crate::rollout::Rollouts::default(),
        }
    }

    fn request(protocol: &str) -> Request {
        let apps = r#"[{"appid":"{abc}","version":"1.0","cohort":"1:a","updatecheck":{},"ping":{"r":1}},
                      {"appid":"{ABC}","version":"2.0","updatecheck":{}},
                      {"appid":"nobody","version":"1.0","updatecheck":{}},
                      {"appid":"{ABC}","version":"1.0","ping":{"r":1}}]"#;
        let key = if protocol == "4.0" { "apps" } else { "app" };
        let body = format!(
            r#"{{"request":{{"protocol":"{protocol}","sessionid":"{{s}}","requestid":"{{r}}","{key}":{apps}}}}}"#
        );
        parse_request(body.as_bytes(), None).unwrap()
    }

    #[test]
    fn many_apps_in_one_answer_3_1() {
        let now = OffsetDateTime::now_utc();
        let r = answer(&view(), &request("3.1"), "http://h:1", now);
        let parsed =
            parse_response(r.to_body(Protocol::Json31).as_bytes(), Protocol::Json31).unwrap();
        assert!(parsed.app_errors.is_empty(), "{:?}", parsed.app_errors);
        assert_eq!(parsed.apps.len(), 4);
        let first = &parsed.apps[0];
        assert_eq!(first.appid.as_str(), "{abc}");
        assert_eq!(first.result_status(), "ok");
        // A cohort this server did not give is replaced by a bucket's.
        let cohort = first.cohort.cohort.as_deref().unwrap();
        assert!(Bucket::from_cohort(cohort).is_some(), "{cohort}");
        let uc = first.updatecheck.as_ref().unwrap();
        assert_eq!(uc.urls, ["http://h:1/targets/apps/%7Babc%7D/2.0/"]);
        let m = uc.manifest.as_ref().unwrap();
        assert_eq!(m.version.to_string(), "2.0");
        assert_eq!(m.arguments.as_deref(), Some("--quiet \"a b\""));
        assert_eq!(m.packages[0].size, 42);
        assert_eq!(
            m.packages[0].hash_sha256.as_deref(),
            Some("ab".repeat(32).as_str())
        );
        assert_eq!(parsed.apps[1].result_status(), "noupdate");
        assert_eq!(parsed.apps[2].result_status(), "error-unknownApplication");
        // A ping without an update check is answered `noupdate`, even
        // though a newer release exists.
        assert_eq!(parsed.apps[3].result_status(), "noupdate");
        assert!(parsed.daystart.elapsed_days.unwrap() > 6000);
    }

    #[test]
    fn a_machine_keeps_its_bucket_and_a_staged_release_follows_it() {
        use crate::rollout::{Change, Rollouts};
        let now = OffsetDateTime::now_utc();
        let mut rollouts = Rollouts::default();
        rollouts.apply(
            "{abc}",
            &"2.0".parse().unwrap(),
            Change::Percent("50".parse().unwrap()),
            "t",
        );
        let v = View {
            catalog: catalog(),
            rollouts,
        };
        for (cohort, offered) in [("1:b4999:", true), ("1:b5000:", false)] {
            let body = format!(
                r#"{{"request":{{"protocol":"3.1","sessionid":"{{s}}","requestid":"{{r}}","app":[
                   {{"appid":"{{abc}}","version":"1.0","cohort":"{cohort}","cohortname":"n","updatecheck":{{}}}}]}}}}"#
            );
            let request = parse_request(body.as_bytes(), None).unwrap();
            for _ in 0..3 {
                let r = answer(&v, &request, "http://h:1", now);
                let parsed =
                    parse_response(r.to_body(Protocol::Json31).as_bytes(), Protocol::Json31)
                        .unwrap();
                let app = &parsed.apps[0];
                assert_eq!(app.cohort.cohort.as_deref(), Some(cohort));
                assert_eq!(app.cohort.cohortname.as_deref(), Some("n"));
                let status = if offered { "ok" } else { "noupdate" };
                assert_eq!(app.result_status(), status, "{cohort}");
            }
        }
    }

    #[test]
    fn every_event_is_acknowledged_in_3_1_and_4_0() {
        let now = OffsetDateTime::now_utc();
        for (protocol, dialect, key) in [
            ("3.1", Protocol::Json31, "app"),
            ("4.0", Protocol::Json40, "apps"),
        ] {
            let events = if protocol == "4.0" { "events" } else { "event" };
            let body = format!(
                r#"{{"request":{{"protocol":"{protocol}","sessionid":"{{s}}","requestid":"{{r}}","{key}":[
                   {{"appid":"{{abc}}","version":"1.0","updatecheck":{{}},"{events}":[{{"eventtype":3,"eventresult":1}}]}},
                   {{"appid":"nobody","version":"1.0","{events}":[{{"eventtype":4,"eventresult":1}},{{"eventtype":2,"eventresult":0}}]}}]}}}}"#
            );
            let request = parse_request(body.as_bytes(), None).unwrap();
            let r = answer(&view(), &request, "http://h:1", now);
            let parsed = parse_response(r.to_body(dialect).as_bytes(), dialect).unwrap();
            assert_eq!(parsed.apps[0].event_statuses, ["ok"], "{protocol}");
            // An app the server does not know: its events are stored and
            // acknowledged all the same.
            assert_eq!(parsed.apps[1].event_statuses, ["ok", "ok"], "{protocol}");
        }
    }

    #[test]
    fn the_4_0_answer_has_a_download_and_run_pipeline() {
        let now = OffsetDateTime::now_utc();
        let r = answer(&view(), &request("4.0"), "http://h:1/", now);
        let parsed =
            parse_response(r.to_body(Protocol::Json40).as_bytes(), Protocol::Json40).unwrap();
        assert!(parsed.app_errors.is_empty(), "{:?}", parsed.app_errors);
        let uc = parsed.apps[0].updatecheck.as_ref().unwrap();
        assert_eq!(uc.next_version.as_ref().unwrap().to_string(), "2.0");
        let ops = &uc.pipelines[0].operations;
        assert_eq!(ops[0].kind, OperationType::Download);
        assert_eq!(
            ops[0].urls,
            ["http://h:1/targets/apps/%7Babc%7D/2.0/setup.bin"]
        );
        assert_eq!(ops[0].size, 42);
        assert_eq!(ops[1].kind, OperationType::Run);
        assert_eq!(ops[1].path.as_deref(), Some("setup.bin"));
        assert_eq!(ops[1].arguments.as_deref(), Some("--quiet \"a b\""));
        assert_eq!(parsed.apps[2].result_status(), "error-unknownApplication");
    }

    #[test]
    fn install_data_is_answered_by_index_in_3_1_and_4_0() {
        let now = OffsetDateTime::now_utc();
        for (protocol, dialect) in [("3.1", Protocol::Json31), ("4.0", Protocol::Json40)] {
            let key = if protocol == "4.0" { "apps" } else { "app" };
            let body = format!(
                r#"{{"request":{{"protocol":"{protocol}","sessionid":"{{s}}","requestid":"{{r}}","{key}":[
                    {{"appid":"{{abc}}","version":"","updatecheck":{{}},
                      "data":[{{"name":"install","index":"en"}},{{"name":"install","index":"xx"}},
                              {{"name":"untrusted"}}]}},
                    {{"appid":"{{abc}}","version":"2.0","updatecheck":{{}},
                      "data":[{{"name":"install","index":"en"}}]}}]}}}}"#
            );
            let request = parse_request(body.as_bytes(), None).unwrap();
            let r = answer(&view(), &request, "http://h:1", now);
            let parsed = parse_response(r.to_body(dialect).as_bytes(), dialect).unwrap();
            assert!(parsed.app_errors.is_empty(), "{:?}", parsed.app_errors);
            let data = &parsed.apps[0].data;
            assert_eq!(data.len(), 3, "{protocol}");
            assert_eq!(data[0].name.as_deref(), Some("install"));
            assert_eq!(data[0].index.as_deref(), Some("en"));
            assert_eq!(data[0].status, DataStatus::Ok);
            assert_eq!(data[0].text, "lang=en");
            assert_eq!(data[1].index.as_deref(), Some("xx"));
            assert_eq!(data[1].status, DataStatus::NoData);
            assert_eq!(data[2].status, DataStatus::InvalidArgs);
            // Without an offer the newest release's data still answers.
            assert_eq!(parsed.apps[1].result_status(), "noupdate");
            assert_eq!(parsed.apps[1].data[0].text, "lang=en");
        }
    }

    #[test]
    fn arguments_are_quoted_when_needed() {
        let args: Vec<String> = ["--a", "", "x y", "q\"uote", "back\\slash"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(join_args(&args), r#"--a "" "x y" "q\"uote" "back\\slash""#);
    }
}

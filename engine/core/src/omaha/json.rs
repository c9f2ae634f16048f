//! Protocol 3.1 and 4.0 JSON responses: parsing and serialization.
//!
//! The rules mirror Chromium's `update_client` parsers: a malformed app is
//! dropped and recorded, the document as a whole still parses; unknown
//! members are ignored.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::error::{AppError, AppErrorKind, ProtocolError};
use super::types::*;
use super::{Flavor, Protocol, protocol_size, strip_safe_json_prefix, valid_url};
use crate::version::Version;

type Obj = Map<String, Value>;

fn string(node: &Obj, key: &str) -> Option<String> {
    node.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn int(node: &Obj, key: &str) -> Option<i64> {
    node.get(key)
        .and_then(|v| v.as_i64().filter(|n| i32::try_from(*n).is_ok()))
}

fn custom_attributes(node: &Obj) -> BTreeMap<String, String> {
    node.iter()
        .filter(|(k, _)| k.starts_with('_'))
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
        .collect()
}

fn version(field: &'static str, text: String) -> Result<Version, AppErrorKind> {
    text.parse().map_err(|source| AppErrorKind::InvalidVersion {
        field,
        value: text,
        source,
    })
}

/// The entries of a list of apps: the member `names[0]`, else `names[1]`
/// (4.0 says `apps`, 3.1 `app`; either dialect's parsers accept both). A
/// single value instead of a list is one entry, so that a single app object
/// is read as such and anything else is refused as a malformed app.
pub(crate) fn app_entries<'a>(node: &'a Obj, names: [&str; 2]) -> Vec<&'a Value> {
    match node.get(names[0]).or_else(|| node.get(names[1])) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one) => vec![one],
    }
}

/// Parses a JSON response; `expected` is the protocol of the request, or
/// `None` to accept 3.1 or 4.0 as the document says (and `"3.0"`,
/// Fuchsia's label, as 3.1). The `)]}'` prefix is required either way.
pub(crate) fn parse_response(
    text: &str,
    expected: Option<Protocol>,
) -> Result<Response, ProtocolError> {
    let trimmed = text.trim_start_matches('\u{feff}');
    let json = strip_safe_json_prefix(trimmed).ok_or(ProtocolError::MissingSafeJsonPrefix)?;
    let doc: Value = serde_json::from_str(json)?;
    let doc = doc.as_object().ok_or(ProtocolError::NotAnObject)?;
    let response = doc
        .get("response")
        .and_then(Value::as_object)
        .ok_or(ProtocolError::MissingRoot("response"))?;
    let found = response
        .get("protocol")
        .and_then(Value::as_str)
        .ok_or(ProtocolError::MissingProtocol)?;
    let protocol = match expected {
        Some(p) if p.version() == found => p,
        Some(p) => {
            return Err(ProtocolError::ProtocolMismatch {
                expected: p.version(),
                found: found.to_owned(),
            });
        }
        None => match found {
            "3.1" | "3.0" => Protocol::Json31,
            "4.0" => Protocol::Json40,
            other => return Err(ProtocolError::UnsupportedProtocol(other.to_owned())),
        },
    };

    let mut out = Response::new(protocol);
    out.server = string(response, "server");
    if let Some(daystart) = response.get("daystart").and_then(Value::as_object) {
        out.daystart.elapsed_days = int(daystart, "elapsed_days");
        if protocol == Protocol::Json31 {
            out.daystart.elapsed_seconds = int(daystart, "elapsed_seconds");
        }
    }
    if let Some(req) = response
        .get("systemrequirements")
        .and_then(Value::as_object)
    {
        out.systemrequirements = Some(SystemRequirements {
            platform: string(req, "platform"),
            arch: string(req, "arch"),
            min_os_version: string(req, "min_os_version"),
        });
    }
    let names = if protocol == Protocol::Json40 {
        ["apps", "app"]
    } else {
        ["app", "apps"]
    };
    for (index, node) in app_entries(response, names).into_iter().enumerate() {
        let parsed = match protocol {
            Protocol::Json40 => parse_app40(node),
            _ => parse_app31(node),
        };
        match parsed {
            Ok(app) => out.apps.push(app),
            Err(kind) => {
                let appid = node.get("appid").and_then(Value::as_str).map(str::to_owned);
                let error = AppError { index, appid, kind };
                tracing::warn!(%error, "dropping malformed app from {protocol} response");
                out.app_errors.push(error);
            }
        }
    }
    Ok(out)
}

fn base_app(node: &Obj, appid: String) -> App {
    let mut app = App::new(AppId::new(appid), AppStatus::Ok);
    app.cohort = Cohort {
        cohort: string(node, "cohort"),
        cohorthint: string(node, "cohorthint"),
        cohortname: string(node, "cohortname"),
    };
    app.extras = custom_attributes(node);
    app
}

/// The statuses of the event acknowledgements under `key` (`event` in
/// 3.1, `events` in 4.0): one object per event of the request, in order.
fn parse_event_acks(node: &Obj, key: &str) -> Vec<String> {
    let Some(list) = node.get(key).and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|e| {
            e.as_object()
                .and_then(|e| string(e, "status"))
                .unwrap_or_default()
        })
        .collect()
}

fn parse_data(node: &Obj) -> Vec<Data> {
    let Some(list) = node.get("data").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_object)
        .map(|d| Data {
            name: string(d, "name"),
            index: string(d, "index"),
            status: string(d, "status")
                .map(|s| DataStatus::parse(&s))
                .unwrap_or_default(),
            text: string(d, "#text").unwrap_or_default(),
        })
        .collect()
}

// ---------------------------------------------------------------- 3.1 ----

fn parse_app31(node: &Value) -> Result<App, AppErrorKind> {
    let node = node.as_object().ok_or(AppErrorKind::NotAnObject)?;
    let appid = string(node, "appid")
        .filter(|s| !s.is_empty())
        .ok_or(AppErrorKind::MissingAppId)?;
    let mut app = base_app(node, appid);
    app.event_statuses = parse_event_acks(node, EVENTS31);
    if let Some(status) = string(node, "status") {
        app.status = AppStatus::parse(&status);
        match app.status {
            AppStatus::Restricted | AppStatus::UnknownApplication | AppStatus::InvalidAppId => {
                return Ok(app);
            }
            AppStatus::Ok => {}
            _ if status.is_empty() => app.status = AppStatus::Ok,
            _ => return Err(AppErrorKind::UnknownAppStatus(status)),
        }
    }
    app.data = parse_data(node);
    let uc = node
        .get("updatecheck")
        .and_then(Value::as_object)
        .ok_or(AppErrorKind::MissingUpdateCheck)?;
    app.updatecheck = Some(parse_updatecheck31(uc)?);
    Ok(app)
}

fn parse_actions31(uc: &Obj) -> Vec<Action> {
    let Some(list) = uc
        .get("actions")
        .and_then(Value::as_object)
        .and_then(|a| a.get("action"))
    else {
        return Vec::new();
    };
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(|a| Action {
            event: string(a, "event"),
            run: string(a, "run"),
            arguments: string(a, "arguments"),
            needsadmin: string(a, "needsadmin"),
            onsuccess: string(a, "onsuccess"),
            attributes: BTreeMap::new(),
        })
        .collect()
}

fn parse_updatecheck31(uc: &Obj) -> Result<UpdateCheck, AppErrorKind> {
    let status = string(uc, "status").ok_or(AppErrorKind::MissingUpdateCheckStatus)?;
    let mut out = UpdateCheck::with_status(UpdateCheckStatus::parse(&status));
    out.custom_attributes = custom_attributes(uc);
    out.info = string(uc, "info");
    match out.status {
        UpdateCheckStatus::NoUpdate => {
            out.actions = parse_actions31(uc);
            Ok(out)
        }
        UpdateCheckStatus::Ok => {
            out.actions = parse_actions31(uc);
            let urls = uc
                .get("urls")
                .and_then(Value::as_object)
                .and_then(|u| u.get("url"))
                .and_then(Value::as_array)
                .ok_or(AppErrorKind::MissingUrls)?;
            for url in urls.iter().filter_map(Value::as_object) {
                if let Some(Ok(u)) = url.get("codebase").and_then(Value::as_str).map(valid_url) {
                    out.urls.push(u);
                }
                if let Some(Ok(u)) = url
                    .get("codebasediff")
                    .and_then(Value::as_str)
                    .map(valid_url)
                {
                    out.diff_urls.push(u);
                }
            }
            if out.urls.is_empty() {
                return Err(AppErrorKind::NoValidCodebase);
            }
            let manifest = uc
                .get("manifest")
                .and_then(Value::as_object)
                .ok_or(AppErrorKind::MissingManifest)?;
            let manifest = parse_manifest31(manifest)?;
            out.next_version = Some(manifest.version.clone());
            out.manifest = Some(manifest);
            Ok(out)
        }
        _ => Err(AppErrorKind::UpdateCheckFailed(status)),
    }
}

fn parse_manifest31(m: &Obj) -> Result<Manifest, AppErrorKind> {
    let v = string(m, "version").ok_or(AppErrorKind::MissingManifestVersion)?;
    let v = version("manifest version", v)?;
    let prodversionmin = match string(m, "prodversionmin") {
        Some(p) => Some(version("prodversionmin", p)?),
        None => None,
    };
    let list = m
        .get("packages")
        .and_then(Value::as_object)
        .and_then(|p| p.get("package"))
        .and_then(Value::as_array)
        .ok_or(AppErrorKind::MissingPackages)?;
    let mut packages = Vec::new();
    for p in list {
        let p = p.as_object().ok_or(AppErrorKind::PackageNotAnObject)?;
        packages.push(Package {
            name: string(p, "name").ok_or(AppErrorKind::MissingPackageName)?,
            namediff: string(p, "namediff"),
            fingerprint: string(p, "fp"),
            hash: None,
            hash_sha256: string(p, "hash_sha256"),
            hashdiff_sha256: string(p, "hashdiff_sha256"),
            size: protocol_size(p.get("size")),
            sizediff: protocol_size(p.get("sizediff")),
            required: None,
        });
    }
    Ok(Manifest {
        version: v,
        prodversionmin,
        run: string(m, "run"),
        arguments: string(m, "arguments"),
        packages,
        actions: Vec::new(),
    })
}

// ---------------------------------------------------------------- 4.0 ----

fn parse_app40(node: &Value) -> Result<App, AppErrorKind> {
    let node = node.as_object().ok_or(AppErrorKind::NotAnObject)?;
    let appid = string(node, "appid").ok_or(AppErrorKind::MissingAppId)?;
    let mut app = base_app(node, appid);
    app.event_statuses = parse_event_acks(node, EVENTS40);
    let status = string(node, "status").ok_or(AppErrorKind::MissingStatus)?;
    app.status = AppStatus::parse(&status);
    if app.status != AppStatus::Ok {
        return Ok(app);
    }
    app.data = parse_data(node);
    let uc = node
        .get("updatecheck")
        .and_then(Value::as_object)
        .ok_or(AppErrorKind::MissingUpdateCheck)?;
    app.updatecheck = Some(parse_updatecheck40(uc)?);
    Ok(app)
}

fn parse_updatecheck40(uc: &Obj) -> Result<UpdateCheck, AppErrorKind> {
    let status = string(uc, "status").ok_or(AppErrorKind::MissingUpdateCheckStatus)?;
    let mut out = UpdateCheck::with_status(UpdateCheckStatus::parse(&status));
    out.custom_attributes = custom_attributes(uc);
    out.info = string(uc, "info");
    if out.status != UpdateCheckStatus::Ok {
        // `noupdate` and error statuses are reported as the app's result.
        return Ok(out);
    }
    let next = string(uc, "nextversion").ok_or(AppErrorKind::MissingNextVersion)?;
    out.next_version = Some(version("nextversion", next)?);
    if let Some(list) = uc.get("pipelines").and_then(Value::as_array) {
        for p in list {
            out.pipelines.push(parse_pipeline(p)?);
        }
    }
    Ok(out)
}

fn parse_pipeline(node: &Value) -> Result<Pipeline, AppErrorKind> {
    let node = node.as_object().ok_or(AppErrorKind::PipelineNotAnObject)?;
    let mut pipeline = Pipeline {
        pipeline_id: string(node, "pipeline_id"),
        operations: Vec::new(),
    };
    if let Some(list) = node.get("operations").and_then(Value::as_array) {
        for op in list {
            pipeline.operations.push(parse_operation(op)?);
        }
    }
    Ok(pipeline)
}

fn nested_sha256(node: &Obj, outer: &str) -> Option<String> {
    node.get(outer)
        .and_then(Value::as_object)
        .and_then(|o| string(o, "sha256"))
}

fn parse_operation(node: &Value) -> Result<Operation, AppErrorKind> {
    let node = node.as_object().ok_or(AppErrorKind::OperationNotAnObject)?;
    let kind = string(node, "type").ok_or(AppErrorKind::MissingOperationType)?;
    let mut op = Operation {
        kind: OperationType::parse(&kind),
        urls: Vec::new(),
        sha256_out: nested_sha256(node, "out"),
        sha256_in: nested_sha256(node, "in"),
        sha256_previous: nested_sha256(node, "previous"),
        path: string(node, "path"),
        arguments: string(node, "arguments"),
        size: protocol_size(node.get("size")),
    };
    if let Some(list) = node.get("urls").and_then(Value::as_array) {
        for entry in list {
            let url = entry
                .as_object()
                .and_then(|u| u.get("url"))
                .and_then(Value::as_str)
                .ok_or(AppErrorKind::MissingUrl)?;
            let url = valid_url(url).map_err(|reason| AppErrorKind::MalformedUrl {
                url: url.to_owned(),
                reason,
            })?;
            op.urls.push(url);
        }
    }
    Ok(op)
}

// ---------------------------------------------------------- writing ----

fn put(obj: &mut Obj, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        obj.insert(key.to_owned(), Value::String(v.clone()));
    }
}

fn cohort_and_extras(obj: &mut Obj, app: &App) {
    put(obj, "cohort", &app.cohort.cohort);
    put(obj, "cohorthint", &app.cohort.cohorthint);
    put(obj, "cohortname", &app.cohort.cohortname);
    for (k, v) in &app.extras {
        obj.insert(k.clone(), Value::String(v.clone()));
    }
}

fn data_json(data: &[Data]) -> Value {
    Value::Array(
        data.iter()
            .map(|d| {
                let mut o = Obj::new();
                put(&mut o, "name", &d.name);
                put(&mut o, "index", &d.index);
                o.insert("status".into(), json!(d.status.as_str()));
                o.insert("#text".into(), json!(d.text));
                Value::Object(o)
            })
            .collect(),
    )
}

fn daystart_json(d: &Daystart, with_seconds: bool) -> Option<Value> {
    let mut o = Obj::new();
    if let Some(days) = d.elapsed_days {
        o.insert("elapsed_days".into(), json!(days));
    }
    if with_seconds && let Some(secs) = d.elapsed_seconds {
        o.insert("elapsed_seconds".into(), json!(secs));
    }
    (!o.is_empty()).then_some(Value::Object(o))
}

fn response_head(response: &Response, protocol: Protocol, flavor: Flavor) -> Obj {
    let mut r = Obj::new();
    r.insert("protocol".into(), json!(flavor.label(protocol)));
    put(&mut r, "server", &response.server);
    if let Some(d) = daystart_json(&response.daystart, protocol == Protocol::Json31) {
        r.insert("daystart".into(), d);
    }
    if let Some(req) = &response.systemrequirements {
        let mut o = Obj::new();
        put(&mut o, "platform", &req.platform);
        put(&mut o, "arch", &req.arch);
        put(&mut o, "min_os_version", &req.min_os_version);
        r.insert("systemrequirements".into(), Value::Object(o));
    }
    r
}

/// The guarded body `)]}'\n{"response":r}`, serialised straight from the
/// tree (no copy of it).
fn finish(r: Obj) -> String {
    let mut body = Obj::new();
    body.insert("response".into(), Value::Object(r));
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(super::SAFE_JSON_PREFIX.as_bytes());
    out.push(b'\n');
    // Writing a `Value` into a `Vec` cannot fail, and its output is UTF-8.
    if serde_json::to_writer(&mut out, &Value::Object(body)).is_err() {
        out.truncate(super::SAFE_JSON_PREFIX.len() + 1);
    }
    String::from_utf8(out).unwrap_or_default()
}

fn updatecheck_head(uc: &UpdateCheck) -> Obj {
    let mut o = Obj::new();
    o.insert("status".into(), json!(uc.status.as_str()));
    put(&mut o, "info", &uc.info);
    for (k, v) in &uc.custom_attributes {
        o.insert(k.clone(), json!(v));
    }
    o
}

/// The members of a response app both JSON dialects write alike: id,
/// status, cohort fields, `_` extras and data.
/// The member acknowledging a request's events in 3.1.
const EVENTS31: &str = "event";
/// The member acknowledging a request's events in 4.0.
const EVENTS40: &str = "events";

fn app_head(app: &App, events_key: &str) -> Obj {
    let mut o = Obj::new();
    o.insert("appid".into(), json!(app.appid.as_str()));
    o.insert("status".into(), json!(app.status.as_str()));
    cohort_and_extras(&mut o, app);
    if !app.data.is_empty() {
        o.insert("data".into(), data_json(&app.data));
    }
    if !app.event_statuses.is_empty() {
        let acks: Vec<Value> = app
            .event_statuses
            .iter()
            .map(|s| json!({ "status": s }))
            .collect();
        o.insert(events_key.into(), Value::Array(acks));
    }
    o
}

/// Writes a response as protocol 3.1 JSON, safe-JSON prefix included, in
/// the spelling of `flavor`.
pub(crate) fn write_response31(response: &Response, flavor: Flavor) -> String {
    let fuchsia = flavor == Flavor::Fuchsia;
    let mut r = response_head(response, Protocol::Json31, flavor);
    let apps: Vec<Value> = response
        .apps
        .iter()
        .map(|app| {
            let mut o = app_head(app, EVENTS31);
            if let Some(uc) = &app.updatecheck {
                let mut u = updatecheck_head(uc);
                if !uc.actions.is_empty() {
                    let actions: Vec<Value> = uc.actions.iter().map(action_json).collect();
                    u.insert("actions".into(), json!({ "action": actions }));
                }
                if !uc.urls.is_empty() || !uc.diff_urls.is_empty() {
                    let mut urls: Vec<Value> =
                        uc.urls.iter().map(|u| json!({ "codebase": u })).collect();
                    urls.extend(uc.diff_urls.iter().map(|u| json!({ "codebasediff": u })));
                    u.insert("urls".into(), json!({ "url": urls }));
                }
                if let Some(m) = &uc.manifest {
                    let mut mo = Obj::new();
                    mo.insert("version".into(), json!(m.version.to_string()));
                    if let Some(p) = &m.prodversionmin {
                        mo.insert("prodversionmin".into(), json!(p.to_string()));
                    }
                    put(&mut mo, "run", &m.run);
                    put(&mut mo, "arguments", &m.arguments);
                    let mut packages: Vec<Value> = m.packages.iter().map(package_json).collect();
                    if fuchsia {
                        // Its parser needs `required` and `actions`.
                        for (value, p) in packages.iter_mut().zip(&m.packages) {
                            value["required"] = json!(p.required.unwrap_or(true));
                        }
                        let actions: Vec<Value> = m.actions.iter().map(action_json).collect();
                        mo.insert("actions".into(), json!({ "action": actions }));
                    }
                    mo.insert("packages".into(), json!({ "package": packages }));
                    u.insert("manifest".into(), Value::Object(mo));
                }
                o.insert("updatecheck".into(), Value::Object(u));
            }
            Value::Object(o)
        })
        .collect();
    r.insert("app".into(), Value::Array(apps));
    finish(r)
}

fn action_json(a: &Action) -> Value {
    let mut o = Obj::new();
    put(&mut o, "event", &a.event);
    put(&mut o, "run", &a.run);
    put(&mut o, "arguments", &a.arguments);
    put(&mut o, "needsadmin", &a.needsadmin);
    put(&mut o, "onsuccess", &a.onsuccess);
    Value::Object(o)
}

fn package_json(p: &Package) -> Value {
    let mut o = Obj::new();
    o.insert("name".into(), json!(p.name));
    put(&mut o, "namediff", &p.namediff);
    put(&mut o, "fp", &p.fingerprint);
    put(&mut o, "hash_sha256", &p.hash_sha256);
    put(&mut o, "hashdiff_sha256", &p.hashdiff_sha256);
    if p.size > 0 {
        o.insert("size".into(), json!(p.size));
    }
    if p.sizediff > 0 {
        o.insert("sizediff".into(), json!(p.sizediff));
    }
    Value::Object(o)
}

/// Writes a response as protocol 4.0 JSON, safe-JSON prefix included.
pub(crate) fn write_response40(response: &Response) -> String {
    let mut r = response_head(response, Protocol::Json40, Flavor::Standard);
    let apps: Vec<Value> = response
        .apps
        .iter()
        .map(|app| {
            let mut o = app_head(app, EVENTS40);
            if let Some(uc) = &app.updatecheck {
                let mut u = updatecheck_head(uc);
                if let Some(v) = &uc.next_version {
                    u.insert("nextversion".into(), json!(v.to_string()));
                }
                if !uc.pipelines.is_empty() {
                    let pipelines: Vec<Value> = uc.pipelines.iter().map(pipeline_json).collect();
                    u.insert("pipelines".into(), Value::Array(pipelines));
                }
                o.insert("updatecheck".into(), Value::Object(u));
            }
            Value::Object(o)
        })
        .collect();
    r.insert("apps".into(), Value::Array(apps));
    finish(r)
}

fn pipeline_json(p: &Pipeline) -> Value {
    let mut o = Obj::new();
    put(&mut o, "pipeline_id", &p.pipeline_id);
    let ops: Vec<Value> = p
        .operations
        .iter()
        .map(|op| {
            let mut oo = Obj::new();
            oo.insert("type".into(), json!(op.kind.as_str()));
            if !op.urls.is_empty() {
                let urls: Vec<Value> = op.urls.iter().map(|u| json!({ "url": u })).collect();
                oo.insert("urls".into(), Value::Array(urls));
            }
            for (key, hash) in [
                ("out", &op.sha256_out),
                ("in", &op.sha256_in),
                ("previous", &op.sha256_previous),
            ] {
                if let Some(h) = hash {
                    oo.insert(key.into(), json!({ "sha256": h }));
                }
            }
            put(&mut oo, "path", &op.path);
            put(&mut oo, "arguments", &op.arguments);
            if op.size > 0 {
                oo.insert("size".into(), json!(op.size));
            }
            Value::Object(oo)
        })
        .collect();
    o.insert("operations".into(), Value::Array(ops));
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, p: Protocol) -> Response {
        parse_response(text, Some(p)).unwrap()
    }

    #[test]
    fn cohorts_are_kept_on_noupdate() {
        let r = parse(
            r#")]}'
{"response":{"protocol":"4.0","apps":[{"appid":"a","status":"ok","cohort":"1:x","cohorthint":"h","cohortname":"n","updatecheck":{"status":"noupdate"}}]}}"#,
            Protocol::Json40,
        );
        let app = &r.apps[0];
        assert_eq!(app.cohort.cohort.as_deref(), Some("1:x"));
        assert_eq!(app.cohort.cohorthint.as_deref(), Some("h"));
        assert_eq!(app.cohort.cohortname.as_deref(), Some("n"));
        assert_eq!(app.result_status(), "noupdate");
    }

    #[test]
    fn unknown_members_are_ignored_and_underscore_extras_kept() {
        let r = parse(
            r#")]}'
{"response":{"protocol":"4.0","future":{"x":1},"apps":[{"appid":"a","status":"ok","_tag":"t","_n":3,"shiny":true,
 "updatecheck":{"status":"ok","nextversion":"2","_why":"because","pipelines":[{"operations":[{"type":"teleport","far":1}]}]}}]}}"#,
            Protocol::Json40,
        );
        let app = &r.apps[0];
        assert_eq!(app.extras.get("_tag").map(String::as_str), Some("t"));
        assert_eq!(app.extras.len(), 1);
        let uc = app.updatecheck.as_ref().unwrap();
        assert_eq!(
            uc.custom_attributes.get("_why").map(String::as_str),
            Some("because")
        );
        assert_eq!(
            uc.pipelines[0].operations[0].kind,
            OperationType::Other("teleport".into())
        );
    }

    #[test]
    fn versions_have_at_most_four_parts() {
        let r = parse(
            r#")]}'
{"response":{"protocol":"4.0","apps":[{"appid":"a","status":"ok","updatecheck":{"status":"ok","nextversion":"1.2.3.4.5"}},
 {"appid":"b","status":"ok","updatecheck":{"status":"ok","nextversion":"4294967296"}}]}}"#,
            Protocol::Json40,
        );
        assert!(r.apps.is_empty());
        assert_eq!(r.app_errors.len(), 2);
        assert!(matches!(
            r.app_errors[0].kind,
            AppErrorKind::InvalidVersion {
                field: "nextversion",
                ..
            }
        ));
        assert_eq!(r.app_errors[1].appid.as_deref(), Some("b"));
    }

    #[test]
    fn every_document_level_refusal_is_distinct() {
        type Check = fn(&ProtocolError) -> bool;
        let cases: [(&str, Check); 6] = [
            ("{}", |e| matches!(e, ProtocolError::MissingSafeJsonPrefix)),
            (")]}'\n[1]", |e| matches!(e, ProtocolError::NotAnObject)),
            (")]}'\n{", |e| matches!(e, ProtocolError::Json(_))),
            (")]}'\n{\"x\":1}", |e| {
                matches!(e, ProtocolError::MissingRoot("response"))
            }),
            (")]}'\n{\"response\":{}}", |e| {
                matches!(e, ProtocolError::MissingProtocol)
            }),
            (")]}'\n{\"response\":{\"protocol\":\"3.1\"}}", |e| {
                matches!(e, ProtocolError::ProtocolMismatch { .. })
            }),
        ];
        for (text, check) in cases {
            let err = parse_response(text, Some(Protocol::Json40)).unwrap_err();
            assert!(check(&err), "{text:?} gave {err}");
        }
    }

    #[test]
    fn round_trips_through_both_writers() {
        let text40 = r#")]}'
{"response":{"protocol":"4.0","daystart":{"elapsed_days":3383},"apps":[{"appid":"x","status":"ok","cohort":"c",
 "updatecheck":{"status":"ok","nextversion":"1.0","pipelines":[{"pipeline_id":"p","operations":[
 {"type":"download","size":10,"urls":[{"url":"https://a.example/x.crx3"}],"out":{"sha256":"ab"}},
 {"type":"crx3","in":{"sha256":"ab"}},{"type":"run","path":"setup","arguments":"--go"}]}]}}]}}"#;
        let r = parse(text40, Protocol::Json40);
        let again = parse(&write_response40(&r), Protocol::Json40);
        assert_eq!(r, again);

        let text31 = r#")]}'
{"response":{"protocol":"3.1","daystart":{"elapsed_seconds":5,"elapsed_days":7},"app":[{"appid":"x","status":"ok",
 "updatecheck":{"status":"ok","actions":{"action":[{"run":"go"}]},"urls":{"url":[{"codebase":"http://a.example/"},{"codebasediff":"http://d.example/"}]},
 "manifest":{"version":"1.2","prodversionmin":"3","run":"r","arguments":"a","packages":{"package":[{"name":"n","size":5,"hash_sha256":"ff"}]}}}}]}}"#;
        let r = parse(text31, Protocol::Json31);
        let again = parse(&write_response31(&r, Flavor::Standard), Protocol::Json31);
        assert_eq!(r, again);
        assert_eq!(again.daystart.elapsed_seconds, Some(5));
    }

    #[test]
    fn install_data_answers_round_trip_in_3_1_and_4_0() {
        for (protocol, p, key) in [
            ("3.1", Protocol::Json31, "app"),
            ("4.0", Protocol::Json40, "apps"),
        ] {
            let text = format!(
                r##")]}}'
{{"response":{{"protocol":"{protocol}","{key}":[{{"appid":"x","status":"ok",
 "data":[{{"name":"install","index":"en","status":"ok","#text":"{{\"a\": \"<b>\"}}\n"}},
         {{"name":"install","index":"zz","status":"error-nodata"}}],
 "updatecheck":{{"status":"noupdate"}}}}]}}}}"##
            );
            let r = parse(&text, p);
            let data = &r.apps[0].data;
            assert_eq!(data.len(), 2, "{protocol}");
            assert_eq!(data[0].name.as_deref(), Some("install"));
            assert_eq!(data[0].index.as_deref(), Some("en"));
            assert_eq!(data[0].status, DataStatus::Ok);
            assert_eq!(data[0].text, "{\"a\": \"<b>\"}\n");
            assert_eq!(data[1].status, DataStatus::NoData);
            assert_eq!(data[1].text, "");
            let written = match p {
                Protocol::Json40 => write_response40(&r),
                _ => write_response31(&r, Flavor::Standard),
            };
            assert!(written.contains("\"#text\""), "{written}");
            assert_eq!(parse(&written, p), r, "{protocol}: {written}");
        }
    }

    #[test]
    fn event_acknowledgements_round_trip_in_3_1_and_4_0() {
        for (protocol, p, key, events) in [
            ("3.1", Protocol::Json31, "app", "event"),
            ("4.0", Protocol::Json40, "apps", "events"),
        ] {
            let text = format!(
                r#")]}}'
{{"response":{{"protocol":"{protocol}","{key}":[{{"appid":"x","status":"ok",
 "{events}":[{{"status":"ok"}},{{"status":"error"}},7],
 "updatecheck":{{"status":"noupdate"}}}},
 {{"appid":"y","status":"error-unknownApplication","{events}":[{{"status":"ok"}}]}}]}}}}"#
            );
            let r = parse(&text, p);
            assert_eq!(r.apps[0].event_statuses, ["ok", "error", ""], "{protocol}");
            // An app the server refused still acknowledges its events.
            assert_eq!(r.apps[1].event_statuses, ["ok"], "{protocol}");
            let written = match p {
                Protocol::Json40 => write_response40(&r),
                _ => write_response31(&r, Flavor::Standard),
            };
            assert!(written.contains(&format!("\"{events}\"")), "{written}");
            assert_eq!(parse(&written, p), r, "{protocol}: {written}");
        }
    }

    #[test]
    fn a_4_0_response_with_a_singular_app_member_keeps_its_apps() {
        let list = parse(
            r#")]}'
{"response":{"protocol":"4.0","app":[{"appid":"a","status":"ok","updatecheck":{"status":"noupdate"}}]}}"#,
            Protocol::Json40,
        );
        assert_eq!(list.apps.len(), 1);
        assert_eq!(list.apps[0].result_status(), "noupdate");
        let one = parse(
            r#")]}'
{"response":{"protocol":"4.0","app":{"appid":"a","status":"ok","updatecheck":{"status":"noupdate"}}}}"#,
            Protocol::Json40,
        );
        assert_eq!(one.apps, list.apps);
        assert!(one.app_errors.is_empty());
        // What is neither a list nor an app is recorded, not ignored.
        let bad = parse(
            ")]}'\n{\"response\":{\"protocol\":\"4.0\",\"apps\":\"a\"}}",
            Protocol::Json40,
        );
        assert!(bad.apps.is_empty());
        assert_eq!(bad.app_errors.len(), 1);
        assert_eq!(bad.app_errors[0].kind, AppErrorKind::NotAnObject);
    }

    #[test]
    fn json_without_the_prefix_is_refused_whatever_the_protocol() {
        let text = r#"{"response":{"protocol":"4.0","apps":[]}}"#;
        for expected in [None, Some(Protocol::Json40)] {
            assert!(matches!(
                parse_response(text, expected),
                Err(ProtocolError::MissingSafeJsonPrefix)
            ));
        }
    }

    #[test]
    fn the_fuchsia_spelling_has_what_its_parser_requires() {
        let text31 = r#")]}'
{"response":{"protocol":"3.1","app":[{"appid":"x","status":"ok","updatecheck":{"status":"ok",
 "urls":{"url":[{"codebase":"http://a.example/"}]},
 "manifest":{"version":"1.2","packages":{"package":[{"name":"n","size":5,"hash_sha256":"ff","fp":"ff"}]}}}}]}}"#;
        let r = parse(text31, Protocol::Json31);
        let written = write_response31(&r, Flavor::Fuchsia);
        let doc: Value = serde_json::from_str(strip_safe_json_prefix(&written).unwrap()).unwrap();
        let response = &doc["response"];
        assert_eq!(response["protocol"], "3.0");
        let manifest = &response["app"][0]["updatecheck"]["manifest"];
        assert_eq!(manifest["actions"], json!({ "action": [] }));
        assert_eq!(manifest["packages"]["package"][0]["required"], json!(true));
        assert_eq!(manifest["packages"]["package"][0]["fp"], json!("ff"));
        // Detected as 3.1, it reads as what was written.
        let again = parse_response(&written, None).unwrap();
        assert_eq!(again.protocol, Protocol::Json31);
        assert_eq!(again.apps, r.apps);
        // The standard spelling is unchanged.
        assert!(!write_response31(&r, Flavor::Standard).contains("required"));
    }
}

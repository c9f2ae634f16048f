//! Update-check and ping-back requests: the model, a builder, the three
//! serializers and a tolerant parser (for servers).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::ProtocolError;
use super::json::app_entries;
use super::types::{AppId, Cohort, ErrorCategory, EventResult, EventType};
use super::xml::{Element, check_root, parse_bool, read_tree, write_attr, write_opt};
use super::{Flavor, Protocol, random_id, strip_safe_json_prefix};
use crate::version::Version;

/// The largest request body [`parse_request`] accepts (64 KiB). Larger
/// bodies are refused before parsing, as Omaha servers such as Nebraska do.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The operating system the client runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Os {
    /// The family ("win", "mac", "linux", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The service pack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sp: Option<String>,
    /// The architecture ("x86_64", "arm64", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
}

/// The counting ping of an app (see [`ActivityDays`](super::ActivityDays)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    /// Whether the app was active since the last active report (3.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Days since the last active report, -1 for the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a: Option<i64>,
    /// Days since the last roll call, -1 for the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r: Option<i64>,
    /// Server day of the last active report, -1 first, -2 unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ad: Option<i64>,
    /// Server day of the last roll call, -1 first, -2 unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rd: Option<i64>,
    /// A random value rotated with `rd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_freshness: Option<String>,
}

/// What the client asks of the update check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateCheckRequest {
    /// The client will not apply an update (it only asks).
    pub updatedisabled: bool,
    /// Only versions matching this component-wise prefix are wanted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targetversionprefix: Option<String>,
    /// A downgrade is acceptable.
    pub rollback_allowed: bool,
    /// Reinstalling the current version is wanted.
    pub sameversionupdate: bool,
}

impl UpdateCheckRequest {
    /// Whether `candidate` may be offered under `targetversionprefix`
    /// (whole components: "1.2.3" matches 1.2.3.4 but not 1.2.34).
    pub fn allows(&self, candidate: &Version) -> bool {
        self.targetversionprefix
            .as_deref()
            .is_none_or(|p| candidate.matches_prefix(p))
    }
}

/// A data request (install data by index).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRequest {
    /// The kind of lookup ("install").
    pub name: String,
    /// The index to look up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

/// An event report (ping-back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    pub eventtype: EventType,
    /// How it ended.
    pub eventresult: EventResult,
    /// The class of the error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errorcat: Option<ErrorCategory>,
    /// The error code (0: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errorcode: Option<i64>,
    /// Extra numeric detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extracode1: Option<i64>,
    /// The version before an update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previousversion: Option<String>,
    /// The version being installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nextversion: Option<String>,
    /// Other members, as text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl Event {
    /// An event with a type and result only.
    pub fn new(eventtype: EventType, eventresult: EventResult) -> Self {
        Self {
            eventtype,
            eventresult,
            errorcat: None,
            errorcode: None,
            extracode1: None,
            previousversion: None,
            nextversion: None,
            extra: BTreeMap::new(),
        }
    }
}

/// One application in a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestApp {
    /// The application id.
    pub appid: AppId,
    /// The installed version as sent. Clients send a [`Version`]; servers
    /// receive whatever text clients send ("0.0.0", "ForcedUpdate", ...).
    pub version: String,
    /// The channel / additional parameters (`ap`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ap: Option<String>,
    /// The brand code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// The language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Why this request is made ("ondemand", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installsource: Option<String>,
    /// The stored install date (elapsed days), -1 on the install request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installdate: Option<i64>,
    /// The cohort the app is in.
    #[serde(flatten)]
    pub cohort: Cohort,
    /// Whether the app is enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The counting ping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping: Option<Ping>,
    /// The update check, when one is wanted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updatecheck: Option<UpdateCheckRequest>,
    /// Event reports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// Data requests.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<DataRequest>,
    /// The fingerprints (`fp`) of the packages the client has of its
    /// installed version, so the server can offer a patch from them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Other attributes, as text (e.g. `track`, `machineid`, `board`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl RequestApp {
    /// An app at `version` asking for an update check.
    pub fn new(appid: impl Into<String>, version: &Version) -> Self {
        Self {
            appid: AppId::new(appid),
            version: version.to_string(),
            ap: None,
            brand: None,
            lang: None,
            installsource: None,
            installdate: None,
            cohort: Cohort::default(),
            enabled: None,
            ping: None,
            updatecheck: Some(UpdateCheckRequest::default()),
            events: Vec::new(),
            data: Vec::new(),
            packages: Vec::new(),
            extra: BTreeMap::new(),
        }
    }

    /// The installed version, when it is a well-formed version.
    pub fn parsed_version(&self) -> Option<Version> {
        self.version.parse().ok()
    }
}

/// A request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The dialect.
    pub protocol: Protocol,
    /// The client family's spelling of it ([`Flavor::Fuchsia`]: 3.1 JSON
    /// labelled `"3.0"`); the answer is written in the same spelling.
    #[serde(default, skip_serializing_if = "Flavor::is_standard")]
    pub flavor: Flavor,
    /// The session id (shared by every request of one update session).
    pub sessionid: String,
    /// The request id (unique per request).
    pub requestid: String,
    /// The client's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updater: Option<String>,
    /// The client's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updaterversion: Option<String>,
    /// The product's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prodversion: Option<String>,
    /// Whether the client is installed machine-wide.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ismachine: Option<bool>,
    /// Why the request is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installsource: Option<String>,
    /// The counting algorithm ("cr").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup: Option<String>,
    /// The pipeline operations the client can run (4.0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acceptformat: Option<String>,
    /// The operating system.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<Os>,
    /// The applications.
    pub apps: Vec<RequestApp>,
    /// Other request attributes, as text.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl Request {
    /// The body in this request's dialect.
    pub fn to_body(&self) -> String {
        match self.protocol {
            Protocol::Json31 | Protocol::Json40 => write_json(self),
            Protocol::Xml30 => write_xml(self),
        }
    }

    /// The `X-Goog-Update-AppId` header value: the app ids, comma-separated.
    pub fn app_ids_header(&self) -> String {
        self.apps
            .iter()
            .map(|a| a.appid.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Builds requests; session and request ids are generated at
/// [`build`](Self::build) unless given.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    request: Request,
}

impl RequestBuilder {
    /// A request in `protocol`, counting with "cr".
    pub fn new(protocol: Protocol) -> Self {
        Self {
            request: Request {
                protocol,
                flavor: Flavor::Standard,
                sessionid: String::new(),
                requestid: String::new(),
                updater: None,
                updaterversion: None,
                prodversion: None,
                ismachine: None,
                installsource: None,
                dedup: Some("cr".to_owned()),
                acceptformat: (protocol == Protocol::Json40)
                    .then(|| "download,crx3,run".to_owned()),
                os: None,
                apps: Vec::new(),
                extra: BTreeMap::new(),
            },
        }
    }

    /// The client's name and version.
    pub fn updater(mut self, name: &str, version: &str) -> Self {
        self.request.updater = Some(name.to_owned());
        self.request.updaterversion = Some(version.to_owned());
        self
    }

    /// The product's version.
    pub fn prodversion(mut self, version: &str) -> Self {
        self.request.prodversion = Some(version.to_owned());
        self
    }

    /// The operating system.
    pub fn os(mut self, os: Os) -> Self {
        self.request.os = Some(os);
        self
    }

    /// Whether the client is installed machine-wide.
    pub fn ismachine(mut self, yes: bool) -> Self {
        self.request.ismachine = Some(yes);
        self
    }

    /// Why the request is made.
    pub fn installsource(mut self, source: &str) -> Self {
        self.request.installsource = Some(source.to_owned());
        self
    }

    /// The pipeline operations the client can run.
    pub fn acceptformat(mut self, formats: &str) -> Self {
        self.request.acceptformat = Some(formats.to_owned());
        self
    }

    /// A request attribute the typed fields do not cover (`dlpref`, say).
    pub fn attribute(mut self, name: &str, value: &str) -> Self {
        self.request.extra.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Reuses a session id (ping-backs share the update check's session).
    pub fn sessionid(mut self, id: &str) -> Self {
        self.request.sessionid = id.to_owned();
        self
    }

    /// Adds an app.
    pub fn app(mut self, app: RequestApp) -> Self {
        self.request.apps.push(app);
        self
    }

    /// The request, with fresh random ids where none were given.
    pub fn build(mut self) -> Result<Request, getrandom::Error> {
        if self.request.sessionid.is_empty() {
            self.request.sessionid = random_id()?;
        }
        if self.request.requestid.is_empty() {
            self.request.requestid = random_id()?;
        }
        Ok(self.request)
    }
}

// ------------------------------------------------------------ JSON out ----

type Obj = Map<String, Value>;

fn put(o: &mut Obj, key: &str, v: &Option<String>) {
    if let Some(v) = v {
        o.insert(key.to_owned(), json!(v));
    }
}

fn put_int(o: &mut Obj, key: &str, v: Option<i64>) {
    if let Some(v) = v {
        o.insert(key.to_owned(), json!(v));
    }
}

fn write_json(r: &Request) -> String {
    let v40 = r.protocol == Protocol::Json40;
    let mut o = Obj::new();
    o.insert("protocol".into(), json!(r.flavor.label(r.protocol)));
    put(&mut o, "dedup", &r.dedup);
    put(&mut o, "acceptformat", &r.acceptformat);
    o.insert("sessionid".into(), json!(r.sessionid));
    o.insert("requestid".into(), json!(r.requestid));
    put(&mut o, "@updater", &r.updater);
    put(&mut o, "updaterversion", &r.updaterversion);
    put(&mut o, "prodversion", &r.prodversion);
    if let Some(m) = r.ismachine {
        o.insert("ismachine".into(), json!(m));
    }
    put(&mut o, "installsource", &r.installsource);
    for (k, v) in &r.extra {
        o.insert(k.clone(), json!(v));
    }
    if let Some(os) = &r.os {
        put(&mut o, "@os", &os.platform);
        put(&mut o, "arch", &os.arch);
        let mut os_node = Obj::new();
        put(&mut os_node, "platform", &os.platform);
        put(&mut os_node, "version", &os.version);
        put(&mut os_node, "sp", &os.sp);
        put(&mut os_node, "arch", &os.arch);
        o.insert("os".into(), Value::Object(os_node));
    }
    let apps: Vec<Value> = r.apps.iter().map(|a| app_json(a, v40)).collect();
    o.insert(if v40 { "apps" } else { "app" }.into(), Value::Array(apps));
    json!({ "request": o }).to_string()
}

fn app_json(a: &RequestApp, v40: bool) -> Value {
    let mut o = Obj::new();
    o.insert("appid".into(), json!(a.appid.as_str()));
    o.insert("version".into(), json!(a.version));
    put(&mut o, "ap", &a.ap);
    put(&mut o, "brand", &a.brand);
    put(&mut o, "lang", &a.lang);
    put_int(&mut o, "installdate", a.installdate);
    put(&mut o, "installsource", &a.installsource);
    put(&mut o, "cohort", &a.cohort.cohort);
    put(&mut o, "cohorthint", &a.cohort.cohorthint);
    put(&mut o, "cohortname", &a.cohort.cohortname);
    if let Some(e) = a.enabled {
        o.insert("enabled".into(), json!(e));
    }
    for (k, v) in &a.extra {
        o.insert(k.clone(), json!(v));
    }
    if let Some(p) = &a.ping {
        let mut po = Obj::new();
        if let Some(active) = p.active {
            po.insert("active".into(), json!(i64::from(active)));
        }
        put_int(&mut po, "a", p.a);
        put_int(&mut po, "r", p.r);
        put_int(&mut po, "ad", p.ad);
        put_int(&mut po, "rd", p.rd);
        put(&mut po, "ping_freshness", &p.ping_freshness);
        o.insert("ping".into(), Value::Object(po));
    }
    if let Some(uc) = &a.updatecheck {
        let mut u = Obj::new();
        if uc.updatedisabled {
            u.insert("updatedisabled".into(), json!(true));
        }
        if uc.rollback_allowed {
            u.insert("rollback_allowed".into(), json!(true));
        }
        if uc.sameversionupdate {
            u.insert("sameversionupdate".into(), json!(true));
        }
        put(&mut u, "targetversionprefix", &uc.targetversionprefix);
        o.insert("updatecheck".into(), Value::Object(u));
    }
    if !a.data.is_empty() {
        let data: Vec<Value> = a
            .data
            .iter()
            .map(|d| {
                let mut dobj = Obj::new();
                dobj.insert("name".into(), json!(d.name));
                put(&mut dobj, "index", &d.index);
                Value::Object(dobj)
            })
            .collect();
        o.insert("data".into(), Value::Array(data));
    }
    if !a.packages.is_empty() {
        let packages: Vec<Value> = a.packages.iter().map(|fp| json!({ "fp": fp })).collect();
        o.insert("packages".into(), json!({ "package": packages }));
    }
    if !a.events.is_empty() {
        let events: Vec<Value> = a.events.iter().map(event_json).collect();
        o.insert(
            if v40 { "events" } else { "event" }.into(),
            Value::Array(events),
        );
    }
    Value::Object(o)
}

fn event_json(e: &Event) -> Value {
    let mut o = Obj::new();
    o.insert("eventtype".into(), json!(e.eventtype.code()));
    o.insert("eventresult".into(), json!(e.eventresult.code()));
    put_int(&mut o, "errorcat", e.errorcat.map(ErrorCategory::code));
    put_int(&mut o, "errorcode", e.errorcode);
    put_int(&mut o, "extracode1", e.extracode1);
    put(&mut o, "previousversion", &e.previousversion);
    put(&mut o, "nextversion", &e.nextversion);
    for (k, v) in &e.extra {
        o.insert(k.clone(), json!(v));
    }
    Value::Object(o)
}

// ------------------------------------------------------------- XML out ----

fn bool_text(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

fn write_xml(r: &Request) -> String {
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<request");
    write_attr(&mut o, "protocol", "3.0");
    write_opt(&mut o, "updater", &r.updater);
    write_opt(&mut o, "updaterversion", &r.updaterversion);
    write_opt(&mut o, "prodversion", &r.prodversion);
    write_attr(&mut o, "sessionid", &r.sessionid);
    write_attr(&mut o, "requestid", &r.requestid);
    if let Some(m) = r.ismachine {
        write_attr(&mut o, "ismachine", bool_text(m));
    }
    write_opt(&mut o, "installsource", &r.installsource);
    write_opt(&mut o, "dedup", &r.dedup);
    write_opt(&mut o, "acceptformat", &r.acceptformat);
    for (k, v) in &r.extra {
        write_attr(&mut o, k, v);
    }
    o.push_str(">\n");
    if let Some(os) = &r.os {
        o.push_str("  <os");
        write_opt(&mut o, "platform", &os.platform);
        write_opt(&mut o, "version", &os.version);
        write_opt(&mut o, "sp", &os.sp);
        write_opt(&mut o, "arch", &os.arch);
        o.push_str("/>\n");
    }
    for a in &r.apps {
        o.push_str("  <app");
        write_attr(&mut o, "appid", a.appid.as_str());
        write_attr(&mut o, "version", &a.version);
        write_opt(&mut o, "ap", &a.ap);
        write_opt(&mut o, "brand", &a.brand);
        write_opt(&mut o, "lang", &a.lang);
        if let Some(d) = a.installdate {
            write_attr(&mut o, "installdate", &d.to_string());
        }
        write_opt(&mut o, "installsource", &a.installsource);
        write_opt(&mut o, "cohort", &a.cohort.cohort);
        write_opt(&mut o, "cohorthint", &a.cohort.cohorthint);
        write_opt(&mut o, "cohortname", &a.cohort.cohortname);
        if let Some(e) = a.enabled {
            write_attr(&mut o, "enabled", bool_text(e));
        }
        for (k, v) in &a.extra {
            write_attr(&mut o, k, v);
        }
        o.push_str(">\n");
        if let Some(uc) = &a.updatecheck {
            o.push_str("    <updatecheck");
            write_opt(&mut o, "targetversionprefix", &uc.targetversionprefix);
            if uc.updatedisabled {
                write_attr(&mut o, "updatedisabled", "true");
            }
            if uc.rollback_allowed {
                write_attr(&mut o, "rollback_allowed", "true");
            }
            if uc.sameversionupdate {
                write_attr(&mut o, "sameversionupdate", "true");
            }
            o.push_str("/>\n");
        }
        if let Some(p) = &a.ping {
            o.push_str("    <ping");
            if let Some(active) = p.active {
                write_attr(&mut o, "active", bool_text(active));
            }
            for (k, v) in [("a", p.a), ("r", p.r), ("ad", p.ad), ("rd", p.rd)] {
                if let Some(v) = v {
                    write_attr(&mut o, k, &v.to_string());
                }
            }
            write_opt(&mut o, "ping_freshness", &p.ping_freshness);
            o.push_str("/>\n");
        }
        for d in &a.data {
            o.push_str("    <data");
            write_attr(&mut o, "name", &d.name);
            write_opt(&mut o, "index", &d.index);
            o.push_str("/>\n");
        }
        if !a.packages.is_empty() {
            o.push_str("    <packages>\n");
            for fp in &a.packages {
                o.push_str("      <package");
                write_attr(&mut o, "fp", fp);
                o.push_str("/>\n");
            }
            o.push_str("    </packages>\n");
        }
        for e in &a.events {
            o.push_str("    <event");
            write_attr(&mut o, "eventtype", &e.eventtype.code().to_string());
            write_attr(&mut o, "eventresult", &e.eventresult.code().to_string());
            for (k, v) in [
                ("errorcat", e.errorcat.map(ErrorCategory::code)),
                ("errorcode", e.errorcode),
                ("extracode1", e.extracode1),
            ] {
                if let Some(v) = v {
                    write_attr(&mut o, k, &v.to_string());
                }
            }
            write_opt(&mut o, "previousversion", &e.previousversion);
            write_opt(&mut o, "nextversion", &e.nextversion);
            for (k, v) in &e.extra {
                write_attr(&mut o, k, v);
            }
            o.push_str("/>\n");
        }
        o.push_str("  </app>\n");
    }
    o.push_str("</request>\n");
    o
}

// -------------------------------------------------------------- parsing ----

/// Parses a request body of at most [`MAX_REQUEST_BYTES`]. `expected` is
/// the dialect the endpoint speaks, or `None` to accept any.
pub fn parse_request(body: &[u8], expected: Option<Protocol>) -> Result<Request, ProtocolError> {
    parse_request_with_limit(body, expected, MAX_REQUEST_BYTES)
}

/// Parses a request body of at most `limit` bytes.
pub fn parse_request_with_limit(
    body: &[u8],
    expected: Option<Protocol>,
    limit: usize,
) -> Result<Request, ProtocolError> {
    if body.len() > limit {
        return Err(ProtocolError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    let text = std::str::from_utf8(body)?;
    let head = text.trim_start_matches('\u{feff}').trim_start();
    if head.is_empty() {
        return Err(ProtocolError::Empty);
    }
    let request = if head.starts_with('<') {
        parse_xml(head)?
    } else if head.starts_with('{') || head.starts_with(super::SAFE_JSON_PREFIX) {
        parse_json(strip_safe_json_prefix(head).unwrap_or(head))?
    } else {
        return Err(ProtocolError::UnknownFormat);
    };
    match expected {
        Some(p) if p != request.protocol => Err(ProtocolError::ProtocolMismatch {
            expected: p.version(),
            found: request.protocol.version().to_owned(),
        }),
        _ => Ok(request),
    }
}

fn empty_request(protocol: Protocol) -> Request {
    let mut r = RequestBuilder::new(protocol).request;
    r.dedup = None;
    r.acceptformat = None;
    r
}

fn app_error(index: usize, reason: impl Into<String>) -> ProtocolError {
    ProtocolError::RequestApp {
        index,
        reason: reason.into(),
    }
}

/// Reads a JSON value as text: strings as they are, numbers and booleans
/// written out.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn jstr(o: &Obj, key: &str) -> Option<String> {
    o.get(key).and_then(text_of)
}

fn jint(o: &Obj, key: &str) -> Option<i64> {
    match o.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn jbool(o: &Obj, key: &str) -> Option<bool> {
    match o.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n == 1),
        Value::String(s) => parse_bool(s),
        _ => None,
    }
}

const JSON_APP_KEYS: &[&str] = &[
    "appid",
    "version",
    "ap",
    "brand",
    "lang",
    "installdate",
    "installsource",
    "cohort",
    "cohorthint",
    "cohortname",
    "enabled",
    "ping",
    "updatecheck",
    "data",
    "event",
    "events",
    "packages",
];

/// The request attributes with a typed field (the others are kept in
/// `extra` when they are plain values).
const JSON_REQUEST_KEYS: &[&str] = &[
    "protocol",
    "dedup",
    "acceptformat",
    "sessionid",
    "requestid",
    "@updater",
    "updater",
    "updaterversion",
    "prodversion",
    "ismachine",
    "installsource",
    "@os",
    "arch",
    "os",
    "apps",
    "app",
];

fn parse_json(text: &str) -> Result<Request, ProtocolError> {
    let doc: Value = serde_json::from_str(text)?;
    let doc = doc.as_object().ok_or(ProtocolError::NotAnObject)?;
    let r = doc
        .get("request")
        .and_then(Value::as_object)
        .ok_or(ProtocolError::MissingRoot("request"))?;
    let (protocol, flavor) = match r
        .get("protocol")
        .and_then(Value::as_str)
        .ok_or(ProtocolError::MissingProtocol)?
    {
        "3.1" => (Protocol::Json31, Flavor::Standard),
        "4.0" => (Protocol::Json40, Flavor::Standard),
        // Fuchsia's omaha_client labels its 3.1-shaped JSON "3.0".
        "3.0" => (Protocol::Json31, Flavor::Fuchsia),
        other => return Err(ProtocolError::UnsupportedProtocol(other.to_owned())),
    };
    let mut out = empty_request(protocol);
    out.flavor = flavor;
    out.sessionid = jstr(r, "sessionid").unwrap_or_default();
    out.requestid = jstr(r, "requestid").unwrap_or_default();
    out.updater = jstr(r, "@updater").or_else(|| jstr(r, "updater"));
    out.updaterversion = jstr(r, "updaterversion");
    out.prodversion = jstr(r, "prodversion");
    out.ismachine = jbool(r, "ismachine");
    out.installsource = jstr(r, "installsource");
    out.dedup = jstr(r, "dedup");
    out.acceptformat = jstr(r, "acceptformat");
    out.extra = r
        .iter()
        .filter(|(k, _)| !JSON_REQUEST_KEYS.contains(&k.as_str()))
        .filter_map(|(k, v)| text_of(v).map(|t| (k.clone(), t)))
        .collect();
    if let Some(os) = r.get("os").and_then(Value::as_object) {
        out.os = Some(Os {
            platform: jstr(os, "platform"),
            version: jstr(os, "version"),
            sp: jstr(os, "sp"),
            arch: jstr(os, "arch"),
        });
    }
    for (index, a) in app_entries(r, ["apps", "app"]).into_iter().enumerate() {
        out.apps.push(parse_json_app(index, a)?);
    }
    Ok(out)
}

fn parse_json_app(index: usize, a: &Value) -> Result<RequestApp, ProtocolError> {
    let a = a
        .as_object()
        .ok_or_else(|| app_error(index, "app is not an object"))?;
    let appid = jstr(a, "appid").ok_or_else(|| app_error(index, "missing appid"))?;
    let mut app = RequestApp {
        appid: AppId::new(appid),
        version: jstr(a, "version").unwrap_or_default(),
        ap: jstr(a, "ap"),
        brand: jstr(a, "brand"),
        lang: jstr(a, "lang"),
        installsource: jstr(a, "installsource"),
        installdate: jint(a, "installdate"),
        cohort: Cohort {
            cohort: jstr(a, "cohort"),
            cohorthint: jstr(a, "cohorthint"),
            cohortname: jstr(a, "cohortname"),
        },
        enabled: jbool(a, "enabled"),
        ping: None,
        updatecheck: None,
        events: Vec::new(),
        data: Vec::new(),
        packages: Vec::new(),
        extra: a
            .iter()
            .filter(|(k, _)| !JSON_APP_KEYS.contains(&k.as_str()))
            .filter_map(|(k, v)| text_of(v).map(|t| (k.clone(), t)))
            .collect(),
    };
    if let Some(p) = a.get("ping").and_then(Value::as_object) {
        app.ping = Some(Ping {
            active: jbool(p, "active"),
            a: jint(p, "a"),
            r: jint(p, "r"),
            ad: jint(p, "ad"),
            rd: jint(p, "rd"),
            ping_freshness: jstr(p, "ping_freshness"),
        });
    }
    if let Some(u) = a.get("updatecheck").and_then(Value::as_object) {
        app.updatecheck = Some(UpdateCheckRequest {
            updatedisabled: jbool(u, "updatedisabled").unwrap_or(false),
            targetversionprefix: jstr(u, "targetversionprefix").filter(|s| !s.is_empty()),
            rollback_allowed: jbool(u, "rollback_allowed").unwrap_or(false),
            sameversionupdate: jbool(u, "sameversionupdate").unwrap_or(false),
        });
    }
    for d in a
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
    {
        app.data.push(DataRequest {
            name: jstr(d, "name").unwrap_or_default(),
            index: jstr(d, "index"),
        });
    }
    app.packages = a
        .get("packages")
        .and_then(|p| p.get("package"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter_map(|p| jstr(p, "fp"))
        .collect();
    let events = a
        .get("events")
        .or_else(|| a.get("event"))
        .and_then(Value::as_array);
    for e in events.into_iter().flatten() {
        let e = e
            .as_object()
            .ok_or_else(|| app_error(index, "event is not an object"))?;
        let mut fields: BTreeMap<String, String> = e
            .iter()
            .filter_map(|(k, v)| text_of(v).map(|t| (k.clone(), t)))
            .collect();
        app.events.push(event_from_fields(index, &mut fields)?);
    }
    Ok(app)
}

fn take_int(
    index: usize,
    fields: &mut BTreeMap<String, String>,
    key: &str,
) -> Result<Option<i64>, ProtocolError> {
    match fields.remove(key) {
        None => Ok(None),
        Some(t) => t
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| app_error(index, format!("event {key} '{t}' is not an integer"))),
    }
}

fn event_from_fields(
    index: usize,
    fields: &mut BTreeMap<String, String>,
) -> Result<Event, ProtocolError> {
    let eventtype = take_int(index, fields, "eventtype")?
        .ok_or_else(|| app_error(index, "event without eventtype"))?;
    let mut e = Event::new(
        EventType::from_code(eventtype),
        EventResult::from_code(take_int(index, fields, "eventresult")?.unwrap_or(0)),
    );
    e.errorcat = take_int(index, fields, "errorcat")?.map(ErrorCategory::from_code);
    e.errorcode = take_int(index, fields, "errorcode")?;
    e.extracode1 = take_int(index, fields, "extracode1")?;
    e.previousversion = fields.remove("previousversion");
    e.nextversion = fields.remove("nextversion");
    e.extra = std::mem::take(fields);
    Ok(e)
}

const XML_APP_KEYS: &[&str] = &[
    "appid",
    "version",
    "ap",
    "brand",
    "lang",
    "installdate",
    "installsource",
    "cohort",
    "cohorthint",
    "cohortname",
    "enabled",
];

const XML_REQUEST_KEYS: &[&str] = &[
    "protocol",
    "updater",
    "updaterversion",
    "prodversion",
    "sessionid",
    "requestid",
    "ismachine",
    "installsource",
    "dedup",
    "acceptformat",
];

fn parse_xml(text: &str) -> Result<Request, ProtocolError> {
    let root = read_tree(text)?;
    check_root(&root, "request")?;
    let mut out = empty_request(Protocol::Xml30);
    out.sessionid = root.attr_string("sessionid").unwrap_or_default();
    out.requestid = root.attr_string("requestid").unwrap_or_default();
    out.updater = root.attr_string("updater");
    out.updaterversion = root.attr_string("updaterversion");
    out.prodversion = root.attr_string("prodversion");
    out.ismachine = root.attr("ismachine").and_then(parse_bool);
    out.installsource = root.attr_string("installsource");
    out.dedup = root.attr_string("dedup");
    out.acceptformat = root.attr_string("acceptformat");
    out.extra = others(&root, XML_REQUEST_KEYS);
    if let Some(os) = root.child("os") {
        out.os = Some(Os {
            platform: os.attr_string("platform"),
            version: os.attr_string("version"),
            sp: os.attr_string("sp"),
            arch: os.attr_string("arch"),
        });
    }
    for (index, a) in root.children_named("app").enumerate() {
        out.apps.push(parse_xml_app(index, a)?);
    }
    Ok(out)
}

fn others(el: &Element, known: &[&str]) -> BTreeMap<String, String> {
    el.attrs
        .iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .cloned()
        .collect()
}

fn xint(el: &Element, key: &str) -> Option<i64> {
    el.attr(key).and_then(|v| v.trim().parse().ok())
}

fn parse_xml_app(index: usize, a: &Element) -> Result<RequestApp, ProtocolError> {
    let appid = a
        .attr_string("appid")
        .ok_or_else(|| app_error(index, "missing appid"))?;
    let mut app = RequestApp {
        appid: AppId::new(appid),
        version: a.attr_string("version").unwrap_or_default(),
        ap: a.attr_string("ap"),
        brand: a.attr_string("brand"),
        lang: a.attr_string("lang"),
        installsource: a.attr_string("installsource"),
        installdate: xint(a, "installdate"),
        cohort: Cohort {
            cohort: a.attr_string("cohort"),
            cohorthint: a.attr_string("cohorthint"),
            cohortname: a.attr_string("cohortname"),
        },
        enabled: a.attr("enabled").and_then(parse_bool),
        ping: None,
        updatecheck: None,
        events: Vec::new(),
        data: Vec::new(),
        packages: Vec::new(),
        extra: others(a, XML_APP_KEYS),
    };
    if let Some(p) = a.child("ping") {
        app.ping = Some(Ping {
            active: p.attr("active").and_then(parse_bool),
            a: xint(p, "a"),
            r: xint(p, "r"),
            ad: xint(p, "ad"),
            rd: xint(p, "rd"),
            ping_freshness: p.attr_string("ping_freshness"),
        });
    }
    if let Some(u) = a.child("updatecheck") {
        let flag = |k: &str| u.attr(k).and_then(parse_bool).unwrap_or(false);
        app.updatecheck = Some(UpdateCheckRequest {
            updatedisabled: flag("updatedisabled"),
            targetversionprefix: u
                .attr_string("targetversionprefix")
                .filter(|s| !s.is_empty()),
            rollback_allowed: flag("rollback_allowed"),
            sameversionupdate: flag("sameversionupdate"),
        });
    }
    for d in a.children_named("data") {
        app.data.push(DataRequest {
            name: d.attr_string("name").unwrap_or_default(),
            index: d.attr_string("index"),
        });
    }
    for p in a.children_named("packages") {
        app.packages.extend(
            p.children_named("package")
                .filter_map(|x| x.attr_string("fp")),
        );
    }
    for e in a.children_named("event") {
        let mut fields: BTreeMap<String, String> = e.attrs.iter().cloned().collect();
        app.events.push(event_from_fields(index, &mut fields)?);
    }
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(protocol: Protocol) -> Request {
        let mut app = RequestApp::new("{ABC}", &"1.2.3.4".parse().unwrap());
        app.ap = Some("beta".into());
        app.packages = vec!["ab".repeat(32)];
        app.brand = Some("GGLS".into());
        app.installdate = Some(3381);
        app.cohort.cohort = Some("1:2q3/".into());
        app.ping = Some(Ping {
            rd: Some(3383),
            r: Some(1),
            ..Ping::default()
        });
        app.updatecheck = Some(UpdateCheckRequest {
            updatedisabled: true,
            targetversionprefix: Some("1.2.".into()),
            ..UpdateCheckRequest::default()
        });
        let mut ev = Event::new(EventType::Update, EventResult::Error);
        ev.errorcat = Some(ErrorCategory::Download);
        ev.errorcode = Some(7);
        ev.previousversion = Some("1.2.3.3".into());
        app.events.push(ev);
        app.data.push(DataRequest {
            name: "install".into(),
            index: Some("verboselogging".into()),
        });
        RequestBuilder::new(protocol)
            .updater("upkeep", "0.1.0")
            .os(Os {
                platform: Some("linux".into()),
                arch: Some("x86_64".into()),
                ..Os::default()
            })
            .ismachine(true)
            .app(app)
            .build()
            .unwrap()
    }

    #[test]
    fn every_dialect_round_trips() {
        for p in [Protocol::Json31, Protocol::Json40, Protocol::Xml30] {
            let r = sample(p);
            let body = r.to_body();
            let back = parse_request(body.as_bytes(), Some(p))
                .unwrap_or_else(|e| panic!("{p}: {e}\n{body}"));
            assert_eq!(back, r, "{p}: {body}");
        }
    }

    #[test]
    fn json_shapes_follow_the_protocol() {
        let v31: Value = serde_json::from_str(&sample(Protocol::Json31).to_body()).unwrap();
        let app = &v31["request"]["app"][0];
        assert_eq!(app["updatecheck"]["updatedisabled"], json!(true));
        assert_eq!(app["updatecheck"]["targetversionprefix"], json!("1.2."));
        assert_eq!(app["ping"]["rd"], json!(3383));
        assert_eq!(app["event"][0]["eventtype"], json!(3));
        assert_eq!(v31["request"]["@os"], json!("linux"));
        let v40: Value = serde_json::from_str(&sample(Protocol::Json40).to_body()).unwrap();
        assert_eq!(v40["request"]["protocol"], json!("4.0"));
        assert_eq!(v40["request"]["apps"][0]["events"][0]["errorcat"], json!(1));
    }

    #[test]
    fn ids_are_fresh_per_request() {
        let a = sample(Protocol::Json40);
        let b = sample(Protocol::Json40);
        assert_ne!(a.sessionid, b.sessionid);
        assert_ne!(a.requestid, a.sessionid);
        let shared = RequestBuilder::new(Protocol::Json40)
            .sessionid(&a.sessionid)
            .build()
            .unwrap();
        assert_eq!(shared.sessionid, a.sessionid);
        assert_ne!(shared.requestid, a.requestid);
    }

    #[test]
    fn target_version_prefix_matches_whole_components() {
        let uc = UpdateCheckRequest {
            targetversionprefix: Some("1.2.3".into()),
            ..Default::default()
        };
        assert!(uc.allows(&"1.2.3.4".parse().unwrap()));
        assert!(!uc.allows(&"1.2.34".parse().unwrap()));
        assert!(UpdateCheckRequest::default().allows(&"9".parse().unwrap()));
    }

    #[test]
    fn refusals() {
        let big = vec![b' '; MAX_REQUEST_BYTES + 1];
        assert!(matches!(
            parse_request(&big, None),
            Err(ProtocolError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_request(b"", None),
            Err(ProtocolError::Empty)
        ));
        assert!(matches!(
            parse_request(b"hello", None),
            Err(ProtocolError::UnknownFormat)
        ));
        let no_id = br#"<request protocol="3.0"><app version="1"/></request>"#;
        assert!(matches!(
            parse_request(no_id, None),
            Err(ProtocolError::RequestApp { index: 0, .. })
        ));
        let bad_event =
            br#"{"request":{"protocol":"3.1","app":[{"appid":"a","event":[{"eventtype":"x"}]}]}}"#;
        let err = parse_request(bad_event, None).unwrap_err();
        assert!(err.to_string().contains("eventtype 'x'"), "{err}");
        let json = br#"{"request":{"protocol":"3.1","app":[]}}"#;
        assert!(matches!(
            parse_request(json, Some(Protocol::Json40)),
            Err(ProtocolError::ProtocolMismatch {
                expected: "4.0",
                ..
            })
        ));
    }

    #[test]
    fn fuchsia_requests_labelled_3_0_read_as_3_1_and_keep_their_label() {
        let body = br#"{"request":{"protocol":"3.0","updater":"fuchsia","updaterversion":"0.0.1",
            "installsource":"scheduledtask","ismachine":true,
            "os":{"platform":"Fuchsia","version":"0.1","sp":"","arch":"x86_64"},
            "app":[{"appid":"{ABC}","version":"1.2.3.4","cohorthint":"beta",
                    "updatecheck":{},"ping":{"ad":3300,"rd":3300},
                    "event":[{"eventtype":3,"eventresult":1,"errorcode":0}]}]}}"#;
        let r = parse_request(body, Some(Protocol::Json31)).unwrap();
        assert_eq!(r.protocol, Protocol::Json31);
        assert_eq!(r.flavor, Flavor::Fuchsia);
        assert_eq!(r.updater.as_deref(), Some("fuchsia"));
        let app = &r.apps[0];
        assert_eq!(app.cohort.cohorthint.as_deref(), Some("beta"));
        assert_eq!(app.ping.as_ref().unwrap().rd, Some(3300));
        assert_eq!(app.events[0].eventtype, EventType::Update);
        let again = r.to_body();
        assert!(again.contains(r#""protocol":"3.0""#), "{again}");
        assert_eq!(parse_request(again.as_bytes(), None).unwrap(), r);
        // A single app object is one app, as in responses.
        let one = br#"{"request":{"protocol":"4.0","apps":{"appid":"a","version":"1"}}}"#;
        assert_eq!(parse_request(one, None).unwrap().apps.len(), 1);
        let bad = br#"{"request":{"protocol":"4.0","apps":7}}"#;
        assert!(matches!(
            parse_request(bad, None),
            Err(ProtocolError::RequestApp { index: 0, .. })
        ));
    }
}

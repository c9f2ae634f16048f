//! Omaha 3.0 XML: a small element tree read with quick-xml, the response
//! parser and the response writer. Requests live in `request.rs`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::Event as XmlEvent;
use quick_xml::{Reader, XmlVersion};

use super::error::{AppError, AppErrorKind, ProtocolError};
use super::types::*;
use super::{Protocol, protocol_size_text, valid_url};
use crate::version::Version;

/// One XML element: name, attributes in document order, children, text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn attr_string(&self, name: &str) -> Option<String> {
        self.attr(name).map(str::to_owned)
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

fn xml_error(e: impl std::fmt::Display, reader_pos: u64) -> ProtocolError {
    ProtocolError::Xml(format!("{e} (at byte {reader_pos})"))
}

/// Reads a document into its root element. Line ends in the text are
/// normalised (CRLF and CR become LF) as XML requires, but a character
/// reference such as `&#13;` stays the character it names; comments and
/// declarations are skipped.
pub(crate) fn read_tree(text: &str) -> Result<Element, ProtocolError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let pos = reader.buffer_position();
        let event = reader.read_event().map_err(|e| xml_error(e, pos))?;
        match event {
            XmlEvent::Start(start) | XmlEvent::Empty(start) if root.is_some() => {
                let name = start.name().as_ref().to_owned();
                return Err(ProtocolError::Xml(format!(
                    "element <{name}> after the root element"
                )));
            }
            XmlEvent::Start(start) => {
                stack.push(element_of(&start, pos)?);
            }
            XmlEvent::Empty(start) => {
                let el = element_of(&start, pos)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            XmlEvent::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err(xml_error("unexpected end tag", pos));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            XmlEvent::Text(t) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&normalize_eol(&t.xml10_content()));
                }
            }
            XmlEvent::CData(c) => {
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&normalize_eol(&c.xml10_content()));
                }
            }
            XmlEvent::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| xml_error(e, pos))?
                        .map(String::from)
                } else {
                    resolve_predefined_entity(&r).map(str::to_owned)
                };
                let Some(resolved) = resolved else {
                    return Err(xml_error(format!("unknown entity &{};", &*r), pos));
                };
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&resolved);
                }
            }
            XmlEvent::Eof => break,
            XmlEvent::Comment(_) | XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::DocType(_) => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(ProtocolError::Xml(format!(
            "element <{}> is not closed",
            open.name
        )));
    }
    root.ok_or_else(|| ProtocolError::Xml("no root element".to_owned()))
}

fn normalize_eol(s: &str) -> String {
    if s.contains('\r') {
        s.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        s.to_owned()
    }
}

fn element_of(
    start: &quick_xml::events::BytesStart<'_>,
    pos: u64,
) -> Result<Element, ProtocolError> {
    let name = start.name().as_ref().to_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| xml_error(e, pos))?;
        let key = attr.key.as_ref().to_owned();
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| xml_error(e, pos))?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Reads a boolean attribute ("true"/"false"/"1"/"0", any case).
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Checks the root element's name and `protocol` attribute.
pub(crate) fn check_root(root: &Element, expected: &'static str) -> Result<(), ProtocolError> {
    if root.name != expected {
        return Err(ProtocolError::WrongRoot {
            expected,
            found: root.name.clone(),
        });
    }
    let found = root
        .attr("protocol")
        .ok_or(ProtocolError::MissingProtocol)?;
    if found != Protocol::Xml30.version() {
        return Err(ProtocolError::ProtocolMismatch {
            expected: Protocol::Xml30.version(),
            found: found.to_owned(),
        });
    }
    Ok(())
}

fn int_attr(el: &Element, name: &str) -> Option<i64> {
    el.attr(name).and_then(|v| v.trim().parse().ok())
}

/// Parses a 3.0 XML update-check response.
pub(crate) fn parse_response(text: &str) -> Result<Response, ProtocolError> {
    let head = text.trim_start_matches('\u{feff}').trim_start();
    if head.is_empty() {
        return Err(ProtocolError::Empty);
    }
    if !head.starts_with('<') {
        return Err(ProtocolError::Xml(
            "document does not start with '<'".to_owned(),
        ));
    }
    let root = read_tree(head)?;
    check_root(&root, "response")?;
    let mut out = Response::new(Protocol::Xml30);
    out.server = root.attr_string("server");
    if let Some(d) = root.child("daystart") {
        out.daystart = Daystart {
            elapsed_days: int_attr(d, "elapsed_days"),
            elapsed_seconds: int_attr(d, "elapsed_seconds"),
        };
    }
    if let Some(req) = root.child("systemrequirements") {
        out.systemrequirements = Some(SystemRequirements {
            platform: req.attr_string("platform"),
            arch: req.attr_string("arch"),
            min_os_version: req.attr_string("min_os_version"),
        });
    }
    for (index, el) in root.children_named("app").enumerate() {
        match parse_app(el) {
            Ok(app) => out.apps.push(app),
            Err(kind) => {
                let error = AppError {
                    index,
                    appid: el.attr_string("appid"),
                    kind,
                };
                tracing::warn!(%error, "dropping malformed app from 3.0 XML response");
                out.app_errors.push(error);
            }
        }
    }
    Ok(out)
}

fn underscore_attrs(el: &Element) -> BTreeMap<String, String> {
    el.attrs
        .iter()
        .filter(|(k, _)| k.starts_with('_'))
        .cloned()
        .collect()
}

fn parse_app(el: &Element) -> Result<App, AppErrorKind> {
    let appid = el
        .attr("appid")
        .filter(|s| !s.is_empty())
        .ok_or(AppErrorKind::MissingAppId)?;
    let status = el
        .attr("status")
        .filter(|s| !s.is_empty())
        .map(AppStatus::parse)
        .unwrap_or_default();
    let mut app = App::new(AppId::new(appid), status);
    app.cohort = Cohort {
        cohort: el.attr_string("cohort"),
        cohorthint: el.attr_string("cohorthint"),
        cohortname: el.attr_string("cohortname"),
    };
    app.extras = underscore_attrs(el);
    app.data = el
        .children_named("data")
        .map(|d| Data {
            name: d.attr_string("name"),
            index: d.attr_string("index"),
            status: d.attr("status").map(DataStatus::parse).unwrap_or_default(),
            text: d.text.trim().to_owned(),
        })
        .collect();
    app.ping_status = el.child("ping").and_then(|p| p.attr_string("status"));
    app.event_statuses = el
        .children_named("event")
        .filter_map(|e| e.attr_string("status"))
        .collect();
    if let Some(uc) = el.child("updatecheck") {
        app.updatecheck = Some(parse_updatecheck(uc)?);
    }
    Ok(app)
}

fn parse_action(a: &Element) -> Action {
    let mut action = Action::default();
    for (k, v) in &a.attrs {
        let slot = match k.as_str() {
            "event" => &mut action.event,
            "run" => &mut action.run,
            "arguments" => &mut action.arguments,
            "needsadmin" => &mut action.needsadmin,
            "onsuccess" => &mut action.onsuccess,
            _ => {
                action.attributes.insert(k.clone(), v.clone());
                continue;
            }
        };
        *slot = Some(v.clone());
    }
    action
}

fn parse_updatecheck(el: &Element) -> Result<UpdateCheck, AppErrorKind> {
    let status = el
        .attr("status")
        .ok_or(AppErrorKind::MissingUpdateCheckStatus)?;
    let mut uc = UpdateCheck::with_status(UpdateCheckStatus::parse(status));
    uc.info = el.attr_string("info");
    uc.custom_attributes = underscore_attrs(el);
    if uc.status != UpdateCheckStatus::Ok {
        return Ok(uc);
    }
    let urls = el.child("urls").ok_or(AppErrorKind::MissingUrls)?;
    for url in urls.children_named("url") {
        if let Some(Ok(u)) = url.attr("codebase").map(valid_url) {
            uc.urls.push(u);
        }
        if let Some(Ok(u)) = url.attr("codebasediff").map(valid_url) {
            uc.diff_urls.push(u);
        }
    }
    if uc.urls.is_empty() {
        return Err(AppErrorKind::NoValidCodebase);
    }
    let m = el.child("manifest").ok_or(AppErrorKind::MissingManifest)?;
    let version_text = m
        .attr("version")
        .ok_or(AppErrorKind::MissingManifestVersion)?;
    let version: Version = version_text
        .parse()
        .map_err(|source| AppErrorKind::InvalidVersion {
            field: "manifest version",
            value: version_text.to_owned(),
            source,
        })?;
    let prodversionmin = match m.attr("prodversionmin") {
        Some(p) => Some(p.parse().map_err(|source| AppErrorKind::InvalidVersion {
            field: "prodversionmin",
            value: p.to_owned(),
            source,
        })?),
        None => None,
    };
    let mut packages = Vec::new();
    if let Some(list) = m.child("packages") {
        for p in list.children_named("package") {
            packages.push(Package {
                name: p
                    .attr_string("name")
                    .ok_or(AppErrorKind::MissingPackageName)?,
                namediff: p.attr_string("namediff"),
                fingerprint: p.attr_string("fp"),
                hash: p.attr_string("hash"),
                hash_sha256: p.attr_string("hash_sha256"),
                hashdiff_sha256: p.attr_string("hashdiff_sha256"),
                size: protocol_size_text(p.attr("size")),
                sizediff: protocol_size_text(p.attr("sizediff")),
                required: p.attr("required").and_then(parse_bool),
            });
        }
    }
    let actions = m
        .child("actions")
        .map(|a| a.children_named("action").map(parse_action).collect())
        .unwrap_or_default();
    uc.next_version = Some(version.clone());
    uc.manifest = Some(Manifest {
        version,
        prodversionmin,
        run: m.attr_string("run"),
        arguments: m.attr_string("arguments"),
        packages,
        actions,
    });
    Ok(uc)
}

// ---------------------------------------------------------- writing ----

/// Appends ` name="value"` with the value escaped. Tab, line feed and
/// carriage return are written as character references: written as they
/// are, a reader would normalise them to spaces.
pub(crate) fn write_attr(out: &mut String, name: &str, value: &str) {
    let escaped = escape(value)
        .replace('\t', "&#9;")
        .replace('\n', "&#10;")
        .replace('\r', "&#13;");
    let _ = write!(out, " {name}=\"{escaped}\"");
}

/// Escapes element text; a carriage return is written as a character
/// reference, which a reader keeps (a raw one becomes a line feed).
fn escape_text(text: &str) -> String {
    escape(text).replace('\r', "&#13;")
}

pub(crate) fn write_opt(out: &mut String, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        write_attr(out, name, v);
    }
}

/// Writes a response as 3.0 XML.
pub(crate) fn write_response(response: &Response) -> String {
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response");
    write_attr(&mut o, "protocol", "3.0");
    write_opt(&mut o, "server", &response.server);
    o.push_str(">\n");
    let d = &response.daystart;
    if d.elapsed_days.is_some() || d.elapsed_seconds.is_some() {
        o.push_str("  <daystart");
        if let Some(s) = d.elapsed_seconds {
            write_attr(&mut o, "elapsed_seconds", &s.to_string());
        }
        if let Some(days) = d.elapsed_days {
            write_attr(&mut o, "elapsed_days", &days.to_string());
        }
        o.push_str("/>\n");
    }
    if let Some(req) = &response.systemrequirements {
        o.push_str("  <systemrequirements");
        write_opt(&mut o, "platform", &req.platform);
        write_opt(&mut o, "arch", &req.arch);
        write_opt(&mut o, "min_os_version", &req.min_os_version);
        o.push_str("/>\n");
    }
    for app in &response.apps {
        write_app(&mut o, app);
    }
    o.push_str("</response>\n");
    o
}

fn write_app(o: &mut String, app: &App) {
    o.push_str("  <app");
    write_attr(o, "appid", app.appid.as_str());
    write_attr(o, "status", app.status.as_str());
    write_opt(o, "cohort", &app.cohort.cohort);
    write_opt(o, "cohorthint", &app.cohort.cohorthint);
    write_opt(o, "cohortname", &app.cohort.cohortname);
    for (k, v) in &app.extras {
        write_attr(o, k, v);
    }
    o.push_str(">\n");
    if let Some(uc) = &app.updatecheck {
        o.push_str("    <updatecheck");
        write_attr(o, "status", uc.status.as_str());
        write_opt(o, "info", &uc.info);
        for (k, v) in &uc.custom_attributes {
            write_attr(o, k, v);
        }
        o.push_str(">\n");
        if !uc.urls.is_empty() || !uc.diff_urls.is_empty() {
            o.push_str("      <urls>\n");
            for u in &uc.urls {
                o.push_str("        <url");
                write_attr(o, "codebase", u);
                o.push_str("/>\n");
            }
            for u in &uc.diff_urls {
                o.push_str("        <url");
                write_attr(o, "codebasediff", u);
                o.push_str("/>\n");
            }
            o.push_str("      </urls>\n");
        }
        if let Some(m) = &uc.manifest {
            write_manifest(o, m);
        }
        o.push_str("    </updatecheck>\n");
    }
    if let Some(s) = &app.ping_status {
        o.push_str("    <ping");
        write_attr(o, "status", s);
        o.push_str("/>\n");
    }
    for s in &app.event_statuses {
        o.push_str("    <event");
        write_attr(o, "status", s);
        o.push_str("/>\n");
    }
    for d in &app.data {
        o.push_str("    <data");
        write_opt(o, "index", &d.index);
        write_opt(o, "name", &d.name);
        write_attr(o, "status", d.status.as_str());
        let _ = writeln!(o, ">{}</data>", escape_text(&d.text));
    }
    o.push_str("  </app>\n");
}

fn write_manifest(o: &mut String, m: &Manifest) {
    o.push_str("      <manifest");
    write_attr(o, "version", &m.version.to_string());
    if let Some(p) = &m.prodversionmin {
        write_attr(o, "prodversionmin", &p.to_string());
    }
    write_opt(o, "run", &m.run);
    write_opt(o, "arguments", &m.arguments);
    o.push_str(">\n        <packages>\n");
    for p in &m.packages {
        o.push_str("          <package");
        write_attr(o, "name", &p.name);
        write_opt(o, "namediff", &p.namediff);
        write_opt(o, "fp", &p.fingerprint);
        write_opt(o, "hash", &p.hash);
        write_opt(o, "hash_sha256", &p.hash_sha256);
        write_opt(o, "hashdiff_sha256", &p.hashdiff_sha256);
        write_attr(o, "size", &p.size.to_string());
        if p.sizediff > 0 {
            write_attr(o, "sizediff", &p.sizediff.to_string());
        }
        if let Some(r) = p.required {
            write_attr(o, "required", if r { "true" } else { "false" });
        }
        o.push_str("/>\n");
    }
    o.push_str("        </packages>\n");
    if !m.actions.is_empty() {
        o.push_str("        <actions>\n");
        for a in &m.actions {
            o.push_str("          <action");
            write_opt(o, "event", &a.event);
            write_opt(o, "run", &a.run);
            write_opt(o, "arguments", &a.arguments);
            write_opt(o, "needsadmin", &a.needsadmin);
            write_opt(o, "onsuccess", &a.onsuccess);
            for (k, v) in &a.attributes {
                write_attr(o, k, v);
            }
            o.push_str("/>\n");
        }
        o.push_str("        </actions>\n");
    }
    o.push_str("      </manifest>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_reads_entities_and_crlf() {
        let root = read_tree("<a x=\"1 &amp; 2\">\r\n<b>t&lt;u&#65;</b><c/></a>").unwrap();
        assert_eq!(root.attr("x"), Some("1 & 2"));
        assert_eq!(root.child("b").unwrap().text, "t<uA");
        assert!(root.child("c").is_some());
        assert!(read_tree("<a><b></a>").is_err());
        assert!(read_tree("<a></a><b/>").is_err());
        assert!(read_tree("<a>").is_err());
        assert!(read_tree("<a>&bogus;</a>").is_err());
    }

    #[test]
    fn whitespace_character_references_round_trip() {
        // Found by the omaha_xml fuzz target: tab, line feed and carriage
        // return from character references were written raw, and read back
        // as spaces (attributes) or line feeds (text).
        let text = "<response protocol=\"3.0\" server=\"a&#10;b&#9;c&#13;d\">\
            <app appid=\"x\" _k=\"1&#13;&#10;2\"><data name=\"install\" index=\"i\">a&#13;b\r\nc</data></app></response>";
        let r = parse_response(text).unwrap();
        assert_eq!(r.server.as_deref(), Some("a\nb\tc\rd"));
        assert_eq!(
            r.apps[0].extras.get("_k").map(String::as_str),
            Some("1\r\n2")
        );
        assert_eq!(r.apps[0].data[0].text, "a\rb\nc");
        let again = parse_response(&write_response(&r)).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn failing_statuses_are_kept_but_broken_updates_dropped() {
        let text = r#"<response protocol="3.0">
          <app appid="a" status="error-internal"/>
          <app appid="b"><updatecheck status="ok"><urls><url codebase="nonurl"/></urls></updatecheck></app>
          <app status="ok"/>
          <app appid="c"><updatecheck/></app>
        </response>"#;
        let r = parse_response(text).unwrap();
        assert_eq!(r.apps.len(), 1);
        assert_eq!(r.apps[0].status, AppStatus::Internal);
        let kinds: Vec<_> = r.app_errors.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            [
                AppErrorKind::NoValidCodebase,
                AppErrorKind::MissingAppId,
                AppErrorKind::MissingUpdateCheckStatus
            ]
        );
    }

    #[test]
    fn root_must_be_a_3_0_response() {
        assert!(matches!(
            parse_response("<request protocol=\"3.0\"/>"),
            Err(ProtocolError::WrongRoot { .. })
        ));
        assert!(matches!(
            parse_response("<response/>"),
            Err(ProtocolError::MissingProtocol)
        ));
        assert!(matches!(parse_response("   "), Err(ProtocolError::Empty)));
    }

    #[test]
    fn writer_round_trips() {
        let text = r#"<response protocol="3.0" server="s"><daystart elapsed_seconds="3" elapsed_days="9"/>
          <app appid="a" status="ok" cohort="c" _x="y"><updatecheck status="ok" _why="w">
          <urls><url codebase="https://e.example/d/"/><url codebasediff="https://e.example/diff/"/></urls>
          <manifest version="1.2.3.4"><packages><package name="p &amp; q" hash="h" hash_sha256="s" size="12" required="true"/></packages>
          <actions><action event="install" run="p" arguments="-x" needsadmin="false"/><action event="postinstall" sha256="z" Odd="1"/></actions>
          </manifest></updatecheck><ping status="ok"/><event status="ok"/><data index="i" name="install" status="ok">{"a": "&lt;b&gt;"}</data></app>
        </response>"#;
        let r = parse_response(text).unwrap();
        assert!(r.app_errors.is_empty());
        let again = parse_response(&write_response(&r)).unwrap();
        assert_eq!(r, again);
        assert_eq!(again.apps[0].data[0].text, r#"{"a": "<b>"}"#);
        let actions = &again.apps[0]
            .updatecheck
            .as_ref()
            .unwrap()
            .manifest
            .as_ref()
            .unwrap()
            .actions;
        assert_eq!(
            actions[1].attributes.get("Odd").map(String::as_str),
            Some("1")
        );
    }
}

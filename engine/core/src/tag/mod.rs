//! Installer tags: the untrusted `key=value&key=value` string a vendor
//! attaches to a copy of the installer to say what it installs, e.g.
//!
//! ```text
//! appguid={8A69D345-D564-463C-AFF1-A69D9E530F96}&appname=My%20App&needsadmin=prefers&brand=GGLS&lang=en
//! ```
//!
//! [`Tag::parse`] reads one: keys are case-insensitive, values are
//! percent-decoded and trimmed, every `appguid` starts a new app and the
//! app attributes after it (`appname`, `needsadmin`, `ap`,
//! `installdataindex`, `experiments`, `untrusteddata`, `installerdata`)
//! belong to that app; the global ones (`brand`, `lang`, `iid`, `client`,
//! `bundlename`, `usagestats`, …) may stand anywhere. A key the parser does
//! not know is kept, in order, with the app it follows (or the tag when no
//! app came yet), so it can be passed on. Anything malformed is refused
//! with a [`TagError`] naming the attribute and its byte offset.
//!
//! [`file`] reads and writes a tag appended to a copy of a binary.

mod escape;
pub mod file;

use std::fmt;

use crate::app_id::check_app_id;

/// The longest tag accepted, in bytes.
pub const MAX_TAG_BYTES: usize = 16 * 1024;

/// Where the app should be installed (`needsadmin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeedsAdmin {
    /// `true`: for the whole machine (the system scope).
    Yes,
    /// `false`: for the current user only.
    No,
    /// `prefers`: the system scope when it can be written, else the user's.
    Prefers,
}

impl NeedsAdmin {
    /// The tag's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NeedsAdmin::Yes => "true",
            NeedsAdmin::No => "false",
            NeedsAdmin::Prefers => "prefers",
        }
    }
}

/// One app of a tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagApp {
    /// `appguid`, checked as an app id and kept as written.
    pub appid: String,
    /// `appname`.
    pub appname: Option<String>,
    /// `needsadmin`.
    pub needsadmin: Option<NeedsAdmin>,
    /// `ap`: the additional parameters (channel) to register.
    pub ap: Option<String>,
    /// `installdataindex`: which of the server's install data to ask for.
    pub installdataindex: Option<String>,
    /// `experiments`.
    pub experiments: Option<String>,
    /// `untrusteddata`.
    pub untrusteddata: Option<String>,
    /// `installerdata`: text handed to the app's installer.
    pub installerdata: Option<String>,
    /// Keys this parser does not know, decoded, in tag order.
    pub extra: Vec<(String, String)>,
}

/// A parsed tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tag {
    /// The apps, in tag order (at least one).
    pub apps: Vec<TagApp>,
    /// `bundlename`.
    pub bundlename: Option<String>,
    /// `iid`: the installation id.
    pub iid: Option<String>,
    /// `brand`: the brand code given to every app of the tag.
    pub brand: Option<String>,
    /// `client`.
    pub client: Option<String>,
    /// `lang`.
    pub lang: Option<String>,
    /// `usagestats`: 0 no, 1 yes, 2 leave it to the user.
    pub usagestats: Option<u8>,
    /// `omahaexperiments`.
    pub omahaexperiments: Option<String>,
    /// `referral`.
    pub referral: Option<String>,
    /// `browser`.
    pub browser: Option<u32>,
    /// `flighting`.
    pub flighting: Option<bool>,
    /// Keys this parser does not know that came before the first app.
    pub extra: Vec<(String, String)>,
}

/// Why a tag was refused. Every variant but the first two names the
/// attribute (as written) and its byte offset in the tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// Nothing but separators and spaces.
    #[error("the tag is empty")]
    Empty,
    /// Longer than [`MAX_TAG_BYTES`].
    #[error("the tag is {0} bytes long; at most {MAX_TAG_BYTES} are accepted")]
    TooLong(usize),
    /// A control character (a tag is one line of printable text).
    #[error("tag: a control character (byte {at}) is not allowed in a tag")]
    ControlCharacter {
        /// Its byte offset.
        at: usize,
    },
    /// An attribute with no name (`=x`).
    #[error("tag: {attribute:?} at byte {at} has no name")]
    NoName {
        /// The attribute as written.
        attribute: String,
        /// Its byte offset.
        at: usize,
    },
    /// A name with other characters than ASCII letters, digits and `_-.`.
    #[error("tag: {attribute:?} at byte {at}: a name is ASCII letters, digits, '_', '-' and '.'")]
    BadName {
        /// The attribute as written.
        attribute: String,
        /// Its byte offset.
        at: usize,
    },
    /// An attribute with no value (`appname` or `appname=`).
    #[error("tag: {attribute:?} at byte {at} has no value")]
    NoValue {
        /// The attribute as written.
        attribute: String,
        /// Its byte offset.
        at: usize,
    },
    /// A `%` not followed by two hex digits, or escapes that decode to
    /// bytes that are not UTF-8.
    #[error("tag: {attribute:?} at byte {at}: {problem}")]
    BadEscape {
        /// The attribute as written.
        attribute: String,
        /// Its byte offset.
        at: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// An app attribute before any `appguid`.
    #[error("tag: {attribute:?} at byte {at} belongs to an app, but no appguid comes before it")]
    NoAppYet {
        /// The attribute as written.
        attribute: String,
        /// Its byte offset.
        at: usize,
    },
    /// An attribute given twice for the same app (or twice globally).
    #[error("tag: {attribute:?} at byte {at} repeats {key}, given already")]
    Repeated {
        /// The attribute as written.
        attribute: String,
        /// Its byte offset.
        at: usize,
        /// The key, lower case.
        key: String,
    },
    /// The same app id twice.
    #[error("tag: {attribute:?} at byte {at} names an app the tag has already")]
    RepeatedApp {
        /// The attribute as written.
        attribute: String,
        /// Its byte offset.
        at: usize,
    },
    /// A value the key does not take.
    #[error("tag: {attribute:?} at byte {at}: {expected}")]
    BadValue {
        /// The attribute as written.
        attribute: String,
        /// Its byte offset.
        at: usize,
        /// What the key takes.
        expected: &'static str,
    },
    /// No `appguid` at all.
    #[error("the tag names no app (give appguid=...)")]
    NoApp,
}

/// The app attributes, lower case.
const APP_KEYS: [&str; 7] = [
    "appname",
    "needsadmin",
    "ap",
    "installdataindex",
    "experiments",
    "untrusteddata",
    "installerdata",
];

/// One `key=value` of the tag, as written, with its offset.
struct Attribute<'a> {
    text: &'a str,
    at: usize,
    key: String,
    value: String,
}

impl Attribute<'_> {
    fn bad(&self, expected: &'static str) -> TagError {
        TagError::BadValue {
            attribute: self.text.to_owned(),
            at: self.at,
            expected,
        }
    }

    fn repeated(&self) -> TagError {
        TagError::Repeated {
            attribute: self.text.to_owned(),
            at: self.at,
            key: self.key.clone(),
        }
    }
}

/// Splits the tag at `&`, trims, and decodes every attribute.
fn attributes(tag: &str) -> Result<Vec<Attribute<'_>>, TagError> {
    let mut out = Vec::new();
    let mut offset = 0;
    for piece in tag.split('&') {
        let start = offset;
        offset += piece.len() + 1;
        let text = piece.trim();
        if text.is_empty() {
            continue;
        }
        let at = start + (piece.len() - piece.trim_start().len());
        let (name, raw) = match text.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (text, ""),
        };
        if name.is_empty() {
            return Err(TagError::NoName {
                attribute: text.to_owned(),
                at,
            });
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(TagError::BadName {
                attribute: text.to_owned(),
                at,
            });
        }
        if raw.is_empty() {
            return Err(TagError::NoValue {
                attribute: text.to_owned(),
                at,
            });
        }
        let value = escape::decode(raw).map_err(|e| TagError::BadEscape {
            attribute: text.to_owned(),
            at,
            problem: match e {
                escape::Undecodable::BadEscape(i) => {
                    format!("the '%' at byte {i} of the value is not followed by two hex digits")
                }
                escape::Undecodable::NotUtf8 => "the escapes do not decode to UTF-8 text".into(),
            },
        })?;
        out.push(Attribute {
            text,
            at,
            key: name.to_ascii_lowercase(),
            value: value.trim().to_owned(),
        });
    }
    Ok(out)
}

/// Sets `slot` once; a second value for it is refused.
fn once<T>(slot: &mut Option<T>, value: T, a: &Attribute<'_>) -> Result<(), TagError> {
    if slot.is_some() {
        return Err(a.repeated());
    }
    *slot = Some(value);
    Ok(())
}

fn parse_bool(a: &Attribute<'_>) -> Result<bool, TagError> {
    match a.value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(a.bad("the value must be true or false")),
    }
}

impl Tag {
    /// Parses a tag (see the [module](self) documentation).
    pub fn parse(tag: &str) -> Result<Tag, TagError> {
        if tag.len() > MAX_TAG_BYTES {
            return Err(TagError::TooLong(tag.len()));
        }
        if let Some(at) = tag.bytes().position(|b| b.is_ascii_control()) {
            return Err(TagError::ControlCharacter { at });
        }
        let attributes = attributes(tag)?;
        if attributes.is_empty() {
            return Err(TagError::Empty);
        }
        let mut out = Tag::default();
        for a in &attributes {
            out.apply(a)?;
        }
        if out.apps.is_empty() {
            return Err(TagError::NoApp);
        }
        Ok(out)
    }

    fn apply(&mut self, a: &Attribute<'_>) -> Result<(), TagError> {
        let v = a.value.clone();
        match a.key.as_str() {
            "appguid" => {
                let id = check_app_id(&v)
                    .map_err(|_| a.bad("an app id is 1 to 128 ASCII letters, digits and ._-{}"))?;
                if self
                    .apps
                    .iter()
                    .any(|app| app.appid.eq_ignore_ascii_case(&id))
                {
                    return Err(TagError::RepeatedApp {
                        attribute: a.text.to_owned(),
                        at: a.at,
                    });
                }
                self.apps.push(TagApp {
                    appid: v,
                    ..TagApp::default()
                });
                Ok(())
            }
            "bundlename" => once(&mut self.bundlename, v, a),
            "iid" => once(&mut self.iid, v, a),
            "brand" => once(&mut self.brand, v, a),
            "client" => once(&mut self.client, v, a),
            "lang" => once(&mut self.lang, v, a),
            "omahaexperiments" => once(&mut self.omahaexperiments, v, a),
            "referral" => once(&mut self.referral, v, a),
            "usagestats" => {
                let n = match v.as_str() {
                    "0" => 0,
                    "1" => 1,
                    "2" => 2,
                    _ => return Err(a.bad("usagestats must be 0, 1 or 2")),
                };
                once(&mut self.usagestats, n, a)
            }
            "browser" => {
                let n = v
                    .parse::<u32>()
                    .map_err(|_| a.bad("browser must be a whole number"))?;
                once(&mut self.browser, n, a)
            }
            "flighting" => {
                let b = parse_bool(a)?;
                once(&mut self.flighting, b, a)
            }
            key if APP_KEYS.contains(&key) => {
                let app = self.apps.last_mut().ok_or_else(|| TagError::NoAppYet {
                    attribute: a.text.to_owned(),
                    at: a.at,
                })?;
                app.apply(a)
            }
            _ => {
                let extra = match self.apps.last_mut() {
                    Some(app) => &mut app.extra,
                    None => &mut self.extra,
                };
                if extra.iter().any(|(k, _)| *k == a.key) {
                    return Err(a.repeated());
                }
                extra.push((a.key.clone(), v));
                Ok(())
            }
        }
    }
}

impl TagApp {
    fn apply(&mut self, a: &Attribute<'_>) -> Result<(), TagError> {
        let v = a.value.clone();
        match a.key.as_str() {
            "appname" => once(&mut self.appname, v, a),
            "needsadmin" => {
                let n = match v.to_ascii_lowercase().as_str() {
                    "true" => NeedsAdmin::Yes,
                    "false" => NeedsAdmin::No,
                    "prefers" => NeedsAdmin::Prefers,
                    _ => return Err(a.bad("needsadmin must be true, false or prefers")),
                };
                once(&mut self.needsadmin, n, a)
            }
            "ap" => once(&mut self.ap, v, a),
            "installdataindex" => once(&mut self.installdataindex, v, a),
            "experiments" => once(&mut self.experiments, v, a),
            "untrusteddata" => once(&mut self.untrusteddata, v, a),
            "installerdata" => once(&mut self.installerdata, v, a),
            _ => Err(a.bad("not an app attribute")),
        }
    }
}

/// Writes `&key=value` with the value encoded, when there is one.
fn put(
    f: &mut fmt::Formatter<'_>,
    first: &mut bool,
    key: &str,
    value: Option<&str>,
) -> fmt::Result {
    let Some(value) = value else { return Ok(()) };
    if !*first {
        f.write_str("&")?;
    }
    *first = false;
    write!(f, "{key}={}", escape::encode(value))
}

/// The canonical form: globals first, then each app with its attributes,
/// every value percent-encoded. [`Tag::parse`] reads it back unchanged.
impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let usagestats = self.usagestats.map(|n| n.to_string());
        let browser = self.browser.map(|n| n.to_string());
        let flighting = self.flighting.map(|b| b.to_string());
        let globals = [
            ("bundlename", self.bundlename.as_deref()),
            ("iid", self.iid.as_deref()),
            ("brand", self.brand.as_deref()),
            ("client", self.client.as_deref()),
            ("lang", self.lang.as_deref()),
            ("usagestats", usagestats.as_deref()),
            ("omahaexperiments", self.omahaexperiments.as_deref()),
            ("referral", self.referral.as_deref()),
            ("browser", browser.as_deref()),
            ("flighting", flighting.as_deref()),
        ];
        for (k, v) in globals {
            put(f, &mut first, k, v)?;
        }
        for (k, v) in &self.extra {
            put(f, &mut first, k, Some(v))?;
        }
        for app in &self.apps {
            put(f, &mut first, "appguid", Some(&app.appid))?;
            let attributes = [
                ("appname", app.appname.as_deref()),
                ("needsadmin", app.needsadmin.map(NeedsAdmin::as_str)),
                ("ap", app.ap.as_deref()),
                ("installdataindex", app.installdataindex.as_deref()),
                ("experiments", app.experiments.as_deref()),
                ("untrusteddata", app.untrusteddata.as_deref()),
                ("installerdata", app.installerdata.as_deref()),
            ];
            for (k, v) in attributes {
                put(f, &mut first, k, v)?;
            }
            for (k, v) in &app.extra {
                put(f, &mut first, k, Some(v))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

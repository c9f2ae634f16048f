//! Omaha update protocol codecs.
//!
//! Three dialects are implemented, each with a serializer and a tolerant
//! parser for both directions:
//!
//! * **3.1 JSON** — Chromium's `update_client` protocol (`app`, `urls`,
//!   `manifest`, `packages`);
//! * **4.0 JSON** — Chromium's current protocol (`apps`,
//!   `updatecheck.nextversion`, `pipelines[].operations`);
//! * **3.0 XML** — classic Omaha, spoken by offline manifests (`.gup`) and
//!   servers such as Nebraska.
//!
//! Fuchsia's `omaha_client` crate speaks 3.1 JSON in its own spelling
//! ([`Flavor::Fuchsia`]): requests labelled `"protocol":"3.0"`, and a
//! response parser that requires members Chromium's does not.
//!
//! Parsing follows Chromium's rules: JSON responses begin with the `)]}'`
//! safe-JSON prefix, the response protocol must be the one requested,
//! unknown members are ignored, and an application that is malformed is
//! dropped and recorded in [`Response::app_errors`] while the rest of the
//! document is kept.
//!
//! ```
//! use upkeep_core::omaha::{parse_response, Protocol};
//! let body = b")]}'\n{\"response\":{\"protocol\":\"4.0\",\"apps\":[
//!     {\"appid\":\"abc\",\"status\":\"ok\",\"updatecheck\":{\"status\":\"noupdate\"}}]}}";
//! let response = parse_response(body, Protocol::Json40).unwrap();
//! assert_eq!(response.app("ABC").unwrap().result_status(), "noupdate");
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod args;
pub mod codes;
mod days;
mod error;
mod ids;
mod json;
pub mod offline;
mod request;
mod types;
mod xml;

pub use args::{ArgsError, join_args, split_args};
pub use days::{ActivityDays, DATE_FIRST, DATE_UNKNOWN, date_of_elapsed_days, fuzz_install_date};
pub use error::{AppError, AppErrorKind, ProtocolError};
pub use ids::random_id;
pub use request::{
    DataRequest, Event, MAX_REQUEST_BYTES, Os, Ping, Request, RequestApp, RequestBuilder,
    UpdateCheckRequest, parse_request, parse_request_with_limit,
};
pub use types::{
    Action, App, AppId, AppStatus, Cohort, Data, DataStatus, Daystart, ErrorCategory, EventResult,
    EventType, Manifest, Operation, OperationType, Package, Pipeline, Response, SystemRequirements,
    UpdateCheck, UpdateCheckStatus,
};

/// The safe-JSON prefix every JSON response begins with.
pub const SAFE_JSON_PREFIX: &str = ")]}'";

/// The longest `X-Retry-After` a client honours: one day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// Sizes at or above 2^53 are not exact in JSON numbers; such sizes count as 0.
pub const MAX_PROTOCOL_INT: f64 = 9_007_199_254_740_992.0;

/// A protocol dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// Omaha 3.0 over XML.
    #[serde(rename = "3.0")]
    Xml30,
    /// Omaha 3.1 over JSON.
    #[serde(rename = "3.1")]
    Json31,
    /// Omaha 4.0 over JSON.
    #[serde(rename = "4.0")]
    Json40,
}

impl Protocol {
    /// The value of the `protocol` member or attribute.
    pub fn version(self) -> &'static str {
        match self {
            Self::Xml30 => "3.0",
            Self::Json31 => "3.1",
            Self::Json40 => "4.0",
        }
    }

    /// The HTTP content type of a body in this dialect.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Xml30 => "application/xml",
            Self::Json31 | Self::Json40 => "application/json",
        }
    }
}

/// Which client family's spelling of a JSON dialect a document uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// As Chromium writes the dialect.
    #[default]
    Standard,
    /// As Fuchsia's `omaha_client` crate writes 3.1 JSON: labelled
    /// `"protocol":"3.0"`, and answered with `"protocol":"3.0"`, a
    /// `required` member on every package and an `actions` list in every
    /// manifest, which its parser needs.
    Fuchsia,
}

impl Flavor {
    /// Whether this is [`Flavor::Standard`].
    pub fn is_standard(&self) -> bool {
        *self == Flavor::Standard
    }

    /// The `protocol` label of a JSON document in `protocol` and this flavor.
    pub fn label(self, protocol: Protocol) -> &'static str {
        match (self, protocol) {
            (Flavor::Fuchsia, Protocol::Json31) => "3.0",
            _ => protocol.version(),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xml30 => f.write_str("3.0 XML"),
            Self::Json31 => f.write_str("3.1 JSON"),
            Self::Json40 => f.write_str("4.0 JSON"),
        }
    }
}

impl FromStr for Protocol {
    type Err = ProtocolError;

    /// Accepts "3.1", "4.0", and "xml" or "3.0" for 3.0 XML.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "3.1" => Ok(Self::Json31),
            "4.0" | "4" => Ok(Self::Json40),
            "xml" | "3.0" => Ok(Self::Xml30),
            other => Err(ProtocolError::UnsupportedProtocol(other.to_owned())),
        }
    }
}

impl Response {
    /// Writes the response in the given dialect (JSON with the safe-JSON
    /// prefix). The protocol written is `protocol`, whatever `self.protocol` says.
    pub fn to_body(&self, protocol: Protocol) -> String {
        self.to_body_in(protocol, Flavor::Standard)
    }

    /// Writes the response in the given dialect, spelled for the client
    /// `flavor` names (the flavor of its request): see [`Flavor`].
    pub fn to_body_in(&self, protocol: Protocol, flavor: Flavor) -> String {
        match protocol {
            Protocol::Json31 => json::write_response31(self, flavor),
            Protocol::Json40 => json::write_response40(self),
            Protocol::Xml30 => xml::write_response(self),
        }
    }
}

/// Removes the `)]}'` prefix (and the line break after it, LF or CRLF).
/// Returns `None` when the text does not begin with the prefix.
pub fn strip_safe_json_prefix(text: &str) -> Option<&str> {
    let rest = text.strip_prefix(SAFE_JSON_PREFIX)?;
    Some(
        rest.strip_prefix("\r\n")
            .or_else(|| rest.strip_prefix('\n'))
            .unwrap_or(rest),
    )
}

/// Parses an update-check response, requiring the protocol of the request.
pub fn parse_response(body: &[u8], expected: Protocol) -> Result<Response, ProtocolError> {
    let text = std::str::from_utf8(body)?;
    if text.is_empty() {
        return Err(ProtocolError::Empty);
    }
    match expected {
        Protocol::Json31 | Protocol::Json40 => json::parse_response(text, Some(expected)),
        Protocol::Xml30 => xml::parse_response(text),
    }
}

/// Parses an update-check response in whichever dialect it is written:
/// XML when it starts with `<`, JSON otherwise (which must begin with the
/// `)]}'` prefix, as [`parse_response`] requires), the JSON dialect being
/// chosen by its `protocol` member (`"3.0"`, Fuchsia's label, reads as 3.1).
pub fn parse_response_any(body: &[u8]) -> Result<Response, ProtocolError> {
    let text = std::str::from_utf8(body)?;
    let head = text.trim_start_matches('\u{feff}').trim_start();
    if head.is_empty() {
        return Err(ProtocolError::Empty);
    }
    if head.starts_with('<') {
        xml::parse_response(text)
    } else if head.starts_with(SAFE_JSON_PREFIX) || head.starts_with('{') {
        json::parse_response(text, None)
    } else {
        Err(ProtocolError::UnknownFormat)
    }
}

/// Reads an `X-Retry-After` header value: a positive number of seconds,
/// capped at one day. Anything else (empty, zero, negative, not a number)
/// yields `None`: the header is then ignored.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // All digits: only overflow can fail, and an overflow exceeds the cap.
    let secs = value.parse::<u64>().unwrap_or(u64::MAX);
    if secs == 0 {
        return None;
    }
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Reads a JSON-number size the way Chromium does: any number in
/// [0, 2^53) is kept (fractions truncated), everything else is 0.
pub(crate) fn protocol_size(value: Option<&serde_json::Value>) -> u64 {
    match value.and_then(serde_json::Value::as_f64) {
        Some(v) if (0.0..MAX_PROTOCOL_INT).contains(&v) => v as u64,
        _ => 0,
    }
}

/// Reads a size attribute written as text (3.0 XML), with the same range.
pub(crate) fn protocol_size_text(text: Option<&str>) -> u64 {
    match text.map(str::trim).and_then(|t| t.parse::<f64>().ok()) {
        Some(v) if (0.0..MAX_PROTOCOL_INT).contains(&v) => v as u64,
        _ => 0,
    }
}

/// Checks that a url is absolute and well formed, returning its normal form.
pub(crate) fn valid_url(text: &str) -> Result<String, String> {
    match url::Url::parse(text) {
        Ok(u) if u.cannot_be_a_base() => Err("not a hierarchical url".to_owned()),
        Ok(u) => Ok(u.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_json_prefix_accepts_lf_and_crlf() {
        assert_eq!(strip_safe_json_prefix(")]}'\n{}"), Some("{}"));
        assert_eq!(strip_safe_json_prefix(")]}'\r\n{}"), Some("{}"));
        assert_eq!(strip_safe_json_prefix(")]}'{}"), Some("{}"));
        assert_eq!(strip_safe_json_prefix("{}"), None);
        let crlf = b")]}'\r\n{\"response\":{\"protocol\":\"4.0\",\"apps\":[]}}";
        assert!(
            parse_response(crlf, Protocol::Json40)
                .unwrap()
                .apps
                .is_empty()
        );
    }

    #[test]
    fn retry_after_is_seconds_capped_at_a_day() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 86400 "), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("86401"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(MAX_RETRY_AFTER)
        );
        for bad in [
            "",
            "0",
            "-5",
            "1.5",
            "soon",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sizes_outside_the_exact_range_are_zero() {
        use serde_json::json;
        assert_eq!(protocol_size(Some(&json!(1234))), 1234);
        assert_eq!(
            protocol_size(Some(&json!(9007199254740991u64))),
            9007199254740991
        );
        assert_eq!(protocol_size(Some(&json!(9007199254740992u64))), 0);
        assert_eq!(protocol_size(Some(&json!(-1))), 0);
        assert_eq!(protocol_size(Some(&json!("12"))), 0);
        assert_eq!(protocol_size(None), 0);
        assert_eq!(protocol_size_text(Some("465881871")), 465881871);
        assert_eq!(protocol_size_text(Some("-3")), 0);
        assert_eq!(protocol_size_text(Some("${SIZE}")), 0);
    }

    #[test]
    fn urls_must_be_absolute() {
        assert!(valid_url("http://example.com/").is_ok());
        assert!(valid_url("nonurl").is_err());
        assert!(valid_url("example.com/extension_1.2.3.4.crx").is_err());
        assert!(valid_url("http://").is_err());
    }

    #[test]
    fn protocol_names() {
        assert_eq!("xml".parse::<Protocol>().unwrap(), Protocol::Xml30);
        assert_eq!("3.1".parse::<Protocol>().unwrap(), Protocol::Json31);
        assert_eq!("4.0".parse::<Protocol>().unwrap(), Protocol::Json40);
        assert!(matches!(
            "2.0".parse::<Protocol>(),
            Err(ProtocolError::UnsupportedProtocol(_))
        ));
    }

    #[test]
    fn response_protocol_must_match_the_request() {
        let body = b")]}'\n{\"response\":{\"protocol\":\"3.1\",\"app\":[]}}";
        let err = parse_response(body, Protocol::Json40).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::ProtocolMismatch {
                    expected: "4.0",
                    ..
                }
            ),
            "{err}"
        );
        let xml = b"<response protocol=\"3.0\"></response>";
        assert!(matches!(
            parse_response(xml, Protocol::Json31),
            Err(ProtocolError::MissingSafeJsonPrefix)
        ));
        let xml = b"<response protocol=\"2.0\"></response>";
        assert!(matches!(
            parse_response(xml, Protocol::Xml30),
            Err(ProtocolError::ProtocolMismatch {
                expected: "3.0",
                ..
            })
        ));
    }

    #[test]
    fn detected_json_needs_the_prefix_too() {
        let body = b"{\"response\":{\"protocol\":\"4.0\",\"apps\":[]}}";
        assert!(matches!(
            parse_response_any(body),
            Err(ProtocolError::MissingSafeJsonPrefix)
        ));
        let prefixed = b")]}'\n{\"response\":{\"protocol\":\"4.0\",\"apps\":[]}}";
        assert!(parse_response_any(prefixed).is_ok());
    }

    #[test]
    fn parse_errors_name_their_cause_once() {
        let err = parse_response(b")]}'\nnot json", Protocol::Json40).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("JSON read error: expected"),
            "{message}"
        );
        // The cause is in the message, so it is not also the source: a
        // printed chain (`{:#}` of anyhow) says it once.
        assert!(std::error::Error::source(&err).is_none());
        let err = parse_response(b")]}'\n\xff", Protocol::Json40).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        assert!(std::error::Error::source(&err).is_none());
    }
}

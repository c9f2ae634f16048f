//! Why a document, or one application inside it, was refused.

use serde::Serialize;

use crate::version::VersionError;

/// A refusal of a whole document (response or request).
///
/// Each message names its cause; the causes are not also given as
/// [`source`](std::error::Error::source), so a printed chain of errors says
/// each thing once.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The input was empty.
    #[error("empty document")]
    Empty,
    /// The input is larger than the accepted limit.
    #[error("document of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The input size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The input is not UTF-8.
    #[error("document is not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
    /// A JSON response did not begin with the `)]}'` safe-JSON prefix.
    #[error("JSON response does not begin with the safe-JSON prefix )]}}'")]
    MissingSafeJsonPrefix,
    /// The JSON text did not parse.
    #[error("JSON read error: {0}")]
    Json(serde_json::Error),
    /// The XML text did not parse.
    #[error("XML read error: {0}")]
    Xml(String),
    /// The document is neither JSON nor XML.
    #[error("cannot tell the document's format: it starts with neither {{, )]}}' nor <")]
    UnknownFormat,
    /// The JSON document is not an object.
    #[error("JSON document is not an object")]
    NotAnObject,
    /// The top-level element (`response` / `request`) is missing or of the wrong type.
    #[error("missing '{0}' element, or it is not an object")]
    MissingRoot(&'static str),
    /// The XML root element has an unexpected name.
    #[error("XML root element is <{found}>, expected <{expected}>")]
    WrongRoot {
        /// The expected element.
        expected: &'static str,
        /// The element found.
        found: String,
    },
    /// The `protocol` member is missing or not a string.
    #[error("missing or non-string 'protocol'")]
    MissingProtocol,
    /// The document speaks another protocol than the one asked for.
    #[error("incorrect protocol: expected '{expected}', found '{found}'")]
    ProtocolMismatch {
        /// The protocol of the request.
        expected: &'static str,
        /// The protocol in the document.
        found: String,
    },
    /// A protocol version this crate does not implement.
    #[error(
        "unsupported protocol '{0}' (supported: 3.0 XML, 3.1 and 4.0 JSON, and 3.1 JSON labelled 3.0)"
    )]
    UnsupportedProtocol(String),
    /// A request app was malformed.
    #[error("request app #{index}: {reason}")]
    RequestApp {
        /// The position of the app in the request.
        index: usize,
        /// What was wrong.
        reason: String,
    },
    /// A value could not be written.
    #[error("cannot serialize: {0}")]
    Serialize(String),
}

impl From<std::str::Utf8Error> for ProtocolError {
    fn from(e: std::str::Utf8Error) -> Self {
        ProtocolError::NotUtf8(e)
    }
}

impl From<serde_json::Error> for ProtocolError {
    fn from(e: serde_json::Error) -> Self {
        ProtocolError::Json(e)
    }
}

/// Why one application of a response was dropped. The rest of the
/// document still parses; the error is recorded in
/// [`Response::app_errors`](super::Response::app_errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppErrorKind {
    /// The app entry is not an object.
    #[error("'app' is not an object")]
    NotAnObject,
    /// No `appid`.
    #[error("missing appid")]
    MissingAppId,
    /// No app `status` (required by 4.0).
    #[error("missing app status")]
    MissingStatus,
    /// An app status that 3.1 does not define.
    #[error("unknown app status '{0}'")]
    UnknownAppStatus(String),
    /// The app has no usable `updatecheck`.
    #[error("missing updatecheck, or it is not an object")]
    MissingUpdateCheck,
    /// The update check has no `status`.
    #[error("missing status on updatecheck")]
    MissingUpdateCheckStatus,
    /// 3.1 reports a failing update-check status as an error of the app.
    #[error("updatecheck status '{0}'")]
    UpdateCheckFailed(String),
    /// An `ok` update check without `urls`, or `urls.url` is not a list.
    #[error("missing urls on updatecheck")]
    MissingUrls,
    /// No full-package codebase url is a valid absolute url.
    #[error("no valid url for a full update")]
    NoValidCodebase,
    /// An `ok` update check without a manifest.
    #[error("missing manifest on updatecheck")]
    MissingManifest,
    /// The manifest has no version.
    #[error("missing version for manifest")]
    MissingManifestVersion,
    /// A version (manifest, prodversionmin, nextversion) is malformed.
    #[error("invalid {field} '{value}': {source}")]
    InvalidVersion {
        /// Which member.
        field: &'static str,
        /// The text sent.
        value: String,
        /// Why it is not a version.
        source: VersionError,
    },
    /// The manifest has no `packages.package` list.
    #[error("missing package list in manifest")]
    MissingPackages,
    /// A package is not an object.
    #[error("'package' is not an object")]
    PackageNotAnObject,
    /// A package has no name.
    #[error("missing name for package")]
    MissingPackageName,
    /// An `ok` 4.0 update check without `nextversion`.
    #[error("missing nextversion")]
    MissingNextVersion,
    /// A pipeline is not an object.
    #[error("'pipeline' is not an object")]
    PipelineNotAnObject,
    /// An operation is not an object.
    #[error("'operation' is not an object")]
    OperationNotAnObject,
    /// An operation has no `type`.
    #[error("missing operation type")]
    MissingOperationType,
    /// An operation url entry is not an object or has no `url`.
    #[error("operation url entry has no 'url' string")]
    MissingUrl,
    /// An operation url is not a valid absolute url.
    #[error("operation contains a malformed url '{url}': {reason}")]
    MalformedUrl {
        /// The text sent.
        url: String,
        /// Why it is refused.
        reason: String,
    },
}

/// One dropped application: where it was, its id if it had one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("app #{index}{}: {kind}", appid.as_ref().map(|id| format!(" ({id})")).unwrap_or_default())]
pub struct AppError {
    /// The position of the app in the document, from 0.
    pub index: usize,
    /// The app id, when the entry had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appid: Option<String>,
    /// What was wrong.
    #[serde(serialize_with = "as_display")]
    pub kind: AppErrorKind,
}

fn as_display<S: serde::Serializer>(kind: &AppErrorKind, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(kind)
}

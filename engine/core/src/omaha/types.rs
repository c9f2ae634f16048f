//! The Omaha vocabulary shared by every protocol version: application ids,
//! typed status values, event codes and the parsed update-check response.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use super::Protocol;
use super::error::AppError;
use crate::version::Version;

/// An application id. Ids compare case-insensitively in ASCII, as the
/// protocol requires, but keep the spelling they were given.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AppId(String);

impl AppId {
    /// Wraps an id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as it was spelled.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` names this id, ignoring ASCII case.
    pub fn matches(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl PartialEq for AppId {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

impl Eq for AppId {}

impl Hash for AppId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.0.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
        state.write_u8(0xff);
    }
}

impl PartialOrd for AppId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AppId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let a = self.0.bytes().map(|b| b.to_ascii_lowercase());
        let b = other.0.bytes().map(|b| b.to_ascii_lowercase());
        a.cmp(b)
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for AppId {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// Declares an enum over the string values of an Omaha attribute, with an
/// `Other` variant that keeps any value this version does not know.
macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value this version does not know, kept as sent.
            Other(String),
        }

        impl $name {
            /// Reads a wire value; unknown values become `Other`.
            pub fn parse(s: &str) -> Self {
                match s {
                    $($s => Self::$var,)*
                    other => Self::Other(other.to_owned()),
                }
            }

            /// The wire value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$var => $s,)*
                    Self::Other(s) => s,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::parse(&String::deserialize(d)?))
            }
        }
    };
}

/// Declares an enum over the numeric values of an Omaha attribute, with an
/// `Other(n)` fallback for numbers this version does not know.
macro_rules! number_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident => $n:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A number this version does not know, kept as sent.
            Other(i64),
        }

        impl $name {
            /// Reads a wire number; unknown numbers become `Other`.
            pub fn from_code(n: i64) -> Self {
                match n {
                    $($n => Self::$var,)*
                    other => Self::Other(other),
                }
            }

            /// The wire number.
            pub fn code(self) -> i64 {
                match self {
                    $(Self::$var => $n,)*
                    Self::Other(n) => n,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.code())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_i64(self.code())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Ok(Self::from_code(i64::deserialize(d)?))
            }
        }
    };
}

string_enum! {
    /// `response.app.status`: what the server knows of the application.
    #[derive(Default)]
    AppStatus {
        /// The application is recognised (the default).
        #[default]
        Ok => "ok",
        /// Recognised, but policy forbids a meaningful answer.
        Restricted => "restricted",
        /// The server does not know the application.
        UnknownApplication => "error-unknownApplication",
        /// The application id is malformed.
        InvalidAppId => "error-invalidAppId",
        /// The operating system is not supported.
        OsNotSupported => "error-osnotsupported",
        /// The hardware is not supported.
        HwNotSupported => "error-hwnotsupported",
        /// No valid hash could be provided.
        Hash => "error-hash",
        /// The application needs another protocol version.
        UnsupportedProtocol => "error-unsupportedprotocol",
        /// An unspecified server error.
        Internal => "error-internal",
    }
}

string_enum! {
    /// `response.app.updatecheck.status`: the outcome of the update check.
    UpdateCheckStatus {
        /// An update is available.
        Ok => "ok",
        /// No update is available.
        NoUpdate => "noupdate",
        /// An unspecified server error.
        Internal => "error-internal",
        /// No valid hash could be provided.
        Hash => "error-hash",
        /// The operating system is not supported.
        OsNotSupported => "error-osnotsupported",
        /// The hardware is not supported.
        HwNotSupported => "error-hwnotsupported",
        /// The application needs another protocol version.
        UnsupportedProtocol => "error-unsupportedprotocol",
        /// No pipeline can be built from the client's `acceptformat`.
        Inexpressible => "error-inexpressible",
    }
}

string_enum! {
    /// `response.app.data.status`: the outcome of a data lookup.
    #[derive(Default)]
    DataStatus {
        /// The data is present (possibly empty).
        #[default]
        Ok => "ok",
        /// The data request was not understood.
        InvalidArgs => "error-invalidargs",
        /// The server has no value for the requested index.
        NoData => "error-nodata",
    }
}

string_enum! {
    /// The `type` of a protocol 4.0 pipeline operation.
    OperationType {
        /// Download a payload.
        Download => "download",
        /// Unpack and install a CRX3 package.
        Crx3 => "crx3",
        /// Apply a Puffin patch.
        Puff => "puff",
        /// Apply a Zucchini patch.
        Zucc => "zucc",
        /// Decompress an xz stream.
        Xz => "xz",
        /// Decompress an LZMA stream.
        DecompressLzma => "decompress_lzma",
        /// Run a program.
        Run => "run",
        /// Apply an upkeep patch (zstd or bsdiff, `docs/deltas.md`) to the
        /// cached file with the `previous` hash, making the `out` file
        /// from the `in` download.
        UpkeepPatch => "upkeep_patch",
    }
}

number_enum! {
    /// `request.app.event.eventtype`.
    EventType {
        /// An install session.
        Install => 2,
        /// An update session.
        Update => 3,
        /// An uninstall session.
        Uninstall => 4,
        /// A download operation.
        Download => 14,
        /// An app command completed.
        AppCommand => 41,
        /// A run action.
        Action => 42,
        /// A decompress_lzma operation.
        DecompressLzma => 60,
        /// A Zucchini patch operation.
        Zucchini => 61,
        /// A Puffin patch operation.
        Puffin => 62,
        /// A CRX3 install operation.
        Crx3 => 63,
    }
}

number_enum! {
    /// `request.app.event.eventresult`.
    EventResult {
        /// The operation failed.
        Error => 0,
        /// The operation succeeded.
        Success => 1,
        /// Success; a reboot is needed.
        SuccessReboot => 2,
        /// Success; the application must restart.
        SuccessRestart => 3,
        /// The operation was cancelled.
        Cancelled => 4,
        /// The MSI installer failed.
        InstallerErrorMsi => 5,
        /// Another installer failed.
        InstallerErrorOther => 6,
        /// There was no update.
        NoUpdate => 7,
        /// The installer failed with a system error.
        InstallerErrorSystem => 8,
        /// The update was deferred.
        UpdateDeferred => 9,
        /// Handing off to the installer failed.
        HandoffError => 10,
    }
}

number_enum! {
    /// `request.app.event.errorcat`: the class of an error code.
    ErrorCategory {
        /// No category.
        None => 0,
        /// Acquiring the download.
        Download => 1,
        /// Unpacking.
        Unpack => 2,
        /// The update client during installation.
        Install => 3,
        /// The update service itself.
        Service => 4,
        /// The update check.
        UpdateCheck => 5,
        /// Reserved.
        Reserved => 6,
        /// The application installer.
        Installer => 7,
        /// Applying a patch.
        Patch => 8,
    }
}

/// The server's clock in the response: days (and seconds) since the epoch
/// of the protocol's counting, 2007-01-01 in the server's locale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daystart {
    /// Whole days since 2007-01-01.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_days: Option<i64>,
    /// Seconds since the server's midnight (protocol 3.x only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_seconds: Option<i64>,
}

/// Requirements an offline manifest states for the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemRequirements {
    /// The operating system family ("win", "mac", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Compatible architectures, comma-separated, `-` marking exclusions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// The minimum operating system version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_os_version: Option<String>,
}

/// The cohort fields a server assigns to an application. They are stored
/// whatever the update check said, `noupdate` included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cohort {
    /// The machine-readable cohort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohort: Option<String>,
    /// A request to move to another cohort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohorthint: Option<String>,
    /// The human-readable cohort name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohortname: Option<String>,
}

impl Cohort {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.cohort.is_none() && self.cohorthint.is_none() && self.cohortname.is_none()
    }
}

/// One package of a protocol 3.x manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The file name, appended to a codebase url.
    pub name: String,
    /// The differential file name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namediff: Option<String>,
    /// The package fingerprint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The base64 SHA-1 of the file (`hash`, 3.0 XML).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// The hex SHA-256 of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_sha256: Option<String>,
    /// The hex SHA-256 of the differential file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hashdiff_sha256: Option<String>,
    /// The size in bytes (0 when absent or outside [0, 2^53)).
    pub size: u64,
    /// The differential size in bytes (0 when absent or out of range).
    pub sizediff: u64,
    /// Whether the package is required (3.0 XML).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

/// An action of a protocol 3.x update check or manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// When the action applies ("install", "postinstall", "update", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The program to run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Its command-line arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// Whether the action needs administrator rights ("true"/"false").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needsadmin: Option<String>,
    /// What to do after success ("exitsilentlyonlaunchcmd", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onsuccess: Option<String>,
    /// Every other attribute, as sent.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// The protocol 3.x manifest of an available update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The version the update installs.
    pub version: Version,
    /// The minimum product version (`prodversionmin`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prodversionmin: Option<Version>,
    /// A program to run after unpacking (3.1 JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// Its arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// The packages.
    pub packages: Vec<Package>,
    /// The actions (3.0 XML places them in the manifest).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
}

/// One operation of a protocol 4.0 pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// What the operation does.
    #[serde(rename = "type")]
    pub kind: OperationType,
    /// Where a download may be fetched from, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// The hex SHA-256 of the operation's output (`out.sha256`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_out: Option<String>,
    /// The hex SHA-256 of the operation's input (`in.sha256`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_in: Option<String>,
    /// The hex SHA-256 of the cached payload a patch applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256_previous: Option<String>,
    /// A path (program to run, file inside the package).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Command-line arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    /// The download size in bytes (0 when absent or outside [0, 2^53)).
    pub size: u64,
}

/// A protocol 4.0 pipeline: operations that together produce the update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pipeline {
    /// The server's name for the pipeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    /// The operations, in order.
    pub operations: Vec<Operation>,
}

/// The server's answer to an app's update check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateCheck {
    /// The outcome.
    pub status: UpdateCheckStatus,
    /// A rationale for debugging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
    /// The version an update installs: `nextversion` in 4.0, the manifest
    /// version in 3.x. Absent unless the status is `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_version: Option<Version>,
    /// Full-package codebase urls (3.x).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Differential codebase urls (3.x).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff_urls: Vec<String>,
    /// The manifest (3.x).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Manifest>,
    /// Update-check actions (3.1 JSON `actions.action`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
    /// The pipelines (4.0), in order of preference.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pipelines: Vec<Pipeline>,
    /// `_`-prefixed members with string values, kept as sent.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_attributes: BTreeMap<String, String>,
}

impl UpdateCheck {
    /// An update check with only a status.
    pub fn with_status(status: UpdateCheckStatus) -> Self {
        Self {
            status,
            info: None,
            next_version: None,
            urls: Vec::new(),
            diff_urls: Vec::new(),
            manifest: None,
            actions: Vec::new(),
            pipelines: Vec::new(),
            custom_attributes: BTreeMap::new(),
        }
    }

    /// The program of the first update-check action (3.1 `action_run`).
    pub fn action_run(&self) -> Option<&str> {
        self.actions.first().and_then(|a| a.run.as_deref())
    }
}

/// A data answer (install data, untrusted data).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    /// The kind of lookup ("install").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The requested index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The outcome of the lookup.
    pub status: DataStatus,
    /// The value (XML: the element text without leading and trailing whitespace).
    pub text: String,
}

/// One application in a response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// The application id.
    pub appid: AppId,
    /// What the server knows of the application (`ok` when absent).
    pub status: AppStatus,
    /// Cohort fields, stored whatever the update check said.
    #[serde(flatten)]
    pub cohort: Cohort,
    /// The update check answer, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updatecheck: Option<UpdateCheck>,
    /// Data answers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data: Vec<Data>,
    /// The status of the ping acknowledgement (3.0 XML).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_status: Option<String>,
    /// The statuses of event acknowledgements (3.0 XML).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_statuses: Vec<String>,
    /// `_`-prefixed app members with string values, kept as sent.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extras: BTreeMap<String, String>,
}

impl App {
    /// An app with only an id and a status.
    pub fn new(appid: AppId, status: AppStatus) -> Self {
        Self {
            appid,
            status,
            cohort: Cohort::default(),
            updatecheck: None,
            data: Vec::new(),
            ping_status: None,
            event_statuses: Vec::new(),
            extras: BTreeMap::new(),
        }
    }

    /// The status a client acts on: the app status when it is not `ok`,
    /// otherwise the update-check status (or `ok` with no update check).
    pub fn result_status(&self) -> &str {
        match (&self.status, &self.updatecheck) {
            (AppStatus::Ok, Some(uc)) => uc.status.as_str(),
            (status, _) => status.as_str(),
        }
    }

    /// The version an update would install, when one is offered.
    pub fn next_version(&self) -> Option<&Version> {
        self.updatecheck
            .as_ref()
            .and_then(|uc| uc.next_version.as_ref())
    }
}

/// A parsed update-check response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    /// The protocol the document spoke.
    pub protocol: Protocol,
    /// The server's self-description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The server's clock.
    pub daystart: Daystart,
    /// Offline manifests' system requirements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systemrequirements: Option<SystemRequirements>,
    /// The applications that parsed.
    pub apps: Vec<App>,
    /// Applications that were dropped because they were malformed.
    pub app_errors: Vec<AppError>,
}

impl Response {
    /// An empty response in the given protocol.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            server: None,
            daystart: Daystart::default(),
            systemrequirements: None,
            apps: Vec::new(),
            app_errors: Vec::new(),
        }
    }

    /// The app with this id (compared case-insensitively).
    pub fn app(&self, id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.appid.matches(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn app_ids_ignore_ascii_case() {
        let a = AppId::new("{CDABE316-39CD-43BA-8440-6D1E0547AEE6}");
        let b = AppId::new("{cdabe316-39cd-43ba-8440-6d1e0547aee6}");
        assert_eq!(a, b);
        assert_eq!(a.cmp(&b), std::cmp::Ordering::Equal);
        let set: HashSet<AppId> = [a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_eq!(a.as_str(), "{CDABE316-39CD-43BA-8440-6D1E0547AEE6}");
        assert_ne!(AppId::new("abc"), AppId::new("abd"));
    }

    #[test]
    fn statuses_are_typed_with_a_fallback() {
        assert_eq!(
            AppStatus::parse("error-unknownApplication"),
            AppStatus::UnknownApplication
        );
        assert_eq!(
            AppStatus::parse("foobar"),
            AppStatus::Other("foobar".into())
        );
        assert_eq!(AppStatus::parse("foobar").as_str(), "foobar");
        assert_eq!(
            UpdateCheckStatus::parse("noupdate"),
            UpdateCheckStatus::NoUpdate
        );
        assert_eq!(
            UpdateCheckStatus::parse("error-inexpressible").as_str(),
            "error-inexpressible"
        );
        assert_eq!(OperationType::parse("crx3"), OperationType::Crx3);
        assert_eq!(DataStatus::parse("error-nodata"), DataStatus::NoData);
    }

    #[test]
    fn event_codes_are_typed_with_a_fallback() {
        assert_eq!(EventType::from_code(2), EventType::Install);
        assert_eq!(EventType::from_code(3), EventType::Update);
        assert_eq!(EventType::from_code(4), EventType::Uninstall);
        assert_eq!(EventType::from_code(14), EventType::Download);
        assert_eq!(EventType::from_code(41), EventType::AppCommand);
        assert_eq!(EventType::from_code(42), EventType::Action);
        assert_eq!(EventType::from_code(99), EventType::Other(99));
        assert_eq!(EventType::Other(99).code(), 99);
        assert_eq!(EventResult::from_code(4), EventResult::Cancelled);
        assert_eq!(ErrorCategory::from_code(5), ErrorCategory::UpdateCheck);
        assert_eq!(serde_json::to_string(&EventType::Update).unwrap(), "3");
    }

    #[test]
    fn result_status_prefers_a_failing_app_status() {
        let mut app = App::new("a".into(), AppStatus::Ok);
        assert_eq!(app.result_status(), "ok");
        app.updatecheck = Some(UpdateCheck::with_status(UpdateCheckStatus::NoUpdate));
        assert_eq!(app.result_status(), "noupdate");
        app.status = AppStatus::UnknownApplication;
        assert_eq!(app.result_status(), "error-unknownApplication");
    }
}

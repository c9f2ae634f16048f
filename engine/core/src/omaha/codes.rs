//! The error codes upkeep reports in Omaha events, per error category
//! ([`ErrorCategory`]): what `errorcode` means for each `errorcat`. The
//! client reports them, the server's statistics and the tests read them;
//! all name them from here. See `docs/protocol.md` ("Error codes").

use crate::download::DownloadError;
use crate::update_check::CheckError;

#[allow(unused_imports)]
use super::ErrorCategory;

/// Codes of the update check ([`ErrorCategory::UpdateCheck`], 5).
pub mod check {
    /// The server could not be reached (or the request not signed).
    pub const UNREACHABLE: i64 = 1;
    /// The server answered an HTTP status other than 200.
    pub const HTTP_STATUS: i64 = 2;
    /// The response body could not be read, or is too large.
    pub const READ: i64 = 3;
    /// The CUP proof is missing or does not verify.
    pub const CUP: i64 = 4;
    /// The signed response does not parse.
    pub const MALFORMED: i64 = 5;
    /// The response has no (well-formed) answer for the app.
    pub const APP_MISSING: i64 = 6;
    /// The server answered an error status for the app or its update check.
    pub const APP_STATUS: i64 = 7;
    /// The offered version is not newer than the installed one.
    pub const NOT_NEWER: i64 = 10;
    /// The offer cannot be used (no version, no package, bad hash or name).
    pub const BAD_OFFER: i64 = 11;
}

/// Codes of downloads and their verification ([`ErrorCategory::Download`], 1).
pub mod download {
    /// The connection failed or broke.
    pub const NETWORK: i64 = 1;
    /// An HTTP status other than 200/206.
    pub const HTTP_STATUS: i64 = 2;
    /// The transfer ended early.
    pub const TRUNCATED: i64 = 3;
    /// The server sent more than the signed length (endless data).
    pub const ENDLESS_DATA: i64 = 4;
    /// Throughput stayed below the minimum (slow retrieval).
    pub const SLOW: i64 = 5;
    /// The content's SHA-256 is not the signed one.
    pub const HASH: i64 = 6;
    /// Local files could not be written.
    pub const DISK: i64 = 7;
    /// A resumed transfer's `Content-Range` is wrong.
    pub const CONTENT_RANGE: i64 = 8;
    /// No download URL.
    pub const NO_URLS: i64 = 9;
    /// The download was cancelled (staged bytes kept).
    pub const CANCELLED: i64 = 10;
    /// The TUF metadata could not be refreshed.
    pub const TUF_REFRESH: i64 = 20;
    /// The TUF targets metadata does not list the package.
    pub const TUF_TARGET: i64 = 21;
    /// The update response and the TUF metadata disagree on the package.
    pub const DISAGREEMENT: i64 = 22;
}

/// Codes of installs the engine does itself ([`ErrorCategory::Install`], 3).
/// An installer plugin's own failures use the category too, with the
/// plugin's codes.
pub mod install {
    /// A release of upkeep itself could not be installed.
    pub const UPDATER: i64 = 1;
    /// The app's post-install check refused or failed.
    pub const POST_INSTALL_CHECK: i64 = 2;
    /// The new version failed its health check once live; the app went
    /// back to the version before.
    pub const HEALTH_CHECK: i64 = 3;
}

/// Why a patch was not used (`differrorcode`, with `differrorcat` 1): the
/// full file was downloaded instead.
pub mod diff {
    /// The patch is not a target the signed metadata lists, or it lists
    /// it as joining other files.
    pub const NOT_SIGNED: i64 = 1;
    /// The response's hash or size of the patch is not the signed one.
    pub const DISAGREEMENT: i64 = 2;
    /// The patch could not be downloaded or failed its signed hash.
    pub const DOWNLOAD: i64 = 3;
    /// The file the patch starts from is missing or not the signed one.
    pub const BASE: i64 = 4;
    /// The patch does not apply.
    pub const APPLY: i64 = 5;
    /// The patched file is not the signed one.
    pub const RESULT: i64 = 6;
}

/// Codes of the engine itself ([`ErrorCategory::Service`], 4).
pub mod service {
    /// The prefs could not be written.
    pub const PREFS: i64 = 1;
    /// The operation was cancelled (the event's result is `cancelled`).
    pub const CANCELLED: i64 = 2;
    /// A plugin could not be loaded (missing, wrong world, changed).
    pub const PLUGIN_LOAD: i64 = 10;
    /// A plugin call failed (trap, limit, refusal of the host).
    pub const PLUGIN_CALL: i64 = 11;
    /// The install directory could not be made.
    pub const INSTALL_DIR: i64 = 12;
    /// The switch to the installed version failed.
    pub const SWITCH: i64 = 13;
}

/// What `code` in category `category` (an `errorcat` number) means as
/// upkeep's client reports it, in a few words; `None` for a code upkeep
/// does not report (an installer plugin's own, another client's).
pub fn meaning(category: i64, code: i64) -> Option<&'static str> {
    let text = match (category, code) {
        (5, check::UNREACHABLE) => "server unreachable",
        (5, check::HTTP_STATUS) => "update check: HTTP status",
        (5, check::READ) => "update check: response unreadable",
        (5, check::CUP) => "response signature (CUP) invalid",
        (5, check::MALFORMED) => "response malformed",
        (5, check::APP_MISSING) => "no answer for the app",
        (5, check::APP_STATUS) => "server answered an error for the app",
        (5, check::NOT_NEWER) => "offered version not newer",
        (5, check::BAD_OFFER) => "offer unusable",
        (1, download::NETWORK) => "download: network",
        (1, download::HTTP_STATUS) => "download: HTTP status",
        (1, download::TRUNCATED) => "download truncated",
        (1, download::ENDLESS_DATA) => "download longer than signed",
        (1, download::SLOW) => "download too slow",
        (1, download::HASH) => "download hash mismatch",
        (1, download::DISK) => "download: disk",
        (1, download::CONTENT_RANGE) => "download: bad Content-Range",
        (1, download::NO_URLS) => "no download URL",
        (1, download::CANCELLED) => "download cancelled",
        (1, download::TUF_REFRESH) => "TUF metadata refresh failed",
        (1, download::TUF_TARGET) => "package not in TUF targets",
        (1, download::DISAGREEMENT) => "response and TUF metadata disagree",
        (3, install::UPDATER) => "upkeep release not installed",
        (3, install::POST_INSTALL_CHECK) => "post-install check failed",
        (3, install::HEALTH_CHECK) => "health check failed; switched back",
        (4, service::PREFS) => "prefs not written",
        (4, service::CANCELLED) => "cancelled",
        (4, service::PLUGIN_LOAD) => "plugin not loaded",
        (4, service::PLUGIN_CALL) => "plugin call failed",
        (4, service::INSTALL_DIR) => "install directory not made",
        (4, service::SWITCH) => "version switch failed",
        _ => return None,
    };
    Some(text)
}

impl CheckError {
    /// The [`check`] code reporting this error.
    pub fn omaha_code(&self) -> i64 {
        match self {
            CheckError::Sign(_) | CheckError::Unreachable(_) => check::UNREACHABLE,
            CheckError::Status { .. } => check::HTTP_STATUS,
            CheckError::Read(_) | CheckError::TooLarge { .. } => check::READ,
            CheckError::Cup(_) => check::CUP,
            CheckError::Malformed(_) => check::MALFORMED,
        }
    }
}

impl DownloadError {
    /// The [`download`] code reporting this error.
    pub fn omaha_code(&self) -> i64 {
        match self {
            DownloadError::NoUrls => download::NO_URLS,
            DownloadError::Network { .. } => download::NETWORK,
            DownloadError::Status { .. } => download::HTTP_STATUS,
            DownloadError::BadContentRange { .. } => download::CONTENT_RANGE,
            DownloadError::Truncated { .. } => download::TRUNCATED,
            DownloadError::LengthExceeded { .. } => download::ENDLESS_DATA,
            DownloadError::SlowRetrieval { .. } => download::SLOW,
            DownloadError::HashMismatch { .. } => download::HASH,
            DownloadError::Disk { .. } => download::DISK,
            DownloadError::Cancelled { .. } => download::CANCELLED,
        }
    }
}

#[cfg(test)]
mod meaning_tests {
    use super::*;

    #[test]
    fn codes_upkeep_reports_have_a_meaning_and_others_none() {
        assert_eq!(meaning(1, download::HASH), Some("download hash mismatch"));
        assert_eq!(
            meaning(5, check::NOT_NEWER),
            Some("offered version not newer")
        );
        assert_eq!(meaning(4, service::SWITCH), Some("version switch failed"));
        // The same number in another category is another code.
        assert_ne!(meaning(5, 6), meaning(1, 6));
        assert_eq!(meaning(7, 1), None, "an installer's own code");
        assert_eq!(meaning(1, 999), None);
    }
}

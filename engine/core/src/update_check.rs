//! The signed update check: post an Omaha request with its CUP parameters,
//! verify the server's proof before reading a byte of the answer, parse it;
//! then turn an `ok` update check into packages to download, each checked
//! against the release metadata (TUF targets) so that the update server can
//! only choose among releases the offline keys signed.
//!
//! Endpoint: `POST <server>/service/update2/json?cup2key=<id>:<nonce>&cup2hreq=<hex>`.
//! A release payload's TUF target path is
//! `apps/<app id lower-case>/<version>/<package name>`; the target given to
//! [`agree`] comes from `Updater::get_target_info`, which walks the whole
//! delegation graph with the search the reference server builds its
//! catalog with (`tuf::search::find_target`), so a release a team signed in
//! its delegated role agrees exactly when the server may offer it.

use std::time::Duration;

use crate::cup::{CupClient, CupError, ETAG_HEADER, SERVER_PROOF_HEADER};
use crate::http::{HttpClient, HttpError, ReadError, read_capped};
use crate::omaha::{
    Action, OperationType, ProtocolError, Request, Response, UpdateCheck, parse_response,
    parse_retry_after,
};
use crate::tuf::TargetInfo;
use crate::version::Version;

/// The path of the Omaha JSON endpoint under the server's base URL.
pub const UPDATE_PATH: &str = "service/update2/json";

/// The largest update response read (4 MiB).
pub const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// The endpoint URL for a server base URL.
pub fn endpoint(server: &str) -> String {
    format!("{}/{UPDATE_PATH}", server.trim_end_matches('/'))
}

/// The TUF target path of a release payload.
pub fn target_path(app_id: &str, version: &Version, package: &str) -> String {
    format!("apps/{}/{version}/{package}", app_id.to_ascii_lowercase())
}

/// A verified, parsed answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The response.
    pub response: Response,
    /// The server's `X-Retry-After`, read only from a verified response.
    pub retry_after: Option<Duration>,
}

/// Why an update check (or event ping) produced no trustworthy answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The request could not be signed.
    #[error("cannot sign the request: {0}")]
    Sign(CupError),
    /// No HTTP response.
    #[error("the update server is unreachable: {0}")]
    Unreachable(HttpError),
    /// An HTTP status other than 200.
    #[error("the update server answered HTTP {status}")]
    Status {
        /// The status.
        status: u16,
    },
    /// The body could not be read.
    #[error("reading the update response failed: {0}")]
    Read(String),
    /// The body exceeds [`MAX_RESPONSE_BYTES`].
    #[error("the update response is larger than {max} bytes")]
    TooLarge {
        /// The cap.
        max: u64,
    },
    /// The CUP proof is missing or does not verify.
    #[error("the update response failed CUP verification: {0}")]
    Cup(CupError),
    /// The signed response does not parse.
    #[error("the update response is malformed: {0}")]
    Malformed(ProtocolError),
}

impl CheckError {
    /// Whether the server answered at all (so an event ping can report the
    /// failure).
    pub fn server_answered(&self) -> bool {
        !matches!(self, Self::Sign(_) | Self::Unreachable(_))
    }
}

/// Posts `request`, signed with `cup`, to `server`'s endpoint; verifies the
/// proof (`X-Cup-Server-Proof`, else `ETag`) over the exact bytes received,
/// then parses them in the request's dialect.
pub fn exchange(
    http: &dyn HttpClient,
    server: &str,
    cup: &CupClient,
    request: &Request,
) -> Result<Exchange, CheckError> {
    let (bytes, retry_after) = signed_post(http, server, cup, request)?;
    let parsed = parse_response(&bytes, request.protocol).map_err(CheckError::Malformed)?;
    Ok(Exchange {
        response: parsed,
        retry_after,
    })
}

/// Posts an event ping (`request` carries events and no update check),
/// signed like an update check. The server's answer must be a 200 whose
/// CUP proof verifies; its body is not interpreted.
pub fn send_events(
    http: &dyn HttpClient,
    server: &str,
    cup: &CupClient,
    request: &Request,
) -> Result<(), CheckError> {
    signed_post(http, server, cup, request).map(|_| ())
}

/// The exchange both share: sign, post, require 200, read (capped), verify
/// the CUP proof over the bytes received. Returns the verified body and the
/// server's `X-Retry-After`, which counts only once the proof verified.
fn signed_post(
    http: &dyn HttpClient,
    server: &str,
    cup: &CupClient,
    request: &Request,
) -> Result<(Vec<u8>, Option<Duration>), CheckError> {
    let body = request.to_body();
    let signed = cup
        .sign_request(body.as_bytes())
        .map_err(CheckError::Sign)?;
    let url = format!("{}?{}", endpoint(server), signed.query());
    let mut response = http
        .post(&url, request.protocol.content_type(), body.as_bytes())
        .map_err(CheckError::Unreachable)?;
    if response.status != 200 {
        return Err(CheckError::Status {
            status: response.status,
        });
    }
    let bytes = read_capped(&mut response.body, MAX_RESPONSE_BYTES).map_err(|e| match e {
        ReadError::TooLong { max } => CheckError::TooLarge { max },
        ReadError::Io(e) => CheckError::Read(e.to_string()),
    })?;
    cup.verify_response(
        &signed,
        &bytes,
        response.header(SERVER_PROOF_HEADER),
        response.header(ETAG_HEADER),
    )
    .map_err(CheckError::Cup)?;
    let retry_after = response.header("x-retry-after").and_then(parse_retry_after);
    Ok((bytes, retry_after))
}

/// One package an update check offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedPackage {
    /// The file name (also the last component of its TUF target path).
    pub name: String,
    /// Where to fetch it, in order.
    pub urls: Vec<String>,
    /// The hex SHA-256 the response gives (lower case).
    pub sha256: String,
    /// The size the response gives (0: not given).
    pub size: u64,
    /// A patch the response offers to make this file from the one the
    /// client has (3.x `namediff`, `hashdiff_sha256`, `sizediff` and the
    /// `codebasediff` URLs).
    pub diff: Option<OfferedDiff>,
}

/// A patch an update check offers for one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedDiff {
    /// The patch's file name (also the last component of its TUF target path).
    pub name: String,
    /// Where to fetch it, in order.
    pub urls: Vec<String>,
    /// The hex SHA-256 the response gives (lower case).
    pub sha256: String,
    /// Its size.
    pub size: u64,
}

/// Why an offered update cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OfferError {
    /// The update check has no version.
    #[error("the update check names no version")]
    NoVersion,
    /// Neither a 3.x manifest with packages nor a 4.0 download operation.
    #[error("the update check offers no package")]
    NoPackages,
    /// A package has no usable SHA-256.
    #[error("package {name:?} has no valid hash_sha256")]
    BadHash {
        /// The package.
        name: String,
    },
    /// A package name that is not a plain file name.
    #[error("package name {name:?} is not a plain file name")]
    BadPackageName {
        /// The name.
        name: String,
    },
    /// No codebase yields a URL for the package.
    #[error("package {name:?} has no valid download URL")]
    NoUrls {
        /// The package.
        name: String,
    },
    /// The release metadata lists no SHA-256 for the target.
    #[error("{path}: the TUF targets metadata lists no sha256")]
    NoTufSha256 {
        /// The target path.
        path: String,
    },
    /// The response's hash is not the one the release metadata signed.
    #[error(
        "{path}: the update response's SHA-256 {omaha} differs from the TUF targets metadata's {tuf}"
    )]
    HashDisagreement {
        /// The target path.
        path: String,
        /// The response's hash.
        omaha: String,
        /// The metadata's hash.
        tuf: String,
    },
    /// The response's size is not the one the release metadata signed.
    #[error(
        "{path}: the update response's size {omaha} differs from the TUF targets metadata's {tuf}"
    )]
    SizeDisagreement {
        /// The target path.
        path: String,
        /// The response's size.
        omaha: u64,
        /// The metadata's length.
        tuf: u64,
    },
}

/// What the downloader must get: the length and SHA-256 both sources agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgreedFile {
    /// The length in bytes.
    pub length: u64,
    /// The SHA-256.
    pub sha256: [u8; 32],
}

/// Whether `name` is a plain file name: no directory part, not hidden, no
/// control characters.
pub(crate) fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// `text` as a lower-case hex SHA-256, when it is one.
pub(crate) fn hex_sha256(text: Option<&str>) -> Option<String> {
    let t = text?.trim().to_ascii_lowercase();
    (t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())).then_some(t)
}

/// The `install` action of an update check: in the 3.0 manifest, else
/// among the 3.1 update check's actions.
pub fn install_action(check: &UpdateCheck) -> Option<&Action> {
    check
        .manifest
        .iter()
        .flat_map(|m| m.actions.iter())
        .chain(check.actions.iter())
        .find(|a| a.event.as_deref() == Some("install"))
}

/// The packages of an `ok` update check: 3.x manifest packages (URLs are
/// each codebase resolved against the package name), or the download
/// operations of the first 4.0 pipeline (the name is the URL's last path
/// segment).
pub fn offered_packages(check: &UpdateCheck) -> Result<Vec<OfferedPackage>, OfferError> {
    let mut out = Vec::new();
    if let Some(manifest) = &check.manifest {
        for p in &manifest.packages {
            if !plain_file_name(&p.name) {
                return Err(OfferError::BadPackageName {
                    name: p.name.clone(),
                });
            }
            let sha256 =
                hex_sha256(p.hash_sha256.as_deref()).ok_or_else(|| OfferError::BadHash {
                    name: p.name.clone(),
                })?;
            let urls: Vec<String> = check
                .urls
                .iter()
                .filter_map(|base| url::Url::parse(base).ok()?.join(&p.name).ok())
                .map(String::from)
                .collect();
            if urls.is_empty() {
                return Err(OfferError::NoUrls {
                    name: p.name.clone(),
                });
            }
            // A patch is an offer, never a requirement: one that cannot be
            // used is left out and the full file is fetched.
            let diff = p.namediff.as_ref().and_then(|name| {
                let sha256 = hex_sha256(p.hashdiff_sha256.as_deref())?;
                let urls: Vec<String> = check
                    .diff_urls
                    .iter()
                    .filter_map(|base| url::Url::parse(base).ok()?.join(name).ok())
                    .map(String::from)
                    .collect();
                (plain_file_name(name) && !urls.is_empty() && p.sizediff > 0).then(|| OfferedDiff {
                    name: name.clone(),
                    urls,
                    sha256,
                    size: p.sizediff,
                })
            });
            out.push(OfferedPackage {
                name: p.name.clone(),
                urls,
                sha256,
                size: p.size,
                diff,
            });
        }
    } else if let Some(pipeline) = check.pipelines.first() {
        for op in pipeline
            .operations
            .iter()
            .filter(|o| o.kind == OperationType::Download)
        {
            let name = op
                .urls
                .first()
                .and_then(|u| url::Url::parse(u).ok())
                .and_then(|u| u.path_segments()?.next_back().map(str::to_owned))
                .unwrap_or_default();
            if !plain_file_name(&name) {
                return Err(OfferError::BadPackageName { name });
            }
            let sha256 = hex_sha256(op.sha256_out.as_deref())
                .ok_or_else(|| OfferError::BadHash { name: name.clone() })?;
            out.push(OfferedPackage {
                name,
                urls: op.urls.clone(),
                sha256,
                size: op.size,
                diff: None,
            });
        }
    }
    if out.is_empty() {
        return Err(OfferError::NoPackages);
    }
    Ok(out)
}

/// Checks an offered package against its TUF target: the SHA-256 must be
/// the same, and the size too when the response gives one.
pub fn agree(offered: &OfferedPackage, target: &TargetInfo) -> Result<AgreedFile, OfferError> {
    let tuf_hex = target
        .file
        .hashes
        .get("sha256")
        .map(|h| h.to_ascii_lowercase())
        .ok_or_else(|| OfferError::NoTufSha256 {
            path: target.path.clone(),
        })?;
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&tuf_hex, &mut sha256).map_err(|_| OfferError::NoTufSha256 {
        path: target.path.clone(),
    })?;
    if tuf_hex != offered.sha256 {
        return Err(OfferError::HashDisagreement {
            path: target.path.clone(),
            omaha: offered.sha256.clone(),
            tuf: tuf_hex,
        });
    }
    if offered.size != 0 && offered.size != target.file.length {
        return Err(OfferError::SizeDisagreement {
            path: target.path.clone(),
            omaha: offered.size,
            tuf: target.file.length,
        });
    }
    Ok(AgreedFile {
        length: target.file.length,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cup::{CupServer, RequestParams};
    use crate::http::HttpResponse;
    use crate::omaha::{
        App, AppId, AppStatus, Manifest, Package, Protocol, RequestApp, RequestBuilder,
        UpdateCheckStatus,
    };
    use crate::tuf::TargetFile;
    use p256::ecdsa::SigningKey;
    use std::io::Cursor;
    use std::sync::Mutex;

    const HASH: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn check(names: &[&str], urls: &[&str]) -> UpdateCheck {
        let mut c = UpdateCheck::with_status(UpdateCheckStatus::Ok);
        c.next_version = Some("2.0".parse().unwrap());
        c.urls = urls.iter().map(|u| (*u).to_owned()).collect();
        c.manifest = Some(Manifest {
            version: "2.0".parse().unwrap(),
            prodversionmin: None,
            run: None,
            arguments: None,
            packages: names
                .iter()
                .map(|n| Package {
                    name: (*n).to_owned(),
                    hash_sha256: Some(HASH.to_uppercase()),
                    size: 5,
                    ..Package::default()
                })
                .collect(),
            actions: Vec::new(),
        });
        c
    }

    #[test]
    fn packages_resolve_against_every_codebase() {
        let c = check(&["app.tar.gz"], &["http://a/dl/", "http://b/x/"]);
        let p = offered_packages(&c).unwrap();
        assert_eq!(
            p[0].urls,
            ["http://a/dl/app.tar.gz", "http://b/x/app.tar.gz"]
        );
        assert_eq!(p[0].sha256, HASH);
        for bad in ["../evil", "a/b", ".hidden", ""] {
            let c = check(&[bad], &["http://a/"]);
            assert!(
                matches!(offered_packages(&c), Err(OfferError::BadPackageName { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn protocol_4_download_operations_are_packages() {
        use crate::omaha::{Operation, Pipeline};
        let op = |kind, url: &str| Operation {
            kind,
            urls: vec![url.to_owned()],
            sha256_out: Some(HASH.to_owned()),
            sha256_in: None,
            sha256_previous: None,
            path: None,
            arguments: None,
            size: 5,
        };
        let mut c = UpdateCheck::with_status(UpdateCheckStatus::Ok);
        c.next_version = Some("2.0".parse().unwrap());
        c.pipelines = vec![Pipeline {
            pipeline_id: Some("full".into()),
            operations: vec![
                op(OperationType::Download, "http://a/dl/app.tar.gz"),
                op(OperationType::Run, "http://a/unused"),
            ],
        }];
        let p = offered_packages(&c).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "app.tar.gz");
        assert_eq!(p[0].urls, ["http://a/dl/app.tar.gz"]);
        assert_eq!(p[0].size, 5);
        c.pipelines.clear();
        assert_eq!(offered_packages(&c), Err(OfferError::NoPackages));
    }

    #[test]
    fn omaha_and_tuf_must_agree() {
        let offered = offered_packages(&check(&["p"], &["http://a/"]))
            .unwrap()
            .remove(0);
        let mut target = TargetInfo {
            path: "apps/x/2.0/p".into(),
            file: TargetFile::from_bytes(b"hello"),
        };
        let agreed = agree(&offered, &target).unwrap();
        assert_eq!(agreed.length, 5);
        assert_eq!(hex::encode(agreed.sha256), HASH);
        target.file = TargetFile::from_bytes(b"other");
        assert!(matches!(
            agree(&offered, &target),
            Err(OfferError::HashDisagreement { .. })
        ));
        let mut sized = offered.clone();
        sized.size = 6;
        target.file = TargetFile::from_bytes(b"hello");
        assert!(matches!(
            agree(&sized, &target),
            Err(OfferError::SizeDisagreement {
                omaha: 6,
                tuf: 5,
                ..
            })
        ));
    }

    struct Server {
        cup: CupServer,
        tamper: bool,
        seen: Mutex<Vec<String>>,
    }

    impl HttpClient for Server {
        fn get(&self, url: &str, _: Option<u64>) -> Result<HttpResponse, HttpError> {
            Err(HttpError::Connect {
                url: url.into(),
                reason: "no".into(),
            })
        }
        fn post(&self, url: &str, _ct: &str, body: &[u8]) -> Result<HttpResponse, HttpError> {
            self.seen.lock().unwrap().push(url.to_owned());
            let query = url.split_once('?').map_or("", |(_, q)| q);
            let params = RequestParams::from_query(query).unwrap();
            let mut response = Response::new(Protocol::Json31);
            let mut app = App::new(AppId::new("org.example.app"), AppStatus::Ok);
            app.updatecheck = Some(UpdateCheck::with_status(UpdateCheckStatus::NoUpdate));
            response.apps.push(app);
            let mut text = response.to_body(Protocol::Json31).into_bytes();
            let proof = self.cup.sign_response(&params, body, &text).unwrap();
            if self.tamper {
                text.push(b' ');
            }
            Ok(HttpResponse {
                status: 200,
                headers: vec![
                    ("X-Cup-Server-Proof".into(), proof),
                    ("X-Retry-After".into(), "60".into()),
                ],
                body: Box::new(Cursor::new(text)),
            })
        }
    }

    fn keys() -> (CupServer, CupClient) {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let client = CupClient::new(3, *key.verifying_key());
        (CupServer::new(3, key), client)
    }

    fn request() -> Request {
        RequestBuilder::new(Protocol::Json31)
            .app(RequestApp::new("org.example.app", &"1.0".parse().unwrap()))
            .build()
            .unwrap()
    }

    #[test]
    fn a_signed_answer_is_verified_and_parsed() {
        let (cup, client) = keys();
        let server = Server {
            cup,
            tamper: false,
            seen: Mutex::new(Vec::new()),
        };
        let ex = exchange(&server, "http://127.0.0.1:1/", &client, &request()).unwrap();
        assert_eq!(
            ex.response.app("ORG.EXAMPLE.APP").unwrap().result_status(),
            "noupdate"
        );
        assert_eq!(ex.retry_after, Some(Duration::from_secs(60)));
        let url = &server.seen.lock().unwrap()[0];
        assert!(
            url.starts_with("http://127.0.0.1:1/service/update2/json?cup2key=3:"),
            "{url}"
        );
        assert!(url.contains("&cup2hreq="), "{url}");
    }

    #[test]
    fn an_altered_answer_is_refused() {
        let (cup, client) = keys();
        let server = Server {
            cup,
            tamper: true,
            seen: Mutex::new(Vec::new()),
        };
        let err = exchange(&server, "http://127.0.0.1:1", &client, &request()).unwrap_err();
        assert!(
            matches!(err, CheckError::Cup(CupError::BadSignature)),
            "{err}"
        );
        assert!(err.server_answered());
    }
}

//! The signed update check: post an Omaha request with its CUP parameters,
//! verify the server's proof before reading a byte of the answer, parse it.
//! What an `ok` answer offers, and its agreement with the release metadata
//! (TUF targets), is [`crate::offer`]'s.
//!
//! Endpoint: `POST <server>/service/update2/json?cup2key=<id>:<nonce>&cup2hreq=<hex>`.
//! A release payload's TUF target path is
//! `apps/<app id lower-case>/<version>/<package name>` ([`target_path`]).

use std::time::Duration;

use crate::cup::{CupClient, CupError, ETAG_HEADER, SERVER_PROOF_HEADER};
use crate::http::{HttpClient, HttpError, ReadError, read_capped};
use crate::omaha::{ProtocolError, Request, Response, parse_response, parse_retry_after};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cup::{CupServer, RequestParams};
    use crate::http::HttpResponse;
    use crate::omaha::{
        App, AppId, AppStatus, Protocol, RequestApp, RequestBuilder, UpdateCheck, UpdateCheckStatus,
    };
    use p256::ecdsa::SigningKey;
    use std::io::Cursor;
    use std::sync::Mutex;

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

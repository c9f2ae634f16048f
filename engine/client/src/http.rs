//! The engine's [`HttpClient`] over a blocking reqwest client.

use std::error::Error as _;
use std::time::Duration;

use upkeep_core::http::{HttpClient, HttpError, HttpResponse};
use upkeep_core::policy::Proxy;

/// Connection set-up limit.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Limit on sending a request and on each read of a body: a transfer that
/// stalls this long fails (a slow one is caught by the downloader).
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A blocking HTTP client (HTTP and HTTPS with rustls).
pub struct ReqwestHttp {
    client: reqwest::blocking::Client,
}

impl ReqwestHttp {
    /// A client with the engine's user agent and timeouts, using the
    /// environment's proxy settings.
    pub fn new() -> Result<Self, crate::ClientError> {
        Self::with_proxy(&Proxy::System)
    }

    /// A client reaching the network as `proxy` says: directly, through
    /// the environment's `http_proxy`/`https_proxy`/`no_proxy`, or through
    /// one proxy for every request (a policy's `proxy`).
    pub fn with_proxy(proxy: &Proxy) -> Result<Self, crate::ClientError> {
        let builder = reqwest::blocking::Client::builder()
            .user_agent(concat!("upkeep/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(IO_TIMEOUT);
        let builder = match proxy {
            Proxy::System => builder,
            Proxy::Direct => builder.no_proxy(),
            Proxy::Url(url) => builder.proxy(
                reqwest::Proxy::all(url.as_str())
                    .map_err(|e| crate::ClientError::Http(describe(&e)))?,
            ),
        };
        let client = builder
            .build()
            .map_err(|e| crate::ClientError::Http(describe(&e)))?;
        Ok(Self { client })
    }
}

/// The error and its causes on one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn map_error(url: &str, e: &reqwest::Error) -> HttpError {
    let reason = describe(e);
    if e.is_builder() {
        HttpError::InvalidUrl {
            url: url.to_owned(),
            reason,
        }
    } else if e.is_connect() {
        HttpError::Connect {
            url: url.to_owned(),
            reason,
        }
    } else {
        HttpError::Transfer {
            url: url.to_owned(),
            reason,
        }
    }
}

fn convert(response: reqwest::blocking::Response) -> HttpResponse {
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    HttpResponse {
        status: response.status().as_u16(),
        headers,
        body: Box::new(response),
    }
}

impl HttpClient for ReqwestHttp {
    fn get(&self, url: &str, range_start: Option<u64>) -> Result<HttpResponse, HttpError> {
        let mut request = self.client.get(url);
        if let Some(start) = range_start {
            request = request.header(reqwest::header::RANGE, format!("bytes={start}-"));
        }
        request.send().map(convert).map_err(|e| map_error(url, &e))
    }

    fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<HttpResponse, HttpError> {
        self.client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_vec())
            .send()
            .map(convert)
            .map_err(|e| map_error(url, &e))
    }
}

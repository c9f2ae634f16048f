//! The engine's only contact with HTTP: a small [`HttpClient`] trait (GET
//! with an optional range start, POST of a byte body), implemented by the
//! command line with a real HTTP library and by tests with in-memory,
//! fault-injecting servers. The core crate has no HTTP client of its own.
//!
//! [`HttpTransport`] adapts any `HttpClient` to the TUF client's
//! [`Transport`](crate::tuf::Transport).

use std::fmt;
use std::io::{self, Read};

use crate::tuf::{FetchError, Transport};

/// Why an HTTP exchange produced no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL is not one the client can fetch.
    #[error("{url}: invalid URL: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be made (refused, unreachable, DNS failure).
    #[error("{url}: cannot connect: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// The cause.
        reason: String,
    },
    /// The connection was made, but the exchange failed (reset, timeout,
    /// malformed HTTP).
    #[error("{url}: {reason}")]
    Transfer {
        /// The URL.
        url: String,
        /// The cause.
        reason: String,
    },
}

/// An HTTP response whose body has not been read yet.
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, read as it arrives.
    pub body: Box<dyn Read + Send>,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl HttpResponse {
    /// The first value of header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Content-Length`, when present and a number.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
    }
}

/// A blocking HTTP client.
pub trait HttpClient {
    /// GETs `url`. With `range_start`, asks for the bytes from that offset
    /// on (`Range: bytes=N-`); the server may still answer 200 with the
    /// whole body.
    fn get(&self, url: &str, range_start: Option<u64>) -> Result<HttpResponse, HttpError>;

    /// POSTs `body` with the given content type.
    fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<HttpResponse, HttpError>;
}

impl<T: HttpClient + ?Sized> HttpClient for &T {
    fn get(&self, url: &str, range_start: Option<u64>) -> Result<HttpResponse, HttpError> {
        (**self).get(url, range_start)
    }
    fn post(&self, url: &str, content_type: &str, body: &[u8]) -> Result<HttpResponse, HttpError> {
        (**self).post(url, content_type, body)
    }
}

/// Why [`read_capped`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The body is longer than the cap; reading stopped there.
    #[error("the body is longer than {max} bytes")]
    TooLong {
        /// The cap.
        max: u64,
    },
    /// Reading failed.
    #[error("reading the body: {0}")]
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Reads a whole body, but never more than `max` bytes (one byte more is
/// read to tell a body of exactly `max` bytes from a longer one).
pub fn read_capped(body: &mut dyn Read, max: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    body.take(max.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(ReadError::TooLong { max });
    }
    Ok(out)
}

/// A TUF [`Transport`] over an [`HttpClient`]: 404 and 403 are "not found",
/// any other status but 200 is an error, bodies are capped.
#[derive(Debug, Clone)]
pub struct HttpTransport<H> {
    http: H,
}

impl<H: HttpClient> HttpTransport<H> {
    /// Wraps `http`.
    pub fn new(http: H) -> Self {
        Self { http }
    }
}

impl<H: HttpClient> Transport for HttpTransport<H> {
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let mut response = self
            .http
            .get(url, None)
            .map_err(|e| FetchError::Other(e.to_string()))?;
        match response.status {
            200 => {}
            403 | 404 => return Err(FetchError::NotFound),
            other => return Err(FetchError::Status(other)),
        }
        if response.content_length().is_some_and(|n| n > max_len) {
            return Err(FetchError::TooLong { max_len });
        }
        read_capped(&mut response.body, max_len).map_err(|e| match e {
            ReadError::TooLong { max } => FetchError::TooLong { max_len: max },
            ReadError::Io(e) => FetchError::Other(format!("{url}: {e}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    struct Fixed(u16, &'static [u8]);

    impl HttpClient for Fixed {
        fn get(&self, _url: &str, _range: Option<u64>) -> Result<HttpResponse, HttpError> {
            Ok(HttpResponse {
                status: self.0,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: Box::new(Cursor::new(self.1)),
            })
        }
        fn post(&self, url: &str, _ct: &str, _body: &[u8]) -> Result<HttpResponse, HttpError> {
            self.get(url, None)
        }
    }

    #[test]
    fn read_capped_refuses_one_byte_too_many() {
        assert_eq!(read_capped(&mut &b"abcd"[..], 4).unwrap(), b"abcd");
        assert!(matches!(
            read_capped(&mut &b"abcde"[..], 4),
            Err(ReadError::TooLong { max: 4 })
        ));
    }

    #[test]
    fn transport_maps_statuses_and_caps() {
        assert_eq!(
            HttpTransport::new(Fixed(200, b"{}"))
                .fetch("u", 10)
                .unwrap(),
            b"{}"
        );
        assert!(matches!(
            HttpTransport::new(Fixed(404, b"")).fetch("u", 10),
            Err(FetchError::NotFound)
        ));
        assert!(matches!(
            HttpTransport::new(Fixed(500, b"")).fetch("u", 10),
            Err(FetchError::Status(500))
        ));
        assert!(matches!(
            HttpTransport::new(Fixed(200, b"0123456789ab")).fetch("u", 10),
            Err(FetchError::TooLong { max_len: 10 })
        ));
    }

    #[test]
    fn headers_compare_case_insensitively() {
        let r = Fixed(200, b"").get("u", None).unwrap();
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("etag"), None);
    }
}

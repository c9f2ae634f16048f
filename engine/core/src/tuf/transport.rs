//! The client's only contacts with the outside world: fetching bytes and
//! reading the time. Both are traits so tests inject a repository simulator
//! and a pinned clock; the core crate has no HTTP client.

use time::OffsetDateTime;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The server has no such file (HTTP 404 or 403). Root rotation stops here.
    #[error("not found")]
    NotFound,
    /// The server sent more than `max_len` bytes; the transport stopped reading.
    #[error("more than {max_len} bytes")]
    TooLong {
        /// The cap that was passed to [`Transport::fetch`].
        max_len: u64,
    },
    /// The server answered with an unexpected HTTP status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// Any other failure (connection refused, bad URL, I/O...).
    #[error("{0}")]
    Other(String),
}

/// Fetches the bytes at a URL.
///
/// Implementations must never return more than `max_len` bytes: they stop
/// reading and return [`FetchError::TooLong`] as soon as the body grows past
/// it (the endless-data defence).
pub trait Transport {
    /// Fetches `url`, reading at most `max_len` bytes.
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError>;
}

impl<T: Transport + ?Sized> Transport for &T {
    fn fetch(&self, url: &str, max_len: u64) -> Result<Vec<u8>, FetchError> {
        (**self).fetch(url, max_len)
    }
}

/// Tells the time. Expiry is checked against it.
pub trait Clock {
    /// The current time (UTC).
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that always returns the same instant (for tests and for
/// checking metadata "as of" a date).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

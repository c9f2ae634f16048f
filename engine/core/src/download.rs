//! Package downloads: stream to a staging file while hashing, never past the
//! expected length, resume with `Range`, fall back to the next URL, give up
//! on a transfer that stays too slow, and move the verified file into place.
//!
//! The defences against a hostile or broken server:
//!
//! * **Endless data.** At most the expected length is ever written; a server
//!   announcing or sending more is refused ([`DownloadError::LengthExceeded`]).
//! * **Slow retrieval.** Throughput is measured over a window; below the
//!   minimum the URL is abandoned ([`DownloadError::SlowRetrieval`]). A
//!   transfer that stalls completely ends with the HTTP client's read
//!   timeout.
//! * **Arbitrary package.** SHA-256 is computed as the bytes arrive (no
//!   second read of the file; only a resumed prefix is hashed once, from the
//!   staging file) and compared with the expected digest before the file is
//!   moved into place ([`DownloadError::HashMismatch`]). A file of the wrong
//!   length or hash is deleted: nothing is left behind.
//!
//! Durability keeps pace with the transfer: what is written is synced in
//! the background as more arrives ([`crate::writeback`]), and the file is
//! fsynced before it is moved into place.
//!
//! An interrupted transfer (connection reset, body shorter than announced)
//! keeps its staging file, so the next attempt, in this run or a later one,
//! asks only for the rest (`Range: bytes=N-`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::cancel::Cancel;
use crate::durable::sync_dir;
use crate::hash_thread::HashThread;
use crate::http::{HttpClient, HttpResponse};
use crate::writeback::Writeback;

/// Size of the read buffer.
const CHUNK: usize = 1024 * 1024;

/// What to fetch and where to put it.
#[derive(Debug, Clone)]
pub struct DownloadRequest {
    /// Where the file may be fetched from, in order of preference.
    pub urls: Vec<String>,
    /// The exact expected length in bytes.
    pub length: u64,
    /// The expected SHA-256.
    pub sha256: [u8; 32],
    /// The staging file (kept across runs to resume).
    pub staging: PathBuf,
    /// The final location, written only with verified content.
    pub dest: PathBuf,
}

/// Limits of the downloader.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// The lowest acceptable throughput in bytes per second (0: no minimum).
    pub min_bytes_per_second: u64,
    /// The window over which throughput is measured.
    pub slow_window: Duration,
    /// How many times one URL is resumed after an interruption that made
    /// progress, before the next URL is tried.
    pub resume_attempts: u32,
    /// Raised, the download stops after the chunk it is writing and keeps
    /// its staging file for a later resume ([`DownloadError::Cancelled`]).
    pub cancel: Cancel,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            min_bytes_per_second: 1024,
            slow_window: Duration::from_secs(30),
            resume_attempts: 3,
            cancel: Cancel::new(),
        }
    }
}

/// Progress of a download, reported after every chunk written.
#[derive(Debug, Clone, Copy)]
pub struct DownloadProgress<'a> {
    /// The URL being read.
    pub url: &'a str,
    /// Bytes in the staging file (resumed bytes included).
    pub received: u64,
    /// The expected length.
    pub total: u64,
}

/// What a successful download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadReport {
    /// The URL the last bytes came from (empty when the file was already in place).
    pub url: String,
    /// Bytes transferred over the network in this call.
    pub downloaded_bytes: u64,
    /// The file's length.
    pub total_bytes: u64,
    /// Bytes that were already staged from an earlier, interrupted transfer.
    pub resumed_from: u64,
    /// The verified file was already at its destination; nothing was fetched.
    pub reused: bool,
    /// Wall time of the call.
    pub duration: Duration,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// No URL to fetch from.
    #[error("no download URL was given")]
    NoUrls,
    /// The server could not be reached, or the connection broke.
    #[error("{url}: {reason}")]
    Network {
        /// The URL.
        url: String,
        /// The cause.
        reason: String,
    },
    /// The server answered with a status other than 200 (or 206 to a range).
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// A 206 answer does not start where it was asked to.
    #[error("{url}: bad Content-Range {value:?} for a transfer resumed at byte {start}")]
    BadContentRange {
        /// The URL.
        url: String,
        /// The header value.
        value: String,
        /// The offset asked for.
        start: u64,
    },
    /// The body ended before the expected length.
    #[error("{url}: the transfer ended after {received} of {expected} bytes")]
    Truncated {
        /// The URL.
        url: String,
        /// Bytes staged.
        received: u64,
        /// The expected length.
        expected: u64,
    },
    /// The server announced or sent more than the expected length (endless
    /// data); nothing past the length was written.
    #[error("{url}: the server sends more than the expected {expected} bytes (endless data)")]
    LengthExceeded {
        /// The URL.
        url: String,
        /// The expected length.
        expected: u64,
    },
    /// Throughput stayed below the minimum over a whole window.
    #[error(
        "{url}: slow retrieval: {rate} bytes/s over {window_secs:.1} s, the minimum is {min} bytes/s"
    )]
    SlowRetrieval {
        /// The URL.
        url: String,
        /// The measured throughput.
        rate: u64,
        /// The minimum.
        min: u64,
        /// The window measured, in seconds.
        window_secs: f64,
    },
    /// The content's SHA-256 is not the expected one (arbitrary package).
    #[error("{url}: SHA-256 mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        /// The URL.
        url: String,
        /// The expected digest (hex).
        expected: String,
        /// The digest of the bytes received (hex).
        actual: String,
    },
    /// The download was cancelled; the bytes staged so far are kept for a
    /// later resume and nothing was moved into place.
    #[error("cancelled after {received} of {expected} bytes")]
    Cancelled {
        /// Bytes staged.
        received: u64,
        /// The expected length.
        expected: u64,
    },
    /// Reading or writing local files failed.
    #[error("{}: {source}", path.display())]
    Disk {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// What the downloader does after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterError {
    /// Resume on the same URL if the attempt made progress.
    Resume,
    /// Keep the staged bytes, try the next URL.
    TryNextUrl,
    /// The staged bytes are bad: delete them and try the next URL from zero.
    Discard,
    /// Stop, deleting the staged bytes.
    Fatal,
    /// Stop, keeping the staged bytes for a later resume.
    Stop,
}

impl DownloadError {
    fn next(&self) -> AfterError {
        match self {
            Self::Network { .. } | Self::Truncated { .. } | Self::BadContentRange { .. } => {
                AfterError::Resume
            }
            Self::Status { .. } | Self::SlowRetrieval { .. } => AfterError::TryNextUrl,
            Self::LengthExceeded { .. } | Self::HashMismatch { .. } => AfterError::Discard,
            Self::NoUrls | Self::Disk { .. } => AfterError::Fatal,
            Self::Cancelled { .. } => AfterError::Stop,
        }
    }

    fn disk(path: &Path, source: io::Error) -> Self {
        Self::Disk {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The bytes staged so far, with their running hash.
struct Staged {
    file: File,
    path: PathBuf,
    len: u64,
    /// Hashes what is written, beside the transfer.
    hasher: HashThread,
    /// Syncs the bytes written so far while more arrive.
    writeback: Writeback,
}

impl Staged {
    /// Opens the staging file, keeping (and hashing, once) a prefix left by
    /// an interrupted transfer when it is not longer than `max`.
    fn open(path: &Path, max: u64) -> Result<Self, DownloadError> {
        let disk = |e| DownloadError::disk(path, e);
        // Buffers no larger than the file (a small one needs no megabyte).
        let chunk = usize::try_from(max.max(1)).unwrap_or(CHUNK).min(CHUNK);
        let hashing = |state| HashThread::start(state, chunk).map_err(disk);
        let existing = match fs::metadata(path) {
            Ok(m) if m.is_file() && m.len() <= max => m.len(),
            Ok(m) if m.is_file() => {
                fs::remove_file(path).map_err(disk)?;
                0
            }
            _ => 0,
        };
        if existing == 0 {
            let file = File::create(path).map_err(disk)?;
            return Ok(Self {
                file,
                path: path.to_path_buf(),
                len: 0,
                hasher: hashing(Sha256::new())?,
                writeback: Writeback::new(),
            });
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(disk)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(disk)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        file.seek(SeekFrom::Start(len)).map_err(disk)?;
        tracing::debug!(path = %path.display(), len, "resuming a staged download");
        Ok(Self {
            file,
            path: path.to_path_buf(),
            len,
            hasher: hashing(hasher)?,
            writeback: Writeback::new(),
        })
    }

    /// Writes the first `n` bytes of `buffer` (one of the hasher's), then
    /// hands it to the hasher.
    fn write(&mut self, buffer: Vec<u8>, n: usize) -> Result<(), DownloadError> {
        if let Err(e) = self.file.write_all(&buffer[..n]) {
            self.hasher.give_back(buffer);
            return Err(DownloadError::disk(&self.path, e));
        }
        self.writeback.wrote(&self.file, n as u64);
        self.hasher.hash(buffer, n);
        let first = self.len == 0 && n > 0;
        self.len += n as u64;
        if first {
            crate::crash::point("download.receiving");
        }
        Ok(())
    }

    /// Empties the staging file (the server ignored the range, or the
    /// staged bytes were refused).
    fn restart(&mut self) -> Result<(), DownloadError> {
        let disk = |e| DownloadError::disk(&self.path, e);
        self.file.set_len(0).map_err(disk)?;
        self.file.seek(SeekFrom::Start(0)).map_err(disk)?;
        self.len = 0;
        self.hasher.reset();
        Ok(())
    }

    fn discard(self) {
        drop(self.file);
        if let Err(e) = fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a staging file");
        }
    }
}

/// Downloads files over an [`HttpClient`].
#[derive(Debug)]
pub struct Downloader<H> {
    http: H,
    options: DownloadOptions,
}

impl<H: HttpClient> Downloader<H> {
    /// A downloader with the given limits.
    pub fn new(http: H, options: DownloadOptions) -> Self {
        Self { http, options }
    }

    /// Fetches `request.dest`, verified, trying each URL in turn. On success
    /// the file is fsynced and renamed into place. On a length or hash
    /// error the staged file is deleted; after an interruption it is kept
    /// for a later resume. `dest` is never written with unverified content.
    pub fn download(
        &self,
        request: &DownloadRequest,
        progress: &mut dyn FnMut(&DownloadProgress<'_>),
    ) -> Result<DownloadReport, DownloadError> {
        let started = Instant::now();
        if request.urls.is_empty() {
            return Err(DownloadError::NoUrls);
        }
        for dir in [request.staging.parent(), request.dest.parent()]
            .into_iter()
            .flatten()
        {
            fs::create_dir_all(dir).map_err(|e| DownloadError::disk(dir, e))?;
        }
        if already_in_place(request)? {
            return Ok(DownloadReport {
                url: String::new(),
                downloaded_bytes: 0,
                total_bytes: request.length,
                resumed_from: 0,
                reused: true,
                duration: started.elapsed(),
            });
        }
        let mut staged = Staged::open(&request.staging, request.length)?;
        let resumed_from = staged.len;
        let mut downloaded = 0u64;
        let mut last_error = DownloadError::NoUrls;
        for url in &request.urls {
            let mut resumes = 0;
            loop {
                let before = staged.len;
                let result = self
                    .attempt(url, request, &mut staged, progress, &mut downloaded)
                    .and_then(|()| check_hash(url, request, &mut staged));
                let error = match result {
                    Ok(()) => {
                        finish(staged, request)?;
                        return Ok(DownloadReport {
                            url: url.clone(),
                            downloaded_bytes: downloaded,
                            total_bytes: request.length,
                            resumed_from,
                            reused: false,
                            duration: started.elapsed(),
                        });
                    }
                    Err(e) => e,
                };
                tracing::info!(%url, error = %error, "download attempt failed");
                match error.next() {
                    AfterError::Fatal => {
                        staged.discard();
                        return Err(error);
                    }
                    AfterError::Stop => return Err(error),
                    AfterError::Discard => {
                        if let Err(e) = staged.restart() {
                            staged.discard();
                            return Err(e);
                        }
                        last_error = error;
                        break;
                    }
                    AfterError::TryNextUrl => {
                        last_error = error;
                        break;
                    }
                    AfterError::Resume => {
                        last_error = error;
                        if staged.len > before && resumes < self.options.resume_attempts {
                            resumes += 1;
                            continue;
                        }
                        break;
                    }
                }
            }
        }
        if staged.len == 0 || last_error.next() == AfterError::Discard {
            staged.discard();
        }
        Err(last_error)
    }

    fn check_cancel(
        &self,
        request: &DownloadRequest,
        staged: &Staged,
    ) -> Result<(), DownloadError> {
        if self.options.cancel.is_cancelled() {
            return Err(DownloadError::Cancelled {
                received: staged.len,
                expected: request.length,
            });
        }
        Ok(())
    }

    /// One GET: from the staged length on, into the staging file.
    fn attempt(
        &self,
        url: &str,
        request: &DownloadRequest,
        staged: &mut Staged,
        progress: &mut dyn FnMut(&DownloadProgress<'_>),
        downloaded: &mut u64,
    ) -> Result<(), DownloadError> {
        if staged.len == request.length {
            return Ok(());
        }
        self.check_cancel(request, staged)?;
        let start = staged.len;
        let mut response = self
            .http
            .get(url, (start > 0).then_some(start))
            .map_err(|e| DownloadError::Network {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        match (response.status, start) {
            (200, 0) => {}
            (200, _) => {
                tracing::info!(%url, "the server ignored the range; downloading from the start");
                staged.restart()?;
            }
            (206, s) if s > 0 => check_content_range(url, &response, s)?,
            (416, s) if s > 0 => {
                tracing::info!(%url, "the server refused the range; downloading from the start");
                staged.restart()?;
                return self.attempt(url, request, staged, progress, downloaded);
            }
            (status, _) => {
                return Err(DownloadError::Status {
                    url: url.to_owned(),
                    status,
                });
            }
        }
        let remaining = request.length - staged.len;
        if response.content_length().is_some_and(|n| n > remaining) {
            return Err(DownloadError::LengthExceeded {
                url: url.to_owned(),
                expected: request.length,
            });
        }
        let mut window_start = Instant::now();
        let mut window_bytes = 0u64;
        loop {
            let remaining = request.length - staged.len;
            let mut buf = staged.hasher.buffer();
            // One byte more than remains, to catch a body longer than expected.
            let want = usize::try_from(remaining.saturating_add(1))
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = match response.body.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) => {
                    staged.hasher.give_back(buf);
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(DownloadError::Network {
                        url: url.to_owned(),
                        reason: format!("the transfer broke after {} bytes: {e}", staged.len),
                    });
                }
            };
            if n == 0 {
                staged.hasher.give_back(buf);
                if staged.len < request.length {
                    return Err(DownloadError::Truncated {
                        url: url.to_owned(),
                        received: staged.len,
                        expected: request.length,
                    });
                }
                return Ok(());
            }
            if n as u64 > remaining {
                staged.hasher.give_back(buf);
                return Err(DownloadError::LengthExceeded {
                    url: url.to_owned(),
                    expected: request.length,
                });
            }
            staged.write(buf, n)?;
            *downloaded += n as u64;
            window_bytes += n as u64;
            progress(&DownloadProgress {
                url,
                received: staged.len,
                total: request.length,
            });
            if staged.len < request.length {
                self.check_cancel(request, staged)?;
            }
            let elapsed = window_start.elapsed();
            if self.options.min_bytes_per_second > 0
                && elapsed >= self.options.slow_window
                && staged.len < request.length
            {
                let rate = (window_bytes as f64 / elapsed.as_secs_f64()) as u64;
                if rate < self.options.min_bytes_per_second {
                    return Err(DownloadError::SlowRetrieval {
                        url: url.to_owned(),
                        rate,
                        min: self.options.min_bytes_per_second,
                        window_secs: elapsed.as_secs_f64(),
                    });
                }
                window_start = Instant::now();
                window_bytes = 0;
            }
        }
    }
}

/// Checks that a 206 answer starts at `start` (`Content-Range: bytes S-E/T`).
fn check_content_range(
    url: &str,
    response: &HttpResponse,
    start: u64,
) -> Result<(), DownloadError> {
    let Some(value) = response.header("content-range") else {
        return Ok(());
    };
    let first = value
        .trim()
        .strip_prefix("bytes ")
        .and_then(|r| r.split_once('-'))
        .and_then(|(s, _)| s.trim().parse::<u64>().ok());
    if first == Some(start) {
        Ok(())
    } else {
        Err(DownloadError::BadContentRange {
            url: url.to_owned(),
            value: value.to_owned(),
            start,
        })
    }
}

fn check_hash(
    url: &str,
    request: &DownloadRequest,
    staged: &mut Staged,
) -> Result<(), DownloadError> {
    let actual = staged.hasher.digest().ok_or_else(|| {
        DownloadError::disk(&staged.path, io::Error::other("the hashing thread stopped"))
    })?;
    if actual != request.sha256 {
        return Err(DownloadError::HashMismatch {
            url: url.to_owned(),
            expected: hex::encode(request.sha256),
            actual: hex::encode(actual),
        });
    }
    Ok(())
}

/// Flushes the staged file to disk and renames it into place.
fn finish(mut staged: Staged, request: &DownloadRequest) -> Result<(), DownloadError> {
    let result = (|| {
        std::mem::take(&mut staged.writeback)
            .finish()
            .and_then(|()| staged.file.sync_all())
            .map_err(|e| DownloadError::disk(&staged.path, e))?;
        crate::crash::point("download.staged-synced");
        fs::rename(&staged.path, &request.dest)
            .map_err(|e| DownloadError::disk(&request.dest, e))?;
        if let Some(dir) = request.dest.parent() {
            sync_dir(dir).map_err(|e| DownloadError::disk(dir, e))?;
        }
        crate::crash::point("download.complete");
        Ok(())
    })();
    if result.is_err() {
        staged.discard();
    }
    result
}

/// Whether `dest` already holds the expected content. A file there with
/// other content is removed.
fn already_in_place(request: &DownloadRequest) -> Result<bool, DownloadError> {
    let dest = &request.dest;
    match fs::metadata(dest) {
        Ok(m) if m.is_file() && m.len() == request.length => {}
        Ok(m) if m.is_file() => {
            fs::remove_file(dest).map_err(|e| DownloadError::disk(dest, e))?;
            return Ok(false);
        }
        _ => return Ok(false),
    }
    let mut file = File::open(dest).map_err(|e| DownloadError::disk(dest, e))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(|e| DownloadError::disk(dest, e))?;
    let actual: [u8; 32] = hasher.finalize().into();
    if actual == request.sha256 {
        return Ok(true);
    }
    fs::remove_file(dest).map_err(|e| DownloadError::disk(dest, e))?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HttpError;
    use std::collections::HashMap;
    use std::io::Cursor;
    use std::sync::Mutex;

    /// How the fake server answers one URL.
    #[derive(Clone)]
    enum Behaviour {
        /// Serves the bytes, honouring ranges.
        Serve(Vec<u8>),
        /// Serves the bytes but ignores ranges (always 200, whole body).
        IgnoreRange(Vec<u8>),
        /// Breaks the connection after `cut` bytes for the first `times`
        /// requests, then serves normally.
        CutOnce { data: Vec<u8>, cut: usize },
        /// Sends the bytes with no Content-Length, then more forever.
        Endless(Vec<u8>),
        /// Announces and sends a longer body.
        Longer(Vec<u8>),
        /// One byte per `delay`.
        Trickle(Vec<u8>, Duration),
        /// Refuses the connection.
        Down,
        /// Answers with a status.
        Status(u16),
    }

    #[derive(Default)]
    struct FakeHttp {
        routes: HashMap<String, Behaviour>,
        requests: Mutex<Vec<(String, Option<u64>)>>,
        cut_done: Mutex<bool>,
    }

    impl FakeHttp {
        fn with(routes: &[(&str, Behaviour)]) -> Self {
            Self {
                routes: routes
                    .iter()
                    .map(|(u, b)| ((*u).to_owned(), b.clone()))
                    .collect(),
                ..Self::default()
            }
        }
        fn requests(&self) -> Vec<(String, Option<u64>)> {
            self.requests.lock().unwrap().clone()
        }
    }

    fn ok(
        status: u16,
        headers: Vec<(String, String)>,
        body: impl Read + Send + 'static,
    ) -> HttpResponse {
        HttpResponse {
            status,
            headers,
            body: Box::new(body),
        }
    }

    fn ranged(data: &[u8], range: Option<u64>) -> HttpResponse {
        let start = range.unwrap_or(0).min(data.len() as u64) as usize;
        let part = data[start..].to_vec();
        let mut headers = vec![("Content-Length".into(), part.len().to_string())];
        let status = if range.is_some() {
            headers.push((
                "Content-Range".into(),
                format!(
                    "bytes {start}-{}/{}",
                    data.len().saturating_sub(1),
                    data.len()
                ),
            ));
            206
        } else {
            200
        };
        ok(status, headers, Cursor::new(part))
    }

    /// A reader that fails with a connection reset after its bytes.
    struct Breaks(Cursor<Vec<u8>>);
    impl Read for Breaks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "connection reset",
                )),
                n => Ok(n),
            }
        }
    }

    struct Slow(Cursor<Vec<u8>>, Duration);
    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.1);
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    impl HttpClient for FakeHttp {
        fn get(&self, url: &str, range: Option<u64>) -> Result<HttpResponse, HttpError> {
            self.requests.lock().unwrap().push((url.to_owned(), range));
            let Some(b) = self.routes.get(url) else {
                return Ok(ok(404, vec![], Cursor::new(Vec::new())));
            };
            Ok(match b {
                Behaviour::Serve(d) => ranged(d, range),
                Behaviour::IgnoreRange(d) => ranged(d, None),
                Behaviour::CutOnce { data, cut } => {
                    let mut done = self.cut_done.lock().unwrap();
                    if *done {
                        ranged(data, range)
                    } else {
                        *done = true;
                        let headers = vec![("Content-Length".into(), data.len().to_string())];
                        ok(200, headers, Breaks(Cursor::new(data[..*cut].to_vec())))
                    }
                }
                Behaviour::Endless(d) => {
                    ok(200, vec![], Cursor::new(d.clone()).chain(io::repeat(b'x')))
                }
                Behaviour::Longer(d) => {
                    let mut body = d.clone();
                    body.extend_from_slice(b"trailing bytes");
                    ranged(&body, None)
                }
                Behaviour::Trickle(d, delay) => {
                    ok(200, vec![], Slow(Cursor::new(d.clone()), *delay))
                }
                Behaviour::Down => {
                    return Err(HttpError::Connect {
                        url: url.to_owned(),
                        reason: "connection refused".into(),
                    });
                }
                Behaviour::Status(s) => ok(*s, vec![], Cursor::new(Vec::new())),
            })
        }
        fn post(&self, url: &str, _ct: &str, _body: &[u8]) -> Result<HttpResponse, HttpError> {
            Err(HttpError::Connect {
                url: url.to_owned(),
                reason: "not used".into(),
            })
        }
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn request(dir: &Path, urls: &[&str], data: &[u8]) -> DownloadRequest {
        DownloadRequest {
            urls: urls.iter().map(|u| (*u).to_owned()).collect(),
            length: data.len() as u64,
            sha256: Sha256::digest(data).into(),
            staging: dir.join("staging/app/1.0/pkg.tar.gz"),
            dest: dir.join("downloads/app/1.0/pkg.tar.gz"),
        }
    }

    fn run(
        http: &FakeHttp,
        req: &DownloadRequest,
        options: DownloadOptions,
    ) -> Result<DownloadReport, DownloadError> {
        Downloader::new(http, options).download(req, &mut |_| {})
    }

    #[test]
    fn good_download_lands_verified_and_reports_progress() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(200_000);
        let http = FakeHttp::with(&[("http://a/p", Behaviour::Serve(data.clone()))]);
        let req = request(dir.path(), &["http://a/p"], &data);
        let mut seen = Vec::new();
        let report = Downloader::new(&http, DownloadOptions::default())
            .download(&req, &mut |p| seen.push((p.received, p.total)))
            .unwrap();
        assert_eq!(fs::read(&req.dest).unwrap(), data);
        assert!(!req.staging.exists());
        assert_eq!(report.downloaded_bytes, 200_000);
        assert_eq!(report.url, "http://a/p");
        assert!(!report.reused);
        assert_eq!(seen.last(), Some(&(200_000, 200_000)));
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
        // A second call finds the verified file and fetches nothing.
        let again = run(&http, &req, DownloadOptions::default()).unwrap();
        assert!(again.reused);
        assert_eq!(http.requests().len(), 1);
    }

    #[test]
    fn a_cancelled_download_stops_keeps_its_bytes_and_resumes_later() {
        let dir = tempfile::tempdir().unwrap();
        // More than one read buffer, so the cancel comes before the end.
        let data = payload(CHUNK * 3 + 1000);
        let http = FakeHttp::with(&[("http://a/p", Behaviour::Serve(data.clone()))]);
        let req = request(dir.path(), &["http://a/p"], &data);
        let options = DownloadOptions::default();
        let cancel = options.cancel.clone();
        let err = Downloader::new(&http, options)
            .download(&req, &mut |_| cancel.cancel())
            .unwrap_err();
        let DownloadError::Cancelled { received, expected } = err else {
            panic!("expected Cancelled, got {err}");
        };
        assert_eq!(expected, data.len() as u64);
        assert!(received > 0 && received < expected, "{received}");
        assert!(!req.dest.exists());
        assert_eq!(fs::metadata(&req.staging).unwrap().len(), received);
        // Cancelled before it starts: nothing is fetched.
        let options = DownloadOptions::default();
        options.cancel.cancel();
        let before = http.requests().len();
        let err = run(&http, &req, options).unwrap_err();
        assert!(matches!(err, DownloadError::Cancelled { .. }), "{err}");
        assert_eq!(http.requests().len(), before);
        // The next download asks only for the rest.
        run(&http, &req, DownloadOptions::default()).unwrap();
        assert_eq!(fs::read(&req.dest).unwrap(), data);
    }

    #[test]
    fn hash_mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(5000);
        let mut evil = data.clone();
        evil[100] ^= 1;
        let http = FakeHttp::with(&[("http://a/p", Behaviour::Serve(evil))]);
        let req = request(dir.path(), &["http://a/p"], &data);
        let err = run(&http, &req, DownloadOptions::default()).unwrap_err();
        assert!(matches!(err, DownloadError::HashMismatch { .. }), "{err}");
        assert!(!req.dest.exists());
        assert!(!req.staging.exists());
    }

    #[test]
    fn short_body_is_truncated_and_kept_for_resume() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(5000);
        let http = FakeHttp::with(&[("http://a/p", Behaviour::Serve(data[..3000].to_vec()))]);
        let req = request(dir.path(), &["http://a/p"], &data);
        let err = run(&http, &req, DownloadOptions::default()).unwrap_err();
        match &err {
            DownloadError::Truncated {
                received, expected, ..
            } => {
                assert_eq!((*received, *expected), (3000, 5000));
            }
            other => panic!("expected Truncated, got {other}"),
        }
        assert!(!req.dest.exists());
        assert_eq!(fs::read(&req.staging).unwrap(), &data[..3000]);
        // The retry asked for the rest, and gave up when it made no progress.
        assert_eq!(
            http.requests(),
            vec![
                ("http://a/p".into(), None),
                ("http://a/p".into(), Some(3000))
            ]
        );
    }

    #[test]
    fn endless_data_is_cut_at_the_expected_length() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(70_000);
        for behaviour in [
            Behaviour::Endless(data.clone()),
            Behaviour::Longer(data.clone()),
        ] {
            let http = FakeHttp::with(&[("http://a/p", behaviour)]);
            let req = request(dir.path(), &["http://a/p"], &data);
            let err = run(&http, &req, DownloadOptions::default()).unwrap_err();
            assert!(
                matches!(
                    err,
                    DownloadError::LengthExceeded {
                        expected: 70_000,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(!req.dest.exists());
            assert!(!req.staging.exists());
        }
    }

    #[test]
    fn a_cut_transfer_resumes_with_a_range() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(300_000);
        let http = FakeHttp::with(&[(
            "http://a/p",
            Behaviour::CutOnce {
                data: data.clone(),
                cut: 131_072,
            },
        )]);
        let req = request(dir.path(), &["http://a/p"], &data);
        let report = run(&http, &req, DownloadOptions::default()).unwrap();
        assert_eq!(fs::read(&req.dest).unwrap(), data);
        assert_eq!(
            http.requests(),
            vec![
                ("http://a/p".into(), None),
                ("http://a/p".into(), Some(131_072))
            ]
        );
        assert_eq!(report.downloaded_bytes, 300_000);
        assert_eq!(report.resumed_from, 0);
    }

    #[test]
    fn a_staged_prefix_from_an_earlier_run_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(10_000);
        let http = FakeHttp::with(&[("http://a/p", Behaviour::Serve(data.clone()))]);
        let req = request(dir.path(), &["http://a/p"], &data);
        fs::create_dir_all(req.staging.parent().unwrap()).unwrap();
        fs::write(&req.staging, &data[..4000]).unwrap();
        let report = run(&http, &req, DownloadOptions::default()).unwrap();
        assert_eq!(fs::read(&req.dest).unwrap(), data);
        assert_eq!(http.requests(), vec![("http://a/p".into(), Some(4000))]);
        assert_eq!((report.resumed_from, report.downloaded_bytes), (4000, 6000));
    }

    #[test]
    fn a_server_ignoring_the_range_restarts_from_zero() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(10_000);
        let http = FakeHttp::with(&[("http://a/p", Behaviour::IgnoreRange(data.clone()))]);
        let req = request(dir.path(), &["http://a/p"], &data);
        fs::create_dir_all(req.staging.parent().unwrap()).unwrap();
        fs::write(&req.staging, &data[..4000]).unwrap();
        run(&http, &req, DownloadOptions::default()).unwrap();
        assert_eq!(fs::read(&req.dest).unwrap(), data);
    }

    #[test]
    fn the_next_url_is_tried_after_a_failing_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(8000);
        let mut evil = data.clone();
        evil[0] ^= 0xff;
        let http = FakeHttp::with(&[
            ("http://down/p", Behaviour::Down),
            ("http://err/p", Behaviour::Status(503)),
            ("http://evil/p", Behaviour::Serve(evil)),
            ("http://good/p", Behaviour::Serve(data.clone())),
        ]);
        let req = request(
            dir.path(),
            &[
                "http://down/p",
                "http://err/p",
                "http://evil/p",
                "http://good/p",
            ],
            &data,
        );
        let report = run(&http, &req, DownloadOptions::default()).unwrap();
        assert_eq!(report.url, "http://good/p");
        assert_eq!(fs::read(&req.dest).unwrap(), data);
        // The good mirror was read from the start: the evil bytes were dropped.
        assert_eq!(
            http.requests().last(),
            Some(&("http://good/p".into(), None))
        );
    }

    #[test]
    fn every_url_failing_reports_the_last_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(100);
        let http = FakeHttp::with(&[
            ("http://down/p", Behaviour::Down),
            ("http://err/p", Behaviour::Status(500)),
        ]);
        let req = request(dir.path(), &["http://down/p", "http://err/p"], &data);
        let err = run(&http, &req, DownloadOptions::default()).unwrap_err();
        assert!(
            matches!(err, DownloadError::Status { status: 500, .. }),
            "{err}"
        );
        assert!(!req.dest.exists() && !req.staging.exists());
    }

    #[test]
    fn slow_retrieval_is_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(1000);
        let http = FakeHttp::with(&[(
            "http://a/p",
            Behaviour::Trickle(data.clone(), Duration::from_millis(10)),
        )]);
        let req = request(dir.path(), &["http://a/p"], &data);
        let options = DownloadOptions {
            min_bytes_per_second: 10_000,
            slow_window: Duration::from_millis(150),
            resume_attempts: 3,
            cancel: Cancel::new(),
        };
        let started = Instant::now();
        let err = run(&http, &req, options).unwrap_err();
        assert!(
            matches!(err, DownloadError::SlowRetrieval { min: 10_000, .. }),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!req.dest.exists());
        // A slow server is not retried on the same URL.
        assert_eq!(http.requests().len(), 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_disk_write_error_stops_the_download() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(10_000);
        let http = FakeHttp::with(&[("http://a/p", Behaviour::Serve(data.clone()))]);
        let req = request(dir.path(), &["http://a/p"], &data);
        fs::create_dir_all(req.staging.parent().unwrap()).unwrap();
        // Every write to /dev/full fails with "no space left on device".
        std::os::unix::fs::symlink("/dev/full", &req.staging).unwrap();
        let err = run(&http, &req, DownloadOptions::default()).unwrap_err();
        match &err {
            DownloadError::Disk { source, .. } => {
                assert_eq!(source.raw_os_error(), Some(28), "{source}");
            }
            other => panic!("expected a disk error, got {other}"),
        }
        assert!(!req.dest.exists());
    }

    #[test]
    fn an_unusable_download_dir_is_a_disk_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = payload(10);
        let http = FakeHttp::with(&[("http://a/p", Behaviour::Serve(data.clone()))]);
        let mut req = request(dir.path(), &["http://a/p"], &data);
        fs::write(dir.path().join("blocker"), b"a file").unwrap();
        req.dest = dir.path().join("blocker/app/1.0/pkg");
        let err = run(&http, &req, DownloadOptions::default()).unwrap_err();
        assert!(matches!(err, DownloadError::Disk { .. }), "{err}");
        assert!(http.requests().is_empty());
    }
}

//! The reference Omaha server.
//!
//! | method | path | answer |
//! |---|---|---|
//! | POST | `/service/update2/json` | Omaha 3.1 or 4.0 JSON (by the request's `protocol`), `)]}'`-prefixed |
//! | POST | `/service/update2` | Omaha 3.0 XML (JSON requests are answered in JSON) |
//! | GET, HEAD | `/tuf/<file>` | `DIR/metadata/<file>` |
//! | GET, HEAD | `/targets/<path>` | `DIR/targets/<path>` |
//! | GET | `/dashboard`, `/dashboard.json` | releases, rollouts, adoption, failures ([`crate::dashboard`]) |
//!
//! Update checks are answered from the request and the signed targets
//! metadata alone; pings and events are written to the [`EventStore`]
//! before the answer is sent, the commits of concurrent requests grouped
//! into one transaction ([`GroupCommit`]). With `cup2key` (and `cup2hreq`) in the query
//! the answer is signed with the repository's CUP key and the proof sent in
//! `X-Cup-Server-Proof` and `ETag`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use upkeep_core::cup::{CupError, CupServer, RequestParams};
use upkeep_core::omaha::{Protocol, parse_request_with_limit};
use upkeep_core::tuf::metadata::format_time;

use crate::dashboard_data::Access;
use crate::dashboard_http::{DashboardState, dashboard};
use crate::error::ServerError;
use crate::events::{EventRecord, EventStore, records_of};
use crate::events_url::{EventsUrl, open_store};
use crate::files::{self, PathError, RangeRequest};
use crate::group_commit::{GroupCommit, GroupCommitOptions};
use crate::keys;
use crate::repo::{self, Repo};
use crate::view::{View, Views};

/// The largest request body accepted (larger: 413).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The CUP proof header.
pub const CUP_PROOF_HEADER: &str = "x-cup-server-proof";

/// Options of [`serve_blocking`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// The public base URL for codebases (else `repo.toml`'s, else the
    /// request's Host header).
    pub public_url: Option<String>,
    /// Where `cup.pem` is (else the repository's key directory).
    pub keys_dir: Option<PathBuf>,
    /// The event store (else the repository's `events.sqlite`).
    pub events: Option<EventsUrl>,
    /// The dashboard's access token. Without one the dashboard is served
    /// only when `listen` is a loopback address.
    pub dashboard_token: Option<String>,
}

/// Everything a request handler needs.
pub struct ServerState {
    metadata_dir: PathBuf,
    targets_dir: PathBuf,
    public_url: Option<String>,
    cup: CupServer,
    events: GroupCommit,
    views: Arc<Views>,
    dashboard: Arc<DashboardState>,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("metadata_dir", &self.metadata_dir)
            .field("targets_dir", &self.targets_dir)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl ServerState {
    /// The state for serving `repo`: its CUP key, its event store
    /// (`options.events`, else the repository's `events.sqlite`).
    pub fn new(repo: &Repo, options: &ServeOptions) -> Result<ServerState, ServerError> {
        let store = open_store(options.events.as_ref(), repo)?;
        Self::with_store(repo, options, store, GroupCommitOptions::default())
    }

    /// The state for serving `repo` with another event store, its commits
    /// grouped as `commits` says.
    pub fn with_store(
        repo: &Repo,
        options: &ServeOptions,
        store: Arc<dyn EventStore>,
        commits: GroupCommitOptions,
    ) -> Result<ServerState, ServerError> {
        let public_url = options
            .public_url
            .clone()
            .or_else(|| repo.settings().public_url.clone());
        if let Some(url) = &public_url {
            repo::check_public_url(url)?;
        }
        let keys_dir = repo.keys_dir(options.keys_dir.as_deref());
        let cup = keys::load_cup_key(&keys_dir, repo.settings().cup_key_id)?;
        // Fail early on unreadable metadata.
        repo.current()?;
        let views = Arc::new(Views::new(repo.dir(), &repo.metadata_dir()));
        let dashboard = Arc::new(DashboardState {
            access: Access::new(
                options.listen.ip().is_loopback(),
                options.dashboard_token.clone(),
            ),
            store: store.clone(),
            views: views.clone(),
        });
        Ok(ServerState {
            metadata_dir: repo.metadata_dir(),
            targets_dir: repo.targets_dir(),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            cup,
            events: GroupCommit::start(store, commits)?,
            views,
            dashboard,
        })
    }

    /// The releases of the current signed metadata and the rollout state,
    /// re-read whenever they change on disk.
    pub fn view(&self) -> Result<Arc<View>, ServerError> {
        self.views.current()
    }

    /// Everything of an update check but storing its events: parse, decide,
    /// write and sign the answer. Nothing is stored for a request refused
    /// here.
    fn prepare_update(
        &self,
        query: Option<&str>,
        host: Option<&str>,
        body: &[u8],
        json_endpoint: bool,
    ) -> Result<PreparedAnswer, HttpError> {
        let cup = match query {
            Some(q) if q.split('&').any(|p| p.starts_with("cup2key=")) => Some(
                RequestParams::from_query(q)
                    .map_err(|e| HttpError::bad_request(format!("CUP parameters: {e}")))?,
            ),
            _ => None,
        };
        // Refuse what cannot be signed before anything is stored.
        let observed = cup.as_ref().map(|_| upkeep_core::cup::sha256(body));
        if let (Some(params), Some(observed)) = (&cup, &observed) {
            if params.cup2key().key_id() != self.cup.key_id() {
                return Err(HttpError::bad_request(format!(
                    "CUP: key id {} is not this server's ({})",
                    params.cup2key().key_id(),
                    self.cup.key_id()
                )));
            }
            if params.cup2hreq().is_some_and(|claimed| claimed != observed) {
                return Err(HttpError::bad_request(
                    "CUP: cup2hreq is not the SHA-256 of the request body".into(),
                ));
            }
        }
        let request = parse_request_with_limit(body, None, MAX_BODY_BYTES)
            .map_err(|e| HttpError::bad_request(format!("malformed Omaha request: {e}")))?;
        if json_endpoint && request.protocol == Protocol::Xml30 {
            return Err(HttpError::bad_request(
                "this endpoint takes protocol 3.1 or 4.0 JSON; send 3.0 XML to /service/update2"
                    .into(),
            ));
        }
        let base = match &self.public_url {
            Some(u) => u.clone(),
            None => {
                let host = host.ok_or_else(|| {
                    HttpError::bad_request("no Host header and no public URL configured".into())
                })?;
                if !valid_host(host) {
                    return Err(HttpError::bad_request(format!(
                        "invalid Host header {host:?}"
                    )));
                }
                format!("http://{host}")
            }
        };
        let view = self.view().map_err(|e| {
            tracing::error!(error = %e, "repository metadata unreadable");
            HttpError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("repository metadata: {e}"),
            )
        })?;
        let now = OffsetDateTime::now_utc();
        let records = records_of(&request, &format_time(now));
        let response = answer(&view, &request, &base, now);
        let text = response.to_body_in(request.protocol, request.flavor);
        let proof = match (cup, observed) {
            (Some(params), Some(observed)) => Some(
                self.cup
                    .sign_response_hashed(&params, &observed, text.as_bytes())
                    .map_err(|e| match e {
                        CupError::Signing(_) => {
                            HttpError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("CUP: {e}"))
                        }
                        e => HttpError::bad_request(format!("CUP: {e}")),
                    })?,
            ),
            _ => None,
        };
        Ok(PreparedAnswer {
            protocol: request.protocol,
            text,
            proof,
            records,
        })
    }
}

/// An answer ready to send once its request's events are stored.
struct PreparedAnswer {
    protocol: Protocol,
    text: String,
    proof: Option<String>,
    records: Vec<EventRecord>,
}

/// Whether a Host header value is a plain `host[:port]` (so it can go into
/// URLs unescaped).
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
}

pub use crate::answer::{SERVER_NAME, answer, codebase, join_args};

/// An error answer: a status and a one-line message.
#[derive(Debug)]
struct HttpError {
    status: StatusCode,
    message: String,
}

impl HttpError {
    fn new(status: StatusCode, message: String) -> Self {
        HttpError { status, message }
    }

    fn bad_request(message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> HttpResponse {
        (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response()
    }
}

async fn update(
    state: Arc<ServerState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    json_endpoint: bool,
) -> HttpResponse {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    // Parsing, deciding, writing and signing take tens of microseconds: they
    // run on the runtime's worker. Handing them to the blocking pool cost
    // two thread wake-ups per request, which showed as the largest item of
    // a profile under load (docs/benchmarks.md).
    let prepared = state.prepare_update(uri.query(), host, &body, json_endpoint);
    match prepared {
        Ok(PreparedAnswer {
            protocol,
            text,
            proof,
            records,
        }) => {
            // Durable before the answer that acknowledges them.
            if let Err(e) = state.events.record(records).await {
                tracing::error!(error = %e, "events not stored");
                return HttpError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                    .into_response();
            }
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, protocol.content_type())],
                text,
            )
                .into_response();
            if let Some(proof) = proof
                && let (Ok(p), Ok(etag)) = (
                    HeaderValue::from_str(&proof),
                    HeaderValue::from_str(&format!("W/\"{proof}\"")),
                )
            {
                response.headers_mut().insert(CUP_PROOF_HEADER, p);
                response.headers_mut().insert(header::ETAG, etag);
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

async fn static_file(root: PathBuf, raw: String, headers: HeaderMap) -> HttpResponse {
    let resolved = tokio::task::spawn_blocking(move || files::resolve(&root, &raw)).await;
    let path = match resolved {
        Ok(Ok(p)) => p,
        Ok(Err(e @ PathError::Invalid(_))) => {
            return HttpError::bad_request(e.to_string()).into_response();
        }
        Ok(Err(e @ PathError::Escapes)) => {
            return HttpError::new(StatusCode::FORBIDDEN, e.to_string()).into_response();
        }
        Ok(Err(_)) | Err(_) => {
            return HttpError::new(StatusCode::NOT_FOUND, "not found".into()).into_response();
        }
    };
    match send_file(&path, &headers).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "file not sent");
            HttpError::new(StatusCode::NOT_FOUND, "not found".into()).into_response()
        }
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Read size when sending a file. `tokio::fs::File` does every read on the
/// blocking thread pool: with `ReaderStream`'s default of 4 KiB, that hop per
/// 4 KiB held a 256 MiB transfer over loopback to about 170 MB/s on a 2-core
/// machine (1.6 GB/s with this size).
const FILE_CHUNK: usize = 256 * 1024;

async fn send_file(path: &Path, headers: &HeaderMap) -> std::io::Result<HttpResponse> {
    let mut file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    let range = files::parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        len,
    );
    let mut builder = HttpResponse::builder()
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, content_type(path));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name == "timestamp.json" || name == "root.json" {
        builder = builder.header(header::CACHE_CONTROL, "no-cache");
    }
    let (status, start, count) = match range {
        RangeRequest::Full => (StatusCode::OK, 0, len),
        RangeRequest::Partial { start, end } => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeRequest::Unsatisfiable => {
            return Ok(builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .header(header::CONTENT_LENGTH, 0)
                .body(Body::empty())
                .unwrap_or_default());
        }
    };
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start)).await?;
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(count), FILE_CHUNK);
    Ok(builder
        .status(status)
        .header(header::CONTENT_LENGTH, count)
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// The routes of the server.
pub fn router(state: Arc<ServerState>) -> Router {
    let json_state = state.clone();
    let xml_state = state.clone();
    let tuf_root = state.metadata_dir.clone();
    let targets_root = state.targets_dir.clone();
    let page = state.dashboard.clone();
    let figures = state.dashboard.clone();
    Router::new()
        .route(
            "/dashboard",
            get(move |uri: Uri, headers: HeaderMap| dashboard(page.clone(), uri, headers, false)),
        )
        .route(
            "/dashboard.json",
            get(move |uri: Uri, headers: HeaderMap| dashboard(figures.clone(), uri, headers, true)),
        )
        .route(
            "/service/update2/json",
            post(move |uri: Uri, headers: HeaderMap, body: Bytes| {
                update(json_state.clone(), uri, headers, body, true)
            }),
        )
        .route(
            "/service/update2",
            post(move |uri: Uri, headers: HeaderMap, body: Bytes| {
                update(xml_state.clone(), uri, headers, body, false)
            }),
        )
        .route(
            "/tuf/{*path}",
            get(move |uri: Uri, headers: HeaderMap| {
                let raw = uri
                    .path()
                    .strip_prefix("/tuf/")
                    .unwrap_or_default()
                    .to_owned();
                static_file(tuf_root.clone(), raw, headers)
            }),
        )
        .route(
            "/targets/{*path}",
            get(move |uri: Uri, headers: HeaderMap| {
                let raw = uri
                    .path()
                    .strip_prefix("/targets/")
                    .unwrap_or_default()
                    .to_owned();
                static_file(targets_root.clone(), raw, headers)
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(())
}

async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

/// Serves `repo` until SIGINT or SIGTERM. `on_bound` is called with the
/// bound address once the socket listens.
pub fn serve_blocking(
    repo: &Repo,
    options: &ServeOptions,
    on_bound: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    let state = Arc::new(ServerState::new(repo, options)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServerError::io("tokio runtime", e))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|e| ServerError::io(options.listen.to_string(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServerError::io(options.listen.to_string(), e))?;
        on_bound(addr);
        // Each answer goes out as written: without TCP_NODELAY, the body
        // written after the headers waits for the client's ACK of them,
        // which a client on a kept-alive connection delays by up to 40 ms.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| ServerError::io(addr.to_string(), e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_are_checked() {
        assert!(valid_host("127.0.0.1:8080"));
        assert!(valid_host("[::1]:80"));
        assert!(valid_host("updates.example.com"));
        assert!(!valid_host("evil.com/path"));
        assert!(!valid_host("a b"));
        assert!(!valid_host(""));
    }
}

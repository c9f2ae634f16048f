//! `GET /dashboard` (the page) and `GET /dashboard.json` (its figures):
//! admitted as [`Access`] says, built off the runtime's workers (the
//! event stores block).

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use crate::dashboard::render;
use crate::dashboard_data::{Access, DEFAULT_WINDOW, Refusal, build};
use crate::events::EventStore;
use crate::stats::parse_duration;
use crate::view::Views;

/// What the dashboard handlers need.
pub struct DashboardState {
    /// Who may see it.
    pub access: Access,
    /// Where the events are.
    pub store: Arc<dyn EventStore>,
    /// The releases and rollouts.
    pub views: Arc<Views>,
}

/// The value of `name` in a query string, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

fn presented_token(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| query_param(uri.query(), "token"))
}

fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

/// Answers a dashboard request: the page, or its figures as JSON.
pub async fn dashboard(
    state: Arc<DashboardState>,
    uri: Uri,
    headers: HeaderMap,
    json: bool,
) -> Response {
    if let Err(r) = state
        .access
        .admit(presented_token(&uri, &headers).as_deref())
    {
        let status = match r {
            Refusal::Token => StatusCode::UNAUTHORIZED,
            Refusal::Closed => StatusCode::FORBIDDEN,
        };
        return text(status, r.to_string());
    }
    let window = match query_param(uri.query(), "window") {
        None => DEFAULT_WINDOW,
        Some(w) => match parse_duration(&w) {
            Ok(s) if s > 0 => s,
            Ok(_) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "window: give a duration above 0".into(),
                );
            }
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("window: {e}")),
        },
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let built = tokio::task::spawn_blocking(move || {
        let view = state.views.current()?;
        build(&view, state.store.as_ref(), window, now)
    })
    .await;
    match built {
        Ok(Ok(d)) if json => match serde_json::to_string_pretty(&d) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Ok(Ok(d)) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            render(&d),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "dashboard figures unreadable");
            text(StatusCode::INTERNAL_SERVER_ERROR, format!("dashboard: {e}"))
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("dashboard: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_and_decoded() {
        assert_eq!(
            query_param(Some("a=1&token=x%2By&window=24h"), "token").as_deref(),
            Some("x+y")
        );
        assert_eq!(query_param(Some("token"), "token").as_deref(), Some(""));
        assert_eq!(query_param(Some("tokens=1"), "token"), None);
        assert_eq!(query_param(None, "token"), None);
    }
}

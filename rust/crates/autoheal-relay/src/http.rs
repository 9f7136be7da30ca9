//! The HTTP surface: `app(state) -> Router`. Handlers are thin: authenticate, check the content
//! type, read the body within its limit, parse, decide, journal, answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::auth::AuthError;
use crate::decide::decide;
use crate::journal::AcceptReport;
use crate::metrics::{ReasonLabel, SourceLabel};
use crate::model::{now_ms, Decision, Source};
use crate::payload::{self, ParseError};
use crate::relay::AppState;

/// Why a request was refused; each maps to one status and a JSON body `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401 (403 for admin endpoints that are off).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// 415.
    #[error("content type must be application/json")]
    ContentType,
    /// 413 or 400 from reading the body.
    #[error("{message}")]
    Body {
        /// Status chosen by axum (413 over the limit, 400 otherwise).
        status: StatusCode,
        /// Message.
        message: String,
    },
    /// 400.
    #[error("invalid webhook payload: {0}")]
    Payload(#[from] ParseError),
    /// 503: the journal cannot take the alerts; the sender should retry.
    #[error("cannot journal the alerts, retry later: {0}")]
    Journal(#[from] crate::journal::JournalError),
    /// 503: the pause switch could not be recorded, so it was not changed.
    #[error("cannot record the pause switch, nothing changed: {0}")]
    Switch(crate::journal::JournalError),
    /// 400: an admin request the relay cannot use.
    #[error("{0}")]
    BadRequest(String),
    /// 503: a release could not be recorded, so nothing was released.
    #[error("cannot record the release, nothing changed: {0}")]
    Release(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Auth(AuthError::AdminDisabled) => StatusCode::FORBIDDEN,
            Self::Auth(_) => StatusCode::UNAUTHORIZED,
            Self::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Body { status, .. } => *status,
            Self::Payload(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Journal(_) | Self::Switch(_) | Self::Release(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Self::Auth(_) => "unauthorized",
            Self::ContentType => "content_type",
            Self::Body { status, .. } if *status == StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            Self::Body { .. } => "body",
            Self::Payload(_) | Self::BadRequest(_) => "payload",
            Self::Journal(_) | Self::Switch(_) | Self::Release(_) => "journal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer, Basic"),
            );
        }
        response
    }
}

/// The relay's router.
pub fn app(state: AppState) -> Router {
    let limit = state.inner.max_body_bytes;
    let gate = Arc::new(RequestGate {
        slots: Arc::new(Semaphore::new(state.inner.max_concurrent_requests)),
        timeout: state.inner.request_timeout,
    });
    Router::new()
        .route("/hooks/alertmanager", post(alertmanager))
        .route("/hooks/grafana", post(grafana))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/admin/pause", post(pause))
        .route("/admin/resume", post(resume))
        .route("/admin/status", get(status))
        .route("/admin/release", post(release))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(gate, admit))
        .with_state(state)
}

/// What every request passes through, shared by all routes (a router layer is cloned per
/// route, so the slots live behind one `Arc`).
#[derive(Debug)]
struct RequestGate {
    slots: Arc<Semaphore>,
    timeout: std::time::Duration,
}

/// Over the concurrency limit, answers 503 at once (retried by Alertmanager) rather than queue;
/// past the request timeout, answers 503 too: the alerts may not have been journaled, and only
/// a 5xx makes the sender try again.
async fn admit(State(gate): State<Arc<RequestGate>>, req: Request, next: Next) -> Response {
    let Ok(_slot) = gate.slots.clone().try_acquire_owned() else {
        return unavailable("too many requests in progress, retry later");
    };
    match tokio::time::timeout(gate.timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(timeout = ?gate.timeout, "request timed out; answered 503 so that the sender retries");
            unavailable("request timed out before its alerts were journaled, retry later")
        }
    }
}

fn unavailable(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": message })),
    )
        .into_response()
}

async fn alertmanager(State(s): State<AppState>, headers: HeaderMap, req: Request) -> Response {
    respond(&s, intake(&s, Source::Alertmanager, &headers, req).await)
}

async fn grafana(State(s): State<AppState>, headers: HeaderMap, req: Request) -> Response {
    respond(&s, intake(&s, Source::Grafana, &headers, req).await)
}

fn respond(s: &AppState, result: Result<AcceptReport, ApiError>) -> Response {
    match result {
        Ok(report) => (StatusCode::OK, Json(report)).into_response(),
        Err(e) => {
            s.metrics().refuse_request(e.reason());
            if e.status().is_server_error() {
                tracing::error!(error = %e, "webhook not accepted");
            } else {
                tracing::info!(error = %e, status = %e.status(), "webhook refused");
            }
            e.into_response()
        }
    }
}

async fn intake(
    s: &AppState,
    source: Source,
    headers: &HeaderMap,
    req: Request,
) -> Result<AcceptReport, ApiError> {
    let inner = &s.inner;
    // Grafana with a configured HMAC proves itself with the signature (checked once the body
    // is read); everything else needs the Authorization header before the body is read.
    let signed = source == Source::Grafana && inner.auth.has_hmac();
    if signed {
        inner.auth.check_hmac_headers(headers)?;
    } else {
        inner.auth.check_headers(headers)?;
    }
    if !is_json(headers) {
        return Err(ApiError::ContentType);
    }
    let body = Bytes::from_request(req, s)
        .await
        .map_err(|r| ApiError::Body {
            status: r.status(),
            message: r.body_text(),
        })?;
    let signature = if signed {
        let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
        inner.auth.check_hmac(headers, &body, now)?
    } else {
        None
    };
    let alerts = payload::parse(source, &body)?;
    inner
        .metrics
        .alerts_received
        .get_or_create(&SourceLabel {
            source: source.as_str().to_owned(),
        })
        .inc_by(u64::try_from(alerts.len()).unwrap_or(u64::MAX));
    let decisions = decide(&alerts, &inner.rules, &inner.targets, now_ms());
    for d in &decisions {
        if let Decision::Rejected { rule, field, error } = d {
            tracing::warn!(rule, label = %field, error = %error, "alert rejected: unsafe label value");
            inner
                .metrics
                .alerts_rejected
                .get_or_create(&ReasonLabel {
                    reason: error.kind().to_owned(),
                })
                .inc();
        }
    }
    let items = alerts.into_iter().zip(decisions).collect();
    let report = match signature {
        Some(signature) => {
            let report = inner
                .journal
                .accept_signed(source, items, signature.clone())
                .await?;
            inner.auth.remember(signature);
            report
        }
        None => inner.journal.accept(source, items).await?,
    };
    inner
        .metrics
        .alerts_deduplicated
        .inc_by(u64::try_from(report.duplicates).unwrap_or(u64::MAX));
    Ok(report)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Ready while the journal can take alerts; otherwise says why (webhooks get 503 meanwhile).
async fn readyz(State(s): State<AppState>) -> Response {
    let journal = &s.inner.journal;
    if !journal.is_running() {
        return (StatusCode::SERVICE_UNAVAILABLE, "journal not running\n").into_response();
    }
    match journal.failing() {
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("journal cannot commit: {why}\n"),
        )
            .into_response(),
        None => (StatusCode::OK, "ready\n").into_response(),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics().render(),
    )
        .into_response()
}

async fn pause(State(s): State<AppState>, headers: HeaderMap) -> Response {
    set_paused(&s, &headers, true).await
}

async fn resume(State(s): State<AppState>, headers: HeaderMap) -> Response {
    set_paused(&s, &headers, false).await
}

/// Journals the switch first, so that a pause an operator was told about survives a restart.
/// A JSON content type is required: a cross-site HTML form cannot send one.
async fn set_paused(s: &AppState, headers: &HeaderMap, paused: bool) -> Response {
    if let Err(e) = s.inner.auth.check_admin(headers) {
        s.metrics().refuse_request("unauthorized");
        return ApiError::from(e).into_response();
    }
    if !is_json(headers) {
        s.metrics().refuse_request("content_type");
        return ApiError::ContentType.into_response();
    }
    if let Err(e) = s.inner.journal.set_paused(paused).await {
        return ApiError::Switch(e).into_response();
    }
    s.pause().set(paused);
    tracing::warn!(paused, "pause switch changed through the admin endpoint");
    status_body(s)
}

/// `{"target": "BACKEND/SERVER"}`: records an operator's release of a quarantined (or given
/// up, unknown, not found, operator-held) target; the pipeline applies it within its
/// housekeeping tick and audits it. 202 with the request's id.
async fn release(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(e) = s.inner.auth.check_admin(&headers) {
        s.metrics().refuse_request("unauthorized");
        return ApiError::from(e).into_response();
    }
    if !is_json(&headers) {
        s.metrics().refuse_request("content_type");
        return ApiError::ContentType.into_response();
    }
    let target = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["target"].as_str().map(str::to_owned));
    let key = match target.as_deref().map(crate::lifecycle::store::release_key) {
        Some(Ok(key)) => key,
        Some(Err(why)) => return ApiError::BadRequest(why).into_response(),
        None => {
            return ApiError::BadRequest("give {\"target\": \"BACKEND/SERVER\"}".into())
                .into_response()
        }
    };
    match s
        .inner
        .life_store
        .request_release(key.clone(), "admin endpoint".into(), now_ms())
        .await
    {
        Ok(id) => {
            tracing::warn!(target = %key, request = id, "release requested through the admin endpoint");
            (
                StatusCode::ACCEPTED,
                Json(json!({"release": id, "target": key})),
            )
                .into_response()
        }
        Err(e) => ApiError::Release(e.to_string()).into_response(),
    }
}

async fn status(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(e) = s.inner.auth.check_admin(&headers) {
        return ApiError::from(e).into_response();
    }
    status_body(&s)
}

fn status_body(s: &AppState) -> Response {
    Json(json!({
        "paused": s.pause().is_paused(),
        "queue_depth": s.metrics().queue_depth.get(),
        "breaker_open": s.metrics().breaker_open.get() == 1,
        "journal_backlog": s.inner.journal.backlog(),
    }))
    .into_response()
}

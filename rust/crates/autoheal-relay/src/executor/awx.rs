//! Launches an AWX/AAP job template through the REST API and polls the job to a final state.
//!
//! Contract (AWX API v2): `POST /api/v2/job_templates/ID/launch/` with `{"extra_vars": {...}}`
//! answers 201 with the new job's id in `job`; `GET /api/v2/jobs/ID/` reports `status`, one of
//! `new pending waiting running successful failed error canceled`. The template must prompt for
//! variables on launch (and for the limit, when one is sent).
//!
//! A launch is retried only when the connection could not be made, i.e. before anything was
//! sent. After a request may have reached AWX (a timeout, a reset, a 5xx) it is not retried:
//! that could start a second job.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{extra_vars, Executor, RunFuture, RunRequest};
use crate::config::AwxConfig;
use crate::model::{RunResult, RunStatus};

const FINAL_STATES: [&str; 4] = ["successful", "failed", "error", "canceled"];

/// The AWX executor.
#[derive(Debug, Clone)]
pub struct Awx {
    cfg: AwxConfig,
    token: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct Launched {
    job: Option<u64>,
    id: Option<u64>,
}

/// Why the AWX executor could not be set up, or a job launched or followed.
#[derive(Debug, thiserror::Error)]
pub enum AwxError {
    /// The token file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file is empty.
    #[error("{} is empty", path.display())]
    EmptyToken {
        /// The file.
        path: PathBuf,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The launch request failed after it may have reached AWX.
    #[error("launch {url}: {source} (not retried: the job may exist)")]
    Launch {
        /// The launch URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// AWX refused the launch.
    #[error("launch {url}: HTTP {status}: {body}")]
    Refused {
        /// The launch URL.
        url: String,
        /// Its answer's status.
        status: reqwest::StatusCode,
        /// The start of its answer's body.
        body: String,
    },
    /// The launch's answer could not be read.
    #[error("launch {url}: unreadable answer: {source}")]
    Answer {
        /// The launch URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The launch's answer names no job.
    #[error("launch {url}: answer has no job id")]
    NoJobId {
        /// The launch URL.
        url: String,
    },
    /// The job did not finish in time.
    #[error("job {job} not finished after {secs}s")]
    NotFinished {
        /// The job id.
        job: u64,
        /// The time allowed.
        secs: u64,
    },
}

#[derive(Deserialize)]
struct Job {
    status: String,
}

impl Awx {
    /// Reads the token file and builds the HTTP client.
    pub fn new(cfg: AwxConfig) -> Result<Self, AwxError> {
        let token = std::fs::read_to_string(&cfg.token_file)
            .map_err(|source| AwxError::Token {
                path: cfg.token_file.clone(),
                source,
            })?
            .trim()
            .to_owned();
        if token.is_empty() {
            return Err(AwxError::EmptyToken {
                path: cfg.token_file.clone(),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(cfg.request_timeout_ms))
            .build()
            .map_err(AwxError::Client)?;
        Ok(Self { cfg, token, client })
    }

    fn base(&self) -> &str {
        self.cfg.url.trim_end_matches('/')
    }

    async fn launch(&self, request: &RunRequest) -> Result<u64, AwxError> {
        let url = format!(
            "{}/api/v2/job_templates/{}/launch/",
            self.base(),
            self.cfg.job_template_id
        );
        let mut body = serde_json::json!({ "extra_vars": extra_vars(&request.actions) });
        if let Some(limit) = &self.cfg.limit {
            body["limit"] = limit.clone().into();
        }
        let mut attempt = 1;
        let response = loop {
            match self
                .client
                .post(&url)
                .bearer_auth(&self.token)
                .json(&body)
                .send()
                .await
            {
                Ok(r) => break r,
                Err(e) if e.is_connect() && attempt < self.cfg.launch_attempts => {
                    tracing::warn!(attempt, error = %e, "AWX launch: cannot connect, retrying");
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(source) => return Err(AwxError::Launch { url, source }),
            }
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(AwxError::Refused {
                url,
                status,
                body: text.chars().take(300).collect(),
            });
        }
        let launched: Launched = response.json().await.map_err(|source| AwxError::Answer {
            url: url.clone(),
            source,
        })?;
        launched
            .job
            .or(launched.id)
            .ok_or(AwxError::NoJobId { url })
    }

    async fn wait(&self, job: u64, started: Instant) -> Result<String, AwxError> {
        let url = format!("{}/api/v2/jobs/{job}/", self.base());
        let deadline = started + Duration::from_secs(self.cfg.timeout_secs);
        loop {
            // Polling is a GET: retrying it is harmless.
            match self.client.get(&url).bearer_auth(&self.token).send().await {
                Ok(r) if r.status().is_success() => match r.json::<Job>().await {
                    Ok(j) if FINAL_STATES.contains(&j.status.as_str()) => return Ok(j.status),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(job, error = %e, "AWX poll: unreadable answer"),
                },
                Ok(r) => tracing::warn!(job, status = %r.status(), "AWX poll failed"),
                Err(e) => tracing::warn!(job, error = %e, "AWX poll failed"),
            }
            if Instant::now() >= deadline {
                return Err(AwxError::NotFinished {
                    job,
                    secs: self.cfg.timeout_secs,
                });
            }
            tokio::time::sleep(Duration::from_millis(self.cfg.poll_interval_ms)).await;
        }
    }
}

impl Executor for Awx {
    fn name(&self) -> &'static str {
        "awx"
    }

    fn run<'a>(&'a self, request: &'a RunRequest) -> RunFuture<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let elapsed = || i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
            let job = match self.launch(request).await {
                Ok(job) => job,
                Err(error) => {
                    return RunResult {
                        status: RunStatus::Error,
                        rc: None,
                        duration_ms: elapsed(),
                        detail: error.to_string(),
                        ..RunResult::default()
                    }
                }
            };
            tracing::info!(run = request.run_id, job, "AWX job launched");
            match self.wait(job, started).await {
                Ok(status) => RunResult {
                    status: RunStatus::from(status.as_str()),
                    rc: None,
                    duration_ms: elapsed(),
                    detail: format!("AWX job {job}"),
                    ..RunResult::default()
                },
                Err(error) => RunResult {
                    status: RunStatus::Timeout,
                    rc: None,
                    duration_ms: elapsed(),
                    detail: error.to_string(),
                    ..RunResult::default()
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    //! A small HTTP server playing AWX's documented launch/poll contract (AWX itself cannot
    //! run on the build machines).
    use super::*;
    use crate::model::{Action, AlertStatus, DesiredState, Reason};
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct FakeAwx {
        launches: AtomicUsize,
        polls: AtomicUsize,
        final_status: Mutex<String>,
        last_body: Mutex<Option<serde_json::Value>>,
        launch_delay_ms: u64,
    }

    async fn launch(
        State(s): State<Arc<FakeAwx>>,
        UrlPath(id): UrlPath<u64>,
        headers: HeaderMap,
        Json(body): Json<serde_json::Value>,
    ) -> (StatusCode, Json<serde_json::Value>) {
        s.launches.fetch_add(1, Ordering::SeqCst);
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer awx-token") {
            return (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"detail": "no"})),
            );
        }
        if id != 42 {
            return (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({"detail": "Not found."})),
            );
        }
        tokio::time::sleep(Duration::from_millis(s.launch_delay_ms)).await;
        *s.last_body.lock().unwrap() = Some(body);
        (
            StatusCode::CREATED,
            Json(serde_json::json!({"job": 900, "id": 900, "status": "pending"})),
        )
    }

    async fn job(
        State(s): State<Arc<FakeAwx>>,
        UrlPath(id): UrlPath<u64>,
    ) -> (StatusCode, Json<serde_json::Value>) {
        assert_eq!(id, 900);
        let n = s.polls.fetch_add(1, Ordering::SeqCst);
        let status = match n {
            0 => "pending".to_owned(),
            1 => "running".to_owned(),
            _ => s.final_status.lock().unwrap().clone(),
        };
        (
            StatusCode::OK,
            Json(serde_json::json!({"id": 900, "status": status})),
        )
    }

    async fn serve(state: Arc<FakeAwx>, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/api/v2/job_templates/{id}/launch/", post(launch))
            .route("/api/v2/jobs/{id}/", get(job))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }

    fn awx(dir: &std::path::Path, port: u16, template: u64, request_timeout_ms: u64) -> Awx {
        std::fs::write(dir.join("token"), "awx-token\n").unwrap();
        Awx::new(AwxConfig {
            url: format!("http://127.0.0.1:{port}/"),
            job_template_id: template,
            token_file: dir.join("token"),
            limit: Some("lbs".into()),
            poll_interval_ms: 10,
            timeout_secs: 10,
            launch_attempts: 5,
            request_timeout_ms,
        })
        .unwrap()
    }

    fn request() -> RunRequest {
        RunRequest {
            run_id: 1,
            fleet: "default".into(),
            actions: vec![Action {
                server: Some("s1".into()),
                address: None,
                backend: None,
                state: DesiredState::Disabled,
                weight: None,
                reason: Reason {
                    alert: "A".into(),
                    fingerprint: "01".into(),
                    status: AlertStatus::Firing,
                },
            }],
        }
    }

    fn fake(final_status: &str, launch_delay_ms: u64) -> Arc<FakeAwx> {
        Arc::new(FakeAwx {
            final_status: Mutex::new(final_status.into()),
            launch_delay_ms,
            ..FakeAwx::default()
        })
    }

    #[tokio::test]
    async fn launches_with_extra_vars_and_polls_to_success() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = fake("successful", 0);
        serve(state.clone(), listener).await;
        let dir = tempfile::tempdir().unwrap();
        let result = awx(dir.path(), port, 42, 5_000).run(&request()).await;
        assert_eq!(result.status, "successful", "{result:?}");
        assert_eq!(state.launches.load(Ordering::SeqCst), 1);
        assert!(state.polls.load(Ordering::SeqCst) >= 3);
        let body = state.last_body.lock().unwrap().clone().unwrap();
        assert_eq!(
            body["extra_vars"]["autoheal_actions"][0]["state"],
            "disabled"
        );
        assert_eq!(body["limit"], "lbs");
    }

    #[tokio::test]
    async fn failed_job_is_reported() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        serve(fake("failed", 0), listener).await;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            awx(dir.path(), port, 42, 5_000)
                .run(&request())
                .await
                .status,
            "failed"
        );
    }

    #[tokio::test]
    async fn http_error_on_launch_is_an_error_result() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = fake("successful", 0);
        serve(state.clone(), listener).await;
        let dir = tempfile::tempdir().unwrap();
        let result = awx(dir.path(), port, 7, 5_000).run(&request()).await;
        assert_eq!(result.status, "error");
        assert!(result.detail.contains("404"), "{}", result.detail);
        assert_eq!(
            state.launches.load(Ordering::SeqCst),
            1,
            "an HTTP error is not retried"
        );
    }

    #[tokio::test]
    async fn refused_connection_is_retried_until_awx_is_up() {
        // Reserve a port, free it, and only start listening after the first attempt failed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let state = fake("successful", 0);
        let starter = {
            let state = state.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap();
                serve(state, listener).await;
            })
        };
        let dir = tempfile::tempdir().unwrap();
        let result = awx(dir.path(), port, 42, 5_000).run(&request()).await;
        starter.await.unwrap();
        assert_eq!(result.status, "successful", "{result:?}");
        assert_eq!(state.launches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn timeout_after_sending_is_not_retried() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = fake("successful", 2_000);
        serve(state.clone(), listener).await;
        let dir = tempfile::tempdir().unwrap();
        let result = awx(dir.path(), port, 42, 200).run(&request()).await;
        assert_eq!(result.status, "error");
        assert!(result.detail.contains("not retried"), "{}", result.detail);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            state.launches.load(Ordering::SeqCst),
            1,
            "a launch that may have reached AWX must not be repeated"
        );
    }
}

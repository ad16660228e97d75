//! The HTTP shell: the router (admission endpoints, health, readiness, metrics) and the TLS
//! accept loop with header-read and request timeouts, a body limit and graceful drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kube::core::DynamicObject;
use kube::core::admission::AdmissionRequest;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::cluster::{Cluster, failure_message};
use crate::conversion;
use crate::decision::{Decision, Denial, Needed, Verdict};
use crate::metrics::{Metrics, PathLabels, RequestLabels};
use crate::review;
use crate::snapshot::{Fetched, Snapshot, WithFetched};

/// Path of pod admission.
pub const POD_PATH: &str = "/mutate-v1-pod";
/// Path of workload admission.
pub const WORKLOAD_PATH: &str = "/mutate-workloads";
/// Path of KeptnTaskDefinition validation.
pub const TASK_DEFINITION_PATH: &str = "/validate-keptntaskdefinition";

/// Most direct GETs one review may cost: namespace, ReplicaSet, parent (A5; in practice only
/// the ReplicaSet of a brand-new rollout is ever missing).
const MAX_FETCHES: usize = 3;

/// Everything a request handler needs.
pub struct App {
    /// The caches.
    pub snapshot: Arc<dyn Snapshot + Send + Sync>,
    /// The API for fallback reads and writes.
    pub cluster: Arc<dyn Cluster>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Readiness: certificate loaded and the core caches synced.
    pub ready: Arc<dyn Fn() -> bool + Send + Sync>,
}

#[derive(Clone, Copy)]
enum Endpoint {
    Pod,
    Workload,
    TaskDefinition,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Pod => POD_PATH,
            Endpoint::Workload => WORKLOAD_PATH,
            Endpoint::TaskDefinition => TASK_DEFINITION_PATH,
        }
    }
}

impl App {
    /// Admits one review body; the full HTTP answer.
    async fn admit(&self, endpoint: Endpoint, body: &[u8]) -> Response {
        let started = Instant::now();
        let (decision, response) = match review::parse(body) {
            Err(err) => (
                "invalid",
                (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    err.to_string(),
                )
                    .into_response(),
            ),
            Ok(request) => {
                let span = tracing::debug_span!(
                    "admit",
                    path = endpoint.path(),
                    uid = %request.uid,
                    namespace = request.namespace.as_deref().unwrap_or_default(),
                    name = %request.name,
                );
                let verdict =
                    tracing::Instrument::instrument(self.decide(endpoint, &request), span).await;
                let label = verdict.label();
                if let Verdict::Deny(denial) = &verdict {
                    tracing::info!(
                        uid = %request.uid,
                        namespace = request.namespace.as_deref().unwrap_or_default(),
                        name = %request.name,
                        reason = %denial.message,
                        "denied"
                    );
                }
                let body = review::to_body(review::respond(&request, verdict));
                (
                    label,
                    ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
                )
            }
        };
        let path = endpoint.path();
        self.metrics
            .requests
            .get_or_create(&RequestLabels { path, decision })
            .inc();
        self.metrics
            .duration
            .get_or_create(&PathLabels { path })
            .observe(started.elapsed().as_secs_f64());
        response
    }

    /// Decides (fetching what the caches lack, A5), then writes unless dry run (A6).
    async fn decide(
        &self,
        endpoint: Endpoint,
        request: &AdmissionRequest<DynamicObject>,
    ) -> Verdict {
        let decision = match endpoint {
            Endpoint::TaskDefinition => {
                return crate::taskdefinition::validate(request);
            }
            Endpoint::Pod => {
                self.decide_with_fetches(request, |r, s| crate::pods::admit(r, s))
                    .await
            }
            Endpoint::Workload => {
                self.decide_with_fetches(request, |r, s| crate::workloads::admit(r, s))
                    .await
            }
        };
        let decision = match decision {
            Ok(decision) => decision,
            Err(denial) => return Verdict::Deny(denial),
        };
        if request.dry_run {
            return decision.verdict;
        }
        for write in &decision.writes {
            if let Err(err) = self.cluster.write(write).await {
                self.cluster.report_failure(write, &err);
                tracing::warn!(uid = %request.uid, error = %err, "write failed; rejecting");
                return Verdict::bad_request(failure_message(write, &err));
            }
        }
        decision.verdict
    }

    async fn decide_with_fetches(
        &self,
        request: &AdmissionRequest<DynamicObject>,
        decide: fn(&AdmissionRequest<DynamicObject>, &dyn Snapshot) -> Result<Decision, Needed>,
    ) -> Result<Decision, Denial> {
        let mut fetched = Fetched::default();
        for _ in 0..=MAX_FETCHES {
            let snapshot = WithFetched {
                base: &*self.snapshot,
                fetched: &fetched,
            };
            let needed = match decide(request, &snapshot) {
                Ok(decision) => return Ok(decision),
                Err(needed) => needed,
            };
            if let Err(err) = self.cluster.fetch(&needed, &mut fetched).await {
                return Err(Denial {
                    code: 500,
                    reason: "InternalError".into(),
                    message: format!("cannot read {needed:?}: {err}"),
                    details: None,
                });
            }
        }
        Err(Denial {
            code: 500,
            reason: "InternalError".into(),
            message: "too many objects missing from the caches".into(),
            details: None,
        })
    }
}

async fn mutate_pod(State(app): State<Arc<App>>, body: Bytes) -> Response {
    app.admit(Endpoint::Pod, &body).await
}

async fn mutate_workload(State(app): State<Arc<App>>, body: Bytes) -> Response {
    app.admit(Endpoint::Workload, &body).await
}

async fn validate_task_definition(State(app): State<Arc<App>>, body: Bytes) -> Response {
    app.admit(Endpoint::TaskDefinition, &body).await
}

/// CRD conversion (A24): answered without the caches, so it works before they sync.
async fn convert(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let started = Instant::now();
    let path = shared::crd::conversion::CONVERT_PATH;
    let (decision, response) = match conversion::parse(&body) {
        Err(err) => (
            "invalid",
            (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                err.to_string(),
            )
                .into_response(),
        ),
        Ok(request) => {
            let uid = request.uid.clone();
            let (outcome, review) = conversion::respond(request);
            if outcome == conversion::Outcome::Refused {
                let message = review
                    .response
                    .as_ref()
                    .map(|r| r.result.message.clone())
                    .unwrap_or_default();
                tracing::info!(%uid, reason = %message, "conversion refused");
            }
            match serde_json::to_vec(&review) {
                Ok(body) => (
                    outcome.label(),
                    ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
                ),
                Err(e) => (
                    "invalid",
                    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
                ),
            }
        }
    };
    app.metrics
        .requests
        .get_or_create(&RequestLabels { path, decision })
        .inc();
    app.metrics
        .duration
        .get_or_create(&PathLabels { path })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if (app.ready)() {
        "ok".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: certificate or caches not loaded",
        )
            .into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted body.
    pub body_bytes: usize,
    /// Time allowed to send the request headers (HTTP/1.1) and the TLS handshake.
    pub header_read: Duration,
    /// Time allowed for a whole request, body included.
    pub request: Duration,
    /// Time allowed for in-flight requests after SIGTERM.
    pub drain: Duration,
}

/// The router with all endpoints, the body limit and the request timeout.
pub fn router(app: Arc<App>, limits: Limits) -> Router {
    Router::new()
        .route(POD_PATH, post(mutate_pod))
        .route(WORKLOAD_PATH, post(mutate_workload))
        .route(TASK_DEFINITION_PATH, post(validate_task_definition))
        .route(shared::crd::conversion::CONVERT_PATH, post(convert))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request,
        ))
        .with_state(app)
}

/// Serves `router` over TLS on `listener` until `shutdown` completes, then stops accepting and
/// lets open connections finish their requests for up to `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(limits.header_read, acceptor.accept(stream)).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .into_owned();
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("draining open connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(limits.drain) => tracing::warn!("drain timed out; closing"),
    }
}

//! The admin HTTP server of a controller binary: `/healthz` (liveness, no dependencies),
//! `/readyz` (caches synced), `/metrics` (Prometheus text from the binary's registry); and a
//! metrics-only server for ports that Keptn's scrape configs expect.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// Renders the binary's metrics as OpenMetrics text.
pub type Encode = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    encode: Encode,
    ready: Arc<AtomicBool>,
}

/// The admin endpoints, to serve on their own listener or to extend with more routes.
pub fn router(encode: Encode, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AdminState { encode, ready })
}

/// Serves the admin endpoints until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    encode: Encode,
    ready: Arc<AtomicBool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(encode, ready)).await
}

/// Serves `/metrics` alone until the process ends.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    encode: Encode,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(|State(encode): State<Encode>| async move { openmetrics(encode()) }),
    );
    axum::serve(listener, app.with_state(encode)).await
}

/// An OpenMetrics text response.
pub fn openmetrics(body: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, OPENMETRICS)], body)
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds a listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn metrics_text(State(s): State<AdminState>) -> impl IntoResponse {
    openmetrics((s.encode)())
}

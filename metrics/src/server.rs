//! The HTTP server on Keptn's metrics port (9999): `/api/v1/metrics/{namespace}/{metric}`, the
//! KeptnMetric's value as JSON (what KEDA's metrics-api scaler reads, `valueLocation: value`),
//! next to the admin endpoints (`/healthz`, `/readyz`, `/metrics`).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::{Api, Client};
use operator::admin::{self, Encode};
use operator::api::timed;
use serde_json::json;
use shared::crd::KeptnMetric;

/// Every route of the server.
pub fn router(client: Client, encode: Encode, ready: Arc<AtomicBool>) -> Router {
    let values = Router::new()
        .route("/api/v1/metrics/{namespace}/{metric}", get(value))
        .with_state(client);
    admin::router(encode, ready).merge(values)
}

/// Read from the API server, not a cache: every replica answers, the standbys too.
async fn value(
    State(client): State<Client>,
    Path((namespace, metric)): Path<(String, String)>,
) -> Response {
    let api: Api<KeptnMetric> = Api::namespaced(client, &namespace);
    match timed(api.get_opt(&metric)).await {
        Ok(Some(m)) => Json(json!({
            "namespace": namespace,
            "metric": metric,
            "value": m.status.map(|s| s.value).unwrap_or_default(),
        }))
        .into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "namespace": namespace,
                "metric": metric,
                "error": format!("KeptnMetric {namespace}/{metric} not found"),
            })),
        )
            .into_response(),
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({
                "namespace": namespace,
                "metric": metric,
                "error": error.to_string(),
            })),
        )
            .into_response(),
    }
}

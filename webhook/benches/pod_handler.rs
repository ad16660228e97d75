//! Criterion benchmark of the pod admission handler on a realistic review: the defaulted pod of
//! an annotated Deployment's ReplicaSet, caches warm (KeptnWorkload and KeptnAppCreationRequest
//! already as desired, so no API call), once for the core alone and once through the router.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use tower::ServiceExt;
use webhook::cluster::Offline;
use webhook::decision::Write;
use webhook::metrics::Metrics;
use webhook::server::{self, App, Limits};
use webhook::snapshot::{MemorySnapshot, ParentKind};
use webhook::{fixtures, pods, review};

fn world() -> (MemorySnapshot, Vec<u8>) {
    let namespace = fixtures::ns("shop").enabled().build();
    let rs = fixtures::replica_set("shop", "web-7d4b9c8f6d")
        .uid("rs-uid-1")
        .owned_by("apps/v1", "Deployment", "web", "d-uid")
        .build();
    let parent = fixtures::meta()
        .annotated("keptn.sh/workload", "web")
        .annotated("keptn.sh/version", "1.4.2")
        .annotated("keptn.sh/pre-deployment-tasks", "check-db,notify")
        .build();
    let cold = MemorySnapshot::complete()
        .with_namespace(namespace)
        .with_replica_set(rs)
        .with_parent(ParentKind::Deployment, "shop", "web", parent);
    let pod = fixtures::pod("shop")
        .container("web", "ghcr.io/example/web:1.4.2")
        .env("LOG_LEVEL", "info")
        .container("envoy", "envoyproxy/envoy:v1.31.0")
        .owned_by("apps/v1", "ReplicaSet", "web-7d4b9c8f6d", "rs-uid-1")
        .labelled("app", "web")
        .build();
    let body = serde_json::to_vec(&fixtures::pod_review(&pod, false)).expect("body");
    // Warm the caches with what the first pod's admission writes.
    let request = review::parse(&body).expect("review");
    let first = pods::admit(&request, &cold).expect("decidable");
    let mut warm = cold;
    for write in first.writes {
        warm = match write {
            Write::CreateWorkload(w) => warm.with_workload(*w),
            Write::CreateAppCreationRequest(r) => warm.with_app_creation_request(*r),
            Write::UpdateWorkload(w) => warm.with_workload(*w),
        };
    }
    (warm, body)
}

fn bench(c: &mut Criterion) {
    let (warm, body) = world();
    let mut group = c.benchmark_group("pod_review");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("core_parse_decide_encode", |b| {
        b.iter(|| {
            let request = review::parse(&body).expect("review");
            let decision = pods::admit(&request, &warm).expect("decidable");
            assert!(decision.writes.is_empty(), "warm caches: no writes");
            review::to_body(review::respond(&request, decision.verdict))
        })
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let app = server::router(
        Arc::new(App {
            snapshot: Arc::new(warm),
            cluster: Arc::new(Offline),
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(|| true),
        }),
        Limits {
            body_bytes: 8 << 20,
            header_read: Duration::from_secs(5),
            request: Duration::from_secs(10),
            drain: Duration::from_secs(1),
        },
    );
    group.bench_function("router_oneshot", |b| {
        b.to_async(&runtime).iter(|| {
            let app = app.clone();
            let body = body.clone();
            async move {
                let response = app
                    .oneshot(
                        Request::post(server::POD_PATH)
                            .body(Body::from(body))
                            .expect("request"),
                    )
                    .await
                    .expect("response");
                assert!(response.status().is_success());
                response.into_body().collect().await.expect("body")
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

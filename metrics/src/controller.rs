//! The KeptnMetric controller: per KeptnMetric, every `fetchIntervalSeconds`, query its
//! KeptnMetricsProvider and write the status ([`crate::status`]). Errors land in `errMsg` and as
//! a Warning Event; the last good value stays with its `lastUpdated`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use operator::api::{ApiError, timed, write_status};
use shared::crd::{KeptnMetric, KeptnMetricsProvider};

use crate::observe::FetchMetrics;
use crate::prometheus::Prometheus;
use crate::query::RangeQuery;
use crate::status::{fetch_interval, next_fetch_in, next_status};

/// Provider types answered through the Prometheus HTTP API.
const PROMETHEUS_API: [&str; 3] = ["prometheus", "thanos", "cortex"];
/// Secret keys of a provider's basic-auth credentials.
const USER_KEY: &str = "user";
const PASSWORD_KEY: &str = "password";
/// Requeue after a failed reconcile (an API call of this controller failed).
const ERROR_RETRY: Duration = Duration::from_secs(10);
/// Buffer of the providers' shared watch stream.
const SHARED_BUFFER: usize = 256;

/// What a reconcile can fail with: only API calls; fetch failures are the metric's status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("object has no {0}")]
    MissingField(&'static str),
}

impl Error {
    /// Bounded metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Error::Api(ApiError::Conflict(_)) => "conflict",
            Error::Api(ApiError::Timeout(_)) => "timeout",
            Error::Api(_) => "kube",
            Error::MissingField(_) => "missing_field",
        }
    }
}

/// Shared state of the reconciler.
pub struct Context {
    pub client: Client,
    pub providers: Store<KeptnMetricsProvider>,
    pub prometheus: Prometheus,
    pub metrics: Arc<FetchMetrics>,
    pub recorder: Recorder,
}

/// Runs the controller until its streams end (they do not, normally); `ready` turns true once
/// the caches have their initial lists.
pub async fn run(
    client: Client,
    identity: String,
    prometheus: Prometheus,
    metrics: Arc<FetchMetrics>,
    ready: Arc<std::sync::atomic::AtomicBool>,
) {
    let (providers, provider_writer) = reflector::store_shared(SHARED_BUFFER);
    let provider_changes = provider_writer
        .subscribe()
        .map(|s| s.boxed())
        .unwrap_or_else(|| futures::stream::empty().boxed());
    let fill_providers = watcher(
        Api::<KeptnMetricsProvider>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect_shared(provider_writer)
    .for_each(|event| async move {
        if let Err(error) = event {
            tracing::warn!(%error, "KeptnMetricsProvider watch");
        }
    });

    let (metric_store, metric_writer) = reflector::store();
    // Status writes change no generation: progress comes from the fetch interval's requeue.
    let metric_changes = watcher(
        Api::<KeptnMetric>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(metric_writer)
    .applied_objects()
    .predicate_filter(predicates::generation, PredicateConfig::default());

    let ctx = Arc::new(Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "portcullis-metrics".into(),
                instance: Some(identity),
            },
        ),
        client,
        providers: providers.clone(),
        prometheus,
        metrics,
    });
    let by_provider = metric_store.clone();
    let controller = Controller::for_stream(metric_changes, metric_store.clone())
        .watches_shared_stream(provider_changes, move |p: Arc<KeptnMetricsProvider>| {
            let ns = p.namespace();
            let name = p.name_any();
            by_provider
                .state()
                .into_iter()
                .filter(|m| m.namespace() == ns && m.spec.provider.name == name)
                .map(|m| ObjectRef::from_obj(m.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "KeptnMetric reconcile loop");
            }
        });
    let readiness = async {
        let synced = futures::join!(
            metric_store.wait_until_ready(),
            providers.wait_until_ready()
        );
        if synced.0.is_ok() && synced.1.is_ok() {
            ready.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::info!("caches synced");
        }
        futures::future::pending::<()>().await;
    };
    tokio::select! {
        _ = controller => tracing::error!("KeptnMetric controller stopped"),
        _ = fill_providers => tracing::error!("KeptnMetricsProvider watch stopped"),
        _ = readiness => {}
    }
}

fn error_policy(metric: Arc<KeptnMetric>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.label());
    tracing::warn!(
        namespace = metric.namespace().unwrap_or_default(),
        name = %metric.name_any(),
        %error,
        "reconcile failed"
    );
    Action::requeue(ERROR_RETRY)
}

async fn reconcile(metric: Arc<KeptnMetric>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = metric
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let interval = fetch_interval(metric.spec.fetch_interval_seconds);
    let due = next_fetch_in(
        metric.status.as_ref(),
        metric.spec.fetch_interval_seconds,
        Timestamp::now(),
    );
    if !due.is_zero() && metric.status.as_ref().is_some_and(|s| s.err_msg.is_empty()) {
        return Ok(Action::requeue(due));
    }
    let (provider_type, outcome) = fetch(&ctx, &ns, &metric).await?;
    let status = next_status(
        metric.status.as_ref(),
        &metric.spec,
        outcome.clone(),
        Timestamp::now(),
    );
    let api: Api<KeptnMetric> = Api::namespaced(ctx.client.clone(), &ns);
    write_status(&api, metric.as_ref(), metric.status.as_ref(), &status).await?;
    if let Err(message) = outcome {
        tracing::info!(namespace = %ns, metric = %metric.name_any(), provider_type, %message, "fetch failed");
        let event = Event {
            type_: EventType::Warning,
            reason: "FetchFailed".into(),
            note: Some(message),
            action: "Fetch".into(),
            secondary: None,
        };
        if let Err(error) = ctx.recorder.publish(&event, &metric.object_ref(&())).await {
            tracing::warn!(%error, "could not publish event");
        }
    }
    Ok(Action::requeue(interval))
}

/// Queries the metric's provider: the provider type (a bounded label) and the outcome.
async fn fetch(
    ctx: &Context,
    ns: &str,
    metric: &KeptnMetric,
) -> Result<(&'static str, crate::status::Outcome), Error> {
    let provider_name = &metric.spec.provider.name;
    let Some(provider) = ctx.providers.get(&ObjectRef::new(provider_name).within(ns)) else {
        return Ok((
            "unknown",
            Err(format!(
                "KeptnMetricsProvider {ns}/{provider_name} not found"
            )),
        ));
    };
    let provider_type = provider.provider_type();
    let label = type_label(provider_type);
    if !PROMETHEUS_API.contains(&provider_type) {
        return Ok((
            label,
            Err(format!(
                "provider type {provider_type:?} of KeptnMetricsProvider {ns}/{provider_name} is not supported by Portcullis yet (supported: prometheus, thanos, cortex)"
            )),
        ));
    }
    let credentials = match credentials(ctx, ns, &provider).await? {
        Ok(c) => c,
        Err(message) => return Ok((label, Err(message))),
    };
    let range = match metric
        .spec
        .range
        .as_ref()
        .map(RangeQuery::from_spec)
        .transpose()
    {
        Ok(r) => r,
        Err(e) => return Ok((label, Err(e.to_string()))),
    };
    let started = Instant::now();
    let result = ctx
        .prometheus
        .fetch(
            &provider.spec.target_server,
            credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
            provider.spec.insecure_skip_tls_verify,
            &metric.spec.query,
            range.as_ref(),
            Timestamp::now(),
        )
        .await;
    ctx.metrics
        .fetched(label, started.elapsed(), result.is_ok());
    Ok((
        label,
        result.map(|f| (f.value, f.raw)).map_err(|e| e.to_string()),
    ))
}

/// The basic-auth credentials of `provider`, when it names a Secret: `Ok(Err(..))` when the
/// Secret or a key is missing (the metric's error), `Err` when the read itself failed.
async fn credentials(
    ctx: &Context,
    ns: &str,
    provider: &KeptnMetricsProvider,
) -> Result<Result<Option<(String, String)>, String>, Error> {
    let Some(secret_name) = provider
        .spec
        .secret_key_ref
        .as_ref()
        .map(|r| r.name.trim())
        .filter(|n| !n.is_empty())
    else {
        return Ok(Ok(None));
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret = match timed(secrets.get_opt(secret_name)).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Ok(Err(format!(
                "Secret {ns}/{secret_name} of KeptnMetricsProvider {} not found",
                provider.name_any()
            )));
        }
        Err(e) if e.is_status(403) => {
            return Ok(Err(format!(
                "not allowed to read Secret {ns}/{secret_name}: bind the portcullis-metrics-secrets ClusterRole in namespace {ns}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let data = secret.data.unwrap_or_default();
    let key = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .ok_or_else(|| format!("Secret {ns}/{secret_name} has no key {k:?}"))
    };
    Ok(match (key(USER_KEY), key(PASSWORD_KEY)) {
        (Ok(user), Ok(password)) => Ok(Some((user, password))),
        (Err(e), _) | (_, Err(e)) => Err(e),
    })
}

/// The provider type as a bounded metric label.
fn type_label(provider_type: &str) -> &'static str {
    match provider_type {
        "prometheus" => "prometheus",
        "thanos" => "thanos",
        "cortex" => "cortex",
        "datadog" => "datadog",
        "dynatrace" => "dynatrace",
        "dql" => "dql",
        "elastic" => "elastic",
        _ => "unknown",
    }
}

//! KeptnAppCreationRequest, KeptnApp, KeptnWorkload and KeptnConfig controllers (B §3.1, §3.2,
//! §3.8, §2.12).

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use shared::crd::{
    KeptnApp, KeptnAppContext, KeptnAppCreationRequest, KeptnAppStatus, KeptnAppVersion,
    KeptnConfig, KeptnWorkload, KeptnWorkloadStatus, KeptnWorkloadVersion,
};

use super::{Context, Start, drain, error_policy, instrumented, key, serve};
use crate::error::Error;
use crate::observability::Traces;
use lifecycle::config::RuntimeConfig;
use lifecycle::discovery::{
    Discovery, DiscoveryInput, MANAGED_BY, MANAGED_BY_KEPTN, plan_discovery,
};
use lifecycle::events::Subject;
use lifecycle::phase::supersede;
use lifecycle::versions::{
    WorkloadPlan, app_awaits_pods, plan_app, plan_workload, workload_version_name,
};
use operator::api::ApiError;
use operator::api::{create_if_absent, timed, write_status};

/// KeptnAppCreationRequests; woken by KeptnWorkloads of their app and by KeptnConfig changes
/// (the discovery window may have changed).
pub(super) async fn creation_requests(
    ctx: Arc<Context>,
    kacrs: impl Stream<Item = Arc<KeptnAppCreationRequest>> + Send + 'static,
    workloads: impl Stream<Item = Arc<KeptnWorkload>> + Send + 'static,
    config_changed: tokio::sync::watch::Receiver<()>,
) {
    let changes = futures::stream::unfold(config_changed, |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    });
    let controller = Controller::for_shared_stream(kacrs, ctx.caches.creation_requests.clone())
        .watches_shared_stream(workloads, |w: Arc<KeptnWorkload>| {
            w.namespace()
                .map(|ns| ObjectRef::<KeptnAppCreationRequest>::new(&w.spec.app).within(&ns))
        })
        .reconcile_all_on(changes);
    serve(
        "keptnappcreationrequest",
        controller,
        reconcile_creation_request,
        ctx,
    )
    .await;
}

async fn reconcile_creation_request(
    kacr: Arc<KeptnAppCreationRequest>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let ns = kacr
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = kacr.name_any();
    let app_name = kacr.spec.app_name.clone();
    let app = ctx.caches.apps.get(&key(&app_name, &ns));
    let workloads = ctx
        .caches
        .workloads
        .state_filter(|w| w.metadata.namespace.as_deref() == Some(&ns) && w.spec.app == app_name);
    let workload_refs: Vec<&KeptnWorkload> = workloads.iter().map(|w| w.as_ref()).collect();
    let annotations = kacr.annotations().clone();
    let decision = plan_discovery(&DiscoveryInput {
        app_name: &app_name,
        annotations: &annotations,
        created: kacr.metadata.creation_timestamp.as_ref().map(|t| t.0),
        app: app.as_deref(),
        workloads: &workload_refs,
        window: ctx.config().creation_request_timeout,
        now: Timestamp::now(),
    });
    let apps: Api<KeptnApp> = Api::namespaced(ctx.client.clone(), &ns);
    match decision {
        Discovery::Wait(left) => return Ok(Action::requeue(left)),
        Discovery::NoWorkloads => return Ok(Action::await_change()),
        Discovery::UserApp | Discovery::Unchanged => {}
        Discovery::Create { spec, annotations } => {
            let mut obj = KeptnApp::new(&app_name, spec);
            obj.metadata.namespace = Some(ns.clone());
            obj.metadata.labels =
                Some([(MANAGED_BY.to_owned(), MANAGED_BY_KEPTN.to_owned())].into());
            obj.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
            if !create_if_absent(&apps, &obj).await? {
                // Created meanwhile (by us before a restart, or by a user): decide again.
                return Ok(Action::requeue(Duration::from_millis(500)));
            }
            tracing::info!(namespace = %ns, app = %app_name, "created KeptnApp");
        }
        Discovery::Update(spec) => {
            let patch = serde_json::json!({ "spec": spec });
            timed(apps.patch(&app_name, &PatchParams::default(), &Patch::Merge(&patch))).await?;
        }
    }
    let kacrs: Api<KeptnAppCreationRequest> = Api::namespaced(ctx.client.clone(), &ns);
    if let Err(e) = timed(kacrs.delete(&name, &DeleteParams::default())).await {
        tracing::info!(error = %e, kacr = %name, "could not delete KeptnAppCreationRequest");
    }
    Ok(Action::await_change())
}

/// KeptnApps; woken by their KeptnAppVersions.
pub(super) async fn apps(
    ctx: Arc<Context>,
    apps: impl Stream<Item = Arc<KeptnApp>> + Send + 'static,
    kavs: impl Stream<Item = Arc<KeptnAppVersion>> + Send + 'static,
    workloads: impl Stream<Item = Arc<KeptnWorkload>> + Send + 'static,
) {
    let controller = Controller::for_shared_stream(apps, ctx.caches.apps.clone())
        .owns_shared_stream(kavs)
        // An app waiting for its workloads' pods is woken when a workload names its ReplicaSet.
        .watches_shared_stream(workloads, |wl: Arc<KeptnWorkload>| {
            let ns = wl.namespace()?;
            Some(ObjectRef::new(&wl.spec.app).within(&ns))
        });
    serve("keptnapp", controller, reconcile_app, ctx).await;
}

async fn reconcile_app(app: Arc<KeptnApp>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = app
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = app.name_any();
    let workloads = &ctx.caches.workloads;
    if app_awaits_pods(&app, &|wl| workloads.get(&key::<KeptnWorkload>(wl, &ns))) {
        tracing::debug!(namespace = %ns, app = %name, "waiting for the pods of the app's workloads");
        return Ok(Action::await_change());
    }
    let mut context = ctx
        .caches
        .contexts
        .get(&key(&name, &ns))
        .map(|c| c.spec.clone());
    let kav_cache = &ctx.caches.kav;
    let existing = |n: &str| {
        kav_cache.get(&key::<KeptnAppVersion>(n, &ns)).map(|k| {
            k.status
                .as_ref()
                .map(|s| s.status.clone())
                .unwrap_or_default()
        })
    };
    let mut plan = plan_app(&app, context.as_ref(), &existing);
    if plan.create.is_some() && context.is_none() {
        // A new version copies its context once and for good, and a context applied together
        // with the app may not have reached the cache yet: ask the API server before going
        // without one (A5's one fallback read, once per version).
        let api: Api<KeptnAppContext> = Api::namespaced(ctx.client.clone(), &ns);
        if let Some(fresh) = timed(api.get_opt(&name)).await? {
            context = Some(fresh.spec);
            plan = plan_app(&app, context.as_ref(), &existing);
        }
    }
    let subject = Subject {
        namespace: ns.clone(),
        name: name.clone(),
        version: app.spec.version.clone(),
    };
    let kav_api: Api<KeptnAppVersion> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(kav) = &plan.create
        && let Err(e) = create_if_absent(&kav_api, kav).await
    {
        let note = subject.warning(
            "CreateAppVersion",
            "Failed",
            "Create App Version",
            "could not create KeptnAppVersion",
        );
        ctx.publish(
            &ctx.observability.recorders.app,
            &note,
            app.object_ref(&()),
            lifecycle::events::app_annotations(&app),
        );
        return Err(e.into());
    }
    if let Some(version) = &plan.current_version {
        let apps: Api<KeptnApp> = Api::namespaced(ctx.client.clone(), &ns);
        let status = KeptnAppStatus {
            current_version: version.clone(),
        };
        write_status(&apps, app.as_ref(), app.status.as_ref(), &status).await?;
    }
    for old in &plan.deprecate {
        let Some(kav) = kav_cache.get(&key(old, &ns)) else {
            continue;
        };
        let mut status = kav.status.clone().unwrap_or_default();
        supersede(&mut status);
        if let Err(e) = write_status(&kav_api, kav.as_ref(), kav.status.as_ref(), &status).await {
            let note = subject.warning(
                "DeprecateAppVersion",
                "Failed",
                "Deprecate App Version",
                "could not deprecate KeptnAppVersion",
            );
            ctx.publish(
                &ctx.observability.recorders.app,
                &note,
                app.object_ref(&()),
                lifecycle::events::app_annotations(&app),
            );
            return Err(e.into());
        }
        tracing::info!(namespace = %ns, kav = %old, "deprecated superseded KeptnAppVersion");
    }
    Ok(Action::await_change())
}

/// KeptnWorkloads; woken by their KeptnWorkloadVersions.
pub(super) async fn workloads(
    ctx: Arc<Context>,
    workloads: impl Stream<Item = Arc<KeptnWorkload>> + Send + 'static,
    kwvs: impl Stream<Item = Arc<KeptnWorkloadVersion>> + Send + 'static,
) {
    let controller = Controller::for_shared_stream(workloads, ctx.caches.workloads.clone())
        .owns_shared_stream(kwvs);
    serve("keptnworkload", controller, reconcile_workload, ctx).await;
}

async fn reconcile_workload(wl: Arc<KeptnWorkload>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = wl
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let kwv_name = workload_version_name(&wl);
    let existing = ctx.caches.kwv.get(&key(&kwv_name, &ns));
    let api: Api<KeptnWorkloadVersion> = Api::namespaced(ctx.client.clone(), &ns);
    match plan_workload(&wl, existing.as_deref()) {
        WorkloadPlan::Create(kwv) => {
            if let Err(e) = create_if_absent(&api, kwv.as_ref()).await {
                let subject = Subject {
                    namespace: ns.clone(),
                    name: kwv_name.clone(),
                    version: wl.spec.version.clone(),
                };
                let note = subject.warning(
                    "CreateWorkloadVersion",
                    "Failed",
                    "Create Workload Version",
                    "could not create KeptnWorkloadVersion",
                );
                ctx.publish(
                    &ctx.observability.recorders.workload,
                    &note,
                    wl.object_ref(&()),
                    lifecycle::events::workload_annotations(&wl),
                );
                tracing::warn!(error = %e, kwv = %kwv_name, "could not create KeptnWorkloadVersion");
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
        }
        WorkloadPlan::UpdateSpec(spec) => {
            if let Some(current) = existing {
                let mut next = current.as_ref().clone();
                next.spec = *spec;
                match timed(api.replace(&kwv_name, &PostParams::default(), &next)).await {
                    Ok(_) => {}
                    Err(ApiError::Kube(kube::Error::Api(s))) if s.code == 409 => {
                        return Err(Error::Conflict(kwv_name));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        WorkloadPlan::AwaitPods => {
            tracing::debug!(namespace = %ns, workload = %wl.name_any(), "waiting for the first pod to name the workload's ReplicaSet");
            return Ok(Action::await_change());
        }
        WorkloadPlan::Nothing => {}
    }
    let current = wl
        .status
        .as_ref()
        .map(|s| s.current_version.as_str())
        .unwrap_or_default();
    if current != wl.spec.version {
        let workloads: Api<KeptnWorkload> = Api::namespaced(ctx.client.clone(), &ns);
        let status = KeptnWorkloadStatus {
            current_version: wl.spec.version.clone(),
        };
        write_status(&workloads, wl.as_ref(), wl.status.as_ref(), &status).await?;
    }
    Ok(Action::await_change())
}

/// KeptnConfigs in any namespace: the last one reconciled wins; every field is copied.
pub(super) async fn configs(ctx: Arc<Context>, changed: tokio::sync::watch::Sender<()>) {
    let api: Api<KeptnConfig> = Api::all(ctx.client.clone());
    let changed = Arc::new(changed);
    let controller = Controller::new(api, watcher::Config::default().any_semantic());
    let reconcile = move |cfg: Arc<KeptnConfig>, ctx: Arc<Context>| {
        let changed = changed.clone();
        async move {
            apply_config(&ctx.config, &ctx.observability.traces, &cfg);
            changed.send_replace(());
            Ok::<_, Error>(Action::await_change())
        }
    };
    // Reads no cache: a changed KeptnConfig applies at once, also while the caches sync.
    let stream = controller.run(
        instrumented("keptnconfig", reconcile, Start::Immediately),
        error_policy("keptnconfig"),
        ctx,
    );
    drain("keptnconfig", stream).await;
}

/// Copies a KeptnConfig into the runtime options.
pub fn apply_config(target: &std::sync::RwLock<RuntimeConfig>, traces: &Traces, cfg: &KeptnConfig) {
    tracing::info!("reconciling Keptn Config: {}", cfg.name_any());
    let (next, problem) = RuntimeConfig::from_spec(&cfg.spec);
    if let Some(problem) = problem {
        tracing::warn!(config = %cfg.name_any(), "{problem}");
    }
    traces.configure(&next.otel_collector_url);
    match target.write() {
        Ok(mut c) => *c = next,
        Err(poisoned) => *poisoned.into_inner() = next,
    }
}

//! Deletes old KeptnAppVersions and KeptnWorkloadVersions beyond `--retained-versions`
//! ([`crate::retention`] decides which). A pass runs shortly after versions change and every
//! [`PASS_INTERVAL`]; it reads the caches only and deletes with a uid precondition, so an object
//! re-created under the same name is never deleted. Their KeptnTasks and KeptnEvaluations (and
//! those tasks' Jobs) carry controller owner references (B §3.14) and go with them through the
//! garbage collector (background propagation).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::{Api, ResourceExt};
use shared::crd::{KeptnApp, KeptnAppVersion, KeptnState, KeptnWorkload, KeptnWorkloadVersion};
use shared::resolve::{kav_name, kwv_name};

use super::{Context, timed};
use crate::retention::{Version, to_delete};

/// Longest time between two passes when nothing changes.
const PASS_INTERVAL: Duration = Duration::from_secs(60);
/// Changes arriving together are handled by one pass.
const SETTLE: Duration = Duration::from_millis(500);

/// Runs retention passes for as long as the process lives; does nothing when disabled (0).
pub(super) async fn run(
    ctx: Arc<Context>,
    kav: impl Stream<Item = Arc<KeptnAppVersion>> + Send + 'static,
    kwv: impl Stream<Item = Arc<KeptnWorkloadVersion>> + Send + 'static,
) {
    let retained = ctx.settings.retained_versions;
    if retained == 0 {
        tracing::info!("retention of old versions disabled (--retained-versions 0)");
        return futures::future::pending().await;
    }
    let changed = Arc::new(tokio::sync::Notify::new());
    let watch = {
        let changed = changed.clone();
        futures::stream::select(kav.map(|_| ()), kwv.map(|_| ())).for_each(move |()| {
            changed.notify_one();
            futures::future::ready(())
        })
    };
    let passes = async {
        ctx.synced().await;
        loop {
            pass(&ctx, retained).await;
            tokio::select! {
                _ = changed.notified() => tokio::time::sleep(SETTLE).await,
                _ = tokio::time::sleep(PASS_INTERVAL) => {}
            }
        }
    };
    tokio::join!(watch, passes);
}

/// `<namespace>/<name>` of an app or workload.
fn group(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or_default())
}

/// Cached apps or workloads by their group.
fn by_group<K: ResourceExt>(objects: Vec<Arc<K>>) -> HashMap<String, Arc<K>> {
    objects
        .into_iter()
        .map(|o| (group(o.namespace().as_deref(), &o.name_any()), o))
        .collect()
}

/// The planner's view of one cached version object.
fn version(
    k: &impl ResourceExt,
    group: String,
    state: Option<&KeptnState>,
    current: bool,
) -> Version {
    Version {
        group,
        name: k.name_any(),
        uid: k.uid().unwrap_or_default(),
        created: k.creation_timestamp().map(|t| t.0),
        state: state.cloned().unwrap_or_default(),
        current,
    }
}

/// The workload versions of workloads in the cache, with their current flags.
fn workload_versions(ctx: &Context) -> Vec<Version> {
    let workloads: HashMap<String, Arc<KeptnWorkload>> = by_group(ctx.caches.workloads.state());
    ctx.caches
        .kwv
        .state()
        .into_iter()
        .filter_map(|k| {
            let group = group(k.namespace().as_deref(), &k.spec.workload_name);
            // A workload not (yet) in the cache: its current version is unknown, keep all.
            let workload = workloads.get(&group)?;
            let name = k.name_any();
            let wname = workload.name_any();
            let status_version = workload
                .status
                .as_ref()
                .map(|s| s.current_version.as_str())
                .unwrap_or_default();
            let current = name == kwv_name(&wname, &workload.spec.version)
                || (!status_version.is_empty() && name == kwv_name(&wname, status_version));
            Some(version(
                &*k,
                group,
                k.status.as_ref().map(|s| &s.status),
                current,
            ))
        })
        .collect()
}

/// The app versions of apps in the cache, with their current flags: the KAV the app's spec
/// (version and generation) names, and the newest KAV of `status.currentVersion`.
fn app_versions(ctx: &Context) -> Vec<Version> {
    let apps: HashMap<String, Arc<KeptnApp>> = by_group(ctx.caches.apps.state());
    let kavs = ctx.caches.kav.state();
    let mut newest_of_current: HashMap<String, (Option<jiff::Timestamp>, String)> = HashMap::new();
    for k in &kavs {
        let group = group(k.namespace().as_deref(), &k.spec.app_name);
        let Some(app) = apps.get(&group) else {
            continue;
        };
        let status_version = app
            .status
            .as_ref()
            .map(|s| s.current_version.as_str())
            .unwrap_or_default();
        if !status_version.is_empty() && k.spec.app.version == status_version {
            let candidate = (k.creation_timestamp().map(|t| t.0), k.name_any());
            let entry = newest_of_current.entry(group).or_insert(candidate.clone());
            if candidate > *entry {
                *entry = candidate;
            }
        }
    }
    kavs.into_iter()
        .filter_map(|k| {
            let group = group(k.namespace().as_deref(), &k.spec.app_name);
            let app = apps.get(&group)?;
            let name = k.name_any();
            let named = kav_name(
                &app.name_any(),
                &app.spec.version,
                app.metadata.generation.unwrap_or(1),
            );
            let current = name == named
                || newest_of_current
                    .get(&group)
                    .is_some_and(|(_, n)| *n == name);
            Some(version(
                &*k,
                group,
                k.status.as_ref().map(|s| &s.status),
                current,
            ))
        })
        .collect()
}

/// One pass over both kinds.
async fn pass(ctx: &Context, retained: usize) {
    let kwvs = workload_versions(ctx);
    for v in to_delete(&kwvs, retained) {
        delete::<KeptnWorkloadVersion>(ctx, "KeptnWorkloadVersion", v).await;
    }
    let kavs = app_versions(ctx);
    for v in to_delete(&kavs, retained) {
        delete::<KeptnAppVersion>(ctx, "KeptnAppVersion", v).await;
    }
}

/// Deletes one version if it is still the object the decision was made on (uid precondition);
/// gone already (404) or replaced (409) is fine.
async fn delete<K>(ctx: &Context, kind: &'static str, v: &Version)
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let Some((namespace, _)) = v.group.split_once('/') else {
        return;
    };
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: Some(v.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match timed(api.delete(&v.name, &params)).await {
        Ok(_) => tracing::info!(
            kind,
            namespace,
            name = %v.name,
            uid = %v.uid,
            state = ?v.state,
            "deleted old version (retention)"
        ),
        Err(super::Error::Kube(kube::Error::Api(s))) if s.code == 404 || s.code == 409 => {
            tracing::debug!(kind, namespace, name = %v.name, code = s.code, "old version already gone or replaced");
        }
        Err(error) => tracing::warn!(
            kind,
            namespace,
            name = %v.name,
            %error,
            "could not delete old version (retention)"
        ),
    }
}

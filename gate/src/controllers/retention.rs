//! Deletes old KeptnAppVersions and KeptnWorkloadVersions beyond `--retained-versions`
//! ([`lifecycle::retention`] decides which). A pass runs shortly after versions change and every
//! [`PASS_INTERVAL`]; it plans on the caches, re-reads each app or workload that has versions to
//! lose right before deleting them (a rollback meanwhile cancels them), and deletes with a uid
//! precondition, so an object re-created under the same name is never deleted. Their KeptnTasks
//! and KeptnEvaluations (and those tasks' Jobs) carry controller owner references (B §3.14) and
//! go with them through the garbage collector (background propagation).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::{Api, ResourceExt};
use shared::crd::{KeptnApp, KeptnAppVersion, KeptnState, KeptnWorkload, KeptnWorkloadVersion};
use shared::resolve::{kav_name, kwv_name};

use super::Context;
use lifecycle::retention::{Owner, Version, still_doomed, to_delete};
use operator::api::timed;

/// Longest time between two passes when nothing changes.
const PASS_INTERVAL: Duration = Duration::from_secs(60);
/// Changes arriving together are handled by one pass.
const SETTLE: Duration = Duration::from_millis(500);

/// Retention passes for as long as the process lives; finishes at once when disabled (0).
///
/// The shared caches hold back every subscriber's unread events and stall once one of them
/// falls a buffer behind, so the KAV and KWV subscriptions are taken here, only when enabled,
/// and are read for as long as they exist. Call before the caches start (as for every
/// subscription).
pub(super) fn run<A, W>(
    ctx: Arc<Context>,
    subscribe_kav: impl FnOnce() -> A,
    subscribe_kwv: impl FnOnce() -> W,
) -> BoxFuture<'static, ()>
where
    A: Stream<Item = Arc<KeptnAppVersion>> + Send + 'static,
    W: Stream<Item = Arc<KeptnWorkloadVersion>> + Send + 'static,
{
    let retained = ctx.settings.retained_versions;
    if retained == 0 {
        tracing::info!("retention of old versions disabled (--retained-versions 0)");
        return futures::future::ready(()).boxed();
    }
    let changes = futures::stream::select(subscribe_kav().map(|_| ()), subscribe_kwv().map(|_| ()));
    passes(ctx, retained, changes).boxed()
}

/// A pass once the caches are synced, then after each settled burst of changes or every
/// [`PASS_INTERVAL`]; `changes` is drained all along, also while a pass runs.
async fn passes(ctx: Arc<Context>, retained: usize, changes: impl Stream<Item = ()> + Send) {
    let changed = Arc::new(tokio::sync::Notify::new());
    let watch = {
        let changed = changed.clone();
        changes.for_each(move |()| {
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

/// A workload's current versions: the KWV of its spec version and of `status.currentVersion`.
fn workload_owner(workload: &KeptnWorkload) -> Owner {
    let name = workload.name_any();
    let mut current = std::collections::BTreeSet::from([kwv_name(&name, &workload.spec.version)]);
    if let Some(status) = workload
        .status
        .as_ref()
        .filter(|s| !s.current_version.is_empty())
    {
        current.insert(kwv_name(&name, &status.current_version));
    }
    Owner {
        uid: workload.uid().unwrap_or_default(),
        current,
    }
}

/// An app's current versions: the KAV its spec (version and generation) names, and the newest
/// of its KAVs (`kavs`, the cached KAVs of this app) of `status.currentVersion`.
fn app_owner(app: &KeptnApp, kavs: &[Arc<KeptnAppVersion>]) -> Owner {
    let name = app.name_any();
    let mut current = std::collections::BTreeSet::from([kav_name(
        &name,
        &app.spec.version,
        app.metadata.generation.unwrap_or(1),
    )]);
    let status_version = app
        .status
        .as_ref()
        .map(|s| s.current_version.as_str())
        .unwrap_or_default();
    let newest = kavs
        .iter()
        .filter(|k| !status_version.is_empty() && k.spec.app.version == status_version)
        .map(|k| (k.creation_timestamp().map(|t| t.0), k.name_any()))
        .max();
    if let Some((_, newest)) = newest {
        current.insert(newest);
    }
    Owner {
        uid: app.uid().unwrap_or_default(),
        current,
    }
}

/// The versions of one kind, and the owner of each group as planned (groups whose owner is
/// not in the cache are left out: their current version is unknown, so all are kept).
struct Plan {
    versions: Vec<Version>,
    owners: HashMap<String, Owner>,
}

/// The workload versions of workloads in the cache, with their current flags.
fn workload_versions(ctx: &Context) -> Plan {
    let workloads: HashMap<String, Arc<KeptnWorkload>> = by_group(ctx.caches.workloads.state());
    let owners: HashMap<String, Owner> = workloads
        .iter()
        .map(|(g, w)| (g.clone(), workload_owner(w)))
        .collect();
    let versions = ctx
        .caches
        .kwv
        .state()
        .into_iter()
        .filter_map(|k| {
            let group = group(k.namespace().as_deref(), &k.spec.workload_name);
            let current = owners.get(&group)?.current.contains(&k.name_any());
            Some(version(
                &*k,
                group,
                k.status.as_ref().map(|s| &s.status),
                current,
            ))
        })
        .collect();
    Plan { versions, owners }
}

/// The cached KAVs by their app's group.
fn kavs_by_group(ctx: &Context) -> HashMap<String, Vec<Arc<KeptnAppVersion>>> {
    let mut out: HashMap<String, Vec<Arc<KeptnAppVersion>>> = HashMap::new();
    for k in ctx.caches.kav.state() {
        out.entry(group(k.namespace().as_deref(), &k.spec.app_name))
            .or_default()
            .push(k);
    }
    out
}

/// The app versions of apps in the cache, with their current flags.
fn app_versions(ctx: &Context, kavs: &HashMap<String, Vec<Arc<KeptnAppVersion>>>) -> Plan {
    let apps: HashMap<String, Arc<KeptnApp>> = by_group(ctx.caches.apps.state());
    let mut plan = Plan {
        versions: Vec::new(),
        owners: HashMap::new(),
    };
    for (group, app) in apps {
        let Some(of_app) = kavs.get(&group) else {
            continue;
        };
        let owner = app_owner(&app, of_app);
        plan.versions.extend(of_app.iter().map(|k| {
            version(
                &**k,
                group.clone(),
                k.status.as_ref().map(|s| &s.status),
                owner.current.contains(&k.name_any()),
            )
        }));
        plan.owners.insert(group, owner);
    }
    plan
}

/// The doomed versions by group, each group oldest first.
fn groups(doomed: Vec<&Version>) -> BTreeMap<&str, Vec<&Version>> {
    let mut out: BTreeMap<&str, Vec<&Version>> = BTreeMap::new();
    for v in doomed {
        out.entry(v.group.as_str()).or_default().push(v);
    }
    out
}

/// One pass over both kinds.
async fn pass(ctx: &Context, retained: usize) {
    let plan = workload_versions(ctx);
    for (group, doomed) in groups(to_delete(&plan.versions, retained)) {
        let Some(planned) = plan.owners.get(group) else {
            continue;
        };
        if owner_unchanged::<KeptnWorkload>(ctx, group, planned, &doomed, workload_owner).await {
            for v in doomed {
                delete::<KeptnWorkloadVersion>(ctx, "KeptnWorkloadVersion", v).await;
            }
        }
    }
    let kavs = kavs_by_group(ctx);
    let plan = app_versions(ctx, &kavs);
    for (group, doomed) in groups(to_delete(&plan.versions, retained)) {
        let Some(planned) = plan.owners.get(group) else {
            continue;
        };
        let of_app = kavs.get(group).map(Vec::as_slice).unwrap_or_default();
        let current_of = |app: &KeptnApp| app_owner(app, of_app);
        if owner_unchanged::<KeptnApp>(ctx, group, planned, &doomed, current_of).await {
            for v in doomed {
                delete::<KeptnAppVersion>(ctx, "KeptnAppVersion", v).await;
            }
        }
    }
}

/// Re-reads the app or workload of `group` from the API (not the cache) and tells whether the
/// planned deletions still stand ([`still_doomed`]).
async fn owner_unchanged<O>(
    ctx: &Context,
    group: &str,
    planned: &Owner,
    doomed: &[&Version],
    current_of: impl Fn(&O) -> Owner,
) -> bool
where
    O: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let Some((namespace, name)) = group.split_once('/') else {
        return false;
    };
    let api: Api<O> = Api::namespaced(ctx.client.clone(), namespace);
    let fresh = match timed(api.get_opt(name)).await {
        Ok(fresh) => fresh,
        Err(error) => {
            tracing::warn!(namespace, name, %error, "could not re-read owner; old versions kept this pass");
            return false;
        }
    };
    let fresh = fresh.as_ref().map(current_of);
    let stands = still_doomed(planned, fresh.as_ref(), doomed);
    if !stands {
        tracing::info!(
            namespace,
            name,
            "owner gone or changed since the cache was read; old versions kept this pass"
        );
    }
    stands
}

/// The delete request for one old version: only the object the decision was made on (uid
/// precondition), its tasks and evaluations collected in the background.
fn delete_params(uid: &str) -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    }
}

/// Deletes one version; gone already (404) or replaced (409) is fine.
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
    match timed(api.delete(&v.name, &delete_params(&v.uid))).await {
        Ok(_) => tracing::info!(
            kind,
            namespace,
            name = %v.name,
            uid = %v.uid,
            state = ?v.state,
            "deleted old version (retention)"
        ),
        Err(operator::api::ApiError::Kube(kube::Error::Api(s)))
            if s.code == 404 || s.code == 409 =>
        {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deletes_are_preconditioned_on_the_planned_uid() {
        let p = delete_params("uid-1");
        let body = serde_json::to_value(&p).expect("serializes");
        assert_eq!(body["preconditions"], json!({"uid": "uid-1"}));
        assert_eq!(body["propagationPolicy"], "Background");
        assert!(!p.dry_run);
    }

    fn workload(spec_version: &str, status_version: Option<&str>) -> KeptnWorkload {
        let mut w = json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkload",
            "metadata": {"name": "app-w", "namespace": "ns", "uid": "w-uid"},
            "spec": {"app": "app", "version": spec_version,
                     "resourceReference": {"uid": "x", "kind": "ReplicaSet", "name": "x"}}
        });
        if let Some(s) = status_version {
            w["status"] = json!({"currentVersion": s});
        }
        serde_json::from_value(w).expect("workload")
    }

    #[test]
    fn a_workload_rollback_makes_the_old_version_current_again() {
        let planned = workload_owner(&workload("2", Some("2")));
        assert_eq!(planned.uid, "w-uid");
        assert_eq!(Vec::from_iter(planned.current.clone()), ["app-w-2"]);
        let v1 = Version {
            group: "ns/app-w".into(),
            name: "app-w-1".into(),
            uid: "v1".into(),
            created: None,
            state: KeptnState::Succeeded,
            current: false,
        };
        // The webhook set the version back to 1 after the cache snapshot.
        let fresh = workload_owner(&workload("1", Some("2")));
        assert!(fresh.current.contains("app-w-1"));
        assert!(!still_doomed(&planned, Some(&fresh), &[&v1]));
        let same = workload_owner(&workload("2", Some("2")));
        assert!(still_doomed(&planned, Some(&same), &[&v1]));
    }

    #[test]
    fn an_app_makes_its_spec_kav_and_the_newest_of_its_status_version_current() {
        let app: KeptnApp = serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp",
            "metadata": {"name": "app", "namespace": "ns", "uid": "a-uid", "generation": 3},
            "spec": {"version": "2"},
            "status": {"currentVersion": "1"}
        }))
        .expect("app");
        let kav = |name: &str, version: &str, second: u32| -> Arc<KeptnAppVersion> {
            Arc::new(
                serde_json::from_value(json!({
                    "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppVersion",
                    "metadata": {"name": name, "namespace": "ns",
                                 "creationTimestamp": format!("2026-01-01T00:00:{second:02}Z")},
                    "spec": {"version": version, "appName": "app"}
                }))
                .expect("kav"),
            )
        };
        // Version 1 ran twice; the later run is current, not the later name.
        let kavs = [
            kav("app-1-zz", "1", 1),
            kav("app-1-aa", "1", 5),
            kav("app-2-x", "2", 9),
        ];
        let owner = app_owner(&app, &kavs);
        assert_eq!(owner.uid, "a-uid");
        let spec_kav = kav_name("app", "2", 3);
        assert_eq!(Vec::from_iter(owner.current), {
            let mut want = vec!["app-1-aa".to_string(), spec_kav];
            want.sort();
            want
        });
    }
}

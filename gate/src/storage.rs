//! Storage-version migration (A24): objects an earlier Keptn stored at an older version are
//! rewritten once as `v1`, then the CRD's `status.storedVersions` becomes `[v1]`, so that no
//! object in etcd depends on a version a later release may stop serving.
//!
//! Runs once per leadership term. Killed half-way, it starts over next time: `storedVersions`
//! is only narrowed after every object of the kind was rewritten.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use shared::crd::conversion::{GROUP, HUB};

/// Objects listed per page.
const PAGE: u32 = 500;
/// Attempts per kind before giving up until the next start.
const ATTEMPTS: u32 = 5;

/// Migrates every `lifecycle.keptn.sh` kind whose CRD still records an older stored version.
pub async fn migrate(client: Client) {
    for crd in shared::crd::all()
        .into_iter()
        .filter(|c| c.spec.group == GROUP)
    {
        let kind = crd.spec.names.kind.clone();
        for attempt in 1..=ATTEMPTS {
            match migrate_kind(&client, &crd).await {
                Ok(None) => break,
                Ok(Some(rewritten)) => {
                    tracing::info!(%kind, rewritten, "stored as v1; older stored versions dropped");
                    break;
                }
                Err(e) => {
                    tracing::warn!(%kind, attempt, error = %e, "storage migration failed");
                    tokio::time::sleep(Duration::from_secs(2 * u64::from(attempt))).await;
                }
            }
        }
    }
}

/// Rewrites every object of `crd`'s kind when its stored versions include another than `v1`;
/// how many were rewritten, or `None` when there was nothing to migrate.
async fn migrate_kind(
    client: &Client,
    crd: &CustomResourceDefinition,
) -> Result<Option<usize>, kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.name_any();
    let Some(installed) = crds.get_opt(&name).await? else {
        return Ok(None);
    };
    let stored = installed
        .status
        .as_ref()
        .and_then(|s| s.stored_versions.clone())
        .unwrap_or_default();
    let stores_v1 = installed
        .spec
        .versions
        .iter()
        .any(|v| v.name == HUB && v.storage);
    if !stores_v1 || stored.iter().all(|v| v == HUB) {
        return Ok(None);
    }
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, HUB, &crd.spec.names.kind),
        &crd.spec.names.plural,
    );
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let mut rewritten = 0;
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = all.list(&params).await?;
        for object in &page.items {
            let api: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                object.namespace().as_deref().unwrap_or_default(),
                &resource,
            );
            // An unchanged PUT still writes: the stored bytes are of the older version.
            match api
                .replace(&object.name_any(), &PostParams::default(), object)
                .await
            {
                Ok(_) => rewritten += 1,
                // Written (so stored as v1) or deleted since the list: nothing left to do.
                Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    crds.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"storedVersions": [HUB]}})),
    )
    .await?;
    Ok(Some(rewritten))
}

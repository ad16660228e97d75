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
/// Backoff between attempts at a kind: from the first to the longest.
const FIRST_RETRY: Duration = Duration::from_secs(2);
const LONGEST_RETRY: Duration = Duration::from_secs(60);

/// Migrates every `lifecycle.keptn.sh` kind whose CRD still records an older stored version,
/// in passes over the kinds not done yet, until all are; the caller aborts it when leadership
/// ends.
pub async fn migrate(client: Client) {
    let mut pending: Vec<CustomResourceDefinition> = shared::crd::all()
        .into_iter()
        .filter(|c| c.spec.group == GROUP)
        .collect();
    let mut wait = FIRST_RETRY;
    loop {
        let mut left = Vec::new();
        for crd in pending {
            let kind = crd.spec.names.kind.clone();
            match migrate_kind(&client, &crd).await {
                Ok(Outcome::NothingToDo) => {}
                Ok(Outcome::Migrated(rewritten)) => {
                    tracing::info!(%kind, rewritten, "stored as v1; older stored versions dropped");
                }
                // Until the webhook converts (not ready yet, caBundle not injected yet) every
                // read of an object stored at an older version fails: the kind waits for the
                // next pass.
                Ok(Outcome::Skipped(skipped)) => {
                    tracing::warn!(%kind, skipped, "objects not rewritten; stored versions kept");
                    left.push(crd);
                }
                Err(e) => {
                    tracing::warn!(%kind, error = %e, "storage migration failed");
                    left.push(crd);
                }
            }
        }
        if left.is_empty() {
            return;
        }
        pending = left;
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(LONGEST_RETRY);
    }
}

/// What one pass over a kind did.
enum Outcome {
    /// Its CRD records only v1 (or does not store v1 yet).
    NothingToDo,
    /// Every object rewritten, `storedVersions` narrowed.
    Migrated(usize),
    /// Some objects refused the rewrite; `storedVersions` left as it was.
    Skipped(usize),
}

/// Rewrites every object of `crd`'s kind when its stored versions include another than `v1`,
/// then narrows them to `v1`.
async fn migrate_kind(
    client: &Client,
    crd: &CustomResourceDefinition,
) -> Result<Outcome, kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.name_any();
    let Some(installed) = crds.get_opt(&name).await? else {
        return Ok(Outcome::NothingToDo);
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
        return Ok(Outcome::NothingToDo);
    }
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, HUB, &crd.spec.names.kind),
        &crd.spec.names.plural,
    );
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let (mut rewritten, mut skipped) = (0, 0);
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
                // This object stays at its old version for now; the others go on.
                Err(kube::Error::Api(e)) => {
                    tracing::warn!(
                        kind = %crd.spec.names.kind,
                        namespace = object.namespace().as_deref().unwrap_or_default(),
                        name = %object.name_any(),
                        error = %e.message,
                        "object not rewritten"
                    );
                    skipped += 1;
                }
                Err(e) => return Err(e),
            }
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    if skipped > 0 {
        return Ok(Outcome::Skipped(skipped));
    }
    // Guarded by the resourceVersion read above: a CRD changed meanwhile (say, put back to
    // storing an older version) is looked at again rather than narrowed blindly.
    crds.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({
            "metadata": {"resourceVersion": installed.metadata.resource_version},
            "status": {"storedVersions": [HUB]},
        })),
    )
    .await?;
    Ok(Outcome::Migrated(rewritten))
}

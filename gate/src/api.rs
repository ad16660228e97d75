//! The gate's writes to the API server: every call bounded by one timeout, creates that tolerate
//! an existing object, and the one status writer.

use std::future::Future;
use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::error::Error;

/// Every API call gives up after this long (STYLE: every write has a timeout).
pub const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs an API call with [`API_TIMEOUT`].
pub async fn timed<T>(call: impl Future<Output = Result<T, kube::Error>>) -> Result<T, Error> {
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(Error::Timeout(API_TIMEOUT)),
    }
}

/// `true` when created, `false` when it already existed (create-if-absent, A15).
pub async fn create_if_absent<K>(api: &Api<K>, obj: &K) -> Result<bool, Error>
where
    K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
{
    match timed(api.create(&PostParams::default(), obj)).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_status(409) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes `desired` as the status of `object` unless it is `current` already: a JSON merge
/// patch of the difference, guarded by the resourceVersion the decision was made from, so a
/// decision made on a stale object never overwrites a newer status ([`Error::Conflict`]).
pub async fn write_status<K, S>(
    api: &Api<K>,
    object: &K,
    current: Option<&S>,
    desired: &S,
) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(());
    }
    let name = object
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    let current = match current {
        Some(c) => serde_json::to_value(c)?,
        None => json!({}),
    };
    let patch = json!({
        "metadata": {"resourceVersion": object.meta().resource_version},
        "status": merge_diff(&current, &serde_json::to_value(desired)?),
    });
    match timed(api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_status(409) => Err(Error::Conflict(name)),
        Err(e) => Err(e),
    }
}

/// A merge patch that turns `current` into `desired`: keys only in `current` become `null`
/// (merge patches otherwise keep them), nested objects are diffed the same way.
pub fn merge_diff(current: &Value, desired: &Value) -> Value {
    match (current, desired) {
        (Value::Object(c), Value::Object(d)) => {
            let mut out = Map::new();
            for (k, dv) in d {
                let v = match c.get(k) {
                    Some(cv) => merge_diff(cv, dv),
                    None => dv.clone(),
                };
                out.insert(k.clone(), v);
            }
            for k in c.keys() {
                if !d.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(out)
        }
        _ => desired.clone(),
    }
}

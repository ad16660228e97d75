//! Writes to the API server: every call bounded by one timeout, creates that tolerate an
//! existing object, and the one status writer of every controller.

use std::future::Future;
use std::time::Duration;

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0} changed meanwhile; retrying with fresh state")]
    Conflict(String),
    #[error("object has no {0}")]
    MissingField(&'static str),
    #[error("API call timed out after {0:?}")]
    Timeout(Duration),
    #[error("invalid patch: {0}")]
    Patch(#[from] serde_json::Error),
}

impl ApiError {
    /// Whether the API server answered with HTTP status `code` (e.g. 409 for a conflict).
    pub fn is_status(&self, code: u16) -> bool {
        matches!(self, ApiError::Kube(kube::Error::Api(s)) if s.code == code)
    }
}

type Error = ApiError;

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge_diff;

    #[test]
    fn status_merge_patch_removes_what_the_decision_dropped() {
        let current = json!({
            "retryCount": 1,
            "message": "could not find KeptnTaskDefinition: hello",
            "evaluationStatus": {"gone": {"value": "1"}, "kept": {"value": "2", "message": "old"}},
        });
        let desired = json!({
            "retryCount": 2,
            "evaluationStatus": {"kept": {"value": "3"}},
        });
        assert_eq!(
            merge_diff(&current, &desired),
            json!({
                "retryCount": 2,
                "message": null,
                "evaluationStatus": {"gone": null, "kept": {"value": "3", "message": null}},
            })
        );
        // Applying it as a JSON merge patch gives exactly the desired status.
        let mut applied = current.clone();
        json_merge(&mut applied, &merge_diff(&current, &desired));
        assert_eq!(applied, desired);
    }

    /// RFC 7386.
    fn json_merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
        if let serde_json::Value::Object(p) = patch {
            if !target.is_object() {
                *target = json!({});
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        json_merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                    }
                }
            }
        } else {
            *target = patch.clone();
        }
    }
}

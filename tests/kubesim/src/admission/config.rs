//! Reading stored `admissionregistration.k8s.io/v1` webhook configurations, with the API's
//! defaults for absent fields.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::status::ApiError;

/// `failurePolicy`; absent means `Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FailurePolicy {
    Fail,
    Ignore,
}

/// One webhook of one configuration, in dispatch order.
#[derive(Debug, Clone)]
pub(super) struct Hook {
    pub configuration: String,
    pub index: usize,
    pub spec: WebhookSpec,
}

impl Hook {
    /// The identity a real server tracks reinvocation by.
    pub fn uid(&self) -> String {
        format!("{}/{}/{}", self.configuration, self.spec.name, self.index)
    }

    pub fn failure_policy(&self) -> FailurePolicy {
        match self.spec.failure_policy.as_deref() {
            Some("Ignore") => FailurePolicy::Ignore,
            _ => FailurePolicy::Fail,
        }
    }

    /// `timeoutSeconds`, default 10, within the 1–30 the API accepts.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.spec.timeout_seconds.unwrap_or(10).clamp(1, 30) as u64)
    }

    pub fn reinvoke_if_needed(&self) -> bool {
        self.spec.reinvocation_policy.as_deref() == Some("IfNeeded")
    }

    /// `matchPolicy`, default `Equivalent`.
    pub fn match_equivalent(&self) -> bool {
        self.spec.match_policy.as_deref() != Some("Exact")
    }
}

/// The fields of `MutatingWebhook` / `ValidatingWebhook` that admission uses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WebhookSpec {
    pub name: String,
    #[serde(default)]
    pub client_config: ClientConfig,
    #[serde(default, deserialize_with = "null_as_default")]
    pub rules: Vec<Rule>,
    pub failure_policy: Option<String>,
    pub match_policy: Option<String>,
    pub namespace_selector: Option<LabelSelector>,
    pub object_selector: Option<LabelSelector>,
    pub side_effects: Option<String>,
    pub timeout_seconds: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub admission_review_versions: Vec<String>,
    pub reinvocation_policy: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub match_conditions: Vec<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ClientConfig {
    pub url: Option<String>,
    pub service: Option<ServiceReference>,
    /// Base64 of PEM certificates, as `[]byte` is stored in JSON.
    pub ca_bundle: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct ServiceReference {
    pub namespace: String,
    pub name: String,
    pub path: Option<String>,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Rule {
    #[serde(default, deserialize_with = "null_as_default")]
    pub operations: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub api_groups: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub api_versions: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub resources: Vec<String>,
    /// `Cluster`, `Namespaced` or `*`; absent means `*`.
    pub scope: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LabelSelector {
    #[serde(default, deserialize_with = "null_as_default")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub match_expressions: Vec<Requirement>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct Requirement {
    pub key: String,
    pub operator: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub values: Vec<String>,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The webhooks of `configs` in the order a real server dispatches them: configurations sorted
/// by `metadata.name`, webhooks in list order within each.
pub(super) fn load_hooks(configs: &[Value], kind: &str) -> Result<Vec<Hook>, ApiError> {
    let mut named: Vec<(&str, &Value)> = configs
        .iter()
        .map(|c| {
            (
                c.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                c,
            )
        })
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let mut hooks = Vec::new();
    for (name, config) in named {
        let webhooks = match config.get("webhooks") {
            None | Some(Value::Null) => continue,
            Some(Value::Array(list)) => list,
            Some(_) => return Err(unreadable(kind, name, "webhooks: expected a list")),
        };
        for (index, webhook) in webhooks.iter().enumerate() {
            let spec = WebhookSpec::deserialize(webhook)
                .map_err(|e| unreadable(kind, name, &format!("webhooks[{index}]: {e}")))?;
            hooks.push(Hook {
                configuration: name.to_string(),
                index,
                spec,
            });
        }
    }
    Ok(hooks)
}

fn unreadable(kind: &str, name: &str, why: &str) -> ApiError {
    ApiError::internal(format!(
        "Internal error occurred: kubesim cannot read {kind} \"{name}\": {why}"
    ))
}

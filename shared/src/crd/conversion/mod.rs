//! The older `lifecycle.keptn.sh` versions Keptn's chart serves next to `v1`, and their
//! conversion through `v1`, the hub and the only stored version (A24).
//!
//! Each kind's module declares its older versions as types with Keptn's field names at that
//! version (their CRD schemas are generated from them) and implements [`Convert`] between each
//! and the `v1` type. [`convert`] is what the webhook's `/convert` endpoint runs per object.
//!
//! Nothing is lost in a round trip: a field one side cannot hold travels in an annotation of the
//! other ([`Carry`]), so `old → v1 → old` and `v1 → old → v1` give back what went in.

mod app;
mod app_context;
mod app_creation_request;
mod app_version;
mod evaluation;
mod evaluation_definition;
mod task;
mod task_definition;
mod workload;
mod workload_version;

#[cfg(test)]
mod schema_strategy;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, ServiceReference, WebhookClientConfig,
    WebhookConversion,
};
use kube::CustomResourceExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The group whose kinds have older versions.
pub const GROUP: &str = "lifecycle.keptn.sh";
/// The hub: the stored version, and the only one Portcullis reads.
pub const HUB: &str = "v1";
/// Where the webhook's HTTPS server answers ConversionReviews.
pub const CONVERT_PATH: &str = "/convert";
/// Prefix of the annotations that carry what a version cannot hold; the suffix is the version
/// the data belongs to (`…/v1alpha3` on a v1 object, `…/v1` on an older one).
pub const CARRY_ANNOTATION_PREFIX: &str = "conversion.portcullis.dev/";

/// The webhook Service the CRDs' conversion config calls (`portcullis-system`; the chart's
/// `crds.yaml` template rewrites the namespace and port with the install's).
pub const SERVICE_NAME: &str = "portcullis-webhook";
pub const SERVICE_NAMESPACE: &str = "portcullis-system";

/// Why an object cannot be converted; the API server returns the message to the client.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConversionError {
    #[error("{0}")]
    Malformed(String),
    #[error("{kind} {version} is not served by Portcullis (served: {served})")]
    UnknownVersion {
        kind: String,
        version: String,
        served: String,
    },
    #[error("{kind} {from} cannot be converted to {to}: {field}: {reason}")]
    Refused {
        kind: String,
        from: String,
        to: String,
        field: String,
        reason: String,
    },
}

/// A field that has no faithful counterpart in the other version; the write is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// JSON path of the field in the version being converted, e.g. `spec.function`.
    pub field: String,
    pub reason: String,
}

impl Refusal {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Refusal {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Fields that travel in an annotation because the version they are converted to cannot hold
/// them: [`Carry::keep`] while converting, [`Carry::restore`] when converting back.
#[derive(Debug, Default)]
pub struct Carry {
    incoming: Map<String, Value>,
    outgoing: Map<String, Value>,
}

impl Carry {
    /// Keeps `value` under `field` for the way back; empty values (null, `""`, `[]`, `{}`) are not
    /// kept, since every version reads them as absent.
    pub fn keep<T: Serialize>(&mut self, field: &str, value: &T) {
        if let Ok(v) = serde_json::to_value(value)
            && !is_empty(&v)
        {
            self.outgoing.insert(field.to_string(), v);
        }
    }

    /// Keeps `value` when it is set at all, even empty: for fields whose presence alone means
    /// something (`python: {}` picks the runtime).
    pub fn keep_present<T: Serialize>(&mut self, field: &str, value: &Option<T>) {
        if let Some(v) = value.as_ref().and_then(|v| serde_json::to_value(v).ok()) {
            self.outgoing.insert(field.to_string(), v);
        }
    }

    /// What was kept under `field` when this object was converted from the version it is now
    /// converted back to; `None` when nothing was (or it no longer parses as `T`).
    pub fn restore<T: DeserializeOwned>(&mut self, field: &str) -> Option<T> {
        self.incoming
            .remove(field)
            .and_then(|v| serde_json::from_value(v).ok())
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// An older version of a kind, converted to and from its `v1` type.
///
/// Both directions get the whole object; `metadata` is handed back unchanged by [`convert`]
/// except for the carry annotations, so implementations simply move it across.
pub trait Convert: CustomResourceExt + Serialize + DeserializeOwned {
    /// The `v1` type of the same kind.
    type Hub: CustomResourceExt + Serialize + DeserializeOwned;
    fn to_hub(self, carry: &mut Carry) -> Result<Self::Hub, Refusal>;
    fn from_hub(hub: Self::Hub, carry: &mut Carry) -> Result<Self, Refusal>;
}

type Step = fn(Value, &mut Carry) -> Result<Value, Refusal>;

/// One older version of one kind, type-erased for the registry.
#[derive(Clone, Copy)]
pub struct Spoke {
    pub kind: &'static str,
    pub version: &'static str,
    crd: fn() -> CustomResourceDefinition,
    to_hub: Step,
    from_hub: Step,
    /// Test support: the hub's CRD, and an object of either side through its type and back.
    #[cfg(test)]
    hub_crd: fn() -> CustomResourceDefinition,
    #[cfg(test)]
    normalize: fn(Value) -> Result<Value, String>,
    #[cfg(test)]
    normalize_hub: fn(Value) -> Result<Value, String>,
}

impl Spoke {
    /// The registry entry of `T`.
    pub fn of<T: Convert>() -> Spoke {
        Spoke {
            kind: leak_kind::<T>(),
            version: leak_version::<T>(),
            crd: T::crd,
            to_hub: |v, carry| {
                let old: T = serde_json::from_value(v)
                    .map_err(|e| Refusal::new("", format!("does not parse: {e}")))?;
                let hub = old.to_hub(carry)?;
                serde_json::to_value(hub).map_err(|e| Refusal::new("", e.to_string()))
            },
            from_hub: |v, carry| {
                let hub: T::Hub = serde_json::from_value(v)
                    .map_err(|e| Refusal::new("", format!("does not parse: {e}")))?;
                let old = T::from_hub(hub, carry)?;
                serde_json::to_value(old).map_err(|e| Refusal::new("", e.to_string()))
            },
            #[cfg(test)]
            hub_crd: T::Hub::crd,
            #[cfg(test)]
            normalize: |v| {
                let t: T = serde_json::from_value(v).map_err(|e| e.to_string())?;
                serde_json::to_value(t).map_err(|e| e.to_string())
            },
            #[cfg(test)]
            normalize_hub: |v| {
                let t: T::Hub = serde_json::from_value(v).map_err(|e| e.to_string())?;
                serde_json::to_value(t).map_err(|e| e.to_string())
            },
        }
    }
}

// `CustomResourceExt` gives kind and version as owned strings of a `'static` CRD; the registry
// is built once, so keeping them is bounded.
fn leak_kind<T: CustomResourceExt>() -> &'static str {
    Box::leak(T::crd().spec.names.kind.into_boxed_str())
}

fn leak_version<T: CustomResourceExt>() -> &'static str {
    let crd = T::crd();
    let name = crd
        .spec
        .versions
        .first()
        .map(|v| v.name.clone())
        .unwrap_or_default();
    Box::leak(name.into_boxed_str())
}

/// Every older version of every kind.
pub fn spokes() -> &'static [Spoke] {
    static SPOKES: std::sync::OnceLock<Vec<Spoke>> = std::sync::OnceLock::new();
    SPOKES.get_or_init(|| {
        [
            app::spokes(),
            app_context::spokes(),
            app_creation_request::spokes(),
            app_version::spokes(),
            workload::spokes(),
            workload_version::spokes(),
            task_definition::spokes(),
            task::spokes(),
            evaluation_definition::spokes(),
            evaluation::spokes(),
        ]
        .concat()
    })
}

fn spokes_of(kind: &str) -> impl Iterator<Item = &'static Spoke> + '_ {
    spokes().iter().filter(move |s| s.kind == kind)
}

/// `hub` (a `v1` CRD of this group) with every older version of its kind served next to it, `v1`
/// stored, and conversion through the webhook's [`CONVERT_PATH`] when any of them differs from
/// `v1`.
pub fn with_older_versions(
    mut hub: CustomResourceDefinition,
) -> Result<CustomResourceDefinition, kube::core::crd::MergeError> {
    let kind = hub.spec.names.kind.clone();
    let older: Vec<CustomResourceDefinition> = spokes_of(&kind).map(|s| (s.crd)()).collect();
    if older.is_empty() {
        return Ok(hub);
    }
    // Versions whose schema is v1's (descriptions aside) need no conversion: the API server
    // only rewrites `apiVersion` then, and nothing depends on the webhook being up.
    let schema = |crd: &CustomResourceDefinition| {
        crd.spec
            .versions
            .first()
            .and_then(|v| v.schema.as_ref())
            .map(|s| without_descriptions(serde_json::to_value(s).unwrap_or_default()))
    };
    let identical = older.iter().all(|crd| schema(crd) == schema(&hub));
    let mut all = vec![hub.clone()];
    all.extend(older);
    hub = kube::core::crd::merge_crds(all, HUB)?;
    // v1 first, then the older versions oldest first, whatever order the merge left.
    hub.spec
        .versions
        .sort_by_key(|v| (v.name != HUB, version_order(&v.name)));
    if identical {
        return Ok(hub);
    }
    hub.spec.conversion = Some(CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            conversion_review_versions: vec!["v1".into()],
            client_config: Some(WebhookClientConfig {
                service: Some(ServiceReference {
                    name: SERVICE_NAME.into(),
                    namespace: SERVICE_NAMESPACE.into(),
                    path: Some(CONVERT_PATH.into()),
                    port: Some(443),
                }),
                ..WebhookClientConfig::default()
            }),
        }),
    });
    Ok(hub)
}

fn without_descriptions(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| k != "description")
                .map(|(k, v)| (k, without_descriptions(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_descriptions).collect()),
        other => other,
    }
}

/// Kubernetes' version priority, reversed: alphas before betas before GA, lower numbers first.
fn version_order(name: &str) -> (u8, u32, u32) {
    let rest = name.strip_prefix('v').unwrap_or(name);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (stage, n) = if let Some(n) = tail.strip_prefix("alpha") {
        (0, n)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (1, n)
    } else {
        (2, tail)
    };
    (stage, major, n.parse().unwrap_or(0))
}

/// Converts one object (as the API server sends it in a ConversionReview) to `desired`
/// (`lifecycle.keptn.sh/<version>`), through `v1`.
pub fn convert(object: Value, desired: &str) -> Result<Value, ConversionError> {
    let malformed = |what: &str| ConversionError::Malformed(what.to_string());
    let Value::Object(mut object) = object else {
        return Err(malformed("object is not a JSON object"));
    };
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("object has no apiVersion"))?
        .to_string();
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("object has no kind"))?
        .to_string();
    let from = version_of(&api_version)
        .ok_or_else(|| malformed(&format!("apiVersion {api_version} is not in {GROUP}")))?;
    let to = version_of(desired)
        .ok_or_else(|| malformed(&format!("desiredAPIVersion {desired} is not in {GROUP}")))?;
    if from == to {
        return Ok(Value::Object(object));
    }
    let spoke = |version: &str| -> Result<Option<&'static Spoke>, ConversionError> {
        if version == HUB {
            return Ok(None);
        }
        spokes_of(&kind)
            .find(|s| s.version == version)
            .map(Some)
            .ok_or_else(|| ConversionError::UnknownVersion {
                kind: kind.clone(),
                version: version.to_string(),
                served: std::iter::once(HUB)
                    .chain(spokes_of(&kind).map(|s| s.version))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    };
    let (source, target) = (spoke(from)?, spoke(to)?);
    let metadata = object.remove("metadata").unwrap_or(Value::Null);
    let mut annotations = annotations_of(&metadata);
    let refused = |r: Refusal| ConversionError::Refused {
        kind: kind.clone(),
        from: from.to_string(),
        to: to.to_string(),
        field: r.field,
        reason: r.reason,
    };

    // Each step reads what the version it converts to left in the annotations, and leaves what
    // the version it converts to cannot hold.
    // The typed steps see only name and namespace: the metadata that goes out is the one that
    // came in, so nothing in it can fail a conversion.
    let identity = serde_json::json!({
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
    });
    let mut value = Value::Object(object);
    if let Some(source) = source {
        let mut carry = carry_for(&mut annotations, HUB);
        value = (source.to_hub)(with_metadata(value, &identity), &mut carry).map_err(refused)?;
        leave(&mut annotations, source.version, carry);
    }
    if let Some(target) = target {
        let mut carry = carry_for(&mut annotations, target.version);
        value = (target.from_hub)(with_metadata(value, &identity), &mut carry).map_err(refused)?;
        leave(&mut annotations, HUB, carry);
    }
    let Value::Object(mut out) = value else {
        return Err(malformed("conversion produced no object"));
    };
    out.insert("apiVersion".into(), Value::String(desired.to_string()));
    out.insert("kind".into(), Value::String(kind.clone()));
    out.insert("metadata".into(), metadata_with(metadata, annotations));
    Ok(Value::Object(out))
}

/// `v1alpha3` of `lifecycle.keptn.sh/v1alpha3`.
fn version_of(api_version: &str) -> Option<&str> {
    api_version
        .strip_prefix(GROUP)
        .and_then(|rest| rest.strip_prefix('/'))
}

fn annotations_of(metadata: &Value) -> BTreeMap<String, String> {
    metadata
        .get("annotations")
        .and_then(|a| serde_json::from_value(a.clone()).ok())
        .unwrap_or_default()
}

fn with_metadata(value: Value, metadata: &Value) -> Value {
    let mut value = value;
    if let Value::Object(o) = &mut value {
        o.insert("metadata".into(), metadata.clone());
    }
    value
}

/// The carry read from (and removed from) the annotation of `version`.
fn carry_for(annotations: &mut BTreeMap<String, String>, version: &str) -> Carry {
    let incoming = annotations
        .remove(&format!("{CARRY_ANNOTATION_PREFIX}{version}"))
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    Carry {
        incoming,
        outgoing: Map::new(),
    }
}

fn leave(annotations: &mut BTreeMap<String, String>, version: &str, carry: Carry) {
    if !carry.outgoing.is_empty() {
        annotations.insert(
            format!("{CARRY_ANNOTATION_PREFIX}{version}"),
            Value::Object(carry.outgoing).to_string(),
        );
    }
}

/// `metadata` exactly as it came, but for the annotations.
fn metadata_with(metadata: Value, annotations: BTreeMap<String, String>) -> Value {
    let mut metadata = match metadata {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if annotations.is_empty() {
        metadata.remove("annotations");
    } else {
        metadata.insert(
            "annotations".into(),
            serde_json::to_value(annotations).unwrap_or(Value::Null),
        );
    }
    Value::Object(metadata)
}

//! Objects valid under a CRD version's OpenAPI schema, for the round-trip property tests: the
//! generator reads the same schema the API server validates with, so the tests cover every
//! field a user can write, at every version, without a hand-written generator per type.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::crd::DURATION_PATTERN;

/// Below this depth optional fields are left out, which keeps deep types (a Container's probes
/// and security context) from exploding while still reaching every field of our own types.
const OPTIONAL_DEPTH: usize = 4;

/// Any object the schema admits, up to [`OPTIONAL_DEPTH`].
pub fn value(schema: &JSONSchemaProps) -> BoxedStrategy<Value> {
    at(schema, 0)
}

fn at(schema: &JSONSchemaProps, depth: usize) -> BoxedStrategy<Value> {
    if schema.x_kubernetes_int_or_string == Some(true) {
        return prop_oneof![
            (0i64..100).prop_map(Value::from),
            prop::sample::select(vec!["1", "50%", "250m"]).prop_map(Value::from),
        ]
        .boxed();
    }
    if let Some(values) = &schema.enum_ {
        let values: Vec<Value> = values.iter().map(|v| v.0.clone()).collect();
        return prop::sample::select(values).boxed();
    }
    match schema.type_.as_deref() {
        Some("object") | None if schema.properties.is_some() => object(schema, depth),
        Some("object") => match &schema.additional_properties {
            Some(JSONSchemaPropsOrBool::Schema(item)) => {
                prop::collection::btree_map("[a-z]{1,6}", at(item, depth + 1), 0..3)
                    .prop_map(|m: BTreeMap<String, Value>| json!(m))
                    .boxed()
            }
            _ => Just(json!({})).boxed(),
        },
        Some("array") => match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(item)) => {
                prop::collection::vec(at(item, depth + 1), 0..3)
                    .prop_map(Value::Array)
                    .boxed()
            }
            _ => Just(json!([])).boxed(),
        },
        Some("string") => string(schema),
        Some("integer") => {
            let min = schema.minimum.unwrap_or(0.0) as i64;
            (min..min + 100).prop_map(Value::from).boxed()
        }
        Some("number") => (0u32..100).prop_map(|n| json!(f64::from(n) / 4.0)).boxed(),
        Some("boolean") => any::<bool>().prop_map(Value::Bool).boxed(),
        _ => Just(json!({})).boxed(),
    }
}

fn string(schema: &JSONSchemaProps) -> BoxedStrategy<Value> {
    if schema.pattern.as_deref() == Some(DURATION_PATTERN) {
        return prop::sample::select(vec!["0", "10s", "5m", "1h30m0s", "250ms"])
            .prop_map(Value::from)
            .boxed();
    }
    if schema.format.as_deref() == Some("date-time") {
        return prop::sample::select(vec!["2024-05-01T10:00:00Z", "2025-09-30T23:59:59Z"])
            .prop_map(Value::from)
            .boxed();
    }
    let max = schema.max_length.map_or(8, |m| m.clamp(1, 8) as usize);
    let min = schema.min_length.map_or(0, |m| m.max(0) as usize).min(max);
    prop::string::string_regex(&format!("[a-z0-9]{{{min},{max}}}"))
        .expect("a plain character class")
        .prop_map(Value::String)
        .boxed()
}

fn object(schema: &JSONSchemaProps, depth: usize) -> BoxedStrategy<Value> {
    let required = schema.required.clone().unwrap_or_default();
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = schema
        .properties
        .iter()
        .flatten()
        .filter(|(name, _)| depth < OPTIONAL_DEPTH || required.contains(name))
        .map(|(name, prop)| {
            let name = name.clone();
            let value = at(prop, depth + 1);
            if required.contains(&name) {
                value.prop_map(move |v| Some((name.clone(), v))).boxed()
            } else {
                prop::option::of(value.prop_map(move |v| (name.clone(), v))).boxed()
            }
        })
        .collect();
    fields
        .prop_map(|fields| Value::Object(fields.into_iter().flatten().collect::<Map<_, _>>()))
        .boxed()
}

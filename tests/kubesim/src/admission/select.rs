//! Which webhooks a request reaches (F14): `rules`, `namespaceSelector`, `objectSelector`,
//! `matchPolicy`, in the order a real server evaluates them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::config::{Hook, LabelSelector, Rule};
use super::{AdmissionAttributes, Operation, internal_error};
use crate::status::ApiError;

/// Whether `hook` is called for the request, `object` being the object as mutated so far.
///
/// Selector errors (a malformed selector, a missing namespace) only count for a webhook whose
/// rules match the request, as in a real server.
pub(super) fn should_call(
    hook: &Hook,
    attrs: &AdmissionAttributes,
    object: Option<&Value>,
) -> Result<bool, ApiError> {
    let namespace_match = match_namespace(hook, attrs);
    if let Ok(false) = namespace_match {
        return Ok(false);
    }
    let object_match = match_object(hook, attrs, object);
    if let Ok(false) = object_match {
        return Ok(false);
    }
    let rules = &hook.spec.rules;
    let mut matched = rules.iter().any(|r| rule_matches(r, attrs, false));
    if !matched && hook.match_equivalent() {
        // Equivalent resources are approximated by the same group and resource in any version;
        // the webhook then receives the request's own version (no conversion).
        matched = rules.iter().any(|r| rule_matches(r, attrs, true));
    }
    if !matched {
        return Ok(false);
    }
    namespace_match?;
    object_match?;
    if !hook.spec.match_conditions.is_empty() {
        return Err(ApiError::not_implemented(format!(
            "matchConditions (CEL) of webhook \"{}\"",
            hook.spec.name
        )));
    }
    Ok(true)
}

fn rule_matches(rule: &Rule, attrs: &AdmissionAttributes, any_version: bool) -> bool {
    let r = &attrs.resource;
    scope_matches(rule, attrs)
        && rule
            .operations
            .iter()
            .any(|o| o == "*" || o == attrs.operation.as_str())
        && exact_or_wildcard(&rule.api_groups, &r.group)
        && (any_version || exact_or_wildcard(&rule.api_versions, &r.version))
        && rule.resources.iter().any(|entry| {
            let (res, sub) = entry.split_once('/').unwrap_or((entry.as_str(), ""));
            (res == "*" || res == r.resource) && (sub == "*" || sub == attrs.sub_resource)
        })
}

fn exact_or_wildcard(items: &[String], requested: &str) -> bool {
    items.iter().any(|i| i == "*" || i == requested)
}

/// The namespace object itself is cluster-scoped although its requests carry its name as the
/// namespace.
fn scope_matches(rule: &Rule, attrs: &AdmissionAttributes) -> bool {
    let r = &attrs.resource;
    let namespace_object = r.group.is_empty() && r.version == "v1" && r.resource == "namespaces";
    match rule.scope.as_deref() {
        None | Some("*") => true,
        Some("Namespaced") => !namespace_object && !attrs.namespace.is_empty(),
        Some("Cluster") => namespace_object || attrs.namespace.is_empty(),
        Some(_) => false,
    }
}

fn match_namespace(hook: &Hook, attrs: &AdmissionAttributes) -> Result<bool, ApiError> {
    // Cluster-scoped objects other than namespaces are never excluded by a namespace selector.
    if attrs.namespace.is_empty() && attrs.resource.resource != "namespaces" {
        return Ok(true);
    }
    let Some(selector) = &hook.spec.namespace_selector else {
        return Ok(true);
    };
    check_selector(selector)?;
    if is_empty(selector) {
        return Ok(true);
    }
    let own_labels;
    let labels = match &attrs.namespace_labels {
        Some(labels) => labels,
        None if attrs.resource.resource == "namespaces"
            && attrs.sub_resource.is_empty()
            && matches!(attrs.operation, Operation::Create | Operation::Update) =>
        {
            own_labels = labels_of(attrs.object.as_ref());
            &own_labels
        }
        None => {
            return Err(internal_error(&format!(
                "namespaces \"{}\" not found",
                attrs.namespace
            )));
        }
    };
    Ok(selector_matches(selector, labels))
}

fn match_object(
    hook: &Hook,
    attrs: &AdmissionAttributes,
    object: Option<&Value>,
) -> Result<bool, ApiError> {
    let Some(selector) = &hook.spec.object_selector else {
        return Ok(true);
    };
    check_selector(selector)?;
    if is_empty(selector) {
        return Ok(true);
    }
    // Either the new or the old object matching selects the webhook.
    Ok([object, attrs.old_object.as_ref()]
        .into_iter()
        .flatten()
        .any(|o| selector_matches(selector, &labels_of(Some(o)))))
}

fn is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.is_empty() && selector.match_expressions.is_empty()
}

fn labels_of(object: Option<&Value>) -> BTreeMap<String, String> {
    object
        .and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Rejects what `metav1.LabelSelectorAsSelector` rejects, with its message.
fn check_selector(selector: &LabelSelector) -> Result<(), ApiError> {
    for e in &selector.match_expressions {
        let problem = match e.operator.as_str() {
            "In" | "NotIn" if e.values.is_empty() => {
                Some("values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty".to_string())
            }
            "Exists" | "DoesNotExist" if !e.values.is_empty() => Some(format!(
                "values: Invalid value: {}: values set must be empty for exists and does not exist",
                json!(e.values)
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => None,
            other => Some(format!("\"{other}\" is not a valid label selector operator")),
        };
        if let Some(p) = problem {
            return Err(internal_error(&p));
        }
    }
    Ok(())
}

fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|e| {
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| e.values.contains(v)),
                "NotIn" => value.is_none_or(|v| !e.values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod unit {
    use super::*;
    use crate::admission::GroupVersionResource;

    fn rule(v: Value) -> Rule {
        serde_json::from_value(v).unwrap()
    }

    fn pods_in(ns: &str, op: Operation, sub: &str) -> AdmissionAttributes {
        AdmissionAttributes {
            operation: op,
            resource: GroupVersionResource {
                group: "".into(),
                version: "v1".into(),
                resource: "pods".into(),
            },
            sub_resource: sub.into(),
            namespace: ns.into(),
            ..Default::default()
        }
    }

    #[test]
    fn f14_rule_resources_match_subresources_as_the_api_server_does() {
        let a = pods_in("ns", Operation::Update, "status");
        let main = pods_in("ns", Operation::Update, "");
        let with = |res: &[&str]| {
            rule(
                json!({"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": res}),
            )
        };
        assert!(!rule_matches(&with(&["pods"]), &a, false));
        assert!(rule_matches(&with(&["pods/status"]), &a, false));
        assert!(rule_matches(&with(&["*/status"]), &a, false));
        assert!(!rule_matches(&with(&["*/status"]), &main, false));
        assert!(rule_matches(&with(&["pods/*"]), &a, false));
        assert!(rule_matches(&with(&["*/*"]), &a, false));
        assert!(!rule_matches(&with(&["*"]), &a, false));
        assert!(rule_matches(&with(&["*"]), &main, false));
        assert!(!rule_matches(&with(&["deployments"]), &main, false));
    }

    #[test]
    fn f14_rule_operations_groups_versions_and_scope() {
        let create = pods_in("ns", Operation::Create, "");
        let base = json!({"operations": ["UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]});
        assert!(!rule_matches(&rule(base.clone()), &create, false));
        let mut ops = base.clone();
        ops["operations"] = json!(["*"]);
        assert!(rule_matches(&rule(ops.clone()), &create, false));
        let mut group = ops.clone();
        group["apiGroups"] = json!(["apps"]);
        assert!(!rule_matches(&rule(group), &create, false));
        let mut version = ops.clone();
        version["apiVersions"] = json!(["v2"]);
        assert!(!rule_matches(&rule(version.clone()), &create, false));
        assert!(
            rule_matches(&rule(version), &create, true),
            "Equivalent: same group/resource, other version"
        );
        let mut cluster = ops.clone();
        cluster["scope"] = json!("Cluster");
        assert!(!rule_matches(&rule(cluster.clone()), &create, false));
        let mut namespace = pods_in("team", Operation::Create, "");
        namespace.resource.resource = "namespaces".into();
        cluster["resources"] = json!(["namespaces"]);
        assert!(
            rule_matches(&rule(cluster.clone()), &namespace, false),
            "a Namespace is cluster-scoped"
        );
        cluster["scope"] = json!("Namespaced");
        assert!(!rule_matches(&rule(cluster), &namespace, false));
        let mut namespaced = ops;
        namespaced["scope"] = json!("Namespaced");
        assert!(rule_matches(&rule(namespaced), &create, false));
    }

    #[test]
    fn f16_operations_round_trip_their_wire_spelling() {
        for op in [
            Operation::Create,
            Operation::Update,
            Operation::Delete,
            Operation::Connect,
        ] {
            assert_eq!(Operation::from_wire(op.as_str()), Some(op));
        }
        assert_eq!(Operation::from_wire("PATCH"), None);
    }

    #[test]
    fn f14_label_selector_operators() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"a": "1"},
            "matchExpressions": [
                {"key": "b", "operator": "In", "values": ["x", "y"]},
                {"key": "c", "operator": "NotIn", "values": ["bad"]},
                {"key": "d", "operator": "Exists"},
                {"key": "e", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(selector_matches(
            &sel,
            &labels(&[("a", "1"), ("b", "x"), ("d", "")])
        ));
        assert!(selector_matches(
            &sel,
            &labels(&[("a", "1"), ("b", "y"), ("c", "ok"), ("d", "1")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("a", "2"), ("b", "x"), ("d", "")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("a", "1"), ("b", "z"), ("d", "")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("a", "1"), ("b", "x"), ("c", "bad"), ("d", "")])
        ));
        assert!(!selector_matches(&sel, &labels(&[("a", "1"), ("b", "x")])));
        assert!(!selector_matches(
            &sel,
            &labels(&[("a", "1"), ("b", "x"), ("d", ""), ("e", "")])
        ));
        let bad: LabelSelector =
            serde_json::from_value(json!({"matchExpressions": [{"key": "k", "operator": "Like"}]}))
                .unwrap();
        let err = check_selector(&bad).unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            "Internal error occurred: \"Like\" is not a valid label selector operator"
        );
    }
}

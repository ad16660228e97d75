//! JSON Patch operations built by hand for exactly what the webhook adds to a pod (A8, A9): the
//! scheduling gate, the gated label and the identity annotations. Each operation is computed against the raw
//! request object, so applying the same patch logic to its own result yields nothing (reinvocation).

use std::collections::BTreeMap;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation};
use serde_json::{Value, json};
use shared::gate::{GATE, GATED_LABEL, GATED_VALUE, is_gated};

fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}

fn pointer(tokens: &[&str]) -> PointerBuf {
    // Token::new escapes `~` as `~0` and `/` as `~1` (RFC 6901).
    PointerBuf::from_tokens(tokens.iter().copied())
}

/// Whether `spec.schedulingGates` of the raw pod contains the gate.
pub fn has_gate(spec: Option<&Value>) -> bool {
    spec.and_then(|s| s.get("schedulingGates"))
        .and_then(Value::as_array)
        .is_some_and(|gates| {
            is_gated(
                gates
                    .iter()
                    .map(|g| g.get("name").and_then(Value::as_str).unwrap_or_default()),
            )
        })
}

/// The operation adding the gate: creates `spec.schedulingGates` when it is absent (or `null`),
/// else appends to it, keeping other controllers' gates. `None` when the gate is already there.
pub fn gate_operation(spec: Option<&Value>) -> Option<PatchOperation> {
    if has_gate(spec) {
        return None;
    }
    let gate = json!({ "name": GATE });
    match spec.and_then(|s| s.get("schedulingGates")) {
        Some(Value::Array(_)) => Some(add(pointer(&["spec", "schedulingGates", "-"]), gate)),
        _ => Some(add(pointer(&["spec", "schedulingGates"]), json!([gate]))),
    }
}

/// The operations making the pod carry `wanted` annotations: the whole map when the pod has no
/// `metadata.annotations`, else one `add` per key whose value differs (an `add` of an existing
/// member replaces it). Keys already carrying the wanted value produce nothing.
pub fn annotation_operations(
    current: Option<&BTreeMap<String, String>>,
    wanted: &BTreeMap<String, String>,
) -> Vec<PatchOperation> {
    map_operations("annotations", current, wanted)
}

/// The operation putting [`GATED_LABEL`] on a pod that gets (or keeps) the gate, built like
/// [`annotation_operations`]: the gate service watches only pods with this label, so a gated pod
/// without it would never be released. `None` when the label is already there.
pub fn gated_label_operation(current: Option<&BTreeMap<String, String>>) -> Option<PatchOperation> {
    let wanted = BTreeMap::from([(GATED_LABEL.to_owned(), GATED_VALUE.to_owned())]);
    map_operations("labels", current, &wanted).pop()
}

/// Whether the pod's labels already carry [`GATED_LABEL`] with [`GATED_VALUE`].
pub fn has_gated_label(current: Option<&BTreeMap<String, String>>) -> bool {
    current
        .and_then(|labels| labels.get(GATED_LABEL))
        .is_some_and(|v| v == GATED_VALUE)
}

/// `metadata.<field>` (a string map) made to carry `wanted`; see [`annotation_operations`].
fn map_operations(
    field: &str,
    current: Option<&BTreeMap<String, String>>,
    wanted: &BTreeMap<String, String>,
) -> Vec<PatchOperation> {
    let Some(current) = current else {
        if wanted.is_empty() {
            return Vec::new();
        }
        return vec![add(pointer(&["metadata", field]), json!(wanted))];
    };
    wanted
        .iter()
        .filter(|(key, value)| current.get(*key) != Some(*value))
        .map(|(key, value)| {
            add(
                pointer(&["metadata", field, key]),
                Value::String(value.clone()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(doc: &Value, ops: &[PatchOperation]) -> Value {
        let mut doc = doc.clone();
        json_patch::patch(&mut doc, ops).expect("patch applies");
        doc
    }

    fn paths(ops: &[PatchOperation]) -> Vec<String> {
        ops.iter().map(|op| op.path().to_string()).collect()
    }

    #[test]
    fn gate_created_when_absent() {
        let pod = json!({"spec": {"containers": []}});
        let op = gate_operation(pod.get("spec")).unwrap();
        assert_eq!(paths(std::slice::from_ref(&op)), ["/spec/schedulingGates"]);
        let out = apply(&pod, &[op]);
        assert_eq!(out["spec"]["schedulingGates"], json!([{"name": GATE}]));
    }

    #[test]
    fn gate_created_when_null() {
        let pod = json!({"spec": {"schedulingGates": null}});
        let out = apply(&pod, &[gate_operation(pod.get("spec")).unwrap()]);
        assert_eq!(out["spec"]["schedulingGates"], json!([{"name": GATE}]));
    }

    #[test]
    fn gate_appended_keeping_other_gates() {
        let pod = json!({"spec": {"schedulingGates": [{"name": "other.io/gate"}]}});
        let op = gate_operation(pod.get("spec")).unwrap();
        assert_eq!(
            paths(std::slice::from_ref(&op)),
            ["/spec/schedulingGates/-"]
        );
        let out = apply(&pod, &[op]);
        assert_eq!(
            out["spec"]["schedulingGates"],
            json!([{"name": "other.io/gate"}, {"name": GATE}])
        );
    }

    #[test]
    fn gate_not_added_twice() {
        let pod = json!({"spec": {"schedulingGates": [{"name": "x"}, {"name": GATE}]}});
        assert!(gate_operation(pod.get("spec")).is_none());
        assert!(has_gate(pod.get("spec")));
    }

    #[test]
    fn gate_created_without_spec() {
        // A pod without spec never reaches the API server, but the patch must not panic.
        assert!(gate_operation(None).is_some());
    }

    #[test]
    fn annotations_created_when_absent() {
        let wanted = BTreeMap::from([("keptn.sh/app".to_string(), "a".to_string())]);
        let ops = annotation_operations(None, &wanted);
        assert_eq!(paths(&ops), ["/metadata/annotations"]);
        let out = apply(&json!({"metadata": {"name": "p"}}), &ops);
        assert_eq!(out["metadata"]["annotations"], json!({"keptn.sh/app": "a"}));
    }

    #[test]
    fn annotation_keys_escaped() {
        let current = BTreeMap::from([("x".to_string(), "1".to_string())]);
        let wanted = BTreeMap::from([
            ("keptn.sh/workload".to_string(), "w".to_string()),
            ("odd~key".to_string(), "v".to_string()),
        ]);
        let ops = annotation_operations(Some(&current), &wanted);
        assert_eq!(
            paths(&ops),
            [
                "/metadata/annotations/keptn.sh~1workload",
                "/metadata/annotations/odd~0key"
            ]
        );
        let out = apply(&json!({"metadata": {"annotations": {"x": "1"}}}), &ops);
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"x": "1", "keptn.sh/workload": "w", "odd~key": "v"})
        );
    }

    #[test]
    fn annotations_already_present_produce_nothing() {
        let current = BTreeMap::from([("keptn.sh/app".to_string(), "a".to_string())]);
        assert!(annotation_operations(Some(&current), &current.clone()).is_empty());
        assert!(annotation_operations(None, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn gated_label_creates_the_map_when_absent() {
        let op = gated_label_operation(None).unwrap();
        assert_eq!(paths(std::slice::from_ref(&op)), ["/metadata/labels"]);
        let out = apply(&json!({"metadata": {"name": "p"}}), &[op]);
        assert_eq!(out["metadata"]["labels"], json!({GATED_LABEL: GATED_VALUE}));
        assert!(has_gated_label(Some(&typed_labels(&out))));
    }

    #[test]
    fn gated_label_added_to_existing_labels_escaped() {
        let current = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let op = gated_label_operation(Some(&current)).unwrap();
        assert_eq!(
            paths(std::slice::from_ref(&op)),
            ["/metadata/labels/portcullis.dev~1gated"]
        );
        let out = apply(&json!({"metadata": {"labels": {"app": "web"}}}), &[op]);
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", GATED_LABEL: GATED_VALUE})
        );
    }

    #[test]
    fn gated_label_present_produces_nothing_other_value_is_replaced() {
        let labelled = BTreeMap::from([(GATED_LABEL.to_string(), GATED_VALUE.to_string())]);
        assert!(gated_label_operation(Some(&labelled)).is_none());
        let other = BTreeMap::from([(GATED_LABEL.to_string(), "no".to_string())]);
        assert!(!has_gated_label(Some(&other)));
        let out = apply(
            &json!({"metadata": {"labels": {GATED_LABEL: "no"}}}),
            &[gated_label_operation(Some(&other)).unwrap()],
        );
        assert_eq!(out["metadata"]["labels"][GATED_LABEL], GATED_VALUE);
    }

    fn typed_labels(pod: &Value) -> BTreeMap<String, String> {
        serde_json::from_value(pod["metadata"]["labels"].clone()).unwrap()
    }

    #[test]
    fn differing_annotation_value_is_replaced() {
        let current = BTreeMap::from([("keptn.sh/version".to_string(), "1".to_string())]);
        let wanted = BTreeMap::from([("keptn.sh/version".to_string(), "2".to_string())]);
        let ops = annotation_operations(Some(&current), &wanted);
        let out = apply(
            &json!({"metadata": {"annotations": {"keptn.sh/version": "1"}}}),
            &ops,
        );
        assert_eq!(out["metadata"]["annotations"]["keptn.sh/version"], "2");
    }
}

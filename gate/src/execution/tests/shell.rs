use serde_json::json;

use crate::execution::shell::merge_diff;

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
        let t = target.as_object_mut().unwrap();
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                json_merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

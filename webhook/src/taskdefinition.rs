//! KeptnTaskDefinition validation (`/validate-keptntaskdefinition`, B §1.12): exactly one of
//! `spec.container`, `spec.python`, `spec.deno` must be present (non-null, even if empty).

use crate::decision::{Denial, Verdict};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, Operation};
use kube::core::response::{StatusCause, StatusDetails};

/// B §1.12, none present (the text `shared::checks` validates typed definitions with).
pub const NONE_DEFINED: &str = shared::checks::NO_RUNTIME_DEFINED;
/// B §1.12, more than one present.
pub const MANY_DEFINED: &str = shared::checks::MANY_RUNTIMES_DEFINED;

/// Validates a KeptnTaskDefinition CREATE or UPDATE; everything else is allowed.
pub fn validate(request: &AdmissionRequest<DynamicObject>) -> Verdict {
    if !(request.kind.group == "lifecycle.keptn.sh" && request.kind.kind == "KeptnTaskDefinition") {
        return Verdict::bad_request(format!(
            "this endpoint validates lifecycle.keptn.sh KeptnTaskDefinitions, got {}",
            crate::review::describe_kind(&request.kind)
        ));
    }
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return Verdict::allow("only CREATE and UPDATE are validated");
    }
    let Some(object) = request.object.as_ref() else {
        return Verdict::bad_request("the admission request carries no object");
    };
    let spec = object.data.get("spec");
    let present = ["container", "python", "deno"]
        .iter()
        .filter(|field| {
            spec.and_then(|s| s.get(**field))
                .is_some_and(|v| !v.is_null())
        })
        .count();
    let detail = match present {
        1 => return Verdict::allow("exactly one runtime is defined"),
        0 => NONE_DEFINED,
        _ => MANY_DEFINED,
    };
    let name = object.metadata.name.as_deref().unwrap_or(&request.name);
    Verdict::Deny(Denial {
        code: 422,
        reason: "Invalid".into(),
        message: format!(
            "KeptnTaskDefinition.lifecycle.keptn.sh \"{name}\" is invalid: spec: Forbidden: {detail}"
        ),
        details: Some(StatusDetails {
            name: name.to_owned(),
            group: "lifecycle.keptn.sh".into(),
            kind: "KeptnTaskDefinition".into(),
            uid: String::new(),
            causes: vec![StatusCause {
                reason: "FieldValueForbidden".into(),
                message: format!("Forbidden: {detail}"),
                field: "spec".into(),
            }],
            retry_after_seconds: 0,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::parse;
    use serde_json::{Value, json};

    fn request(spec: Value, operation: &str) -> AdmissionRequest<DynamicObject> {
        let body = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "lifecycle.keptn.sh", "version": "v1", "kind": "KeptnTaskDefinition"},
                "resource": {"group": "lifecycle.keptn.sh", "version": "v1", "resource": "keptntaskdefinitions"},
                "name": "td",
                "namespace": "ns",
                "operation": operation,
                "userInfo": {"username": "u"},
                "object": {
                    "apiVersion": "lifecycle.keptn.sh/v1",
                    "kind": "KeptnTaskDefinition",
                    "metadata": {"name": "td", "namespace": "ns"},
                    "spec": spec
                },
                "dryRun": false
            }
        });
        parse(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    #[test]
    fn validation_table() {
        let rows: [(&str, Value, Option<&str>); 7] = [
            (
                "one_container",
                json!({"container": {"name": "c", "image": "i"}}),
                None,
            ),
            ("one_deno_empty_object", json!({"deno": {}}), None),
            (
                "one_python",
                json!({"python": {"inline": {"code": "x"}}}),
                None,
            ),
            ("none", json!({"retries": 3}), Some(NONE_DEFINED)),
            (
                "null_does_not_count",
                json!({"deno": null}),
                Some(NONE_DEFINED),
            ),
            ("two", json!({"deno": {}, "python": {}}), Some(MANY_DEFINED)),
            (
                "three",
                json!({"deno": {}, "python": {}, "container": {}}),
                Some(MANY_DEFINED),
            ),
        ];
        for (rule, spec, want) in rows {
            let verdict = validate(&request(spec, "CREATE"));
            match (want, verdict) {
                (None, Verdict::Allow { patch, .. }) => assert!(patch.is_empty(), "{rule}"),
                (Some(detail), Verdict::Deny(denial)) => {
                    assert_eq!(denial.code, 422, "{rule}");
                    assert_eq!(denial.reason, "Invalid", "{rule}");
                    assert_eq!(
                        denial.message,
                        format!(
                            "KeptnTaskDefinition.lifecycle.keptn.sh \"td\" is invalid: spec: Forbidden: {detail}"
                        ),
                        "{rule}"
                    );
                    let details = denial.details.unwrap();
                    assert_eq!(details.causes[0].field, "spec", "{rule}");
                    assert_eq!(details.kind, "KeptnTaskDefinition", "{rule}");
                }
                (want, got) => panic!("{rule}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn update_validated_delete_allowed() {
        assert!(matches!(
            validate(&request(json!({}), "UPDATE")),
            Verdict::Deny(_)
        ));
        assert!(matches!(
            validate(&request(json!({}), "DELETE")),
            Verdict::Allow { .. }
        ));
    }
}

//! Rules about tasks and evaluations that more than one binary needs: the deterministic name
//! suffix of A15, the KeptnTaskDefinition validation of B §1.12 and the per-objective failure
//! lines of B §3.6.

use sha2::{Digest, Sha256};

use crate::crd::{KeptnEvaluationStatus, KeptnState, KeptnTaskDefinition};

/// Smallest suffix Keptn draws (B §1.6).
pub const SUFFIX_MIN: u32 = 10_000;
/// Largest suffix Keptn draws (B §1.6).
pub const SUFFIX_MAX: u32 = 99_998;

/// The five digits of A15 in Keptn's range `10000..=99998`, derived from the owner's uid and a
/// name (the definition name for KeptnTasks and KeptnEvaluations, the task definition name for a
/// task's Job), so that a restarted gate finds the object it created before.
///
/// `attempt` is 0 for the first candidate; a caller whose candidate is taken by another owner's
/// object tries 1, 2, … (each attempt gives an independent value).
pub fn check_suffix(owner_uid: &str, name: &str, attempt: u32) -> u32 {
    let mut h = Sha256::new();
    h.update(owner_uid.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    if attempt > 0 {
        h.update([0]);
        h.update(attempt.to_be_bytes());
    }
    let d = h.finalize();
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    SUFFIX_MIN + n % (SUFFIX_MAX - SUFFIX_MIN + 1)
}

/// B §1.12: no runtime defined.
pub const NO_RUNTIME_DEFINED: &str =
    "Forbidden! Either Container, Python, or Deno field must be defined";
/// B §1.12: more than one runtime defined.
pub const MANY_RUNTIMES_DEFINED: &str =
    "Forbidden! Only one of Container, Python, or Deno field can be defined";

/// B §1.12: exactly one of `spec.container`, `spec.python`, `spec.deno` must be present (an empty
/// object counts as present, `null` does not). The error is the field error's detail on `spec`.
pub fn validate_task_definition(definition: &KeptnTaskDefinition) -> Result<(), String> {
    let spec = &definition.spec;
    let present = [
        spec.container.is_some(),
        spec.python.is_some(),
        spec.deno.is_some(),
    ]
    .into_iter()
    .filter(|p| *p)
    .count();
    match present {
        1 => Ok(()),
        0 => Err(NO_RUNTIME_DEFINED.to_owned()),
        _ => Err(MANY_RUNTIMES_DEFINED.to_owned()),
    }
}

/// B §3.6: one line per failed objective of an evaluation (in metric name order), for the
/// `ReconcileEvaluationFailed` event that follows the line "evaluation failed".
pub fn evaluation_failure_lines(status: &KeptnEvaluationStatus) -> Vec<String> {
    status
        .evaluation_status
        .iter()
        .filter(|(_, item)| item.status == KeptnState::Failed)
        .map(|(metric, item)| {
            format!(
                "evaluation of '{metric}' failed with value: '{}' and reason: '{}'",
                item.value, item.message
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::EvaluationStatusItem;

    #[test]
    fn a15_suffix_is_deterministic_and_in_keptn_range() {
        let a = check_suffix("uid-1", "hello", 0);
        assert_eq!(a, check_suffix("uid-1", "hello", 0));
        assert_ne!(a, check_suffix("uid-2", "hello", 0));
        assert_ne!(a, check_suffix("uid-1", "hello2", 0));
        assert_ne!(a, check_suffix("uid-1", "hello", 1));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(check_suffix("ab", "c", 0), check_suffix("a", "bc", 0));
        for i in 0..2_000 {
            let s = check_suffix(&format!("uid-{i}"), "def", i % 3);
            assert!((SUFFIX_MIN..=SUFFIX_MAX).contains(&s), "{s}");
            assert_eq!(s.to_string().len(), 5);
        }
    }

    fn definition(json: serde_json::Value) -> KeptnTaskDefinition {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "lifecycle.keptn.sh/v1",
            "kind": "KeptnTaskDefinition",
            "metadata": {"name": "d", "namespace": "ns"},
            "spec": json,
        }))
        .unwrap()
    }

    #[test]
    fn b1_12_exactly_one_runtime() {
        let rows = [
            ("none", serde_json::json!({}), Err(NO_RUNTIME_DEFINED)),
            (
                "null_is_absent",
                serde_json::json!({"deno": null}),
                Err(NO_RUNTIME_DEFINED),
            ),
            ("empty_deno_counts", serde_json::json!({"deno": {}}), Ok(())),
            (
                "python",
                serde_json::json!({"python": {"inline": {"code": "x"}}}),
                Ok(()),
            ),
            (
                "container",
                serde_json::json!({"container": {"name": "c", "image": "busybox"}}),
                Ok(()),
            ),
            (
                "deno_and_python",
                serde_json::json!({"deno": {}, "python": {}}),
                Err(MANY_RUNTIMES_DEFINED),
            ),
            (
                "all_three",
                serde_json::json!({"deno": {}, "python": {}, "container": {"name": "c"}}),
                Err(MANY_RUNTIMES_DEFINED),
            ),
        ];
        for (name, spec, want) in rows {
            let got = validate_task_definition(&definition(spec));
            assert_eq!(got, want.map_err(str::to_owned), "{name}");
        }
    }

    #[test]
    fn b3_6_failure_lines_only_for_failed_objectives() {
        let mut status = KeptnEvaluationStatus::default();
        let item = |value: &str, state, message: &str| EvaluationStatusItem {
            value: value.into(),
            status: state,
            message: message.into(),
            last_updated: None,
        };
        status.evaluation_status.insert(
            "b-metric".into(),
            item(
                "7",
                KeptnState::Failed,
                "value '7' did not meet objective '<5'",
            ),
        );
        status.evaluation_status.insert(
            "a-metric".into(),
            item("", KeptnState::Failed, "empty value for: a-metric"),
        );
        status.evaluation_status.insert(
            "ok".into(),
            item("1", KeptnState::Succeeded, "value '1' met objective '<5'"),
        );
        assert_eq!(
            evaluation_failure_lines(&status),
            vec![
                "evaluation of 'a-metric' failed with value: '' and reason: 'empty value for: a-metric'",
                "evaluation of 'b-metric' failed with value: '7' and reason: 'value '7' did not meet objective '<5''",
            ]
        );
    }
}

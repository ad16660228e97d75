use serde_json::json;

#[tokio::test]
async fn b0_4_only_generation_changes_trigger_reconciles() {
    use std::sync::Arc;

    use futures::StreamExt;

    use crate::controllers::checks::spec_changes;
    use lifecycle::fixtures::evaluation;

    let at = |uid: &str, generation: i64, retry_count: i64| {
        Arc::new(evaluation(json!({
            "metadata": {"uid": uid, "generation": generation},
            "status": {"retryCount": retry_count, "overallStatus": "Progressing", "evaluationStatus": {}},
        })))
    };
    let input = vec![
        at("a", 1, 0), // first sight: passes
        at("a", 1, 1), // status write: filtered
        at("b", 1, 0), // another object: passes
        at("a", 1, 2), // status write: filtered
        at("a", 2, 2), // spec change: passes
    ];
    let passed: Vec<(String, i64)> = spec_changes(futures::stream::iter(input))
        .map(|e| {
            (
                e.metadata.uid.clone().unwrap(),
                e.metadata.generation.unwrap(),
            )
        })
        .collect()
        .await;
    assert_eq!(
        passed,
        vec![
            ("a".to_owned(), 1),
            ("b".to_owned(), 1),
            ("a".to_owned(), 2)
        ]
    );
}

#[test]
fn failures_back_off_exponentially_up_to_a_bound() {
    use std::time::Duration;

    use crate::controllers::backoff;

    let base = Duration::from_millis(200);
    assert_eq!(
        backoff(base, 1),
        base,
        "the first retry waits the base delay"
    );
    assert_eq!(backoff(base, 2), Duration::from_millis(400));
    assert_eq!(backoff(base, 4), Duration::from_millis(1600));
    assert_eq!(backoff(Duration::from_secs(5), 4), Duration::from_secs(40));
    assert_eq!(backoff(Duration::from_secs(5), 5), Duration::from_secs(60));
    assert_eq!(
        backoff(Duration::from_secs(5), u32::MAX),
        Duration::from_secs(60),
        "bounded, never overflows"
    );
}

#[test]
fn failures_are_counted_per_controller_and_object_until_a_success() {
    use crate::controllers::Backoff;
    use lifecycle::fixtures::task;

    let backoff = Backoff::default();
    let a = task(json!({"metadata": {"uid": "a"}}));
    let b = task(json!({"metadata": {"uid": "b"}}));
    assert_eq!(backoff.failed("keptntask", &a), 1);
    assert_eq!(backoff.failed("keptntask", &a), 2);
    assert_eq!(backoff.failed("keptntask", &b), 1, "per object");
    assert_eq!(backoff.failed("other", &a), 1, "per controller");
    backoff.succeeded("keptntask", &a);
    assert_eq!(backoff.len(), 2);
    assert_eq!(backoff.failed("keptntask", &a), 1, "a success starts over");
}

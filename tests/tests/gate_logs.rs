//! `--log-format json`: every line the gate binary writes is one JSON object with the stable
//! keys of `shared::logging`, and structured fields stay queryable at the top level.

use e2e::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_stable_keys_and_top_level_fields() {
    let mut env = start_env().await;
    let c = env.client.clone();
    let ns = "logs";
    env.namespace(ns).await;
    let gate = env.start_gate(&["--log-format", "json"]);
    let rs = gated_deployment(&c, ns, "ledger", "ledger", "1", 1, serde_json::json!({})).await;
    workload_objects(&c, ns, "ledger", "ledger", "1", &rs, &[]).await;
    creation_request(&c, ns, "ledger", true).await;
    let released = wait_for("a JSON line about the released pod", WAIT, || {
        let log = env.gate_log(gate);
        async move {
            log.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["message"] == "scheduling gate removed")
        }
    })
    .await;
    assert_eq!(released["namespace"], ns);
    assert!(
        released["pod"]
            .as_str()
            .is_some_and(|p| p.starts_with("ledger-"))
    );
    let created = wait_for("a JSON line about the created KeptnApp", WAIT, || {
        let log = env.gate_log(gate);
        async move {
            log.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["message"] == "created KeptnApp")
        }
    })
    .await;
    assert_eq!(created["namespace"], ns);
    assert_eq!(created["app"], "ledger");
    assert_eq!(created["level"], "INFO");
    // The gate keeps logging while the file is read: a last line without its newline may be
    // only partly written yet (even cut inside a character), so only complete lines are checked.
    let raw = std::fs::read(env.logs.path().join(format!("gate-{gate}.log"))).expect("gate log");
    let log = String::from_utf8_lossy(&raw);
    let lines: Vec<&str> = log
        .split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n'))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for line in lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v.get(key).is_some_and(Value::is_string), "{key} in {line}");
        }
        assert!(v.get("fields").is_none(), "fields are flattened: {line}");
    }
}

//! Support of the `admission` fuzz target: the oracle (also included by the webhook's property
//! suite, `webhook/tests/properties.rs`) and the world the fuzzed reviews are admitted against.

pub mod oracle;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// The webhook's golden fixtures (`webhook/tests/fixtures`), the source of the seed corpus.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../webhook/tests/fixtures")
}

/// One world holding the worlds of all golden fixtures (namespaces, ReplicaSets, parents), so
/// that every seed and its mutations meet the objects they refer to. Where fixtures disagree
/// (namespace `shop` enabled or not, Deployment `web` annotated or not) the first fixture in name
/// order wins: `shop` enabled, `web` annotated, so most seeds reach the gating code.
pub fn golden_world() -> oracle::World {
    let mut merged = json!({"namespaces": [], "replicaSets": [], "parents": []});
    let mut files: Vec<_> = std::fs::read_dir(fixtures_dir())
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    // Later objects replace earlier ones in the snapshot: merge in reverse for first-wins.
    files.reverse();
    for file in files {
        let Ok(case) = std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
        else {
            continue;
        };
        for key in ["namespaces", "replicaSets", "parents"] {
            if let (Some(from), Some(into)) =
                (case["world"][key].as_array(), merged[key].as_array_mut())
            {
                into.extend(from.iter().cloned());
            }
        }
    }
    oracle::fixture_world(&merged)
}

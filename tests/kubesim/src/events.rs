//! One Event store for `v1` and `events.k8s.io/v1` (FIDELITY F23): objects are stored in their
//! core/v1 form and converted field by field when read or written through events.k8s.io/v1.

use serde_json::{Map, Value};

/// (core/v1 field, events.k8s.io/v1 field) pairs that are renamed one to one.
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("source", "deprecatedSource"),
];

/// Fields with the same name in both versions.
const SAME: &[&str] = &[
    "metadata",
    "reason",
    "type",
    "action",
    "related",
    "eventTime",
    "reportingInstance",
    "series",
];

/// events.k8s.io/v1 → core/v1 (the stored form).
pub fn to_core(obj: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), "v1".into());
    out.insert("kind".into(), "Event".into());
    let Some(src) = obj.as_object() else {
        return Value::Object(out);
    };
    for f in SAME {
        if let Some(v) = src.get(*f) {
            out.insert((*f).into(), v.clone());
        }
    }
    for (core, new) in RENAMES {
        if let Some(v) = src.get(*new) {
            out.insert((*core).into(), v.clone());
        }
    }
    // core/v1 keeps `reportingComponent` and `source.component` in step for old readers.
    if let (None, Some(c)) = (out.get("source"), src.get("reportingController")) {
        out.insert("source".into(), serde_json::json!({"component": c}));
    }
    Value::Object(out)
}

/// core/v1 (stored) → events.k8s.io/v1.
pub fn to_events_v1(obj: &Value) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), "events.k8s.io/v1".into());
    out.insert("kind".into(), "Event".into());
    let Some(src) = obj.as_object() else {
        return Value::Object(out);
    };
    for f in SAME {
        if let Some(v) = src.get(*f) {
            out.insert((*f).into(), v.clone());
        }
    }
    for (core, new) in RENAMES {
        if let Some(v) = src.get(*core) {
            out.insert((*new).into(), v.clone());
        }
    }
    if out.get("reportingController").is_none()
        && let Some(c) = src.get("source").and_then(|s| s.get("component"))
    {
        out.insert("reportingController".into(), c.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_fields() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hello", "reason": "Started", "type": "Normal",
            "reportingController": "ctl", "reportingInstance": "i", "action": "Start", "eventTime": "2024-01-01T00:00:00.000000Z"});
        let core = to_core(&new);
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["source"]["component"], "ctl");
        assert_eq!(to_events_v1(&core), {
            let mut n = new.clone();
            n["deprecatedSource"] = json!({"component": "ctl"});
            n
        });
    }
}

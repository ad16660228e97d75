//! CRD structural schemas (FIDELITY F10): pruning of unknown fields, `default`s, and the OpenAPI
//! value validations, with the field paths and messages the API server reports.
//!
//! Every function takes the version's `schema.openAPIV3Schema` as JSON. CEL rules
//! (`x-kubernetes-validations`) and `x-kubernetes-list-type` uniqueness are not evaluated.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::status::{FieldError, FieldErrorKind};

/// Drops every field the schema does not know, except where
/// `x-kubernetes-preserve-unknown-fields` is set; `apiVersion`, `kind` and `metadata` are kept at
/// the root and inside `x-kubernetes-embedded-resource` objects.
pub fn prune(obj: &mut Value, schema: &Value) {
    prune_node(obj, Some(schema), true);
}

fn prune_node(value: &mut Value, schema: Option<&Value>, is_root: bool) {
    let preserve = schema.is_some_and(|s| flag(s, "x-kubernetes-preserve-unknown-fields"));
    match value {
        Value::Object(map) => {
            let Some(s) = schema else {
                map.clear();
                return;
            };
            let embedded = flag(s, "x-kubernetes-embedded-resource");
            let props = s.get("properties").and_then(Value::as_object);
            let additional = additional_properties(s);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let keep_meta = (is_root || embedded)
                    && match k.as_str() {
                        "apiVersion" | "kind" => is_root || map[&k].is_string(),
                        "metadata" => is_root || map[&k].is_object(),
                        _ => false,
                    };
                if keep_meta {
                    continue;
                }
                let child_schema = props.and_then(|p| p.get(&k));
                let child_schema = match (child_schema, &additional) {
                    (Some(cs), _) => cs,
                    (None, Additional::Schema(cs)) => *cs,
                    (None, Additional::Any) => continue,
                    (None, Additional::None) if preserve => continue,
                    (None, Additional::None) => {
                        map.remove(&k);
                        continue;
                    }
                };
                if let Some(child) = map.get_mut(&k) {
                    prune_node(child, Some(child_schema), false);
                }
            }
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            if preserve && item_schema.is_none() {
                return;
            }
            for item in items {
                prune_node(item, item_schema, false);
            }
        }
        _ => {}
    }
}

enum Additional<'a> {
    None,
    Any,
    Schema(&'a Value),
}

fn additional_properties(s: &Value) -> Additional<'_> {
    match s.get("additionalProperties") {
        Some(Value::Bool(true)) => Additional::Any,
        Some(v @ Value::Object(_)) => Additional::Schema(v),
        _ => Additional::None,
    }
}

fn flag(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool) == Some(true)
}

/// Applies `default`s the way the API server does: a missing property with a `default` gets a
/// copy of it (and that copy's own nested defaults); objects that do not exist are not created.
/// A `null` in a non-nullable field is dropped first, so that its default (if any) applies;
/// `nullable: true` keeps the `null`.
pub fn apply_defaults(obj: &mut Value, schema: &Value) {
    default_node(obj, schema);
}

fn default_node(value: &mut Value, s: &Value) {
    match value {
        Value::Object(map) => {
            let props = s.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (k, ps) in props {
                    if map.get(k).is_some_and(Value::is_null) && !flag(ps, "nullable") {
                        map.remove(k);
                    }
                    if !map.contains_key(k)
                        && let Some(d) = ps.get("default")
                    {
                        map.insert(k.clone(), d.clone());
                    }
                }
            }
            let additional = additional_properties(s);
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let child_schema = match (props.and_then(|p| p.get(&k)), &additional) {
                    (Some(cs), _) => cs,
                    (None, Additional::Schema(cs)) => cs,
                    _ => continue,
                };
                if map[&k].is_null() && !flag(child_schema, "nullable") {
                    match child_schema.get("default") {
                        Some(d) => {
                            map.insert(k.clone(), d.clone());
                        }
                        None => {
                            map.remove(&k);
                            continue;
                        }
                    }
                }
                if let Some(child) = map.get_mut(&k) {
                    default_node(child, child_schema);
                }
            }
        }
        Value::Array(items) => {
            let Some(item_schema) = s.get("items") else {
                return;
            };
            for item in items.iter_mut() {
                if item.is_null()
                    && !flag(item_schema, "nullable")
                    && let Some(d) = item_schema.get("default")
                {
                    *item = d.clone();
                }
                default_node(item, item_schema);
            }
        }
        _ => {}
    }
}

/// Validates `obj` against the schema: type (with `nullable` and `x-kubernetes-int-or-string`),
/// `required`, `enum`, `format` (date-time, date, int32/int64 loosely), `minimum`/`maximum`
/// (and their `exclusive…` flags), `multipleOf`, `pattern`, `minLength`/`maxLength`,
/// `minItems`/`maxItems`, `uniqueItems`, `minProperties`/`maxProperties`, and the branches of
/// `allOf`/`anyOf`/`oneOf`/`not`. `metadata` at the root is the business of object-meta validation.
pub fn validate(obj: &Value, schema: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_node(obj, schema, "", true, &mut errors);
    errors
}

fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The JSON type name the API server reports for a value (`"string"`, `"integer"`, …).
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_matches(v: &Value, ty: &str) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        _ => true,
    }
}

/// `%v` of a Go float64 as used in the OpenAPI messages: `10`, not `10.0`.
fn fmt_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn in_body(path: &str) -> String {
    if path.is_empty() {
        "body".to_string()
    } else {
        format!("{path} in body")
    }
}

fn validate_node(v: &Value, s: &Value, path: &str, is_root: bool, errors: &mut Vec<FieldError>) {
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");

    if v.is_null() {
        if flag(s, "nullable") {
            return;
        }
        if int_or_string || !ty.is_empty() {
            let expected = if int_or_string { "integer,string" } else { ty };
            errors.push(type_error(path, expected, "null"));
        }
        return;
    }
    if int_or_string {
        if !(is_integer(v) || v.is_string()) {
            errors.push(type_error(path, "integer,string", type_name(v)));
            return;
        }
    } else if !ty.is_empty() && !type_matches(v, ty) {
        errors.push(type_error(path, ty, type_name(v)));
        return;
    }

    if let Some(allowed) = s.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| values_equal(a, v))
    {
        let quoted: Vec<String> = allowed
            .iter()
            .map(|a| quote_go(&display_plain(a)))
            .collect();
        errors.push(FieldError {
            kind: FieldErrorKind::NotSupported,
            field: path.to_string(),
            detail: format!("supported values: {}", quoted.join(", ")),
            bad_value: Some(v.clone()),
        });
    }

    match v {
        Value::String(text) => validate_string(text, v, s, path, errors),
        Value::Number(_) => validate_number(v, s, path, errors),
        Value::Array(items) => {
            let len = items.len() as i64;
            if let Some(min) = s.get("minItems").and_then(Value::as_i64)
                && len < min
            {
                errors.push(FieldError::invalid(
                    path,
                    Value::from(len),
                    format!("{} should have at least {min} items", in_body(path)),
                ));
            }
            if let Some(max) = s.get("maxItems").and_then(Value::as_i64)
                && len > max
            {
                // The API server reports `Too many: <n>: must have at most <max> items`; status.rs
                // has no TooMany kind yet, so this renders as an Invalid value with that detail.
                errors.push(FieldError::invalid(
                    path,
                    Value::from(len),
                    format!("must have at most {max} items"),
                ));
            }
            if flag(s, "uniqueItems") {
                for (i, item) in items.iter().enumerate() {
                    if items[..i].iter().any(|prev| values_equal(prev, item)) {
                        errors.push(FieldError {
                            kind: FieldErrorKind::Duplicate,
                            field: format!("{path}[{i}]"),
                            detail: String::new(),
                            bad_value: Some(item.clone()),
                        });
                    }
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_node(item, item_schema, &format!("{path}[{i}]"), false, errors);
                }
            }
        }
        Value::Object(map) => validate_object(map, s, path, is_root, errors),
        _ => {}
    }

    validate_junctors(v, s, path, is_root, errors);
}

fn validate_string(text: &str, v: &Value, s: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let chars = text.chars().count() as i64;
    if let Some(max) = s.get("maxLength").and_then(Value::as_i64)
        && chars > max
    {
        let unit = if max == 1 { "byte" } else { "bytes" };
        errors.push(FieldError::new(
            FieldErrorKind::TooLong,
            path,
            format!("may not be more than {max} {unit}"),
        ));
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_i64)
        && chars < min
    {
        errors.push(FieldError::invalid(
            path,
            v.clone(),
            format!("{} should be at least {min} chars long", in_body(path)),
        ));
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
        && let Ok(re) = regex::Regex::new(pattern)
        && !re.is_match(text)
    {
        errors.push(FieldError::invalid(
            path,
            v.clone(),
            format!("{} should match '{pattern}'", in_body(path)),
        ));
    }
    if let Some(format) = s.get("format").and_then(Value::as_str)
        && !format_ok(format, text)
    {
        errors.push(FieldError::invalid(
            path,
            v.clone(),
            format!(
                "{} must be of type {format}: {}",
                in_body(path),
                quote_go(text)
            ),
        ));
    }
}

/// Formats checked loosely; unknown formats are accepted as the API server accepts them.
fn format_ok(format: &str, text: &str) -> bool {
    match format {
        "date-time" => text.parse::<jiff::Timestamp>().is_ok(),
        "date" => text.parse::<jiff::civil::Date>().is_ok() && text.len() == 10,
        "int-or-string" => true,
        _ => true,
    }
}

fn validate_number(v: &Value, s: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let Some(x) = v.as_f64() else {
        return;
    };
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMaximum");
        if (exclusive && x >= max) || x > max {
            let rel = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            errors.push(FieldError::invalid(
                path,
                v.clone(),
                format!("{} should be {rel} {}", in_body(path), fmt_number(max)),
            ));
        }
    }
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMinimum");
        if (exclusive && x <= min) || x < min {
            let rel = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errors.push(FieldError::invalid(
                path,
                v.clone(),
                format!("{} should be {rel} {}", in_body(path), fmt_number(min)),
            ));
        }
    }
    if let Some(m) = s.get("multipleOf").and_then(Value::as_f64)
        && m > 0.0
        && ((x / m).fract()).abs() > 1e-9
    {
        errors.push(FieldError::invalid(
            path,
            v.clone(),
            format!(
                "{} should be a multiple of {}",
                in_body(path),
                fmt_number(m)
            ),
        ));
    }
}

fn validate_object(
    map: &Map<String, Value>,
    s: &Value,
    path: &str,
    is_root: bool,
    errors: &mut Vec<FieldError>,
) {
    if let Some(required) = s.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(r) {
                errors.push(FieldError::new(
                    FieldErrorKind::Required,
                    child_path(path, r),
                    "",
                ));
            }
        }
    }
    let count = map.len() as i64;
    if let Some(max) = s.get("maxProperties").and_then(Value::as_i64)
        && count > max
    {
        errors.push(FieldError::invalid(
            path,
            Value::from(count),
            format!("{} should have at most {max} properties", in_body(path)),
        ));
    }
    if let Some(min) = s.get("minProperties").and_then(Value::as_i64)
        && count < min
    {
        errors.push(FieldError::invalid(
            path,
            Value::from(count),
            format!("{} should have at least {min} properties", in_body(path)),
        ));
    }
    let props = s.get("properties").and_then(Value::as_object);
    let additional = additional_properties(s);
    // Sorted for a stable error order.
    let sorted: BTreeMap<&String, &Value> = map.iter().collect();
    for (k, child) in sorted {
        if is_root && k == "metadata" {
            continue;
        }
        let embedded_meta = flag(s, "x-kubernetes-embedded-resource")
            && matches!(k.as_str(), "apiVersion" | "kind" | "metadata");
        if embedded_meta && props.is_none_or(|p| !p.contains_key(k)) {
            continue;
        }
        let child_schema = match (props.and_then(|p| p.get(k)), &additional) {
            (Some(cs), _) => cs,
            (None, Additional::Schema(cs)) => cs,
            _ => continue,
        };
        validate_node(child, child_schema, &child_path(path, k), false, errors);
    }
}

/// `allOf` adds its branches' errors; `anyOf`/`oneOf`/`not` report in go-openapi's words.
fn validate_junctors(
    v: &Value,
    s: &Value,
    path: &str,
    is_root: bool,
    errors: &mut Vec<FieldError>,
) {
    let branch_errors = |b: &Value| {
        let mut e = Vec::new();
        validate_node(v, b, path, is_root, &mut e);
        e
    };
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for b in all {
            errors.extend(branch_errors(b));
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        let results: Vec<Vec<FieldError>> = any.iter().map(branch_errors).collect();
        if !results.is_empty() && results.iter().all(|e| !e.is_empty()) {
            errors.extend(results.into_iter().flatten());
            errors.push(FieldError::invalid(
                path,
                v.clone(),
                format!(
                    "{} must validate at least one schema (anyOf)",
                    in_body(path)
                ),
            ));
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let results: Vec<Vec<FieldError>> = one.iter().map(branch_errors).collect();
        let passing = results.iter().filter(|e| e.is_empty()).count();
        if passing == 0 {
            errors.extend(results.into_iter().flatten());
            errors.push(FieldError::invalid(
                path,
                v.clone(),
                format!(
                    "{} must validate one and only one schema (oneOf)",
                    in_body(path)
                ),
            ));
        } else if passing > 1 {
            errors.push(FieldError::invalid(
                path,
                v.clone(),
                format!("{} must validate one and only one schema (oneOf). Found {passing} valid alternatives", in_body(path)),
            ));
        }
    }
    if let Some(not) = s.get("not")
        && branch_errors(not).is_empty()
    {
        errors.push(FieldError::invalid(
            path,
            v.clone(),
            format!("{} must not validate the schema (not)", in_body(path)),
        ));
    }
}

fn type_error(path: &str, expected: &str, actual: &str) -> FieldError {
    FieldError::invalid(
        path,
        Value::String(actual.to_string()),
        format!(
            "{} must be of type {expected}: {}",
            in_body(path),
            quote_go(actual)
        ),
    )
}

/// Numbers compare by value (`1` equals `1.0`), everything else structurally.
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// `fmt.Sprint` of a JSON value: strings bare, everything else as JSON text.
fn display_plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Go's `%q`/`strconv.Quote` for the printable text these messages carry.
fn quote_go(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ApiError;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 2, "maxLength": 8, "pattern": "^[a-z]+$"},
                        "retries": {"type": "integer", "minimum": 0, "maximum": 10, "default": 3},
                        "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
                        "port": {"x-kubernetes-int-or-string": true},
                        "when": {"type": "string", "format": "date-time"},
                        "note": {"type": "string", "nullable": true, "default": "n/a"},
                        "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
                        "policy": {
                            "type": "object",
                            "default": {},
                            "properties": {
                                "timeout": {"type": "string", "default": "5m"},
                                "backoff": {"type": "object", "properties": {"limit": {"type": "integer", "default": 6}}}
                            }
                        },
                        "steps": {"type": "array", "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "weight": {"type": "integer", "default": 1}}
                        }},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                            "properties": {"spec": {"type": "object", "properties": {"x": {"type": "string"}}}}}
                    }
                },
                "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
            }
        })
    }

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn schema_prunes_unknown_fields() {
        let mut obj = json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp",
            "metadata": {"name": "a", "labels": {"x": "y"}},
            "spec": {"name": "web", "bogus": 1, "steps": [{"name": "s", "extra": true}],
                "labels": {"k": "v"}, "policy": {"timeout": "1m", "nope": 0}},
            "status": {"phase": "Running", "junk": "x"},
            "extraTop": 1
        });
        prune(&mut obj, &schema());
        assert_eq!(
            obj,
            json!({
                "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp",
                "metadata": {"name": "a", "labels": {"x": "y"}},
                "spec": {"name": "web", "steps": [{"name": "s"}], "labels": {"k": "v"}, "policy": {"timeout": "1m"}},
                "status": {"phase": "Running"}
            })
        );
    }

    #[test]
    fn schema_prune_respects_preserve_unknown_fields_and_embedded_resources() {
        let mut obj = json!({"spec": {
            "config": {"anything": {"deep": [1, 2]}, "known": {"a": "x", "b": "dropped"}},
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": "1", "y": "2"}, "other": 1},
            "port": "http"
        }});
        prune(&mut obj, &schema());
        assert_eq!(
            obj["spec"]["config"],
            json!({"anything": {"deep": [1, 2]}, "known": {"a": "x"}})
        );
        assert_eq!(
            obj["spec"]["template"],
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": "1"}})
        );
        assert_eq!(obj["spec"]["port"], "http");
    }

    #[test]
    fn schema_prune_keeps_everything_under_preserving_root() {
        let s = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        let mut obj = json!({"apiVersion": "g/v1", "kind": "K", "spec": {"a": {"b": 1}}});
        let before = obj.clone();
        prune(&mut obj, &s);
        assert_eq!(obj, before);
    }

    #[test]
    fn schema_defaults_nested() {
        let mut obj = json!({"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "a"},
            "spec": {"name": "web", "steps": [{"name": "one"}, {"name": "two", "weight": 5}], "policy": {"backoff": {}}}});
        apply_defaults(&mut obj, &schema());
        let spec = &obj["spec"];
        assert_eq!(spec["retries"], 3);
        assert_eq!(spec["mode"], "safe");
        assert_eq!(spec["note"], "n/a");
        assert_eq!(
            spec["steps"],
            json!([{"name": "one", "weight": 1}, {"name": "two", "weight": 5}])
        );
        assert_eq!(
            spec["policy"],
            json!({"timeout": "5m", "backoff": {"limit": 6}})
        );
        assert!(
            obj.get("status").is_none(),
            "objects without a default are not created"
        );
    }

    #[test]
    fn schema_defaulted_object_gets_its_own_defaults_but_absent_children_stay_absent() {
        let mut obj = json!({"spec": {"name": "web"}});
        apply_defaults(&mut obj, &schema());
        // `policy` defaults to {} and then gets `timeout`; `backoff` has no default of its own.
        assert_eq!(obj["spec"]["policy"], json!({"timeout": "5m"}));
    }

    #[test]
    fn schema_defaults_respect_nullable() {
        let mut obj = json!({"spec": {"name": "web", "retries": null, "note": null, "when": null}});
        apply_defaults(&mut obj, &schema());
        assert_eq!(
            obj["spec"]["retries"], 3,
            "null in a non-nullable field takes the default"
        );
        assert_eq!(obj["spec"]["note"], Value::Null, "nullable keeps null");
        assert!(
            obj["spec"].get("when").is_none(),
            "non-nullable null without default is dropped"
        );
    }

    #[test]
    fn schema_defaults_do_not_override_given_values() {
        let mut obj = json!({"spec": {"name": "web", "retries": 0, "mode": "fast", "policy": {"timeout": "1s"}}});
        apply_defaults(&mut obj, &schema());
        assert_eq!(obj["spec"]["retries"], 0);
        assert_eq!(obj["spec"]["mode"], "fast");
        assert_eq!(obj["spec"]["policy"]["timeout"], "1s");
    }

    #[test]
    fn schema_validate_reports_wrong_type_like_the_api_server() {
        let obj = json!({"spec": {"name": "web", "retries": "string"}});
        let errors = validate(&obj, &schema());
        assert_eq!(
            messages(&errors),
            vec![
                "spec.retries: Invalid value: \"string\": spec.retries in body must be of type integer: \"string\""
            ]
        );
        let err = ApiError::invalid("lifecycle.keptn.sh", "KeptnApp", "a", &errors);
        assert_eq!(
            err.message,
            "KeptnApp.lifecycle.keptn.sh \"a\" is invalid: spec.retries: Invalid value: \"string\": spec.retries in body must be of type integer: \"string\""
        );
    }

    #[test]
    fn schema_validate_required_enum_and_bounds() {
        let obj =
            json!({"spec": {"retries": 11, "mode": "slow", "tags": ["a", "b", "c"], "port": true}});
        let got = messages(&validate(&obj, &schema()));
        assert_eq!(
            got,
            vec![
                "spec.name: Required value",
                "spec.mode: Unsupported value: \"slow\": supported values: \"fast\", \"safe\"",
                "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
                "spec.retries: Invalid value: 11: spec.retries in body should be less than or equal to 10",
                "spec.tags: Invalid value: 3: must have at most 2 items",
            ]
        );
        let low = json!({"spec": {"name": "web", "retries": -1, "tags": []}});
        assert_eq!(
            messages(&validate(&low, &schema())),
            vec![
                "spec.retries: Invalid value: -1: spec.retries in body should be greater than or equal to 0",
                "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items",
            ]
        );
    }

    #[test]
    fn schema_validate_string_constraints() {
        let obj = json!({"spec": {"name": "ABCDEFGHIJ", "when": "yesterday"}});
        assert_eq!(
            messages(&validate(&obj, &schema())),
            vec![
                "spec.name: Too long: may not be more than 8 bytes",
                "spec.name: Invalid value: \"ABCDEFGHIJ\": spec.name in body should match '^[a-z]+$'",
                "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
            ]
        );
        let short = json!({"spec": {"name": "a", "when": "2026-01-01T10:00:00Z"}});
        assert_eq!(
            messages(&validate(&short, &schema())),
            vec![
                "spec.name: Invalid value: \"a\": spec.name in body should be at least 2 chars long"
            ]
        );
    }

    #[test]
    fn schema_validate_paths_index_into_arrays_and_maps() {
        let obj = json!({"spec": {"name": "web", "steps": [{"name": "ok"}, {"name": 5}], "labels": {"team": 1}}});
        assert_eq!(
            messages(&validate(&obj, &schema())),
            vec![
                "spec.labels.team: Invalid value: \"integer\": spec.labels.team in body must be of type string: \"integer\"",
                "spec.steps[1].name: Invalid value: \"integer\": spec.steps[1].name in body must be of type string: \"integer\"",
            ]
        );
    }

    #[test]
    fn schema_validate_nullable_and_int_or_string() {
        let ok = json!({"spec": {"name": "web", "note": null, "port": 8080}});
        assert!(validate(&ok, &schema()).is_empty());
        let also_ok = json!({"spec": {"name": "web", "port": "http", "retries": 2.0}});
        assert!(validate(&also_ok, &schema()).is_empty());
        let bad = json!({"spec": {"name": null}});
        assert_eq!(
            messages(&validate(&bad, &schema())),
            vec![
                "spec.name: Invalid value: \"null\": spec.name in body must be of type string: \"null\""
            ]
        );
    }

    #[test]
    fn schema_validate_accepts_a_valid_defaulted_object() {
        let mut obj = json!({"apiVersion": "g/v1", "kind": "K", "metadata": {"name": "a", "whatever": 1},
            "spec": {"name": "web", "tags": ["x"], "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {}}}});
        prune(&mut obj, &schema());
        apply_defaults(&mut obj, &schema());
        assert_eq!(validate(&obj, &schema()), vec![]);
    }
}

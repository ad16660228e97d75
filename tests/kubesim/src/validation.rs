//! Validation of built-in kinds (FIDELITY F5, F21) with the API server's field paths and messages:
//! object metadata (names, labels, annotations), pod specs (also inside workload templates),
//! workload selectors, and the update rules (pod spec immutability, scheduling gates that may
//! only be removed, immutable selectors and Job templates).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::status::{FieldError, FieldErrorKind};

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;
const FIELD_IMMUTABLE: &str = "field is immutable";

/// The list of pod spec fields an update may change, as the API server words it.
const UPDATABLE_POD_SPEC_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `msg (e.g. 'a',  or 'b', regex used for validation is 'fmt')`, the apimachinery wording.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn full_match(pattern: &str, value: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(value))
}

/// Messages of `IsDNS1123Subdomain`.
pub fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !full_match(DNS1123_SUBDOMAIN_FMT, value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Messages of `IsDNS1123Label`.
pub fn dns1123_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !full_match(DNS1123_LABEL_FMT, value) {
        errs.push(regex_error(
            DNS1123_LABEL_MSG,
            DNS1123_LABEL_FMT,
            &["my-name", "123-abc"],
        ));
    }
    errs
}

/// Messages of `IsDNS1035Label` (Service names).
pub fn dns1035_label_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !full_match(DNS1035_LABEL_FMT, value) {
        errs.push(regex_error(
            DNS1035_LABEL_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Messages of `IsQualifiedName` (label and annotation keys, scheduling gate names).
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !full_match(QUALIFIED_NAME_FMT, name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Messages of `IsValidLabelValue`.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !full_match(LABEL_VALUE_FMT, value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn invalid_each(path: &str, value: &str, msgs: Vec<String>) -> Vec<FieldError> {
    msgs.into_iter()
        .map(|m| FieldError::invalid(path, Value::String(value.to_string()), m))
        .collect()
}

/// Object metadata of any kind (F5): `name` (or `generateName`, whose generated suffix is still to
/// come) a DNS-1123 subdomain of at most 253 characters, namespace presence, label keys/values
/// and annotation keys/size.
pub fn validate_object_meta(meta: &Value, namespaced: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = str_at(meta, "name");
    let generate_name = str_at(meta, "generateName");
    if name.is_empty() && generate_name.is_empty() {
        errs.push(FieldError::new(
            FieldErrorKind::Required,
            "metadata.name",
            "name or generateName is required",
        ));
    }
    if !generate_name.is_empty() {
        // The prefix may end in '-': the random suffix follows it.
        let masked = match generate_name.strip_suffix('-') {
            Some(p) => format!("{p}a"),
            None => generate_name.to_string(),
        };
        errs.extend(invalid_each(
            "metadata.generateName",
            generate_name,
            dns1123_subdomain_errors(&masked),
        ));
    }
    if !name.is_empty() {
        errs.extend(invalid_each(
            "metadata.name",
            name,
            dns1123_subdomain_errors(name),
        ));
    }
    let namespace = str_at(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::new(
                FieldErrorKind::Required,
                "metadata.namespace",
                "",
            ));
        } else {
            errs.extend(invalid_each(
                "metadata.namespace",
                namespace,
                dns1123_label_errors(namespace),
            ));
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::new(
            FieldErrorKind::Forbidden,
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    errs.extend(validate_labels(&meta["labels"], "metadata.labels"));
    errs.extend(validate_annotations(
        &meta["annotations"],
        "metadata.annotations",
    ));
    errs
}

/// Label keys must be qualified names and values valid label values; errors sit on the map path.
pub fn validate_labels(labels: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(map) = labels.as_object() else {
        return errs;
    };
    for (k, v) in map {
        errs.extend(invalid_each(path, k, qualified_name_errors(k)));
        let value = v.as_str().unwrap_or_default();
        errs.extend(invalid_each(path, value, label_value_errors(value)));
    }
    errs
}

fn validate_annotations(annotations: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(map) = annotations.as_object() else {
        return errs;
    };
    let mut total = 0usize;
    for (k, v) in map {
        errs.extend(invalid_each(
            path,
            k,
            qualified_name_errors(&k.to_lowercase()),
        ));
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::new(
            FieldErrorKind::TooLong,
            path,
            format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"),
        ));
    }
    errs
}

/// Kind-specific create validation (metadata is [`validate_object_meta`]'s business, except the
/// stricter name rules of Namespaces and Services, reported only when the name already passes as
/// a subdomain so that one bad name gives one error).
pub fn validate_builtin_create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = stricter_name_rules(group, kind, &obj["metadata"]);
    let spec = &obj["spec"];
    match (group, kind) {
        ("", "Pod") => {
            errs.extend(validate_pod_spec(spec, "spec"));
            if spec
                .get("ephemeralContainers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                errs.push(FieldError::new(
                    FieldErrorKind::Forbidden,
                    "spec.ephemeralContainers",
                    "cannot be set on create",
                ));
            }
        }
        ("apps", "Deployment")
        | ("apps", "ReplicaSet")
        | ("apps", "StatefulSet")
        | ("apps", "DaemonSet") => {
            errs.extend(validate_workload_spec(kind, spec));
        }
        ("batch", "Job") => errs.extend(validate_job_spec(spec, "spec", true)),
        ("batch", "CronJob") => {
            if str_at(spec, "schedule").is_empty() {
                errs.push(FieldError::new(
                    FieldErrorKind::Required,
                    "spec.schedule",
                    "",
                ));
            }
            errs.extend(validate_job_spec(
                &spec["jobTemplate"]["spec"],
                "spec.jobTemplate.spec",
                false,
            ));
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration")
        | ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            errs.extend(validate_webhooks(obj))
        }
        _ => {}
    }
    errs
}

fn stricter_name_rules(group: &str, kind: &str, meta: &Value) -> Vec<FieldError> {
    let name = str_at(meta, "name");
    if name.is_empty() || !dns1123_subdomain_errors(name).is_empty() {
        return Vec::new();
    }
    match (group, kind) {
        ("", "Namespace") => invalid_each("metadata.name", name, dns1123_label_errors(name)),
        ("", "Service") => invalid_each("metadata.name", name, dns1035_label_errors(name)),
        _ => Vec::new(),
    }
}

fn not_supported(path: &str, value: &Value, allowed: &[&str]) -> FieldError {
    let quoted: Vec<String> = allowed
        .iter()
        .map(|a| Value::String((*a).to_string()).to_string())
        .collect();
    FieldError {
        kind: FieldErrorKind::NotSupported,
        field: path.to_string(),
        detail: format!("supported values: {}", quoted.join(", ")),
        bad_value: Some(value.clone()),
    }
}

/// Validates an enumerated string field: `Required` when empty, `Unsupported value` otherwise.
fn check_enum(errs: &mut Vec<FieldError>, parent: &Value, key: &str, path: &str, allowed: &[&str]) {
    match parent.get(key) {
        None | Some(Value::Null) => errs.push(FieldError::new(
            FieldErrorKind::Required,
            format!("{path}.{key}"),
            "",
        )),
        Some(Value::String(s)) if s.is_empty() => errs.push(FieldError::new(
            FieldErrorKind::Required,
            format!("{path}.{key}"),
            "",
        )),
        Some(v) if !v.as_str().is_some_and(|s| allowed.contains(&s)) => {
            errs.push(not_supported(&format!("{path}.{key}"), v, allowed))
        }
        _ => {}
    }
}

/// A pod spec (a pod's or a template's) at `path`: containers, names, images, enumerations,
/// ports, volumes and scheduling gates. Fields are expected to be defaulted already.
pub fn validate_pod_spec(spec: &Value, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Vec::new();
    let containers = spec["containers"].as_array().unwrap_or(&empty);
    if containers.is_empty() {
        errs.push(FieldError::new(
            FieldErrorKind::Required,
            format!("{path}.containers"),
            "",
        ));
    }
    let mut seen_names: Vec<&str> = Vec::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec[list].as_array().unwrap_or(&empty).iter().enumerate() {
            let cpath = format!("{path}.{list}[{i}]");
            let name = str_at(c, "name");
            if name.is_empty() {
                errs.push(FieldError::new(
                    FieldErrorKind::Required,
                    format!("{cpath}.name"),
                    "",
                ));
            } else {
                errs.extend(invalid_each(
                    &format!("{cpath}.name"),
                    name,
                    dns1123_label_errors(name),
                ));
                if seen_names.contains(&name) {
                    errs.push(FieldError {
                        kind: FieldErrorKind::Duplicate,
                        field: format!("{cpath}.name"),
                        detail: String::new(),
                        bad_value: Some(Value::String(name.to_string())),
                    });
                }
                seen_names.push(name);
            }
            let image = str_at(c, "image");
            if image.is_empty() {
                errs.push(FieldError::new(
                    FieldErrorKind::Required,
                    format!("{cpath}.image"),
                    "",
                ));
            } else if image.trim() != image {
                errs.push(FieldError::invalid(
                    format!("{cpath}.image"),
                    Value::String(image.to_string()),
                    "must not have leading or trailing whitespace",
                ));
            }
            check_enum(
                &mut errs,
                c,
                "imagePullPolicy",
                &cpath,
                &["Always", "IfNotPresent", "Never"],
            );
            check_enum(
                &mut errs,
                c,
                "terminationMessagePolicy",
                &cpath,
                &["File", "FallbackToLogsOnError"],
            );
            for (j, p) in c["ports"].as_array().unwrap_or(&empty).iter().enumerate() {
                let ppath = format!("{cpath}.ports[{j}]");
                let port = p["containerPort"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    errs.push(FieldError::invalid(
                        format!("{ppath}.containerPort"),
                        Value::from(port),
                        "must be between 1 and 65535, inclusive",
                    ));
                }
                check_enum(&mut errs, p, "protocol", &ppath, &["SCTP", "TCP", "UDP"]);
            }
        }
    }
    check_enum(
        &mut errs,
        spec,
        "restartPolicy",
        path,
        &["Always", "OnFailure", "Never"],
    );
    check_enum(
        &mut errs,
        spec,
        "dnsPolicy",
        path,
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
    );
    let mut volume_names: Vec<&str> = Vec::new();
    for (i, v) in spec["volumes"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        let vpath = format!("{path}.volumes[{i}].name");
        let name = str_at(v, "name");
        if name.is_empty() {
            errs.push(FieldError::new(FieldErrorKind::Required, vpath, ""));
            continue;
        }
        errs.extend(invalid_each(&vpath, name, dns1123_label_errors(name)));
        if volume_names.contains(&name) {
            errs.push(FieldError {
                kind: FieldErrorKind::Duplicate,
                field: vpath,
                detail: String::new(),
                bad_value: Some(Value::String(name.to_string())),
            });
        }
        volume_names.push(name);
    }
    let mut gates: Vec<&str> = Vec::new();
    for (i, g) in spec["schedulingGates"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        let gpath = format!("{path}.schedulingGates[{i}]");
        let name = str_at(g, "name");
        errs.extend(invalid_each(&gpath, name, qualified_name_errors(name)));
        if gates.contains(&name) {
            errs.push(FieldError {
                kind: FieldErrorKind::Duplicate,
                field: gpath,
                detail: String::new(),
                bad_value: Some(Value::String(name.to_string())),
            });
        }
        gates.push(name);
    }
    errs
}

/// Go's `%#v` of a `map[string]string`, as the API server prints label maps in messages.
fn go_string_map(v: &Value) -> String {
    match v.as_object() {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            let parts: Vec<String> = sorted
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        Value::String((*k).clone()),
                        Value::String(v.as_str().unwrap_or_default().to_string())
                    )
                })
                .collect();
            format!("map[string]string{{{}}}", parts.join(", "))
        }
    }
}

/// Go's `%#v` of a `v1.LabelSelector`.
fn go_label_selector(sel: &Value) -> String {
    let exprs = match sel["matchExpressions"].as_array() {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let values = match e["values"].as_array() {
                        None => "[]string(nil)".to_string(),
                        Some(vs) => format!(
                            "[]string{{{}}}",
                            vs.iter()
                                .map(
                                    |v| Value::String(v.as_str().unwrap_or_default().to_string())
                                        .to_string()
                                )
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        Value::String(str_at(e, "key").to_string()),
                        Value::String(str_at(e, "operator").to_string())
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_string_map(&sel["matchLabels"])
    )
}

/// An `Invalid value` whose value is rendered Go-style inside the detail.
fn invalid_go(path: &str, go_value: String, msg: &str) -> FieldError {
    FieldError::new(FieldErrorKind::Invalid, path, format!("{go_value}: {msg}"))
}

/// Whether a label selector matches a label set (`matchLabels` and `matchExpressions`).
pub fn selector_matches(sel: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(m) = sel["matchLabels"].as_object()
        && !m.iter().all(|(k, v)| get(k) == v.as_str())
    {
        return false;
    }
    sel["matchExpressions"].as_array().is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = str_at(e, "key");
            let values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match str_at(e, "operator") {
                "In" => get(key).is_some_and(|v| values.contains(&v)),
                "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
                "Exists" => get(key).is_some(),
                "DoesNotExist" => get(key).is_none(),
                _ => false,
            }
        })
    })
}

fn selector_is_empty(sel: &Value) -> bool {
    sel["matchLabels"].as_object().is_none_or(Map::is_empty)
        && sel["matchExpressions"].as_array().is_none_or(Vec::is_empty)
}

fn non_negative(errs: &mut Vec<FieldError>, spec: &Value, key: &str, path: &str) {
    if let Some(n) = spec.get(key).and_then(Value::as_i64)
        && n < 0
    {
        errs.push(FieldError::invalid(
            format!("{path}.{key}"),
            Value::from(n),
            "must be greater than or equal to 0",
        ));
    }
}

fn validate_workload_spec(kind: &str, spec: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in ["replicas", "minReadySeconds", "revisionHistoryLimit"] {
        non_negative(&mut errs, spec, key, "spec");
    }
    let selector = &spec["selector"];
    let template = &spec["template"];
    if !selector.is_object() {
        errs.push(FieldError::new(
            FieldErrorKind::Required,
            "spec.selector",
            "",
        ));
    } else if selector_is_empty(selector) {
        errs.push(invalid_go(
            "spec.selector",
            go_label_selector(selector),
            &format!("empty selector is invalid for {}", kind.to_lowercase()),
        ));
    } else if !selector_matches(selector, &template["metadata"]["labels"]) {
        errs.push(invalid_go(
            "spec.template.metadata.labels",
            go_string_map(&template["metadata"]["labels"]),
            "`selector` does not match template `labels`",
        ));
    }
    // Template label errors sit at `<path>.template.labels`; only the selector check names
    // `metadata.labels`.
    errs.extend(validate_labels(
        &template["metadata"]["labels"],
        "spec.template.labels",
    ));
    errs.extend(validate_pod_spec(&template["spec"], "spec.template.spec"));
    if let Some(policy) = template["spec"].get("restartPolicy")
        && policy
            .as_str()
            .is_some_and(|p| !p.is_empty() && p != "Always")
    {
        errs.push(not_supported(
            "spec.template.spec.restartPolicy",
            policy,
            &["Always"],
        ));
    }
    if template["spec"]
        .get("activeDeadlineSeconds")
        .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::new(
            FieldErrorKind::Forbidden,
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    if kind == "Deployment"
        && str_at(&spec["strategy"], "type") == "Recreate"
        && spec["strategy"]
            .get("rollingUpdate")
            .is_some_and(|v| !v.is_null())
    {
        errs.push(FieldError::new(
            FieldErrorKind::Forbidden,
            "spec.strategy.rollingUpdate",
            "may not be specified when strategy `type` is 'Recreate'",
        ));
    }
    errs
}

/// A Job spec at `path`. On create the selector is generated later (at persist time) unless
/// `manualSelector` is set, so only a given selector is checked against the template labels.
fn validate_job_spec(spec: &Value, path: &str, is_job: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ] {
        non_negative(&mut errs, spec, key, path);
    }
    let template = &spec["template"];
    let selector = &spec["selector"];
    let manual = spec["manualSelector"].as_bool() == Some(true);
    if is_job && manual && !selector.is_object() {
        errs.push(FieldError::new(
            FieldErrorKind::Required,
            format!("{path}.selector"),
            "",
        ));
    }
    if selector.is_object()
        && !selector_is_empty(selector)
        && !selector_matches(selector, &template["metadata"]["labels"])
    {
        errs.push(invalid_go(
            &format!("{path}.template.metadata.labels"),
            go_string_map(&template["metadata"]["labels"]),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(validate_labels(
        &template["metadata"]["labels"],
        &format!("{path}.template.labels"),
    ));
    errs.extend(validate_pod_spec(
        &template["spec"],
        &format!("{path}.template.spec"),
    ));
    if let Some(policy) = template["spec"].get("restartPolicy")
        && !policy
            .as_str()
            .is_some_and(|p| p == "OnFailure" || p == "Never")
    {
        errs.push(not_supported(
            &format!("{path}.template.spec.restartPolicy"),
            policy,
            &["OnFailure", "Never"],
        ));
    }
    errs
}

fn validate_webhooks(cfg: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let empty = Vec::new();
    for (i, w) in cfg["webhooks"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        let wpath = format!("webhooks[{i}]");
        let name = str_at(w, "name");
        if name.is_empty() {
            errs.push(FieldError::new(
                FieldErrorKind::Required,
                format!("{wpath}.name"),
                "",
            ));
        } else {
            errs.extend(invalid_each(
                &format!("{wpath}.name"),
                name,
                dns1123_subdomain_errors(name),
            ));
            if name.split('.').count() < 3 {
                errs.push(FieldError::invalid(
                    format!("{wpath}.name"),
                    Value::String(name.to_string()),
                    "should be a domain with at least three segments separated by dots",
                ));
            }
            if names.contains(&name) {
                errs.push(FieldError {
                    kind: FieldErrorKind::Duplicate,
                    field: format!("{wpath}.name"),
                    detail: String::new(),
                    bad_value: Some(Value::String(name.to_string())),
                });
            }
            names.push(name);
        }
        match w.get("sideEffects") {
            None | Some(Value::Null) => errs.push(FieldError::new(
                FieldErrorKind::Required,
                format!("{wpath}.sideEffects"),
                "must specify one of None, NoneOnDryRun",
            )),
            Some(v)
                if !v
                    .as_str()
                    .is_some_and(|s| s == "None" || s == "NoneOnDryRun") =>
            {
                errs.push(not_supported(
                    &format!("{wpath}.sideEffects"),
                    v,
                    &["None", "NoneOnDryRun"],
                ))
            }
            _ => {}
        }
        if w["admissionReviewVersions"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            errs.push(FieldError::new(
                FieldErrorKind::Required,
                format!("{wpath}.admissionReviewVersions"),
                "must specify one of v1, v1beta1",
            ));
        }
        let cc = &w["clientConfig"];
        let has_url = cc.get("url").is_some_and(|v| !v.is_null());
        let has_service = cc.get("service").is_some_and(|v| !v.is_null());
        if has_url == has_service {
            errs.push(FieldError::new(
                FieldErrorKind::Required,
                format!("{wpath}.clientConfig"),
                "exactly one of url or service is required",
            ));
        }
        if let Some(t) = w["timeoutSeconds"].as_i64()
            && !(1..=30).contains(&t)
        {
            errs.push(FieldError::invalid(
                format!("{wpath}.timeoutSeconds"),
                Value::from(t),
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
    }
    errs
}

/// Update validation: identity fields of the metadata, then the kind's rules — pods (F21), the
/// immutable selectors of Deployments/ReplicaSets/DaemonSets/Jobs, the StatefulSet spec rule, the
/// Job template — followed by the create rules applied to the new object.
pub fn validate_builtin_update(
    group: &str,
    kind: &str,
    old: &Value,
    new: &Value,
) -> Vec<FieldError> {
    let mut errs = validate_meta_update(&old["metadata"], &new["metadata"]);
    let (os, ns) = (&old["spec"], &new["spec"]);
    match (group, kind) {
        ("", "Pod") => {
            errs.extend(validate_pod_spec(ns, "spec"));
            errs.extend(validate_pod_update(os, ns));
            return errs;
        }
        ("apps", "Deployment") | ("apps", "ReplicaSet") | ("apps", "DaemonSet") => {
            immutable_selector(&mut errs, os, ns, "spec.selector");
        }
        ("apps", "StatefulSet") => {
            let mut o = os.clone();
            let mut n = ns.clone();
            for key in [
                "replicas",
                "ordinals",
                "template",
                "updateStrategy",
                "persistentVolumeClaimRetentionPolicy",
                "minReadySeconds",
                "revisionHistoryLimit",
            ] {
                if let Some(m) = o.as_object_mut() {
                    m.remove(key);
                }
                if let Some(m) = n.as_object_mut() {
                    m.remove(key);
                }
            }
            if o != n {
                errs.push(FieldError::new(
                    FieldErrorKind::Forbidden,
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                ));
            }
        }
        ("batch", "Job") => errs.extend(validate_job_update(old, new)),
        _ => {}
    }
    errs.extend(validate_builtin_create(group, kind, new));
    errs
}

fn validate_meta_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // `creationTimestamp` is reset from the old object by the API server rather than rejected.
    for key in ["name", "namespace", "uid"] {
        let (o, n) = (str_at(old, key), str_at(new, key));
        if !o.is_empty() && !n.is_empty() && o != n {
            errs.push(FieldError::invalid(
                format!("metadata.{key}"),
                Value::String(n.to_string()),
                FIELD_IMMUTABLE,
            ));
        }
    }
    errs
}

fn immutable_selector(errs: &mut Vec<FieldError>, os: &Value, ns: &Value, path: &str) {
    if os["selector"] != ns["selector"] {
        errs.push(invalid_go(
            path,
            go_label_selector(&ns["selector"]),
            FIELD_IMMUTABLE,
        ));
    }
}

fn validate_job_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let (os, ns) = (&old["spec"], &new["spec"]);
    immutable_selector(&mut errs, os, ns, "spec.selector");
    for key in ["completionMode", "podFailurePolicy", "backoffLimitPerIndex"] {
        if os.get(key) != ns.get(key) {
            errs.push(FieldError::invalid(
                format!("spec.{key}"),
                ns.get(key).cloned().unwrap_or(Value::Null),
                FIELD_IMMUTABLE,
            ));
        }
    }
    if os["completions"] != ns["completions"] && str_at(ns, "completionMode") != "Indexed" {
        errs.push(FieldError::invalid(
            "spec.completions",
            ns["completions"].clone(),
            FIELD_IMMUTABLE,
        ));
    }
    // While a Job is suspended and has never started, its pod scheduling directives may change.
    let mutable_scheduling = os["suspend"].as_bool() == Some(true)
        && old["status"].get("startTime").is_none_or(Value::is_null);
    let strip = |t: &Value| {
        let mut t = t.clone();
        if mutable_scheduling {
            if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("labels");
                meta.remove("annotations");
            }
            if let Some(spec) = t.get_mut("spec").and_then(Value::as_object_mut) {
                for key in ["nodeSelector", "tolerations", "affinity", "schedulingGates"] {
                    spec.remove(key);
                }
            }
        }
        t
    };
    if strip(&os["template"]) != strip(&ns["template"]) {
        errs.push(FieldError::invalid(
            "spec.template",
            ns["template"].clone(),
            FIELD_IMMUTABLE,
        ));
    }
    errs
}

/// F21: only the fields the API server lets an update change may differ; scheduling gates may
/// only be removed.
fn validate_pod_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Vec::new();
    for list in ["containers", "initContainers"] {
        let (o, n) = (
            old[list].as_array().unwrap_or(&empty),
            new[list].as_array().unwrap_or(&empty),
        );
        if o.len() != n.len() {
            errs.push(FieldError::new(
                FieldErrorKind::Forbidden,
                format!("spec.{list}"),
                "pod updates may not add or remove containers",
            ));
            return errs;
        }
    }

    match (
        old["activeDeadlineSeconds"].as_i64(),
        new["activeDeadlineSeconds"].as_i64(),
    ) {
        (_, Some(n)) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                Value::from(n),
                format!("must be between 0 and {}, inclusive", i32::MAX),
            ));
            return errs;
        }
        (Some(o), Some(n)) if o < n => {
            errs.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                Value::from(n),
                "must be less than or equal to previous value",
            ));
            return errs;
        }
        (Some(_), None) => errs.push(FieldError::invalid(
            "spec.activeDeadlineSeconds",
            Value::Null,
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }

    // Existing tolerations may only change their tolerationSeconds.
    let new_tolerations = new["tolerations"].as_array().unwrap_or(&empty);
    for o in old["tolerations"].as_array().unwrap_or(&empty) {
        let kept = new_tolerations.iter().any(|n| {
            let mut o = o.clone();
            if let Some(m) = o.as_object_mut() {
                match n.get("tolerationSeconds") {
                    Some(s) => m.insert("tolerationSeconds".into(), s.clone()),
                    None => m.remove("tolerationSeconds"),
                };
            }
            &o == n
        });
        if !kept {
            errs.push(FieldError::new(
                FieldErrorKind::Forbidden,
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            ));
            break;
        }
    }

    // Scheduling gates: any gate not present before is an addition.
    let old_gates: Vec<&str> = old["schedulingGates"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|g| str_at(g, "name"))
        .collect();
    let mut added: BTreeMap<usize, &str> = BTreeMap::new();
    let mut last_index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, g) in new["schedulingGates"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        last_index.insert(str_at(g, "name"), i);
    }
    for (name, i) in last_index {
        if !old_gates.contains(&name) {
            added.insert(i, name);
        }
    }
    for (i, name) in added {
        errs.push(FieldError::new(
            FieldErrorKind::Forbidden,
            format!("spec.schedulingGates[{i}].name"),
            format!("only deletion is allowed, but found new scheduling gate '{name}'"),
        ));
    }

    // Everything else must be unchanged once the updatable fields are taken from the old spec.
    let mut munged = new.clone();
    if let Some(m) = munged.as_object_mut() {
        for list in ["containers", "initContainers"] {
            if let (Some(cs), Some(olds)) = (
                m.get_mut(list).and_then(Value::as_array_mut),
                old[list].as_array(),
            ) {
                for (c, o) in cs.iter_mut().zip(olds) {
                    if let Some(cm) = c.as_object_mut() {
                        match o.get("image") {
                            Some(img) => cm.insert("image".into(), img.clone()),
                            None => cm.remove("image"),
                        };
                    }
                }
            }
        }
        for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match old.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
        let old_grace = old["terminationGracePeriodSeconds"].as_i64();
        if old_grace.is_some_and(|g| g < 0)
            && m.get("terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
                == Some(1)
        {
            m.insert(
                "terminationGracePeriodSeconds".into(),
                old["terminationGracePeriodSeconds"].clone(),
            );
        }
        // A gated pod may gain nodeSelector entries (never lose or change them).
        if !old_gates.is_empty() {
            let old_sel = old["nodeSelector"].as_object();
            let new_sel = m.get("nodeSelector").and_then(Value::as_object);
            let only_additions = old_sel.is_none_or(|o| {
                o.iter()
                    .all(|(k, v)| new_sel.is_some_and(|n| n.get(k) == Some(v)))
            });
            if only_additions {
                match old.get("nodeSelector") {
                    Some(v) => m.insert("nodeSelector".into(), v.clone()),
                    None => m.remove("nodeSelector"),
                };
            }
        }
    }
    let emptied = |v: &Value| normalise_empty(v.clone());
    if emptied(&munged) != emptied(old) {
        let diff = spec_diff(old, &munged, "spec");
        errs.push(FieldError::new(
            FieldErrorKind::Forbidden,
            "spec",
            format!(
                "pod updates may not change fields other than {UPDATABLE_POD_SPEC_FIELDS}\n{}",
                diff.join("\n")
            ),
        ));
    }
    errs
}

/// Drops `null`s and empty collections so that an omitted field equals an empty one, as the
/// typed comparison of the API server treats them.
fn normalise_empty(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, normalise_empty(v)))
                .filter(|(_, v)| {
                    !matches!(v, Value::Null) && !v.as_array().is_some_and(Vec::is_empty)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalise_empty).collect()),
        other => other,
    }
}

/// A short `-`/`+` listing of the fields that differ (the API server prints a Go struct diff).
fn spec_diff(old: &Value, new: &Value, path: &str) -> Vec<String> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| {
                    spec_diff(
                        o.get(k).unwrap_or(&Value::Null),
                        n.get(k).unwrap_or(&Value::Null),
                        &format!("{path}.{k}"),
                    )
                })
                .collect()
        }
        (Value::Array(o), Value::Array(n)) if o.len() == n.len() => o
            .iter()
            .zip(n)
            .enumerate()
            .flat_map(|(i, (a, b))| spec_diff(a, b, &format!("{path}[{i}]")))
            .collect(),
        _ if normalise_empty(old.clone()) == normalise_empty(new.clone()) => Vec::new(),
        _ => vec![format!("- {path}: {old}"), format!("+ {path}: {new}")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defaults::apply_builtin_defaults;
    use crate::status::ApiError;
    use serde_json::json;

    fn messages(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    fn gated_pod() -> Value {
        let mut p = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "default", "uid": "u1"},
            "spec": {
                "schedulingGates": [{"name": "portcullis.dev/pre-deployment"}, {"name": "example.com/quota"}],
                "containers": [{"name": "app", "image": "nginx:1.27"}]
            }
        });
        apply_builtin_defaults("", "Pod", &mut p);
        p
    }

    #[test]
    fn object_meta_accepts_dns_subdomain_names_and_generate_name() {
        assert!(
            validate_object_meta(
                &json!({"name": "web.example-1", "namespace": "default"}),
                true
            )
            .is_empty()
        );
        assert!(
            validate_object_meta(
                &json!({"generateName": "web-", "namespace": "default"}),
                true
            )
            .is_empty()
        );
        assert!(validate_object_meta(&json!({"name": "cluster-thing"}), false).is_empty());
    }

    #[test]
    fn object_meta_rejects_bad_names_with_the_api_server_message() {
        let errs = validate_object_meta(&json!({"name": "Web_1", "namespace": "default"}), true);
        assert_eq!(
            messages(&errs),
            vec![
                "metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
        let long = "a".repeat(254);
        let errs = validate_object_meta(&json!({"name": long, "namespace": "default"}), true);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].detail, "must be no more than 253 characters");
        let errs = validate_object_meta(&json!({"namespace": "default"}), true);
        assert_eq!(
            messages(&errs),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        let errs = validate_object_meta(
            &json!({"generateName": "Web-", "namespace": "default"}),
            true,
        );
        assert_eq!(errs[0].field, "metadata.generateName");
    }

    #[test]
    fn object_meta_checks_namespace_scope() {
        assert_eq!(
            messages(&validate_object_meta(&json!({"name": "a"}), true)),
            vec!["metadata.namespace: Required value"]
        );
        assert_eq!(
            messages(&validate_object_meta(
                &json!({"name": "a", "namespace": "x"}),
                false
            )),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
    }

    #[test]
    fn object_meta_label_keys_and_values() {
        let meta = json!({"name": "a", "namespace": "d", "labels": {
            "app.kubernetes.io/name": "web", "bad key": "ok", "ok": "-bad", "long": "x".repeat(64)
        }});
        let got = messages(&validate_object_meta(&meta, true));
        assert_eq!(
            got,
            vec![
                "metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string(),
                format!("metadata.labels: Invalid value: \"{}\": must be no more than 63 characters", "x".repeat(64)),
                "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string(),
            ]
        );
        let ok = json!({"name": "a", "namespace": "d", "labels": {"empty": "", "x/y.z": "A_1"}});
        assert!(validate_object_meta(&ok, true).is_empty());
    }

    #[test]
    fn object_meta_annotation_size_limit() {
        let meta =
            json!({"name": "a", "namespace": "d", "annotations": {"big": "x".repeat(262_145)}});
        assert_eq!(
            messages(&validate_object_meta(&meta, true)),
            vec!["metadata.annotations: Too long: may not be more than 262144 bytes"]
        );
    }

    #[test]
    fn namespace_and_service_names_are_labels() {
        let ns = json!({"metadata": {"name": "team.a"}});
        assert_eq!(
            validate_builtin_create("", "Namespace", &ns)[0].field,
            "metadata.name"
        );
        assert!(
            validate_builtin_create("", "Namespace", &json!({"metadata": {"name": "team-a"}}))
                .is_empty()
        );
        let svc = json!({"metadata": {"name": "1web"}, "spec": {}});
        assert!(
            validate_builtin_create("", "Service", &svc)[0]
                .detail
                .starts_with("a DNS-1035 label")
        );
    }

    #[test]
    fn pod_create_requires_containers_unique_names_and_images() {
        let mut p =
            json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": []}});
        apply_builtin_defaults("", "Pod", &mut p);
        assert_eq!(
            messages(&validate_builtin_create("", "Pod", &p)),
            vec!["spec.containers: Required value"]
        );

        let mut p = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {
            "initContainers": [{"name": "app", "image": "busybox"}],
            "containers": [{"name": "app", "image": "nginx"}, {"name": "side"}, {"name": "Bad", "image": "x"}]}});
        apply_builtin_defaults("", "Pod", &mut p);
        let got = messages(&validate_builtin_create("", "Pod", &p));
        assert_eq!(got[0], "spec.containers[0].name: Duplicate value: \"app\"");
        assert_eq!(got[1], "spec.containers[1].image: Required value");
        assert!(
            got[2].starts_with(
                "spec.containers[2].name: Invalid value: \"Bad\": a lowercase RFC 1123 label"
            ),
            "{got:?}"
        );
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn pod_create_accepts_a_defaulted_pod_and_checks_enums() {
        let p = gated_pod();
        assert_eq!(validate_builtin_create("", "Pod", &p), vec![]);
        let mut bad = p.clone();
        bad["spec"]["restartPolicy"] = json!("Sometimes");
        assert_eq!(
            messages(&validate_builtin_create("", "Pod", &bad)),
            vec![
                "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
            ]
        );
        let mut dup = p.clone();
        dup["spec"]["schedulingGates"] = json!([{"name": "a"}, {"name": "a"}]);
        assert_eq!(
            messages(&validate_builtin_create("", "Pod", &dup)),
            vec!["spec.schedulingGates[1]: Duplicate value: \"a\""]
        );
    }

    #[test]
    fn pod_update_removing_gates_in_any_order_is_allowed() {
        let old = gated_pod();
        let mut new = old.clone();
        new["spec"]["schedulingGates"] = json!([{"name": "example.com/quota"}]);
        assert_eq!(validate_builtin_update("", "Pod", &old, &new), vec![]);
        let mut none = old.clone();
        none["spec"]
            .as_object_mut()
            .unwrap()
            .remove("schedulingGates");
        assert_eq!(validate_builtin_update("", "Pod", &old, &none), vec![]);
        let mut reordered = old.clone();
        reordered["spec"]["schedulingGates"] =
            json!([{"name": "example.com/quota"}, {"name": "portcullis.dev/pre-deployment"}]);
        assert_eq!(validate_builtin_update("", "Pod", &old, &reordered), vec![]);
    }

    #[test]
    fn pod_update_adding_gate_is_forbidden() {
        let old = gated_pod();
        let mut new = old.clone();
        new["spec"]["schedulingGates"] = json!([{"name": "portcullis.dev/pre-deployment"}, {"name": "example.com/quota"}, {"name": "late.dev/gate"}]);
        let errs = validate_builtin_update("", "Pod", &old, &new);
        assert_eq!(
            messages(&errs),
            vec![
                "spec.schedulingGates[2].name: Forbidden: only deletion is allowed, but found new scheduling gate 'late.dev/gate'"
            ]
        );
        let status = ApiError::invalid("", "Pod", "web-0", &errs).to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(
            status["details"]["causes"][0]["reason"],
            "FieldValueForbidden"
        );

        let mut ungated = old.clone();
        ungated["spec"]
            .as_object_mut()
            .unwrap()
            .remove("schedulingGates");
        let mut regated = ungated.clone();
        regated["spec"]["schedulingGates"] = json!([{"name": "portcullis.dev/pre-deployment"}]);
        assert_eq!(
            messages(&validate_builtin_update("", "Pod", &ungated, &regated)),
            vec![
                "spec.schedulingGates[0].name: Forbidden: only deletion is allowed, but found new scheduling gate 'portcullis.dev/pre-deployment'"
            ]
        );
    }

    #[test]
    fn pod_update_renaming_a_gate_is_an_addition() {
        let old = gated_pod();
        let mut new = old.clone();
        new["spec"]["schedulingGates"][0]["name"] = json!("portcullis.dev/other");
        let errs = validate_builtin_update("", "Pod", &old, &new);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.schedulingGates[0].name");
    }

    #[test]
    fn pod_update_allows_image_active_deadline_and_toleration_additions() {
        let old = gated_pod();
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:1.28");
        new["spec"]["activeDeadlineSeconds"] = json!(600);
        new["spec"]["tolerations"].as_array_mut().unwrap().push(json!({"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}));
        new["spec"]["tolerations"][0]["tolerationSeconds"] = json!(60);
        new["metadata"]["labels"] = json!({"added": "yes"});
        new["status"] = json!({"phase": "Running"});
        assert_eq!(validate_builtin_update("", "Pod", &old, &new), vec![]);
        let mut longer = new.clone();
        longer["spec"]["activeDeadlineSeconds"] = json!(700);
        assert_eq!(
            messages(&validate_builtin_update("", "Pod", &new, &longer)),
            vec![
                "spec.activeDeadlineSeconds: Invalid value: 700: must be less than or equal to previous value"
            ]
        );
    }

    #[test]
    fn pod_update_changing_other_spec_fields_is_forbidden_with_the_real_message() {
        let old = gated_pod();
        let mut new = old.clone();
        new["spec"]["restartPolicy"] = json!("Never");
        let errs = validate_builtin_update("", "Pod", &old, &new);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
        assert_eq!(errs[0].kind, FieldErrorKind::Forbidden);
        assert!(
            errs[0].to_string().starts_with("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"),
            "{}",
            errs[0]
        );
        assert!(
            errs[0]
                .detail
                .contains("- spec.restartPolicy: \"Always\"\n+ spec.restartPolicy: \"Never\""),
            "{}",
            errs[0].detail
        );

        let mut more = old.clone();
        more["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "b", "image": "b:1"}));
        apply_builtin_defaults("", "Pod", &mut more);
        assert_eq!(
            messages(&validate_builtin_update("", "Pod", &old, &more)),
            vec!["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
        let mut tol = old.clone();
        tol["spec"]["tolerations"][0]["effect"] = json!("NoSchedule");
        assert_eq!(
            messages(&validate_builtin_update("", "Pod", &old, &tol)),
            vec![
                "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"
            ]
        );
    }

    #[test]
    fn gated_pod_may_gain_node_selector_entries() {
        let old = gated_pod();
        let mut new = old.clone();
        new["spec"]["nodeSelector"] = json!({"zone": "a"});
        assert_eq!(validate_builtin_update("", "Pod", &old, &new), vec![]);
        let mut ungated = old.clone();
        ungated["spec"]
            .as_object_mut()
            .unwrap()
            .remove("schedulingGates");
        let mut with_selector = ungated.clone();
        with_selector["spec"]["nodeSelector"] = json!({"zone": "a"});
        assert_eq!(
            validate_builtin_update("", "Pod", &ungated, &with_selector)[0].field,
            "spec"
        );
    }

    fn deployment() -> Value {
        let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "d"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}}});
        apply_builtin_defaults("apps", "Deployment", &mut d);
        d
    }

    #[test]
    fn deployment_selector_must_match_template_labels() {
        assert_eq!(
            validate_builtin_create("apps", "Deployment", &deployment()),
            vec![]
        );
        let mut d = deployment();
        d["spec"]["selector"] = json!({"matchLabels": {"app": "api"}});
        let errs = validate_builtin_create("apps", "Deployment", &d);
        assert_eq!(
            messages(&errs),
            vec![
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\", \"tier\":\"fe\"}: `selector` does not match template `labels`"
            ]
        );
        assert_eq!(
            ApiError::invalid("apps", "Deployment", "web", &errs).message,
            "Deployment.apps \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\", \"tier\":\"fe\"}: `selector` does not match template `labels`"
        );
        let mut missing = deployment();
        missing["spec"].as_object_mut().unwrap().remove("selector");
        assert_eq!(
            messages(&validate_builtin_create("apps", "Deployment", &missing)),
            vec!["spec.selector: Required value"]
        );
        let mut never = deployment();
        never["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        assert_eq!(
            messages(&validate_builtin_create("apps", "Deployment", &never)),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
            ]
        );
    }

    #[test]
    fn deployment_template_containers_are_validated_with_template_paths() {
        let mut d = deployment();
        d["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("image");
        assert_eq!(
            messages(&validate_builtin_create("apps", "Deployment", &d)),
            vec!["spec.template.spec.containers[0].image: Required value"]
        );
    }

    #[test]
    fn template_label_errors_sit_on_template_labels() {
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"]["bad key"] = json!("x");
        let errs = validate_builtin_create("apps", "Deployment", &d);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec.template.labels");
    }

    #[test]
    fn workload_selectors_are_immutable() {
        let old = deployment();
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "fe"}});
        new["spec"]["replicas"] = json!(3);
        assert_eq!(
            messages(&validate_builtin_update("apps", "Deployment", &old, &new)),
            vec![
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"fe\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
            ]
        );
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(5);
        scaled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_eq!(
            validate_builtin_update("apps", "Deployment", &old, &scaled),
            vec![]
        );

        let mut ds_old = old.clone();
        apply_builtin_defaults("apps", "DaemonSet", &mut ds_old);
        let mut ds_new = ds_old.clone();
        ds_new["spec"]["selector"]["matchLabels"]["app"] = json!("other");
        assert_eq!(
            validate_builtin_update("apps", "DaemonSet", &ds_old, &ds_new)[0].field,
            "spec.selector"
        );
    }

    #[test]
    fn statefulset_spec_is_immutable_outside_the_allowed_fields() {
        let mut old = deployment();
        old["spec"]["serviceName"] = json!("web");
        let mut ok = old.clone();
        ok["spec"]["replicas"] = json!(4);
        ok["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_eq!(
            validate_builtin_update("apps", "StatefulSet", &old, &ok),
            vec![]
        );
        let mut bad = old.clone();
        bad["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "fe"}});
        assert_eq!(
            messages(&validate_builtin_update("apps", "StatefulSet", &old, &bad)),
            vec![
                "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
            ]
        );
    }

    fn job() -> Value {
        let mut j = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "d", "uid": "u"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}});
        apply_builtin_defaults("batch", "Job", &mut j);
        crate::defaults::job_selector_defaults(&mut j, "u");
        j
    }

    #[test]
    fn job_template_restart_policy_and_immutable_template() {
        assert_eq!(validate_builtin_create("batch", "Job", &job()), vec![]);
        let mut always = job();
        always["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        assert_eq!(
            messages(&validate_builtin_create("batch", "Job", &always)),
            vec![
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
            ]
        );
        let old = job();
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("m:2");
        let errs = validate_builtin_update("batch", "Job", &old, &new);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            (errs[0].field.as_str(), errs[0].detail.as_str()),
            ("spec.template", "field is immutable")
        );
        let mut sel = old.clone();
        sel["spec"]["selector"]["matchLabels"]["x"] = json!("y");
        assert!(
            messages(&validate_builtin_update("batch", "Job", &old, &sel))
                .iter()
                .any(
                    |m| m.starts_with("spec.selector: Invalid value: v1.LabelSelector{")
                        && m.ends_with("field is immutable")
                )
        );
    }

    #[test]
    fn suspended_job_may_change_scheduling_directives() {
        let mut old = job();
        old["spec"]["suspend"] = json!(true);
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["nodeSelector"] = json!({"zone": "a"});
        new["spec"]["suspend"] = json!(false);
        assert_eq!(validate_builtin_update("batch", "Job", &old, &new), vec![]);
    }

    #[test]
    fn metadata_identity_is_immutable() {
        let old = gated_pod();
        let mut new = old.clone();
        new["metadata"]["name"] = json!("other");
        assert_eq!(
            messages(&validate_builtin_update("", "Pod", &old, &new)),
            vec!["metadata.name: Invalid value: \"other\": field is immutable"]
        );
    }

    #[test]
    fn webhook_configuration_required_fields() {
        let mut cfg = json!({"metadata": {"name": "p"}, "webhooks": [
            {"name": "pods.portcullis.dev", "sideEffects": "None", "admissionReviewVersions": ["v1"], "clientConfig": {"service": {"namespace": "n", "name": "s"}}},
            {"name": "short", "clientConfig": {}}
        ]});
        apply_builtin_defaults(
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
            &mut cfg,
        );
        let got = messages(&validate_builtin_create(
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
            &cfg,
        ));
        assert_eq!(
            got,
            vec![
                "webhooks[1].name: Invalid value: \"short\": should be a domain with at least three segments separated by dots",
                "webhooks[1].sideEffects: Required value: must specify one of None, NoneOnDryRun",
                "webhooks[1].admissionReviewVersions: Required value: must specify one of v1, v1beta1",
                "webhooks[1].clientConfig: Required value: exactly one of url or service is required",
            ]
        );
    }

    #[test]
    fn selector_matching_covers_expressions() {
        let labels = json!({"app": "web", "tier": "fe"});
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]}),
            &labels
        ));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]}),
            &labels
        ));
    }
}

//! Defaulting of built-in kinds (FIDELITY F16): what the real API server fills in before mutating
//! admission webhooks see an object — the scheme defaults of the `v1`, `apps/v1`, `batch/v1` and
//! `admissionregistration.k8s.io/v1` types plus the built-in admission plugins that run ahead of
//! the webhooks (ServiceAccount, DefaultTolerationSeconds, Priority).
//!
//! Every function is idempotent: the core runs it before and again after mutating admission.

use rand::Rng;
use serde_json::{Map, Value, json};

/// Alphabet of generated name suffixes (`generateName`, `kube-api-access-…`).
pub const NAME_SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Mount path of the service-account token volume in every container.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Five random characters from [`NAME_SUFFIX_ALPHABET`], as appended to `generateName`.
pub fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| NAME_SUFFIX_ALPHABET[rng.random_range(0..NAME_SUFFIX_ALPHABET.len())] as char)
        .collect()
}

/// Applies the API server's defaults for a built-in kind; other kinds are left alone.
pub fn apply_builtin_defaults(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("", "Pod") => default_pod(obj),
        ("", "PodTemplate") => {
            if let Some(t) = obj.get_mut("template") {
                default_pod_template(t);
            }
        }
        ("", "ReplicationController") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "replicas", json!(1));
            }
            default_template_at(obj);
        }
        ("apps", "Deployment") => default_deployment(obj),
        ("apps", "ReplicaSet") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "replicas", json!(1));
            }
            default_template_at(obj);
        }
        ("apps", "StatefulSet") => default_statefulset(obj),
        ("apps", "DaemonSet") => default_daemonset(obj),
        ("batch", "Job") => default_job(obj),
        ("batch", "CronJob") => default_cronjob(obj),
        ("", "Namespace") => default_namespace(obj),
        ("", "Service") => default_service(obj),
        ("", "Secret") => {
            if let Some(m) = obj.as_object_mut() {
                set_default(m, "type", json!("Opaque"));
            }
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            default_webhooks(obj, true)
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            default_webhooks(obj, false)
        }
        _ => {}
    }
}

/// The selector and pod-template labels a Job gets at persist time, when its uid is known
/// (unless `spec.manualSelector` is true): template labels `batch.kubernetes.io/controller-uid`,
/// `batch.kubernetes.io/job-name`, `controller-uid`, `job-name` (kept when already present), and
/// `spec.selector.matchLabels["batch.kubernetes.io/controller-uid"]`.
pub fn job_selector_defaults(job: &mut Value, uid: &str) {
    let name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(spec) = obj_mut(job, "spec") else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let template = child(spec, "template");
    let metadata = child(template, "metadata");
    let labels = child(metadata, "labels");
    for key in ["job-name", "batch.kubernetes.io/job-name"] {
        set_default(labels, key, json!(name));
    }
    for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
        set_default(labels, key, json!(uid));
    }
    let selector = child(spec, "selector");
    let match_labels = child(selector, "matchLabels");
    set_default(
        match_labels,
        "batch.kubernetes.io/controller-uid",
        json!(uid),
    );
}

fn default_pod(pod: &mut Value) {
    let Some(spec) = obj_mut(pod, "spec") else {
        return;
    };
    default_pod_spec(spec);
    for list in ["initContainers", "containers"] {
        for c in array_objects(spec, list) {
            requests_from_limits(c);
        }
    }
    set_default(spec, "enableServiceLinks", json!(true));
    service_account_admission(spec);
    default_toleration_seconds(spec);
    priority_admission(spec);

    let qos = qos_class(spec);
    let Some(pod) = pod.as_object_mut() else {
        return;
    };
    let status = child(pod, "status");
    set_default(status, "phase", json!("Pending"));
    // Recomputed on every pass so that resources added by a mutating webhook count; pod
    // resources cannot change the class afterwards.
    status.insert("qosClass".into(), json!(qos));
}

fn default_template_at(obj: &mut Value) {
    if let Some(t) = obj.get_mut("spec").and_then(|s| s.get_mut("template")) {
        default_pod_template(t);
    }
}

/// A pod template gets the pod-spec scheme defaults, not those of the admission plugins.
fn default_pod_template(template: &mut Value) {
    if let Some(spec) = obj_mut(template, "spec") {
        default_pod_spec(spec);
    }
}

fn default_pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    // v1 carries the deprecated `serviceAccount` alongside `serviceAccountName`.
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let legacy = spec
        .get("serviceAccount")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if sa.is_empty() && !legacy.is_empty() {
        spec.insert("serviceAccountName".into(), json!(legacy));
    } else if !sa.is_empty() {
        spec.insert("serviceAccount".into(), json!(sa));
    }
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in array_objects(spec, list) {
            default_container(c, host_network);
        }
    }
    for v in array_objects(spec, "volumes") {
        default_volume(v);
    }
}

fn default_container(c: &mut Map<String, Value>, host_network: bool) {
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let policy = if image_tag(image) == "latest" {
        "Always"
    } else {
        "IfNotPresent"
    };
    set_default(c, "imagePullPolicy", json!(policy));
    set_default(c, "resources", json!({}));
    for p in array_objects(c, "ports") {
        set_default(p, "protocol", json!("TCP"));
        if host_network && let Some(port) = p.get("containerPort").cloned() {
            set_default(p, "hostPort", port);
        }
    }
    for e in array_objects(c, "env") {
        if let Some(field_ref) = e
            .get_mut("valueFrom")
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            set_default(field_ref, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            if let Some(http) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                set_default(http, "path", json!("/"));
                set_default(http, "scheme", json!("HTTP"));
            }
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(http) = c
            .get_mut("lifecycle")
            .and_then(|l| l.get_mut(hook))
            .and_then(|h| h.get_mut("httpGet"))
            .and_then(Value::as_object_mut)
        {
            set_default(http, "path", json!("/"));
            set_default(http, "scheme", json!("HTTP"));
        }
    }
}

/// The tag the image reference carries; `latest` when it has neither tag nor digest.
fn image_tag(image: &str) -> &str {
    if image.is_empty() {
        return "";
    }
    let (name, has_digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, tag)) => tag,
        None if has_digest => "",
        None => "latest",
    }
}

fn default_volume(v: &mut Map<String, Value>) {
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
            set_default(s, "defaultMode", json!(420));
        }
    }
    if let Some(s) = v.get_mut("projected").and_then(Value::as_object_mut) {
        for src in array_objects(s, "sources") {
            if let Some(items) = src
                .get_mut("downwardAPI")
                .and_then(|d| d.get_mut("items"))
                .and_then(Value::as_array_mut)
            {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(f) = item.get_mut("fieldRef").and_then(Value::as_object_mut) {
                        set_default(f, "apiVersion", json!("v1"));
                    }
                }
            }
            if let Some(t) = src
                .get_mut("serviceAccountToken")
                .and_then(Value::as_object_mut)
            {
                set_default(t, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
        set_default(h, "type", json!(""));
    }
    // A volume without any source is an emptyDir.
    if v.keys().all(|k| k == "name") {
        v.insert("emptyDir".into(), json!({}));
    }
}

/// Pod requests default to the limits where only limits are given.
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let requests = child(res, "requests");
    for (k, v) in limits {
        requests.entry(k).or_insert(v);
    }
}

/// The ServiceAccount admission plugin: `default` account and the projected token volume mounted
/// in every container, unless `automountServiceAccountToken: false`.
fn service_account_admission(spec: &mut Map<String, Value>) {
    if spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .is_empty()
    {
        spec.insert("serviceAccountName".into(), json!("default"));
    }
    let sa = spec["serviceAccountName"].clone();
    spec.insert("serviceAccount".into(), sa);
    if spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        == Some(false)
    {
        return;
    }
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .filter_map(|v| v["name"].as_str())
                .find(|n| n.starts_with("kube-api-access-"))
                .map(str::to_string)
        });
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| format!("kube-api-access-{}", random_suffix()));
    let mount =
        json!({"name": volume_name, "readOnly": true, "mountPath": SERVICE_ACCOUNT_MOUNT_PATH});
    let mut needs_volume = false;
    for list in ["initContainers", "containers"] {
        for c in array_objects(spec, list) {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            if !mounts
                .iter()
                .any(|m| m["mountPath"] == SERVICE_ACCOUNT_MOUNT_PATH)
            {
                mounts.push(mount.clone());
                needs_volume = true;
            }
        }
    }
    if existing.is_none() && needs_volume {
        let volume = json!({
            "name": volume_name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
                ]
            }
        });
        if let Some(vs) = spec
            .entry("volumes")
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            vs.push(volume);
        }
    }
}

/// The DefaultTolerationSeconds admission plugin: tolerate not-ready and unreachable nodes for 300 s.
fn default_toleration_seconds(spec: &mut Map<String, Value>) {
    let Some(tolerations) = spec
        .entry("tolerations")
        .or_insert_with(|| json!([]))
        .as_array_mut()
    else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let tolerated = tolerations.iter().any(|t| {
            let k = t["key"].as_str().unwrap_or_default();
            let effect = t["effect"].as_str().unwrap_or_default();
            (k == key || (k.is_empty() && t["operator"] == "Exists"))
                && (effect.is_empty() || effect == "NoExecute")
        });
        if !tolerated {
            tolerations.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}

/// The Priority admission plugin: priority 0 without a class (no global default class exists),
/// the values of the two built-in system classes, and the preemption policy.
fn priority_admission(spec: &mut Map<String, Value>) {
    let priority = match spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "" => Some(0),
        "system-cluster-critical" => Some(2_000_000_000),
        "system-node-critical" => Some(2_000_001_000),
        _ => None,
    };
    if let Some(p) = priority {
        set_default(spec, "priority", json!(p));
    }
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
}

/// `Guaranteed`, `Burstable` or `BestEffort` from the cpu/memory requests and limits.
fn qos_class(spec: &Map<String, Value>) -> &'static str {
    let mut requests: Vec<(String, f64)> = Vec::new();
    let mut limits: Vec<(String, f64)> = Vec::new();
    let mut guaranteed = true;
    let containers = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten();
    for c in containers {
        let res = &c["resources"];
        let mut found_limits = Vec::new();
        for (section, acc) in [("requests", &mut requests), ("limits", &mut limits)] {
            let Some(m) = res[section].as_object() else {
                continue;
            };
            for name in ["cpu", "memory"] {
                if let Some(q) = m.get(name).and_then(parse_quantity).filter(|q| *q != 0.0) {
                    match acc.iter_mut().find(|(n, _)| n == name) {
                        Some((_, total)) => *total += q,
                        None => acc.push((name.to_string(), q)),
                    }
                    if section == "limits" {
                        found_limits.push(name);
                    }
                }
            }
        }
        if !(found_limits.contains(&"cpu") && found_limits.contains(&"memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (name, req) in &requests {
            let lim = limits.iter().find(|(n, _)| n == name).map(|(_, l)| *l);
            if lim.is_none_or(|l| (l - req).abs() > f64::EPSILON * l.abs().max(1.0)) {
                guaranteed = false;
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// A resource quantity (`500m`, `1Gi`, `2`, `1e3`) as a number.
fn parse_quantity(v: &Value) -> Option<f64> {
    let s = match v {
        Value::Number(n) => return n.as_f64(),
        Value::String(s) => s.trim(),
        _ => return None,
    };
    let suffixes: [(&str, f64); 14] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (suffix, factor) in suffixes {
        if let Some(num) = s.strip_suffix(suffix) {
            return num.parse::<f64>().ok().map(|n| n * factor);
        }
    }
    if let Some(num) = s.strip_suffix('E') {
        return num.parse::<f64>().ok().map(|n| n * 1e18);
    }
    s.parse::<f64>().ok()
}

fn default_deployment(obj: &mut Value) {
    if let Some(spec) = obj_mut(obj, "spec") {
        set_default(spec, "replicas", json!(1));
        let strategy = child(spec, "strategy");
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            let ru = child(strategy, "rollingUpdate");
            set_default(ru, "maxUnavailable", json!("25%"));
            set_default(ru, "maxSurge", json!("25%"));
        }
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "progressDeadlineSeconds", json!(600));
    }
    default_template_at(obj);
}

fn default_statefulset(obj: &mut Value) {
    if let Some(spec) = obj_mut(obj, "spec") {
        set_default(spec, "replicas", json!(1));
        set_default(spec, "podManagementPolicy", json!("OrderedReady"));
        let strategy = child(spec, "updateStrategy");
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            let ru = child(strategy, "rollingUpdate");
            set_default(ru, "partition", json!(0));
        }
        set_default(spec, "revisionHistoryLimit", json!(10));
        let retention = child(spec, "persistentVolumeClaimRetentionPolicy");
        set_default(retention, "whenDeleted", json!("Retain"));
        set_default(retention, "whenScaled", json!("Retain"));
        for pvc in array_objects(spec, "volumeClaimTemplates") {
            if let Some(s) = pvc.get_mut("spec").and_then(Value::as_object_mut) {
                set_default(s, "volumeMode", json!("Filesystem"));
            }
            let status = child(pvc, "status");
            set_default(status, "phase", json!("Pending"));
        }
    }
    default_template_at(obj);
}

fn default_daemonset(obj: &mut Value) {
    if let Some(spec) = obj_mut(obj, "spec") {
        let strategy = child(spec, "updateStrategy");
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            let ru = child(strategy, "rollingUpdate");
            set_default(ru, "maxUnavailable", json!(1));
            set_default(ru, "maxSurge", json!(0));
        }
        set_default(spec, "revisionHistoryLimit", json!(10));
    }
    default_template_at(obj);
}

fn default_job(obj: &mut Value) {
    let template_labels = obj["spec"]["template"]["metadata"]["labels"].clone();
    if let Some(spec) = obj_mut(obj, "spec") {
        if spec.get("completions").is_none_or(Value::is_null)
            && spec.get("parallelism").is_none_or(Value::is_null)
        {
            spec.insert("completions".into(), json!(1));
            spec.insert("parallelism".into(), json!(1));
        }
        set_default(spec, "parallelism", json!(1));
        let backoff = if spec
            .get("backoffLimitPerIndex")
            .is_some_and(|v| !v.is_null())
        {
            i32::MAX as i64
        } else {
            6
        };
        set_default(spec, "backoffLimit", json!(backoff));
        set_default(spec, "completionMode", json!("NonIndexed"));
        set_default(spec, "suspend", json!(false));
        let replacement = if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        set_default(spec, "podReplacementPolicy", json!(replacement));
        if let Some(policy) = spec
            .get_mut("podFailurePolicy")
            .and_then(Value::as_object_mut)
        {
            for rule in array_objects(policy, "rules") {
                for cond in array_objects(rule, "onPodConditions") {
                    set_default(cond, "status", json!("True"));
                }
            }
        }
    }
    // A Job without labels takes its pod template's labels.
    if template_labels.as_object().is_some_and(|m| !m.is_empty())
        && let Some(meta) = obj_mut(obj, "metadata")
        && meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
    {
        meta.insert("labels".into(), template_labels);
    }
    default_template_at(obj);
}

fn default_cronjob(obj: &mut Value) {
    if let Some(spec) = obj_mut(obj, "spec") {
        set_default(spec, "concurrencyPolicy", json!("Allow"));
        set_default(spec, "suspend", json!(false));
        set_default(spec, "successfulJobsHistoryLimit", json!(3));
        set_default(spec, "failedJobsHistoryLimit", json!(1));
    }
    if let Some(t) = obj
        .get_mut("spec")
        .and_then(|s| s.get_mut("jobTemplate"))
        .and_then(|j| j.get_mut("spec"))
        .and_then(|s| s.get_mut("template"))
    {
        default_pod_template(t);
    }
}

/// The `kubernetes.io/metadata.name` label (set once the name is known: call again after
/// `generateName`), the `kubernetes` finalizer and phase `Active`.
fn default_namespace(obj: &mut Value) {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let Some(ns) = obj.as_object_mut() else {
        return;
    };
    if !name.is_empty() {
        let meta = child(ns, "metadata");
        let labels = child(meta, "labels");
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    let spec = child(ns, "spec");
    set_default(spec, "finalizers", json!(["kubernetes"]));
    let status = child(ns, "status");
    set_default(status, "phase", json!("Active"));
}

/// Scheme defaults of a Service; cluster IP allocation is the registry's business.
fn default_service(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if ty != "ExternalName" {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    for p in array_objects(spec, "ports") {
        set_default(p, "protocol", json!("TCP"));
        if let Some(port) = p.get("port").cloned() {
            set_default(p, "targetPort", port);
        }
    }
}

/// Defaults of `admissionregistration.k8s.io/v1` webhooks.
fn default_webhooks(obj: &mut Value, mutating: bool) {
    let Some(cfg) = obj.as_object_mut() else {
        return;
    };
    for w in array_objects(cfg, "webhooks") {
        set_default(w, "failurePolicy", json!("Fail"));
        set_default(w, "matchPolicy", json!("Equivalent"));
        set_default(w, "namespaceSelector", json!({}));
        set_default(w, "objectSelector", json!({}));
        set_default(w, "timeoutSeconds", json!(10));
        if mutating {
            set_default(w, "reinvocationPolicy", json!("Never"));
        }
        for r in array_objects(w, "rules") {
            set_default(r, "scope", json!("*"));
        }
        if let Some(svc) = w
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            set_default(svc, "port", json!(443));
        }
    }
}

/// Sets `key` when it is missing or `null`.
fn set_default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), value);
    }
}

/// The object at `key`, created empty when missing or not an object.
fn child<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = m.entry(key.to_string()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    match slot {
        Value::Object(o) => o,
        _ => unreachable!("replaced by an object above"),
    }
}

/// The existing object at `key` of `v`.
fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    v.get_mut(key).and_then(Value::as_object_mut)
}

/// The object entries of the array at `key` (missing or non-array: none).
fn array_objects<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    m.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "initContainers": [{"name": "init", "image": "busybox:1.36"}],
                "containers": [
                    {"name": "app", "image": "nginx", "ports": [{"containerPort": 80}],
                     "env": [{"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
                     "readinessProbe": {"httpGet": {"port": 80}}},
                    {"name": "side", "image": "registry.local:5000/envoy@sha256:abcd"}
                ]
            }
        })
    }

    fn token_volume_name(p: &Value) -> String {
        p["spec"]["volumes"][0]["name"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn pod_gets_scheme_and_admission_plugin_defaults() {
        let mut p = pod();
        apply_builtin_defaults("", "Pod", &mut p);
        let spec = &p["spec"];
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["securityContext"], json!({}));
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        assert_eq!(
            spec["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ])
        );
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
    }

    #[test]
    fn pod_containers_get_pull_policy_termination_message_and_probe_defaults() {
        let mut p = pod();
        apply_builtin_defaults("", "Pod", &mut p);
        let app = &p["spec"]["containers"][0];
        assert_eq!(app["imagePullPolicy"], "Always", "no tag means latest");
        assert_eq!(app["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(app["terminationMessagePolicy"], "File");
        assert_eq!(app["resources"], json!({}));
        assert_eq!(app["ports"][0]["protocol"], "TCP");
        assert_eq!(app["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(
            app["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(
            p["spec"]["containers"][1]["imagePullPolicy"], "IfNotPresent",
            "digest, registry port is no tag"
        );
        assert_eq!(
            p["spec"]["initContainers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        assert_eq!(image_tag("nginx:latest"), "latest");
        assert_eq!(image_tag("nginx"), "latest");
        assert_eq!(image_tag("localhost:5000/nginx"), "latest");
        assert_eq!(image_tag("localhost:5000/nginx:1.2"), "1.2");
        assert_eq!(image_tag("nginx@sha256:00"), "");
    }

    #[test]
    fn pod_gets_projected_token_volume_mounted_in_every_container() {
        let mut p = pod();
        apply_builtin_defaults("", "Pod", &mut p);
        let name = token_volume_name(&p);
        let suffix = name.strip_prefix("kube-api-access-").expect("prefix");
        assert_eq!(suffix.len(), 5);
        assert!(
            suffix.bytes().all(|b| NAME_SUFFIX_ALPHABET.contains(&b)),
            "{suffix}"
        );
        assert_eq!(p["spec"]["volumes"][0]["projected"]["defaultMode"], 420);
        assert_eq!(
            p["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(
            p["spec"]["volumes"][0]["projected"]["sources"][1]["configMap"]["name"],
            "kube-root-ca.crt"
        );
        let mount = json!({"name": name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"});
        for c in ["initContainers", "containers"] {
            for container in p["spec"][c].as_array().unwrap() {
                assert_eq!(container["volumeMounts"], json!([mount.clone()]), "{c}");
            }
        }
    }

    #[test]
    fn pod_defaults_are_idempotent_across_admission() {
        let mut p = pod();
        apply_builtin_defaults("", "Pod", &mut p);
        let once = p.clone();
        apply_builtin_defaults("", "Pod", &mut p);
        assert_eq!(
            p, once,
            "second pass (after mutating admission) must not add a second token volume"
        );
        // A container added by a webhook gets the existing token volume mounted.
        p["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "added", "image": "x:1"}));
        apply_builtin_defaults("", "Pod", &mut p);
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(
            p["spec"]["containers"][2]["volumeMounts"][0]["name"],
            token_volume_name(&once)
        );
    }

    #[test]
    fn pod_without_automount_gets_no_token_volume_and_keeps_given_fields() {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {
            "automountServiceAccountToken": false, "serviceAccountName": "builder", "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5, "priorityClassName": "system-node-critical",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{"name": "c", "image": "x:1", "imagePullPolicy": "Never"}]}});
        apply_builtin_defaults("", "Pod", &mut p);
        assert!(p["spec"].get("volumes").is_none());
        assert!(p["spec"]["containers"][0].get("volumeMounts").is_none());
        assert_eq!(p["spec"]["serviceAccount"], "builder");
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 5);
        assert_eq!(p["spec"]["priority"], 2_000_001_000);
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Never");
        assert_eq!(
            p["spec"]["tolerations"],
            json!([{"operator": "Exists"}]),
            "a wildcard toleration already tolerates both taints"
        );
    }

    #[test]
    fn pod_qos_class_follows_requests_and_limits() {
        let with = |resources: Value| {
            let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:1", "resources": resources}]}});
            apply_builtin_defaults("", "Pod", &mut p);
            p
        };
        let g = with(json!({"limits": {"cpu": "500m", "memory": "128Mi"}}));
        assert_eq!(g["status"]["qosClass"], "Guaranteed");
        assert_eq!(
            g["spec"]["containers"][0]["resources"]["requests"],
            json!({"cpu": "500m", "memory": "128Mi"})
        );
        assert_eq!(
            with(
                json!({"requests": {"cpu": "0.5", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "134217728"}})
            )["status"]["qosClass"],
            "Guaranteed"
        );
        assert_eq!(
            with(json!({"requests": {"cpu": "100m"}}))["status"]["qosClass"],
            "Burstable"
        );
        assert_eq!(
            with(
                json!({"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"cpu": "200m", "memory": "1Gi"}})
            )["status"]["qosClass"],
            "Burstable"
        );
    }

    #[test]
    fn volumes_get_default_modes() {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"automountServiceAccountToken": false, "containers": [{"name": "c", "image": "x:1"}],
            "volumes": [{"name": "s", "secret": {"secretName": "s"}}, {"name": "c", "configMap": {"name": "c"}}, {"name": "e"}]}});
        apply_builtin_defaults("", "Pod", &mut p);
        assert_eq!(p["spec"]["volumes"][0]["secret"]["defaultMode"], 420);
        assert_eq!(p["spec"]["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(p["spec"]["volumes"][2]["emptyDir"], json!({}));
    }

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}})
    }

    #[test]
    fn deployment_gets_workload_and_template_defaults_without_token_volume() {
        let mut d = deployment();
        apply_builtin_defaults("apps", "Deployment", &mut d);
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let tpl = &spec["template"]["spec"];
        assert_eq!(tpl["restartPolicy"], "Always");
        assert_eq!(tpl["dnsPolicy"], "ClusterFirst");
        assert_eq!(tpl["schedulerName"], "default-scheduler");
        assert_eq!(tpl["terminationGracePeriodSeconds"], 30);
        assert_eq!(tpl["securityContext"], json!({}));
        assert_eq!(tpl["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert!(tpl.get("volumes").is_none());
        assert!(tpl.get("serviceAccountName").is_none());
        assert!(tpl.get("enableServiceLinks").is_none());
        assert!(tpl.get("tolerations").is_none());
        assert!(d.get("status").is_none());
    }

    #[test]
    fn recreate_deployment_gets_no_rolling_update_parameters() {
        let mut d = deployment();
        d["spec"]["strategy"] = json!({"type": "Recreate"});
        apply_builtin_defaults("apps", "Deployment", &mut d);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn statefulset_daemonset_replicaset_defaults() {
        let mut s = deployment();
        s["spec"]["volumeClaimTemplates"] =
            json!([{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]);
        apply_builtin_defaults("apps", "StatefulSet", &mut s);
        assert_eq!(s["spec"]["replicas"], 1);
        assert_eq!(s["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            s["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(s["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(
            s["spec"]["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(
            s["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );

        let mut ds = deployment();
        apply_builtin_defaults("apps", "DaemonSet", &mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
        assert!(ds["spec"].get("replicas").is_none());

        let mut rs = deployment();
        apply_builtin_defaults("apps", "ReplicaSet", &mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
        assert_eq!(
            rs["spec"]["template"]["spec"]["containers"][0]["terminationMessagePolicy"],
            "File"
        );
    }

    #[test]
    fn job_defaults_and_persist_time_selector() {
        let mut job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "namespace": "default"},
            "spec": {"template": {"metadata": {"labels": {"app": "m"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}});
        apply_builtin_defaults("batch", "Job", &mut job);
        let spec = &job["spec"];
        assert_eq!(
            (
                spec["completions"].clone(),
                spec["parallelism"].clone(),
                spec["backoffLimit"].clone()
            ),
            (json!(1), json!(1), json!(6))
        );
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert!(spec.get("manualSelector").is_none());
        assert!(
            spec.get("selector").is_none(),
            "the selector needs the uid: persist time"
        );
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(
            job["metadata"]["labels"],
            json!({"app": "m"}),
            "job labels default to the template's"
        );

        job_selector_defaults(&mut job, "0f1e-uid");
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "0f1e-uid"}})
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"app": "m", "batch.kubernetes.io/controller-uid": "0f1e-uid", "batch.kubernetes.io/job-name": "migrate", "controller-uid": "0f1e-uid", "job-name": "migrate"})
        );
    }

    #[test]
    fn job_with_parallelism_only_and_manual_selector() {
        let mut job = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 3, "manualSelector": true,
            "selector": {"matchLabels": {"x": "y"}}, "template": {"metadata": {"labels": {"x": "y"}}, "spec": {"containers": []}}}});
        apply_builtin_defaults("batch", "Job", &mut job);
        assert!(job["spec"].get("completions").is_none());
        assert_eq!(job["spec"]["parallelism"], 3);
        job_selector_defaults(&mut job, "uid");
        assert_eq!(job["spec"]["selector"], json!({"matchLabels": {"x": "y"}}));
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"],
            json!({"x": "y"})
        );
    }

    #[test]
    fn cronjob_defaults_and_template() {
        let mut cj = json!({"metadata": {"name": "c"}, "spec": {"schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "c"}]}}}}}});
        apply_builtin_defaults("batch", "CronJob", &mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["suspend"], false);
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert_eq!(
            cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        assert_eq!(
            cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"],
            "OnFailure"
        );
    }

    #[test]
    fn namespace_gets_metadata_name_label_finalizer_and_phase() {
        let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "wrong"}}});
        apply_builtin_defaults("", "Namespace", &mut ns);
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-a"
        );
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(ns["status"]["phase"], "Active");
        let mut generated = json!({"metadata": {"generateName": "t-"}});
        apply_builtin_defaults("", "Namespace", &mut generated);
        assert!(
            generated["metadata"].get("labels").is_none(),
            "label waits for the generated name"
        );
    }

    #[test]
    fn webhook_configuration_defaults() {
        let mut cfg = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "portcullis"},
            "webhooks": [{"name": "pods.portcullis.dev", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                "clientConfig": {"service": {"namespace": "ns", "name": "svc", "path": "/mutate"}},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}]});
        apply_builtin_defaults(
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
            &mut cfg,
        );
        let w = &cfg["webhooks"][0];
        assert_eq!(w["failurePolicy"], "Fail");
        assert_eq!(w["matchPolicy"], "Equivalent");
        assert_eq!(w["timeoutSeconds"], 10);
        assert_eq!(w["reinvocationPolicy"], "Never");
        assert_eq!(w["namespaceSelector"], json!({}));
        assert_eq!(w["objectSelector"], json!({}));
        assert_eq!(w["rules"][0]["scope"], "*");
        assert_eq!(w["clientConfig"]["service"]["port"], 443);
        let mut v = cfg.clone();
        v["webhooks"][0]
            .as_object_mut()
            .unwrap()
            .remove("reinvocationPolicy");
        apply_builtin_defaults(
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
            &mut v,
        );
        assert!(v["webhooks"][0].get("reinvocationPolicy").is_none());
    }

    #[test]
    fn service_and_secret_defaults() {
        let mut svc = json!({"metadata": {"name": "s"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 443}]}});
        apply_builtin_defaults("", "Service", &mut svc);
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(svc["spec"]["sessionAffinity"], "None");
        assert_eq!(
            svc["spec"]["ports"][0],
            json!({"port": 443, "protocol": "TCP", "targetPort": 443})
        );
        let mut secret = json!({"metadata": {"name": "s"}, "data": {}});
        apply_builtin_defaults("", "Secret", &mut secret);
        assert_eq!(secret["type"], "Opaque");
    }

    #[test]
    fn custom_resources_are_untouched() {
        let mut cr = json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp", "metadata": {"name": "a"}, "spec": {}});
        let before = cr.clone();
        apply_builtin_defaults("lifecycle.keptn.sh", "KeptnApp", &mut cr);
        assert_eq!(cr, before);
    }
}

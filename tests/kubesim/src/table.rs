//! Server-side printing (FIDELITY F2): the `meta.k8s.io/v1 Table` that `kubectl get` asks for with
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
//!
//! Custom resources get their CRD's `additionalPrinterColumns` evaluated with the JSONPath subset
//! the API server supports; built-in kinds get the column sets and cell rules of the API server's
//! own printers (all columns, including the `priority: 1` ones kubectl shows with `-o wide`).

use jiff::Timestamp;
use serde_json::{Map, Value, json};

/// One column of a table, as rendered in `columnDefinitions`.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
    /// JSONPath of a CRD printer column; `None` for the name column and built-in printers.
    pub json_path: Option<String>,
}

impl ColumnDef {
    fn new(name: &str, type_: &str, description: &str) -> Self {
        Self {
            name: name.to_string(),
            type_: type_.to_string(),
            format: String::new(),
            description: description.to_string(),
            priority: 0,
            json_path: None,
        }
    }

    fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }

    fn name_column() -> Self {
        let mut c = Self::new("Name", "string", NAME_DOC);
        c.format = "name".to_string();
        c
    }

    fn age_column() -> Self {
        Self::new("Age", "string", CREATION_TIMESTAMP_DOC)
    }

    /// The `TableColumnDefinition` JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_TIMESTAMP_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DOC: &str = "Names of each container in the template.";
const IMAGES_DOC: &str = "Images referenced by each container in the template.";
const SELECTOR_DOC: &str = "A label query over pods that should match the pod count.";
const READY_PODS_DOC: &str = "Number of the pod with ready state";

/// The columns of a CRD version entry: Name, then its `additionalPrinterColumns`, or Age when
/// none are declared (what the API server serves by default).
pub fn crd_columns(version: &Value) -> Vec<ColumnDef> {
    let mut cols = vec![ColumnDef::name_column()];
    let declared = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array);
    match declared {
        Some(list) if !list.is_empty() => {
            for c in list {
                let path = str_at(c, "jsonPath").to_string();
                let description = match str_at(c, "description") {
                    "" => format!("Custom resource definition column (in JSONPath format): {path}"),
                    d => d.to_string(),
                };
                cols.push(ColumnDef {
                    name: str_at(c, "name").to_string(),
                    type_: str_at(c, "type").to_string(),
                    format: str_at(c, "format").to_string(),
                    description,
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32,
                    json_path: Some(path),
                });
            }
        }
        _ => cols.push(ColumnDef {
            name: "Age".to_string(),
            type_: "date".to_string(),
            format: String::new(),
            description: CREATION_TIMESTAMP_DOC.to_string(),
            priority: 0,
            json_path: Some(".metadata.creationTimestamp".to_string()),
        }),
    }
    cols
}

/// The columns the API server's printers use for a built-in kind; `Name`, `Age` for kinds
/// without a dedicated printer, `Name`, `Created At` for those served by the default convertor.
pub fn builtin_columns(group: &str, kind: &str) -> Vec<ColumnDef> {
    let c = ColumnDef::new;
    let name = ColumnDef::name_column;
    let age = ColumnDef::age_column;
    match (group, kind) {
        ("", "Pod") => vec![
            name(),
            c("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
            c("Status", "string", "The aggregate status of the containers in this pod."),
            c(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
            ),
            age(),
            c("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.").wide(),
            c("Node", "string", "NodeName indicates in which node this pod is scheduled.").wide(),
            c("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node.").wide(),
            c("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness.").wide(),
        ],
        ("apps", "Deployment") => vec![
            name(),
            c("Ready", "string", READY_PODS_DOC),
            c("Up-to-date", "string", "Total number of non-terminating pods targeted by this deployment that have the desired template spec."),
            c("Available", "string", "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment."),
            age(),
            c("Containers", "string", CONTAINERS_DOC).wide(),
            c("Images", "string", IMAGES_DOC).wide(),
            c("Selector", "string", SELECTOR_DOC).wide(),
        ],
        ("apps", "ReplicaSet") => vec![
            name(),
            c("Desired", "integer", "Replicas is the number of desired pods."),
            c("Current", "integer", "Replicas is the most recently observed number of non-terminating pods."),
            c("Ready", "integer", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition."),
            age(),
            c("Containers", "string", CONTAINERS_DOC).wide(),
            c("Images", "string", IMAGES_DOC).wide(),
            c("Selector", "string", SELECTOR_DOC).wide(),
        ],
        ("apps", "StatefulSet") => vec![
            name(),
            c("Ready", "string", READY_PODS_DOC),
            age(),
            c("Containers", "string", CONTAINERS_DOC).wide(),
            c("Images", "string", IMAGES_DOC).wide(),
        ],
        ("apps", "DaemonSet") => vec![
            name(),
            c("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
            c("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            c("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
            c("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
            c("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
            c("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
            age(),
            c("Containers", "string", CONTAINERS_DOC).wide(),
            c("Images", "string", IMAGES_DOC).wide(),
            c("Selector", "string", SELECTOR_DOC).wide(),
        ],
        ("batch", "Job") => vec![
            name(),
            c("Status", "string", "Status of the job."),
            c("Completions", "string", "The number of pods which reached phase Succeeded."),
            c("Duration", "string", "Time required to complete the job."),
            age(),
            c("Containers", "string", CONTAINERS_DOC).wide(),
            c("Images", "string", IMAGES_DOC).wide(),
            c("Selector", "string", SELECTOR_DOC).wide(),
        ],
        ("batch", "CronJob") => vec![
            name(),
            c("Schedule", "string", "The schedule in Cron format."),
            c("Timezone", "string", "The time zone name for the given schedule."),
            c("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions."),
            c("Active", "integer", "A list of pointers to currently running jobs."),
            c("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
            age(),
            c("Containers", "string", CONTAINERS_DOC).wide(),
            c("Images", "string", IMAGES_DOC).wide(),
            c("Selector", "string", SELECTOR_DOC).wide(),
        ],
        ("", "Node") => vec![
            name(),
            c("Status", "string", "The status of the node"),
            c("Roles", "string", "The roles of the node"),
            age(),
            c("Version", "string", "Kubelet Version reported by the node."),
            c("Internal-IP", "string", "List of addresses reachable to the node.").wide(),
            c("External-IP", "string", "List of addresses reachable to the node.").wide(),
            c("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).").wide(),
            c("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).").wide(),
            c("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).").wide(),
        ],
        ("", "Namespace") => vec![name(), c("Status", "string", "The status of the namespace"), age()],
        ("", "Event") | ("events.k8s.io", "Event") => {
            let mut n = name();
            n.priority = 1;
            vec![
                c("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
                c("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
                c("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
                c("Object", "string", "The object that this event is about."),
                c("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].").wide(),
                c("Source", "string", "The component reporting this event. Should be a short machine understandable string.").wide(),
                c("Message", "string", "A human-readable description of the status of this operation."),
                c("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)").wide(),
                c("Count", "string", "The number of times this event has occurred.").wide(),
                n,
            ]
        }
        ("coordination.k8s.io", "Lease") => {
            vec![name(), c("Holder", "string", "holderIdentity contains the identity of the holder of a current lease."), age()]
        }
        ("", "Service") => vec![
            name(),
            c("Type", "string", "type determines how the Service is exposed."),
            c("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly."),
            c("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            c("Port(s)", "string", "The list of ports that are exposed by this service."),
            age(),
            c("Selector", "string", "Route service traffic to pods with label keys and values matching this selector.").wide(),
        ],
        ("", "ConfigMap") => vec![
            name(),
            c("Data", "string", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'."),
            age(),
        ],
        ("", "Secret") => vec![
            name(),
            c("Type", "string", "Used to facilitate programmatic handling of secret data."),
            c("Data", "string", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'."),
            age(),
        ],
        ("", "ServiceAccount") => vec![
            name(),
            c("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
            age(),
        ],
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration")
        | ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            vec![name(), c("Webhooks", "integer", "Webhooks is a list of webhooks and the affected resources and operations."), age()]
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("rbac.authorization.k8s.io", "Role")
        | ("rbac.authorization.k8s.io", "ClusterRole") => {
            vec![name(), c("Created At", "date", CREATION_TIMESTAMP_DOC)]
        }
        _ => vec![name(), age()],
    }
}

/// Builds the `Table`. Columns with a `json_path` are evaluated as CRD printer columns; the others
/// come from the built-in printer of `group`/`kind` (by column name). `include_object` is the
/// `includeObject` query parameter: `None`, `Metadata` (the default) or `Object`.
pub fn build_table(
    group: &str,
    kind: &str,
    columns: &[ColumnDef],
    objects: &[Value],
    include_object: &str,
    now: Timestamp,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let printed = print_builtin(group, kind, obj, now);
            let cells: Vec<Value> = columns
                .iter()
                .map(|col| match &col.json_path {
                    Some(path) => printer_column_cell(col, path, obj, now),
                    None => printed.cell(&col.name),
                })
                .collect();
            let mut row = Map::new();
            row.insert("cells".into(), Value::Array(cells));
            if !printed.conditions.is_empty() {
                row.insert("conditions".into(), Value::Array(printed.conditions));
            }
            match include_object {
                "None" => {}
                "Object" => {
                    row.insert("object".into(), obj.clone());
                }
                _ => {
                    row.insert("object".into(), partial_object_metadata(obj));
                }
            }
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns.iter().map(ColumnDef::to_json).collect::<Vec<_>>(),
        "rows": rows,
    })
}

/// The `PartialObjectMetadata` a row carries for `includeObject=Metadata`.
fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Evaluates one CRD printer column the way the API server's table convertor does: the first
/// JSONPath result, converted to the column type; missing or mistyped values give `null`.
fn printer_column_cell(col: &ColumnDef, path: &str, obj: &Value, now: Timestamp) -> Value {
    let Ok(parsed) = jsonpath::parse(path) else {
        return Value::Null;
    };
    let results = jsonpath::evaluate(&parsed, obj);
    let Some(value) = results.first() else {
        return Value::Null;
    };
    match col.type_.as_str() {
        "string" => match value {
            Value::Null => Value::Null,
            Value::String(s) => Value::String(s.clone()),
            Value::Array(_) | Value::Object(_) => Value::String(value.to_string()),
            other => Value::String(other.to_string()),
        },
        "integer" => match value {
            Value::Number(n) => match n.as_i64() {
                Some(i) => json!(i),
                None => n
                    .as_f64()
                    .map(|f| json!(f.trunc() as i64))
                    .unwrap_or(Value::Null),
            },
            _ => Value::Null,
        },
        "number" => match value {
            Value::Number(_) => (*value).clone(),
            _ => Value::Null,
        },
        "boolean" => match value {
            Value::Bool(_) => (*value).clone(),
            _ => Value::Null,
        },
        "date" => match value {
            Value::String(s) => match s.parse::<Timestamp>() {
                Ok(ts) => Value::String(human_duration_since(ts, now)),
                Err(_) => Value::String("<invalid>".into()),
            },
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// Cells of a built-in printer keyed by column name, plus row conditions.
struct Printed {
    cells: Vec<(&'static str, Value)>,
    conditions: Vec<Value>,
}

impl Printed {
    fn cell(&self, column: &str) -> Value {
        self.cells
            .iter()
            .find(|(n, _)| *n == column)
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)
    }
}

fn print_builtin(group: &str, kind: &str, obj: &Value, now: Timestamp) -> Printed {
    let name = Value::String(str_at(&obj["metadata"], "name").to_string());
    let created = str_at(&obj["metadata"], "creationTimestamp");
    let age = Value::String(age_of(created, now));
    let mut cells: Vec<(&'static str, Value)> = vec![("Name", name), ("Age", age)];
    let mut conditions = Vec::new();
    let spec = &obj["spec"];
    let status = &obj["status"];
    let mut push = |n: &'static str, v: Value| cells.push((n, v));
    match (group, kind) {
        ("", "Pod") => {
            let pod = pod_row(obj, now);
            push("Ready", json!(pod.ready));
            push("Status", json!(pod.reason));
            push("Restarts", json!(pod.restarts));
            push("IP", json!(pod.ip));
            push("Node", json!(none_if_empty(str_at(spec, "nodeName"))));
            push(
                "Nominated Node",
                json!(none_if_empty(str_at(status, "nominatedNodeName"))),
            );
            push("Readiness Gates", json!(pod.readiness_gates));
            match str_at(status, "phase") {
                "Succeeded" => conditions.push(json!({"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."})),
                "Failed" => conditions.push(json!({"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."})),
                _ => {}
            }
        }
        ("apps", "Deployment") | ("apps", "StatefulSet") => {
            push(
                "Ready",
                json!(format!(
                    "{}/{}",
                    int_at(status, "readyReplicas"),
                    int_at(spec, "replicas")
                )),
            );
            push("Up-to-date", json!(int_at(status, "updatedReplicas")));
            push("Available", json!(int_at(status, "availableReplicas")));
            push_template_cells(&mut push, spec);
        }
        ("apps", "ReplicaSet") => {
            push("Desired", json!(int_at(spec, "replicas")));
            push("Current", json!(int_at(status, "replicas")));
            push("Ready", json!(int_at(status, "readyReplicas")));
            push_template_cells(&mut push, spec);
        }
        ("apps", "DaemonSet") => {
            push("Desired", json!(int_at(status, "desiredNumberScheduled")));
            push("Current", json!(int_at(status, "currentNumberScheduled")));
            push("Ready", json!(int_at(status, "numberReady")));
            push(
                "Up-to-date",
                json!(int_at(status, "updatedNumberScheduled")),
            );
            push("Available", json!(int_at(status, "numberAvailable")));
            push(
                "Node Selector",
                json!(format_labels(&spec["template"]["spec"]["nodeSelector"])),
            );
            push_template_cells(&mut push, spec);
        }
        ("batch", "Job") => {
            push("Status", json!(job_status(obj)));
            push("Completions", json!(job_completions(obj)));
            push("Duration", json!(job_duration(status, now)));
            push_template_cells(&mut push, spec);
        }
        ("batch", "CronJob") => {
            push("Schedule", json!(str_at(spec, "schedule")));
            push("Timezone", json!(none_if_empty(str_at(spec, "timeZone"))));
            push("Suspend", json!(spec["suspend"].as_bool().unwrap_or(false)));
            push(
                "Active",
                json!(status["active"].as_array().map_or(0, Vec::len)),
            );
            let last = match str_at(status, "lastScheduleTime") {
                "" => "<none>".to_string(),
                t => age_of(t, now),
            };
            push("Last Schedule", json!(last));
            let job_spec = &spec["jobTemplate"]["spec"];
            push_template_cells(&mut push, job_spec);
        }
        ("", "Node") => node_cells(&mut push, obj),
        ("", "Namespace") => push("Status", json!(str_at(status, "phase"))),
        ("", "Event") | ("events.k8s.io", "Event") => event_cells(&mut push, obj, now),
        ("coordination.k8s.io", "Lease") => push("Holder", json!(str_at(spec, "holderIdentity"))),
        ("", "Service") => service_cells(&mut push, spec, status),
        ("", "ConfigMap") => {
            push(
                "Data",
                json!(map_len(&obj["data"]) + map_len(&obj["binaryData"])),
            );
        }
        ("", "Secret") => {
            push("Type", json!(str_at(obj, "type")));
            push("Data", json!(map_len(&obj["data"])));
        }
        ("", "ServiceAccount") => push(
            "Secrets",
            json!(obj["secrets"].as_array().map_or(0, Vec::len)),
        ),
        ("admissionregistration.k8s.io", _) => {
            push(
                "Webhooks",
                json!(obj["webhooks"].as_array().map_or(0, Vec::len)),
            );
        }
        _ => {}
    }
    // The default convertor's "Created At" is the RFC 3339 creation time in UTC.
    let created_at = created
        .parse::<Timestamp>()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    cells.push((
        "Created At",
        created_at.map(Value::String).unwrap_or(Value::Null),
    ));
    Printed { cells, conditions }
}

fn push_template_cells(push: &mut impl FnMut(&'static str, Value), spec: &Value) {
    let containers = spec["template"]["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "image")).collect();
    push("Containers", json!(names.join(",")));
    push("Images", json!(images.join(",")));
    push("Selector", json!(format_label_selector(&spec["selector"])));
}

struct PodRow {
    ready: String,
    reason: String,
    restarts: String,
    ip: String,
    readiness_gates: String,
}

/// READY, STATUS and RESTARTS as kubectl users know them (the API server's pod printer rules).
fn pod_row(pod: &Value, now: Timestamp) -> PodRow {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let empty = Vec::new();
    let init_specs = spec["initContainers"].as_array().unwrap_or(&empty);
    let init_statuses = status["initContainerStatuses"].as_array().unwrap_or(&empty);
    let statuses = status["containerStatuses"].as_array().unwrap_or(&empty);
    let conditions = status["conditions"].as_array().unwrap_or(&empty);

    let mut total = spec["containers"].as_array().map_or(0, Vec::len);
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut sidecar_restarts = 0i64;
    let mut sidecar_last_restart: Option<Timestamp> = None;

    let mut reason = match str_at(status, "reason") {
        "" => str_at(status, "phase").to_string(),
        r => r.to_string(),
    };
    if conditions
        .iter()
        .any(|c| str_at(c, "type") == "PodScheduled" && str_at(c, "reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_string();
    }

    // Restartable init containers ("sidecars") count towards READY like regular containers.
    let sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| str_at(c, "name") == name && str_at(c, "restartPolicy") == "Always")
    };
    total += init_specs
        .iter()
        .filter(|c| str_at(c, "restartPolicy") == "Always")
        .count();

    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        note_restart(c, &mut restarts, &mut last_restart);
        let state = &c["state"];
        let is_sidecar = sidecar(str_at(c, "name"));
        if is_sidecar {
            note_restart(c, &mut sidecar_restarts, &mut sidecar_last_restart);
        }
        let terminated = &state["terminated"];
        if terminated.is_object() && int_at(terminated, "exitCode") == 0 {
            continue;
        }
        if is_sidecar && c["started"].as_bool() == Some(true) {
            if c["ready"].as_bool() == Some(true) {
                ready += 1;
            }
            continue;
        }
        let waiting_reason = str_at(&state["waiting"], "reason");
        if terminated.is_object() {
            reason = match str_at(terminated, "reason") {
                "" if int_at(terminated, "signal") != 0 => {
                    format!("Init:Signal:{}", int_at(terminated, "signal"))
                }
                "" => format!("Init:ExitCode:{}", int_at(terminated, "exitCode")),
                r => format!("Init:{r}"),
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    let initialized = conditions
        .iter()
        .any(|c| str_at(c, "type") == "Initialized" && str_at(c, "status") == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = sidecar_last_restart;
        let mut has_running = false;
        for c in statuses.iter().rev() {
            note_restart(c, &mut restarts, &mut last_restart);
            let state = &c["state"];
            let waiting = str_at(&state["waiting"], "reason");
            let terminated = &state["terminated"];
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if terminated.is_object() {
                reason = match str_at(terminated, "reason") {
                    "" if int_at(terminated, "signal") != 0 => {
                        format!("Signal:{}", int_at(terminated, "signal"))
                    }
                    "" => format!("ExitCode:{}", int_at(terminated, "exitCode")),
                    r => r.to_string(),
                };
            } else if c["ready"].as_bool() == Some(true) && state["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions
                .iter()
                .any(|c| str_at(c, "type") == "Ready" && str_at(c, "status") == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }

    if !str_at(&pod["metadata"], "deletionTimestamp").is_empty() {
        reason = if str_at(status, "reason") == "NodeLost" {
            "Unknown"
        } else {
            "Terminating"
        }
        .to_string();
    }

    let restarts = match last_restart {
        Some(t) => format!("{restarts} ({} ago)", human_duration_since(t, now)),
        None => restarts.to_string(),
    };
    let ip = status["podIPs"]
        .as_array()
        .and_then(|ips| ips.first())
        .map(|ip| str_at(ip, "ip").to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| none_if_empty(str_at(status, "podIP")));
    let gates = spec["readinessGates"].as_array().unwrap_or(&empty);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_count = gates
            .iter()
            .filter(|g| {
                let ty = str_at(g, "conditionType");
                conditions
                    .iter()
                    .find(|c| str_at(c, "type") == ty)
                    .is_some_and(|c| str_at(c, "status") == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };
    PodRow {
        ready: format!("{ready}/{total}"),
        reason,
        restarts,
        ip,
        readiness_gates,
    }
}

/// Adds a container's restarts and keeps the latest `lastState.terminated.finishedAt`.
fn note_restart(c: &Value, restarts: &mut i64, last: &mut Option<Timestamp>) {
    *restarts += int_at(c, "restartCount");
    if let Ok(t) = str_at(&c["lastState"]["terminated"], "finishedAt").parse::<Timestamp>()
        && last.is_none_or(|l| l < t)
    {
        *last = Some(t);
    }
}

fn has_condition(obj: &Value, ty: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| str_at(c, "type") == ty && str_at(c, "status") == "True")
    })
}

fn job_status(job: &Value) -> &'static str {
    if has_condition(job, "Complete") {
        "Complete"
    } else if has_condition(job, "Failed") {
        "Failed"
    } else if !str_at(&job["metadata"], "deletionTimestamp").is_empty() {
        "Terminating"
    } else if has_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_condition(job, "Suspended") {
        "Suspended"
    } else if has_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn job_completions(job: &Value) -> String {
    let succeeded = int_at(&job["status"], "succeeded");
    let spec = &job["spec"];
    match (spec["completions"].as_i64(), spec["parallelism"].as_i64()) {
        (Some(c), _) => format!("{succeeded}/{c}"),
        (None, Some(p)) if p > 1 => format!("{succeeded}/1 of {p}"),
        _ => format!("{succeeded}/1"),
    }
}

fn job_duration(status: &Value, now: Timestamp) -> String {
    let Ok(start) = str_at(status, "startTime").parse::<Timestamp>() else {
        return String::new();
    };
    match str_at(status, "completionTime").parse::<Timestamp>() {
        Ok(end) => human_duration_since(start, end),
        Err(_) => human_duration_since(start, now),
    }
}

fn node_cells(push: &mut impl FnMut(&'static str, Value), node: &Value) {
    let status = &node["status"];
    let mut states: Vec<String> = Vec::new();
    if let Some(c) = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| str_at(c, "type") == "Ready"))
    {
        states.push(if str_at(c, "status") == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if states.is_empty() {
        states.push("Unknown".into());
    }
    if node["spec"]["unschedulable"].as_bool() == Some(true) {
        states.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = node["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role"
                && let Some(v) = v.as_str()
                && !v.is_empty()
            {
                roles.push(v.to_string());
            }
        }
    }
    roles.sort();
    roles.dedup();
    let address = |ty: &str| {
        status["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|a| str_at(a, "type") == ty))
            .map(|a| str_at(a, "address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    let info = &status["nodeInfo"];
    let unknown = |s: &str| {
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s.to_string()
        }
    };
    push("Status", json!(states.join(",")));
    push(
        "Roles",
        json!(if roles.is_empty() {
            "<none>".to_string()
        } else {
            roles.join(",")
        }),
    );
    push("Version", json!(str_at(info, "kubeletVersion")));
    push("Internal-IP", json!(address("InternalIP")));
    push("External-IP", json!(address("ExternalIP")));
    push("OS-Image", json!(unknown(str_at(info, "osImage"))));
    push(
        "Kernel-Version",
        json!(unknown(str_at(info, "kernelVersion"))),
    );
    push(
        "Container-Runtime",
        json!(unknown(str_at(info, "containerRuntimeVersion"))),
    );
}

/// Core `v1` events and `events.k8s.io/v1` events (whose fields have other names).
fn event_cells(push: &mut impl FnMut(&'static str, Value), ev: &Value, now: Timestamp) {
    let first_of = |keys: &[&str]| {
        keys.iter()
            .map(|k| str_at(ev, k))
            .find(|s| !s.is_empty())
            .unwrap_or("")
    };
    let since = |t: &str| age_of(t, now);
    let first_ts = first_of(&["firstTimestamp", "deprecatedFirstTimestamp"]);
    let first_seen = if first_ts.is_empty() {
        since(str_at(ev, "eventTime"))
    } else {
        since(first_ts)
    };
    let last_ts = first_of(&["lastTimestamp", "deprecatedLastTimestamp"]);
    let mut last_seen = if last_ts.is_empty() {
        first_seen.clone()
    } else {
        since(last_ts)
    };
    let mut count = ev["count"]
        .as_i64()
        .or_else(|| ev["deprecatedCount"].as_i64())
        .unwrap_or(0);
    if ev["series"].is_object() {
        last_seen = since(str_at(&ev["series"], "lastObservedTime"));
        count = int_at(&ev["series"], "count");
    } else if count == 0 {
        count = 1;
    }
    let involved = if ev["involvedObject"].is_object() {
        &ev["involvedObject"]
    } else {
        &ev["regarding"]
    };
    let kind = str_at(involved, "kind").to_lowercase();
    let target = match str_at(involved, "name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let source = &ev["source"];
    let component = match str_at(source, "component") {
        "" => str_at(ev, "reportingController"),
        c => c,
    };
    let instance = match str_at(source, "host") {
        "" => str_at(ev, "reportingInstance"),
        h => h,
    };
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    let message = match str_at(ev, "message") {
        "" => str_at(ev, "note"),
        m => m,
    };
    push("Last Seen", json!(last_seen));
    push("Type", json!(str_at(ev, "type")));
    push("Reason", json!(str_at(ev, "reason")));
    push("Object", json!(target));
    push("Subobject", json!(str_at(involved, "fieldPath")));
    push("Source", json!(source));
    push("Message", json!(message.trim()));
    push("First Seen", json!(first_seen));
    push("Count", json!(count));
}

fn service_cells(push: &mut impl FnMut(&'static str, Value), spec: &Value, status: &Value) {
    let ty = str_at(spec, "type");
    let cluster_ip = spec["clusterIPs"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| none_if_empty(str_at(spec, "clusterIP")));
    let external: Vec<String> = spec["externalIPs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let external_ip = match ty {
        "ExternalName" => str_at(spec, "externalName").to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<String> = status["loadBalancer"]["ingress"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|i| {
                            if str_at(i, "ip").is_empty() {
                                str_at(i, "hostname")
                            } else {
                                str_at(i, "ip")
                            }
                        })
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".to_string()
            } else {
                ips.join(",")
            }
        }
        _ if external.is_empty() => "<none>".to_string(),
        _ => external.join(","),
    };
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    let proto = match str_at(p, "protocol") {
                        "" => "TCP",
                        s => s,
                    };
                    match int_at(p, "nodePort") {
                        0 => format!("{}/{proto}", int_at(p, "port")),
                        np => format!("{}:{np}/{proto}", int_at(p, "port")),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    push("Type", json!(ty));
    push("Cluster-IP", json!(cluster_ip));
    push("External-IP", json!(external_ip));
    push(
        "Port(s)",
        json!(if ports.is_empty() {
            "<none>".to_string()
        } else {
            ports.join(",")
        }),
    );
    push("Selector", json!(format_labels(&spec["selector"])));
}

/// `k=v,k2=v2` sorted by key, `<none>` when empty (labels.FormatLabels).
fn format_labels(map: &Value) -> String {
    let Some(m) = map.as_object().filter(|m| !m.is_empty()) else {
        return "<none>".to_string();
    };
    let mut parts: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    parts.sort();
    parts.join(",")
}

/// A label selector as text (`app=web,tier in (a,b)`), `<none>` when it selects nothing specific.
fn format_label_selector(sel: &Value) -> String {
    let mut parts: Vec<(String, String)> = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        for (k, v) in m {
            parts.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
        }
    }
    if let Some(exprs) = sel["matchExpressions"].as_array() {
        for e in exprs {
            let key = str_at(e, "key");
            let mut values: Vec<&str> = e["values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            values.sort();
            let text = match str_at(e, "operator") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            };
            parts.push((key.to_string(), text));
        }
    }
    if parts.is_empty() {
        return "<none>".to_string();
    }
    parts.sort();
    parts
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn int_at(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn map_len(v: &Value) -> usize {
    v.as_object().map_or(0, Map::len)
}

fn none_if_empty(s: &str) -> String {
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s.to_string()
    }
}

/// Age column text: `<unknown>` without a creation time.
fn age_of(timestamp: &str, now: Timestamp) -> String {
    match timestamp.parse::<Timestamp>() {
        Ok(t) => human_duration_since(t, now),
        Err(_) => "<unknown>".to_string(),
    }
}

/// The API machinery's human-readable duration (`45s`, `3m12s`, `5h`, `2d3h`, `3y`), with
/// up to a second of clock skew read as zero.
pub fn human_duration_since(from: Timestamp, to: Timestamp) -> String {
    let secs = to.as_second() - from.as_second();
    if secs < -1 {
        return "<invalid>".to_string();
    }
    if secs < 0 {
        return "0s".to_string();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The JSONPath subset of printer columns: `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[*]`, `.*`,
/// `..name`, and filters `[?(@.type=="Ready")]` (`==`, `!=`, `<`, `<=`, `>`, `>=`, existence).
pub mod jsonpath {
    use serde_json::Value;

    #[derive(Debug, Clone, PartialEq)]
    pub enum Step {
        Field(String),
        Index(i64),
        Wildcard,
        Recursive(String),
        Filter {
            path: Vec<Step>,
            op: Option<(String, Value)>,
        },
    }

    /// Why a JSONPath expression was rejected.
    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    #[error("unrecognized JSONPath {path:?}: {reason}")]
    pub struct ParseError {
        pub path: String,
        pub reason: String,
    }

    pub fn parse(path: &str) -> Result<Vec<Step>, ParseError> {
        let trimmed = path.trim();
        let inner = trimmed
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or(trimmed);
        let chars: Vec<char> = inner.chars().collect();
        let mut pos = 0;
        let steps = parse_steps(&chars, &mut pos, false).map_err(|reason| ParseError {
            path: path.to_string(),
            reason,
        })?;
        if pos != chars.len() {
            return Err(ParseError {
                path: path.to_string(),
                reason: format!("unexpected {:?}", chars[pos]),
            });
        }
        Ok(steps)
    }

    fn parse_steps(c: &[char], pos: &mut usize, in_filter: bool) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        while *pos < c.len() {
            match c[*pos] {
                '.' if c.get(*pos + 1) == Some(&'.') => {
                    *pos += 2;
                    steps.push(Step::Recursive(ident(c, pos)?));
                }
                '.' => {
                    *pos += 1;
                    if c.get(*pos) == Some(&'*') {
                        *pos += 1;
                        steps.push(Step::Wildcard);
                    } else if *pos < c.len() && c[*pos] != '[' {
                        steps.push(Step::Field(ident(c, pos)?));
                    }
                }
                '[' => steps.push(bracket(c, pos)?),
                '@' if in_filter && steps.is_empty() => *pos += 1,
                ch if in_filter && (ch == ' ' || "=!<>)".contains(ch)) => break,
                ch if steps.is_empty() && !in_filter && is_ident_char(ch) => {
                    steps.push(Step::Field(ident(c, pos)?));
                }
                ch => return Err(format!("unexpected {ch:?}")),
            }
        }
        Ok(steps)
    }

    fn is_ident_char(ch: char) -> bool {
        ch.is_alphanumeric() || "_-/:$".contains(ch)
    }

    fn ident(c: &[char], pos: &mut usize) -> Result<String, String> {
        let mut s = String::new();
        while *pos < c.len() {
            let ch = c[*pos];
            if ch == '\\' && *pos + 1 < c.len() {
                s.push(c[*pos + 1]);
                *pos += 2;
            } else if is_ident_char(ch) {
                s.push(ch);
                *pos += 1;
            } else {
                break;
            }
        }
        if s.is_empty() {
            Err("empty field name".to_string())
        } else {
            Ok(s)
        }
    }

    fn bracket(c: &[char], pos: &mut usize) -> Result<Step, String> {
        *pos += 1;
        skip_ws(c, pos);
        let step = match c.get(*pos) {
            Some('*') => {
                *pos += 1;
                Step::Wildcard
            }
            Some('\'') | Some('"') => Step::Field(quoted(c, pos)?),
            Some('?') => {
                *pos += 1;
                expect(c, pos, '(')?;
                skip_ws(c, pos);
                let path = parse_steps(c, pos, true)?;
                skip_ws(c, pos);
                let op = if c.get(*pos) == Some(&')') {
                    None
                } else {
                    let mut op = String::new();
                    while let Some(ch) = c.get(*pos).filter(|ch| "=!<>".contains(**ch)) {
                        op.push(*ch);
                        *pos += 1;
                    }
                    if !["==", "!=", "<", "<=", ">", ">="].contains(&op.as_str()) {
                        return Err(format!("unsupported filter operator {op:?}"));
                    }
                    skip_ws(c, pos);
                    Some((op, literal(c, pos)?))
                };
                skip_ws(c, pos);
                expect(c, pos, ')')?;
                Step::Filter { path, op }
            }
            _ => {
                let mut num = String::new();
                while let Some(ch) = c.get(*pos).filter(|ch| ch.is_ascii_digit() || **ch == '-') {
                    num.push(*ch);
                    *pos += 1;
                }
                Step::Index(
                    num.parse()
                        .map_err(|_| format!("invalid array index {num:?}"))?,
                )
            }
        };
        skip_ws(c, pos);
        expect(c, pos, ']')?;
        Ok(step)
    }

    fn literal(c: &[char], pos: &mut usize) -> Result<Value, String> {
        match c.get(*pos) {
            Some('\'') | Some('"') => Ok(Value::String(quoted(c, pos)?)),
            _ => {
                let mut s = String::new();
                while let Some(ch) = c.get(*pos).filter(|ch| !ch.is_whitespace() && **ch != ')') {
                    s.push(*ch);
                    *pos += 1;
                }
                serde_json::from_str(&s).map_err(|_| format!("invalid literal {s:?}"))
            }
        }
    }

    fn quoted(c: &[char], pos: &mut usize) -> Result<String, String> {
        let quote = c[*pos];
        *pos += 1;
        let mut s = String::new();
        while let Some(&ch) = c.get(*pos) {
            *pos += 1;
            if ch == '\\' {
                if let Some(&next) = c.get(*pos) {
                    s.push(next);
                    *pos += 1;
                }
            } else if ch == quote {
                return Ok(s);
            } else {
                s.push(ch);
            }
        }
        Err("unterminated string".to_string())
    }

    fn skip_ws(c: &[char], pos: &mut usize) {
        while c.get(*pos).is_some_and(|ch| ch.is_whitespace()) {
            *pos += 1;
        }
    }

    fn expect(c: &[char], pos: &mut usize, want: char) -> Result<(), String> {
        if c.get(*pos) == Some(&want) {
            *pos += 1;
            Ok(())
        } else {
            Err(format!("expected {want:?}"))
        }
    }

    /// All matches in document order; missing keys and out-of-range indexes match nothing.
    pub fn evaluate<'a>(steps: &[Step], root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for step in steps {
            let mut next = Vec::new();
            for v in current {
                apply(step, v, &mut next);
            }
            current = next;
        }
        current
    }

    fn apply<'a>(step: &Step, v: &'a Value, out: &mut Vec<&'a Value>) {
        match step {
            Step::Field(name) => {
                if let Some(x) = v.as_object().and_then(|m| m.get(name)) {
                    out.push(x);
                }
            }
            Step::Index(i) => {
                if let Some(a) = v.as_array() {
                    let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                    if idx >= 0
                        && let Some(x) = a.get(idx as usize)
                    {
                        out.push(x);
                    }
                }
            }
            Step::Wildcard => match v {
                Value::Array(a) => out.extend(a.iter()),
                Value::Object(m) => out.extend(m.values()),
                _ => {}
            },
            Step::Recursive(name) => recurse(name, v, out),
            Step::Filter { path, op } => {
                if let Some(a) = v.as_array() {
                    for item in a {
                        let found = evaluate(path, item);
                        let keep = match op {
                            None => !found.is_empty(),
                            Some((op, lit)) => found.first().is_some_and(|x| compare(x, op, lit)),
                        };
                        if keep {
                            out.push(item);
                        }
                    }
                }
            }
        }
    }

    fn recurse<'a>(name: &str, v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(m) => {
                if let Some(x) = m.get(name) {
                    out.push(x);
                }
                for x in m.values() {
                    recurse(name, x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| recurse(name, x, out)),
            _ => {}
        }
    }

    fn compare(x: &Value, op: &str, lit: &Value) -> bool {
        let ord = match (x, lit) {
            (Value::Number(a), Value::Number(b)) => a.as_f64().partial_cmp(&b.as_f64()),
            (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            _ => None,
        };
        match op {
            "==" => x == lit || ord == Some(std::cmp::Ordering::Equal),
            "!=" => !(x == lit || ord == Some(std::cmp::Ordering::Equal)),
            "<" => ord == Some(std::cmp::Ordering::Less),
            "<=" => matches!(
                ord,
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            ),
            ">" => ord == Some(std::cmp::Ordering::Greater),
            ">=" => matches!(
                ord,
                Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().unwrap()
    }

    fn pod(status: Value) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": "2026-01-01T11:55:00Z", "uid": "u1", "resourceVersion": "7"},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], "nodeName": ""},
            "status": status,
        })
    }

    fn pod_cells(p: &Value) -> Vec<Value> {
        let cols = builtin_columns("", "Pod");
        let t = build_table("", "Pod", &cols, std::slice::from_ref(p), "Metadata", now());
        t["rows"][0]["cells"].as_array().unwrap().clone()
    }

    #[test]
    fn pod_columns_are_the_api_server_set_with_wide_priority() {
        let cols = builtin_columns("", "Pod");
        let names: Vec<_> = cols.iter().map(|c| (c.name.as_str(), c.priority)).collect();
        assert_eq!(
            names,
            vec![
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ]
        );
        assert_eq!(cols[0].format, "name");
    }

    #[test]
    fn pod_status_column_shows_scheduling_gated() {
        let p = pod(json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated", "message": "Scheduling is blocked due to non-empty scheduling gates"}
        ]}));
        let cells = pod_cells(&p);
        assert_eq!(cells[0], "web-0");
        assert_eq!(cells[1], "0/1");
        assert_eq!(cells[2], "SchedulingGated");
        assert_eq!(cells[3], "0");
        assert_eq!(cells[4], "5m");
        assert_eq!(cells[5], "<none>");
        assert_eq!(cells[6], "<none>");
    }

    #[test]
    fn pod_status_column_pending_then_running_ready() {
        assert_eq!(pod_cells(&pod(json!({"phase": "Pending"})))[2], "Pending");
        let running = pod(json!({
            "phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T11:56:00Z"}}}]
        }));
        let cells = pod_cells(&running);
        assert_eq!(
            (cells[1].as_str(), cells[2].as_str(), cells[5].as_str()),
            (Some("1/1"), Some("Running"), Some("10.0.0.5"))
        );
    }

    #[test]
    fn pod_status_column_shows_crash_loop_back_off_with_restarts_ago() {
        let p = pod(json!({
            "phase": "Running",
            "containerStatuses": [{"name": "app", "ready": false, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2026-01-01T11:59:30Z"}}}]
        }));
        let cells = pod_cells(&p);
        assert_eq!(cells[2], "CrashLoopBackOff");
        assert_eq!(cells[3], "4 (30s ago)");
    }

    #[test]
    fn pod_status_column_shows_completed_and_error_from_terminated_reason() {
        let done = pod(
            json!({"phase": "Succeeded", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
        );
        let t = build_table(
            "",
            "Pod",
            &builtin_columns("", "Pod"),
            &[done],
            "None",
            now(),
        );
        assert_eq!(t["rows"][0]["cells"][2], "Completed");
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
        assert!(t["rows"][0].get("object").is_none());
        let failed = pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}]}),
        );
        assert_eq!(pod_cells(&failed)[2], "Error");
        let no_reason = pod(
            json!({"phase": "Failed", "containerStatuses": [{"name": "app", "state": {"terminated": {"exitCode": 3}}}]}),
        );
        assert_eq!(pod_cells(&no_reason)[2], "ExitCode:3");
    }

    #[test]
    fn pod_status_column_shows_terminating_when_deletion_timestamp_set() {
        let mut p = pod(
            json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "state": {"running": {}}}]}),
        );
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T11:59:00Z");
        assert_eq!(pod_cells(&p)[2], "Terminating");
    }

    #[test]
    fn pod_status_column_shows_init_progress_and_waiting_reason() {
        let mut p = pod(json!({"phase": "Pending",
            "initContainerStatuses": [{"name": "init", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}],
            "containerStatuses": [{"name": "app", "ready": false, "state": {"waiting": {"reason": "PodInitializing"}}}]}));
        p["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
        assert_eq!(pod_cells(&p)[2], "Init:0/1");
        let waiting = pod(
            json!({"phase": "Pending", "containerStatuses": [{"name": "app", "ready": false,
            "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}),
        );
        assert_eq!(pod_cells(&waiting)[2], "ImagePullBackOff");
    }

    #[test]
    fn table_row_object_follows_include_object() {
        let p = pod(json!({"phase": "Pending"}));
        let cols = builtin_columns("", "Pod");
        let meta = build_table(
            "",
            "Pod",
            &cols,
            std::slice::from_ref(&p),
            "Metadata",
            now(),
        );
        assert_eq!(meta["kind"], "Table");
        assert_eq!(meta["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(meta["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(meta["rows"][0]["object"]["metadata"]["uid"], "u1");
        assert!(meta["rows"][0]["object"].get("spec").is_none());
        let full = build_table("", "Pod", &cols, std::slice::from_ref(&p), "Object", now());
        assert_eq!(full["rows"][0]["object"], p);
        assert_eq!(full["columnDefinitions"][2]["name"], "Status");
        assert_eq!(full["columnDefinitions"][5]["priority"], 1);
    }

    #[test]
    fn deployment_row_shows_ready_up_to_date_available_and_wide_cells() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "creationTimestamp": "2026-01-01T09:00:00Z"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}, {"name": "side", "image": "envoy:1"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let cols = builtin_columns("apps", "Deployment");
        let t = build_table("apps", "Deployment", &cols, &[d], "Metadata", now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "2/3",
                3,
                2,
                "3h",
                "app,side",
                "nginx,envoy:1",
                "app=web,tier in (a,b)"
            ])
        );
    }

    #[test]
    fn job_row_shows_status_completions_duration() {
        let job = json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "creationTimestamp": "2026-01-01T11:00:00Z"},
            "spec": {"completions": 1, "parallelism": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "abc"}},
                "template": {"spec": {"containers": [{"name": "m", "image": "migrate:2"}]}}},
            "status": {"succeeded": 1, "startTime": "2026-01-01T11:00:00Z", "completionTime": "2026-01-01T11:00:42Z",
                "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
        let cols = builtin_columns("batch", "Job");
        let t = build_table("batch", "Job", &cols, &[job], "Metadata", now());
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "Complete");
        assert_eq!(cells[2], "1/1");
        assert_eq!(cells[3], "42s");
        assert_eq!(cells[4], "60m");
        let running = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 3}, "status": {"startTime": "2026-01-01T11:59:00Z"}});
        let t = build_table("batch", "Job", &cols, &[running], "None", now());
        assert_eq!(t["rows"][0]["cells"][1], "Running");
        assert_eq!(t["rows"][0]["cells"][2], "0/1 of 3");
        assert_eq!(t["rows"][0]["cells"][4], "<unknown>");
    }

    #[test]
    fn node_namespace_service_configmap_secret_rows() {
        let node = json!({"metadata": {"name": "n1", "creationTimestamp": "2026-01-01T12:00:00Z", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"},
                "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}});
        let t = build_table(
            "",
            "Node",
            &builtin_columns("", "Node"),
            &[node],
            "None",
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane",
                "0s",
                "v1.33.0",
                "172.18.0.2",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ])
        );

        let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2025-12-25T12:00:00Z"}, "status": {"phase": "Active"}});
        let t = build_table(
            "",
            "Namespace",
            &builtin_columns("", "Namespace"),
            &[ns],
            "None",
            now(),
        );
        assert_eq!(t["rows"][0]["cells"], json!(["default", "Active", "7d"]));

        let svc = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T12:00:00Z"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.12", "clusterIPs": ["10.96.0.12"], "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}});
        let t = build_table(
            "",
            "Service",
            &builtin_columns("", "Service"),
            &[svc],
            "None",
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "web",
                "NodePort",
                "10.96.0.12",
                "<none>",
                "80:30080/TCP,53/UDP",
                "0s",
                "app=web"
            ])
        );

        let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": "2026-01-01T12:00:00Z"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
        let t = build_table(
            "",
            "ConfigMap",
            &builtin_columns("", "ConfigMap"),
            &[cm],
            "None",
            now(),
        );
        assert_eq!(t["rows"][0]["cells"], json!(["cfg", 3, "0s"]));

        let secret = json!({"metadata": {"name": "tls", "creationTimestamp": "2026-01-01T12:00:00Z"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
        let t = build_table(
            "",
            "Secret",
            &builtin_columns("", "Secret"),
            &[secret],
            "None",
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["tls", "kubernetes.io/tls", 2, "0s"])
        );
    }

    #[test]
    fn event_row_shows_last_seen_type_reason_object_message() {
        let ev = json!({"metadata": {"name": "web.17a", "creationTimestamp": "2026-01-01T11:00:00Z"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled", "type": "Normal", "message": " Pulled image \"nginx\" ",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2026-01-01T11:50:00Z", "lastTimestamp": "2026-01-01T11:58:00Z", "count": 2});
        let cols = builtin_columns("", "Event");
        let t = build_table("", "Event", &cols, &[ev], "None", now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "2m",
                "Normal",
                "Pulled",
                "pod/web-0",
                "spec.containers{app}",
                "kubelet, n1",
                "Pulled image \"nginx\"",
                "10m",
                2,
                "web.17a"
            ])
        );
    }

    #[test]
    fn other_kinds_get_name_and_age_and_crds_created_at() {
        let cols = builtin_columns("rbac.authorization.k8s.io", "RoleBinding");
        assert_eq!(
            cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            vec!["Name", "Age"]
        );
        let crd_cols = builtin_columns("apiextensions.k8s.io", "CustomResourceDefinition");
        assert_eq!(
            crd_cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            vec!["Name", "Created At"]
        );
        let crd = json!({"metadata": {"name": "keptnapps.lifecycle.keptn.sh", "creationTimestamp": "2026-01-01T10:00:00Z"}});
        let t = build_table(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &crd_cols,
            &[crd],
            "None",
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["keptnapps.lifecycle.keptn.sh", "2026-01-01T10:00:00Z"])
        );
    }

    fn crd_version() -> Value {
        json!({"name": "v1", "served": true, "storage": true, "additionalPrinterColumns": [
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Retries", "type": "integer", "jsonPath": ".spec.retries", "priority": 1},
            {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
            {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
            {"name": "First", "type": "string", "jsonPath": ".spec.items[0].name", "description": "first item"},
            {"name": "Last", "type": "string", "jsonPath": ".spec.items[-1]"},
            {"name": "Started", "type": "date", "jsonPath": ".status.startTime"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ]})
    }

    #[test]
    fn crd_columns_put_name_first_and_keep_declared_order() {
        let cols = crd_columns(&crd_version());
        assert_eq!(cols[0].name, "Name");
        assert_eq!(cols[0].json_path, None);
        assert_eq!(cols[2].priority, 1);
        assert_eq!(
            cols[1].description,
            "Custom resource definition column (in JSONPath format): .status.conditions[?(@.type==\"Ready\")].status"
        );
        assert_eq!(cols[5].description, "first item");
        let bare = crd_columns(&json!({"name": "v1"}));
        assert_eq!(
            bare.iter()
                .map(|c| (c.name.as_str(), c.type_.as_str()))
                .collect::<Vec<_>>(),
            vec![("Name", "string"), ("Age", "date")]
        );
    }

    #[test]
    fn crd_printer_columns_evaluate_jsonpath_by_type() {
        let cr = json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnApp",
            "metadata": {"name": "app", "creationTimestamp": "2026-01-01T11:00:00Z"},
            "spec": {"retries": 3, "ratio": 0.5, "paused": false, "items": [{"name": "a"}, {"name": "b", "x": 1}]},
            "status": {"startTime": "2026-01-01T11:58:00Z", "conditions": [
                {"type": "Progressing", "status": "False"}, {"type": "Ready", "status": "True"}]}});
        let cols = crd_columns(&crd_version());
        let t = build_table(
            "lifecycle.keptn.sh",
            "KeptnApp",
            &cols,
            &[cr],
            "Metadata",
            now(),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "app",
                "True",
                3,
                0.5,
                false,
                "a",
                "{\"name\":\"b\",\"x\":1}",
                "2m",
                "60m"
            ])
        );
    }

    #[test]
    fn crd_printer_columns_missing_or_mistyped_values_are_null() {
        let cr = json!({"metadata": {"name": "app", "creationTimestamp": "bogus"}, "spec": {"retries": "three", "items": []},
            "status": {"startTime": "not a date"}});
        let cols = crd_columns(&crd_version());
        let t = build_table("g", "K", &cols, &[cr], "Metadata", now());
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "app",
                null,
                null,
                null,
                null,
                null,
                null,
                "<invalid>",
                "<invalid>"
            ])
        );
    }

    #[test]
    fn jsonpath_supports_quoted_keys_escapes_wildcards_and_filters() {
        let doc = json!({"metadata": {"labels": {"app.kubernetes.io/name": "web"}}, "items": [{"n": 1}, {"n": 5}]});
        let eval = |p: &str| {
            jsonpath::evaluate(&jsonpath::parse(p).unwrap(), &doc)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            eval(".metadata.labels['app.kubernetes.io/name']"),
            vec![json!("web")]
        );
        assert_eq!(
            eval(".metadata.labels.app\\.kubernetes\\.io/name"),
            vec![json!("web")]
        );
        assert_eq!(eval("{.items[*].n}"), vec![json!(1), json!(5)]);
        assert_eq!(eval(".items[?(@.n > 2)].n"), vec![json!(5)]);
        assert_eq!(eval("..n"), vec![json!(1), json!(5)]);
        assert!(eval(".items[7]").is_empty());
        assert!(jsonpath::parse(".items[?(@.n ~ 2)]").is_err());
    }

    #[test]
    fn human_duration_matches_api_machinery() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let at = |secs: i64| {
            human_duration_since(t0, Timestamp::from_second(t0.as_second() + secs).unwrap())
        };
        assert_eq!(at(-1), "0s");
        assert_eq!(at(-5), "<invalid>");
        assert_eq!(at(119), "119s");
        assert_eq!(at(150), "2m30s");
        assert_eq!(at(600), "10m");
        assert_eq!(at(3 * 3600 + 1800), "3h30m");
        assert_eq!(at(30 * 3600), "30h");
        assert_eq!(at(3 * 86400 + 7200), "3d2h");
        assert_eq!(at(30 * 86400), "30d");
        assert_eq!(at(3 * 365 * 86400 + 86400), "3y1d");
        assert_eq!(at(10 * 365 * 86400), "10y");
    }
}

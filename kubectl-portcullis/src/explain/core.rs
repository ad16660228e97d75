//! What the webhook does with each workload of some manifests, computed by the webhook's own pure
//! core: every object becomes a CREATE AdmissionRequest answered by `webhook::pods::admit` or
//! `webhook::workloads::admit` against a `webhook::snapshot::MemorySnapshot` of the manifests
//! (objects the manifests lack are "fetched" as absent, exactly as the webhook's shell fills the
//! gaps of its caches). Identity and provenance come from `shared::resolve::resolve` on the same
//! inputs, names from `shared::resolve` and `lifecycle` (KeptnWorkloadVersion, app discovery,
//! KeptnAppVersion). No rule is decided here; this module only describes the decisions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::core::DynamicObject;
use kube::core::admission::AdmissionRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::crd::{KeptnApp, KeptnWorkload};
use shared::gate::GATE;
use shared::resolve::{
    self, ContainerView, Identity, KeySource, MetaSource, ObjectMetaView, PodView, VersionSource,
    keys,
};
use webhook::decision::{Decision, Denial, Needed, Verdict, Write};
use webhook::namespaces::{ENABLED, ENABLEMENT_KEY, Enablement};
use webhook::snapshot::{
    Cached, Fetched, MemorySnapshot, NamespaceMeta, ParentKind, ReplicaSetMeta, Snapshot,
    WithFetched, meta_view,
};

/// Placeholder for the `pod-template-hash` of the ReplicaSet a Deployment will create (its real
/// value is computed by the Deployment controller; no name explained here depends on it).
pub const TEMPLATE_HASH: &str = "<hash>";

/// How many objects one request may lack before giving up, as the webhook's shell.
const MAX_FETCHES: usize = 3;

/// What `explain` knows beyond the manifests.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Namespace of objects that name none (`-n`, else the kubeconfig's, else `default`).
    pub default_namespace: String,
    /// `--namespace-enabled`: every namespace the workloads go to counts as enabled.
    pub namespace_enabled: bool,
    /// Namespaces read from the cluster, metadata only as the webhook reads them (`None`: it
    /// does not exist).
    pub cluster_namespaces: BTreeMap<String, Option<NamespaceMeta>>,
    /// Why the cluster could not be asked for the namespaces (they count as not enabled).
    pub cluster_error: Option<String>,
}

/// A value with where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sourced {
    /// The value as written (the version before lower-casing).
    pub value: String,
    /// Which key of which object, or how it was derived.
    pub source: String,
}

/// What the webhook does with one object of the manifests, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// `Pod`, `Deployment`, …
    pub kind: String,
    /// The namespace it goes to.
    pub namespace: String,
    /// `metadata.name` (else `generateName`).
    pub name: String,
    /// Whether Portcullis takes the workload over: its pods are gated and a KeptnWorkload is
    /// created.
    pub enabled: bool,
    /// Why (or why not).
    pub reason: String,
    /// The KeptnApp's name as written.
    pub app: Option<Sourced>,
    /// The workload's name as written.
    pub workload: Option<Sourced>,
    /// The version as written.
    pub version: Option<Sourced>,
    /// `single-service` (no app key: the workload is its own app) or `multi-service`.
    pub app_type: Option<String>,
    /// KeptnApp (and KeptnAppCreationRequest) name.
    pub keptn_app: Option<String>,
    /// KeptnWorkload name.
    pub keptn_workload: Option<String>,
    /// KeptnWorkloadVersion name.
    pub keptn_workload_version: Option<String>,
    /// KeptnAppVersion name, for a new KeptnApp of the workloads of these manifests.
    pub keptn_app_version: Option<String>,
    /// `keptn.sh/pre-deployment-tasks`.
    pub pre_deployment_tasks: Vec<String>,
    /// `keptn.sh/post-deployment-tasks`.
    pub post_deployment_tasks: Vec<String>,
    /// `keptn.sh/pre-deployment-evaluations`.
    pub pre_deployment_evaluations: Vec<String>,
    /// `keptn.sh/post-deployment-evaluations`.
    pub post_deployment_evaluations: Vec<String>,
    /// `keptn.sh/metadata`.
    pub metadata: BTreeMap<String, String>,
    /// The webhook endpoint that admits the object (`None`: the webhook does not see it, e.g.
    /// a ReplicaSet; its pods are in `pods`).
    pub webhook_path: Option<String>,
    /// Whether the webhook admits the object.
    pub allowed: bool,
    /// The webhook's `status.message`.
    pub message: Option<String>,
    /// The JSON Patch the webhook returns (`None`: admitted unchanged).
    pub patch: Option<Value>,
    /// The error the webhook returns (rejected).
    pub error: Option<String>,
    /// The Keptn objects the webhook writes (when they do not exist yet).
    pub writes: Vec<String>,
    /// Assumptions made: objects not in the manifests, the namespace, the app version.
    pub notes: Vec<String>,
    /// For a Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob: what its pods get
    /// (a pod built from the template as its controller creates it).
    pub pods: Option<Box<Explanation>>,
}

/// The kinds explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Pod,
    Workload(ParentKind),
    ReplicaSet,
    Job,
    CronJob,
}

fn subject(object: &Value) -> Option<Subject> {
    let group = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|v| v.rsplit_once('/').map_or("", |(group, _)| group));
    let in_group = |wanted: &[&str]| group.is_none_or(|g| wanted.contains(&g));
    let apps = ["apps", "extensions"];
    Some(match object.get("kind").and_then(Value::as_str)? {
        "Pod" if in_group(&[""]) => Subject::Pod,
        "Deployment" if in_group(&apps) => Subject::Workload(ParentKind::Deployment),
        "StatefulSet" if in_group(&apps) => Subject::Workload(ParentKind::StatefulSet),
        "DaemonSet" if in_group(&apps) => Subject::Workload(ParentKind::DaemonSet),
        "ReplicaSet" if in_group(&apps) => Subject::ReplicaSet,
        "Job" if in_group(&["batch"]) => Subject::Job,
        "CronJob" if in_group(&["batch"]) => Subject::CronJob,
        _ => return None,
    })
}

fn kind_of(object: &Value) -> &str {
    object.get("kind").and_then(Value::as_str).unwrap_or("")
}

fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn namespace_of(object: &Value) -> &str {
    meta_str(object, "namespace")
}

fn name_of(object: &Value) -> &str {
    match meta_str(object, "name") {
        "" => meta_str(object, "generateName"),
        name => name,
    }
}

/// `object` with `metadata.namespace` set to `default` when it names none (as `kubectl apply`
/// with `-n` does). Namespaces are cluster-scoped and kept as they are.
fn placed(object: &Value, default: &str) -> Value {
    let mut object = object.clone();
    if kind_of(&object) != "Namespace"
        && namespace_of(&object).is_empty()
        && let Some(map) = object.as_object_mut()
    {
        let meta = map.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("namespace".into(), json!(default));
        }
    }
    object
}

/// The namespaces the workloads of `objects` go to that neither `--namespace-enabled` nor a
/// Namespace of the manifests decides: those to read from the cluster.
pub fn namespaces_to_read(objects: &[Value], options: &Options) -> BTreeSet<String> {
    if options.namespace_enabled {
        return BTreeSet::new();
    }
    let in_manifests: BTreeSet<&str> = objects
        .iter()
        .filter(|o| kind_of(o) == "Namespace")
        .map(|o| meta_str(o, "name"))
        .collect();
    objects
        .iter()
        .filter(|o| subject(o).is_some())
        .map(|o| match namespace_of(o) {
            "" => options.default_namespace.as_str(),
            ns => ns,
        })
        .filter(|ns| !in_manifests.contains(ns))
        .map(str::to_owned)
        .collect()
}

/// Whether some workload of `objects` names no namespace (then the default namespace matters).
pub fn needs_default_namespace(objects: &[Value]) -> bool {
    objects
        .iter()
        .any(|o| subject(o).is_some() && namespace_of(o).is_empty())
}

/// Everything known: the manifests as the webhook's caches would hold them.
struct World {
    snapshot: MemorySnapshot,
    apps: BTreeMap<(String, String), KeptnApp>,
    /// Notes per namespace (how its enablement was decided), for the explanations in it.
    namespace_notes: BTreeMap<String, Vec<String>>,
}

fn typed<T: serde::de::DeserializeOwned>(object: &Value) -> Option<T> {
    serde_json::from_value(object.clone()).ok()
}

fn enabled_namespace(name: &str) -> NamespaceMeta {
    let mut ns = NamespaceMeta::default();
    ns.metadata.name = Some(name.to_owned());
    ns.metadata.annotations = Some([(ENABLEMENT_KEY.to_owned(), ENABLED.to_owned())].into());
    ns
}

fn enablement_of(ns: &NamespaceMeta) -> Enablement {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let snapshot = MemorySnapshot::complete().with_namespace(ns.clone());
    webhook::namespaces::enablement(&name, &snapshot)
}

fn build_world(objects: &[Value], options: &Options) -> World {
    let mut snapshot = MemorySnapshot::default();
    let mut apps = BTreeMap::new();
    let mut namespace_notes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut manifest_namespaces = BTreeMap::new();
    for object in objects {
        match (kind_of(object), subject(object)) {
            ("Namespace", _) => {
                if let Some(ns) = typed::<NamespaceMeta>(object) {
                    manifest_namespaces.insert(meta_str(object, "name").to_owned(), ns);
                }
            }
            ("KeptnApp", _) => {
                if let Some(app) = typed::<KeptnApp>(object) {
                    let key = (namespace_of(object).to_owned(), name_of(object).to_owned());
                    apps.insert(key, app.clone());
                    snapshot = snapshot.with_app(app);
                }
            }
            (_, Some(Subject::ReplicaSet)) => {
                if let Some(rs) = typed::<ReplicaSetMeta>(object) {
                    snapshot = snapshot.with_replica_set(rs);
                }
            }
            (_, Some(Subject::Workload(kind))) => {
                if let Some(meta) = object
                    .get("metadata")
                    .and_then(|m| ObjectMetaView::deserialize(m).ok())
                {
                    snapshot = snapshot.with_parent(
                        kind,
                        namespace_of(object),
                        meta_str(object, "name"),
                        meta,
                    );
                }
                if kind == ParentKind::Deployment
                    && let Some(rs) = typed::<ReplicaSetMeta>(&replica_set_of(object))
                {
                    snapshot = snapshot.with_replica_set(rs);
                }
            }
            _ => {}
        }
    }
    let targets: BTreeSet<&str> = objects
        .iter()
        .filter(|o| subject(o).is_some())
        .map(namespace_of)
        .collect();
    for (name, ns) in &manifest_namespaces {
        if options.namespace_enabled && targets.contains(name.as_str()) {
            if enablement_of(ns) != Enablement::Enabled {
                namespace_notes
                    .entry(name.clone())
                    .or_default()
                    .push(format!(
                        "the Namespace {name} of the manifests is not enabled; \
                         --namespace-enabled counts it as enabled"
                    ));
            }
        } else {
            snapshot = snapshot.with_namespace(ns.clone());
        }
    }
    for name in targets {
        if options.namespace_enabled {
            snapshot = snapshot.with_namespace(enabled_namespace(name));
        } else if !manifest_namespaces.contains_key(name) {
            let note = match options.cluster_namespaces.get(name) {
                Some(Some(ns)) => {
                    snapshot = snapshot.with_namespace(ns.clone());
                    continue;
                }
                Some(None) => format!(
                    "namespace {name} is neither in the manifests nor in the cluster: not enabled"
                ),
                None => {
                    let why = options
                        .cluster_error
                        .as_deref()
                        .map_or(String::new(), |e| format!(" ({e})"));
                    format!(
                        "namespace {name} is not in the manifests and could not be read from the \
                         cluster{why}: assumed not enabled (pass --namespace-enabled if it is)"
                    )
                }
            };
            namespace_notes
                .entry(name.to_owned())
                .or_default()
                .push(note);
        }
    }
    World {
        snapshot,
        apps,
        namespace_notes,
    }
}

/// An owner reference as controllers write them.
fn owner_reference(api_version: &str, kind: &str, name: &str, uid: &str) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true
    })
}

fn uid_of(object: &Value) -> String {
    match meta_str(object, "uid") {
        "" => format!("<uid of {} {}>", kind_of(object), name_of(object)),
        uid => uid.to_owned(),
    }
}

/// The ReplicaSet the Deployment controller creates for `deployment` (metadata only).
fn replica_set_of(deployment: &Value) -> Value {
    let rs = format!("{}-{TEMPLATE_HASH}", name_of(deployment));
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": rs,
            "namespace": namespace_of(deployment),
            "uid": format!("<uid of ReplicaSet {rs}>"),
            "ownerReferences": [owner_reference(
                "apps/v1", "Deployment", name_of(deployment), &uid_of(deployment),
            )]
        }
    })
}

/// The pod the controller of `object` creates from its template.
fn pod_of(object: &Value, subject: Subject) -> Value {
    let name = name_of(object);
    let spec = object.get("spec");
    let template = match subject {
        Subject::CronJob => spec
            .and_then(|s| s.get("jobTemplate"))
            .and_then(|j| j.get("spec"))
            .and_then(|s| s.get("template")),
        _ => spec.and_then(|s| s.get("template")),
    };
    let owned_by =
        |api_version: &str| owner_reference(api_version, kind_of(object), name, &uid_of(object));
    let (owner, pod_name, generate_name) = match subject {
        Subject::Workload(ParentKind::Deployment) => {
            let rs = replica_set_of(object);
            let owner = owner_reference("apps/v1", "ReplicaSet", name_of(&rs), &uid_of(&rs));
            (owner, None, Some(format!("{}-", name_of(&rs))))
        }
        Subject::Workload(ParentKind::StatefulSet) => {
            (owned_by("apps/v1"), Some(format!("{name}-0")), None)
        }
        Subject::Workload(ParentKind::DaemonSet) | Subject::ReplicaSet => {
            (owned_by("apps/v1"), None, Some(format!("{name}-")))
        }
        Subject::Job => (owned_by("batch/v1"), None, Some(format!("{name}-"))),
        // A pod is its own pod.
        Subject::Pod => return object.clone(),
        Subject::CronJob => {
            let job = format!("{name}-<time>");
            let uid = format!("<uid of Job {job}>");
            let owner = owner_reference("batch/v1", "Job", &job, &uid);
            (owner, None, Some(format!("{job}-")))
        }
    };
    let mut metadata = match template.and_then(|t| t.get("metadata")) {
        Some(Value::Object(meta)) => meta.clone(),
        _ => serde_json::Map::new(),
    };
    for field in [
        "name",
        "generateName",
        "namespace",
        "ownerReferences",
        "uid",
    ] {
        metadata.remove(field);
    }
    metadata.insert("namespace".into(), json!(namespace_of(object)));
    if let Some(pod_name) = pod_name {
        metadata.insert("name".into(), json!(pod_name));
    }
    if let Some(generate_name) = generate_name {
        metadata.insert("generateName".into(), json!(generate_name));
    }
    metadata.insert("ownerReferences".into(), json!([owner]));
    if subject == Subject::Workload(ParentKind::Deployment) {
        let labels = metadata.entry("labels").or_insert_with(|| json!({}));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert("pod-template-hash".into(), json!(TEMPLATE_HASH));
        }
    }
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata});
    if let Some(spec) = template.and_then(|t| t.get("spec")) {
        pod["spec"] = spec.clone();
    }
    pod
}

/// The CREATE AdmissionRequest the API server sends for `object` (group `group`, version v1),
/// read by the webhook's own parser; `Err` with why the object cannot be read.
pub fn admission_request(
    group: &str,
    kind: &str,
    resource: &str,
    object: &Value,
) -> Result<AdmissionRequest<DynamicObject>, String> {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "kubectl-portcullis-explain",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "requestKind": {"group": group, "version": "v1", "kind": kind},
            "requestResource": {"group": group, "version": "v1", "resource": resource},
            "name": meta_str(object, "name"),
            "namespace": namespace_of(object),
            "operation": "CREATE",
            "userInfo": {"username": "kubectl-portcullis-explain"},
            "object": object,
            "oldObject": null,
            "dryRun": true,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    });
    let body = serde_json::to_vec(&review).map_err(|e| e.to_string())?;
    webhook::review::parse(&body).map_err(|err| match err {
        webhook::review::ReviewError::Malformed(e) => e.to_string(),
        other => other.to_string(),
    })
}

type Admit = fn(&AdmissionRequest<DynamicObject>, &dyn Snapshot) -> Result<Decision, Needed>;

fn admit_pod(r: &AdmissionRequest<DynamicObject>, s: &dyn Snapshot) -> Result<Decision, Needed> {
    webhook::pods::admit(r, s)
}

fn admit_workload(
    r: &AdmissionRequest<DynamicObject>,
    s: &dyn Snapshot,
) -> Result<Decision, Needed> {
    webhook::workloads::admit(r, s)
}

/// Decides as the webhook's shell does: objects missing from the snapshot are "fetched", here
/// as absent (they are not in the manifests). Also returns what was fetched and what was missing.
fn decide(
    request: &AdmissionRequest<DynamicObject>,
    snapshot: &MemorySnapshot,
    admit: Admit,
) -> (Decision, Fetched, Vec<Needed>) {
    let nothing = MemorySnapshot::complete();
    let mut fetched = Fetched::default();
    let mut missing = Vec::new();
    for _ in 0..=MAX_FETCHES {
        let view = WithFetched {
            base: snapshot,
            fetched: &fetched,
        };
        match admit(request, &view) {
            Ok(decision) => return (decision, fetched, missing),
            Err(needed) => {
                fetched.record(&needed, &nothing);
                missing.push(needed);
            }
        }
    }
    let denial = Verdict::Deny(Denial {
        code: 500,
        reason: "InternalError".into(),
        message: "too many objects missing from the caches".into(),
        details: None,
    });
    (Decision::only(denial), fetched, missing)
}

fn missing_note(needed: &Needed) -> Option<String> {
    let (kind, namespace, name) = match needed {
        // Namespaces have their own notes (the flag, the cluster).
        Needed::Namespace(_) => return None,
        Needed::ReplicaSet { namespace, name } => ("ReplicaSet", namespace, name),
        Needed::Parent {
            kind,
            namespace,
            name,
        } => (kind.as_str(), namespace, name),
    };
    Some(format!(
        "{kind} {namespace}/{name} is not in the manifests: taken as absent (the webhook reads it \
         from the cluster)"
    ))
}

/// Who "the pod" and "the parent" of [`MetaSource`] are, in source descriptions.
struct Objects {
    own: String,
    parent: String,
}

fn describe_key(source: &KeySource, objects: &Objects) -> String {
    let object = match source.object {
        MetaSource::Pod => &objects.own,
        MetaSource::Parent => &objects.parent,
    };
    format!("{} {} of {object}", source.place.as_str(), source.key)
}

fn describe_version(source: &VersionSource, objects: &Objects) -> String {
    match source {
        VersionSource::Key(key) => describe_key(key, objects),
        VersionSource::ImageTag {
            container,
            named_by,
        } => format!(
            "image tag of container {container} (named by {})",
            describe_key(named_by, objects)
        ),
        VersionSource::ContainersHash { named: None } => format!(
            "hash of the containers' names, images and env (no {}, {} or {})",
            keys::VERSION,
            keys::K8S_VERSION,
            keys::CONTAINER
        ),
        VersionSource::ContainersHash {
            named: Some((container, named_by)),
        } => format!(
            "hash of the containers' names, images and env (container {container}, named by {}, \
             has no usable image tag)",
            describe_key(named_by, objects)
        ),
    }
}

/// Fills the identity fields of `out` from `identity` and the writes.
fn fill_identity(out: &mut Explanation, identity: &Identity, writes: &[Write], objects: &Objects) {
    let provenance = &identity.provenance;
    out.workload = Some(Sourced {
        value: identity.workload_value.clone(),
        source: describe_key(&provenance.workload, objects),
    });
    out.app = Some(Sourced {
        value: identity.app_value.clone(),
        source: match &provenance.app {
            Some(key) => describe_key(key, objects),
            None => format!(
                "no {} or {}: a single-service app named after the workload",
                keys::APP,
                keys::K8S_PART_OF
            ),
        },
    });
    out.version = Some(Sourced {
        value: identity.version_value.clone(),
        source: describe_version(&provenance.version, objects),
    });
    out.app_type = Some(identity.app_type().as_str().to_owned());
    out.keptn_app = Some(identity.names.app_name.clone());
    // The KeptnWorkload's name as written; its KeptnWorkloadVersion and KeptnAppVersion follow
    // from all the manifests' writes ([`versions`]).
    let written = writes.iter().find_map(|w| match w {
        Write::CreateWorkload(w) | Write::UpdateWorkload(w) => w.metadata.name.clone(),
        Write::CreateAppCreationRequest(_) => None,
    });
    out.keptn_workload = Some(written.unwrap_or_else(|| identity.names.workload_name.clone()));
    out.pre_deployment_tasks = identity.pre_deployment_tasks.clone();
    out.post_deployment_tasks = identity.post_deployment_tasks.clone();
    out.pre_deployment_evaluations = identity.pre_deployment_evaluations.clone();
    out.post_deployment_evaluations = identity.post_deployment_evaluations.clone();
    out.metadata = identity.metadata.clone();
}

fn blank(kind: &str, namespace: &str, name: &str) -> Explanation {
    Explanation {
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        enabled: false,
        reason: String::new(),
        app: None,
        workload: None,
        version: None,
        app_type: None,
        keptn_app: None,
        keptn_workload: None,
        keptn_workload_version: None,
        keptn_app_version: None,
        pre_deployment_tasks: Vec::new(),
        post_deployment_tasks: Vec::new(),
        pre_deployment_evaluations: Vec::new(),
        post_deployment_evaluations: Vec::new(),
        metadata: BTreeMap::new(),
        webhook_path: None,
        allowed: true,
        message: None,
        patch: None,
        error: None,
        writes: Vec::new(),
        notes: Vec::new(),
        pods: None,
    }
}

/// The verdict's fields.
fn fill_verdict(out: &mut Explanation, decision: &Decision) {
    match &decision.verdict {
        Verdict::Allow { patch, message } => {
            out.allowed = true;
            out.message = message.clone();
            out.patch = (!patch.is_empty()).then(|| json!(patch));
        }
        Verdict::Deny(denial) => {
            out.allowed = false;
            out.error = Some(denial.message.clone());
        }
    }
    out.writes = decision.writes.iter().map(ToString::to_string).collect();
}

/// Why a pod is left alone, from the webhook's message.
fn pod_reason(message: &str, pod: &DynamicObject, namespace: &str, template: bool) -> String {
    use webhook::pods::messages as m;
    let what = if template {
        "the pod template"
    } else {
        "the pod"
    };
    if message == m::NOT_ENABLED {
        return format!(
            "namespace {namespace} is not enabled for Portcullis (it needs the annotation or \
             label {ENABLEMENT_KEY}: {ENABLED})"
        );
    }
    if message == m::OWNER_NOT_SUPPORTED {
        let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
        return match owners.last() {
            None => "a bare pod (no owner): only pods of ReplicaSets (Deployments), \
                     StatefulSets, DaemonSets and Argo Rollouts are gated"
                .to_owned(),
            Some(o) if o.kind == "Job" => format!(
                "owned by Job {}: pods of Jobs (and CronJobs) are never gated",
                o.name
            ),
            Some(o) => format!("owned by {} {}, not a supported owner", o.kind, o.name),
        };
    }
    if message == m::NOT_ANNOTATED {
        return format!(
            "no workload key: neither {} nor {} on {what} or its Deployment, StatefulSet or \
             DaemonSet",
            keys::WORKLOAD,
            keys::K8S_NAME
        );
    }
    if let Some(cause) = message.strip_prefix(&format!("{}: ", m::NOT_ANNOTATED)) {
        return format!("the parent's workload key is ignored: {cause}");
    }
    message.to_owned()
}

/// An explanation with the Keptn objects its admissions (its own and its pods') write.
struct Explained {
    explanation: Explanation,
    writes: Vec<Write>,
}

/// The pod explanation: `pod` admitted through `/mutate-v1-pod`. `template_of` names the
/// object whose template the pod was built from.
fn explain_pod(
    pod: &Value,
    snapshot: &MemorySnapshot,
    template_of: Option<(&str, &str)>,
) -> Explained {
    let namespace = namespace_of(pod);
    let mut out = blank("Pod", namespace, name_of(pod));
    out.webhook_path = Some(webhook::server::POD_PATH.to_owned());
    let request = match admission_request("", "Pod", "pods", pod) {
        Ok(request) => request,
        Err(err) => return unreadable(out, &err),
    };
    let (decision, fetched, missing) = decide(&request, snapshot, admit_pod);
    fill_verdict(&mut out, &decision);
    out.notes.extend(missing.iter().filter_map(missing_note));
    let object = request.object.as_ref();
    match &decision.verdict {
        Verdict::Allow { patch, .. } if !patch.is_empty() => {
            out.enabled = true;
            out.reason = format!(
                "pods get the scheduling gate {GATE} until the workload's pre-deployment checks \
                 pass"
            );
            let snapshot = WithFetched {
                base: snapshot,
                fetched: &fetched,
            };
            if let Some((identity, parent)) = object.and_then(|p| pod_identity(p, &snapshot)) {
                let objects = match template_of {
                    Some((kind, name)) => Objects {
                        own: "the pod template".to_owned(),
                        parent: format!("the {kind} {name}"),
                    },
                    None => Objects {
                        own: "the pod".to_owned(),
                        parent: parent.unwrap_or_else(|| "its parent".to_owned()),
                    },
                };
                fill_identity(&mut out, &identity, &decision.writes, &objects);
            }
        }
        Verdict::Allow { message, .. } => {
            let message = message.as_deref().unwrap_or_default();
            out.reason = match object {
                Some(p) => pod_reason(message, p, namespace, template_of.is_some()),
                None => message.to_owned(),
            };
        }
        Verdict::Deny(denial) => {
            out.reason = format!("rejected by the webhook: {}", denial.message);
        }
    }
    Explained {
        explanation: out,
        writes: decision.writes,
    }
}

/// The identity the webhook gave `pod` (resolution again, on the inputs `admit` used), and the
/// description of its parent.
fn pod_identity(
    pod: &DynamicObject,
    snapshot: &dyn Snapshot,
) -> Option<(Identity, Option<String>)> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let owner = webhook::pods::supported_owner(pod.metadata.owner_references.as_deref())?;
    let containers = match pod.data.get("spec").and_then(|s| s.get("containers")) {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => Vec::<ContainerView>::deserialize(value).ok()?,
    };
    // With the pod's own workload key the parent plays no part (and may never have been read).
    let parent = webhook::pods::parent_meta(namespace, owner, snapshot)
        .ok()
        .flatten();
    let identity = resolve::resolve(&meta_view(pod), &containers, parent.as_ref())
        .ok()
        .flatten()?;
    let parent = (identity.source == MetaSource::Parent).then(|| {
        let rs_owner = match (
            owner.kind.as_str(),
            snapshot.replica_set(namespace, &owner.name),
        ) {
            ("ReplicaSet", Cached::Found(rs)) => {
                webhook::pods::supported_owner(rs.metadata.owner_references.as_deref())
                    .map(|o| format!("the {} {}", o.kind, o.name))
            }
            _ => None,
        };
        rs_owner.unwrap_or_else(|| format!("the {} {}", owner.kind, owner.name))
    });
    Some((identity, parent))
}

fn unreadable(mut out: Explanation, err: &str) -> Explained {
    let message = format!("the object cannot be read: {err}");
    out.allowed = false;
    out.reason = message.clone();
    out.error = Some(message);
    Explained {
        explanation: out,
        writes: Vec::new(),
    }
}

/// A Deployment, StatefulSet or DaemonSet: `/mutate-workloads`, and its pods.
fn explain_workload(object: &Value, kind: ParentKind, world: &World) -> Explained {
    let namespace = namespace_of(object);
    let name = name_of(object);
    let mut out = blank(kind.as_str(), namespace, name);
    out.webhook_path = Some(webhook::server::WORKLOAD_PATH.to_owned());
    let resource = format!("{}s", kind.as_str().to_lowercase());
    let request = match admission_request("apps", kind.as_str(), &resource, object) {
        Ok(request) => request,
        Err(err) => return unreadable(out, &err),
    };
    let (decision, _, missing) = decide(&request, &world.snapshot, admit_workload);
    fill_verdict(&mut out, &decision);
    out.notes.extend(missing.iter().filter_map(missing_note));
    // Its pods come after its admission: the caches hold what it wrote.
    let mut after = world.snapshot.clone();
    for write in &decision.writes {
        after = match write {
            Write::CreateWorkload(w) | Write::UpdateWorkload(w) => {
                after.with_workload((**w).clone())
            }
            Write::CreateAppCreationRequest(r) => after.with_app_creation_request((**r).clone()),
        };
    }
    let pods = explain_pod(
        &pod_of(object, Subject::Workload(kind)),
        &after,
        Some((kind.as_str(), name)),
    );
    let resolved = matches!(
        &decision.verdict,
        Verdict::Allow { message: Some(m), .. } if m == webhook::workloads::messages::RESOLVED
    );
    if resolved && let Some(identity) = request.object.as_ref().and_then(workload_identity) {
        let objects = Objects {
            own: "the pod template".to_owned(),
            parent: format!("the {} {name}", kind.as_str()),
        };
        fill_identity(&mut out, &identity, &decision.writes, &objects);
    }
    out.enabled = out.allowed && pods.explanation.enabled;
    out.reason = match (&decision.verdict, &out.message) {
        (Verdict::Deny(denial), _) => format!("rejected by the webhook: {}", denial.message),
        (_, Some(m)) if m == webhook::workloads::messages::NOT_ANNOTATED => format!(
            "no workload key: neither {} nor {} on the {} or its pod template",
            keys::WORKLOAD,
            keys::K8S_NAME,
            kind.as_str()
        ),
        _ => pods.explanation.reason.clone(),
    };
    out.pods = Some(Box::new(pods.explanation));
    let mut writes = decision.writes;
    writes.extend(pods.writes);
    Explained {
        explanation: out,
        writes,
    }
}

/// The identity the webhook gave a workload (resolution again, on the inputs `admit` used).
fn workload_identity(object: &DynamicObject) -> Option<Identity> {
    let template = match object.data.get("spec").and_then(|s| s.get("template")) {
        None => PodView::default(),
        Some(value) => PodView::deserialize(value).ok()?,
    };
    resolve::resolve(
        &template.metadata,
        &template.spec.containers,
        Some(&meta_view(object)),
    )
    .ok()
    .flatten()
}

/// A ReplicaSet, Job or CronJob: the webhook never sees it, only its pods.
fn explain_controller(object: &Value, subject: Subject, world: &World) -> Explained {
    let kind = kind_of(object);
    let pods = explain_pod(
        &pod_of(object, subject),
        &world.snapshot,
        Some((kind, name_of(object))),
    );
    let mut out = Explanation {
        kind: kind.to_owned(),
        namespace: namespace_of(object).to_owned(),
        name: name_of(object).to_owned(),
        webhook_path: None,
        allowed: true,
        message: None,
        patch: None,
        error: None,
        writes: Vec::new(),
        notes: Vec::new(),
        pods: None,
        ..pods.explanation.clone()
    };
    let bare = subject == Subject::ReplicaSet
        && webhook::pods::supported_owner(
            typed::<ReplicaSetMeta>(object)
                .and_then(|rs| rs.metadata.owner_references)
                .as_deref(),
        )
        .is_none();
    if bare {
        out.notes.push(
            "a ReplicaSet without a Deployment: its own metadata is ignored, only its pod \
             template counts"
                .to_owned(),
        );
    }
    out.pods = Some(Box::new(pods.explanation));
    Explained {
        explanation: out,
        writes: pods.writes,
    }
}

fn explain_one(object: &Value, subject: Subject, world: &World) -> Explained {
    let mut explained = match subject {
        Subject::Pod => explain_pod(object, &world.snapshot, None),
        Subject::Workload(kind) => explain_workload(object, kind, world),
        Subject::ReplicaSet | Subject::Job | Subject::CronJob => {
            explain_controller(object, subject, world)
        }
    };
    if let Some(notes) = world.namespace_notes.get(namespace_of(object)) {
        explained.explanation.notes.extend(notes.iter().cloned());
    }
    explained
}

/// Explains every Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob and Pod of
/// `objects`, in order. Namespaces, ReplicaSets, the parents and KeptnApps of `objects` are what
/// the webhook's caches hold; objects without namespace go to `options.default_namespace`.
pub fn explain(objects: &[Value], options: &Options) -> Vec<Explanation> {
    let objects: Vec<Value> = objects
        .iter()
        .map(|o| placed(o, &options.default_namespace))
        .collect();
    let world = build_world(&objects, options);
    let explained: Vec<Explained> = objects
        .iter()
        .filter_map(|o| subject(o).map(|s| explain_one(o, s, &world)))
        .collect();
    let versions = versions(&explained, &world);
    explained
        .into_iter()
        .map(|e| {
            let mut explanation = e.explanation;
            versions.fill(&mut explanation, true);
            explanation
        })
        .collect()
}

/// What the gate makes of the KeptnWorkloads the manifests lead to: their KeptnWorkloadVersions
/// and the KeptnAppVersions of their apps, or why there is none (yet).
struct Versions {
    /// KeptnWorkloadVersion name by (namespace, KeptnWorkload), or why none.
    workloads: BTreeMap<(String, String), Result<String, String>>,
    /// KeptnAppVersion name and the KeptnWorkloads counted, by (namespace, app), or why none.
    apps: BTreeMap<(String, String), Result<AppVersion, String>>,
}

/// A KeptnAppVersion's name and the KeptnWorkloads its app is made of.
type AppVersion = (String, Vec<String>);

/// The KeptnWorkloads as the last write leaves them (a Deployment's, then its pods' pointing at
/// their ReplicaSet), and the KeptnAppCreationRequest annotations, per (namespace, app).
type Apps = BTreeMap<(String, String), (BTreeMap<String, KeptnWorkload>, BTreeMap<String, String>)>;

/// The gate's plans (`lifecycle::versions::plan_workload`, `app_awaits_pods`, `plan_app`) and
/// app discovery (`lifecycle::discovery::plan_discovery`) over what the manifests write.
fn versions(explained: &[Explained], world: &World) -> Versions {
    use lifecycle::versions::{WorkloadPlan, app_awaits_pods, plan_workload};
    let mut apps = Apps::new();
    for write in explained.iter().flat_map(|e| &e.writes) {
        match write {
            Write::CreateWorkload(w) | Write::UpdateWorkload(w) => {
                let key = (
                    w.metadata.namespace.clone().unwrap_or_default(),
                    w.spec.app.clone(),
                );
                let name = w.metadata.name.clone().unwrap_or_default();
                apps.entry(key).or_default().0.insert(name, (**w).clone());
            }
            Write::CreateAppCreationRequest(r) => {
                let key = (
                    r.metadata.namespace.clone().unwrap_or_default(),
                    r.spec.app_name.clone(),
                );
                let annotations = r.metadata.annotations.clone().unwrap_or_default();
                apps.entry(key).or_default().1.extend(annotations);
            }
        }
    }
    let mut versions = Versions {
        workloads: BTreeMap::new(),
        apps: BTreeMap::new(),
    };
    for ((namespace, app), (workloads, annotations)) in &apps {
        for (name, workload) in workloads {
            let kwv = match plan_workload(workload, None) {
                WorkloadPlan::Create(kwv) => Ok(kwv.metadata.name.unwrap_or_default()),
                _ => Err(format!(
                    "no KeptnWorkloadVersion yet: KeptnWorkload {name} names the {} {}; the \
                     gate creates it once a pod of one of its ReplicaSets is admitted",
                    workload.spec.resource_reference.kind, workload.spec.resource_reference.name
                )),
            };
            versions
                .workloads
                .insert((namespace.clone(), name.clone()), kwv);
        }
        let manifest_app = world.apps.get(&(namespace.clone(), app.clone()));
        let list: Vec<&KeptnWorkload> = workloads.values().collect();
        let Some(keptn_app) = discovered_app(namespace, app, &list, annotations, manifest_app)
        else {
            continue;
        };
        let find = |name: &str| workloads.get(name).cloned().map(std::sync::Arc::new);
        let kav = if app_awaits_pods(&keptn_app, &find) {
            Err(format!(
                "no KeptnAppVersion: KeptnApp {app} waits for the first pods of its \
                 Deployments, and some are not gated"
            ))
        } else {
            lifecycle::versions::plan_app(&keptn_app, None, &|_| None)
                .create
                .and_then(|kav| kav.metadata.name)
                .map(|kav| (kav, workloads.keys().cloned().collect()))
                .ok_or_else(|| format!("no KeptnAppVersion for KeptnApp {app}"))
        };
        versions.apps.insert((namespace.clone(), app.clone()), kav);
    }
    versions
}

impl Versions {
    /// Fills the KeptnWorkloadVersion and KeptnAppVersion of `e` and its pods; notes on the
    /// assumptions and on missing versions only at the top.
    fn fill(&self, e: &mut Explanation, top: bool) {
        let namespace = e.namespace.clone();
        if let Some(workload) = &e.keptn_workload {
            match self.workloads.get(&(namespace.clone(), workload.clone())) {
                Some(Ok(kwv)) => e.keptn_workload_version = Some(kwv.clone()),
                Some(Err(why)) if top => e.notes.push(why.clone()),
                _ => {}
            }
        }
        if let Some(app) = &e.keptn_app {
            match self.apps.get(&(namespace, app.clone())) {
                Some(Ok((kav, counted))) => {
                    e.keptn_app_version = Some(kav.clone());
                    if top && e.app_type.as_deref() == Some("multi-service") {
                        e.notes.push(format!(
                            "KeptnAppVersion of a new KeptnApp {app} made of the workloads of \
                             these manifests ({}); other workloads of the app in the cluster \
                             change it",
                            counted.join(", ")
                        ));
                    }
                }
                Some(Err(why)) if top => e.notes.push(why.clone()),
                _ => {}
            }
        }
        if let Some(pods) = &mut e.pods {
            self.fill(pods, false);
        }
    }
}

/// The KeptnApp discovery makes (or the one of the manifests).
fn discovered_app(
    namespace: &str,
    app_name: &str,
    workloads: &[&KeptnWorkload],
    annotations: &BTreeMap<String, String>,
    manifest_app: Option<&KeptnApp>,
) -> Option<KeptnApp> {
    use lifecycle::discovery::{Discovery, DiscoveryInput, plan_discovery};
    let discovery = plan_discovery(&DiscoveryInput {
        app_name,
        annotations,
        created: None,
        app: manifest_app,
        workloads,
        window: Duration::ZERO,
        now: jiff::Timestamp::UNIX_EPOCH,
    });
    Some(match (discovery, manifest_app) {
        (Discovery::Create { spec, .. }, _) => {
            let mut app = KeptnApp::new(app_name, spec);
            app.metadata.namespace = Some(namespace.to_owned());
            app.metadata.generation = Some(1);
            app
        }
        (Discovery::Update(spec), Some(existing)) => {
            let mut app = existing.clone();
            app.spec = spec;
            app.metadata.generation = Some(existing.metadata.generation.unwrap_or(1) + 1);
            app
        }
        (Discovery::UserApp | Discovery::Unchanged, Some(existing)) => existing.clone(),
        _ => return None,
    })
}

//! The admission oracle shared by the property suite (`webhook/tests/properties.rs`, which
//! includes this file) and the cargo-fuzz target `admission`: runs one body through the real
//! router (`webhook::server::router`, bytes in, HTTP response out) against an in-memory world and
//! checks everything a response must satisfy, returning a description of the first violation.

#![allow(dead_code)] // each includer uses a different part

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use serde_json::Value;
use shared::gate::{GATE, GATED_LABEL, GATED_VALUE};
use tower::ServiceExt;
use webhook::cluster::{Cluster, ClusterError};
use webhook::decision::{Needed, Write};
use webhook::metrics::Metrics;
use webhook::server::{self, App, Limits};
use webhook::snapshot::{Fetched, MemorySnapshot};

/// The body limit of the router under test (the property bodies stay far below it).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Constant part of the response-size bound: review envelope, uid, status and message texts.
pub const RESPONSE_SLACK: usize = 4096;

/// The keys the webhook may add to or change in a pod's annotations (A8 stamp, B §1.4 copies).
pub const IDENTITY_KEYS: [&str; 8] = [
    "keptn.sh/app",
    "keptn.sh/workload",
    "keptn.sh/version",
    "keptn.sh/pre-deployment-tasks",
    "keptn.sh/post-deployment-tasks",
    "keptn.sh/pre-deployment-evaluations",
    "keptn.sh/post-deployment-evaluations",
    "keptn.sh/metadata",
];

/// Answers fetches from `world`, records writes (failing them all when `fail_writes`).
#[derive(Default)]
pub struct Recorder {
    /// Objects a direct GET finds.
    pub world: MemorySnapshot,
    /// Whether every write fails with 503.
    pub fail_writes: bool,
    /// Writes carried out (or attempted).
    pub writes: Mutex<Vec<Write>>,
    /// Direct GETs.
    pub fetches: Mutex<Vec<Needed>>,
}

impl Cluster for Recorder {
    fn fetch<'a>(
        &'a self,
        needed: &'a Needed,
        fetched: &'a mut Fetched,
    ) -> BoxFuture<'a, Result<(), ClusterError>> {
        self.fetches.lock().unwrap().push(needed.clone());
        fetched.record(needed, &self.world);
        Box::pin(async { Ok(()) })
    }

    fn write<'a>(&'a self, write: &'a Write) -> BoxFuture<'a, Result<(), ClusterError>> {
        self.writes.lock().unwrap().push(write.clone());
        let fail = self.fail_writes;
        Box::pin(async move {
            if fail {
                Err(ClusterError::Api(kube::Error::Api(
                    kube::core::Status::failure("the server is unavailable", "ServiceUnavailable")
                        .with_code(503)
                        .boxed(),
                )))
            } else {
                Ok(())
            }
        })
    }

    fn report_failure(&self, _write: &Write, _error: &ClusterError) {}
}

/// The caches and the cluster behind them.
#[derive(Clone, Default)]
pub struct World {
    /// What the watch caches hold.
    pub caches: MemorySnapshot,
    /// What a direct GET finds (A5).
    pub cluster: MemorySnapshot,
    /// Whether writes fail.
    pub fail_writes: bool,
    /// Bytes of parent metadata in the world that the patch may copy (for the size bound).
    pub parent_bytes: usize,
}

impl World {
    /// The caches after `writes` landed in them (what the next request of a rollout sees).
    pub fn with_writes(&self, writes: &[Write]) -> World {
        let mut next = self.clone();
        for write in writes {
            next.caches = match write {
                Write::CreateWorkload(w) | Write::UpdateWorkload(w) => {
                    next.caches.with_workload((**w).clone())
                }
                Write::CreateAppCreationRequest(r) => {
                    next.caches.with_app_creation_request((**r).clone())
                }
            };
        }
        next
    }
}

/// One HTTP exchange.
#[derive(Debug)]
pub struct Outcome {
    /// HTTP status.
    pub status: u16,
    /// Response body.
    pub body: Vec<u8>,
    /// Writes attempted.
    pub writes: Vec<Write>,
    /// Direct GETs made.
    pub fetches: Vec<Needed>,
}

/// Posts `body` to `path` of a fresh router over `world`.
pub fn post(rt: &tokio::runtime::Runtime, world: &World, path: &str, body: &[u8]) -> Outcome {
    let recorder = Arc::new(Recorder {
        world: world.cluster.clone(),
        fail_writes: world.fail_writes,
        ..Recorder::default()
    });
    let app = Arc::new(App {
        snapshot: Arc::new(world.caches.clone()),
        cluster: recorder.clone(),
        metrics: Arc::new(Metrics::new()),
        ready: Arc::new(|| true),
    });
    let limits = Limits {
        body_bytes: BODY_LIMIT,
        header_read: Duration::from_secs(5),
        request: Duration::from_secs(60),
        drain: Duration::from_secs(1),
    };
    let router = server::router(app, limits);
    let (status, body) = rt.block_on(async {
        let response = router
            .oneshot(
                Request::post(path)
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_vec()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, bytes.to_vec())
    });
    let writes = recorder.writes.lock().unwrap().clone();
    let fetches = recorder.fetches.lock().unwrap().clone();
    Outcome {
        status,
        body,
        writes,
        fetches,
    }
}

/// A current-thread runtime for [`post`].
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What a checked 200 answer carried.
#[derive(Debug, Default)]
pub struct Answer {
    /// `response.allowed`.
    pub allowed: bool,
    /// The decoded JSON Patch, if any.
    pub patch: Option<Value>,
    /// The request object with the patch applied, if there was a patch.
    pub patched: Option<Value>,
    /// `response.status.message`.
    pub message: Option<String>,
}

/// Checks one exchange; `Ok(None)` for a 400 (unreadable body), `Ok(Some)` for a 200.
///
/// - an unreadable body (not JSON, not an `admission.k8s.io/v1` AdmissionReview, no request) is
///   HTTP 400 with a non-empty message, anything else HTTP 200 with a response echoing the uid;
/// - a denial has a 4xx/5xx `status.code`, a message and no patch;
/// - only pods are patched (A7: workloads and task definitions never are), only with `add`
///   operations on `/spec/schedulingGates`, `/metadata/labels` (only [`GATED_LABEL`]) and
///   `/metadata/annotations` (A9), and the patch applies to the raw request object; the result
///   keeps every other field, keeps other gates and adds exactly one [`GATE`] (A8), carries
///   [`GATED_LABEL`] (without it the gate service never sees the pod), and changes only that
///   label and identity annotations;
/// - the response is at most `3 × (request + parent metadata in the world) + 4 KiB`: the patch
///   copies each identity value at most twice (workload value as single-service app), base64
///   grows it by 4/3, and everything else in the response is bounded.
pub fn check(
    path: &str,
    request: &[u8],
    outcome: &Outcome,
    world: &World,
) -> Result<Option<Answer>, String> {
    let bound = 3 * (request.len() + world.parent_bytes) + RESPONSE_SLACK;
    if outcome.body.len() > bound {
        return Err(format!(
            "response of {} bytes exceeds the bound {bound}",
            outcome.body.len()
        ));
    }
    let parsed = webhook::review::parse(request);
    match (outcome.status, &parsed) {
        (400, Err(_)) => {
            if outcome.body.is_empty() {
                return Err("HTTP 400 without a message".into());
            }
            if !outcome.writes.is_empty() {
                return Err("an unreadable review caused writes".into());
            }
            return Ok(None);
        }
        (413, _) if request.len() > BODY_LIMIT => return Ok(None),
        (200, Ok(_)) => {}
        (status, parsed) => {
            return Err(format!(
                "HTTP {status} for a body that {} readable: {}",
                if parsed.is_ok() { "is" } else { "is not" },
                String::from_utf8_lossy(&outcome.body)
            ));
        }
    }
    let request_value: Value = match serde_json::from_slice(request) {
        Ok(value) => value,
        // serde skips the fields the webhook ignores without validating their escapes (a lone
        // surrogate `\ud800`, say): the typed request stands in for the raw one.
        Err(_) => {
            let parsed = parsed.map_err(|e| e.to_string())?;
            serde_json::json!({"request": {"uid": parsed.uid, "object": parsed.object}})
        }
    };
    let review: Value =
        serde_json::from_slice(&outcome.body).map_err(|e| format!("response is not JSON: {e}"))?;
    if review["apiVersion"] != "admission.k8s.io/v1" || review["kind"] != "AdmissionReview" {
        return Err(format!("not an AdmissionReview: {review}"));
    }
    let response = &review["response"];
    if response["uid"] != request_value["request"]["uid"] {
        return Err(format!(
            "uid {} not echoed as {}",
            request_value["request"]["uid"], response["uid"]
        ));
    }
    let Some(allowed) = response["allowed"].as_bool() else {
        return Err(format!("no allowed in {response}"));
    };
    let message = response["status"]["message"].as_str().map(str::to_owned);
    let mut answer = Answer {
        allowed,
        message: message.clone(),
        ..Answer::default()
    };
    if !allowed {
        let code = response["status"]["code"].as_u64().unwrap_or(0);
        if !(400..600).contains(&code) || message.as_deref().unwrap_or("").is_empty() {
            return Err(format!("denial without code or message: {response}"));
        }
        if response.get("patch").is_some_and(|p| !p.is_null()) {
            return Err(format!("denial with a patch: {response}"));
        }
        return Ok(Some(answer));
    }
    let Some(encoded) = response.get("patch").and_then(Value::as_str) else {
        if response.get("patch").is_some_and(|p| !p.is_null()) {
            return Err(format!("patch is not a base64 string: {response}"));
        }
        return Ok(Some(answer));
    };
    if path != server::POD_PATH {
        return Err(format!("{path} returned a patch: {response}"));
    }
    if response["patchType"] != "JSONPatch" {
        return Err(format!("patchType is not JSONPatch: {response}"));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("patch is not base64: {e}"))?;
    let patch_value: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("patch is not JSON: {e}"))?;
    let patch: json_patch::Patch = serde_json::from_value(patch_value.clone())
        .map_err(|e| format!("patch is not a JSON Patch: {e}: {patch_value}"))?;
    if patch.0.is_empty() {
        return Err("an empty patch was sent".into());
    }
    for op in &patch.0 {
        let json_patch::PatchOperation::Add(add) = op else {
            return Err(format!("operation other than add: {patch_value}"));
        };
        let path = add.path.to_string();
        let ok = match path.as_str() {
            "/spec/schedulingGates" => add.value == serde_json::json!([{ "name": GATE }]),
            "/spec/schedulingGates/-" => add.value == serde_json::json!({ "name": GATE }),
            "/metadata/labels" => add.value == serde_json::json!({ GATED_LABEL: GATED_VALUE }),
            "/metadata/labels/portcullis.dev~1gated" => add.value == GATED_VALUE,
            "/metadata/annotations" => add.value.as_object().is_some_and(|m| {
                m.iter()
                    .all(|(k, v)| IDENTITY_KEYS.contains(&k.as_str()) && v.is_string())
            }),
            other => other
                .strip_prefix("/metadata/annotations/")
                .map(|token| token.replace("~1", "/").replace("~0", "~"))
                .is_some_and(|key| IDENTITY_KEYS.contains(&key.as_str()) && add.value.is_string()),
        };
        if !ok {
            return Err(format!(
                "operation outside the allowed paths or values: {patch_value}"
            ));
        }
    }
    let original = request_value["request"]["object"].clone();
    let mut patched = original.clone();
    json_patch::patch(&mut patched, &patch.0)
        .map_err(|e| format!("patch does not apply to the raw object: {e}: {patch_value}"))?;
    compare(&original, &patched)?;
    answer.patch = Some(patch_value);
    answer.patched = Some(patched);
    Ok(Some(answer))
}

/// The patched pod differs from the original only by one added gate, the gated label and
/// identity annotations.
fn compare(original: &Value, patched: &Value) -> Result<(), String> {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("schedulingGates");
        }
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("annotations");
            meta.remove("labels");
        }
        v
    };
    if strip(original) != strip(patched) {
        return Err("the patch changed fields other than gates, labels and annotations".into());
    }
    let labels = |v: &Value| {
        v.pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let mut expected = labels(original);
    expected.insert(GATED_LABEL.into(), GATED_VALUE.into());
    if labels(patched) != expected {
        return Err(format!(
            "labels are not the original ones plus {GATED_LABEL}: {:?}",
            labels(patched)
        ));
    }
    let gates = |v: &Value| -> Vec<Value> {
        v.pointer("/spec/schedulingGates")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let before = gates(original);
    let after = gates(patched);
    let ours = |g: &&Value| g.get("name").and_then(Value::as_str) == Some(GATE);
    if after.iter().filter(ours).count() != 1 {
        return Err(format!(
            "patched pod does not carry the gate exactly once: {after:?}"
        ));
    }
    if before.iter().any(|g| ours(&g)) {
        if before != after {
            return Err("gates changed although the gate was there".into());
        }
    } else if after[..after.len() - 1] != before[..] {
        return Err(format!("other gates not kept: {before:?} -> {after:?}"));
    }
    let annotations = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let before = annotations(original);
    let after = annotations(patched);
    for (key, value) in &before {
        if !IDENTITY_KEYS.contains(&key.as_str()) && after.get(key) != Some(value) {
            return Err(format!("annotation {key} changed or lost"));
        }
    }
    for key in after.keys() {
        if !before.contains_key(key) && !IDENTITY_KEYS.contains(&key.as_str()) {
            return Err(format!("annotation {key} added"));
        }
    }
    Ok(())
}

/// The request body with `object` replaced (reinvocation after our own patch).
pub fn with_object(review: &Value, object: Value) -> Vec<u8> {
    let mut review = review.clone();
    review["request"]["object"] = object;
    serde_json::to_vec(&review).unwrap()
}

/// The request body with `dryRun` set.
pub fn with_dry_run(review: &Value, dry_run: bool) -> Vec<u8> {
    let mut review = review.clone();
    review["request"]["dryRun"] = Value::Bool(dry_run);
    serde_json::to_vec(&review).unwrap()
}

/// Everything for one body on one path: [`check`], then for a readable review
/// - idempotence (A8/A10 reinvocation): the patched object admitted again, with the writes in the
///   caches, gets no patch;
/// - dry run (A6): the same review as dry run answers the same and writes nothing;
/// - A10: with the writes in the caches the same review costs no further write.
///
/// Returns what the first answer was, so that callers can tell that their inputs reach every
/// kind of answer.
pub fn check_all(
    rt: &tokio::runtime::Runtime,
    world: &World,
    path: &str,
    body: &[u8],
) -> Result<Kind, String> {
    let outcome = post(rt, world, path, body);
    let Some(answer) = check(path, body, &outcome, world)? else {
        return Ok(Kind::Unreadable);
    };
    let kind = match (&answer.patch, answer.allowed, outcome.writes.is_empty()) {
        (_, false, _) => Kind::Denied,
        (Some(_), _, _) => Kind::Patched,
        (None, true, false) => Kind::Wrote,
        (None, true, true) => Kind::Allowed,
    };
    let Ok(review) = serde_json::from_slice::<Value>(body) else {
        // Readable for the webhook but not as a JSON value (see `check`): nothing to replay.
        return Ok(kind);
    };
    let dry_run = review["request"]["dryRun"].as_bool().unwrap_or(false);
    if dry_run && !outcome.writes.is_empty() {
        return Err(format!("dry run wrote {:?}", outcome.writes));
    }
    if !answer.allowed && !outcome.writes.is_empty() && !world.fail_writes {
        return Err("denied although every write succeeded".into());
    }
    let after = if world.fail_writes {
        world.clone()
    } else {
        world.with_writes(&outcome.writes)
    };
    if let Some(patched) = answer.patched.clone() {
        let again = with_object(&review, patched);
        let second = post(rt, &after, path, &again);
        let second_answer = check(path, &again, &second, &after)?
            .ok_or("the patched object is not a readable review")?;
        if second_answer.patch.is_some() || !second_answer.allowed {
            return Err(format!(
                "reinvocation not idempotent: {:?} then {:?} ({:?})",
                answer.patch, second_answer.patch, second_answer.message
            ));
        }
        if !second.writes.is_empty() && !world.fail_writes {
            return Err(format!("reinvocation wrote {:?}", second.writes));
        }
    }
    // Dry run flipped: same answer; the dry one writes nothing.
    let flipped_body = with_dry_run(&review, !dry_run);
    let flipped = post(rt, world, path, &flipped_body);
    let flipped_answer =
        check(path, &flipped_body, &flipped, world)?.ok_or("dryRun made the review unreadable")?;
    let (dry, dry_answer, wet_answer) = if dry_run {
        (&outcome, &answer, &flipped_answer)
    } else {
        (&flipped, &flipped_answer, &answer)
    };
    if !dry.writes.is_empty() {
        return Err(format!("dry run wrote {:?}", dry.writes));
    }
    if !world.fail_writes && dry_answer.patch != wet_answer.patch {
        return Err(format!(
            "dry run patch {:?} differs from {:?}",
            dry_answer.patch, wet_answer.patch
        ));
    }
    if !world.fail_writes
        && (dry_answer.allowed != wet_answer.allowed || dry_answer.message != wet_answer.message)
    {
        return Err(format!(
            "dry run answer differs: {:?} vs {:?}",
            dry_answer.message, wet_answer.message
        ));
    }
    // A10: the next request with the same content costs no write.
    if !dry_run && !world.fail_writes && !outcome.writes.is_empty() {
        let third = post(rt, &after, path, body);
        if !third.writes.is_empty() {
            return Err(format!(
                "writes repeated although the caches hold them: {:?}",
                third.writes
            ));
        }
    }
    Ok(kind)
}

/// What an answer was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// HTTP 400 (or 413).
    Unreadable,
    /// `allowed: false`.
    Denied,
    /// Allowed with a patch.
    Patched,
    /// Allowed without a patch, with writes (workloads, A7).
    Wrote,
    /// Allowed unchanged, nothing written.
    Allowed,
}

/// A world from a golden fixture's `world` (namespaces, replicaSets, parents); complete, so
/// anything missing is known absent.
pub fn fixture_world(world: &Value) -> World {
    use webhook::snapshot::ParentKind;
    let mut caches = MemorySnapshot::complete();
    let mut parent_bytes = 0;
    for ns in world["namespaces"].as_array().into_iter().flatten() {
        if let Ok(ns) = serde_json::from_value(ns.clone()) {
            caches = caches.with_namespace(ns);
        }
    }
    for rs in world["replicaSets"].as_array().into_iter().flatten() {
        if let Ok(rs) = serde_json::from_value(rs.clone()) {
            caches = caches.with_replica_set(rs);
        }
    }
    for p in world["parents"].as_array().into_iter().flatten() {
        let kind = match p["kind"].as_str() {
            Some("Deployment") => ParentKind::Deployment,
            Some("StatefulSet") => ParentKind::StatefulSet,
            Some("DaemonSet") => ParentKind::DaemonSet,
            _ => continue,
        };
        let (Some(namespace), Some(name)) = (
            p["metadata"]["namespace"].as_str(),
            p["metadata"]["name"].as_str(),
        ) else {
            continue;
        };
        if let Ok(meta) = serde_json::from_value(p["metadata"].clone()) {
            parent_bytes += p["metadata"].to_string().len();
            caches = caches.with_parent(kind, namespace, name, meta);
        }
    }
    World {
        caches,
        parent_bytes,
        ..World::default()
    }
}

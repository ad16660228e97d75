//! The spans of the lifecycle (B §7.4), as pure functions of the objects' stored state.
//!
//! Keptn keeps open spans in memory between reconciles; a restarted Keptn loses them. Here no
//! span lives in memory: every trace and span id is derived from the object's uid and the
//! phase (or taken from the W3C `traceparent` the user or the KeptnAppVersion handed down),
//! a phase's start time travels in the `tracestate` of its `status.phaseTraceIDs` entry, and a
//! span is complete when the status written shows the phase (or object, task, evaluation)
//! finished. A restarted gate therefore exports the same span ids Keptn's parent/child
//! links need, whatever process started the phase.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use sha2::{Digest, Sha256};
use shared::crd::{
    KeptnAppVersion, KeptnAppVersionStatus, KeptnEvaluation, KeptnEvaluationStatus, KeptnState,
    KeptnTask, KeptnTaskStatus, KeptnWorkloadVersion, KeptnWorkloadVersionStatus,
};

use crate::phase::{COMPLETED, Level, Phase, Stage, VersionStatus};

/// Carrier key of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// Carrier key of the W3C trace state (holds a phase's start time as `portcullis=s:<unix ns>`).
pub const TRACESTATE: &str = "tracestate";
/// Our `tracestate` list member: `portcullis=s:<unix nanoseconds>`.
const STATE_KEY: &str = "portcullis";

/// Instrumentation scope of KeptnAppVersion spans (Keptn's tracer name).
pub const APP_SCOPE: &str = "keptn/lifecycle-operator/appversion";
/// Instrumentation scope of KeptnWorkloadVersion spans (Keptn's tracer name).
pub const WORKLOAD_SCOPE: &str = "keptn/lifecycle-operator/workloadversion";
/// Instrumentation scope of KeptnTask spans.
pub const TASK_SCOPE: &str = "keptn/lifecycle-operator/task";
/// Instrumentation scope of KeptnEvaluation spans.
pub const EVALUATION_SCOPE: &str = "keptn/lifecycle-operator/evaluation";

/// A span's identity within its trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SpanContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

impl SpanContext {
    /// W3C `traceparent`, version 00, sampled.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", hex(&self.trace_id), hex(&self.span_id))
    }

    /// Reads a W3C `traceparent`; `None` for anything malformed or with all-zero ids.
    pub fn parse(traceparent: &str) -> Option<SpanContext> {
        let mut parts = traceparent.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        if version.len() != 2 || version == "ff" || flags.len() != 2 || unhex::<1>(flags).is_none()
        {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        unhex::<1>(version)?;
        let trace_id = unhex::<16>(trace)?;
        let span_id = unhex::<8>(span)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(SpanContext { trace_id, span_id })
    }

    /// The context in a propagation carrier (`spec.traceId`, a `phaseTraceIDs` entry).
    pub fn from_carrier(carrier: &BTreeMap<String, String>) -> Option<SpanContext> {
        carrier.get(TRACEPARENT).and_then(|t| SpanContext::parse(t))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex only, as W3C requires.
fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

fn digest(uid: &str, label: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(uid.as_bytes());
    h.update([0u8]);
    h.update(label.as_bytes());
    h.finalize().into()
}

/// Trace id derived from an object uid (never all zero).
pub fn derived_trace_id(uid: &str) -> [u8; 16] {
    let d = digest(uid, "trace");
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    if id == [0; 16] {
        id[15] = 1;
    }
    id
}

/// Span id derived from an object uid and a label (phase short name, `root`, `check`).
pub fn derived_span_id(uid: &str, label: &str) -> [u8; 8] {
    let d = digest(uid, label);
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

/// Where an exporter sends spans: the KeptnConfig `OTelCollectorUrl` when set, else
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (A21); `None` = tracing off. A URL without a scheme (Keptn
/// users write `otel-collector:4317`) is plain-text gRPC, as in Keptn.
pub fn collector_endpoint(config_url: &str, env: Option<&str>) -> Option<String> {
    let url = match config_url.trim() {
        "" => env.map(str::trim).filter(|e| !e.is_empty())?,
        url => url,
    };
    if url.contains("://") {
        Some(url.to_owned())
    } else {
        Some(format!("http://{url}"))
    }
}

/// A finished span, ready to export.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedSpan {
    pub scope: &'static str,
    pub name: String,
    pub context: SpanContext,
    /// Parent span id in the same trace; `None` for a trace root.
    pub parent: Option<[u8; 8]>,
    pub start: Timestamp,
    pub end: Timestamp,
    pub attributes: Vec<(String, String)>,
    /// Span links (Keptn: the KeptnAppContext `spanLinks`, "follows-from").
    pub links: Vec<SpanContext>,
    /// Status Error (else Ok).
    pub failed: bool,
    /// Event names, recorded at the end time.
    pub events: Vec<String>,
}

/// The trace identity of a KeptnAppVersion or KeptnWorkloadVersion.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionTrace {
    pub level: Level,
    /// Root span name (the object name).
    pub name: String,
    pub uid: String,
    /// The parent context handed down (`spec.traceId`): user-set for a KAV, the KAV's
    /// AppDeploy span for a KWV.
    pub parent: Option<SpanContext>,
    /// Trace id: the parent's, else derived from the uid.
    pub trace_id: [u8; 16],
    /// Prefix of phase span names (`<workloadName>/` for workloads, empty for apps).
    pub phase_prefix: String,
    pub phases: Vec<Phase>,
    pub attributes: Vec<(String, String)>,
    pub links: Vec<SpanContext>,
}

impl VersionTrace {
    fn new(level: Level, name: String, uid: String, carrier: &BTreeMap<String, String>) -> Self {
        let parent = SpanContext::from_carrier(carrier);
        let trace_id = parent.map_or_else(|| derived_trace_id(&uid), |p| p.trace_id);
        VersionTrace {
            level,
            name,
            uid,
            parent,
            trace_id,
            phase_prefix: String::new(),
            phases: Vec::new(),
            attributes: Vec::new(),
            links: Vec::new(),
        }
    }

    /// A version known only by an owner reference: ids derived from its uid, no parent. Right
    /// for a KeptnAppVersion without a user `spec.traceId`; a KeptnWorkloadVersion that joined
    /// its app's trace has other ids, so this is only the last resort of a check's parent.
    pub fn derived(level: Level, name: &str, uid: &str) -> Self {
        let mut t = VersionTrace::new(level, name.to_owned(), uid.to_owned(), &BTreeMap::new());
        t.phases = Phase::sequence(level, level == Level::App);
        t
    }

    /// A KeptnAppVersion: parent from a user-set `spec.traceId`, app attributes and metadata,
    /// `spanLinks` as links.
    pub fn app(kav: &KeptnAppVersion, promotion_enabled: bool) -> Self {
        let meta = &kav.metadata;
        let mut t = VersionTrace::new(
            Level::App,
            meta.name.clone().unwrap_or_default(),
            meta.uid.clone().unwrap_or_default(),
            &kav.spec.trace_id,
        );
        t.phases = Phase::sequence(Level::App, promotion_enabled);
        t.attributes = vec![
            attr("keptn.deployment.app.name", &kav.spec.app_name),
            attr("keptn.deployment.app.version", &kav.spec.app.version),
            attr(
                "keptn.deployment.app.namespace",
                meta.namespace.as_deref().unwrap_or_default(),
            ),
        ];
        t.attributes.extend(
            kav.spec
                .context
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        t.links = kav
            .spec
            .context
            .span_links
            .iter()
            .filter_map(|l| SpanContext::parse(l))
            .collect();
        t
    }

    /// A KeptnWorkloadVersion. `carrier` is its `spec.traceId`, or the value the same
    /// reconcile is about to set (B §3.9 step 0); `status` gives the app-context metadata.
    pub fn workload(
        kwv: &KeptnWorkloadVersion,
        carrier: &BTreeMap<String, String>,
        status: &KeptnWorkloadVersionStatus,
    ) -> Self {
        let meta = &kwv.metadata;
        let spec = &kwv.spec;
        let mut t = VersionTrace::new(
            Level::Workload,
            meta.name.clone().unwrap_or_default(),
            meta.uid.clone().unwrap_or_default(),
            carrier,
        );
        if t.parent.is_none() {
            // The spec write of step 0 may have been lost after the status write: keep the
            // trace the phases already joined.
            if let Some(c) = status
                .phase_trace_ids
                .values()
                .find_map(SpanContext::from_carrier)
            {
                t.trace_id = c.trace_id;
            }
        }
        t.phases = Phase::sequence(Level::Workload, false);
        t.phase_prefix = format!("{}/", spec.workload_name);
        t.attributes = vec![
            attr("keptn.deployment.app.name", &spec.workload.app),
            attr("keptn.deployment.workload.name", &spec.workload_name),
            attr("keptn.deployment.workload.version", &spec.workload.version),
            attr(
                "keptn.deployment.workload.namespace",
                meta.namespace.as_deref().unwrap_or_default(),
            ),
        ];
        // Workload metadata wins over the app context's (B §3.9).
        let mut metadata = status.app_context_metadata.clone();
        metadata.extend(spec.workload.metadata.clone());
        t.attributes.extend(metadata);
        t
    }

    /// The root span of the object.
    pub fn root(&self) -> SpanContext {
        SpanContext {
            trace_id: self.trace_id,
            span_id: derived_span_id(&self.uid, "root"),
        }
    }

    /// The span of one phase.
    pub fn phase(&self, phase: Phase) -> SpanContext {
        SpanContext {
            trace_id: self.trace_id,
            span_id: derived_span_id(&self.uid, phase.short_name()),
        }
    }

    fn scope(&self) -> &'static str {
        match self.level {
            Level::App => APP_SCOPE,
            Level::Workload => WORKLOAD_SCOPE,
        }
    }
}

fn attr(key: &str, value: &str) -> (String, String) {
    (key.to_owned(), value.to_owned())
}

/// The `phaseTraceIDs` map of both version statuses.
pub trait PhaseTraceIds: VersionStatus {
    fn phase_trace_ids(&self) -> &BTreeMap<String, BTreeMap<String, String>>;
    fn phase_trace_ids_mut(&mut self) -> &mut BTreeMap<String, BTreeMap<String, String>>;
}

impl PhaseTraceIds for KeptnAppVersionStatus {
    fn phase_trace_ids(&self) -> &BTreeMap<String, BTreeMap<String, String>> {
        &self.phase_trace_ids
    }
    fn phase_trace_ids_mut(&mut self) -> &mut BTreeMap<String, BTreeMap<String, String>> {
        &mut self.phase_trace_ids
    }
}

impl PhaseTraceIds for KeptnWorkloadVersionStatus {
    fn phase_trace_ids(&self) -> &BTreeMap<String, BTreeMap<String, String>> {
        &self.phase_trace_ids
    }
    fn phase_trace_ids_mut(&mut self) -> &mut BTreeMap<String, BTreeMap<String, String>> {
        &mut self.phase_trace_ids
    }
}

/// The start time stored in a `phaseTraceIDs` entry's `tracestate`.
struct PhaseStart;

impl PhaseStart {
    fn encode(at: Timestamp) -> String {
        format!("{STATE_KEY}=s:{}", at.as_nanosecond())
    }

    fn decode(carrier: &BTreeMap<String, String>) -> Option<Timestamp> {
        let state = carrier.get(TRACESTATE)?;
        state.split(',').find_map(|member| {
            let (key, value) = member.trim().split_once('=')?;
            if key != STATE_KEY {
                return None;
            }
            let nanos: i128 = value.strip_prefix("s:")?.parse().ok()?;
            Timestamp::from_nanosecond(nanos).ok()
        })
    }
}

/// How many phases of `phases` the status has entered (all once Completed).
fn entered<S: VersionStatus>(status: &S, phases: &[Phase]) -> usize {
    let current = status.current_phase();
    if current == COMPLETED {
        return phases.len();
    }
    phases
        .iter()
        .position(|p| p.short_name() == current)
        .map_or(0, |i| i + 1)
}

/// Whether the object reached its end (Completed, or Failed by a phase).
fn object_ended<S: VersionStatus>(status: &S) -> bool {
    status.current_phase() == COMPLETED
        || (*status.overall() == KeptnState::Failed && !status.current_phase().is_empty())
}

/// Whether phase `i` has ended in `status`: a later phase was entered, or its own state is
/// final, or the object ended while in it.
fn phase_ended<S: VersionStatus>(status: &S, phases: &[Phase], i: usize) -> bool {
    let n = entered(status, phases);
    i < n
        && (i + 1 < n || status.stage_state(phases[i].stage).is_completed() || object_ended(status))
}

fn to_timestamp(t: Option<&Time>) -> Option<Timestamp> {
    t.map(|t| t.0)
}

/// Completes the trace bookkeeping of one status transition `old` → `new` of a version,
/// before `new` is written: every phase entered by it gets its `phaseTraceIDs` entry (W3C
/// `traceparent` of the phase span, `tracestate` with its start time), and the spans the
/// transition finishes are returned, to be exported once the write succeeded. `now` is when
/// the transition happened. Call only when tracing is on: when off, nothing is written.
pub fn transition<S: PhaseTraceIds>(
    trace: &VersionTrace,
    old: Option<&S>,
    new: &mut S,
    now: Timestamp,
) -> Vec<FinishedSpan> {
    let phases = &trace.phases;
    let root_done = object_ended(new) && !old.is_some_and(object_ended);
    // A transition that ends the object happens at its endTime.
    let at = if root_done {
        to_timestamp(new.end_time()).unwrap_or(now)
    } else {
        now
    };
    let entered_before = old.map_or(0, |o| entered(o, phases));
    let entered_now = entered(new, phases);
    for (i, &phase) in phases.iter().enumerate().take(entered_now) {
        let fresh = i >= entered_before;
        let current = i + 1 == entered_now && !phase_ended(new, phases, i);
        let key = phase.short_name();
        // Entries of phases entered earlier stay as written; the running phase gets one when
        // tracing was turned on while it ran.
        if !(fresh || current) || new.phase_trace_ids().contains_key(key) {
            continue;
        }
        let mut carrier = BTreeMap::new();
        carrier.insert(TRACEPARENT.to_owned(), trace.phase(phase).traceparent());
        carrier.insert(TRACESTATE.to_owned(), PhaseStart::encode(at));
        new.phase_trace_ids_mut().insert(key.to_owned(), carrier);
    }

    let object_start = to_timestamp(new.start_time()).unwrap_or(at);
    let mut spans = Vec::new();
    for (i, &phase) in phases.iter().enumerate() {
        if !phase_ended(new, phases, i) || old.is_some_and(|o| phase_ended(o, phases, i)) {
            continue;
        }
        let start = new
            .phase_trace_ids()
            .get(phase.short_name())
            .and_then(PhaseStart::decode)
            .unwrap_or(object_start)
            .min(at);
        let failed = matches!(
            new.stage_state(phase.stage),
            KeptnState::Failed | KeptnState::Deprecated
        );
        let outcome = if failed {
            "has failed"
        } else {
            "has succeeded"
        };
        spans.push(FinishedSpan {
            scope: trace.scope(),
            name: format!("{}{}", trace.phase_prefix, phase.short_name()),
            context: trace.phase(phase),
            parent: Some(trace.root().span_id),
            start,
            end: at,
            attributes: trace.attributes.clone(),
            links: Vec::new(),
            failed,
            events: vec![format!("{} {outcome}", phase.long_name())],
        });
    }
    if root_done {
        let failed = *new.overall() == KeptnState::Failed;
        let outcome = if failed { "has failed" } else { "has finished" };
        spans.push(FinishedSpan {
            scope: trace.scope(),
            name: trace.name.clone(),
            context: trace.root(),
            parent: trace.parent.map(|p| p.span_id),
            start: object_start.min(at),
            end: at,
            attributes: trace.attributes.clone(),
            links: trace.links.clone(),
            failed,
            events: vec![format!("{} {outcome}", trace.name)],
        });
    }
    spans
}

/// The stage a `checkType` runs in.
fn stage_of(check_type: &str) -> Option<Stage> {
    Stage::ALL
        .into_iter()
        .find(|s| s.check().is_some_and(|c| c.check_type == check_type))
}

/// The `traceparent` a new KeptnTask of `check_type` carries in `spec.context.metadata`
/// (B §5.1): its phase's entry in the owner's `phaseTraceIDs`. Only `traceparent` goes out: the
/// `tracestate` entry is Portcullis's own bookkeeping. Entries written while tracing was on stay
/// when it is turned off, so the planners hand it out only while tracing (B §8.20).
pub fn check_traceparent(
    phase_trace_ids: &BTreeMap<String, BTreeMap<String, String>>,
    level: Level,
    check_type: &str,
) -> Option<String> {
    let phase = Phase::new(level, stage_of(check_type)?);
    phase_trace_ids
        .get(phase.short_name())?
        .get(TRACEPARENT)
        .filter(|t| SpanContext::parse(t).is_some())
        .cloned()
}

/// What a KeptnWorkloadVersion copies into its `spec.traceId` from the KeptnAppVersion's
/// `phaseTraceIDs["AppDeploy"]` entry (B §3.9 step 0): the W3C `traceparent` alone, the shape
/// of Keptn's carrier. The entry's `tracestate` is Portcullis's own bookkeeping (the phase's
/// start time) and stays on the KeptnAppVersion. Empty when the entry has no `traceparent`.
pub fn handed_down(app_deploy: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    app_deploy
        .get(TRACEPARENT)
        .filter(|t| !t.is_empty())
        .map(|t| BTreeMap::from([(TRACEPARENT.to_owned(), t.clone())]))
        .unwrap_or_default()
}

/// The span of the phase a KeptnTask/KeptnEvaluation of `check_type` belongs to: the owner's
/// `phaseTraceIDs` entry, else the derived phase span.
pub fn check_parent<S: PhaseTraceIds>(
    trace: &VersionTrace,
    status: Option<&S>,
    check_type: &str,
) -> Option<SpanContext> {
    let phase = Phase::new(trace.level, stage_of(check_type)?);
    let stored = status
        .and_then(|s| s.phase_trace_ids().get(phase.short_name()))
        .and_then(SpanContext::from_carrier);
    Some(stored.unwrap_or_else(|| trace.phase(phase)))
}

/// The owner of a finished KeptnTask or KeptnEvaluation, as the gate's caches hold it.
#[derive(Clone, Copy, Debug)]
pub enum CachedOwner<'a> {
    App(&'a KeptnAppVersion),
    Workload(&'a KeptnWorkloadVersion),
}

impl CachedOwner<'_> {
    fn uid(&self) -> Option<&str> {
        match self {
            CachedOwner::App(k) => k.metadata.uid.as_deref(),
            CachedOwner::Workload(k) => k.metadata.uid.as_deref(),
        }
    }
}

/// The controller owner reference of a check.
pub fn controller_owner(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// The phase span a finished check belongs to, read from its owner as cached (A1: never from
/// the API server). A cached object counts only if it is the one the reference names (same uid).
/// Without it: the `traceparent` the check was created with (tasks, `handed`), else the phase
/// span derived from the owner's uid.
pub fn finished_check_parent(
    cached: Option<CachedOwner<'_>>,
    owner: &OwnerReference,
    check_type: &str,
    handed: Option<&str>,
) -> Option<SpanContext> {
    match cached.filter(|c| c.uid() == Some(owner.uid.as_str())) {
        Some(CachedOwner::App(kav)) => {
            // Promotion on or off only changes which phases exist, not their span ids.
            let trace = VersionTrace::app(kav, true);
            return check_parent(&trace, kav.status.as_ref(), check_type);
        }
        Some(CachedOwner::Workload(kwv)) => {
            let status = kwv.status.clone().unwrap_or_default();
            let trace = VersionTrace::workload(kwv, &kwv.spec.trace_id, &status);
            return check_parent(&trace, Some(&status), check_type);
        }
        None => {}
    }
    if let Some(parent) = handed.and_then(SpanContext::parse) {
        return Some(parent);
    }
    let level = match owner.kind.as_str() {
        "KeptnAppVersion" => Level::App,
        "KeptnWorkloadVersion" => Level::Workload,
        _ => return None,
    };
    let trace = VersionTrace::derived(level, &owner.name, &owner.uid);
    check_parent::<KeptnAppVersionStatus>(&trace, None, check_type)
}

#[allow(clippy::too_many_arguments)]
fn check_span(
    scope: &'static str,
    uid: &str,
    name: String,
    parent: SpanContext,
    times: (Option<&Time>, Option<&Time>),
    now: Timestamp,
    attributes: Vec<(String, String)>,
    failed: bool,
) -> FinishedSpan {
    let end = to_timestamp(times.1).unwrap_or(now);
    let start = to_timestamp(times.0).unwrap_or(end).min(end);
    let outcome = if failed { "has failed" } else { "has finished" };
    FinishedSpan {
        scope,
        events: vec![format!("{name} {outcome}")],
        name,
        context: SpanContext {
            trace_id: parent.trace_id,
            span_id: derived_span_id(uid, "check"),
        },
        parent: Some(parent.span_id),
        start,
        end,
        attributes,
        links: Vec::new(),
        failed,
    }
}

/// The span of a finished KeptnTask, child of its owner's phase span.
pub fn task_span(
    task: &KeptnTask,
    status: &KeptnTaskStatus,
    parent: SpanContext,
    now: Timestamp,
) -> FinishedSpan {
    let c = &task.spec.context;
    let name = task.metadata.name.clone().unwrap_or_default();
    let attributes = vec![
        attr("keptn.deployment.app.name", &c.app_name),
        attr("keptn.deployment.app.version", &c.app_version),
        attr("keptn.deployment.workload.name", &c.workload_name),
        attr("keptn.deployment.workload.version", &c.workload_version),
        attr("keptn.deployment.task.name", &name),
        attr("keptn.deployment.task.type", &task.spec.check_type),
    ];
    let failed = status.status == KeptnState::Failed;
    let mut span = check_span(
        TASK_SCOPE,
        task.metadata.uid.as_deref().unwrap_or_default(),
        name.clone(),
        parent,
        (status.start_time.as_ref(), status.end_time.as_ref()),
        now,
        attributes,
        failed,
    );
    if failed && !status.message.is_empty() {
        span.events.push(format!(
            "task '{name}' failed with reason: '{}'",
            status.message
        ));
    }
    span
}

/// The span of a finished KeptnEvaluation, child of its owner's phase span.
pub fn evaluation_span(
    evaluation: &KeptnEvaluation,
    status: &KeptnEvaluationStatus,
    parent: SpanContext,
    now: Timestamp,
) -> FinishedSpan {
    let s = &evaluation.spec;
    let name = evaluation.metadata.name.clone().unwrap_or_default();
    let attributes = vec![
        attr("keptn.deployment.app.name", &s.app_name),
        attr("keptn.deployment.app.version", &s.app_version),
        attr("keptn.deployment.workload.name", &s.workload),
        attr("keptn.deployment.workload.version", &s.workload_version),
        attr("keptn.deployment.evaluation.name", &name),
        attr("keptn.deployment.evaluation.type", &s.check_type),
    ];
    let failed = status.overall_status == KeptnState::Failed;
    let mut span = check_span(
        EVALUATION_SCOPE,
        evaluation.metadata.uid.as_deref().unwrap_or_default(),
        name,
        parent,
        (status.start_time.as_ref(), status.end_time.as_ref()),
        now,
        attributes,
        failed,
    );
    for (metric, item) in &status.evaluation_status {
        if item.status == KeptnState::Failed {
            span.events.push(format!(
                "evaluation of '{metric}' failed with value: '{}' and reason: '{}'",
                item.value, item.message
            ));
        }
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use shared::crd::{KeptnAppContextSpec, KeptnTaskStatus, KeptnWorkloadVersionStatus};

    fn owner(kind: &str, name: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "lifecycle.keptn.sh/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            ..Default::default()
        }
    }

    fn phase_ids(traceparent: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        BTreeMap::from([(
            "WorkloadPreDeployTasks".to_owned(),
            BTreeMap::from([
                (TRACEPARENT.to_owned(), traceparent.to_owned()),
                (TRACESTATE.to_owned(), "portcullis=s:1".to_owned()),
            ]),
        )])
    }

    /// `phaseTraceIDs` with one entry: `phase` and only a traceparent.
    fn traceparent_of(
        phase: &str,
        traceparent: &str,
    ) -> BTreeMap<String, BTreeMap<String, String>> {
        BTreeMap::from([(
            phase.to_owned(),
            BTreeMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]),
        )])
    }

    fn ctx(trace: u8, span: u8) -> SpanContext {
        SpanContext {
            trace_id: [trace; 16],
            span_id: [span; 8],
        }
    }

    #[test]
    fn check_parents_come_from_the_cached_owner_else_fall_back() {
        let (stored, handed) = (ctx(3, 4), ctx(5, 6));
        let kwv = fixtures::kwv("app-web-1.0")
            .workload("app", "app-web", "1.0")
            .in_namespace("ns")
            .uid("kwv-uid")
            .status(KeptnWorkloadVersionStatus {
                phase_trace_ids: phase_ids(&stored.traceparent()),
                ..Default::default()
            })
            .build();
        let cached = Some(CachedOwner::Workload(&kwv));
        let kwv_owner = owner("KeptnWorkloadVersion", "app-web-1.0", "kwv-uid");

        // Cached: the owner's phaseTraceIDs entry wins over what the task was created with.
        let parent = finished_check_parent(cached, &kwv_owner, "pre", Some(&handed.traceparent()));
        assert_eq!(parent, Some(stored));

        // A same-named object with another uid is not the owner: the handed-down context.
        let recreated = owner("KeptnWorkloadVersion", "app-web-1.0", "other-uid");
        let parent = finished_check_parent(cached, &recreated, "pre", Some(&handed.traceparent()));
        assert_eq!(parent, Some(handed));

        // Not cached, nothing handed down: the phase span derived from the owner's uid.
        let kav_owner = owner("KeptnAppVersion", "app-1.0-6b86b273", "kav-uid");
        let derived = VersionTrace::derived(Level::App, "app-1.0-6b86b273", "kav-uid");
        let phase = Phase::new(Level::App, Stage::PostDeployTasks);
        assert_eq!(
            finished_check_parent(None, &kav_owner, "post", None),
            Some(derived.phase(phase))
        );
        assert_eq!(
            finished_check_parent(None, &kav_owner, "post", Some("garbage")),
            Some(derived.phase(phase)),
            "unparseable traceparent"
        );
        assert_eq!(
            finished_check_parent(None, &owner("ReplicaSet", "rs", "u"), "pre", None),
            None
        );
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn kav(trace_id: Option<&str>) -> KeptnAppVersion {
        let kav = fixtures::kav("keptnapp-0.0.1-6b86b273")
            .app("keptnapp", "0.0.1")
            .workloads(&[("nginx", "1.0")])
            .context(KeptnAppContextSpec {
                metadata: [("team".to_owned(), "blue".to_owned())].into(),
                span_links: vec![
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
                    "nonsense".into(),
                ],
                ..Default::default()
            })
            .in_namespace("ns")
            .uid("kav-uid");
        match trace_id {
            Some(tp) => kav.trace_id(&[(TRACEPARENT, tp)]).build(),
            None => kav.build(),
        }
    }

    /// A workload version without a `spec.traceId`.
    fn kwv() -> KeptnWorkloadVersion {
        fixtures::kwv("keptnapp-nginx-1.0")
            .workload("keptnapp", "keptnapp-nginx", "1.0")
            .metadata(&[("team", "red"), ("tier", "web")])
            .in_namespace("ns")
            .uid("kwv-uid")
            .build()
    }

    /// A KAV status in AppDeploy, started at t(0), both pre phases passed.
    fn app_deploying() -> KeptnAppVersionStatus {
        KeptnAppVersionStatus {
            current_phase: "AppDeploy".into(),
            pre_deployment_status: KeptnState::Succeeded,
            pre_deployment_evaluation_status: KeptnState::Succeeded,
            workload_overall_status: KeptnState::Progressing,
            start_time: Some(Time(t(0))),
            ..Default::default()
        }
    }

    fn span<'a>(spans: &'a [FinishedSpan], name: &str) -> &'a FinishedSpan {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {spans:?}"))
    }

    fn names(spans: &[FinishedSpan]) -> Vec<&str> {
        spans.iter().map(|s| s.name.as_str()).collect()
    }

    fn value<'a>(s: &'a FinishedSpan, key: &str) -> Option<&'a str> {
        s.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn derived_ids_are_deterministic_distinct_and_valid() {
        assert_eq!(derived_trace_id("a"), derived_trace_id("a"));
        assert_ne!(derived_trace_id("a"), derived_trace_id("b"));
        assert_eq!(
            derived_span_id("a", "AppDeploy"),
            derived_span_id("a", "AppDeploy")
        );
        assert_ne!(
            derived_span_id("a", "AppDeploy"),
            derived_span_id("a", "root")
        );
        assert_ne!(derived_span_id("a", "root"), derived_span_id("b", "root"));
        assert_ne!(derived_trace_id(""), [0; 16]);
        assert_ne!(derived_span_id("", ""), [0; 8]);
    }

    #[test]
    fn traceparent_round_trips_and_rejects_malformed_values() {
        let c = SpanContext {
            trace_id: derived_trace_id("x"),
            span_id: derived_span_id("x", "root"),
        };
        let tp = c.traceparent();
        assert_eq!(tp.len(), 55);
        assert!(tp.starts_with("00-") && tp.ends_with("-01"));
        assert_eq!(SpanContext::parse(&tp), Some(c));
        let w3c = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let parsed = SpanContext::parse(w3c).unwrap();
        assert_eq!(parsed.traceparent(), w3c);
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-zz",
        ] {
            assert_eq!(SpanContext::parse(bad), None, "{bad}");
        }
        // A later version may carry more fields.
        assert!(
            SpanContext::parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x")
                .is_some()
        );
    }

    #[test]
    fn collector_endpoint_prefers_keptnconfig_and_adds_a_scheme() {
        assert_eq!(collector_endpoint("", None), None);
        assert_eq!(collector_endpoint("  ", Some(" ")), None);
        assert_eq!(
            collector_endpoint("otel-collector:4317", None).as_deref(),
            Some("http://otel-collector:4317")
        );
        assert_eq!(
            collector_endpoint("", Some("https://c:4317")).as_deref(),
            Some("https://c:4317")
        );
        assert_eq!(
            collector_endpoint("a:1", Some("http://b:2")).as_deref(),
            Some("http://a:1"),
            "OTelCollectorUrl overrides OTEL_EXPORTER_OTLP_ENDPOINT (A21)"
        );
    }

    #[test]
    fn app_version_phases_get_trace_ids_when_entered_and_spans_when_finished() {
        let kav = kav(None);
        let trace = VersionTrace::app(&kav, false);
        assert_eq!(trace.trace_id, derived_trace_id("kav-uid"));
        assert_eq!(trace.parent, None);

        // First reconcile: both pre phases pass at once, AppDeploy starts.
        let mut s1 = KeptnAppVersionStatus {
            status: KeptnState::Progressing,
            ..app_deploying()
        };
        let spans = transition(&trace, None, &mut s1, t(1));
        assert_eq!(
            names(&spans),
            ["AppPreDeployTasks", "AppPreDeployEvaluations"]
        );
        let keys: Vec<&str> = s1.phase_trace_ids.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["AppDeploy", "AppPreDeployEvaluations", "AppPreDeployTasks"]
        );
        let deploy = &s1.phase_trace_ids["AppDeploy"];
        let deploy_ctx = SpanContext::from_carrier(deploy).unwrap();
        assert_eq!(
            deploy_ctx,
            trace.phase(Phase::new(Level::App, Stage::Deploy))
        );
        assert_eq!(deploy_ctx.trace_id, trace.trace_id);
        assert_eq!(PhaseStart::decode(deploy), Some(t(1)));
        for s in &spans {
            assert_eq!(s.scope, APP_SCOPE);
            assert_eq!(s.parent, Some(trace.root().span_id));
            assert_eq!(s.context.trace_id, trace.trace_id);
            assert_eq!((s.start, s.end), (t(1), t(1)));
            assert!(!s.failed);
            assert_eq!(value(s, "keptn.deployment.app.name"), Some("keptnapp"));
            assert_eq!(value(s, "keptn.deployment.app.version"), Some("0.0.1"));
            assert_eq!(value(s, "keptn.deployment.app.namespace"), Some("ns"));
            assert_eq!(
                value(s, "team"),
                Some("blue"),
                "metadata as plain attributes"
            );
        }
        assert_eq!(
            span(&spans, "AppPreDeployTasks").events,
            ["App Pre-Deployment Tasks has succeeded"]
        );

        // The same transition seen again (no status change) finishes nothing twice.
        let mut again = s1.clone();
        assert!(transition(&trace, Some(&s1), &mut again, t(2)).is_empty());
        assert_eq!(again, s1);

        // Completion: AppDeploy, both post phases and the root end at endTime.
        let mut s2 = s1.clone();
        s2.current_phase = COMPLETED.into();
        s2.workload_overall_status = KeptnState::Succeeded;
        s2.post_deployment_status = KeptnState::Succeeded;
        s2.post_deployment_evaluation_status = KeptnState::Succeeded;
        s2.status = KeptnState::Succeeded;
        s2.end_time = Some(Time(t(30)));
        let spans = transition(&trace, Some(&s1), &mut s2, t(31));
        assert_eq!(
            names(&spans),
            [
                "AppDeploy",
                "AppPostDeployTasks",
                "AppPostDeployEvaluations",
                "keptnapp-0.0.1-6b86b273"
            ]
        );
        let d = span(&spans, "AppDeploy");
        assert_eq!((d.start, d.end), (t(1), t(30)), "start from the tracestate");
        assert_eq!(d.context, deploy_ctx);
        let root = span(&spans, "keptnapp-0.0.1-6b86b273");
        assert_eq!(root.context, trace.root());
        assert_eq!(root.parent, None);
        assert_eq!((root.start, root.end), (t(0), t(30)));
        assert_eq!(root.events, ["keptnapp-0.0.1-6b86b273 has finished"]);
        assert_eq!(root.links.len(), 1, "the valid spanLink");
        assert!(s2.phase_trace_ids.contains_key("AppPostDeployEvaluations"));
        assert!(!s2.phase_trace_ids.contains_key("PromotionTasks"));
    }

    #[test]
    fn a_user_traceparent_parents_the_app_root() {
        let user = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let trace = VersionTrace::app(&kav(Some(user)), false);
        let parent = SpanContext::parse(user).unwrap();
        assert_eq!(trace.trace_id, parent.trace_id);
        assert_eq!(trace.parent, Some(parent));
        let mut done = KeptnAppVersionStatus {
            current_phase: COMPLETED.into(),
            status: KeptnState::Succeeded,
            start_time: Some(Time(t(0))),
            end_time: Some(Time(t(5))),
            ..Default::default()
        };
        let spans = transition(&trace, None, &mut done, t(6));
        let root = span(&spans, "keptnapp-0.0.1-6b86b273");
        assert_eq!(root.parent, Some(parent.span_id));
        assert!(spans.iter().all(|s| s.context.trace_id == parent.trace_id));
    }

    #[test]
    fn workload_spans_hang_under_the_app_deploy_span() {
        let kav_trace = VersionTrace::app(&kav(None), false);
        let app_deploy = kav_trace.phase(Phase::new(Level::App, Stage::Deploy));
        let carrier: BTreeMap<String, String> =
            [(TRACEPARENT.to_owned(), app_deploy.traceparent())].into();
        let kwv = kwv();
        let mut s1 = KeptnWorkloadVersionStatus {
            current_phase: "WorkloadDeploy".into(),
            pre_deployment_status: KeptnState::Succeeded,
            pre_deployment_evaluation_status: KeptnState::Succeeded,
            deployment_status: KeptnState::Progressing,
            status: KeptnState::Progressing,
            start_time: Some(Time(t(10))),
            app_context_metadata: [("team".to_owned(), "blue".to_owned())].into(),
            ..Default::default()
        };
        // The carrier the same plan sets (spec.traceId is still empty on the object).
        let trace = VersionTrace::workload(&kwv, &carrier, &s1);
        assert_eq!(trace.trace_id, kav_trace.trace_id);
        let spans = transition(&trace, None, &mut s1, t(11));
        assert_eq!(
            names(&spans),
            [
                "keptnapp-nginx/WorkloadPreDeployTasks",
                "keptnapp-nginx/WorkloadPreDeployEvaluations"
            ]
        );
        let s = &spans[0];
        assert_eq!(s.scope, WORKLOAD_SCOPE);
        assert_eq!(value(s, "keptn.deployment.app.name"), Some("keptnapp"));
        assert_eq!(
            value(s, "keptn.deployment.workload.name"),
            Some("keptnapp-nginx")
        );
        assert_eq!(value(s, "keptn.deployment.workload.version"), Some("1.0"));
        assert_eq!(value(s, "keptn.deployment.workload.namespace"), Some("ns"));
        assert_eq!(value(s, "team"), Some("red"), "workload metadata wins");
        assert_eq!(value(s, "tier"), Some("web"));
        let stored = SpanContext::from_carrier(&s1.phase_trace_ids["WorkloadDeploy"]).unwrap();
        assert_eq!(stored.trace_id, kav_trace.trace_id);

        // Deployment times out: the phase and the workload fail, later phases never started.
        let mut s2 = s1.clone();
        s2.deployment_status = KeptnState::Failed;
        s2.post_deployment_status = KeptnState::Deprecated;
        s2.post_deployment_evaluation_status = KeptnState::Deprecated;
        s2.status = KeptnState::Failed;
        s2.end_time = Some(Time(t(20)));
        let spans = transition(&trace, Some(&s1), &mut s2, t(21));
        assert_eq!(
            names(&spans),
            ["keptnapp-nginx/WorkloadDeploy", "keptnapp-nginx-1.0"]
        );
        let deploy = &spans[0];
        assert!(deploy.failed);
        assert_eq!((deploy.start, deploy.end), (t(11), t(20)));
        assert_eq!(deploy.events, ["Workload Deployment has failed"]);
        let root = &spans[1];
        assert!(root.failed);
        assert_eq!(root.parent, Some(app_deploy.span_id), "child of AppDeploy");
        assert_eq!(root.context.trace_id, app_deploy.trace_id);
        assert_eq!(deploy.parent, Some(root.context.span_id));
        assert!(!s2.phase_trace_ids.contains_key("WorkloadPostDeployTasks"));
    }

    #[test]
    fn a_workload_is_handed_only_the_traceparent_of_app_deploy() {
        let kav_trace = VersionTrace::app(&kav(None), false);
        let mut status = app_deploying();
        transition(&kav_trace, None, &mut status, t(1));
        let entry = &status.phase_trace_ids["AppDeploy"];
        assert!(
            entry.contains_key(TRACESTATE),
            "the KAV keeps its start time"
        );
        let carrier = handed_down(entry);
        let app_deploy = kav_trace.phase(Phase::new(Level::App, Stage::Deploy));
        assert_eq!(
            carrier,
            BTreeMap::from([(TRACEPARENT.to_owned(), app_deploy.traceparent())]),
            "Keptn's carrier shape: traceparent only"
        );
        // The workload's trace still hangs under AppDeploy.
        let trace = VersionTrace::workload(&kwv(), &carrier, &Default::default());
        assert_eq!(trace.parent, Some(app_deploy));
        assert_eq!(trace.trace_id, kav_trace.trace_id);
        // Nothing to hand down without a traceparent.
        let only_state = BTreeMap::from([(TRACESTATE.to_owned(), "portcullis=s:1".to_owned())]);
        assert!(handed_down(&only_state).is_empty());
        assert!(handed_down(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn a_lost_trace_id_spec_write_keeps_the_trace_of_stored_phases() {
        let stored = ctx(7, 8);
        let status = KeptnWorkloadVersionStatus {
            current_phase: "WorkloadDeploy".into(),
            phase_trace_ids: traceparent_of("WorkloadPreDeployTasks", &stored.traceparent()),
            ..Default::default()
        };
        let trace = VersionTrace::workload(&kwv(), &BTreeMap::new(), &status);
        assert_eq!(trace.trace_id, [7; 16]);
        let fresh = VersionTrace::workload(&kwv(), &BTreeMap::new(), &Default::default());
        assert_eq!(fresh.trace_id, derived_trace_id("kwv-uid"));
    }

    #[test]
    fn tracing_turned_on_mid_phase_stamps_only_the_running_phase() {
        let trace = VersionTrace::app(&kav(None), false);
        let old = app_deploying();
        let mut new = old.clone();
        let spans = transition(&trace, Some(&old), &mut new, t(3));
        assert!(spans.is_empty());
        let keys: Vec<&str> = new.phase_trace_ids.keys().map(String::as_str).collect();
        assert_eq!(keys, ["AppDeploy"]);
    }

    #[test]
    fn task_context_gets_only_the_traceparent_of_its_own_phase() {
        let pre = ctx(1, 2).traceparent();
        let ids = phase_ids(&pre);
        assert_eq!(
            check_traceparent(&ids, Level::Workload, "pre"),
            Some(pre.clone())
        );
        assert_eq!(check_traceparent(&ids, Level::App, "pre"), None);
        assert_eq!(check_traceparent(&ids, Level::Workload, "post"), None);
        assert_eq!(check_traceparent(&ids, Level::Workload, "nope"), None);
        assert_eq!(
            check_traceparent(&BTreeMap::new(), Level::Workload, "pre"),
            None
        );
        let broken = traceparent_of("WorkloadPreDeployTasks", "garbage");
        assert_eq!(check_traceparent(&broken, Level::Workload, "pre"), None);
    }

    #[test]
    fn checks_are_children_of_their_owners_phase_span() {
        let kav = kav(None);
        let trace = VersionTrace::app(&kav, false);
        let pre = check_parent::<KeptnAppVersionStatus>(&trace, None, "pre").unwrap();
        assert_eq!(
            pre,
            trace.phase(Phase::new(Level::App, Stage::PreDeployTasks))
        );
        let eval = check_parent::<KeptnAppVersionStatus>(&trace, None, "post-eval").unwrap();
        assert_eq!(
            eval,
            trace.phase(Phase::new(Level::App, Stage::PostDeployEvaluations))
        );
        assert_eq!(
            check_parent::<KeptnAppVersionStatus>(&trace, None, "x"),
            None
        );
        // A stored entry (e.g. written by Keptn) wins.
        let stored = ctx(5, 6);
        let status = KeptnAppVersionStatus {
            phase_trace_ids: traceparent_of("AppPreDeployTasks", &stored.traceparent()),
            ..Default::default()
        };
        assert_eq!(check_parent(&trace, Some(&status), "pre"), Some(stored));

        let task: KeptnTask = serde_json::from_value(serde_json::json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTask",
            "metadata": {"name": "pre-hello-1", "namespace": "ns", "uid": "task-uid"},
            "spec": {"taskDefinition": "hello", "checkType": "pre", "context": {
                "appName": "keptnapp", "appVersion": "0.0.1", "workloadName": "",
                "workloadVersion": "", "taskType": "pre", "objectType": "App"}},
        }))
        .unwrap();
        let status = KeptnTaskStatus {
            status: KeptnState::Failed,
            message: "exit 1".into(),
            start_time: Some(Time(t(2))),
            end_time: Some(Time(t(4))),
            ..Default::default()
        };
        let s = task_span(&task, &status, pre, t(9));
        assert_eq!(s.name, "pre-hello-1");
        assert_eq!(s.scope, TASK_SCOPE);
        assert_eq!(s.parent, Some(pre.span_id));
        assert_eq!(s.context.trace_id, pre.trace_id);
        assert_eq!(s.context.span_id, derived_span_id("task-uid", "check"));
        assert_eq!((s.start, s.end), (t(2), t(4)));
        assert!(s.failed);
        assert_eq!(value(&s, "keptn.deployment.task.name"), Some("pre-hello-1"));
        assert_eq!(value(&s, "keptn.deployment.task.type"), Some("pre"));
        assert_eq!(value(&s, "keptn.deployment.app.version"), Some("0.0.1"));
        assert!(
            s.attributes.iter().all(|(k, _)| !k.ends_with("status")),
            "metric attributes without status"
        );
        assert!(
            s.events
                .contains(&"task 'pre-hello-1' failed with reason: 'exit 1'".to_owned())
        );
    }

    #[test]
    fn evaluation_spans_carry_evaluation_attributes() {
        let evaluation: KeptnEvaluation = serde_json::from_value(serde_json::json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnEvaluation",
            "metadata": {"name": "pre-eval-ready-1", "namespace": "ns", "uid": "e-uid"},
            "spec": {"evaluationDefinition": "ready", "workloadVersion": "1.0",
                     "workload": "keptnapp-nginx", "appName": "keptnapp", "appVersion": "",
                     "checkType": "pre-eval"},
        }))
        .unwrap();
        let status = KeptnEvaluationStatus {
            overall_status: KeptnState::Succeeded,
            start_time: Some(Time(t(1))),
            ..Default::default()
        };
        let parent = ctx(1, 2);
        let s = evaluation_span(&evaluation, &status, parent, t(7));
        assert_eq!(s.scope, EVALUATION_SCOPE);
        assert_eq!((s.start, s.end), (t(1), t(7)), "no endTime: now");
        assert!(!s.failed);
        assert_eq!(
            value(&s, "keptn.deployment.evaluation.name"),
            Some("pre-eval-ready-1")
        );
        assert_eq!(
            value(&s, "keptn.deployment.evaluation.type"),
            Some("pre-eval")
        );
        assert_eq!(
            value(&s, "keptn.deployment.workload.name"),
            Some("keptnapp-nginx")
        );
        assert_eq!(s.events, ["pre-eval-ready-1 has finished"]);
    }
}

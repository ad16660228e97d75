//! The span exporter (B §7.4, A21): an OTLP/gRPC batch exporter that exists while a collector
//! is configured, fed with the spans [`crate::traces`] derives from status transitions.
//!
//! Off by default. The KeptnConfig `OTelCollectorUrl` (applied through
//! [`crate::controllers::apply_config`]) or, when that is empty, `OTEL_EXPORTER_OTLP_ENDPOINT`
//! turns it on; a changed URL replaces the exporter, an empty one turns tracing off again.
//! The batch timing follows the SDK's `OTEL_BSP_*` variables (`OTEL_BSP_SCHEDULE_DELAY`, 5 s).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use opentelemetry::trace::{
    Event, Link, SpanContext as OtelContext, SpanId, SpanKind, Status, TraceFlags, TraceId,
    TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SpanData, SpanEvents, SpanExporter as _, SpanLinks, SpanProcessor,
};
use shared::crd::{
    KeptnAppVersion, KeptnAppVersionStatus, KeptnEvaluation, KeptnEvaluationStatus, KeptnTask,
    KeptnTaskStatus, KeptnWorkloadVersion, KeptnWorkloadVersionStatus,
};

use crate::lifecycle::{Action, Plan};
use crate::phase::Level;
use crate::traces::{self, FinishedSpan, SpanContext, VersionTrace};

/// Keptn's resource name, so existing dashboards find the spans (B §7.4).
const SERVICE_NAME: &str = "lifecycle-operator";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The process's exporter state.
pub struct Telemetry {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, read once.
    env_endpoint: Option<String>,
    state: Mutex<Exporting>,
    /// Where the owners of finished checks are read; `None` until the controllers register them.
    owners: RwLock<Option<OwnerCaches>>,
}

#[derive(Default)]
struct Exporting {
    /// The endpoint the processor sends to; `None` = off.
    endpoint: Option<String>,
    processor: Option<BatchSpanProcessor>,
}

/// The process-wide exporter: spans are finished from several controllers, which share no
/// context object; the state itself is rebuilt from the configuration alone.
pub fn global() -> &'static Telemetry {
    static GLOBAL: OnceLock<Telemetry> = OnceLock::new();
    GLOBAL.get_or_init(|| Telemetry::new(std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()))
}

impl Telemetry {
    /// An exporter that is off until [`Telemetry::configure`].
    pub fn new(env_endpoint: Option<String>) -> Self {
        Telemetry {
            env_endpoint,
            state: Mutex::new(Exporting::default()),
            owners: RwLock::new(None),
        }
    }

    /// Reads the owners of finished KeptnTasks/KeptnEvaluations from these caches (the
    /// controllers' KeptnAppVersion and KeptnWorkloadVersion stores) from now on.
    pub fn read_owners_from(&self, caches: OwnerCaches) {
        match self.owners.write() {
            Ok(mut o) => *o = Some(caches),
            Err(poisoned) => *poisoned.into_inner() = Some(caches),
        }
    }

    fn owners(&self) -> Option<OwnerCaches> {
        match self.owners.read() {
            Ok(o) => o.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Exporting> {
        match self.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Applies the KeptnConfig `OTelCollectorUrl`: (re)creates or drops the exporter when the
    /// effective endpoint changed. Must run inside the tokio runtime (the gRPC channel lives
    /// there); outside of it tracing stays off.
    pub fn configure(&self, config_url: &str) {
        let wanted = traces::collector_endpoint(config_url, self.env_endpoint.as_deref());
        let mut state = self.lock();
        if state.endpoint == wanted {
            return;
        }
        if let Some(old) = state.processor.take() {
            // Flushes what is queued; blocking, so off the async worker.
            std::thread::spawn(move || {
                if let Err(e) = old.shutdown() {
                    tracing::debug!(error = %e, "span exporter shutdown");
                }
            });
        }
        state.endpoint = wanted.clone();
        let Some(endpoint) = wanted else {
            tracing::info!("tracing off");
            return;
        };
        match processor(&endpoint) {
            Ok(p) => {
                tracing::info!(endpoint = %endpoint, "tracing on: exporting spans over OTLP/gRPC");
                state.processor = Some(p);
            }
            Err(e) => {
                tracing::warn!(endpoint = %endpoint, error = %e, "tracing off: no span exporter");
            }
        }
    }

    /// Whether spans are exported (and `phaseTraceIDs` written).
    pub fn active(&self) -> bool {
        self.lock().processor.is_some()
    }

    /// The `traceparent` a new KeptnTask of `check_type` carries in `spec.context.metadata`
    /// (B §5.1, §8.20): its phase's `phaseTraceIDs` entry, but only while tracing is on; entries
    /// written before tracing was turned off stay on unfinished versions and are not handed out.
    pub fn task_traceparent(
        &self,
        phase_trace_ids: &BTreeMap<String, BTreeMap<String, String>>,
        level: Level,
        check_type: &str,
    ) -> Option<String> {
        if !self.active() {
            return None;
        }
        traces::check_traceparent(phase_trace_ids, level, check_type)
    }

    /// Queues finished spans for export; dropped when tracing is off.
    pub fn export(&self, spans: Vec<FinishedSpan>) {
        if spans.is_empty() {
            return;
        }
        let state = self.lock();
        let Some(processor) = state.processor.as_ref() else {
            return;
        };
        for span in spans {
            tracing::debug!(span_name = %span.name, "span finished");
            processor.on_end(span_data(span));
        }
    }

    /// Flushes and stops the exporter (at process exit). Blocking.
    pub fn shutdown(&self) {
        let processor = self.lock().processor.take();
        if let Some(p) = processor
            && let Err(e) = p.shutdown()
        {
            tracing::debug!(error = %e, "span exporter shutdown");
        }
    }
}

fn processor(endpoint: &str) -> Result<BatchSpanProcessor, String> {
    tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| e.to_string())?;
    let resource = Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attribute(KeyValue::new("service.version", VERSION))
        .build();
    exporter.set_resource(&resource);
    Ok(BatchSpanProcessor::builder(exporter).build())
}

fn system_time(t: Timestamp) -> SystemTime {
    SystemTime::from(t)
}

fn otel_context(c: SpanContext, remote: bool) -> OtelContext {
    OtelContext::new(
        TraceId::from_bytes(c.trace_id),
        SpanId::from_bytes(c.span_id),
        TraceFlags::SAMPLED,
        remote,
        TraceState::default(),
    )
}

fn span_data(span: FinishedSpan) -> SpanData {
    let end = system_time(span.end);
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .into_iter()
        .map(|name| Event::new(name, end, Vec::new(), 0))
        .collect();
    let mut links = SpanLinks::default();
    links.links = span
        .links
        .into_iter()
        .map(|l| {
            Link::new(
                otel_context(l, true),
                vec![KeyValue::new("opentracing.ref_type", "follows-from")],
                0,
            )
        })
        .collect();
    SpanData {
        span_context: otel_context(span.context, false),
        parent_span_id: span.parent.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: false,
        span_kind: SpanKind::Consumer,
        name: span.name.into(),
        start_time: system_time(span.start),
        end_time: end,
        attributes: span
            .attributes
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v))
            .collect(),
        dropped_attributes_count: 0,
        events,
        links,
        status: if span.failed {
            Status::error("")
        } else {
            Status::Ok
        },
        instrumentation_scope: InstrumentationScope::builder(span.scope)
            .with_version(VERSION)
            .build(),
    }
}

/// Stamps the planned KeptnAppVersion status with the `phaseTraceIDs` of the phases it
/// enters and returns the spans it finishes, to [`Telemetry::export`] after the status write
/// succeeded. Nothing when tracing is off.
pub fn app_version_transition(
    kav: &KeptnAppVersion,
    plan: &mut Plan<KeptnAppVersionStatus>,
    promotion_enabled: bool,
) -> Vec<FinishedSpan> {
    if !global().active() {
        return Vec::new();
    }
    let trace = VersionTrace::app(kav, promotion_enabled);
    traces::transition(
        &trace,
        kav.status.as_ref(),
        &mut plan.status,
        Timestamp::now(),
    )
}

/// As [`app_version_transition`] for a KeptnWorkloadVersion; a `spec.traceId` the same plan
/// sets already counts.
pub fn workload_version_transition(
    kwv: &KeptnWorkloadVersion,
    plan: &mut Plan<KeptnWorkloadVersionStatus>,
) -> Vec<FinishedSpan> {
    if !global().active() {
        return Vec::new();
    }
    let carrier = plan
        .actions
        .iter()
        .find_map(|a| match a {
            Action::SetTraceId(c) => Some(c.clone()),
            _ => None,
        })
        .unwrap_or_else(|| kwv.spec.trace_id.clone());
    let trace = VersionTrace::workload(kwv, &carrier, &plan.status);
    traces::transition(
        &trace,
        kwv.status.as_ref(),
        &mut plan.status,
        Timestamp::now(),
    )
}

/// The read caches of the objects that own KeptnTasks and KeptnEvaluations.
#[derive(Clone)]
pub struct OwnerCaches {
    pub kav: Store<KeptnAppVersion>,
    pub kwv: Store<KeptnWorkloadVersion>,
}

impl OwnerCaches {
    /// The cached owner, only if it is the object the reference names (same uid).
    fn get<K>(store: &Store<K>, namespace: &str, owner: &OwnerReference) -> Option<Arc<K>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        store
            .get(&ObjectRef::new(&owner.name).within(namespace))
            .filter(|o| o.meta().uid.as_deref() == Some(owner.uid.as_str()))
    }

    /// The phase span a check of `check_type` owned by `owner` belongs to, from the cached
    /// owner's `phaseTraceIDs` or trace; `None` when the owner is not cached.
    fn check_parent(
        &self,
        namespace: &str,
        owner: &OwnerReference,
        check_type: &str,
    ) -> Option<Option<SpanContext>> {
        match owner.kind.as_str() {
            "KeptnAppVersion" => {
                let kav = Self::get(&self.kav, namespace, owner)?;
                // Promotion on or off only changes which phases exist, not their span ids.
                let trace = VersionTrace::app(&kav, true);
                Some(traces::check_parent(
                    &trace,
                    kav.status.as_ref(),
                    check_type,
                ))
            }
            "KeptnWorkloadVersion" => {
                let kwv = Self::get(&self.kwv, namespace, owner)?;
                let status = kwv.status.clone().unwrap_or_default();
                let trace = VersionTrace::workload(&kwv, &kwv.spec.trace_id, &status);
                Some(traces::check_parent(&trace, Some(&status), check_type))
            }
            _ => None,
        }
    }
}

/// The phase span a finished check belongs to, read from the gate's caches, never from the API
/// server (A1). When the owner is not cached (deleted, or no caches registered): the
/// `traceparent` the check was created with (tasks, `handed`), else the phase span derived from
/// the owner's uid.
fn check_parent(
    owners: Option<&OwnerCaches>,
    namespace: &str,
    owner: &OwnerReference,
    check_type: &str,
    handed: Option<&str>,
) -> Option<SpanContext> {
    if let Some(found) = owners.and_then(|o| o.check_parent(namespace, owner, check_type)) {
        return found;
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
    traces::check_parent::<KeptnAppVersionStatus>(&trace, None, check_type)
}

fn controller_owner<K: ResourceExt>(obj: &K) -> Option<OwnerReference> {
    obj.owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
        .cloned()
}

/// Exports the span of a KeptnTask whose finished status was just written.
pub fn task_finished(task: &KeptnTask, status: &KeptnTaskStatus) {
    let telemetry = global();
    if !telemetry.active() {
        return;
    }
    let (Some(owner), Some(namespace)) = (controller_owner(task), task.namespace()) else {
        return;
    };
    let handed = task.spec.context.metadata.get(traces::TRACEPARENT);
    let owners = telemetry.owners();
    let Some(parent) = check_parent(
        owners.as_ref(),
        &namespace,
        &owner,
        &task.spec.check_type,
        handed.map(String::as_str),
    ) else {
        tracing::debug!(task = %task.name_any(), "no parent span for task");
        return;
    };
    let span = traces::task_span(task, status, parent, Timestamp::now());
    telemetry.export(vec![span]);
}

/// Exports the span of a KeptnEvaluation whose finished status was just written.
pub fn evaluation_finished(evaluation: &KeptnEvaluation, status: &KeptnEvaluationStatus) {
    let telemetry = global();
    if !telemetry.active() {
        return;
    }
    let (Some(owner), Some(namespace)) = (controller_owner(evaluation), evaluation.namespace())
    else {
        return;
    };
    let owners = telemetry.owners();
    let check_type = &evaluation.spec.check_type;
    let Some(parent) = check_parent(owners.as_ref(), &namespace, &owner, check_type, None) else {
        tracing::debug!(evaluation = %evaluation.name_any(), "no parent span for evaluation");
        return;
    };
    let span = traces::evaluation_span(evaluation, status, parent, Timestamp::now());
    telemetry.export(vec![span]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_endpoint_and_outside_a_runtime() {
        let t = Telemetry::new(None);
        t.configure("");
        assert!(!t.active());
        // Outside a tokio runtime no exporter can be built: stays off, no panic.
        t.configure("collector:4317");
        assert!(!t.active());
        t.export(Vec::new());
    }

    #[tokio::test]
    async fn url_turns_on_changes_and_turns_off() {
        let t = Telemetry::new(Some("http://from-env:4317".into()));
        t.configure("");
        assert!(t.active(), "the environment endpoint applies");
        assert_eq!(t.lock().endpoint.as_deref(), Some("http://from-env:4317"));
        t.configure("otel-collector:4317");
        assert_eq!(
            t.lock().endpoint.as_deref(),
            Some("http://otel-collector:4317"),
            "the KeptnConfig URL overrides the environment"
        );
        let off = Telemetry::new(None);
        off.configure("otel-collector:4317");
        assert!(off.active());
        off.configure("");
        assert!(!off.active(), "an empty URL turns tracing off again");
    }

    #[test]
    fn nothing_is_stamped_or_finished_while_tracing_is_off() {
        // The process-wide exporter is never configured in unit tests: off.
        assert!(!global().active());
        let kav: KeptnAppVersion = serde_json::from_value(serde_json::json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppVersion",
            "metadata": {"name": "a-1-6b86b273", "namespace": "ns", "uid": "u"},
            "spec": {"appName": "a", "version": "1"},
        }))
        .unwrap();
        let status = KeptnAppVersionStatus {
            current_phase: crate::phase::COMPLETED.into(),
            status: shared::crd::KeptnState::Succeeded,
            ..Default::default()
        };
        let mut plan = Plan {
            status: status.clone(),
            actions: Vec::new(),
            requeue: None,
        };
        assert!(app_version_transition(&kav, &mut plan, false).is_empty());
        assert_eq!(plan.status, status, "no phaseTraceIDs written");
    }

    fn phase_ids(traceparent: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        BTreeMap::from([(
            "WorkloadPreDeployTasks".to_owned(),
            BTreeMap::from([
                (traces::TRACEPARENT.to_owned(), traceparent.to_owned()),
                (traces::TRACESTATE.to_owned(), "portcullis=s:1".to_owned()),
            ]),
        )])
    }

    #[tokio::test]
    async fn tasks_get_a_traceparent_only_while_tracing_is_on() {
        let stale = SpanContext {
            trace_id: [1; 16],
            span_id: [2; 8],
        }
        .traceparent();
        let ids = phase_ids(&stale);
        let t = Telemetry::new(None);
        t.configure("otel-collector:4317");
        assert_eq!(
            t.task_traceparent(&ids, Level::Workload, "pre"),
            Some(stale.clone())
        );
        // B §8.20: turned off again, the entries left on the version are not handed out.
        t.configure("");
        assert_eq!(t.task_traceparent(&ids, Level::Workload, "pre"), None);
        assert_eq!(
            Telemetry::new(None).task_traceparent(&ids, Level::Workload, "pre"),
            None,
            "never on"
        );
    }

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

    fn cached_kwv(
        uid: &str,
        ids: BTreeMap<String, BTreeMap<String, String>>,
    ) -> KeptnWorkloadVersion {
        let mut kwv: KeptnWorkloadVersion = serde_json::from_value(serde_json::json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkloadVersion",
            "metadata": {"name": "app-web-1.0", "namespace": "ns", "uid": uid},
            "spec": {
                "app": "app", "version": "1.0", "workloadName": "app-web",
                "resourceReference": {"uid": "u", "kind": "ReplicaSet", "name": "rs"},
            },
        }))
        .unwrap();
        kwv.status = Some(KeptnWorkloadVersionStatus {
            phase_trace_ids: ids,
            ..Default::default()
        });
        kwv
    }

    #[test]
    fn check_parents_come_from_the_cached_owner_else_fall_back() {
        let stored = SpanContext {
            trace_id: [3; 16],
            span_id: [4; 8],
        };
        let handed = SpanContext {
            trace_id: [5; 16],
            span_id: [6; 8],
        };
        let (kav, _) = kube::runtime::reflector::store::<KeptnAppVersion>();
        let (kwv, mut writer) = kube::runtime::reflector::store::<KeptnWorkloadVersion>();
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(cached_kwv(
            "kwv-uid",
            phase_ids(&stored.traceparent()),
        )));
        let owners = OwnerCaches { kav, kwv };
        let kwv_owner = owner("KeptnWorkloadVersion", "app-web-1.0", "kwv-uid");

        // Cached: the owner's phaseTraceIDs entry wins over what the task was created with.
        let parent = check_parent(
            Some(&owners),
            "ns",
            &kwv_owner,
            "pre",
            Some(&handed.traceparent()),
        );
        assert_eq!(parent, Some(stored));

        // A same-named object with another uid is not the owner: the handed-down context.
        let recreated = owner("KeptnWorkloadVersion", "app-web-1.0", "other-uid");
        let parent = check_parent(
            Some(&owners),
            "ns",
            &recreated,
            "pre",
            Some(&handed.traceparent()),
        );
        assert_eq!(parent, Some(handed));

        // Not cached, nothing handed down: the phase span derived from the owner's uid.
        let kav_owner = owner("KeptnAppVersion", "app-1.0-6b86b273", "kav-uid");
        let derived = VersionTrace::derived(Level::App, "app-1.0-6b86b273", "kav-uid");
        let phase = crate::phase::Phase::new(Level::App, crate::phase::Stage::PostDeployTasks);
        assert_eq!(
            check_parent(Some(&owners), "ns", &kav_owner, "post", None),
            Some(derived.phase(phase))
        );
        assert_eq!(
            check_parent(None, "ns", &kav_owner, "post", Some("garbage")),
            Some(derived.phase(phase)),
            "no caches registered, unparseable traceparent"
        );
        assert_eq!(
            check_parent(None, "ns", &owner("ReplicaSet", "rs", "u"), "pre", None),
            None
        );
    }

    #[test]
    fn span_data_carries_ids_times_kind_and_status() {
        let ctx = SpanContext {
            trace_id: [1; 16],
            span_id: [2; 8],
        };
        let start = Timestamp::from_second(1_700_000_000).unwrap();
        let end = Timestamp::from_second(1_700_000_010).unwrap();
        let data = span_data(FinishedSpan {
            scope: traces::APP_SCOPE,
            name: "AppDeploy".into(),
            context: ctx,
            parent: Some([3; 8]),
            start,
            end,
            attributes: vec![("keptn.deployment.app.name".into(), "a".into())],
            links: vec![ctx],
            failed: true,
            events: vec!["App Deployment has failed".into()],
        });
        assert_eq!(data.span_context.trace_id(), TraceId::from_bytes([1; 16]));
        assert_eq!(data.span_context.span_id(), SpanId::from_bytes([2; 8]));
        assert_eq!(data.parent_span_id, SpanId::from_bytes([3; 8]));
        assert_eq!(data.span_kind, SpanKind::Consumer);
        assert_eq!(data.start_time, SystemTime::from(start));
        assert_eq!(data.end_time, SystemTime::from(end));
        assert!(matches!(data.status, Status::Error { .. }));
        assert_eq!(data.events.events[0].name, "App Deployment has failed");
        assert_eq!(data.links.links.len(), 1);
        assert_eq!(data.instrumentation_scope.name(), traces::APP_SCOPE);
    }
}

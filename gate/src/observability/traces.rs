//! The span exporter (B §7.4, A21): an OTLP/gRPC batch exporter that exists while a collector
//! is configured, fed with the spans [`lifecycle::traces`] derives from status transitions.
//!
//! Off by default. The KeptnConfig `OTelCollectorUrl` (applied by the KeptnConfig controller) or,
//! when that is empty, `OTEL_EXPORTER_OTLP_ENDPOINT` turns it on; a changed URL replaces the
//! exporter, an empty one turns tracing off again. The batch timing follows the SDK's
//! `OTEL_BSP_*` variables (`OTEL_BSP_SCHEDULE_DELAY`, 5 s).

use std::sync::Mutex;
use std::time::SystemTime;

use jiff::Timestamp;
use lifecycle::traces::{self, FinishedSpan, SpanContext};
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

/// Keptn's resource name, so existing dashboards find the spans (B §7.4).
const SERVICE_NAME: &str = "lifecycle-operator";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The span exporter the controllers share through their context.
pub struct Traces {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, read once.
    env_endpoint: Option<String>,
    state: Mutex<Exporting>,
}

#[derive(Default)]
struct Exporting {
    /// The endpoint the processor sends to; `None` = off.
    endpoint: Option<String>,
    processor: Option<BatchSpanProcessor>,
}

impl Traces {
    /// An exporter that is off until [`Traces::configure`].
    pub fn new(env_endpoint: Option<String>) -> Self {
        Traces {
            env_endpoint,
            state: Mutex::new(Exporting::default()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_without_endpoint_and_outside_a_runtime() {
        let t = Traces::new(None);
        t.configure("");
        assert!(!t.active());
        // Outside a tokio runtime no exporter can be built: stays off, no panic.
        t.configure("collector:4317");
        assert!(!t.active());
        t.export(Vec::new());
    }

    #[tokio::test]
    async fn url_turns_on_changes_and_turns_off() {
        let t = Traces::new(Some("http://from-env:4317".into()));
        t.configure("");
        assert!(t.active(), "the environment endpoint applies");
        assert_eq!(t.lock().endpoint.as_deref(), Some("http://from-env:4317"));
        t.configure("otel-collector:4317");
        assert_eq!(
            t.lock().endpoint.as_deref(),
            Some("http://otel-collector:4317"),
            "the KeptnConfig URL overrides the environment"
        );
        let off = Traces::new(None);
        off.configure("otel-collector:4317");
        assert!(off.active());
        off.configure("");
        assert!(!off.active(), "an empty URL turns tracing off again");
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

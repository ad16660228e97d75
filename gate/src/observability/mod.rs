//! Everything the gate reports besides the statuses it writes, in one place: the metrics
//! registry with Keptn's task, evaluation and DORA families (B §7.3), the span exporter
//! (B §7.4), Kubernetes Events and CloudEvents (B §7.1, §7.2). The controllers reach it through
//! their context; nothing here is process-global.

pub mod checks;
pub mod cloudevents;
pub mod dora;
pub mod events;
pub mod metrics;
pub mod traces;

pub use checks::CheckMetrics;
pub use events::{EventLevel, EventPublisher, EventSink, Recorders};
pub use metrics::Metrics;
pub use traces::Traces;

use std::sync::{Arc, RwLock};

use kube::Client;
use lifecycle::config::RuntimeConfig;

/// What the controllers report through, held by their context: shared with the admin server
/// (metrics) and the KeptnConfig controller (the span exporter follows `OTelCollectorUrl`).
#[derive(Clone)]
pub struct Observability {
    pub metrics: Arc<Metrics>,
    pub traces: Arc<Traces>,
    pub recorders: Recorders,
}

impl Observability {
    /// Events reported from `instance` (Kubernetes Events of `level`), each also sent as a
    /// CloudEvent to the KeptnConfig's `cloudEventsEndpoint` (read per event from `config`);
    /// undelivered ones are counted.
    ///
    /// # Panics
    /// Outside a Tokio runtime (the Events are sent by a background task).
    pub fn new(
        client: &Client,
        instance: &str,
        level: EventLevel,
        config: Arc<RwLock<RuntimeConfig>>,
        metrics: Arc<Metrics>,
        traces: Arc<Traces>,
    ) -> Self {
        let cloud_events = cloudevents::CloudEventSender::new(config)
            .counting_failures(metrics.cloud_events_failures.clone());
        Observability {
            recorders: Recorders::new(
                &EventSink::start(client, level, metrics.events_dropped.clone()),
                instance,
                Some(cloud_events),
            ),
            metrics,
            traces,
        }
    }
}

//! Kubernetes Events (B §7.1) with Keptn's annotations, each also sent as a CloudEvent
//! (B §7.2): one publisher per reporting controller, as Keptn names them (B §0.4).
//!
//! All publishers hand their Events to one [`EventSink`]: a bounded queue drained by a few
//! concurrent creates, which bounds what a burst of Events (a thousand workloads rolling out at
//! once) adds to the API server the status writes and releases go through, and the gate's
//! memory. A full queue drops the new Event, counted in
//! `portcullis_gate_kubernetes_events_dropped_total` (docs/decisions.md, "Kubernetes Events").

use std::collections::BTreeMap;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use kube::api::PostParams;
use kube::{Api, Client};
use lifecycle::events::Note;
use lifecycle::execution::CheckEvent;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::cloudevents::CloudEventSender;
use operator::api::timed;

/// Events waiting to be created; beyond that, new ones are dropped.
const QUEUE: usize = 4096;
/// Event creations in flight at once.
const SENDERS: usize = 8;

/// Which Kubernetes Events the gate creates (`--kubernetes-events`). CloudEvents are sent for
/// every event either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EventLevel {
    /// Every event Keptn emits (B §7.1).
    #[default]
    All,
    /// Only `Warning` events: the `Normal` ones (phase `…Started` and `…Finished`, task and
    /// evaluation `…StatusChanged`) are about half of the gate's writes in a rollout.
    Warnings,
}

impl EventLevel {
    /// Whether an event of this kind is created as a Kubernetes Event.
    pub fn creates(self, warning: bool) -> bool {
        warning || self == EventLevel::All
    }
}

/// The gate's one queue of Events to create; cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    queue: mpsc::Sender<Event>,
    level: EventLevel,
    dropped: Counter,
}

impl EventSink {
    /// Starts the sender in the background; Events dropped on a full queue are counted in
    /// `dropped`. Events still queued when the process exits are lost, as with Keptn's
    /// recorder.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(client: &Client, level: EventLevel, dropped: Counter) -> Self {
        let (queue, events) = mpsc::channel(QUEUE);
        tokio::spawn(drain(client.clone(), events));
        EventSink {
            queue,
            level,
            dropped,
        }
    }

    fn push(&self, event: Event) {
        let (event, why) = match self.queue.try_send(event) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(e)) => (e, "the queue is full"),
            Err(mpsc::error::TrySendError::Closed(e)) => (e, "the sender has stopped"),
        };
        self.dropped.inc();
        // One line for the first drop of a burst and one per thousand after it: the counter
        // has the exact figure.
        let total = self.dropped.get();
        if total == 1 || total.is_multiple_of(1000) {
            tracing::warn!(
                reason = event.reason.as_deref().unwrap_or_default(),
                namespace = event.metadata.namespace.as_deref().unwrap_or_default(),
                dropped_total = total,
                "event dropped: {why}"
            );
        }
    }
}

/// Creates the queued Events, at most [`SENDERS`] at a time; failures are only logged.
async fn drain(client: Client, events: mpsc::Receiver<Event>) {
    ReceiverStream::new(events)
        .for_each_concurrent(SENDERS, |event| {
            let api: Api<Event> = match &event.metadata.namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::default_namespaced(client.clone()),
            };
            async move {
                if let Err(error) = timed(api.create(&PostParams::default(), &event)).await {
                    let reason = event.reason.as_deref().unwrap_or_default();
                    tracing::warn!(%reason, %error, "could not publish event");
                }
            }
        })
        .await;
}

/// Publishes events.k8s.io/v1 Events for one reporting controller, with B §7.1's annotations
/// (kube's recorder cannot set annotations), and each also as a CloudEvent (B §7.2) when given a
/// sender. The gate's one publisher: the lifecycle controllers use it too.
#[derive(Clone)]
pub struct EventPublisher {
    sink: EventSink,
    controller: &'static str,
    instance: String,
    /// Also sends each event as a CloudEvent (B §7.2) when set.
    cloud_events: Option<CloudEventSender>,
}

impl EventPublisher {
    /// A publisher reporting as `controller` from `instance` through `sink`.
    pub fn new(sink: &EventSink, controller: &'static str, instance: String) -> Self {
        EventPublisher {
            sink: sink.clone(),
            controller,
            instance,
            cloud_events: None,
        }
    }

    /// The same publisher, also sending each event as a CloudEvent through `sender`.
    pub fn with_cloud_events(mut self, sender: CloudEventSender) -> Self {
        self.cloud_events = Some(sender);
        self
    }

    /// Publishes in the background (B §7.1: events are sent asynchronously), and as a
    /// CloudEvent (B §7.2) when configured; failures are only logged.
    pub fn publish(
        &self,
        event: &CheckEvent,
        regarding: ObjectReference,
        annotations: BTreeMap<String, String>,
    ) {
        self.send(event.into(), regarding, annotations);
    }

    /// Publishes `note` about `regarding` in the background: the Event (when the sink's level
    /// creates it), and the CloudEvent when configured. Never waits; failures are only logged.
    pub fn send(
        &self,
        note: lifecycle::events::Published<'_>,
        regarding: ObjectReference,
        annotations: BTreeMap<String, String>,
    ) {
        if let Some(sender) = &self.cloud_events {
            sender.send(note, &regarding, &annotations);
        }
        if !self.sink.level.creates(note.warning) {
            return;
        }
        let object = lifecycle::events::published_event(
            &note,
            regarding,
            annotations,
            self.controller,
            &self.instance,
            Timestamp::now(),
        );
        self.sink.push(object);
    }
}

impl EventPublisher {
    /// Publishes a lifecycle `note` about `regarding` in the background.
    pub fn note(
        &self,
        note: &Note,
        regarding: ObjectReference,
        annotations: BTreeMap<String, String>,
    ) {
        self.send(note.into(), regarding, annotations);
    }
}

/// The gate's publishers, one per reporting controller (B §0.4).
#[derive(Clone)]
pub struct Recorders {
    pub app_version: EventPublisher,
    pub workload_version: EventPublisher,
    pub app: EventPublisher,
    pub workload: EventPublisher,
    pub evaluation: EventPublisher,
    pub task: EventPublisher,
    pub task_definition: EventPublisher,
    /// The scheduling-gate controllers' own reports.
    pub gate: EventPublisher,
}

impl Recorders {
    /// Publishers reporting from `instance` through `sink`, each also sending CloudEvents
    /// through `cloud_events` when given.
    pub fn new(sink: &EventSink, instance: &str, cloud_events: Option<CloudEventSender>) -> Self {
        let recorder = |controller: &'static str| {
            let publisher = EventPublisher::new(sink, controller, instance.to_owned());
            match &cloud_events {
                Some(sender) => publisher.with_cloud_events(sender.clone()),
                None => publisher,
            }
        };
        Recorders {
            app_version: recorder("keptnappversion-controller"),
            workload_version: recorder("keptnworkloadversion-controller"),
            app: recorder("keptnapp-controller"),
            workload: recorder("keptnworkload-controller"),
            evaluation: recorder("keptnevaluation-controller"),
            task: recorder("keptntask-controller"),
            task_definition: recorder("keptntaskdefinition-controller"),
            gate: recorder("portcullis-gate"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(reason: &str) -> Event {
        Event {
            reason: Some(reason.to_owned()),
            ..Event::default()
        }
    }

    /// A sink whose queue nobody drains: what a stalled API server looks like to it.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let (queue, mut waiting) = mpsc::channel(2);
        let dropped = Counter::default();
        let sink = EventSink {
            queue,
            level: EventLevel::All,
            dropped: dropped.clone(),
        };
        for reason in ["A", "B", "C", "D"] {
            sink.push(event(reason));
        }
        assert_eq!(dropped.get(), 2);
        assert_eq!(
            waiting.try_recv().ok().and_then(|e| e.reason),
            Some("A".into())
        );
        assert_eq!(
            waiting.try_recv().ok().and_then(|e| e.reason),
            Some("B".into())
        );
        drop(waiting);
        sink.push(event("E"));
        assert_eq!(dropped.get(), 3, "a stopped sender drops too");
    }

    #[test]
    fn warnings_only_skips_normal_events() {
        assert!(EventLevel::All.creates(false));
        assert!(EventLevel::All.creates(true));
        assert!(!EventLevel::Warnings.creates(false));
        assert!(EventLevel::Warnings.creates(true));
        assert_eq!(EventLevel::default(), EventLevel::All);
    }
}

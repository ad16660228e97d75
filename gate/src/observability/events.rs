//! Kubernetes Events (B §7.1) with Keptn's annotations, each also sent as a CloudEvent
//! (B §7.2): one publisher per reporting controller, as Keptn names them (B §0.4).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::PostParams;
use kube::{Api, Client};
use lifecycle::events::Note;
use lifecycle::execution::CheckEvent;

use super::cloudevents::CloudEventSender;
use operator::api::timed;

/// Publishes events.k8s.io/v1 Events for one reporting controller, with B §7.1's annotations
/// (kube's recorder cannot set annotations), and each also as a CloudEvent (B §7.2) when given a
/// sender. The gate's one publisher: the lifecycle controllers use it too.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    controller: &'static str,
    instance: String,
    /// Also sends each event as a CloudEvent (B §7.2) when set.
    cloud_events: Option<CloudEventSender>,
}

impl EventPublisher {
    /// A publisher reporting as `controller` from `instance`.
    pub fn new(client: &Client, controller: &'static str, instance: String) -> Self {
        EventPublisher {
            client: client.clone(),
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

    /// Publishes `note` about `regarding` in the background: the Event, and the CloudEvent when
    /// configured. Never waits; failures are only logged.
    pub fn send(
        &self,
        note: lifecycle::events::Published<'_>,
        regarding: ObjectReference,
        annotations: BTreeMap<String, String>,
    ) {
        if let Some(sender) = &self.cloud_events {
            sender.send(note, &regarding, &annotations);
        }
        let object = lifecycle::events::published_event(
            &note,
            regarding,
            annotations,
            self.controller,
            &self.instance,
            Timestamp::now(),
        );
        let api: Api<k8s_openapi::api::events::v1::Event> = match &object.metadata.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::default_namespaced(self.client.clone()),
        };
        tokio::spawn(async move {
            let reason = object.reason.clone().unwrap_or_default();
            if let Err(error) = timed(api.create(&PostParams::default(), &object)).await {
                tracing::warn!(%reason, %error, "could not publish event");
            }
        });
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
    /// Publishers reporting from `instance`, each also sending CloudEvents through `cloud_events`
    /// when given.
    pub fn new(client: &Client, instance: &str, cloud_events: Option<CloudEventSender>) -> Self {
        let recorder = |controller: &'static str| {
            let publisher = EventPublisher::new(client, controller, instance.to_owned());
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

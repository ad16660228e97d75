//! CloudEvents (B §7.2): every lifecycle event published as a Kubernetes Event is also POSTed,
//! when KeptnConfig `cloudEventsEndpoint` is set, as an HTTP binary-mode CloudEvent 1.0.
//!
//! [`cloud_event`] is the pure shape; [`CloudEventSender`] sends in the background with a short
//! timeout, so a slow or unreachable receiver never delays or fails a reconcile; failures are
//! only logged and counted (`portcullis_gate_cloudevents_failures_total`).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use prometheus_client::metrics::counter::Counter;
use serde_json::{Value, json};

use lifecycle::config::RuntimeConfig;

/// `ce-source` of every event.
pub const SOURCE: &str = "keptn.sh";
/// A receiver gets this long (connect included) before the event is given up.
const SEND_TIMEOUT: Duration = Duration::from_secs(3);
/// Events in flight at once; beyond that new ones are dropped (and logged) rather than queued
/// without bound behind a slow receiver.
const MAX_IN_FLIGHT: usize = 64;

pub use lifecycle::events::Published;

/// The version an event reports: the workload version for workload-level objects, else the
/// app version, from the event's B §7.1 annotations; empty when neither is known.
pub fn version_of(annotations: &BTreeMap<String, String>) -> String {
    ["workloadVersion", "appVersion"]
        .iter()
        .filter_map(|k| annotations.get(*k))
        .find(|v| !v.is_empty())
        .cloned()
        .unwrap_or_default()
}

/// An HTTP binary-mode CloudEvent: `ce-*` and content-type headers, and the JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudEvent {
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

/// The CloudEvent 1.0 of `note` about `regarding` (B §7.2). `id` must be unique per event;
/// `time` is rendered as RFC 3339.
pub fn cloud_event(
    note: &Published<'_>,
    regarding: &ObjectReference,
    version: &str,
    id: &str,
    time: jiff::Timestamp,
) -> CloudEvent {
    let api_version = regarding.api_version.as_deref().unwrap_or_default();
    let (group, resource_version) = match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    CloudEvent {
        headers: vec![
            ("ce-specversion", "1.0".to_owned()),
            ("ce-id", id.to_owned()),
            ("ce-source", SOURCE.to_owned()),
            ("ce-type", note.event_type()),
            ("ce-time", time.to_string()),
            ("content-type", "application/json".to_owned()),
        ],
        body: json!({
            "message": note.message,
            "type": if note.warning { "Warning" } else { "Normal" },
            "version": version,
            "resource": {
                "group": group,
                "kind": regarding.kind.as_deref().unwrap_or_default(),
                "version": resource_version,
                "name": regarding.name.as_deref().unwrap_or_default(),
                "namespace": regarding.namespace.as_deref().unwrap_or_default(),
            },
        }),
    }
}

/// A random version-4 UUID, the `ce-id` of a sent event.
fn new_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Sends CloudEvents to the endpoint of the current KeptnConfig; cheap to clone.
#[derive(Clone)]
pub struct CloudEventSender {
    /// `None` when no HTTP client could be built; events are then only logged as unsent.
    http: Option<reqwest::Client>,
    config: Arc<RwLock<RuntimeConfig>>,
    in_flight: Arc<tokio::sync::Semaphore>,
    /// Events not delivered: no client, dropped, refused, timed out or answered non-2xx.
    failures: Counter,
}

impl CloudEventSender {
    /// A sender reading the endpoint from `config` at every event, so a KeptnConfig change
    /// applies to the next event. Trusts the system's root certificates for https endpoints.
    pub fn new(config: Arc<RwLock<RuntimeConfig>>) -> Self {
        let builder = || {
            reqwest::Client::builder()
                .timeout(SEND_TIMEOUT)
                .connect_timeout(SEND_TIMEOUT)
        };
        let http = match builder().build() {
            Ok(c) => Some(c),
            Err(error) => {
                // Unreadable system roots: plain http endpoints still work.
                tracing::warn!(%error, "CloudEvents client without system root certificates");
                builder()
                    .tls_built_in_root_certs(false)
                    .build()
                    .map_err(|error| tracing::error!(%error, "no CloudEvents client"))
                    .ok()
            }
        };
        CloudEventSender {
            http,
            config,
            in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            failures: Counter::default(),
        }
    }

    /// The same sender, counting the events it fails to deliver in `failures` (the admin
    /// metrics' counter) instead of a counter of its own.
    pub fn counting_failures(mut self, failures: Counter) -> Self {
        self.failures = failures;
        self
    }

    fn endpoint(&self) -> String {
        match self.config.read() {
            Ok(c) => c.cloud_events_endpoint.clone(),
            Err(poisoned) => poisoned.into_inner().cloud_events_endpoint.clone(),
        }
    }

    /// Sends `note` in the background when an endpoint is configured; never waits, never fails.
    pub fn send(
        &self,
        note: Published<'_>,
        regarding: &ObjectReference,
        annotations: &BTreeMap<String, String>,
    ) {
        let endpoint = self.endpoint();
        if endpoint.is_empty() {
            return;
        }
        let event = cloud_event(
            &note,
            regarding,
            &version_of(annotations),
            &new_id(),
            jiff::Timestamp::now(),
        );
        let ce_type = note.event_type();
        let Some(http) = &self.http else {
            tracing::warn!(%endpoint, %ce_type, "CloudEvent not sent: no HTTP client");
            self.failures.inc();
            return;
        };
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            tracing::warn!(%endpoint, %ce_type, "CloudEvent dropped: too many in flight");
            self.failures.inc();
            return;
        };
        let mut request = http.post(&endpoint);
        for (name, value) in &event.headers {
            request = request.header(*name, value);
        }
        let request = request.body(event.body.to_string());
        let failures = self.failures.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match request.send().await {
                Ok(response) if response.status().is_success() => return,
                Ok(response) => tracing::warn!(
                    %endpoint,
                    %ce_type,
                    status = response.status().as_u16(),
                    "CloudEvent rejected by the receiver"
                ),
                Err(error) => tracing::warn!(
                    %endpoint,
                    %ce_type,
                    error = %error,
                    "could not send CloudEvent"
                ),
            }
            failures.inc();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle::events::Subject;

    fn kav_ref() -> ObjectReference {
        ObjectReference {
            api_version: Some("lifecycle.keptn.sh/v1".into()),
            kind: Some("KeptnAppVersion".into()),
            name: Some("app-1.0-6b86b273".into()),
            namespace: Some("ns".into()),
            uid: Some("u".into()),
            ..Default::default()
        }
    }

    #[test]
    fn b7_2_binary_mode_shape() {
        let subject = Subject {
            namespace: "ns".into(),
            name: "app-1.0-6b86b273".into(),
            version: "1.0".into(),
        };
        let note = subject.normal(
            "AppPreDeployTasks",
            "Started",
            "App Pre-Deployment Tasks",
            "has started",
        );
        let time = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let e = cloud_event(&(&note).into(), &kav_ref(), "1.0", "id-1", time);
        assert_eq!(
            e.headers,
            vec![
                ("ce-specversion", "1.0".to_owned()),
                ("ce-id", "id-1".to_owned()),
                ("ce-source", "keptn.sh".to_owned()),
                ("ce-type", "App Pre-Deployment Tasks.Started".to_owned()),
                ("ce-time", "2023-11-14T22:13:20Z".to_owned()),
                ("content-type", "application/json".to_owned()),
            ]
        );
        assert_eq!(
            e.body,
            json!({
                "message": "App Pre-Deployment Tasks: has started / Namespace: ns, Name: app-1.0-6b86b273, Version: 1.0",
                "type": "Normal",
                "version": "1.0",
                "resource": {
                    "group": "lifecycle.keptn.sh",
                    "kind": "KeptnAppVersion",
                    "version": "v1",
                    "name": "app-1.0-6b86b273",
                    "namespace": "ns",
                },
            })
        );
    }

    #[test]
    fn warnings_core_kinds_and_completion_types() {
        let subject = Subject {
            namespace: "ns".into(),
            name: "w".into(),
            version: String::new(),
        };
        let note = subject.warning(
            "WorkloadCompleted",
            "Failed",
            "Workload Completed",
            "has failed",
        );
        let cm = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            name: Some("cm".into()),
            ..Default::default()
        };
        let e = cloud_event(&(&note).into(), &cm, "", "x", jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(e.headers[3].1, "Workload Completed.Failed");
        assert_eq!(e.body["type"], "Warning");
        assert_eq!(e.body["version"], "");
        assert_eq!(e.body["resource"]["group"], "");
        assert_eq!(e.body["resource"]["version"], "v1");
        assert_eq!(e.body["resource"]["namespace"], "");
    }

    #[test]
    fn event_type_falls_back_to_short_name_and_whole_reason() {
        let p = Published {
            warning: true,
            phase: "ReconcileEvaluation",
            reason: "ReconcileEvaluationFailed",
            message: "evaluation failed\nobjective a: 3 > 2",
        };
        assert_eq!(p.event_type(), "ReconcileEvaluation.Failed");
        let p = Published {
            warning: true,
            phase: "SchedulingGate",
            reason: "SchedulingGateMissing",
            message: "pod admitted without x / Namespace: ns, Name: p",
        };
        assert_eq!(p.event_type(), "SchedulingGate.Missing");
        let p = Published {
            warning: true,
            phase: "Other",
            reason: "Literal",
            message: "Create Task: could not find KeptnTaskDefinition: d / Namespace: ns, Name: t",
        };
        assert_eq!(p.event_type(), "Create Task.Literal");
    }

    #[test]
    fn version_prefers_workload_then_app() {
        let a = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(version_of(&a(&[("appVersion", "1")])), "1");
        assert_eq!(
            version_of(&a(&[("appVersion", "1"), ("workloadVersion", "2")])),
            "2"
        );
        assert_eq!(
            version_of(&a(&[("appVersion", "1"), ("workloadVersion", "")])),
            "1"
        );
        assert_eq!(version_of(&a(&[])), "");
    }

    #[test]
    fn ids_are_uuid_v4_and_distinct() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[tokio::test]
    async fn nothing_is_sent_without_endpoint_and_failures_do_not_block() {
        let config = Arc::new(RwLock::new(RuntimeConfig::default()));
        let sender = CloudEventSender::new(config.clone());
        let note = Subject {
            namespace: "ns".into(),
            name: "n".into(),
            version: String::new(),
        }
        .normal("AppDeploy", "Started", "App Deployment", "has started");
        sender.send((&note).into(), &kav_ref(), &BTreeMap::new());
        assert_eq!(sender.in_flight.available_permits(), MAX_IN_FLIGHT);
        // A closed port: the send is spawned and returns at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        config.write().unwrap().cloud_events_endpoint = format!("http://127.0.0.1:{port}/e");
        sender.send((&note).into(), &kav_ref(), &BTreeMap::new());
        assert_eq!(sender.in_flight.available_permits(), MAX_IN_FLIGHT - 1);
    }

    /// A receiver on a free port answering every request with `status`.
    async fn answering(status: u16) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let code = axum::http::StatusCode::from_u16(status).unwrap();
        let app = axum::Router::new().fallback(move || async move { code });
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://127.0.0.1:{port}/e")
    }

    /// Waits (with a deadline) until no send is in flight any more.
    async fn settled(sender: &CloudEventSender) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while sender.in_flight.available_permits() < MAX_IN_FLIGHT {
            assert!(
                tokio::time::Instant::now() < deadline,
                "sends still in flight"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn dropped_refused_and_rejected_events_are_counted_delivered_ones_not() {
        let config = Arc::new(RwLock::new(RuntimeConfig::default()));
        let failures = Counter::default();
        let sender = CloudEventSender::new(config.clone()).counting_failures(failures.clone());
        let note = Subject {
            namespace: "ns".into(),
            name: "n".into(),
            version: String::new(),
        }
        .normal("AppDeploy", "Started", "App Deployment", "has started");
        let send = || sender.send((&note).into(), &kav_ref(), &BTreeMap::new());
        let endpoint = |e: String| config.write().unwrap().cloud_events_endpoint = e;

        // No endpoint: nothing to deliver, nothing failed.
        send();
        assert_eq!(failures.get(), 0);

        // Delivered (2xx): not a failure.
        endpoint(answering(202).await);
        send();
        settled(&sender).await;
        assert_eq!(failures.get(), 0);

        // Every slot taken: the event is dropped at once.
        let held = sender
            .in_flight
            .clone()
            .try_acquire_many_owned(MAX_IN_FLIGHT as u32)
            .unwrap();
        send();
        assert_eq!(failures.get(), 1);
        drop(held);

        // Answered non-2xx.
        endpoint(answering(503).await);
        send();
        settled(&sender).await;
        assert_eq!(failures.get(), 2);

        // Nobody listening.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        endpoint(format!("http://127.0.0.1:{port}/e"));
        send();
        settled(&sender).await;
        assert_eq!(failures.get(), 3);
    }
}

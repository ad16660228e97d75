//! Events the simulated components record, with the reasons and messages of the real ones, so
//! that `kubectl describe` and `kubectl get events` read like a real cluster's.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::hash::fnv32a;

/// Who records an event (component name, as real clusters report it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    /// `deployment-controller`
    Deployment,
    /// `replicaset-controller`
    ReplicaSet,
    /// `statefulset-controller`
    StatefulSet,
    /// `daemonset-controller`
    DaemonSet,
    /// `job-controller`
    Job,
    /// `cronjob-controller`
    CronJob,
    /// `default-scheduler`
    Scheduler,
    /// `kubelet` on a node
    Kubelet,
}

impl Reporter {
    /// The component name.
    pub fn component(self) -> &'static str {
        match self {
            Reporter::Deployment => "deployment-controller",
            Reporter::ReplicaSet => "replicaset-controller",
            Reporter::StatefulSet => "statefulset-controller",
            Reporter::DaemonSet => "daemonset-controller",
            Reporter::Job => "job-controller",
            Reporter::CronJob => "cronjob-controller",
            Reporter::Scheduler => "default-scheduler",
            Reporter::Kubelet => "kubelet",
        }
    }
}

/// The object an event is about.
pub fn reference(api_version: &str, kind: &str, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

/// A core/v1 Event, named `<object>.<hex>` as client-go names them.
pub fn event(
    involved: ObjectReference,
    reporter: Reporter,
    host: Option<&str>,
    warning: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) -> Event {
    let object = involved.name.clone().unwrap_or_default();
    let seed = format!("{object}/{reason}/{message}/{:?}", involved.field_path);
    let suffix = (now.as_nanosecond() as u128 as u64) ^ u64::from(fnv32a(seed.as_bytes()));
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{object}.{suffix:x}")),
            namespace: involved
                .namespace
                .clone()
                .or_else(|| Some("default".into())),
            ..ObjectMeta::default()
        },
        involved_object: involved,
        reason: Some(reason.to_string()),
        message: Some(message),
        type_: Some(if warning { "Warning" } else { "Normal" }.to_string()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        source: Some(EventSource {
            component: Some(reporter.component().to_string()),
            host: host.map(str::to_string),
        }),
        reporting_component: Some(reporter.component().to_string()),
        reporting_instance: Some(host.unwrap_or(reporter.component()).to_string()),
        ..Event::default()
    }
}

/// Appends a `SuccessfulDelete` event on `owner` for every pod the actions delete.
pub fn record_pod_deletions(
    actions: &mut Vec<super::actions::Action>,
    owner: ObjectReference,
    reporter: Reporter,
    message: impl Fn(&str) -> String,
    now: Timestamp,
) {
    let deleted: Vec<String> = actions
        .iter()
        .filter_map(|a| match a {
            super::actions::Action::Delete {
                kind: super::actions::Kind::Pod,
                name,
                ..
            } => Some(name.clone()),
            _ => None,
        })
        .collect();
    for name in deleted {
        actions.push(super::actions::Action::Event(Box::new(event(
            owner.clone(),
            reporter,
            None,
            false,
            "SuccessfulDelete",
            message(&name),
            now,
        ))));
    }
}

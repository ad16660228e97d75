//! Kubernetes events the lifecycle emits (B §7.1): reason = phase short name + suffix, message =
//! `<phase long name>: <text> / Namespace: <ns>, Name: <name>[, Version: <v>]`. Pure.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use shared::crd::{KeptnApp, KeptnAppVersion, KeptnWorkload, KeptnWorkloadVersion};

/// An event to publish, decided by a planner and sent by the controller shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: String,
    pub message: String,
    pub target: NoteTarget,
    /// Phase short name for the `phase` annotation (the reason without its suffix).
    pub phase: String,
}

/// The object an event is attached to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoteTarget {
    /// The object being reconciled.
    Subject,
    /// A KeptnEvaluation of the reconciled object, by name (same namespace).
    Evaluation(String),
}

/// The identity shown in event messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub namespace: String,
    pub name: String,
    /// Empty when no version is known.
    pub version: String,
}

/// `<long>: <text> / Namespace: <ns>, Name: <name>[, Version: <v>]`, the message of every
/// event (an empty `version` is left out).
pub fn message(long_name: &str, text: &str, namespace: &str, name: &str, version: &str) -> String {
    let mut m = format!("{long_name}: {text} / Namespace: {namespace}, Name: {name}");
    if !version.is_empty() {
        m.push_str(", Version: ");
        m.push_str(version);
    }
    m
}

impl Subject {
    /// [`message`] about this subject.
    pub fn message(&self, long_name: &str, text: &str) -> String {
        message(long_name, text, &self.namespace, &self.name, &self.version)
    }

    /// A Normal event on the subject.
    pub fn normal(&self, short: &str, suffix: &str, long: &str, text: &str) -> Note {
        Note {
            warning: false,
            reason: format!("{short}{suffix}"),
            message: self.message(long, text),
            target: NoteTarget::Subject,
            phase: short.to_owned(),
        }
    }

    /// A Warning event on the subject.
    pub fn warning(&self, short: &str, suffix: &str, long: &str, text: &str) -> Note {
        Note {
            warning: true,
            ..self.normal(short, suffix, long, text)
        }
    }
}

/// What a published event says, in the fields every event of the gate has (lifecycle notes and
/// the task/evaluation controllers' events alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published<'a> {
    pub warning: bool,
    /// Phase short name (the reason without its suffix).
    pub phase: &'a str,
    /// Phase short name + state suffix.
    pub reason: &'a str,
    /// `<phase long name>: <text> / Namespace: <ns>, Name: <name>[, Version: <v>]`.
    pub message: &'a str,
}

impl Published<'_> {
    /// `<phase long name>.<state>`, e.g. `App Pre-Deployment Tasks.Started`.
    ///
    /// The long name is the message's lead-in before `": "` (B §7.1 message format), the state
    /// the reason after the phase short name. Messages outside that format (the gate's own
    /// scheduling-gate reports, evaluation failure details) fall back to the short name; a
    /// reason that does not start with its phase is taken whole as the state.
    pub fn event_type(&self) -> String {
        let state = self
            .reason
            .strip_prefix(self.phase)
            .filter(|s| !s.is_empty())
            .unwrap_or(self.reason);
        let long = self
            .message
            .split_once(" / Namespace: ")
            .and_then(|(head, _)| head.split_once(": "))
            .map(|(lead, _)| lead)
            .filter(|lead| !lead.is_empty() && !lead.contains('\n'))
            .unwrap_or(self.phase);
        format!("{long}.{state}")
    }
}

impl<'a> From<&'a Note> for Published<'a> {
    fn from(n: &'a Note) -> Self {
        Published {
            warning: n.warning,
            phase: &n.phase,
            reason: &n.reason,
            message: &n.message,
        }
    }
}

impl<'a> From<&'a crate::execution::CheckEvent> for Published<'a> {
    fn from(e: &'a crate::execution::CheckEvent) -> Self {
        Published {
            warning: e.warning,
            phase: &e.phase,
            reason: &e.reason,
            message: &e.message,
        }
    }
}

/// Longest `note` the API server accepts on an events.k8s.io Event.
const MAX_NOTE: usize = 1024;

/// The events.k8s.io/v1 Event for a note (B §7.1): `annotations` are the object-specific keys;
/// `namespace`, `name` and `phase` are added here. Names follow `<object>.<hex nanos>`.
pub fn event(
    note: &Note,
    regarding: k8s_openapi::api::core::v1::ObjectReference,
    annotations: std::collections::BTreeMap<String, String>,
    controller: &str,
    instance: &str,
    now: jiff::Timestamp,
) -> k8s_openapi::api::events::v1::Event {
    published_event(
        &note.into(),
        regarding,
        annotations,
        controller,
        instance,
        now,
    )
}

/// [`event`] for any published event.
pub fn published_event(
    note: &Published<'_>,
    regarding: k8s_openapi::api::core::v1::ObjectReference,
    mut annotations: std::collections::BTreeMap<String, String>,
    controller: &str,
    instance: &str,
    now: jiff::Timestamp,
) -> k8s_openapi::api::events::v1::Event {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
    let name = regarding.name.clone().unwrap_or_default();
    let namespace = regarding.namespace.clone();
    annotations.insert("namespace".into(), namespace.clone().unwrap_or_default());
    annotations.insert("name".into(), name.clone());
    annotations.insert("phase".into(), note.phase.to_owned());
    let mut text = note.message.to_owned();
    if text.len() > MAX_NOTE {
        let mut cut = MAX_NOTE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    k8s_openapi::api::events::v1::Event {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace,
            annotations: Some(annotations),
            ..Default::default()
        },
        event_time: Some(MicroTime(now)),
        action: Some(note.reason.to_owned()),
        reason: Some(note.reason.to_owned()),
        note: Some(text),
        regarding: Some(regarding),
        reporting_controller: Some(controller.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        type_: Some(if note.warning { "Warning" } else { "Normal" }.to_owned()),
        ..Default::default()
    }
}

/// The `traceparent` annotation of an object (usually empty).
pub(crate) fn traceparent_of(meta: &ObjectMeta) -> String {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get("traceparent").cloned())
        .unwrap_or_default()
}

fn pairs<const N: usize>(meta: &ObjectMeta, kv: [(&str, &str); N]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = kv
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    m.insert("traceparent".into(), traceparent_of(meta));
    m
}

/// Event annotations of a KeptnAppVersion (B §7.1).
pub fn kav_annotations(k: &KeptnAppVersion) -> BTreeMap<String, String> {
    let name = k.metadata.name.clone().unwrap_or_default();
    pairs(
        &k.metadata,
        [
            ("appName", &k.spec.app_name),
            ("appVersion", &k.spec.app.version),
            ("appVersionName", &name),
        ],
    )
}

/// Event annotations of a KeptnWorkloadVersion (B §7.1).
pub fn kwv_annotations(k: &KeptnWorkloadVersion) -> BTreeMap<String, String> {
    let name = k.metadata.name.clone().unwrap_or_default();
    pairs(
        &k.metadata,
        [
            ("appName", &k.spec.workload.app),
            ("workloadName", &k.spec.workload_name),
            ("workloadVersion", &k.spec.workload.version),
            ("workloadVersionName", &name),
        ],
    )
}

/// Event annotations of a KeptnApp (B §7.1).
pub fn app_annotations(a: &KeptnApp) -> BTreeMap<String, String> {
    let revision = a.spec.revision.to_string();
    let name = a.metadata.name.clone().unwrap_or_default();
    pairs(
        &a.metadata,
        [
            ("appName", &name),
            ("appVersion", &a.spec.version),
            ("appRevision", &revision),
        ],
    )
}

/// Event annotations of a KeptnWorkload (B §7.1).
pub fn workload_annotations(w: &KeptnWorkload) -> BTreeMap<String, String> {
    let name = w.metadata.name.clone().unwrap_or_default();
    pairs(
        &w.metadata,
        [
            ("appName", &w.spec.app),
            ("workloadName", &name),
            ("workloadVersion", &w.spec.version),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_carries_reason_note_and_annotations() {
        let s = Subject {
            namespace: "ns".into(),
            name: "app-1.0-6b86b273".into(),
            version: "1.0".into(),
        };
        let note = s.warning("AppDeploy", "Failed", "App Deployment", "has failed");
        let regarding = k8s_openapi::api::core::v1::ObjectReference {
            kind: Some("KeptnAppVersion".into()),
            name: Some("app-1.0-6b86b273".into()),
            namespace: Some("ns".into()),
            ..Default::default()
        };
        let extra = [("appName".to_owned(), "app".to_owned())].into();
        let now = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        let e = event(
            &note,
            regarding,
            extra,
            "keptnappversion-controller",
            "gate-0",
            now,
        );
        assert_eq!(e.reason.as_deref(), Some("AppDeployFailed"));
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(
            e.note.as_deref(),
            Some(
                "App Deployment: has failed / Namespace: ns, Name: app-1.0-6b86b273, Version: 1.0"
            )
        );
        let a = e.metadata.annotations.unwrap();
        assert_eq!(a["phase"], "AppDeploy");
        assert_eq!(a["namespace"], "ns");
        assert_eq!(a["name"], "app-1.0-6b86b273");
        assert_eq!(a["appName"], "app");
        assert_eq!(
            e.reporting_controller.as_deref(),
            Some("keptnappversion-controller")
        );
        assert!(e.metadata.name.unwrap().starts_with("app-1.0-6b86b273."));
        let long = Note {
            message: "é".repeat(600),
            ..note
        };
        let e = event(&long, Default::default(), Default::default(), "c", "i", now);
        assert!(e.note.unwrap().len() <= 1024);
    }

    #[test]
    fn message_format_with_and_without_version() {
        let s = Subject {
            namespace: "ns".into(),
            name: "waiter-waiter-0.4".into(),
            version: "0.4".into(),
        };
        let n = s.normal(
            "WorkloadPreDeployTasks",
            "Started",
            "Workload Pre-Deployment Tasks",
            "has started",
        );
        assert_eq!(n.reason, "WorkloadPreDeployTasksStarted");
        assert_eq!(
            n.message,
            "Workload Pre-Deployment Tasks: has started / Namespace: ns, Name: waiter-waiter-0.4, Version: 0.4"
        );
        assert!(!n.warning);
        let s = Subject {
            version: String::new(),
            ..s
        };
        assert_eq!(
            s.message("App Deployment", "has failed"),
            "App Deployment: has failed / Namespace: ns, Name: waiter-waiter-0.4"
        );
        assert!(s.warning("A", "Failed", "L", "t").warning);
    }
}

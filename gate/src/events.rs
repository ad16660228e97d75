//! Kubernetes events the lifecycle emits (B §7.1): reason = phase short name + suffix, message =
//! `<phase long name>: <text> / Namespace: <ns>, Name: <name>[, Version: <v>]`. Pure.

/// An event to publish, decided by a planner and sent by the controller shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: String,
    pub message: String,
    pub target: NoteTarget,
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

impl Subject {
    /// `<long>: <text> / Namespace: <ns>, Name: <name>[, Version: <v>]`.
    pub fn message(&self, long_name: &str, text: &str) -> String {
        let mut m = format!(
            "{long_name}: {text} / Namespace: {}, Name: {}",
            self.namespace, self.name
        );
        if !self.version.is_empty() {
            m.push_str(", Version: ");
            m.push_str(&self.version);
        }
        m
    }

    /// A Normal event on the subject.
    pub fn normal(&self, short: &str, suffix: &str, long: &str, text: &str) -> Note {
        Note {
            warning: false,
            reason: format!("{short}{suffix}"),
            message: self.message(long, text),
            target: NoteTarget::Subject,
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

#[cfg(test)]
mod tests {
    use super::*;

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

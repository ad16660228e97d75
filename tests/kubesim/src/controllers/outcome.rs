//! The outcome-control contract: how a test or a demo decides what a simulated container does.
//!
//! Annotations on the pod (put them on a workload's pod template and every pod inherits them):
//!
//! | annotation | value | default |
//! |---|---|---|
//! | `kubesim.portcullis.dev/outcome` | `ready`, `never-ready`, `crash`, `exit:<code>`, `image-pull-error` | `ready` |
//! | `kubesim.portcullis.dev/outcome.<container>` | same, for one container | the pod-wide value |
//! | `kubesim.portcullis.dev/start-delay` | duration (`250ms`, `2s`, `1m`) from binding to running | the kubelet's configured delay |
//! | `kubesim.portcullis.dev/run-for` | duration a `crash`/`exit:<code>` container runs before it exits | `1s` |
//!
//! - `ready`: the container starts and is ready at once (no probes are simulated).
//! - `never-ready`: the container runs but never passes readiness (pod `Running`, `Ready=False`).
//! - `crash`: the container exits with code 1 after `run-for`, every time it starts; the pod's
//!   `restartPolicy` applies (`Always`/`OnFailure`: restarted, `restartCount` grows, the kubelet's
//!   `CrashLoopBackOff` back-off between restarts; `Never`: the pod ends `Failed`).
//! - `exit:<code>`: the container exits with `<code>` after `run-for` (0 = `Completed`); with
//!   `restartPolicy: Never` (Jobs) the pod ends `Succeeded` (0) or `Failed`.
//! - `image-pull-error`: the container never starts (`ErrImagePull`, then `ImagePullBackOff`).
//!
//! An unreadable value is not guessed at: the container is reported as waiting with reason
//! `KubesimInvalidOutcome` and a message naming the annotation.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

/// Annotation with the pod-wide outcome.
pub const OUTCOME: &str = "kubesim.portcullis.dev/outcome";
/// Prefix of the per-container outcome annotation (`…/outcome.<container>`).
pub const OUTCOME_PREFIX: &str = "kubesim.portcullis.dev/outcome.";
/// Annotation with the delay from binding to running.
pub const START_DELAY: &str = "kubesim.portcullis.dev/start-delay";
/// Annotation with how long an exiting container runs.
pub const RUN_FOR: &str = "kubesim.portcullis.dev/run-for";

/// How long an exiting container runs when the pod does not say.
pub const DEFAULT_RUN_FOR: Duration = Duration::from_secs(1);

/// What one container does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// runs and is ready
    Ready,
    /// runs, never ready
    NeverReady,
    /// exits with this code after `run-for`, every time it starts (`crash` = 1)
    Exit(i32),
    /// never starts: the image cannot be pulled
    ImagePullError,
    /// the annotation could not be read
    Invalid(String),
}

/// Parses an outcome value.
pub fn parse_outcome(value: &str) -> Outcome {
    match value.trim() {
        "" | "ready" => Outcome::Ready,
        "never-ready" => Outcome::NeverReady,
        "crash" => Outcome::Exit(1),
        "image-pull-error" => Outcome::ImagePullError,
        other => match other.strip_prefix("exit:").map(|c| c.trim().parse::<i32>()) {
            Some(Ok(code)) if (0..=255).contains(&code) => Outcome::Exit(code),
            _ => Outcome::Invalid(format!(
                "unknown outcome {other:?}: expected ready, never-ready, crash, exit:<0-255> or image-pull-error"
            )),
        },
    }
}

/// Parses a duration such as `250ms`, `2s`, `1.5s`, `1m` or a bare number of seconds.
pub fn parse_duration(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (number, unit) = match value.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => value.split_at(i),
        None => (value, "s"),
    };
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// The outcome of one container of the pod.
pub fn container_outcome(pod: &Pod, container: &str) -> Outcome {
    let specific = format!("{OUTCOME_PREFIX}{container}");
    match annotation(pod, &specific).or_else(|| annotation(pod, OUTCOME)) {
        Some(value) => parse_outcome(value),
        None => Outcome::Ready,
    }
}

/// The delay from binding to running for this pod.
pub fn start_delay(pod: &Pod, default: Duration) -> Result<Duration, String> {
    match annotation(pod, START_DELAY) {
        Some(v) => parse_duration(v).ok_or_else(|| format!("unreadable {START_DELAY}: {v:?}")),
        None => Ok(default),
    }
}

/// How long an exiting container of this pod runs.
pub fn run_for(pod: &Pod) -> Result<Duration, String> {
    match annotation(pod, RUN_FOR) {
        Some(v) => parse_duration(v).ok_or_else(|| format!("unreadable {RUN_FOR}: {v:?}")),
        None => Ok(DEFAULT_RUN_FOR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn annotated(pairs: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                annotations: Some(
                    pairs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    #[test]
    fn outcomes_parse_and_unknown_values_are_reported() {
        assert_eq!(parse_outcome("ready"), Outcome::Ready);
        assert_eq!(parse_outcome("never-ready"), Outcome::NeverReady);
        assert_eq!(parse_outcome("crash"), Outcome::Exit(1));
        assert_eq!(parse_outcome("exit:0"), Outcome::Exit(0));
        assert_eq!(parse_outcome("exit:42"), Outcome::Exit(42));
        assert_eq!(parse_outcome("image-pull-error"), Outcome::ImagePullError);
        assert!(matches!(parse_outcome("exit:x"), Outcome::Invalid(_)));
        assert!(matches!(parse_outcome("explode"), Outcome::Invalid(m) if m.contains("explode")));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5d"), None);
    }

    #[test]
    fn per_container_outcome_overrides_the_pod_wide_one() {
        let pod = annotated(&[
            (OUTCOME, "crash"),
            ("kubesim.portcullis.dev/outcome.sidecar", "ready"),
        ]);
        assert_eq!(container_outcome(&pod, "app"), Outcome::Exit(1));
        assert_eq!(container_outcome(&pod, "sidecar"), Outcome::Ready);
        assert_eq!(container_outcome(&Pod::default(), "app"), Outcome::Ready);
    }
}

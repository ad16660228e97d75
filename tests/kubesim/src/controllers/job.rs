//! The Job controller's decisions (and the TTL-after-finished controller's): pods up to
//! `parallelism`, retries with exponential back-off until `backoffLimit`, the
//! `activeDeadlineSeconds` deadline, the 1.31+ two-step conditions (`SuccessCriteriaMet` then
//! `Complete`, `FailureTarget` then `Failed`, the terminal one once no pod is left running),
//! the status counters, and deletion `ttlSecondsAfterFinished` after the end.
//!
//! Pods are counted from their phases; the real controller's `batch.kubernetes.io/job-tracking`
//! finalizer is not used, so counters never go down but a pod deleted before it was observed
//! finished is not counted. `completionMode: Indexed` is not simulated: such a Job gets a
//! `Failed` condition saying so.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::actions::{Action, Kind, Plan, status_patch_if_changed};
use super::events::{self, Reporter};
use super::pod_state::{self, NameChoice, is_controlled_by, owner_reference, pod_from_template};

/// Reason and message of a Job that used up its retries.
pub const BACKOFF_LIMIT_EXCEEDED: (&str, &str) = (
    "BackoffLimitExceeded",
    "Job has reached the specified backoff limit",
);
/// Reason and message of a Job that ran past `activeDeadlineSeconds`.
pub const DEADLINE_EXCEEDED: (&str, &str) = (
    "DeadlineExceeded",
    "Job was active longer than specified deadline",
);
/// Reason and message of a Job whose pods all succeeded.
pub const COMPLETIONS_REACHED: (&str, &str) = (
    "CompletionsReached",
    "Reached expected number of succeeded pods",
);

/// Labels the API server and the controller put on every Job pod.
pub const JOB_NAME_LABELS: [&str; 2] = ["batch.kubernetes.io/job-name", "job-name"];
/// Labels with the Job's uid.
pub const CONTROLLER_UID_LABELS: [&str; 2] =
    ["batch.kubernetes.io/controller-uid", "controller-uid"];

/// Retry timing: the delay before re-creating a failed pod doubles from `base` up to `max`
/// (10 s and 6 min on a real cluster).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobBackoff {
    /// delay after the first failure
    pub base: Duration,
    /// upper bound of the delay
    pub max: Duration,
}

impl Default for JobBackoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(360),
        }
    }
}

impl JobBackoff {
    /// The delay after `failures` consecutive failures.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.max)
    }
}

fn condition_true<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job has a terminal condition (`Complete` or `Failed`).
pub fn is_finished(job: &Job) -> bool {
    condition_true(job, "Complete").is_some() || condition_true(job, "Failed").is_some()
}

fn new_condition(type_: &str, (reason, message): (&str, &str), now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn finished_at(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max()
}

fn restarts(pod: &Pod) -> i32 {
    let status = pod.status.as_ref();
    status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .chain(
            status
                .and_then(|s| s.init_container_statuses.as_ref())
                .into_iter()
                .flatten(),
        )
        .map(|c| c.restart_count)
        .sum()
}

/// Plans one sync of a Job from the pods of its namespace.
pub fn plan_job(job: &Job, pods: &[Pod], now: Timestamp, backoff: &JobBackoff) -> Plan {
    let mut plan = Plan::default();
    let (Some(name), Some(uid), Some(spec)) = (
        job.metadata.name.as_deref(),
        job.metadata.uid.as_deref(),
        job.spec.as_ref(),
    ) else {
        return plan;
    };
    if job.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    let old = job.status.clone().unwrap_or_default();

    if is_finished(job) {
        plan.merge(plan_ttl(job, &namespace, name, now));
        return plan;
    }

    let owned: Vec<&Pod> = pods
        .iter()
        .filter(|p| is_controlled_by(&p.metadata, uid))
        .collect();
    let active: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| pod_state::is_active(p))
        .collect();
    let terminating = owned
        .iter()
        .filter(|p| pod_state::is_terminating(p) && !pod_state::is_finished(p))
        .count();
    let count_phase = |phase: &str| {
        owned
            .iter()
            .filter(|p| pod_state::phase(p) == phase)
            .count()
    };
    let as_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let succeeded = as_i32(count_phase("Succeeded")).max(old.succeeded.unwrap_or(0));
    let failed = as_i32(count_phase("Failed")).max(old.failed.unwrap_or(0));
    let ready = as_i32(active.iter().filter(|p| pod_state::is_ready(p)).count());

    let mut status = JobStatus {
        active: None,
        ready: Some(ready),
        terminating: Some(as_i32(terminating)),
        succeeded: (succeeded != 0).then_some(succeeded),
        failed: (failed != 0).then_some(failed),
        start_time: old.start_time.clone(),
        completion_time: old.completion_time.clone(),
        conditions: old.conditions.clone(),
        uncounted_terminated_pods: Some(UncountedTerminatedPods::default()),
        completed_indexes: old.completed_indexes.clone(),
        failed_indexes: old.failed_indexes.clone(),
    };
    let delete = |pod: &Pod| Action::Delete {
        kind: Kind::Pod,
        namespace: namespace.clone(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone(),
        grace_period_zero: false,
    };

    if spec.suspend == Some(true) {
        for pod in &active {
            plan.actions.push(delete(pod));
        }
        add_condition(
            &mut status,
            new_condition("Suspended", ("JobSuspended", "Job suspended"), now),
        );
        status.start_time = None;
        plan.actions.extend(status_patch_if_changed(
            Kind::Job,
            &namespace,
            name,
            job.status.as_ref(),
            &status,
        ));
        return plan;
    }
    if let Some(conditions) = status.conditions.as_mut()
        && let Some(suspended) = conditions
            .iter_mut()
            .find(|c| c.type_ == "Suspended" && c.status == "True")
    {
        suspended.status = "False".into();
        suspended.reason = Some("JobResumed".into());
        suspended.message = Some("Job resumed".into());
        suspended.last_probe_time = Some(Time(now));
        suspended.last_transition_time = Some(Time(now));
    }
    let start = match &status.start_time {
        Some(t) => t.0,
        None => {
            status.start_time = Some(Time(now));
            now
        }
    };

    // Decide whether the Job has reached an end (first the interim condition).
    let interim = if let Some(c) = condition_true(job, "FailureTarget") {
        Some((
            "Failed",
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        ))
    } else if let Some(c) = condition_true(job, "SuccessCriteriaMet") {
        Some((
            "Complete",
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        ))
    } else {
        let on_failure = spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            == Some("OnFailure");
        let backoff_limit = spec.backoff_limit.unwrap_or(6);
        let restart_total: i32 = active.iter().map(|p| restarts(p)).sum();
        let past_backoff_on_failure = on_failure
            && if backoff_limit == 0 {
                restart_total > 0
            } else {
                restart_total >= backoff_limit
            };
        let deadline_passed = spec
            .active_deadline_seconds
            .is_some_and(|secs| pod_state::seconds_since(start, now) >= secs);
        let complete = match spec.completions {
            Some(c) => succeeded >= c,
            None => succeeded >= 1 && active.is_empty(),
        };
        let end = if spec.completion_mode.as_deref() == Some("Indexed") {
            Some((
                "FailureTarget",
                "NotSimulated",
                "kubesim does not simulate completionMode Indexed",
            ))
        } else if failed > backoff_limit || past_backoff_on_failure {
            Some((
                "FailureTarget",
                BACKOFF_LIMIT_EXCEEDED.0,
                BACKOFF_LIMIT_EXCEEDED.1,
            ))
        } else if deadline_passed {
            Some(("FailureTarget", DEADLINE_EXCEEDED.0, DEADLINE_EXCEEDED.1))
        } else if complete {
            Some((
                "SuccessCriteriaMet",
                COMPLETIONS_REACHED.0,
                COMPLETIONS_REACHED.1,
            ))
        } else {
            None
        };
        end.map(|(type_, reason, message)| {
            add_condition(&mut status, new_condition(type_, (reason, message), now));
            let terminal = if type_ == "FailureTarget" {
                "Failed"
            } else {
                "Complete"
            };
            (terminal, reason.to_string(), message.to_string())
        })
    };

    if let Some((terminal, reason, message)) = interim {
        // Lingering pods are removed; the terminal condition waits until none is left. On
        // failure the removed pods count as failed, as the real controller counts them.
        for pod in &active {
            plan.actions.push(delete(pod));
        }
        if terminal == "Failed" && !active.is_empty() {
            let total = failed + as_i32(active.len());
            status.failed = Some(total);
        }
        if active.is_empty() && terminating == 0 {
            add_condition(
                &mut status,
                new_condition(terminal, (&reason, &message), now),
            );
            let (warning, event_reason, event_message) = if terminal == "Complete" {
                (false, "Completed".to_string(), "Job completed".to_string())
            } else {
                (true, reason.clone(), message.clone())
            };
            plan.actions.push(Action::Event(Box::new(events::event(
                events::reference("batch/v1", "Job", &job.metadata),
                Reporter::Job,
                None,
                warning,
                &event_reason,
                event_message,
                now,
            ))));
            if terminal == "Complete" {
                status.completion_time = Some(Time(now));
            }
            status.ready = Some(0);
        } else {
            status.active = (!active.is_empty()).then(|| as_i32(active.len()));
        }
        events::record_pod_deletions(
            &mut plan.actions,
            events::reference("batch/v1", "Job", &job.metadata),
            Reporter::Job,
            |pod| format!("Deleted pod: {pod}"),
            now,
        );
        plan.actions.extend(status_patch_if_changed(
            Kind::Job,
            &namespace,
            name,
            job.status.as_ref(),
            &status,
        ));
        return plan;
    }

    // Keep the wanted number of pods running.
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let want = match spec.completions {
        Some(c) => (c - succeeded).clamp(0, parallelism),
        None if succeeded > 0 => as_i32(active.len()),
        None => parallelism,
    };
    let have = as_i32(active.len());
    let mut now_active = have;
    if want > have {
        let consecutive = u32::try_from(failed).unwrap_or(0);
        let last_failure = owned
            .iter()
            .filter(|p| pod_state::phase(p) == "Failed")
            .filter_map(|p| {
                finished_at(p).or_else(|| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
            })
            .max();
        let delay = backoff.delay(consecutive);
        let ready_at = last_failure
            .map(|t| t.as_millisecond() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        match ready_at {
            Some(at) if at > now.as_millisecond() => {
                plan.requeue(Duration::from_millis(
                    u64::try_from(at - now.as_millisecond()).unwrap_or(1),
                ));
            }
            _ => {
                for _ in have..want {
                    plan.actions.push(Action::CreatePod(Box::new(new_pod(job))));
                }
                now_active = want;
            }
        }
    } else if want < have {
        let mut newest: Vec<&Pod> = active.clone();
        newest.sort_by_key(|p| {
            std::cmp::Reverse(
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second()),
            )
        });
        for pod in newest
            .iter()
            .take(usize::try_from(have - want).unwrap_or(0))
        {
            plan.actions.push(delete(pod));
        }
        now_active = want;
    }
    status.active = (now_active != 0).then_some(now_active);

    if let Some(secs) = spec.active_deadline_seconds {
        let remaining = secs - pod_state::seconds_since(start, now);
        plan.requeue(Duration::from_secs(
            u64::try_from(remaining.max(1)).unwrap_or(1),
        ));
    }
    plan.actions.extend(status_patch_if_changed(
        Kind::Job,
        &namespace,
        name,
        job.status.as_ref(),
        &status,
    ));
    plan
}

fn add_condition(status: &mut JobStatus, cond: JobCondition) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == cond.type_) {
        if existing.status != cond.status || existing.reason != cond.reason {
            *existing = cond;
        }
    } else {
        conditions.push(cond);
    }
}

fn plan_ttl(job: &Job, namespace: &str, name: &str, now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return plan;
    };
    let finished = job
        .status
        .as_ref()
        .and_then(|s| s.completion_time.as_ref().map(|t| t.0))
        .or_else(|| {
            condition_true(job, "Failed")
                .or_else(|| condition_true(job, "Complete"))
                .and_then(|c| c.last_transition_time.as_ref().map(|t| t.0))
        })
        .unwrap_or(now);
    let expires = finished.as_second() + i64::from(ttl);
    if now.as_second() >= expires {
        plan.actions.push(Action::Delete {
            kind: Kind::Job,
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: job.metadata.uid.clone(),
            grace_period_zero: false,
        });
    } else {
        let wait = expires - now.as_second();
        plan.requeue(Duration::from_secs(u64::try_from(wait).unwrap_or(1)));
    }
    plan
}

/// Builds a Job pod: `generateName: <job>-`, the job-name and controller-uid labels (new and
/// legacy keys), the controller reference.
pub fn new_pod(job: &Job) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let namespace = job.metadata.namespace.clone().unwrap_or_default();
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = pod_from_template(
        &template,
        &namespace,
        NameChoice::Generate(&name),
        owner_reference("batch/v1", "Job", &job.metadata),
    );
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    for key in JOB_NAME_LABELS {
        labels
            .entry(key.to_string())
            .or_insert_with(|| name.clone());
    }
    for key in CONTROLLER_UID_LABELS {
        labels.entry(key.to_string()).or_insert_with(|| uid.clone());
    }
    pod
}

/// CronJobs are not simulated: each one gets a warning event saying so, once, instead of
/// silently never running.
pub fn plan_cron_job(cron_job: &k8s_openapi::api::batch::v1::CronJob, now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    if cron_job.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    plan.actions.push(Action::Event(Box::new(events::event(
        events::reference("batch/v1", "CronJob", &cron_job.metadata),
        Reporter::CronJob,
        None,
        true,
        "NotSimulated",
        "kubesim does not simulate CronJobs: no Job will be created for this schedule".into(),
        now,
    ))));
    plan
}

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};
use shared::crd::{KeptnState, KeptnTask, KeptnTaskDefinition, KeptnTaskStatus};

use super::{ENDED, STARTED, app_context, definition, images, now, task};
use crate::execution::task::{JOB_NOT_FOUND_REASON, TASK_POLL, TASK_RETRY};
use crate::execution::{
    CheckEvent, JobLookup, RunnerImages, TaskAction, TaskInput, decide_task, job_name_for,
    task_state_from_job,
};

fn earlier() -> Timestamp {
    STARTED.parse().unwrap()
}

fn job(conditions: Value) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pre-hello-12345-11111", "namespace": "app"},
        "status": {"conditions": conditions},
    }))
    .unwrap()
}

fn hello() -> KeptnTaskDefinition {
    definition(
        "hello",
        json!({"deno": {"httpRef": {"url": "https://example.com/f.ts"}}}),
        None,
    )
}

struct Case<'a> {
    task: KeptnTask,
    job: JobLookup<'a>,
    definition: Option<KeptnTaskDefinition>,
    parent: Option<KeptnTaskDefinition>,
    images: RunnerImages,
}

impl<'a> Case<'a> {
    fn new(task: KeptnTask) -> Self {
        Case {
            task,
            job: JobLookup::NotCreated,
            definition: Some(hello()),
            parent: None,
            images: images(),
        }
    }

    fn with_job(mut self, job: JobLookup<'a>) -> Self {
        self.job = job;
        self
    }

    fn with_definition(mut self, definition: Option<KeptnTaskDefinition>) -> Self {
        self.definition = definition;
        self
    }

    fn decide(&self) -> TaskAction {
        decide_task(&TaskInput {
            task: &self.task,
            job: self.job,
            definition: self.definition.as_ref(),
            parent: self.parent.as_ref(),
            images: &self.images,
            now: now(),
        })
    }
}

/// `UpdateStatus`'s fields; `what` names the case in the panic message otherwise.
fn updated(action: TaskAction, what: &str) -> (KeptnTaskStatus, bool, Option<Duration>) {
    match action {
        TaskAction::UpdateStatus {
            status,
            finished,
            requeue,
        } => (status, finished, requeue),
        other => panic!("{what}: expected UpdateStatus, got {other:?}"),
    }
}

/// What `task` reports while its definition is missing.
fn missing_definition(task: KeptnTask) -> (CheckEvent, KeptnTaskStatus) {
    match Case::new(task).with_definition(None).decide() {
        TaskAction::ReportMissingDefinition { event, status } => (event, status),
        other => panic!("expected ReportMissingDefinition, got {other:?}"),
    }
}

/// What the default task reports when definition `hello` has `spec`, of which no Job is built.
fn build_failure(spec: Value) -> (CheckEvent, KeptnTaskStatus) {
    let case = Case::new(task(json!({}))).with_definition(Some(definition("hello", spec, None)));
    match case.decide() {
        TaskAction::ReportBuildFailure { event, status } => (event, status),
        other => panic!("expected ReportBuildFailure, got {other:?}"),
    }
}

fn running_task(extra: Value) -> KeptnTask {
    let mut status = json!({
        "jobName": "pre-hello-12345-11111",
        "status": "Progressing",
        "startTime": STARTED,
    });
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            status[k] = v;
        }
    }
    task(json!({"status": status}))
}

#[test]
fn b5_3_job_conditions_to_task_state() {
    let backoff = json!({"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit"});
    let deadline = json!({"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
        "message": "Job was active longer than specified deadline"});
    type Want<'a> = Option<(KeptnState, &'a str, &'a str)>;
    let rows: Vec<(&str, Value, Want)> = vec![
        ("no_conditions", json!([]), None),
        (
            "complete",
            json!([{"type": "Complete", "status": "True"}]),
            Some((KeptnState::Succeeded, "", "")),
        ),
        (
            "success_criteria_met",
            json!([{"type": "SuccessCriteriaMet", "status": "True"}]),
            Some((KeptnState::Succeeded, "", "")),
        ),
        (
            "complete_wins_over_failed",
            json!([{"type": "FailureTarget", "status": "True"}, {"type": "Complete", "status": "True"}]),
            Some((KeptnState::Succeeded, "", "")),
        ),
        (
            "backoff_limit",
            json!([backoff]),
            Some((
                KeptnState::Failed,
                "Job has reached the specified backoff limit",
                "BackoffLimitExceeded",
            )),
        ),
        (
            "deadline",
            json!([deadline]),
            Some((
                KeptnState::Failed,
                "Job was active longer than specified deadline",
                "DeadlineExceeded",
            )),
        ),
        (
            "failure_target_first_condition_reported",
            json!([{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "first"},
                   {"type": "Failed", "status": "True", "reason": "Other", "message": "second"}]),
            Some((KeptnState::Failed, "first", "BackoffLimitExceeded")),
        ),
        (
            "false_condition_ignored",
            json!([{"type": "Failed", "status": "False"}]),
            None,
        ),
        (
            "suspended_is_running",
            json!([{"type": "Suspended", "status": "True"}]),
            None,
        ),
    ];
    for (name, conditions, want) in rows {
        let got = task_state_from_job(&job(conditions));
        let want = want.map(|(s, m, r)| (s, m.to_owned(), r.to_owned()));
        assert_eq!(got, want, "{name}");
    }
    let no_status: Job = serde_json::from_value(json!({"metadata": {"name": "j"}})).unwrap();
    assert_eq!(task_state_from_job(&no_status), None);
}

#[test]
fn b5_3_new_task_gets_its_job_and_progressing() {
    let case = Case::new(task(json!({})));
    let TaskAction::CreateJob { job, status } = case.decide() else {
        panic!("expected CreateJob, got {:?}", case.decide());
    };
    let want_name = job_name_for(&case.task).unwrap();
    assert_eq!(job.metadata.name.as_deref(), Some(want_name.as_str()));
    assert_eq!(status.job_name, want_name);
    assert_eq!(status.status, KeptnState::Progressing);
    assert_eq!(status.start_time, Some(Time(now())));
    assert_eq!(status.end_time, None);
}

#[test]
fn a15_job_creation_is_repeatable_with_the_same_name() {
    // Two reconciles that both see no Job (e.g. before and after a restart) build the same Job.
    let case = Case::new(task(json!({})));
    assert_eq!(case.decide(), case.decide());
}

#[test]
fn b5_3_missing_definition_event_status_message_and_requeue() {
    let (event, status) = missing_definition(task(json!({})));
    assert!(event.warning);
    assert_eq!(event.reason, "CreateTaskNotFound");
    assert_eq!(
        event.message,
        "Create Task: could not find KeptnTaskDefinition: hello / Namespace: app, Name: pre-hello-12345, Version: 0.4"
    );
    assert_eq!(status.message, "could not find KeptnTaskDefinition: hello");
    assert_eq!(
        status.status,
        KeptnState::Pending,
        "status itself unchanged"
    );
    assert_eq!(status.job_name, "");
    assert_eq!(TASK_RETRY.as_secs(), 10);
}

#[test]
fn b5_3_message_of_a_missing_definition_is_cleared_when_the_job_is_created() {
    let case = Case::new(task(json!({"status": {"status": "Pending",
        "message": "could not find KeptnTaskDefinition: hello", "startTime": STARTED}})));
    let TaskAction::CreateJob { status, .. } = case.decide() else {
        panic!("expected CreateJob");
    };
    assert_eq!(status.message, "");
    assert_eq!(status.start_time, Some(Time(earlier())), "startTime kept");
}

#[test]
fn b5_5_parent_not_found_reports_create_task_not_found() {
    let (event, status) = build_failure(json!({"deno": {"functionRef": {"name": "base"}}}));
    assert_eq!(event.reason, "CreateTaskNotFound");
    // As Keptn: the event names the task's definition, the status message the missing parent.
    assert!(
        event
            .message
            .starts_with("Create Task: could not find KeptnTaskDefinition: hello / "),
        "{}",
        event.message
    );
    assert_eq!(status.message, "could not find KeptnTaskDefinition: base");
}

#[test]
fn b5_5_no_source_reports_create_task_failed_with_the_error_text() {
    let (event, status) = build_failure(json!({"deno": {"inline": {"code": "x"}}}));
    let text = "no ConfigMap specified or HTTP source specified in TaskDefinition / Namespace: app, Name: hello";
    assert_eq!(event.reason, "CreateTaskFailed");
    assert_eq!(
        event.message,
        format!("Create Task: {text} / Namespace: app, Name: pre-hello-12345, Version: 0.4")
    );
    assert_eq!(status.message, text);
}

#[test]
fn b5_3_running_job_waits_and_polls() {
    let running = job(json!([]));
    let case = Case::new(running_task(json!({}))).with_job(JobLookup::Found(&running));
    assert_eq!(case.decide(), TaskAction::Wait(TASK_POLL));
    // A Pending task whose Job runs (its status write was lost) becomes Progressing.
    let case =
        Case::new(running_task(json!({"status": "Pending"}))).with_job(JobLookup::Found(&running));
    let (status, finished, requeue) = updated(case.decide(), "pending task");
    assert_eq!(status.status, KeptnState::Progressing);
    assert!(!finished);
    assert_eq!(requeue, Some(TASK_POLL));
}

#[test]
fn b5_3_finished_job_completes_the_task() {
    let rows = [
        (
            "succeeded",
            json!([{"type": "Complete", "status": "True"}]),
            KeptnState::Succeeded,
            "",
            "",
        ),
        (
            "failed",
            json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit"}]),
            KeptnState::Failed,
            "Job has reached the specified backoff limit",
            "BackoffLimitExceeded",
        ),
    ];
    for (name, conditions, state, message, reason) in rows {
        let j = job(conditions);
        let case = Case::new(running_task(json!({}))).with_job(JobLookup::Found(&j));
        let (status, finished, requeue) = updated(case.decide(), name);
        assert_eq!(status.status, state, "{name}");
        assert_eq!(status.message, message, "{name}");
        assert_eq!(status.reason, reason, "{name}");
        assert_eq!(status.end_time, Some(Time(now())), "{name}");
        assert_eq!(status.start_time, Some(Time(earlier())), "{name}");
        assert!(finished, "{name}");
        assert_eq!(requeue, None, "{name}");
    }
}

#[test]
fn a15_completed_task_is_never_rerun() {
    for state in ["Succeeded", "Failed"] {
        // Recorded end: nothing at all, even though its Job is gone (TTL) and the definition
        // is there.
        let done = task(
            json!({"status": {"status": state, "jobName": "pre-hello-12345-11111",
            "startTime": STARTED, "endTime": ENDED}}),
        );
        let mut case = Case::new(done);
        for job in [JobLookup::NotCreated, JobLookup::Gone] {
            case.job = job;
            assert_eq!(case.decide(), TaskAction::Done, "{state}");
        }
        // No end recorded yet (e.g. a crash in between): the end is written, still no Job.
        let unrecorded =
            task(json!({"status": {"status": state, "jobName": "pre-hello-12345-11111"}}));
        let (status, finished, requeue) = updated(Case::new(unrecorded).decide(), state);
        assert_eq!(status.end_time, Some(Time(now())));
        assert!(finished);
        assert_eq!(requeue, None);
    }
}

#[test]
fn a15_job_gone_before_its_result_was_seen_fails_instead_of_rerunning() {
    let case = Case::new(running_task(json!({}))).with_job(JobLookup::Gone);
    let (status, finished, requeue) = updated(case.decide(), "job gone");
    assert_eq!(status.status, KeptnState::Failed);
    assert_eq!(status.reason, JOB_NOT_FOUND_REASON);
    assert_eq!(
        status.message,
        "Job pre-hello-12345-11111 no longer exists and its result was not recorded; the task is not run again"
    );
    assert_eq!(status.end_time, Some(Time(now())));
    assert!(finished);
    assert_eq!(requeue, None);
}

#[test]
fn b7_1_app_task_events_carry_the_app_version() {
    let app_task = task(json!({"spec": {"taskDefinition": "hello",
        "context": app_context("waiter", "1.2")}}));
    let (event, _) = missing_definition(app_task);
    assert!(
        event.message.ends_with(", Version: 1.2"),
        "{}",
        event.message
    );
}

#[test]
fn b7_1_missing_definition_event_once_per_message() {
    use crate::execution::task::report_is_new;
    let fresh = task(json!({}));
    let (_, status) = missing_definition(fresh.clone());
    assert!(report_is_new(None, &status));
    assert!(report_is_new(fresh.status.as_ref(), &status));
    // The next round (message already written): no new event.
    let waiting = task(json!({"status": serde_json::to_value(&status).unwrap()}));
    let (_, again) = missing_definition(waiting.clone());
    assert!(!report_is_new(waiting.status.as_ref(), &again));
    assert_eq!(again, status, "nothing to write either");
}

//! What one reconcile of a KeptnTask does (B §5.3 with A15).
//!
//! A15 decisions:
//! * A completed task (Succeeded/Failed) is final: it never gets a new Job, whether or not its
//!   Job still exists (Keptn re-runs it when the Job was removed by its TTL, B §5.3 [BUG?]).
//! * The Job name is derived from the task's uid (`job_suffix`), and creation is create-if-absent:
//!   a Job created before a crash but never recorded in `status.jobName` is found again under the
//!   same name and adopted instead of being run a second time.
//! * A task whose recorded Job is gone before its result was seen (the gate was down longer than
//!   the Job's `ttlSecondsAfterFinished`, or someone deleted the Job) is marked **Failed** with
//!   reason `JobNotFound`, not re-run: its Job may well have run to the end, and running a task
//!   twice is what A15 rules out. Re-running it is a user decision (a new app revision).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use shared::crd::{KeptnState, KeptnTask, KeptnTaskDefinition, KeptnTaskStatus};

use super::job::{build_job, job_suffix};
use super::{CheckError, CheckEvent, ObjectId, RunnerImages};

/// B §3.13: a running task looks at its Job again after 10 s (besides the Job's own events).
pub const TASK_POLL: Duration = Duration::from_secs(10);
/// B §3.13: a missing definition or a failed Job creation is retried after 10 s.
pub const TASK_RETRY: Duration = Duration::from_secs(10);

/// `status.reason` of a task whose Job vanished before its result was recorded.
pub const JOB_NOT_FOUND_REASON: &str = "JobNotFound";

/// The task's Job as read from the API server (a direct read, never a cache: "gone" must be true).
#[derive(Clone, Copy, Debug)]
pub enum JobLookup<'a> {
    /// `status.jobName` is empty: no Job was recorded yet.
    NotCreated,
    /// The Job named in `status.jobName`.
    Found(&'a Job),
    /// `status.jobName` names a Job that does not exist.
    Gone,
}

/// Everything one task reconcile decides on.
#[derive(Clone, Copy, Debug)]
pub struct TaskInput<'a> {
    pub task: &'a KeptnTask,
    pub job: JobLookup<'a>,
    /// The task's definition (task namespace first, then the Keptn namespace), if found.
    pub definition: Option<&'a KeptnTaskDefinition>,
    /// The definition the task definition's `functionRef` names, if it has one and it was found.
    pub parent: Option<&'a KeptnTaskDefinition>,
    pub images: &'a RunnerImages,
    pub now: Timestamp,
}

/// What the shell does for a task.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskAction {
    /// The task is completed and its end recorded: nothing to write, no requeue.
    Done,
    /// Create the Job if absent (an existing Job with this name owned by the task is adopted),
    /// then write `status`; requeue after [`TASK_POLL`].
    CreateJob {
        job: Box<Job>,
        status: KeptnTaskStatus,
    },
    /// Write `status`. `finished`: the task has just completed (count it in the metrics).
    UpdateStatus {
        status: KeptnTaskStatus,
        finished: bool,
        requeue: Option<Duration>,
    },
    /// The definition was not found: publish `event` (Warning `CreateTaskNotFound`), write
    /// `status` (its message names the definition), requeue after [`TASK_RETRY`].
    ReportMissingDefinition {
        event: CheckEvent,
        status: KeptnTaskStatus,
    },
    /// The Job could not be built: publish `event`, write `status` (message = the error), requeue
    /// after [`TASK_RETRY`].
    ReportBuildFailure {
        event: CheckEvent,
        status: KeptnTaskStatus,
    },
    /// Nothing changed; look again later.
    Wait(Duration),
}

/// B §5.3 step 4: `Complete` or `SuccessCriteriaMet` -> Succeeded; else `Failed` or
/// `FailureTarget` -> Failed with the message and reason of the **first** condition; otherwise
/// the Job is still running (`None`). Only conditions with status `True` count.
pub fn task_state_from_job(job: &Job) -> Option<(KeptnState, String, String)> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let has = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    if has("Complete") || has("SuccessCriteriaMet") {
        return Some((KeptnState::Succeeded, String::new(), String::new()));
    }
    if has("Failed") || has("FailureTarget") {
        let first = conditions.first()?;
        return Some((
            KeptnState::Failed,
            first.message.clone().unwrap_or_default(),
            first.reason.clone().unwrap_or_default(),
        ));
    }
    None
}

/// The version event messages name: the workload version of a workload task, else the app's.
fn task_version(task: &KeptnTask) -> &str {
    let c = &task.spec.context;
    if c.workload_version.is_empty() {
        &c.app_version
    } else {
        &c.workload_version
    }
}

fn task_id(task: &KeptnTask) -> ObjectId<'_> {
    ObjectId {
        namespace: task.metadata.namespace.as_deref().unwrap_or_default(),
        name: task.metadata.name.as_deref().unwrap_or_default(),
        version: task_version(task),
    }
}

/// B §7.1 `CreateTaskNotFound`.
pub fn definition_not_found_event(task: &KeptnTask, definition: &str) -> CheckEvent {
    CheckEvent::warning(
        "CreateTask",
        "NotFound",
        "Create Task",
        &format!("could not find KeptnTaskDefinition: {definition}"),
        &task_id(task),
    )
}

/// B §7.1 `CreateTaskFailed` with the given text.
pub fn create_failed_event(task: &KeptnTask, text: &str) -> CheckEvent {
    CheckEvent::warning("CreateTask", "Failed", "Create Task", text, &task_id(task))
}

/// B §5.3: the event when the API server refuses the Job ("could not create Job: <task>").
pub fn job_create_failed_event(task: &KeptnTask) -> CheckEvent {
    let name = task.metadata.name.as_deref().unwrap_or_default();
    create_failed_event(task, &format!("could not create Job: {name}"))
}

/// Whether a missing definition or a build failure is news: the first time it is written to the
/// task's status message (or when the message changes). Keptn repeats the event every 10 s and
/// client-go folds the repeats into one Event with a count; publishing once per message gives the
/// same single Event without one object per retry.
pub fn report_is_new(current: Option<&KeptnTaskStatus>, reported: &KeptnTaskStatus) -> bool {
    current.map(|c| c.message.as_str()) != Some(reported.message.as_str())
}

/// One reconcile of a KeptnTask (B §5.3 with A15; see the module docs).
pub fn decide_task(input: &TaskInput<'_>) -> TaskAction {
    let task = input.task;
    let current = task.status.clone().unwrap_or_default();
    let mut status = current.clone();
    if status.start_time.is_none() {
        status.start_time = Some(Time(input.now));
    }

    if status.status.is_completed() {
        if status.end_time.is_some() {
            return TaskAction::Done;
        }
        status.end_time = Some(Time(input.now));
        return TaskAction::UpdateStatus {
            status,
            finished: true,
            requeue: None,
        };
    }

    match input.job {
        JobLookup::Found(job) => {
            match task_state_from_job(job) {
                Some((state, message, reason)) => {
                    status.status = state;
                    if status.status == KeptnState::Failed {
                        status.message = message;
                        status.reason = reason;
                    }
                    status.end_time = Some(Time(input.now));
                    return TaskAction::UpdateStatus {
                        status,
                        finished: true,
                        requeue: None,
                    };
                }
                None => status.status = KeptnState::Progressing,
            }
            if status == current {
                TaskAction::Wait(TASK_POLL)
            } else {
                TaskAction::UpdateStatus {
                    status,
                    finished: false,
                    requeue: Some(TASK_POLL),
                }
            }
        }
        JobLookup::Gone => {
            status.status = KeptnState::Failed;
            status.reason = JOB_NOT_FOUND_REASON.into();
            status.message = format!(
                "Job {} no longer exists and its result was not recorded; the task is not run again",
                status.job_name
            );
            status.end_time = Some(Time(input.now));
            TaskAction::UpdateStatus {
                status,
                finished: true,
                requeue: None,
            }
        }
        JobLookup::NotCreated => {
            let Some(definition) = input.definition else {
                let name = &task.spec.task_definition;
                status.message = format!("could not find KeptnTaskDefinition: {name}");
                return TaskAction::ReportMissingDefinition {
                    event: definition_not_found_event(task, name),
                    status,
                };
            };
            let built = job_suffix(task)
                .and_then(|suffix| build_job(task, definition, input.parent, input.images, suffix));
            match built {
                Ok(job) => {
                    status.job_name = job.metadata.name.clone().unwrap_or_default();
                    status.status = KeptnState::Progressing;
                    status.message.clear();
                    status.reason.clear();
                    TaskAction::CreateJob {
                        job: Box::new(job),
                        status,
                    }
                }
                Err(error) => {
                    status.message = error.to_string();
                    let event = match &error {
                        // Keptn's event names the task's own definition here; the status
                        // message names the missing parent.
                        CheckError::ParentNotFound { .. } => {
                            definition_not_found_event(task, &task.spec.task_definition)
                        }
                        other => create_failed_event(task, &other.to_string()),
                    };
                    TaskAction::ReportBuildFailure { event, status }
                }
            }
        }
    }
}

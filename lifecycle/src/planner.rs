//! What a KeptnAppVersion or KeptnWorkloadVersion does next (B §3.3, §3.4, §3.7, §3.9, §3.10,
//! A16, A19): pure functions from the observed state to a new status and planned actions.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use shared::crd::{
    KeptnAppVersion, KeptnAppVersionStatus, KeptnState, KeptnWorkloadVersion,
    KeptnWorkloadVersionSpec, KeptnWorkloadVersionStatus, WorkloadStatus,
};
use shared::resolve::create_resource_name;

use crate::checks::{CheckPhaseInput, CreateCheck, World, run_check_phase};
use crate::deploy::Observation;
use crate::events::{Note, Subject};
use crate::phase::{COMPLETED, Level, Phase, Stage, VersionStatus, is_done, summarize};
use crate::traces::{self, FinishedSpan, PhaseTraceIds, VersionTrace};

/// Requeue after a phase could not be reconciled (B §3.4).
pub const ERROR_REQUEUE: Duration = Duration::from_secs(5);

/// Something the shell must do besides writing the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create a KeptnTask or KeptnEvaluation unless it exists.
    Create(CreateCheck),
    /// Publish an event.
    Note(Note),
    /// Set the KWV `spec.traceId` (B §3.9 step 0); only ever non-empty.
    SetTraceId(BTreeMap<String, String>),
}

/// The planned next state of a version.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan<S> {
    pub status: S,
    pub actions: Vec<Action>,
    /// Only where a deadline needs a timer (observabilityTimeout) or after an error.
    pub requeue: Option<Duration>,
    /// Spans this transition finishes (only while tracing): exported once the status is written.
    pub spans: Vec<FinishedSpan>,
}

impl<S> Plan<S> {
    /// The events of the plan.
    pub fn notes(&self) -> impl Iterator<Item = &Note> {
        self.actions.iter().filter_map(|a| match a {
            Action::Note(n) => Some(n),
            _ => None,
        })
    }

    /// The checks the plan creates.
    pub fn creates(&self) -> impl Iterator<Item = &CreateCheck> {
        self.actions.iter().filter_map(|a| match a {
            Action::Create(c) => Some(c),
            _ => None,
        })
    }
}

/// Outcome of running one phase function.
enum Step {
    State(KeptnState, Option<Duration>),
    Error(String, Option<Duration>),
}

/// The generic phase handler (B §3.4) over all phases of a version, in order.
#[allow(clippy::too_many_arguments)]
fn drive<S: VersionStatus>(
    level: Level,
    subject: &Subject,
    status: &mut S,
    phases: &[Phase],
    blocking: bool,
    now: Timestamp,
    actions: &mut Vec<Action>,
    mut step: impl FnMut(Phase, &mut S, &mut Vec<Action>) -> Step,
) -> Option<Duration> {
    if matches!(
        status.overall(),
        KeptnState::Failed | KeptnState::Deprecated
    ) {
        return None;
    }
    if status.current_phase() == COMPLETED {
        return None;
    }
    if status.start_time().is_none() {
        status.set_start_time(Time(now));
    }
    for &phase in phases {
        if is_done(phase.stage, status.stage_state(phase.stage), blocking) {
            continue;
        }
        let (short, long) = (phase.short_name(), phase.long_name());
        if status.current_phase() != short {
            actions.push(Action::Note(subject.normal(
                short,
                "Started",
                long,
                "has started",
            )));
            status.set_current_phase(short);
        }
        match step(phase, status, actions) {
            Step::Error(text, requeue) => {
                tracing::debug!(phase = short, error = %text, "phase could not be reconciled");
                actions.push(Action::Note(subject.warning(
                    short,
                    "ReconcileError",
                    long,
                    "could not get reconciled",
                )));
                return requeue;
            }
            Step::State(state, requeue) => {
                if matches!(state, KeptnState::Failed | KeptnState::Deprecated) {
                    if status.end_time().is_none() {
                        status.set_end_time(Time(now));
                    }
                    status.set_overall(KeptnState::Failed);
                    status.deprecate_after(level, phase.stage);
                    actions.push(Action::Note(subject.warning(
                        short,
                        "Failed",
                        long,
                        "has failed",
                    )));
                    actions.push(Action::Note(subject.warning(
                        level.completed_short_name(),
                        "Failed",
                        level.completed_long_name(),
                        "has failed",
                    )));
                    return None;
                }
                if state.is_completed() {
                    actions.push(Action::Note(subject.normal(
                        short,
                        "Finished",
                        long,
                        "has finished",
                    )));
                    continue;
                }
                status.set_overall(KeptnState::Progressing);
                return requeue;
            }
        }
    }
    status.set_current_phase(COMPLETED);
    status.set_overall(KeptnState::Succeeded);
    status.set_end_time(Time(now));
    actions.push(Action::Note(subject.normal(
        level.completed_short_name(),
        "Finished",
        level.completed_long_name(),
        "has finished",
    )));
    None
}

/// Runs a task/evaluation phase and stores its items and state.
#[allow(clippy::too_many_arguments)]
fn check_step<S: VersionStatus>(
    subject: &Subject,
    phase: Phase,
    owner_uid: &str,
    definitions: &[String],
    status: &mut S,
    world: &dyn World,
    blocking: bool,
    now: Timestamp,
    actions: &mut Vec<Action>,
) -> Step {
    let Some(check) = phase.stage.check() else {
        return Step::Error("not a check phase".into(), Some(ERROR_REQUEUE));
    };
    let run = run_check_phase(
        &CheckPhaseInput {
            subject,
            phase,
            check,
            owner_uid,
            definitions,
            previous: status.items(phase.stage),
            blocking,
            now,
        },
        world,
    );
    actions.extend(run.creates.into_iter().map(Action::Create));
    actions.extend(run.notes.into_iter().map(Action::Note));
    status.set_items(phase.stage, run.items);
    status.set_stage_state(phase.stage, run.state.clone());
    Step::State(run.state, None)
}

/// What a KeptnAppVersion reconcile reads besides the object.
pub struct AppVersionInput<'a> {
    pub world: &'a dyn World,
    /// `status.status` of a KeptnWorkloadVersion in the KAV's namespace, by name.
    pub workload_version: &'a dyn Fn(&str) -> Option<KeptnState>,
    pub blocking: bool,
    pub promotion_enabled: bool,
    /// Whether spans are exported: only then are `phaseTraceIDs` written and spans finished.
    pub tracing: bool,
    pub now: Timestamp,
}

/// The next state of a KeptnAppVersion (B §3.3).
pub fn plan_app_version(
    kav: &KeptnAppVersion,
    input: &AppVersionInput<'_>,
) -> Plan<KeptnAppVersionStatus> {
    let mut plan = plan_app_status(kav, input);
    if input.tracing {
        let trace = VersionTrace::app(kav, input.promotion_enabled);
        plan.spans = traces::transition(&trace, kav.status.as_ref(), &mut plan.status, input.now);
        hand_down_traceparents(&mut plan, Level::App);
    }
    plan
}

/// The next status and actions of a KeptnAppVersion, before the trace bookkeeping.
fn plan_app_status(
    kav: &KeptnAppVersion,
    input: &AppVersionInput<'_>,
) -> Plan<KeptnAppVersionStatus> {
    let mut status = kav.status.clone().unwrap_or_default();
    let subject = Subject {
        namespace: kav.metadata.namespace.clone().unwrap_or_default(),
        name: kav.metadata.name.clone().unwrap_or_default(),
        version: kav.spec.app.version.clone(),
    };
    let uid = kav.metadata.uid.clone().unwrap_or_default();
    let spec = &kav.spec;
    let phases = Phase::sequence(Level::App, input.promotion_enabled);
    let mut actions = Vec::new();
    let requeue = drive(
        Level::App,
        &subject,
        &mut status,
        &phases,
        input.blocking,
        input.now,
        &mut actions,
        |phase, status, actions| {
            let list = match phase.stage {
                Stage::PreDeployTasks => &spec.context.pre_deployment_tasks,
                Stage::PreDeployEvaluations => &spec.context.pre_deployment_evaluations,
                Stage::PostDeployTasks => &spec.context.post_deployment_tasks,
                Stage::PostDeployEvaluations => &spec.context.post_deployment_evaluations,
                Stage::Promotion => &spec.context.promotion_tasks,
                Stage::Deploy => {
                    return app_deploy_step(kav, &subject, status, input, actions);
                }
            };
            check_step(
                &subject,
                phase,
                &uid,
                list,
                status,
                input.world,
                input.blocking,
                input.now,
                actions,
            )
        },
    );
    set_conditions(
        &mut status,
        kav.metadata.generation,
        input.now,
        |s: &KeptnAppVersionStatus| (&s.status, &s.current_phase),
        |s| (&mut s.conditions, &mut s.observed_generation),
    );
    Plan {
        status,
        actions,
        requeue,
        spans: Vec::new(),
    }
}

/// AppDeploy (B §3.7): the KAV waits for the KWVs of its workloads; no blocking conversion.
fn app_deploy_step(
    kav: &KeptnAppVersion,
    subject: &Subject,
    status: &mut KeptnAppVersionStatus,
    input: &AppVersionInput<'_>,
    actions: &mut Vec<Action>,
) -> Step {
    let mut list = Vec::with_capacity(kav.spec.app.workloads.len());
    for wl in &kav.spec.app.workloads {
        let name = create_resource_name(&[&kav.spec.app_name, &wl.name, &wl.version]);
        let state = match (input.workload_version)(&name) {
            Some(state) => state,
            None => {
                actions.push(Action::Note(subject.warning(
                    "ReconcileWorkload",
                    "NotFound",
                    "Reconcile Workload",
                    &format!("could not find KeptnWorkloadVersion for KeptnWorkload: {name}"),
                )));
                KeptnState::Pending
            }
        };
        list.push(WorkloadStatus {
            workload: Some(wl.clone()),
            status: state,
        });
    }
    let overall = summarize(list.iter().map(|w| &w.status), list.len());
    status.workload_status = list;
    status.workload_overall_status = overall.clone();
    Step::State(overall, None)
}

/// The KeptnAppVersion a KeptnWorkloadVersion belongs to (B §3.9 step 0): not Deprecated, same
/// app, listing this workload at this version; the newest by creation time.
pub fn find_app_version<'a>(
    spec: &KeptnWorkloadVersionSpec,
    app_versions: impl IntoIterator<Item = &'a KeptnAppVersion>,
) -> Option<&'a KeptnAppVersion> {
    app_versions
        .into_iter()
        .filter(|kav| {
            kav.status.as_ref().map(|s| &s.status) != Some(&KeptnState::Deprecated)
                && kav.spec.app_name == spec.workload.app
                && kav.spec.app.workloads.iter().any(|w| {
                    w.version == spec.workload.version
                        && format!("{}-{}", kav.spec.app_name, w.name) == spec.workload_name
                })
        })
        .max_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        })
}

/// What a KeptnWorkloadVersion reconcile reads besides the object.
pub struct WorkloadVersionInput<'a> {
    pub world: &'a dyn World,
    /// KeptnAppVersions in the KWV's namespace.
    pub app_versions: &'a [&'a KeptnAppVersion],
    /// What the deployment phase sees of `spec.resourceReference`.
    pub resource: Observation,
    pub blocking: bool,
    pub observability_timeout: Duration,
    /// Whether spans are exported: only then are `phaseTraceIDs` written and spans finished.
    pub tracing: bool,
    pub now: Timestamp,
}

/// The next state of a KeptnWorkloadVersion (B §3.9, A16).
pub fn plan_workload_version(
    kwv: &KeptnWorkloadVersion,
    input: &WorkloadVersionInput<'_>,
) -> Plan<KeptnWorkloadVersionStatus> {
    let mut plan = plan_workload_status(kwv, input);
    if input.tracing {
        // A `spec.traceId` the same plan sets already counts.
        let carrier = plan
            .actions
            .iter()
            .find_map(|a| match a {
                Action::SetTraceId(c) => Some(c.clone()),
                _ => None,
            })
            .unwrap_or_else(|| kwv.spec.trace_id.clone());
        let trace = VersionTrace::workload(kwv, &carrier, &plan.status);
        plan.spans = traces::transition(&trace, kwv.status.as_ref(), &mut plan.status, input.now);
        hand_down_traceparents(&mut plan, Level::Workload);
    }
    plan
}

/// Each check the plan creates carries its phase span as `traceparent` (B §5.1, §8.20).
fn hand_down_traceparents<S: PhaseTraceIds>(plan: &mut Plan<S>, level: Level) {
    let ids = plan.status.phase_trace_ids();
    for action in &mut plan.actions {
        if let Action::Create(create) = action {
            create.traceparent = traces::check_traceparent(ids, level, create.check_type);
        }
    }
}

/// The next status and actions of a KeptnWorkloadVersion, before the trace bookkeeping.
fn plan_workload_status(
    kwv: &KeptnWorkloadVersion,
    input: &WorkloadVersionInput<'_>,
) -> Plan<KeptnWorkloadVersionStatus> {
    let mut status = kwv.status.clone().unwrap_or_default();
    let spec = &kwv.spec;
    let subject = Subject {
        namespace: kwv.metadata.namespace.clone().unwrap_or_default(),
        name: kwv.metadata.name.clone().unwrap_or_default(),
        version: spec.workload.version.clone(),
    };
    let mut actions = Vec::new();
    if status.current_phase.is_empty() {
        let long = "App Pre-Deployment Evaluations";
        let short = "AppPreDeployEvaluations";
        let Some(kav) = find_app_version(spec, input.app_versions.iter().copied()) else {
            actions.push(Action::Note(subject.warning(
                short,
                "AppVersionNotFound",
                long,
                "has failed since app could not be found",
            )));
            // Woken by the KeptnAppVersion watch; the status stays empty while waiting.
            return Plan {
                status,
                actions,
                requeue: None,
                spans: Vec::new(),
            };
        };
        let app_eval = kav
            .status
            .as_ref()
            .map(|s| s.pre_deployment_evaluation_status.clone())
            .unwrap_or_default();
        if !app_eval.is_succeeded(input.blocking) {
            if matches!(app_eval, KeptnState::Failed) {
                actions.push(Action::Note(subject.warning(
                    short,
                    "Failed",
                    long,
                    "has failed since app has failed",
                )));
            }
            return Plan {
                status,
                actions,
                requeue: None,
                spans: Vec::new(),
            };
        }
        status.app_context_metadata = kav.spec.context.metadata.clone();
        if spec.trace_id.is_empty() {
            let carrier = kav
                .status
                .as_ref()
                .and_then(|s| s.phase_trace_ids.get("AppDeploy"))
                .map(crate::traces::handed_down)
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| kav.spec.trace_id.clone());
            if !carrier.is_empty() {
                actions.push(Action::SetTraceId(carrier));
            }
        }
    }
    let uid = kwv.metadata.uid.clone().unwrap_or_default();
    let phases = Phase::sequence(Level::Workload, false);
    let requeue = drive(
        Level::Workload,
        &subject,
        &mut status,
        &phases,
        input.blocking,
        input.now,
        &mut actions,
        |phase, status, actions| {
            let list = match phase.stage {
                Stage::PreDeployTasks => &spec.workload.pre_deployment_tasks,
                Stage::PreDeployEvaluations => &spec.workload.pre_deployment_evaluations,
                Stage::PostDeployTasks => &spec.workload.post_deployment_tasks,
                Stage::PostDeployEvaluations => &spec.workload.post_deployment_evaluations,
                Stage::Deploy => return workload_deploy_step(&subject, status, input, actions),
                Stage::Promotion => return Step::State(KeptnState::Succeeded, None),
            };
            check_step(
                &subject,
                phase,
                &uid,
                list,
                status,
                input.world,
                input.blocking,
                input.now,
                actions,
            )
        },
    );
    set_conditions(
        &mut status,
        kwv.metadata.generation,
        input.now,
        |s: &KeptnWorkloadVersionStatus| (&s.status, &s.current_phase),
        |s| (&mut s.conditions, &mut s.observed_generation),
    );
    Plan {
        status,
        actions,
        requeue,
        spans: Vec::new(),
    }
}

/// WorkloadDeploy (B §3.9.1) with `observabilityTimeout` counted from `deploymentStartTime`.
fn workload_deploy_step(
    subject: &Subject,
    status: &mut KeptnWorkloadVersionStatus,
    input: &WorkloadVersionInput<'_>,
    actions: &mut Vec<Action>,
) -> Step {
    let timeout = input.observability_timeout;
    let deadline = status.deployment_start_time.as_ref().map(|t| {
        t.0 + jiff::SignedDuration::try_from(timeout).unwrap_or(jiff::SignedDuration::MAX)
    });
    if let Some(deadline) = deadline
        && input.now > deadline
    {
        status.deployment_status = KeptnState::Failed;
        actions.push(Action::Note(subject.warning(
            "WorkloadDeploy",
            "Finished",
            "Workload Deployment",
            "has reached timeout",
        )));
        return Step::State(KeptnState::Failed, None);
    }
    // Wake up just after the deadline, unless something else does first.
    let until_deadline = |deadline: Timestamp| {
        let left = deadline.duration_since(input.now);
        Some(Duration::try_from(left).unwrap_or_default() + Duration::from_millis(200))
    };
    let running = match &input.resource {
        Observation::Running(running) => *running,
        Observation::Placeholder => return Step::State(KeptnState::Pending, None),
        Observation::Unsupported(kind) => {
            // The KWV spec changes when the reference is fixed, which wakes it up.
            return Step::Error(format!("unsupported Resource Reference: {kind}"), None);
        }
        Observation::Missing(what) => {
            return Step::Error(what.clone(), deadline.and_then(until_deadline));
        }
    };
    let deadline = match deadline {
        Some(d) => d,
        None => {
            status.deployment_start_time = Some(Time(input.now));
            status.deployment_status = KeptnState::Progressing;
            input.now + jiff::SignedDuration::try_from(timeout).unwrap_or(jiff::SignedDuration::MAX)
        }
    };
    if running {
        status.deployment_status = KeptnState::Succeeded;
        return Step::State(KeptnState::Succeeded, None);
    }
    Step::State(status.deployment_status.clone(), until_deadline(deadline))
}

/// A19: `Ready` and `Progressing` conditions for the overall status, with `observedGeneration`.
/// `lastTransitionTime` only moves when a condition's status changes.
fn set_conditions<S>(
    status: &mut S,
    generation: Option<i64>,
    now: Timestamp,
    read: impl Fn(&S) -> (&KeptnState, &String),
    write: impl Fn(&mut S) -> (&mut Vec<Condition>, &mut Option<i64>),
) {
    let (overall, phase) = read(status);
    let (overall, phase) = (overall.clone(), phase.clone());
    let ready = overall == KeptnState::Succeeded;
    let progressing = !overall.is_completed() && !phase.is_empty();
    let phase_reason = if phase.is_empty() {
        "Waiting".to_owned()
    } else {
        phase.clone()
    };
    let wanted = [
        (
            "Ready",
            ready,
            overall.as_str().to_owned(),
            format!("status is {overall}"),
        ),
        (
            "Progressing",
            progressing,
            phase_reason,
            format!(
                "current phase: {}",
                if phase.is_empty() { "-" } else { &phase }
            ),
        ),
    ];
    let (conditions, observed) = write(status);
    for (type_, value, reason, message) in wanted {
        let value = if value { "True" } else { "False" }.to_owned();
        let reason = if reason.is_empty() {
            "Unknown".to_owned()
        } else {
            reason
        };
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != value {
                    c.last_transition_time = Time(now);
                }
                c.status = value;
                c.reason = reason;
                c.message = message;
                c.observed_generation = generation;
            }
            None => conditions.push(Condition {
                type_: type_.to_owned(),
                status: value,
                reason,
                message,
                last_transition_time: Time(now),
                observed_generation: generation,
            }),
        }
    }
    *observed = generation;
}

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use KeptnState::*;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use shared::crd::KeptnAppContextSpec;

use super::*;
use crate::checks::check_suffix;
use crate::checks::tests::{MapWorld, observed};
use crate::fixtures::{self, AppVersionBuilder, WorkloadVersionBuilder, item};

fn t0() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

fn kav(context: KeptnAppContextSpec, workloads: &[(&str, &str)]) -> AppVersionBuilder {
    fixtures::kav("waiter-0.4-6b86b273")
        .context(context)
        .workloads(workloads)
        .in_namespace("ns")
        .uid("kav-uid")
        .generation(1)
}

fn kwv(pre_tasks: &[&str]) -> WorkloadVersionBuilder {
    fixtures::kwv("waiter-waiter-0.4")
        .pre_tasks(pre_tasks)
        .resource("ReplicaSet", "waiter-abc", "rs-uid")
        .metadata(&[("team", "w")])
        .in_namespace("ns")
        .uid("kwv-uid")
        .generation(1)
}

fn app_input<'a>(
    world: &'a MapWorld,
    kwvs: &'a dyn Fn(&str) -> Option<KeptnState>,
    blocking: bool,
    promotion: bool,
) -> AppVersionInput<'a> {
    AppVersionInput {
        world,
        workload_version: kwvs,
        blocking,
        promotion_enabled: promotion,
        tracing: false,
        now: t0(),
    }
}

/// A world where the first pre-deployment task of `definition` owned by `owner` failed.
fn failed_pre_task(definition: &str, owner: &str) -> MapWorld {
    let name = format!("pre-{definition}-{}", check_suffix(owner, definition, 0));
    MapWorld::default()
        .with_task_definition(definition)
        .with_task(&name, observed(owner, Failed))
}

fn reasons<S>(plan: &Plan<S>) -> Vec<String> {
    plan.notes().map(|n| n.reason.clone()).collect()
}

#[test]
fn kav_without_checks_runs_to_app_deploy_and_waits_for_kwv() {
    let world = MapWorld::default();
    let none = |_: &str| None;
    let k = kav(Default::default(), &[("waiter", "0.4")]).build();
    let plan = plan_app_version(&k, &app_input(&world, &none, true, false));
    let s = &plan.status;
    assert_eq!(s.pre_deployment_status, Succeeded);
    assert_eq!(s.pre_deployment_evaluation_status, Succeeded);
    assert_eq!(s.current_phase, "AppDeploy");
    assert_eq!(s.workload_overall_status, Pending);
    assert_eq!(s.status, Progressing);
    assert!(s.start_time.is_some());
    assert_eq!(
        reasons(&plan),
        [
            "AppPreDeployTasksStarted",
            "AppPreDeployTasksFinished",
            "AppPreDeployEvaluationsStarted",
            "AppPreDeployEvaluationsFinished",
            "AppDeployStarted",
            "ReconcileWorkloadNotFound",
        ]
    );
    assert_eq!(plan.requeue, None, "woken by the KWV watch, not by a timer");
    // A19 conditions.
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "False");
    let progressing = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(progressing.status, "True");
    assert_eq!(progressing.reason, "AppDeploy");
    assert_eq!(s.observed_generation, Some(1));
}

#[test]
fn kav_completes_when_workloads_succeed_and_promotion_disabled() {
    let world = MapWorld::default();
    let kwvs = |n: &str| (n == "waiter-waiter-0.4").then_some(Succeeded);
    let k = kav(Default::default(), &[("waiter", "0.4")]).build();
    let plan = plan_app_version(&k, &app_input(&world, &kwvs, true, false));
    let s = &plan.status;
    assert_eq!(s.current_phase, "Completed");
    assert_eq!(s.status, Succeeded);
    assert_eq!(
        s.promotion_status, Pending,
        "promotion disabled leaves it Pending"
    );
    assert!(s.end_time.is_some());
    assert_eq!(s.workload_status.len(), 1);
    assert_eq!(reasons(&plan).last().unwrap(), "AppCompletedFinished");
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True");
    // A completed KAV plans nothing more.
    let mut done = k.clone();
    done.status = Some(plan.status.clone());
    let again = plan_app_version(&done, &app_input(&world, &kwvs, true, false));
    assert!(again.actions.is_empty());
    assert_eq!(again.status, plan.status, "idempotent");
}

#[test]
fn kav_promotion_phase_behind_flag() {
    let world = MapWorld::default().with_task_definition("promote");
    let kwvs = |_: &str| Some(Succeeded);
    let ctx = KeptnAppContextSpec {
        promotion_tasks: vec!["promote".into()],
        ..Default::default()
    };
    let k = kav(ctx, &[("waiter", "0.4")]).build();
    let plan = plan_app_version(&k, &app_input(&world, &kwvs, true, true));
    assert_eq!(plan.status.current_phase, "PromotionTasks");
    let c: Vec<_> = plan.creates().collect();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].check_type, "promotion");
    let off = plan_app_version(&k, &app_input(&world, &kwvs, true, false));
    assert_eq!(off.status.current_phase, "Completed");
    assert_eq!(off.creates().count(), 0);
}

#[test]
fn kav_failed_workload_fails_app_deploy_with_cascade() {
    let world = MapWorld::default();
    let kwvs = |_: &str| Some(Failed);
    let k = kav(Default::default(), &[("waiter", "0.4")]).build();
    let plan = plan_app_version(&k, &app_input(&world, &kwvs, false, false));
    let s = &plan.status;
    assert_eq!(s.status, Failed, "deploy phase has no blocking conversion");
    assert_eq!(s.current_phase, "AppDeploy");
    assert_eq!(s.workload_overall_status, Failed);
    assert_eq!(s.post_deployment_status, Deprecated);
    assert_eq!(s.post_deployment_evaluation_status, Deprecated);
    assert_eq!(s.promotion_status, Deprecated);
    assert!(s.end_time.is_some());
    let r = reasons(&plan);
    assert!(r.ends_with(&["AppDeployFailed".into(), "AppCompletedFailed".into()]));
}

#[test]
fn kav_failed_pre_task_blocking_vs_non_blocking() {
    let world = failed_pre_task("check", "kav-uid");
    let kwvs = |_: &str| None;
    let ctx = KeptnAppContextSpec {
        pre_deployment_tasks: vec!["check".into()],
        ..Default::default()
    };
    let k = kav(ctx, &[("waiter", "0.4")]).build();
    let blocking = plan_app_version(&k, &app_input(&world, &kwvs, true, false));
    assert_eq!(blocking.status.status, Failed);
    assert_eq!(blocking.status.pre_deployment_status, Failed);
    assert_eq!(blocking.status.pre_deployment_evaluation_status, Deprecated);
    assert_eq!(blocking.status.workload_overall_status, Deprecated);
    assert_eq!(blocking.status.current_phase, "AppPreDeployTasks");
    let nb = plan_app_version(&k, &app_input(&world, &kwvs, false, false));
    assert_eq!(nb.status.pre_deployment_status, Warning);
    assert_eq!(nb.status.status, Progressing);
    assert_eq!(nb.status.current_phase, "AppDeploy");
    assert!(reasons(&nb).contains(&"AppPreDeployTasksFinished".to_owned()));
}

#[test]
fn terminal_kav_does_nothing() {
    let world = MapWorld::default();
    let kwvs = |_: &str| None;
    for terminal in [Failed, Deprecated] {
        let k = kav(Default::default(), &[])
            .status(KeptnAppVersionStatus {
                status: terminal.clone(),
                current_phase: "AppPreDeployTasks".into(),
                ..Default::default()
            })
            .build();
        let plan = plan_app_version(&k, &app_input(&world, &kwvs, true, false));
        assert!(plan.actions.is_empty(), "{terminal}");
        assert_eq!(plan.status.current_phase, "AppPreDeployTasks");
    }
}

fn ready_kav() -> KeptnAppVersion {
    let context = KeptnAppContextSpec {
        metadata: [("env".to_owned(), "prod".to_owned())].into(),
        ..Default::default()
    };
    kav(context, &[("waiter", "0.4")])
        .status(KeptnAppVersionStatus {
            pre_deployment_status: Succeeded,
            pre_deployment_evaluation_status: Succeeded,
            current_phase: "AppDeploy".into(),
            ..Default::default()
        })
        .build()
}

/// [`ready_kav`] whose app pre-deployment evaluations are in `state`.
fn kav_with_pre_evaluations(state: KeptnState) -> KeptnAppVersion {
    let mut app = ready_kav();
    app.status
        .as_mut()
        .unwrap()
        .pre_deployment_evaluation_status = state;
    app
}

fn wl_input<'a>(
    world: &'a MapWorld,
    kavs: &'a [&'a KeptnAppVersion],
    resource: Observation,
    blocking: bool,
    now: Timestamp,
) -> WorkloadVersionInput<'a> {
    WorkloadVersionInput {
        world,
        app_versions: kavs,
        resource,
        blocking,
        observability_timeout: Duration::from_secs(300),
        tracing: false,
        now,
    }
}

fn plan_kwv(
    k: &KeptnWorkloadVersion,
    world: &MapWorld,
    kavs: &[&KeptnAppVersion],
    resource: Observation,
    blocking: bool,
    now: Timestamp,
) -> Plan<KeptnWorkloadVersionStatus> {
    plan_workload_version(k, &wl_input(world, kavs, resource, blocking, now))
}

/// The plan of a KWV without checks whose app version is ready, in an empty world.
fn plan_ready(resource: Observation) -> Plan<KeptnWorkloadVersionStatus> {
    let app = ready_kav();
    let k = kwv(&[]).build();
    plan_kwv(&k, &MapWorld::default(), &[&app], resource, true, t0())
}

/// A KWV status persisted while the deployment runs (started at t0).
fn deploying() -> KeptnWorkloadVersionStatus {
    KeptnWorkloadVersionStatus {
        pre_deployment_status: Succeeded,
        pre_deployment_evaluation_status: Succeeded,
        deployment_status: Progressing,
        deployment_start_time: Some(Time(t0())),
        current_phase: "WorkloadDeploy".into(),
        status: Progressing,
        ..Default::default()
    }
}

#[test]
fn kwv_waits_for_app_version_without_status_write() {
    let world = MapWorld::default();
    let k = kwv(&[]).build();
    let plan = plan_kwv(&k, &world, &[], Observation::Running(false), true, t0());
    assert_eq!(plan.status, KeptnWorkloadVersionStatus::default());
    assert_eq!(
        reasons(&plan),
        ["AppPreDeployEvaluationsAppVersionNotFound"]
    );
    assert_eq!(
        plan.notes().next().unwrap().message,
        "App Pre-Deployment Evaluations: has failed since app could not be found / Namespace: ns, Name: waiter-waiter-0.4, Version: 0.4"
    );
}

/// §3.9 step 0 matching rules, one row each.
#[test]
fn kwv_app_version_matching_rows() {
    let k = kwv(&[]).build();
    let good = ready_kav();
    let mut other_app = ready_kav();
    other_app.spec.app_name = "other".into();
    let mut other_version = ready_kav();
    other_version.spec.app.workloads[0].version = "0.3".into();
    let mut other_workload = ready_kav();
    other_workload.spec.app.workloads[0].name = "cook".into();
    let mut deprecated = ready_kav();
    deprecated.status.as_mut().unwrap().status = Deprecated;
    assert!(find_app_version(&k.spec, [&good]).is_some());
    assert!(find_app_version(&k.spec, [&other_app]).is_none());
    assert!(find_app_version(&k.spec, [&other_version]).is_none());
    assert!(find_app_version(&k.spec, [&other_workload]).is_none());
    assert!(find_app_version(&k.spec, [&deprecated]).is_none());
    // Newest by creationTimestamp wins.
    let mut old = ready_kav();
    old.metadata.name = Some("old".into());
    old.metadata.creation_timestamp = Some(Time(t0()));
    let mut new = ready_kav();
    new.metadata.name = Some("new".into());
    new.metadata.creation_timestamp = Some(Time(t0() + SignedDuration::from_secs(10)));
    let found = find_app_version(&k.spec, [&new, &old]).unwrap();
    assert_eq!(found.metadata.name.as_deref(), Some("new"));
}

#[test]
fn kwv_waits_while_app_pre_evaluation_not_succeeded() {
    let world = MapWorld::default();
    let k = kwv(&[]).build();
    let app = kav_with_pre_evaluations(Progressing);
    let plan = plan_kwv(&k, &world, &[&app], Observation::Running(true), true, t0());
    assert_eq!(plan.status, KeptnWorkloadVersionStatus::default());
    assert!(plan.actions.is_empty());
    let app = kav_with_pre_evaluations(Failed);
    let plan = plan_kwv(&k, &world, &[&app], Observation::Running(true), true, t0());
    assert_eq!(reasons(&plan), ["AppPreDeployEvaluationsFailed"]);
}

/// A16: in non-blocking mode a Warning app pre-evaluation lets workloads proceed.
#[test]
fn a16_non_blocking_warning_app_evaluation_proceeds() {
    let world = MapWorld::default();
    let k = kwv(&[]).build();
    let app = kav_with_pre_evaluations(Warning);
    let kavs = [&app];
    let nb = plan_kwv(&k, &world, &kavs, Observation::Running(false), false, t0());
    assert_eq!(nb.status.current_phase, "WorkloadDeploy");
    let b = plan_kwv(&k, &world, &kavs, Observation::Running(false), true, t0());
    assert_eq!(b.status.current_phase, "", "blocking mode keeps waiting");
}

#[test]
fn kwv_runs_to_deploy_copies_metadata_and_sets_timer() {
    let plan = plan_ready(Observation::Running(false));
    let s = &plan.status;
    assert_eq!(
        s.app_context_metadata.get("env").map(String::as_str),
        Some("prod")
    );
    assert_eq!(s.pre_deployment_status, Succeeded);
    assert_eq!(s.pre_deployment_evaluation_status, Succeeded);
    assert_eq!(s.deployment_status, Progressing);
    assert_eq!(s.deployment_start_time, Some(Time(t0())));
    assert_eq!(s.current_phase, "WorkloadDeploy");
    assert_eq!(s.status, Progressing);
    let r = plan.requeue.unwrap();
    assert!(
        r >= Duration::from_secs(300) && r < Duration::from_secs(301),
        "{r:?}"
    );
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::SetTraceId(_))),
        "no tracing"
    );
}

#[test]
fn kwv_deploy_succeeds_then_completes() {
    let plan = plan_ready(Observation::Running(true));
    let s = &plan.status;
    assert_eq!(s.deployment_status, Succeeded);
    assert_eq!(s.current_phase, "Completed");
    assert_eq!(s.status, Succeeded);
    assert_eq!(reasons(&plan).last().unwrap(), "WorkloadCompletedFinished");
    assert_eq!(plan.requeue, None);
}

#[test]
fn kwv_deploy_times_out_after_observability_timeout() {
    let world = MapWorld::default();
    let k = kwv(&[]).status(deploying()).build();
    let kavs: [&KeptnAppVersion; 0] = [];
    // Just before the deadline: still progressing, timer set to the rest.
    let before = t0() + SignedDuration::from_secs(299);
    let plan = plan_kwv(&k, &world, &kavs, Observation::Running(false), true, before);
    assert_eq!(plan.status.deployment_status, Progressing);
    assert!(plan.requeue.unwrap() <= Duration::from_secs(2));
    let after = t0() + SignedDuration::from_secs(301);
    let plan = plan_kwv(&k, &world, &kavs, Observation::Running(false), true, after);
    let s = &plan.status;
    assert_eq!(s.deployment_status, Failed);
    assert_eq!(s.status, Failed);
    assert_eq!(s.post_deployment_status, Deprecated);
    assert_eq!(s.post_deployment_evaluation_status, Deprecated);
    let r = reasons(&plan);
    assert_eq!(
        r,
        [
            "WorkloadDeployFinished",
            "WorkloadDeployFailed",
            "WorkloadCompletedFailed"
        ]
    );
    assert_eq!(
        plan.notes().next().unwrap().message,
        "Workload Deployment: has reached timeout / Namespace: ns, Name: waiter-waiter-0.4, Version: 0.4"
    );
}

#[test]
fn kwv_deploy_placeholder_and_unsupported_and_missing() {
    let p = plan_ready(Observation::Placeholder);
    assert_eq!(
        p.status.deployment_start_time, None,
        "no timer before the real owner is known"
    );
    assert_eq!(p.status.current_phase, "WorkloadDeploy");
    assert_eq!(p.requeue, None);
    let u = plan_ready(Observation::Unsupported("Job".into()));
    assert!(reasons(&u).contains(&"WorkloadDeployReconcileError".to_owned()));
    assert_eq!(
        u.status.deployment_start_time, None,
        "no timeout ever (B §3.9.1)"
    );
    assert_eq!(u.requeue, None);
    let m = plan_ready(Observation::Missing("ReplicaSet x".into()));
    assert!(reasons(&m).contains(&"WorkloadDeployReconcileError".to_owned()));
}

#[test]
fn kwv_pre_task_pending_creates_task_with_deterministic_name() {
    let world = MapWorld::default().with_task_definition("migrate");
    let app = ready_kav();
    let kavs = [&app];
    let k = kwv(&["migrate"]).build();
    let plan = plan_kwv(&k, &world, &kavs, Observation::Running(true), true, t0());
    let creates: Vec<_> = plan.creates().collect();
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0].name,
        format!("pre-migrate-{}", check_suffix("kwv-uid", "migrate", 0))
    );
    assert_eq!(plan.status.current_phase, "WorkloadPreDeployTasks");
    assert_eq!(plan.status.pre_deployment_status, Pending);
    assert_eq!(plan.status.deployment_status, Pending, "deploy not reached");
    assert_eq!(plan.status.pre_deployment_task_status.len(), 1);
}

#[test]
fn kwv_failed_pre_task_cascades_and_blocks() {
    let world = failed_pre_task("migrate", "kwv-uid");
    let app = ready_kav();
    let kavs = [&app];
    let k = kwv(&["migrate"]).build();
    let plan = plan_kwv(&k, &world, &kavs, Observation::Running(true), true, t0());
    let s = &plan.status;
    assert_eq!(s.status, Failed);
    assert_eq!(s.pre_deployment_status, Failed);
    assert_eq!(s.pre_deployment_evaluation_status, Deprecated);
    assert_eq!(s.deployment_status, Deprecated);
    assert_eq!(s.post_deployment_status, Deprecated);
    assert_eq!(s.post_deployment_evaluation_status, Deprecated);
    assert!(reasons(&plan).contains(&"WorkloadPreDeployTasksFailed".to_owned()));
    // Non-blocking: Warning, and the workload continues to deployment.
    let plan = plan_kwv(&k, &world, &kavs, Observation::Running(true), false, t0());
    assert_eq!(plan.status.pre_deployment_status, Warning);
    assert_eq!(plan.status.status, Succeeded);
}

#[test]
fn kwv_trace_id_copied_only_when_present() {
    let world = MapWorld::default();
    let mut app = ready_kav();
    // The KAV's own tracestate bookkeeping is not handed down (Keptn's carrier shape).
    app.status.as_mut().unwrap().phase_trace_ids.insert(
        "AppDeploy".into(),
        BTreeMap::from([
            ("traceparent".into(), "00-x".into()),
            ("tracestate".into(), "portcullis=s:1".into()),
        ]),
    );
    let kavs = [&app];
    let k = kwv(&[]).build();
    let plan = plan_kwv(&k, &world, &kavs, Observation::Running(false), true, t0());
    assert!(plan.actions.contains(&Action::SetTraceId(BTreeMap::from([(
        "traceparent".into(),
        "00-x".into()
    )]))));
}

#[test]
fn kwv_resumes_from_stored_status_after_restart() {
    // A KWV persisted mid-way (pre tasks done, deployment progressing) continues from there.
    let world = MapWorld::default();
    let k = kwv(&["migrate"])
        .status(KeptnWorkloadVersionStatus {
            pre_deployment_task_status: vec![item("migrate", "pre-migrate-12345", Succeeded)],
            ..deploying()
        })
        .build();
    let kavs: [&KeptnAppVersion; 0] = [];
    let plan = plan_kwv(
        &k,
        &world,
        &kavs,
        Observation::Running(true),
        true,
        t0() + SignedDuration::from_secs(5),
    );
    assert_eq!(
        plan.creates().count(),
        0,
        "the finished task never runs again"
    );
    assert_eq!(plan.status.status, Succeeded);
    assert_eq!(plan.status.deployment_start_time, Some(Time(t0())));
}

#[test]
fn nothing_is_stamped_or_finished_while_tracing_is_off() {
    let world = MapWorld::default();
    let none = |_: &str| None;
    let k = kav(Default::default(), &[])
        .status(KeptnAppVersionStatus {
            current_phase: crate::phase::COMPLETED.into(),
            status: Succeeded,
            ..Default::default()
        })
        .build();
    let plan = plan_app_version(&k, &app_input(&world, &none, true, false));
    assert!(plan.spans.is_empty());
    assert!(
        plan.status.phase_trace_ids.is_empty(),
        "no phaseTraceIDs written"
    );
    // The first pass of a new version: tracing off writes no phaseTraceIDs either.
    let fresh = kav(Default::default(), &[("waiter", "0.4")]).build();
    let plan = plan_app_version(&fresh, &app_input(&world, &none, true, false));
    assert!(plan.status.phase_trace_ids.is_empty());
    let traced = plan_app_version(
        &fresh,
        &AppVersionInput {
            tracing: true,
            ..app_input(&world, &none, true, false)
        },
    );
    assert!(
        traced.status.phase_trace_ids.contains_key("AppDeploy"),
        "{:?}",
        traced.status.phase_trace_ids
    );
}

#[test]
fn tasks_get_a_traceparent_only_while_tracing_is_on() {
    let world = MapWorld::default().with_task_definition("migrate");
    let app = ready_kav();
    let kavs = [&app];
    // A phaseTraceIDs entry left from a time when tracing was on (B §8.20).
    let stale = crate::traces::SpanContext {
        trace_id: [1; 16],
        span_id: [2; 8],
    }
    .traceparent();
    let k = kwv(&["migrate"])
        .status(KeptnWorkloadVersionStatus {
            phase_trace_ids: BTreeMap::from([(
                "WorkloadPreDeployTasks".to_owned(),
                BTreeMap::from([
                    (crate::traces::TRACEPARENT.to_owned(), stale.clone()),
                    (
                        crate::traces::TRACESTATE.to_owned(),
                        "portcullis=s:1".to_owned(),
                    ),
                ]),
            )]),
            ..Default::default()
        })
        .build();
    let input = wl_input(&world, &kavs, Observation::Running(true), true, t0());
    let off = plan_workload_version(&k, &input);
    let creates: Vec<_> = off.creates().collect();
    assert_eq!(creates.len(), 1);
    assert_eq!(
        creates[0].traceparent, None,
        "tracing off: nothing handed out"
    );
    let on = plan_workload_version(
        &k,
        &WorkloadVersionInput {
            tracing: true,
            ..input
        },
    );
    let creates: Vec<_> = on.creates().collect();
    assert_eq!(creates[0].traceparent.as_deref(), Some(stale.as_str()));
}

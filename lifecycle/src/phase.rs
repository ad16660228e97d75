//! Phases of app and workload versions and the rules that combine their states (B §3.3, §3.4,
//! §3.9, §3.10, §3.11). Pure: no client, no clock.

use shared::crd::{ItemStatus, KeptnAppVersionStatus, KeptnState, KeptnWorkloadVersionStatus};

/// Whether a phase belongs to a KeptnAppVersion or a KeptnWorkloadVersion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    App,
    Workload,
}

impl Level {
    /// Reason prefix of the completion events (`AppCompletedFinished`, `WorkloadCompletedFailed`).
    pub fn completed_short_name(self) -> &'static str {
        match self {
            Level::App => "AppCompleted",
            Level::Workload => "WorkloadCompleted",
        }
    }

    /// Long name of the completion "phase" used in event messages.
    pub fn completed_long_name(self) -> &'static str {
        match self {
            Level::App => "App Completed",
            Level::Workload => "Workload Completed",
        }
    }
}

/// The step of a lifecycle, common to apps and workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    PreDeployTasks,
    PreDeployEvaluations,
    Deploy,
    PostDeployTasks,
    PostDeployEvaluations,
    Promotion,
}

impl Stage {
    /// All stages in lifecycle order.
    pub const ALL: [Stage; 6] = [
        Stage::PreDeployTasks,
        Stage::PreDeployEvaluations,
        Stage::Deploy,
        Stage::PostDeployTasks,
        Stage::PostDeployEvaluations,
        Stage::Promotion,
    ];

    /// The `checkType` of the tasks or evaluations this stage runs; `None` for the deployment.
    pub fn check(self) -> Option<Check> {
        match self {
            Stage::PreDeployTasks => Some(Check::task("pre")),
            Stage::PreDeployEvaluations => Some(Check::evaluation("pre-eval")),
            Stage::Deploy => None,
            Stage::PostDeployTasks => Some(Check::task("post")),
            Stage::PostDeployEvaluations => Some(Check::evaluation("post-eval")),
            Stage::Promotion => Some(Check::task("promotion")),
        }
    }
}

/// Whether a check phase runs KeptnTasks or KeptnEvaluations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    Task,
    Evaluation,
}

/// What a check phase creates, and with which `checkType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Check {
    pub kind: CheckKind,
    pub check_type: &'static str,
}

impl Check {
    const fn task(check_type: &'static str) -> Self {
        Check {
            kind: CheckKind::Task,
            check_type,
        }
    }

    const fn evaluation(check_type: &'static str) -> Self {
        Check {
            kind: CheckKind::Evaluation,
            check_type,
        }
    }
}

/// A phase of a KeptnAppVersion or KeptnWorkloadVersion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Phase {
    pub level: Level,
    pub stage: Stage,
}

impl Phase {
    pub const fn new(level: Level, stage: Stage) -> Self {
        Phase { level, stage }
    }

    /// The phases a version runs, in order (B §3.3, §3.9): promotion only for apps, and only
    /// when enabled.
    pub fn sequence(level: Level, promotion_enabled: bool) -> Vec<Phase> {
        Stage::ALL
            .into_iter()
            .filter(|s| match s {
                Stage::Promotion => level == Level::App && promotion_enabled,
                _ => true,
            })
            .map(|stage| Phase::new(level, stage))
            .collect()
    }

    /// `status.currentPhase` value and event reason prefix.
    pub fn short_name(self) -> &'static str {
        match (self.level, self.stage) {
            (Level::App, Stage::PreDeployTasks) => "AppPreDeployTasks",
            (Level::App, Stage::PreDeployEvaluations) => "AppPreDeployEvaluations",
            (Level::App, Stage::Deploy) => "AppDeploy",
            (Level::App, Stage::PostDeployTasks) => "AppPostDeployTasks",
            (Level::App, Stage::PostDeployEvaluations) => "AppPostDeployEvaluations",
            (_, Stage::Promotion) => "PromotionTasks",
            (Level::Workload, Stage::PreDeployTasks) => "WorkloadPreDeployTasks",
            (Level::Workload, Stage::PreDeployEvaluations) => "WorkloadPreDeployEvaluations",
            (Level::Workload, Stage::Deploy) => "WorkloadDeploy",
            (Level::Workload, Stage::PostDeployTasks) => "WorkloadPostDeployTasks",
            (Level::Workload, Stage::PostDeployEvaluations) => "WorkloadPostDeployEvaluations",
        }
    }

    /// Long name used in event messages.
    pub fn long_name(self) -> &'static str {
        match (self.level, self.stage) {
            (Level::App, Stage::PreDeployTasks) => "App Pre-Deployment Tasks",
            (Level::App, Stage::PreDeployEvaluations) => "App Pre-Deployment Evaluations",
            (Level::App, Stage::Deploy) => "App Deployment",
            (Level::App, Stage::PostDeployTasks) => "App Post-Deployment Tasks",
            (Level::App, Stage::PostDeployEvaluations) => "App Post-Deployment Evaluations",
            (_, Stage::Promotion) => "Promotion Tasks",
            (Level::Workload, Stage::PreDeployTasks) => "Workload Pre-Deployment Tasks",
            (Level::Workload, Stage::PreDeployEvaluations) => "Workload Pre-Deployment Evaluations",
            (Level::Workload, Stage::Deploy) => "Workload Deployment",
            (Level::Workload, Stage::PostDeployTasks) => "Workload Post-Deployment Tasks",
            (Level::Workload, Stage::PostDeployEvaluations) => {
                "Workload Post-Deployment Evaluations"
            }
        }
    }
}

/// `currentPhase` of a finished version.
pub const COMPLETED: &str = "Completed";

/// Summary of N listed items (B §3.10). `Warning` is counted nowhere, so a list with a Warning
/// item and nothing failed reads `Pending` (counted ≠ N), as in Keptn.
pub fn summarize<'a>(states: impl IntoIterator<Item = &'a KeptnState>, total: usize) -> KeptnState {
    let (mut failed, mut progressing, mut pending, mut unknown, mut counted) = (0, 0, 0, 0, 0);
    for state in states {
        match state {
            KeptnState::Failed | KeptnState::Deprecated => failed += 1,
            KeptnState::Succeeded => {}
            KeptnState::Progressing => progressing += 1,
            KeptnState::Pending => pending += 1,
            KeptnState::Other(s) if s.is_empty() => pending += 1,
            KeptnState::Unknown => unknown += 1,
            KeptnState::Warning | KeptnState::Other(_) => continue,
        }
        counted += 1;
    }
    if failed > 0 {
        KeptnState::Failed
    } else if progressing > 0 {
        KeptnState::Progressing
    } else if pending > 0 {
        KeptnState::Pending
    } else if unknown > 0 {
        KeptnState::Unknown
    } else if counted != total {
        KeptnState::Pending
    } else {
        KeptnState::Succeeded
    }
}

/// Blocking rule (B §3.10): a failed check phase becomes `Warning` when deployments do not block.
pub fn apply_blocking(state: KeptnState, blocking: bool) -> KeptnState {
    if !blocking && state == KeptnState::Failed {
        KeptnState::Warning
    } else {
        state
    }
}

/// Phase skip rule (B §3.10): a check phase is done when Succeeded, or Warning in non-blocking
/// mode; a deployment phase only when Succeeded.
pub fn is_done(stage: Stage, state: &KeptnState, blocking: bool) -> bool {
    match stage {
        Stage::Deploy => *state == KeptnState::Succeeded,
        _ => state.is_succeeded(blocking),
    }
}

/// The stages whose status the deprecation cascade sets to `Deprecated` when `failed` fails
/// (B §3.11): every later stage the level has.
pub fn cascade(level: Level, failed: Stage) -> Vec<Stage> {
    Stage::ALL
        .into_iter()
        .filter(|s| *s > failed && !(level == Level::Workload && *s == Stage::Promotion))
        .collect()
}

/// Uniform access to the phase fields of KeptnAppVersion and KeptnWorkloadVersion statuses.
pub trait VersionStatus {
    fn stage_state(&self, stage: Stage) -> &KeptnState;
    fn set_stage_state(&mut self, stage: Stage, state: KeptnState);
    /// The ItemStatus list of a check stage (empty for the deployment).
    fn items(&self, stage: Stage) -> &[ItemStatus];
    fn set_items(&mut self, stage: Stage, items: Vec<ItemStatus>);
    fn overall(&self) -> &KeptnState;
    fn set_overall(&mut self, state: KeptnState);
    fn current_phase(&self) -> &str;
    fn set_current_phase(&mut self, phase: &str);
    fn start_time(&self) -> Option<&Time>;
    fn set_start_time(&mut self, t: Time);
    fn end_time(&self) -> Option<&Time>;
    fn set_end_time(&mut self, t: Time);

    /// Applies the deprecation cascade for a failed stage (B §3.11).
    fn deprecate_after(&mut self, level: Level, failed: Stage) {
        for stage in cascade(level, failed) {
            self.set_stage_state(stage, KeptnState::Deprecated);
        }
    }
}

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

static NO_STATE: KeptnState = KeptnState::Pending;

impl VersionStatus for KeptnAppVersionStatus {
    fn stage_state(&self, stage: Stage) -> &KeptnState {
        match stage {
            Stage::PreDeployTasks => &self.pre_deployment_status,
            Stage::PreDeployEvaluations => &self.pre_deployment_evaluation_status,
            Stage::Deploy => &self.workload_overall_status,
            Stage::PostDeployTasks => &self.post_deployment_status,
            Stage::PostDeployEvaluations => &self.post_deployment_evaluation_status,
            Stage::Promotion => &self.promotion_status,
        }
    }
    fn set_stage_state(&mut self, stage: Stage, state: KeptnState) {
        let field = match stage {
            Stage::PreDeployTasks => &mut self.pre_deployment_status,
            Stage::PreDeployEvaluations => &mut self.pre_deployment_evaluation_status,
            Stage::Deploy => &mut self.workload_overall_status,
            Stage::PostDeployTasks => &mut self.post_deployment_status,
            Stage::PostDeployEvaluations => &mut self.post_deployment_evaluation_status,
            Stage::Promotion => &mut self.promotion_status,
        };
        *field = state;
    }
    fn items(&self, stage: Stage) -> &[ItemStatus] {
        match stage {
            Stage::PreDeployTasks => &self.pre_deployment_task_status,
            Stage::PreDeployEvaluations => &self.pre_deployment_evaluation_task_status,
            Stage::Deploy => &[],
            Stage::PostDeployTasks => &self.post_deployment_task_status,
            Stage::PostDeployEvaluations => &self.post_deployment_evaluation_task_status,
            Stage::Promotion => &self.promotion_task_status,
        }
    }
    fn set_items(&mut self, stage: Stage, items: Vec<ItemStatus>) {
        match stage {
            Stage::PreDeployTasks => self.pre_deployment_task_status = items,
            Stage::PreDeployEvaluations => self.pre_deployment_evaluation_task_status = items,
            Stage::Deploy => {}
            Stage::PostDeployTasks => self.post_deployment_task_status = items,
            Stage::PostDeployEvaluations => self.post_deployment_evaluation_task_status = items,
            Stage::Promotion => self.promotion_task_status = items,
        }
    }
    fn overall(&self) -> &KeptnState {
        &self.status
    }
    fn set_overall(&mut self, state: KeptnState) {
        self.status = state;
    }
    fn current_phase(&self) -> &str {
        &self.current_phase
    }
    fn set_current_phase(&mut self, phase: &str) {
        phase.clone_into(&mut self.current_phase);
    }
    fn start_time(&self) -> Option<&Time> {
        self.start_time.as_ref()
    }
    fn set_start_time(&mut self, t: Time) {
        self.start_time = Some(t);
    }
    fn end_time(&self) -> Option<&Time> {
        self.end_time.as_ref()
    }
    fn set_end_time(&mut self, t: Time) {
        self.end_time = Some(t);
    }
}

impl VersionStatus for KeptnWorkloadVersionStatus {
    fn stage_state(&self, stage: Stage) -> &KeptnState {
        match stage {
            Stage::PreDeployTasks => &self.pre_deployment_status,
            Stage::PreDeployEvaluations => &self.pre_deployment_evaluation_status,
            Stage::Deploy => &self.deployment_status,
            Stage::PostDeployTasks => &self.post_deployment_status,
            Stage::PostDeployEvaluations => &self.post_deployment_evaluation_status,
            Stage::Promotion => &NO_STATE,
        }
    }
    fn set_stage_state(&mut self, stage: Stage, state: KeptnState) {
        match stage {
            Stage::PreDeployTasks => self.pre_deployment_status = state,
            Stage::PreDeployEvaluations => self.pre_deployment_evaluation_status = state,
            Stage::Deploy => self.deployment_status = state,
            Stage::PostDeployTasks => self.post_deployment_status = state,
            Stage::PostDeployEvaluations => self.post_deployment_evaluation_status = state,
            Stage::Promotion => {}
        }
    }
    fn items(&self, stage: Stage) -> &[ItemStatus] {
        match stage {
            Stage::PreDeployTasks => &self.pre_deployment_task_status,
            Stage::PreDeployEvaluations => &self.pre_deployment_evaluation_task_status,
            Stage::PostDeployTasks => &self.post_deployment_task_status,
            Stage::PostDeployEvaluations => &self.post_deployment_evaluation_task_status,
            Stage::Deploy | Stage::Promotion => &[],
        }
    }
    fn set_items(&mut self, stage: Stage, items: Vec<ItemStatus>) {
        match stage {
            Stage::PreDeployTasks => self.pre_deployment_task_status = items,
            Stage::PreDeployEvaluations => self.pre_deployment_evaluation_task_status = items,
            Stage::PostDeployTasks => self.post_deployment_task_status = items,
            Stage::PostDeployEvaluations => self.post_deployment_evaluation_task_status = items,
            Stage::Deploy | Stage::Promotion => {}
        }
    }
    fn overall(&self) -> &KeptnState {
        &self.status
    }
    fn set_overall(&mut self, state: KeptnState) {
        self.status = state;
    }
    fn current_phase(&self) -> &str {
        &self.current_phase
    }
    fn set_current_phase(&mut self, phase: &str) {
        phase.clone_into(&mut self.current_phase);
    }
    fn start_time(&self) -> Option<&Time> {
        self.start_time.as_ref()
    }
    fn set_start_time(&mut self, t: Time) {
        self.start_time = Some(t);
    }
    fn end_time(&self) -> Option<&Time> {
        self.end_time.as_ref()
    }
    fn set_end_time(&mut self, t: Time) {
        self.end_time = Some(t);
    }
}

/// The whole-object deprecation of a superseded KeptnAppVersion (B §3.2 step 5, last row of
/// §3.11): every state, including `status`, becomes `Deprecated`; `currentPhase` is kept.
pub fn supersede(status: &mut KeptnAppVersionStatus) {
    for stage in Stage::ALL {
        status.set_stage_state(stage, KeptnState::Deprecated);
    }
    status.status = KeptnState::Deprecated;
}

#[cfg(test)]
mod tests {
    use super::*;
    use KeptnState::*;

    fn s(list: &[KeptnState], total: usize) -> KeptnState {
        summarize(list.iter(), total)
    }

    #[test]
    fn summary_rows_b_3_10() {
        let rows: Vec<(&str, Vec<KeptnState>, usize, KeptnState)> = vec![
            ("empty list succeeds", vec![], 0, Succeeded),
            ("all succeeded", vec![Succeeded, Succeeded], 2, Succeeded),
            (
                "any failed fails",
                vec![Succeeded, Failed, Progressing],
                3,
                Failed,
            ),
            (
                "deprecated counts as failed",
                vec![Deprecated, Succeeded],
                2,
                Failed,
            ),
            (
                "progressing before pending",
                vec![Pending, Progressing],
                2,
                Progressing,
            ),
            ("pending before unknown", vec![Unknown, Pending], 2, Pending),
            (
                "empty string is pending",
                vec![Other(String::new())],
                1,
                Pending,
            ),
            ("unknown alone", vec![Unknown, Succeeded], 2, Unknown),
            (
                "missing definition keeps pending",
                vec![Succeeded],
                2,
                Pending,
            ),
            (
                "warning is not counted",
                vec![Warning, Succeeded],
                2,
                Pending,
            ),
            ("failed wins over warning", vec![Warning, Failed], 2, Failed),
        ];
        for (rule, list, total, want) in rows {
            assert_eq!(s(&list, total), want, "{rule}");
        }
    }

    #[test]
    fn blocking_rule() {
        assert_eq!(apply_blocking(Failed, true), Failed);
        assert_eq!(apply_blocking(Failed, false), Warning);
        assert_eq!(apply_blocking(Succeeded, false), Succeeded);
        assert_eq!(apply_blocking(Progressing, false), Progressing);
        assert_eq!(apply_blocking(Pending, false), Pending);
    }

    #[test]
    fn skip_rule() {
        for stage in [
            Stage::PreDeployTasks,
            Stage::PostDeployEvaluations,
            Stage::Promotion,
        ] {
            assert!(is_done(stage, &Succeeded, true));
            assert!(
                !is_done(stage, &Warning, true),
                "blocking never skips Warning"
            );
            assert!(
                is_done(stage, &Warning, false),
                "non-blocking skips Warning"
            );
            assert!(!is_done(stage, &Failed, false));
            assert!(!is_done(stage, &Progressing, true));
        }
        assert!(is_done(Stage::Deploy, &Succeeded, false));
        assert!(
            !is_done(Stage::Deploy, &Warning, false),
            "deploy only when Succeeded"
        );
    }

    /// Every row of the §3.11 table, both levels.
    #[test]
    fn cascade_table_b_3_11() {
        use Stage::*;
        let rows: [(Stage, &[Stage], &[Stage]); 6] = [
            (
                PreDeployTasks,
                &[
                    PreDeployEvaluations,
                    Deploy,
                    PostDeployTasks,
                    PostDeployEvaluations,
                    Promotion,
                ],
                &[
                    PreDeployEvaluations,
                    Deploy,
                    PostDeployTasks,
                    PostDeployEvaluations,
                ],
            ),
            (
                PreDeployEvaluations,
                &[Deploy, PostDeployTasks, PostDeployEvaluations, Promotion],
                &[Deploy, PostDeployTasks, PostDeployEvaluations],
            ),
            (
                Deploy,
                &[PostDeployTasks, PostDeployEvaluations, Promotion],
                &[PostDeployTasks, PostDeployEvaluations],
            ),
            (
                PostDeployTasks,
                &[PostDeployEvaluations, Promotion],
                &[PostDeployEvaluations],
            ),
            (PostDeployEvaluations, &[Promotion], &[]),
            (Promotion, &[], &[]),
        ];
        for (failed, app, workload) in rows {
            assert_eq!(cascade(Level::App, failed), app, "app {failed:?}");
            assert_eq!(
                cascade(Level::Workload, failed),
                workload,
                "workload {failed:?}"
            );
        }
    }

    #[test]
    fn cascade_sets_fields_on_statuses() {
        let mut kwv = KeptnWorkloadVersionStatus::default();
        kwv.deprecate_after(Level::Workload, Stage::PreDeployTasks);
        assert_eq!(kwv.pre_deployment_status, Pending);
        assert_eq!(kwv.pre_deployment_evaluation_status, Deprecated);
        assert_eq!(kwv.deployment_status, Deprecated);
        assert_eq!(kwv.post_deployment_status, Deprecated);
        assert_eq!(kwv.post_deployment_evaluation_status, Deprecated);
        let mut kav = KeptnAppVersionStatus::default();
        kav.deprecate_after(Level::App, Stage::Deploy);
        assert_eq!(kav.workload_overall_status, Pending);
        assert_eq!(kav.post_deployment_status, Deprecated);
        assert_eq!(kav.post_deployment_evaluation_status, Deprecated);
        assert_eq!(kav.promotion_status, Deprecated);
        assert_eq!(kav.pre_deployment_evaluation_status, Pending);
    }

    #[test]
    fn supersede_deprecates_everything_but_keeps_phase() {
        let mut kav = KeptnAppVersionStatus {
            current_phase: "AppDeploy".into(),
            status: Progressing,
            pre_deployment_status: Succeeded,
            ..Default::default()
        };
        supersede(&mut kav);
        assert_eq!(kav.current_phase, "AppDeploy");
        for state in [
            &kav.status,
            &kav.pre_deployment_status,
            &kav.pre_deployment_evaluation_status,
            &kav.workload_overall_status,
            &kav.post_deployment_status,
            &kav.post_deployment_evaluation_status,
            &kav.promotion_status,
        ] {
            assert_eq!(*state, Deprecated);
        }
    }

    #[test]
    fn phase_names() {
        let app = Phase::sequence(Level::App, true);
        let names: Vec<_> = app.iter().map(|p| p.short_name()).collect();
        assert_eq!(
            names,
            [
                "AppPreDeployTasks",
                "AppPreDeployEvaluations",
                "AppDeploy",
                "AppPostDeployTasks",
                "AppPostDeployEvaluations",
                "PromotionTasks"
            ]
        );
        assert_eq!(Phase::sequence(Level::App, false).len(), 5);
        let wl: Vec<_> = Phase::sequence(Level::Workload, true)
            .iter()
            .map(|p| p.long_name())
            .collect();
        assert_eq!(
            wl,
            [
                "Workload Pre-Deployment Tasks",
                "Workload Pre-Deployment Evaluations",
                "Workload Deployment",
                "Workload Post-Deployment Tasks",
                "Workload Post-Deployment Evaluations"
            ]
        );
        assert_eq!(
            Stage::PreDeployEvaluations.check().map(|c| c.check_type),
            Some("pre-eval")
        );
        assert_eq!(
            Stage::Promotion.check().map(|c| c.kind),
            Some(CheckKind::Task)
        );
        assert_eq!(Stage::Deploy.check(), None);
    }
}

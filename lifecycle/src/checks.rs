//! Task and evaluation phases (B §3.5, §3.6) with A15's deterministic names. Pure: the observed
//! KeptnTasks, KeptnEvaluations and definitions come in through [`World`].

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use shared::crd::{ItemStatus, KeptnEvaluationStatus, KeptnState};
use shared::resolve::{evaluation_name, task_name};

use crate::events::{Note, NoteTarget, Subject};
use crate::phase::{Check, CheckKind, Phase, apply_blocking, summarize};

/// A KeptnTask or KeptnEvaluation as the phases see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedCheck {
    /// UID of its controller owner (empty when it has none).
    pub owner_uid: String,
    /// `status.status` of a task, `status.overallStatus` of an evaluation.
    pub state: KeptnState,
    /// For an evaluation: one line per failed objective (B §3.6).
    pub failure_lines: Vec<String>,
}

/// What the phases read from the cluster (through caches in the shell, maps in tests).
pub trait World {
    /// A KeptnTask in the subject's namespace, by name.
    fn task(&self, name: &str) -> Option<ObservedCheck>;
    /// A KeptnEvaluation in the subject's namespace, by name.
    fn evaluation(&self, name: &str) -> Option<ObservedCheck>;
    /// Whether a KeptnTaskDefinition resolves (subject namespace, then the Keptn namespace).
    fn has_task_definition(&self, name: &str) -> bool;
    /// Whether a KeptnEvaluationDefinition resolves (subject namespace, then Keptn namespace).
    fn has_evaluation_definition(&self, name: &str) -> bool;
}

/// A KeptnTask or KeptnEvaluation to create if absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateCheck {
    pub kind: CheckKind,
    pub name: String,
    pub definition: String,
    pub check_type: &'static str,
    /// The phase span the check reports to (`spec.context.metadata.traceparent` of a task);
    /// only while tracing.
    pub traceparent: Option<String>,
}

/// The five digits of A15 (owner uid + definition name, then an attempt number only after a name
/// collision), shared with the task executor so both derive the same names.
pub use shared::checks::check_suffix;

/// `<checkType>-<definition>-<digits>`.
pub fn check_name(check: Check, definition: &str, suffix: u32) -> String {
    match check.kind {
        CheckKind::Task => task_name(check.check_type, definition, suffix),
        CheckKind::Evaluation => evaluation_name(check.check_type, definition, suffix),
    }
}

/// How many alternative names are tried when another owner's object holds ours.
const NAME_ATTEMPTS: u32 = 16;

/// The name for a new check: the first candidate that is free or already ours.
fn choose_name(
    world: &dyn World,
    check: Check,
    owner_uid: &str,
    definition: &str,
) -> Option<String> {
    (0..NAME_ATTEMPTS).find_map(|attempt| {
        let name = check_name(
            check,
            definition,
            check_suffix(owner_uid, definition, attempt),
        );
        match observe(world, check.kind, &name) {
            Some(o) if o.owner_uid != owner_uid => None,
            _ => Some(name),
        }
    })
}

fn observe(world: &dyn World, kind: CheckKind, name: &str) -> Option<ObservedCheck> {
    match kind {
        CheckKind::Task => world.task(name),
        CheckKind::Evaluation => world.evaluation(name),
    }
}

/// Result of one run of a check phase.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckPhaseRun {
    /// Phase state after the blocking rule.
    pub state: KeptnState,
    pub items: Vec<ItemStatus>,
    pub creates: Vec<CreateCheck>,
    pub notes: Vec<Note>,
}

/// Inputs of a check phase besides the world.
pub struct CheckPhaseInput<'a> {
    pub subject: &'a Subject,
    pub phase: Phase,
    pub check: Check,
    pub owner_uid: &'a str,
    /// Definition names as listed in the spec (duplicates kept).
    pub definitions: &'a [String],
    /// The phase's ItemStatus list as stored.
    pub previous: &'a [ItemStatus],
    pub blocking: bool,
    pub now: Timestamp,
}

/// Runs a task or evaluation phase once (B §3.5/§3.6): existing items are kept once completed,
/// new items get a deterministic name and a create-if-absent, items whose definition does not
/// resolve are left out (the phase then stays Pending until it appears).
pub fn run_check_phase(input: &CheckPhaseInput<'_>, world: &dyn World) -> CheckPhaseRun {
    let CheckPhaseInput {
        subject,
        phase,
        check,
        owner_uid,
        ..
    } = *input;
    let mut items: Vec<ItemStatus> = Vec::with_capacity(input.definitions.len());
    let mut creates = Vec::new();
    let mut notes = Vec::new();
    for definition in input.definitions {
        let previous = input
            .previous
            .iter()
            .find(|i| &i.definition_name == definition);
        let mut item = previous.cloned().unwrap_or_else(|| ItemStatus {
            definition_name: definition.clone(),
            ..Default::default()
        });
        let kept = match check.kind {
            CheckKind::Task => matches!(item.status, KeptnState::Succeeded | KeptnState::Failed),
            CheckKind::Evaluation => item.status.is_completed(),
        };
        if kept {
            items.push(item);
            continue;
        }
        if item.name.is_empty() {
            let defined = match check.kind {
                CheckKind::Task => world.has_task_definition(definition),
                CheckKind::Evaluation => world.has_evaluation_definition(definition),
            };
            if !defined {
                continue;
            }
            let Some(name) = choose_name(world, check, owner_uid, definition) else {
                continue;
            };
            item.name = name;
            item.start_time = Some(Time(input.now));
        }
        match observe(world, check.kind, &item.name) {
            Some(o) if o.owner_uid == owner_uid => {
                item.status = o.state;
                if item.status.is_completed() {
                    if item.end_time.is_none() {
                        item.end_time = Some(Time(input.now));
                    }
                    if check.kind == CheckKind::Evaluation && item.status != KeptnState::Succeeded {
                        let mut message = String::from("evaluation failed");
                        for line in &o.failure_lines {
                            message.push('\n');
                            message.push_str(line);
                        }
                        notes.push(Note {
                            warning: true,
                            reason: "ReconcileEvaluationFailed".into(),
                            message,
                            target: NoteTarget::Evaluation(item.name.clone()),
                            phase: "ReconcileEvaluation".into(),
                        });
                    }
                }
            }
            // Absent (not created yet, not in the cache yet, or deleted): create if absent.
            // Creation is idempotent, so a lagging cache never runs a check twice.
            _ => creates.push(CreateCheck {
                kind: check.kind,
                name: item.name.clone(),
                definition: definition.clone(),
                check_type: check.check_type,
                traceparent: None,
            }),
        }
        if previous.map(|p| &p.status) != Some(&item.status) || previous.is_none() {
            let (short, what) = match check.kind {
                CheckKind::Task => ("ReconcileTask", "task"),
                CheckKind::Evaluation => ("ReconcileEvaluation", "evaluation"),
            };
            notes.push(subject.normal(
                short,
                "StatusChanged",
                phase.long_name(),
                &format!("{what} {} is {}", item.name, item.status),
            ));
        }
        items.push(item);
    }
    let state = summarize(items.iter().map(|i| &i.status), input.definitions.len());
    CheckPhaseRun {
        state: apply_blocking(state, input.blocking),
        items,
        creates,
        notes,
    }
}

/// One line per failed objective of an evaluation (B §3.6).
pub fn evaluation_failure_lines(status: &KeptnEvaluationStatus) -> Vec<String> {
    status
        .evaluation_status
        .iter()
        .filter(|(_, item)| item.status != KeptnState::Succeeded)
        .map(|(metric, item)| {
            format!(
                "evaluation of '{metric}' failed with value: '{}' and reason: '{}'",
                item.value, item.message
            )
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::fixtures::item;
    use crate::phase::{Level, Stage};

    /// A world of maps.
    #[derive(Default, Clone)]
    pub(crate) struct MapWorld {
        pub tasks: BTreeMap<String, ObservedCheck>,
        pub evaluations: BTreeMap<String, ObservedCheck>,
        pub task_defs: BTreeSet<String>,
        pub evaluation_defs: BTreeSet<String>,
    }

    impl World for MapWorld {
        fn task(&self, name: &str) -> Option<ObservedCheck> {
            self.tasks.get(name).cloned()
        }
        fn evaluation(&self, name: &str) -> Option<ObservedCheck> {
            self.evaluations.get(name).cloned()
        }
        fn has_task_definition(&self, name: &str) -> bool {
            self.task_defs.contains(name)
        }
        fn has_evaluation_definition(&self, name: &str) -> bool {
            self.evaluation_defs.contains(name)
        }
    }

    impl MapWorld {
        /// With KeptnTaskDefinition `name`.
        pub fn with_task_definition(mut self, name: &str) -> Self {
            self.task_defs.insert(name.into());
            self
        }

        /// With KeptnEvaluationDefinition `name`.
        pub fn with_evaluation_definition(mut self, name: &str) -> Self {
            self.evaluation_defs.insert(name.into());
            self
        }

        /// With KeptnTask `name` as observed.
        pub fn with_task(mut self, name: &str, check: ObservedCheck) -> Self {
            self.tasks.insert(name.into(), check);
            self
        }

        /// With KeptnEvaluation `name` as observed.
        pub fn with_evaluation(mut self, name: &str, check: ObservedCheck) -> Self {
            self.evaluations.insert(name.into(), check);
            self
        }
    }

    pub(crate) fn observed(uid: &str, state: KeptnState) -> ObservedCheck {
        ObservedCheck {
            owner_uid: uid.into(),
            state,
            failure_lines: vec![],
        }
    }

    fn subject() -> Subject {
        Subject {
            namespace: "ns".into(),
            name: "w-w-1".into(),
            version: "1".into(),
        }
    }

    /// The name of candidate `attempt` for a check of `definition` owned by `uid-1`, e.g.
    /// `pre-hello-12345`.
    fn ours(prefix: &str, definition: &str, attempt: u32) -> String {
        format!(
            "{prefix}-{definition}-{}",
            check_suffix("uid-1", definition, attempt)
        )
    }

    fn run(
        world: &MapWorld,
        stage: Stage,
        defs: &[&str],
        previous: &[ItemStatus],
        blocking: bool,
    ) -> CheckPhaseRun {
        let defs: Vec<String> = defs.iter().map(|s| s.to_string()).collect();
        let subject = subject();
        let input = CheckPhaseInput {
            subject: &subject,
            phase: Phase::new(Level::Workload, stage),
            check: stage.check().unwrap(),
            owner_uid: "uid-1",
            definitions: &defs,
            previous,
            blocking,
            now: Timestamp::UNIX_EPOCH,
        };
        run_check_phase(&input, world)
    }

    #[test]
    fn suffix_is_deterministic_and_in_range() {
        let a = check_suffix("uid-1", "hello", 0);
        assert_eq!(a, check_suffix("uid-1", "hello", 0));
        assert_ne!(a, check_suffix("uid-2", "hello", 0));
        assert_ne!(a, check_suffix("uid-1", "hello", 1));
        for i in 0..2000 {
            let s = check_suffix(&format!("u{i}"), "d", 0);
            assert!((10_000..=99_998).contains(&s), "{s}");
        }
        let name = check_name(Stage::PreDeployTasks.check().unwrap(), "hello", a);
        assert_eq!(name, format!("pre-hello-{a}"));
    }

    #[test]
    fn empty_list_succeeds_without_actions() {
        let r = run(&MapWorld::default(), Stage::PreDeployTasks, &[], &[], true);
        assert_eq!(r.state, KeptnState::Succeeded);
        assert!(r.items.is_empty() && r.creates.is_empty() && r.notes.is_empty());
    }

    #[test]
    fn missing_definition_leaves_item_out_and_stays_pending() {
        let r = run(
            &MapWorld::default(),
            Stage::PreDeployTasks,
            &["nope"],
            &[],
            true,
        );
        assert_eq!(r.state, KeptnState::Pending);
        assert!(r.items.is_empty());
        assert!(r.creates.is_empty());
    }

    #[test]
    fn new_item_is_created_with_deterministic_name() {
        let w = MapWorld::default().with_task_definition("hello");
        let r = run(&w, Stage::PreDeployTasks, &["hello"], &[], true);
        let want = ours("pre", "hello", 0);
        assert_eq!(r.items.len(), 1);
        assert_eq!(r.items[0].name, want);
        assert_eq!(r.items[0].status, KeptnState::Pending);
        assert!(r.items[0].start_time.is_some());
        assert_eq!(r.creates.len(), 1);
        assert_eq!(r.creates[0].name, want);
        assert_eq!(r.creates[0].check_type, "pre");
        assert_eq!(r.state, KeptnState::Pending);
        assert_eq!(r.notes[0].reason, "ReconcileTaskStatusChanged");
        // A second run (e.g. after a restart) with the same state asks for the same name again.
        let again = run(&w, Stage::PreDeployTasks, &["hello"], &r.items, true);
        assert_eq!(again.creates[0].name, want);
        assert!(again.notes.is_empty(), "no status change, no event");
    }

    #[test]
    fn existing_task_found_after_restart_is_adopted_not_recreated() {
        let name = ours("pre", "hello", 0);
        let w = MapWorld::default()
            .with_task_definition("hello")
            .with_task(&name, observed("uid-1", KeptnState::Progressing));
        let r = run(&w, Stage::PreDeployTasks, &["hello"], &[], true);
        assert!(r.creates.is_empty());
        assert_eq!(r.items[0].name, name);
        assert_eq!(r.state, KeptnState::Progressing);
    }

    #[test]
    fn foreign_object_with_our_name_moves_to_next_candidate() {
        let w = MapWorld::default().with_task_definition("hello").with_task(
            &ours("pre", "hello", 0),
            observed("other", KeptnState::Succeeded),
        );
        let r = run(&w, Stage::PreDeployTasks, &["hello"], &[], true);
        let second = ours("pre", "hello", 1);
        assert_eq!(r.items[0].name, second);
        assert_eq!(
            r.state,
            KeptnState::Pending,
            "the foreign success is not ours"
        );
    }

    #[test]
    fn completed_items_are_kept_and_summarised() {
        let w = MapWorld::default();
        let prev = vec![
            item("a", "pre-a-10000", KeptnState::Succeeded),
            item("b", "pre-b-10000", KeptnState::Failed),
        ];
        let r = run(&w, Stage::PreDeployTasks, &["a", "b"], &prev, true);
        assert_eq!(r.items, prev);
        assert_eq!(r.state, KeptnState::Failed);
        assert!(r.creates.is_empty());
        let r = run(&w, Stage::PreDeployTasks, &["a", "b"], &prev, false);
        assert_eq!(
            r.state,
            KeptnState::Warning,
            "non-blocking turns Failed into Warning"
        );
    }

    #[test]
    fn task_progress_is_read_from_the_task() {
        let name = ours("post", "a", 0);
        let prev = vec![item("a", &name, KeptnState::Progressing)];
        let w = MapWorld::default()
            .with_task_definition("a")
            .with_task(&name, observed("uid-1", KeptnState::Succeeded));
        let r = run(&w, Stage::PostDeployTasks, &["a"], &prev, true);
        assert_eq!(r.state, KeptnState::Succeeded);
        assert!(r.items[0].end_time.is_some());
        assert_eq!(r.notes.len(), 1);
    }

    #[test]
    fn failed_evaluation_emits_event_on_the_evaluation() {
        let name = ours("pre-eval", "e", 0);
        let mut o = observed("uid-1", KeptnState::Failed);
        o.failure_lines = vec!["evaluation of 'm' failed with value: '5' and reason: 'x'".into()];
        let w = MapWorld::default()
            .with_evaluation_definition("e")
            .with_evaluation(&name, o);
        let r = run(&w, Stage::PreDeployEvaluations, &["e"], &[], true);
        assert_eq!(r.state, KeptnState::Failed);
        let ev = r
            .notes
            .iter()
            .find(|n| n.reason == "ReconcileEvaluationFailed")
            .unwrap();
        assert_eq!(ev.target, NoteTarget::Evaluation(name));
        assert!(ev.warning);
        assert_eq!(
            ev.message,
            "evaluation failed\nevaluation of 'm' failed with value: '5' and reason: 'x'"
        );
    }

    #[test]
    fn evaluation_warning_item_is_kept_but_task_progressing_is_not() {
        let w = MapWorld::default();
        let prev = vec![item("e", "pre-eval-e-10000", KeptnState::Warning)];
        let r = run(&w, Stage::PreDeployEvaluations, &["e"], &prev, true);
        assert!(r.creates.is_empty(), "completed evaluation kept");
        assert_eq!(r.state, KeptnState::Pending, "Warning is not counted");
    }

    #[test]
    fn deleted_task_is_recreated_under_the_same_name() {
        let w = MapWorld::default();
        let prev = vec![item("a", "pre-a-12345", KeptnState::Progressing)];
        let r = run(&w, Stage::PreDeployTasks, &["a"], &prev, true);
        assert_eq!(r.creates.len(), 1);
        assert_eq!(r.creates[0].name, "pre-a-12345");
        assert_eq!(r.state, KeptnState::Progressing);
    }

    #[test]
    fn failure_lines_from_evaluation_status() {
        use shared::crd::EvaluationStatusItem;
        let mut status = KeptnEvaluationStatus::default();
        status.evaluation_status.insert(
            "cpu".into(),
            EvaluationStatusItem {
                value: "9".into(),
                status: KeptnState::Failed,
                message: "value '9' did not meet objective '<5'".into(),
                last_updated: None,
            },
        );
        status.evaluation_status.insert(
            "mem".into(),
            EvaluationStatusItem {
                value: "1".into(),
                status: KeptnState::Succeeded,
                message: String::new(),
                last_updated: None,
            },
        );
        assert_eq!(
            evaluation_failure_lines(&status),
            [
                "evaluation of 'cpu' failed with value: '9' and reason: 'value '9' did not meet objective '<5''"
            ]
        );
    }
}

//! Unit tests of the pure decisions, plus a tiny in-memory "world" that applies plans with a fake
//! clock so whole rollouts can be simulated step by step without a server.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, ReplicaSet, RollingUpdateDeployment,
    StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, Node, Pod, PodSchedulingGate, PodSpec, PodTemplateSpec, Taint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::actions::{Action, Kind, Plan};
use super::deployment::{self, fenceposts, plan_deployment, resolve_int_or_percent};
use super::job::{JobBackoff, plan_job};
use super::kubelet::{KubeletTiming, plan_kubelet};
use super::pod_state::{self, controller_ref};
use super::replicaset::plan_replica_set;
use super::scheduler::plan_scheduling;
use super::statefulset::plan_stateful_set;
use super::{daemonset, nodes, outcome};

// ---------------------------------------------------------------------------------------------
// Fixtures

fn t0() -> Timestamp {
    Timestamp::from_second(1_800_000_000).expect("valid timestamp")
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(t0().as_second() + seconds).expect("valid timestamp")
}

fn labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app".to_string(), app.to_string())])
}

fn template(app: &str, image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(app)),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some(image.into()),
                ..Container::default()
            }],
            restart_policy: Some("Always".into()),
            ..PodSpec::default()
        }),
    }
}

fn meta(name: &str, uid: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("ns".into()),
        uid: Some(uid.into()),
        generation: Some(1),
        creation_timestamp: Some(Time(t0())),
        ..ObjectMeta::default()
    }
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: meta(name, &format!("uid-{name}")),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(name)),
                ..LabelSelector::default()
            },
            template: template(name, image),
            progress_deadline_seconds: Some(600),
            revision_history_limit: Some(10),
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

fn with_strategy(mut d: Deployment, surge: IntOrString, unavailable: IntOrString) -> Deployment {
    if let Some(spec) = d.spec.as_mut() {
        spec.strategy = Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(surge),
                max_unavailable: Some(unavailable),
            }),
        });
    }
    d
}

fn node(index: usize) -> Node {
    let mut n = nodes::node(index, t0());
    n.metadata.uid = Some(format!("node-uid-{index}"));
    n
}

fn ready_pod(name: &str, owner: &ObjectMeta, kind: &str, ready: bool) -> Pod {
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            creation_timestamp: Some(Time(t0())),
            owner_references: Some(vec![pod_state::owner_reference("apps/v1", kind, owner)]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some("kubesim-node-1".into()),
            ..PodSpec::default()
        }),
        status: None,
    };
    set_ready(&mut pod, ready);
    pod
}

/// A pod of a ReplicaSet, labelled from its template as the controller makes them.
fn rs_pod(name: &str, rs: &ReplicaSet, ready: bool) -> Pod {
    let mut pod = ready_pod(name, &rs.metadata, "ReplicaSet", ready);
    pod.metadata.labels = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone());
    pod
}

fn set_ready(pod: &mut Pod, ready: bool) {
    pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(t0())),
            ..Default::default()
        }]),
        ..Default::default()
    });
}

// ---------------------------------------------------------------------------------------------
// A tiny world: applies plans to in-memory objects, as the API server would.

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn patched<T: serde::Serialize + serde::de::DeserializeOwned>(obj: &T, patch: &Value) -> T {
    let mut value = serde_json::to_value(obj).expect("serialises");
    if !value.is_object() {
        value = Value::Object(Default::default());
    }
    merge(&mut value, patch);
    serde_json::from_value(value).expect("patched object deserialises")
}

#[derive(Default)]
struct World {
    deployments: Vec<Deployment>,
    replica_sets: Vec<ReplicaSet>,
    stateful_sets: Vec<StatefulSet>,
    daemon_sets: Vec<DaemonSet>,
    jobs: Vec<Job>,
    pods: Vec<Pod>,
    nodes: Vec<Node>,
    counter: u64,
    now: Timestamp,
}

impl World {
    fn new(node_count: usize) -> Self {
        Self {
            nodes: (1..=node_count).map(node).collect(),
            now: t0(),
            ..Self::default()
        }
    }

    fn next_id(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn stamp(&mut self, meta: &mut ObjectMeta) {
        let id = self.next_id();
        if meta.name.is_none() {
            let prefix = meta.generate_name.clone().unwrap_or_default();
            meta.name = Some(format!("{prefix}{id:05}"));
        }
        meta.uid = Some(format!("uid-{id}"));
        meta.creation_timestamp = Some(Time(self.now));
        meta.generation = Some(1);
    }

    fn apply(&mut self, plan: &Plan) {
        for action in &plan.actions {
            match action {
                Action::CreatePod(pod) => {
                    let mut pod = pod.as_ref().clone();
                    if pod.metadata.name.is_some()
                        && self
                            .pods
                            .iter()
                            .any(|p| p.metadata.name == pod.metadata.name)
                    {
                        continue;
                    }
                    self.stamp(&mut pod.metadata);
                    self.pods.push(pod);
                }
                Action::CreateReplicaSet(rs) => {
                    let mut rs = rs.as_ref().clone();
                    self.stamp(&mut rs.metadata);
                    self.replica_sets.push(rs);
                }
                Action::CreateNode(n) => self.nodes.push(n.as_ref().clone()),
                Action::Patch {
                    kind, name, patch, ..
                }
                | Action::PatchStatus {
                    kind, name, patch, ..
                } => {
                    let name = Some(name.clone());
                    match kind {
                        Kind::Pod => patch_in(&mut self.pods, &name, patch),
                        Kind::Node => patch_in(&mut self.nodes, &name, patch),
                        Kind::ReplicaSet => patch_in(&mut self.replica_sets, &name, patch),
                        Kind::Deployment => patch_in(&mut self.deployments, &name, patch),
                        Kind::StatefulSet => patch_in(&mut self.stateful_sets, &name, patch),
                        Kind::DaemonSet => patch_in(&mut self.daemon_sets, &name, patch),
                        Kind::Job => patch_in(&mut self.jobs, &name, patch),
                    }
                }
                Action::Delete { kind, name, .. } => {
                    let name = Some(name.clone());
                    match kind {
                        Kind::Pod => self.pods.retain(|p| p.metadata.name != name),
                        Kind::ReplicaSet => self.replica_sets.retain(|p| p.metadata.name != name),
                        Kind::Job => {
                            let uid = self
                                .jobs
                                .iter()
                                .find(|j| j.metadata.name == name)
                                .and_then(|j| j.metadata.uid.clone());
                            self.jobs.retain(|p| p.metadata.name != name);
                            if let Some(uid) = uid {
                                self.pods
                                    .retain(|p| !pod_state::is_controlled_by(&p.metadata, &uid));
                            }
                        }
                        _ => {}
                    }
                }
                Action::Event(_) => {}
                Action::Bind { pod, node, .. } => {
                    if let Some(p) = self
                        .pods
                        .iter_mut()
                        .find(|p| p.metadata.name.as_deref() == Some(pod))
                    {
                        p.spec.get_or_insert_with(PodSpec::default).node_name = Some(node.clone());
                    }
                }
            }
        }
    }

    /// One round of every controller; returns the combined plan.
    fn round(&mut self, timing: &KubeletTiming, backoff: &JobBackoff) -> Plan {
        let mut all = Plan::default();
        let now = self.now;
        for d in self.deployments.clone() {
            let plan = plan_deployment(&d, &self.replica_sets, &self.pods, now);
            self.apply(&plan);
            all.merge(plan);
        }
        for rs in self.replica_sets.clone() {
            let plan = plan_replica_set(&rs, &self.pods, now);
            self.apply(&plan);
            all.merge(plan);
        }
        for set in self.stateful_sets.clone() {
            let plan = plan_stateful_set(&set, &self.pods, now);
            self.apply(&plan);
            all.merge(plan);
        }
        for ds in self.daemon_sets.clone() {
            let plan = daemonset::plan_daemon_set(&ds, &self.nodes, &self.pods, now);
            self.apply(&plan);
            all.merge(plan);
        }
        for job in self.jobs.clone() {
            let plan = plan_job(&job, &self.pods, now, backoff);
            self.apply(&plan);
            all.merge(plan);
        }
        let plan = plan_scheduling(&self.pods, &self.nodes, now);
        self.apply(&plan);
        all.merge(plan);
        let plan = plan_kubelet(&self.pods, &self.nodes, now, timing);
        self.apply(&plan);
        all.merge(plan);
        all
    }

    /// Runs rounds, advancing the clock to the next wake-up when nothing is left to do, until
    /// `done` holds; `check` runs after every round.
    fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&World) -> bool,
        mut check: impl FnMut(&World),
    ) {
        let timing = KubeletTiming {
            start_delay: Duration::from_secs(1),
            ..KubeletTiming::default()
        };
        let backoff = JobBackoff::default();
        let end = self.now.as_second() + i64::try_from(limit.as_secs()).unwrap_or(0);
        for _ in 0..10_000 {
            if done(self) {
                return;
            }
            let plan = self.round(&timing, &backoff);
            check(self);
            if plan.actions.is_empty() {
                let step = plan
                    .requeue_after
                    .unwrap_or(Duration::from_secs(1))
                    .max(Duration::from_millis(1));
                self.now = Timestamp::from_millisecond(
                    self.now.as_millisecond() + i64::try_from(step.as_millis()).unwrap_or(1000),
                )
                .expect("valid time");
            }
            assert!(self.now.as_second() <= end, "not done within {limit:?}");
        }
        panic!("did not converge");
    }

    fn pods_of(&self, uid: &str) -> Vec<&Pod> {
        self.pods
            .iter()
            .filter(|p| pod_state::is_controlled_by(&p.metadata, uid))
            .collect()
    }
}

fn patch_in<T>(items: &mut [T], name: &Option<String>, patch: &Value)
where
    T: serde::Serialize + serde::de::DeserializeOwned + kube::Resource,
{
    if let Some(item) = items.iter_mut().find(|i| i.meta().name == *name) {
        *item = patched(item, patch);
    }
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Deployment

#[test]
fn surge_rounds_up_and_unavailable_rounds_down() {
    let pct = IntOrString::String("25%".into());
    assert_eq!(resolve_int_or_percent(Some(&pct), 25, 10, true), 3);
    assert_eq!(resolve_int_or_percent(Some(&pct), 25, 10, false), 2);
    assert_eq!(resolve_int_or_percent(None, 25, 1, true), 1);
    assert_eq!(resolve_int_or_percent(None, 25, 1, false), 0);
    assert_eq!(
        resolve_int_or_percent(Some(&IntOrString::Int(2)), 25, 10, true),
        2
    );
    // Both zero would block the rollout: the controller allows one unavailable pod.
    let d = with_strategy(
        deployment("w", 3, "a"),
        IntOrString::Int(0),
        IntOrString::Int(0),
    );
    assert_eq!(fenceposts(&d), (0, 1));
}

#[test]
fn deployment_creates_replica_set_named_after_the_template_hash() {
    let d = deployment("web", 3, "nginx:1");
    let plan = plan_deployment(&d, &[], &[], t0());
    let rs = plan
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CreateReplicaSet(rs) => Some(rs.as_ref()),
            _ => None,
        })
        .expect("a ReplicaSet is created");
    let name = rs.metadata.name.clone().unwrap_or_default();
    let hash = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get("pod-template-hash"))
        .cloned()
        .expect("template carries pod-template-hash");
    assert_eq!(name, format!("web-{hash}"));
    assert_eq!(rs_replicas(rs), 3);
    let annotations = rs.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get(deployment::REVISION).map(String::as_str),
        Some("1")
    );
    assert_eq!(
        annotations
            .get(deployment::DESIRED_REPLICAS)
            .map(String::as_str),
        Some("3")
    );
    assert_eq!(
        annotations
            .get(deployment::MAX_REPLICAS)
            .map(String::as_str),
        Some("4")
    );
    let owner = controller_ref(&rs.metadata).expect("owned");
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", "uid-web")
    );
    assert_eq!(owner.block_owner_deletion, Some(true));
    let selector = rs
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    assert_eq!(
        selector
            .match_labels
            .unwrap_or_default()
            .get("pod-template-hash"),
        Some(&hash)
    );
    // The Deployment gets the revision and a NewReplicaSetCreated condition.
    let patch = plan
        .patch_of(Kind::Deployment, "web")
        .expect("revision annotation");
    assert_eq!(patch["metadata"]["annotations"][deployment::REVISION], "1");
    let status = plan.status_of(Kind::Deployment, "web").expect("status");
    let progressing = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"))
        .expect("Progressing condition");
    assert_eq!(progressing["reason"], "NewReplicaSetCreated");
    assert_eq!(
        progressing["message"],
        format!("Created new replica set \"{name}\"")
    );
}

#[test]
fn rolling_update_respects_max_surge() {
    // 4 replicas, old ReplicaSet fully available; a new template may add 1 (25 % of 4, up)
    // and take 1 away (25 % of 4, down).
    let mut world = World::new(1);
    world.deployments.push(deployment("web", 4, "nginx:1"));
    world.run_until(
        Duration::from_secs(60),
        |w| {
            w.deployments[0]
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                == Some(4)
        },
        |_| {},
    );
    world.deployments[0] = {
        let mut d = world.deployments[0].clone();
        d.spec.as_mut().expect("spec").template = template("web", "nginx:2");
        d.metadata.generation = Some(2);
        d
    };
    let plan = plan_deployment(
        &world.deployments[0],
        &world.replica_sets,
        &world.pods,
        world.now,
    );
    let new_rs = plan
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CreateReplicaSet(rs) => Some(rs.as_ref().clone()),
            _ => None,
        })
        .expect("new ReplicaSet");
    assert_eq!(rs_replicas(&new_rs), 1, "maxSurge 25% of 4 = 1");
    let old_name = world.replica_sets[0]
        .metadata
        .name
        .clone()
        .unwrap_or_default();
    let old_patch = plan
        .patch_of(Kind::ReplicaSet, &old_name)
        .expect("old scaled down");
    assert_eq!(
        old_patch["spec"]["replicas"], 3,
        "maxUnavailable 25% of 4 = 1"
    );
    assert_eq!(
        new_rs
            .metadata
            .annotations
            .unwrap_or_default()
            .get(deployment::REVISION)
            .map(String::as_str),
        Some("2")
    );
}

/// `kubectl rollout status`'s test: observed, all replicas updated and available, no old ones.
fn rolled_out(d: &Deployment) -> bool {
    let s = d.status.clone().unwrap_or_default();
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
}

fn change_image(world: &mut World, image: &str) {
    let d = &mut world.deployments[0];
    d.spec.as_mut().expect("spec").template = template("web", image);
    d.metadata.generation = Some(d.metadata.generation.unwrap_or(1) + 1);
}

#[test]
fn rolling_update_never_exceeds_surge_nor_unavailable_and_old_scales_to_zero() {
    let mut world = World::new(2);
    world.deployments.push(with_strategy(
        deployment("web", 4, "nginx:1"),
        IntOrString::Int(1),
        IntOrString::Int(0),
    ));
    world.run_until(
        Duration::from_secs(120),
        |w| rolled_out(&w.deployments[0]),
        |_| {},
    );
    change_image(&mut world, "nginx:2");
    let mut saw_two_sets = false;
    world.run_until(
        Duration::from_secs(300),
        |w| rolled_out(&w.deployments[0]),
        |w| {
            let live = w.pods.iter().filter(|p| pod_state::is_active(p)).count();
            assert!(live <= 5, "maxSurge 1: at most 5 pods, saw {live}");
            let ready = w
                .pods
                .iter()
                .filter(|p| pod_state::is_active(p) && pod_state::is_ready(p))
                .count();
            assert!(
                ready >= 4,
                "maxUnavailable 0: never fewer than 4 ready, saw {ready}"
            );
            let spec_total: i32 = w.replica_sets.iter().map(rs_replicas).sum();
            assert!(
                spec_total <= 5,
                "replica sum {spec_total} exceeds replicas + maxSurge"
            );
            saw_two_sets |= w.replica_sets.iter().filter(|r| rs_replicas(r) > 0).count() == 2;
        },
    );
    assert!(saw_two_sets, "old and new ReplicaSet ran side by side");
    assert_eq!(world.replica_sets.len(), 2);
    let d = &world.deployments[0];
    let status = d.status.clone().expect("status");
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.available_replicas, Some(4));
    let old = world
        .replica_sets
        .iter()
        .find(|rs| deployment::revision_of(&rs.metadata) == 1)
        .expect("old ReplicaSet kept for history");
    assert_eq!(rs_replicas(old), 0);
    assert_eq!(
        world
            .pods_of(old.metadata.uid.as_deref().unwrap_or_default())
            .len(),
        0
    );
    assert_eq!(deployment::revision_of(&d.metadata), 2);
    let conditions = status.conditions.unwrap_or_default();
    let available = conditions
        .iter()
        .find(|c| c.type_ == "Available")
        .expect("Available");
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("True", Some("MinimumReplicasAvailable"))
    );
    let progressing = conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .expect("Progressing");
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
}

#[test]
fn revision_history_limit_deletes_the_oldest_idle_replica_sets() {
    let mut world = World::new(1);
    let mut d = deployment("web", 1, "v0");
    d.spec.as_mut().expect("spec").revision_history_limit = Some(1);
    world.deployments.push(d);
    for image in ["v1", "v2", "v3"] {
        world.run_until(
            Duration::from_secs(600),
            |w| rolled_out(&w.deployments[0]),
            |_| {},
        );
        change_image(&mut world, image);
    }
    world.run_until(
        Duration::from_secs(600),
        |w| rolled_out(&w.deployments[0]) && w.replica_sets.len() <= 2,
        |_| {},
    );
    let mut revisions: Vec<i64> = world
        .replica_sets
        .iter()
        .map(|rs| deployment::revision_of(&rs.metadata))
        .collect();
    revisions.sort_unstable();
    assert_eq!(revisions, vec![3, 4], "current + revisionHistoryLimit 1");
}

#[test]
fn rollback_reuses_the_old_replica_set_with_a_new_revision() {
    let mut world = World::new(1);
    world.deployments.push(deployment("web", 1, "v1"));
    world.run_until(
        Duration::from_secs(60),
        |w| rolled_out(&w.deployments[0]),
        |_| {},
    );
    change_image(&mut world, "v2");
    world.run_until(
        Duration::from_secs(60),
        |w| rolled_out(&w.deployments[0]),
        |_| {},
    );
    assert_eq!(deployment::revision_of(&world.deployments[0].metadata), 2);
    change_image(&mut world, "v1");
    world.run_until(
        Duration::from_secs(60),
        |w| rolled_out(&w.deployments[0]),
        |_| {},
    );
    assert_eq!(world.replica_sets.len(), 2, "no third ReplicaSet");
    assert_eq!(deployment::revision_of(&world.deployments[0].metadata), 3);
    let reused = world
        .replica_sets
        .iter()
        .find(|rs| rs_replicas(rs) == 1)
        .expect("active");
    assert_eq!(deployment::revision_of(&reused.metadata), 3);
    assert_eq!(
        reused
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .get(deployment::REVISION_HISTORY)
            .map(String::as_str),
        Some("1")
    );
}

#[test]
fn deployment_progress_deadline_exceeded_when_pods_never_become_ready() {
    let mut world = World::new(1);
    let mut d = deployment("web", 1, "v1");
    d.spec.as_mut().expect("spec").progress_deadline_seconds = Some(30);
    if let Some(m) = d.spec.as_mut().and_then(|s| s.template.metadata.as_mut()) {
        m.annotations = Some(BTreeMap::from([(
            outcome::OUTCOME.to_string(),
            "never-ready".to_string(),
        )]));
    }
    world.deployments.push(d);
    world.run_until(
        Duration::from_secs(120),
        |w| {
            w.deployments[0]
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Progressing" && c.status == "False")
        },
        |_| {},
    );
    let cond = world.deployments[0]
        .status
        .clone()
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .expect("Progressing");
    assert_eq!(cond.reason.as_deref(), Some("ProgressDeadlineExceeded"));
    let rs_name = world.replica_sets[0]
        .metadata
        .name
        .clone()
        .unwrap_or_default();
    assert_eq!(
        cond.message,
        Some(format!(
            "ReplicaSet \"{rs_name}\" has timed out progressing."
        ))
    );
    assert!(world.now.as_second() >= at(30).as_second());
}

// ---------------------------------------------------------------------------------------------
// ReplicaSet

fn replica_set(replicas: i32) -> ReplicaSet {
    ReplicaSet {
        metadata: meta("web-abc", "uid-rs"),
        spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels("web")),
                ..LabelSelector::default()
            },
            template: Some(template("web", "nginx")),
            min_ready_seconds: None,
        }),
        status: None,
    }
}

#[test]
fn replica_set_creates_missing_pods_from_generate_name_with_a_controller_reference() {
    let rs = replica_set(3);
    let existing = rs_pod("web-abc-x", &rs, true);
    let plan = plan_replica_set(&rs, &[existing], t0());
    let created = plan.created_pods();
    assert_eq!(created.len(), 2);
    for pod in created {
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert!(pod.metadata.name.is_none());
        let owner = controller_ref(&pod.metadata).expect("controller reference");
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("ReplicaSet", "web-abc", "uid-rs")
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert_eq!(pod.metadata.labels, Some(labels("web")));
    }
    let status = plan.status_of(Kind::ReplicaSet, "web-abc").expect("status");
    assert_eq!(status["replicas"], 1);
    assert_eq!(status["readyReplicas"], 1);
    assert_eq!(status["availableReplicas"], 1);
    assert_eq!(status["observedGeneration"], 1);
}

#[test]
fn replica_set_deletes_surplus_not_ready_pods_first() {
    let rs = replica_set(1);
    let mut newer_ready = rs_pod("ready-new", &rs, true);
    newer_ready.metadata.creation_timestamp = Some(Time(at(10)));
    let pods = vec![
        rs_pod("ready-old", &rs, true),
        rs_pod("unready", &rs, false),
        newer_ready,
    ];
    let plan = plan_replica_set(&rs, &pods, at(20));
    let mut deleted = plan.deleted(Kind::Pod);
    deleted.sort_unstable();
    assert_eq!(deleted, vec!["ready-new", "unready"]);
}

#[test]
fn replica_set_ignores_finished_and_foreign_pods() {
    let rs = replica_set(1);
    let mut done = rs_pod("done", &rs, false);
    if let Some(s) = done.status.as_mut() {
        s.phase = Some("Failed".into());
    }
    let foreign = ready_pod("other", &meta("x", "uid-other"), "ReplicaSet", true);
    let plan = plan_replica_set(&rs, &[done, foreign], t0());
    assert_eq!(plan.created_pods().len(), 1);
    assert!(plan.deleted(Kind::Pod).is_empty());
}

// ---------------------------------------------------------------------------------------------
// StatefulSet

fn stateful_set(replicas: i32) -> StatefulSet {
    StatefulSet {
        metadata: meta("db", "uid-db"),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some("db".into()),
            selector: LabelSelector {
                match_labels: Some(labels("db")),
                ..LabelSelector::default()
            },
            template: template("db", "postgres:16"),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

#[test]
fn statefulset_waits_for_previous_ready() {
    let set = stateful_set(3);
    let plan = plan_stateful_set(&set, &[], t0());
    let created: Vec<_> = plan
        .created_pods()
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(created, vec!["db-0"]);

    let pod0 = plan.created_pods()[0].clone();
    let mut pod0_unready = pod0.clone();
    pod0_unready.metadata.uid = Some("u0".into());
    set_ready(&mut pod0_unready, false);
    let plan = plan_stateful_set(&set, &[pod0_unready.clone()], t0());
    assert!(
        plan.created_pods().is_empty(),
        "db-1 waits for db-0 to be Ready"
    );

    let mut pod0_ready = pod0_unready;
    set_ready(&mut pod0_ready, true);
    let plan = plan_stateful_set(&set, &[pod0_ready], t0());
    let created: Vec<_> = plan
        .created_pods()
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(created, vec!["db-1"]);
}

#[test]
fn statefulset_pods_carry_identity_labels_and_hostname() {
    let set = stateful_set(1);
    let plan = plan_stateful_set(&set, &[], t0());
    let pod = plan.created_pods()[0];
    let l = pod.metadata.labels.clone().unwrap_or_default();
    let revision = super::statefulset::update_revision(&set);
    assert!(revision.starts_with("db-"));
    assert_eq!(l.get("controller-revision-hash"), Some(&revision));
    assert_eq!(
        l.get("statefulset.kubernetes.io/pod-name")
            .map(String::as_str),
        Some("db-0")
    );
    assert_eq!(
        l.get("apps.kubernetes.io/pod-index").map(String::as_str),
        Some("0")
    );
    assert_eq!(l.get("app").map(String::as_str), Some("db"));
    let spec = pod.spec.clone().unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("db-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("db"));
    assert_eq!(
        controller_ref(&pod.metadata).map(|o| o.kind.as_str()),
        Some("StatefulSet")
    );
    let status = plan.status_of(Kind::StatefulSet, "db").expect("status");
    assert_eq!(status["currentRevision"], revision);
    assert_eq!(status["updateRevision"], revision);
}

#[test]
fn statefulset_rolls_out_in_order_then_updates_from_the_highest_ordinal() {
    let mut world = World::new(1);
    world.stateful_sets.push(stateful_set(3));
    let mut order = Vec::new();
    world.run_until(
        Duration::from_secs(60),
        |w| {
            w.stateful_sets[0]
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                == Some(3)
        },
        |w| {
            for p in &w.pods {
                let n = p.metadata.name.clone().unwrap_or_default();
                if !order.contains(&n) {
                    order.push(n);
                }
            }
        },
    );
    assert_eq!(order, vec!["db-0", "db-1", "db-2"]);
    let first_revision = world.stateful_sets[0]
        .status
        .clone()
        .and_then(|s| s.current_revision)
        .expect("revision");

    world.stateful_sets[0].spec.as_mut().expect("spec").template = template("db", "postgres:17");
    world.stateful_sets[0].metadata.generation = Some(2);
    let new_revision = super::statefulset::update_revision(&world.stateful_sets[0]);
    assert_ne!(first_revision, new_revision);
    let mut replaced = Vec::new();
    world.run_until(
        Duration::from_secs(120),
        |w| {
            w.stateful_sets[0]
                .status
                .as_ref()
                .and_then(|s| s.current_revision.clone())
                == Some(new_revision.clone())
        },
        |w| {
            for p in &w.pods {
                let n = p.metadata.name.clone().unwrap_or_default();
                let rev = p
                    .metadata
                    .labels
                    .clone()
                    .unwrap_or_default()
                    .get("controller-revision-hash")
                    .cloned();
                if rev.as_deref() == Some(new_revision.as_str()) && !replaced.contains(&n) {
                    replaced.push(n);
                }
            }
        },
    );
    assert_eq!(replaced, vec!["db-2", "db-1", "db-0"]);
    let status = world.stateful_sets[0].status.clone().expect("status");
    assert_eq!(
        (
            status.current_replicas,
            status.updated_replicas,
            status.ready_replicas
        ),
        (Some(3), Some(3), Some(3))
    );
    assert_eq!(status.update_revision, Some(new_revision));
}

#[test]
fn statefulset_scales_down_from_the_highest_ordinal_one_at_a_time() {
    let set = stateful_set(1);
    let pods: Vec<Pod> = (0..3)
        .map(|i| ready_pod(&format!("db-{i}"), &set.metadata, "StatefulSet", true))
        .collect();
    let plan = plan_stateful_set(&set, &pods, t0());
    assert_eq!(plan.deleted(Kind::Pod), vec!["db-2"]);
}

// ---------------------------------------------------------------------------------------------
// DaemonSet

fn daemon_set() -> DaemonSet {
    DaemonSet {
        metadata: meta("agent", "uid-agent"),
        spec: Some(DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels("agent")),
                ..LabelSelector::default()
            },
            template: template("agent", "agent:1"),
            ..DaemonSetSpec::default()
        }),
        status: None,
    }
}

#[test]
fn daemonset_pins_one_pod_per_node_through_metadata_name_affinity() {
    let ds = daemon_set();
    let nodes = vec![node(1), node(2)];
    let plan = daemonset::plan_daemon_set(&ds, &nodes, &[], t0());
    let created = plan.created_pods();
    assert_eq!(created.len(), 2);
    let mut targets: Vec<String> = created
        .iter()
        .filter_map(|p| super::placement::target_node(p))
        .collect();
    targets.sort();
    assert_eq!(targets, vec!["kubesim-node-1", "kubesim-node-2"]);
    for pod in &created {
        assert!(
            pod.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_none(),
            "the scheduler binds it"
        );
        let term = &pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .expect("required affinity")
            .node_selector_terms[0];
        let field = &term.match_fields.as_ref().expect("matchFields")[0];
        assert_eq!(
            (field.key.as_str(), field.operator.as_str()),
            ("metadata.name", "In")
        );
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        assert!(
            tolerations
                .iter()
                .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unschedulable"))
        );
        assert_eq!(
            controller_ref(&pod.metadata).map(|o| o.kind.as_str()),
            Some("DaemonSet")
        );
        assert!(
            pod.metadata
                .labels
                .clone()
                .unwrap_or_default()
                .contains_key("controller-revision-hash")
        );
    }
    let status = plan.status_of(Kind::DaemonSet, "agent").expect("status");
    assert_eq!(status["desiredNumberScheduled"], 2);
    assert_eq!(status["currentNumberScheduled"], 0);
}

#[test]
fn daemonset_skips_nodes_with_untolerated_taints_and_reports_status() {
    let mut world = World::new(2);
    let mut tainted = node(3);
    tainted.spec.get_or_insert_with(Default::default).taints = Some(vec![Taint {
        key: "dedicated".into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    }]);
    world.nodes.push(tainted);
    world.daemon_sets.push(daemon_set());
    world.run_until(
        Duration::from_secs(60),
        |w| {
            w.daemon_sets[0]
                .status
                .as_ref()
                .and_then(|s| s.number_available)
                == Some(2)
        },
        |_| {},
    );
    let status = world.daemon_sets[0].status.clone().expect("status");
    assert_eq!(status.desired_number_scheduled, 2);
    assert_eq!(status.current_number_scheduled, 2);
    assert_eq!(status.number_ready, 2);
    assert_eq!(status.updated_number_scheduled, Some(2));
    let mut bound: Vec<String> = world
        .pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    bound.sort();
    assert_eq!(bound, vec!["kubesim-node-1", "kubesim-node-2"]);
}

// ---------------------------------------------------------------------------------------------
// Job

fn job(annotation: Option<&str>) -> Job {
    let mut t = template("job", "busybox");
    if let Some(s) = t.spec.as_mut() {
        s.restart_policy = Some("Never".into());
    }
    if let (Some(m), Some(a)) = (t.metadata.as_mut(), annotation) {
        m.annotations = Some(BTreeMap::from([(
            outcome::OUTCOME.to_string(),
            a.to_string(),
        )]));
    }
    Job {
        metadata: meta("batch", "uid-batch"),
        spec: Some(JobSpec {
            template: t,
            backoff_limit: Some(6),
            ..JobSpec::default()
        }),
        status: None,
    }
}

fn job_conditions(job: &Job) -> Vec<(String, String, String)> {
    job.status
        .clone()
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .map(|c| {
            (
                c.type_,
                c.reason.unwrap_or_default(),
                c.message.unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn job_pods_carry_job_labels_and_start_time_is_set() {
    let j = job(None);
    let plan = plan_job(&j, &[], t0(), &JobBackoff::default());
    let pods = plan.created_pods();
    assert_eq!(pods.len(), 1);
    let l = pods[0].metadata.labels.clone().unwrap_or_default();
    for key in ["batch.kubernetes.io/job-name", "job-name"] {
        assert_eq!(l.get(key).map(String::as_str), Some("batch"), "{key}");
    }
    for key in ["batch.kubernetes.io/controller-uid", "controller-uid"] {
        assert_eq!(l.get(key).map(String::as_str), Some("uid-batch"), "{key}");
    }
    assert_eq!(pods[0].metadata.generate_name.as_deref(), Some("batch-"));
    assert_eq!(
        controller_ref(&pods[0].metadata).map(|o| o.kind.as_str()),
        Some("Job")
    );
    let status = plan.status_of(Kind::Job, "batch").expect("status");
    assert_eq!(status["active"], 1);
    assert!(status["startTime"].is_string());
}

#[test]
fn job_complete_adds_success_criteria_met_then_complete() {
    let mut world = World::new(1);
    world.jobs.push(job(Some("exit:0")));
    world.run_until(
        Duration::from_secs(60),
        |w| super::job::is_finished(&w.jobs[0]),
        |_| {},
    );
    let conditions = job_conditions(&world.jobs[0]);
    let reached = (
        "CompletionsReached".to_string(),
        "Reached expected number of succeeded pods".to_string(),
    );
    assert_eq!(
        conditions,
        vec![
            (
                "SuccessCriteriaMet".to_string(),
                reached.0.clone(),
                reached.1.clone()
            ),
            ("Complete".to_string(), reached.0, reached.1),
        ]
    );
    let status = world.jobs[0].status.clone().expect("status");
    assert_eq!(status.succeeded, Some(1));
    assert_eq!(status.active, None);
    assert!(status.completion_time.is_some());
}

#[test]
fn job_backoff_limit_exceeded_condition() {
    let mut world = World::new(1);
    let mut j = job(Some("exit:1"));
    j.spec.as_mut().expect("spec").backoff_limit = Some(2);
    world.jobs.push(j);
    let start = world.now;
    world.run_until(
        Duration::from_secs(600),
        |w| super::job::is_finished(&w.jobs[0]),
        |w| {
            let active = w.pods.iter().filter(|p| pod_state::is_active(p)).count();
            assert!(active <= 1, "parallelism 1");
        },
    );
    let conditions = job_conditions(&world.jobs[0]);
    let limit = (
        "BackoffLimitExceeded".to_string(),
        "Job has reached the specified backoff limit".to_string(),
    );
    assert_eq!(
        conditions,
        vec![
            (
                "FailureTarget".to_string(),
                limit.0.clone(),
                limit.1.clone()
            ),
            ("Failed".to_string(), limit.0, limit.1),
        ]
    );
    let status = world.jobs[0].status.clone().expect("status");
    assert_eq!(status.failed, Some(3), "backoffLimit 2 = three attempts");
    assert!(status.completion_time.is_none());
    // Retries waited 10 s then 20 s (the real controller's back-off).
    assert!(world.now.as_second() - start.as_second() >= 30);
}

#[test]
fn job_deadline_exceeded_removes_running_pods_before_failed() {
    let mut j = job(Some("never-ready"));
    j.spec.as_mut().expect("spec").active_deadline_seconds = Some(5);
    j.status = Some(k8s_openapi::api::batch::v1::JobStatus {
        start_time: Some(Time(t0())),
        ..Default::default()
    });
    let running = {
        let mut p = super::job::new_pod(&j);
        p.metadata.name = Some("batch-x".into());
        p.metadata.uid = Some("uid-x".into());
        p
    };
    let plan = plan_job(
        &j,
        std::slice::from_ref(&running),
        at(6),
        &JobBackoff::default(),
    );
    assert_eq!(plan.deleted(Kind::Pod), vec!["batch-x"]);
    let status = plan.status_of(Kind::Job, "batch").expect("status");
    let types: Vec<&str> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["type"].as_str())
        .collect();
    assert_eq!(
        types,
        vec!["FailureTarget"],
        "Failed waits for the pod to go"
    );
    assert_eq!(status["conditions"][0]["reason"], "DeadlineExceeded");
    assert_eq!(
        status["conditions"][0]["message"],
        "Job was active longer than specified deadline"
    );

    let mut j2 = j.clone();
    j2.status = Some(patched(&j.status.clone().unwrap_or_default(), status));
    let plan = plan_job(&j2, &[], at(7), &JobBackoff::default());
    let status = plan.status_of(Kind::Job, "batch").expect("status");
    let failed = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Failed")
        .expect("Failed");
    assert_eq!(failed["reason"], "DeadlineExceeded");
}

#[test]
fn job_ttl_after_finished_deletes_the_job() {
    let mut j = job(None);
    j.spec.as_mut().expect("spec").ttl_seconds_after_finished = Some(10);
    j.status = Some(k8s_openapi::api::batch::v1::JobStatus {
        completion_time: Some(Time(t0())),
        conditions: Some(vec![k8s_openapi::api::batch::v1::JobCondition {
            type_: "Complete".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    let early = plan_job(&j, &[], at(5), &JobBackoff::default());
    assert!(early.deleted(Kind::Job).is_empty());
    assert_eq!(early.requeue_after, Some(Duration::from_secs(5)));
    let late = plan_job(&j, &[], at(10), &JobBackoff::default());
    assert_eq!(late.deleted(Kind::Job), vec!["batch"]);
}

// ---------------------------------------------------------------------------------------------
// Scheduler

fn bare_pod(name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            creation_timestamp: Some(Time(t0())),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("nginx".into()),
                ..Container::default()
            }],
            scheduler_name: Some("default-scheduler".into()),
            ..PodSpec::default()
        }),
        status: None,
    }
}

#[test]
fn scheduler_leaves_gated_pods_pending_with_scheduling_gated() {
    let mut pod = bare_pod("gated");
    pod.spec.as_mut().expect("spec").scheduling_gates = Some(vec![PodSchedulingGate {
        name: "example.com/wait".into(),
    }]);
    let plan = plan_scheduling(std::slice::from_ref(&pod), &[node(1)], t0());
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::Bind { .. }))
    );
    let status = plan
        .status_of(Kind::Pod, "gated")
        .expect("condition written");
    let cond = &status["conditions"][0];
    assert_eq!(
        (
            cond["type"].as_str(),
            cond["status"].as_str(),
            cond["reason"].as_str()
        ),
        (Some("PodScheduled"), Some("False"), Some("SchedulingGated"))
    );
    assert_eq!(
        cond["message"],
        "Scheduling is blocked due to non-empty scheduling gates"
    );
    // Written once: the next round with the condition in place writes nothing.
    let with_condition = patched(&pod, &serde_json::json!({ "status": status }));
    assert!(
        plan_scheduling(std::slice::from_ref(&with_condition), &[node(1)], t0())
            .actions
            .is_empty()
    );
    // Gate removed: bound.
    let mut ungated = with_condition;
    ungated.spec.as_mut().expect("spec").scheduling_gates = Some(vec![]);
    let plan = plan_scheduling(&[ungated], &[node(1)], t0());
    assert!(matches!(&plan.actions[..], [Action::Bind { node, .. }] if node == "kubesim-node-1"));
}

#[test]
fn scheduler_spreads_pods_and_honours_affinity() {
    let pods: Vec<Pod> = (0..4).map(|i| bare_pod(&format!("p{i}"))).collect();
    let plan = plan_scheduling(&pods, &[node(1), node(2)], t0());
    let targets: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Bind { node, .. } => Some(node.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        targets.iter().filter(|n| **n == "kubesim-node-1").count(),
        2
    );
    assert_eq!(
        targets.iter().filter(|n| **n == "kubesim-node-2").count(),
        2
    );

    let mut pinned = bare_pod("pinned");
    daemonset::pin_to_node(pinned.spec.as_mut().expect("spec"), "kubesim-node-2");
    let plan = plan_scheduling(&[pinned], &[node(1), node(2)], t0());
    assert!(matches!(&plan.actions[..], [Action::Bind { node, .. }] if node == "kubesim-node-2"));
}

#[test]
fn scheduler_reports_unschedulable_pods() {
    let mut pod = bare_pod("picky");
    pod.spec.as_mut().expect("spec").node_selector =
        Some(BTreeMap::from([("disk".to_string(), "ssd".to_string())]));
    let plan = plan_scheduling(&[pod], &[node(1)], t0());
    let status = plan.status_of(Kind::Pod, "picky").expect("condition");
    assert_eq!(status["conditions"][0]["reason"], "Unschedulable");
    let message = status["conditions"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        ),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------------
// Kubelet

fn bound(annotations: &[(&str, &str)], restart_policy: &str) -> Pod {
    let mut pod = bare_pod("p");
    let spec = pod.spec.as_mut().expect("spec");
    spec.node_name = Some("kubesim-node-1".into());
    spec.restart_policy = Some(restart_policy.into());
    pod.metadata.annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    pod
}

fn timing() -> KubeletTiming {
    KubeletTiming {
        start_delay: Duration::from_secs(2),
        crash_backoff_base: Duration::from_secs(10),
        crash_backoff_max: Duration::from_secs(300),
    }
}

/// Steps the kubelet for one pod with a fake clock until `until` holds, returning the pod.
fn drive(mut pod: Pod, limit_s: i64, until: impl Fn(&Pod) -> bool) -> (Pod, Timestamp) {
    let mut now = t0();
    let nodes = [node(1)];
    for _ in 0..1000 {
        if until(&pod) {
            return (pod, now);
        }
        let plan = plan_kubelet(std::slice::from_ref(&pod), &nodes, now, &timing());
        if let Some(status) = plan.status_of(Kind::Pod, "p") {
            pod = patched(&pod, &serde_json::json!({ "status": status }));
        } else {
            let step = plan.requeue_after.unwrap_or(Duration::from_secs(1));
            now = Timestamp::from_millisecond(
                now.as_millisecond() + i64::try_from(step.as_millis()).unwrap_or(1000),
            )
            .expect("time");
        }
        assert!(now.as_second() - t0().as_second() <= limit_s, "timed out");
    }
    panic!("no convergence");
}

fn container(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerStatus {
    pod.status
        .clone()
        .and_then(|s| s.container_statuses)
        .unwrap_or_default()
        .remove(0)
}

#[test]
fn kubelet_starts_pods_after_the_delay_and_reports_them_ready() {
    let pod = bound(&[], "Always");
    let plan = plan_kubelet(std::slice::from_ref(&pod), &[node(1)], t0(), &timing());
    let status = plan.status_of(Kind::Pod, "p").expect("first status");
    assert_eq!(status["phase"], "Pending");
    assert_eq!(
        status["containerStatuses"][0]["state"]["waiting"]["reason"],
        "ContainerCreating"
    );
    assert_eq!(status["hostIP"], "172.18.0.2");
    assert!(
        status["podIP"]
            .as_str()
            .unwrap_or_default()
            .starts_with("10.244.0.")
    );

    let (ready, when) = drive(pod, 60, pod_state::is_ready);
    assert!(
        when.as_second() - t0().as_second() >= 2,
        "start delay honoured"
    );
    assert_eq!(pod_state::phase(&ready), "Running");
    let c = container(&ready);
    assert!(c.ready && c.started == Some(true));
    assert!(c.state.and_then(|s| s.running).is_some());
    assert!(
        c.container_id
            .unwrap_or_default()
            .starts_with("containerd://")
    );
    for t in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodScheduled",
    ] {
        assert_eq!(
            pod_state::condition(&ready, t).map(|c| c.status.as_str()),
            Some("True"),
            "{t}"
        );
    }
}

#[test]
fn kubelet_never_ready_outcome_runs_without_readiness() {
    let pod = bound(&[(outcome::OUTCOME, "never-ready")], "Always");
    let (running, _) = drive(pod, 60, |p| pod_state::phase(p) == "Running");
    let plan = plan_kubelet(
        std::slice::from_ref(&running),
        &[node(1)],
        at(100),
        &timing(),
    );
    assert!(plan.actions.is_empty(), "stable");
    assert!(!pod_state::is_ready(&running));
    let ready = pod_state::condition(&running, "Ready").expect("Ready");
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [app]")
    );
}

#[test]
fn kubelet_crash_outcome_goes_into_crash_loop_back_off() {
    let pod = bound(
        &[(outcome::OUTCOME, "crash"), (outcome::RUN_FOR, "1s")],
        "Always",
    );
    let (looping, _) = drive(pod, 120, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .as_deref()
            == Some("CrashLoopBackOff")
    });
    let c = container(&looping);
    assert_eq!(c.restart_count, 1);
    let last = c
        .last_state
        .and_then(|s| s.terminated)
        .expect("last termination");
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(pod_state::phase(&looping), "Running");
    assert!(!pod_state::is_ready(&looping));
    let (again, _) = drive(looping, 300, |p| container(p).restart_count == 3);
    assert_eq!(container(&again).restart_count, 3);
}

#[test]
fn kubelet_exit_codes_end_pods_by_restart_policy() {
    let (failed, _) = drive(
        bound(&[(outcome::OUTCOME, "exit:3")], "Never"),
        60,
        pod_state::is_finished,
    );
    assert_eq!(pod_state::phase(&failed), "Failed");
    let term = container(&failed)
        .state
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(term.exit_code, 3);
    let (done, _) = drive(
        bound(&[(outcome::OUTCOME, "exit:0")], "OnFailure"),
        60,
        pod_state::is_finished,
    );
    assert_eq!(pod_state::phase(&done), "Succeeded");
    assert_eq!(
        pod_state::condition(&done, "Ready")
            .and_then(|c| c.reason.clone())
            .as_deref(),
        Some("PodCompleted")
    );
}

#[test]
fn kubelet_reports_unreadable_outcomes_instead_of_guessing() {
    let pod = bound(&[(outcome::OUTCOME, "explode")], "Always");
    let (stuck, _) = drive(pod, 30, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .as_deref()
            == Some("KubesimInvalidOutcome")
    });
    assert_eq!(pod_state::phase(&stuck), "Pending");
}

#[test]
fn kubelet_finishes_deletion_of_terminating_pods_on_its_nodes() {
    let mut pod = bound(&[], "Always");
    pod.metadata.deletion_timestamp = Some(Time(t0()));
    let plan = plan_kubelet(&[pod], &[node(1)], t0(), &timing());
    assert!(matches!(
        &plan.writes()[..],
        [Action::Delete {
            grace_period_zero: true,
            ..
        }]
    ));
}

#[test]
fn nodes_are_created_ready_with_capacity() {
    let plan = nodes::plan_nodes(&[], 2, t0());
    let created: Vec<&Node> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateNode(n) => Some(n.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(created.len(), 2);
    assert_eq!(created[1].metadata.name.as_deref(), Some("kubesim-node-2"));
    assert!(super::placement::node_ready(created[0]));
    let allocatable = created[0]
        .status
        .clone()
        .and_then(|s| s.allocatable)
        .unwrap_or_default();
    assert_eq!(allocatable.get("pods").map(|q| q.0.as_str()), Some("110"));
    assert!(
        nodes::plan_nodes(&[node(1), node(2)], 2, t0())
            .actions
            .is_empty()
    );
}

#[test]
fn events_read_like_the_real_components() {
    // Deployment: ScalingReplicaSet with from/to.
    let d = deployment("web", 3, "nginx:1");
    let plan = plan_deployment(&d, &[], &[], t0());
    let events = plan.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "ScalingReplicaSet");
    assert!(
        events[0].1.starts_with("Scaled up replica set web-")
            && events[0].1.ends_with(" from 0 to 3"),
        "{}",
        events[0].1
    );

    // Kubelet: Pulled, Created, Started when a container starts; BackOff entering a crash loop.
    let pod = bound(&[], "Always");
    let (running, _) = drive(pod.clone(), 60, |p| pod_state::phase(p) == "Running");
    let new = container(&running);
    let waiting = plan_kubelet(std::slice::from_ref(&pod), &[node(1)], t0(), &timing());
    let first = patched(
        &pod,
        &serde_json::json!({ "status": waiting.status_of(Kind::Pod, "p").expect("status") }),
    );
    let reasons: Vec<&str> =
        super::kubelet::container_events(Some(&container(&first)), &new, "nginx", &running)
            .into_iter()
            .map(|(_, r, _)| r)
            .collect();
    assert_eq!(reasons, vec!["Pulled", "Created", "Started"]);

    // Job: Completed once the Job is done.
    let mut world = World::new(1);
    world.jobs.push(job(Some("exit:0")));
    let mut seen = Vec::new();
    let timing = KubeletTiming {
        start_delay: Duration::from_secs(1),
        ..KubeletTiming::default()
    };
    for _ in 0..50 {
        let plan = world.round(&timing, &JobBackoff::default());
        seen.extend(
            plan.events()
                .into_iter()
                .map(|(r, m)| (r.to_string(), m.to_string())),
        );
        if super::job::is_finished(&world.jobs[0]) {
            break;
        }
        world.now = Timestamp::from_second(world.now.as_second() + 1).expect("time");
    }
    assert!(
        seen.contains(&("Completed".to_string(), "Job completed".to_string())),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(r, m)| r == "Started" && m == "Started container app"),
        "{seen:?}"
    );
}

#[test]
fn job_on_failure_counts_container_restarts_against_the_backoff_limit() {
    let mut world = World::new(1);
    let mut j = job(Some("exit:1"));
    let spec = j.spec.as_mut().expect("spec");
    spec.backoff_limit = Some(2);
    if let Some(s) = spec.template.spec.as_mut() {
        s.restart_policy = Some("OnFailure".into());
    }
    world.jobs.push(j);
    world.run_until(
        Duration::from_secs(900),
        |w| super::job::is_finished(&w.jobs[0]),
        |w| {
            assert!(
                w.pods.len() <= 1,
                "OnFailure restarts in place, no new pods"
            );
        },
    );
    let conditions = job_conditions(&world.jobs[0]);
    assert_eq!(conditions.last().map(|c| c.0.as_str()), Some("Failed"));
    assert_eq!(
        conditions.last().map(|c| c.1.as_str()),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(
        world.jobs[0].status.as_ref().and_then(|s| s.failed),
        Some(1),
        "the removed pod counts as failed"
    );
    assert!(world.pods.is_empty());
}

#[test]
fn replica_failure_is_mirrored_on_the_deployment_and_cleared_once_pods_exist() {
    let failure = k8s_openapi::api::apps::v1::ReplicaSetCondition {
        type_: "ReplicaFailure".into(),
        status: "True".into(),
        reason: Some("FailedCreate".into()),
        message: Some("admission webhook \"x\" denied the request".into()),
        last_transition_time: Some(Time(t0())),
    };
    let d = deployment("web", 1, "v1");
    let created = plan_deployment(&d, &[], &[], t0());
    let mut rs = created
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CreateReplicaSet(rs) => Some(rs.as_ref().clone()),
            _ => None,
        })
        .expect("ReplicaSet");
    rs.metadata.uid = Some("uid-rs".into());
    rs.status = Some(k8s_openapi::api::apps::v1::ReplicaSetStatus {
        conditions: Some(vec![failure]),
        ..Default::default()
    });
    let plan = plan_deployment(&d, std::slice::from_ref(&rs), &[], t0());
    let status = plan.status_of(Kind::Deployment, "web").expect("status");
    let mirrored = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "ReplicaFailure"))
        .expect("ReplicaFailure on the Deployment");
    assert_eq!(mirrored["reason"], "FailedCreate");

    // Still missing pods: the ReplicaSet keeps the condition; all there: it goes.
    let keep = plan_replica_set(&rs, &[], t0());
    let kept = keep.status_of(
        Kind::ReplicaSet,
        rs.metadata.name.as_deref().unwrap_or_default(),
    );
    assert!(kept.is_none_or(|s| s["conditions"][0]["type"] == "ReplicaFailure"));
    let pod = rs_pod("p", &rs, true);
    let clear = plan_replica_set(&rs, &[pod], t0());
    let status = clear
        .status_of(
            Kind::ReplicaSet,
            rs.metadata.name.as_deref().unwrap_or_default(),
        )
        .expect("status");
    assert!(status["conditions"].is_null(), "{status}");
}

#[test]
fn recreate_scales_the_old_replica_set_down_before_the_new_one_up() {
    let mut world = World::new(1);
    let mut d = deployment("web", 2, "v1");
    d.spec.as_mut().expect("spec").strategy =
        Some(k8s_openapi::api::apps::v1::DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
    world.deployments.push(d);
    world.run_until(
        Duration::from_secs(60),
        |w| rolled_out(&w.deployments[0]),
        |_| {},
    );
    change_image(&mut world, "v2");
    world.run_until(
        Duration::from_secs(120),
        |w| rolled_out(&w.deployments[0]),
        |w| {
            let revisions: std::collections::BTreeSet<i64> = w
                .pods
                .iter()
                .filter_map(|p| {
                    let owner = controller_ref(&p.metadata)?;
                    let rs = w
                        .replica_sets
                        .iter()
                        .find(|r| r.metadata.uid.as_deref() == Some(owner.uid.as_str()))?;
                    Some(deployment::revision_of(&rs.metadata))
                })
                .collect();
            assert!(
                revisions.len() <= 1,
                "old and new pods never run together: {revisions:?}"
            );
        },
    );
    assert_eq!(deployment::revision_of(&world.deployments[0].metadata), 2);
}

#[test]
fn paused_deployment_does_not_roll_out_a_new_template() {
    let mut world = World::new(1);
    world.deployments.push(deployment("web", 1, "v1"));
    world.run_until(
        Duration::from_secs(60),
        |w| rolled_out(&w.deployments[0]),
        |_| {},
    );
    change_image(&mut world, "v2");
    world.deployments[0].spec.as_mut().expect("spec").paused = Some(true);
    let plan = plan_deployment(
        &world.deployments[0],
        &world.replica_sets,
        &world.pods,
        world.now,
    );
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateReplicaSet(_)))
    );
    let status = plan.status_of(Kind::Deployment, "web").expect("status");
    let progressing = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Progressing"))
        .expect("Progressing");
    assert_eq!(
        (
            progressing["status"].as_str(),
            progressing["reason"].as_str()
        ),
        (Some("Unknown"), Some("DeploymentPaused"))
    );
}

#[test]
fn parallel_statefulset_creates_all_pods_at_once() {
    let mut set = stateful_set(3);
    set.spec.as_mut().expect("spec").pod_management_policy = Some("Parallel".into());
    let plan = plan_stateful_set(&set, &[], t0());
    let names: Vec<String> = plan
        .created_pods()
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    assert_eq!(names, vec!["db-0", "db-1", "db-2"]);
}

#[test]
fn cron_jobs_get_a_not_simulated_warning() {
    let cron = k8s_openapi::api::batch::v1::CronJob {
        metadata: meta("nightly", "uid-cron"),
        ..Default::default()
    };
    let plan = super::job::plan_cron_job(&cron, t0());
    assert_eq!(
        plan.events(),
        vec![(
            "NotSimulated",
            "kubesim does not simulate CronJobs: no Job will be created for this schedule"
        )]
    );
    assert!(plan.writes().is_empty());
}

#[test]
fn kubelet_fails_pods_past_their_active_deadline() {
    let mut pod = bound(&[], "Always");
    pod.spec.as_mut().expect("spec").active_deadline_seconds = Some(30);
    let (running, _) = drive(pod, 60, pod_state::is_ready);
    assert!(super::kubelet::deadline_exceeded(&running, at(10)).is_none());
    let plan = plan_kubelet(
        std::slice::from_ref(&running),
        &[node(1)],
        at(31),
        &timing(),
    );
    let status = plan.status_of(Kind::Pod, "p").expect("status");
    assert_eq!(status["phase"], "Failed");
    assert_eq!(status["reason"], "DeadlineExceeded");
    assert_eq!(
        status["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    assert_eq!(
        status["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );
    assert!(plan.events().iter().any(|(r, _)| *r == "DeadlineExceeded"));
    let failed = patched(&running, &serde_json::json!({ "status": status }));
    assert!(!pod_state::is_ready(&failed));
    assert!(
        plan_kubelet(&[failed], &[node(1)], at(40), &timing())
            .actions
            .is_empty()
    );
}

#[test]
fn replica_set_adopts_matching_orphans_and_releases_relabelled_pods() {
    let rs = replica_set(2);
    let mut orphan = bare_pod("orphan");
    orphan.metadata.labels = Some(labels("web"));
    let mut relabelled = rs_pod("moved", &rs, true);
    relabelled.metadata.labels = Some(labels("debug"));
    let mut unrelated = bare_pod("other");
    unrelated.metadata.labels = Some(labels("db"));
    let plan = plan_replica_set(&rs, &[orphan, relabelled, unrelated], t0());
    let adopted = plan.patch_of(Kind::Pod, "orphan").expect("orphan adopted");
    assert_eq!(adopted["metadata"]["ownerReferences"][0]["uid"], "uid-rs");
    assert_eq!(
        adopted["metadata"]["ownerReferences"][0]["controller"],
        true
    );
    let released = plan
        .patch_of(Kind::Pod, "moved")
        .expect("relabelled pod released");
    assert!(released["metadata"]["ownerReferences"].is_null());
    assert!(plan.patch_of(Kind::Pod, "other").is_none());
    // The adopted pod counts: one more is created, not two.
    assert_eq!(plan.created_pods().len(), 1);
}

#[test]
fn scaling_mid_rollout_is_proportional() {
    // The example of the Kubernetes documentation: 10 replicas, maxSurge 3, maxUnavailable 2,
    // a rollout stuck with 8 old and 5 new pods; scaled to 15, the old ReplicaSet gets 3 more
    // and the new one 2.
    let mut world = World::new(2);
    world.deployments.push(with_strategy(
        deployment("web", 10, "v1"),
        IntOrString::Int(3),
        IntOrString::Int(2),
    ));
    world.run_until(
        Duration::from_secs(120),
        |w| rolled_out(&w.deployments[0]),
        |_| {},
    );
    {
        let d = &mut world.deployments[0];
        let spec = d.spec.as_mut().expect("spec");
        spec.template = template("web", "v2");
        if let Some(m) = spec.template.metadata.as_mut() {
            m.annotations = Some(BTreeMap::from([(
                outcome::OUTCOME.to_string(),
                "never-ready".to_string(),
            )]));
        }
        d.metadata.generation = Some(2);
    }
    let sizes = |w: &World| {
        let mut v: Vec<(i64, i32)> = w
            .replica_sets
            .iter()
            .map(|rs| (deployment::revision_of(&rs.metadata), rs_replicas(rs)))
            .collect();
        v.sort_unstable();
        v
    };
    world.run_until(
        Duration::from_secs(120),
        |w| sizes(w) == vec![(1, 8), (2, 5)],
        |_| {},
    );
    // Stuck: nothing more happens.
    let timing = KubeletTiming {
        start_delay: Duration::from_secs(1),
        ..KubeletTiming::default()
    };
    for _ in 0..5 {
        world.round(&timing, &JobBackoff::default());
        world.now = Timestamp::from_second(world.now.as_second() + 1).expect("time");
    }
    assert_eq!(sizes(&world), vec![(1, 8), (2, 5)]);

    world.deployments[0].spec.as_mut().expect("spec").replicas = Some(15);
    world.deployments[0].metadata.generation = Some(3);
    let plan = plan_deployment(
        &world.deployments[0],
        &world.replica_sets,
        &world.pods,
        world.now,
    );
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateReplicaSet(_)))
    );
    world.apply(&plan);
    assert_eq!(sizes(&world), vec![(1, 11), (2, 7)]);
    for rs in &world.replica_sets {
        let a = rs.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            a.get(deployment::DESIRED_REPLICAS).map(String::as_str),
            Some("15")
        );
        assert_eq!(
            a.get(deployment::MAX_REPLICAS).map(String::as_str),
            Some("18")
        );
    }
    // The scaling event is over: the next sync is an ordinary (stuck) rollout again.
    let next = plan_deployment(
        &world.deployments[0],
        &world.replica_sets,
        &world.pods,
        world.now,
    );
    assert!(next.patch_of(Kind::ReplicaSet, "x").is_none());
    assert!(
        next.writes().iter().all(|a| !matches!(
            a,
            Action::Patch {
                kind: Kind::ReplicaSet,
                ..
            }
        )),
        "{:?}",
        next.writes()
    );
}

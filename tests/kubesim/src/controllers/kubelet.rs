//! The kubelet's decisions for pods bound to a simulated node: container states following the
//! outcome contract (see `outcome.rs`), restarts and `CrashLoopBackOff` by `restartPolicy`, the
//! pod phase by the kubelet's rules, the conditions `PodReadyToStartContainers`, `Initialized`,
//! `ContainersReady`, `Ready` and `PodScheduled`, pod and host IPs, and the final delete of a pod
//! whose deletion was requested. Every step is computed from the observed status and the clock,
//! so the simulation survives restarts and never keeps state of its own.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Node, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::actions::{Action, Kind, Plan, status_patch_if_changed};
use super::events::{self, Reporter};
use super::hash::fnv32a;
use super::outcome::{self, Outcome};
use super::pod_state;

/// Timing of the simulated kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeletTiming {
    /// delay from binding to running (per pod: annotation `kubesim.portcullis.dev/start-delay`)
    pub start_delay: Duration,
    /// first CrashLoopBackOff delay (10 s on a real kubelet), doubling per restart
    pub crash_backoff_base: Duration,
    /// upper bound of the CrashLoopBackOff delay (5 min on a real kubelet)
    pub crash_backoff_max: Duration,
}

impl Default for KubeletTiming {
    fn default() -> Self {
        Self {
            start_delay: Duration::from_millis(500),
            crash_backoff_base: Duration::from_secs(10),
            crash_backoff_max: Duration::from_secs(300),
        }
    }
}

impl KubeletTiming {
    /// The back-off before restart number `restarts + 1`.
    pub fn backoff(&self, restarts: i32) -> Duration {
        let exponent = u32::try_from(restarts.saturating_sub(1).clamp(0, 20)).unwrap_or(0);
        self.crash_backoff_base
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.crash_backoff_max)
    }
}

/// Plans one round of the kubelets of all simulated nodes.
pub fn plan_kubelet(pods: &[Pod], nodes: &[Node], now: Timestamp, timing: &KubeletTiming) -> Plan {
    let mut plan = Plan::default();
    for pod in pods {
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        let Some(node) = nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(node_name))
        else {
            continue;
        };
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod_state::is_terminating(pod) {
            // Containers stop at once in the simulation; the kubelet then confirms the deletion
            // with a zero grace period (once: finalizers may keep the pod a while longer).
            let confirmed = pod.metadata.deletion_grace_period_seconds == Some(0);
            if !confirmed || pod.metadata.finalizers.as_ref().is_none_or(Vec::is_empty) {
                if !confirmed && !pod_state::is_finished(pod) {
                    for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                        plan.actions.push(container_event(
                            pod,
                            node_name,
                            &container.name,
                            (
                                false,
                                "Killing",
                                format!("Stopping container {}", container.name),
                            ),
                            now,
                        ));
                    }
                }
                plan.actions.push(Action::Delete {
                    kind: Kind::Pod,
                    namespace,
                    name,
                    uid: pod.metadata.uid.clone(),
                    grace_period_zero: true,
                });
            }
            continue;
        }
        if pod_state::is_finished(pod) {
            continue;
        }
        if let Some(status) = deadline_exceeded(pod, now) {
            plan.actions.push(Action::Event(Box::new(events::event(
                events::reference("v1", "Pod", &pod.metadata),
                Reporter::Kubelet,
                Some(node_name),
                true,
                "DeadlineExceeded",
                DEADLINE_MESSAGE.into(),
                now,
            ))));
            plan.actions.extend(status_patch_if_changed(
                Kind::Pod,
                &namespace,
                &name,
                pod.status.as_ref(),
                &status,
            ));
            continue;
        }
        if let Some(secs) = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds)
            && let Some(start) = pod.status.as_ref().and_then(|s| s.start_time.as_ref())
        {
            let left = start.0.as_second() + secs - now.as_second();
            plan.requeue(Duration::from_secs(u64::try_from(left.max(1)).unwrap_or(1)));
        }
        let (status, wake) = next_status(pod, node, now, timing);
        if let Some(wake) = wake {
            plan.requeue(wake);
        }
        for new in status.container_statuses.iter().flatten() {
            let old = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.name == new.name));
            let image = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .find(|c| c.name == new.name)
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            for event in container_events(old, new, &image, pod) {
                plan.actions
                    .push(container_event(pod, node_name, &new.name, event, now));
            }
        }
        plan.actions.extend(status_patch_if_changed(
            Kind::Pod,
            &namespace,
            &name,
            pod.status.as_ref(),
            &status,
        ));
    }
    plan
}

/// Message of a pod stopped by its `activeDeadlineSeconds`.
pub const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// The final status of a pod that ran past `spec.activeDeadlineSeconds`: the kubelet kills its
/// containers and fails it with reason `DeadlineExceeded`.
pub fn deadline_exceeded(pod: &Pod, now: Timestamp) -> Option<PodStatus> {
    let secs = pod.spec.as_ref()?.active_deadline_seconds?;
    let old = pod.status.clone()?;
    let start = old.start_time.as_ref()?.0;
    if now.as_second() - start.as_second() < secs {
        return None;
    }
    let containers = old.container_statuses.clone().map(|statuses| {
        statuses
            .into_iter()
            .map(|mut c| {
                let started = c
                    .state
                    .as_ref()
                    .and_then(|s| s.running.as_ref())
                    .and_then(|r| r.started_at.clone());
                if c.state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .is_none()
                {
                    c.state = Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 137,
                            reason: Some("Error".into()),
                            started_at: started,
                            finished_at: Some(Time(now)),
                            container_id: c.container_id.clone(),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    });
                }
                c.ready = false;
                c.started = Some(false);
                c
            })
            .collect()
    });
    let conditions = old.conditions.clone().map(|conditions| {
        conditions
            .into_iter()
            .map(|mut c| {
                if matches!(c.type_.as_str(), "Ready" | "ContainersReady") && c.status == "True" {
                    c.status = "False".into();
                    c.reason = Some("PodFailed".into());
                    c.message = None;
                    c.last_transition_time = Some(Time(now));
                }
                c
            })
            .collect()
    });
    Some(PodStatus {
        phase: Some("Failed".into()),
        reason: Some("DeadlineExceeded".into()),
        message: Some(DEADLINE_MESSAGE.into()),
        container_statuses: containers,
        conditions,
        ..old
    })
}

/// An event about one container of a pod, as the kubelet of `node` records it.
fn container_event(
    pod: &Pod,
    node: &str,
    container: &str,
    (warning, reason, message): (bool, &str, String),
    now: Timestamp,
) -> Action {
    let mut involved = events::reference("v1", "Pod", &pod.metadata);
    involved.field_path = Some(format!("spec.containers{{{container}}}"));
    Action::Event(Box::new(events::event(
        involved,
        Reporter::Kubelet,
        Some(node),
        warning,
        reason,
        message,
        now,
    )))
}

fn waiting_reason(status: Option<&ContainerStatus>) -> Option<&str> {
    status?.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

/// The events a container's state change produces: `Pulled`/`Created`/`Started` on every
/// (re)start, `BackOff` on entering CrashLoopBackOff, `Failed`/`BackOff` for image pulls.
pub fn container_events(
    old: Option<&ContainerStatus>,
    new: &ContainerStatus,
    image: &str,
    pod: &Pod,
) -> Vec<(bool, &'static str, String)> {
    let mut out = Vec::new();
    let was_running = old
        .and_then(|o| o.state.as_ref())
        .and_then(|s| s.running.as_ref())
        .is_some();
    let is_running = new
        .state
        .as_ref()
        .and_then(|s| s.running.as_ref())
        .is_some();
    let restarted = old.is_some_and(|o| o.restart_count < new.restart_count);
    if is_running && (!was_running || restarted) {
        out.push((
            false,
            "Pulled",
            format!("Container image \"{image}\" already present on machine"),
        ));
        out.push((false, "Created", format!("Created container: {}", new.name)));
        out.push((false, "Started", format!("Started container {}", new.name)));
    }
    let before = waiting_reason(old);
    let after = waiting_reason(Some(new));
    if after != before {
        match after {
            Some("CrashLoopBackOff") => out.push((
                true,
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {}_{}({})",
                    new.name,
                    pod.metadata.name.clone().unwrap_or_default(),
                    pod.metadata.namespace.clone().unwrap_or_default(),
                    pod.metadata.uid.clone().unwrap_or_default()
                ),
            )),
            Some("ErrImagePull") => out.push((
                true,
                "Failed",
                format!("Failed to pull image \"{image}\": not found (simulated)"),
            )),
            Some("ImagePullBackOff") => out.push((
                false,
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
            )),
            _ => {}
        }
    }
    out
}

fn at_plus(t: Timestamp, d: Duration) -> i64 {
    t.as_millisecond() + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

fn until(target_ms: i64, now: Timestamp) -> Duration {
    Duration::from_millis(
        u64::try_from(target_ms - now.as_millisecond())
            .unwrap_or(0)
            .max(1),
    )
}

fn hex_id(seed: &str) -> String {
    (0..8u32)
        .map(|i| format!("{:08x}", fnv32a(format!("{seed}/{i}").as_bytes())))
        .collect()
}

fn full_image(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    let qualified = if !image.contains('/') {
        format!("docker.io/library/{image}")
    } else if first.contains('.') || first.contains(':') || first == "localhost" {
        image.to_string()
    } else {
        format!("docker.io/{image}")
    };
    let last = qualified.rsplit('/').next().unwrap_or_default();
    if last.contains(':') || last.contains('@') {
        qualified
    } else {
        format!("{qualified}:latest")
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..ContainerState::default()
    }
}

fn running(at: Timestamp) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(Time(at)),
        }),
        ..ContainerState::default()
    }
}

struct ContainerStep {
    status: ContainerStatus,
    wake: Option<Duration>,
}

struct PodFacts<'a> {
    pod: &'a Pod,
    ready_at_ms: i64,
    run_for: Result<Duration, String>,
    restart_policy: &'a str,
    timing: &'a KubeletTiming,
    now: Timestamp,
}

/// One step of one container's state machine.
fn step_container(
    facts: &PodFacts<'_>,
    name: &str,
    image: &str,
    prev: Option<&ContainerStatus>,
    outcome: Outcome,
) -> ContainerStep {
    let now = facts.now;
    let uid = facts.pod.metadata.uid.clone().unwrap_or_default();
    let restarts = prev.map(|p| p.restart_count).unwrap_or(0);
    let base = ContainerStatus {
        name: name.to_string(),
        image: full_image(image),
        image_id: String::new(),
        ready: false,
        restart_count: restarts,
        started: Some(false),
        last_state: prev.and_then(|p| p.last_state.clone()),
        container_id: prev.and_then(|p| p.container_id.clone()),
        ..ContainerStatus::default()
    };
    let image_id = format!(
        "{}@sha256:{}",
        full_image(image)
            .rsplit_once(':')
            .map(|(n, _)| n.to_string())
            .unwrap_or_default(),
        hex_id(image)
    );
    let start_run = |restart_count: i32, last_state: Option<ContainerState>| {
        let ready = outcome != Outcome::NeverReady;
        ContainerStep {
            status: ContainerStatus {
                ready,
                started: Some(true),
                restart_count,
                state: Some(running(now)),
                last_state,
                image_id: image_id.clone(),
                container_id: Some(format!(
                    "containerd://{}",
                    hex_id(&format!("{uid}/{name}/{restart_count}"))
                )),
                ..base.clone()
            },
            wake: match (&outcome, &facts.run_for) {
                (Outcome::Exit(_), Ok(d)) => Some((*d).max(Duration::from_millis(1))),
                _ => None,
            },
        }
    };
    if let Outcome::Invalid(message) = &outcome {
        return ContainerStep {
            status: ContainerStatus {
                state: Some(waiting("KubesimInvalidOutcome", Some(message.clone()))),
                ..base
            },
            wake: None,
        };
    }
    if let (Outcome::Exit(_), Err(message)) = (&outcome, &facts.run_for) {
        return ContainerStep {
            status: ContainerStatus {
                state: Some(waiting("KubesimInvalidOutcome", Some(message.clone()))),
                ..base
            },
            wake: None,
        };
    }
    let state = prev.and_then(|p| p.state.as_ref());
    if let Some(run) = state.and_then(|s| s.running.as_ref()) {
        let started = run.started_at.as_ref().map(|t| t.0).unwrap_or(now);
        let Outcome::Exit(code) = outcome else {
            return ContainerStep {
                status: ContainerStatus {
                    ready: outcome != Outcome::NeverReady,
                    started: Some(true),
                    state: Some(running(started)),
                    image_id: prev.map(|p| p.image_id.clone()).unwrap_or(image_id),
                    ..base
                },
                wake: None,
            };
        };
        let run_for = facts.run_for.clone().unwrap_or(outcome::DEFAULT_RUN_FOR);
        let exit_at = at_plus(started, run_for);
        if now.as_millisecond() < exit_at {
            return ContainerStep {
                status: ContainerStatus {
                    ready: true,
                    started: Some(true),
                    state: Some(running(started)),
                    image_id: prev.map(|p| p.image_id.clone()).unwrap_or(image_id),
                    ..base
                },
                wake: Some(until(exit_at, now)),
            };
        }
        let terminated = ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(if code == 0 { "Completed" } else { "Error" }.into()),
                started_at: Some(Time(started)),
                finished_at: Some(Time(now)),
                container_id: base.container_id.clone(),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        };
        let restart = match facts.restart_policy {
            "Never" => false,
            "OnFailure" => code != 0,
            _ => true,
        };
        if !restart {
            return ContainerStep {
                status: ContainerStatus {
                    state: Some(terminated),
                    image_id: prev.map(|p| p.image_id.clone()).unwrap_or(image_id),
                    ..base
                },
                wake: None,
            };
        }
        if restarts == 0 {
            // The first restart happens at once; back-off applies from the second.
            return start_run(1, Some(terminated));
        }
        let delay = facts.timing.backoff(restarts);
        return ContainerStep {
            status: ContainerStatus {
                state: Some(waiting(
                    "CrashLoopBackOff",
                    Some(crash_message(delay, name, facts.pod)),
                )),
                last_state: Some(terminated),
                image_id: prev.map(|p| p.image_id.clone()).unwrap_or(image_id),
                ..base
            },
            wake: Some(delay),
        };
    }
    if state.and_then(|s| s.terminated.as_ref()).is_some() {
        // Terminated for good (the restart policy said so).
        return ContainerStep {
            status: prev.cloned().unwrap_or(base),
            wake: None,
        };
    }
    let waiting_reason = state
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.clone())
        .unwrap_or_default();
    if waiting_reason == "CrashLoopBackOff" {
        let finished = prev
            .and_then(|p| p.last_state.as_ref())
            .and_then(|s| s.terminated.as_ref())
            .and_then(|t| t.finished_at.as_ref())
            .map(|t| t.0)
            .unwrap_or(now);
        let restart_at = at_plus(finished, facts.timing.backoff(restarts));
        if now.as_millisecond() >= restart_at {
            return start_run(restarts + 1, prev.and_then(|p| p.last_state.clone()));
        }
        return ContainerStep {
            status: prev.cloned().unwrap_or(base),
            wake: Some(until(restart_at, now)),
        };
    }
    // Not started yet.
    if now.as_millisecond() < facts.ready_at_ms {
        let reason = if waiting_reason.is_empty() || waiting_reason == "KubesimInvalidOutcome" {
            "ContainerCreating".to_string()
        } else {
            waiting_reason
        };
        return ContainerStep {
            status: ContainerStatus {
                state: Some(waiting(&reason, None)),
                ..base
            },
            wake: Some(until(facts.ready_at_ms, now)),
        };
    }
    if outcome == Outcome::ImagePullError {
        let (reason, message, wake) =
            if waiting_reason == "ErrImagePull" || waiting_reason == "ImagePullBackOff" {
                (
                    "ImagePullBackOff",
                    format!("Back-off pulling image \"{image}\""),
                    None,
                )
            } else {
                (
                    "ErrImagePull",
                    format!(
                        "failed to pull and unpack image \"{}\": not found (simulated)",
                        full_image(image)
                    ),
                    Some(Duration::from_secs(1)),
                )
            };
        return ContainerStep {
            status: ContainerStatus {
                state: Some(waiting(reason, Some(message))),
                ..base
            },
            wake,
        };
    }
    start_run(restarts, prev.and_then(|p| p.last_state.clone()))
}

fn crash_message(delay: Duration, container: &str, pod: &Pod) -> String {
    format!(
        "back-off {}s restarting failed container={} pod={}_{}({})",
        delay.as_secs(),
        container,
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

fn pod_ip(pod: &Pod, node: &Node, host_ip: &str) -> String {
    if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        return host_ip.to_string();
    }
    let prefix = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|ip| ip.rsplit_once('.').map(|(p, _)| p.to_string()))
        .unwrap_or_else(|| "10.244.0".to_string());
    let seed = pod
        .metadata
        .uid
        .clone()
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    format!("{prefix}.{}", 2 + fnv32a(seed.as_bytes()) % 250)
}

fn host_ip(node: &Node) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .unwrap_or_else(|| "172.18.0.2".to_string())
}

/// The next status of a bound, live pod and when to look again.
pub fn next_status(
    pod: &Pod,
    node: &Node,
    now: Timestamp,
    timing: &KubeletTiming,
) -> (PodStatus, Option<Duration>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let start = old.start_time.as_ref().map(|t| t.0).unwrap_or(now);
    let first_sight = old.start_time.is_none();
    let delay = outcome::start_delay(pod, timing.start_delay);
    let facts = PodFacts {
        pod,
        ready_at_ms: at_plus(start, *delay.as_ref().unwrap_or(&timing.start_delay)),
        run_for: outcome::run_for(pod),
        restart_policy: spec.restart_policy.as_deref().unwrap_or("Always"),
        timing,
        now,
    };
    let mut wake: Option<Duration> = None;
    let mut keep_earliest = |w: Option<Duration>| {
        if let Some(w) = w {
            wake = Some(wake.map_or(w, |x: Duration| x.min(w)));
        }
    };
    let initialized = !first_sight && now.as_millisecond() >= facts.ready_at_ms;

    let mut statuses = Vec::new();
    for container in &spec.containers {
        let prev = old
            .container_statuses
            .iter()
            .flatten()
            .find(|c| c.name == container.name);
        let mut oc = outcome::container_outcome(pod, &container.name);
        if let Err(message) = &delay {
            oc = Outcome::Invalid(message.clone());
        }
        let step = if first_sight {
            ContainerStep {
                status: ContainerStatus {
                    name: container.name.clone(),
                    image: full_image(container.image.as_deref().unwrap_or_default()),
                    started: Some(false),
                    state: Some(waiting(
                        if spec.init_containers.as_ref().is_some_and(|i| !i.is_empty()) {
                            "PodInitializing"
                        } else {
                            "ContainerCreating"
                        },
                        None,
                    )),
                    ..ContainerStatus::default()
                },
                wake: Some(until(facts.ready_at_ms, now)),
            }
        } else {
            step_container(
                &facts,
                &container.name,
                container.image.as_deref().unwrap_or_default(),
                prev,
                oc,
            )
        };
        keep_earliest(step.wake);
        statuses.push(step.status);
    }

    let init_statuses: Option<Vec<ContainerStatus>> = spec.init_containers.as_ref().map(|inits| {
        inits
            .iter()
            .map(|c| {
                let image = full_image(c.image.as_deref().unwrap_or_default());
                let state = if initialized {
                    ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 0,
                            reason: Some("Completed".into()),
                            started_at: Some(Time(start)),
                            finished_at: Some(Time(start)),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    }
                } else {
                    waiting("PodInitializing", None)
                };
                ContainerStatus {
                    name: c.name.clone(),
                    image,
                    ready: initialized,
                    started: Some(false),
                    state: Some(state),
                    ..ContainerStatus::default()
                }
            })
            .collect()
    });

    // Phase by the kubelet's rules: a container that never ran keeps the pod Pending.
    let mut never_ran = 0;
    let mut run = 0;
    let mut stopped = 0;
    let mut succeeded = 0;
    for s in &statuses {
        let st = s.state.as_ref();
        if st.and_then(|x| x.running.as_ref()).is_some() {
            run += 1;
        } else if let Some(t) = st.and_then(|x| x.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .is_some()
        {
            stopped += 1;
        } else {
            never_ran += 1;
        }
    }
    let restart_policy = facts.restart_policy;
    let any_restarting = statuses.iter().any(|s| {
        s.state.as_ref().and_then(|x| x.waiting.as_ref()).is_some()
            && s.last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .is_some()
    });
    let phase = if !initialized || never_ran > 0 {
        "Pending"
    } else if run > 0 || any_restarting {
        "Running"
    } else if stopped > 0 {
        if restart_policy == "Always" {
            "Running"
        } else if stopped == succeeded {
            "Succeeded"
        } else if restart_policy == "OnFailure" {
            "Running"
        } else {
            "Failed"
        }
    } else {
        "Pending"
    };
    let finished = phase == "Succeeded" || phase == "Failed";

    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let containers_ready = unready.is_empty() && !finished;
    let gates_missing: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .filter(|g| pod_state::condition(pod, &g.condition_type).is_none_or(|c| c.status != "True"))
        .map(|g| g.condition_type.clone())
        .collect();
    let unready_message = format!("containers with unready status: [{}]", unready.join(" "));

    let mut conditions: Vec<PodCondition> = Vec::new();
    let mut set = |type_: &str, ok: bool, reason: Option<String>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let previous = old.conditions.iter().flatten().find(|c| c.type_ == type_);
        let since = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(Time(now)),
        };
        conditions.push(PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: if ok { None } else { reason },
            message: if ok { None } else { message },
            last_probe_time: None,
            last_transition_time: since,
            observed_generation: None,
        });
    };
    set(
        "PodReadyToStartContainers",
        !first_sight && !finished,
        None,
        None,
    );
    let incomplete_inits: Vec<String> = if initialized {
        Vec::new()
    } else {
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect()
    };
    set(
        "Initialized",
        incomplete_inits.is_empty() || finished,
        Some("ContainersNotInitialized".into()),
        Some(format!(
            "containers with incomplete status: [{}]",
            incomplete_inits.join(" ")
        )),
    );
    let (reason, message) = if finished {
        ("PodCompleted".to_string(), String::new())
    } else if !unready.is_empty() {
        ("ContainersNotReady".to_string(), unready_message.clone())
    } else {
        (
            "ReadinessGatesNotReady".to_string(),
            format!(
                "corresponding condition of pod readiness gate \"{}\" does not exist.",
                gates_missing.join(", ")
            ),
        )
    };
    let message = (!message.is_empty()).then_some(message);
    set(
        "Ready",
        containers_ready && gates_missing.is_empty(),
        Some(reason.clone()),
        message.clone(),
    );
    set("ContainersReady", containers_ready, Some(reason), message);
    set("PodScheduled", true, None, None);
    // Conditions written by others (readiness gates, disruption…) are kept.
    for c in old.conditions.iter().flatten() {
        if !conditions.iter().any(|x| x.type_ == c.type_) {
            conditions.push(c.clone());
        }
    }

    let host = host_ip(node);
    let ip = pod_ip(pod, node, &host);
    let status = PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions),
        host_ip: Some(host.clone()),
        host_ips: Some(vec![HostIP { ip: host }]),
        pod_ip: Some(ip.clone()),
        pod_ips: Some(vec![PodIP { ip }]),
        start_time: Some(Time(start)),
        container_statuses: Some(statuses),
        init_container_statuses: init_statuses,
        qos_class: old.qos_class.clone(),
        ..PodStatus::default()
    };
    if finished {
        wake = None;
    }
    (status, wake)
}

//! The simulated nodes: `kubesim-node-1` … `kubesim-node-N`, Ready and schedulable, with the
//! labels, capacity, addresses and node info a kubelet reports.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::json;

use super::actions::{Action, Kind, Plan};
use super::hash::fnv32a;

/// The name of simulated node `index` (1-based).
pub fn node_name(index: usize) -> String {
    format!("kubesim-node-{index}")
}

fn resources() -> BTreeMap<String, Quantity> {
    [
        ("cpu", "4"),
        ("memory", "16393244Ki"),
        ("pods", "110"),
        ("ephemeral-storage", "102626232Ki"),
        ("hugepages-2Mi", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
    .collect()
}

/// The status a healthy simulated kubelet reports for node `index`.
pub fn node_status(index: usize, now: Timestamp) -> NodeStatus {
    let name = node_name(index);
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    };
    let id = format!(
        "{:08x}{:08x}{:08x}{:08x}",
        fnv32a(name.as_bytes()),
        fnv32a(b"m"),
        index,
        fnv32a(b"id")
    );
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: format!("172.18.0.{}", index + 1),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name.clone(),
            },
        ]),
        allocatable: Some(resources()),
        capacity: Some(resources()),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                "False",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            condition(
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            condition(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            ),
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: 10250 }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".into(),
            boot_id: id.clone(),
            container_runtime_version: "containerd://1.7.0-kubesim".into(),
            kernel_version: "6.1.0-kubesim".into(),
            kube_proxy_version: String::new(),
            kubelet_version: "v1.32.0".into(),
            machine_id: id.clone(),
            operating_system: "linux".into(),
            os_image: "kubesim simulated node".into(),
            system_uuid: id,
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// The Node object of simulated node `index` (status included; it is also written through
/// `nodes/status` in case the server drops it on create).
pub fn node(index: usize, now: Timestamp) -> Node {
    let name = node_name(index);
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", "amd64"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_string(),
                "0".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(format!("10.244.{}.0/24", index - 1)),
            pod_cidrs: Some(vec![format!("10.244.{}.0/24", index - 1)]),
            provider_id: Some(format!("kubesim://{name}")),
            ..NodeSpec::default()
        }),
        status: Some(node_status(index, now)),
    }
}

/// Creates the missing simulated nodes and restores a Ready status on those without one.
pub fn plan_nodes(existing: &[Node], count: usize, now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    for index in 1..=count {
        let name = node_name(index);
        match existing
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(name.as_str()))
        {
            None => plan
                .actions
                .push(Action::CreateNode(Box::new(node(index, now)))),
            Some(found) => {
                let ready = found
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready");
                if !ready {
                    plan.actions.push(Action::PatchStatus {
                        kind: Kind::Node,
                        namespace: String::new(),
                        name,
                        patch: json!({ "status": node_status(index, now) }),
                    });
                }
            }
        }
    }
    plan
}

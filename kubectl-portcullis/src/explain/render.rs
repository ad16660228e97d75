//! `-o table`: one block per object, `Label:  value` lines aligned, colour through
//! [`Style`].

use serde_json::Value;

use super::core::{Explanation, Sourced};
use crate::output::Style;

/// One line of a block: a label and one or more values (continuations are aligned).
struct Line {
    label: &'static str,
    values: Vec<String>,
}

fn line(label: &'static str, value: impl Into<String>) -> Line {
    Line {
        label,
        values: vec![value.into()],
    }
}

/// All blocks, separated by blank lines.
pub fn table(explanations: &[Explanation], style: &Style) -> String {
    if explanations.is_empty() {
        return "No Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod in the \
                manifests.\n"
            .to_owned();
    }
    explanations
        .iter()
        .map(|e| block(e, style))
        .collect::<Vec<_>>()
        .join("\n")
}

fn sourced(value: &Sourced) -> String {
    format!("{} ({})", value.value, value.source)
}

fn list(values: &[String]) -> String {
    if values.is_empty() {
        "none".to_owned()
    } else {
        values.join(", ")
    }
}

/// `op path value` per JSON Patch operation.
fn patch_lines(patch: &Value) -> Vec<String> {
    patch
        .as_array()
        .into_iter()
        .flatten()
        .map(|op| {
            let field = |name: &str| op.get(name).and_then(Value::as_str).unwrap_or_default();
            match op.get("value") {
                Some(value) => format!("{} {} {value}", field("op"), field("path")),
                None => format!("{} {}", field("op"), field("path")),
            }
        })
        .collect()
}

/// The webhook's answer in a few words.
fn verdict(e: &Explanation, style: &Style) -> String {
    if !e.allowed {
        return style.bad("rejected");
    }
    let word = if e.patch.is_some() {
        "allowed with a patch"
    } else {
        "allowed"
    };
    match &e.message {
        Some(message) => format!("{word}: {message}"),
        None => word.to_owned(),
    }
}

fn block(e: &Explanation, style: &Style) -> String {
    let mut lines = Vec::new();
    let enabled = if e.enabled {
        style.good("yes")
    } else {
        style.pending("no")
    };
    lines.push(line("Enabled", format!("{enabled}, {}", e.reason)));
    if let Some(app) = &e.app {
        lines.push(line("App", sourced(app)));
    }
    if let Some(workload) = &e.workload {
        lines.push(line("Workload", sourced(workload)));
    }
    if let Some(version) = &e.version {
        lines.push(line("Version", sourced(version)));
    }
    if let Some(app) = &e.keptn_app {
        let kind = e.app_type.as_deref().unwrap_or("?");
        lines.push(line("KeptnApp", format!("{app} ({kind})")));
    }
    if let Some(name) = &e.keptn_workload {
        lines.push(line("KeptnWorkload", name.clone()));
    }
    if let Some(name) = &e.keptn_workload_version {
        lines.push(line("KeptnWorkloadVersion", name.clone()));
    }
    if let Some(name) = &e.keptn_app_version {
        lines.push(line("KeptnAppVersion", name.clone()));
    }
    if e.workload.is_some() {
        lines.push(line("Pre-deployment tasks", list(&e.pre_deployment_tasks)));
        lines.push(line(
            "Pre-deployment evaluations",
            list(&e.pre_deployment_evaluations),
        ));
        lines.push(line(
            "Post-deployment tasks",
            list(&e.post_deployment_tasks),
        ));
        lines.push(line(
            "Post-deployment evaluations",
            list(&e.post_deployment_evaluations),
        ));
        if !e.metadata.is_empty() {
            let pairs: Vec<String> = e.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
            lines.push(line("Metadata", pairs.join(", ")));
        }
    }
    match &e.webhook_path {
        Some(path) => {
            lines.push(line("Webhook", format!("{} ({path})", verdict(e, style))));
            if let Some(error) = &e.error {
                lines.push(line("Error", style.bad(error)));
            }
            if let Some(patch) = &e.patch {
                lines.push(Line {
                    label: "Patch",
                    values: patch_lines(patch),
                });
            }
            if !e.writes.is_empty() {
                lines.push(Line {
                    label: "Writes",
                    values: e.writes.clone(),
                });
            }
        }
        None => lines.push(line("Webhook", "not admitted by the webhook; its pods are")),
    }
    if let Some(pods) = &e.pods {
        let path = pods.webhook_path.as_deref().unwrap_or_default();
        lines.push(line("Pods", format!("{} ({path})", verdict(pods, style))));
        if let Some(error) = &pods.error {
            lines.push(line("Pod error", style.bad(error)));
        }
        if let Some(patch) = &pods.patch {
            lines.push(Line {
                label: "Pod patch",
                values: patch_lines(patch),
            });
        }
        if e.webhook_path.is_none() && !pods.writes.is_empty() {
            lines.push(Line {
                label: "Writes",
                values: pods.writes.clone(),
            });
        }
    }
    let mut notes = e.notes.clone();
    for note in e.pods.iter().flat_map(|p| &p.notes) {
        if !notes.contains(note) {
            notes.push(note.clone());
        }
    }
    for note in notes {
        lines.push(line("Note", note));
    }
    let width = lines.iter().map(|l| l.label.len()).max().unwrap_or(0) + 1;
    let mut out = format!(
        "{}\n",
        style.bold(&format!("{} {}/{}", e.kind, e.namespace, e.name))
    );
    for l in lines {
        for (i, value) in l.values.iter().enumerate() {
            let label = if i == 0 {
                format!("{}:", l.label)
            } else {
                String::new()
            };
            out.push_str(&format!("  {label:<width$}  {value}\n", width = width));
        }
    }
    out
}

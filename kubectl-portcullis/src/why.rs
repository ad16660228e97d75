//! `kubectl portcullis why POD`: which KeptnWorkloadVersion (and KeptnAppVersion) holds a gated
//! pod, in which phase, what failed or is pending, and what to do; for a released pod, when and
//! by whom it was released; for a pod no Keptn workload owns, that nothing holds it.
//!
//! [`diagnose`] decides from plain objects with the gate's own release decision; this module
//! reads the cluster and draws the answer.

pub mod diagnose;

use std::process::ExitCode;

use clap::Args;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client};
use shared::crd::{
    KeptnApp, KeptnAppVersion, KeptnConfig, KeptnEvaluation, KeptnEvaluationDefinition, KeptnTask,
    KeptnTaskDefinition, KeptnWorkload, KeptnWorkloadVersion,
};

use crate::cli::Global;
use crate::output::{Style, serialized, table};
use crate::status::list;
use diagnose::{Diagnosis, World, diagnose};

/// Flags of `why`.
#[derive(Debug, Args)]
pub struct WhyArgs {
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// The install namespace, where task and evaluation definitions are looked up when the
    /// pod's namespace has none (the gate's `KEPTN_NAMESPACE`).
    #[arg(
        long,
        env = "KEPTN_NAMESPACE",
        default_value = "portcullis-system",
        hide_env_values = true
    )]
    pub keptn_namespace: String,
}

/// Runs `why`.
pub async fn run(args: &WhyArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let (client, ns) = global.client().await?;
    let style = Style::from_global(global);
    let name = args
        .pod
        .strip_prefix("pod/")
        .or_else(|| args.pod.strip_prefix("pods/"))
        .unwrap_or(&args.pod);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let Some(pod) = pods.get_opt(name).await? else {
        anyhow::bail!("pod {name} not found in namespace {ns}");
    };
    let keptn_ns = args.keptn_namespace.as_str();
    let (workloads, apps, app_versions, workload_versions, tasks, evaluations, events) = tokio::try_join!(
        list::<KeptnWorkload>(&client, Some(&ns)),
        list::<KeptnApp>(&client, Some(&ns)),
        list::<KeptnAppVersion>(&client, Some(&ns)),
        list::<KeptnWorkloadVersion>(&client, Some(&ns)),
        list::<KeptnTask>(&client, Some(&ns)),
        list::<KeptnEvaluation>(&client, Some(&ns)),
        list::<Event>(&client, Some(&ns)),
    )?;
    // Definitions resolve in the pod's namespace, then the install namespace (which a user may
    // not be allowed to read: then only the first counts).
    let mut task_definitions: Vec<String> = list::<KeptnTaskDefinition>(&client, Some(&ns))
        .await?
        .into_iter()
        .chain(optional(
            list::<KeptnTaskDefinition>(&client, Some(keptn_ns)).await,
        ))
        .filter_map(|d| d.metadata.name)
        .collect();
    task_definitions.sort();
    task_definitions.dedup();
    let evaluation_definitions: Vec<KeptnEvaluationDefinition> =
        list::<KeptnEvaluationDefinition>(&client, Some(&ns))
            .await?
            .into_iter()
            .chain(optional(
                list::<KeptnEvaluationDefinition>(&client, Some(keptn_ns)).await,
            ))
            .collect();
    let blocking = block_deployment(&client).await;
    let world = World {
        workloads: &workloads,
        apps: &apps,
        app_versions: &app_versions,
        workload_versions: &workload_versions,
        tasks: &tasks,
        evaluations: &evaluations,
        task_definitions: &task_definitions,
        evaluation_definitions: &evaluation_definitions,
        events: &events,
        blocking,
        keptn_namespace: keptn_ns,
        now: Timestamp::now(),
    };
    let diagnosis = diagnose(&pod, &world);
    match serialized(style.format, &diagnosis)? {
        Some(text) => print!("{text}"),
        None => print!("{}", render(&diagnosis, &style)),
    }
    Ok(ExitCode::SUCCESS)
}

fn optional<T>(result: anyhow::Result<Vec<T>>) -> Vec<T> {
    result.unwrap_or_default()
}

/// `blockDeployment` as the gate has it: from a KeptnConfig (the last one wins there; any one
/// here), `true` when there is none or it cannot be read.
async fn block_deployment(client: &Client) -> bool {
    let configs: Api<KeptnConfig> = Api::all(client.clone());
    match configs.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .map(|c| lifecycle::config::RuntimeConfig::from_spec(&c.spec).0)
            .next_back()
            .is_none_or(|c| c.block_deployment),
        Err(_) => true,
    }
}

/// The diagnosis as text.
pub fn render(d: &Diagnosis, style: &Style) -> String {
    let mut out = String::new();
    let gate = if d.gated {
        style.pending("gated")
    } else {
        "not gated".to_owned()
    };
    out.push_str(&format!(
        "{} {}/{}   {}   ({gate})\n",
        style.bold("Pod"),
        d.namespace,
        style.bold(&d.pod),
        verdict_word(d, style)
    ));
    let mut objects: Vec<Vec<String>> = Vec::new();
    if let Some(app) = &d.app {
        objects.push(vec!["KeptnApp".into(), app.clone(), "-".into(), "-".into()]);
    }
    if let Some(w) = &d.workload {
        objects.push(vec![
            "KeptnWorkload".into(),
            w.clone(),
            "-".into(),
            "-".into(),
        ]);
    }
    for (kind, v) in [
        ("KeptnWorkloadVersion", &d.workload_version),
        ("KeptnAppVersion", &d.app_version),
    ] {
        if let Some(v) = v {
            objects.push(vec![
                kind.into(),
                v.name.clone(),
                v.status
                    .as_deref()
                    .map(|s| style.state(s))
                    .unwrap_or_else(|| style.bad("NotFound")),
                if v.current_phase.is_empty() {
                    "-".into()
                } else {
                    v.current_phase.clone()
                },
            ]);
        }
    }
    if !objects.is_empty() {
        out.push_str(&indent(&table(
            &["KIND", "NAME", "STATUS", "PHASE"],
            &objects,
        )));
    }
    out.push('\n');
    out.push_str(&format!("{} {}\n", style.bold("Why:"), d.summary));
    if let Some(phase) = &d.phase {
        out.push_str(&format!("  phase: {phase}\n"));
    }
    for line in &d.details {
        out.push_str(&format!("  - {line}\n"));
    }
    if !d.tasks.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = d
            .tasks
            .iter()
            .map(|t| {
                vec![
                    t.owner.clone(),
                    t.name.clone(),
                    t.definition.clone(),
                    style.state(&t.status),
                    dash(&t.job_name),
                    dash(&t.reason),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &["OWNER", "TASK", "DEFINITION", "STATUS", "JOB", "REASON"],
            &rows,
        )));
    }
    if !d.evaluations.is_empty() {
        out.push('\n');
        let mut rows: Vec<Vec<String>> = Vec::new();
        for e in &d.evaluations {
            let head = vec![e.name.clone(), e.definition.clone(), style.state(&e.status)];
            if e.objectives.is_empty() {
                rows.push([head.clone(), vec!["-".into(), "-".into(), "-".into()]].concat());
            }
            for o in &e.objectives {
                rows.push(
                    [
                        head.clone(),
                        vec![
                            o.metric.clone(),
                            dash(&o.value),
                            o.target.clone().unwrap_or_else(|| "-".into()),
                        ],
                    ]
                    .concat(),
                );
            }
        }
        out.push_str(&indent(&table(
            &[
                "EVALUATION",
                "DEFINITION",
                "STATUS",
                "METRIC",
                "VALUE",
                "TARGET",
            ],
            &rows,
        )));
    }
    if let Some(r) = &d.release {
        out.push('\n');
        let rows = vec![
            vec![
                "released at".into(),
                r.at.clone().unwrap_or_else(|| "-".into()),
            ],
            vec!["released by".into(), r.by.clone()],
            vec![
                "held for".into(),
                r.held_for.clone().unwrap_or_else(|| "-".into()),
            ],
            vec![
                "scheduled at".into(),
                r.scheduled_at.clone().unwrap_or_else(|| "-".into()),
            ],
            vec!["node".into(), r.node.clone().unwrap_or_else(|| "-".into())],
        ];
        out.push_str(&indent(&table(&["RELEASE", ""], &rows)));
    }
    if !d.advice.is_empty() {
        out.push('\n');
        out.push_str(&style.bold("What to do:"));
        out.push('\n');
        for line in &d.advice {
            out.push_str(&format!("  - {line}\n"));
        }
    }
    if !d.events.is_empty() {
        out.push('\n');
        out.push_str(&style.bold("Events:"));
        out.push('\n');
        let rows: Vec<Vec<String>> = d
            .events
            .iter()
            .rev()
            .take(10)
            .rev()
            .map(|e| {
                vec![
                    e.time.clone().unwrap_or_else(|| "-".into()),
                    if e.type_ == "Warning" {
                        style.bad(&e.type_)
                    } else {
                        e.type_.clone()
                    },
                    e.reason.clone(),
                    dash(&e.from),
                    e.message.clone(),
                ]
            })
            .collect();
        out.push_str(&indent(&table(
            &["TIME", "TYPE", "REASON", "FROM", "MESSAGE"],
            &rows,
        )));
    }
    out
}

fn verdict_word(d: &Diagnosis, style: &Style) -> String {
    let word = d.verdict.word();
    match d.verdict {
        diagnose::Verdict::Held => style.bad(word),
        diagnose::Verdict::Released => style.good(word),
        _ => style.pending(word),
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests;

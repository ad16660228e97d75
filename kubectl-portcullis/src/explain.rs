//! `kubectl portcullis explain -f FILE|-`: what the webhook will do with the workloads of some
//! manifests, and why, before they are applied.
//!
//! For every Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob and Pod: whether
//! Portcullis takes it over (and why not), its app, workload and version with the key each comes
//! from, the KeptnApp, KeptnWorkload, KeptnWorkloadVersion and KeptnAppVersion it leads to, its
//! tasks and evaluations, and the webhook's answer (patch or error). The answers are the
//! webhook's own: each object is admitted by the webhook's pure core ([`core`]); nothing here
//! decides a rule of its own.
//!
//! The namespace: `--namespace-enabled` says every target namespace is enabled; else a Namespace
//! of the manifests decides; else it is read from the cluster when one is reachable; else it
//! counts as not enabled, with a note.

pub mod core;
pub mod manifest;
pub mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::Namespace;

pub use self::core::{Explanation, Options, Sourced, explain};
use crate::cli::Global;
use crate::output::{Style, serialized};

/// How long the cluster may take to answer for the namespaces.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Manifests: files, directories (their .yaml, .yml and .json files) or `-` for stdin;
    /// multi-document YAML or JSON, `List` kinds too.
    #[arg(short = 'f', long = "filename", required = true, value_name = "FILE|-")]
    pub filenames: Vec<PathBuf>,
    /// The namespaces the workloads go to are enabled for Portcullis (do not ask the cluster).
    #[arg(long)]
    pub namespace_enabled: bool,
}

/// Runs `explain`: exit code 0 whatever the webhook would answer; an error (exit code 1) only
/// for unreadable input.
pub async fn run(args: &ExplainArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let objects = manifest::read_inputs(&args.filenames)?;
    let options = options(&objects, args, global).await;
    let explanations = explain(&objects, &options);
    let style = Style::from_global(global);
    let text = match serialized(style.format, &explanations)? {
        Some(text) => text,
        None => render::table(&explanations, &style),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The options: the default namespace (`-n`, else the kubeconfig's, else `default`) and the
/// namespaces the cluster knows, when it must be asked and can be.
async fn options(objects: &[serde_json::Value], args: &ExplainArgs, global: &Global) -> Options {
    let mut options = Options {
        default_namespace: global
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned()),
        namespace_enabled: args.namespace_enabled,
        ..Options::default()
    };
    let default_matters = global.namespace.is_none() && core::needs_default_namespace(objects);
    if !default_matters && core::namespaces_to_read(objects, &options).is_empty() {
        return options;
    }
    let client = match tokio::time::timeout(CLUSTER_TIMEOUT, global.client()).await {
        Ok(Ok((client, namespace))) => {
            if global.namespace.is_none() {
                options.default_namespace = namespace;
            }
            client
        }
        Ok(Err(err)) => {
            options.cluster_error = Some(format!("no cluster: {err}"));
            return options;
        }
        Err(_) => {
            options.cluster_error = Some("no cluster: the kubeconfig took too long".into());
            return options;
        }
    };
    let api: kube::Api<Namespace> = kube::Api::all(client);
    for name in core::namespaces_to_read(objects, &options) {
        // Metadata only: enablement reads annotations and labels, as the webhook does.
        match tokio::time::timeout(CLUSTER_TIMEOUT, api.get_metadata_opt(&name)).await {
            Ok(Ok(found)) => {
                options.cluster_namespaces.insert(name, found);
            }
            Ok(Err(err)) => {
                options.cluster_error = Some(format!("reading namespace {name}: {err}"));
                break;
            }
            Err(_) => {
                options.cluster_error = Some(format!(
                    "reading namespace {name}: no answer within {}s",
                    CLUSTER_TIMEOUT.as_secs()
                ));
                break;
            }
        }
    }
    options
}

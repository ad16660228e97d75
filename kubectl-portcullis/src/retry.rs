//! `kubectl portcullis retry app APP` bumps the KeptnApp's `spec.revision` (a new
//! KeptnAppVersion runs the app's checks again); `retry workload WORKLOAD` deletes the workload's
//! current KeptnWorkloadVersion when it is Failed, and the gate creates it again and runs its
//! checks again while the pods keep waiting for it. [`plan`] decides; this module writes.

pub mod plan;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde::Serialize;
use shared::crd::{KeptnApp, KeptnAppVersion, KeptnState, KeptnWorkload, KeptnWorkloadVersion};
use shared::resolve::{create_resource_name, kav_name};

use crate::cli::{Format, Global};
use crate::output::{Style, serialized};
use crate::status::report::current_app_version;
use plan::{AppRetry, RETRIED_AT, WorkloadRetry};

/// Flags of `retry`.
#[derive(Debug, Args)]
pub struct RetryArgs {
    #[command(subcommand)]
    pub what: RetryWhat,
}

/// What to retry.
#[derive(Debug, Subcommand)]
pub enum RetryWhat {
    /// Bump the KeptnApp's spec.revision: a new KeptnAppVersion runs the app's checks again.
    App {
        /// The KeptnApp.
        app: String,
    },
    /// Delete the workload's Failed KeptnWorkloadVersion: the gate creates it again and runs its
    /// checks again; the pods wait for it.
    Workload {
        /// The KeptnWorkload (`<app>-<workload>`), or the workload as annotated
        /// (`keptn.sh/workload`).
        workload: String,
        /// The app of the workload, when its name is ambiguous.
        #[arg(long)]
        app: Option<String>,
        /// Seconds to wait for the gate to create the version again (0: do not wait).
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

/// Runs `retry`.
pub async fn run(args: &RetryArgs, global: &Global) -> anyhow::Result<ExitCode> {
    match &args.what {
        RetryWhat::App { app } => retry_app(app, global).await,
        RetryWhat::Workload {
            workload,
            app,
            timeout,
        } => retry_workload(workload, app.as_deref(), *timeout, global).await,
    }
}

/// What `retry app` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AppRetried {
    #[serde(flatten)]
    retry: AppRetry,
    /// The generation after the bump.
    generation: i64,
    /// Workload versions of the app that failed their own checks (a new app revision does not
    /// run those again).
    failed_workload_versions: Vec<String>,
}

async fn retry_app(name: &str, global: &Global) -> anyhow::Result<ExitCode> {
    let (client, ns) = global.client().await?;
    let style = Style::from_global(global);
    let apps: Api<KeptnApp> = Api::namespaced(client.clone(), &ns);
    let mut attempt = 0;
    let (retry, patched) = loop {
        let Some(app) = apps.get_opt(name).await? else {
            anyhow::bail!("KeptnApp {name} not found in namespace {ns}");
        };
        let retry = plan::plan_app_retry(&app);
        let patch = plan::app_patch(&app, &retry);
        match apps
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(patched) => break (retry, patched),
            // Changed since it was read: read it again (at most a few times).
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 3 => attempt += 1,
            Err(e) => return Err(anyhow::anyhow!("patching KeptnApp {ns}/{name}: {e}")),
        }
    };
    let generation = patched.metadata.generation.unwrap_or(1);
    let mut retry = retry;
    retry.next_app_version = kav_name(&retry.app, &patched.spec.version, generation);
    // Workload versions that failed on their own are not run again by a new app revision.
    let kavs: Vec<KeptnAppVersion> = Api::<KeptnAppVersion>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let kwvs: Vec<KeptnWorkloadVersion> =
        Api::<KeptnWorkloadVersion>::namespaced(client.clone(), &ns)
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
    let listed = current_app_version(&patched, &kavs)
        .map(|k| k.spec.app.workloads.clone())
        .unwrap_or_else(|| patched.spec.workloads.clone());
    let failed: Vec<(String, String)> = listed
        .iter()
        .filter_map(|w| {
            let kwv_name = create_resource_name(&[name, &w.name, &w.version]);
            kwvs.iter()
                .find(|k| k.name_any() == kwv_name)
                .filter(|k| {
                    k.status
                        .as_ref()
                        .is_some_and(|s| s.status == KeptnState::Failed)
                })
                .map(|k| (k.name_any(), k.spec.workload_name.clone()))
        })
        .collect();
    let done = AppRetried {
        retry,
        generation,
        failed_workload_versions: failed.iter().map(|(k, _)| k.clone()).collect(),
    };
    if let Some(text) = serialized(style.format, &done)? {
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let r = &done.retry;
    println!(
        "KeptnApp {}/{}: spec.revision {} → {}",
        r.namespace,
        style.bold(&r.app),
        r.old_revision,
        style.good(&r.new_revision.to_string())
    );
    println!(
        "KeptnAppVersion {} → {} (version {}, generation {}): the app's checks run again there; {} is deprecated",
        r.previous_app_version,
        style.bold(&r.next_app_version),
        r.version,
        generation,
        r.previous_app_version
    );
    for (kwv, workload) in &failed {
        println!(
            "note: KeptnWorkloadVersion {kwv} failed its own checks, which a new app revision does not run again: kubectl portcullis retry workload -n {ns} {workload}"
        );
    }
    println!("follow it: kubectl portcullis status -n {ns} {name} --watch");
    Ok(ExitCode::SUCCESS)
}

/// What `retry workload` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkloadRetried {
    #[serde(flatten)]
    retry: WorkloadRetry,
    deleted: bool,
    /// Whether the gate created the version again within the timeout (`None`: not waited).
    recreated: Option<bool>,
    new_uid: Option<String>,
}

async fn retry_workload(
    query: &str,
    app: Option<&str>,
    timeout: u64,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let (client, ns) = global.client().await?;
    let style = Style::from_global(global);
    let workloads_api: Api<KeptnWorkload> = Api::namespaced(client.clone(), &ns);
    let workloads = workloads_api.list(&Default::default()).await?.items;
    let workload = plan::resolve_workload(query, app, &workloads)
        .map_err(|e| anyhow::anyhow!("{e} in namespace {ns}"))?;
    let kwvs: Api<KeptnWorkloadVersion> = Api::namespaced(client.clone(), &ns);
    let kwv_name = lifecycle::versions::workload_version_name(workload);
    let kwv = kwvs.get_opt(&kwv_name).await?;
    let retry = plan::plan_workload_retry(workload, kwv.as_ref()).map_err(anyhow::Error::msg)?;
    let delete = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(retry.uid.clone()),
            resource_version: None,
        }),
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match kwvs.delete(&retry.workload_version, &delete).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
            anyhow::bail!(
                "KeptnWorkloadVersion {} changed meanwhile ({}); run the command again",
                retry.workload_version,
                e.message
            );
        }
        Err(e) => return Err(e.into()),
    }
    if style.format == Format::Table {
        let failed = if retry.failed_checks.is_empty() {
            String::new()
        } else {
            format!(": {} failed", retry.failed_checks.join(", "))
        };
        println!(
            "deleted KeptnWorkloadVersion {}/{} (uid {}), {} in {}{failed}",
            ns,
            style.bold(&retry.workload_version),
            retry.uid,
            style.bad("Failed"),
            retry.failed_phase
        );
    }
    let mut done = WorkloadRetried {
        retry,
        deleted: true,
        recreated: None,
        new_uid: None,
    };
    if timeout > 0 {
        let new_uid = recreated(
            &kwvs,
            &workloads_api,
            &done.retry,
            Duration::from_secs(timeout),
        )
        .await?;
        done.recreated = Some(new_uid.is_some());
        done.new_uid = new_uid;
    } else {
        // Not waiting: still ask the controller to look once the version is gone.
        nudge(&workloads_api, &done.retry.workload).await?;
    }
    if let Some(text) = serialized(style.format, &done)? {
        print!("{text}");
    } else {
        let r = &done.retry;
        match (&done.recreated, &done.new_uid) {
            (Some(true), Some(uid)) => println!(
                "the gate created KeptnWorkloadVersion {} again (uid {uid}): its checks run again, the pods wait for them",
                style.bold(&r.workload_version)
            ),
            (Some(_), _) => println!(
                "KeptnWorkloadVersion {} was not created again within {timeout}s: is portcullis-gate running?",
                r.workload_version
            ),
            (None, _) => println!(
                "the gate creates KeptnWorkloadVersion {} again and runs its checks again",
                r.workload_version
            ),
        }
        println!(
            "follow it: kubectl portcullis status -n {ns} {} --watch",
            workload.spec.app
        );
    }
    Ok(if done.recreated == Some(false) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Annotates the KeptnWorkload so that its controller reconciles it (and, the version being
/// gone, creates it again).
async fn nudge(workloads: &Api<KeptnWorkload>, name: &str) -> anyhow::Result<()> {
    let at = Timestamp::now().to_string();
    workloads
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&plan::nudge_patch(&at)),
        )
        .await
        .map_err(|e| anyhow::anyhow!("annotating KeptnWorkload {name} with {RETRIED_AT}: {e}"))?;
    Ok(())
}

/// Watches the deleted version's name: once it is gone, asks the KeptnWorkload controller to
/// look (again every few seconds), until a version with another uid appears or `timeout` passes.
/// Returns the new uid.
async fn recreated(
    kwvs: &Api<KeptnWorkloadVersion>,
    workloads: &Api<KeptnWorkload>,
    retry: &WorkloadRetry,
    timeout: Duration,
) -> anyhow::Result<Option<String>> {
    let config =
        watcher::Config::default().fields(&format!("metadata.name={}", retry.workload_version));
    let mut events = watcher(kwvs.clone(), config).boxed();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut gone = false;
    let mut listed_old = false;
    let mut nudged_at: Option<tokio::time::Instant> = None;
    let renudge = Duration::from_secs(5);
    loop {
        let wake = match nudged_at {
            Some(t) => (t + renudge).min(deadline),
            None => deadline,
        };
        let event = tokio::select! {
            event = events.next() => event,
            _ = tokio::time::sleep_until(wake) => {
                if tokio::time::Instant::now() >= deadline {
                    return Ok(None);
                }
                nudge(workloads, &retry.workload).await?;
                nudged_at = Some(tokio::time::Instant::now());
                continue;
            }
        };
        let new_uid = |k: &KeptnWorkloadVersion| k.uid().filter(|u| *u != retry.uid);
        match event {
            None => anyhow::bail!(
                "the watch of KeptnWorkloadVersion {} ended",
                retry.workload_version
            ),
            Some(Err(_)) => continue,
            Some(Ok(watcher::Event::Init)) => listed_old = false,
            Some(Ok(watcher::Event::InitApply(k) | watcher::Event::Apply(k))) => {
                if let Some(uid) = new_uid(&k) {
                    return Ok(Some(uid));
                }
                listed_old = true;
            }
            Some(Ok(watcher::Event::InitDone)) => {
                if !listed_old {
                    gone = true;
                }
            }
            Some(Ok(watcher::Event::Delete(k))) => {
                if k.uid().as_deref() == Some(retry.uid.as_str()) {
                    gone = true;
                }
            }
        }
        if gone && nudged_at.is_none() {
            nudge(workloads, &retry.workload).await?;
            nudged_at = Some(tokio::time::Instant::now());
        }
    }
}

//! `kubectl portcullis status [APP]`: per app its current KeptnAppVersion with each phase, the
//! KeptnWorkloadVersions of that version, their KeptnTasks (with Jobs) and KeptnEvaluations (with
//! values and targets), and the pods still gated. `--watch` redraws on every change seen by kube
//! watches of those kinds (debounced), never by polling.
//!
//! [`report`] computes what is shown from plain objects, [`render`] draws it; this module only
//! reads the cluster.

pub mod render;
pub mod report;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use futures::{Stream, StreamExt};
use jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use shared::crd::{
    KeptnApp, KeptnAppVersion, KeptnEvaluation, KeptnEvaluationDefinition, KeptnTask,
    KeptnWorkloadVersion,
};

use crate::cli::{Format, Global};
use crate::output::{Style, serialized};
use report::{Snapshot, StatusReport};

/// Flags of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The KeptnApp to show (default: every app of the namespace, or of all with -A).
    pub app: Option<String>,
    /// Keep watching and redraw whenever one of the objects changes (Ctrl-C ends).
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// Runs `status`.
pub async fn run(args: &StatusArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let (client, namespace) = global.client().await?;
    let style = Style::from_global(global);
    let ns = (!global.all_namespaces).then_some(namespace.as_str());
    let scope = match ns {
        Some(ns) => format!("in namespace {ns}"),
        None => "in any namespace".to_owned(),
    };
    if args.watch {
        return watch(client, ns, args.app.as_deref(), &style, &scope).await;
    }
    let snapshot = fetch(&client, ns).await?;
    let report = report::build(&snapshot, args.app.as_deref(), Timestamp::now());
    if let (Some(app), true) = (&args.app, report.apps.is_empty()) {
        anyhow::bail!("KeptnApp {app} not found {scope}");
    }
    print!("{}", frame(&report, &style, &scope, false)?);
    Ok(ExitCode::SUCCESS)
}

/// The report as the chosen format; JSON on one line per frame when watching.
fn frame(
    report: &StatusReport,
    style: &Style,
    scope: &str,
    watching: bool,
) -> anyhow::Result<String> {
    Ok(match style.format {
        Format::Table => render::render(report, style, scope),
        Format::Json if watching => serde_json::to_string(report)? + "\n",
        Format::Yaml if watching => format!("---\n{}", serde_yaml::to_string(report)?),
        format => serialized(format, report)?.unwrap_or_default(),
    })
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Every `K` of `ns`, or of all namespaces.
pub(crate) async fn list<K>(client: &Client, ns: Option<&str>) -> anyhow::Result<Vec<K>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let kind = K::kind(&());
    let items = api::<K>(client, ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| match ns {
            Some(ns) => anyhow::anyhow!("listing {kind}s in {ns}: {e}"),
            None => anyhow::anyhow!("listing {kind}s: {e}"),
        })?
        .items;
    Ok(items)
}

/// Everything `status` reads, of `ns` or of all namespaces.
pub async fn fetch(client: &Client, ns: Option<&str>) -> anyhow::Result<Snapshot> {
    let (apps, app_versions, workload_versions, tasks, evaluations, evaluation_definitions, pods) =
        tokio::try_join!(
            list::<KeptnApp>(client, ns),
            list::<KeptnAppVersion>(client, ns),
            list::<KeptnWorkloadVersion>(client, ns),
            list::<KeptnTask>(client, ns),
            list::<KeptnEvaluation>(client, ns),
            list::<KeptnEvaluationDefinition>(client, ns),
            list::<Pod>(client, ns),
        )?;
    Ok(Snapshot {
        apps,
        app_versions,
        workload_versions,
        tasks,
        evaluations,
        evaluation_definitions,
        pods,
    })
}

/// A watch cache of one kind and the stream that fills it (each item: something changed).
fn cache<K>(
    client: &Client,
    ns: Option<&str>,
) -> (
    Store<K>,
    impl Stream<Item = Result<(), watcher::Error>> + Send + 'static,
)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let stream = watcher(api::<K>(client, ns), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .map(|event| event.map(|_| ()));
    (store, stream)
}

fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.state().iter().map(|k| K::clone(k)).collect()
}

/// How long the objects must be quiet before a redraw, and the longest a redraw waits.
const QUIET: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(1);

/// `--watch`: watch caches of every kind shown; after each burst of events, redraw when what is
/// shown changed.
async fn watch(
    client: Client,
    ns: Option<&str>,
    app: Option<&str>,
    style: &Style,
    scope: &str,
) -> anyhow::Result<ExitCode> {
    let (apps, s1) = cache::<KeptnApp>(&client, ns);
    let (kavs, s2) = cache::<KeptnAppVersion>(&client, ns);
    let (kwvs, s3) = cache::<KeptnWorkloadVersion>(&client, ns);
    let (tasks, s4) = cache::<KeptnTask>(&client, ns);
    let (evaluations, s5) = cache::<KeptnEvaluation>(&client, ns);
    let (definitions, s6) = cache::<KeptnEvaluationDefinition>(&client, ns);
    let (pods, s7) = cache::<Pod>(&client, ns);
    let mut events = futures::stream::select_all(vec![
        s1.boxed(),
        s2.boxed(),
        s3.boxed(),
        s4.boxed(),
        s5.boxed(),
        s6.boxed(),
        s7.boxed(),
    ]);
    let snapshot = || Snapshot {
        apps: cloned(&apps),
        app_versions: cloned(&kavs),
        workload_versions: cloned(&kwvs),
        tasks: cloned(&tasks),
        evaluations: cloned(&evaluations),
        evaluation_definitions: cloned(&definitions),
        pods: cloned(&pods),
    };
    let ready = async {
        let _ = tokio::join!(
            apps.wait_until_ready(),
            kavs.wait_until_ready(),
            kwvs.wait_until_ready(),
            tasks.wait_until_ready(),
            evaluations.wait_until_ready(),
            definitions.wait_until_ready(),
            pods.wait_until_ready(),
        );
    };
    let terminal = std::io::stdout().is_terminal();
    let mut ready = std::pin::pin!(ready);
    let mut synced = false;
    let mut last_key = None;
    let mut failures = 0u32;
    let ctrl_c = tokio::signal::ctrl_c();
    let mut ctrl_c = std::pin::pin!(ctrl_c);
    loop {
        // Wait for a change (or the initial lists), then for the burst to end.
        tokio::select! {
            _ = &mut ctrl_c => return Ok(ExitCode::SUCCESS),
            _ = &mut ready, if !synced => synced = true,
            event = events.next() => match event {
                None => anyhow::bail!("the watches ended"),
                Some(Err(e)) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(10) {
                        eprintln!("watch error (retrying): {e}");
                    }
                    continue;
                }
                Some(Ok(())) => failures = 0,
            },
        }
        if !synced {
            continue;
        }
        let deadline = tokio::time::Instant::now() + MAX_DELAY;
        loop {
            let quiet = tokio::time::sleep(QUIET);
            tokio::select! {
                _ = quiet => break,
                _ = tokio::time::sleep_until(deadline) => break,
                event = events.next() => if event.is_none() { break },
            }
        }
        let snapshot = snapshot();
        // What is shown, without the durations that only count up: a redraw means a change.
        let key = frame(
            &report::build(&snapshot, app, Timestamp::UNIX_EPOCH),
            style,
            scope,
            true,
        )?;
        if last_key.as_ref() == Some(&key) {
            continue;
        }
        last_key = Some(key);
        let text = frame(
            &report::build(&snapshot, app, Timestamp::now()),
            style,
            scope,
            true,
        )?;
        let mut out = std::io::stdout().lock();
        if style.format == Format::Table {
            let now = Timestamp::now().strftime("%H:%M:%S");
            if terminal {
                // Home and clear: the frame replaces the last one.
                write!(out, "\u{1b}[H\u{1b}[2J")?;
                writeln!(
                    out,
                    "{}",
                    style.bold(&format!("{now}  (watching; Ctrl-C ends)\n"))
                )?;
            } else {
                writeln!(out, "--- {now}")?;
            }
        }
        out.write_all(text.as_bytes())?;
        out.flush()?;
    }
}

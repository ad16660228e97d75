//! Keptn's lifecycle ("DORA") metrics of app and workload versions (B §7.3), under Keptn's
//! Prometheus names (A21): the counters and histograms recorded when a version finishes, and
//! the gauges computed at each scrape from the cached objects.
//!
//! The decisions ([`app_version_finished`], [`workload_version_finished`], [`scrape_gauges`])
//! are pure functions over plain objects; [`LifecycleMetrics`] and [`DoraCollector`] only hold
//! and encode their results.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use shared::crd::{
    KeptnAppVersion, KeptnAppVersionStatus, KeptnEvaluation, KeptnState, KeptnTask,
    KeptnWorkloadVersion, KeptnWorkloadVersionStatus,
};

/// The OpenTelemetry SDK's default histogram boundaries, which Keptn's exporter uses.
pub const OTEL_DEFAULT_BUCKETS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

/// A histogram with [`OTEL_DEFAULT_BUCKETS`].
pub fn otel_histogram() -> Histogram {
    Histogram::new(OTEL_DEFAULT_BUCKETS)
}

/// A family of histograms with [`OTEL_DEFAULT_BUCKETS`].
pub type Durations<L> = Family<L, Histogram, fn() -> Histogram>;

/// Keptn's pair `<name>_count` (a counter) and `<name>_duration` (a histogram in seconds) over
/// one label set, recorded together when an object finishes.
#[derive(Clone, Debug)]
pub struct CountAndDuration<L> {
    count: Family<L, Counter>,
    duration: Durations<L>,
}

impl<L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static>
    CountAndDuration<L>
{
    /// Creates the pair and registers it in `registry` as `<name>_count` and
    /// `<name>_duration` (unit seconds).
    pub fn register(
        registry: &mut Registry,
        name: &str,
        count_help: &str,
        duration_help: &str,
    ) -> Self {
        let pair = CountAndDuration {
            count: Family::default(),
            duration: Family::new_with_constructor(otel_histogram as fn() -> Histogram),
        };
        registry.register(format!("{name}_count"), count_help, pair.count.clone());
        registry.register_with_unit(
            format!("{name}_duration"),
            duration_help,
            Unit::Seconds,
            pair.duration.clone(),
        );
        pair
    }

    /// Counts one finished object and observes its duration when it has one.
    pub fn record(&self, labels: &L, duration: Option<f64>) {
        self.count.get_or_create(labels).inc();
        if let Some(seconds) = duration {
            self.duration.get_or_create(labels).observe(seconds);
        }
    }
}

/// Attributes of `keptn.deployment.count` / `.duration`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct DeploymentLabels {
    pub keptn_deployment_app_name: String,
    pub keptn_deployment_workload_name: String,
    pub keptn_deployment_workload_version: String,
    pub keptn_deployment_workload_namespace: String,
    pub keptn_deployment_workload_status: String,
}

/// Attributes of `keptn.app.count` / `.duration` and `keptn.promotion.count`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct AppLabels {
    pub keptn_deployment_app_name: String,
    pub keptn_deployment_app_version: String,
    pub keptn_deployment_app_namespace: String,
    pub keptn_deployment_app_status: String,
}

/// Attributes of `keptn.deployment.active`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct DeploymentActiveLabels {
    pub keptn_deployment_app_name: String,
    pub keptn_deployment_workload_name: String,
    pub keptn_deployment_workload_version: String,
    pub keptn_deployment_workload_namespace: String,
}

/// Attributes of `keptn.app.active`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct AppActiveLabels {
    pub keptn_deployment_app_name: String,
    pub keptn_deployment_app_version: String,
    pub keptn_deployment_app_namespace: String,
}

/// Attributes of `keptn.task.active`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct TaskActiveLabels {
    pub keptn_deployment_app_name: String,
    pub keptn_deployment_app_version: String,
    pub keptn_deployment_workload_name: String,
    pub keptn_deployment_workload_version: String,
    pub keptn_deployment_task_name: String,
    pub keptn_deployment_task_type: String,
}

impl TaskActiveLabels {
    /// The task's attributes (all but its status).
    pub fn of(t: &KeptnTask) -> Self {
        let c = &t.spec.context;
        TaskActiveLabels {
            keptn_deployment_app_name: c.app_name.clone(),
            keptn_deployment_app_version: c.app_version.clone(),
            keptn_deployment_workload_name: c.workload_name.clone(),
            keptn_deployment_workload_version: c.workload_version.clone(),
            keptn_deployment_task_name: t.metadata.name.clone().unwrap_or_default(),
            keptn_deployment_task_type: t.spec.check_type.clone(),
        }
    }
}

/// Attributes of `keptn.evaluation.active`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct EvaluationActiveLabels {
    pub keptn_deployment_app_name: String,
    pub keptn_deployment_app_version: String,
    pub keptn_deployment_workload_name: String,
    pub keptn_deployment_workload_version: String,
    pub keptn_deployment_evaluation_name: String,
    pub keptn_deployment_evaluation_type: String,
}

impl EvaluationActiveLabels {
    /// The evaluation's attributes (all but its status).
    pub fn of(e: &KeptnEvaluation) -> Self {
        let s = &e.spec;
        EvaluationActiveLabels {
            keptn_deployment_app_name: s.app_name.clone(),
            keptn_deployment_app_version: s.app_version.clone(),
            keptn_deployment_workload_name: s.workload.clone(),
            keptn_deployment_workload_version: s.workload_version.clone(),
            keptn_deployment_evaluation_name: e.metadata.name.clone().unwrap_or_default(),
            keptn_deployment_evaluation_type: s.check_type.clone(),
        }
    }
}

/// Attributes of `keptn.app.deploymentduration` / `.deploymentinterval`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct AppDoraLabels {
    pub keptn_deployment_app_name: String,
    pub keptn_deployment_app_namespace: String,
    pub keptn_deployment_app_version: String,
    pub keptn_deployment_app_previousversion: String,
}

/// Attributes of `keptn.deployment.deploymentduration` / `.deploymentinterval`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct DeploymentDoraLabels {
    pub keptn_deployment_app_name: String,
    pub keptn_deployment_workload_name: String,
    pub keptn_deployment_workload_namespace: String,
    pub keptn_deployment_workload_version: String,
    pub keptn_deployment_workload_previousversion: String,
}

/// What to record for a KeptnAppVersion that has just finished.
#[derive(Clone, Debug, PartialEq)]
pub struct AppFinished {
    pub labels: AppLabels,
    /// endTime − startTime, only when it succeeded.
    pub duration: Option<f64>,
    /// Whether `keptn.promotion.count` counts it.
    pub promotion: bool,
}

/// What to record for a KeptnWorkloadVersion that has just finished.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadFinished {
    pub labels: DeploymentLabels,
    /// endTime − startTime, only when it succeeded.
    pub duration: Option<f64>,
}

/// Seconds from `start` to `end`, never negative (writers' clocks may disagree).
pub fn seconds_between(start: Option<&Time>, end: Option<&Time>) -> Option<f64> {
    let (start, end) = (start?, end?);
    let nanos = end.0.as_nanosecond() - start.0.as_nanosecond();
    Some((nanos.max(0) as f64) / 1e9)
}

/// The first status write that sets endTime is the transition to finished.
fn newly_finished(old_end: Option<&Time>, new_end: Option<&Time>) -> bool {
    old_end.is_none() && new_end.is_some()
}

/// Decides what a successful status write of a KAV records (B §7.3 `keptn.app.*`,
/// `keptn.promotion.count`); `old` is the status the write replaced.
///
/// Deliberate improvement over Keptn: Keptn records on every reconcile of a finished app
/// version, and our controllers are level-triggered and reconcile finished objects again and
/// again (watch events of dependants, restarts), so its counts would grow without anything
/// happening. We record once, for the write that sets endTime; a restarted process sees endTime
/// already set and records nothing.
pub fn app_version_finished(
    kav: &KeptnAppVersion,
    old: Option<&KeptnAppVersionStatus>,
    new: &KeptnAppVersionStatus,
    promotion_enabled: bool,
) -> Option<AppFinished> {
    if !newly_finished(old.and_then(|s| s.end_time.as_ref()), new.end_time.as_ref()) {
        return None;
    }
    let succeeded = new.status == KeptnState::Succeeded;
    Some(AppFinished {
        labels: AppLabels {
            keptn_deployment_app_name: kav.spec.app_name.clone(),
            keptn_deployment_app_version: kav.spec.app.version.clone(),
            keptn_deployment_app_namespace: kav.metadata.namespace.clone().unwrap_or_default(),
            keptn_deployment_app_status: new.status.to_string(),
        },
        duration: if succeeded {
            seconds_between(new.start_time.as_ref(), new.end_time.as_ref())
        } else {
            None
        },
        promotion: succeeded && promotion_enabled && !kav.spec.context.promotion_tasks.is_empty(),
    })
}

/// Decides what a successful status write of a KWV records (B §7.3 `keptn.deployment.*`);
/// `old` is the status the write replaced. Recorded once per transition to finished, for the
/// reason given at [`app_version_finished`].
pub fn workload_version_finished(
    kwv: &KeptnWorkloadVersion,
    old: Option<&KeptnWorkloadVersionStatus>,
    new: &KeptnWorkloadVersionStatus,
) -> Option<WorkloadFinished> {
    if !newly_finished(old.and_then(|s| s.end_time.as_ref()), new.end_time.as_ref()) {
        return None;
    }
    Some(WorkloadFinished {
        labels: DeploymentLabels {
            keptn_deployment_app_name: kwv.spec.workload.app.clone(),
            keptn_deployment_workload_name: kwv.spec.workload_name.clone(),
            keptn_deployment_workload_version: kwv.spec.workload.version.clone(),
            keptn_deployment_workload_namespace: kwv.metadata.namespace.clone().unwrap_or_default(),
            keptn_deployment_workload_status: new.status.to_string(),
        },
        duration: if new.status == KeptnState::Succeeded {
            seconds_between(new.start_time.as_ref(), new.end_time.as_ref())
        } else {
            None
        },
    })
}

/// Counters and histograms of finished app and workload versions.
#[derive(Clone, Debug)]
pub struct LifecycleMetrics {
    deployment: CountAndDuration<DeploymentLabels>,
    app: CountAndDuration<AppLabels>,
    promotion_count: Family<AppLabels, Counter>,
}

impl LifecycleMetrics {
    /// Creates the metrics and registers them in `registry` (which must have no prefix).
    pub fn register(registry: &mut Registry) -> LifecycleMetrics {
        let deployment = CountAndDuration::register(
            registry,
            "keptn_deployment",
            "Number of KeptnWorkloadVersions that finished",
            "Duration of successful KeptnWorkloadVersions",
        );
        let app = CountAndDuration::register(
            registry,
            "keptn_app",
            "Number of KeptnAppVersions that finished",
            "Duration of successful KeptnAppVersions",
        );
        let promotion_count = Family::default();
        registry.register(
            "keptn_promotion_count",
            "Number of KeptnAppVersions that completed with promotion tasks",
            promotion_count.clone(),
        );
        LifecycleMetrics {
            deployment,
            app,
            promotion_count,
        }
    }

    /// Records a KAV status write (see [`app_version_finished`]).
    pub fn app_version_written(
        &self,
        kav: &KeptnAppVersion,
        new: &KeptnAppVersionStatus,
        promotion_enabled: bool,
    ) {
        if let Some(f) = app_version_finished(kav, kav.status.as_ref(), new, promotion_enabled) {
            self.app.record(&f.labels, f.duration);
            if f.promotion {
                self.promotion_count.get_or_create(&f.labels).inc();
            }
        }
    }

    /// Records a KWV status write (see [`workload_version_finished`]).
    pub fn workload_version_written(
        &self,
        kwv: &KeptnWorkloadVersion,
        new: &KeptnWorkloadVersionStatus,
    ) {
        if let Some(f) = workload_version_finished(kwv, kwv.status.as_ref(), new) {
            self.deployment.record(&f.labels, f.duration);
        }
    }
}

/// The cached objects the scrape-time gauges are computed from.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub app_versions: Vec<Arc<KeptnAppVersion>>,
    pub workload_versions: Vec<Arc<KeptnWorkloadVersion>>,
    pub tasks: Vec<Arc<KeptnTask>>,
    pub evaluations: Vec<Arc<KeptnEvaluation>>,
}

/// The points of the scrape-time gauges, one per label set, sorted by labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScrapeGauges {
    pub deployment_active: Vec<(DeploymentActiveLabels, i64)>,
    pub app_active: Vec<(AppActiveLabels, i64)>,
    pub task_active: Vec<(TaskActiveLabels, i64)>,
    pub evaluation_active: Vec<(EvaluationActiveLabels, i64)>,
    pub app_deployment_duration: Vec<(AppDoraLabels, f64)>,
    pub deployment_deployment_duration: Vec<(DeploymentDoraLabels, f64)>,
    pub app_deployment_interval: Vec<(AppDoraLabels, f64)>,
    pub deployment_deployment_interval: Vec<(DeploymentDoraLabels, f64)>,
}

/// One version object as the duration and interval gauges see it.
struct Version<'a> {
    namespace: &'a str,
    name: &'a str,
    /// The app name (KAV) or workload name (KWV) version names start with.
    base: &'a str,
    previous_version: &'a str,
    start: Option<&'a Time>,
    end: Option<&'a Time>,
}

fn app_version(k: &KeptnAppVersion) -> Version<'_> {
    let s = k.status.as_ref();
    Version {
        namespace: k.metadata.namespace.as_deref().unwrap_or_default(),
        name: k.metadata.name.as_deref().unwrap_or_default(),
        base: &k.spec.app_name,
        previous_version: &k.spec.previous_version,
        start: s.and_then(|s| s.start_time.as_ref()),
        end: s.and_then(|s| s.end_time.as_ref()),
    }
}

fn workload_version(k: &KeptnWorkloadVersion) -> Version<'_> {
    let s = k.status.as_ref();
    Version {
        namespace: k.metadata.namespace.as_deref().unwrap_or_default(),
        name: k.metadata.name.as_deref().unwrap_or_default(),
        base: &k.spec.workload_name,
        previous_version: &k.spec.previous_version,
        start: s.and_then(|s| s.start_time.as_ref()),
        end: s.and_then(|s| s.end_time.as_ref()),
    }
}

/// Versions sorted by namespace and name, so the names sharing a prefix are one contiguous run
/// (a scrape stays O(n log n) with thousands of versions).
fn by_name<'a>(all: &'a [Version<'a>]) -> Vec<&'a Version<'a>> {
    let mut sorted: Vec<&Version<'_>> = all.iter().collect();
    sorted.sort_by(|a, b| (a.namespace, a.name).cmp(&(b.namespace, b.name)));
    sorted
}

/// The predecessor of `v`: among the other versions of its namespace whose name starts with
/// `<base>-<previousVersion>`, the one that started first. `sorted` comes from [`by_name`].
fn predecessor<'a>(v: &Version<'_>, sorted: &[&'a Version<'a>]) -> Option<&'a Version<'a>> {
    if v.previous_version.is_empty() {
        return None;
    }
    let prefix = format!("{}-{}", v.base, v.previous_version);
    let first = sorted.partition_point(|o| (o.namespace, o.name) < (v.namespace, prefix.as_str()));
    sorted[first..]
        .iter()
        .take_while(|o| o.namespace == v.namespace && o.name.starts_with(&prefix))
        .filter(|o| o.name != v.name)
        .filter_map(|o| o.start.map(|s| (s, *o)))
        .min_by(|(a, x), (b, y)| a.0.cmp(&b.0).then_with(|| x.name.cmp(y.name)))
        .map(|(_, o)| o)
}

/// endTime − startTime of a finished version, and endTime − the predecessor's endTime.
fn dora<'a>(v: &Version<'_>, sorted: &[&'a Version<'a>]) -> (Option<f64>, Option<f64>) {
    let Some(end) = v.end else {
        return (None, None);
    };
    let duration = seconds_between(v.start, Some(end));
    let interval = predecessor(v, sorted).and_then(|p| seconds_between(p.end, Some(end)));
    (duration, interval)
}

/// Order in which points are taken: by start time, then name, so when several objects share a
/// label set (e.g. revisions of one app version) the one that started last is reported.
fn by_start<K>(
    objects: &[Arc<K>],
    start: impl Fn(&K) -> Option<&Time>,
    name: impl Fn(&K) -> &str,
) -> Vec<&K> {
    let mut v: Vec<&K> = objects.iter().map(|o| o.as_ref()).collect();
    v.sort_by(|a, b| {
        start(a)
            .map(|t| t.0)
            .cmp(&start(b).map(|t| t.0))
            .then_with(|| name(a).cmp(name(b)))
    });
    v
}

fn points<L: Ord, V>(m: BTreeMap<L, V>) -> Vec<(L, V)> {
    m.into_iter().collect()
}

fn active(end: Option<&Time>) -> i64 {
    i64::from(end.is_none())
}

/// Computes the scrape-time gauges of B §7.3 from cached objects: `*.active` (1 while an object
/// has no endTime, else 0), `*.deploymentduration` (endTime − startTime of finished versions)
/// and `*.deploymentinterval` (endTime − the predecessor's endTime).
///
/// Predecessors are looked up in the version's own namespace only, and must have a startTime
/// and an endTime; a version is never its own predecessor.
pub fn scrape_gauges(s: &Snapshot) -> ScrapeGauges {
    let mut g = ScrapeGauges::default();

    let kavs = by_start(
        &s.app_versions,
        |k| k.status.as_ref().and_then(|s| s.start_time.as_ref()),
        |k| k.metadata.name.as_deref().unwrap_or_default(),
    );
    let versions: Vec<Version<'_>> = kavs.iter().map(|k| app_version(k)).collect();
    let sorted = by_name(&versions);
    let (mut act, mut dur, mut int) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (k, v) in kavs.iter().zip(&versions) {
        act.insert(
            AppActiveLabels {
                keptn_deployment_app_name: k.spec.app_name.clone(),
                keptn_deployment_app_version: k.spec.app.version.clone(),
                keptn_deployment_app_namespace: v.namespace.to_owned(),
            },
            active(v.end),
        );
        let labels = AppDoraLabels {
            keptn_deployment_app_name: k.spec.app_name.clone(),
            keptn_deployment_app_namespace: v.namespace.to_owned(),
            keptn_deployment_app_version: k.spec.app.version.clone(),
            keptn_deployment_app_previousversion: k.spec.previous_version.clone(),
        };
        let (d, i) = dora(v, &sorted);
        if let Some(d) = d {
            dur.insert(labels.clone(), d);
        }
        if let Some(i) = i {
            int.insert(labels, i);
        }
    }
    g.app_active = points(act);
    g.app_deployment_duration = points(dur);
    g.app_deployment_interval = points(int);

    let kwvs = by_start(
        &s.workload_versions,
        |k| k.status.as_ref().and_then(|s| s.start_time.as_ref()),
        |k| k.metadata.name.as_deref().unwrap_or_default(),
    );
    let versions: Vec<Version<'_>> = kwvs.iter().map(|k| workload_version(k)).collect();
    let sorted = by_name(&versions);
    let (mut act, mut dur, mut int) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (k, v) in kwvs.iter().zip(&versions) {
        act.insert(
            DeploymentActiveLabels {
                keptn_deployment_app_name: k.spec.workload.app.clone(),
                keptn_deployment_workload_name: k.spec.workload_name.clone(),
                keptn_deployment_workload_version: k.spec.workload.version.clone(),
                keptn_deployment_workload_namespace: v.namespace.to_owned(),
            },
            active(v.end),
        );
        let labels = DeploymentDoraLabels {
            keptn_deployment_app_name: k.spec.workload.app.clone(),
            keptn_deployment_workload_name: k.spec.workload_name.clone(),
            keptn_deployment_workload_namespace: v.namespace.to_owned(),
            keptn_deployment_workload_version: k.spec.workload.version.clone(),
            keptn_deployment_workload_previousversion: k.spec.previous_version.clone(),
        };
        let (d, i) = dora(v, &sorted);
        if let Some(d) = d {
            dur.insert(labels.clone(), d);
        }
        if let Some(i) = i {
            int.insert(labels, i);
        }
    }
    g.deployment_active = points(act);
    g.deployment_deployment_duration = points(dur);
    g.deployment_deployment_interval = points(int);

    let tasks = by_start(
        &s.tasks,
        |t| t.status.as_ref().and_then(|s| s.start_time.as_ref()),
        |t| t.metadata.name.as_deref().unwrap_or_default(),
    );
    g.task_active = points(
        tasks
            .iter()
            .map(|t| {
                (
                    TaskActiveLabels::of(t),
                    active(t.status.as_ref().and_then(|s| s.end_time.as_ref())),
                )
            })
            .collect(),
    );

    let evaluations = by_start(
        &s.evaluations,
        |e| e.status.as_ref().and_then(|s| s.start_time.as_ref()),
        |e| e.metadata.name.as_deref().unwrap_or_default(),
    );
    g.evaluation_active = points(
        evaluations
            .iter()
            .map(|e| {
                (
                    EvaluationActiveLabels::of(e),
                    active(e.status.as_ref().and_then(|s| s.end_time.as_ref())),
                )
            })
            .collect(),
    );
    g
}

/// Produces a [`Snapshot`] of the caches at scrape time.
pub type SnapshotSource = Box<dyn Fn() -> Snapshot + Send + Sync>;

/// Where the collector finds its snapshot source; set once the caches exist (only the leader
/// has caches, so a standby reports no scrape-time gauges).
pub type SourceSlot = Arc<OnceLock<SnapshotSource>>;

/// The prometheus-client collector of the scrape-time gauges.
pub struct DoraCollector {
    source: SourceSlot,
}

impl DoraCollector {
    pub fn new(source: SourceSlot) -> Self {
        DoraCollector { source }
    }
}

impl std::fmt::Debug for DoraCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoraCollector")
            .field("has_source", &self.source.get().is_some())
            .finish()
    }
}

/// Encodes one gauge family; a family without points is left out entirely.
fn encode_gauges<L: EncodeLabelSet, V: prometheus_client::encoding::EncodeGaugeValue + Copy>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    points: &[(L, V)],
) -> Result<(), std::fmt::Error> {
    if points.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in points {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for DoraCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(source) = self.source.get() else {
            return Ok(());
        };
        let g = scrape_gauges(&source());
        let e = &mut encoder;
        encode_gauges(
            e,
            "keptn_deployment_active",
            "1 while a KeptnWorkloadVersion has not finished, else 0",
            &g.deployment_active,
        )?;
        encode_gauges(
            e,
            "keptn_app_active",
            "1 while a KeptnAppVersion has not finished, else 0",
            &g.app_active,
        )?;
        encode_gauges(
            e,
            "keptn_task_active",
            "1 while a KeptnTask has not finished, else 0",
            &g.task_active,
        )?;
        encode_gauges(
            e,
            "keptn_evaluation_active",
            "1 while a KeptnEvaluation has not finished, else 0",
            &g.evaluation_active,
        )?;
        encode_gauges(
            e,
            "keptn_app_deploymentduration",
            "Seconds from start to end of a finished KeptnAppVersion",
            &g.app_deployment_duration,
        )?;
        encode_gauges(
            e,
            "keptn_deployment_deploymentduration",
            "Seconds from start to end of a finished KeptnWorkloadVersion",
            &g.deployment_deployment_duration,
        )?;
        encode_gauges(
            e,
            "keptn_app_deploymentinterval",
            "Seconds between the ends of a KeptnAppVersion and its previous version",
            &g.app_deployment_interval,
        )?;
        encode_gauges(
            e,
            "keptn_deployment_deploymentinterval",
            "Seconds between the ends of a KeptnWorkloadVersion and its previous version",
            &g.deployment_deployment_interval,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000 + second).expect("valid"))
    }

    fn time_json(s: Option<i64>) -> serde_json::Value {
        s.map_or(serde_json::Value::Null, |s| json!(t(s)))
    }

    /// A KAV of `app` `version` in `ns`, named `<app>-<version>-<suffix>`.
    fn kav(ns: &str, app: &str, version: &str, suffix: &str, previous: &str) -> KeptnAppVersion {
        serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnAppVersion",
            "metadata": {"name": format!("{app}-{version}-{suffix}"), "namespace": ns},
            "spec": {"appName": app, "version": version, "previousVersion": previous}
        }))
        .expect("kav")
    }

    fn kav_status(
        state: KeptnState,
        start: Option<i64>,
        end: Option<i64>,
    ) -> KeptnAppVersionStatus {
        KeptnAppVersionStatus {
            status: state,
            start_time: start.map(t),
            end_time: end.map(t),
            ..Default::default()
        }
    }

    fn with_status(mut k: KeptnAppVersion, s: KeptnAppVersionStatus) -> KeptnAppVersion {
        k.status = Some(s);
        k
    }

    /// A KWV of workload `<app>-<wl>` `version` in `ns`.
    fn kwv(
        ns: &str,
        app: &str,
        wl: &str,
        version: &str,
        previous: &str,
        start: Option<i64>,
        end: Option<i64>,
    ) -> KeptnWorkloadVersion {
        serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnWorkloadVersion",
            "metadata": {"name": format!("{app}-{wl}-{version}"), "namespace": ns},
            "spec": {
                "app": app, "version": version, "workloadName": format!("{app}-{wl}"),
                "previousVersion": previous,
                "resourceReference": {"uid": "u", "kind": "ReplicaSet", "name": "rs"}
            },
            "status": {"status": if end.is_some() { "Succeeded" } else { "Progressing" },
                       "startTime": time_json(start), "endTime": time_json(end)}
        }))
        .expect("kwv")
    }

    #[test]
    fn app_counts_once_when_end_time_is_first_written() {
        let k = kav("ns", "shop", "1.0", "abc", "");
        let running = kav_status(KeptnState::Progressing, Some(0), None);
        let done = kav_status(KeptnState::Succeeded, Some(0), Some(42));
        let f = app_version_finished(&k, Some(&running), &done, false).expect("finished");
        assert_eq!(
            f.labels,
            AppLabels {
                keptn_deployment_app_name: "shop".into(),
                keptn_deployment_app_version: "1.0".into(),
                keptn_deployment_app_namespace: "ns".into(),
                keptn_deployment_app_status: "Succeeded".into(),
            }
        );
        assert_eq!(f.duration, Some(42.0));
        assert!(!f.promotion);
        // A later write of a finished version (a re-reconcile, a restarted process) records nothing.
        let mut later = done.clone();
        later.current_phase = "Completed".into();
        assert_eq!(app_version_finished(&k, Some(&done), &later, false), None);
        // Nor does a write that leaves it unfinished.
        assert_eq!(app_version_finished(&k, None, &running, false), None);
        // The first ever status write may already finish it.
        assert!(app_version_finished(&k, None, &done, false).is_some());
    }

    #[test]
    fn failed_app_counts_without_duration_or_promotion() {
        let mut k = kav("ns", "shop", "1.0", "abc", "");
        k.spec.context.promotion_tasks = vec!["promote".into()];
        let failed = kav_status(KeptnState::Failed, Some(0), Some(5));
        let f = app_version_finished(&k, None, &failed, true).expect("finished");
        assert_eq!(f.labels.keptn_deployment_app_status, "Failed");
        assert_eq!(f.duration, None);
        assert!(!f.promotion);
    }

    #[test]
    fn promotion_counts_only_when_enabled_and_tasks_exist() {
        let mut k = kav("ns", "shop", "1.0", "abc", "");
        let done = kav_status(KeptnState::Succeeded, Some(0), Some(1));
        assert!(
            !app_version_finished(&k, None, &done, true)
                .expect("f")
                .promotion
        );
        k.spec.context.promotion_tasks = vec!["promote".into()];
        assert!(
            !app_version_finished(&k, None, &done, false)
                .expect("f")
                .promotion
        );
        assert!(
            app_version_finished(&k, None, &done, true)
                .expect("f")
                .promotion
        );
    }

    #[test]
    fn workload_counts_once_with_its_labels_and_clamped_duration() {
        let k = kwv("ns", "shop", "cart", "2", "1", None, None);
        let old = KeptnWorkloadVersionStatus {
            status: KeptnState::Progressing,
            start_time: Some(t(10)),
            ..Default::default()
        };
        // endTime before startTime (clock skew between writers): never a negative duration.
        let new = KeptnWorkloadVersionStatus {
            status: KeptnState::Succeeded,
            start_time: Some(t(10)),
            end_time: Some(t(7)),
            ..Default::default()
        };
        let f = workload_version_finished(&k, Some(&old), &new).expect("finished");
        assert_eq!(
            f.labels,
            DeploymentLabels {
                keptn_deployment_app_name: "shop".into(),
                keptn_deployment_workload_name: "shop-cart".into(),
                keptn_deployment_workload_version: "2".into(),
                keptn_deployment_workload_namespace: "ns".into(),
                keptn_deployment_workload_status: "Succeeded".into(),
            }
        );
        assert_eq!(f.duration, Some(0.0));
        assert_eq!(workload_version_finished(&k, Some(&new), &new), None);
        let failed = KeptnWorkloadVersionStatus {
            status: KeptnState::Failed,
            end_time: Some(t(20)),
            ..old.clone()
        };
        let f = workload_version_finished(&k, Some(&old), &failed).expect("finished");
        assert_eq!(f.labels.keptn_deployment_workload_status, "Failed");
        assert_eq!(f.duration, None);
    }

    #[test]
    fn recorded_metrics_encode_under_keptn_names() {
        let mut registry = Registry::default();
        let m = LifecycleMetrics::register(&mut registry);
        let mut k = kav("ns", "shop", "1.0", "abc", "");
        k.spec.context.promotion_tasks = vec!["p".into()];
        let k = with_status(k, kav_status(KeptnState::Progressing, Some(0), None));
        let done = kav_status(KeptnState::Succeeded, Some(0), Some(3));
        m.app_version_written(&k, &done, true);
        // The same write seen again from the finished object is not counted.
        m.app_version_written(&with_status(k.clone(), done.clone()), &done, true);
        let w = kwv("ns", "shop", "cart", "2", "", Some(0), None);
        let mut wdone = w.status.clone().expect("status");
        wdone.status = KeptnState::Succeeded;
        wdone.end_time = Some(t(4));
        m.workload_version_written(&w, &wdone);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encodes");
        let app = r#"keptn_deployment_app_name="shop",keptn_deployment_app_version="1.0",keptn_deployment_app_namespace="ns",keptn_deployment_app_status="Succeeded""#;
        assert!(
            out.contains(&format!("keptn_app_count_total{{{app}}} 1\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("keptn_promotion_count_total{{{app}}} 1\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("keptn_app_duration_seconds_sum{{{app}}} 3.0\n")),
            "{out}"
        );
        assert!(
            out.contains(r#"keptn_deployment_count_total{keptn_deployment_app_name="shop",keptn_deployment_workload_name="shop-cart",keptn_deployment_workload_version="2",keptn_deployment_workload_namespace="ns",keptn_deployment_workload_status="Succeeded"} 1"#),
            "{out}"
        );
        assert!(
            out.contains("keptn_deployment_duration_seconds_count{"),
            "{out}"
        );
    }

    #[test]
    fn active_is_one_until_end_time_then_zero() {
        let running = kwv("ns", "shop", "cart", "2", "", Some(0), None);
        let done = kwv("ns", "shop", "web", "2", "", Some(0), Some(9));
        let s = Snapshot {
            workload_versions: vec![Arc::new(running), Arc::new(done)],
            app_versions: vec![
                Arc::new(with_status(
                    kav("ns", "shop", "2", "a", ""),
                    kav_status(KeptnState::Progressing, Some(0), None),
                )),
                Arc::new(kav("ns", "blog", "1", "b", "")),
            ],
            ..Default::default()
        };
        let g = scrape_gauges(&s);
        let by_workload: Vec<(&str, i64)> = g
            .deployment_active
            .iter()
            .map(|(l, v)| (l.keptn_deployment_workload_name.as_str(), *v))
            .collect();
        assert_eq!(by_workload, vec![("shop-cart", 1), ("shop-web", 0)]);
        assert_eq!(
            g.deployment_active[0].0,
            DeploymentActiveLabels {
                keptn_deployment_app_name: "shop".into(),
                keptn_deployment_workload_name: "shop-cart".into(),
                keptn_deployment_workload_version: "2".into(),
                keptn_deployment_workload_namespace: "ns".into(),
            }
        );
        // A version without any status has not finished.
        let apps: Vec<(&str, i64)> = g
            .app_active
            .iter()
            .map(|(l, v)| (l.keptn_deployment_app_name.as_str(), *v))
            .collect();
        assert_eq!(apps, vec![("blog", 1), ("shop", 1)]);
        // Only finished versions have a deployment duration.
        assert_eq!(g.deployment_deployment_duration.len(), 1);
        assert_eq!(g.deployment_deployment_duration[0].1, 9.0);
        assert!(g.app_deployment_duration.is_empty());
    }

    #[test]
    fn task_and_evaluation_active_carry_their_attributes_without_status() {
        let task: KeptnTask = serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTask",
            "metadata": {"name": "pre-check-1", "namespace": "ns"},
            "spec": {"taskDefinition": "check", "checkType": "pre",
                     "context": {"appName": "shop", "appVersion": "1", "workloadName": "shop-cart",
                                 "workloadVersion": "2", "taskType": "pre", "objectType": "Workload"}},
            "status": {"status": "Succeeded", "startTime": t(0), "endTime": t(1)}
        }))
        .expect("task");
        let evaluation: KeptnEvaluation = serde_json::from_value(json!({
            "apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnEvaluation",
            "metadata": {"name": "pre-eval-1", "namespace": "ns"},
            "spec": {"evaluationDefinition": "slo", "workloadVersion": "", "appName": "shop",
                     "appVersion": "1", "checkType": "pre-eval"}
        }))
        .expect("evaluation");
        let g = scrape_gauges(&Snapshot {
            tasks: vec![Arc::new(task)],
            evaluations: vec![Arc::new(evaluation)],
            ..Default::default()
        });
        assert_eq!(
            g.task_active,
            vec![(
                TaskActiveLabels {
                    keptn_deployment_app_name: "shop".into(),
                    keptn_deployment_app_version: "1".into(),
                    keptn_deployment_workload_name: "shop-cart".into(),
                    keptn_deployment_workload_version: "2".into(),
                    keptn_deployment_task_name: "pre-check-1".into(),
                    keptn_deployment_task_type: "pre".into(),
                },
                0
            )]
        );
        assert_eq!(
            g.evaluation_active,
            vec![(
                EvaluationActiveLabels {
                    keptn_deployment_app_name: "shop".into(),
                    keptn_deployment_app_version: "1".into(),
                    keptn_deployment_workload_name: String::new(),
                    keptn_deployment_workload_version: String::new(),
                    keptn_deployment_evaluation_name: "pre-eval-1".into(),
                    keptn_deployment_evaluation_type: "pre-eval".into(),
                },
                1
            )]
        );
    }

    #[test]
    fn interval_uses_the_earliest_started_predecessor_of_the_namespace() {
        let app = |suffix: &str, version: &str, prev: &str, start: i64, end: Option<i64>| {
            Arc::new(with_status(
                kav("ns", "shop", version, suffix, prev),
                kav_status(KeptnState::Succeeded, Some(start), end),
            ))
        };
        let s = Snapshot {
            app_versions: vec![
                // Two revisions of 1.0: the one that started first is the predecessor.
                app("rev2", "1.0", "", 50, Some(60)),
                app("rev1", "1.0", "", 10, Some(20)),
                app("x", "2.0", "1.0", 100, Some(130)),
                // Same names in another namespace are not candidates.
                Arc::new(with_status(
                    kav("other", "shop", "1.0", "early", ""),
                    kav_status(KeptnState::Succeeded, Some(0), Some(1)),
                )),
            ],
            ..Default::default()
        };
        let g = scrape_gauges(&s);
        assert_eq!(
            g.app_deployment_interval,
            vec![(
                AppDoraLabels {
                    keptn_deployment_app_name: "shop".into(),
                    keptn_deployment_app_namespace: "ns".into(),
                    keptn_deployment_app_version: "2.0".into(),
                    keptn_deployment_app_previousversion: "1.0".into(),
                },
                110.0
            )]
        );
        let v2 = g
            .app_deployment_duration
            .iter()
            .find(|(l, _)| l.keptn_deployment_app_version == "2.0")
            .expect("duration of 2.0");
        assert_eq!(v2.1, 30.0);
        // Both 1.0 revisions share one label set; the one that started last is reported.
        let v1: Vec<f64> = g
            .app_deployment_duration
            .iter()
            .filter(|(l, _)| {
                l.keptn_deployment_app_version == "1.0" && l.keptn_deployment_app_namespace == "ns"
            })
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(v1, vec![10.0]);
    }

    #[test]
    fn interval_needs_a_finished_predecessor_and_an_own_end_and_is_clamped() {
        let s = Snapshot {
            workload_versions: vec![
                // Predecessor ended after its successor: clamped to 0.
                Arc::new(kwv("ns", "shop", "cart", "1", "", Some(0), Some(500))),
                Arc::new(kwv("ns", "shop", "cart", "2", "1", Some(10), Some(400))),
                // Not finished: no interval, no duration.
                Arc::new(kwv("ns", "shop", "cart", "3", "2", Some(450), None)),
                // Predecessor not finished.
                Arc::new(kwv("ns", "shop", "web", "1", "", Some(0), None)),
                Arc::new(kwv("ns", "shop", "web", "2", "1", Some(5), Some(9))),
                // No predecessor at all.
                Arc::new(kwv("ns", "shop", "db", "2", "1", Some(5), Some(9))),
            ],
            ..Default::default()
        };
        let g = scrape_gauges(&s);
        assert_eq!(
            g.deployment_deployment_interval,
            vec![(
                DeploymentDoraLabels {
                    keptn_deployment_app_name: "shop".into(),
                    keptn_deployment_workload_name: "shop-cart".into(),
                    keptn_deployment_workload_namespace: "ns".into(),
                    keptn_deployment_workload_version: "2".into(),
                    keptn_deployment_workload_previousversion: "1".into(),
                },
                0.0
            )]
        );
        let versions: Vec<(&str, &str)> = g
            .deployment_deployment_duration
            .iter()
            .map(|(l, _)| {
                (
                    l.keptn_deployment_workload_name.as_str(),
                    l.keptn_deployment_workload_version.as_str(),
                )
            })
            .collect();
        assert_eq!(
            versions,
            vec![
                ("shop-cart", "1"),
                ("shop-cart", "2"),
                ("shop-db", "2"),
                ("shop-web", "2")
            ]
        );
    }

    #[test]
    fn intervals_of_thousands_of_versions_with_prefix_sharing_names() {
        // Version 1's prefix `shop-w0-1` also matches versions 10–19, 100–199, …: the earliest
        // started one is still version 1.
        let mut all = Vec::new();
        for w in 0..10 {
            for v in 1..=500i64 {
                let previous = if v > 1 {
                    (v - 1).to_string()
                } else {
                    String::new()
                };
                all.push(Arc::new(kwv(
                    "ns",
                    "shop",
                    &format!("w{w}"),
                    &v.to_string(),
                    &previous,
                    Some(v * 10),
                    Some(v * 10 + 5),
                )));
            }
        }
        let g = scrape_gauges(&Snapshot {
            workload_versions: all,
            ..Default::default()
        });
        assert_eq!(g.deployment_deployment_duration.len(), 5000);
        assert!(
            g.deployment_deployment_duration
                .iter()
                .all(|(_, d)| *d == 5.0)
        );
        assert_eq!(g.deployment_deployment_interval.len(), 10 * 499);
        assert!(
            g.deployment_deployment_interval
                .iter()
                .all(|(_, i)| *i == 10.0),
            "{:?}",
            g.deployment_deployment_interval
                .iter()
                .find(|(_, i)| *i != 10.0)
        );
    }

    #[test]
    fn collector_reports_nothing_without_a_source_and_gauges_with_one() {
        let slot: SourceSlot = Arc::new(OnceLock::new());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(DoraCollector::new(slot.clone())));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encodes");
        assert!(!out.contains("keptn_"), "{out}");
        let running = Arc::new(kwv("ns", "shop", "cart", "2", "", Some(0), None));
        let _ = slot.set(Box::new(move || Snapshot {
            workload_versions: vec![running.clone()],
            ..Default::default()
        }));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encodes");
        assert!(
            out.contains("# TYPE keptn_deployment_active gauge\n"),
            "{out}"
        );
        assert!(
            out.contains(r#"keptn_deployment_active{keptn_deployment_app_name="shop",keptn_deployment_workload_name="shop-cart",keptn_deployment_workload_version="2",keptn_deployment_workload_namespace="ns"} 1"#),
            "{out}"
        );
        // Families without points are left out.
        assert!(!out.contains("keptn_app_active"), "{out}");
    }
}

//! What a KeptnMetric asks a Prometheus-compatible server, and how its answer becomes the value
//! written to `status.value`. No I/O here: [`api_request`] says which HTTP API call to make,
//! [`evaluate`] turns the JSON body of the answer into one number, [`format_value`] writes it.
//!
//! * No `spec.range`: an instant query, `GET /api/v1/query?query=..&time=<now>`; the answer must
//!   hold exactly one sample (an instant vector with one series, or a scalar).
//! * `spec.range` without `step`: `GET /api/v1/query_range` from `now - interval` to `now` with
//!   `step = interval`; the answer must hold exactly one series, whose last sample is the value.
//! * `spec.range` with `step` (and then `aggregation`): the same call with the given step; the
//!   samples of the one series are aggregated ([`Aggregation`]).
//!
//! Durations (`interval`, `step`) are Go duration strings as `time.ParseDuration` reads them:
//! `5m`, `30s`, `1h30m`, `500ms`, `1.5h` (units `ns`, `us`, `ms`, `s`, `m`, `h`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use serde::Deserialize;
use shared::crd::{DurationError, RangeSpec};

/// `spec.range.interval` when it is not given (the CRD default).
pub const DEFAULT_INTERVAL: &str = "5m";
/// The Prometheus HTTP API path of an instant query.
pub const QUERY_PATH: &str = "/api/v1/query";
/// The Prometheus HTTP API path of a range query.
pub const QUERY_RANGE_PATH: &str = "/api/v1/query_range";

/// How the samples of a range query with a step become one value (`spec.range.aggregation`).
///
/// Percentiles (`p90`, `p95`, `p99`, and `median` = p50) use linear interpolation between the
/// closest ranks (Hyndman & Fan type 7, NumPy's and Excel's `PERCENTILE.INC` default): with the
/// `n` values sorted as `x[0] <= .. <= x[n-1]` and `h = (n - 1) * p / 100`, the result is
/// `x[⌊h⌋] + (h - ⌊h⌋) * (x[⌊h⌋ + 1] - x[⌊h⌋])`. So `median` of an even count is the mean of the
/// two middle values, and a single value is every percentile of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aggregation {
    P90,
    P95,
    P99,
    Max,
    Min,
    /// The arithmetic mean.
    Avg,
    /// The 50th percentile, interpolated as the others.
    Median,
}

impl Aggregation {
    /// Every aggregation, in the order the CRD lists them.
    pub const ALL: [Aggregation; 7] = [
        Aggregation::P90,
        Aggregation::P95,
        Aggregation::P99,
        Aggregation::Max,
        Aggregation::Min,
        Aggregation::Avg,
        Aggregation::Median,
    ];

    /// The name as written in `spec.range.aggregation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::P90 => "p90",
            Aggregation::P95 => "p95",
            Aggregation::P99 => "p99",
            Aggregation::Max => "max",
            Aggregation::Min => "min",
            Aggregation::Avg => "avg",
            Aggregation::Median => "median",
        }
    }

    /// The aggregate of `values` (any order), `None` when there are none. The values are expected
    /// to be finite ([`evaluate`] rejects others before aggregating).
    pub fn apply(self, values: &[f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(match self {
            Aggregation::P90 => percentile(&sorted, 90.0),
            Aggregation::P95 => percentile(&sorted, 95.0),
            Aggregation::P99 => percentile(&sorted, 99.0),
            Aggregation::Median => percentile(&sorted, 50.0),
            Aggregation::Max => sorted[sorted.len() - 1],
            Aggregation::Min => sorted[0],
            Aggregation::Avg => sorted.iter().sum::<f64>() / sorted.len() as f64,
        })
    }
}

/// The `p`th percentile (0 ≤ `p` ≤ 100) of non-empty ascending `sorted` values, by linear
/// interpolation between the closest ranks (see [`Aggregation`]).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no values");
    let h = (sorted.len() - 1) as f64 * p / 100.0;
    let lower = h.floor() as usize;
    let upper = (lower + 1).min(sorted.len() - 1);
    let fraction = h - lower as f64;
    sorted[lower] + fraction * (sorted[upper] - sorted[lower])
}

impl FromStr for Aggregation {
    type Err = RangeError;

    /// The exact lowercase names of the CRD's enum.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Aggregation::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| RangeError::UnknownAggregation(s.to_owned()))
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A KeptnMetric's `spec.range`, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeQuery {
    /// How far back from now the range starts (`spec.range.interval`, default `5m`).
    pub interval: Duration,
    /// The resolution of the range query (`spec.range.step`), `None` when not given.
    pub step: Option<Duration>,
    /// How the samples become one value; set exactly when `step` is.
    pub aggregation: Option<Aggregation>,
}

/// A `spec.range` that cannot be queried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("range.{field}: {source}")]
    InvalidDuration {
        field: &'static str,
        #[source]
        source: DurationError,
    },
    #[error("range.{field} {value:?} must be greater than zero")]
    NotPositive { field: &'static str, value: String },
    #[error("range.aggregation {0:?} is not one of p90, p95, p99, max, min, avg, median")]
    UnknownAggregation(String),
    #[error(
        "range.step {0:?} is set but range.aggregation is not: a range query with a step needs an aggregation"
    )]
    StepWithoutAggregation(String),
    #[error(
        "range.aggregation {0:?} is set but range.step is not: an aggregation needs a range query with a step"
    )]
    AggregationWithoutStep(String),
}

impl RangeQuery {
    /// Parses the `spec.range` strings; an empty string is a field not given (`interval` then
    /// defaults to [`DEFAULT_INTERVAL`]). `step` and `aggregation` must be given together, and
    /// durations must be greater than zero.
    pub fn parse(interval: &str, step: &str, aggregation: &str) -> Result<RangeQuery, RangeError> {
        let interval = if interval.is_empty() {
            DEFAULT_INTERVAL
        } else {
            interval
        };
        let interval = positive_duration("interval", interval)?;
        let step_given = step;
        let step = (!step.is_empty())
            .then(|| positive_duration("step", step))
            .transpose()?;
        let aggregation_given = aggregation;
        let aggregation = (!aggregation.is_empty())
            .then(|| aggregation.parse::<Aggregation>())
            .transpose()?;
        match (step, aggregation) {
            (Some(_), None) => Err(RangeError::StepWithoutAggregation(step_given.to_owned())),
            (None, Some(_)) => Err(RangeError::AggregationWithoutStep(
                aggregation_given.to_owned(),
            )),
            _ => Ok(RangeQuery {
                interval,
                step,
                aggregation,
            }),
        }
    }

    /// [`RangeQuery::parse`] of a KeptnMetric's `spec.range`.
    pub fn from_spec(spec: &RangeSpec) -> Result<RangeQuery, RangeError> {
        RangeQuery::parse(&spec.interval, &spec.step, &spec.aggregation)
    }

    /// The step sent to Prometheus: `step`, or `interval` when no step is given (then the answer
    /// has a sample at the start and one at the end of the range).
    pub fn effective_step(&self) -> Duration {
        self.step.unwrap_or(self.interval)
    }
}

fn format_go(d: Duration) -> String {
    shared::crd::format_go_duration(d)
}

fn positive_duration(field: &'static str, value: &str) -> Result<Duration, RangeError> {
    let d = shared::crd::Duration::new(value)
        .to_std()
        .map_err(|source| RangeError::InvalidDuration { field, source })?;
    if d.is_zero() {
        return Err(RangeError::NotPositive {
            field,
            value: value.to_owned(),
        });
    }
    Ok(d)
}

/// One call of the Prometheus HTTP API: the path below the server's URL and the parameters (sent
/// as the URL's query string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiRequest {
    /// [`QUERY_PATH`] or [`QUERY_RANGE_PATH`].
    pub path: &'static str,
    pub params: Vec<(&'static str, String)>,
}

/// The API call for `query` at `now`: an instant query without `range`, else a range query from
/// `now - interval` to `now` with [`RangeQuery::effective_step`]. Times and the step are sent as
/// decimal seconds (`1700000000.25`, `30`), which Prometheus reads exactly.
pub fn api_request(
    query: &str,
    range: Option<&RangeQuery>,
    now: Timestamp,
) -> Result<ApiRequest, QueryError> {
    let Some(range) = range else {
        return Ok(ApiRequest {
            path: QUERY_PATH,
            params: vec![("query", query.to_owned()), ("time", timestamp_param(now))],
        });
    };
    let start = now
        .checked_sub(range.interval)
        .map_err(|_| QueryError::TimeRange(format_go(range.interval)))?;
    Ok(ApiRequest {
        path: QUERY_RANGE_PATH,
        params: vec![
            ("query", query.to_owned()),
            ("start", timestamp_param(start)),
            ("end", timestamp_param(now)),
            (
                "step",
                decimal_seconds(range.effective_step().as_nanos() as i128),
            ),
        ],
    })
}

/// `path` appended to `target_server`, which may or may not end with `/`.
pub fn endpoint(target_server: &str, path: &str) -> String {
    format!(
        "{}/{}",
        target_server.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

fn timestamp_param(t: Timestamp) -> String {
    decimal_seconds(t.as_nanosecond())
}

/// Nanoseconds as decimal seconds without trailing zeros: `1500000000` → `1.5`.
fn decimal_seconds(nanos: i128) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.unsigned_abs();
    let whole = nanos / 1_000_000_000;
    let fraction = nanos % 1_000_000_000;
    if fraction == 0 {
        format!("{sign}{whole}")
    } else {
        let digits = format!("{fraction:09}");
        format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// Why an answer gives no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Prometheus answered `{"status":"error",..}`.
    #[error("Prometheus error ({error_type}): {error}")]
    Api { error_type: String, error: String },
    /// The body is not a Prometheus API answer.
    #[error("malformed Prometheus answer: {0}")]
    Malformed(String),
    #[error("no values in query result")]
    NoValues,
    /// More than one series, with the label sets of the first few.
    #[error("query returned {count} series ({labels}), it must return exactly one")]
    TooManySeries { count: usize, labels: String },
    #[error("query result value {0:?} is not a finite number")]
    NotANumber(String),
    #[error(
        "query returned a {0}: an instant query must return an instant vector with one series or a scalar"
    )]
    InstantResultType(String),
    #[error("query returned a {0}: a range query must return a range vector (matrix)")]
    RangeResultType(String),
    #[error(
        "query result holds native histogram samples, which are not supported: query a float value (e.g. with histogram_quantile)"
    )]
    Histogram,
    #[error("range.interval {0} reaches before the earliest supported time")]
    TimeRange(String),
}

/// The value of an answer's JSON `body` to the call [`api_request`] made for `range`.
///
/// Instant queries (`range` is `None`): exactly one series with one sample, or a scalar. Range
/// queries: exactly one series; without a step its last sample, with a step all its samples
/// aggregated. `NaN` and infinite values are errors.
pub fn evaluate(body: &[u8], range: Option<&RangeQuery>) -> Result<f64, QueryError> {
    let data = parse_answer(body)?;
    let series = match (range, data.result_type.as_str()) {
        (None, "vector" | "scalar") => data.series()?,
        (None, other) => return Err(QueryError::InstantResultType(result_kind(other))),
        (Some(_), "matrix" | "vector" | "scalar") => data.series()?,
        (Some(_), other) => return Err(QueryError::RangeResultType(result_kind(other))),
    };
    let one = only_series(series)?;
    if one.samples.is_empty() {
        return Err(if one.histograms {
            QueryError::Histogram
        } else {
            QueryError::NoValues
        });
    }
    match range.and_then(|r| r.aggregation) {
        None => {
            // Instant: the one sample; range without step: the last one (Prometheus sorts them).
            let last = one.samples.last().expect("not empty");
            sample_value(&last.1)
        }
        Some(aggregation) => {
            let values = one
                .samples
                .iter()
                .map(|s| sample_value(&s.1))
                .collect::<Result<Vec<f64>, _>>()?;
            Ok(aggregation.apply(&values).expect("not empty"))
        }
    }
}

/// `errorType` and `error` of a `{"status":"error",..}` body (Prometheus sends one with HTTP
/// 400, 422, 503 and others); `None` for any other body.
pub fn api_error(body: &[u8]) -> Option<(String, String)> {
    match serde_json::from_slice::<Envelope>(body).ok()? {
        Envelope {
            status,
            error_type,
            error,
            ..
        } if status == "error" => Some((error_type, error)),
        _ => None,
    }
}

fn result_kind(result_type: &str) -> String {
    match result_type {
        "matrix" => "range vector (matrix)".to_owned(),
        "vector" => "instant vector".to_owned(),
        "string" => "string".to_owned(),
        other => format!("result of type {other:?}"),
    }
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: serde_json::Value,
}

/// A sample as the API writes it: `[<unix seconds>, "<value>"]`.
type RawSample = (f64, String);

#[derive(Deserialize)]
struct InstantSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: Option<RawSample>,
    histogram: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RangeSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<RawSample>,
    #[serde(default)]
    histograms: Vec<serde_json::Value>,
}

/// One series of an answer, whatever its result type.
struct Series {
    metric: BTreeMap<String, String>,
    samples: Vec<RawSample>,
    histograms: bool,
}

fn parse_answer(body: &[u8]) -> Result<Data, QueryError> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| QueryError::Malformed(e.to_string()))?;
    match envelope.status.as_str() {
        "success" => envelope
            .data
            .ok_or_else(|| QueryError::Malformed("status success without data".to_owned())),
        "error" => Err(QueryError::Api {
            error_type: envelope.error_type,
            error: envelope.error,
        }),
        other => Err(QueryError::Malformed(format!("unknown status {other:?}"))),
    }
}

impl Data {
    fn series(self) -> Result<Vec<Series>, QueryError> {
        let malformed = |e: serde_json::Error| {
            QueryError::Malformed(format!("{} result: {e}", self.result_type))
        };
        Ok(match self.result_type.as_str() {
            "vector" => serde_json::from_value::<Vec<InstantSeries>>(self.result.clone())
                .map_err(malformed)?
                .into_iter()
                .map(|s| Series {
                    metric: s.metric,
                    samples: s.value.into_iter().collect(),
                    histograms: s.histogram.is_some(),
                })
                .collect(),
            "matrix" => serde_json::from_value::<Vec<RangeSeries>>(self.result.clone())
                .map_err(malformed)?
                .into_iter()
                .map(|s| Series {
                    metric: s.metric,
                    samples: s.values,
                    histograms: !s.histograms.is_empty(),
                })
                .collect(),
            "scalar" => {
                let sample: RawSample =
                    serde_json::from_value(self.result.clone()).map_err(malformed)?;
                vec![Series {
                    metric: BTreeMap::new(),
                    samples: vec![sample],
                    histograms: false,
                }]
            }
            other => return Err(QueryError::Malformed(format!("result type {other:?}"))),
        })
    }
}

fn only_series(mut series: Vec<Series>) -> Result<Series, QueryError> {
    match series.len() {
        0 => Err(QueryError::NoValues),
        1 => Ok(series.pop().expect("one")),
        count => {
            const SHOWN: usize = 3;
            let mut labels: Vec<String> = series
                .iter()
                .take(SHOWN)
                .map(|s| label_set(&s.metric))
                .collect();
            if count > SHOWN {
                labels.push("...".to_owned());
            }
            Err(QueryError::TooManySeries {
                count,
                labels: labels.join(", "),
            })
        }
    }
}

/// `{a="1", b="2"}`, the metric name first as PromQL writes it: `up{job="x"}`.
fn label_set(metric: &BTreeMap<String, String>) -> String {
    let name = metric.get("__name__").map(String::as_str).unwrap_or("");
    let labels: Vec<String> = metric
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{name}{{{}}}", labels.join(", "))
}

fn sample_value(raw: &str) -> Result<f64, QueryError> {
    let v: f64 = raw
        .parse()
        .map_err(|_| QueryError::Malformed(format!("sample value {raw:?} is not a number")))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(QueryError::NotANumber(raw.to_owned()))
    }
}

/// The decimal string written to `status.value`: the shortest digits that read back as the same
/// `f64`, without an exponent for magnitudes from 1e-6 up to 1e21 (`0.7`, `1234.5`, `0.000001`,
/// `100000000000000000000`), with one beyond (`1e21`, `1.5e-7`). Zero is `0` (also `-0.0`).
pub fn format_value(v: f64) -> String {
    if v == 0.0 {
        return "0".to_owned();
    }
    let magnitude = v.abs();
    if !v.is_finite() || (1e-6..1e21).contains(&magnitude) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(interval: &str, step: &str, aggregation: &str) -> RangeQuery {
        RangeQuery::parse(interval, step, aggregation).expect("valid range")
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn aggregations_parse_and_print() {
        for a in Aggregation::ALL {
            assert_eq!(a.as_str().parse::<Aggregation>(), Ok(a));
            assert_eq!(a.to_string(), a.as_str());
        }
        for bad in ["", "P90", "p50", "mean", "average", " max"] {
            assert_eq!(
                bad.parse::<Aggregation>(),
                Err(RangeError::UnknownAggregation(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ranges_parse() {
        let cases: &[(&str, &str, &str, RangeQuery)] = &[
            (
                "",
                "",
                "",
                RangeQuery {
                    interval: secs(300),
                    step: None,
                    aggregation: None,
                },
            ),
            (
                "5m",
                "",
                "",
                RangeQuery {
                    interval: secs(300),
                    step: None,
                    aggregation: None,
                },
            ),
            (
                "1h30m",
                "30s",
                "p95",
                RangeQuery {
                    interval: secs(5400),
                    step: Some(secs(30)),
                    aggregation: Some(Aggregation::P95),
                },
            ),
            (
                "1.5h",
                "500ms",
                "median",
                RangeQuery {
                    interval: secs(5400),
                    step: Some(Duration::from_millis(500)),
                    aggregation: Some(Aggregation::Median),
                },
            ),
            (
                "30s",
                "1m",
                "max",
                RangeQuery {
                    interval: secs(30),
                    step: Some(secs(60)),
                    aggregation: Some(Aggregation::Max),
                },
            ),
        ];
        for (interval, step, aggregation, want) in cases {
            assert_eq!(
                RangeQuery::parse(interval, step, aggregation).as_ref(),
                Ok(want),
                "{interval:?} {step:?} {aggregation:?}"
            );
        }
    }

    #[test]
    fn bad_ranges_are_rejected_with_the_field() {
        let cases: &[(&str, &str, &str, &str)] = &[
            (
                "5x",
                "",
                "",
                "range.interval: unknown unit \"x\" in duration \"5x\"",
            ),
            (
                "5",
                "",
                "",
                "range.interval: missing unit in duration \"5\"",
            ),
            ("-5m", "", "", "range.interval: negative duration \"-5m\""),
            (
                "1d",
                "",
                "",
                "range.interval: unknown unit \"d\" in duration \"1d\"",
            ),
            (
                "0s",
                "",
                "",
                "range.interval \"0s\" must be greater than zero",
            ),
            ("5m", "abc", "max", "range.step: invalid duration \"abc\""),
            (
                "5m",
                "0",
                "max",
                "range.step \"0\" must be greater than zero",
            ),
            (
                "5m",
                "10s",
                "mean",
                "range.aggregation \"mean\" is not one of p90, p95, p99, max, min, avg, median",
            ),
            (
                "5m",
                "10s",
                "",
                "range.step \"10s\" is set but range.aggregation is not: a range query with a step needs an aggregation",
            ),
            (
                "5m",
                "",
                "avg",
                "range.aggregation \"avg\" is set but range.step is not: an aggregation needs a range query with a step",
            ),
        ];
        for (interval, step, aggregation, want) in cases {
            let err = RangeQuery::parse(interval, step, aggregation).expect_err(want);
            assert_eq!(err.to_string(), *want);
        }
    }

    #[test]
    fn range_from_spec() {
        let spec: RangeSpec =
            serde_json::from_value(serde_json::json!({"step": "1m", "aggregation": "p99"}))
                .expect("spec");
        assert_eq!(
            RangeQuery::from_spec(&spec),
            Ok(RangeQuery {
                interval: secs(300),
                step: Some(secs(60)),
                aggregation: Some(Aggregation::P99),
            })
        );
    }

    #[test]
    fn requests() {
        let now: Timestamp = "2024-05-01T12:00:00.25Z".parse().expect("time");
        let n = now.as_second();
        let cases: &[(Option<RangeQuery>, ApiRequest)] = &[
            (
                None,
                ApiRequest {
                    path: "/api/v1/query",
                    params: vec![("query", "up".into()), ("time", format!("{n}.25"))],
                },
            ),
            (
                Some(range("5m", "", "")),
                ApiRequest {
                    path: "/api/v1/query_range",
                    params: vec![
                        ("query", "up".into()),
                        ("start", format!("{}.25", n - 300)),
                        ("end", format!("{n}.25")),
                        ("step", "300".into()),
                    ],
                },
            ),
            (
                Some(range("1m", "500ms", "avg")),
                ApiRequest {
                    path: "/api/v1/query_range",
                    params: vec![
                        ("query", "up".into()),
                        ("start", format!("{}.25", n - 60)),
                        ("end", format!("{n}.25")),
                        ("step", "0.5".into()),
                    ],
                },
            ),
        ];
        for (range, want) in cases {
            assert_eq!(api_request("up", range.as_ref(), now).as_ref(), Ok(want));
        }
        let whole: Timestamp = "2024-05-01T12:00:00Z".parse().expect("time");
        let req = api_request("up", None, whole).expect("request");
        assert_eq!(req.params[1], ("time", whole.as_second().to_string()));
    }

    #[test]
    fn decimal_seconds_are_exact() {
        for (nanos, want) in [
            (0, "0"),
            (1_000_000_000, "1"),
            (1_500_000_000, "1.5"),
            (1, "0.000000001"),
            (-2_250_000_000, "-2.25"),
        ] {
            assert_eq!(decimal_seconds(nanos), want);
        }
    }

    #[test]
    fn endpoints() {
        for server in ["http://prom:9090", "http://prom:9090/"] {
            assert_eq!(
                endpoint(server, QUERY_PATH),
                "http://prom:9090/api/v1/query"
            );
        }
        assert_eq!(
            endpoint("https://h/prometheus/", QUERY_RANGE_PATH),
            "https://h/prometheus/api/v1/query_range"
        );
    }

    fn vector(series: &[(&str, &str)]) -> String {
        let items: Vec<String> = series
            .iter()
            .map(|(job, v)| {
                format!(
                    r#"{{"metric":{{"__name__":"m","job":"{job}"}},"value":[1700000000.5,"{v}"]}}"#
                )
            })
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            items.join(",")
        )
    }

    fn matrix(series: &[&[&str]]) -> String {
        let items: Vec<String> = series
            .iter()
            .enumerate()
            .map(|(i, values)| {
                let samples: Vec<String> = values
                    .iter()
                    .enumerate()
                    .map(|(t, v)| format!(r#"[{},"{v}"]"#, 1700000000 + t))
                    .collect();
                format!(
                    r#"{{"metric":{{"job":"j{i}"}},"values":[{}]}}"#,
                    samples.join(",")
                )
            })
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{}]}}}}"#,
            items.join(",")
        )
    }

    #[test]
    fn instant_answers() {
        let two_series =
            "query returned 2 series (m{job=\"a\"}, m{job=\"b\"}), it must return exactly one";
        let cases: Vec<(String, Result<f64, String>)> = vec![
            (vector(&[("a", "0.7")]), Ok(0.7)),
            (vector(&[("a", "-3")]), Ok(-3.0)),
            (vector(&[("a", "1e3")]), Ok(1000.0)),
            (
                r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}"#
                    .into(),
                Ok(42.0),
            ),
            (vector(&[]), Err("no values in query result".into())),
            (vector(&[("a", "1"), ("b", "2")]), Err(two_series.into())),
            (
                vector(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]),
                Err("query returned 4 series (m{job=\"a\"}, m{job=\"b\"}, m{job=\"c\"}, ...), it must return exactly one".into()),
            ),
            (
                vector(&[("a", "NaN")]),
                Err("query result value \"NaN\" is not a finite number".into()),
            ),
            (
                vector(&[("a", "+Inf")]),
                Err("query result value \"+Inf\" is not a finite number".into()),
            ),
            (
                vector(&[("a", "-Inf")]),
                Err("query result value \"-Inf\" is not a finite number".into()),
            ),
            (
                vector(&[("a", "zero")]),
                Err("malformed Prometheus answer: sample value \"zero\" is not a number".into()),
            ),
            (
                matrix(&[&["1", "2"]]),
                Err("query returned a range vector (matrix): an instant query must return an instant vector with one series or a scalar".into()),
            ),
            (
                r#"{"status":"success","data":{"resultType":"string","result":[1700000000,"x"]}}"#
                    .into(),
                Err("query returned a string: an instant query must return an instant vector with one series or a scalar".into()),
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"1"}]}]}}"#
                    .into(),
                Err("query result holds native histogram samples, which are not supported: query a float value (e.g. with histogram_quantile)".into()),
            ),
            (
                r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}"#
                    .into(),
                Err("Prometheus error (bad_data): 1:5: parse error: unclosed left parenthesis".into()),
            ),
            (
                "<html>".into(),
                Err("malformed Prometheus answer: expected value at line 1 column 1".into()),
            ),
            (
                r#"{"status":"success"}"#.into(),
                Err("malformed Prometheus answer: status success without data".into()),
            ),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":{}}}"#.into(),
                Err("malformed Prometheus answer: vector result: invalid type: map, expected a sequence".into()),
            ),
        ];
        for (body, want) in cases {
            let got = evaluate(body.as_bytes(), None).map_err(|e| e.to_string());
            assert_eq!(got, want, "{body}");
        }
    }

    #[test]
    fn answers_with_warnings_and_extra_fields_are_read() {
        let body = r#"{"status":"success","warnings":["partial"],"data":{"resultType":"vector","result":[{"metric":{},"value":[1,"5"]}],"stats":{}}}"#;
        assert_eq!(evaluate(body.as_bytes(), None), Ok(5.0));
    }

    #[test]
    fn range_answers_without_step_give_the_last_sample() {
        let r = range("5m", "", "");
        let cases: Vec<(String, Result<f64, String>)> = vec![
            (matrix(&[&["1", "2", "3.5"]]), Ok(3.5)),
            (matrix(&[&["7"]]), Ok(7.0)),
            (matrix(&[]), Err("no values in query result".into())),
            (matrix(&[&[]]), Err("no values in query result".into())),
            (
                matrix(&[&["1"], &["2"]]),
                Err("query returned 2 series ({job=\"j0\"}, {job=\"j1\"}), it must return exactly one".into()),
            ),
            (
                matrix(&[&["1", "NaN"]]),
                Err("query result value \"NaN\" is not a finite number".into()),
            ),
            // Only the last sample counts without a step.
            (matrix(&[&["NaN", "4"]]), Ok(4.0)),
            (
                r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#.into(),
                Err("query returned a string: a range query must return a range vector (matrix)".into()),
            ),
        ];
        for (body, want) in cases {
            let got = evaluate(body.as_bytes(), Some(&r)).map_err(|e| e.to_string());
            assert_eq!(got, want, "{body}");
        }
    }

    #[test]
    fn every_aggregation() {
        // Sorted: 1 2 3 4 5 6 7 8 9 10 (n = 10, h = 9p).
        let ten = ["3", "1", "4", "10", "5", "9", "2", "6", "8", "7"];
        // Sorted: 1 2 4 8 (n = 4, h = 3p).
        let four = ["8", "1", "4", "2"];
        let cases: &[(Aggregation, &[&str], f64)] = &[
            (Aggregation::P90, &ten, 9.1),
            (Aggregation::P95, &ten, 9.55),
            (Aggregation::P99, &ten, 9.91),
            (Aggregation::Median, &ten, 5.5),
            (Aggregation::Max, &ten, 10.0),
            (Aggregation::Min, &ten, 1.0),
            (Aggregation::Avg, &ten, 5.5),
            (Aggregation::P90, &four, 6.8),
            (Aggregation::P95, &four, 7.4),
            (Aggregation::P99, &four, 7.88),
            (Aggregation::Median, &four, 3.0),
            (Aggregation::Max, &four, 8.0),
            (Aggregation::Min, &four, 1.0),
            (Aggregation::Avg, &four, 3.75),
            (Aggregation::Median, &["1", "3", "2"], 2.0),
            (Aggregation::P99, &["-2.5"], -2.5),
            (Aggregation::Avg, &["-1", "1"], 0.0),
            (Aggregation::Min, &["-1", "-3"], -3.0),
        ];
        for (aggregation, values, want) in cases {
            let r = range("1m", "1s", aggregation.as_str());
            let got = evaluate(matrix(&[values]).as_bytes(), Some(&r)).expect("a value");
            assert!(
                (got - want).abs() < 1e-9,
                "{aggregation} of {values:?}: got {got}, want {want}"
            );
        }
    }

    #[test]
    fn aggregation_errors() {
        let r = range("1m", "1s", "max");
        let cases: Vec<(String, &str)> = vec![
            (matrix(&[]), "no values in query result"),
            (
                matrix(&[&["1"], &["2"], &["3"]]),
                "query returned 3 series ({job=\"j0\"}, {job=\"j1\"}, {job=\"j2\"}), it must return exactly one",
            ),
            (
                matrix(&[&["1", "+Inf", "2"]]),
                "query result value \"+Inf\" is not a finite number",
            ),
        ];
        for (body, want) in cases {
            let got = evaluate(body.as_bytes(), Some(&r)).map_err(|e| e.to_string());
            assert_eq!(got, Err(want.to_owned()), "{body}");
        }
        assert_eq!(Aggregation::Max.apply(&[]), None);
    }

    #[test]
    fn api_errors() {
        let body = br#"{"status":"error","errorType":"execution","error":"query timed out"}"#;
        assert_eq!(
            api_error(body),
            Some(("execution".to_owned(), "query timed out".to_owned()))
        );
        assert_eq!(api_error(vector(&[("a", "1")]).as_bytes()), None);
        assert_eq!(api_error(b"Unauthorized\n"), None);
    }

    #[test]
    fn values_format_shortest() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (0.7, "0.7"),
            (1.0, "1"),
            (-3.0, "-3"),
            (1234.5, "1234.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-6, "0.000001"),
            (123456789012.0, "123456789012"),
            (1e20, "100000000000000000000"),
            (1e21, "1e21"),
            (1.5e-7, "1.5e-7"),
            (-2.5e300, "-2.5e300"),
            (f64::MAX, "1.7976931348623157e308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
        ];
        for (v, want) in cases {
            let s = format_value(*v);
            assert_eq!(s, *want, "{v:?}");
            assert_eq!(s.parse::<f64>(), Ok(if *v == 0.0 { 0.0 } else { *v }));
        }
    }
}

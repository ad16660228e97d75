//! `metrics::prometheus` against a real Prometheus (the `prometheus` binary, see
//! `e2e::prometheus`): each test starts its own, scraping an in-process exporter whose gauges the
//! test sets, and waits for what it needs with deadlines.

use std::collections::BTreeSet;
use std::time::Duration;

use e2e::prometheus::{Options, Prometheus};
use jiff::Timestamp;
use metrics::prometheus::{FetchError, Fetched, Prometheus as Client};
use metrics::query::{Aggregation, RangeQuery};

const ERROR_RATE: &str = "http_error_rate";
const SHOP: &str = r#"http_error_rate{job="shop"}"#;

fn client() -> Client {
    Client::new().expect("HTTP clients")
}

fn range(interval: &str, step: &str, aggregation: &str) -> RangeQuery {
    RangeQuery::parse(interval, step, aggregation).expect("range")
}

/// `fetch` without auth or TLS options, at the current time.
async fn fetch(
    target: &str,
    query: &str,
    range: Option<&RangeQuery>,
) -> Result<Fetched, FetchError> {
    client()
        .fetch(target, None, false, query, range, Timestamp::now())
        .await
}

fn result_type(fetched: &Fetched) -> String {
    let raw: serde_json::Value = serde_json::from_slice(&fetched.raw).expect("raw is JSON");
    assert_eq!(raw["status"], "success", "{raw}");
    raw["data"]["resultType"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Sets the shop's gauge to each of `values` in turn, each once Prometheus has the one before.
async fn push(prom: &Prometheus, values: &[f64]) {
    for v in values {
        prom.exporter().set(ERROR_RATE, &[("job", "shop")], *v);
        prom.wait_for_value(SHOP, *v).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_query() {
    let prom = Prometheus::start().await;
    push(&prom, &[0.7]).await;
    let fetched = fetch(prom.url(), SHOP, None).await.expect("a value");
    assert_eq!(fetched.value, "0.7");
    assert_eq!(result_type(&fetched), "vector");

    // A changed value, through a targetServer with a trailing slash.
    push(&prom, &[12.25]).await;
    let with_slash = format!("{}/", prom.url());
    let fetched = fetch(&with_slash, SHOP, None).await.expect("a value");
    assert_eq!(fetched.value, "12.25");

    // A scalar is one value.
    let fetched = fetch(prom.url(), "scalar(sum(http_error_rate))", None)
        .await
        .expect("a value");
    assert_eq!(fetched.value, "12.25");
    assert_eq!(result_type(&fetched), "scalar");

    // A query for no series.
    let err = fetch(prom.url(), r#"http_error_rate{job="none"}"#, None)
        .await
        .expect_err("no series");
    assert!(matches!(err, FetchError::Answer { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("no values in query result"), "{message}");
    assert!(message.contains(prom.url()), "{message}");

    // NaN is not a value.
    prom.exporter().set(ERROR_RATE, &[("job", "nan")], f64::NAN);
    prom.wait_for_series(r#"http_error_rate{job="nan"}"#, 1)
        .await;
    let err = fetch(prom.url(), r#"http_error_rate{job="nan"}"#, None)
        .await
        .expect_err("NaN");
    assert!(
        err.to_string().contains("\"NaN\" is not a finite number"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_query_without_step_gives_the_last_sample() {
    let prom = Prometheus::start().await;
    push(&prom, &[1.0, 2.0, 3.5]).await;
    for interval in ["1m", "5m", "1h"] {
        let r = range(interval, "", "");
        let fetched = fetch(prom.url(), SHOP, Some(&r)).await.expect("a value");
        assert_eq!(fetched.value, "3.5", "interval {interval}");
        assert_eq!(result_type(&fetched), "matrix");
    }
}

/// The aggregate of `values` computed here, independently of `metrics::query`: percentiles by
/// linear interpolation between closest ranks, as `Aggregation` documents.
fn expected(aggregation: Aggregation, values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("numbers"));
    let rank = |p: f64| {
        let h = (sorted.len() - 1) as f64 * p;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
    };
    match aggregation {
        Aggregation::P90 => rank(0.90),
        Aggregation::P95 => rank(0.95),
        Aggregation::P99 => rank(0.99),
        Aggregation::Median => rank(0.5),
        Aggregation::Max => sorted[sorted.len() - 1],
        Aggregation::Min => sorted[0],
        Aggregation::Avg => values.iter().sum::<f64>() / values.len() as f64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_query_with_step_aggregates_every_sample() {
    let prom = Prometheus::start().await;
    let pushed = [3.0, 1.0, 4.0, 1.5, 9.0, 2.5, 6.0, 5.0];
    push(&prom, &pushed).await;
    // The last value stays, so later scrapes change no point of the range below.
    let now = Timestamp::now();
    let interval = Duration::from_secs(120);
    let step = Duration::from_millis(500);

    // The samples, as Prometheus answers the same range query directly.
    let series = prom
        .query_range(SHOP, now.checked_sub(interval).expect("start"), now, step)
        .await;
    assert_eq!(series.len(), 1, "{series:?}");
    let samples: Vec<f64> = series[0].points.iter().map(|p| p.1).collect();
    // Each value was scraped at least once and scrapes are 1s apart, so every one is among
    // the points (0.5s apart), most of them more than once.
    let distinct: BTreeSet<String> = samples.iter().map(|v| v.to_string()).collect();
    let want: BTreeSet<String> = pushed.iter().map(|v| v.to_string()).collect();
    assert_eq!(distinct, want, "samples {samples:?}");
    assert!(samples.len() > pushed.len(), "samples {samples:?}");

    for aggregation in Aggregation::ALL {
        let r = range("2m", "500ms", aggregation.as_str());
        let fetched = client()
            .fetch(prom.url(), None, false, SHOP, Some(&r), now)
            .await
            .unwrap_or_else(|e| panic!("{aggregation}: {e}"));
        assert_eq!(result_type(&fetched), "matrix");
        let got: f64 = fetched.value.parse().expect("a decimal value");
        let want = expected(aggregation, &samples);
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{aggregation}: got {got}, want {want} from samples {samples:?}"
        );
    }
    // The extremes are known without computing.
    let max = range("2m", "500ms", "max");
    let fetched = client()
        .fetch(prom.url(), None, false, SHOP, Some(&max), now)
        .await
        .expect("max");
    assert_eq!(fetched.value, "9");
    let min = range("2m", "500ms", "min");
    let fetched = client()
        .fetch(prom.url(), None, false, SHOP, Some(&min), now)
        .await
        .expect("min");
    assert_eq!(fetched.value, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth() {
    let prom = Prometheus::start_with(Options {
        basic_auth: Some(("keptn".to_owned(), "s3cret-pass".to_owned())),
        tls: false,
    })
    .await;
    push(&prom, &[0.25]).await;
    let now = Timestamp::now();
    let fetched = client()
        .fetch(prom.url(), prom.basic_auth(), false, SHOP, None, now)
        .await
        .expect("right credentials");
    assert_eq!(fetched.value, "0.25");

    for auth in [
        Some(("keptn", "wrong")),
        Some(("other", "s3cret-pass")),
        None,
    ] {
        let err = client()
            .fetch(prom.url(), auth, false, SHOP, None, now)
            .await
            .expect_err("refused");
        assert!(
            matches!(err, FetchError::Http { status: 401, .. }),
            "{auth:?}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("HTTP 401"), "{message}");
        assert!(message.contains("Unauthorized"), "{message}");
        assert!(message.contains(prom.url()), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_insecure_skip_tls_verify() {
    let prom = Prometheus::start_with(Options {
        basic_auth: None,
        tls: true,
    })
    .await;
    assert!(prom.url().starts_with("https://"), "{}", prom.url());
    push(&prom, &[42.0]).await;
    let now = Timestamp::now();

    // insecureSkipTlsVerify: true.
    let fetched = client()
        .fetch(prom.url(), None, true, SHOP, None, now)
        .await
        .expect("unverified TLS");
    assert_eq!(fetched.value, "42");

    // false: the test CA is not among the system's roots.
    let err = client()
        .fetch(prom.url(), None, false, SHOP, None, now)
        .await
        .expect_err("unknown CA");
    assert!(matches!(err, FetchError::Unreachable { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains(prom.url()), "{message}");

    // Verified against the CA that issued the certificate, it works.
    let ca = reqwest::Certificate::from_pem(prom.ca_pem().expect("CA").as_bytes()).expect("CA");
    let fetched = Client::with_roots(vec![ca])
        .expect("clients")
        .fetch(prom.url(), None, false, SHOP, None, now)
        .await
        .expect("verified TLS");
    assert_eq!(fetched.value, "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_series_are_an_error() {
    let prom = Prometheus::start().await;
    prom.exporter().set(ERROR_RATE, &[("job", "shop")], 1.0);
    prom.exporter().set(ERROR_RATE, &[("job", "cart")], 2.0);
    prom.wait_for_series(ERROR_RATE, 2).await;
    for r in [
        None,
        Some(range("1m", "", "")),
        Some(range("1m", "1s", "avg")),
    ] {
        let err = fetch(prom.url(), ERROR_RATE, r.as_ref())
            .await
            .expect_err("two series");
        assert!(matches!(err, FetchError::Answer { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("query returned 2 series") && message.contains("exactly one"),
            "{r:?}: {message}"
        );
        assert!(message.contains(r#"job="cart""#), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_promql_gives_prometheus_error() {
    let prom = Prometheus::start().await;
    for r in [None, Some(range("1m", "", ""))] {
        let err = fetch(prom.url(), "sum(http_error_rate", r.as_ref())
            .await
            .expect_err("parse error");
        assert!(
            matches!(err, FetchError::Http { status: 400, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("bad_data"), "{message}");
        assert!(message.contains("parse error"), "{message}");
        assert!(message.contains(prom.url()), "{message}");
    }
    // Too many points for one series is Prometheus's error too.
    let err = fetch(prom.url(), SHOP, Some(&range("1h", "100ms", "max")))
        .await
        .expect_err("too many points");
    assert!(err.to_string().contains("11,000 points"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server() {
    // Reserved for this process and never listened on: connections are refused.
    let port = e2e::free_port();
    let target = format!("http://127.0.0.1:{port}");
    for r in [None, Some(range("5m", "", ""))] {
        let err = fetch(&target, SHOP, r.as_ref()).await.expect_err("refused");
        assert!(matches!(err, FetchError::Unreachable { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&target), "{message}");
        assert!(message.contains("onnect"), "{message}");
    }
    let err = fetch("prometheus:9090", SHOP, None)
        .await
        .expect_err("no scheme");
    assert!(matches!(err, FetchError::InvalidUrl { .. }), "{err:?}");
}

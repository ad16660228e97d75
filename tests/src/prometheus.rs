//! A real Prometheus per test: [`Prometheus::start`] runs the `prometheus` binary on a free
//! loopback port with a configuration in a directory of its own, scraping an in-process
//! [`Exporter`] every second, whose gauges the test sets at run time. Optionally behind basic
//! auth and/or TLS (a `--web.config.file`), so clients' credentials and `insecureSkipTlsVerify`
//! can be tested. The process is killed when the [`Prometheus`] is dropped.
//!
//! ```ignore
//! let prom = Prometheus::start().await;
//! prom.exporter().set("http_error_rate", &[("job", "shop")], 0.7);
//! prom.wait_for_value("http_error_rate{job=\"shop\"}", 0.7).await;
//! ```
//!
//! The exporter's samples keep their own `job` label (`honor_labels: true`); Prometheus adds
//! `instance` only.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::json;

use crate::{WAIT, free_port, wait_for};

/// The `prometheus` binary: `$PROMETHEUS` when set, else the first on `PATH`. Panics with how
/// to install it when there is none.
pub fn prometheus_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PROMETHEUS").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "PROMETHEUS={} is not a file",
            path.display()
        );
        return path;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no `prometheus` binary on PATH (or in $PROMETHEUS): install it with \
                 `apt-get install -y --no-install-recommends prometheus`"
            )
        })
}

/// Gauges by name, then by label set.
type Gauges = BTreeMap<String, BTreeMap<Vec<(String, String)>, f64>>;

/// An HTTP server in this process that serves `/metrics` in the Prometheus text format: gauges
/// whose values the test sets ([`Exporter::set`]) between scrapes. Stops when dropped.
pub struct Exporter {
    gauges: Arc<Mutex<Gauges>>,
    scrapes: Arc<AtomicU64>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Exporter {
    /// Starts serving on a loopback port (in the current Tokio runtime).
    pub async fn start() -> Exporter {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("exporter listens");
        let addr = listener.local_addr().expect("exporter address");
        let gauges = Arc::new(Mutex::new(Gauges::new()));
        let scrapes = Arc::new(AtomicU64::new(0));
        let server = tokio::spawn(serve(listener, gauges.clone(), scrapes.clone()));
        Exporter {
            gauges,
            scrapes,
            addr,
            server,
        }
    }

    /// `host:port` to scrape.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the gauge `name{labels}` to `value` (NaN and infinities are written as Prometheus
    /// spells them); it is served from the next scrape on.
    pub fn set(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.lock()
            .entry(name.to_owned())
            .or_default()
            .insert(label_key(labels), value);
    }

    /// Stops serving `name{labels}` (Prometheus marks the series stale at the next scrape).
    pub fn remove(&self, name: &str, labels: &[(&str, &str)]) {
        let mut gauges = self.lock();
        if let Some(series) = gauges.get_mut(name) {
            series.remove(&label_key(labels));
            if series.is_empty() {
                gauges.remove(name);
            }
        }
    }

    /// How many times `/metrics` was served.
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::SeqCst)
    }

    /// The `/metrics` body as it is served now.
    pub fn render(&self) -> String {
        render(&self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Gauges> {
        self.gauges.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn label_key(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut key: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    key.sort();
    key
}

async fn serve(
    listener: tokio::net::TcpListener,
    gauges: Arc<Mutex<Gauges>>,
    scrapes: Arc<AtomicU64>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let gauges = gauges.clone();
        let scrapes = scrapes.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let response = if req.uri().path() == "/metrics" {
                    let body = render(&gauges.lock().unwrap_or_else(PoisonError::into_inner));
                    scrapes.fetch_add(1, Ordering::SeqCst);
                    Response::builder()
                        .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                        .body(Full::new(Bytes::from(body)))
                } else {
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Full::new(Bytes::from_static(b"not found\n")))
                };
                async move { Ok::<_, Infallible>(response.expect("response")) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The text exposition format: a `# TYPE` line per gauge, one line per label set.
fn render(gauges: &Gauges) -> String {
    let mut out = String::new();
    for (name, series) in gauges {
        out.push_str(&format!("# TYPE {name} gauge\n"));
        for (labels, value) in series {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let labels = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            out.push_str(&format!("{name}{labels} {}\n", exposition_value(*value)));
        }
    }
    out
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn exposition_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v == f64::INFINITY {
        "+Inf".to_owned()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{v}")
    }
}

/// How [`Prometheus::start_with`] protects the server.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Require HTTP basic auth with this user and password.
    pub basic_auth: Option<(String, String)>,
    /// Serve HTTPS with a certificate for `127.0.0.1` and `localhost` issued by a fresh CA
    /// ([`Prometheus::ca_pem`]), so a client that does not trust that CA fails verification.
    pub tls: bool,
}

/// One instant-query sample, as the harness reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One series of a range query: its labels and `(unix seconds, value)` points.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

/// A running Prometheus that scrapes its own [`Exporter`] every second; killed on drop (its
/// log's tail is printed when the test is failing).
pub struct Prometheus {
    child: Mutex<std::process::Child>,
    dir: tempfile::TempDir,
    port: u16,
    url: String,
    basic_auth: Option<(String, String)>,
    ca_pem: Option<String>,
    http: reqwest::Client,
    exporter: Exporter,
}

impl Prometheus {
    /// Plain HTTP, no auth; returns once it is ready.
    pub async fn start() -> Prometheus {
        Prometheus::start_with(Options::default()).await
    }

    /// Starts Prometheus as `options` say and waits until it is ready.
    pub async fn start_with(options: Options) -> Prometheus {
        let exporter = Exporter::start().await;
        let dir = tempfile::Builder::new()
            .prefix("portcullis-prometheus.")
            .tempdir()
            .expect("prometheus directory");
        let port = free_port();
        let config = json!({
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "scrape_configs": [{
                "job_name": "exporter",
                "honor_labels": true,
                "static_configs": [{"targets": [exporter.address().to_string()]}],
            }],
        });
        write_yaml(&dir.path().join("prometheus.yml"), &config);

        let mut web = serde_json::Map::new();
        let mut ca_pem = None;
        if options.tls {
            let (ca, cert, key) = tls_certificates();
            std::fs::write(dir.path().join("tls.crt"), cert).expect("tls.crt");
            std::fs::write(dir.path().join("tls.key"), key).expect("tls.key");
            web.insert(
                "tls_server_config".to_owned(),
                json!({
                    "cert_file": dir.path().join("tls.crt"),
                    "key_file": dir.path().join("tls.key"),
                }),
            );
            ca_pem = Some(ca);
        }
        if let Some((user, password)) = &options.basic_auth {
            // Cost 4 (the minimum): Prometheus checks the hash on every request.
            let hash = bcrypt::hash(password, 4).expect("bcrypt hash");
            web.insert("basic_auth_users".to_owned(), json!({ user: hash }));
        }

        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let mut command = std::process::Command::new(prometheus_binary());
        command
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log));
        if !web.is_empty() {
            let path = dir.path().join("web.yml");
            write_yaml(&path, &serde_json::Value::Object(web));
            command.arg(format!("--web.config.file={}", path.display()));
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("prometheus starts: {e}"));

        let scheme = if options.tls { "https" } else { "http" };
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(20));
        if let Some(ca) = &ca_pem {
            http = http.add_root_certificate(
                reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA certificate"),
            );
        }
        let prometheus = Prometheus {
            child: Mutex::new(child),
            dir,
            port,
            url: format!("{scheme}://127.0.0.1:{port}"),
            basic_auth: options.basic_auth,
            ca_pem,
            http: http.build().expect("http client"),
            exporter,
        };
        prometheus.wait_until_ready().await;
        prometheus
    }

    /// `http://127.0.0.1:<port>` (or `https://`), without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The exporter this Prometheus scrapes.
    pub fn exporter(&self) -> &Exporter {
        &self.exporter
    }

    /// The user and password it requires, if any.
    pub fn basic_auth(&self) -> Option<(&str, &str)> {
        self.basic_auth
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The PEM of the CA that issued its serving certificate, when it serves HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The directory of its configuration, data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Waits until `GET /-/ready` answers 200 (with the credentials); panics with the log if the
    /// process exits or [`WAIT`] passes first.
    pub async fn wait_until_ready(&self) {
        let url = format!("{}/-/ready", self.url);
        wait_for("Prometheus ready", WAIT, || {
            let exited = self
                .child
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .try_wait()
                .ok()
                .flatten();
            if let Some(status) = exited {
                panic!("prometheus exited with {status}:\n{}", self.log());
            }
            let request = self.authorized(self.http.get(&url));
            async move {
                let response = request.send().await.ok()?;
                response.status().is_success().then_some(())
            }
        })
        .await;
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.basic_auth {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// `GET <path>?<params>` with the credentials: the JSON body of a successful API answer, or
    /// a description of what went wrong.
    pub async fn try_get(
        &self,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<serde_json::Value, String> {
        let response = self
            .authorized(self.http.get(format!("{}{path}", self.url)).query(params))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {path}: HTTP {status}: {body}"));
        }
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("GET {path}: {e}: {body}"))?;
        if json["status"] != "success" {
            return Err(format!("GET {path}: {body}"));
        }
        Ok(json)
    }

    /// [`Prometheus::try_get`], panicking on failure.
    pub async fn get(&self, path: &str, params: &[(&str, String)]) -> serde_json::Value {
        self.try_get(path, params)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The samples of an instant `promql` query now, or why there are none.
    pub async fn try_query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let json = self
            .try_get("/api/v1/query", &[("query", promql.to_owned())])
            .await?;
        let data = &json["data"];
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    Ok(Sample {
                        labels: labels(&s["metric"]),
                        value: number(&s["value"][1])?,
                    })
                })
                .collect(),
            Some("scalar") => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: number(&data["result"][1])?,
            }]),
            _ => Err(format!("unexpected answer to {promql}: {json}")),
        }
    }

    /// [`Prometheus::try_query`], panicking on failure.
    pub async fn query(&self, promql: &str) -> Vec<Sample> {
        self.try_query(promql)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A range query from `start` to `end` every `step`, as `/api/v1/query_range` answers it.
    pub async fn query_range(
        &self,
        promql: &str,
        start: Timestamp,
        end: Timestamp,
        step: Duration,
    ) -> Vec<Series> {
        let json = self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", promql.to_owned()),
                    ("start", seconds(start.as_nanosecond())),
                    ("end", seconds(end.as_nanosecond())),
                    ("step", seconds(step.as_nanos() as i128)),
                ],
            )
            .await;
        matrix(&json).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until the instant query `promql` returns exactly one sample equal to `value`
    /// (within 1e-9 relative); panics after [`WAIT`] with the last answer.
    pub async fn wait_for_value(&self, promql: &str, value: f64) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let answer = self.try_query(promql).await;
            if matches!(&answer, Ok(s) if s.len() == 1 && close(s[0].value, value)) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {promql} == {value}; last answer: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the instant query `promql` returns `count` series.
    pub async fn wait_for_series(&self, promql: &str, count: usize) {
        wait_for(&format!("{count} series of {promql}"), WAIT, || async {
            let samples = self.try_query(promql).await.ok()?;
            (samples.len() == count).then_some(())
        })
        .await;
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
        if std::thread::panicking() {
            let log = self.log();
            eprintln!("---- prometheus log (last lines) ----");
            for line in log.lines().rev().take(40).collect::<Vec<_>>().iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn write_yaml(path: &Path, value: &serde_json::Value) {
    let text = serde_yaml::to_string(value).expect("yaml");
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A fresh CA, and a serving certificate for `127.0.0.1` and `localhost` it issued with its key:
/// (CA PEM, certificate PEM, key PEM).
fn tls_certificates() -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("ca key");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn labels(metric: &serde_json::Value) -> BTreeMap<String, String> {
    metric
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn number(v: &serde_json::Value) -> Result<f64, String> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not a sample value: {v}"))
}

fn matrix(json: &serde_json::Value) -> Result<Vec<Series>, String> {
    if json["data"]["resultType"] != "matrix" {
        return Err(format!("not a matrix: {json}"));
    }
    json["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let points = s["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let t = p[0].as_f64().ok_or_else(|| format!("no time in {p}"))?;
                    Ok((t, number(&p[1])?))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Series {
                labels: labels(&s["metric"]),
                points,
            })
        })
        .collect()
}

/// Nanoseconds as decimal seconds, as the Prometheus API reads times and steps.
fn seconds(nanos: i128) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.unsigned_abs();
    let fraction = nanos % 1_000_000_000;
    if fraction == 0 {
        format!("{sign}{}", nanos / 1_000_000_000)
    } else {
        let digits = format!("{fraction:09}");
        format!(
            "{sign}{}.{}",
            nanos / 1_000_000_000,
            digits.trim_end_matches('0')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let mut gauges = Gauges::new();
        gauges
            .entry("rate".to_owned())
            .or_default()
            .insert(label_key(&[("job", "a\"b"), ("env", "x")]), 0.5);
        gauges
            .entry("up_down".to_owned())
            .or_default()
            .insert(Vec::new(), f64::NEG_INFINITY);
        assert_eq!(
            render(&gauges),
            "# TYPE rate gauge\nrate{env=\"x\",job=\"a\\\"b\"} 0.5\n# TYPE up_down gauge\nup_down -Inf\n"
        );
    }

    #[test]
    fn decimal_seconds() {
        assert_eq!(seconds(1_700_000_000_250_000_000), "1700000000.25");
        assert_eq!(seconds(30_000_000_000), "30");
    }
}

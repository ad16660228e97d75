//! Load run of the running `portcullis-webhook` binary over TLS keep-alive (`make bench-webhook`).
//!
//! Starts a real control plane (the `e2e` harness, `tools/cluster.sh`), installs the CRDs, creates
//! an enabled namespace with an annotated Deployment (no replicas) and takes its ReplicaSet (the
//! pod under review names it as owner), starts the release webhook binary against it, warms its
//! caches (the first review writes the KeptnWorkload and KeptnAppCreationRequest, later ones find
//! them cached), then lets `oha` post the same realistic pod review at a fixed rate and reports the
//! client-side latency percentiles, the server-side histogram and the number of Kubernetes API
//! calls the webhook made during the run (the objective: none).
//!
//! Usage: `loadrun --webhook-bin PATH --oha PATH [--rate 5000] [--duration 20s]
//! [--connections 16] [--http2]`

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

struct Args {
    webhook_bin: PathBuf,
    oha: PathBuf,
    rate: u32,
    duration: String,
    connections: u32,
    http2: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut http2 = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--http2" {
            http2 = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        map.insert(flag.trim_start_matches("--").to_owned(), value);
    }
    let get = |k: &str| map.get(k).cloned();
    Ok(Args {
        webhook_bin: get("webhook-bin")
            .context("--webhook-bin is required")?
            .into(),
        oha: get("oha").context("--oha is required")?.into(),
        rate: get("rate").map_or(Ok(5000), |v| v.parse())?,
        duration: get("duration").unwrap_or_else(|| "20s".into()),
        connections: get("connections").map_or(Ok(16), |v| v.parse())?,
        http2,
    })
}

async fn api_total(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("portcullis_webhook_api_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let _ =
        rustls::crypto::CryptoProvider::install_default(rustls::crypto::ring::default_provider());
    let cluster = e2e::Cluster::with_crds().await;
    let client = cluster.client();
    let pp = PostParams::default();
    Api::<Namespace>::all(client.clone())
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "shop",
                "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"}}}))?,
        )
        .await?;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "shop", "annotations": {
            "keptn.sh/workload": "web", "keptn.sh/version": "1.4.2",
            "keptn.sh/pre-deployment-tasks": "check-db,notify"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "ghcr.io/example/web:1.4.2"}]}}}
    }))?;
    Api::<Deployment>::namespaced(client.clone(), "shop")
        .create(&pp, &deployment)
        .await?;
    // The deployment controller makes its ReplicaSet, with no pods.
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), "shop");
    let rs = e2e::wait_for("the ReplicaSet of web", e2e::WAIT, || {
        let replica_sets = replica_sets.clone();
        async move {
            replica_sets
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()
        }
    })
    .await;

    let dir = tempfile::tempdir()?;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, certified.cert.pem())?;
    std::fs::write(&key_path, certified.signing_key.serialize_pem())?;
    // Reserved for this process's lifetime, so nothing else takes it before the webhook binds it.
    let port = e2e::free_port();
    let mut webhook = Command::new(&args.webhook_bin)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("LOG_FILTER", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("starting the webhook binary")?;
    let result = measure(&args, port, &certified.cert.pem(), &rs, dir.path()).await;
    let _ = Command::new("kill")
        .args(["-TERM", &webhook.id().to_string()])
        .status();
    let _ = webhook.wait();
    drop(cluster);
    result
}

async fn measure(
    args: &Args,
    port: u16,
    ca_pem: &str,
    rs: &ReplicaSet,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let base = format!("https://localhost:{port}");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes())?)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = https.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the webhook did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pod = webhook::fixtures::pod("shop")
        .container("web", "ghcr.io/example/web:1.4.2")
        .env("LOG_LEVEL", "info")
        .container("envoy", "envoyproxy/envoy:v1.31.0")
        .owned_by(
            "apps/v1",
            "ReplicaSet",
            rs.metadata.name.as_deref().unwrap_or_default(),
            rs.metadata.uid.as_deref().unwrap_or_default(),
        )
        .labelled("app", "web")
        .build();
    let body = serde_json::to_vec(&webhook::fixtures::pod_review(&pod, false))?;
    let body_path = dir.join("review.json");
    std::fs::write(&body_path, &body)?;

    // Warm up: the first review writes, later ones must find everything in the caches.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = api_total(&https, &base).await?;
        let response: Value = https
            .post(format!("{base}/mutate-v1-pod"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?
            .json()
            .await?;
        let after = api_total(&https, &base).await?;
        if response["response"]["allowed"] != true {
            bail!("warm-up review not allowed: {response}");
        }
        if response["response"]["patch"].is_string() && after == before {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "caches never caught up with the webhook's own writes ({} API calls by the last \
                 warm-up review; its response: {})",
                after - before,
                response["response"]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "body: {} bytes (pod review of a 2-container Deployment pod)",
        body.len()
    );

    let before = api_total(&https, &base).await?;
    let mut oha = Command::new(&args.oha);
    oha.args(["--no-tui", "--output-format", "json", "--insecure"])
        .args(["-z", &args.duration])
        .args(["-q", &args.rate.to_string(), "--latency-correction"])
        .args(["-c", &args.connections.to_string()])
        .args(["-m", "POST", "-H", "content-type: application/json", "-D"])
        .arg(&body_path);
    if args.http2 {
        oha.arg("--http2");
    }
    oha.arg(format!("{base}/mutate-v1-pod"));
    let output = oha.output().context("running oha")?;
    if !output.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let report: Value = serde_json::from_slice(&output.stdout).context("oha JSON")?;
    let after = api_total(&https, &base).await?;
    let metrics = https
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;

    let summary = &report["summary"];
    let lat = &report["latencyPercentiles"];
    let ms = |v: &Value| {
        v.as_f64()
            .map_or("?".into(), |s| format!("{:.3} ms", s * 1000.0))
    };
    println!(
        "oha: {} connections, target {} req/s, {}, {}",
        args.connections,
        args.rate,
        args.duration,
        if args.http2 {
            "HTTP/2"
        } else {
            "HTTP/1.1 keep-alive"
        }
    );
    println!(
        "  achieved {:.0} req/s, success rate {}, status codes {}",
        summary["requestsPerSec"].as_f64().unwrap_or(0.0),
        summary["successRate"],
        report["statusCodeDistribution"]
    );
    println!(
        "  latency p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        ms(&lat["p50"]),
        ms(&lat["p90"]),
        ms(&lat["p99"]),
        ms(&lat["p99.9"]),
        ms(&summary["slowest"])
    );
    let bucket = |le: &str| -> f64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("portcullis_webhook_request_duration_seconds_bucket{")
                    && l.contains(&format!("le=\"{le}\""))
                    && l.contains("/mutate-v1-pod")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    let count = bucket("+Inf");
    println!(
        "  server-side (handler) share under 0.25 ms {:.4}, under 1 ms {:.4} of {} reviews",
        bucket("0.00025") / count.max(1.0),
        bucket("0.001") / count.max(1.0),
        count
    );
    println!("  Kubernetes API calls during the run: {}", after - before);
    let p99 = lat["p99"].as_f64().unwrap_or(f64::MAX);
    let rps = summary["requestsPerSec"].as_f64().unwrap_or(0.0);
    let verdict = p99 < 0.001 && rps >= f64::from(args.rate) * 0.98 && after == before;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "  machine load average (1/5/15 min) after the run: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "objective p99 < 1 ms at {} req/s with zero API calls: {}",
        args.rate,
        if verdict { "MET" } else { "NOT MET" }
    );
    Ok(())
}

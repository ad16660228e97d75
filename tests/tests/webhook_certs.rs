//! The webhook keeps its own certificates (`--cert-secret`, A25) on a real control plane: an
//! install with no manual certificate step, rotation of serving certificates and CAs under
//! admission load with two replicas racing on the Secret, and a `caBundle` reset by someone else.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2e::{
    Cluster, INSTALL_NS, Processes, SERVICE, WAIT, cert_keeper_rbac, converting_crds,
    register_webhooks_without_ca, wait_for, wait_webhook_ready, webhook_binary,
};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const SECRET: &str = "portcullis-webhook-tls";
const CONFIG: &str = "portcullis-webhook";

/// Control plane with CRDs, the Service routed here, the RBAC of the interface and the
/// configurations registered without caBundle; returns the ServiceAccount's kubeconfig.
async fn install(
    port_of: impl Fn(&str) -> u16,
    conversion_port: u16,
) -> (Cluster, std::path::PathBuf) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cluster = Cluster::with_crds().await;
    cluster
        .route_service_to_localhost(INSTALL_NS, SERVICE)
        .await;
    cert_keeper_rbac(&cluster).await;
    let kubeconfig = cluster
        .service_account_kubeconfig(INSTALL_NS, "portcullis-webhook")
        .await;
    register_webhooks_without_ca(&cluster, port_of, conversion_port).await;
    (cluster, kubeconfig)
}

/// The webhook binary; `PORTCULLIS_E2E_WEBHOOK` names a copy when the shared target directory
/// may be rebuilt from another checkout during the run.
fn binary() -> std::path::PathBuf {
    std::env::var_os("PORTCULLIS_E2E_WEBHOOK").map_or_else(webhook_binary, Into::into)
}

fn spawn(procs: &mut Processes, name: &str, port: u16, kubeconfig: &Path, policy: &[&str]) {
    let mut args = vec![
        format!("--listen=127.0.0.1:{port}"),
        format!("--cert-secret={SECRET}"),
        format!("--namespace={INSTALL_NS}"),
        format!("--cert-service={SERVICE}"),
        format!("--webhook-configurations={CONFIG}"),
    ];
    args.extend(policy.iter().map(|s| (*s).to_owned()));
    procs.spawn(
        name,
        &binary(),
        &args,
        kubeconfig,
        "info,webhook=debug,kube=warn",
    );
}

/// Every caBundle the API server uses for the webhook (decoded PEM): the hooks of both
/// configurations and the converting CRDs; `None` for one that is missing.
async fn bundles(client: &Client) -> Vec<Option<String>> {
    let decode = |b: Option<&k8s_openapi::ByteString>| {
        b.map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .filter(|s| !s.is_empty())
    };
    let mut out = Vec::new();
    if let Ok(m) = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(CONFIG)
        .await
    {
        for h in m.webhooks.unwrap_or_default() {
            out.push(decode(h.client_config.ca_bundle.as_ref()));
        }
    }
    if let Ok(v) = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(CONFIG)
        .await
    {
        for h in v.webhooks.unwrap_or_default() {
            out.push(decode(h.client_config.ca_bundle.as_ref()));
        }
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in converting_crds() {
        let crd = crds.get(&name).await.ok();
        out.push(crd.and_then(|c| {
            decode(
                c.spec
                    .conversion?
                    .webhook?
                    .client_config?
                    .ca_bundle
                    .as_ref(),
            )
        }));
    }
    out
}

async fn secret_data(client: &Client) -> Option<(String, String)> {
    let s = Api::<Secret>::namespaced(client.clone(), INSTALL_NS)
        .get_opt(SECRET)
        .await
        .ok()??;
    let data = s.data?;
    let text = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    Some((text("ca.crt")?, text("tls.crt")?))
}

/// The first PEM block of a bundle: the current CA.
fn head(pem: &str) -> String {
    let end = "-----END CERTIFICATE-----";
    pem.find(end)
        .map_or(pem, |i| &pem[..i + end.len()])
        .to_owned()
}

/// Waits until every caBundle equals the Secret's ca.crt; returns it.
async fn bundles_filled(client: &Client) -> String {
    wait_for("every caBundle filled from the Secret", WAIT, || async {
        let (ca, tls) = secret_data(client).await?;
        if tls.is_empty() {
            return None;
        }
        let all = bundles(client).await;
        (all.len() == 3 + converting_crds().len()
            && all.iter().all(|b| b.as_deref() == Some(ca.as_str())))
        .then_some(ca)
    })
    .await
}

/// An HTTPS client that trusts only `bundle` and reaches `host` at loopback `port`.
fn trusting(bundle: &str, host: &str, port: u16) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().resolve(host, ([127, 0, 0, 1], port).into());
    for cert in reqwest::Certificate::from_pem_bundle(bundle.as_bytes()).expect("bundle") {
        builder = builder.add_root_certificate(cert);
    }
    builder.build().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_with_no_manual_step_then_a_reset_ca_bundle_is_restored() {
    let port = e2e::free_port();
    let (cluster, kubeconfig) = install(|_| port, port).await;
    let client = cluster.client();
    let mut procs = Processes::new();
    spawn(
        &mut procs,
        "webhook",
        port,
        &kubeconfig,
        &["--cert-check-interval=2s"],
    );

    let ca = bundles_filled(&client).await;
    wait_webhook_ready(&ca, port).await;
    assert!(
        cluster.forbidden_requests().is_empty(),
        "the interface's RBAC suffices: {:?}",
        cluster.forbidden_requests()
    );

    // A pod of an annotated workload in an enabled namespace is admitted through the API server.
    let ns = "certs-enabled";
    let kubectl_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns,
        "annotations": {"keptn.sh/lifecycle-toolkit": "enabled"}}});
    cluster.kubectl_apply(&kubectl_ns).await.expect("namespace");
    e2e::default_service_account(&client, ns).await;
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "solo", "annotations": {
        "keptn.sh/workload": "solo", "keptn.sh/version": "1.0"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}))
    .expect("pod");
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod admitted through the webhook (failurePolicy Fail)");
    // The webhooks answer through the API server: a Deployment naming a missing container is
    // denied by the mutating hook, an empty KeptnTaskDefinition by the validating one.
    let bad: Deployment =
        serde_json::from_value(json!({"metadata": {"name": "bad", "annotations": {
        "keptn.sh/workload": "bad", "keptn.sh/container": "sidecar"}},
        "spec": {"selector": {"matchLabels": {"app": "bad"}}, "template": {
            "metadata": {"labels": {"app": "bad"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}))
        .expect("deployment");
    let denied = Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("denied by the webhook");
    assert!(
        denied.to_string().contains("denied the request") && denied.to_string().contains("sidecar"),
        "{denied}"
    );
    let td = json!({"apiVersion": "lifecycle.keptn.sh/v1", "kind": "KeptnTaskDefinition",
        "metadata": {"name": "check", "namespace": ns}, "spec": {"retries": 1}});
    let out = cluster
        .kubectl_apply(&td)
        .await
        .expect_err("denied by the webhook");
    assert!(out.contains("Either Container, Python, or Deno"), "{out}");

    // Someone resets the bundles (an old chart's upgrade): restored within the check interval.
    let reset = Instant::now();
    // The keeper may restore a bundle at any moment after the reset (its check interval runs on
    // its own clock): the patches' answers show the reset itself, a later read might not.
    let remove = json!([{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}]);
    let hooks = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .patch(
            CONFIG,
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(remove).expect("patch")),
        )
        .await
        .expect("caBundle removed")
        .webhooks
        .unwrap_or_default();
    assert!(hooks[0].client_config.ca_bundle.is_none(), "reset");
    let crd = &converting_crds()[0];
    let remove =
        json!([{"op": "remove", "path": "/spec/conversion/webhook/clientConfig/caBundle"}]);
    let reset_crd = Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            crd,
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(remove).expect("patch")),
        )
        .await
        .expect("CRD caBundle removed");
    assert!(
        reset_crd
            .spec
            .conversion
            .and_then(|c| c.webhook?.client_config?.ca_bundle)
            .is_none(),
        "CRD reset"
    );
    let restored = bundles_filled(&client).await;
    assert_eq!(restored, ca, "the same CA is restored");
    assert!(
        reset.elapsed() < Duration::from_secs(20),
        "restored within a few check intervals: {:?}",
        reset.elapsed()
    );
    drop(procs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_load_with_two_replicas_fails_no_admission() {
    // Replica A serves the pod hook and the conversion, replica B the workload hook; both keep
    // the same Secret, so their renewals race.
    let (port_a, port_b) = (e2e::free_port(), e2e::free_port());
    let (cluster, kubeconfig) = install(
        |hook| {
            if hook.starts_with("mworkloads") {
                port_b
            } else {
                port_a
            }
        },
        port_a,
    )
    .await;
    let client = cluster.client();
    let policy = [
        "--cert-validity=30s",
        "--cert-renew-before=20s",
        "--ca-validity=90s",
        "--ca-renew-before=60s",
        "--cert-check-interval=2s",
    ];
    let mut procs = Processes::new();
    spawn(&mut procs, "webhook-a", port_a, &kubeconfig, &policy);
    spawn(&mut procs, "webhook-b", port_b, &kubeconfig, &policy);
    let ca = bundles_filled(&client).await;
    wait_webhook_ready(&ca, port_a).await;
    wait_webhook_ready(&ca, port_b).await;

    let ns = "certs-load";
    cluster
        .kubectl_apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
        .await
        .expect("namespace");
    e2e::default_service_account(&client, ns).await;

    // Load: a pod create (hook at A) and a dry-run Deployment create (hook at B) per round.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let load = {
        let (client, stop, ok, failed, errors) = (
            client.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            errors.clone(),
        );
        tokio::spawn(async move {
            let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
            let deployments: Api<Deployment> = Api::namespaced(client, ns);
            let dry = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            let mut ticker = tokio::time::interval(Duration::from_millis(150));
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                ticker.tick().await;
                i += 1;
                let pod: Pod =
                    serde_json::from_value(json!({"metadata": {"name": format!("p{i}")},
                    "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}))
                    .expect("pod");
                let d: Deployment =
                    serde_json::from_value(json!({"metadata": {"name": format!("d{i}")},
                    "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": {
                        "metadata": {"labels": {"app": "d"}},
                        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}))
                    .expect("deployment");
                for result in [
                    pods.create(&PostParams::default(), &pod).await.map(|_| ()),
                    deployments.create(&dry, &d).await.map(|_| ()),
                ] {
                    match result {
                        Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            errors.lock().expect("errors").push(e.to_string());
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                }
            }
        })
    };

    // Observe the Secret and probe both replicas with the bundle the API server has.
    let (mut cas, mut servings) = (BTreeSet::new(), BTreeSet::new());
    let mut probes = 0u64;
    let mut untrusted = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let host = format!("{SERVICE}.{INSTALL_NS}.svc");
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    while cas.len() < 2 || servings.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "rotations seen in time: {} CAs, {} serving certificates",
            cas.len(),
            servings.len()
        );
        ticker.tick().await;
        if let Some((ca, tls)) = secret_data(&client).await {
            cas.insert(head(&ca));
            if !tls.is_empty() {
                servings.insert(tls);
            }
        }
        // What the API server trusts now (the pod hook's bundle) must verify what each serves.
        let Some(Some(bundle)) = bundles(&client).await.into_iter().next() else {
            untrusted.push("the pod hook has no caBundle".to_owned());
            continue;
        };
        for port in [port_a, port_b] {
            probes += 1;
            let url = format!("https://{host}:{port}/healthz");
            if let Err(e) = trusting(&bundle, &host, port).get(url).send().await {
                untrusted.push(format!("port {port}: {e:?}"));
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    load.await.expect("load loop");

    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!(
        "creates ok {ok}, failed {failed}; CAs {}, serving certificates {}, probes {probes}",
        cas.len(),
        servings.len()
    );
    assert_eq!(
        failed,
        0,
        "no admission failed: {:?}",
        errors.lock().expect("errors")
    );
    assert!(ok > 100, "the load ran: {ok} creates");
    assert!(
        untrusted.is_empty(),
        "every replica was trusted: {untrusted:?}"
    );
    for name in ["webhook-a", "webhook-b"] {
        assert!(
            !procs.log(name).contains("panicked"),
            "{name} did not panic"
        );
    }
    // Both replicas took part in the race and neither fought the other's CA.
    let log = procs.log("webhook-a") + &procs.log("webhook-b");
    assert!(
        log.contains("webhook certificates renewed"),
        "renewals logged"
    );
    drop(procs);
}

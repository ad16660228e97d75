//! Wiring: certificates (files, or kept in a Secret: A25), caches, cluster client, router and server, until SIGTERM.

use std::sync::Arc;

use anyhow::Context as _;
use rustls::crypto::CryptoProvider;

use crate::caches::Caches;
use crate::certificates::{Keeper, Settings};
use crate::cli::Cli;
use crate::cluster::KubeCluster;
use crate::metrics::{Metrics, ReloadLabels};
use crate::server::{self, App, Limits};
use crate::tls::{self, Certificates};

/// Runs the webhook until SIGTERM or Ctrl-C, then drains.
pub async fn run(cli: Cli, provider: Arc<CryptoProvider>) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let client = kube::Client::try_default()
        .await
        .context("creating the Kubernetes client")?;
    let (certificates, keeper) = match &cli.certs.cert_secret {
        // A25: the webhook keeps its certificates; it serves once the first pass loaded them.
        Some(secret) => {
            let namespace = cli
                .certs
                .namespace
                .as_deref()
                .context("--cert-secret needs --namespace (POD_NAMESPACE)")?;
            let service = certs::ServiceName::new(
                &cli.certs.cert_service,
                namespace,
                &cli.certs.cluster_domain,
            )
            .context("--cert-service")?;
            let policy = cli.certs.policy();
            policy.check().context("certificate lifetimes")?;
            let certificates = Arc::new(Certificates::in_memory(provider.clone()));
            let keeper = Keeper::new(
                Settings {
                    secret: secret.clone(),
                    service,
                    configurations: cli.certs.webhook_configurations.clone(),
                    policy,
                    interval: cli.certs.cert_check_interval,
                },
                client.clone(),
                certificates.clone(),
                metrics.clone(),
            );
            (certificates, Some(keeper))
        }
        None => {
            let certificates = Arc::new(
                Certificates::load(&cli.server.tls_cert, &cli.server.tls_key, provider.clone())
                    .context("loading the serving certificate")?,
            );
            metrics
                .certificate_loads
                .get_or_create(&ReloadLabels { outcome: "ok" })
                .inc();
            metrics.serving_not_after(certificates.current_cert_pem().as_deref());
            (certificates, None)
        }
    };
    let tls_config = tls::server_config(certificates.clone(), provider)
        .context("building the TLS configuration")?;
    let caches = Caches::start(&client, &metrics);
    let cluster = KubeCluster::new(client, cli.client.pod_name.clone(), metrics.clone());
    let ready_caches = caches.clone();
    let ready_certificates = certificates.clone();
    let app = Arc::new(App {
        snapshot: Arc::new(caches),
        cluster: Arc::new(cluster),
        metrics: metrics.clone(),
        ready: Arc::new(move || ready_certificates.loaded() && ready_caches.synced()),
    });
    let limits = Limits {
        body_bytes: cli.server.max_body_bytes,
        header_read: cli.server.header_read_timeout,
        request: cli.server.request_timeout,
        drain: cli.server.drain_timeout,
    };
    let listener = tokio::net::TcpListener::bind(cli.server.listen)
        .await
        .with_context(|| format!("binding {}", cli.server.listen))?;
    tracing::info!(listen = %listener.local_addr()?, "serving");
    match keeper {
        Some(keeper) => {
            tokio::spawn(keeper.run());
        }
        None => {
            tokio::spawn(
                certificates
                    .clone()
                    .watch(cli.server.tls_reload_interval, metrics),
            );
        }
    }
    server::serve(
        listener,
        Arc::new(tls_config),
        server::router(app, limits),
        limits,
        shared::shutdown::signal(),
    )
    .await;
    Ok(())
}

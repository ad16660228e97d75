//! The webhook keeps its own CA and serving certificate (`--cert-secret`, decision A25): in one
//! Secret, renewed with the overlap rotation of [`certs::rotation`], served from memory, and the
//! CA bundle kept in every `caBundle` that the API server uses to call this webhook (the hooks of
//! the named webhook configurations and the conversion of the converting CRDs).
//!
//! # Why no admission fails during a rotation
//!
//! Invariant: whatever serving certificate any replica serves, its CA is in every `caBundle`.
//! It rests on four rules:
//!
//! 1. A serving certificate is written to the Secret only when the writer has seen every
//!    `caBundle` equal the Secret's `ca.crt` (which leads with the signing CA) for at least
//!    [`SETTLE`] (the API server's informers pick the change up meanwhile). A new CA is
//!    therefore written alone, with the old serving pair kept ([`certs::rotation::plan`]); its
//!    serving certificate follows on a later pass.
//! 2. Every Secret write is a replace at the `resourceVersion` read (or a create), so a writer
//!    that lost a race re-reads and adopts the winner's material: there is one CA lineage.
//! 3. A `caBundle` is only ever set to the `ca.crt` of a Secret read *after* the configuration
//!    or CRD was read, and the JSON patch tests that `resourceVersion`. A replica with a stale
//!    view cannot remove a CA: to patch over the version that added it, it must have read that
//!    version, so its later Secret read is at least as new as the one that version came from.
//! 4. A bundle keeps every CA that has not expired ([`certs::rotation::rotate`]), and a serving
//!    certificate never outlives its CA; so a replica still serving an older certificate (its
//!    view of the Secret lags) is still trusted.
//!
//! Outside the invariant: someone else resetting a `caBundle` (an old chart's `helm upgrade`)
//! breaks trust until the next check restores it ([`CertArgs::cert_check_interval`]), and a
//! corrupted Secret starts over with a new CA. A Secret deleted while this process runs is not
//! created again by it (`helm uninstall` deletes it, A26); a process that starts without one
//! creates it.
//!
//! [`CertArgs::cert_check_interval`]: crate::cli::CertArgs::cert_check_interval

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use certs::rotation::{Action, Plan, Policy};
use certs::secret::{data_from_material, material_from_data};
use certs::{Material, ServiceName};
use futures::StreamExt as _;
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, TestOperation};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::Value;

use crate::metrics::{Metrics, ReloadLabels, RotationLabels};
use crate::tls::Certificates;

/// How long every `caBundle` must have carried a CA before a serving certificate it signed is
/// written: the API server reads webhook configurations and CRDs through informers.
pub const SETTLE: Duration = Duration::from_secs(3);

/// How many times one pass re-reads after a conflict before waiting for the next.
const ATTEMPTS: usize = 6;

/// Why keeping the certificates failed (retried on the next pass).
#[derive(Debug, thiserror::Error)]
pub enum CertificatesError {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Making or renewing certificates failed.
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    /// The objects kept changing under this replica.
    #[error("the Secret or a webhook configuration kept changing; retrying")]
    Contended,
}

/// An object whose `caBundle`s are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A MutatingWebhookConfiguration.
    Mutating(String),
    /// A ValidatingWebhookConfiguration.
    Validating(String),
    /// A CustomResourceDefinition converting through the webhook.
    Crd(String),
}

/// The objects that may carry the webhook's `caBundle`: both kinds of configuration for each
/// name, and every CRD of [`shared::crd::all`] that converts through a webhook.
pub fn targets(configurations: &[String]) -> Vec<Target> {
    let mut out = Vec::new();
    for name in configurations.iter().filter(|n| !n.is_empty()) {
        out.push(Target::Mutating(name.clone()));
        out.push(Target::Validating(name.clone()));
    }
    for crd in shared::crd::all() {
        let converts = crd.spec.conversion.as_ref().map(|c| c.strategy.as_str()) == Some("Webhook");
        if let (true, Some(name)) = (converts, crd.metadata.name) {
            out.push(Target::Crd(name));
        }
    }
    out
}

/// The JSON patch that sets `caBundle` (base64 text, as in the API) on every client config of
/// `object` (a webhook configuration or CRD, as JSON) that calls `service`, preceded by a test of
/// the `resourceVersion` read (rule 3 of the module documentation). Empty when all are set.
pub fn bundle_patch(object: &Value, service: &ServiceName, bundle: &str) -> Vec<PatchOperation> {
    let calls_service = |cc: &Value| {
        cc["service"]["name"].as_str() == Some(service.service())
            && cc["service"]["namespace"].as_str() == Some(service.namespace())
    };
    let mut paths: Vec<Vec<String>> = Vec::new();
    if let Some(hooks) = object["webhooks"].as_array() {
        for (i, hook) in hooks.iter().enumerate() {
            paths.push(vec![
                "webhooks".into(),
                i.to_string(),
                "clientConfig".into(),
            ]);
            if !calls_service(&hook["clientConfig"]) {
                paths.pop();
            }
        }
    }
    let conversion = &object["spec"]["conversion"];
    if conversion["strategy"] == "Webhook" && calls_service(&conversion["webhook"]["clientConfig"])
    {
        paths.push(
            ["spec", "conversion", "webhook", "clientConfig"]
                .map(String::from)
                .to_vec(),
        );
    }
    let lookup = |path: &[String]| {
        path.iter()
            .fold(object, |v, token| match token.parse::<usize>() {
                Ok(i) if v.is_array() => &v[i],
                _ => &v[token.as_str()],
            })
    };
    let mut ops: Vec<PatchOperation> = paths
        .iter()
        .filter(|path| lookup(path)["caBundle"].as_str() != Some(bundle))
        .map(|path| {
            let tokens = path.iter().map(String::as_str).chain(["caBundle"]);
            PatchOperation::Add(AddOperation {
                path: PointerBuf::from_tokens(tokens),
                value: Value::String(bundle.to_owned()),
            })
        })
        .collect();
    if !ops.is_empty() {
        ops.insert(
            0,
            PatchOperation::Test(TestOperation {
                path: PointerBuf::from_tokens(["metadata", "resourceVersion"]),
                value: object["metadata"]["resourceVersion"].clone(),
            }),
        );
    }
    ops
}

/// The metric label of a renewal action.
pub fn action_label(action: &Action) -> &'static str {
    match action {
        Action::FirstCa => "first_ca",
        Action::NewCa { .. } => "new_ca",
        Action::NewServingCert { .. } => "new_serving_cert",
        Action::DroppedExpiredCa { .. } => "dropped_ca",
    }
}

/// The material in a Secret, as [`material_from_data`] reads it.
pub fn secret_material(secret: &Secret) -> Option<Material> {
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .as_ref()?
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    material_from_data(&data)
}

/// What the keeper needs to know (from `--cert-*` and `--webhook-configurations`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Secret's name, in the Service's namespace.
    pub secret: String,
    /// The Service the API server calls.
    pub service: ServiceName,
    /// The webhook configurations' names.
    pub configurations: Vec<String>,
    /// Lifetimes and thresholds.
    pub policy: Policy,
    /// Time between checks when nothing changes.
    pub interval: Duration,
}

/// Keeps the Secret, the `caBundle`s and the served certificate in step (see the module
/// documentation for the order of the writes).
pub struct Keeper {
    settings: Settings,
    targets: Vec<Target>,
    client: kube::Client,
    secrets: Api<Secret>,
    certificates: Arc<Certificates>,
    metrics: Arc<Metrics>,
    /// The `ca.crt` seen in every `caBundle`, and since when.
    trusted: Option<(String, Instant)>,
    /// Whether this process has read the Secret: one that disappears afterwards was deleted
    /// (`helm uninstall` deletes it, A26) and is not created again by a process about to stop.
    seen_secret: bool,
}

impl Keeper {
    /// A keeper serving through `certificates` (an in-memory [`Certificates`]).
    pub fn new(
        settings: Settings,
        client: kube::Client,
        certificates: Arc<Certificates>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let secrets = Api::namespaced(client.clone(), settings.service.namespace());
        Self {
            targets: targets(&settings.configurations),
            settings,
            client,
            secrets,
            certificates,
            metrics,
            trusted: None,
            seen_secret: false,
        }
    }

    /// Runs until the task is dropped: a pass at start, on every change of the Secret (another
    /// replica's renewal), and every check interval (due dates, `caBundle`s reset by others).
    pub async fn run(mut self) {
        let config =
            watcher::Config::default().fields(&format!("metadata.name={}", self.settings.secret));
        let mut changes = watcher(self.secrets.clone(), config)
            .default_backoff()
            .boxed();
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                event = changes.next() => match event {
                    Some(Ok(_)) => {}
                    Some(Err(err)) => tracing::debug!(error = %err, "watching the certificate Secret"),
                    None => tracing::warn!("the certificate Secret's watch ended"),
                },
            }
            wait = match self.pass().await {
                Ok(next) => next,
                Err(err) => {
                    tracing::warn!(error = %err, secret = %self.settings.secret, "keeping the webhook certificates failed; retrying");
                    self.settings.interval.min(Duration::from_secs(5))
                }
            };
        }
    }

    /// One check; returns when the next is due.
    pub async fn pass(&mut self) -> Result<Duration, CertificatesError> {
        for _ in 0..ATTEMPTS {
            // Rule 3: the objects first, then the Secret.
            let mut objects = Vec::new();
            for target in &self.targets {
                if let Some(object) = self.read(target).await? {
                    objects.push((target.clone(), object));
                }
            }
            let secret = self.secrets.get_opt(&self.settings.secret).await?;
            if secret.is_some() {
                self.seen_secret = true;
            } else if self.seen_secret {
                tracing::warn!(secret = %self.settings.secret, "the certificate Secret was deleted; serving the certificate in memory, not creating the Secret again until restarted");
                return Ok(self.settings.interval);
            }
            let material = secret.as_ref().and_then(secret_material);
            if let Some(material) = &material
                && !self.fill_bundles(&objects, material).await?
            {
                continue;
            }
            let settled = self.settled(material.as_ref());
            let plan = certs::rotation::plan(
                material.as_ref(),
                settled,
                &self.settings.service,
                &self.settings.policy,
                time::OffsetDateTime::now_utc(),
            )?;
            match plan {
                Plan::Keep => {
                    self.serve(material.as_ref());
                    return Ok(self.settings.interval);
                }
                Plan::AwaitTrust => {
                    self.serve(material.as_ref());
                    tracing::debug!(
                        "a serving certificate is due; waiting until its CA is trusted"
                    );
                    return Ok(SETTLE.min(self.settings.interval));
                }
                Plan::Write(rotation) => {
                    if !self.write(secret, &rotation.material).await? {
                        continue;
                    }
                    for action in &rotation.actions {
                        self.metrics
                            .certificate_rotations
                            .get_or_create(&RotationLabels {
                                action: action_label(action),
                            })
                            .inc();
                        tracing::info!(secret = %self.settings.secret, action = %action, "webhook certificates renewed");
                    }
                    // Re-read: a new CA goes into the bundles; the new pair is served.
                }
            }
        }
        Err(CertificatesError::Contended)
    }

    /// Whether every `caBundle` has carried `material`'s bundle for [`SETTLE`] (rule 1); called
    /// after the bundles were filled.
    fn settled(&mut self, material: Option<&Material>) -> bool {
        let Some(material) = material else {
            self.trusted = None;
            return false;
        };
        match &self.trusted {
            Some((bundle, since)) if *bundle == material.ca_bundle_pem => since.elapsed() >= SETTLE,
            _ => {
                self.trusted = Some((material.ca_bundle_pem.clone(), Instant::now()));
                false
            }
        }
    }

    /// Sets every `caBundle` that differs; returns false when an object changed meanwhile.
    async fn fill_bundles(
        &self,
        objects: &[(Target, Value)],
        material: &Material,
    ) -> Result<bool, CertificatesError> {
        let bundle = base64::engine::general_purpose::STANDARD.encode(&material.ca_bundle_pem);
        for (target, object) in objects {
            let ops = bundle_patch(object, &self.settings.service, &bundle);
            if ops.is_empty() {
                continue;
            }
            let hooks = ops.len() - 1;
            match self.patch(target, ops).await {
                Ok(()) => {
                    tracing::info!(target = ?target, hooks, "caBundle set");
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    tracing::debug!(target = ?target, "gone before its caBundle was set");
                }
                // A failed `test` (422) or a conflict: it changed since it was read.
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => {
                    tracing::debug!(target = ?target, "changed while its caBundle was set; re-reading");
                    return Ok(false);
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(true)
    }

    /// Replaces the Secret at the version read, or creates it; false when someone else won.
    async fn write(
        &self,
        secret: Option<Secret>,
        material: &Material,
    ) -> Result<bool, CertificatesError> {
        let data: BTreeMap<String, ByteString> = data_from_material(material)
            .into_iter()
            .map(|(k, v)| (k, ByteString(v)))
            .collect();
        let result = match secret {
            Some(mut secret) => {
                secret.data = Some(data);
                secret.string_data = None;
                self.secrets
                    .replace(&self.settings.secret, &PostParams::default(), &secret)
                    .await
            }
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(self.settings.secret.clone()),
                        namespace: Some(self.settings.service.namespace().to_owned()),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/part-of".to_owned(),
                            "portcullis".to_owned(),
                        )])),
                        ..ObjectMeta::default()
                    },
                    type_: Some("Opaque".to_owned()),
                    data: Some(data),
                    ..Secret::default()
                };
                self.secrets.create(&PostParams::default(), &secret).await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::debug!(secret = %self.settings.secret, "another replica wrote the Secret first; adopting its certificates");
                Ok(false)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Serves the Secret's serving pair (when it has one).
    fn serve(&self, material: Option<&Material>) {
        let Some(m) = material.filter(|m| !m.cert_pem.is_empty()) else {
            return;
        };
        match self
            .certificates
            .set(m.cert_pem.as_bytes(), m.key_pem.as_bytes())
        {
            Ok(false) => {}
            Ok(true) => {
                self.metrics
                    .certificate_loads
                    .get_or_create(&ReloadLabels { outcome: "ok" })
                    .inc();
                self.metrics.serving_not_after(Some(m.cert_pem.as_bytes()));
                tracing::info!(secret = %self.settings.secret, "serving the certificate from the Secret");
            }
            Err(err) => {
                self.metrics
                    .certificate_loads
                    .get_or_create(&ReloadLabels { outcome: "error" })
                    .inc();
                tracing::warn!(error = %err, "the Secret's serving certificate cannot be used; keeping the current one");
            }
        }
    }

    async fn read(&self, target: &Target) -> Result<Option<Value>, CertificatesError> {
        let value = match target {
            Target::Mutating(name) => Api::<MutatingWebhookConfiguration>::all(self.client.clone())
                .get_opt(name)
                .await?
                .map(serde_json::to_value),
            Target::Validating(name) => {
                Api::<ValidatingWebhookConfiguration>::all(self.client.clone())
                    .get_opt(name)
                    .await?
                    .map(serde_json::to_value)
            }
            Target::Crd(name) => Api::<CustomResourceDefinition>::all(self.client.clone())
                .get_opt(name)
                .await?
                .map(serde_json::to_value),
        };
        if value.is_none() {
            tracing::debug!(target = ?target, "not installed; no caBundle to keep");
        }
        Ok(value.and_then(Result::ok))
    }

    async fn patch(&self, target: &Target, ops: Vec<PatchOperation>) -> Result<(), kube::Error> {
        let patch: Patch<()> = Patch::Json(json_patch::Patch(ops));
        let params = PatchParams::default();
        match target {
            Target::Mutating(name) => {
                Api::<MutatingWebhookConfiguration>::all(self.client.clone())
                    .patch(name, &params, &patch)
                    .await?;
            }
            Target::Validating(name) => {
                Api::<ValidatingWebhookConfiguration>::all(self.client.clone())
                    .patch(name, &params, &patch)
                    .await?;
            }
            Target::Crd(name) => {
                Api::<CustomResourceDefinition>::all(self.client.clone())
                    .patch(name, &params, &patch)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn service() -> ServiceName {
        ServiceName::new("portcullis-webhook", "portcullis-system", "cluster.local").unwrap()
    }

    fn client_config(name: &str, bundle: Option<&str>) -> Value {
        let mut cc =
            json!({"service": {"name": name, "namespace": "portcullis-system", "port": 443}});
        if let Some(b) = bundle {
            cc["caBundle"] = json!(b);
        }
        cc
    }

    fn apply(object: &Value, ops: Vec<PatchOperation>) -> Value {
        let mut out = object.clone();
        json_patch::patch(&mut out, &ops).unwrap();
        out
    }

    #[test]
    fn only_hooks_calling_the_service_get_the_bundle() {
        let config = json!({
            "metadata": {"name": "portcullis-webhook", "resourceVersion": "7"},
            "webhooks": [
                {"name": "a", "clientConfig": client_config("portcullis-webhook", None)},
                {"name": "b", "clientConfig": client_config("other", Some("b2xk"))},
                {"name": "c", "clientConfig": client_config("portcullis-webhook", Some("b2xk"))},
                {"name": "d", "clientConfig": {"url": "https://example.com"}},
            ]
        });
        let ops = bundle_patch(&config, &service(), "bmV3");
        assert_eq!(ops.len(), 3, "a test and two adds: {ops:?}");
        let patched = apply(&config, ops);
        assert_eq!(patched["webhooks"][0]["clientConfig"]["caBundle"], "bmV3");
        assert_eq!(patched["webhooks"][1]["clientConfig"]["caBundle"], "b2xk");
        assert_eq!(patched["webhooks"][2]["clientConfig"]["caBundle"], "bmV3");
        assert_eq!(patched["webhooks"][3]["clientConfig"].get("caBundle"), None);
        assert!(bundle_patch(&patched, &service(), "bmV3").is_empty());
    }

    #[test]
    fn the_patch_fails_on_another_resource_version() {
        let config = json!({
            "metadata": {"resourceVersion": "7"},
            "webhooks": [{"clientConfig": client_config("portcullis-webhook", None)}]
        });
        let ops = bundle_patch(&config, &service(), "bmV3");
        let mut newer = config.clone();
        newer["metadata"]["resourceVersion"] = json!("8");
        assert!(json_patch::patch(&mut newer, &ops).is_err());
    }

    #[test]
    fn a_converting_crd_of_the_service_gets_the_bundle() {
        let crd = json!({
            "metadata": {"resourceVersion": "3"},
            "spec": {"conversion": {"strategy": "Webhook", "webhook": {
                "clientConfig": client_config("portcullis-webhook", Some("b2xk")),
                "conversionReviewVersions": ["v1"]
            }}}
        });
        let patched = apply(&crd, bundle_patch(&crd, &service(), "bmV3"));
        assert_eq!(
            patched["spec"]["conversion"]["webhook"]["clientConfig"]["caBundle"],
            "bmV3"
        );
        let none = json!({"metadata": {"resourceVersion": "3"}, "spec": {"conversion": {"strategy": "None"}}});
        assert!(bundle_patch(&none, &service(), "bmV3").is_empty());
        let other = json!({
            "metadata": {"resourceVersion": "3"},
            "spec": {"conversion": {"strategy": "Webhook", "webhook": {
                "clientConfig": client_config("other", None)
            }}}
        });
        assert!(bundle_patch(&other, &service(), "bmV3").is_empty());
    }

    #[test]
    fn targets_are_both_kinds_per_name_and_the_converting_crds() {
        let t = targets(&["a".into(), "b".into()]);
        assert_eq!(
            t[..4],
            [
                Target::Mutating("a".into()),
                Target::Validating("a".into()),
                Target::Mutating("b".into()),
                Target::Validating("b".into()),
            ]
        );
        let crds: Vec<_> = t[4..].iter().collect();
        assert_eq!(
            crds.len(),
            8,
            "the converting lifecycle.keptn.sh CRDs: {crds:?}"
        );
        assert!(
            crds.iter()
                .all(|c| matches!(c, Target::Crd(n) if n.ends_with(".lifecycle.keptn.sh")))
        );
    }

    #[test]
    fn an_empty_secret_has_no_material() {
        assert_eq!(secret_material(&Secret::default()), None);
        let material = Material {
            ca_bundle_pem: "b".into(),
            ca_key_pem: "k".into(),
            cert_pem: String::new(),
            key_pem: String::new(),
        };
        let secret = Secret {
            data: Some(
                data_from_material(&material)
                    .into_iter()
                    .map(|(k, v)| (k, ByteString(v)))
                    .collect(),
            ),
            ..Secret::default()
        };
        assert_eq!(secret_material(&secret), Some(material));
    }
}

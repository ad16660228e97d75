//! `portcullis-certs`: makes and renews the webhook's CA and serving certificate, writes them to a
//! directory and/or a Secret manifest, and patches `caBundle` in webhook manifests. It needs no
//! cluster access: apply what it writes with kubectl.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use certs::manifest::{Install, SecretRef, ca_secret_yaml, patch_manifests, tls_secret_yaml};
use certs::state::{self, write_if_changed};
use certs::validity::parse_duration;
use certs::{CertError, KeyAlgorithm, Material, Policy, ServiceName, rotation};
use clap::{Args, Parser, Subcommand, ValueEnum};
use time::{Duration, OffsetDateTime};

/// Certificates for the Portcullis admission webhook.
#[derive(Debug, Parser)]
#[command(name = "portcullis-certs", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a new CA and serving certificate (refuses to replace existing ones without --force).
    Create {
        /// Replace certificates already in --dir: webhooks serving the old ones stop being trusted.
        #[arg(long, env = "PORTCULLIS_CERTS_FORCE")]
        force: bool,
        #[command(flatten)]
        service: ServiceArgs,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Renew what is due (serving certificate, CA with overlap); an up-to-date set is left alone.
    /// With an empty --dir it creates the certificates.
    Rotate {
        #[command(flatten)]
        service: ServiceArgs,
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Fill a manifest (file or stdin) with the certificates of --dir: caBundle of the webhooks
    /// that call the Service, and the data of the serving Secret.
    /// Example: helm template portcullis charts/portcullis -n portcullis-system
    /// --set global.certManagerEnabled=false --set portcullis.certManagerIo.createCertificates=false
    /// --show-only templates/webhook-configurations.yaml --show-only templates/crds.yaml
    /// | portcullis-certs patch --dir .certs | kubectl apply -f -
    Patch {
        /// State directory (ca.crt, ca.key, tls.crt, tls.key).
        #[arg(long, env = "PORTCULLIS_CERTS_DIR")]
        dir: PathBuf,
        /// Name of the serving Secret to fill.
        #[arg(
            long,
            env = "PORTCULLIS_CERTS_SECRET_NAME",
            default_value = "portcullis-webhook-tls"
        )]
        secret_name: String,
        /// Manifest to read, `-` for stdin.
        #[arg(long = "in", env = "PORTCULLIS_CERTS_PATCH_IN", default_value = "-")]
        input: PathBuf,
        /// Where to write the patched manifest, `-` for stdout.
        #[arg(long = "out", env = "PORTCULLIS_CERTS_PATCH_OUT", default_value = "-")]
        output: PathBuf,
        #[command(flatten)]
        service: ServiceArgs,
    },
}

/// The Service the API server calls.
#[derive(Debug, Args)]
struct ServiceArgs {
    /// Name of the webhook's Service.
    #[arg(
        long,
        env = "PORTCULLIS_WEBHOOK_SERVICE",
        default_value = "portcullis-webhook"
    )]
    service: String,
    /// Namespace of the webhook's Service (and of the Secrets written).
    #[arg(
        long,
        env = "PORTCULLIS_NAMESPACE",
        default_value = "portcullis-system"
    )]
    namespace: String,
    /// Cluster DNS domain for the fully qualified name; empty to leave that name out.
    #[arg(
        long,
        env = "PORTCULLIS_CLUSTER_DOMAIN",
        default_value = "cluster.local"
    )]
    cluster_domain: String,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum KeyAlgorithmArg {
    EcdsaP256,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

/// Lifetimes and renewal thresholds (durations such as 365d, 720h, 90m).
#[derive(Debug, Args)]
struct PolicyArgs {
    /// Key type of new certificates.
    #[arg(
        long,
        env = "PORTCULLIS_CERTS_KEY_ALGORITHM",
        value_enum,
        default_value = "ecdsa-p256"
    )]
    key_algorithm: KeyAlgorithmArg,
    /// Lifetime of a new CA.
    #[arg(long, env = "PORTCULLIS_CERTS_CA_VALIDITY", default_value = "3650d", value_parser = duration)]
    ca_validity: Duration,
    /// Lifetime of a new serving certificate (never past the CA's end).
    #[arg(long, env = "PORTCULLIS_CERTS_VALIDITY", default_value = "365d", value_parser = duration)]
    validity: Duration,
    /// Renew the serving certificate when less than this is left.
    #[arg(long, env = "PORTCULLIS_CERTS_RENEW_BEFORE", default_value = "30d", value_parser = duration)]
    renew_before: Duration,
    /// Make a new CA when less than this is left; the old CA stays in the bundle meanwhile.
    #[arg(long, env = "PORTCULLIS_CERTS_CA_RENEW_BEFORE", default_value = "90d", value_parser = duration)]
    ca_renew_before: Duration,
}

/// Where the certificates go.
#[derive(Debug, Args)]
struct OutputArgs {
    /// State directory: ca.crt (bundle), ca.key, tls.crt, tls.key.
    #[arg(long, env = "PORTCULLIS_CERTS_DIR")]
    dir: Option<PathBuf>,
    /// Write the webhook's kubernetes.io/tls Secret manifest (tls.crt, tls.key, ca.crt) here.
    #[arg(long, env = "PORTCULLIS_CERTS_SECRET_OUT")]
    secret_out: Option<PathBuf>,
    /// Name of that Secret.
    #[arg(
        long,
        env = "PORTCULLIS_CERTS_SECRET_NAME",
        default_value = "portcullis-webhook-tls"
    )]
    secret_name: String,
    /// Write an Opaque Secret with the CA bundle and CA key here (to keep the state in-cluster).
    #[arg(long, env = "PORTCULLIS_CERTS_CA_SECRET_OUT")]
    ca_secret_out: Option<PathBuf>,
    /// Name of that Secret.
    #[arg(
        long,
        env = "PORTCULLIS_CERTS_CA_SECRET_NAME",
        default_value = "portcullis-webhook-ca"
    )]
    ca_secret_name: String,
    /// Manifest files to fill in place, as `patch` does (repeatable, or comma-separated).
    #[arg(long = "patch", env = "PORTCULLIS_CERTS_PATCH", value_delimiter = ',')]
    patch: Vec<PathBuf>,
}

fn duration(s: &str) -> Result<Duration, CertError> {
    parse_duration(s)
}

impl ServiceArgs {
    fn names(&self) -> Result<ServiceName, CertError> {
        ServiceName::new(&self.service, &self.namespace, &self.cluster_domain)
    }
}

impl PolicyArgs {
    fn policy(&self) -> Policy {
        Policy {
            key_algorithm: match self.key_algorithm {
                KeyAlgorithmArg::EcdsaP256 => KeyAlgorithm::EcdsaP256,
                KeyAlgorithmArg::Rsa2048 => KeyAlgorithm::Rsa2048,
                KeyAlgorithmArg::Rsa3072 => KeyAlgorithm::Rsa3072,
                KeyAlgorithmArg::Rsa4096 => KeyAlgorithm::Rsa4096,
            },
            ca_validity: self.ca_validity,
            validity: self.validity,
            renew_before: self.renew_before,
            ca_renew_before: self.ca_renew_before,
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portcullis-certs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    match cli.command {
        Command::Create {
            force,
            service,
            policy,
            output,
        } => {
            let names = service.names()?;
            output.require_destination()?;
            if let Some(dir) = &output.dir
                && !force
            {
                match state::load(dir) {
                    Ok(None) => {}
                    Ok(Some(_)) | Err(CertError::IncompleteState { .. }) => {
                        return Err(CertError::StateExists { dir: dir.clone() }.into());
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let material = rotation::create(&names, &policy.policy(), now)?;
            tracing::info!(names = ?names.dns_names(), "created a CA and a serving certificate");
            output.write(&names, &material)
        }
        Command::Rotate {
            service,
            policy,
            output,
        } => {
            let names = service.names()?;
            let Some(dir) = &output.dir else {
                bail!("rotate needs --dir: the state directory with the current certificates");
            };
            let material = match state::load(dir)? {
                None => {
                    let m = rotation::create(&names, &policy.policy(), now)?;
                    tracing::info!(dir = %dir.display(), "no certificates yet: created a CA and a serving certificate");
                    m
                }
                Some(current) => {
                    let r = rotation::rotate(&current, &names, &policy.policy(), now)?;
                    for action in &r.actions {
                        tracing::info!("{action}");
                    }
                    if !r.changed() {
                        tracing::info!("certificates are up to date; nothing renewed");
                    }
                    r.material
                }
            };
            output.write(&names, &material)
        }
        Command::Patch {
            dir,
            input,
            output,
            secret_name,
            service,
        } => {
            let names = service.names()?;
            let material = state::load(&dir)?.ok_or(CertError::NoState { dir: dir.clone() })?;
            // Refuse to publish unreadable certificates.
            certs::inspect::parse_certificates(state::CA_CRT, &material.ca_bundle_pem)?;
            certs::inspect::parse_certificates(state::TLS_CRT, &material.cert_pem)?;
            certs::inspect::parse_key(state::TLS_KEY, &material.key_pem)?;
            let text = if input == Path::new("-") {
                std::io::read_to_string(std::io::stdin()).context("reading stdin")?
            } else {
                std::fs::read_to_string(&input)
                    .with_context(|| format!("reading {}", input.display()))?
            };
            let install = Install {
                service: &names,
                secret_name: &secret_name,
                material: &material,
            };
            let patched = patch_manifests(&input.display().to_string(), &text, install)?;
            if output == Path::new("-") {
                print!("{}", patched.yaml);
            } else {
                write_if_changed(&output, patched.yaml.as_bytes(), patched.secrets > 0)?;
            }
            tracing::info!(
                webhooks = patched.webhooks,
                conversions = patched.conversions,
                secrets = patched.secrets,
                "filled caBundle and the serving Secret"
            );
            Ok(())
        }
    }
}

impl OutputArgs {
    fn require_destination(&self) -> anyhow::Result<()> {
        if self.dir.is_none() && self.secret_out.is_none() {
            bail!("give --dir and/or --secret-out: the certificates must go somewhere");
        }
        if self.dir.is_none() && self.ca_secret_out.is_none() {
            tracing::warn!(
                "no --dir and no --ca-secret-out: the CA key is not kept, so these certificates cannot be renewed"
            );
        }
        Ok(())
    }

    /// Writes every requested output, touching only files whose content changes.
    fn write(&self, names: &ServiceName, material: &Material) -> anyhow::Result<()> {
        if let Some(dir) = &self.dir {
            let written = state::save(dir, material)?;
            if !written.is_empty() {
                tracing::info!(dir = %dir.display(), files = ?written, "wrote");
            }
        }
        if let Some(path) = &self.secret_out {
            let to = SecretRef {
                name: self.secret_name.clone(),
                namespace: names.namespace().to_string(),
            };
            if write_if_changed(path, tls_secret_yaml(&to, material)?.as_bytes(), true)? {
                tracing::info!(path = %path.display(), secret = %to.name, "wrote the serving Secret");
            }
        }
        if let Some(path) = &self.ca_secret_out {
            let to = SecretRef {
                name: self.ca_secret_name.clone(),
                namespace: names.namespace().to_string(),
            };
            if write_if_changed(path, ca_secret_yaml(&to, material)?.as_bytes(), true)? {
                tracing::info!(path = %path.display(), secret = %to.name, "wrote the CA Secret");
            }
        }
        for path in &self.patch {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let install = Install {
                service: names,
                secret_name: &self.secret_name,
                material,
            };
            let patched = patch_manifests(&path.display().to_string(), &text, install)?;
            if patched.changed {
                write_if_changed(path, patched.yaml.as_bytes(), patched.secrets > 0)?;
                tracing::info!(
                    path = %path.display(),
                    webhooks = patched.webhooks,
                    conversions = patched.conversions,
                    secrets = patched.secrets,
                    "filled caBundle and the serving Secret"
                );
            }
        }
        Ok(())
    }
}

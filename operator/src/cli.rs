//! Flag groups of the controller binaries (every flag also from the environment): the
//! Kubernetes client and leader election.

use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use kube::Client;

use crate::lease::LeaseConfig;

/// Kubernetes client.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Kubeconfig to use; in-cluster configuration when absent.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
}

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {path}: {source}")]
    Config {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("no cluster configuration: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

impl ClientArgs {
    /// A client from `--kubeconfig`, else from the environment (in-cluster or `~/.kube`).
    pub async fn client(&self) -> Result<Client, ClientError> {
        let config = match &self.kubeconfig {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                    ClientError::Kubeconfig {
                        path: path.clone(),
                        source,
                    }
                })?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .map_err(|source| ClientError::Config {
                        path: path.clone(),
                        source,
                    })?
            }
            None => kube::Config::infer().await?,
        };
        Ok(Client::try_from(config)?)
    }
}

/// What differs between the binaries' election flags.
pub trait ElectionDefaults {
    /// Default `--lease-name` / `LEASE_NAME`.
    const LEASE_NAME: &'static str;
    /// Host part of the default identity when `HOSTNAME` is unset.
    const BINARY: &'static str;
}

/// Leader election through a Lease.
#[derive(Args)]
pub struct ElectionArgs<D: ElectionDefaults> {
    /// Run controllers only while holding the Lease.
    #[arg(long, env = "LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the Lease.
    #[arg(long, env = "POD_NAMESPACE", default_value = "keptn-system")]
    pub lease_namespace: String,
    /// Name of the Lease.
    #[arg(long, env = "LEASE_NAME", default_value = D::LEASE_NAME)]
    pub lease_name: String,
    /// `leaseDurationSeconds`: how long a silent holder keeps the lease.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Renew / retry period in milliseconds.
    #[arg(long, env = "LEASE_RETRY_MILLIS", default_value_t = 2000)]
    pub lease_retry_millis: u64,
    /// `holderIdentity` and events' reporting instance; defaults to `<hostname>-<pid>`.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    #[arg(skip)]
    defaults: PhantomData<fn() -> D>,
}

impl<D: ElectionDefaults> ElectionArgs<D> {
    /// `--lease-duration-seconds`, at least one second.
    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(self.lease_duration_seconds.max(1))
    }

    /// `--lease-retry-millis`, at least 100 ms.
    pub fn lease_retry(&self) -> Duration {
        Duration::from_millis(self.lease_retry_millis.max(100))
    }

    /// `--identity`, or `<hostname>-<pid>` (`HOSTNAME` falling back to the binary's name).
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| D::BINARY.to_owned());
            format!("{host}-{}", std::process::id())
        })
    }

    /// The Lease these flags describe, held as `identity`.
    pub fn lease_config(&self, identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: self.lease_namespace.clone(),
            name: self.lease_name.clone(),
            identity: identity.to_owned(),
            duration: self.lease_duration(),
            retry: self.lease_retry(),
        }
    }
}

// By hand: a derived `Debug` would require `D: Debug` of the marker type.
impl<D: ElectionDefaults> fmt::Debug for ElectionArgs<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElectionArgs")
            .field("leader_elect", &self.leader_elect)
            .field("lease_namespace", &self.lease_namespace)
            .field("lease_name", &self.lease_name)
            .field("lease_duration_seconds", &self.lease_duration_seconds)
            .field("lease_retry_millis", &self.lease_retry_millis)
            .field("identity", &self.identity)
            .finish()
    }
}

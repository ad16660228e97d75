//! The serving certificate: validated at start, reloaded without a restart when the PEM files
//! change (Kubernetes swaps a Secret volume's `..data` symlink atomically, so the files are
//! re-read by path and compared by content), or set in memory by [`crate::certificates`] when
//! the webhook keeps its certificates itself (A25).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::metrics::{Metrics, ReloadLabels};

/// Why a certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no usable certificate.
    #[error("{path} contains no PEM certificate{detail}")]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said, if anything.
        detail: String,
    },
    /// The key file holds no usable private key (PKCS#8, PKCS#1 or SEC1 PEM).
    #[error("{path} contains no PEM private key (PKCS#8, PKCS#1 or SEC1): {detail}")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        detail: String,
    },
    /// The key is of an unsupported type, or does not belong to the certificate.
    #[error("the private key cannot be used with the certificate: {0}")]
    Mismatch(rustls::Error),
}

/// The PEM bytes of a certificate chain and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses and checks a certificate chain and key: at least one certificate, a key the provider
/// can sign with, and the key matching the leaf certificate.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|err| TlsError::NoCertificate {
            path: cert_path.to_owned(),
            detail: format!(": {err}"),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
            detail: String::new(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|err| TlsError::NoKey {
        path: key_path.to_owned(),
        detail: err.to_string(),
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(TlsError::Mismatch)?;
    certified.keys_match().map_err(TlsError::Mismatch)?;
    Ok(certified)
}

/// Where the served certificate comes from.
#[derive(Debug)]
enum Source {
    /// PEM files, re-read by [`Certificates::reload`].
    Files {
        cert_path: PathBuf,
        key_path: PathBuf,
    },
    /// Set by [`Certificates::set`] (the Secret the webhook keeps itself).
    Memory,
}

/// The current certificate, swapped in place on reload; rustls asks it on every handshake.
/// Until one is loaded (in-memory source only) handshakes fail, so `/readyz` cannot answer.
#[derive(Debug)]
pub struct Certificates {
    source: Source,
    provider: Arc<CryptoProvider>,
    current: RwLock<Option<(Pem, Arc<CertifiedKey>)>>,
}

impl Certificates {
    /// Loads and validates the files; an error here stops the process at start.
    pub fn load(
        cert_path: &Path,
        key_path: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let pem = Pem {
            cert: read(cert_path)?,
            key: read(key_path)?,
        };
        let key = certified_key(&pem.cert, &pem.key, cert_path, key_path, &provider)?;
        Ok(Self {
            source: Source::Files {
                cert_path: cert_path.to_owned(),
                key_path: key_path.to_owned(),
            },
            provider,
            current: RwLock::new(Some((pem, Arc::new(key)))),
        })
    }

    /// No certificate yet; [`Certificates::set`] provides it.
    pub fn in_memory(provider: Arc<CryptoProvider>) -> Self {
        Self {
            source: Source::Memory,
            provider,
            current: RwLock::new(None),
        }
    }

    /// Serves `cert_pem`/`key_pem` from now on, when valid and different from the current pair;
    /// returns whether it changed. An invalid pair keeps the current one.
    pub fn set(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<bool, TlsError> {
        let pem = Pem {
            cert: cert_pem.to_vec(),
            key: key_pem.to_vec(),
        };
        self.swap(pem, Path::new("tls.crt"), Path::new("tls.key"))
    }

    fn swap(&self, pem: Pem, cert_path: &Path, key_path: &Path) -> Result<bool, TlsError> {
        if self
            .current
            .read()
            .is_ok_and(|current| current.as_ref().is_some_and(|c| c.0 == pem))
        {
            return Ok(false);
        }
        let key = certified_key(&pem.cert, &pem.key, cert_path, key_path, &self.provider)?;
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        *current = Some((pem, Arc::new(key)));
        Ok(true)
    }

    /// Re-reads the files; swaps the certificate when they changed and are valid. Returns
    /// whether a new certificate is now served. An invalid new pair keeps the old one (a
    /// half-written Secret update is retried on the next poll). In memory: nothing to read.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let Source::Files {
            cert_path,
            key_path,
        } = &self.source
        else {
            return Ok(false);
        };
        let pem = Pem {
            cert: read(cert_path)?,
            key: read(key_path)?,
        };
        self.swap(pem, cert_path, key_path)
    }

    /// The certificate served now, if any.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.1.clone())
    }

    /// Whether a certificate is served.
    pub fn loaded(&self) -> bool {
        self.current().is_some()
    }

    /// The PEM certificate chain served now (for its `notAfter`).
    pub fn current_cert_pem(&self) -> Option<Vec<u8>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| c.0.cert.clone())
    }

    /// Polls the files every `interval` until the task is dropped.
    pub async fn watch(self: Arc<Self>, interval: Duration, metrics: Arc<Metrics>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut last_error: Option<String> = None;
        loop {
            ticker.tick().await;
            match self.reload() {
                Ok(false) => last_error = None,
                Ok(true) => {
                    last_error = None;
                    metrics
                        .certificate_loads
                        .get_or_create(&ReloadLabels { outcome: "ok" })
                        .inc();
                    metrics.serving_not_after(self.current_cert_pem().as_deref());
                    tracing::info!("serving certificate reloaded from its files");
                }
                Err(err) => {
                    let text = err.to_string();
                    if last_error.as_deref() != Some(text.as_str()) {
                        metrics
                            .certificate_loads
                            .get_or_create(&ReloadLabels { outcome: "error" })
                            .inc();
                        tracing::warn!(error = %text, "new serving certificate rejected; keeping the current one");
                    }
                    last_error = Some(text);
                }
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

/// The rustls server configuration: TLS 1.3 and 1.2, ALPN h2 and http/1.1, the certificate
/// resolved per handshake from `certificates`.
pub fn server_config(
    certificates: Arc<Certificates>,
    provider: Arc<CryptoProvider>,
) -> Result<ServerConfig, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

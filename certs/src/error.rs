//! The one error type of the certificate library.

use std::path::PathBuf;

/// Everything that can go wrong while making, reading, renewing or publishing certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A certificate file or field that does not hold readable PEM certificates.
    #[error("{what}: not a readable PEM certificate: {reason}")]
    CertificatePem { what: String, reason: String },
    /// A key file that does not hold a readable PKCS#8 PEM private key.
    #[error(
        "{what}: not a readable PEM private key (PKCS#8 ECDSA P-256 or RSA expected): {reason}"
    )]
    KeyPem { what: String, reason: String },
    /// The CA key belongs to none of the certificates in the CA bundle.
    #[error(
        "the CA key (ca.key) belongs to none of the {count} certificate(s) in the CA bundle (ca.crt)"
    )]
    CaKeyNotInBundle { count: usize },
    /// Renewal settings that cannot work together.
    #[error("invalid settings: {0}")]
    Policy(String),
    /// A duration flag that cannot be read.
    #[error("invalid duration {input:?}: {reason} (write e.g. 365d, 720h, 90m or 30s)")]
    Duration { input: String, reason: String },
    /// A service, namespace or cluster domain that cannot appear in a DNS name.
    #[error("invalid {what} {value:?}: {reason}")]
    Name {
        what: &'static str,
        value: String,
        reason: String,
    },
    /// Key or certificate generation failed inside rcgen.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// RSA key generation failed.
    #[error("RSA key generation failed: {0}")]
    RsaKey(String),
    /// A manifest that cannot be read or patched.
    #[error("manifest {what}: {reason}")]
    Manifest { what: String, reason: String },
    /// A file that cannot be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A state directory that holds some of the certificate files but not all.
    #[error("{}: incomplete certificate state: missing {}; present: {}", dir.display(), missing.join(", "), present.join(", "))]
    IncompleteState {
        dir: PathBuf,
        missing: Vec<String>,
        present: Vec<String>,
    },
    /// A state directory without certificates where some were expected.
    #[error("{}: no certificates here (run `portcullis-certs create` first)", dir.display())]
    NoState { dir: PathBuf },
    /// `create` asked to overwrite an existing CA.
    #[error(
        "{}: certificates exist already; use `rotate` to renew them, or `create --force` to replace the CA (webhooks serving the old certificate stop being trusted)",
        dir.display()
    )]
    StateExists { dir: PathBuf },
}

//! Helpers shared by the certificate tests: verification with rustls' WebPKI verifier.

#![allow(dead_code)]

use std::sync::Arc;

use certs::{KeyAlgorithm, Policy, ServiceName};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};

pub fn names() -> ServiceName {
    ServiceName::new("portcullis-webhook", "portcullis-system", "cluster.local").unwrap()
}

/// Short lifetimes so that a few rotations cover several CA generations.
pub fn short_policy() -> Policy {
    Policy {
        key_algorithm: KeyAlgorithm::EcdsaP256,
        ca_validity: Duration::days(100),
        validity: Duration::days(20),
        renew_before: Duration::days(5),
        ca_renew_before: Duration::days(30),
    }
}

pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn ders(pem: &str) -> Vec<CertificateDer<'static>> {
    x509_blocks(pem)
        .into_iter()
        .map(CertificateDer::from)
        .collect()
}

fn x509_blocks(pem: &str) -> Vec<Vec<u8>> {
    certs::inspect::parse_certificates("test", pem)
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect()
}

/// Verifies `cert_pem` as a TLS server certificate for `name` at `at`, trusting exactly the CAs
/// in `bundle_pem` — what the API server does with a webhook's `caBundle`.
pub fn verify(
    cert_pem: &str,
    bundle_pem: &str,
    name: &str,
    at: OffsetDateTime,
) -> Result<(), rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for der in ders(bundle_pem) {
        roots.add(der).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let leaf = ders(cert_pem).remove(0);
    let server = ServerName::try_from(name.to_string()).unwrap();
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(at.unix_timestamp()).unwrap(),
    ));
    verifier
        .verify_server_cert(&leaf, &[], &server, &[], now)
        .map(|_| ())
}

/// How many certificates a PEM text holds.
pub fn count(pem: &str) -> usize {
    x509_blocks(pem).len()
}

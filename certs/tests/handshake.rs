//! A TLS handshake in memory: the webhook's side loads `tls.crt`/`tls.key` as rustls does, the
//! API server's side trusts only `ca.crt` and connects by the Service's DNS name.

use std::sync::Arc;

use certs::rotation::create;
use certs::{KeyAlgorithm, Material, Policy, ServiceName};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use time::OffsetDateTime;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn handshake(m: &Material, host: &str) -> Result<(), rustls::Error> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(m.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(m.key_pem.as_bytes()).unwrap();
    let server_config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(m.ca_bundle_pem.as_bytes()) {
        roots.add(ca.unwrap())?;
    }
    let client_config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).unwrap();
    let mut client = ClientConnection::new(Arc::new(client_config), name)?;
    let mut server = ServerConnection::new(Arc::new(server_config))?;
    for _ in 0..20 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets()?;
        }
    }
    panic!("handshake did not finish");
}

fn names() -> ServiceName {
    ServiceName::new("portcullis-webhook", "portcullis-system", "cluster.local").unwrap()
}

#[test]
fn the_api_server_side_completes_a_handshake_with_the_webhook_side() {
    for algorithm in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let policy = Policy {
            key_algorithm: algorithm,
            ..Policy::default()
        };
        let m = create(&names(), &policy, OffsetDateTime::now_utc()).unwrap();
        handshake(&m, "portcullis-webhook.portcullis-system.svc")
            .unwrap_or_else(|e| panic!("{algorithm:?}: {e}"));
        let e = handshake(&m, "elsewhere.portcullis-system.svc").unwrap_err();
        assert!(
            matches!(e, rustls::Error::InvalidCertificate(_)),
            "{algorithm:?}: a name not in the certificate must fail: {e:?}"
        );
    }
}

//! Making keys, the CA and the serving certificate (rcgen, ring backend).

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::CertError;

/// How far `notBefore` is set back from "now", so that an API server whose clock is a little
/// behind still accepts a certificate made a moment ago.
pub const CLOCK_SKEW: Duration = Duration::minutes(5);

/// The key type of a new CA or serving certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256: small and fast; the default.
    EcdsaP256,
    /// RSA 2048 with PKCS#1 v1.5 SHA-256 signatures.
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// RSA 4096.
    Rsa4096,
}

impl KeyAlgorithm {
    fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyAlgorithm::EcdsaP256 => None,
            KeyAlgorithm::Rsa2048 => Some(2048),
            KeyAlgorithm::Rsa3072 => Some(3072),
            KeyAlgorithm::Rsa4096 => Some(4096),
        }
    }
}

/// A new key pair of the given type.
pub fn generate_key(algorithm: KeyAlgorithm) -> Result<KeyPair, CertError> {
    match algorithm.rsa_bits() {
        None => Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?),
        Some(bits) => {
            use rsa::pkcs8::EncodePrivateKey;
            let mut rng = rsa::rand_core::OsRng;
            let key = rsa::RsaPrivateKey::new(&mut rng, bits)
                .map_err(|e| CertError::RsaKey(e.to_string()))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| CertError::RsaKey(e.to_string()))?;
            Ok(KeyPair::try_from(der.as_bytes())?)
        }
    }
}

/// The Service the API server calls the webhook through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceName {
    service: String,
    namespace: String,
    cluster_domain: String,
}

impl ServiceName {
    /// Checks that each part can stand in a DNS name; `cluster_domain` may be empty (no FQDN SAN).
    pub fn new(service: &str, namespace: &str, cluster_domain: &str) -> Result<Self, CertError> {
        check_label("service name", service)?;
        check_label("namespace", namespace)?;
        let domain = cluster_domain.trim_end_matches('.');
        if !domain.is_empty() {
            for label in domain.split('.') {
                check_label("cluster domain", label).map_err(|_| CertError::Name {
                    what: "cluster domain",
                    value: cluster_domain.to_string(),
                    reason: "each dot-separated part must be a DNS label".to_string(),
                })?;
            }
        }
        Ok(ServiceName {
            service: service.to_string(),
            namespace: namespace.to_string(),
            cluster_domain: domain.to_string(),
        })
    }

    /// The Service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The Service's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Every name the API server may use for the Service: `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`
    /// and, with a cluster domain, `<svc>.<ns>.svc.<domain>`.
    pub fn dns_names(&self) -> Vec<String> {
        let (s, n) = (&self.service, &self.namespace);
        let mut names = vec![s.clone(), format!("{s}.{n}"), format!("{s}.{n}.svc")];
        if !self.cluster_domain.is_empty() {
            names.push(format!("{s}.{n}.svc.{}", self.cluster_domain));
        }
        names
    }
}

/// RFC 1123 label: what Service and namespace names are.
fn check_label(what: &'static str, value: &str) -> Result<(), CertError> {
    let bad = |reason: &str| CertError::Name {
        what,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if value.is_empty() || value.len() > 63 {
        return Err(bad("must be 1 to 63 characters"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("only lower-case letters, digits and '-' are allowed"));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(bad("must start and end with a letter or digit"));
    }
    Ok(())
}

/// A certificate with its private key, both PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its PKCS#8 private key, PEM.
    pub key_pem: String,
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    // A positive INTEGER whose first byte is not zero keeps the DER encoding at 16 bytes.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// A new self-signed CA valid from a little before `now` for `validity`.
pub fn issue_ca(
    algorithm: KeyAlgorithm,
    validity: Duration,
    now: OffsetDateTime,
) -> Result<Issued, CertError> {
    let key = generate_key(algorithm)?;
    let mut params = CertificateParams::default();
    let serial = random_serial();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Portcullis");
    // Distinct names let an old and a new CA sit side by side in one bundle.
    dn.push(
        DnType::CommonName,
        format!(
            "portcullis-webhook-ca-{}-{}",
            now.unix_timestamp(),
            hex(&serial.to_bytes()[..4])
        ),
    );
    params.distinguished_name = dn;
    params.serial_number = Some(serial);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + validity;
    let cert = params.self_signed(&key)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A new serving certificate for `names`, signed by `ca`. It never outlives the CA: `notAfter`
/// is `now + validity` or the CA's own `notAfter`, whichever comes first.
pub fn issue_serving(
    ca: &Issued,
    ca_not_after: OffsetDateTime,
    names: &ServiceName,
    algorithm: KeyAlgorithm,
    validity: Duration,
    now: OffsetDateTime,
) -> Result<Issued, CertError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| CertError::KeyPem {
        what: "CA key".to_string(),
        reason: e.to_string(),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = generate_key(algorithm)?;
    let mut params = CertificateParams::new(names.dns_names())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Portcullis");
    dn.push(
        DnType::CommonName,
        format!("{}.{}.svc", names.service(), names.namespace()),
    );
    params.distinguished_name = dn;
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = match algorithm {
        KeyAlgorithm::EcdsaP256 => vec![KeyUsagePurpose::DigitalSignature],
        _ => vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
    };
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - CLOCK_SKEW;
    params.not_after = (now + validity).min(ca_not_after);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_cover_every_form_of_the_service() {
        let n =
            ServiceName::new("portcullis-webhook", "portcullis-system", "cluster.local").unwrap();
        assert_eq!(
            n.dns_names(),
            [
                "portcullis-webhook",
                "portcullis-webhook.portcullis-system",
                "portcullis-webhook.portcullis-system.svc",
                "portcullis-webhook.portcullis-system.svc.cluster.local",
            ]
        );
        let short = ServiceName::new("w", "ns", "").unwrap();
        assert_eq!(short.dns_names(), ["w", "w.ns", "w.ns.svc"]);
    }

    #[test]
    fn names_that_cannot_be_dns_labels_are_rejected() {
        for (svc, ns, domain) in [
            ("", "ns", "cluster.local"),
            ("Web", "ns", "cluster.local"),
            ("w", "ns_1", "cluster.local"),
            ("w", "-ns", "cluster.local"),
            ("w", "ns", "cluster..local"),
            ("w", "ns", "clu ster"),
        ] {
            let e = ServiceName::new(svc, ns, domain).unwrap_err();
            assert!(
                matches!(e, CertError::Name { .. }),
                "{svc}/{ns}/{domain}: {e}"
            );
        }
    }
}

//! Reading PEM certificates and keys back (x509-parser), with errors that name the input.

use base64::Engine;
use rcgen::{KeyPair, PublicKeyData};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

use crate::CertError;

/// What the renewal decisions need to know about one certificate.
#[derive(Clone, Debug)]
pub struct CertInfo {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The subject, RFC 4514 text.
    pub subject: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// The DER SubjectPublicKeyInfo, to match certificates with keys and issuers.
    pub spki: Vec<u8>,
    /// Basic constraints say CA.
    pub is_ca: bool,
}

impl CertInfo {
    /// The certificate as one PEM block.
    pub fn pem(&self) -> String {
        pem_block("CERTIFICATE", &self.der)
    }

    /// Whether `issuer`'s key made this certificate's signature.
    pub fn is_signed_by(&self, issuer: &CertInfo) -> bool {
        let Ok((_, me)) = x509_parser::parse_x509_certificate(&self.der) else {
            return false;
        };
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&issuer.der) else {
            return false;
        };
        me.issuer() == ca.subject() && me.verify_signature(Some(ca.public_key())).is_ok()
    }
}

/// Encodes DER as a PEM block with 64-character lines.
pub fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Every certificate in `pem`, in order; `what` names the input in errors. Blocks with other
/// labels are an error too: a key pasted into a certificate file is a mistake worth reporting.
pub fn parse_certificates(what: &str, pem: &str) -> Result<Vec<CertInfo>, CertError> {
    let bad = |reason: String| CertError::CertificatePem {
        what: what.to_string(),
        reason,
    };
    let mut certs = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| bad(e.to_string()))?;
        if block.label != "CERTIFICATE" {
            return Err(bad(format!(
                "block {} is {:?}, not CERTIFICATE",
                certs.len() + 1,
                block.label
            )));
        }
        certs.push(certificate_info(&block.contents).map_err(bad)?);
    }
    if certs.is_empty() {
        return Err(bad("no PEM CERTIFICATE block found".to_string()));
    }
    Ok(certs)
}

fn certificate_info(der: &[u8]) -> Result<CertInfo, String> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err("trailing bytes after the certificate".to_string());
    }
    let time = |t: x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| e.to_string())
    };
    let mut dns_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(n) = name {
                dns_names.push((*n).to_string());
            }
        }
    }
    Ok(CertInfo {
        der: der.to_vec(),
        subject: cert.subject().to_string(),
        not_before: time(cert.validity().not_before)?,
        not_after: time(cert.validity().not_after)?,
        dns_names,
        spki: cert.public_key().raw.to_vec(),
        is_ca: cert.is_ca(),
    })
}

/// The private key in `pem` (PKCS#8: ECDSA P-256/P-384, Ed25519 or RSA).
pub fn parse_key(what: &str, pem: &str) -> Result<KeyPair, CertError> {
    KeyPair::from_pem(pem).map_err(|e| CertError::KeyPem {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// The DER SubjectPublicKeyInfo of a key, comparable with [`CertInfo::spki`].
pub fn key_spki(key: &KeyPair) -> Vec<u8> {
    key.subject_public_key_info()
}

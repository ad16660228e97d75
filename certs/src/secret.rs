//! The certificates as the data of a Kubernetes Secret that the webhook keeps itself
//! (`--cert-secret`, decision A25): `tls.crt`, `tls.key`, `ca.crt` (bundle, current CA first) and
//! `ca.key`. Unlike the Secrets of [`crate::manifest`], this one holds the CA key, since every
//! webhook replica may have to renew.

use std::collections::BTreeMap;

use crate::rotation::Material;
use crate::state::{CA_CRT, CA_KEY, TLS_CRT, TLS_KEY};

/// The material in a Secret's `data`, or `None` when the CA part (`ca.crt`, `ca.key`) is missing,
/// empty or not text: such a Secret is new (the chart templates it empty) or unusable. A missing
/// `tls.crt`/`tls.key` reads as empty text: the CA was made, the serving certificate is not yet.
pub fn material_from_data(data: &BTreeMap<String, Vec<u8>>) -> Option<Material> {
    let text = |key: &str| {
        data.get(key)
            .and_then(|bytes| String::from_utf8(bytes.clone()).ok())
            .unwrap_or_default()
    };
    let material = Material {
        ca_bundle_pem: text(CA_CRT),
        ca_key_pem: text(CA_KEY),
        cert_pem: text(TLS_CRT),
        key_pem: text(TLS_KEY),
    };
    (!material.ca_bundle_pem.trim().is_empty() && !material.ca_key_pem.trim().is_empty())
        .then_some(material)
}

/// The Secret `data` for `material` (all four keys; an empty serving pair stays as empty values).
pub fn data_from_material(material: &Material) -> BTreeMap<String, Vec<u8>> {
    [
        (TLS_CRT, &material.cert_pem),
        (TLS_KEY, &material.key_pem),
        (CA_CRT, &material.ca_bundle_pem),
        (CA_KEY, &material.ca_key_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material() -> Material {
        Material {
            ca_bundle_pem: "bundle".into(),
            ca_key_pem: "ca key".into(),
            cert_pem: "cert".into(),
            key_pem: "key".into(),
        }
    }

    #[test]
    fn round_trips_through_secret_data() {
        let data = data_from_material(&material());
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            ["ca.crt", "ca.key", "tls.crt", "tls.key"]
        );
        assert_eq!(material_from_data(&data), Some(material()));
    }

    #[test]
    fn an_empty_or_ca_less_secret_has_no_material() {
        assert_eq!(material_from_data(&BTreeMap::new()), None);
        let mut data = data_from_material(&material());
        data.insert("ca.key".into(), Vec::new());
        assert_eq!(material_from_data(&data), None);
        let mut data = data_from_material(&material());
        data.insert("ca.crt".into(), vec![0xff, 0xfe]);
        assert_eq!(material_from_data(&data), None);
    }

    #[test]
    fn a_missing_serving_pair_reads_as_empty() {
        let mut data = data_from_material(&material());
        data.remove("tls.crt");
        data.remove("tls.key");
        let m = material_from_data(&data).unwrap();
        assert_eq!((m.cert_pem.as_str(), m.key_pem.as_str()), ("", ""));
    }
}

//! Template hashes in the shape the real controllers print them.
//!
//! The real controllers hash a pod template with 32-bit FNV-1a and render the decimal value of the
//! hash through the "safe" alphabet that also serves `generateName` suffixes, which is why real
//! `pod-template-hash` values look like `7d9c8f5b4`. The input bytes differ from the real ones
//! (Go's object dumper), so the values differ, but the shape and the stability are the same.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The alphabet the API server uses for generated name suffixes and hashes (no vowels, no 0/1/3).
pub const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// 32-bit FNV-1a over `bytes`.
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in bytes {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Maps every byte of `s` into [`SAFE_ALPHABET`], as the API server does for hashes.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The hash of a pod template with the label `pod-template-hash` removed, salted with the
/// collision count as the Deployment controller does when two templates collide.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(super::pod_state::POD_TEMPLATE_HASH);
    }
    // Serialising a k8s-openapi struct is deterministic: fields in declaration order, maps sorted.
    let mut bytes = serde_json::to_vec(&template).unwrap_or_default();
    // No collision and a collision count of zero hash the same (status starts at 0 or absent).
    if let Some(count) = collision_count.filter(|c| *c != 0) {
        bytes.extend_from_slice(&count.to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                ..ObjectMeta::default()
            }),
            spec: Some(k8s_openapi::api::core::v1::PodSpec {
                containers: vec![k8s_openapi::api::core::v1::Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn fnv32a_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn hash_uses_only_the_safe_alphabet_and_is_stable() {
        let a = template_hash(&template("nginx:1"), None);
        assert!(!a.is_empty() && a.len() <= 10);
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{a}");
        assert_eq!(a, template_hash(&template("nginx:1"), None));
    }

    #[test]
    fn hash_changes_with_the_template_and_the_collision_count_but_not_the_hash_label() {
        let base = template_hash(&template("nginx:1"), None);
        assert_ne!(base, template_hash(&template("nginx:2"), None));
        assert_ne!(base, template_hash(&template("nginx:1"), Some(1)));
        assert_eq!(base, template_hash(&template("nginx:1"), Some(0)));
        let mut labelled = template("nginx:1");
        if let Some(labels) = labelled.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.insert("pod-template-hash".into(), base.clone());
        }
        assert_eq!(base, template_hash(&labelled, None));
    }
}

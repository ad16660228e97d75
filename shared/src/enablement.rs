//! Namespace enablement (A4): the annotation `keptn.sh/lifecycle-toolkit: enabled` (Keptn) or a
//! label with the same key and value. The webhook decides by it which namespaces it acts in and
//! caches, the gate which namespaces it looks into for escaped pods: stated here once.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The enablement key, as annotation or label.
pub const ENABLEMENT_KEY: &str = "keptn.sh/lifecycle-toolkit";
/// The value that enables.
pub const ENABLED: &str = "enabled";

/// Whether a namespace with this metadata takes part.
pub fn is_enabled(namespace: &ObjectMeta) -> bool {
    let on = |map: Option<&std::collections::BTreeMap<String, String>>| {
        map.and_then(|m| m.get(ENABLEMENT_KEY))
            .is_some_and(|v| v == ENABLED)
    };
    on(namespace.annotations.as_ref()) || on(namespace.labels.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn enabled_by_annotation_or_label_with_the_exact_value() {
        let ns = |annotations: Option<(&str, &str)>, labels: Option<(&str, &str)>| {
            let map = |kv: Option<(&str, &str)>| {
                kv.map(|(k, v)| BTreeMap::from([(k.to_owned(), v.to_owned())]))
            };
            ObjectMeta {
                annotations: map(annotations),
                labels: map(labels),
                ..Default::default()
            }
        };
        let on = (ENABLEMENT_KEY, ENABLED);
        assert!(is_enabled(&ns(Some(on), None)));
        assert!(is_enabled(&ns(None, Some(on))));
        assert!(!is_enabled(&ns(Some((ENABLEMENT_KEY, "disabled")), None)));
        assert!(!is_enabled(&ns(Some((ENABLEMENT_KEY, "Enabled")), None)));
        assert!(!is_enabled(&ns(None, None)));
    }
}

//! Key lookup across annotations and labels (B §1.4 LOOKUP).

use super::keys;
use super::view::ObjectMetaView;

/// LOOKUP(primary, secondary) of B §1.4: the first non-empty value of annotation `primary`,
/// label `primary`, annotation `secondary`, label `secondary`. An empty value counts as absent.
/// Pass `None` for keys without a secondary.
pub fn lookup<'a>(
    meta: &'a ObjectMetaView,
    primary: &str,
    secondary: Option<&str>,
) -> Option<&'a str> {
    let in_meta = |key: &str| {
        [&meta.annotations, &meta.labels]
            .into_iter()
            .filter_map(|map| map.get(key))
            .map(String::as_str)
            .find(|value| !value.is_empty())
    };
    in_meta(primary).or_else(|| secondary.and_then(in_meta))
}

/// LOOKUP(workload): `keptn.sh/workload`, else `app.kubernetes.io/name`.
pub fn lookup_workload(meta: &ObjectMetaView) -> Option<&str> {
    lookup(meta, keys::WORKLOAD, Some(keys::K8S_NAME))
}

/// LOOKUP(version): `keptn.sh/version`, else `app.kubernetes.io/version`.
pub fn lookup_version(meta: &ObjectMetaView) -> Option<&str> {
    lookup(meta, keys::VERSION, Some(keys::K8S_VERSION))
}

/// LOOKUP(app): `keptn.sh/app`, else `app.kubernetes.io/part-of`.
pub fn lookup_app(meta: &ObjectMetaView) -> Option<&str> {
    lookup(meta, keys::APP, Some(keys::K8S_PART_OF))
}

/// Whether the scheduling gate was already removed from this pod ([`crate::gate::REMOVED_MARKER`]
/// as annotation or label, any non-empty value): such a pod is admitted without any patch (B §1.2 6a).
pub fn gate_already_removed(meta: &ObjectMetaView) -> bool {
    crate::gate::is_marked_removed(Some(&meta.annotations), Some(&meta.labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(annotations: &[(&str, &str)], labels: &[(&str, &str)]) -> ObjectMetaView {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        ObjectMetaView {
            annotations: map(annotations),
            labels: map(labels),
        }
    }

    type Pairs = &'static [(&'static str, &'static str)];

    const P: &str = "keptn.sh/workload";
    const S: &str = "app.kubernetes.io/name";

    /// Every position of LOOKUP wins over all later ones and loses to all earlier ones; empty
    /// values are skipped.
    #[test]
    fn lookup_precedence_table() {
        let rows: &[(&str, Pairs, Pairs, Option<&str>)] = &[
            (
                "lookup_1_primary_annotation_beats_all",
                &[(P, "ann-p"), (S, "ann-s")],
                &[(P, "lab-p"), (S, "lab-s")],
                Some("ann-p"),
            ),
            (
                "lookup_2_primary_label_beats_secondary_annotation",
                &[(S, "ann-s")],
                &[(P, "lab-p"), (S, "lab-s")],
                Some("lab-p"),
            ),
            (
                "lookup_3_secondary_annotation_beats_secondary_label",
                &[(S, "ann-s")],
                &[(S, "lab-s")],
                Some("ann-s"),
            ),
            (
                "lookup_4_secondary_label_last",
                &[],
                &[(S, "lab-s")],
                Some("lab-s"),
            ),
            ("lookup_nothing_found", &[("other", "x")], &[], None),
            (
                "lookup_empty_primary_annotation_falls_through_to_label",
                &[(P, "")],
                &[(P, "lab-p")],
                Some("lab-p"),
            ),
            (
                "lookup_all_empty_is_not_found",
                &[(P, ""), (S, "")],
                &[(P, ""), (S, "")],
                None,
            ),
        ];
        for (rule, annotations, labels, want) in rows {
            let m = meta(annotations, labels);
            assert_eq!(lookup(&m, P, Some(S)), *want, "{rule}");
        }
    }

    #[test]
    fn lookup_without_secondary_ignores_k8s_keys() {
        let m = meta(&[(S, "ann-s")], &[]);
        assert_eq!(lookup(&m, P, None), None);
        let m = meta(&[], &[(P, "lab-p")]);
        assert_eq!(lookup(&m, P, None), Some("lab-p"));
    }

    #[test]
    fn lookup_named_keys_use_their_secondary() {
        let m = meta(
            &[],
            &[
                ("app.kubernetes.io/name", "w"),
                ("app.kubernetes.io/version", "v"),
                ("app.kubernetes.io/part-of", "a"),
            ],
        );
        assert_eq!(lookup_workload(&m), Some("w"));
        assert_eq!(lookup_version(&m), Some("v"));
        assert_eq!(lookup_app(&m), Some("a"));
    }

    #[test]
    fn gate_removed_marker_annotation_or_label_non_empty() {
        let k = crate::gate::REMOVED_MARKER;
        assert!(gate_already_removed(&meta(&[(k, "true")], &[])));
        assert!(gate_already_removed(&meta(&[], &[(k, "yes")])));
        assert!(gate_already_removed(&meta(&[(k, "")], &[(k, "true")])));
        assert!(!gate_already_removed(&meta(&[(k, "")], &[])));
        assert!(!gate_already_removed(&meta(&[], &[])));
    }
}

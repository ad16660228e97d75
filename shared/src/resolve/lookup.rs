//! Key lookup across annotations and labels (B §1.4 LOOKUP).

use super::keys;
use super::view::ObjectMetaView;

/// Whether a value was found among the annotations or the labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Place {
    /// `metadata.annotations`.
    Annotation,
    /// `metadata.labels`.
    Label,
}

impl Place {
    /// `annotation` or `label`.
    pub fn as_str(self) -> &'static str {
        match self {
            Place::Annotation => "annotation",
            Place::Label => "label",
        }
    }
}

/// Where LOOKUP found its value: which key, as annotation or label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FoundAt<'k> {
    /// The key (the primary or the secondary one).
    pub key: &'k str,
    /// Annotation or label.
    pub place: Place,
}

/// LOOKUP(primary, secondary) of B §1.4: the first non-empty value of annotation `primary`,
/// label `primary`, annotation `secondary`, label `secondary`. An empty value counts as absent.
/// Pass `None` for keys without a secondary.
pub fn lookup<'a>(
    meta: &'a ObjectMetaView,
    primary: &str,
    secondary: Option<&str>,
) -> Option<&'a str> {
    lookup_found(meta, primary, secondary).map(|(value, _)| value)
}

/// [`lookup`] with where the value was found (provenance, for `kubectl portcullis explain`):
/// the one implementation of LOOKUP's order.
pub fn lookup_found<'a, 'k>(
    meta: &'a ObjectMetaView,
    primary: &'k str,
    secondary: Option<&'k str>,
) -> Option<(&'a str, FoundAt<'k>)> {
    let in_meta = |key: &'k str| {
        [
            (Place::Annotation, &meta.annotations),
            (Place::Label, &meta.labels),
        ]
        .into_iter()
        .filter_map(|(place, map)| map.get(key).map(|value| (value.as_str(), place)))
        .find(|(value, _)| !value.is_empty())
        .map(|(value, place)| (value, FoundAt { key, place }))
    };
    in_meta(primary).or_else(|| secondary.and_then(in_meta))
}

/// LOOKUP(workload): `keptn.sh/workload`, else `app.kubernetes.io/name`.
pub fn lookup_workload(meta: &ObjectMetaView) -> Option<&str> {
    lookup_workload_found(meta).map(|(value, _)| value)
}

/// [`lookup_workload`] with where the value was found.
pub fn lookup_workload_found(meta: &ObjectMetaView) -> Option<(&str, FoundAt<'static>)> {
    lookup_found(meta, keys::WORKLOAD, Some(keys::K8S_NAME))
}

/// LOOKUP(version): `keptn.sh/version`, else `app.kubernetes.io/version`.
pub fn lookup_version(meta: &ObjectMetaView) -> Option<&str> {
    lookup_version_found(meta).map(|(value, _)| value)
}

/// [`lookup_version`] with where the value was found.
pub fn lookup_version_found(meta: &ObjectMetaView) -> Option<(&str, FoundAt<'static>)> {
    lookup_found(meta, keys::VERSION, Some(keys::K8S_VERSION))
}

/// LOOKUP(app): `keptn.sh/app`, else `app.kubernetes.io/part-of`.
pub fn lookup_app(meta: &ObjectMetaView) -> Option<&str> {
    lookup_app_found(meta).map(|(value, _)| value)
}

/// [`lookup_app`] with where the value was found.
pub fn lookup_app_found(meta: &ObjectMetaView) -> Option<(&str, FoundAt<'static>)> {
    lookup_found(meta, keys::APP, Some(keys::K8S_PART_OF))
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
    fn lookup_found_names_key_and_place() {
        let m = meta(&[(S, "ann-s"), (P, "")], &[(P, "lab-p")]);
        assert_eq!(
            lookup_found(&m, P, Some(S)),
            Some((
                "lab-p",
                FoundAt {
                    key: P,
                    place: Place::Label
                }
            ))
        );
        let m = meta(&[(S, "ann-s")], &[(S, "lab-s")]);
        assert_eq!(
            lookup_found(&m, P, Some(S)),
            Some((
                "ann-s",
                FoundAt {
                    key: S,
                    place: Place::Annotation
                }
            ))
        );
        assert_eq!(lookup_found(&meta(&[], &[]), P, Some(S)), None);
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

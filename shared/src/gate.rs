//! The scheduling-gate contract (A8, A13): the webhook puts [`GATE`] on a pod at admission, the
//! gate service removes it once the pre-deployment checks passed and marks the pod with
//! [`REMOVED_MARKER`]. Two binaries and the fuzz oracle that checks the webhook must agree on
//! these names to the byte: a pod gated under another name would never be released, so they are
//! stated here once and nowhere else.

use std::collections::BTreeMap;

/// The scheduling gate the webhook adds to each pod of an annotated workload (A8), and the only
/// gate the gate service ever removes (A13). Keptn's name, so that pods gated by either are
/// released by either.
pub const GATE: &str = "keptn-prechecks-gate";

/// Annotation the gate service adds when it removes [`GATE`] (A13). It tells a released pod from
/// one that escaped the webhook, and the webhook never gates a pod carrying it (B §1.2 step 6a).
pub const REMOVED_MARKER: &str = "keptn.sh/scheduling-gate-removed";

/// The value the gate service writes to [`REMOVED_MARKER`]. Readers accept any non-empty value
/// (see [`is_marked_removed`]), as Keptn does.
pub const REMOVED_VALUE: &str = "true";

/// Label the webhook puts on a pod together with [`GATE`], and the gate service takes off with
/// it (A13): it makes the pods Portcullis holds selectable server-side, so the gate service
/// watches those pods and not every pod of the cluster (issue 18).
pub const GATED_LABEL: &str = "portcullis.dev/gated";

/// The value of [`GATED_LABEL`].
pub const GATED_VALUE: &str = "true";

/// Index of [`GATE`] among a pod's scheduling-gate names, in `spec.schedulingGates` order. The
/// release patch tests and removes exactly that entry, never another controller's gate.
pub fn gate_index<I>(names: I) -> Option<usize>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    names.into_iter().position(|name| name.as_ref() == GATE)
}

/// Whether a pod's scheduling-gate names include [`GATE`].
pub fn is_gated<I>(names: I) -> bool
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    gate_index(names).is_some()
}

/// Whether the pod carries [`REMOVED_MARKER`] with a non-empty value, as annotation or label:
/// its gate was removed once, so it is neither gated again nor reported as having escaped.
pub fn is_marked_removed(
    annotations: Option<&BTreeMap<String, String>>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    [annotations, labels]
        .into_iter()
        .flatten()
        .filter_map(|map| map.get(REMOVED_MARKER))
        .any(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_found_by_name_among_others() {
        assert_eq!(gate_index(["other.io/gate", GATE]), Some(1));
        assert_eq!(gate_index(vec![GATE.to_owned()]), Some(0));
        assert_eq!(gate_index(["x", "keptn-prechecks-gate-2"]), None);
        assert_eq!(gate_index::<[&str; 0]>([]), None);
        assert!(is_gated(&["a".to_owned(), GATE.to_owned()]));
        assert!(!is_gated(["a"]));
    }

    #[test]
    fn marker_annotation_or_label_non_empty() {
        let map = |v: &str| BTreeMap::from([(REMOVED_MARKER.to_owned(), v.to_owned())]);
        assert!(is_marked_removed(Some(&map(REMOVED_VALUE)), None));
        assert!(is_marked_removed(None, Some(&map("yes"))));
        assert!(is_marked_removed(Some(&map("")), Some(&map("true"))));
        assert!(!is_marked_removed(Some(&map("")), None));
        assert!(!is_marked_removed(Some(&BTreeMap::new()), None));
        assert!(!is_marked_removed(None, None));
    }
}

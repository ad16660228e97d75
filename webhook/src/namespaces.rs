//! Namespace enablement (A4): the annotation `keptn.sh/lifecycle-toolkit: enabled` (Keptn) or a
//! label with the same key and value.

use kube::ResourceExt;

use crate::snapshot::{Cached, Snapshot};

/// The enablement key.
pub const ENABLEMENT_KEY: &str = "keptn.sh/lifecycle-toolkit";
/// The value that enables.
pub const ENABLED: &str = "enabled";

/// Whether a namespace takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enablement {
    /// Annotated or labelled `enabled`.
    Enabled,
    /// Neither, or the namespace does not exist.
    Disabled,
    /// Not in the cache yet.
    Unknown,
}

/// A4 for the namespace `name`.
pub fn enablement(name: &str, snapshot: &(impl Snapshot + ?Sized)) -> Enablement {
    match snapshot.namespace(name) {
        Cached::Unknown => Enablement::Unknown,
        Cached::Absent => Enablement::Disabled,
        Cached::Found(ns) if is_enabled(&*ns) => Enablement::Enabled,
        Cached::Found(_) => Enablement::Disabled,
    }
}

/// A4 for a namespace at hand.
pub fn is_enabled(namespace: &impl ResourceExt) -> bool {
    let on = |map: &std::collections::BTreeMap<String, String>| {
        map.get(ENABLEMENT_KEY).is_some_and(|v| v == ENABLED)
    };
    on(namespace.annotations()) || on(namespace.labels())
}

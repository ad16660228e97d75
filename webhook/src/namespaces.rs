//! Namespace enablement (A4): the annotation `keptn.sh/lifecycle-toolkit: enabled` (Keptn) or a
//! label with the same key and value.

pub use shared::enablement::{ENABLED, ENABLEMENT_KEY, is_enabled};

use crate::snapshot::{Cached, Snapshot};

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
        Cached::Found(ns) if is_enabled(&ns.metadata) => Enablement::Enabled,
        Cached::Found(_) => Enablement::Disabled,
    }
}

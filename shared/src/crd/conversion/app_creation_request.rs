//! KeptnAppCreationRequest at v1alpha3 and v1beta1.

use super::Spoke;

pub(super) fn spokes() -> Vec<Spoke> {
    Vec::new()
}

//! KeptnWorkloadVersion at v1alpha4 and v1beta1.

use super::Spoke;

pub(super) fn spokes() -> Vec<Spoke> {
    Vec::new()
}

//! Portcullis shared library: the `lifecycle.keptn.sh/v1` API types, metadata resolution and
//! everything the webhook and the gate service both need.

pub mod checks;
pub mod crd;
pub mod logging;
pub mod resolve;

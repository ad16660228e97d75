//! Portcullis shared library: the `lifecycle.keptn.sh/v1` API types, metadata resolution and
//! everything the webhook and the gate service both need.

pub mod checks;
pub mod cli;
pub mod crd;
pub mod enablement;
pub mod gate;
pub mod logging;
pub mod resolve;
#[cfg(feature = "runtime")]
pub mod shutdown;

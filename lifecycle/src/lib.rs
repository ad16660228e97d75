//! Every decision of the Portcullis gate, as pure functions over plain data: the lifecycle
//! controllers (B §3), the scheduling-gate release (A11–A14), KeptnTask and KeptnEvaluation
//! execution (B §5, §6) and what they report (B §7).
//!
//! The crate depends on no async runtime and no Kubernetes client, so what is here cannot do
//! I/O: the gate's controller shell reads its caches, calls these functions and applies what
//! they return.

pub mod build;
pub mod checks;
pub mod config;
pub mod deploy;
pub mod discovery;
pub mod events;
pub mod execution;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod phase;
pub mod planner;
pub mod release;
pub mod retention;
pub mod traces;
pub mod versions;

//! `kubectl portcullis`: a kubectl plugin for Portcullis users.
//!
//! - [`explain`]: what the webhook will do with the workloads of a manifest, and why, computed by
//!   the webhook's own pure core (no cluster needed);
//! - [`status`]: an app's lifecycle at a glance;
//! - [`why`]: why a pod is held, or when it was released;
//! - [`retry`]: start an app's or a workload's checks again.
//!
//! [`cli`] holds the flags kubectl users expect, [`output`] the table/JSON/YAML rendering.

pub mod cli;
pub mod explain;
pub mod output;
pub mod retry;
pub mod status;
pub mod why;

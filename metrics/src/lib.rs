//! Portcullis metrics: fills `KeptnMetric.status` (`metrics.keptn.sh/v1`) from
//! Prometheus-compatible servers. [`query`] decides what to ask and reads the answer (no I/O),
//! [`prometheus`] asks over HTTP(S), [`status`] decides what the status becomes (no I/O),
//! [`controller`] runs it per KeptnMetric, [`server`] serves the values on Keptn's port 9999.

pub mod prometheus;
pub mod query;
// controller modules follow
pub mod cli;
pub mod controller;
pub mod observe;
pub mod run;
pub mod server;
pub mod status;

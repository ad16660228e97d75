//! Portcullis gate service: the controller shell over the [`lifecycle`] crate's decisions —
//! lifecycle controllers (B §3), scheduling-gate release (A11–A14), KeptnTask and
//! KeptnEvaluation execution (B §5, §6) — with leader election and observability.
//!
//! Layers, each depending only on those above it: the [`operator`] crate (leader election, the
//! timed API calls and the status writer, the admin endpoints, shared with `portcullis-metrics`),
//! [`error`] (the one error type), [`observability`] (metrics, DORA gauges, spans, Events and
//! CloudEvents), [`controllers`] (the caches, the context, the error policy and the
//! reconcilers), then the binary's [`cli`] and [`run`].

pub mod cli;
pub mod controllers;
pub mod error;
pub mod observability;
pub mod run;
pub mod storage;

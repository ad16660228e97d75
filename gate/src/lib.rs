//! Portcullis gate service: the controller shell over the [`lifecycle`] crate's decisions —
//! lifecycle controllers (B §3), scheduling-gate release (A11–A14), KeptnTask and
//! KeptnEvaluation execution (B §5, §6) — with leader election and observability.
//!
//! Layers, each depending only on those above it: [`error`] and [`api`] (the one error type,
//! the timed API calls and the status writer), [`observability`] (metrics, DORA gauges,
//! spans, Events and CloudEvents), [`controllers`] (the caches, the context, the error policy and
//! the reconcilers), [`lease`] and [`admin`] (the HTTP endpoints), then the binary's `run`.

pub mod admin;
pub mod api;
pub mod cli;
pub mod controllers;
pub mod error;
pub mod lease;
pub mod observability;
pub mod run;

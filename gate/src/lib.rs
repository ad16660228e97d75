//! Portcullis gate service: the lifecycle controllers (B §3), the scheduling-gate release
//! (A11–A14) and leader election.
//!
//! The decisions are pure functions over plain data ([`phase`], [`checks`], [`lifecycle`],
//! [`deploy`], [`discovery`], [`versions`], [`build`], [`release`], [`config`], [`events`],
//! [`traces`], [`dora`]); the kube-facing shell ([`controllers`], [`lease`], [`admin`],
//! [`telemetry`]) only reads caches and applies them.

pub mod admin;
pub mod build;
pub mod checks;
pub mod cloudevents;
pub mod config;
pub mod controllers;
pub mod deploy;
pub mod discovery;
pub mod dora;
pub mod events;
pub mod execution;
pub mod lease;
pub mod lifecycle;
pub mod phase;
pub mod release;
pub mod retention;
pub mod telemetry;
pub mod traces;
pub mod versions;

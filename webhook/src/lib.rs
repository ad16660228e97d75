//! Portcullis admission webhook (SPEC A1–A10, A22, B §1): gates pods of annotated workloads,
//! creates their KeptnWorkloads and KeptnAppCreationRequests, validates KeptnTaskDefinitions.
//!
//! A pure core decides from an AdmissionRequest and a [`snapshot::Snapshot`] of the watch caches
//! ([`pods`], [`workloads`], [`taskdefinition`], [`desired`], [`patch`]); a thin shell serves
//! HTTPS, keeps the caches and carries out the writes.

pub mod decision;
pub mod desired;
pub mod namespaces;
pub mod patch;
pub mod pods;
pub mod review;
pub mod snapshot;
pub mod taskdefinition;
pub mod workloads;

pub mod caches;
pub mod cli;
pub mod cluster;
pub mod fixtures;
pub mod metrics;
pub mod run;
pub mod server;
pub mod tls;

#[cfg(test)]
mod core_tests;

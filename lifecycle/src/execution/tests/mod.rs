//! Unit tests of the pure decisions, named after the SPEC rule each one checks.

mod definition;
mod evaluation;
mod job;
mod task;

pub use crate::fixtures::*;

use jiff::Timestamp;

/// When the decisions run.
fn now() -> Timestamp {
    "2026-11-23T01:00:00Z".parse().unwrap()
}

/// A minute before [`now`]: when running tasks and evaluations started.
const STARTED: &str = "2026-11-23T00:59:00Z";
/// Thirty seconds after [`STARTED`]: when finished ones ended.
const ENDED: &str = "2026-11-23T00:59:30Z";

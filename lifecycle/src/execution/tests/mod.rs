//! Unit tests of the pure decisions, named after the SPEC rule each one checks.

mod definition;
mod evaluation;
mod job;
mod task;

pub use crate::fixtures::*;

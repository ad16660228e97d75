//! kubesim: an in-process Kubernetes API server emulator, the proving ground of Portcullis.
//!
//! Modules marked "(pending)" in their first line are being written; they are empty until they land.

pub mod admission;
pub mod defaults;
pub mod patch;
pub mod schema;
pub mod status;
pub mod table;
pub mod validation;

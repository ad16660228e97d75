//! Certificates for the Portcullis admission webhook: a private CA, the serving certificate the
//! API server verifies, and their renewal.
//!
//! Everything here except [`state`] is pure: functions take the current time and return new PEM
//! text or YAML; the `portcullis-certs` binary reads and writes the files. The API server trusts
//! the webhook through the `caBundle` of the webhook configurations, so a CA is never replaced in
//! one step: a new CA joins the bundle next to the old one, which stays until it expires.

pub mod error;
pub mod inspect;
pub mod manifest;
pub mod pki;
pub mod rotation;
pub mod secret;
pub mod state;
pub mod validity;

pub use error::CertError;
pub use pki::{KeyAlgorithm, ServiceName};
pub use rotation::{Action, Material, Plan, Policy, Rotation};

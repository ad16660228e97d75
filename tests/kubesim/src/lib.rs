//! kubesim: an in-process Kubernetes API server emulator, the proving ground of Portcullis.
//!
//! Start one with [`Sim::start`] (tests) or `kubesim serve` (the binary). Objects are kept as JSON
//! (`serde_json::Value`) so any kind, custom resources included, is stored without typed structs.
//!
//! Role-based access control (`rbac.authorization.k8s.io`) is enforced only with
//! [`SimConfig::rbac`] (`kubesim serve --rbac`): bearer tokens identify the admin and
//! ServiceAccounts, and the `rbac` module decides. Off (the default), every request is allowed.
//!
//! The core reaches the object modules (`patch`, `schema`, `table`, `defaults`, `validation`,
//! `admission`) only through `glue`; the simulated control plane lives in `controllers`.

pub mod admission;
pub mod api;
pub mod controllers;
pub mod defaults;
pub mod discovery;
pub mod events;
pub mod faults;
pub mod gc;
pub mod glue;
pub mod known_fields;
pub mod patch;
pub mod rbac;
pub mod resources;
pub mod schema;
pub mod selectors;
pub mod server;
pub mod sim;
pub mod status;
pub mod store;
pub mod table;
pub mod validation;

pub use sim::{Sim, SimConfig, SimError, SimHandle};

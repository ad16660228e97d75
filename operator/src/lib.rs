//! What Portcullis's controller binaries (`portcullis-gate`, `portcullis-metrics`) share: leader
//! election ([`lease`], [`leadership`]), timed API calls and the one status writer ([`api`]),
//! and the admin endpoints ([`admin`]).

pub mod admin;
pub mod api;
pub mod leadership;
pub mod lease;

//! What Portcullis's controller binaries (`portcullis-gate`, `portcullis-metrics`) share: leader
//! election ([`lease`], [`leadership`]), timed API calls and the one status writer ([`api`]),
//! the admin endpoints ([`admin`]) and the flags for the client and the election ([`cli`]).

pub mod admin;
pub mod api;
pub mod cli;
pub mod leadership;
pub mod lease;

//! autoheal-relay: turns Alertmanager and Grafana alerts into HAProxy remediation runs.
//!
//! intake ([`http`], [`auth`], [`payload`]) -> decide ([`decide`] with [`rules`], [`target`]
//! and [`label`]) -> journal ([`journal`], [`dedup`]; the request is answered after this
//! commit) -> coalesce ([`coalesce`]) -> guard ([`guard`]) -> execute ([`executor`]) -> audit
//! (the journal again). The stages share the types of [`model`]; [`config`] is the file they
//! are configured by. [`relay`] wires the stages; [`http::app`] is the router; [`server`] the
//! listener; [`commands`] is what each subcommand of the `autoheal-relay` binary does (the
//! binary parses the arguments).

pub mod auth;
pub mod coalesce;
pub mod commands;
pub mod config;
pub mod decide;
pub mod dedup;
pub mod executor;
pub mod guard;
pub mod http;
pub mod journal;
pub mod label;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod payload;
pub mod relay;
pub mod rules;
pub mod server;
pub mod target;

pub use http::app;
pub use relay::{AppState, Relay};

//! autoheal-relay: turns Alertmanager and Grafana alerts into HAProxy remediation runs.
//!
//! intake ([`http`], [`auth`], [`payload`]) -> journal ([`journal`]) -> decide ([`decide`])
//! -> coalesce ([`coalesce`]) -> guard ([`guard`]) -> execute ([`executor`]) -> audit (the
//! journal again). [`relay`] wires the stages; [`http::app`] is the router; [`cli`] is what the
//! `autoheal-relay` binary runs.

pub mod auth;
pub mod cli;
pub mod coalesce;
pub mod config;
pub mod decide;
pub mod dedup;
pub mod executor;
pub mod guard;
pub mod http;
pub mod journal;
pub mod label;
pub mod metrics;
pub mod model;
pub mod payload;
pub mod relay;
pub mod rules;
pub mod server;
pub mod target;

pub use http::app;
pub use relay::{AppState, Relay};

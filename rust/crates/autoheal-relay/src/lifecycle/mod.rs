//! A sick server's whole life, not one alert: growing hold-down, health-gated and ramped
//! restore, quarantine, panic, and a budget no alert can poison.
//!
//! [`policy`] holds the settings and their arithmetic, [`life`] one target's state machine,
//! [`report`] reads the module's per-server result, [`panic`] watches backends, [`membership`]
//! places servers in their real backends, [`store`] keeps it all in the journal's database.
//! Everything but [`store`] is pure: the caller passes the time.

pub mod book;
pub mod life;
pub mod membership;
pub mod panic;
pub mod policy;
pub mod report;
pub mod stage;
pub mod store;

//! A webhook signature the relay has accepted, remembered until it is stale.

/// A Grafana signature accepted with the alerts it signed. The same signed request is a replay
/// until `stale_after`; the journal keeps it with those alerts, so that holds across a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedSignature {
    /// The MAC, as sent.
    pub mac: Vec<u8>,
    /// When (seconds since the epoch) its timestamp is refused as stale anyway.
    pub stale_after: u64,
}

//! Parse, render, inventory, and plan every state for the servers found, checking the engine's promises.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../crates/haproxy-cfg/tests/support/invariants.rs"]
mod invariants;

fuzz_target!(|data: &[u8]| {
    // haproxy.cfg files are UTF-8 text (the whole corpus is); the engine works on &str.
    if let Ok(text) = std::str::from_utf8(data) {
        invariants::check(text);
    }
});

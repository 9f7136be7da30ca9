//! Where HAProxy releases differ for the module: duplicate server names in a backend (refused without
//! explicit `id`s up to 3.2; with them, loaded up to 3.0, warned in 3.1 and 3.2; both loaded silently by
//! 3.4.0) and `init-state` (3.1+). Each test asserts the behaviour of the `haproxy` on PATH,
//! whichever version it is (scripts/test-matrix.sh runs them against 2.8, 3.0, 3.2 and 3.4).

mod common;

use std::process::Command;

use common::{haproxy_accepts, server_words, Lab};
use serde_json::json;

/// `(major, minor)` of the `haproxy` on PATH.
fn haproxy_version() -> (u32, u32) {
    let out = Command::new("haproxy")
        .arg("-v")
        .output()
        .expect("haproxy -v");
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("HAProxy version "))
        .unwrap_or_else(|| panic!("no version in {text:?}"));
    let mut parts = version.split(['.', '-', ' ']);
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap();
    (next(), next())
}

#[test]
fn duplicate_server_names_are_edited_where_haproxy_loads_them_and_refused_where_it_does_not() {
    let lab = Lab::new(
        &[
            ("web1", "id 11"),
            ("web2", "id 12"),
            ("web1", "id 13 weight 5"),
        ],
        "",
    );
    let original = lab.config();
    // HAProxy's own verdict decides which way the module must go: 3.1 and 3.2 load this with a warning
    // and 3.3 was to refuse it, but 3.4.0 loads it silently (its uniqueness check misses it).
    let loads = haproxy_accepts(&lab.cfg);
    if haproxy_version() < (3, 3) {
        assert!(
            loads,
            "same-named servers with ids load before 3.3:\n{}",
            lab.config_text()
        );
    }

    let (result, code) =
        lab.server(json!({"server": "web1", "state": "drain", "all_matches": true}));
    if loads {
        assert_eq!((code, &result["changed"]), (0, &json!(true)), "{result}");
        assert_eq!(result["servers"].as_array().unwrap().len(), 2, "{result}");
        let text = lab.config_text();
        // The last `weight` on a line is the one HAProxy uses.
        let drained = text
            .lines()
            .filter(|l| l.trim_start().starts_with("server web1 "))
            .filter(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words
                    .iter()
                    .rposition(|w| *w == "weight")
                    .map(|i| words[i + 1])
                    == Some("0")
            })
            .count();
        assert_eq!(drained, 2, "both web1 lines drained:\n{text}");
        assert_eq!(
            server_words(&text, "web2"),
            server_words(&String::from_utf8(original).unwrap(), "web2")
        );
    } else {
        // `validate` (haproxy -c) refuses the result as HAProxy would refuse to start: nothing written.
        assert_eq!(code, 1, "{result}");
        let msg = result["msg"].as_str().unwrap();
        assert!(
            msg.contains("web1"),
            "HAProxy's complaint should name the server: {msg}"
        );
        assert_eq!(lab.config(), original);
    }
}

#[test]
fn init_state_is_kept_and_a_server_leaving_maintenance_comes_back() {
    let supported = haproxy_version() >= (3, 1);
    let mut lab = Lab::new(&[("web1", ""), ("web2", "init-state down")], "");
    assert_eq!(
        haproxy_accepts(&lab.cfg),
        supported,
        "{}",
        lab.config_text()
    );
    if !supported {
        return; // before 3.1 HAProxy rejects the keyword (asserted above): there is nothing to run
    }
    lab.start();
    let (out, code) = lab.server(json!({"server": "web2", "state": "disabled"}));
    assert_eq!((code, &out["changed"]), (0, &json!(true)), "{out}");
    assert!(lab.servers()["web2"].maint());

    // Leaving maintenance: with `init-state down` the server is DOWN until its first check passes,
    // then up; the module's job ends at the admin state, which must be ready at once.
    let (back, code) = lab.server(json!({"server": "web2", "state": "enabled"}));
    assert_eq!((code, &back["changed"]), (0, &json!(true)), "{back}");
    assert_eq!(back["live_in_sync"], true, "{back}");
    assert!(lab.servers()["web2"].ready_with(1), "{:?}", lab.servers());
    assert!(
        server_words(&lab.config_text(), "web2").contains(&"init-state".to_owned()),
        "init-state lost:\n{}",
        lab.config_text()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while lab.servers()["web2"].op_state != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "web2 never came up: {:?}",
            lab.servers()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

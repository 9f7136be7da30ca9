//! The project's own haproxy.cfg fixtures (tests/fixtures/*.cfg, written for these tests): each one
//! covers constructs found in real configurations. Every file round-trips, its servers are exactly the
//! ones a reader of the file counts by hand, and every server survives every state and back.

mod support {
    pub mod invariants;
}

use std::fs;
use std::path::Path;

use haproxy_cfg::{inventory, plan, Desired, Request, Target};
use support::invariants;

/// Each fixture with the `backend/server` pairs it holds, in file order, as counted by hand.
const FIXTURES: &[(&str, &[&str])] = &[
    (
        "sections-and-keywords.cfg",
        &[
            "web/web1",
            "web/web2",
            "web/web3",
            "api/api-a",
            "api/api-b",
            "api/api-c",
            "stats/local-echo",
        ],
    ),
    (
        "comments-and-blank-lines.cfg",
        &["db/db-primary", "db/db-replica1", "db/db-replica2"],
    ),
    (
        "crlf.cfg",
        &[
            "crlf_app/win1",
            "crlf_app/win2",
            "mixed_endings/unix-ending",
            "mixed_endings/dos-ending",
            "mixed_endings/last-line-has-no-ending",
        ],
    ),
    (
        "tabs-and-spacing.cfg",
        &["tabs/tab1", "tabs/tab2", "tabs/tab3", "trailing_space/ts1"],
    ),
    (
        "conditional-blocks.cfg",
        &[
            "app/always1",
            "app/modern1",
            "app/canary1",
            "app/staging1",
            "app/fallback1",
            "app/always2",
            "tls_only/tls1",
        ],
    ),
    (
        "addresses.cfg",
        &[
            "ipv6/v6-loop",
            "ipv6/v6-bracketed",
            "ipv6/v6-ipv6-prefix",
            "ipv6/v6-long",
            "ipv6/v4-prefixed",
            "names/by-name",
            "names/no-port",
            "sockets/uds",
            "sockets/uds-plain",
            "sockets/abstract",
            "sockets/pair",
            "from_env/env1",
            "from_env/env2",
            "from_env/env3",
        ],
    ),
    (
        "templates-and-duplicates.cfg",
        &[
            "blue/shared",
            "blue/blue-static",
            "green/shared",
            "green/green-static",
            "tcp_pass/shared",
        ],
    ),
    (
        "quoting-and-odd-names.cfg",
        &[
            "quoted backend/quoted name",
            "odd.names-and_such/web.01-a_b",
            "odd.names-and_such/single quoted",
            "odd.names-and_such/escaped space",
            "odd.names-and_such/cookie-backup",
        ],
    ),
    ("no-sections.cfg", &[]),
];

/// long.cfg: 80 backends `pool01`..`pool80` of 25 servers `pNN-s01`..`pNN-s25`.
const LONG_BACKENDS: usize = 80;
const LONG_SERVERS: usize = 25;

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn request(backend: &str, name: &str, desired: Desired) -> Request {
    Request {
        backend: Some(backend.to_owned()),
        target: Target::Name(name.to_owned()),
        all_matches: false,
        desired,
    }
}

#[test]
fn the_table_lists_every_fixture_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut on_disk: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".cfg"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .chain(["long.cfg".to_owned()])
        .collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "a fixture was added or removed: update FIXTURES"
    );
}

#[test]
fn every_fixture_keeps_the_engine_promises() {
    for (name, _) in FIXTURES {
        invariants::check(&read(name));
    }
    invariants::check(&read("long.cfg"));
}

#[test]
fn servers_are_the_ones_counted_by_hand() {
    for (name, expected) in FIXTURES {
        let found: Vec<String> = inventory(&read(name))
            .iter()
            .map(|s| format!("{}/{}", s.backend, s.name))
            .collect();
        assert_eq!(found, *expected, "{name}");
    }
}

#[test]
fn crlf_lines_keep_their_endings_through_an_edit() {
    let text = read("crlf.cfg");
    let drained = plan(&text, &request("crlf_app", "win2", Desired::Drain)).unwrap();
    assert!(
        drained
            .output
            .contains("\r\n    server win2 127.0.0.1:8002 check weight 0\r\n"),
        "{:?}",
        drained.output
    );
    assert_eq!(
        drained.output.matches('\n').count(),
        text.matches('\n').count() + 1,
        "one marker line added"
    );
    let last = plan(
        &text,
        &request("mixed_endings", "last-line-has-no-ending", Desired::Drain),
    )
    .unwrap();
    assert!(
        last.output
            .ends_with("last-line-has-no-ending 127.0.0.1:8005 weight 0"),
        "{:?}",
        last.output
    );
}

#[test]
fn a_name_in_several_backends_needs_its_backend() {
    let text = read("templates-and-duplicates.cfg");
    let everywhere = Request {
        backend: None,
        target: Target::Name("shared".to_owned()),
        all_matches: false,
        desired: Desired::Drain,
    };
    assert!(
        plan(&text, &everywhere).is_err(),
        "ambiguous without backend"
    );
    let one = plan(&text, &request("green", "shared", Desired::Drain)).unwrap();
    assert_eq!(one.changes.len(), 1);
    assert_eq!(
        one.changes[0].before.line,
        text.lines()
            .position(|l| l.contains("127.0.0.1:8601"))
            .unwrap()
            + 1
    );
    let all = plan(
        &text,
        &Request {
            all_matches: true,
            ..everywhere
        },
    )
    .unwrap();
    assert_eq!(all.changes.len(), 3);
}

#[test]
fn servers_inside_if_blocks_are_edited_with_a_note() {
    let text = read("conditional-blocks.cfg");
    let planned = plan(&text, &request("app", "canary1", Desired::Drain)).unwrap();
    assert!(
        planned.changes[0].notes.iter().any(|n| n.contains(".if")),
        "{:?}",
        planned.changes[0].notes
    );
    let plain = plan(&text, &request("app", "always1", Desired::Drain)).unwrap();
    assert!(
        plain.changes[0].notes.is_empty(),
        "{:?}",
        plain.changes[0].notes
    );
}

#[test]
fn the_long_file_has_every_server_and_each_one_restores_exactly() {
    let text = read("long.cfg");
    let servers = inventory(&text);
    assert_eq!(servers.len(), LONG_BACKENDS * LONG_SERVERS);
    assert_eq!(
        (servers[0].backend.as_str(), servers[0].name.as_str()),
        ("pool01", "p01-s01")
    );
    let last = servers.last().unwrap();
    assert_eq!(
        (last.backend.as_str(), last.name.as_str()),
        ("pool80", "p80-s25")
    );
    for server in servers.iter().step_by(37) {
        let drained = plan(
            &text,
            &request(&server.backend, &server.name, Desired::Drain),
        )
        .unwrap();
        assert_eq!(drained.changes.len(), 1);
        let restored = plan(
            &drained.output,
            &request(&server.backend, &server.name, Desired::Enabled),
        )
        .unwrap();
        assert_eq!(restored.output, text, "{}/{}", server.backend, server.name);
    }
}

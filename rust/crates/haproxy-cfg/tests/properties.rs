//! Property tests: lossless parsing of arbitrary text, and exact, idempotent edits on generated configs.

mod support {
    pub mod invariants;
}

use haproxy_cfg::{inventory, plan, Desired, Document, Request, Target};
use proptest::prelude::*;
use support::invariants;

/// Pieces of haproxy.cfg syntax, so random text hits quoting, escapes, comments and line endings often.
const FRAGMENTS: &[&str] = &[
    "backend",
    "listen",
    "peers",
    "ring",
    "defaults",
    "frontend",
    "server",
    "default-server",
    "server-template",
    "weight",
    "disabled",
    "enabled",
    "backup",
    "check",
    ".if",
    ".endif",
    "#autoheal drain was: server s a:1",
    "#autoheal absent was: ",
    "#autoheal weight 50% was: ",
    "#",
    "\"",
    "'",
    "\\",
    "\\ ",
    "\\#",
    " ",
    "  ",
    "\t",
    "\r\n",
    "\n",
    "\r",
    "0",
    "256",
    "s1",
    "10.0.0.1:80",
    "::1",
    "unix@/x",
    "é",
    "from",
];

fn haproxy_ish_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
        1 => any::<char>().prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..120).prop_map(|pieces| pieces.concat())
}

/// One server line's words after `server`, with a name from a small set so duplicates happen.
fn server_words() -> impl Strategy<Value = Vec<String>> {
    let name = proptest::sample::select(
        &[
            "web1",
            "web2",
            "pod:ns:app:10.0.0.9:8080",
            "127.0.0.001",
            "\"s 1\"",
        ][..],
    );
    let address = proptest::sample::select(
        &[
            "10.0.0.1:80",
            "10.0.0.2",
            "::1:8080",
            "[::1]:81",
            "unix@/run/a.sock",
            "app.local:443",
            "ipv4@10.0.0.1:80",
        ][..],
    );
    let option = proptest::sample::select(
        &[
            "check",
            "weight 10",
            "weight 0",
            "weight 256",
            "disabled",
            "backup",
            "maxconn 50",
            "cookie backup",
            "inter 2s",
            "enabled",
        ][..],
    );
    (name, address, proptest::collection::vec(option, 0..4)).prop_map(|(name, address, options)| {
        let mut words = vec!["server".to_owned(), name.to_owned(), address.to_owned()];
        words.extend(options.iter().map(|o| (*o).to_owned()));
        words
    })
}

/// A syntactically valid config: sections with servers, `default-server`, comments and other directives,
/// written with varied indentation, separators and line endings.
fn generated_config() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        4 => server_words(),
        1 => Just(vec!["default-server".to_owned(), "weight".to_owned(), "20".to_owned()]),
        1 => Just(vec!["balance".to_owned(), "roundrobin".to_owned()]),
        1 => Just(vec!["#".to_owned(), "a".to_owned(), "comment".to_owned()]),
        1 => Just(Vec::new()),
    ];
    let header = proptest::sample::select(
        &[
            "backend app",
            "backend api",
            "listen stats",
            "peers mypeers",
            "defaults",
            "frontend web",
        ][..],
    );
    let section = (header, proptest::collection::vec(line, 0..6));
    let style = (
        proptest::sample::select(&["", "  ", "\t", "    "][..]),
        proptest::sample::select(&[" ", "\t", "  "][..]),
        proptest::sample::select(&["\n", "\r\n"][..]),
        any::<bool>(),
    );
    (proptest::collection::vec(section, 1..5), style).prop_map(
        |(sections, (indent, separator, ending, final_newline))| {
            let mut text = String::from("global");
            for (header, lines) in sections {
                text.push_str(ending);
                text.push_str(header);
                for words in lines {
                    text.push_str(ending);
                    if !words.is_empty() {
                        text.push_str(indent);
                        text.push_str(&words.join(separator));
                    }
                }
            }
            if final_newline {
                text.push_str(ending);
            }
            text
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn rendering_a_parse_gives_the_bytes_back(text in haproxy_ish_text()) {
        prop_assert_eq!(Document::parse(&text).render(), text.clone());
        // Inventory and planning never panic on arbitrary text.
        invariants::check(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn edits_on_generated_configs_are_exact_and_idempotent(text in generated_config()) {
        invariants::check(&text);
    }

    #[test]
    fn drain_then_enabled_gives_the_original_bytes(text in generated_config()) {
        for server in inventory(&text) {
            let request = |desired| Request {
                backend: Some(server.backend.clone()),
                target: Target::Name(server.name.clone()),
                all_matches: true,
                desired,
            };
            let drained = plan(&text, &request(Desired::Drain)).expect("drain plans");
            let drained_twice = plan(&drained.output, &request(Desired::Drain)).expect("drain plans");
            prop_assert_eq!(&drained_twice.output, &drained.output);
            let restored = plan(&drained.output, &request(Desired::Enabled)).expect("enabled plans");
            prop_assert_eq!(&restored.output, &text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any sequence of states on any servers, each applied twice, then `enabled` on every server,
    /// gives back the original bytes: markers always keep the true original line.
    #[test]
    fn any_sequence_of_states_then_enabled_restores_the_file(
        text in generated_config(),
        steps in proptest::collection::vec((any::<prop::sample::Index>(), 0..7usize), 1..8),
    ) {
        let servers = inventory(&text);
        prop_assume!(!servers.is_empty());
        let request = |server: &haproxy_cfg::ServerInfo, desired| Request {
            backend: Some(server.backend.clone()),
            target: Target::Name(server.name.clone()),
            all_matches: true,
            desired,
        };
        let mut current = text.clone();
        for (pick, state) in steps {
            let server = pick.get(&servers);
            let desired = invariants::every_desired()[state].clone();
            let once = plan(&current, &request(server, desired.clone())).expect("plans");
            let twice = plan(&once.output, &request(server, desired)).expect("plans again");
            prop_assert_eq!(&twice.output, &once.output);
            current = once.output;
        }
        for server in &servers {
            current = plan(&current, &request(server, Desired::Enabled)).expect("enabled plans").output;
        }
        prop_assert_eq!(current, text);
    }
}

#[test]
fn the_generator_produces_servers() {
    // Guards the property tests above against a generator that silently stops producing servers.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let with_servers = (0..50)
        .filter(|_| {
            let text = generated_config()
                .new_tree(&mut runner)
                .expect("value")
                .current();
            !inventory(&text).is_empty()
        })
        .count();
    assert!(
        with_servers >= 20,
        "only {with_servers} of 50 generated configs have servers"
    );
}

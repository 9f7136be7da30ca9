//! The engine's promises, checked on any text. Shared by the property tests, the fuzz target
//! (rust/fuzz, which includes this file by path) and the replay of fuzz regressions.

use haproxy_cfg::{inventory, lex, plan, plan_all, Desired, Document, Request, Target, WeightSpec};

/// Servers planned per input, so huge inputs stay fast.
const MAX_SERVERS: usize = 4;

/// Every state a request can ask for.
pub fn every_desired() -> [Desired; 7] {
    [
        Desired::Enabled,
        Desired::Drain,
        Desired::Disabled,
        Desired::Absent,
        Desired::Weight(WeightSpec::Absolute(0)),
        Desired::Weight(WeightSpec::Absolute(3)),
        Desired::Weight(WeightSpec::Percent(50)),
    ]
}

/// Panics (with the reason) if any promise is broken for `text`:
/// - rendering the parsed document gives the text back;
/// - planning any state for any found server works, and applying it again changes nothing;
/// - only the lines of the planned server change, and the reported `after` is what the file now says;
/// - on unmanaged servers, any state followed by `enabled` gives the text back;
/// - a plan lists the servers of the sections it touches as the full inventory lists them.
pub fn check(text: &str) {
    assert_eq!(
        Document::parse(text).render(),
        text,
        "render(parse(x)) != x"
    );
    let servers = inventory(text);
    for server in servers.iter().take(MAX_SERVERS) {
        for desired in every_desired() {
            let request = Request {
                backend: Some(server.backend.clone()),
                target: Target::Name(server.name.clone()),
                all_matches: true,
                desired: desired.clone(),
            };
            let Ok(first) = plan(text, &request) else {
                continue;
            };
            let patch = plan_all(text, std::slice::from_ref(&request)).expect("plan worked");
            let in_section: Vec<_> = servers
                .iter()
                .filter(|s| s.backend == server.backend)
                .cloned()
                .collect();
            assert_eq!(patch.section_servers, in_section, "section servers");
            let listed = inventory(&first.output);
            assert_eq!(
                listed.len(),
                servers.len(),
                "{desired:?} changed the server count"
            );
            for change in &first.changes {
                assert!(
                    listed.contains(&change.after),
                    "{desired:?}: reported {:?}, the file says {listed:?}",
                    change.after
                );
            }
            if first.changes.len() == 1 {
                assert_only_server_lines_changed(text, &first.output);
            }
            let second =
                plan(&first.output, &request).expect("a request that planned once plans again");
            assert_eq!(
                second.output, first.output,
                "{desired:?} applied twice changed the file"
            );
            assert!(
                second.changes.iter().all(|change| !change.changed),
                "{desired:?} twice reported a change"
            );
            if first
                .changes
                .iter()
                .all(|change| change.before.state.managed.is_none())
            {
                let enable = Request {
                    desired: Desired::Enabled,
                    ..request
                };
                let restored = plan(&first.output, &enable).expect("enabled plans");
                assert_eq!(
                    restored.output, text,
                    "{desired:?} then enabled is not an exact restore"
                );
            }
        }
    }
}

/// Outside one changed block of lines, the bytes are identical, and the changed block holds `server`
/// lines or autoheal markers only.
fn assert_only_server_lines_changed(before: &str, after: &str) {
    let old: Vec<&str> = before.split_inclusive('\n').collect();
    let new: Vec<&str> = after.split_inclusive('\n').collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    for line in old[prefix..old.len() - suffix]
        .iter()
        .chain(&new[prefix..new.len() - suffix])
    {
        let content = line
            .strip_suffix('\n')
            .map_or(*line, |l| l.strip_suffix('\r').unwrap_or(l));
        let lexed = lex(content);
        let is_marker = lexed.tokens.is_empty() && content.trim_start().starts_with("#autoheal ");
        assert!(
            lexed.keyword() == Some("server") || is_marker,
            "a line other than a server line or marker changed: {line:?}"
        );
    }
}

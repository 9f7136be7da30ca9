//! Every configuration of the shared corpus: exact round trip, server counts against the corpus's own
//! independent count, and drain/enable round trips on a sample. An extension of the suite: the project's
//! own fixtures are tested by cfg_fixtures.rs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use haproxy_cfg::{inventory, plan, Desired, Document, Request, Target};

/// The corpus lives in `$AUTOHEAL_SHARED_DIR/corpus` (default in the checkout's .cargo/config.toml). This
/// target runs only when asked for (`cargo test --test corpus`, as scripts/test.sh does when the corpus
/// exists), so a missing corpus is a failure here, never a silent pass.
fn corpus_dir() -> PathBuf {
    let shared = std::env::var_os("AUTOHEAL_SHARED_DIR")
        .expect("AUTOHEAL_SHARED_DIR is not set (cargo sets it from .cargo/config.toml)");
    let dir = Path::new(&shared).join("corpus");
    assert!(
        dir.join("haproxy-cfg/INDEX.tsv").is_file(),
        "the shared corpus is missing: expected {}",
        dir.display()
    );
    dir
}

/// `path -> server_lines` from INDEX.tsv.
fn index() -> BTreeMap<String, usize> {
    let text = fs::read_to_string(corpus_dir().join("haproxy-cfg/INDEX.tsv"))
        .expect("INDEX.tsv is readable");
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .expect("INDEX.tsv has a header")
        .split('\t')
        .collect();
    let path_at = header
        .iter()
        .position(|c| *c == "path")
        .expect("path column");
    let servers_at = header
        .iter()
        .position(|c| *c == "server_lines")
        .expect("server_lines column");
    lines
        .map(|line| {
            let columns: Vec<&str> = line.split('\t').collect();
            let count = columns[servers_at]
                .parse()
                .expect("server_lines is a number");
            (columns[path_at].to_owned(), count)
        })
        .collect()
}

fn corpus_files() -> Vec<(String, String)> {
    let root = corpus_dir();
    let mut files = Vec::new();
    let mut pending = vec![root.join("haproxy-cfg")];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("corpus directory is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "cfg") {
                let relative = path
                    .strip_prefix(&root)
                    .expect("under the corpus")
                    .to_string_lossy()
                    .into_owned();
                let text = fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{relative}: not UTF-8 text: {e}"));
                files.push((relative, text));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_file_round_trips_byte_for_byte() {
    let files = corpus_files();
    assert!(
        files.len() >= 4000,
        "expected the whole corpus, found {} files",
        files.len()
    );
    for (path, text) in &files {
        assert_eq!(
            Document::parse(text).render(),
            *text,
            "{path} does not round-trip"
        );
    }
}

/// INDEX.tsv counts lines whose first word is `server` in `backend`/`listen` sections. The engine also
/// skips `server` lines that do not lex or have no name; the corpus has none, so the counts must agree
/// exactly (commented-out servers, `server-template` and `default-server` are excluded by both).
#[test]
fn server_counts_match_the_corpus_index() {
    let index = index();
    let files = corpus_files();
    let mut mismatches = Vec::new();
    let mut total = 0;
    for (path, text) in &files {
        let expected = *index
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in INDEX.tsv"));
        let found = inventory(text).len();
        total += found;
        if found != expected {
            mismatches.push(format!(
                "{path}: INDEX.tsv says {expected}, engine found {found}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "server count mismatches:\n{}",
        mismatches.join("\n")
    );
    assert!(
        total > 10_000,
        "only {total} servers found in the whole corpus"
    );
}

/// Files with servers, every other one, plus the ones the corpus README calls out as tricky.
fn sample() -> Vec<(String, String)> {
    const TRICKY: &[&str] = &[
        "kubernetes-ingress__documentation_tcp-cr-full-example",
        "Alvarojimenezgit",
        "configBasicMissingNewLineOnEnd",
        "haproxy_no_newline",
        "1999GersonMayamba",
        "BZ2044682",
        "Aidaho12__test-haproxy-repo",
        "configFull",
        "log__log_backend__1",
        "generatedConfig",
        "option-http_proxy",
        "jvehent__haproxy-aws",
        "ssl__add_ssl_crt-list.vtci__1",
        "test-address-syntax",
    ];
    corpus_files()
        .into_iter()
        .filter(|(_, text)| !inventory(text).is_empty())
        .enumerate()
        .filter(|(n, (path, _))| n % 2 == 0 || TRICKY.iter().any(|t| path.contains(t)))
        .map(|(_, file)| file)
        .collect()
}

/// At most `count` items, evenly spread, so the biggest files do not dominate the run time.
fn spread<T>(items: Vec<T>, count: usize) -> Vec<T> {
    let step = items.len().div_ceil(count).max(1);
    items.into_iter().step_by(step).collect()
}

fn request(backend: &str, name: &str, desired: Desired) -> Request {
    Request {
        backend: Some(backend.to_owned()),
        target: Target::Name(name.to_owned()),
        all_matches: true,
        desired,
    }
}

#[test]
fn drain_then_enable_restores_every_server_and_reruns_change_nothing() {
    let files = sample();
    assert!(files.len() > 100, "sample too small: {}", files.len());
    let mut servers_checked = 0;
    for (path, text) in &files {
        for server in spread(inventory(text), 25) {
            let drain = request(&server.backend, &server.name, Desired::Drain);
            let drained =
                plan(text, &drain).unwrap_or_else(|e| panic!("{path}: drain {}: {e}", server.name));
            let again = plan(&drained.output, &drain).expect("second drain plans");
            assert_eq!(
                again.output, drained.output,
                "{path}: second drain of {} changed the file",
                server.name
            );
            assert!(
                again.changes.iter().all(|c| !c.changed),
                "{path}: second drain reported a change"
            );
            let enable = request(&server.backend, &server.name, Desired::Enabled);
            let restored = plan(&drained.output, &enable).expect("enable plans");
            assert_eq!(
                restored.output, *text,
                "{path}: drain+enable of {} is not exact",
                server.name
            );
            assert_eq!(
                plan(&restored.output, &enable)
                    .expect("enable plans")
                    .output,
                *text
            );
            servers_checked += 1;
        }
    }
    assert!(
        servers_checked > 1000,
        "only {servers_checked} servers exercised"
    );
}

#[test]
fn every_state_round_trips_on_the_tricky_files() {
    let files = sample();
    for (path, text) in &files {
        for server in spread(inventory(text), 5) {
            for desired in [
                Desired::Drain,
                Desired::Disabled,
                Desired::Absent,
                Desired::Weight(haproxy_cfg::WeightSpec::Percent(50)),
            ] {
                let planned = plan(
                    text,
                    &request(&server.backend, &server.name, desired.clone()),
                )
                .unwrap_or_else(|e| panic!("{path}: {desired:?} {}: {e}", server.name));
                let rerun = plan(
                    &planned.output,
                    &request(&server.backend, &server.name, desired.clone()),
                )
                .expect("rerun plans");
                assert_eq!(
                    rerun.output, planned.output,
                    "{path}: {desired:?} twice on {}",
                    server.name
                );
                let back = plan(
                    &planned.output,
                    &request(&server.backend, &server.name, Desired::Enabled),
                )
                .expect("enable plans");
                assert_eq!(
                    back.output, *text,
                    "{path}: {desired:?} then enabled on {}",
                    server.name
                );
            }
        }
    }
}

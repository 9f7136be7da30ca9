//! The section keywords exist once, in the engine ([`haproxy_cfg::SECTION_KEYWORDS`]); the other
//! readers of haproxy.cfg in the repository (the haproxy_runtime role, the integration lab and the
//! end-to-end lab) spell the list out in their own language, and must spell the same one.

use std::collections::BTreeSet;
use std::path::Path;

use haproxy_cfg::SECTION_KEYWORDS;

/// The repository's file `rel`.
fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The double-quoted words of the text between `start` and the next `end` after it.
fn quoted_words(text: &str, start: &str, end: &str) -> BTreeSet<String> {
    let from = text.find(start).unwrap_or_else(|| panic!("no {start:?}")) + start.len();
    let block = &text[from..from + text[from..].find(end).unwrap()];
    block
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn engine() -> BTreeSet<String> {
    SECTION_KEYWORDS.iter().map(|k| (*k).to_owned()).collect()
}

#[test]
fn the_haproxy_runtime_role_knows_the_engines_sections() {
    let vars = read("roles/haproxy_runtime/vars/main.yml");
    let key = "__autoheal_haproxy_runtime_section_words: >-\n";
    let from = vars.find(key).unwrap() + key.len();
    let line = vars[from..].lines().next().unwrap().trim();
    let words: BTreeSet<String> = line.split('|').map(str::to_owned).collect();
    assert_eq!(words, engine());
}

#[test]
fn the_integration_lab_knows_the_engines_sections() {
    let lab = read("tests/integration/targets/setup_haproxy/files/haproxy_lab.py");
    assert_eq!(quoted_words(&lab, "headers = (", ")"), engine());
}

#[test]
fn the_end_to_end_lab_knows_the_engines_sections() {
    let stack = read("lab/stack.py");
    assert_eq!(quoted_words(&stack, "SECTION_KEYWORDS = (", ")"), engine());
}

//! docs/relay.md's configuration reference against the configuration structs: every key of every
//! section is documented, every documented key exists, and every default the page states as a
//! value is the one the code applies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use autoheal_relay::config::Config;

/// A section of the reference: its keys, each with the default the page gives, if any.
type Keys = BTreeMap<String, Option<String>>;

const AUTH: &str = "[auth]\nallow_unauthenticated = true\n";
const RULE: &str = "[[rules]]\nname = \"r\"\nmatch = { alertname = \"A\" }\naction = \"drain\"\n";
const RUNNER: &str =
    "[executor]\nkind = \"ansible-runner\"\ninventory = \"inventory\"\nwork_dir = \"runs\"\n";
const AWX: &str = "[executor]\nkind = \"awx\"\nurl = \"https://awx.example\"\njob_template_id = 1\ntoken_file = \"token\"\n";

fn relay_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../docs/relay.md");
    std::fs::read_to_string(path).unwrap()
}

/// The `- `[section]` ...` items of the "Configuration (TOML)" chapter, by section name (the
/// executor's item split by `kind`, `grafana_hmac`'s inline table as a section of its own).
fn documented() -> BTreeMap<String, Keys> {
    let page = relay_md();
    let start = page.find("## Configuration (TOML)").unwrap();
    let chapter = &page[start..];
    let chapter = &chapter[..chapter[3..].find("\n## ").unwrap()];
    let mut items: Vec<String> = Vec::new();
    for line in chapter.lines() {
        if let Some(item) = line.strip_prefix("- `[") {
            items.push(item.to_owned());
        } else if let (Some(last), Some(more)) = (items.last_mut(), line.strip_prefix("  ")) {
            last.push(' ');
            last.push_str(more);
        }
    }
    let mut sections = BTreeMap::new();
    for item in items {
        let (name, text) = item.split_once("]`").unwrap();
        let name = name.trim_matches(['[', ']']).to_owned();
        if name == "executor" {
            let (runner, awx) = text.split_once("`kind = \"awx\"`").unwrap();
            sections.insert("executor.ansible-runner".into(), keys(runner));
            sections.insert("executor.awx".into(), keys(awx));
        } else {
            if let Some(table) = text.split("`grafana_hmac = {").nth(1) {
                let table = &table[..table.find("}`").unwrap()];
                sections.insert("auth.grafana_hmac".into(), inline_keys(table));
            }
            sections.insert(name, keys(text));
        }
    }
    sections
}

/// The keys of an item: the code spans outside parentheses, each with what the parenthesis right
/// after it says first (the default, when it is a value).
fn keys(text: &str) -> Keys {
    let mut found = Keys::new();
    let mut depth = 0usize;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '`' if depth == 0 => {
                let end = rest[1..].find('`').unwrap() + 1;
                let span = &rest[1..end];
                rest = &rest[end..];
                let key = span.split([' ', '=']).next().unwrap();
                if key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    let default = rest[1..].strip_prefix(" (").map(|after| {
                        after
                            .split([',', ')', ':'])
                            .next()
                            .unwrap()
                            .trim()
                            .to_owned()
                    });
                    found.insert(key.to_owned(), default);
                } else if let Some(table) = span.strip_prefix('[').and_then(|s| s.strip_suffix(']'))
                {
                    // `[executor.env]`: a table of the section.
                    found.insert(table.rsplit('.').next().unwrap().to_owned(), None);
                }
            }
            _ => {}
        }
        rest = &rest[c.len_utf8()..];
    }
    found
}

/// `secret_file, header = "X", max_skew_secs = 300`: keys with their defaults.
fn inline_keys(table: &str) -> Keys {
    table
        .split(',')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (key.trim().to_owned(), Some(value.trim().to_owned())),
            None => (pair.trim().to_owned(), None),
        })
        .collect()
}

/// The fields a section's struct accepts, from the parser's own list (it names them all when it
/// meets an unknown one).
fn fields(section: &str) -> BTreeSet<String> {
    let bogus = "docs_test_unknown_key = 1\n";
    let text = match section {
        "auth" => format!("[auth]\nallow_unauthenticated = true\n{bogus}[executor]\nkind = \"dry-run\"\n"),
        "auth.grafana_hmac" => format!(
            "[auth]\ngrafana_hmac = {{ secret_file = \"s\", {} }}\n[executor]\nkind = \"dry-run\"\n",
            bogus.trim()
        ),
        "rules" => format!("{AUTH}{RULE}{bogus}[executor]\nkind = \"dry-run\"\n"),
        "executor.ansible-runner" => format!("{AUTH}{RUNNER}{bogus}"),
        "executor.awx" => format!("{AUTH}{AWX}{bogus}"),
        other => format!("{AUTH}[executor]\nkind = \"dry-run\"\n[{other}]\n{bogus}"),
    };
    let err = Config::parse(&text, Path::new("/etc/relay/relay.toml"))
        .unwrap_err()
        .to_string();
    let expected = err
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("{section}: {err}"));
    let expected = expected.lines().next().unwrap();
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The configuration's values, defaults included, as TOML, for each section of the reference.
fn values(section: &str) -> toml::Value {
    let parse = |text: &str| {
        let config = Config::parse(text, Path::new("/etc/relay/relay.toml")).unwrap();
        toml::Value::try_from(&config).unwrap()
    };
    let hmac = "[auth]\ngrafana_hmac = { secret_file = \"s\" }\n";
    match section {
        "auth.grafana_hmac" => parse(&format!("{hmac}{RUNNER}"))["auth"]["grafana_hmac"].clone(),
        "rules" => parse(&format!("{AUTH}{RULE}{RUNNER}"))["rules"][0].clone(),
        "executor.ansible-runner" => parse(&format!("{AUTH}{RUNNER}"))["executor"].clone(),
        "executor.awx" => parse(&format!("{AUTH}{AWX}"))["executor"].clone(),
        other => parse(&format!("{AUTH}{RUNNER}"))[other].clone(),
    }
}

/// A documented default as the value it stands for, when it is one: a number (`5000`, `1 MiB`),
/// `true`/`false`, or a code span or quoted string (`` `server` ``, `"X-Header"`); `None` for prose.
fn literal(doc: &str) -> Option<String> {
    for quote in ['`', '"'] {
        if let Some(inner) = doc.strip_prefix(quote).and_then(|d| d.strip_suffix(quote)) {
            return (!inner.contains(quote)).then(|| inner.to_owned());
        }
    }
    if let Some(mib) = doc.strip_suffix(" MiB") {
        return Some((mib.parse::<u64>().ok()? * 1024 * 1024).to_string());
    }
    let first = doc.split_whitespace().next()?;
    (first.parse::<f64>().is_ok() || first == "true" || first == "false").then(|| first.to_owned())
}

#[test]
fn every_configuration_key_is_documented_and_every_documented_key_exists() {
    let documented = documented();
    let expected = [
        "server",
        "auth",
        "auth.grafana_hmac",
        "journal",
        "targets",
        "rules",
        "coalesce",
        "guard",
        "executor.ansible-runner",
        "executor.awx",
        "retry",
        "log",
        "lifecycle",
        "panic",
    ];
    let sections: BTreeSet<&str> = documented.keys().map(String::as_str).collect();
    assert_eq!(sections, expected.into_iter().collect());
    for section in expected {
        let in_docs: BTreeSet<String> = documented[section]
            .keys()
            .filter(|k| k.as_str() != "kind")
            .cloned()
            .collect();
        let code = fields(section);
        let missing: Vec<_> = code.difference(&in_docs).collect();
        assert!(
            missing.is_empty(),
            "[{section}]: not documented: {missing:?}"
        );
        // The prose of an item may name the keys of its inline tables too.
        let mut known = code.clone();
        if section == "auth" {
            known.extend(fields("auth.grafana_hmac"));
        }
        let unknown: Vec<_> = in_docs.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "[{section}]: documented, not in the code: {unknown:?}"
        );
    }
}

#[test]
fn the_documented_defaults_are_the_codes() {
    let mut compared = 0;
    for (section, keys) in documented() {
        let values = values(&section);
        for (key, doc) in keys {
            let Some(want) = doc.as_deref().and_then(literal) else {
                continue;
            };
            let got = match values.get(&key) {
                Some(toml::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => {
                    panic!("[{section}] {key}: documented default {want}, no value in the code")
                }
            };
            assert_eq!(got, want, "[{section}] {key}: docs/relay.md says {doc:?}");
            compared += 1;
        }
    }
    // The page states about thirty defaults; a parser that finds few of them proves nothing.
    assert!(
        compared >= 25,
        "only {compared} documented defaults were read"
    );
}

//! The modules' DOCUMENTATION (plugins/modules/*.py and the doc fragment they share) against what the binaries accept: the same
//! option names as the argument tables ([`SERVER_OPTIONS`], [`INFO_OPTIONS`]), each documented
//! default is the one the parser applies, each documented type is the one it reads, and each
//! documented choice is accepted while other values are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use autoheal_module::args::{
    state_name, InfoArgs, ServerArgs, State, INFO_OPTIONS, SERVER_OPTIONS,
};
use autoheal_module::reload::ReloadMethod;
use haproxy_cfg::{Desired, SetBy};
use serde_json::{json, Value};

/// One documented option.
#[derive(Debug, Default)]
struct Doc {
    kind: String,
    default: Option<String>,
    choices: Vec<String>,
}

/// The options of a module's DOCUMENTATION, with those of the doc fragment it extends.
fn documented(module: &str) -> BTreeMap<String, Doc> {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../plugins");
    let text = std::fs::read_to_string(plugins.join(format!("modules/{module}.py"))).unwrap();
    let mut options = options_of(&text);
    assert!(
        text.contains("extends_documentation_fragment:\n  - autoheal.haproxy.haproxy\n"),
        "{module} does not extend the shared fragment"
    );
    let fragment = std::fs::read_to_string(plugins.join("doc_fragments/haproxy.py")).unwrap();
    for (name, doc) in options_of(&fragment) {
        assert!(
            options.insert(name.clone(), doc).is_none(),
            "{module} documents {name}, which the fragment documents"
        );
    }
    options
}

/// The `options:` of a DOCUMENTATION, read line by line (two-space option names, their `type`,
/// `default` and `choices` four spaces in).
fn options_of(text: &str) -> BTreeMap<String, Doc> {
    let start = text.find("\noptions:\n").unwrap() + "\noptions:\n".len();
    let mut options = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text[start..].lines() {
        if !line.starts_with(' ') {
            break;
        }
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if !name.starts_with(' ') {
                current = Some(name.to_owned());
                options.insert(name.to_owned(), Doc::default());
                continue;
            }
        }
        let (Some(name), Some(field)) = (&current, line.strip_prefix("    ")) else {
            continue;
        };
        let doc = options.get_mut(name).unwrap();
        if let Some(kind) = field.strip_prefix("type: ") {
            doc.kind = kind.to_owned();
        } else if let Some(default) = field.strip_prefix("default: ") {
            doc.default = Some(default.to_owned());
        } else if let Some(choices) = field.strip_prefix("choices: [") {
            doc.choices = choices
                .trim_end_matches(']')
                .split(", ")
                .map(str::to_owned)
                .collect();
        }
    }
    options
}

fn server(args: &Value) -> Result<ServerArgs, String> {
    ServerArgs::parse(&args.to_string(), None).map_err(|e| e.to_string())
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        s.to_string()
    }
}

/// What `autoheal.haproxy.server` does with each option it is not given, as the docs spell it.
fn server_defaults() -> BTreeMap<&'static str, String> {
    let plain = server(&json!({"server": "web1"})).unwrap();
    let request = &plain.changes[0].request;
    let state = match &request.desired {
        Desired::Enabled => state_name(State::Enabled),
        Desired::Drain => state_name(State::Drain),
        Desired::Disabled => state_name(State::Disabled),
        Desired::Absent => state_name(State::Absent),
        Desired::Weight(_) => unreachable!("no weight was given"),
    };
    let reload = |method: &str| {
        server(&json!({"server": "web1", "socket": "/s", "reload": method}))
            .unwrap()
            .reload
    };
    let master_socket = match reload("master_cli") {
        Some(ReloadMethod::MasterCli(path)) => path.display().to_string(),
        other => panic!("{other:?}"),
    };
    let pidfile = match reload("signal") {
        Some(ReloadMethod::Signal(path)) => path.display().to_string(),
        other => panic!("{other:?}"),
    };
    let service = match reload("systemd") {
        Some(ReloadMethod::Systemd(service)) => service,
        other => panic!("{other:?}"),
    };
    BTreeMap::from([
        ("path", plain.path.display().to_string()),
        ("all_matches", request.all_matches.to_string()),
        ("state", state.to_owned()),
        ("socket_timeout", seconds(plain.socket_timeout)),
        ("min_active", plain.min_active.to_string()),
        ("backup", plain.backup.to_string()),
        ("lock_timeout", seconds(plain.lock_timeout)),
        (
            "reload",
            if plain.reload.is_none() { "none" } else { "?" }.to_owned(),
        ),
        ("master_socket", master_socket),
        ("pidfile", pidfile),
        ("service", service),
        ("reload_timeout", seconds(plain.reload_timeout)),
        ("require_healthy", plain.require_healthy.to_string()),
        (
            "set_by",
            match plain.set_by {
                SetBy::Autoheal => "autoheal",
                SetBy::Operator => "operator",
            }
            .to_owned(),
        ),
    ])
}

/// A value of a documented type, and one no option of that type takes.
fn samples(kind: &str) -> Option<(Value, Value)> {
    Some(match kind {
        "str" | "path" => (json!("x1"), json!({"not": "a string"})),
        "bool" => (json!(true), json!("perhaps")),
        "int" => (json!(2), json!(1.5)),
        "float" => (json!(1.5), json!("soon")),
        // `changes` (a list of dicts) and `weight` (raw) have tests of their own.
        _ => return None,
    })
}

#[test]
fn server_options_are_the_argument_table() {
    let docs: BTreeSet<String> = documented("server").into_keys().collect();
    let table: BTreeSet<String> = SERVER_OPTIONS.iter().map(|o| (*o).to_owned()).collect();
    assert_eq!(docs, table);
}

#[test]
fn server_info_options_are_the_argument_table() {
    let docs: BTreeSet<String> = documented("server_info").into_keys().collect();
    let table: BTreeSet<String> = INFO_OPTIONS.iter().map(|o| (*o).to_owned()).collect();
    assert_eq!(docs, table);
}

#[test]
fn server_defaults_are_the_documented_ones() {
    let applied = server_defaults();
    for (name, doc) in documented("server") {
        match (&doc.default, applied.get(name.as_str())) {
            (Some(documented), Some(applied)) => assert_eq!(applied, documented, "{name}"),
            (None, Some(applied)) => panic!("{name}: applies {applied}, documents no default"),
            (Some(documented), None) => panic!("{name}: documents {documented}, not checked"),
            (None, None) => {}
        }
    }
}

#[test]
fn server_info_defaults_are_the_documented_ones() {
    let plain = InfoArgs::parse("{}").unwrap();
    let applied = BTreeMap::from([
        ("path", plain.path.display().to_string()),
        ("socket_timeout", seconds(plain.socket_timeout)),
    ]);
    for (name, doc) in documented("server_info") {
        assert_eq!(
            doc.default.as_deref(),
            applied.get(name.as_str()).map(String::as_str),
            "{name}"
        );
    }
}

#[test]
fn server_options_take_their_documented_types_and_choices() {
    // The companions an option needs to be accepted at all.
    let base = json!({"server": "web1", "socket": "/s", "validate": "true %s"});
    for (name, doc) in documented("server") {
        let with = |value: Value| {
            let mut args = base.clone();
            if name == "server" {
                args.as_object_mut().unwrap().remove("server");
                args["server"] = value;
            } else {
                args[name.as_str()] = value;
            }
            server(&args)
        };
        for choice in &doc.choices {
            assert!(with(json!(choice)).is_ok(), "{name}={choice}");
        }
        if !doc.choices.is_empty() {
            let err = with(json!("no-such-choice")).unwrap_err();
            assert!(err.contains(&format!("`{name}`")), "{name}: {err}");
            continue;
        }
        let Some((good, bad)) = samples(&doc.kind) else {
            continue;
        };
        // A checksum is a sha256; a validate command needs its %s.
        let good = match name.as_str() {
            "checksum" => json!("0".repeat(64)),
            "validate" => json!("true %s"),
            "address" => {
                let mut args = base.clone();
                args.as_object_mut().unwrap().remove("server");
                args["address"] = json!("10.0.0.1");
                assert!(server(&args).is_ok(), "address");
                continue;
            }
            _ => good,
        };
        assert!(with(good.clone()).is_ok(), "{name}: {good} ({})", doc.kind);
        let err = with(bad.clone()).unwrap_err();
        assert!(err.contains(&format!("`{name}`")), "{name}: {bad}: {err}");
    }
}

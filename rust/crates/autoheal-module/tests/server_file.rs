//! `autoheal-server` and `autoheal-server-info`: file safety, concurrency, arguments, info.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::thread;

use common::{config_weight, haproxy_accepts, server_line, server_words, sha256_hex, Lab};
use serde_json::{json, Value};

const WEB: [(&str, &str); 3] = [("web1", "weight 10"), ("web2", ""), ("web3", "")];

#[test]
fn a_failed_validation_leaves_the_file_byte_identical() {
    let lab = Lab::new(&WEB, "");
    let original = lab.config();
    let (result, code) = lab.server(json!({
        "server": "web1", "state": "drain", "backup": true,
        "validate": "sh -c 'echo config says no >&2; exit 2' %s",
    }));
    assert_eq!(code, 1, "{result}");
    assert_eq!(result["failed"], true);
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.contains("config says no"), "{msg}");
    assert_eq!(lab.config(), original);
    assert_eq!(
        lab.etc_entries(),
        ["haproxy.cfg"],
        "no temp or backup file left"
    );
}

#[test]
fn a_config_haproxy_rejects_is_not_written() {
    let lab = Lab::new(&WEB, "");
    // The engine leaves unknown keywords alone; haproxy -c (the default validate) rejects them.
    let broken = lab.config_text().replace(
        "    default_backend app\n",
        "    default_backend app\n    no-such-keyword here\n",
    );
    fs::write(&lab.cfg, &broken).unwrap();
    let (result, code) = lab.server(json!({"server": "web1", "state": "drain"}));
    assert_eq!(code, 1, "{result}");
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.contains("validation failed") && msg.contains("no-such-keyword"),
        "{msg}"
    );
    assert_eq!(lab.config_text(), broken);
    assert_eq!(lab.etc_entries(), ["haproxy.cfg"]);
    // Validation can be switched off with an empty command.
    let (result, code) = lab.server(json!({"server": "web1", "state": "drain", "validate": ""}));
    assert_eq!((code, &result["changed"]), (0, &json!(true)), "{result}");
}

#[test]
fn a_checksum_mismatch_is_refused() {
    let lab = Lab::new(&WEB, "");
    let original = lab.config();
    let stale = "0".repeat(64);
    let (result, code) = lab.server(json!({"server": "web1", "state": "drain", "checksum": stale}));
    assert_eq!(code, 1, "{result}");
    assert!(
        result["msg"]
            .as_str()
            .unwrap()
            .contains("changed since it was read"),
        "{result}"
    );
    assert_eq!(lab.config(), original);

    // The checksum server_info reports is the one to pass.
    let (info, code) = lab.run(
        env!("CARGO_BIN_EXE_autoheal-server-info"),
        &json!({"path": lab.cfg}),
    );
    assert_eq!(code, 0, "{info}");
    let (result, code) = lab
        .server(json!({"server": "web1", "state": "drain", "checksum": info["checksum"].clone()}));
    assert_eq!((code, &result["changed"]), (0, &json!(true)), "{result}");
    assert_eq!(result["checksum_before"], info["checksum"]);
}

#[test]
fn checksums_are_the_files_sha256_before_and_after_in_every_outcome() {
    let lab = Lab::new(&WEB, "");
    let original = sha256_hex(&lab.config());
    let checksums = |result: &Value| {
        (
            result["checksum_before"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            result["checksum_after"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    let drain = json!({"server": "web1", "state": "drain", "validate": ""});
    let (predicted, code) = lab.server(json!({"server": "web1", "state": "drain",
                                              "validate": "", "_ansible_check_mode": true}));
    assert_eq!(code, 0, "{predicted}");
    let (done, code) = lab.server(drain.clone());
    assert_eq!(code, 0, "{done}");
    let drained = sha256_hex(&lab.config());
    assert_ne!(drained, original);
    assert_eq!(
        checksums(&predicted),
        (original.clone(), drained.clone()),
        "check mode"
    );
    assert_eq!(checksums(&done), (original, drained.clone()), "the change");

    let (again, code) = lab.server(drain);
    assert_eq!((code, &again["changed"]), (0, &json!(false)), "{again}");
    assert_eq!(
        checksums(&again),
        (drained.clone(), drained.clone()),
        "no change"
    );

    // Nothing written when the guard refuses: both are the file's.
    let (refused, code) = lab.server(json!({"server": "web2", "state": "drain",
                                            "validate": "", "min_active": 3}));
    assert_eq!(
        (code, &refused["guard"]),
        (1, &json!("blocked")),
        "{refused}"
    );
    assert_eq!(
        checksums(&refused),
        (drained.clone(), drained),
        "guard refused"
    );
}

#[test]
fn owner_and_mode_are_kept_and_the_backup_holds_the_old_file() {
    let lab = Lab::new(&WEB, "");
    let original = lab.config();
    fs::set_permissions(&lab.cfg, fs::Permissions::from_mode(0o640)).unwrap();
    // As root (CI), hand the file to nobody; otherwise keep our own ids and test the mode.
    let am_root = fs::metadata("/proc/self").unwrap().uid() == 0;
    if am_root {
        std::os::unix::fs::chown(&lab.cfg, Some(65534), Some(65534)).unwrap();
    }
    let before = fs::metadata(&lab.cfg).unwrap();

    let (result, code) = lab.server(json!({"server": "web1", "state": "drain", "backup": true}));
    assert_eq!(code, 0, "{result}");
    let after = fs::metadata(&lab.cfg).unwrap();
    assert_ne!(before.ino(), after.ino(), "replaced by rename");
    assert_eq!(after.mode() & 0o7777, 0o640);
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    if am_root {
        assert_eq!(after.uid(), 65534);
    }

    let backup = result["backup_file"].as_str().unwrap();
    let pattern =
        regex::Regex::new(r"/haproxy\.cfg\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$").unwrap();
    assert!(pattern.is_match(backup), "{backup}");
    assert_eq!(fs::read(backup).unwrap(), original);
    assert_eq!(lab.etc_entries().len(), 2, "{:?}", lab.etc_entries());

    // No change, no backup.
    let (again, _) = lab.server(json!({"server": "web1", "state": "drain", "backup": true}));
    assert_eq!(again["backup_file"], Value::Null);
    assert_eq!(lab.etc_entries().len(), 2);
}

#[test]
fn twenty_concurrent_runs_on_one_file_all_land() {
    let names: Vec<String> = (1..=24).map(|i| format!("web{i}")).collect();
    let specs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "weight 10")).collect();
    let mut lab = Lab::new(&specs, "");
    lab.start();
    let requests: Vec<(String, Value)> = (1..=20)
        .map(|i| {
            let state = match i % 4 {
                0 => json!({"state": "drain"}),
                1 => json!({"state": "disabled"}),
                2 => json!({"weight": 4}),
                _ => json!({"state": "absent"}),
            };
            (format!("web{i}"), state)
        })
        .collect();
    let results: Vec<(Value, i32)> = thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .map(|(name, state)| {
                let lab = &lab;
                let mut args = state.clone();
                args["server"] = json!(name);
                scope.spawn(move || lab.server(args))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (result, code) in &results {
        assert_eq!((code, &result["changed"]), (&0, &json!(true)), "{result}");
    }
    assert!(haproxy_accepts(&lab.cfg));
    let text = lab.config_text();
    let live = lab.servers();
    for (name, state) in &requests {
        match (
            state.get("state").and_then(Value::as_str),
            state.get("weight"),
        ) {
            (Some("drain"), _) => {
                assert_eq!(config_weight(&text, name), 0, "{name}");
                assert!(live[name].drained(), "{name} {:?}", live[name]);
            }
            (Some("disabled"), _) => {
                assert!(
                    server_words(&text, name).contains(&"disabled".into()),
                    "{name}"
                );
                assert!(live[name].maint(), "{name}");
            }
            (Some("absent"), _) => {
                assert!(server_line(&text, name).is_none(), "{name}");
                assert!(live[name].maint(), "{name}");
            }
            (_, Some(_)) => {
                assert_eq!(config_weight(&text, name), 4, "{name}");
                assert!(live[name].ready_with(4), "{name}");
            }
            other => panic!("unexpected request {other:?}"),
        }
    }
    for untouched in ["web21", "web22", "web23", "web24"] {
        assert!(live[untouched].ready_with(10), "{untouched}");
        assert_eq!(config_weight(&text, untouched), 10);
    }
    assert_eq!(lab.etc_entries(), ["haproxy.cfg"]);
}

#[test]
fn bad_arguments_and_unknown_servers_fail_cleanly() {
    let lab = Lab::new(&WEB, "");
    let original = lab.config();
    let cases = [
        (
            json!({"server": "web1", "sate": "drain", "colour": 1}),
            "colour, sate",
        ),
        (json!({"server": "web1", "state": "gone"}), "option `state`"),
        (json!({"server": "web1", "weight": 300}), "option `weight`"),
        (
            json!({"server": "web1", "address": "127.0.0.1:1"}),
            "mutually exclusive",
        ),
        (
            json!({"server": "nope", "state": "drain"}),
            "no server matches",
        ),
        (
            json!({"server": "web1", "backend": "nope", "state": "drain"}),
            "nope",
        ),
        (
            json!({"server": "web1", "lock_timeout": -1}),
            "lock_timeout",
        ),
    ];
    for (args, expected) in cases {
        let (result, code) = lab.server(args.clone());
        assert_eq!(code, 1, "{args} -> {result}");
        assert_eq!(result["failed"], true);
        let msg = result["msg"].as_str().unwrap();
        assert!(msg.contains(expected), "{args}: {msg}");
        assert_eq!(lab.config(), original);
    }
    let missing = lab.root.join("etc/missing.cfg");
    let (result, code) = lab.server(json!({"path": missing, "server": "web1"}));
    assert_eq!(code, 1);
    assert!(
        result["msg"].as_str().unwrap().contains("missing.cfg"),
        "{result}"
    );
    assert_eq!(lab.etc_entries(), ["haproxy.cfg"]);
}

#[test]
fn server_info_lists_file_and_live_state_read_only() {
    let mut lab = Lab::new(&WEB, "");
    lab.start();
    let (done, code) = lab.server(json!({"server": "web1", "state": "drain"}));
    assert_eq!(code, 0, "{done}");
    let file = lab.config();
    let info_bin = env!("CARGO_BIN_EXE_autoheal-server-info");
    let args = json!({"path": lab.cfg, "socket": lab.admin, "backend": "app"});
    let (info, code) = lab.run(info_bin, &args);
    assert_eq!(code, 0, "{info}");
    assert_eq!(info["changed"], false);
    let backends = info["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 1);
    assert_eq!(backends[0]["name"], "app");
    let servers = backends[0]["servers"].as_array().unwrap();
    let names: Vec<&str> = servers
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web1", "web2", "web3"]);
    let web1 = &servers[0];
    assert_eq!(web1["config"]["weight"], 0);
    assert_eq!(web1["config"]["original_weight"], 10);
    assert_eq!(web1["config"]["managed"], "drain");
    assert_eq!(web1["live"]["admin"], "drain");
    assert_eq!(web1["address"], format!("127.0.0.1:{}", lab.ports["web1"]));
    let line = web1["line"].as_u64().unwrap() as usize;
    let text = lab.config_text();
    assert!(
        text.lines().nth(line - 1).unwrap().contains("web1"),
        "line {line}"
    );
    assert_eq!(servers[1]["live"]["admin"], "ready");
    assert_eq!(servers[1]["live"]["active"], true);

    let mut check = args.clone();
    check["_ansible_check_mode"] = json!(true);
    let (checked, code) = lab.run(info_bin, &check);
    assert_eq!(code, 0);
    assert_eq!(checked, info, "check mode gives the same result");
    assert_eq!(lab.config(), file);

    let (without_socket, _) = lab.run(info_bin, &json!({"path": lab.cfg}));
    assert_eq!(
        without_socket["backends"][0]["servers"][0]["live"],
        Value::Null
    );
    let (bad, code) = lab.run(info_bin, &json!({"path": lab.cfg, "state": "drain"}));
    assert_eq!(code, 1);
    assert!(bad["msg"].as_str().unwrap().contains("state"), "{bad}");
}

#[test]
fn diff_mode_returns_the_file_before_and_after() {
    let lab = Lab::new(&WEB, "");
    let original = lab.config_text();
    let (result, code) = lab.server(json!({
        "server": "web1", "state": "drain", "_ansible_diff": true, "_ansible_check_mode": true,
    }));
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["diff"]["before"], original.as_str());
    let after = result["diff"]["after"].as_str().unwrap();
    assert_eq!(config_weight(after, "web1"), 0);
    assert_eq!(lab.config_text(), original);
    let (plain, _) = lab.server(json!({"server": "web1", "state": "drain"}));
    assert!(plain.get("diff").is_none(), "no diff without --diff");
    assert_eq!(
        lab.config_text(),
        after,
        "check mode predicted the real file"
    );
}

#[test]
fn haproxy_not_answering_changes_nothing_and_says_so() {
    let lab = Lab::new(&WEB, "");
    let original = lab.config();
    let gone = lab.root.join("run/stopped.sock");
    let (result, code) = lab.server(json!({"server": "web1", "state": "drain", "socket": gone}));
    assert_eq!(code, 1, "{result}");
    assert_eq!(result["haproxy_unreachable"], true, "{result}");
    assert_eq!(result["changed"], false, "{result}");
    assert_eq!(lab.config(), original);
    assert_eq!(lab.etc_entries(), ["haproxy.cfg"]);
    // Any other failure does not carry the flag.
    let (result, code) = lab.server(json!({"server": "nope", "state": "drain"}));
    assert_eq!(code, 1, "{result}");
    assert!(result.get("haproxy_unreachable").is_none(), "{result}");
}

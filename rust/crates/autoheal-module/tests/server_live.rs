//! `autoheal-server` against a real HAProxy 2.6 on loopback: file and live state agree.

mod common;

use std::fs;

use common::{config_weight, haproxy_accepts, server_line, server_words, sha256_hex, Lab, Live};
use serde_json::{json, Value};

const WEB: [(&str, &str); 3] = [("web1", "weight 10"), ("web2", ""), ("web3", "weight 20")];

/// Check mode, real run, check mode, real run: changed, changed, not changed, not changed.
/// Check mode must touch neither the file nor the live state.
fn converge(lab: &Lab, args: Value) -> Value {
    let file_before = lab.config();
    let live_before = lab.admin_view();
    let mut check_args = args.clone();
    check_args["_ansible_check_mode"] = json!(true);

    let (predicted, code) = lab.server(check_args.clone());
    assert_eq!(code, 0, "{predicted}");
    assert_eq!(
        predicted["changed"], true,
        "check mode predicts a change: {predicted}"
    );
    assert_eq!(lab.config(), file_before, "check mode wrote the file");
    assert_eq!(
        lab.admin_view(),
        live_before,
        "check mode changed the live state"
    );

    let (done, code) = lab.server(args.clone());
    assert_eq!(code, 0, "{done}");
    assert_eq!(done["changed"], true, "{done}");
    assert_eq!(done["live_in_sync"], true, "{done}");
    assert_eq!(done["guard"], "passed");
    assert_eq!(
        predicted["checksum_after"], done["checksum_after"],
        "check mode predicted another file"
    );
    assert_eq!(
        predicted["servers"][0]["live_commands"], done["servers"][0]["live_commands"],
        "check mode predicted other live commands"
    );
    assert!(haproxy_accepts(&lab.cfg), "{}", lab.config_text());

    let (again, code) = lab.server(check_args);
    assert_eq!((code, &again["changed"]), (0, &json!(false)), "{again}");
    let (again, code) = lab.server(args);
    assert_eq!((code, &again["changed"]), (0, &json!(false)), "{again}");
    assert_eq!(again["live_in_sync"], true, "{again}");
    done
}

fn live(lab: &Lab, name: &str) -> Live {
    lab.servers()[name]
}

#[test]
fn every_state_agrees_in_file_and_live_and_is_idempotent() {
    let mut lab = Lab::new(&WEB, "");
    lab.start();
    let original = lab.config();

    let drained = converge(&lab, json!({"server": "web1", "state": "drain"}));
    assert_eq!(config_weight(&lab.config_text(), "web1"), 0);
    assert!(live(&lab, "web1").drained(), "{:?}", live(&lab, "web1"));
    assert_eq!(
        drained["servers"][0]["live_commands"],
        json!(["set server app/web1 state drain"])
    );
    assert_eq!(drained["servers"][0]["after"]["config"]["managed"], "drain");
    assert_eq!(drained["servers"][0]["after"]["live"]["admin"], "drain");
    assert_eq!(drained["reload_required"], false);

    converge(&lab, json!({"server": "web1", "state": "enabled"}));
    assert_eq!(lab.config(), original, "enabled restores the exact bytes");
    assert!(
        live(&lab, "web1").ready_with(10),
        "{:?}",
        live(&lab, "web1")
    );

    converge(&lab, json!({"server": "web1", "state": "disabled"}));
    assert!(server_words(&lab.config_text(), "web1").contains(&"disabled".to_owned()));
    assert!(live(&lab, "web1").maint());

    converge(&lab, json!({"server": "web1", "state": "enabled"}));
    assert_eq!(lab.config(), original);
    assert!(live(&lab, "web1").ready_with(10));

    converge(&lab, json!({"server": "web1", "weight": 5}));
    assert_eq!(config_weight(&lab.config_text(), "web1"), 5);
    assert!(live(&lab, "web1").ready_with(5));

    converge(&lab, json!({"server": "web1", "weight": "30%"}));
    assert_eq!(
        config_weight(&lab.config_text(), "web1"),
        3,
        "30% of the original 10"
    );
    assert!(live(&lab, "web1").ready_with(3));

    converge(&lab, json!({"server": "web1", "state": "enabled"}));
    assert_eq!(lab.config(), original);
    assert!(live(&lab, "web1").ready_with(10));

    let absent = converge(&lab, json!({"server": "web1", "state": "absent"}));
    let text = lab.config_text();
    assert!(server_line(&text, "web1").is_none(), "{text}");
    assert!(
        text.contains("server web1 127.0.0.1"),
        "kept as a comment: {text}"
    );
    assert_eq!(absent["reload_required"], true);
    assert!(
        live(&lab, "web1").maint(),
        "absent is maint until the reload"
    );

    let back = converge(&lab, json!({"server": "web1", "state": "enabled"}));
    assert_eq!(lab.config(), original);
    assert!(live(&lab, "web1").ready_with(10));
    assert_eq!(back["reload_required"], true, "{back}");

    // The other servers were never touched.
    let view = lab.servers();
    assert!(
        view["web2"].ready_with(1) && view["web3"].ready_with(20),
        "{view:?}"
    );
}

#[test]
fn the_state_survives_a_reload() {
    let mut lab = Lab::new(&WEB, "");
    lab.start();
    let original = lab.config();
    converge(&lab, json!({"server": "web1", "state": "drain"}));
    converge(&lab, json!({"server": "web2", "state": "disabled"}));
    converge(&lab, json!({"server": "web3", "weight": 7}));

    lab.reload();
    let view = lab.servers();
    assert!(view["web1"].drained(), "{view:?}");
    assert!(view["web2"].maint(), "{view:?}");
    assert!(view["web3"].ready_with(7), "{view:?}");
    // After the reload the live state comes from the file: nothing left to do.
    for args in [
        json!({"server": "web1", "state": "drain"}),
        json!({"server": "web2", "state": "disabled"}),
        json!({"server": "web3", "weight": 7}),
    ] {
        let (again, code) = lab.server(args);
        assert_eq!((code, &again["changed"]), (0, &json!(false)), "{again}");
        assert_eq!(again["live_in_sync"], true, "{again}");
    }

    for name in ["web1", "web2", "web3"] {
        converge(&lab, json!({"server": name, "state": "enabled"}));
    }
    assert_eq!(lab.config(), original);
    lab.reload();
    let view = lab.servers();
    assert!(
        view["web1"].ready_with(10) && view["web2"].ready_with(1) && view["web3"].ready_with(20),
        "{view:?}"
    );
}

#[test]
fn absent_takes_the_server_out_at_reload_and_enabled_brings_it_back() {
    let mut lab = Lab::new(&WEB, "");
    lab.start();
    let original = lab.config();
    converge(&lab, json!({"server": "web2", "state": "absent"}));
    lab.reload();
    assert!(!lab.servers().contains_key("web2"), "{:?}", lab.servers());

    // Absent in the file and in the running HAProxy: in line, nothing to do.
    let (again, code) = lab.server(json!({"server": "web2", "state": "absent"}));
    assert_eq!((code, &again["changed"]), (0, &json!(false)), "{again}");
    assert_eq!(again["live_in_sync"], true, "{again}");
    assert_eq!(again["reload_required"], false, "{again}");
    assert_eq!(
        again["servers"][0]["after"]["live"],
        json!({"present": false})
    );

    // Back in the file; HAProxy learns of it at the next reload.
    let (back, code) = lab.server(json!({"server": "web2", "state": "enabled"}));
    assert_eq!((code, &back["changed"]), (0, &json!(true)), "{back}");
    assert_eq!(back["reload_required"], true, "{back}");
    assert_eq!(lab.config(), original);
    lab.reload();
    assert!(lab.servers()["web2"].ready_with(1));
    let (again, code) = lab.server(json!({"server": "web2", "state": "enabled"}));
    assert_eq!((code, &again["changed"]), (0, &json!(false)), "{again}");
    assert_eq!(again["reload_required"], false, "{again}");
}

#[test]
fn min_active_refuses_and_changes_nothing() {
    let mut lab = Lab::new(&[("web1", ""), ("web2", "")], "");
    lab.start();
    let file = lab.config();
    let live = lab.admin_view();

    let (refused, code) = lab.server(json!({"server": "web1", "state": "drain", "min_active": 2}));
    assert_eq!(code, 1, "{refused}");
    assert_eq!(refused["failed"], true);
    assert_eq!(refused["guard"], "blocked");
    assert_eq!(refused["changed"], false);
    assert!(
        refused["msg"].as_str().unwrap().contains("min_active=2"),
        "{refused}"
    );
    assert_eq!(lab.config(), file);
    assert_eq!(lab.admin_view(), live);

    // web2 drained live only (say by hand): web1 is the last active server.
    assert_eq!(lab.command("set server app/web2 state drain").trim(), "");
    let live = lab.admin_view();
    for state in ["drain", "disabled", "absent"] {
        let (refused, code) = lab.server(json!({"server": "web1", "state": state}));
        assert_eq!(
            (code, &refused["guard"]),
            (1, &json!("blocked")),
            "{refused}"
        );
        assert_eq!(lab.config(), file);
        assert_eq!(lab.admin_view(), live);
    }
    // Putting servers back is never blocked, nor is a lower non-zero weight.
    let (lower, code) = lab.server(json!({"server": "web1", "weight": 1}));
    assert_eq!((code, &lower["guard"]), (0, &json!("passed")), "{lower}");
    let (ok, code) = lab.server(json!({"server": "web1", "state": "drain", "min_active": 0}));
    assert_eq!((code, &ok["changed"]), (0, &json!(true)), "{ok}");
}

#[test]
fn a_refused_live_command_puts_the_file_back_and_fails_the_task() {
    // With a static algorithm HAProxy refuses `set weight` other than 0% and 100%.
    let mut lab = Lab::new(
        &[("web1", "weight 10"), ("web2", "")],
        "    balance static-rr\n",
    );
    lab.start();
    let file = lab.config();
    let (result, code) = lab.server(json!({"server": "web1", "weight": 5}));
    assert_eq!(code, 1, "{result}");
    assert_eq!(result["failed"], true);
    assert_eq!(
        result["changed"], false,
        "nothing is left changed: {result}"
    );
    assert_eq!(result["live_in_sync"], true);
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.contains("static LB algorithm")
            && msg.contains("file was put back")
            && msg.contains("HAProxy refused it"),
        "{msg}"
    );
    assert_eq!(lab.config(), file, "the file was not put back");
    assert!(lab.servers()["web1"].ready_with(10));
}

#[test]
fn what_went_live_before_a_refused_command_is_taken_back_with_the_file() {
    let mut lab = Lab::new(
        &[("web1", "weight 10"), ("web2", "weight 10"), ("web3", "")],
        "    balance static-rr\n",
    );
    lab.start();
    let (drained, code) =
        lab.server(json!({"server": "web1", "state": "drain", "set_by": "autoheal"}));
    assert_eq!(code, 0, "{drained}");
    let file = lab.config();
    // web1's restore goes live; then HAProxy refuses web2's weight (static-rr).
    let (result, code) = lab.server(json!({
        "changes": [{"server": "web1"}, {"server": "web2", "weight": 5}], "set_by": "autoheal"
    }));
    assert_eq!(code, 1, "{result}");
    assert_eq!(
        (&result["changed"], &result["live_in_sync"]),
        (&json!(false), &json!(true)),
        "{result}"
    );
    assert!(
        result["msg"].as_str().unwrap().contains("taken back"),
        "{result}"
    );
    assert_eq!(lab.config(), file, "the file was not put back");
    let servers = lab.servers();
    assert!(
        servers["web1"].drained(),
        "web1's restore was not taken back"
    );
    assert!(servers["web2"].ready_with(10));
}

#[test]
fn a_drain_goes_live_before_the_write_and_a_failed_write_takes_it_back() {
    let mut lab = Lab::new(&WEB, "");
    lab.start();
    let file = lab.config();
    // The validate command sees the candidate file after the drain is already live.
    let probe = lab.root.join("live-at-validate");
    let validate = format!(
        "python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); \
         s.sendall(b\"show servers state app\\n\"); open(sys.argv[2], \"wb\").write(s.makefile(\"rb\").read()); \
         sys.exit(3)' {} {} %s",
        lab.admin.display(),
        probe.display()
    );
    let (result, code) =
        lab.server(json!({"server": "web1", "state": "drain", "validate": validate}));
    assert_eq!(code, 1, "{result}");
    assert_eq!(result["failed"], true);
    assert_eq!(result["changed"], false, "{result}");
    assert_eq!(result["live_in_sync"], true);
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.contains("persisting the change failed")
            && msg.contains("validation failed")
            && msg.contains("taken back"),
        "{msg}"
    );
    assert_eq!(result["checksum_before"], sha256_hex(&file));
    assert_eq!(result["checksum_after"], result["checksum_before"]);
    assert_eq!(lab.config(), file, "the file keeps the old state");
    assert!(
        live(&lab, "web1").ready_with(10),
        "the live drain was not taken back"
    );
    let seen = fs::read_to_string(&probe).unwrap();
    let web1 = seen
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some("web1"))
        .unwrap_or_else(|| panic!("{seen}"));
    // srv_admin_state (7th field) has the drain bit (0x08) while the file is being validated.
    let admin: u32 = web1.split_whitespace().nth(6).unwrap().parse().unwrap();
    assert_ne!(admin & 0x08, 0, "not drained live before the write: {web1}");

    // Nothing is left that reads as an operator's: autoheal's retry drains it, file and live.
    let (retried, code) =
        lab.server(json!({"server": "web1", "state": "drain", "set_by": "autoheal"}));
    assert_eq!((code, &retried["changed"]), (0, &json!(true)), "{retried}");
    assert_eq!(retried["live_in_sync"], true);
    assert_eq!(
        retried["servers"][0]["live_commands"],
        json!(["set server app/web1 state drain"])
    );
    assert_eq!(config_weight(&lab.config_text(), "web1"), 0);
}

#[test]
fn a_drain_that_cannot_be_taken_back_is_reported_changed_for_its_server() {
    let mut lab = Lab::new(&WEB, "");
    lab.start();
    // web2 is drained live already: its drain is the file's alone, with no live command.
    lab.command("set server app/web2 state drain");
    let file = lab.config();
    // The drains are live when the validation runs; the validation fails and takes the admin
    // socket away, so web1's drain cannot be taken back.
    let away = lab.root.join("admin.sock.away");
    let validate = format!(
        "python3 -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2]); sys.exit(3)' {} {} %s",
        lab.admin.display(),
        away.display()
    );
    let (result, code) = lab.server(json!({
        "changes": [{"server": "web1", "state": "drain"}, {"server": "web2", "state": "drain"}],
        "validate": validate
    }));
    assert_eq!(code, 1, "{result}");
    assert_eq!(
        (
            &result["failed"],
            &result["changed"],
            &result["live_in_sync"]
        ),
        (&json!(true), &json!(true), &json!(false)),
        "{result}"
    );
    assert!(
        result["msg"]
            .as_str()
            .unwrap()
            .contains("taking it back failed"),
        "{result}"
    );
    assert_eq!(lab.config(), file, "the file keeps the old state");
    let server = |name: &str| {
        result["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["server"] == name)
            .unwrap_or_else(|| panic!("no {name}: {result}"))
            .clone()
    };
    let (web1, web2) = (server("web1"), server("web2"));
    assert_eq!(
        (&web1["changed"], &web1["live_commands"]),
        (&json!(true), &json!(["set server app/web1 state drain"])),
        "web1 is left drained live and says so: {result}"
    );
    assert_eq!(
        web1["after"]["config"], web1["before"]["config"],
        "the file did not change: {result}"
    );
    assert_eq!(
        (&web2["changed"], &web2["live_commands"]),
        (&json!(false), &json!([])),
        "web2 had nothing live to take back: {result}"
    );
    assert_eq!(
        (
            &result["changes"][0]["changed"],
            &result["changes"][1]["changed"]
        ),
        (&json!(true), &json!(false)),
        "per entry as per server: {result}"
    );
    fs::rename(&away, &lab.admin).unwrap();
    assert!(
        live(&lab, "web1").drained(),
        "the drain is live as reported"
    );
}

#[test]
fn a_restore_whose_live_command_fails_after_the_write_puts_the_file_back() {
    let mut lab = Lab::new(&WEB, "");
    lab.start();
    let (drained, code) =
        lab.server(json!({"server": "web1", "state": "drain", "set_by": "autoheal"}));
    assert_eq!(code, 0, "{drained}");
    assert!(live(&lab, "web1").drained());
    let file = lab.config();
    // The validation passes the candidate but takes the admin socket away, so the restore's live
    // command fails after the file has been written.
    let away = lab.root.join("admin.sock.away");
    let validate = format!(
        "python3 -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' {} {} %s",
        lab.admin.display(),
        away.display()
    );
    let (result, code) = lab.server(json!({
        "server": "web1", "state": "enabled", "set_by": "autoheal", "validate": validate, "backup": true
    }));
    assert_eq!(code, 1, "{result}");
    assert_eq!(
        (&result["failed"], &result["changed"]),
        (&json!(true), &json!(false)),
        "{result}"
    );
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.contains("admin socket failed after the file was written")
            && msg.contains("put back")
            && msg.contains("Run again once the socket answers"),
        "{msg}"
    );
    assert_eq!(result["checksum_before"], sha256_hex(&file));
    assert_eq!(result["checksum_after"], result["checksum_before"]);
    assert_eq!(result["backup_file"], Value::Null, "{result}");
    assert_eq!(
        lab.config(),
        file,
        "the file keeps the drain and its marker"
    );
    assert!(
        !lab.etc_entries()
            .iter()
            .any(|name| name.contains('~') || name.contains(".autoheal-tmp")),
        "a backup or a temp file was left: {:?}",
        lab.etc_entries()
    );

    // With the socket back, autoheal's retry finds its own drain and restores it, file and live.
    fs::rename(&away, &lab.admin).unwrap();
    assert!(live(&lab, "web1").drained());
    let (retried, code) =
        lab.server(json!({"server": "web1", "state": "enabled", "set_by": "autoheal"}));
    assert_eq!((code, &retried["changed"]), (0, &json!(true)), "{retried}");
    assert_eq!(retried["servers"][0]["skipped"], false, "{retried}");
    assert_eq!(retried["live_in_sync"], true);
    assert!(live(&lab, "web1").ready_with(10));
}

/// Restores web1 (drained first, by autoheal) with a `validate` command that passes and leaves in
/// the admin socket's place one that, once the module connects to send its live command (the
/// file is written by then), runs `meddle` (Python, with `cfg` the config's path) as "someone
/// else" and never answers. (Its child lets go of the validation's output, which the module reads
/// to the end.) Returns the lab and the restore's result and exit code.
fn restore_while_someone_meddles(meddle: &str) -> (Lab, Value, i32) {
    let mut lab = Lab::new(&WEB, "");
    lab.start();
    let (drained, code) =
        lab.server(json!({"server": "web1", "state": "drain", "set_by": "autoheal"}));
    assert_eq!(code, 0, "{drained}");
    let script = lab.root.join("impostor.py");
    fs::write(
        &script,
        format!(
            "import os, socket, sys, time\n\
             admin, cfg = sys.argv[1], sys.argv[2]\n\
             os.rename(admin, admin + '.away')\n\
             s = socket.socket(socket.AF_UNIX)\n\
             s.bind(admin)\n\
             s.listen(1)\n\
             if os.fork() == 0:\n\
             \x20   os.setsid()\n\
             \x20   devnull = os.open(os.devnull, os.O_RDWR)\n\
             \x20   for fd in (0, 1, 2):\n\
             \x20       os.dup2(devnull, fd)\n\
             \x20   conn, _ = s.accept()\n\
             \x20   {meddle}\n\
             \x20   time.sleep(5)\n\
             \x20   os._exit(0)\n"
        ),
    )
    .unwrap();
    let validate = format!(
        "python3 {} {} {} %s",
        script.display(),
        lab.admin.display(),
        lab.root.join("etc/haproxy.cfg").display()
    );
    let (result, code) = lab.server(json!({
        "server": "web1", "state": "enabled", "set_by": "autoheal", "validate": validate,
        "socket_timeout": 1
    }));
    (lab, result, code)
}

#[test]
fn a_file_someone_else_changed_meanwhile_is_not_put_back() {
    let (lab, result, code) =
        restore_while_someone_meddles("open(cfg, 'a').write('# edited by someone else\\n')");
    assert_eq!(code, 1, "{result}");
    assert_eq!(
        (&result["changed"], &result["live_in_sync"]),
        (&json!(true), &json!(false)),
        "{result}"
    );
    assert!(
        result["msg"]
            .as_str()
            .unwrap()
            .contains("changed by someone else"),
        "{result}"
    );
    let text = lab.config_text();
    assert!(text.ends_with("# edited by someone else\n"), "{text}");
    assert!(
        !text.contains("#autoheal"),
        "the restore's write was undone: {text}"
    );
}

#[test]
fn a_file_that_cannot_be_read_back_is_reported_as_such() {
    let (lab, result, code) = restore_while_someone_meddles("os.remove(cfg); os.mkdir(cfg)");
    assert_eq!(code, 1, "{result}");
    let msg = result["msg"].as_str().unwrap();
    assert!(
        msg.contains("Putting the file back failed")
            && msg.contains("haproxy.cfg")
            && !msg.contains("changed by someone else"),
        "{msg}"
    );
    assert_eq!(result["live_in_sync"], json!(false), "{result}");
    assert!(
        lab.root.join("etc/haproxy.cfg").is_dir(),
        "someone else's directory was left alone"
    );
}

#[test]
fn servers_can_be_chosen_by_address() {
    let mut lab = Lab::new(&WEB, "");
    lab.start();
    let address = format!("127.0.0.1:{}", lab.ports["web3"]);
    let done = converge(&lab, json!({"address": address, "state": "drain"}));
    assert_eq!(done["servers"][0]["server"], "web3");
    assert!(live(&lab, "web3").drained());
    assert_eq!(config_weight(&lab.config_text(), "web3"), 0);
}

#[test]
fn live_drift_is_repaired_without_touching_the_file() {
    let mut lab = Lab::new(&WEB, "");
    lab.start();
    converge(&lab, json!({"server": "web1", "state": "drain"}));
    let file = lab.config();
    // Someone puts web1 back by hand on the runtime API; the file still says drained.
    assert_eq!(lab.command("set server app/web1 state ready").trim(), "");
    assert_eq!(lab.command("set weight app/web1 10").trim(), "");
    assert!(live(&lab, "web1").ready_with(10));

    let (repaired, code) = lab.server(json!({"server": "web1", "state": "drain"}));
    assert_eq!(
        (code, &repaired["changed"]),
        (0, &json!(true)),
        "{repaired}"
    );
    assert_eq!(repaired["checksum_before"], sha256_hex(&lab.config()));
    assert_eq!(repaired["checksum_before"], repaired["checksum_after"]);
    assert_eq!(repaired["backup_file"], Value::Null);
    assert_eq!(
        repaired["servers"][0]["live_commands"],
        json!(["set server app/web1 state drain"])
    );
    assert_eq!(lab.config(), file);
    assert!(live(&lab, "web1").drained());
}

#[test]
fn a_batch_is_applied_as_one_change_and_reported_per_change() {
    let mut lab = Lab::new(
        &[("web1", "weight 10"), ("web2", ""), ("web3", "weight 10")],
        "",
    );
    lab.start();
    let original = lab.config();
    let live = lab.admin_view();
    let batch = json!([
        {"backend": "app", "server": "web1", "state": "drain", "reason": {"alert": "CpuBusy"}},
        {"server": "web3", "weight": "50%"},
        {"server": "web2", "state": "enabled"},
    ]);

    // Check mode: predicted, nothing touched.
    let (check, code) = lab.server(json!({"changes": batch, "_ansible_check_mode": true}));
    assert_eq!((code, &check["changed"]), (0, &json!(true)), "{check}");
    assert_eq!(lab.config(), original);
    assert_eq!(lab.admin_view(), live);

    let (result, code) = lab.server(json!({"changes": batch}));
    assert_eq!((code, &result["changed"]), (0, &json!(true)), "{result}");
    let changes = result["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{result}");
    assert_eq!(changes[0]["server"], "web1");
    assert_eq!(changes[0]["reason"], json!({"alert": "CpuBusy"}));
    assert_eq!(changes[0]["changed"], true);
    assert_eq!(changes[0]["servers"], json!(["app/web1"]));
    assert_eq!(result["servers"][0]["after"]["live"]["admin"], "drain");
    assert_eq!(changes[1]["state"], "weight 50%");
    assert_eq!(changes[2]["changed"], false, "web2 was already in service");
    assert_eq!(result["servers"].as_array().unwrap().len(), 3);
    let text = lab.config_text();
    assert_eq!(config_weight(&text, "web1"), 0);
    assert_eq!(config_weight(&text, "web3"), 5);
    assert!(lab.servers()["web1"].drained());

    // Again: nothing to do, in check mode and for real.
    for check in [true, false] {
        let (again, code) = lab.server(json!({"changes": batch, "_ansible_check_mode": check}));
        assert_eq!((code, &again["changed"]), (0, &json!(false)), "{again}");
    }

    // The guard counts the whole batch: web2 and web3 together would empty the backend.
    let file = lab.config();
    let live = lab.admin_view();
    let (refused, code) = lab.server(json!({"changes": [
        {"server": "web2", "state": "drain"},
        {"server": "web3", "state": "disabled"},
    ]}));
    assert_eq!(
        (code, &refused["guard"]),
        (1, &json!("blocked")),
        "{refused}"
    );
    assert_eq!(refused["changes"].as_array().unwrap().len(), 2);
    assert_eq!(lab.config(), file);
    assert_eq!(lab.admin_view(), live);

    // One bad change (a server twice, a bad weight) and nothing at all is done. (An unknown server
    // is reported, not refused: see server_health.rs.)
    for bad in [
        json!([{"server": "web2", "state": "drain"}, {"server": "web2", "state": "enabled"}]),
        json!([{"server": "web2", "state": "drain"}, {"server": "web1", "weight": 300}]),
    ] {
        let (failed, code) = lab.server(json!({"changes": bad}));
        assert_eq!(code, 1, "{failed}");
        assert!(
            failed["msg"].as_str().unwrap().starts_with("changes[1]: "),
            "{failed}"
        );
        assert_eq!(lab.config(), file);
        assert_eq!(lab.admin_view(), live);
    }

    // Restoring everything in one call gives the original bytes back.
    let (restored, code) = lab.server(json!({"changes": [
        {"server": "web1", "state": "enabled"},
        {"server": "web3", "state": "enabled"},
    ]}));
    assert_eq!(
        (code, &restored["changed"]),
        (0, &json!(true)),
        "{restored}"
    );
    assert_eq!(lab.config(), original);
}

#[test]
fn the_module_reloads_haproxy_itself_and_waits_for_the_new_worker() {
    let mut lab = Lab::new(&[("web1", ""), ("web2", "weight 20")], "");
    lab.start();
    let original = lab.config();
    let master_socket = lab.root.join("run/master.sock");
    let state_file = lab.root.join("run/server-state");
    let first_worker = lab.worker_pid().unwrap();

    // absent needs a reload: through the master CLI, with the runtime state saved first.
    let absent = json!({"server": "web2", "state": "absent", "reload": "master_cli",
                        "master_socket": master_socket, "server_state_file": state_file});
    let (check, code) = lab.server(json!({"_ansible_check_mode": true, "server": "web2",
                                          "state": "absent", "reload": "master_cli",
                                          "master_socket": master_socket}));
    assert_eq!(
        (code, &check["reload_required"]),
        (0, &json!(true)),
        "{check}"
    );
    assert_eq!(check["reloaded"], Value::Null, "check mode never reloads");
    assert_eq!(lab.worker_pid().unwrap(), first_worker);
    let (result, code) = lab.server(absent.clone());
    assert_eq!((code, &result["changed"]), (0, &json!(true)), "{result}");
    assert_eq!(result["reload_required"], false, "{result}");
    assert_eq!(result["reloaded"]["old_pid"].to_string(), first_worker);
    let second_worker = lab.worker_pid().unwrap();
    assert_ne!(second_worker, first_worker);
    assert_eq!(result["reloaded"]["new_pid"].to_string(), second_worker);
    assert!(!lab.servers().contains_key("web2"), "web2 still runs");
    assert_eq!(result["live_in_sync"], true, "{result}");
    let saved = fs::read_to_string(&state_file).unwrap();
    assert!(
        saved.starts_with("1\n") && saved.contains(" web2 "),
        "{saved}"
    );

    // Nothing to do: no reload.
    let (again, code) = lab.server(absent);
    assert_eq!((code, &again["changed"]), (0, &json!(false)), "{again}");
    assert_eq!(again["reloaded"], Value::Null);
    assert_eq!(lab.worker_pid().unwrap(), second_worker);

    // Back from absent: SIGUSR2 to the master named by a pid file.
    let pidfile = lab.write_pidfile();
    let (back, code) = lab.server(
        json!({"server": "web2", "state": "enabled", "reload": "signal", "pidfile": pidfile}),
    );
    assert_eq!((code, &back["changed"]), (0, &json!(true)), "{back}");
    assert_eq!(back["reloaded"]["old_pid"].to_string(), second_worker);
    assert_ne!(lab.worker_pid().unwrap(), second_worker);
    assert!(lab.servers()["web2"].ready_with(20), "{back}");
    assert_eq!(lab.config(), original);

    // A reload that cannot be asked for fails the task; the file keeps its change.
    let (failed, code) = lab.server(
        json!({"server": "web2", "state": "absent", "reload": "signal",
                                           "pidfile": lab.root.join("run/missing.pid")}),
    );
    assert_eq!(code, 1, "{failed}");
    assert!(
        failed["msg"].as_str().unwrap().contains("missing.pid"),
        "{failed}"
    );
    assert_eq!(failed["reload_required"], true, "{failed}");
    assert_ne!(lab.config(), original);
}

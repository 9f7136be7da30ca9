//! `autoheal-server` against a real HAProxy 2.6 on loopback: health-gated restores (`require_healthy`),
//! states an operator set (`set_by`), unknown servers in a `changes` list, and ramped restores.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{config_weight, free_port, switchable_upstream, Lab};
use serde_json::{json, Value};

/// web1's health check goes to an upstream the test can make answer 500 (traffic still goes to its
/// own healthy upstream); web2 has no check at all; web3 starts with `slowstart`.
fn lab() -> (Lab, Arc<AtomicBool>) {
    let healthy = Arc::new(AtomicBool::new(true));
    let check_port = switchable_upstream(Arc::clone(&healthy));
    let web1 = format!("weight 10 port {check_port}");
    let servers = [
        ("web1", web1.as_str()),
        ("web2", "no-check weight 4"),
        ("web3", "weight 20 slowstart 3s"),
    ];
    let mut lab = Lab::new(&servers, "    option httpchk GET /\n");
    lab.start();
    (lab, healthy)
}

fn ok(lab: &Lab, args: Value) -> Value {
    let (result, code) = lab.server(args);
    assert_eq!(code, 0, "{result}");
    result
}

#[test]
fn require_healthy_defers_a_failing_server_and_restores_it_once_its_check_passes() {
    let (lab, healthy) = lab();
    let drained = ok(
        &lab,
        json!({"server": "web1", "state": "drain", "set_by": "autoheal"}),
    );
    assert_eq!(
        drained["set_by"],
        Value::Null,
        "in service before: {drained}"
    );
    assert_eq!(lab.info_server("web1")["set_by"], "autoheal");
    assert_eq!(lab.info_server("web1")["check_status"], "passing");

    healthy.store(false, Ordering::SeqCst);
    lab.wait_for("web1", "down", |live| live.op_state == 0);
    assert_eq!(lab.info_server("web1")["check_status"], "failing");
    let file_before = lab.config();
    let restore = json!({"server": "web1", "state": "enabled", "require_healthy": true,
                         "set_by": "autoheal"});
    for check_mode in [true, false] {
        let mut args = restore.clone();
        args["_ansible_check_mode"] = json!(check_mode);
        let deferred = ok(&lab, args);
        assert_eq!(deferred["changed"], false, "{deferred}");
        assert_eq!(deferred["deferred"], true, "{deferred}");
        assert_eq!(deferred["health_gate"], "deferred");
        assert_eq!(deferred["check_status"], "failing");
        let reason = deferred["deferred_reason"].as_str().unwrap();
        assert!(
            reason.contains("app/web1") && reason.contains("failing"),
            "{reason}"
        );
        assert_eq!(deferred["servers"][0]["live_commands"], json!([]));
    }
    assert_eq!(
        lab.config(),
        file_before,
        "a deferred restore wrote the file"
    );
    assert!(lab.servers()["web1"].drained());

    healthy.store(true, Ordering::SeqCst);
    lab.wait_for("web1", "up while drained", |live| live.op_state == 2);
    let restored = ok(&lab, restore);
    assert_eq!(
        (
            &restored["changed"],
            &restored["deferred"],
            &restored["health_gate"]
        ),
        (&json!(true), &json!(false), &json!("passed")),
        "{restored}"
    );
    assert!(lab.servers()["web1"].ready_with(10));
    assert_eq!(lab.info_server("web1")["set_by"], Value::Null);
}

#[test]
fn a_closed_check_port_fails_the_gate_and_servers_without_a_check_restore_on_the_hold_down() {
    let (lab, _healthy) = lab();
    let drain = json!({"changes": [{"server": "web1", "state": "drain"},
                                   {"server": "web2", "state": "drain"}],
                       "min_active": 0, "set_by": "autoheal"});
    ok(&lab, drain);
    // Nothing listens on web1's check port any more.
    let answer = lab.command(&format!("set server app/web1 check-port {}", free_port()));
    assert!(answer.trim().is_empty(), "{answer}");
    lab.wait_for("web1", "down", |live| live.op_state == 0);

    let restore = ok(
        &lab,
        json!({"changes": [{"server": "web1"}, {"server": "web2"}],
               "require_healthy": true, "set_by": "autoheal"}),
    );
    let items = restore["changes"].as_array().unwrap();
    assert_eq!(items[0]["deferred"], true, "{restore}");
    assert_eq!(items[0]["changed"], false);
    assert_eq!(items[0]["found"], true);
    assert_eq!(items[1]["check_status"], "none");
    assert_eq!(items[1]["health_gate"], "no_check");
    assert_eq!(
        (&items[1]["deferred"], &items[1]["changed"]),
        (&json!(false), &json!(true))
    );
    assert!(lab.servers()["web1"].drained());
    assert!(lab.servers()["web2"].ready_with(4));
    assert_eq!(restore["changed"], true);
}

#[test]
fn a_server_autoheal_put_in_maintenance_is_restorable_under_require_healthy() {
    let (lab, _healthy) = lab();
    ok(
        &lab,
        json!({"server": "web1", "state": "disabled", "set_by": "autoheal"}),
    );
    assert!(lab.servers()["web1"].maint());
    // Maintenance pauses the checks: nothing to wait for, HAProxy re-checks it on the way out.
    assert_eq!(lab.info_server("web1")["check_status"], "unknown");
    let restored = ok(
        &lab,
        json!({"server": "web1", "require_healthy": true, "set_by": "autoheal"}),
    );
    assert_eq!(restored["health_gate"], "checked_on_return", "{restored}");
    assert_eq!(restored["changed"], true);
    assert!(lab.servers()["web1"].ready_with(10));
}

#[test]
fn autoheal_leaves_the_states_an_operator_set_alone() {
    let (lab, _healthy) = lab();
    // By the module (default set_by: operator) and by hand on the socket.
    ok(&lab, json!({"server": "web2", "state": "drain"}));
    let answer = lab.command("set server app/web3 state maint");
    assert!(answer.trim().is_empty(), "{answer}");
    assert_eq!(lab.info_server("web2")["set_by"], "operator");
    assert_eq!(lab.info_server("web3")["set_by"], "operator");
    assert_eq!(lab.info_server("web1")["set_by"], Value::Null);
    let file_before = lab.config();

    let attempt = ok(
        &lab,
        json!({"changes": [{"server": "web2"}, {"server": "web3", "state": "drain"},
                           {"server": "web1", "state": "drain"}],
               "set_by": "autoheal", "min_active": 0}),
    );
    let items = attempt["changes"].as_array().unwrap();
    for item in &items[..2] {
        assert_eq!(
            (&item["skipped"], &item["skip_reason"], &item["changed"]),
            (&json!(true), &json!("operator_state"), &json!(false)),
            "{attempt}"
        );
        assert_eq!(item["set_by"], "operator");
    }
    assert_eq!(items[2]["changed"], true, "the other change is applied");
    assert!(lab.servers()["web3"].maint());
    assert!(lab.servers()["web2"].drained());
    assert!(lab.servers()["web1"].drained());
    let text = lab.config_text();
    assert!(text.contains("#autoheal drain was: server web2"), "{text}");
    assert!(text.contains("#autoheal drain by autoheal was: server web1"));
    assert_ne!(lab.config(), file_before);

    // The operator restores their own server as before.
    let restored = ok(&lab, json!({"server": "web2"}));
    assert_eq!(
        (&restored["changed"], &restored["skipped"]),
        (&json!(true), &json!(false))
    );
    assert!(lab.servers()["web2"].ready_with(4));
}

#[test]
fn an_unknown_server_in_a_list_does_not_block_the_others() {
    let (lab, _healthy) = lab();
    let (result, code) = lab.server(json!({"changes": [
        {"server": "web9", "state": "drain"},
        {"server": "web1", "state": "drain"},
        {"backend": "nope", "server": "web2", "state": "drain"}]}));
    assert_eq!(code, 0, "{result}");
    let items = result["changes"].as_array().unwrap();
    assert_eq!(
        (&items[0]["found"], &items[0]["changed"]),
        (&json!(false), &json!(false))
    );
    assert!(
        items[0]["msg"].as_str().unwrap().contains("web9"),
        "{result}"
    );
    assert_eq!(items[2]["found"], false);
    assert_eq!(
        (&items[1]["found"], &items[1]["changed"]),
        (&json!(true), &json!(true))
    );
    assert!(lab.servers()["web1"].drained());
    let warnings = result["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{result}");
    assert_eq!(config_weight(&lab.config_text(), "web2"), 4);

    // One server asked for alone still fails, and says it was not found.
    let (single, code) = lab.server(json!({"server": "web9", "state": "drain"}));
    assert_eq!((code, &single["found"]), (1, &json!(false)), "{single}");
    // Other engine errors still refuse the whole list.
    let (ambiguous, code) = lab.server(json!({"changes": [
        {"address": "127.0.0.1", "state": "drain"}, {"server": "web3", "state": "drain"}]}));
    assert_eq!(code, 1, "{ambiguous}");
    assert!(lab.servers()["web3"].ready_with(20));
}

#[test]
fn a_ramped_restore_keeps_the_original_weight_until_100_percent() {
    let (lab, _healthy) = lab();
    let original = lab.config();
    ok(
        &lab,
        json!({"server": "web3", "state": "drain", "set_by": "autoheal"}),
    );
    for (step, live_weight) in [("10%", 2), ("50%", 10)] {
        let ramp = ok(
            &lab,
            json!({"server": "web3", "weight": step, "require_healthy": true,
                   "set_by": "autoheal"}),
        );
        assert_eq!(ramp["changed"], true, "{ramp}");
        assert_eq!(ramp["slowstart"], 3000);
        assert_eq!(ramp["health_gate"], "passed");
        let text = lab.config_text();
        assert!(
            text.contains(&format!(
                "#autoheal weight {step} by autoheal was: server web3 127.0.0.1"
            )) && text.contains("weight 20 slowstart 3s"),
            "{text}"
        );
        assert_eq!(ramp["servers"][0]["after"]["config"]["original_weight"], 20);
        assert!(lab.servers()["web3"].ready_with(live_weight));
    }
    let done = ok(
        &lab,
        json!({"server": "web3", "weight": "100%", "require_healthy": true,
               "set_by": "autoheal"}),
    );
    assert_eq!(done["changed"], true, "{done}");
    assert_eq!(lab.config(), original, "100% gives back the exact bytes");
    assert!(lab.servers()["web3"].ready_with(20));
}

//! The engine's weight range check against the weight grammar's shared test vectors
//! (tests/unit/plugins/filter/weight_grammar.json), which the relay, the remediate role's filter
//! and the module's option parser pass too. The engine takes parsed numbers, so the vectors'
//! `weight`/`percent` pairs are what it sees; `refuse` (not a weight at all) never reaches it.

use haproxy_cfg::{plan, Desired, Request, Target, WeightSpec};
use serde_json::Value;

fn cases() -> Value {
    serde_json::from_str(include_str!(
        "../../../../tests/unit/plugins/filter/weight_grammar.json"
    ))
    .unwrap()
}

fn plan_weight(case: &Value) -> Result<String, String> {
    let n = u32::try_from(case["weight"].as_u64().unwrap()).unwrap();
    let spec = if case["percent"].as_bool().unwrap() {
        WeightSpec::Percent(n)
    } else {
        WeightSpec::Absolute(n)
    };
    let request = Request {
        backend: None,
        target: Target::Name("web1".into()),
        all_matches: false,
        desired: Desired::Weight(spec),
    };
    plan(
        "backend be\n  server web1 127.0.0.1:8080 weight 200\n",
        &request,
    )
    .map(|p| p.output)
    .map_err(|e| e.to_string())
}

#[test]
fn weights_the_vectors_accept_are_planned() {
    let cases = cases();
    for kind in ["accept", "accept_loose"] {
        for case in cases[kind].as_array().unwrap() {
            assert!(plan_weight(case).is_ok(), "{kind} {case}");
        }
    }
}

#[test]
fn weights_the_vectors_call_out_of_range_are_refused() {
    for case in cases()["out_of_range"].as_array().unwrap() {
        let err = plan_weight(case).unwrap_err();
        assert!(err.contains("out of range"), "{case}: {err}");
    }
}

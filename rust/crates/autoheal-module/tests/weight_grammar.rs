//! The `weight` option against the weight grammar's shared test vectors
//! (tests/unit/plugins/filter/weight_grammar.json), which the relay and the remediate role's filter
//! pass too.

use autoheal_module::args::ServerArgs;
use haproxy_cfg::{Desired, WeightSpec};
use serde_json::{json, Value};

fn cases() -> Value {
    serde_json::from_str(include_str!(
        "../../../../tests/unit/plugins/filter/weight_grammar.json"
    ))
    .unwrap()
}

fn parse(weight: &Value) -> Result<Desired, String> {
    let args = json!({"server": "web1", "weight": weight}).to_string();
    ServerArgs::parse(&args, None)
        .map(|a| a.changes[0].request.desired.clone())
        .map_err(|e| e.to_string())
}

#[test]
fn accepted_weights_mean_what_the_vectors_say() {
    let cases = cases();
    for kind in ["accept", "accept_loose"] {
        for case in cases[kind].as_array().unwrap() {
            let n = u32::try_from(case["weight"].as_u64().unwrap()).unwrap();
            let spec = if case["percent"].as_bool().unwrap() {
                WeightSpec::Percent(n)
            } else {
                WeightSpec::Absolute(n)
            };
            assert_eq!(
                parse(&case["value"]),
                Ok(Desired::Weight(spec)),
                "{kind} {case}"
            );
        }
    }
}

#[test]
fn other_weights_are_refused_by_name() {
    let cases = cases();
    for case in cases["out_of_range"].as_array().unwrap() {
        let err = parse(&case["value"]).unwrap_err();
        assert!(err.contains("out of range"), "{case}: {err}");
    }
    for value in cases["refuse"].as_array().unwrap() {
        let err = parse(value).unwrap_err();
        assert!(err.starts_with("option `weight`"), "{value}: {err}");
    }
}

//! The decider: alerts + rules -> intents. Pure: no I/O, no clock (the caller passes `now`).

use crate::label::{validate_alert_name, validate_fingerprint};
use crate::model::{Alert, AlertStatus, Decision, DesiredState, Intent, Reason};
use crate::rules::Rule;
use crate::target::{offending_label, target_from_labels, TargetsConfig};

/// Decides what to do for each alert, in order (one decision per alert).
pub fn decide(
    alerts: &[Alert],
    rules: &[Rule],
    targets: &TargetsConfig,
    now_ms: i64,
) -> Vec<Decision> {
    alerts
        .iter()
        .map(|alert| decide_one(alert, rules, targets, now_ms))
        .collect()
}

fn decide_one(alert: &Alert, rules: &[Rule], targets: &TargetsConfig, now_ms: i64) -> Decision {
    let Some(rule) = rules.iter().find(|r| r.matches(alert)) else {
        return Decision::Ignored {
            why: "no rule matches",
        };
    };
    let (state, weight, not_before_ms) = match alert.status {
        AlertStatus::Firing => (rule.action.state(), rule.weight.clone(), now_ms),
        AlertStatus::Resolved if rule.restore => {
            let delay = i64::try_from(rule.restore_delay.as_millis()).unwrap_or(i64::MAX);
            (DesiredState::Enabled, None, now_ms.saturating_add(delay))
        }
        AlertStatus::Resolved => {
            return Decision::Ignored {
                why: "rule does not restore",
            }
        }
    };
    let rejected = |field: &str, error| Decision::Rejected {
        rule: rule.name.clone(),
        field: field.to_owned(),
        error,
    };
    if let Err(e) = validate_alert_name(alert.name()) {
        return rejected("alertname", e);
    }
    if let Err(e) = validate_fingerprint(&alert.fingerprint) {
        return rejected("fingerprint", e);
    }
    let target = match target_from_labels(&alert.labels, targets) {
        Ok(t) => t,
        Err(e) => return rejected(&offending_label(alert, targets, &e), e),
    };
    Decision::Act(Intent {
        target,
        state,
        weight,
        fleet: rule.fleet.clone(),
        rule: rule.name.clone(),
        reason: Reason {
            alert: alert.name().to_owned(),
            fingerprint: alert.fingerprint.clone(),
            status: alert.status,
        },
        not_before_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Source;
    use crate::rules::RuleAction;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn rule(name: &str, eq: &[(&str, &str)], re: &[(&str, &str)], action: RuleAction) -> Rule {
        Rule {
            name: name.into(),
            match_eq: eq.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            match_re: re
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).into(),
                        regex::Regex::new(&format!("^(?:{v})$")).unwrap(),
                    )
                })
                .collect(),
            action,
            weight: (action == RuleAction::Weight).then(|| "50%".to_owned()),
            restore: true,
            restore_delay: Duration::from_secs(30),
            fleet: "edge".into(),
        }
    }

    fn alert(status: AlertStatus, labels: &[(&str, &str)]) -> Alert {
        Alert {
            source: Source::Alertmanager,
            status,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect::<BTreeMap<_, _>>(),
            starts_at: "2026-01-01T00:00:00Z".into(),
            fingerprint: "0123456789abcdef".into(),
        }
    }

    fn targets() -> TargetsConfig {
        TargetsConfig::default()
    }

    #[test]
    fn firing_alert_matching_equality_rule_drains() {
        let rules = [rule("cpu", &[("alertname", "Cpu")], &[], RuleAction::Drain)];
        let a = alert(
            AlertStatus::Firing,
            &[("alertname", "Cpu"), ("server", "s1"), ("backend", "be")],
        );
        let Decision::Act(i) = &decide(&[a], &rules, &targets(), 1000)[0] else {
            panic!()
        };
        assert_eq!(i.state, DesiredState::Drain);
        assert_eq!(i.target.key(), "be/s1");
        assert_eq!(i.fleet, "edge");
        assert_eq!(i.not_before_ms, 1000);
        assert_eq!(i.reason.alert, "Cpu");
    }

    #[test]
    fn resolved_alert_restores_after_delay() {
        let rules = [rule(
            "cpu",
            &[("alertname", "Cpu")],
            &[],
            RuleAction::Disabled,
        )];
        let a = alert(
            AlertStatus::Resolved,
            &[("alertname", "Cpu"), ("server", "s1")],
        );
        let Decision::Act(i) = &decide(&[a], &rules, &targets(), 1000)[0] else {
            panic!()
        };
        assert_eq!(i.state, DesiredState::Enabled);
        assert_eq!(i.not_before_ms, 31_000);
    }

    #[test]
    fn resolved_without_restore_is_ignored() {
        let mut r = rule("cpu", &[("alertname", "Cpu")], &[], RuleAction::Drain);
        r.restore = false;
        let a = alert(
            AlertStatus::Resolved,
            &[("alertname", "Cpu"), ("server", "s1")],
        );
        assert!(matches!(
            decide(&[a], &[r], &targets(), 0)[0],
            Decision::Ignored { .. }
        ));
    }

    #[test]
    fn regex_and_equality_must_all_hold_first_rule_wins() {
        let rules = [
            rule(
                "crit",
                &[("alertname", "Cpu")],
                &[("severity", "crit|page")],
                RuleAction::Disabled,
            ),
            rule("any", &[("alertname", "Cpu")], &[], RuleAction::Weight),
        ];
        let crit = alert(
            AlertStatus::Firing,
            &[("alertname", "Cpu"), ("severity", "page"), ("server", "s1")],
        );
        let warn = alert(
            AlertStatus::Firing,
            &[
                ("alertname", "Cpu"),
                ("severity", "pager"),
                ("server", "s1"),
            ],
        );
        let other = alert(
            AlertStatus::Firing,
            &[("alertname", "Mem"), ("server", "s1")],
        );
        let d = decide(&[crit, warn, other], &rules, &targets(), 0);
        assert!(
            matches!(&d[0], Decision::Act(i) if i.rule == "crit" && i.state == DesiredState::Disabled)
        );
        assert!(
            matches!(&d[1], Decision::Act(i) if i.rule == "any" && i.weight.as_deref() == Some("50%") && i.state == DesiredState::Enabled)
        );
        assert!(matches!(&d[2], Decision::Ignored { .. }));
    }

    #[test]
    fn missing_label_matches_empty_regex_only() {
        let rules = [rule("r", &[], &[("team", "")], RuleAction::Drain)];
        let a = alert(AlertStatus::Firing, &[("alertname", "X"), ("server", "s1")]);
        assert!(matches!(
            decide(&[a], &rules, &targets(), 0)[0],
            Decision::Act(_)
        ));
    }

    #[test]
    fn hostile_label_values_are_rejected_not_acted_on() {
        let rules = [rule("all", &[], &[("alertname", ".*")], RuleAction::Drain)];
        let long = "s".repeat(300);
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("server", "s1;reboot")], "server"),
            (vec![("server", "$(curl evil)")], "server"),
            (vec![("server", "{{ lookup('pipe', 'id') }}")], "server"),
            (vec![("server", "{% for x in y %}")], "server"),
            (vec![("server", "s1\nhosts: all")], "server"),
            (vec![("server", "../../etc/passwd")], "server"),
            (vec![("server", long.as_str())], "server"),
            (vec![("server", "s1"), ("backend", "be`id`")], "backend"),
            (vec![("instance", "10.0.0.1;id:80")], "instance"),
            (vec![("instance", "host:80:80")], "instance"),
            (vec![("job", "x")], "server"),
        ];
        for (labels, field) in cases {
            let mut all = vec![("alertname", "Cpu")];
            all.extend(labels.iter().copied());
            let d = decide(&[alert(AlertStatus::Firing, &all)], &rules, &targets(), 0);
            assert!(
                matches!(&d[0], Decision::Rejected { field: f, .. } if f == field),
                "{labels:?}: {:?}",
                d[0]
            );
        }
    }

    #[test]
    fn hostile_alertname_and_fingerprint_are_rejected() {
        let rules = [rule("all", &[("server", "s1")], &[], RuleAction::Drain)];
        let a = alert(
            AlertStatus::Firing,
            &[("alertname", "{{ x }}"), ("server", "s1")],
        );
        assert!(
            matches!(&decide(&[a], &rules, &targets(), 0)[0], Decision::Rejected { field, .. } if field == "alertname")
        );
        let mut b = alert(
            AlertStatus::Firing,
            &[("alertname", "Cpu"), ("server", "s1")],
        );
        b.fingerprint = "abc;id".into();
        assert!(
            matches!(&decide(&[b], &rules, &targets(), 0)[0], Decision::Rejected { field, .. } if field == "fingerprint")
        );
    }
}

//! What the real clusterrole-aggregation controller does: the `rules` of a ClusterRole with an
//! `aggregationRule` are rewritten to the rules of the ClusterRoles its selectors match, each
//! time one of them is written or deleted.

use super::*;
use crate::rbac::{PolicyRule, selector_matches};

/// How many rewrites one write may cause (roles aggregating each other settle well before).
const MAX_REWRITES: usize = 64;

impl State {
    /// Brings the `rules` of every aggregating ClusterRole up to date (a new version and a
    /// watch event for each one that changes).
    pub(super) fn aggregate_cluster_roles(&mut self, live: &broadcast::Sender<Arc<Event>>) {
        if self.aggregating {
            return;
        }
        let Some(rt) = self
            .registry
            .iter()
            .find(|r| r.group == "rbac.authorization.k8s.io" && r.plural == "clusterroles")
            .cloned()
        else {
            return;
        };
        self.aggregating = true;
        // one role at a time, as the controller's queue does, so roles that aggregate each
        // other see each other's new rules
        for _ in 0..MAX_REWRITES {
            let Some((name, rules)) = self.next_aggregation(&rt) else {
                break;
            };
            let Some(mut role) = self.get(&rt, "", &name).cloned() else {
                break;
            };
            role["rules"] = Value::Array(rules);
            if let Err(e) = self.commit(&rt, "", &name, role, EventType::Modified, live) {
                tracing::warn!(clusterrole = %name, error = %e, "could not write aggregated rules");
                break;
            }
        }
        self.aggregating = false;
    }

    /// The first aggregating ClusterRole whose stored rules differ from what its selectors
    /// gather, with the rules it should have.
    fn next_aggregation(&self, rt: &ResourceType) -> Option<(String, Vec<Value>)> {
        let roles = self.objects.get(&rt.storage_key())?;
        for ((_, name), role) in roles {
            let Some(selectors) = role
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
            else {
                continue;
            };
            let mut gathered: Vec<Value> = Vec::new();
            let mut seen: Vec<PolicyRule> = Vec::new();
            let mut seen_set: std::collections::HashSet<PolicyRule> = Default::default();
            // the map is ordered by name, as the controller sorts the matches
            for ((_, other_name), other) in roles {
                if other_name == name {
                    continue;
                }
                let labels = labels_of(other);
                if !selectors
                    .iter()
                    .any(|s| s.is_object() && selector_matches(s, &labels))
                {
                    continue;
                }
                for rule in other
                    .get("rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let parsed = PolicyRule::from_json(rule);
                    if seen_set.insert(parsed.clone()) {
                        seen.push(parsed);
                        gathered.push(rule.clone());
                    }
                }
            }
            if seen != crate::rbac::rules_of(role) {
                return Some((name.clone(), gathered));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_rules_are_written_to_the_stored_role() {
        let store = Store::new(100);
        let rt = store
            .resource("rbac.authorization.k8s.io", "v1", "clusterroles")
            .unwrap();
        let opts = WriteOptions::default();
        let role = |name: &str, labels: Value, rules: Value| json!({"metadata": {"name": name, "labels": labels}, "rules": rules});
        let leases = json!([{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}]);
        store
            .create(
                &rt,
                "",
                role("b-leases", json!({"agg": "true"}), leases.clone()),
                &opts,
            )
            .unwrap();
        let mut aggregating = role(
            "all",
            json!({}),
            json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]),
        );
        aggregating["aggregationRule"] =
            json!({"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]});
        store.create(&rt, "", aggregating, &opts).unwrap();
        // the controller replaces what was written with what the selectors gather
        assert_eq!(store.get(&rt, "", "all").unwrap()["rules"], leases);

        let rv = store.get(&rt, "", "all").unwrap()["metadata"]["resourceVersion"].clone();
        let secrets = json!([{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}]);
        store
            .create(
                &rt,
                "",
                role("a-secrets", json!({"agg": "true"}), secrets.clone()),
                &opts,
            )
            .unwrap();
        let all = store.get(&rt, "", "all").unwrap();
        assert_ne!(all["metadata"]["resourceVersion"], rv, "a new version");
        // ordered by the name of the role they come from; duplicates once
        assert_eq!(all["rules"], json!([secrets[0], leases[0]]));
        store
            .create(
                &rt,
                "",
                role("c-dup", json!({"agg": "true"}), leases.clone()),
                &opts,
            )
            .unwrap();
        assert_eq!(
            store.get(&rt, "", "all").unwrap()["rules"]
                .as_array()
                .unwrap()
                .len(),
            2
        );

        store
            .delete(
                &rt,
                "",
                "a-secrets",
                Propagation::Background,
                &Preconditions::default(),
                false,
            )
            .unwrap();
        assert_eq!(store.get(&rt, "", "all").unwrap()["rules"], leases);
        // an unrelated write changes nothing
        let rv = store.get(&rt, "", "all").unwrap()["metadata"]["resourceVersion"].clone();
        store
            .create(&rt, "", role("other", json!({}), secrets), &opts)
            .unwrap();
        assert_eq!(
            store.get(&rt, "", "all").unwrap()["metadata"]["resourceVersion"],
            rv
        );
    }

    #[test]
    fn roles_aggregating_each_other_settle() {
        let store = Store::new(100);
        let rt = store
            .resource("rbac.authorization.k8s.io", "v1", "clusterroles")
            .unwrap();
        let opts = WriteOptions::default();
        for (name, selects) in [("x", "y"), ("y", "x")] {
            store
                .create(
                    &rt,
                    "",
                    json!({"metadata": {"name": name, "labels": {"is": name}},
                           "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"is": selects}}]},
                           "rules": [{"apiGroups": [""], "resources": [name], "verbs": ["get"]}]}),
                    &opts,
                )
                .unwrap();
        }
        let x = store.get(&rt, "", "x").unwrap();
        let y = store.get(&rt, "", "y").unwrap();
        assert_eq!(x["rules"], y["rules"]);
    }
}

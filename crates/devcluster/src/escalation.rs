//! RBAC escalation prevention on writes of Roles, ClusterRoles and their bindings, as the real
//! API server's RBAC storage does it: a user may only grant what they already hold, unless
//! they have the `escalate` verb on the role (for roles) or the `bind` verb on the referenced
//! role (for bindings). Members of `system:masters` are never checked.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::rbac::{Attributes, PolicyRule, Rbac, RbacSource, UserInfo, rules_of};
use crate::status::ApiError;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Most single permissions (group x resource x verb x name) a write may ask to check: a
/// hostile role of a few long lists would otherwise multiply into billions.
pub const MAX_CHECKED_PERMISSIONS: usize = 100_000;

/// Whether a request writes an RBAC object that the escalation check applies to.
pub fn applies(a: &Attributes) -> bool {
    a.resource_request
        && a.group == RBAC_GROUP
        && a.subresource.is_empty()
        && matches!(a.verb.as_str(), "create" | "update" | "patch")
        && matches!(
            a.resource.as_str(),
            "roles" | "clusterroles" | "rolebindings" | "clusterrolebindings"
        )
}

/// Checks that `user` may write `new` (replacing `old`, if any) with the request `request`.
/// Refuses with the real server's 403 (or 404 when a binding's role does not exist and the
/// user may not `bind` it). The server runs it under the store's lock, on the state the write
/// applies to (`Store::create_guarded` and friends), so the user's own permissions cannot
/// change between the check and the write.
pub fn check_write(
    store: &dyn RbacSource,
    user: &UserInfo,
    request: &Attributes,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    if user.is_master() || !applies(request) {
        return Ok(());
    }
    if old.is_some_and(|old| only_gc_fields_differ(old, new)) {
        return Ok(());
    }
    let authorizer = Rbac::new(store);
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ns = request.namespace.as_str();
    match request.resource.as_str() {
        "roles" | "clusterroles" => {
            let escalate = Attributes {
                verb: "escalate".into(),
                ..request.clone()
            };
            if authorizer.authorize(user, &escalate).allowed {
                return Ok(());
            }
            confirm_no_escalation(&authorizer, user, ns, &rules_of(new))
                .map_err(|msg| forbidden(&request.resource, name, &msg))?;
            let aggregates = |v: &Value| {
                v.pointer("/aggregationRule/clusterRoleSelectors")
                    .and_then(Value::as_array)
                    .is_some_and(|s| !s.is_empty())
            };
            if request.resource == "clusterroles"
                && (aggregates(new) || old.is_some_and(aggregates))
                && confirm_no_escalation(&authorizer, user, "", &full_authority()).is_err()
            {
                return Err(forbidden(
                    &request.resource,
                    name,
                    "must have cluster-admin privileges to use the aggregationRule",
                ));
            }
            Ok(())
        }
        _ => {
            let role_ref = new.get("roleRef").cloned().unwrap_or(Value::Null);
            let s = |k: &str| {
                role_ref
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let resource = match s("kind").as_str() {
                "ClusterRole" => "clusterroles",
                "Role" => "roles",
                // an invalid roleRef is refused by validation, as on the real server
                _ => return Ok(()),
            };
            let bind = Attributes {
                verb: "bind".into(),
                resource_request: true,
                group: s("apiGroup"),
                resource: resource.into(),
                name: s("name"),
                namespace: ns.to_string(),
                ..Attributes::default()
            };
            if authorizer.authorize(user, &bind).allowed {
                return Ok(());
            }
            let rules = authorizer
                .role_rules(&role_ref, ns)
                .map_err(|_| role_not_found(resource, &s("name")))?;
            confirm_no_escalation(&authorizer, user, ns, &rules)
                .map_err(|msg| forbidden(&request.resource, name, &msg))
        }
    }
}

/// `*` on everything: what setting an `aggregationRule` requires.
fn full_authority() -> Vec<PolicyRule> {
    let all = vec!["*".to_string()];
    vec![
        PolicyRule {
            verbs: all.clone(),
            api_groups: all.clone(),
            resources: all.clone(),
            ..PolicyRule::default()
        },
        PolicyRule {
            verbs: all.clone(),
            non_resource_urls: all,
            ..PolicyRule::default()
        },
    ]
}

/// Whether `new` differs from `old` only in the fields garbage collection changes
/// (`ownerReferences`, `finalizers`) and server-managed metadata.
fn only_gc_fields_differ(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "ownerReferences",
                "finalizers",
                "resourceVersion",
                "managedFields",
                "generation",
            ] {
                m.remove(f);
            }
        }
        v
    };
    strip(old) == strip(new)
}

fn role_not_found(resource: &str, name: &str) -> ApiError {
    match crate::resources::builtins()
        .into_iter()
        .find(|r| r.group == RBAC_GROUP && r.plural == resource)
    {
        Some(rt) => ApiError::not_found(&rt, name),
        None => ApiError::unknown_resource(),
    }
}

/// The real server's 403 for an escalation.
fn forbidden(resource: &str, name: &str, why: &str) -> ApiError {
    let qualified = format!("{resource}.{RBAC_GROUP}");
    let message = if name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {} is forbidden: {why}", go_quote(name))
    };
    let mut details = json!({"group": RBAC_GROUP, "kind": resource});
    if !name.is_empty() {
        details["name"] = json!(name);
    }
    ApiError {
        code: 403,
        reason: "Forbidden",
        message,
        details: Some(details),
    }
}

/// Refuses `rules` that the rules `user` holds in `namespace` (cluster-wide ones only when
/// empty) do not cover, with the real server's text listing what is missing.
fn confirm_no_escalation(
    authorizer: &Rbac<'_>,
    user: &UserInfo,
    namespace: &str,
    rules: &[PolicyRule],
) -> Result<(), String> {
    let asked: usize = rules
        .iter()
        .map(breakdown_len)
        .fold(0usize, usize::saturating_add);
    if asked > MAX_CHECKED_PERMISSIONS {
        return Err(format!(
            "user {} (groups={}) is attempting to grant {asked} single permissions; at most {MAX_CHECKED_PERMISSIONS} are checked for escalation",
            go_quote(&user.name),
            go_quote_list(&user.groups)
        ));
    }
    let (held, errors) = authorizer.rules(user, namespace);
    let missing = uncovered(&held, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> = compact(missing).iter().map(compact_string).collect();
    lines.sort();
    lines.dedup();
    let mut msg = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        go_quote(&user.name),
        go_quote_list(&user.groups),
        lines.join("\n")
    );
    if !errors.is_empty() {
        let mut errors = errors;
        errors.dedup();
        let aggregate = match errors.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        msg.push_str(&format!("; resolution errors: [{aggregate}]"));
    }
    Err(msg)
}

/// How many rules [`breakdown`] makes of `rule` (saturating).
fn breakdown_len(rule: &PolicyRule) -> usize {
    let names = rule.resource_names.len().max(1);
    rule.api_groups
        .len()
        .saturating_mul(rule.resources.len())
        .saturating_mul(rule.verbs.len())
        .saturating_mul(names)
        .saturating_add(
            rule.non_resource_urls
                .len()
                .saturating_mul(rule.verbs.len()),
        )
}

/// Each rule broken into rules of one group, resource, verb and name (or one URL and verb).
fn breakdown(rule: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = PolicyRule {
                    api_groups: one(group),
                    resources: one(resource),
                    verbs: one(verb),
                    ..PolicyRule::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for n in &rule.resource_names {
                        out.push(PolicyRule {
                            resource_names: one(n),
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            out.push(PolicyRule {
                non_resource_urls: one(url),
                verbs: one(verb),
                ..PolicyRule::default()
            });
        }
    }
    out
}

fn has(set: &[String], s: &str) -> bool {
    set.iter().any(|x| x == s)
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| has(set, w))
}

/// Whether an owner's resources cover the wanted ones (`*`, exact, or `*/sub` for `res/sub`).
fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    has(owner, "*")
        || wanted.iter().all(|w| {
            has(owner, w)
                || w.split_once('/')
                    .is_some_and(|(_, sub)| has(owner, &format!("*/{sub}")))
        })
}

fn urls_cover(owner: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| {
        owner
            .iter()
            .any(|o| o == w || o.ends_with('*') && w.starts_with(o.trim_end_matches('*')))
    })
}

/// Whether one held rule covers one broken-down rule.
fn rule_covers(owner: &PolicyRule, sub: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, "*") || has_all(&owner.verbs, &sub.verbs);
    let groups = has(&owner.api_groups, "*") || has_all(&owner.api_groups, &sub.api_groups);
    let resources = resources_cover(&owner.resources, &sub.resources);
    let urls = urls_cover(&owner.non_resource_urls, &sub.non_resource_urls);
    let names = owner.resource_names.is_empty()
        || (!sub.resource_names.is_empty() && has_all(&owner.resource_names, &sub.resource_names));
    verbs && groups && resources && urls && names
}

/// The broken-down parts of `wanted` that no rule in `held` covers.
pub fn uncovered(held: &[PolicyRule], wanted: &[PolicyRule]) -> Vec<PolicyRule> {
    wanted
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !held.iter().any(|h| rule_covers(h, sub)))
        .collect()
}

/// Merges rules of one group and resource (and at most one name) that differ only by verb.
fn compact(rules: Vec<PolicyRule>) -> Vec<PolicyRule> {
    let mut out: Vec<PolicyRule> = Vec::new();
    let mut simple: Vec<PolicyRule> = Vec::new();
    let mut index: HashMap<(String, String, Option<String>), usize> = HashMap::new();
    for rule in rules {
        let is_simple = rule.api_groups.len() == 1
            && rule.resources.len() == 1
            && rule.resource_names.len() <= 1
            && rule.non_resource_urls.is_empty();
        if !is_simple {
            out.push(rule);
            continue;
        }
        let key = (
            rule.api_groups[0].clone(),
            rule.resources[0].clone(),
            rule.resource_names.first().cloned(),
        );
        match index.get(&key).and_then(|&i| simple.get_mut(i)) {
            Some(existing) => existing.verbs.extend(rule.verbs),
            None => {
                index.insert(key, simple.len());
                simple.push(rule);
            }
        }
    }
    out.extend(simple);
    out
}

/// A rule as the real server lists it in escalation errors:
/// `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`.
pub fn compact_string(r: &PolicyRule) -> String {
    let mut parts = Vec::new();
    for (label, values) in [
        ("APIGroups", &r.api_groups),
        ("Resources", &r.resources),
        ("NonResourceURLs", &r.non_resource_urls),
        ("ResourceNames", &r.resource_names),
        ("Verbs", &r.verbs),
    ] {
        if !values.is_empty() {
            parts.push(format!("{label}:{}", go_quote_list(values)));
        }
    }
    format!("{{{}}}", parts.join(", "))
}

/// A string quoted as Go's `%q` does.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A list of strings as Go's `%q` prints a `[]string`: `["a" "b"]`.
fn go_quote_list(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[{}]", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn rule(v: Value) -> PolicyRule {
        PolicyRule::from_json(&v)
    }

    #[test]
    fn held_rules_cover_as_the_real_comparator() {
        let held = vec![
            rule(
                json!({"apiGroups": [""], "resources": ["secrets", "*/status"], "verbs": ["get", "list"]}),
            ),
            rule(
                json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"], "resourceNames": ["d"]}),
            ),
            rule(json!({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]})),
        ];
        let want = |v: Value| uncovered(&held, &[rule(v)]);
        assert!(
            want(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})).is_empty()
        );
        assert!(
            want(json!({"apiGroups": [""], "resources": ["pods/status"], "verbs": ["list"]}))
                .is_empty(),
            "*/status"
        );
        assert!(want(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["a"]})).is_empty(), "unnamed covers named");
        assert!(want(json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["update"], "resourceNames": ["d"]})).is_empty());
        assert_eq!(
            want(json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["update"]}))
                .len(),
            1,
            "named does not cover unnamed"
        );
        assert!(want(json!({"nonResourceURLs": ["/apis/apps"], "verbs": ["get"]})).is_empty());
        assert_eq!(
            want(json!({"apiGroups": ["*"], "resources": ["secrets"], "verbs": ["get"]})).len(),
            1,
            "a * group needs a * group"
        );
        let missing = want(
            json!({"apiGroups": ["", "apps"], "resources": ["secrets"], "verbs": ["get", "delete", "watch"]}),
        );
        assert_eq!(missing.len(), 5);
    }

    #[test]
    fn missing_rules_are_compacted_and_printed_as_the_real_server() {
        let missing = uncovered(
            &[],
            &[
                rule(
                    json!({"apiGroups": [""], "resources": ["secrets", "pods"], "verbs": ["get", "list"], "resourceNames": ["a"]}),
                ),
                rule(json!({"nonResourceURLs": ["/metrics"], "verbs": ["get"]})),
            ],
        );
        let mut lines: Vec<String> = compact(missing).iter().map(compact_string).collect();
        lines.sort();
        assert_eq!(
            lines,
            vec![
                r#"{APIGroups:[""], Resources:["pods"], ResourceNames:["a"], Verbs:["get" "list"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], ResourceNames:["a"], Verbs:["get" "list"]}"#,
                r#"{NonResourceURLs:["/metrics"], Verbs:["get"]}"#,
            ]
        );
        assert_eq!(
            go_quote_list(&["a\"b".into(), "c".into()]),
            r#"["a\"b" "c"]"#
        );
        assert_eq!(go_quote_list(&[]), "[]");
    }

    #[test]
    fn huge_rule_products_are_refused_without_being_expanded() {
        let many: Vec<String> = (0..2_000).map(|i| format!("r{i}")).collect();
        let hostile = PolicyRule {
            api_groups: many.clone(),
            resources: many.clone(),
            verbs: many,
            ..PolicyRule::default()
        };
        assert_eq!(breakdown_len(&hostile), 8_000_000_000);
        let store = Store::new(10);
        let user = UserInfo::service_account("ns", "sa");
        let started = std::time::Instant::now();
        let e = confirm_no_escalation(&Rbac::new(&store), &user, "ns", &[hostile]).unwrap_err();
        assert!(e.contains("at most 100000 are checked"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn gc_only_changes_are_not_checked() {
        let old = json!({"metadata": {"name": "r", "resourceVersion": "1"}, "rules": []});
        let mut new = old.clone();
        new["metadata"]["finalizers"] = json!(["x"]);
        new["metadata"]["resourceVersion"] = json!("2");
        assert!(only_gc_fields_differ(&old, &new));
        new["rules"] = json!([{"verbs": ["*"]}]);
        assert!(!only_gc_fields_differ(&old, &new));
    }
}

//! Authorization as the real RBAC authorizer does it: Roles, ClusterRoles (with aggregation by
//! label), RoleBindings and ClusterRoleBindings, the default bindings of a new cluster, the
//! 403 answer, and the access reviews (`kubectl auth can-i`).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::selectors::labels_of;
use crate::status::ApiError;
use crate::store::{Selection, Store};

/// The group every authenticated user is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group of the admin (full access, as `system:masters` on a real cluster).
pub const MASTERS: &str = "system:masters";

/// Who makes a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name, e.g. `system:serviceaccount:ns:sa`.
    pub name: String,
    /// Groups, e.g. `system:serviceaccounts`.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The user a ServiceAccount token authenticates, with the groups the real server adds.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: service_account_groups(namespace),
        }
    }

    /// Whether this user bypasses authorization (the admin token, or `system:masters`).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}

/// `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated`.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{namespace}"),
        AUTHENTICATED.into(),
    ]
}

/// Splits `system:serviceaccount:<ns>:<name>` into namespace and name.
pub fn split_service_account(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
}

/// What a request asks to do, as the authorizer sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Verb: `get`, `list`, `watch`, `create`, ... (for non-resource requests the lower-case
    /// HTTP method, `get` for GET and HEAD).
    pub verb: String,
    /// Whether this is a resource request (else a non-resource URL).
    pub resource_request: bool,
    /// URL path (non-resource requests).
    pub path: String,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Object name.
    pub name: String,
    /// Namespace (the name itself for `namespaces/<name>`).
    pub namespace: String,
}

impl Attributes {
    /// `resource` or `resource/subresource`.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }

    /// The permission this request exercises.
    pub fn permission(&self) -> Permission {
        Permission {
            verb: self.verb.clone(),
            group: self.group.clone(),
            resource: self.resource.clone(),
            subresource: self.subresource.clone(),
            namespace: self.namespace.clone(),
        }
    }
}

/// A permission a request exercised: verb, group, resource, subresource and namespace (empty
/// at the cluster scope).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Permission {
    /// Verb.
    pub verb: String,
    /// API group.
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource, empty for the main resource.
    pub subresource: String,
    /// Namespace, empty at the cluster scope.
    pub namespace: String,
}

/// The request attributes of an HTTP request, as the real server's RequestInfo resolver reads
/// them: the verb from the method, `list`/`watch` for collections, `deletecollection`, and the
/// name of a list or watch from a `metadata.name=` field selector.
pub fn attributes(
    method: &str,
    path: &str,
    query: &std::collections::HashMap<String, String>,
) -> Attributes {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let non_resource = || Attributes {
        verb: match method {
            "GET" | "HEAD" => "get".into(),
            m => m.to_ascii_lowercase(),
        },
        path: path.to_string(),
        ..Attributes::default()
    };
    let (group, version, mut rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => (String::new(), v.to_string(), rest.to_vec()),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => {
            (g.to_string(), v.to_string(), rest.to_vec())
        }
        _ => return non_resource(),
    };
    let mut a = Attributes {
        resource_request: true,
        group,
        version,
        ..Attributes::default()
    };
    let mut watch = query.get("watch").is_some_and(|v| v == "true" || v == "1");
    if rest.first() == Some(&"watch") {
        watch = true;
        rest.remove(0);
    }
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        a.namespace = rest[1].to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest.drain(..2);
        }
    }
    a.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
    a.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    a.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
    a.verb = match method {
        "POST" => "create",
        "GET" | "HEAD" if watch => "watch",
        "GET" | "HEAD" if a.name.is_empty() => "list",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if a.name.is_empty() => "deletecollection",
        "DELETE" => "delete",
        other => {
            return Attributes {
                verb: other.to_ascii_lowercase(),
                ..a
            };
        }
    }
    .to_string();
    if matches!(a.verb.as_str(), "list" | "watch")
        && a.name.is_empty()
        && let Some(sel) = query.get("fieldSelector")
    {
        let parts: Vec<&str> = sel.split(',').filter(|p| !p.is_empty()).collect();
        if let [only] = parts.as_slice()
            && let Some(name) = only
                .strip_prefix("metadata.name==")
                .or_else(|| only.strip_prefix("metadata.name="))
        {
            a.name = name.to_string();
        }
    }
    a
}

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Verbs, `*` for all.
    pub verbs: Vec<String>,
    /// API groups, `*` for all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources, `*`, `res/sub` or `*/sub`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Names the rule is limited to (empty: all).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource URLs, exact or with a trailing `*`.
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl PolicyRule {
    /// Reads a rule from its JSON form.
    pub fn from_json(v: &Value) -> Self {
        Self {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    /// Whether the rule allows the request, by the real authorizer's matching rules.
    pub fn allows(&self, a: &Attributes) -> bool {
        let verb = self.verbs.iter().any(|v| v == "*" || *v == a.verb);
        if !verb {
            return false;
        }
        if !a.resource_request {
            return self.non_resource_urls.iter().any(|u| {
                u == "*"
                    || *u == a.path
                    || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
            });
        }
        let group = self.api_groups.iter().any(|g| g == "*" || *g == a.group);
        let combined = a.combined_resource();
        let resource = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!a.subresource.is_empty()
                    && r.strip_prefix("*/") == Some(a.subresource.as_str()))
        });
        let name = self.resource_names.is_empty()
            || (!a.name.is_empty() && self.resource_names.contains(&a.name));
        group && resource && name
    }
}

/// The outcome of an authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed or not.
    pub allowed: bool,
    /// Why: `RBAC: allowed by ...` when allowed; the resolution errors (missing roles) when not.
    pub reason: String,
}

/// A subject of a binding matches the user.
fn subject_matches(subject: &Value, binding_ns: &str, user: &UserInfo) -> bool {
    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    match kind {
        "User" => name == user.name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn describe_subject(subject: &Value, binding_ns: &str) -> String {
    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    if kind == "ServiceAccount" {
        let ns = subject
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(binding_ns);
        format!("{kind} \"{name}/{ns}\"")
    } else {
        format!("{kind} {name:?}")
    }
}

/// Whether `labels` match a `LabelSelector` object (`matchLabels`, `matchExpressions`).
pub fn selector_matches(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| {
            m.iter()
                .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
        });
    let exprs_ok = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|exprs| {
            exprs.iter().all(|e| {
                let key = e.get("key").and_then(Value::as_str).unwrap_or("");
                let values = strings(e, "values");
                let have = labels.get(key);
                match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                    "In" => have.is_some_and(|h| values.contains(h)),
                    "NotIn" => have.is_none_or(|h| !values.contains(h)),
                    "Exists" => have.is_some(),
                    "DoesNotExist" => have.is_none(),
                    _ => false,
                }
            })
        });
    labels_ok && exprs_ok
}

/// Where the authorizer reads RBAC objects: the [`Store`] (each read takes its lock), or the
/// store's state under a lock already held (the escalation check of a write).
pub trait RbacSource {
    /// The RBAC object `plural/name` in `namespace` (`""` for cluster-scoped ones).
    fn rbac_get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value>;
    /// The RBAC objects of `plural`, in `namespace` or everywhere.
    fn rbac_list(&self, plural: &str, namespace: Option<&str>) -> Vec<Value>;
}

fn rbac_rt(store: &Store, plural: &str) -> Option<ResourceType> {
    store.resource("rbac.authorization.k8s.io", "v1", plural)
}

impl RbacSource for Store {
    fn rbac_get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.get(&rbac_rt(self, plural)?, namespace, name).ok()
    }

    fn rbac_list(&self, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(rt) = rbac_rt(self, plural) else {
            return Vec::new();
        };
        let sel = Selection {
            namespace: namespace.map(str::to_string),
            ..Selection::default()
        };
        self.list(&rt, &sel, None, None).0
    }
}

/// Reads RBAC objects from the store.
pub struct Rbac<'a> {
    store: &'a dyn RbacSource,
}

impl<'a> Rbac<'a> {
    /// An authorizer over `store` (or a locked state).
    pub fn new(store: &'a dyn RbacSource) -> Self {
        Self { store }
    }

    fn list(&self, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        self.store.rbac_list(plural, namespace)
    }

    /// The rules of a ClusterRole, with those of the ClusterRoles its `aggregationRule`
    /// selects (as the aggregation controller would have written them).
    fn cluster_role_rules(&self, name: &str) -> Result<Vec<PolicyRule>, String> {
        let role = self
            .store
            .rbac_get("clusterroles", "", name)
            .ok_or_else(|| format!("clusterrole.rbac.authorization.k8s.io {name:?} not found"))?;
        let mut rules = rules_of(&role);
        if let Some(selectors) = role
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
        {
            for other in self.list("clusterroles", None) {
                if other.pointer("/metadata/name").and_then(Value::as_str) == Some(name) {
                    continue;
                }
                let labels = labels_of(&other);
                if selectors.iter().any(|s| selector_matches(s, &labels)) {
                    for r in rules_of(&other) {
                        if !rules.contains(&r) {
                            rules.push(r);
                        }
                    }
                }
            }
        }
        Ok(rules)
    }

    /// The rules a binding's `roleRef` grants in `binding_ns` (empty for a ClusterRoleBinding).
    pub fn role_rules(
        &self,
        role_ref: &Value,
        binding_ns: &str,
    ) -> Result<Vec<PolicyRule>, String> {
        let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
        match role_ref.get("kind").and_then(Value::as_str).unwrap_or("") {
            "ClusterRole" => self.cluster_role_rules(name),
            "Role" => self
                .store
                .rbac_get("roles", binding_ns, name)
                .map(|r| rules_of(&r))
                .ok_or_else(|| format!("role.rbac.authorization.k8s.io {name:?} not found")),
            other => Err(format!("unknown role kind {other:?}")),
        }
    }

    /// Visits the rules that apply to `user` in `namespace` (cluster-wide ones first), with
    /// a description of the binding that grants each; stops when `visit` returns true.
    /// Returns the resolution errors met.
    fn visit(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&str, &PolicyRule) -> bool,
    ) -> Vec<String> {
        let mut errors = Vec::new();
        for binding in self.list("clusterrolebindings", None) {
            let Some(subject) = subjects(&binding)
                .into_iter()
                .find(|s| subject_matches(s, "", user))
            else {
                continue;
            };
            match self.role_rules(&binding["roleRef"], "") {
                Ok(rules) => {
                    let how = format!(
                        "ClusterRoleBinding {:?} of {} {:?} to {}",
                        name_of(&binding),
                        binding["roleRef"]["kind"].as_str().unwrap_or(""),
                        binding["roleRef"]["name"].as_str().unwrap_or(""),
                        describe_subject(&subject, "")
                    );
                    if rules.iter().any(|r| visit(&how, r)) {
                        return errors;
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if namespace.is_empty() {
            return errors;
        }
        for binding in self.list("rolebindings", Some(namespace)) {
            let Some(subject) = subjects(&binding)
                .into_iter()
                .find(|s| subject_matches(s, namespace, user))
            else {
                continue;
            };
            match self.role_rules(&binding["roleRef"], namespace) {
                Ok(rules) => {
                    let how = format!(
                        "RoleBinding \"{}/{namespace}\" of {} {:?} to {}",
                        name_of(&binding),
                        binding["roleRef"]["kind"].as_str().unwrap_or(""),
                        binding["roleRef"]["name"].as_str().unwrap_or(""),
                        describe_subject(&subject, namespace)
                    );
                    if rules.iter().any(|r| visit(&how, r)) {
                        return errors;
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    /// Authorizes a request.
    pub fn authorize(&self, user: &UserInfo, a: &Attributes) -> Decision {
        if user.is_master() {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let mut allowed_by = None;
        let errors = self.visit(user, &a.namespace, |how, rule| {
            if rule.allows(a) {
                allowed_by = Some(how.to_string());
                true
            } else {
                false
            }
        });
        match allowed_by {
            Some(how) => Decision {
                allowed: true,
                reason: format!("RBAC: allowed by {how}"),
            },
            None => Decision {
                allowed: false,
                reason: match errors.as_slice() {
                    [] => String::new(),
                    [one] => format!("RBAC: {one}"),
                    many => format!("RBAC: [{}]", many.join(", ")),
                },
            },
        }
    }

    /// Every rule that applies to `user` in `namespace` (SelfSubjectRulesReview).
    pub fn rules(&self, user: &UserInfo, namespace: &str) -> (Vec<PolicyRule>, Vec<String>) {
        if user.is_master() {
            let all = vec!["*".to_string()];
            return (
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
                ],
                Vec::new(),
            );
        }
        let mut rules: Vec<PolicyRule> = Vec::new();
        let errors = self.visit(user, namespace, |_, r| {
            if !rules.contains(r) {
                rules.push(r.clone());
            }
            false
        });
        (rules, errors)
    }
}

fn name_of(v: &Value) -> &str {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn subjects(binding: &Value) -> Vec<Value> {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The `rules` of a Role or ClusterRole object.
pub fn rules_of(role: &Value) -> Vec<PolicyRule> {
    role.get("rules")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(PolicyRule::from_json).collect())
        .unwrap_or_default()
}

/// The real server's 403 for a denied request.
pub fn forbidden(user: &str, a: &Attributes, reason: &str) -> ApiError {
    let mut msg = if !a.resource_request {
        format!("User {user:?} cannot {} path {:?}", a.verb, a.path)
    } else if !a.namespace.is_empty() {
        format!(
            "User {user:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
            a.verb,
            a.combined_resource(),
            a.group,
            a.namespace
        )
    } else {
        format!(
            "User {user:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
            a.verb,
            a.combined_resource(),
            a.group
        )
    };
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    let qualified = if !a.resource_request {
        String::new()
    } else if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let message = if qualified.is_empty() {
        format!("forbidden: {msg}")
    } else if a.name.is_empty() {
        format!("{qualified} is forbidden: {msg}")
    } else {
        format!("{qualified} {:?} is forbidden: {msg}", a.name)
    };
    let mut details = serde_json::Map::new();
    if !a.name.is_empty() {
        details.insert("name".into(), json!(a.name));
    }
    if a.resource_request && !a.group.is_empty() {
        details.insert("group".into(), json!(a.group));
    }
    if a.resource_request && !a.resource.is_empty() {
        details.insert("kind".into(), json!(a.resource));
    }
    ApiError {
        code: 403,
        reason: "Forbidden",
        message,
        details: Some(Value::Object(details)),
    }
}

/// The ClusterRoles and ClusterRoleBindings a new cluster has that matter to clients: full
/// access for `system:masters`, discovery, public info, self reviews and OIDC discovery for
/// authenticated users, and the aggregated `admin`/`edit`/`view` roles.
pub fn bootstrap_objects() -> Vec<(&'static str, Value)> {
    let role = |name: &str, rules: Value| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
               "rules": rules})
    };
    let aggregated = |name: &str, label: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
               "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]},
               "rules": []})
    };
    let binding = |name: &str, groups: &[&str]| {
        let subjects: Vec<Value> = groups
            .iter()
            .map(|g| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}))
            .collect();
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
               "subjects": subjects})
    };
    vec![
        (
            "clusterroles",
            role(
                "cluster-admin",
                json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                       {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:discovery",
                json!([{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez",
                                            "/openapi", "/openapi/*", "/readyz", "/version", "/version/"],
                        "verbs": ["get"]}]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:public-info-viewer",
                json!([{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                        "verbs": ["get"]}]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:basic-user",
                json!([{"apiGroups": ["authorization.k8s.io"],
                        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
                       {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}]),
            ),
        ),
        (
            "clusterroles",
            role(
                "system:service-account-issuer-discovery",
                json!([{"nonResourceURLs": ["/.well-known/openid-configuration", "/.well-known/openid-configuration/",
                                            "/openid/v1/jwks", "/openid/v1/jwks/"],
                        "verbs": ["get"]}]),
            ),
        ),
        (
            "clusterroles",
            aggregated("admin", "rbac.authorization.k8s.io/aggregate-to-admin"),
        ),
        (
            "clusterroles",
            aggregated("edit", "rbac.authorization.k8s.io/aggregate-to-edit"),
        ),
        (
            "clusterroles",
            aggregated("view", "rbac.authorization.k8s.io/aggregate-to-view"),
        ),
        ("clusterrolebindings", binding("cluster-admin", &[MASTERS])),
        (
            "clusterrolebindings",
            binding("system:discovery", &[AUTHENTICATED]),
        ),
        (
            "clusterrolebindings",
            binding(
                "system:public-info-viewer",
                &[AUTHENTICATED, "system:unauthenticated"],
            ),
        ),
        (
            "clusterrolebindings",
            binding("system:basic-user", &[AUTHENTICATED]),
        ),
        (
            "clusterrolebindings",
            binding(
                "system:service-account-issuer-discovery",
                &["system:serviceaccounts"],
            ),
        ),
    ]
}

/// The `status` of a SubjectAccessReview for a decision.
pub fn review_status(d: &Decision) -> Value {
    let mut s = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        s["reason"] = json!(d.reason);
    }
    s
}

/// The attributes a SubjectAccessReview's spec asks about.
pub fn review_attributes(spec: &Value, namespace_override: Option<&str>) -> Attributes {
    if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Attributes {
            verb: s("verb"),
            resource_request: true,
            group: s("group"),
            version: s("version"),
            resource: s("resource"),
            subresource: s("subresource"),
            name: s("name"),
            namespace: namespace_override.map_or_else(|| s("namespace"), str::to_string),
            path: String::new(),
        }
    } else {
        let r = spec
            .get("nonResourceAttributes")
            .cloned()
            .unwrap_or_default();
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Attributes {
            verb: s("verb"),
            path: s("path"),
            ..Attributes::default()
        }
    }
}

/// The `status` of a SelfSubjectRulesReview.
pub fn rules_review_status(rules: &[PolicyRule], errors: &[String]) -> Value {
    let resource: Vec<Value> = rules
        .iter()
        .filter(|r| r.non_resource_urls.is_empty())
        .map(|r| json!(r))
        .collect();
    let non_resource: Vec<Value> = rules
        .iter()
        .filter(|r| !r.non_resource_urls.is_empty())
        .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
        .collect();
    let mut s = json!({"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": !errors.is_empty()});
    if !errors.is_empty() {
        s["evaluationError"] = json!(errors.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn request_attributes_as_the_real_resolver() {
        let a = attributes("GET", "/api/v1/namespaces/x/secrets", &q(&[]));
        assert_eq!(
            (a.verb.as_str(), a.namespace.as_str(), a.resource.as_str()),
            ("list", "x", "secrets")
        );
        let a = attributes(
            "GET",
            "/api/v1/namespaces/x/secrets",
            &q(&[("watch", "true")]),
        );
        assert_eq!(a.verb, "watch");
        let a = attributes(
            "GET",
            "/api/v1/namespaces/x/secrets",
            &q(&[("fieldSelector", "metadata.name=s")]),
        );
        assert_eq!((a.verb.as_str(), a.name.as_str()), ("list", "s"));
        let a = attributes("GET", "/api/v1/namespaces/x", &q(&[]));
        assert_eq!(
            (
                a.verb.as_str(),
                a.namespace.as_str(),
                a.resource.as_str(),
                a.name.as_str()
            ),
            ("get", "x", "namespaces", "x")
        );
        let a = attributes("PUT", "/api/v1/namespaces/x/status", &q(&[]));
        assert_eq!(
            (a.resource.as_str(), a.subresource.as_str()),
            ("namespaces", "status")
        );
        let a = attributes("DELETE", "/apis/apps/v1/namespaces/x/deployments", &q(&[]));
        assert_eq!(
            (a.verb.as_str(), a.group.as_str()),
            ("deletecollection", "apps")
        );
        let a = attributes("PATCH", "/apis/b.com/v1/namespaces/x/ss/n/status", &q(&[]));
        assert_eq!(a.combined_resource(), "ss/status");
        let a = attributes("GET", "/apis", &q(&[]));
        assert!(!a.resource_request);
        assert_eq!((a.verb.as_str(), a.path.as_str()), ("get", "/apis"));
        let a = attributes("POST", "/metrics", &q(&[]));
        assert_eq!(a.verb, "post");
    }

    #[test]
    fn rules_match_verbs_resources_names_and_urls() {
        let rule = PolicyRule::from_json(&json!({
            "apiGroups": [""], "resources": ["secrets", "*/status"], "verbs": ["get", "list"],
            "resourceNames": ["a"]
        }));
        let mut a = attributes("GET", "/api/v1/namespaces/x/secrets/a", &q(&[]));
        assert!(rule.allows(&a));
        a.name = "b".into();
        assert!(!rule.allows(&a), "resourceNames");
        let list = attributes("GET", "/api/v1/namespaces/x/secrets", &q(&[]));
        assert!(
            !rule.allows(&list),
            "a named rule does not allow an unnamed list"
        );
        let status = attributes("GET", "/api/v1/namespaces/x/pods/a/status", &q(&[]));
        assert!(rule.allows(&status), "*/status");
        let apps = attributes("GET", "/apis/apps/v1/namespaces/x/secrets/a", &q(&[]));
        assert!(!rule.allows(&apps), "apiGroups");
        let star =
            PolicyRule::from_json(&json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}));
        assert!(star.allows(&apps));
        let sub = attributes("GET", "/api/v1/namespaces/x/secrets/a/status", &q(&[]));
        let main_only = PolicyRule::from_json(
            &json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"]}),
        );
        assert!(!main_only.allows(&sub), "a subresource needs its own rule");
        let urls = PolicyRule::from_json(
            &json!({"nonResourceURLs": ["/apis/*", "/version"], "verbs": ["get"]}),
        );
        assert!(urls.allows(&attributes("GET", "/apis/apps/v1", &q(&[]))));
        assert!(urls.allows(&attributes("GET", "/version", &q(&[]))));
        assert!(!urls.allows(&attributes("GET", "/metrics", &q(&[]))));
        assert!(!urls.allows(&attributes("POST", "/version", &q(&[]))));
    }

    #[test]
    fn forbidden_messages_as_the_real_server() {
        let user = "system:serviceaccount:ns:sa";
        let a = attributes("GET", "/api/v1/namespaces/x/secrets", &q(&[]));
        let e = forbidden(user, &a, "");
        assert_eq!(
            e.message,
            "secrets is forbidden: User \"system:serviceaccount:ns:sa\" cannot list resource \"secrets\" in API group \"\" in the namespace \"x\""
        );
        assert_eq!(e.details, Some(json!({"kind": "secrets"})));
        let a = attributes("GET", "/apis/apps/v1/deployments", &q(&[]));
        assert_eq!(
            forbidden(user, &a, "").message,
            "deployments.apps is forbidden: User \"system:serviceaccount:ns:sa\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"
        );
        let a = attributes("PUT", "/apis/b.com/v1/namespaces/x/ss/n/status", &q(&[]));
        let e = forbidden(user, &a, "");
        assert_eq!(
            e.message,
            "ss.b.com \"n\" is forbidden: User \"system:serviceaccount:ns:sa\" cannot update resource \"ss/status\" in API group \"b.com\" in the namespace \"x\""
        );
        assert_eq!(
            e.details,
            Some(json!({"name": "n", "group": "b.com", "kind": "ss"}))
        );
        let a = attributes("GET", "/metrics", &q(&[]));
        assert_eq!(
            forbidden(user, &a, "").message,
            "forbidden: User \"system:serviceaccount:ns:sa\" cannot get path \"/metrics\""
        );
    }

    #[test]
    fn selectors_and_service_account_names() {
        let labels: BTreeMap<String, String> = [("a".to_string(), "true".to_string())]
            .into_iter()
            .collect();
        assert!(selector_matches(
            &json!({"matchLabels": {"a": "true"}}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchLabels": {"a": "false"}}),
            &labels
        ));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["true"]}]}),
            &labels
        ));
        assert!(!selector_matches(
            &json!({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}),
            &labels
        ));
        assert_eq!(
            split_service_account("system:serviceaccount:ns:sa"),
            Some(("ns", "sa"))
        );
        assert_eq!(split_service_account("alice"), None);
    }
}

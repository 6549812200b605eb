//! Protobuf bodies of the RBAC kinds (`kubectl create role/rolebinding/clusterrole...`) and
//! of the access reviews (`kubectl auth can-i`).

use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use prost::Message;
use serde_json::{Map, Value, json};

use super::{bad, insert_opt, metadata};
use crate::status::ApiError;

fn rule(r: rbac::PolicyRule) -> Value {
    let mut o = Map::new();
    o.insert("verbs".into(), json!(r.verbs));
    for (k, v) in [
        ("apiGroups", r.api_groups),
        ("resources", r.resources),
        ("resourceNames", r.resource_names),
        ("nonResourceURLs", r.non_resource_ur_ls),
    ] {
        if !v.is_empty() {
            o.insert(k.into(), json!(v));
        }
    }
    Value::Object(o)
}

fn label_selector(s: meta::LabelSelector) -> Value {
    let mut o = Map::new();
    if !s.match_labels.is_empty() {
        o.insert(
            "matchLabels".into(),
            json!(
                s.match_labels
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>()
            ),
        );
    }
    if !s.match_expressions.is_empty() {
        let exprs: Vec<Value> = s
            .match_expressions
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                insert_opt(&mut m, "key", e.key);
                insert_opt(&mut m, "operator", e.operator);
                if !e.values.is_empty() {
                    m.insert("values".into(), json!(e.values));
                }
                Value::Object(m)
            })
            .collect();
        o.insert("matchExpressions".into(), Value::Array(exprs));
    }
    Value::Object(o)
}

fn subjects(s: Vec<rbac::Subject>) -> Value {
    s.into_iter()
        .map(|s| {
            let mut m = Map::new();
            insert_opt(&mut m, "kind", s.kind);
            insert_opt(&mut m, "apiGroup", s.api_group.filter(|g| !g.is_empty()));
            insert_opt(&mut m, "name", s.name);
            insert_opt(&mut m, "namespace", s.namespace.filter(|n| !n.is_empty()));
            Value::Object(m)
        })
        .collect()
}

fn role_ref(r: Option<rbac::RoleRef>) -> Value {
    let r = r.unwrap_or_default();
    let mut m = Map::new();
    insert_opt(&mut m, "apiGroup", r.api_group);
    insert_opt(&mut m, "kind", r.kind);
    insert_opt(&mut m, "name", r.name);
    Value::Object(m)
}

fn resource_attributes(r: authz::ResourceAttributes) -> Value {
    let mut m = Map::new();
    insert_opt(&mut m, "namespace", r.namespace);
    insert_opt(&mut m, "verb", r.verb);
    insert_opt(&mut m, "group", r.group);
    insert_opt(&mut m, "version", r.version);
    insert_opt(&mut m, "resource", r.resource);
    insert_opt(&mut m, "subresource", r.subresource);
    insert_opt(&mut m, "name", r.name);
    Value::Object(m)
}

fn attributes_spec(
    r: Option<authz::ResourceAttributes>,
    n: Option<authz::NonResourceAttributes>,
) -> Map<String, Value> {
    let mut spec = Map::new();
    if let Some(r) = r {
        spec.insert("resourceAttributes".into(), resource_attributes(r));
    }
    if let Some(n) = n {
        let mut m = Map::new();
        insert_opt(&mut m, "path", n.path);
        insert_opt(&mut m, "verb", n.verb);
        spec.insert("nonResourceAttributes".into(), Value::Object(m));
    }
    spec
}

/// Decodes the RBAC and authorization kinds; `None` for other kinds.
pub(super) fn decode(api_version: &str, kind: &str, raw: &[u8]) -> Option<Result<Value, ApiError>> {
    let out = match (api_version, kind) {
        ("rbac.authorization.k8s.io/v1", "Role") => rbac::Role::decode(raw).map(|r| {
            json!({"metadata": metadata(r.metadata), "rules": r.rules.into_iter().map(rule).collect::<Vec<_>>()})
        }),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
            rbac::ClusterRole::decode(raw).map(|r| {
                let mut o = json!({"metadata": metadata(r.metadata), "rules": r.rules.into_iter().map(rule).collect::<Vec<_>>()});
                if let Some(a) = r.aggregation_rule {
                    o["aggregationRule"] = json!({"clusterRoleSelectors": a
                        .cluster_role_selectors
                        .into_iter()
                        .map(label_selector)
                        .collect::<Vec<_>>()});
                }
                o
            })
        }
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => rbac::RoleBinding::decode(raw)
            .map(|b| json!({"metadata": metadata(b.metadata), "subjects": subjects(b.subjects), "roleRef": role_ref(b.role_ref)})),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            rbac::ClusterRoleBinding::decode(raw).map(|b| {
                json!({"metadata": metadata(b.metadata), "subjects": subjects(b.subjects), "roleRef": role_ref(b.role_ref)})
            })
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            authz::SelfSubjectAccessReview::decode(raw).map(|r| {
                let s = r.spec.unwrap_or_default();
                json!({"metadata": metadata(r.metadata), "spec": attributes_spec(s.resource_attributes, s.non_resource_attributes)})
            })
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview") => {
            authz::SubjectAccessReview::decode(raw).map(|r| sar(r.metadata, r.spec))
        }
        ("authorization.k8s.io/v1", "LocalSubjectAccessReview") => {
            authz::LocalSubjectAccessReview::decode(raw).map(|r| sar(r.metadata, r.spec))
        }
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => {
            authz::SelfSubjectRulesReview::decode(raw).map(|r| {
                let mut spec = Map::new();
                insert_opt(&mut spec, "namespace", r.spec.and_then(|s| s.namespace));
                json!({"metadata": metadata(r.metadata), "spec": spec})
            })
        }
        _ => return None,
    };
    Some(out.map_err(bad))
}

fn sar(m: Option<meta::ObjectMeta>, spec: Option<authz::SubjectAccessReviewSpec>) -> Value {
    let s = spec.unwrap_or_default();
    let mut out = attributes_spec(s.resource_attributes, s.non_resource_attributes);
    insert_opt(&mut out, "user", s.user);
    if !s.groups.is_empty() {
        out.insert("groups".into(), json!(s.groups));
    }
    insert_opt(&mut out, "uid", s.uid);
    json!({"metadata": metadata(m), "spec": out})
}

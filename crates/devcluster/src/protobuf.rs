//! Request bodies in Kubernetes protobuf, which client-go's typed clients send by default
//! (`kubectl create secret`, Helm's release storage). Decoded with the `k8s-pb` message types
//! for the kinds those clients write; answers are always JSON, which every client accepts.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{Map, Value, json};

use crate::resources::ResourceType;
use crate::status::ApiError;

mod json;
mod json_gen;
mod more;
mod rbac;
mod workloads;

/// The protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8; 4] = b"k8s\0";

/// Whether a `Content-Type` is Kubernetes protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type.split(';').next().map(str::trim) == Some(MEDIA_TYPE)
}

fn unsupported(what: &str) -> ApiError {
    ApiError {
        code: 415,
        reason: "UnsupportedMediaType",
        message: format!(
            "protobuf bodies are accepted for the built-in kinds devcluster serves, not {what}: send application/json"
        ),
        details: None,
    }
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("cannot decode protobuf body: {e}"))
}

/// Decodes a protobuf body into the JSON form of the object.
pub fn decode(bytes: &[u8], rt: &ResourceType) -> Result<Value, ApiError> {
    let payload = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| bad("missing the k8s protobuf prefix"))?;
    let unknown = Unknown::decode(payload).map_err(bad)?;
    let raw = unknown.raw.unwrap_or_default();
    let kind = unknown
        .type_meta
        .as_ref()
        .and_then(|t| t.kind.clone())
        .unwrap_or_else(|| rt.kind.clone());
    let api_version = unknown
        .type_meta
        .as_ref()
        .and_then(|t| t.api_version.clone())
        .unwrap_or_else(|| rt.api_version());
    let mut obj = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => secret(core::Secret::decode(raw.as_slice()).map_err(bad)?),
        ("v1", "ConfigMap") => config_map(core::ConfigMap::decode(raw.as_slice()).map_err(bad)?),
        ("v1", "Namespace") => namespace(core::Namespace::decode(raw.as_slice()).map_err(bad)?),
        ("v1", "ServiceAccount") => {
            service_account(core::ServiceAccount::decode(raw.as_slice()).map_err(bad)?)
        }
        ("authentication.k8s.io/v1", "TokenRequest") => {
            let t = k8s_pb::api::authentication::v1::TokenRequest::decode(raw.as_slice())
                .map_err(bad)?;
            let spec = t.spec.unwrap_or_default();
            let mut o = json!({"spec": {"audiences": spec.audiences}});
            if let Some(e) = spec.expiration_seconds {
                o["spec"]["expirationSeconds"] = json!(e);
            }
            o
        }
        ("v1", "DeleteOptions") | ("meta.k8s.io/v1", "DeleteOptions") => {
            let d = meta::DeleteOptions::decode(raw.as_slice()).map_err(bad)?;
            let mut o = json!({});
            if let Some(p) = d.propagation_policy {
                o["propagationPolicy"] = json!(p);
            }
            if let Some(uid) = d.preconditions.and_then(|p| p.uid) {
                o["preconditions"] = json!({"uid": uid});
            }
            return Ok(o);
        }
        (_, other) => match rbac::decode(&api_version, other, raw.as_slice())
            .or_else(|| more::decode(&api_version, other, raw.as_slice()))
            .or_else(|| workloads::decode(&api_version, other, raw.as_slice()))
        {
            Some(decoded) => decoded?,
            None => return Err(unsupported(other)),
        },
    };
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

fn insert_opt<T: serde::Serialize>(m: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(key.into(), json!(v));
    }
}

fn time(t: Option<meta::Time>) -> Option<String> {
    let secs = t?.seconds?;
    chrono::DateTime::from_timestamp(secs, 0).map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn metadata(m: Option<meta::ObjectMeta>) -> Value {
    let Some(m) = m else { return json!({}) };
    let mut out = Map::new();
    insert_opt(&mut out, "name", m.name);
    insert_opt(&mut out, "generateName", m.generate_name);
    insert_opt(&mut out, "namespace", m.namespace);
    insert_opt(&mut out, "uid", m.uid);
    insert_opt(
        &mut out,
        "resourceVersion",
        m.resource_version.filter(|r| !r.is_empty()),
    );
    insert_opt(&mut out, "creationTimestamp", time(m.creation_timestamp));
    if !m.labels.is_empty() {
        out.insert(
            "labels".into(),
            json!(m.labels.into_iter().collect::<BTreeMap<_, _>>()),
        );
    }
    if !m.annotations.is_empty() {
        out.insert(
            "annotations".into(),
            json!(m.annotations.into_iter().collect::<BTreeMap<_, _>>()),
        );
    }
    if !m.finalizers.is_empty() {
        out.insert("finalizers".into(), json!(m.finalizers));
    }
    if !m.owner_references.is_empty() {
        let refs: Vec<Value> = m
            .owner_references
            .into_iter()
            .map(|r| {
                let mut o = Map::new();
                insert_opt(&mut o, "apiVersion", r.api_version);
                insert_opt(&mut o, "kind", r.kind);
                insert_opt(&mut o, "name", r.name);
                insert_opt(&mut o, "uid", r.uid);
                insert_opt(&mut o, "controller", r.controller);
                insert_opt(&mut o, "blockOwnerDeletion", r.block_owner_deletion);
                Value::Object(o)
            })
            .collect();
        out.insert("ownerReferences".into(), Value::Array(refs));
    }
    Value::Object(out)
}

fn b64_map(m: impl IntoIterator<Item = (String, Vec<u8>)>) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    Value::Object(
        m.into_iter()
            .map(|(k, v)| (k, json!(b64.encode(v))))
            .collect(),
    )
}

fn secret(s: core::Secret) -> Value {
    let mut o = json!({"metadata": metadata(s.metadata)});
    if !s.data.is_empty() {
        o["data"] = b64_map(s.data);
    }
    if !s.string_data.is_empty() {
        o["stringData"] = json!(s.string_data.into_iter().collect::<BTreeMap<_, _>>());
    }
    if let Some(t) = s.r#type {
        o["type"] = json!(t);
    }
    if let Some(i) = s.immutable {
        o["immutable"] = json!(i);
    }
    o
}

fn config_map(c: core::ConfigMap) -> Value {
    let mut o = json!({"metadata": metadata(c.metadata)});
    if !c.data.is_empty() {
        o["data"] = json!(c.data.into_iter().collect::<BTreeMap<_, _>>());
    }
    if !c.binary_data.is_empty() {
        o["binaryData"] = b64_map(c.binary_data);
    }
    if let Some(i) = c.immutable {
        o["immutable"] = json!(i);
    }
    o
}

fn namespace(n: core::Namespace) -> Value {
    let mut o = json!({"metadata": metadata(n.metadata)});
    if let Some(spec) = n.spec.filter(|s| !s.finalizers.is_empty()) {
        o["spec"] = json!({"finalizers": spec.finalizers});
    }
    o
}

fn service_account(sa: core::ServiceAccount) -> Value {
    let mut o = json!({"metadata": metadata(sa.metadata)});
    if let Some(a) = sa.automount_service_account_token {
        o["automountServiceAccountToken"] = json!(a);
    }
    if !sa.image_pull_secrets.is_empty() {
        o["imagePullSecrets"] = sa
            .image_pull_secrets
            .into_iter()
            .map(|r| json!({"name": r.name.unwrap_or_default()}))
            .collect();
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_secret_in_the_k8s_envelope() {
        let s = core::Secret {
            metadata: Some(meta::ObjectMeta {
                name: Some("db".into()),
                labels: [("a".to_string(), "b".to_string())].into_iter().collect(),
                ..Default::default()
            }),
            data: [("k".to_string(), b"v".to_vec())].into_iter().collect(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let unknown = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
            }),
            raw: Some(s.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut bytes = MAGIC.to_vec();
        bytes.extend(unknown.encode_to_vec());
        let rt = crate::resources::builtins()
            .into_iter()
            .find(|r| r.plural == "secrets")
            .unwrap();
        let v = decode(&bytes, &rt).unwrap();
        assert_eq!(v["metadata"]["name"], "db");
        assert_eq!(v["data"]["k"], "dg==");
        assert_eq!(v["kind"], "Secret");
        assert!(decode(b"nope", &rt).is_err());
    }
}

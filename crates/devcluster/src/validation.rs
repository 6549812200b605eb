//! Object validation and the per-kind rules the real API server applies on write.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::resources::ResourceType;
use crate::status::ApiError;

/// Largest Secret or ConfigMap payload.
pub const MAX_DATA_BYTES: usize = 1_048_576;

/// The body's `apiVersion`/`kind`, when given, must name the resource of the URL.
pub fn check_kind(obj: &Value, rt: &ResourceType) -> Result<(), ApiError> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type {}): kind {kind:?} does not match",
            rt.kind
        )));
    }
    if !api_version.is_empty() {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        if group != rt.group {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Names must be DNS subdomains (labels for namespaces and services).
pub fn check_name(rt: &ResourceType, name: &str) -> Result<(), ApiError> {
    if rt.group == "rbac.authorization.k8s.io" {
        // RBAC objects take any path segment name (`system:discovery`)
        if name == "." || name == ".." {
            return Err(ApiError::invalid(
                rt,
                name,
                "metadata.name",
                &format!("Invalid value: {name:?}: may not be '{name}'"),
            ));
        }
        if let Some(bad) = ["/", "%"].iter().find(|c| name.contains(*c)) {
            return Err(ApiError::invalid(
                rt,
                name,
                "metadata.name",
                &format!("Invalid value: {name:?}: may not contain '{bad}'"),
            ));
        }
        return Ok(());
    }
    let label_only = matches!(rt.plural.as_str(), "namespaces" | "services");
    let ok = if label_only {
        is_dns_label(name)
    } else {
        is_dns_subdomain(name)
    };
    if ok {
        return Ok(());
    }
    let rule = if label_only {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    } else {
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    };
    Err(ApiError::invalid(
        rt,
        name,
        "metadata.name",
        &format!("Invalid value: {name:?}: {rule}"),
    ))
}

/// Per-kind normalisation and immutability rules, given the stored object (on update).
pub fn normalize(rt: &ResourceType, old: Option<&Value>, obj: &mut Value) -> Result<(), ApiError> {
    if rt.group.is_empty() && matches!(rt.plural.as_str(), "secrets" | "configmaps") {
        if rt.plural == "secrets" {
            fold_string_data(obj)?;
            if obj.get("type").is_none_or(Value::is_null) {
                obj["type"] = json!("Opaque");
            }
        }
        check_data_size(rt, obj)?;
        if let Some(old) = old {
            check_immutable(rt, old, obj)?;
        }
    }
    if rt.group.is_empty() && rt.plural == "namespaces" {
        if obj.pointer("/status/phase").is_none() {
            obj["status"] = json!({"phase": "Active"});
        }
        if obj.pointer("/spec/finalizers").is_none() {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
        }
    }
    Ok(())
}

/// `stringData` is write-only: it is folded into `data` (base64) and never stored.
fn fold_string_data(obj: &mut Value) -> Result<(), ApiError> {
    let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|m| m.remove("stringData"))
    else {
        return Ok(());
    };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = Value::Object(Map::new());
    }
    for (k, v) in string_data {
        let text = v.as_str().unwrap_or_default();
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
    Ok(())
}

fn check_data_size(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut total = 0usize;
    for field in ["data", "binaryData"] {
        if let Some(Value::Object(m)) = obj.get(field) {
            for (k, v) in m {
                let text = v.as_str().unwrap_or_default();
                let len = if rt.plural == "secrets" || field == "binaryData" {
                    b64.decode(text)
                        .map_err(|_| {
                            ApiError::bad_request(format!(
                                "illegal base64 data in {}.{field}[{k:?}]",
                                rt.kind
                            ))
                        })?
                        .len()
                } else {
                    text.len()
                };
                total += len + k.len();
            }
        }
    }
    if total > MAX_DATA_BYTES {
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(ApiError::invalid(
            rt,
            name,
            "data",
            &format!("Too long: may not be more than {MAX_DATA_BYTES} bytes"),
        ));
    }
    Ok(())
}

fn check_immutable(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if rt.plural == "secrets" && old.get("type") != new.get("type") {
        return Err(ApiError::invalid(
            rt,
            name,
            "type",
            "Invalid value: field is immutable",
        ));
    }
    if old.get("immutable") == Some(&Value::Bool(true)) {
        for field in ["data", "binaryData"] {
            if old.get(field) != new.get(field) {
                return Err(ApiError::invalid(
                    rt,
                    name,
                    field,
                    "Forbidden: field is immutable when `immutable` is set",
                ));
            }
        }
        if new.get("immutable") != Some(&Value::Bool(true)) {
            return Err(ApiError::invalid(
                rt,
                name,
                "immutable",
                "Forbidden: field is immutable when `immutable` is set",
            ));
        }
    }
    Ok(())
}

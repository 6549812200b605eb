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
    check_metadata(rt, obj)?;
    if rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions" {
        crate::schema::check_crd_rules(rt, obj)?;
    }
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

/// Most bytes all annotations of an object may take (keys and values).
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

const LABEL_NAME_RULE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_RULE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn is_label_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && s.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Problems with a label or annotation key (a qualified name: `[prefix/]name`).
fn key_problems(key: &str) -> Vec<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let mut out = Vec::new();
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else {
        if name.len() > 63 {
            out.push("name part must be no more than 63 characters".to_string());
        }
        if !is_label_token(name) {
            out.push(LABEL_NAME_RULE.to_string());
        }
    }
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        out.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
    }
    out
}

/// Label keys and values, and the annotations' size, as `ValidateObjectMeta` checks them.
pub fn check_metadata(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    use crate::schema::{Cause, Path, Step};
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let meta = Path::default().child(Step::Field("metadata".into()));
    let mut causes = Vec::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        let at = meta.child(Step::Field("labels".into()));
        for (k, v) in labels {
            for p in key_problems(k) {
                causes.push(Cause::invalid(&at, &json!(k), p));
            }
            let value = v.as_str().unwrap_or("");
            if value.len() > 63 {
                causes.push(Cause::invalid(&at, v, "must be no more than 63 characters"));
            }
            if !value.is_empty() && !is_label_token(value) {
                causes.push(Cause::invalid(&at, v, LABEL_VALUE_RULE));
            }
        }
    }
    if let Some(annotations) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let at = meta.child(Step::Field("annotations".into()));
        let mut total = 0;
        for (k, v) in annotations {
            total += k.len() + v.as_str().map_or(0, str::len);
            for p in key_problems(&k.to_ascii_lowercase()) {
                causes.push(Cause::invalid(&at, &json!(k), p));
            }
        }
        if total > MAX_ANNOTATIONS_BYTES {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: at,
                message: format!("Too long: may not be more than {MAX_ANNOTATIONS_BYTES} bytes"),
            });
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(crate::schema::invalid(rt, name, &causes))
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The fields of the built-in objects whose JSON type the typed decoder checks, as
/// `(pointer, Go field, Go type)`.
fn typed_fields(rt: &ResourceType) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut fields = vec![
        ("/metadata", "ObjectMeta.metadata", "object"),
        ("/metadata/name", "ObjectMeta.metadata.name", "string"),
        ("/metadata/labels", "ObjectMeta.metadata.labels", "map"),
        (
            "/metadata/annotations",
            "ObjectMeta.metadata.annotations",
            "map",
        ),
        (
            "/metadata/finalizers",
            "ObjectMeta.metadata.finalizers",
            "[]string",
        ),
    ];
    if rt.group.is_empty() && matches!(rt.plural.as_str(), "configmaps" | "secrets") {
        fields.extend([
            ("/data", ".data", "map"),
            ("/binaryData", ".binaryData", "map"),
            ("/stringData", ".stringData", "map"),
            ("/immutable", ".immutable", "bool"),
            ("/type", ".type", "string"),
        ]);
    }
    fields
}

/// The typed decoder's complaint about `obj` (a built-in kind), if any: `json: cannot
/// unmarshal number into Go struct field ConfigMap.data of type string`.
pub fn check_types(rt: &ResourceType, obj: &Value) -> Option<String> {
    if rt.schema.is_some() || !obj.is_object() {
        return None;
    }
    let complaint = |v: &Value, field: &str, go: &str| {
        let field = if field.starts_with('.') {
            format!("{}{field}", rt.kind)
        } else {
            format!("{}.{field}", rt.kind).replacen(
                &format!("{}.ObjectMeta", rt.kind),
                "ObjectMeta",
                1,
            )
        };
        Some(format!(
            "json: cannot unmarshal {} into Go struct field {field} of type {go}",
            json_type(v)
        ))
    };
    for (pointer, field, want) in typed_fields(rt) {
        let Some(v) = obj.pointer(pointer) else {
            continue;
        };
        if v.is_null() {
            continue;
        }
        let bad = match want {
            "object" => !v.is_object(),
            "string" => !v.is_string(),
            "bool" => !v.is_boolean(),
            "map" => match v.as_object() {
                None => return complaint(v, field, "map[string]string"),
                Some(m) => {
                    if let Some(item) = m.values().find(|x| !x.is_string()) {
                        return complaint(item, field, "string");
                    }
                    false
                }
            },
            _ => match v.as_array() {
                None => return complaint(v, field, "[]string"),
                Some(a) => {
                    if let Some(item) = a.iter().find(|x| !x.is_string()) {
                        return complaint(item, field, "string");
                    }
                    false
                }
            },
        };
        if bad {
            return complaint(v, field, want);
        }
    }
    None
}

//! What both services do the same way with values: the property of a read, tags as a JSON
//! object (`metadataPolicy: Fetch`), a pushed property merged into a JSON value, and batching.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use strongroom_provider_api::{ProviderError, RemoteRef, SecretBytes, json_property};

/// The error for a read of `name` that found nothing: the key, or the version asked for.
pub(crate) fn missing(name: &str, remote: &RemoteRef) -> ProviderError {
    match remote.version.as_deref() {
        Some(v) if !v.is_empty() && !remote.fetch_metadata => {
            ProviderError::not_found_in(name, format!("version {v:?}"))
        }
        _ => ProviderError::not_found(name),
    }
}

/// The value (or its `property`) read from `key`.
pub(crate) fn select(
    key: &str,
    value: SecretBytes,
    property: Option<&str>,
) -> Result<SecretBytes, ProviderError> {
    match property.filter(|p| !p.is_empty()) {
        // A member named exactly `property` wins over a gjson path, as upstream's escaping of
        // dots does: `tls.crt` reads that member when it exists.
        Some(p) => json_property(key, value.expose(), p),
        None => Ok(value),
    }
}

/// Tags as upstream returns them for `metadataPolicy: Fetch`: one JSON object, keys sorted.
pub(crate) fn tags_json(tags: &BTreeMap<String, String>) -> SecretBytes {
    SecretBytes::new(serde_json::to_vec(tags).unwrap_or_else(|_| b"{}".to_vec()))
}

/// The value a push of `value` writes: `value` itself without a property; with one, the current
/// JSON value (empty when none) with `property` set to `value` as a string. A dotted property
/// sets a nested member (`\.` escapes a dot), as upstream's sjson paths do.
pub(crate) fn merge_property(
    key: &str,
    current: Option<&[u8]>,
    property: Option<&str>,
    value: &SecretBytes,
) -> Result<SecretBytes, ProviderError> {
    let Some(property) = property.filter(|p| !p.is_empty()) else {
        return Ok(value.clone());
    };
    let mut doc = match current.filter(|c| !c.is_empty()) {
        None => Value::Object(Map::new()),
        Some(bytes) => serde_json::from_slice::<Value>(bytes)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| {
                ProviderError::InvalidConfig(format!(
                    "remote key {key:?} does not hold a JSON object, so property {property:?} cannot be set in it"
                ))
            })?,
    };
    let text = String::from_utf8_lossy(value.expose()).into_owned();
    let path = split_path(property);
    let mut node = &mut doc;
    for (i, segment) in path.iter().enumerate() {
        let Value::Object(members) = node else {
            return Err(ProviderError::InvalidConfig(format!(
                "property {property:?} of remote key {key:?} crosses a member that is not an object"
            )));
        };
        if i + 1 == path.len() {
            members.insert(segment.clone(), Value::String(text));
            break;
        }
        node = members
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    Ok(SecretBytes::new(
        strongroom_provider_api::go_json(&doc).unwrap_or_default(),
    ))
}

/// `a.b\.c` → `["a", "b.c"]`.
fn split_path(path: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), out.last_mut()) {
                    last.push(next);
                }
            }
            '.' => out.push(String::new()),
            other => {
                if let Some(last) = out.last_mut() {
                    last.push(other);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: &SecretBytes) -> String {
        String::from_utf8_lossy(b.expose()).into_owned()
    }

    #[test]
    fn merges_properties() {
        let v = SecretBytes::from("s3cr3t");
        let whole = merge_property("k", Some(b"{}"), None, &v).unwrap();
        assert_eq!(text(&whole), "s3cr3t");
        let fresh = merge_property("k", None, Some("user"), &v).unwrap();
        assert_eq!(text(&fresh), r#"{"user":"s3cr3t"}"#);
        let merged = merge_property("k", Some(br#"{"a":1,"b":{"c":2}}"#), Some("b.d"), &v).unwrap();
        assert_eq!(text(&merged), r#"{"a":1,"b":{"c":2,"d":"s3cr3t"}}"#);
        let escaped = merge_property("k", None, Some(r"tls\.crt"), &v).unwrap();
        assert_eq!(text(&escaped), r#"{"tls.crt":"s3cr3t"}"#);
        let err = merge_property("k", Some(b"plain canary"), Some("p"), &v).unwrap_err();
        assert!(!err.to_string().contains("canary"));
        assert!(merge_property("k", Some(br#"{"a":1}"#), Some("a.b"), &v).is_err());
    }

    #[test]
    fn selects_dotted_members_first() {
        let v = SecretBytes::from(r#"{"tls.crt":"A","tls":{"crt":"B"}}"#);
        assert_eq!(text(&select("k", v.clone(), Some("tls.crt")).unwrap()), "A");
        assert_eq!(select("k", v.clone(), None).unwrap().expose(), v.expose());
        let tags = BTreeMap::from([("b".to_string(), "2".to_string()), ("a".into(), "1".into())]);
        assert_eq!(text(&tags_json(&tags)), r#"{"a":"1","b":"2"}"#);
    }
}

//! `metadataPolicy: Fetch`: an object's tags plus its `attribute.*` times, shaped exactly as
//! upstream returns them.

use std::collections::BTreeMap;

use serde_json::Value;
use strongroom_provider_api::{ProviderError, SecretBytes, SecretMap, go_json, json_property};

const ATTRIBUTES: [(&str, &str); 4] = [
    ("exp", "attribute.expires"),
    ("created", "attribute.created"),
    ("updated", "attribute.updated"),
    ("nbf", "attribute.notBefore"),
];

/// Unix seconds as Go's `time.RFC3339` in UTC.
fn rfc3339(v: &Value) -> Option<String> {
    let secs = v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))?;
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn tags(bundle: &Value) -> BTreeMap<String, String> {
    bundle
        .get("tags")
        .and_then(Value::as_object)
        .map(|t| {
            t.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Tags merged with the `attribute.*` times (upstream's `getSecretAllMetadata`).
pub(crate) fn all_metadata(bundle: &Value) -> BTreeMap<String, String> {
    let mut out = tags(bundle);
    if let Some(attrs) = bundle.get("attributes") {
        for (field, key) in ATTRIBUTES {
            if let Some(t) = attrs.get(field).and_then(rfc3339) {
                out.insert(key.into(), t);
            }
        }
    }
    out
}

/// One metadata entry, or all as a JSON object (upstream's `getSecretTag`): an exact key
/// first, else `<tag>.<gjson path>` into a JSON tag value.
pub(crate) fn tag_value(
    key: &str,
    meta: &BTreeMap<String, String>,
    property: Option<&str>,
) -> Result<SecretBytes, ProviderError> {
    let Some(property) = property.filter(|p| !p.is_empty()) else {
        return go_json(meta)
            .map(SecretBytes::new)
            .map_err(|_| ProviderError::Malformed("the tags could not be written as JSON".into()));
    };
    if let Some(v) = meta.get(property) {
        return Ok(SecretBytes::from(v.as_str()));
    }
    let missing = || ProviderError::not_found_in(key, format!("tag {property}"));
    match property.split_once('.') {
        Some((tag, path)) if !tag.is_empty() => {
            let value = meta.get(tag).ok_or_else(missing)?;
            json_property(key, value.as_bytes(), path)
        }
        _ => Err(missing()),
    }
}

/// `dataFrom.extract` with `metadataPolicy: Fetch` (upstream's legacy client): every tag as
/// `<name>_<tag>` (a JSON object tag split into `<name>_<tag>_<member>`), the times as
/// `<name>_attribute.*`; with `property`, only `<key>_<property>`.
pub(crate) fn tag_map(key: &str, name: &str, bundle: &Value, property: Option<&str>) -> SecretMap {
    let mut all = BTreeMap::new();
    for (tag, value) in tags(bundle) {
        let entry = format!("{name}_{tag}");
        match serde_json::from_str::<BTreeMap<String, String>>(&value) {
            Ok(members) => {
                for (k, v) in members {
                    all.insert(format!("{entry}_{k}"), v);
                }
            }
            Err(_) => {
                all.insert(entry, value);
            }
        }
    }
    if let Some(attrs) = bundle.get("attributes") {
        for (field, attr) in ATTRIBUTES {
            if let Some(t) = attrs.get(field).and_then(rfc3339) {
                all.insert(format!("{name}_{attr}"), t);
            }
        }
    }
    if let Some(p) = property.filter(|p| !p.is_empty()) {
        let wanted = format!("{key}_{p}");
        let value = tag_value(key, &all, Some(&wanted)).unwrap_or_else(|_| SecretBytes::from(""));
        return SecretMap::from([(wanted, value)]);
    }
    all.into_iter()
        .map(|(k, v)| (k, SecretBytes::from(v.as_str())))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn text(b: &SecretBytes) -> String {
        String::from_utf8_lossy(b.expose()).into_owned()
    }

    #[test]
    fn metadata_as_upstream() {
        let bundle = json!({
            "value": "canary",
            "tags": {"team": "a", "conf": "{\"x\":\"1\"}"},
            "attributes": {"enabled": true, "created": 1700000000, "updated": 1700000001, "exp": 1800000000}
        });
        let meta = all_metadata(&bundle);
        let whole = text(&tag_value("k", &meta, None).unwrap());
        assert_eq!(
            whole,
            r#"{"attribute.created":"2023-11-14T22:13:20Z","attribute.expires":"2027-01-15T08:00:00Z","attribute.updated":"2023-11-14T22:13:21Z","conf":"{\"x\":\"1\"}","team":"a"}"#
        );
        assert_eq!(text(&tag_value("k", &meta, Some("team")).unwrap()), "a");
        assert_eq!(text(&tag_value("k", &meta, Some("conf.x")).unwrap()), "1");
        assert!(
            tag_value("k", &meta, Some("nope"))
                .unwrap_err()
                .is_not_found()
        );
        let map = tag_map("db", "db", &bundle, None);
        assert_eq!(text(&map["db_team"]), "a");
        assert_eq!(text(&map["db_conf_x"]), "1");
        assert_eq!(text(&map["db_attribute.created"]), "2023-11-14T22:13:20Z");
        assert!(!map.values().any(|v| text(v).contains("canary")));
        let one = tag_map("db", "db", &bundle, Some("team"));
        assert_eq!(one.len(), 1);
        assert_eq!(text(&one["db_team"]), "a");
    }
}

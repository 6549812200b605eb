//! Reading one property out of a JSON secret value, and splitting a JSON object into keys: the
//! two things most providers do the same way (upstream uses gjson paths for `property`).

use serde_json::Value;

use crate::{ProviderError, SecretBytes, SecretMap};

/// The `property` of the JSON value stored under `key`.
///
/// A top-level member named exactly `property` wins (so `tls.crt` works without escaping),
/// otherwise `property` is a gjson path (`a.b`, `list.0`, `a\.b`). Strings come back without
/// quotes, anything else as its JSON text.
pub fn json_property(
    key: &str,
    value: &[u8],
    property: &str,
) -> Result<SecretBytes, ProviderError> {
    let text = std::str::from_utf8(value).map_err(|_| not_json(key))?;
    let parsed: Value = serde_json::from_str(text).map_err(|_| not_json(key))?;
    if let Some(member) = parsed.as_object().and_then(|o| o.get(property)) {
        return Ok(json_text(member));
    }
    let found = gjson::get(text, property);
    if !found.exists() {
        return Err(ProviderError::not_found_in(
            key,
            format!("property {property:?}"),
        ));
    }
    Ok(SecretBytes::from(found.str()))
}

/// The members of the JSON object stored under `key`, one entry each.
pub fn map_from_json(key: &str, value: &[u8]) -> Result<SecretMap, ProviderError> {
    let parsed: Value = serde_json::from_slice(value).map_err(|_| not_json(key))?;
    let Value::Object(members) = parsed else {
        return Err(ProviderError::Malformed(format!(
            "value of remote key {key:?} is not a JSON object, so it cannot be extracted into keys"
        )));
    };
    Ok(members
        .iter()
        .map(|(name, member)| (name.clone(), json_text(member)))
        .collect())
}

fn json_text(value: &Value) -> SecretBytes {
    match value {
        Value::String(s) => SecretBytes::from(s.as_str()),
        other => SecretBytes::new(go_json(other).unwrap_or_default()),
    }
}

/// `value` as JSON the way upstream's Go writes it (`json.Marshal`): object members sorted by
/// name at every level, whatever order they came in. (serde_json keeps insertion order when
/// any crate in the build turns on its `preserve_order` feature, so the order must not be left
/// to it.)
pub fn go_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Sorted(&serde_json::to_value(value)?))
}

/// A JSON value that serializes its object members sorted by name.
struct Sorted<'a>(&'a Value);

impl serde::Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(members) => {
                let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(b.0));
                let mut map = s.serialize_map(Some(sorted.len()))?;
                for (name, member) in sorted {
                    map.serialize_entry(name, &Sorted(member))?;
                }
                map.end()
            }
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Sorted(item))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

fn not_json(key: &str) -> ProviderError {
    ProviderError::Malformed(format!(
        "value of remote key {key:?} is not JSON, so a property cannot be read from it"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: SecretBytes) -> String {
        String::from_utf8(b.expose().to_vec()).unwrap_or_default()
    }

    #[test]
    fn go_json_sorts_members_at_every_level() {
        let mut inner = serde_json::Map::new();
        inner.insert("z".into(), Value::from(1));
        inner.insert("a".into(), Value::from(2));
        let mut outer = serde_json::Map::new();
        outer.insert("y".into(), Value::Array(vec![Value::Object(inner)]));
        outer.insert("b".into(), Value::from("x"));
        let text = go_json(&Value::Object(outer)).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&text),
            r#"{"b":"x","y":[{"a":2,"z":1}]}"#
        );
    }

    #[test]
    fn exact_member_then_path() {
        let v = br#"{"tls.crt":"A","a":{"b":[1,{"c":"d"}]},"n":5}"#;
        assert_eq!(
            text(json_property("k", v, "tls.crt").unwrap_or_default()),
            "A"
        );
        assert_eq!(
            text(json_property("k", v, "a.b.1.c").unwrap_or_default()),
            "d"
        );
        assert_eq!(text(json_property("k", v, "n").unwrap_or_default()), "5");
        assert_eq!(
            text(json_property("k", v, "a").unwrap_or_default()),
            r#"{"b":[1,{"c":"d"}]}"#
        );
        assert!(json_property("k", v, "missing").is_err_and(|e| e.is_not_found()));
        assert!(
            json_property("k", b"not json canary", "x")
                .is_err_and(|e| !e.to_string().contains("canary"))
        );
    }

    #[test]
    fn object_members_become_keys() {
        let m = map_from_json("k", br#"{"user":"u","port":5432,"nested":{"x":true}}"#)
            .unwrap_or_default();
        assert_eq!(m.len(), 3);
        assert_eq!(text(m["port"].clone()), "5432");
        assert_eq!(text(m["nested"].clone()), r#"{"x":true}"#);
        assert!(map_from_json("k", b"[1]").is_err());
    }
}

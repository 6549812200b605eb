//! Duplicate fields in a JSON body (`{"a": 1, "a": 2}`), which `fieldValidation` reports: the
//! decoder keeps the last value, as the real server's does.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

struct Seed<'a> {
    path: String,
    found: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            let seed = Seed {
                path: format!("{}[{i}]", self.path),
                found: &mut *self.found,
            };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                key.clone()
            } else {
                format!("{}.{key}", self.path)
            };
            if !seen.insert(key) {
                self.found.push(path.clone());
            }
            map.next_value_seed(Seed {
                path,
                found: &mut *self.found,
            })?;
        }
        Ok(())
    }
}

/// The paths of duplicate fields in a JSON document (empty when it is not JSON).
pub fn find(bytes: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = Seed {
        path: String::new(),
        found: &mut found,
    };
    if seed.deserialize(&mut de).is_err() {
        return Vec::new();
    }
    found
}

/// Builds the JSON value of a body in one pass, noting whether any object repeated a key
/// (the last value wins, as in the real server's decoder).
struct Building<'a> {
    duplicate: &'a std::cell::Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Building<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<serde_json::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Building<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Number::from_f64(v)
            .map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<serde_json::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Building {
            duplicate: self.duplicate,
        })? {
            items.push(v);
        }
        Ok(serde_json::Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<serde_json::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let v = map.next_value_seed(Building {
                duplicate: self.duplicate,
            })?;
            if out.insert(key, v).is_some() {
                self.duplicate.set(true);
            }
        }
        Ok(serde_json::Value::Object(out))
    }
}

/// Parses a JSON body in one pass: the value, and whether some object repeated a key (then
/// [`find`] names them).
pub fn parse(bytes: &[u8]) -> Result<(serde_json::Value, bool), serde_json::Error> {
    let duplicate = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Building {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((v, duplicate.get()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_duplicates_with_their_paths() {
        let body = br#"{"metadata": {"name": "a", "name": "b"}, "spec": {"items": [{"x": 1, "x": 2}]}, "spec": {}}"#;
        assert_eq!(
            super::find(body),
            ["metadata.name", "spec.items[0].x", "spec"]
        );
        assert!(super::find(br#"{"a": 1}"#).is_empty());
        assert!(super::find(b"a: 1").is_empty(), "not JSON");
        let (v, dup) = super::parse(br#"{"a": 1, "a": {"b": [1, 2.5, "x", null, true]}}"#).unwrap();
        assert!(dup);
        assert_eq!(
            v,
            serde_json::json!({"a": {"b": [1, 2.5, "x", null, true]}})
        );
        assert!(!super::parse(br#"{"a": 1}"#).unwrap().1);
        assert!(super::parse(b"{} trailing").is_err());
    }
}

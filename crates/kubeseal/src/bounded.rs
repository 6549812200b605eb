//! YAML input read within a size budget. YAML aliases repeat a value without repeating its
//! text: 2,000 aliases of one 200 KB scalar make a 218 KB file that expands to 400 MB. Each
//! document is built into a JSON value here while counting what it expands to, and reading
//! stops with a clear error once the budget is spent, before the memory and the time are.

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// What a document may expand to: twice the input plus 1 MiB (plain YAML expands to about its
/// own size; a Kubernetes Secret is at most 1 MiB).
pub fn budget_for(input_len: usize) -> usize {
    input_len.saturating_mul(2).saturating_add(1 << 20)
}

/// Bytes left to expand into.
pub struct Budget {
    left: Cell<usize>,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            left: Cell::new(limit),
            limit,
        }
    }

    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        let cost = bytes.saturating_add(1);
        match self.left.get().checked_sub(cost) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(E::custom(format!(
                "the input expands to more than {} bytes (YAML aliases repeating a large value?): refused",
                self.limit
            ))),
        }
    }
}

/// Deserializes one value as JSON within `budget`.
pub struct Bounded<'a>(pub &'a Budget);

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor(self.0))
    }
}

struct KeySeed<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let key = String::deserialize(d)?;
        self.0.charge(key.len())?;
        Ok(key)
    }
}

struct ValueVisitor<'a>(&'a Budget);

impl<'de> Visitor<'de> for ValueVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML or JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.charge(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.charge(8)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.charge(8)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.charge(8)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Bounded(self.0).deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.charge(0)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Bounded(self.0))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.charge(0)?;
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed(self.0))? {
            let value = map.next_value_seed(Bounded(self.0))?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Value, String> {
        let budget = Budget::new(budget_for(text.len()));
        let de = serde_yaml_ng::Deserializer::from_str(text);
        Bounded(&budget).deserialize(de).map_err(|e| e.to_string())
    }

    #[test]
    fn plain_documents_read_as_before() {
        let v = read("a: 1\nb: [x, true, null, 2.5]\nc: {d: e}\n").unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": ["x", true, null, 2.5], "c": {"d": "e"}})
        );
        let aliased = read("base: &b {k: v}\ncopy: *b\n").unwrap();
        assert_eq!(aliased["copy"]["k"], "v", "small aliases still work");
    }

    #[test]
    fn an_alias_bomb_is_refused_quickly() {
        let big = "x".repeat(200_000);
        let mut text = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: bomb}}\nx: &big {big}\nstringData:\n"
        );
        for i in 0..2000 {
            text.push_str(&format!("  k{i}: *big\n"));
        }
        let start = std::time::Instant::now();
        let err = read(&text).unwrap_err();
        assert!(err.contains("expands to more than"), "{err}");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
}

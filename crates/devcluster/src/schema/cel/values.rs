//! JSON values as the CEL values a rule sees, typed by the schema as the real server types
//! them: `type: integer` is a CEL `int` and `type: number` a `double`, whatever the JSON
//! looks like (`1` in a `number` field is `1.0`). Values without a declared type
//! (`x-kubernetes-int-or-string`, preserved unknown fields) go by their JSON form.

use std::collections::HashMap;

use serde_json::{Number, Value};

/// A JSON number by its form: an `int` if it is integral, else a `double`.
fn by_form(n: &Number) -> cel::Value {
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => cel::Value::Int(i),
        (None, Some(u)) => cel::Value::UInt(u),
        _ => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
    }
}

/// CEL's reserved words: a property so named is reached as `__word__`.
const RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// The name a rule uses for the declared property `name`, escaped as the real server escapes
/// it (`__` → `__underscores__`, `.` → `__dot__`, `-` → `__dash__`, `/` → `__slash__`, a
/// reserved word `w` → `__w__`); `None` when no rule can reach it (a name that does not match
/// `[a-zA-Z_.-/][a-zA-Z0-9_.-/]*`).
pub(super) fn escape_property(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || "_.-/".contains(c));
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c)) {
        return None;
    }
    if RESERVED.contains(&name) {
        return Some(format!("__{name}__"));
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("__") {
            out.push_str("__underscores__");
            rest = after;
            continue;
        }
        match c {
            '.' => out.push_str("__dot__"),
            '-' => out.push_str("__dash__"),
            '/' => out.push_str("__slash__"),
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

/// The CEL value of `v`, whose schema is `schema` (`None` where the schema says nothing).
pub(super) fn to_cel(schema: Option<&Value>, v: &Value) -> cel::Value {
    let declared = schema.and_then(|s| s.get("type")).and_then(Value::as_str);
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match declared {
            Some("number") => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
            Some("integer") => n.as_i64().map_or_else(|| by_form(n), cel::Value::Int),
            _ => by_form(n),
        },
        Value::String(s) => cel::Value::from(s.as_str()),
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            cel::Value::from(
                items
                    .iter()
                    .map(|i| to_cel(item_schema, i))
                    .collect::<Vec<_>>(),
            )
        }
        Value::Object(map) => {
            let props = schema
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object);
            let additional = schema
                .and_then(|s| s.get("additionalProperties"))
                .filter(|a| a.is_object());
            cel::Value::from(
                map.iter()
                    .filter_map(|(k, child)| match props.and_then(|p| p.get(k)) {
                        // a declared property goes by its escaped name, or not at all
                        Some(sub) => Some((escape_property(k)?, to_cel(Some(sub), child))),
                        None => Some((k.clone(), to_cel(additional, child))),
                    })
                    .collect::<HashMap<String, cel::Value>>(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_follow_the_schema_type() {
        let schema = json!({"type": "object", "properties": {
            "ratio": {"type": "number"},
            "count": {"type": "integer"},
            "list": {"type": "array", "items": {"type": "number"}},
            "map": {"type": "object", "additionalProperties": {"type": "number"}},
        }});
        let v = to_cel(
            Some(&schema),
            &json!({"ratio": 1, "count": 2, "list": [3], "map": {"a": 4}, "free": 5}),
        );
        let cel::Value::Map(m) = v else {
            panic!("not a map: {v:?}")
        };
        let get = |k: &str| m.get(&cel::objects::Key::from(k)).cloned();
        assert_eq!(get("ratio"), Some(cel::Value::Float(1.0)));
        assert_eq!(get("count"), Some(cel::Value::Int(2)));
        assert_eq!(
            get("list"),
            Some(cel::Value::from(vec![cel::Value::Float(3.0)]))
        );
        assert_eq!(get("free"), Some(cel::Value::Int(5)), "no schema: by form");
        let Some(cel::Value::Map(inner)) = get("map") else {
            panic!("map")
        };
        assert_eq!(
            inner.get(&cel::objects::Key::from("a")).cloned(),
            Some(cel::Value::Float(4.0))
        );
        assert_eq!(to_cel(None, &json!(1.5)), cel::Value::Float(1.5));
    }

    #[test]
    fn declared_properties_go_by_their_escaped_names() {
        for (name, want) in [
            ("plain", Some("plain")),
            ("x-prop", Some("x__dash__prop")),
            ("redact__d", Some("redact__underscores__d")),
            ("a.b/c", Some("a__dot__b__slash__c")),
            ("namespace", Some("__namespace__")),
            ("_x", Some("_x")),
            ("1abc", None),
            ("a b", None),
            ("", None),
        ] {
            assert_eq!(escape_property(name).as_deref(), want, "{name}");
        }
        let schema = json!({"type": "object", "properties": {
            "x-prop": {"type": "integer"},
            "1bad": {"type": "integer"},
            "map": {"type": "object", "additionalProperties": {"type": "string"}},
        }});
        let v = to_cel(
            Some(&schema),
            &json!({"x-prop": 1, "1bad": 2, "map": {"a-b": "kept as written"}}),
        );
        let cel::Value::Map(m) = v else {
            panic!("not a map: {v:?}")
        };
        let get = |k: &str| m.get(&cel::objects::Key::from(k)).cloned();
        assert_eq!(get("x__dash__prop"), Some(cel::Value::Int(1)));
        assert_eq!(get("x-prop"), None);
        assert_eq!(m.map.len(), 2, "an unreachable name is left out: {m:?}");
        let Some(cel::Value::Map(inner)) = get("map") else {
            panic!("map")
        };
        assert!(
            inner.get(&cel::objects::Key::from("a-b")).is_some(),
            "map keys are not escaped"
        );
    }
}

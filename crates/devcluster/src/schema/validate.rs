//! Structural schema validation: types, `nullable`, int-or-string, formats, enums, patterns,
//! limits, `required`, list types and embedded resources, with the real server's messages.

use serde_json::Value;

use super::{Cause, Path, Step, value_repr};

fn flag(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

fn type_ok(wanted: &str, v: &Value) -> bool {
    match (wanted, v) {
        ("string", Value::String(_))
        | ("boolean", Value::Bool(_))
        | ("array", Value::Array(_))
        | ("object", Value::Object(_))
        | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => is_integer(n),
        _ => false,
    }
}

fn in_body(path: &Path) -> String {
    if path.is_root() {
        "body".to_string()
    } else {
        format!("{path} in body")
    }
}

fn num(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn count(schema: &Value, key: &str) -> Option<usize> {
    schema
        .get(key)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

fn format_number(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    }
}

/// Checks `v` against `schema` at `path`, adding each problem to `causes`.
pub fn validate(schema: &Value, v: &Value, path: &Path, root: bool, causes: &mut Vec<Cause>) {
    if v.is_null() {
        if !flag(schema, "nullable")
            && let Some(t) = schema.get("type").and_then(Value::as_str)
        {
            causes.push(Cause::invalid(
                path,
                &Value::String("null".into()),
                format!("{} must be of type {t}: \"null\"", in_body(path)),
            ));
        }
        return;
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        if !matches!(v, Value::String(_)) && !matches!(v, Value::Number(n) if is_integer(n)) {
            causes.push(Cause::invalid(
                path,
                &Value::String(type_name(v).into()),
                format!(
                    "{} must be of type integer or string: {:?}",
                    in_body(path),
                    type_name(v)
                ),
            ));
            return;
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !type_ok(t, v)
    {
        causes.push(Cause::invalid(
            path,
            &Value::String(type_name(v).into()),
            format!("{} must be of type {t}: {:?}", in_body(path), type_name(v)),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(value_repr).collect();
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: path.clone(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                value_repr(v),
                list.join(", ")
            ),
        });
    }
    junctors(schema, v, path, causes);
    match v {
        Value::String(s) => string(schema, s, v, path, causes),
        Value::Number(n) => number(schema, n, v, path, causes),
        Value::Array(items) => array(schema, items, v, path, causes),
        Value::Object(map) => {
            let resource = root || flag(schema, "x-kubernetes-embedded-resource");
            if flag(schema, "x-kubernetes-embedded-resource") {
                for k in ["apiVersion", "kind"] {
                    if map.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                        causes.push(Cause::required(
                            &path.child(Step::Field(k.into())),
                            "must not be empty",
                        ));
                    }
                }
            }
            if let Some(min) = count(schema, "minProperties")
                && map.len() < min
            {
                causes.push(Cause::invalid(
                    path,
                    &Value::from(map.len()),
                    format!("{} should have at least {min} properties", in_body(path)),
                ));
            }
            if let Some(max) = count(schema, "maxProperties")
                && map.len() > max
            {
                causes.push(Cause {
                    reason: "FieldValueTooMany",
                    field: path.clone(),
                    message: format!("Too many: {}: must have at most {max} items", map.len()),
                });
            }
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(req) {
                    causes.push(Cause::required(&path.child(Step::Field(req.into())), ""));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                if resource && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(sub) = props.and_then(|p| p.get(k)) {
                    validate(
                        sub,
                        child,
                        &path.child(Step::Field(k.clone())),
                        false,
                        causes,
                    );
                } else if let Some(sub) = additional {
                    validate(sub, child, &path.child(Step::Key(k.clone())), false, causes);
                }
            }
        }
        _ => {}
    }
}

/// The problems `v` has against `sub`, validated on its own.
fn problems(sub: &Value, v: &Value, path: &Path) -> Vec<Cause> {
    let mut found = Vec::new();
    validate(sub, v, path, false, &mut found);
    found
}

/// A junctor's own error: the real server reports it at the root (`<nil>`) with the path
/// quoted inside the message.
fn junctor_cause(detail: String) -> Cause {
    Cause::invalid(
        &Path(vec![Step::Field("<nil>".into())]),
        &Value::String("null".into()),
        detail,
    )
}

/// `allOf`, `anyOf`, `oneOf` and `not` (structural schemas allow them for value validations
/// only): the real server's composite messages, plus the problems of the alternative that
/// came closest (fewest problems here, where the real server counts passed checks).
fn junctors(schema: &Value, v: &Value, path: &Path, causes: &mut Vec<Cause>) {
    let quoted = format!("{:?}", path.to_string());
    if let Some(subs) = schema.get("anyOf").and_then(Value::as_array) {
        let results: Vec<Vec<Cause>> = subs.iter().map(|s| problems(s, v, path)).collect();
        if !results.is_empty() && results.iter().all(|r| !r.is_empty()) {
            causes.push(junctor_cause(format!(
                "{quoted} must validate at least one schema (anyOf)"
            )));
            if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                causes.extend(best);
            }
        }
    }
    if let Some(subs) = schema.get("oneOf").and_then(Value::as_array) {
        let results: Vec<Vec<Cause>> = subs.iter().map(|s| problems(s, v, path)).collect();
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if !results.is_empty() && valid != 1 {
            let found = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            causes.push(junctor_cause(format!(
                "{quoted} must validate one and only one schema (oneOf). {found}"
            )));
            if valid == 0
                && let Some(best) = results.into_iter().min_by_key(Vec::len)
            {
                causes.extend(best);
            }
        }
    }
    if let Some(subs) = schema.get("allOf").and_then(Value::as_array) {
        let mut valid = 0;
        for sub in subs {
            let found = problems(sub, v, path);
            if found.is_empty() {
                valid += 1;
            }
            causes.extend(found);
        }
        if valid != subs.len() {
            let none = if valid == 0 { ". None validated" } else { "" };
            causes.push(junctor_cause(format!(
                "{quoted} must validate all the schemas (allOf){none}"
            )));
        }
    }
    if let Some(sub) = schema.get("not")
        && problems(sub, v, path).is_empty()
    {
        causes.push(junctor_cause(format!(
            "{quoted} must not validate the schema (not)"
        )));
    }
}

fn string(schema: &Value, s: &str, v: &Value, path: &Path, causes: &mut Vec<Cause>) {
    let chars = s.chars().count();
    if let Some(max) = count(schema, "maxLength")
        && chars > max
    {
        let unit = if max == 1 { "byte" } else { "bytes" };
        causes.push(Cause {
            reason: "FieldValueTooLong",
            field: path.clone(),
            message: format!("Too long: may not be more than {max} {unit}"),
        });
    }
    if let Some(min) = count(schema, "minLength")
        && chars < min
    {
        causes.push(Cause::invalid(
            path,
            v,
            format!("{} should be at least {min} chars long", in_body(path)),
        ));
    }
    if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(p) {
            Ok(re) if !re.is_match(s) => causes.push(Cause::invalid(
                path,
                v,
                format!("{} should match '{p}'", in_body(path)),
            )),
            _ => {}
        }
    }
    if let Some(f) = schema.get("format").and_then(Value::as_str)
        && !format_ok(f, s)
    {
        causes.push(Cause::invalid(
            path,
            v,
            format!("{} must be of type {f}: {s:?}", in_body(path)),
        ));
    }
}

/// The string formats the real server checks (others pass).
pub(super) fn format_ok(format: &str, s: &str) -> bool {
    use base64::Engine;
    match format {
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        "uuid" => uuid::Uuid::parse_str(s).is_ok() && s.len() == 36,
        "int32" => s.parse::<i32>().is_ok(),
        "int64" => s.parse::<i64>().is_ok(),
        _ => true,
    }
}

fn number(schema: &Value, n: &serde_json::Number, v: &Value, path: &Path, causes: &mut Vec<Cause>) {
    let f = n.as_f64().unwrap_or(0.0);
    match schema.get("format").and_then(Value::as_str) {
        Some("int32") if f < f64::from(i32::MIN) || f > f64::from(i32::MAX) => {
            causes.push(Cause::invalid(
                path,
                v,
                format!("{} must be of type int32: \"{n}\"", in_body(path)),
            ));
        }
        Some("int64") if !(n.is_i64() || n.as_f64().is_some_and(|f| f.abs() < 9.2e18)) => {
            causes.push(Cause::invalid(
                path,
                v,
                format!("{} must be of type int64: \"{n}\"", in_body(path)),
            ));
        }
        _ => {}
    }
    let exclusive = |k: &str| flag(schema, k);
    if let Some(min) = num(schema, "minimum") {
        let bad = if exclusive("exclusiveMinimum") {
            f <= min
        } else {
            f < min
        };
        if bad {
            let how = if exclusive("exclusiveMinimum") {
                "greater than"
            } else {
                "greater than or equal to"
            };
            causes.push(Cause::invalid(
                path,
                v,
                format!("{} should be {how} {}", in_body(path), format_number(min)),
            ));
        }
    }
    if let Some(max) = num(schema, "maximum") {
        let bad = if exclusive("exclusiveMaximum") {
            f >= max
        } else {
            f > max
        };
        if bad {
            let how = if exclusive("exclusiveMaximum") {
                "less than"
            } else {
                "less than or equal to"
            };
            causes.push(Cause::invalid(
                path,
                v,
                format!("{} should be {how} {}", in_body(path), format_number(max)),
            ));
        }
    }
    if let Some(m) = num(schema, "multipleOf")
        && m > 0.0
        && (f / m).fract() != 0.0
    {
        causes.push(Cause::invalid(
            path,
            v,
            format!(
                "{} should be a multiple of {}",
                in_body(path),
                format_number(m)
            ),
        ));
    }
}

fn array(schema: &Value, items: &[Value], v: &Value, path: &Path, causes: &mut Vec<Cause>) {
    let _ = v;
    if let Some(max) = count(schema, "maxItems")
        && items.len() > max
    {
        causes.push(Cause {
            reason: "FieldValueTooMany",
            field: path.clone(),
            message: format!("Too many: {}: must have at most {max} items", items.len()),
        });
    }
    if let Some(min) = count(schema, "minItems")
        && items.len() < min
    {
        causes.push(Cause::invalid(
            path,
            &Value::from(items.len()),
            format!("{} should have at least {min} items", in_body(path)),
        ));
    }
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    causes.push(Cause {
                        reason: "FieldValueDuplicate",
                        field: path.child(Step::Index(i)),
                        message: format!("Duplicate value: {}", value_repr(item)),
                    });
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let key_of = |item: &Value| -> Vec<Value> {
                keys.iter()
                    .map(|k| item.get(*k).cloned().unwrap_or(Value::Null))
                    .collect()
            };
            for (i, item) in items.iter().enumerate() {
                let k = key_of(item);
                if items[..i].iter().any(|o| key_of(o) == k) {
                    let shown: serde_json::Map<String, Value> = keys
                        .iter()
                        .zip(k)
                        .map(|(name, v)| (name.to_string(), v))
                        .collect();
                    causes.push(Cause {
                        reason: "FieldValueDuplicate",
                        field: path.child(Step::Index(i)),
                        message: format!("Duplicate value: {}", Value::Object(shown)),
                    });
                }
            }
        }
        _ => {}
    }
    if let Some(sub) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate(sub, item, &path.child(Step::Index(i)), false, causes);
        }
    }
}

//! `x-kubernetes-validations`: CEL rules with `self`, `oldSelf` (transition rules, evaluated
//! only on update where the old value exists), `message`, `messageExpression`, `reason` and
//! `fieldPath`.

use std::collections::HashMap;

use cel::{Context, Program};
use serde_json::Value;

use super::{Cause, Path, Step};

/// The CEL value of a JSON value.
fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => match n.as_u64() {
                Some(u) => cel::Value::UInt(u),
                None => cel::Value::Float(n.as_f64().unwrap_or(0.0)),
            },
        },
        Value::String(s) => cel::Value::from(s.as_str()),
        Value::Array(items) => cel::Value::from(items.iter().map(to_cel).collect::<Vec<_>>()),
        Value::Object(map) => cel::Value::from(
            map.iter()
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect::<HashMap<String, cel::Value>>(),
        ),
    }
}

fn references_old_self(rule: &str) -> bool {
    let bytes = rule.as_bytes();
    rule.match_indices("oldSelf").any(|(i, _)| {
        let before = i.checked_sub(1).and_then(|j| bytes.get(j));
        let after = bytes.get(i + "oldSelf".len());
        let ident = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        !ident(before) && !ident(after)
    })
}

/// Runs `source` with `self` (and `oldSelf`) bound.
fn run(source: &str, this: &Value, old: Option<&Value>) -> Result<cel::Value, String> {
    let program = Program::compile(source).map_err(|e| format!("compilation failed: {e}"))?;
    let mut ctx = Context::default();
    ctx.add_variable_from_value("self", to_cel(this));
    if let Some(old) = old {
        ctx.add_variable_from_value("oldSelf", to_cel(old));
    }
    program.execute(&ctx).map_err(|e| e.to_string())
}

/// Appends a rule's `fieldPath` (`.spec.x`, `.items['k']`) to `path`.
fn with_field_path(path: &Path, field_path: &str) -> Path {
    let mut out = path.clone();
    let mut rest = field_path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            out = out.child(Step::Field(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            let inner = r[..end].trim_matches(|c| c == '\'' || c == '"');
            out = match inner.parse::<usize>() {
                Ok(i) => out.child(Step::Index(i)),
                Err(_) => out.child(Step::Key(inner.to_string())),
            };
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            break;
        }
    }
    out
}

fn schema_type(schema: &Value) -> Value {
    Value::String(
        schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("object")
            .to_string(),
    )
}

fn check_rules(
    schema: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &Path,
    causes: &mut Vec<Cause>,
) {
    let Some(rules) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    else {
        return;
    };
    for r in rules {
        let Some(rule) = r.get("rule").and_then(Value::as_str) else {
            continue;
        };
        let transition = references_old_self(rule);
        if transition && old.is_none() {
            continue;
        }
        let at = match r.get("fieldPath").and_then(Value::as_str) {
            Some(fp) => with_field_path(path, fp),
            None => path.clone(),
        };
        let detail = match run(rule, v, old.filter(|_| transition)) {
            Ok(cel::Value::Bool(true)) => continue,
            Ok(cel::Value::Bool(false)) => {
                let from_expression =
                    r.get("messageExpression")
                        .and_then(Value::as_str)
                        .and_then(|e| match run(e, v, old.filter(|_| transition)) {
                            Ok(cel::Value::String(s)) if !s.trim().is_empty() => {
                                Some(s.to_string())
                            }
                            _ => None,
                        });
                from_expression
                    .or_else(|| {
                        r.get("message")
                            .and_then(Value::as_str)
                            .filter(|m| !m.is_empty())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| format!("failed rule: {rule}"))
            }
            Ok(_) => format!("rule did not evaluate to a bool: {rule}"),
            Err(e) => format!("{e} evaluating rule: {rule}"),
        };
        let value = schema_type(schema);
        causes.push(match r.get("reason").and_then(Value::as_str) {
            Some("FieldValueForbidden") => Cause::forbidden(&at, &detail),
            Some("FieldValueRequired") => Cause::required(&at, &detail),
            Some("FieldValueDuplicate") => Cause {
                reason: "FieldValueDuplicate",
                field: at,
                message: format!("Duplicate value: {}", super::value_repr(&value)),
            },
            _ => Cause::invalid(&at, &value, detail),
        });
    }
}

/// The item of `old` (a list) that correlates with `item`: by the list-map keys.
fn correlated<'a>(schema: &Value, item: &Value, old: Option<&'a Value>) -> Option<&'a Value> {
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    old?.as_array()?
        .iter()
        .find(|o| keys.iter().all(|k| o.get(*k) == item.get(*k)))
}

/// Evaluates every rule of `schema` and its children against `v`.
pub fn validate(
    schema: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &Path,
    causes: &mut Vec<Cause>,
) {
    if v.is_null() {
        return;
    }
    check_rules(schema, v, old, path, causes);
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                let old_child = old.and_then(|o| o.get(k));
                if let Some(sub) = props.and_then(|p| p.get(k)) {
                    validate(
                        sub,
                        child,
                        old_child,
                        &path.child(Step::Field(k.clone())),
                        causes,
                    );
                } else if let Some(sub) = additional {
                    validate(
                        sub,
                        child,
                        old_child,
                        &path.child(Step::Key(k.clone())),
                        causes,
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    let old_item = correlated(schema, item, old);
                    validate(sub, item, old_item, &path.child(Step::Index(i)), causes);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transition_rules_are_recognised() {
        assert!(references_old_self("self == oldSelf"));
        assert!(!references_old_self("self.oldSelfish == 1"));
    }

    #[test]
    fn field_paths_extend_the_path() {
        let p = with_field_path(&Path::default(), ".spec.items['a-b'].x");
        assert_eq!(p.to_string(), "spec.items[a-b].x");
    }

    #[test]
    fn rules_see_self_and_old_self() {
        let schema = json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.min <= self.max", "message": "min must not exceed max"},
            {"rule": "self.max >= oldSelf.max", "messageExpression": "'max went down to ' + string(self.max)"},
        ]});
        let mut causes = Vec::new();
        validate(
            &schema,
            &json!({"min": 3, "max": 2}),
            Some(&json!({"min": 1, "max": 5})),
            &Path::default().child(Step::Field("spec".into())),
            &mut causes,
        );
        let texts: Vec<String> = causes.iter().map(Cause::text).collect();
        assert_eq!(
            texts,
            [
                "spec: Invalid value: \"object\": min must not exceed max",
                "spec: Invalid value: \"object\": max went down to 2"
            ]
        );
        let mut causes = Vec::new();
        validate(
            &schema,
            &json!({"min": 1, "max": 2}),
            None,
            &Path::default(),
            &mut causes,
        );
        assert!(
            causes.is_empty(),
            "transition rules skip creates: {causes:?}"
        );
    }
}

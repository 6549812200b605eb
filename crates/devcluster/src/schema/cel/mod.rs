//! `x-kubernetes-validations`: CEL rules with `self`, `oldSelf` (transition rules, evaluated
//! only on update where the old value exists, or always with `oldSelf` an optional when the
//! rule sets `optionalOldSelf`), `message`, `messageExpression`, `reason` and `fieldPath`.
//!
//! Rules run in the environment the real server gives CRD rules ([`env`]): the `cel` crate's
//! standard library and optionals, its strings extension, and Kubernetes' libraries, one module
//! each. Values are typed by the schema ([`values`]).

/// Implements [`cel::common::value::Val`] for an opaque library type (`Clone + PartialEq`),
/// named `$name` in CEL.
macro_rules! opaque_val {
    ($ty:ty, $name:literal) => {
        impl cel::common::value::Val for $ty {
            fn get_type(&self) -> &cel::common::types::Type {
                <Self as cel::common::value::Val>::cel_type()
            }

            fn cel_type() -> &'static cel::common::types::Type {
                static TYPE: cel::common::types::Type =
                    cel::common::types::Type::new_unspecified_type($name);
                &TYPE
            }

            fn equals(&self, other: &dyn cel::common::value::Val) -> bool {
                other.downcast_ref::<$ty>().is_some_and(|o| o == self)
            }

            fn clone_as_boxed<'v>(&self) -> Box<dyn cel::common::value::Val + 'v> {
                Box::new(self.clone())
            }

            fn as_any(&self) -> Option<&dyn std::any::Any> {
                Some(self)
            }
        }

        impl cel::common::value::StaticVal for $ty {}
    };
}

mod bind;
mod check;
mod env;
mod format;
mod ip;
mod lists;
mod overloads;
mod quantity;
mod regex;
mod semver;
mod sets;
mod two_var;
mod url;
mod values;

use std::sync::Arc;

use cel::Context;
use cel::common::types::CelOptional;
use serde_json::Value;

use super::{Cause, Path, Step};

fn references_old_self(rule: &str) -> bool {
    let bytes = rule.as_bytes();
    rule.match_indices("oldSelf").any(|(i, _)| {
        let before = i.checked_sub(1).and_then(|j| bytes.get(j));
        let after = bytes.get(i + "oldSelf".len());
        let ident = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        !ident(before) && !ident(after)
    })
}

/// What a rule sees as `oldSelf`.
enum OldSelf {
    /// Not a transition rule: no `oldSelf`.
    Unbound,
    /// A transition rule on update: the old value.
    Plain(cel::Value),
    /// `optionalOldSelf: true`: `optional.of(old)`, or `optional.none()` on create.
    Optional(Option<cel::Value>),
}

/// Which expression of a rule is compiled.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Expression {
    /// The `rule`: it must evaluate to a bool.
    Rule,
    /// The `messageExpression`: it must evaluate to a string.
    Message,
}

/// Why `source` does not compile, as the real server reports it when the CRD is written
/// (`compilation failed: ...`, or `cel expression must evaluate to a bool` for a rule and
/// `messageExpression must evaluate to a string` for a message expression whose type is
/// certainly another); `None` when it compiles. `schema` is the schema the rule sits on
/// (`root` when that is the top of the CRD's schema): a rule selecting a field it does not
/// declare, or calling an operator or function on types none of its overloads takes, fails
/// too, as cel-go's type check fails it ([`check`]).
pub fn compile_error(
    source: &str,
    expression: Expression,
    schema: &Value,
    root: bool,
    optional_old_self: bool,
) -> Option<String> {
    let prefix = match expression {
        Expression::Rule => "",
        Expression::Message => "messageExpression ",
    };
    let checked = match env::shared().compile(source) {
        Err(e) => return Some(format!("{prefix}compilation failed: {e}")),
        Ok(_) => check::check(source, schema, root, optional_old_self)?,
    };
    if let Some(errors) = checked.errors {
        return Some(format!("{prefix}compilation failed: {errors}"));
    }
    match expression {
        Expression::Rule if checked.result.certainly_not(overloads::Prim::Bool) => {
            Some("cel expression must evaluate to a bool".to_string())
        }
        // a list may be a list of strings, which newer servers take
        Expression::Message
            if checked.result.certainly_not(overloads::Prim::String)
                && !matches!(checked.result.shape(), overloads::Shape::List(_)) =>
        {
            Some("messageExpression must evaluate to a string".to_string())
        }
        _ => None,
    }
}

/// Runs `source` with `self` (and `oldSelf`) bound. Errors read as cel-go's: a library
/// function's failure is its message alone.
fn run(source: &str, this: &cel::Value, old: &OldSelf) -> Result<cel::Value, String> {
    let env = env::shared();
    let program = env
        .compile(source)
        .map_err(|e| format!("compilation failed: {e}"))?;
    let mut ctx = Context::with_env(Arc::clone(env));
    ctx.add_variable_from_value("self", this.clone());
    match old {
        OldSelf::Unbound => {}
        OldSelf::Plain(v) => ctx.add_variable_from_value("oldSelf", v.clone()),
        OldSelf::Optional(v) => {
            let inner = match v {
                Some(v) => Some(
                    Box::<dyn cel::common::value::Val>::try_from(v.clone())
                        .map_err(|_| "oldSelf has no CEL value".to_string())?,
                ),
                None => None,
            };
            ctx.add_variable_as_val("oldSelf", Box::new(CelOptional::from(inner)));
        }
    }
    program.execute(&ctx).map_err(|e| match e {
        cel::ExecutionError::FunctionError { message, .. } => message,
        other => other.to_string(),
    })
}

/// How the real server names a rule in an evaluation error: its message, else its rule.
fn rule_error_string(r: &Value, rule: &str) -> String {
    match r.get("message").and_then(Value::as_str).map(str::trim) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => rule.trim().to_string(),
    }
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
        let optional_old = r.get("optionalOldSelf").and_then(Value::as_bool) == Some(true);
        let old_self = match (transition, optional_old, old) {
            (false, _, _) => OldSelf::Unbound,
            (true, true, old) => OldSelf::Optional(old.map(|o| values::to_cel(Some(schema), o))),
            (true, false, Some(old)) => OldSelf::Plain(values::to_cel(Some(schema), old)),
            (true, false, None) => continue,
        };
        let this = values::to_cel(Some(schema), v);
        let at = match r.get("fieldPath").and_then(Value::as_str) {
            Some(fp) => with_field_path(path, fp),
            None => path.clone(),
        };
        let detail = match run(rule, &this, &old_self) {
            Ok(cel::Value::Bool(true)) => continue,
            Ok(cel::Value::Bool(false)) => {
                let from_expression =
                    r.get("messageExpression")
                        .and_then(Value::as_str)
                        .and_then(|e| match run(e, &this, &old_self) {
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
            Err(e) => format!("{e} evaluating rule: {}", rule_error_string(r, rule)),
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

    fn texts(schema: &Value, v: &Value, old: Option<&Value>) -> Vec<String> {
        let mut causes = Vec::new();
        validate(schema, v, old, &Path::default(), &mut causes);
        causes.iter().map(Cause::text).collect()
    }

    #[test]
    fn optional_old_self_runs_on_create_with_an_optional() {
        let schema = json!({"type": "object", "x-kubernetes-validations": [{
            "rule": "!oldSelf.hasValue() ? self.v == 'first' : self.v != oldSelf.value().v",
            "optionalOldSelf": true,
            "message": "first create, then change",
        }, {
            "rule": "self.v == oldSelf.orValue({'v': 'first'}).v || self.v != 'first'",
            "optionalOldSelf": true,
            "message": "orValue",
        }]});
        assert!(texts(&schema, &json!({"v": "first"}), None).is_empty());
        assert_eq!(
            texts(&schema, &json!({"v": "other"}), None),
            [": Invalid value: \"object\": first create, then change"]
        );
        assert!(texts(&schema, &json!({"v": "b"}), Some(&json!({"v": "a"}))).is_empty());
        assert_eq!(
            texts(&schema, &json!({"v": "a"}), Some(&json!({"v": "a"}))),
            [": Invalid value: \"object\": first create, then change"]
        );
        // without optionalOldSelf, the same kind of rule is skipped on create
        let plain = json!({"type": "object", "x-kubernetes-validations": [
            {"rule": "self.v != oldSelf.v"}]});
        assert!(texts(&plain, &json!({"v": "x"}), None).is_empty());
    }

    #[test]
    fn numbers_are_typed_by_the_schema() {
        let schema = json!({"type": "object", "properties": {
            "ratio": {"type": "number", "x-kubernetes-validations": [
                {"rule": "type(self) == double && self / 2.0 == 0.5"}]},
            "count": {"type": "integer", "x-kubernetes-validations": [
                {"rule": "type(self) == int"}]},
        }});
        assert_eq!(
            texts(&schema, &json!({"ratio": 1, "count": 3}), None),
            Vec::<String>::new()
        );
    }

    #[test]
    fn evaluation_errors_name_the_message_else_the_rule() {
        let schema = json!({"type": "string", "x-kubernetes-validations": [
            {"rule": "quantity(self).isInteger()", "message": "must be a whole quantity"},
            {"rule": "url(self).getScheme() == 'https'"},
        ]});
        assert_eq!(
            texts(&schema, &json!("200K"), None),
            [
                ": Invalid value: \"string\": unable to parse quantity's suffix evaluating rule: must be a whole quantity",
                ": Invalid value: \"string\": URL parse error during conversion from string: parse \"200K\": invalid URI for request evaluating rule: url(self).getScheme() == 'https'",
            ]
        );
    }
}

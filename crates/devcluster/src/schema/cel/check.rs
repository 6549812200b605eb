//! The part of cel-go's type check the real server runs when a CRD is written that catches the
//! commonest mistakes: selecting a field the schema does not declare (`self.replicsa`, or
//! `has(self.spec.foo)`), refused with `undefined field 'replicsa'`, and calling an operator
//! or function on types none of its overloads takes (`self.replicas + 'x'`), refused with
//! `found no matching overload for '_+_' applied to '(int, string)'` ([`super::overloads`]).
//! Properties are reached by their escaped names ([`super::values::escape_property`]). Only
//! what the schema settles is checked: an object with `properties` (and neither
//! `additionalProperties` nor preserved unknown fields) declares exactly its fields; anything
//! else, and every value whose type the check cannot follow (most function results), is `dyn`
//! and passes, so a rule the real server accepts is never refused here. At the top of the
//! schema the object's `metadata` holds only `name` and `generateName`, as the real server
//! exposes it. The calls a macro expands into (`all`, `exists`, `map`, `cel.bind`, ...) are
//! not checked themselves, only what the rule wrote inside them.

use cel::common::ast::{Expr, IdedExpr, LiteralValue, SourceInfo};
use serde_json::Value;

use super::overloads::{Prim, Resolution, Ty, resolve};

/// What the check found in a rule that parses.
pub(super) struct Checked<'s> {
    /// cel-go's errors, as it prints them (`ERROR: <input>:1:5: undefined field 'foo'` with the
    /// source line and a caret), one per line in source order; `None` when there is none.
    pub(super) errors: Option<String>,
    /// The type of the whole expression.
    pub(super) result: Ty<'s>,
}

/// Type-checks `source`, a rule on a value of `schema`; `None` when it does not parse (the
/// parse error is reported instead).
/// `root` is set for a rule at the top of the schema, where `apiVersion`, `kind` and
/// `metadata` exist whether the schema declares them or not.
pub(super) fn check<'s>(
    source: &str,
    schema: &'s Value,
    root: bool,
    optional_old_self: bool,
) -> Option<Checked<'s>> {
    let (expr, info) = super::env::shared()
        .parser()
        .parse_with_source_info(source)
        .ok()?;
    let mut checker = Checker {
        scope: vec![
            ("self".to_string(), Ty::Schema(schema)),
            (
                "oldSelf".to_string(),
                if optional_old_self {
                    Ty::Dyn
                } else {
                    Ty::Schema(schema)
                },
            ),
        ],
        found: Vec::new(),
        root: root.then_some(schema),
        info: &info,
        generated: Vec::new(),
    };
    let result = checker.visit(&expr);
    if checker.found.is_empty() {
        return Some(Checked {
            errors: None,
            result,
        });
    }
    let mut found = checker.found;
    found.sort();
    found.dedup();
    let lines: Vec<String> = found
        .iter()
        .map(|(start, message)| display(&info, *start, message))
        .collect();
    Some(Checked {
        errors: Some(lines.join("\n")),
        result: Ty::Dyn,
    })
}

/// The undefined-field and overload errors of `source` (see [`check`]).
#[cfg(test)]
fn undefined_fields(
    source: &str,
    schema: &Value,
    root: bool,
    optional_old_self: bool,
) -> Option<String> {
    check(source, schema, root, optional_old_self)?.errors
}

struct Checker<'s, 'i> {
    /// Variables in scope, innermost last.
    scope: Vec<(String, Ty<'s>)>,
    /// Byte offset and message of each error found.
    found: Vec<(usize, String)>,
    /// The schema of the object itself, for a rule at the top of the schema.
    root: Option<&'s Value>,
    info: &'i SourceInfo,
    /// Offsets of the macros being expanded: the calls a macro generates sit there, and are
    /// not checked (cel-go's expansions and the `cel` crate's may differ).
    generated: Vec<usize>,
}

impl<'s> Checker<'s, '_> {
    fn offset(&self, id: u64) -> usize {
        self.info.offset_for(id).map_or(0, |(s, _)| s as usize)
    }

    /// Checks `e` and returns its type.
    fn visit(&mut self, e: &IdedExpr) -> Ty<'s> {
        match &e.expr {
            Expr::Ident(name) => self
                .scope
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map_or(Ty::Dyn, |(_, t)| t.clone()),
            Expr::Select(select) => {
                let operand = self.visit(&select.operand);
                let field = self.select(e.id, operand, &select.field);
                if select.test {
                    Ty::Prim(Prim::Bool)
                } else {
                    field
                }
            }
            Expr::Call(call) => {
                let mut args = Vec::new();
                if let Some(t) = call.target.as_deref() {
                    args.push(self.visit(t));
                }
                for a in &call.args {
                    args.push(self.visit(a));
                }
                let at = self.offset(e.id);
                let checked = !self.generated.contains(&at);
                match resolve(&call.func_name, call.target.is_some(), &args) {
                    Resolution::Typed(t) => t,
                    Resolution::NoOverload(message) => {
                        if checked {
                            self.found.push((at, message));
                        }
                        Ty::Dyn
                    }
                    Resolution::NotBool(i, found) => {
                        if checked && let Some(arg) = call.args.get(i) {
                            let at = self.offset(arg.id);
                            self.found
                                .push((at, format!("expected type 'bool' but found '{found}'")));
                        }
                        Ty::Prim(Prim::Bool)
                    }
                }
            }
            Expr::Comprehension(c) => {
                let range = self.visit(&c.iter_range);
                let init = self.visit(&c.accu_init);
                let depth = self.scope.len();
                self.generated.push(self.offset(e.id));
                self.scope.push((c.accu_var.clone(), init));
                if let Some(second) = &c.iter_var2 {
                    self.scope.push((c.iter_var.clone(), Ty::Dyn));
                    self.scope.push((second.clone(), Ty::Dyn));
                } else {
                    self.scope.push((c.iter_var.clone(), range.iterated()));
                }
                self.visit(&c.loop_cond);
                self.visit(&c.loop_step);
                self.scope.truncate(depth + 1);
                let result = self.visit(&c.result);
                self.scope.truncate(depth);
                self.generated.pop();
                result
            }
            Expr::List(list) => {
                let items: Vec<Ty<'s>> = list.elements.iter().map(|i| self.visit(i)).collect();
                let names: Vec<Option<String>> = items.iter().map(Ty::name).collect();
                match items.first() {
                    Some(first)
                        if list.optional_indices.is_empty()
                            && names[0].is_some()
                            && names.iter().all(|n| *n == names[0]) =>
                    {
                        Ty::List(Box::new(first.clone()))
                    }
                    _ => Ty::Dyn,
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(m) = &entry.expr {
                        self.visit(&m.key);
                        self.visit(&m.value);
                    }
                }
                Ty::Dyn
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let cel::common::ast::EntryExpr::StructField(f) = &entry.expr {
                        self.visit(&f.value);
                    }
                }
                Ty::Dyn
            }
            Expr::Literal(literal) => match literal {
                LiteralValue::Boolean(_) => Ty::Prim(Prim::Bool),
                LiteralValue::Bytes(_) => Ty::Prim(Prim::Bytes),
                LiteralValue::Double(_) => Ty::Prim(Prim::Double),
                LiteralValue::Int(_) => Ty::Prim(Prim::Int),
                LiteralValue::String(_) => Ty::Prim(Prim::String),
                LiteralValue::UInt(_) => Ty::Prim(Prim::Uint),
                LiteralValue::Null => Ty::Dyn,
            },
            Expr::Unspecified => Ty::Dyn,
        }
    }

    /// The type of `field` selected on a value of type `operand` (expression `id`), noting an
    /// undeclared field.
    fn select(&mut self, id: u64, operand: Ty<'s>, field: &str) -> Ty<'s> {
        let Some(operand) = operand.schema() else {
            return Ty::Dyn;
        };
        let at_root = self.root.is_some_and(|r| std::ptr::eq(r, operand));
        if at_root && field == "metadata" {
            return Ty::Schema(root_metadata());
        }
        match field_of(operand, field) {
            Field::Declared(schema) => Ty::Schema(schema),
            Field::Undeclared if at_root && ["apiVersion", "kind"].contains(&field) => {
                Ty::Prim(Prim::String)
            }
            Field::Undeclared => {
                let at = self.offset(id);
                self.found.push((at, format!("undefined field '{field}'")));
                Ty::Dyn
            }
            Field::Unknown => Ty::Dyn,
        }
    }
}

/// The object's own `metadata` as rules see it: only `name` and `generateName`, whatever the
/// schema declares.
fn root_metadata() -> &'static Value {
    static METADATA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    METADATA.get_or_init(|| {
        serde_json::json!({"type": "object", "properties": {
            "name": {"type": "string"},
            "generateName": {"type": "string"},
        }})
    })
}

/// What selecting `field` of a value of `schema` gives.
enum Field<'s> {
    Declared(&'s Value),
    Undeclared,
    Unknown,
}

fn field_of<'s>(schema: &'s Value, field: &str) -> Field<'s> {
    let open = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || schema.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true))
        || schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if open || schema.get("type").and_then(Value::as_str) != Some("object") {
        return Field::Unknown;
    }
    if let Some(values) = schema.get("additionalProperties") {
        return match values {
            Value::Object(_) => Field::Declared(values),
            _ => Field::Unknown,
        };
    }
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Field::Unknown;
    };
    // a property is reached by its escaped name (`foo__dash__bar` for `foo-bar`)
    properties
        .iter()
        .find(|(name, _)| super::values::escape_property(name).as_deref() == Some(field))
        .map_or(Field::Undeclared, |(_, declared)| Field::Declared(declared))
}

/// cel-go's display of an error at byte offset `start`: 1-based line and column (in
/// characters), the source line, and a caret under the column.
fn display(info: &SourceInfo, start: usize, message: &str) -> String {
    let source = info.source.as_str();
    let start = start.min(source.len());
    let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_no = source[..line_start].matches('\n').count() + 1;
    let line = source[line_start..].split('\n').next().unwrap_or_default();
    let column = source[line_start..start].chars().count();
    let snippet = line.replace('\t', " ");
    let mut caret: String = snippet
        .chars()
        .take(column)
        .map(|c| if c.len_utf8() > 1 { '\u{ff0e}' } else { '.' })
        .collect();
    caret.push(match snippet.chars().nth(column) {
        Some(c) if c.len_utf8() > 1 => '\u{ff3e}',
        _ => '^',
    });
    format!(
        "ERROR: <input>:{line_no}:{}: {message}\n | {snippet}\n | {caret}",
        column + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "replicas": {"type": "integer"},
            "name": {"type": "string"},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "key": {"type": "string"}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "dash-name": {"type": "string"},
            "namespace": {"type": "string"},
        }})
    }

    fn check(rule: &str) -> Option<String> {
        undefined_fields(rule, &schema(), false, false)
    }

    #[test]
    fn declared_fields_pass() {
        for rule in [
            "self.replicas >= 0",
            "has(self.name) && self.name != ''",
            "self.items.all(i, i.key != '')",
            "self.items[0].key == 'a'",
            "self.labels.foo == 'x'",
            "self.labels['any'] == 'x'",
            "self.free.anything.deeper == 1",
            "self.dash__dash__name == ''",
            "self.__namespace__ != ''",
            "cel.bind(r, self.replicas, r > 1)",
            "self.replicas >= oldSelf.replicas",
            "self.name.size() > 1",
            "[1, 2].exists(x, x == 2)",
            "self.?name.orValue('') == ''",
        ] {
            assert_eq!(check(rule), None, "{rule}");
        }
    }

    #[test]
    fn an_undeclared_field_is_an_error_as_cel_go_prints_it() {
        assert_eq!(
            check("self.replicsa >= 0").as_deref(),
            Some("ERROR: <input>:1:5: undefined field 'replicsa'\n | self.replicsa >= 0\n | ....^")
        );
        let both = check("self.items.all(i, i.kee != '') && has(self.nme)").unwrap_or_default();
        let lines: Vec<&str> = both.lines().collect();
        assert_eq!(lines.len(), 6, "{both}");
        assert!(lines[0].contains("undefined field 'kee'"), "{both}");
        assert!(lines[3].contains("undefined field 'nme'"), "{both}");
        assert!(
            check("self.dash__name == ''").is_some(),
            "escaped names only"
        );
        assert!(
            check("oldSelf.replicsa == self.replicas").is_some(),
            "oldSelf has the same type"
        );
        assert!(
            undefined_fields("oldSelf.nope == 1", &schema(), false, true).is_none(),
            "an optional oldSelf is not followed"
        );
        assert!(
            check("cel.bind(x, self, x.nope == 1)").is_some(),
            "a bound name has its value's type"
        );
    }

    #[test]
    fn the_caret_counts_characters_on_the_right_line() {
        let out = check("'é' == self.name &&\n  self.nope == ''").unwrap_or_default();
        assert_eq!(
            out,
            "ERROR: <input>:2:7: undefined field 'nope'\n |   self.nope == ''\n | ......^"
        );
    }

    #[test]
    fn the_object_always_has_its_type_and_object_metadata() {
        let rule = "self.metadata.name != '' && self.kind != '' && self.nope == 1";
        let at_root = undefined_fields(rule, &schema(), true, false).unwrap_or_default();
        assert_eq!(at_root.lines().count(), 3, "{at_root}");
        assert!(at_root.contains("'nope'"), "{at_root}");
        let labels = "self.metadata.generateName == '' && self.metadata.labels.a == 'b'";
        let at_root = undefined_fields(labels, &schema(), true, false).unwrap_or_default();
        assert!(
            at_root.starts_with("ERROR: <input>:1:50: undefined field 'labels'"),
            "only name and generateName: {at_root}"
        );
        let nested = check(rule).unwrap_or_default();
        assert_eq!(nested.lines().count(), 9, "{nested}");
    }

    #[test]
    fn a_rule_that_does_not_parse_is_left_to_the_parser() {
        assert_eq!(check("self.replicas >= "), None);
    }
}

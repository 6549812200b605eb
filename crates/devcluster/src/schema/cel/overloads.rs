//! The CEL types the rule check follows and the overloads it resolves on them: only what is
//! certain. A type is either known exactly (a literal's, a scalar property's, a list of them)
//! or `dyn`, and a call is refused only when every argument's type is known exactly, can be
//! printed as cel-go prints it, and matches none of the function's overloads in the real
//! server's environment (cel-go's standard library with cross-type numeric comparisons, and
//! Kubernetes' libraries, none of which overloads these names). Whatever else is called
//! (conversions, library functions, optionals) gives `dyn`.

use serde_json::Value;

/// A scalar CEL type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Prim {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Timestamp,
    Duration,
}

impl Prim {
    fn name(self) -> &'static str {
        match self {
            Prim::Bool => "bool",
            Prim::Int => "int",
            Prim::Uint => "uint",
            Prim::Double => "double",
            Prim::String => "string",
            Prim::Bytes => "bytes",
            Prim::Timestamp => "timestamp",
            Prim::Duration => "duration",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Prim::Int | Prim::Uint | Prim::Double)
    }
}

/// The type of a sub-expression as far as the check knows it.
#[derive(Clone, Debug)]
pub(super) enum Ty<'s> {
    /// Unknown: anything goes.
    Dyn,
    Prim(Prim),
    /// A list literal or a concatenation: `list(T)`.
    List(Box<Ty<'s>>),
    /// A value of this schema (its type follows the real server's schema-to-CEL mapping).
    Schema(&'s Value),
}

/// What a type is, with a schema's type worked out.
pub(super) enum Shape<'s> {
    Dyn,
    Prim(Prim),
    List(Ty<'s>),
    /// `map(string, T)`: an object with `additionalProperties`.
    Map(Ty<'s>),
    /// An object type; its name on the real server is generated, so it is never printed.
    Object,
}

impl<'s> Ty<'s> {
    /// The schema of this value, where it is one.
    pub(super) fn schema(&self) -> Option<&'s Value> {
        match self {
            Ty::Schema(s) => Some(s),
            _ => None,
        }
    }

    /// The type worked out: Kubernetes maps `integer` to int, `number` to double, `boolean` to
    /// bool, `string` to string (bytes for `format: byte`, duration for `duration`, timestamp
    /// for `date` and `date-time`), `array` to a list and `object` to a map (with
    /// `additionalProperties`) or an object; int-or-string, and a schema without a type, are
    /// `dyn`.
    pub(super) fn shape(&self) -> Shape<'s> {
        let schema = match self {
            Ty::Dyn => return Shape::Dyn,
            Ty::Prim(p) => return Shape::Prim(*p),
            Ty::List(e) => return Shape::List((**e).clone()),
            Ty::Schema(s) => *s,
        };
        if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            return Shape::Dyn;
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("integer") => Shape::Prim(Prim::Int),
            Some("number") => Shape::Prim(Prim::Double),
            Some("boolean") => Shape::Prim(Prim::Bool),
            Some("string") => Shape::Prim(match schema.get("format").and_then(Value::as_str) {
                Some("byte") => Prim::Bytes,
                Some("duration") => Prim::Duration,
                Some("date" | "date-time") => Prim::Timestamp,
                _ => Prim::String,
            }),
            Some("array") => match schema.get("items").filter(|i| i.is_object()) {
                Some(items) => Shape::List(Ty::Schema(items)),
                None => Shape::Dyn,
            },
            Some("object") => match schema.get("additionalProperties").filter(|a| a.is_object()) {
                Some(values) => Shape::Map(Ty::Schema(values)),
                None => Shape::Object,
            },
            _ => Shape::Dyn,
        }
    }

    /// The scalar type, when it is one.
    pub(super) fn prim(&self) -> Option<Prim> {
        match self.shape() {
            Shape::Prim(p) => Some(p),
            _ => None,
        }
    }

    /// cel-go's name of the type, when the type is known exactly and printable.
    pub(super) fn name(&self) -> Option<String> {
        match self.shape() {
            Shape::Dyn | Shape::Object => None,
            Shape::Prim(p) => Some(p.name().to_string()),
            Shape::List(e) => Some(format!("list({})", e.name()?)),
            Shape::Map(v) => Some(format!("map(string, {})", v.name()?)),
        }
    }

    /// The type of an element of this list, or of a value of this map.
    pub(super) fn element(&self) -> Ty<'s> {
        match self.shape() {
            Shape::List(e) | Shape::Map(e) => e,
            _ => Ty::Dyn,
        }
    }

    /// The type a one-variable comprehension over this value iterates with: a list's
    /// elements, a map's keys.
    pub(super) fn iterated(&self) -> Ty<'s> {
        match self.shape() {
            Shape::List(e) => e,
            Shape::Map(_) => Ty::Prim(Prim::String),
            _ => Ty::Dyn,
        }
    }

    /// Certainly not of type `want` (a scalar), whatever the value.
    pub(super) fn certainly_not(&self, want: Prim) -> bool {
        match self.shape() {
            Shape::Dyn => false,
            Shape::Prim(p) => p != want,
            Shape::List(_) | Shape::Map(_) | Shape::Object => true,
        }
    }
}

/// How a call resolves.
pub(super) enum Resolution<'s> {
    /// Its result type.
    Typed(Ty<'s>),
    /// cel-go's `found no matching overload for 'f' applied to '...'`.
    NoOverload(String),
    /// cel-go's `expected type 'bool' but found '...'` at argument `usize` (`&&`, `||`).
    NotBool(usize, String),
}

/// Resolves `function` called on `args` (the receiver first, for a receiver call).
pub(super) fn resolve<'s>(function: &str, receiver: bool, args: &[Ty<'s>]) -> Resolution<'s> {
    use Resolution::Typed;
    let bool_ty = || Typed(Ty::Prim(Prim::Bool));
    match (function, receiver, args) {
        ("_&&_" | "_||_", false, _) => {
            for (i, a) in args.iter().enumerate() {
                if let (true, Some(name)) = (a.certainly_not(Prim::Bool), a.name()) {
                    return Resolution::NotBool(i, name);
                }
            }
            bool_ty()
        }
        ("!_", false, [a]) => unary(function, a, |p| (p == Prim::Bool).then_some(p)),
        ("-_", false, [a]) => unary(function, a, |p| {
            matches!(p, Prim::Int | Prim::Double).then_some(p)
        }),
        ("_+_" | "_-_" | "_*_" | "_/_" | "_%_", false, [a, b]) => arithmetic(function, a, b),
        ("_<_" | "_<=_" | "_>_" | "_>=_", false, [a, b]) => {
            match (a.prim(), b.prim(), a.name(), b.name()) {
                (Some(x), Some(y), ..) if x == y || (x.numeric() && y.numeric()) => bool_ty(),
                (_, _, Some(x), Some(y)) => no_overload(function, None, &[x, y]),
                _ => bool_ty(),
            }
        }
        ("_==_" | "_!=_" | "@in", false, [_, _]) => bool_ty(),
        ("_[_]", false, [container, _]) => Typed(container.element()),
        ("size", false, [a]) | ("size", true, [a]) => {
            let sized = matches!(
                a.shape(),
                Shape::Prim(Prim::String | Prim::Bytes) | Shape::List(_) | Shape::Map(_)
            );
            match a.name() {
                Some(name) if !sized => {
                    let target = receiver.then_some(name.as_str());
                    let args: &[String] = if receiver {
                        &[]
                    } else {
                        std::slice::from_ref(&name)
                    };
                    no_overload(function, target, args)
                }
                _ => Typed(Ty::Prim(Prim::Int)),
            }
        }
        ("startsWith" | "endsWith" | "contains" | "matches", true, [t, a])
        | ("matches", false, [t, a]) => string_pair(function, receiver, t, a),
        ("_?_:_", false, [c, a, b]) => conditional(c, a, b),
        _ => Typed(Ty::Dyn),
    }
}

fn unary<'s>(function: &str, a: &Ty<'s>, result: impl Fn(Prim) -> Option<Prim>) -> Resolution<'s> {
    match (a.prim().and_then(&result), a.name()) {
        (Some(p), _) => Resolution::Typed(Ty::Prim(p)),
        (None, Some(name)) => no_overload(function, None, &[name]),
        (None, None) => Resolution::Typed(Ty::Dyn),
    }
}

fn arithmetic<'s>(function: &str, a: &Ty<'s>, b: &Ty<'s>) -> Resolution<'s> {
    use Prim::*;
    if let (Shape::List(x), Shape::List(y)) = (a.shape(), b.shape()) {
        return Resolution::Typed(match (x.name(), y.name()) {
            (Some(p), Some(q)) if p == q && function == "_+_" => Ty::List(Box::new(x)),
            _ => Ty::Dyn,
        });
    }
    let (Some(x), Some(y)) = (a.prim(), b.prim()) else {
        return match (a.name(), b.name()) {
            (Some(x), Some(y)) => no_overload(function, None, &[x, y]),
            _ => Resolution::Typed(Ty::Dyn),
        };
    };
    let result = match (function, x, y) {
        ("_+_", Bytes | String, _) if x == y => Some(x),
        ("_+_" | "_-_", Duration, Duration) => Some(Duration),
        ("_+_", Duration, Timestamp) | ("_+_" | "_-_", Timestamp, Duration) => Some(Timestamp),
        ("_-_", Timestamp, Timestamp) => Some(Duration),
        ("_+_" | "_-_" | "_*_" | "_/_", Int | Uint | Double, _) if x == y => Some(x),
        ("_%_", Int | Uint, _) if x == y => Some(x),
        _ => None,
    };
    match result {
        Some(p) => Resolution::Typed(Ty::Prim(p)),
        None => no_overload(function, None, &[x.name().into(), y.name().into()]),
    }
}

fn string_pair<'s>(function: &str, receiver: bool, t: &Ty<'s>, a: &Ty<'s>) -> Resolution<'s> {
    match (t.prim(), a.prim(), t.name(), a.name()) {
        (Some(Prim::String), Some(Prim::String), ..) | (_, _, None, _) | (_, _, _, None) => {
            Resolution::Typed(Ty::Prim(Prim::Bool))
        }
        (_, _, Some(x), Some(y)) if receiver => no_overload(function, Some(&x), &[y]),
        (_, _, Some(x), Some(y)) => no_overload(function, None, &[x, y]),
    }
}

fn conditional<'s>(c: &Ty<'s>, a: &Ty<'s>, b: &Ty<'s>) -> Resolution<'s> {
    match (c.name(), a.name(), b.name()) {
        (Some(cn), Some(an), Some(bn)) if cn != "bool" || an != bn => {
            no_overload("_?_:_", None, &[cn, an, bn])
        }
        (_, Some(an), Some(bn)) if an == bn => Resolution::Typed(a.clone()),
        _ => Resolution::Typed(Ty::Dyn),
    }
}

/// cel-go's message: `'(int, string)'` for a global call, `'int.(string)'` for a receiver's.
fn no_overload<'s>(function: &str, target: Option<&str>, args: &[String]) -> Resolution<'s> {
    let receiver = target.map_or(String::new(), |t| format!("{t}."));
    Resolution::NoOverload(format!(
        "found no matching overload for '{function}' applied to '{receiver}({})'",
        args.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{Expression, check, compile_error};
    use serde_json::{Value, json};

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "replicas": {"type": "integer"},
            "ratio": {"type": "number"},
            "name": {"type": "string"},
            "enabled": {"type": "boolean"},
            "created": {"type": "string", "format": "date-time"},
            "timeout": {"type": "string", "format": "duration"},
            "data": {"type": "string", "format": "byte"},
            "port": {"x-kubernetes-int-or-string": true},
            "names": {"type": "array", "items": {"type": "string"}},
            "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "key": {"type": "string"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        }})
    }

    fn errors(rule: &str) -> Option<String> {
        check::check(rule, &schema(), false, false)?.errors
    }

    #[test]
    fn rules_the_real_server_accepts_pass() {
        for rule in [
            // cross-type numeric comparisons are on in Kubernetes
            "self.replicas < 2.5 && self.ratio > 1 && 1u < self.replicas",
            "self.replicas + 1 > 0 && self.ratio * 2.0 < 10.0 && self.replicas % 2 == 0",
            "-self.replicas < 0 && -self.ratio < 0.0 && !self.enabled && !has(self.name)",
            "self.name + 'x' != '' && self.name.startsWith('a') && self.name.endsWith('b')",
            "self.name.contains('c') && self.name.matches('^a') && matches(self.name, 'a')",
            "size(self.name) + size(self.names) + size(self.counts) + self.data.size() > 0",
            "self.created + self.timeout > self.created && self.created - self.created < self.timeout",
            "self.created < timestamp('2030-01-01T00:00:00Z') && self.timeout > duration('1s')",
            "b'a' + self.data != b'' && 1u + 2u > 0u && [1] + [2] == [1, 2]",
            // int-or-string, free objects and library results are dyn
            "self.port > 1 || self.port.startsWith('a') || self.free.x + 1 > 'a'",
            "int(self.name) > 0 && string(self.replicas) + 'a' != '' && type(self.replicas) == int",
            "self.name.lowerAscii() + 1 != 2 && quantity(self.name).isInteger()",
            // equality is left alone (heterogeneous equality at runtime)
            "self.replicas == 1.0 && self.name != 1",
            "(self.enabled ? self.replicas : 1) > 0 && (self.enabled ? 'a' : self.name) != ''",
            // comprehensions: list elements, map keys, two variables, bound names
            "self.names.all(n, n.startsWith('a')) && self.counts.all(k, k.startsWith('a'))",
            "self.counts.all(k, self.counts[k] > 0) && self.names.exists_one(n, n == 'a')",
            "self.names.map(n, n + 'x').all(m, m.endsWith('x'))",
            "self.names.filter(n, n != '').size() >= 0 && self.items.all(i, i.key.contains('a'))",
            "self.names.all(i, n, i < 5 && n.startsWith('a'))",
            "self.counts.exists(k, v, k.startsWith('a') && v > 1)",
            "cel.bind(r, self.replicas, r + 1 > 0) && [1, 2].all(x, x > 0)",
            "self.?name.orValue('') == '' && oldSelf.replicas + 1 > self.replicas",
            "self.name in self.names && 'a' in self.counts && [1, 'a'].size() == 2",
            // objects have generated type names: never reported here
            "self.items[0] > 1 || size(self.free) > 0",
        ] {
            assert_eq!(errors(rule), None, "{rule}");
        }
    }

    #[test]
    fn overloads_that_do_not_match_are_errors_as_cel_go_prints_them() {
        for (rule, want) in [
            (
                "self.replicas + 'x' > 0",
                "ERROR: <input>:1:15: found no matching overload for '_+_' applied to '(int, string)'\n | self.replicas + 'x' > 0\n | ..............^",
            ),
            (
                "self.name > 3",
                "ERROR: <input>:1:11: found no matching overload for '_>_' applied to '(string, int)'\n | self.name > 3\n | ..........^",
            ),
            (
                "self.replicas.startsWith('a')",
                "ERROR: <input>:1:25: found no matching overload for 'startsWith' applied to 'int.(string)'\n | self.replicas.startsWith('a')\n | ........................^",
            ),
            (
                "size(self.replicas) > 0",
                "ERROR: <input>:1:5: found no matching overload for 'size' applied to '(int)'\n | size(self.replicas) > 0\n | ....^",
            ),
            (
                "!self.name",
                "ERROR: <input>:1:1: found no matching overload for '!_' applied to '(string)'\n | !self.name\n | ^",
            ),
            (
                "self.enabled && 1",
                "ERROR: <input>:1:17: expected type 'bool' but found 'int'\n | self.enabled && 1\n | ................^",
            ),
            (
                "self.enabled ? 1 : 'a'",
                "ERROR: <input>:1:14: found no matching overload for '_?_:_' applied to '(bool, int, string)'\n | self.enabled ? 1 : 'a'\n | .............^",
            ),
            (
                "self.names.all(n, n > 1)",
                "ERROR: <input>:1:21: found no matching overload for '_>_' applied to '(string, int)'\n | self.names.all(n, n > 1)\n | ....................^",
            ),
        ] {
            assert_eq!(errors(rule).as_deref(), Some(want), "{rule}");
        }
        for (rule, want) in [
            (
                "self.replicas + 1.5 > 0",
                "'_+_' applied to '(int, double)'",
            ),
            (
                "self.data + 'x' == b''",
                "'_+_' applied to '(bytes, string)'",
            ),
            (
                "self.created + self.created > self.created",
                "'_+_' applied to '(timestamp, timestamp)'",
            ),
            (
                "self.counts.size() > 'a'",
                "'_>_' applied to '(int, string)'",
            ),
            ("self.replicas.size() > 0", "'size' applied to 'int.()'"),
            ("-self.name == ''", "'-_' applied to '(string)'"),
            (
                "self.names + 1 == []",
                "'_+_' applied to '(list(string), int)'",
            ),
            (
                "self.counts < 1",
                "'_<_' applied to '(map(string, int), int)'",
            ),
            (
                "matches(self.replicas, 'a')",
                "'matches' applied to '(int, string)'",
            ),
        ] {
            let got = errors(rule).unwrap_or_default();
            assert!(
                got.contains(&format!("found no matching overload for {want}")),
                "{rule}: {got}"
            );
        }
    }

    #[test]
    fn a_rule_must_be_a_bool_and_a_message_a_string() {
        let s = schema();
        let rule = |r: &str| compile_error(r, Expression::Rule, &s, false, false);
        let message = |m: &str| compile_error(m, Expression::Message, &s, false, false);
        for ok in [
            "self.enabled",
            "self.port",
            "self.free.x",
            "self.replicas > 1",
        ] {
            assert_eq!(rule(ok), None, "{ok}");
        }
        for bad in [
            "self.replicas",
            "self.name + 'a'",
            "self",
            "self.names",
            "1",
        ] {
            assert_eq!(
                rule(bad).as_deref(),
                Some("cel expression must evaluate to a bool"),
                "{bad}"
            );
        }
        for ok in [
            "self.name",
            "'n: ' + string(self.replicas)",
            "self.port",
            "self.names",
        ] {
            assert_eq!(message(ok), None, "{ok}");
        }
        for bad in ["self.replicas", "self.enabled", "self", "1.5"] {
            assert_eq!(
                message(bad).as_deref(),
                Some("messageExpression must evaluate to a string"),
                "{bad}"
            );
        }
        assert!(
            message("self.replicas + 'a'")
                .is_some_and(|e| e.starts_with("messageExpression compilation failed: ERROR")),
            "type errors come first"
        );
    }
}

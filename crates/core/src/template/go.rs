//! How Go hands values to template functions and prints them: the parameter conversions of
//! `text/template` (a `string` parameter refuses a number, a missing value becomes nil for an
//! `interface{}` parameter), sprig's `strval` and `empty`, `%q` quoting, and `encoding/json`.

use std::collections::HashMap;

use super::gotmpl::{FloatFormat, FuncError, GoMap, NumberKind, Typed, Value, format_float};

/// A number as Go holds it: templates' integer constants and sprig's integer results are
/// `int`/`int64`, JSON numbers and float results `float64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Num {
    /// An integer.
    Int(i64),
    /// A float64.
    Float(f64),
}

/// The number in a value, if it is one.
pub(super) fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Number(n) => Some(match n.kind() {
            NumberKind::Signed(i) | NumberKind::Negative(i) => Num::Int(i),
            NumberKind::Unsigned(u) => match i64::try_from(u) {
                Ok(i) => Num::Int(i),
                Err(_) => Num::Float(u as f64),
            },
            NumberKind::Float(f) => Num::Float(f),
        }),
        // semver's Major/Minor/Patch, a byte of a string
        Value::Typed(t) if is_unsigned(t) => t.text.parse().ok().map(Num::Int),
        _ => None,
    }
}

/// Whether a typed value is one of Go's unsigned integers (`uint8`, `uint64`).
pub(super) fn is_unsigned(t: &Typed) -> bool {
    matches!(t.kind, "uint8" | "uint64")
}

/// A map value made by a function: a `map[string]interface{}`.
pub(super) fn map_value(m: HashMap<String, Value>) -> Value {
    Value::Map(m.into())
}

/// A float64 value.
pub(super) fn float(f: f64) -> Value {
    Value::Number(super::gotmpl::Number::float(f))
}

/// A Go `int` value. (The engine stores a non-negative integer constant unsigned; an `int64`
/// is stored signed, which is how the two are told apart for a non-negative value.)
pub(super) fn int(i: i64) -> Value {
    Value::from(i)
}

/// A Go `int64` value, as sprig's arithmetic returns.
pub(super) fn int64(i: i64) -> Value {
    Value::Number(super::gotmpl::Number::signed(i))
}

/// Whether a value is an `int64`.
pub(super) fn is_int64(v: &Value) -> bool {
    matches!(v, Value::Number(n) if matches!(n.kind(), NumberKind::Signed(_)))
}

/// A value passed to an `interface{}` parameter: a missing value arrives as nil.
pub(super) fn iface(v: &Value) -> Value {
    match v {
        Value::NoValue => Value::Nil,
        other => other.clone(),
    }
}

/// Whether Go sees nil (a missing value included).
pub(super) fn is_nil(v: &Value) -> bool {
    matches!(v, Value::Nil | Value::NoValue)
}

/// Go's `%v` of a value inside a function (nil prints `<nil>`).
pub(super) fn go_v(v: &Value) -> String {
    match v {
        Value::NoValue | Value::Nil => "<nil>".to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_v).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Map(m) | Value::Object(m) => {
            let m = m.read();
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_v(&m[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        Value::Number(_) => match num(v) {
            Some(Num::Float(f)) => format_float(f, FloatFormat::General, None),
            Some(Num::Int(i)) => i.to_string(),
            None => v.to_string(),
        },
        other => other.to_string(),
    }
}

/// sprig's `strval`: a string as it is, anything else as `%v` prints it.
pub(super) fn strval(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => go_v(other),
    }
}

/// The text a typed value marshals to in JSON: `time.Time` as RFC 3339 with nanoseconds,
/// others as they print.
pub(super) fn typed_json_text(t: &Typed) -> String {
    match t.type_name {
        "time.Time" => super::gotime::GoTime::read(&t.text)
            .map(|g| super::gotime::format(&g, "2006-01-02T15:04:05.999999999Z07:00"))
            .unwrap_or_else(|| t.text.clone()),
        _ => t.text.clone(),
    }
}

/// sprig's `empty`: nil, false, zero, and empty strings, lists and maps.
pub(super) fn empty(v: &Value) -> bool {
    match v {
        Value::Nil | Value::NoValue => true,
        Value::Bool(b) => !*b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Map(m) | Value::Object(m) => m.is_empty(),
        Value::Typed(t) => (t.kind == "int" || is_unsigned(t)) && t.text == "0",
        Value::Number(_) => match num(v) {
            Some(Num::Int(i)) => i == 0,
            Some(Num::Float(f)) => f == 0.0,
            None => false,
        },
    }
}

/// Go's name of a value's type, as `%T` and `typeOf` print it.
pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil | Value::NoValue => "<nil>",
        Value::Bool(_) => "bool",
        Value::String(_) => "string",
        Value::Array(l) => l.type_name(),
        Value::Map(_) => "map[string]interface {}",
        Value::Object(_) => "map[string]string",
        Value::Typed(t) => t.type_name,
        Value::Number(_) if is_int64(v) => "int64",
        Value::Number(_) => match num(v) {
            Some(Num::Float(_)) => "float64",
            _ => "int",
        },
    }
}

/// Go's `reflect.Kind` name of a value, as `kindOf` prints it.
pub(super) fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Nil | Value::NoValue => "invalid",
        Value::Typed(t) => t.kind,
        Value::Bool(_) => "bool",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Map(_) | Value::Object(_) => "map",
        Value::Number(_) if is_int64(v) => "int64",
        Value::Number(_) => match num(v) {
            Some(Num::Float(_)) => "float64",
            _ => "int",
        },
    }
}

/// How Go's template describes a value in a conversion error ("found 12", "got float64").
fn found(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => go_v(other),
    }
}

/// The argument `i` of `function`, which takes `count`; an error like Go's when it is absent.
pub(super) fn arg<'a>(
    args: &'a [Value],
    i: usize,
    function: &str,
    count: usize,
) -> Result<&'a Value, FuncError> {
    args.get(i)
        .ok_or_else(|| wrong_count(function, count, args.len()))
}

/// Go's error for a call with the wrong number of arguments.
pub(super) fn wrong_count(function: &str, want: usize, got: usize) -> FuncError {
    FuncError::Generic(format!(
        "wrong number of args for {function}: want {want} got {got}"
    ))
}

/// Checks that a function of fixed arity got exactly `count` arguments.
pub(super) fn exactly(args: &[Value], function: &str, count: usize) -> Result<(), FuncError> {
    if args.len() == count {
        Ok(())
    } else {
        Err(wrong_count(function, count, args.len()))
    }
}

/// A value for a Go `string` parameter: only a string converts.
pub(super) fn str_param(v: &Value) -> Result<String, FuncError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::NoValue => Err(FuncError::Generic("invalid value; expected string".into())),
        Value::Nil => Err(FuncError::Generic("cannot assign nil to string".into())),
        Value::Number(_) | Value::Bool(_) => Err(FuncError::Generic(format!(
            "expected string; found {}",
            found(v)
        ))),
        other => Err(FuncError::Generic(format!(
            "wrong type for value; expected string; got {}",
            type_name(other)
        ))),
    }
}

/// A value for a Go `int` parameter: only an integer converts.
pub(super) fn int_param(v: &Value) -> Result<i64, FuncError> {
    if let Value::Typed(t) = v
        && is_unsigned(t)
    {
        return Err(FuncError::Generic(format!(
            "wrong type for value; expected int; got {}",
            t.type_name
        )));
    }
    if is_int64(v) {
        return Err(FuncError::Generic(
            "wrong type for value; expected int; got int64".into(),
        ));
    }
    if let Value::Number(n) = v
        && let Some(i) = n.whole_constant()
    {
        return Ok(i);
    }
    match num(v) {
        Some(Num::Int(i)) => Ok(i),
        Some(Num::Float(_)) => Err(FuncError::Generic(format!(
            "expected integer; found {}",
            go_v(v)
        ))),
        None => match v {
            Value::NoValue => Err(FuncError::Generic("invalid value; expected int".into())),
            Value::Nil => Err(FuncError::Generic("cannot assign nil to int".into())),
            Value::Bool(_) => Err(FuncError::Generic(format!(
                "expected integer; found {}",
                go_v(v)
            ))),
            other => Err(FuncError::Generic(format!(
                "wrong type for value; expected int; got {}",
                type_name(other)
            ))),
        },
    }
}

/// A value for a Go `bool` parameter.
pub(super) fn bool_param(v: &Value) -> Result<bool, FuncError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::NoValue => Err(FuncError::Generic("invalid value; expected bool".into())),
        Value::Nil => Err(FuncError::Generic("cannot assign nil to bool".into())),
        other => Err(FuncError::Generic(format!(
            "expected bool; found {}",
            found(other)
        ))),
    }
}

/// A value for a Go `[]interface{}`-like parameter that sprig inspects by reflection.
pub(super) fn list_param<'a>(v: &'a Value, function: &str) -> Result<&'a [Value], FuncError> {
    match v {
        Value::Array(a) => Ok(a),
        // sprig asks nil for its type's kind: a nil pointer dereference in Go
        Value::Nil | Value::NoValue => Err(FuncError::Generic(
            "runtime error: invalid memory address or nil pointer dereference".into(),
        )),
        other => Err(FuncError::Generic(format!(
            "Cannot {function} on type {}",
            type_name(other)
        ))),
    }
}

/// A value for a Go `map[string]interface{}` parameter.
pub(super) fn map_param(v: &Value) -> Result<HashMap<String, Value>, FuncError> {
    Ok(map_target(v)?.map(|m| m.snapshot()).unwrap_or_default())
}

/// The map a Go `map[string]interface{}` parameter receives, shared with the caller; `None`
/// for nil.
pub(super) fn map_target(v: &Value) -> Result<Option<GoMap>, FuncError> {
    match v {
        Value::Map(m) => Ok(Some(m.clone())),
        Value::NoValue | Value::Nil => Ok(None),
        other => Err(FuncError::Generic(format!(
            "wrong type for value; expected map[string]interface {{}}; got {}",
            type_name(other)
        ))),
    }
}

/// Whether Go's `strconv.IsPrint` holds, as far as `%q` needs it.
pub(super) fn printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{ad}' | '\u{fffe}' | '\u{ffff}')
        || ('\u{e000}'..='\u{f8ff}').contains(&c)
        || matches!(c as u32, 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x206f | 0xfeff))
}

/// Go's `%q` of a string (`strconv.Quote`).
pub(super) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.FormatFloat(f, 'e', -1, 64)`: the shortest digits, a signed exponent of at
/// least two digits.
pub(super) fn float_e(f: f64) -> String {
    let rust = format!("{f:e}");
    let (mantissa, exp) = rust.split_once('e').unwrap_or((&rust, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
}

/// Go's `encoding/json` form of a float.
fn json_float(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let mut s = float_e(f);
        // Go writes e-7, not e-07
        if let Some(pos) = s.find("e-0") {
            s.remove(pos + 2);
        }
        Some(s)
    } else {
        // Rust prints the shortest digits without an exponent, as Go's 'f' with precision -1
        Some(format!("{f}"))
    }
}

fn json_string(s: &str, escape_html: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Why [`to_json_within`] gave no JSON.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum JsonFailure {
    /// Go fails too (NaN, infinities, functions).
    Unsupported,
    /// The text passed the limit; this many bytes were written when it stopped.
    TooLarge(usize),
}

/// Go's `json.Marshal` (keys sorted; `<`, `>`, `&` escaped when `escape_html`), indented by
/// `indent` per level when given, as `json.MarshalIndent(v, "", indent)`. `None` where Go fails
/// (NaN, infinities, functions).
pub(super) fn to_json(v: &Value, escape_html: bool, indent: Option<&str>) -> Option<String> {
    to_json_within(v, escape_html, indent, usize::MAX).ok()
}

/// [`to_json`] that stops as soon as the text passes `limit` bytes, so a value with a
/// million items fails before its text is built.
pub(super) fn to_json_within(
    v: &Value,
    escape_html: bool,
    indent: Option<&str>,
    limit: usize,
) -> Result<String, JsonFailure> {
    let mut writer = JsonWriter {
        out: String::new(),
        escape_html,
        indent,
        limit,
    };
    writer.value(v, 0)?;
    Ok(writer.out)
}

struct JsonWriter<'a> {
    out: String,
    escape_html: bool,
    indent: Option<&'a str>,
    limit: usize,
}

impl JsonWriter<'_> {
    fn newline(&mut self, level: usize) {
        if let Some(ind) = self.indent {
            self.out.push('\n');
            for _ in 0..level {
                self.out.push_str(ind);
            }
        }
    }

    /// Fails once the text has passed the limit, or would with `more` bytes.
    fn check(&self, more: usize) -> Result<(), JsonFailure> {
        let len = self.out.len().saturating_add(more);
        if len > self.limit {
            return Err(JsonFailure::TooLarge(len));
        }
        Ok(())
    }

    fn string(&mut self, s: &str) -> Result<(), JsonFailure> {
        // escaping only makes it longer
        self.check(s.len() + 2)?;
        json_string(s, self.escape_html, &mut self.out);
        self.check(0)
    }

    fn value(&mut self, v: &Value, level: usize) -> Result<(), JsonFailure> {
        match v {
            Value::Nil | Value::NoValue => self.out.push_str("null"),
            Value::Array(items) if items.is_nil() => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::String(s) => self.string(s)?,
            Value::Typed(t) if t.kind == "int" || is_unsigned(t) => self.out.push_str(&t.text),
            Value::Typed(t) => self.string(&typed_json_text(t))?,
            Value::Number(_) => match num(v).ok_or(JsonFailure::Unsupported)? {
                Num::Int(i) => self.out.push_str(&i.to_string()),
                Num::Float(f) => self
                    .out
                    .push_str(&json_float(f).ok_or(JsonFailure::Unsupported)?),
            },
            Value::Array(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline(level + 1);
                    self.value(item, level + 1)?;
                }
                if !items.is_empty() {
                    self.newline(level);
                }
                self.out.push(']');
            }
            Value::Map(m) | Value::Object(m) => {
                self.out.push('{');
                let m = m.read();
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline(level + 1);
                    self.string(k)?;
                    self.out.push(':');
                    if self.indent.is_some() {
                        self.out.push(' ');
                    }
                    self.value(&m[*k], level + 1)?;
                }
                if !m.is_empty() {
                    self.newline(level);
                }
                self.out.push('}');
            }
        }
        self.check(0)
    }
}

/// A JSON document as Go's `json.Unmarshal` into `interface{}` reads it: every number a
/// float64.
pub(super) fn from_json(text: &str) -> Result<Value, String> {
    super::json_decode::decode(text)
}

/// A parsed JSON value as Go holds it (numbers as float64).
pub(super) fn json_value(doc: serde_json::Value) -> Value {
    match doc {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(a) => Value::Array(a.into_iter().map(json_value).collect()),
        serde_json::Value::Object(o) => {
            map_value(o.into_iter().map(|(k, v)| (k, json_value(v))).collect())
        }
    }
}

/// Go's `reflect.DeepEqual` over template values (an int never equals a float).
pub(super) fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => num(a) == num(b) && type_name(a) == type_name(b),
        (Value::Array(x), Value::Array(y)) => {
            x.elem() == y.elem()
                && x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Map(x) | Value::Object(x), Value::Map(y) | Value::Object(y)) => {
            let (x, y) = (x.read(), y.read());
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        (x, y) if is_nil(x) && is_nil(y) => true,
        (x, y) => x == y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_stops_soon_after_the_limit() {
        let item = Value::String("x".repeat(100));
        let big = Value::Array(vec![item; 100_000].into());
        let full = to_json(&big, true, None).unwrap().len();
        assert!(full > 10_000_000);
        for indent in [None, Some("  ")] {
            match to_json_within(&big, true, indent, 1000) {
                // the item that crossed the limit was checked before it was written
                Err(JsonFailure::TooLarge(at)) => assert!(at <= 1000 + 120, "{at}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(
            to_json_within(&Value::Array(vec![].into()), true, None, 2),
            Ok("[]".to_string())
        );
    }

    #[test]
    fn quotes_as_go() {
        assert_eq!(go_quote("tab\there"), "\"tab\\there\"");
        assert_eq!(go_quote("\u{0}\u{1}\u{7f}"), "\"\\x00\\x01\\x7f\"");
        assert_eq!(go_quote("ünï ✓"), "\"ünï ✓\"");
        assert_eq!(go_quote("\u{2028}"), "\"\\u2028\"");
    }

    #[test]
    fn json_as_go() {
        let v = Value::Map(
            [
                ("b".to_string(), float(1234567.0)),
                ("a".to_string(), Value::String("<&>".into())),
                ("c".to_string(), float(1e21)),
                ("d".to_string(), float(1e-7)),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(
            to_json(&v, true, None).unwrap(),
            r#"{"a":"\u003c\u0026\u003e","b":1234567,"c":1e+21,"d":1e-7}"#
        );
        assert_eq!(
            to_json(&Value::Array(Vec::<Value>::new().into()), true, Some("  ")).unwrap(),
            "[]"
        );
    }
}

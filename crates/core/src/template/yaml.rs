//! external-secrets' `toYaml` and `fromYaml`, as `sigs.k8s.io/yaml` (JSON first, then
//! `gopkg.in/yaml.v2`) writes and reads YAML: keys in yaml.v2's order, strings quoted where YAML
//! 1.1 would read them as something else, a multi-line string as a literal block, the trailing
//! newline dropped; a document that is not a map read into `{"Error": ...}`.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::gotmpl::{Func, FuncError, Value};

use super::go::{Num, exactly, float_e, from_json, num, str_param, to_json};

/// The functions of this module.
pub(super) const FUNCTIONS: &[(&str, Func)] =
    &[("toYaml", to_yaml as Func), ("fromYaml", from_yaml as Func)];

/// yaml.v2's key order: letters after other characters, digit runs by their value.
fn key_order(a: &str, b: &str) -> Ordering {
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        let (mut an, mut bn) = (0i128, 0i128);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                if ar[j - 1] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
                j -= 1;
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .saturating_mul(10)
                .saturating_add(i128::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .saturating_mul(10)
                .saturating_add(i128::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

/// Whether YAML 1.1 (yaml.v2) reads a plain scalar as something other than a string.
fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN", "<<",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    let Some(first) = s.chars().next() else {
        return true;
    };
    if !(first.is_ascii_digit() || matches!(first, '+' | '-' | '.')) {
        return false;
    }
    let plain = s.replace('_', "");
    let body = plain.trim_start_matches(['+', '-']);
    let lower = body.to_ascii_lowercase();
    let int_like = if let Some(h) = lower.strip_prefix("0x") {
        !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit())
    } else if let Some(b) = lower.strip_prefix("0b") {
        !b.is_empty() && b.bytes().all(|c| c == b'0' || c == b'1')
    } else if let Some(o) = lower.strip_prefix("0o") {
        !o.is_empty() && o.bytes().all(|c| (b'0'..=b'7').contains(&c))
    } else if lower.len() > 1 && lower.starts_with('0') {
        lower.bytes().all(|c| (b'0'..=b'7').contains(&c))
    } else {
        !lower.is_empty() && lower.bytes().all(|c| c.is_ascii_digit())
    };
    if int_like {
        return true;
    }
    // yaml.v2's float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let m = mantissa.trim_start_matches(['+', '-']);
    let m_ok = match m.split_once('.') {
        Some((a, b)) => {
            a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
                && (!a.is_empty() || !b.is_empty())
        }
        None => !m.is_empty() && m.bytes().all(|c| c.is_ascii_digit()),
    };
    let e_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
    });
    if m_ok && e_ok && mantissa.len() - m.len() <= 1 {
        return true;
    }
    // base 60 floats ("1:20")
    s.contains(':')
        && s.split(':')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit() || c == b'.'))
}

/// How yaml.v2 writes a single-line string: plain, single-quoted or double-quoted.
fn scalar(s: &str) -> String {
    let special = s.chars().any(|c| {
        (c.is_control() && c != '\t') || c == '\u{feff}' || c == '\u{2028}' || c == '\u{2029}'
    });
    if special {
        return double_quoted(s);
    }
    if resolves_to_non_string(s) {
        return double_quoted(s);
    }
    let chars: Vec<char> = s.chars().collect();
    let followed_by_space = |i: usize| chars.get(i + 1).is_none_or(|c| *c == ' ' || *c == '\t');
    let mut plain = !s.starts_with([' ', '\t']) && !s.ends_with([' ', '\t']);
    for (i, c) in chars.iter().enumerate() {
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => plain = false,
                '?' | ':' | '-' if followed_by_space(i) => plain = false,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_space(i) => plain = false,
                '#' if matches!(chars[i - 1], ' ' | '\t') => plain = false,
                _ => {}
            }
        }
    }
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if c.is_control() || c == '\u{feff}' => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02X}"));
                } else {
                    out.push_str(&format!("\\u{n:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A literal block (`|-`, `|`, `|+`) at `indent`.
fn literal(s: &str, indent: usize) -> String {
    let trailing = s.len() - s.trim_end_matches('\n').len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let lead = if s.starts_with(' ') { "2" } else { "" };
    let pad = " ".repeat(indent);
    let body = s.strip_suffix('\n').unwrap_or(s);
    let lines: Vec<String> = body
        .split('\n')
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect();
    format!("|{lead}{chomp}\n{}", lines.join("\n"))
}

/// A value as JSON reads it back: numbers integral in their JSON text are ints.
fn normalize(v: &Value) -> Value {
    match v {
        // a nil slice is JSON's null
        Value::Array(a) if a.is_nil() => Value::Nil,
        Value::Array(a) => Value::Array(a.iter().map(normalize).collect()),
        Value::Map(m) | Value::Object(m) => Value::Map(
            m.read()
                .iter()
                .map(|(k, v)| (k.clone(), normalize(v)))
                .collect(),
        ),
        Value::NoValue => Value::Nil,
        other => other.clone(),
    }
}

fn number_text(v: &Value) -> String {
    // JSON first: a float whose JSON text has no fraction or exponent reads back as an int
    match num(v) {
        Some(Num::Int(i)) => i.to_string(),
        Some(Num::Float(f)) => {
            let json = to_json(v, false, None).unwrap_or_default();
            if json.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                json
            } else if f.is_infinite() {
                if f > 0.0 {
                    ".inf".into()
                } else {
                    "-.inf".into()
                }
            } else {
                let shortest = format!("{f}");
                let e = float_e(f);
                let exp: i32 = e
                    .split_once('e')
                    .and_then(|(_, x)| x.parse().ok())
                    .unwrap_or(0);
                if !(-4..21).contains(&exp) {
                    e
                } else {
                    shortest
                }
            }
        }
        None => String::new(),
    }
}

/// Writes `v` as the value after `key:` (or a list dash) at `indent`.
fn write_value(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Map(m) | Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(&m.read(), indent, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_list(a, indent.saturating_sub(2), out);
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other, indent));
        }
    }
}

fn inline(v: &Value, indent: usize) -> String {
    match v {
        Value::Nil | Value::NoValue => "null".into(),
        Value::Array(a) if a.is_nil() => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => number_text(v),
        Value::Typed(t) if matches!(t.kind, "int" | "uint64") => t.text.clone(),
        Value::Typed(t) => scalar(&super::go::typed_json_text(t)),
        Value::String(s) if s.contains('\n') => literal(s, indent),
        Value::String(s) => scalar(s),
        Value::Array(_) => "[]".into(),
        Value::Map(_) | Value::Object(_) => "{}".into(),
    }
}

fn write_map(m: &HashMap<String, Value>, indent: usize, out: &mut String) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_by(|a, b| key_order(a, b));
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&" ".repeat(indent));
        out.push_str(&scalar(k));
        out.push(':');
        write_value(&m[*k], indent + 2, out);
    }
}

fn write_list(a: &[Value], indent: usize, out: &mut String) {
    for (i, item) in a.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            Value::Map(m) | Value::Object(m) if !m.is_empty() => {
                out.push(' ');
                let mut inner = String::new();
                write_map(&m.read(), indent + 2, &mut inner);
                out.push_str(inner.trim_start());
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push(' ');
                let mut nested = String::new();
                write_list(inner, indent + 2, &mut nested);
                out.push_str(nested.trim_start());
            }
            other => {
                out.push(' ');
                out.push_str(&inline(other, indent + 2));
            }
        }
    }
}

/// `toYaml v`: the YAML `sigs.k8s.io/yaml` writes, without its final newline ("" when the
/// value cannot be written as JSON).
fn to_yaml(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "toYaml", 1)?;
    if to_json(&args[0], false, None).is_none() {
        return Ok(Value::String(String::new()));
    }
    let v = normalize(&args[0]);
    let mut out = String::new();
    match &v {
        Value::Map(m) | Value::Object(m) if !m.is_empty() => write_map(&m.read(), 0, &mut out),
        Value::Array(a) if !a.is_empty() => write_list(a, 0, &mut out),
        other => out.push_str(&inline(other, 2)),
    }
    Ok(Value::String(out))
}

/// `fromYaml text`: the document as a map; a document that does not parse, or is not a map,
/// gives a map with its error under "Error".
fn from_yaml(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "fromYaml", 1)?;
    let text = str_param(&args[0])?;
    let doc: Result<serde_json::Value, _> = serde_yaml_ng::from_str(&text);
    let error = |msg: String| {
        super::go::map_value(HashMap::from([("Error".to_string(), Value::String(msg))]))
    };
    Ok(match doc {
        Ok(map @ serde_json::Value::Object(_)) => {
            // through JSON, as sigs.k8s.io/yaml does: numbers become float64
            let json = serde_json::to_string(&map).unwrap_or_default();
            from_json(&json).unwrap_or_else(|_| super::go::map_value(HashMap::new()))
        }
        Ok(serde_json::Value::Null) => super::go::map_value(HashMap::new()),
        Ok(other) => {
            let kind = match other {
                serde_json::Value::Array(_) => "array",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Number(_) => "number",
                _ => "bool",
            };
            error(format!(
                "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
            ))
        }
        Err(e) => error(format!("error converting YAML to JSON: yaml: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    fn yaml(v: Value) -> String {
        match to_yaml(&[v]).unwrap() {
            Value::String(s) => s,
            _ => String::new(),
        }
    }

    #[test]
    fn writes_as_sigs_yaml() {
        let v = Value::Map(
            HashMap::from([
                ("b".to_string(), Value::from(1)),
                ("a".to_string(), Value::Array(vec![s("x"), s("y")].into())),
                (
                    "c".to_string(),
                    Value::Map(HashMap::from([("d".to_string(), Value::Nil)]).into()),
                ),
                ("n".to_string(), s("multi\nline")),
            ])
            .into(),
        );
        assert_eq!(
            yaml(v),
            "a:\n- x\n- \"y\"\nb: 1\nc:\n  d: null\n\"n\": |-\n  multi\n  line"
        );
        assert_eq!(yaml(s("admin")), "admin");
        assert_eq!(yaml(s("a: b")), "'a: b'");
        assert_eq!(yaml(s("0755")), "\"0755\"");
        assert_eq!(yaml(Value::Array(Vec::<Value>::new().into())), "[]");
        assert_eq!(key_order("a10", "a9"), Ordering::Greater);
    }
}

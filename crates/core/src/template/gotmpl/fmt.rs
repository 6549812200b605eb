//! Go's `fmt.Sprintf` for template values: verbs, flags, width, precision, argument indexes,
//! and Go's `%!verb(type=value)` notes for bad verbs, missing and extra arguments.

use super::exec::type_name;
use super::floats::{FloatFormat, format_float};
use super::value::{NumberKind, Value};

#[derive(Default, Clone, Copy)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprintf(format, args...)`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let args: Vec<Value> = args
        .iter()
        .map(|a| match a {
            Value::NoValue => Value::Nil,
            other => other.clone(),
        })
        .collect();
    let mut out = String::new();
    let mut next = 0usize;
    let mut reordered = false;
    let chars: Vec<char> = format.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while i < chars.len() {
            match chars[i] {
                '-' => {
                    spec.minus = true;
                    spec.zero = false;
                }
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                ' ' => spec.space = true,
                '0' => spec.zero = !spec.minus,
                _ => break,
            }
            i += 1;
        }
        // argument index, width
        let mut bad_index = false;
        if let Some((n, len)) = arg_index(&chars[i..]) {
            i += len;
            reordered = true;
            match n {
                Some(n) if n >= 1 && n <= args.len() => next = n - 1,
                _ => bad_index = true,
            }
        }
        if chars.get(i) == Some(&'*') {
            i += 1;
            match args.get(next).and_then(int_of) {
                Some(w) if (-1_000_000..=1_000_000).contains(&w) => {
                    if w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    spec.width = Some(w.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            next += 1;
        } else {
            let (w, len) = digits(&chars[i..]);
            i += len;
            spec.width = w;
        }
        if chars.get(i) == Some(&'.') {
            i += 1;
            if let Some((n, len)) = arg_index(&chars[i..]) {
                i += len;
                reordered = true;
                match n {
                    Some(n) if n >= 1 && n <= args.len() => next = n - 1,
                    _ => bad_index = true,
                }
            }
            if chars.get(i) == Some(&'*') {
                i += 1;
                match args.get(next).and_then(int_of) {
                    Some(p) if (0..=1_000_000).contains(&p) => spec.prec = Some(p as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                next += 1;
            } else {
                let (p, len) = digits(&chars[i..]);
                i += len;
                spec.prec = Some(p.unwrap_or(0));
            }
        }
        if let Some((n, len)) = arg_index(&chars[i..]) {
            i += len;
            reordered = true;
            match n {
                Some(n) if n >= 1 && n <= args.len() => next = n - 1,
                _ => bad_index = true,
            }
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        if verb == 'v' {
            // `+` and `#` mean other things for %v (field names, Go syntax)
            spec.plus = false;
        }
        if bad_index {
            out.push_str(&format!("%!{verb}(BADINDEX)"));
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        out.push_str(&format_one(arg, verb, spec));
    }
    if !reordered && next < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| match a {
                Value::Nil => "<nil>".to_string(),
                other => format!(
                    "{}={}",
                    type_name(other),
                    format_one(other, 'v', Spec::default())
                ),
            })
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn digits(c: &[char]) -> (Option<usize>, usize) {
    let n = c.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 {
        return (None, 0);
    }
    let s: String = c[..n].iter().collect();
    (
        Some(s.parse::<usize>().unwrap_or(1_000_000).min(1_000_000)),
        n,
    )
}

/// `[n]` at the start: the index (None when malformed) and its length.
fn arg_index(c: &[char]) -> Option<(Option<usize>, usize)> {
    if c.first() != Some(&'[') {
        return None;
    }
    match c.iter().position(|&x| x == ']') {
        Some(end) => {
            let s: String = c[1..end].iter().collect();
            Some((s.parse().ok(), end + 1))
        }
        None => Some((None, c.len())),
    }
}

fn pad(s: String, spec: Spec, zero_ok: bool) -> String {
    let Some(width) = spec.width else {
        return s;
    };
    let len = s.chars().count();
    if len >= width {
        return s;
    }
    let fill = width - len;
    if spec.minus {
        return format!("{s}{}", " ".repeat(fill));
    }
    if spec.zero && zero_ok {
        // zeros go after a sign
        let (sign, rest) = match s.chars().next() {
            Some(c @ ('+' | '-' | ' ')) => (c.to_string(), &s[1..]),
            _ => (String::new(), s.as_str()),
        };
        return format!("{sign}{}{rest}", "0".repeat(fill));
    }
    format!("{}{s}", " ".repeat(fill))
}

fn bad(arg: &Value, verb: char, spec: Spec) -> String {
    match arg {
        Value::Nil => format!("%!{verb}(<nil>)"),
        other => format!(
            "%!{verb}({}={})",
            type_name(other),
            // Go prints the value with the verb's flags, width and precision
            format_one(other, 'v', spec)
        ),
    }
}

fn format_one(arg: &Value, verb: char, spec: Spec) -> String {
    match arg {
        Value::Nil | Value::NoValue => match verb {
            'v' => pad("<nil>".into(), spec, false),
            _ => bad(arg, verb, spec),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => pad(b.to_string(), spec, true),
            _ => bad(arg, verb, spec),
        },
        Value::String(s) => format_str(s, arg, verb, spec),
        // an unsigned integer (a string's byte, semver's Major)
        Value::Typed(t) if matches!(t.kind, "uint8" | "uint64") => format_int(
            i128::from(t.text.parse::<u64>().unwrap_or_default()),
            arg,
            verb,
            spec,
        ),
        // a Stringer: %v and %s print its text
        Value::Typed(t) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => format_str(&t.text, arg, verb, spec),
            _ => bad(arg, verb, spec),
        },
        Value::Number(n) => match n.kind() {
            NumberKind::Float(f) => format_float_verb(f, arg, verb, spec),
            NumberKind::Signed(i) | NumberKind::Negative(i) => {
                format_int(i128::from(i), arg, verb, spec)
            }
            NumberKind::Unsigned(u) => format_int(i128::from(u), arg, verb, spec),
        },
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(|e| format_one(e, verb, spec)).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Map(m) | Value::Object(m) => {
            let m = m.read();
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        format_str(k, &Value::String(k.clone()), verb, spec),
                        format_one(&m[k], verb, spec)
                    )
                })
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

fn format_str(s: &str, arg: &Value, verb: char, spec: Spec) -> String {
    match verb {
        'v' | 's' => {
            let s = match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            pad(s, spec, true)
        }
        'q' => {
            let s = match spec.prec {
                Some(p) => s.chars().take(p).collect::<String>(),
                None => s.to_string(),
            };
            let quoted = if spec.sharp
                && !s.contains('`')
                && s.chars().all(|c| c == '\t' || !c.is_control())
            {
                format!("`{s}`")
            } else if spec.plus {
                super::super::go::go_quote(&s)
                    .chars()
                    .flat_map(|c| {
                        if c.is_ascii() {
                            vec![c]
                        } else if (c as u32) < 0x10000 {
                            format!("\\u{:04x}", c as u32).chars().collect()
                        } else {
                            format!("\\U{:08x}", c as u32).chars().collect()
                        }
                    })
                    .collect()
            } else {
                super::super::go::go_quote(&s)
            };
            pad(quoted, spec, true)
        }
        'x' | 'X' => {
            let bytes = s.as_bytes();
            let bytes = match spec.prec {
                Some(p) => &bytes[..p.min(bytes.len())],
                None => bytes,
            };
            let mut out = String::new();
            for (i, b) in bytes.iter().enumerate() {
                if spec.space && i > 0 {
                    out.push(' ');
                }
                if spec.sharp && (spec.space || i == 0) {
                    out.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    out.push_str(&format!("{b:02x}"));
                } else {
                    out.push_str(&format!("{b:02X}"));
                }
            }
            pad(out, spec, true)
        }
        _ => bad(arg, verb, spec),
    }
}

fn sign(neg: bool, spec: Spec) -> &'static str {
    if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

fn format_int(i: i128, arg: &Value, verb: char, spec: Spec) -> String {
    let neg = i < 0;
    let a = i.unsigned_abs();
    let body = match verb {
        'v' | 'd' => a.to_string(),
        'b' => format!("{a:b}"),
        'o' | 'O' => format!("{a:o}"),
        'x' => format!("{a:x}"),
        'X' => format!("{a:X}"),
        'c' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            return pad(c.to_string(), spec, false);
        }
        'q' => {
            let c = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .unwrap_or('\u{fffd}');
            let q = super::super::go::go_quote(&c.to_string());
            let inner = &q[1..q.len() - 1];
            let inner = if inner == "'" {
                "\\'"
            } else if inner == "\\\"" {
                "\""
            } else {
                inner
            };
            return pad(format!("'{inner}'"), spec, false);
        }
        'U' => {
            let mut s = format!("U+{a:04X}");
            if spec.sharp
                && let Some(c) = u32::try_from(i).ok().and_then(char::from_u32)
                && !c.is_control()
            {
                s.push_str(&format!(" '{c}'"));
            }
            return pad(s, spec, false);
        }
        _ => return bad(arg, verb, spec),
    };
    let mut digits = body;
    if let Some(p) = spec.prec {
        if p == 0 && a == 0 {
            digits = String::new();
        } else if digits.len() < p {
            digits = format!("{}{digits}", "0".repeat(p - digits.len()));
        }
    }
    let prefix = match verb {
        'x' if spec.sharp => "0x",
        'X' if spec.sharp => "0X",
        'b' if spec.sharp => "0b",
        'o' if spec.sharp && !digits.starts_with('0') => "0",
        'O' => "0o",
        _ => "",
    };
    let s = format!("{}{prefix}{digits}", sign(neg, spec));
    pad(s, spec, spec.prec.is_none())
}

fn format_float_verb(f: f64, arg: &Value, verb: char, spec: Spec) -> String {
    let format = match verb {
        'v' | 'g' => FloatFormat::General,
        'G' => FloatFormat::GeneralUpper,
        'e' => FloatFormat::Exponent,
        'E' => FloatFormat::ExponentUpper,
        'f' | 'F' => FloatFormat::Fixed,
        _ => return bad(arg, verb, spec),
    };
    let prec = match (verb, spec.prec) {
        (_, Some(p)) => Some(p),
        ('e' | 'E' | 'f' | 'F', None) => Some(6),
        _ => None,
    };
    let text = format_float(f.abs(), format, prec);
    if f.is_nan() {
        let s = if spec.plus {
            "+NaN"
        } else if spec.space {
            " NaN"
        } else {
            "NaN"
        };
        return pad(s.into(), spec, false);
    }
    if f.is_infinite() {
        let s = format!(
            "{}Inf",
            if f < 0.0 {
                "-"
            } else if spec.plus {
                "+"
            } else if spec.space {
                " "
            } else {
                "+"
            }
        );
        let s = if f > 0.0 && !spec.plus && !spec.space {
            "+Inf".to_string()
        } else {
            s
        };
        return pad(s, spec, false);
    }
    let s = format!("{}{text}", sign(f.is_sign_negative(), spec));
    pad(s, spec, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(f: &str, args: &[Value]) -> String {
        sprintf(f, args)
    }

    #[test]
    fn formats_as_go() {
        assert_eq!(p("%d-%s", &[Value::from(5i64), Value::from("x")]), "5-x");
        assert_eq!(
            p(
                "%05d|%-4d|%+d",
                &[Value::from(-3i64), Value::from(7i64), Value::from(2i64)]
            ),
            "-0003|7   |+2"
        );
        assert_eq!(
            p(
                "%x %X %#x %o %b",
                &[
                    Value::from(255i64),
                    Value::from(255i64),
                    Value::from(255i64),
                    Value::from(8i64),
                    Value::from(5i64)
                ]
            ),
            "ff FF 0xff 10 101"
        );
        assert_eq!(
            p(
                "%.2f %e %g",
                &[Value::from(1.23456), Value::from(1234.5), Value::from(0.5)]
            ),
            "1.23 1.234500e+03 0.5"
        );
        assert_eq!(
            p(
                "%q %v %s",
                &[Value::from("a\"b"), Value::Nil, Value::from(1i64)]
            ),
            "\"a\\\"b\" <nil> %!s(int=1)"
        );
        assert_eq!(p("%d", &[]), "%!d(MISSING)");
        assert_eq!(
            p("x", &[Value::from(1i64), Value::from("a")]),
            "x%!(EXTRA int=1, string=a)"
        );
        assert_eq!(
            p(
                "%5s|%-5s|%.2s",
                &[Value::from("ab"), Value::from("ab"), Value::from("abc")]
            ),
            "   ab|ab   |ab"
        );
        assert_eq!(
            p("%c %U", &[Value::from(65i64), Value::from(65i64)]),
            "A U+0041"
        );
        assert_eq!(p("%x", &[Value::from("hi")]), "6869");
        assert_eq!(
            p("%[2]d %[1]d", &[Value::from(1i64), Value::from(2i64)]),
            "2 1"
        );
        assert_eq!(
            p(
                "%d",
                &[Value::Array(
                    vec![Value::from(1i64), Value::from(2i64)].into()
                )]
            ),
            "[1 2]"
        );
        assert_eq!(
            p(
                "%6.2f|%-8.3e|%z",
                &[Value::from(1.23456), Value::from(3.0), Value::from(1i64)]
            ),
            "  1.23|3.000e+00|%!z(int=1)"
        );
    }
}

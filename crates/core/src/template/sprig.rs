//! Sprig functions that the engine's Helm set does not have. Each follows sprig's argument order
//! (the piped value last).

use super::gotmpl::{Elem, Func, FuncError, List, Value};

/// Functions added on top of the Helm set.
pub(super) const EXTRA: &[(&str, Func)] = &[
    ("regexQuoteMeta", regex_quote_meta as Func),
    ("toDecimal", to_decimal as Func),
    ("chunk", chunk as Func),
    ("wrap", wrap as Func),
    ("wrapWith", wrap_with as Func),
    ("mustChunk", chunk as Func),
];

/// Sprig names that are another name for a function the engine has.
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("push", "append"),
    ("mustPush", "mustAppend"),
    ("tuple", "list"),
    // Paths are always slash-separated on the controller's platform.
    ("osIsAbs", "isAbs"),
];

/// `regexQuoteMeta s`: `s` with Go's regexp metacharacters escaped (`\.+*?()|[]{}^$`).
fn regex_quote_meta(args: &[Value]) -> Result<Value, FuncError> {
    super::go::exactly(args, "regexQuoteMeta", 1)?;
    let s = super::go::str_param(&args[0])?;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(Value::String(out))
}

/// `toDecimal "0777"`: an octal string as a decimal number (0 when it is not octal).
fn to_decimal(args: &[Value]) -> Result<Value, FuncError> {
    super::go::exactly(args, "toDecimal", 1)?;
    let s = super::go::strval(&args[0]);
    let digits = s.strip_prefix('+').unwrap_or(&s);
    let valid = !digits.is_empty()
        && digits
            .trim_start_matches('-')
            .bytes()
            .all(|b| (b'0'..=b'7').contains(&b));
    Ok(super::go::int64(if valid {
        i64::from_str_radix(digits, 8).unwrap_or(0)
    } else {
        0
    }))
}

/// `chunk size list`: the list cut into lists of `size` items (the last may be shorter). As in
/// sprig, a size that leaves no chunk gives an empty list, and a size of 0 fails.
fn chunk(args: &[Value]) -> Result<Value, FuncError> {
    super::go::exactly(args, "chunk", 2)?;
    let size = super::go::int_param(&args[0])?;
    let items = super::go::list_param(&args[1], "chunk")?;
    if size == 0 {
        return Err(FuncError::Generic(
            "runtime error: makeslice: len out of range".into(),
        ));
    }
    let chunks = ((items.len() as f64 - 1.0) / size as f64).floor() + 1.0;
    // sprig makes `chunks` lists of `size` items: a negative count or length panics in Go
    if chunks < 0.0 || (size < 0 && chunks != 0.0) {
        return Err(FuncError::Generic(
            "runtime error: makeslice: len out of range".into(),
        ));
    }
    // sprig's chunk returns a [][]interface{}
    let lists = |items: Vec<Value>| Value::Array(List::typed(items, Elem::Lists));
    if chunks == 0.0 {
        return Ok(lists(Vec::new()));
    }
    let size = usize::try_from(size)
        .map_err(|_| FuncError::Generic("runtime error: makeslice: len out of range".into()))?;
    Ok(lists(
        items
            .chunks(size)
            .map(|c| Value::Array(c.to_vec().into()))
            .collect(),
    ))
}

/// Breaks `s` into lines of at most `width` bytes at spaces (the space is replaced by
/// `newline`). A word longer than `width` is cut when `cut_long_words`, else left whole on a line
/// of its own. Leading spaces of a line are dropped, as sprig's `wrap` does.
fn wrap_text(s: &str, width: usize, newline: &str, cut_long_words: bool) -> String {
    // goutils counts and cuts bytes, not characters
    let chars = s.as_bytes();
    let width = width.max(1);
    let newline = if newline.is_empty() { "\n" } else { newline };
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut at = 0;
    while chars.len() - at > width {
        if chars[at] == b' ' {
            at += 1;
            continue;
        }
        // the last space within the next width + 1 bytes
        let window = &chars[at..(at + width + 1).min(chars.len())];
        if let Some(space) = window.iter().rposition(|c| *c == b' ') {
            out.extend_from_slice(&chars[at..at + space]);
            out.extend_from_slice(newline.as_bytes());
            at += space + 1;
        } else if cut_long_words {
            out.extend_from_slice(&chars[at..at + width]);
            out.extend_from_slice(newline.as_bytes());
            at += width;
        } else {
            // a long word stays whole: break at the next space after it
            match chars[at + width..].iter().position(|c| *c == b' ') {
                Some(i) => {
                    let space = at + width + i;
                    out.extend_from_slice(&chars[at..space]);
                    out.extend_from_slice(newline.as_bytes());
                    at = space + 1;
                }
                // no space after it: the rest is the last line
                None => break,
            }
        }
    }
    out.extend_from_slice(&chars[at..]);
    super::compat::go_bytes(&out)
}

/// `wrap WIDTH s`: `s` broken into lines of at most WIDTH bytes; long words stay whole.
fn wrap(args: &[Value]) -> Result<Value, FuncError> {
    super::go::exactly(args, "wrap", 2)?;
    let w = usize::try_from(super::go::int_param(&args[0])?).unwrap_or(0);
    let s = super::go::str_param(&args[1])?;
    Ok(Value::String(wrap_text(&s, w, "\n", false)))
}

/// `wrapWith WIDTH SEP s`: like `wrap`, with SEP between lines and long words cut.
fn wrap_with(args: &[Value]) -> Result<Value, FuncError> {
    super::go::exactly(args, "wrapWith", 3)?;
    let w = usize::try_from(super::go::int_param(&args[0])?).unwrap_or(0);
    let sep = super::go::str_param(&args[1])?;
    let s = super::go::str_param(&args[2])?;
    // every character could start a line: refuse a separator that would multiply the text
    let limit = super::gotmpl::limits::active()
        .function_output
        .unwrap_or(usize::MAX);
    let lines = wrap_text(&s, w, "\n", true).matches('\n').count();
    if s.len().saturating_add(lines.saturating_mul(sep.len())) > limit {
        return Err(FuncError::TooMuchOutput {
            function: "wrapWith".into(),
            count: lines,
            what: "lines".into(),
            limit,
        });
    }
    Ok(Value::String(wrap_text(&s, w, &sep, true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::args::text;

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn quote_meta_octal_and_chunks() {
        assert_eq!(text(&regex_quote_meta(&[s("a.b*c")]).unwrap()), "a\\.b\\*c");
        assert_eq!(text(&to_decimal(&[s("0777")]).unwrap()), "511");
        assert_eq!(text(&to_decimal(&[s("9")]).unwrap()), "0");
        let list = Value::Array(vec![s("a"), s("b"), s("c")].into());
        let Value::Array(chunks) = chunk(&[Value::from(2), list]).unwrap() else {
            unreachable!()
        };
        assert_eq!(chunks.len(), 2);
    }

    #[test]
    fn wrap_breaks_at_spaces_like_sprig() {
        // sprig's documented example: wrap 80 $someText; here shorter
        assert_eq!(
            wrap_text("the quick brown fox", 10, "\n", false),
            "the quick\nbrown fox"
        );
        assert_eq!(
            wrap_text("a verylongword b", 4, "\n", false),
            "a\nverylongword\nb"
        );
        assert_eq!(
            wrap_text("a verylongword b", 4, "<br>", true),
            "a<br>very<br>long<br>word<br>b"
        );
        assert_eq!(wrap_text("short", 10, "\n", false), "short");
        assert_eq!(
            text(&wrap_with(&[Value::from(5), s("\t"), s("Hello World")]).unwrap()),
            "Hello\tWorld"
        );
    }
}

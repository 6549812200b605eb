//! What happens to template text before the engine parses it:
//!
//! - nesting is bounded: parenthesised pipelines plus open blocks at most [`MAX_NESTING`] deep,
//!   because parsing and running recurse on the thread's stack;
//! - raw strings (`` `\d+` ``) become interpreted strings with the same value, because the engine
//!   reads escapes inside raw strings and Go does not;
//! - Go 1.23's `{{ else with P }}` (upstream builds with a newer Go than the engine follows)
//!   becomes `{{ else }}{{ with P }}`, with one more `{{ end }}` where the block closes;
//! - sprig's map-mutating idiom `{{ $_ := set $d "k" "v" }}` (also `unset`, `merge`,
//!   `mergeOverwrite` and their `must` forms) also assigns the result back to `$d`, because Go's
//!   maps are shared and change in place while the engine's values are copies.

/// The deepest a template may nest parenthesised pipelines and blocks (`if`, `range`, `with`,
/// `define`, `block`) together. Go allows 10 000; no hand-written template comes near 64.
pub(super) const MAX_NESTING: usize = 64;

/// Sprig functions that change their first argument, a map, in place.
const MUTATORS: [&str; 6] = [
    "set",
    "unset",
    "merge",
    "mergeOverwrite",
    "mustMerge",
    "mustMergeOverwrite",
];

/// A string's value as an interpreted literal that the engine's lexer and unquoting read
/// correctly: its lexer takes the quote after an escaped backslash (`"a\\"`) for an escaped quote,
/// and its `\x`/`\u` escapes work only at the very end of a literal. So a backslash is written
/// `\\` except a final one (`\x5c`), a quote `\"`, and other control characters as they are.
fn literal(value: &str) -> Option<String> {
    let mut out = String::from("\"");
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_none() => out.push_str("\\x5c"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // the engine's lexer takes other control characters as they are
            c => out.push(c),
        }
    }
    out.push('"');
    Some(out)
}

/// The value of a Go interpreted string literal (between its quotes), `None` where Go would
/// refuse it or the value is not UTF-8 (then the literal is left to the engine as written).
fn unquote(body: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Option<u32> {
            let digits: String = chars.by_ref().take(n).collect();
            if digits.len() != n {
                return None;
            }
            u32::from_str_radix(&digits, 16).ok()
        };
        match chars.next()? {
            'a' => bytes.push(7),
            'b' => bytes.push(8),
            'f' => bytes.push(12),
            'n' => bytes.push(b'\n'),
            'r' => bytes.push(b'\r'),
            't' => bytes.push(b'\t'),
            'v' => bytes.push(11),
            '\\' => bytes.push(b'\\'),
            '"' => bytes.push(b'"'),
            'x' => bytes.push(u8::try_from(hex(&mut chars, 2)?).ok()?),
            u @ ('u' | 'U') => {
                let c = char::from_u32(hex(&mut chars, if u == 'u' { 4 } else { 8 })?)?;
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            d @ '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let v = u32::from_str_radix(&format!("{d}{rest}"), 8).ok()?;
                bytes.push(u8::try_from(v).ok()?);
            }
            _ => return None,
        }
    }
    String::from_utf8(bytes).ok()
}

/// Whether a number literal starts here (a digit, or a sign or point before one).
fn number_start(b: &[u8]) -> bool {
    match b {
        [d, ..] if d.is_ascii_digit() => true,
        [b'+' | b'-', b'.', d, ..] if d.is_ascii_digit() => true,
        [b'+' | b'-' | b'.', d, ..] => d.is_ascii_digit(),
        _ => false,
    }
}

/// The length of the number literal at the start (Go's lexer: digits, letters for bases and
/// exponents, `_`, `.`, and a sign after an exponent).
fn number_len(b: &[u8]) -> usize {
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    while i < b.len() {
        let c = b[i];
        let exponent_sign =
            (c == b'+' || c == b'-') && matches!(b[i - 1], b'e' | b'E' | b'p' | b'P');
        if !(c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exponent_sign) {
            break;
        }
        i += 1;
    }
    i
}

/// A float constant with a whole value (`1.0`, `1e3`), which Go keeps a float64 and the engine
/// would read as an integer, as an explicit float64 conversion; an integer constant past int64,
/// which Go refuses and the engine reads as a uint64, as a failure.
fn float_literal(text: &str) -> Option<String> {
    let body = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
    // an integer constant past int64 (but within uint64, which the engine accepts) is Go's
    // "overflows int" wherever a template uses it
    if !text.starts_with('-')
        && !body.contains(['.', 'p'])
        && (body.starts_with("0x") || !body.contains('e'))
    {
        let digits = body.replace('_', "");
        let value = match digits.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None if digits.bytes().all(|b| b.is_ascii_digit()) => digits.parse::<u64>().ok(),
            None => None,
        };
        if value.is_some_and(|v| v > i64::MAX as u64) {
            return Some(format!("(fail {:?})", format!("{text} overflows int")));
        }
    }
    if body.starts_with("0x") || body.starts_with("0b") || body.starts_with("0o") {
        return None;
    }
    if !body.contains(['.', 'e']) {
        return None;
    }
    let value: f64 = text.replace('_', "").parse().ok()?;
    (value.is_finite() && value.fract() == 0.0).then(|| format!("(float64 {text:?})"))
}

/// One action's text between its delimiters, split into the trim markers and the body.
struct Action {
    left_trim: bool,
    body: String,
    right_trim: bool,
}

/// Top-level words of an action body: whitespace separates them except inside quotes and
/// parentheses. `None` when the body has a top-level pipe or comment.
fn words(body: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' | '`' => {
                current.push(c);
                while let Some(d) = chars.next() {
                    current.push(d);
                    if d == '\\' && c != '`' {
                        if let Some(e) = chars.next() {
                            current.push(e);
                        }
                    } else if d == c {
                        break;
                    }
                }
            }
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            '|' if depth == 0 => return None,
            '/' if depth == 0 && chars.peek() == Some(&'*') => return None,
            c if c.is_whitespace() && depth == 0 => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    Some(out)
}

fn is_variable(w: &str) -> bool {
    w.len() > 1 && w.starts_with('$') && w[1..].chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// The action rewritten so that a map-mutating call also updates its variable.
fn rewrite_mutation(action: &Action) -> Option<String> {
    let w = words(&action.body)?;
    let (target, call) = match w.as_slice() {
        [v, op, rest @ ..] if is_variable(v) && (op == ":=" || op == "=") => {
            (Some((v.as_str(), op.as_str())), rest)
        }
        rest => (None, rest),
    };
    let [func, map, ..] = call else {
        return None;
    };
    if !MUTATORS.contains(&func.as_str()) || !is_variable(map) {
        return None;
    }
    if target.is_some_and(|(v, _)| v == map) {
        return None;
    }
    let l = if action.left_trim { "- " } else { " " };
    let r = if action.right_trim { " -" } else { " " };
    let call = call.join(" ");
    Some(match target {
        Some((v, op)) => format!("{{{{{l}{map} = {call} }}}}{{{{ {v} {op} {map}{r}}}}}"),
        None => format!("{{{{{l}{map} = {call} }}}}{{{{ {map}{r}}}}}"),
    })
}

/// Checks nesting and rewrites raw strings and map mutations; `Err` says why the text is
/// refused.
pub(super) fn preprocess(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut blocks = 0usize;
    // for each open block, the `with` blocks opened by `{{ else with }}` inside it, which close
    // with it
    let mut extra_ends: Vec<usize> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let action_start = &rest[open..];
        let inner = &action_start[2..];
        let (left_trim, mut i) = match inner.as_bytes() {
            [b'-', next, ..] if next.is_ascii_whitespace() => (true, 1),
            _ => (false, 0),
        };
        let bytes = inner.as_bytes();
        // the first word decides whether a block opens or closes
        let mut j = i;
        while bytes.get(j).is_some_and(u8::is_ascii_whitespace) {
            j += 1;
        }
        let word_end = (j..bytes.len())
            .find(|&k| !bytes[k].is_ascii_alphabetic())
            .unwrap_or(bytes.len());
        match &inner[j..word_end] {
            "if" | "range" | "with" | "define" | "block" => {
                blocks += 1;
                extra_ends.push(0);
            }
            "end" => blocks = blocks.saturating_sub(1),
            _ => {}
        }
        let mut body = String::new();
        let mut parens = 0usize;
        let mut deepest = blocks;
        let mut closed = None;
        while i < bytes.len() {
            let c = bytes[i];
            match c {
                b'-' if bytes.get(i + 1) == Some(&b'}')
                    && bytes.get(i + 2) == Some(&b'}')
                    && i > 0
                    && bytes[i - 1].is_ascii_whitespace() =>
                {
                    closed = Some((i, true));
                    break;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    closed = Some((i, false));
                    break;
                }
                b'(' => {
                    parens += 1;
                    deepest = deepest.max(parens + blocks);
                    body.push('(');
                }
                b')' => {
                    parens = parens.saturating_sub(1);
                    body.push(')');
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    let end = inner[i + 2..]
                        .find("*/")
                        .map_or(bytes.len(), |e| i + 2 + e + 2);
                    body.push_str(&inner[i..end.min(inner.len())]);
                    i = end;
                    continue;
                }
                b'`' => {
                    let end = inner[i + 1..].find('`').map(|e| i + 1 + e);
                    match end {
                        Some(e) => {
                            // Go drops carriage returns from raw strings
                            let value = inner[i + 1..e].replace('\r', "");
                            match literal(&value) {
                                Some(l) => body.push_str(&l),
                                None => body.push_str(&inner[i..=e]),
                            }
                            i = e + 1;
                        }
                        None => {
                            // unterminated: leave it for the parser to report
                            body.push_str(&inner[i..]);
                            i = bytes.len();
                        }
                    }
                    continue;
                }
                quote @ (b'"' | b'\'') => {
                    let start = i;
                    i += 1;
                    while i < bytes.len() && bytes[i] != quote && bytes[i] != b'\n' {
                        if bytes[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                    let end = (i + 1).min(bytes.len());
                    let written = &inner[start..end];
                    let rewritten =
                        (quote == b'"' && end > start + 1 && bytes.get(end - 1) == Some(&b'"'))
                            .then(|| unquote(&inner[start + 1..end - 1]))
                            .flatten()
                            .and_then(|v| literal(&v));
                    body.push_str(rewritten.as_deref().unwrap_or(written));
                    i = end;
                    continue;
                }
                b'0'..=b'9' | b'.' | b'+' | b'-'
                    if body.chars().last().is_none_or(|p| {
                        p.is_whitespace() || matches!(p, '(' | ',' | '|' | '=')
                    }) && number_start(&bytes[i..]) =>
                {
                    let len = number_len(&bytes[i..]);
                    let literal = &inner[i..i + len];
                    body.push_str(&float_literal(literal).unwrap_or_else(|| literal.to_string()));
                    i += len;
                    continue;
                }
                _ => {
                    // copy the whole character
                    let ch_len = inner[i..].chars().next().map_or(1, char::len_utf8);
                    body.push_str(&inner[i..i + ch_len]);
                    i += ch_len;
                    continue;
                }
            }
            i += 1;
        }
        if deepest > MAX_NESTING {
            return Err(format!(
                "the template nests deeper than {MAX_NESTING} levels (parentheses and blocks)"
            ));
        }
        let Some((close, right_trim)) = closed else {
            // unclosed action: the parser reports it
            out.push_str(action_start);
            return Ok(out);
        };
        let after = close + if right_trim { 3 } else { 2 };
        let action = Action {
            left_trim,
            body,
            right_trim,
        };
        let first_word = words(&action.body).and_then(|w| w.first().cloned());
        let else_with =
            words(&action.body).is_some_and(|w| w.len() > 2 && w[0] == "else" && w[1] == "with");
        if else_with {
            // Go 1.23's `{{ else with P }}`: `{{ else }}{{ with P }}`, closed by the block's end
            if let Some(n) = extra_ends.last_mut() {
                *n += 1;
            }
            let rest_of_body = action
                .body
                .trim_start()
                .strip_prefix("else")
                .map(str::trim_start)
                .and_then(|b| b.strip_prefix("with"))
                .unwrap_or_default();
            let l = if action.left_trim { "-" } else { "" };
            let r = if action.right_trim { " -" } else { " " };
            out.push_str(&format!(
                "{{{{{l} else }}}}{{{{ with {}{r}}}}}",
                rest_of_body.trim()
            ));
            rest = &inner[after..];
            continue;
        }
        if first_word.as_deref() == Some("end") {
            let extra = extra_ends.pop().unwrap_or(0);
            if extra > 0 {
                let l = if action.left_trim { "- " } else { " " };
                out.push_str(&format!("{{{{{l}end }}}}"));
                for _ in 1..extra {
                    out.push_str("{{ end }}");
                }
                let r = if action.right_trim { " -" } else { " " };
                out.push_str(&format!("{{{{ end{r}}}}}"));
                rest = &inner[after..];
                continue;
            }
        }
        match rewrite_mutation(&action) {
            Some(rewritten) => out.push_str(&rewritten),
            None => {
                out.push_str("{{");
                if action.left_trim {
                    out.push('-');
                }
                out.push_str(&action.body);
                if action.right_trim {
                    out.push('-');
                }
                out.push_str("}}");
            }
        }
        rest = &inner[after..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_rewritten_for_the_engines_lexer() {
        assert_eq!(
            preprocess("a {{ regexFind `\\d+\"x` .v }} `b`").unwrap(),
            "a {{ regexFind \"\\\\d+\\\"x\" .v }} `b`"
        );
        assert_eq!(
            preprocess(r#"{{ "a\\" }}{{ "\u00e9\x41\101\t" }}{{ "\d" }}{{ "\x01" }}"#).unwrap(),
            "{{ \"a\\x5c\" }}{{ \"éAA\\t\" }}{{ \"\\d\" }}{{ \"\u{1}\" }}"
        );
    }

    #[test]
    fn mutations_assign_back() {
        assert_eq!(
            preprocess("{{- $_ := set $d \"k\" (upper \"v\") -}}").unwrap(),
            "{{- $d = set $d \"k\" (upper \"v\") }}{{ $_ := $d -}}"
        );
        assert_eq!(
            preprocess("{{ unset $d \"k\" }}").unwrap(),
            "{{ $d = unset $d \"k\" }}{{ $d }}"
        );
        // pipelines and other targets stay as written
        let kept = "{{ $x := set $d \"k\" 1 | toJson }}{{ set .m \"k\" 1 }}";
        assert_eq!(preprocess(kept).unwrap(), kept);
    }

    #[test]
    fn whole_float_constants_stay_floats() {
        assert_eq!(
            preprocess("{{ list 1.0 -2e3 1.5 0x1p4 7 }}{{- 3.0 -}}").unwrap(),
            "{{ list (float64 \"1.0\") (float64 \"-2e3\") 1.5 0x1p4 7 }}{{- (float64 \"3.0\") -}}"
        );
    }

    #[test]
    fn else_with_is_go_1_23s() {
        assert_eq!(
            preprocess(
                "{{ with .a }}A{{ else with .b }}B{{ else with .c }}C{{ else }}D{{- end -}}!"
            )
            .unwrap(),
            "{{ with .a }}A{{ else }}{{ with .b }}B{{ else }}{{ with .c }}C{{ else }}D{{- end }}{{ end }}{{ end -}}!"
        );
    }

    #[test]
    fn integers_past_int64_fail_as_in_go() {
        assert_eq!(
            preprocess("{{ 9223372036854775808 }}{{ 9223372036854775807 }}").unwrap(),
            "{{ (fail \"9223372036854775808 overflows int\") }}{{ 9223372036854775807 }}"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(65), ")".repeat(65));
        assert!(preprocess(&deep).is_err());
        let ok = format!("{{{{ {}1{} }}}}", "(".repeat(10), ")".repeat(10));
        assert_eq!(preprocess(&ok).unwrap(), ok);
    }
}

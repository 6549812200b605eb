//! Custom action delimiters (Go's `Template.Delims`), for an engine whose lexer knows only
//! `{{` and `}}`: a template written with other delimiters is rewritten into the same template
//! with the default ones, before anything else reads it.
//!
//! Go's lexer is followed: text runs up to the next left delimiter; an action may begin with
//! a trim marker (`- `) and may be a comment (`/* ... */`, which may hold anything); inside
//! an action the right delimiter ends it wherever a token could start, so one inside a quoted
//! string, raw string or character constant does not. Text that holds `{{` is plain text under
//! custom delimiters, so each `{` that would start a default action is written as an action
//! printing `"{"`. A brace inside an action (outside strings and comments) is an error, as in
//! Go, whose parser takes no braces.

/// The engine's own delimiters.
pub(super) const DEFAULT_LEFT: &str = "{{";
/// See [`DEFAULT_LEFT`].
pub(super) const DEFAULT_RIGHT: &str = "}}";

/// An action that prints a literal `{`.
const LITERAL_BRACE: &str = "{{\"{\"}}";

/// Writes plain `text` so the engine reads it as plain text: a `{` followed by another, or
/// ending text that an action follows, is printed by an action instead.
fn push_text(out: &mut String, text: &str, action_follows: bool) {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let escape = c == '{'
            && match chars.peek() {
                Some('{') => true,
                Some(_) => false,
                None => action_follows,
            };
        if escape {
            out.push_str(LITERAL_BRACE);
        } else {
            out.push(c);
        }
    }
}

/// The length of the quoted token at the start of `s` (which starts with its quote). A `"` or
/// `'` token ends at a newline too (where Go fails, which the engine then reports).
fn quoted_len(s: &str) -> usize {
    let mut chars = s.char_indices();
    let Some((_, quote)) = chars.next() else {
        return 0;
    };
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if quote != '`' => {
                if let Some((j, e)) = chars.next()
                    && e == '\n'
                {
                    return j;
                }
            }
            '\n' if quote != '`' => return i,
            c if c == quote => return i + c.len_utf8(),
            _ => {}
        }
    }
    s.len()
}

/// The length of the action body at the start of `s` (after the left delimiter), up to the
/// right delimiter.
fn body_len(s: &str, right: &str) -> Result<usize, String> {
    let b = s.as_bytes();
    let trim = if b.len() >= 2 && b[0] == b'-' && matches!(b[1], b' ' | b'\t' | b'\r' | b'\n') {
        2
    } else {
        0
    };
    if s[trim..].starts_with("/*") {
        let end = s[trim + 2..]
            .find("*/")
            .map(|at| trim + 2 + at + 2)
            .ok_or("unclosed comment")?;
        let rest = &s[end..];
        let r = rest.as_bytes();
        let trimmed = r.len() >= 2 && matches!(r[0], b' ' | b'\t' | b'\r' | b'\n') && r[1] == b'-';
        if rest.starts_with(right) {
            return Ok(end);
        }
        if trimmed && rest[2..].starts_with(right) {
            return Ok(end + 2);
        }
        return Err("comment ends before closing delimiter".into());
    }
    let mut at = trim;
    while at < s.len() {
        let rest = &s[at..];
        if rest.starts_with(right) {
            return Ok(at);
        }
        let c = rest.chars().next().unwrap_or(' ');
        match c {
            '"' | '\'' | '`' => at += quoted_len(rest),
            '{' | '}' => {
                return Err(format!("unexpected {c:?} in action"));
            }
            c => at += c.len_utf8(),
        }
    }
    Err("unclosed action".into())
}

/// `text`, written with the delimiters `left` and `right`, as the same template with `{{` and
/// `}}`. Errors are Go's lexer errors.
pub(super) fn to_default(text: &str, left: &str, right: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = rest.find(left) {
        push_text(&mut out, &rest[..start], true);
        let after = &rest[start + left.len()..];
        let body = body_len(after, right)?;
        out.push_str(DEFAULT_LEFT);
        out.push_str(&after[..body]);
        out.push_str(DEFAULT_RIGHT);
        rest = &after[body + right.len()..];
    }
    push_text(&mut out, rest, false);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(text: &str) -> Result<String, String> {
        to_default(text, "[[", "]]")
    }

    #[test]
    fn actions_get_the_default_delimiters() {
        assert_eq!(conv("a [[ .x ]] b").unwrap(), "a {{ .x }} b");
        assert_eq!(conv("[[- .x -]]").unwrap(), "{{- .x -}}");
        assert_eq!(conv("[[/* c ]] */]]").unwrap(), "{{/* c ]] */}}");
        assert_eq!(conv("[[- /* c */ -]]").unwrap(), "{{- /* c */ -}}");
        assert_eq!(conv(r#"[[ "]]" ]]"#).unwrap(), r#"{{ "]]" }}"#);
        assert_eq!(conv("[[ `a\n]]` ]]").unwrap(), "{{ `a\n]]` }}");
        assert_eq!(conv(r#"[[ "a\"]]" ]]"#).unwrap(), r#"{{ "a\"]]" }}"#);
        assert_eq!(conv("[[ ']' ]]").unwrap(), "{{ ']' }}");
        assert_eq!(conv("[[ \"{{\" ]]").unwrap(), "{{ \"{{\" }}");
        assert_eq!(to_default("<% .a %>", "<%", "%>").unwrap(), "{{ .a }}");
        assert_eq!(to_default("%.a%", "%", "%").unwrap(), "{{.a}}");
    }

    #[test]
    fn default_delimiters_in_text_stay_text() {
        assert_eq!(conv("{{ .x }}").unwrap(), "{{\"{\"}}{ .x }}");
        assert_eq!(conv("{{{").unwrap(), "{{\"{\"}}{{\"{\"}}{");
        assert_eq!(conv("{[[.x]]").unwrap(), "{{\"{\"}}{{.x}}");
        assert_eq!(conv("[[.x]]{ }}").unwrap(), "{{.x}}{ }}");
        assert_eq!(conv("{ a }").unwrap(), "{ a }");
    }

    #[test]
    fn lexer_errors() {
        assert_eq!(conv("a [[ .x"), Err("unclosed action".into()));
        assert_eq!(conv("[[/* x"), Err("unclosed comment".into()));
        assert_eq!(
            conv("[[/* x */ .y ]]"),
            Err("comment ends before closing delimiter".into())
        );
        assert!(
            conv("[[ .x }} ]]")
                .unwrap_err()
                .contains("unexpected '}' in action")
        );
        // an unterminated string ends at the line, and the engine reports it
        assert_eq!(conv("[[ \"a\n]]").unwrap(), "{{ \"a\n}}");
    }
}

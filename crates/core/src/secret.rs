//! Types that hold secret material: zeroized on drop, redacted in `Debug`.

use std::fmt;
use zeroize::Zeroizing;

/// `text` with every double-quoted part replaced by `"…"`. serde's messages quote the value
/// they could not read (`invalid type: string "hunter2", expected a map`), and in a Secret that
/// value may be the secret; field names (in backticks) stay.
pub fn redact_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for c in text.chars() {
        if c == '"' {
            if inside {
                out.push('…');
            }
            out.push('"');
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    if inside {
        out.push('…');
    }
    out
}

/// `text` (an API server's validation message) with the value after each `Invalid value: `,
/// `Unsupported value: ` and `Duplicate value: ` replaced by `"…"`. The server quotes the
/// value it refused (`spec.password: Invalid value: "hunter2": should match '^a'`), and an
/// object written from secret data may hold a secret there; field paths and rules stay.
pub fn redact_field_values(text: &str) -> String {
    const MARKERS: [&str; 3] = [
        "Invalid value: ",
        "Unsupported value: ",
        "Duplicate value: ",
    ];
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, marker)) = MARKERS
        .iter()
        .filter_map(|m| rest.find(m).map(|at| (at, *m)))
        .min_by_key(|(at, _)| *at)
    {
        out.push_str(&rest[..at + marker.len()]);
        out.push_str("\"…\"");
        rest = skip_value(&rest[at + marker.len()..]);
    }
    out.push_str(rest);
    out
}

/// `text` after the value it starts with: a Go-quoted string (escapes included), or anything
/// up to the next `": "` (numbers, maps) or the end.
fn skip_value(text: &str) -> &str {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return &quoted[i + 1..],
                _ => {}
            }
        }
        return "";
    }
    text.find(": ").map_or("", |at| &text[at..])
}

/// Plaintext secret bytes. Zeroized when dropped; `Debug` never prints the content.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps bytes that must stay secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Borrows the plaintext. Callers must not log it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The plaintext as UTF-8, if it is valid UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(v: Vec<u8>) -> Self {
        Self::new(v)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(v: &[u8]) -> Self {
        Self::new(v.to_vec())
    }
}

impl From<&str> for SecretBytes {
    fn from(v: &str) -> Self {
        Self::new(v.as_bytes().to_vec())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_in_validation_messages_are_redacted() {
        let msg = r#"AppConfig.example.com "app" is invalid: [spec.password: Invalid value: "hun\"ter: 2": spec.password in body should match '^a', spec.mode: Unsupported value: "canary": supported values: "a", "b", spec.n: Invalid value: 42: must be less than 10]"#;
        let out = redact_field_values(msg);
        assert!(
            !out.contains("hun") && !out.contains("canary") && !out.contains("42"),
            "{out}"
        );
        assert!(out.starts_with(r#"AppConfig.example.com "app" is invalid: [spec.password: Invalid value: "…": spec.password in body should match '^a', spec.mode: Unsupported value: "…": supported values"#), "{out}");
        assert!(
            out.ends_with(r#"spec.n: Invalid value: "…": must be less than 10]"#),
            "{out}"
        );
        assert_eq!(redact_field_values("no values here"), "no values here");
        assert_eq!(
            redact_field_values("x: Invalid value: \"open"),
            "x: Invalid value: \"…\""
        );
    }

    #[test]
    fn debug_is_redacted() {
        let s = SecretBytes::from("canary-7f3a");
        let shown = format!("{s:?}");
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.contains("11 bytes"));
    }
}

//! `json.Unmarshal` into an `interface{}`, as sprig's `fromJson` calls it: Go's syntax check
//! first ([`super::json_syntax`]), then the value, with Go's rules where they differ from other
//! decoders: every number is a float64, a later key replaces an earlier one, a `\u` escape that
//! is half a surrogate pair becomes U+FFFD. Go allows 10 000 levels of nesting; the engine
//! holds values of at most [`MAX_DEPTH`] levels (see `gotmpl`), so deeper input fails with
//! [`TOO_DEEP`] (the decoder loops instead of recursing, so no input can end the stack).

use std::collections::HashMap;

use super::go::{float, map_value};
use super::gotmpl::Value;

/// The deepest nesting decoded, as deep as the engine's values may be.
pub(super) const MAX_DEPTH: usize = 200;

/// The error for input nested deeper than [`MAX_DEPTH`].
pub(super) const TOO_DEEP: &str = "a JSON value nested deeper than 200 levels";

/// What an open container holds so far.
enum Open {
    Array(Vec<Value>),
    /// The entries, and the key whose value is being read.
    Object(HashMap<String, Value>, String),
}

/// Decodes `text` as Go's `json.Unmarshal` into `interface{}` does; `Err` is Go's message.
pub(super) fn decode(text: &str) -> Result<Value, String> {
    super::json_syntax::check(text)?;
    Decoder {
        s: text.as_bytes(),
        i: 0,
    }
    .document()
}

struct Decoder<'a> {
    s: &'a [u8],
    i: usize,
}

impl Decoder<'_> {
    fn skip_space(&mut self) {
        while self
            .s
            .get(self.i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        {
            self.i += 1;
        }
    }

    /// The next byte after white space, consumed.
    fn next(&mut self) -> u8 {
        self.skip_space();
        let c = self.s.get(self.i).copied().unwrap_or(b' ');
        self.i += 1;
        c
    }

    fn peek(&mut self) -> u8 {
        self.skip_space();
        self.s.get(self.i).copied().unwrap_or(b' ')
    }

    /// The whole document (the syntax is known to be valid).
    fn document(&mut self) -> Result<Value, String> {
        let mut stack: Vec<Open> = Vec::new();
        loop {
            // read the start of a value
            let mut done = match self.next() {
                b'[' => {
                    if self.peek() == b']' {
                        self.i += 1;
                        Value::Array(Vec::new().into())
                    } else {
                        stack.push(Open::Array(Vec::new()));
                        if stack.len() > MAX_DEPTH {
                            return Err(TOO_DEEP.into());
                        }
                        continue;
                    }
                }
                b'{' => {
                    if self.peek() == b'}' {
                        self.i += 1;
                        map_value(HashMap::new())
                    } else {
                        let key = self.key()?;
                        stack.push(Open::Object(HashMap::new(), key));
                        if stack.len() > MAX_DEPTH {
                            return Err(TOO_DEEP.into());
                        }
                        continue;
                    }
                }
                b'"' => Value::String(self.string()?),
                b't' => self.word(3, Value::Bool(true)),
                b'f' => self.word(4, Value::Bool(false)),
                b'n' => self.word(3, Value::Nil),
                _ => self.number()?,
            };
            // hand the finished value to its container, closing containers as they end
            loop {
                match stack.last_mut() {
                    None => return Ok(done),
                    Some(Open::Array(items)) => {
                        items.push(done);
                        if self.next() == b',' {
                            break;
                        }
                    }
                    Some(Open::Object(entries, key)) => {
                        entries.insert(std::mem::take(key), done);
                        if self.next() == b',' {
                            *key = self.key()?;
                            break;
                        }
                    }
                }
                done = match stack.pop() {
                    Some(Open::Array(items)) => Value::Array(items.into()),
                    Some(Open::Object(entries, _)) => map_value(entries),
                    // the container was just seen
                    None => Value::Nil,
                };
            }
        }
    }

    /// `"key":` (the syntax is valid, so the quote and the colon are there).
    fn key(&mut self) -> Result<String, String> {
        self.next();
        let key = self.string()?;
        self.next();
        Ok(key)
    }

    fn word(&mut self, rest: usize, v: Value) -> Value {
        self.i += rest;
        v
    }

    /// A number, which Go reads as a float64.
    fn number(&mut self) -> Result<Value, String> {
        let start = self.i - 1;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(float(f)),
            // Go names the number; it may be part of a secret, so it is left out
            _ => Err("json: cannot unmarshal number into Go value of type float64".into()),
        }
    }

    /// Four hex digits at the cursor, when they are there.
    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.s.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }

    /// The rest of a string whose opening quote has been read.
    fn string(&mut self) -> Result<String, String> {
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("unexpected end of JSON input".into());
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.s.get(self.i).copied().unwrap_or(b' ');
                    self.i += 1;
                    let simple = match e {
                        b'b' => Some('\u{8}'),
                        b'f' => Some('\u{c}'),
                        b'n' => Some('\n'),
                        b'r' => Some('\r'),
                        b't' => Some('\t'),
                        b'u' => None,
                        other => Some(char::from(other)),
                    };
                    let c = match simple {
                        Some(c) => c,
                        None => self.unicode_escape(),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                other => out.push(other),
            }
        }
        // the input is a Rust string and escapes write whole characters
        String::from_utf8(out).map_err(|_| "invalid UTF-8 in JSON string".to_string())
    }

    /// A `\u` escape after the `\u`: a character, a surrogate pair, or U+FFFD for half a pair.
    fn unicode_escape(&mut self) -> char {
        let r = self.hex4(self.i).unwrap_or(0xFFFD);
        self.i += 4;
        if (0xD800..0xE000).contains(&r) {
            if (0xD800..0xDC00).contains(&r)
                && self.s.get(self.i..self.i + 2) == Some(b"\\u")
                && let Some(low) = self.hex4(self.i + 2)
                && (0xDC00..0xE000).contains(&low)
            {
                self.i += 6;
                let c = 0x10000 + ((r - 0xD800) << 10) + (low - 0xDC00);
                return char::from_u32(c).unwrap_or('\u{FFFD}');
            }
            return '\u{FFFD}';
        }
        char::from_u32(r).unwrap_or('\u{FFFD}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> String {
        super::super::go::to_json(&decode(text).unwrap(), false, None).unwrap()
    }

    #[test]
    fn decodes_as_go() {
        assert_eq!(
            json(
                r#" {"b":[1,-2.5e3,true,false,null,{}],"a":{"c":[]},"b2":"x\"\u00e9\ud83d\ude00"} "#
            ),
            r#"{"a":{"c":[]},"b":[1,-2500,true,false,null,{}],"b2":"x\"é😀"}"#
        );
        assert_eq!(json(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
        assert_eq!(
            json(r#""a\ud800b\udc00\ud83d\u0041""#),
            "\"a\u{FFFD}b\u{FFFD}\u{FFFD}A\""
        );
        // deeper than other decoders read (serde_json: 128), not deeper than the engine holds
        let deep =
            |n: usize| "[".repeat(n) + &"{\"a\":".repeat(n) + "1" + &"}".repeat(n) + &"]".repeat(n);
        assert!(decode(&deep(100)).is_ok());
        assert_eq!(decode(&deep(101)), Err(TOO_DEEP.into()));
        assert_eq!(decode(&deep(5000)), Err(TOO_DEEP.into()));
        assert_eq!(
            decode("1e999"),
            Err("json: cannot unmarshal number into Go value of type float64".into())
        );
        assert_eq!(
            decode("[1 2]"),
            Err("invalid character '2' after array element".into())
        );
    }
}

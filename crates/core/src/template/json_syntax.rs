//! The syntax check Go's `encoding/json` runs before it decodes (`checkValid`), so text Go
//! refuses fails with Go's message: `invalid character 'x' after object key`,
//! `unexpected end of JSON input`. Such a message quotes at most one character of the input.

use super::go::go_quote;

/// Go's limit on nested arrays and objects.
const MAX_DEPTH: usize = 10_000;

/// Where the scanner is: Go's scanner states, as far as its messages tell them apart.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    /// In a `\u` escape, with this many hex digits still to come.
    InStringEscU(u8),
    Neg,
    Int,
    Zero,
    Dot,
    DotDigits,
    Exp,
    ExpSign,
    ExpDigits,
    /// In `true`, `false` or `null`: the word and how much of it has been read.
    Literal(&'static str, usize),
}

/// What an open container expects next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Go's `quoteChar`: the byte as a Latin-1 character in single quotes.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        b'"' => "'\"'".into(),
        _ => {
            let q = go_quote(&char::from(c).to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

/// Checks `text` as Go's `json.Unmarshal` does before decoding; `Err` is Go's message.
pub(super) fn check(text: &str) -> Result<(), String> {
    let mut scanner = Scanner {
        state: State::BeginValue,
        stack: Vec::new(),
    };
    for &c in text.as_bytes() {
        scanner.step(c)?;
    }
    // Go feeds a space at the end, so an unfinished number or word fails on it
    if scanner.state != State::EndTop {
        scanner.step(b' ')?;
    }
    if scanner.state == State::EndTop {
        Ok(())
    } else {
        Err("unexpected end of JSON input".into())
    }
}

struct Scanner {
    state: State,
    stack: Vec<Open>,
}

impl Scanner {
    fn error(c: u8, context: &str) -> Result<(), String> {
        Err(format!("invalid character {} {context}", quote_char(c)))
    }

    fn push(&mut self, c: u8, open: Open, next: State) -> Result<(), String> {
        self.stack.push(open);
        if self.stack.len() > MAX_DEPTH {
            return Self::error(c, "exceeded max depth");
        }
        self.state = next;
        Ok(())
    }

    fn begin_value(&mut self, c: u8) -> Result<(), String> {
        self.state = match c {
            c if is_space(c) => return Ok(()),
            b'{' => return self.push(c, Open::ObjectKey, State::BeginStringOrEmpty),
            b'[' => return self.push(c, Open::ArrayValue, State::BeginValueOrEmpty),
            b'"' => State::InString,
            b'-' => State::Neg,
            b'0' => State::Zero,
            b'1'..=b'9' => State::Int,
            b't' => State::Literal("true", 1),
            b'f' => State::Literal("false", 1),
            b'n' => State::Literal("null", 1),
            _ => return Self::error(c, "looking for beginning of value"),
        };
        Ok(())
    }

    fn end_value(&mut self, c: u8) -> Result<(), String> {
        let Some(&open) = self.stack.last() else {
            self.state = State::EndTop;
            return self.end_top(c);
        };
        if is_space(c) {
            self.state = State::EndValue;
            return Ok(());
        }
        match (open, c) {
            (Open::ObjectKey, b':') => {
                self.replace_top(Open::ObjectValue);
                self.state = State::BeginValue;
            }
            (Open::ObjectKey, _) => return Self::error(c, "after object key"),
            (Open::ObjectValue, b',') => {
                self.replace_top(Open::ObjectKey);
                self.state = State::BeginString;
            }
            (Open::ObjectValue, b'}') | (Open::ArrayValue, b']') => self.pop(),
            (Open::ObjectValue, _) => return Self::error(c, "after object key:value pair"),
            (Open::ArrayValue, b',') => self.state = State::BeginValue,
            (Open::ArrayValue, _) => return Self::error(c, "after array element"),
        }
        Ok(())
    }

    fn replace_top(&mut self, open: Open) {
        if let Some(top) = self.stack.last_mut() {
            *top = open;
        }
    }

    fn pop(&mut self) {
        self.stack.pop();
        self.state = if self.stack.is_empty() {
            State::EndTop
        } else {
            State::EndValue
        };
    }

    fn end_top(&mut self, c: u8) -> Result<(), String> {
        if is_space(c) {
            Ok(())
        } else {
            Self::error(c, "after top-level value")
        }
    }

    fn step(&mut self, c: u8) -> Result<(), String> {
        match self.state {
            State::BeginValue => self.begin_value(c),
            State::BeginValueOrEmpty if is_space(c) => Ok(()),
            State::BeginValueOrEmpty if c == b']' => self.end_value(c),
            State::BeginValueOrEmpty => self.begin_value(c),
            State::BeginStringOrEmpty if is_space(c) => Ok(()),
            State::BeginStringOrEmpty if c == b'}' => {
                self.replace_top(Open::ObjectValue);
                self.end_value(c)
            }
            State::BeginStringOrEmpty | State::BeginString => match c {
                c if is_space(c) => Ok(()),
                b'"' => {
                    self.state = State::InString;
                    Ok(())
                }
                _ => Self::error(c, "looking for beginning of object key string"),
            },
            State::EndValue => self.end_value(c),
            State::EndTop => self.end_top(c),
            State::InString => {
                match c {
                    b'"' => self.state = State::EndValue,
                    b'\\' => self.state = State::InStringEsc,
                    c if c < 0x20 => return Self::error(c, "in string literal"),
                    _ => {}
                }
                Ok(())
            }
            State::InStringEsc => {
                self.state = match c {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => State::InString,
                    b'u' => State::InStringEscU(4),
                    _ => return Self::error(c, "in string escape code"),
                };
                Ok(())
            }
            State::InStringEscU(left) => {
                if !c.is_ascii_hexdigit() {
                    return Self::error(c, "in \\u hexadecimal character escape");
                }
                self.state = if left == 1 {
                    State::InString
                } else {
                    State::InStringEscU(left - 1)
                };
                Ok(())
            }
            State::Neg => {
                self.state = match c {
                    b'0' => State::Zero,
                    b'1'..=b'9' => State::Int,
                    _ => return Self::error(c, "in numeric literal"),
                };
                Ok(())
            }
            State::Int if c.is_ascii_digit() => Ok(()),
            State::Int | State::Zero => match c {
                b'.' => {
                    self.state = State::Dot;
                    Ok(())
                }
                b'e' | b'E' => {
                    self.state = State::Exp;
                    Ok(())
                }
                _ => self.end_value(c),
            },
            State::Dot => {
                if !c.is_ascii_digit() {
                    return Self::error(c, "after decimal point in numeric literal");
                }
                self.state = State::DotDigits;
                Ok(())
            }
            State::DotDigits => match c {
                c if c.is_ascii_digit() => Ok(()),
                b'e' | b'E' => {
                    self.state = State::Exp;
                    Ok(())
                }
                _ => self.end_value(c),
            },
            State::Exp if c == b'+' || c == b'-' => {
                self.state = State::ExpSign;
                Ok(())
            }
            State::Exp | State::ExpSign => {
                if !c.is_ascii_digit() {
                    return Self::error(c, "in exponent of numeric literal");
                }
                self.state = State::ExpDigits;
                Ok(())
            }
            State::ExpDigits if c.is_ascii_digit() => Ok(()),
            State::ExpDigits => self.end_value(c),
            State::Literal(word, at) => {
                let expected = word.as_bytes()[at];
                if c != expected {
                    return Self::error(
                        c,
                        &format!("in literal {word} (expecting {})", quote_char(expected)),
                    );
                }
                self.state = if at + 1 == word.len() {
                    State::EndValue
                } else {
                    State::Literal(word, at + 1)
                };
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_messages() {
        for (text, message) in [
            ("", "unexpected end of JSON input"),
            ("{", "unexpected end of JSON input"),
            ("{\"a\":1", "unexpected end of JSON input"),
            ("\"abc", "unexpected end of JSON input"),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "nul",
                "invalid character ' ' in literal null (expecting 'l')",
            ),
            (
                "tru ",
                "invalid character ' ' in literal true (expecting 'e')",
            ),
            ("{\"a\":1}x", "invalid character 'x' after top-level value"),
            (
                "{\"a\":1,}",
                "invalid character '}' looking for beginning of object key string",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            (
                "{a:1}",
                "invalid character 'a' looking for beginning of object key string",
            ),
            ("-", "invalid character ' ' in numeric literal"),
            ("01", "invalid character '1' after top-level value"),
            (
                "1.",
                "invalid character ' ' after decimal point in numeric literal",
            ),
            (
                "1e+",
                "invalid character ' ' in exponent of numeric literal",
            ),
            (
                "{\"a\":1 x",
                "invalid character 'x' after object key:value pair",
            ),
            ("\"\\q\"", "invalid character 'q' in string escape code"),
            (
                "\"\\u12x4\"",
                "invalid character 'x' in \\u hexadecimal character escape",
            ),
            ("\"a\tb\"", "invalid character '\\t' in string literal"),
            ("é", "invalid character 'Ã' looking for beginning of value"),
            (
                "'",
                "invalid character '\\'' looking for beginning of value",
            ),
        ] {
            assert_eq!(check(text), Err(message.to_string()), "{text:?}");
        }
        for ok in [
            "1",
            " {\"a\":[1,-2.5e+3,true,false,null,\"\\u00e9\"]} ",
            "[]",
            "{}",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(
            check(&deep),
            Err("invalid character '[' exceeded max depth".to_string())
        );
    }
}

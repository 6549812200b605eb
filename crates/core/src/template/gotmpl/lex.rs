//! Go's template lexer: text and actions, with trim markers, comments, raw strings, character
//! constants and Go's number syntax.

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// Text outside actions (already trimmed by neighbouring trim markers).
    Text(String),
    /// `{{`.
    Open,
    /// `}}`.
    Close,
    /// A name: a function or keyword.
    Ident(String),
    /// `.Name` (one link; chains are consecutive fields).
    Field(String),
    /// `$name` (`$` alone is "$").
    Variable(String),
    /// A quoted or raw string's value, and its text as written (Go prints the node so).
    Str(String, String),
    /// A character constant's value.
    Char(char),
    /// A number's text as written.
    Number(String),
    /// `true` or `false`.
    Bool(bool),
    /// `nil`.
    Nil,
    /// `.` alone.
    Dot,
    /// `|`.
    Pipe,
    /// `(`.
    LParen,
    /// `)`.
    RParen,
    /// `=`.
    Assign,
    /// `:=`.
    Declare,
    /// `,`.
    Comma,
    /// White space inside an action (significant: it separates arguments).
    Space,
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub tok: Tok,
    pub pos: usize,
}

/// A lexing error and where it happened.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LexError {
    pub pos: usize,
    pub message: String,
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Splits a template into tokens.
pub(super) fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    let mut lexer = Lexer {
        src,
        b: src.as_bytes(),
        pos: 0,
        out: Vec::new(),
        trim_next_text: false,
    };
    lexer.run()?;
    Ok(lexer.out)
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    pos: usize,
    out: Vec<Token>,
    trim_next_text: bool,
}

impl Lexer<'_> {
    fn err<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            pos,
            message: message.into(),
        })
    }

    fn push(&mut self, tok: Tok, pos: usize) {
        self.out.push(Token { tok, pos });
    }

    fn run(&mut self) -> Result<(), LexError> {
        while self.pos < self.b.len() {
            let start = self.pos;
            let next = self.src[start..].find(LEFT).map(|i| start + i);
            let end = next.unwrap_or(self.b.len());
            // a left trim marker: "{{- " trims the text before it
            let trim_left = next.is_some_and(|n| {
                self.b.get(n + 2) == Some(&b'-') && self.b.get(n + 3).is_some_and(|&c| is_space(c))
            });
            let mut text = &self.src[start..end];
            if self.trim_next_text {
                text = text.trim_start_matches([' ', '\t', '\r', '\n']);
                self.trim_next_text = false;
            }
            if trim_left {
                text = text.trim_end_matches([' ', '\t', '\r', '\n']);
            }
            if !text.is_empty() {
                self.push(Tok::Text(text.to_string()), start);
            }
            let Some(n) = next else {
                self.pos = self.b.len();
                break;
            };
            self.pos = n + LEFT.len();
            if trim_left {
                self.pos += 2;
            }
            self.action(n)?;
        }
        Ok(())
    }

    /// Whether a right delimiter (with or without trim marker) starts here; its length and
    /// whether it trims.
    fn at_right(&self) -> Option<(usize, bool)> {
        let rest = &self.b[self.pos..];
        if rest.len() >= 3 && is_space(rest[0]) && rest[1] == b'-' && rest[2..].starts_with(b"}}") {
            return Some((4, true));
        }
        rest.starts_with(RIGHT.as_bytes()).then_some((2, false))
    }

    fn action(&mut self, open: usize) -> Result<(), LexError> {
        // a comment must sit right against the delimiters
        if self.src[self.pos..].starts_with(LEFT_COMMENT) {
            let Some(end) = self.src[self.pos + 2..].find(RIGHT_COMMENT) else {
                return self.err(open, "unclosed comment");
            };
            self.pos += 2 + end + 2;
            match self.at_right() {
                Some((len, trim)) => {
                    self.pos += len;
                    self.trim_next_text = trim;
                    return Ok(());
                }
                None => return self.err(open, "comment ends before closing delimiter"),
            }
        }
        self.push(Tok::Open, open);
        let mut parens = 0usize;
        loop {
            if let Some((len, trim)) = self.at_right() {
                if parens > 0 {
                    return self.err(self.pos, "unclosed left paren");
                }
                self.push(Tok::Close, self.pos);
                self.pos += len;
                self.trim_next_text = trim;
                return Ok(());
            }
            let start = self.pos;
            let Some(&c) = self.b.get(self.pos) else {
                return self.err(open, "unclosed action");
            };
            match c {
                c if is_space(c) => {
                    while self.b.get(self.pos).is_some_and(|&c| is_space(c)) {
                        if self.at_right().is_some() {
                            break;
                        }
                        if self.b[self.pos] == b'\n' && parens == 0 {
                            // Go 1.19 refuses a newline in an action outside parentheses? It
                            // allows it since 1.16; keep going.
                        }
                        self.pos += 1;
                    }
                    if self.at_right().is_none() {
                        self.push(Tok::Space, start);
                    }
                }
                b'=' => {
                    self.pos += 1;
                    self.push(Tok::Assign, start);
                }
                b':' => {
                    if self.b.get(self.pos + 1) != Some(&b'=') {
                        return self.err(start, "expected :=");
                    }
                    self.pos += 2;
                    self.push(Tok::Declare, start);
                }
                b'|' => {
                    self.pos += 1;
                    self.push(Tok::Pipe, start);
                }
                b',' => {
                    self.pos += 1;
                    self.push(Tok::Comma, start);
                }
                b'(' => {
                    self.pos += 1;
                    parens += 1;
                    self.push(Tok::LParen, start);
                }
                b')' => {
                    self.pos += 1;
                    if parens == 0 {
                        return self.err(start, "unexpected right paren");
                    }
                    parens -= 1;
                    self.push(Tok::RParen, start);
                }
                b'"' => self.quoted(start)?,
                b'`' => {
                    let Some(end) = self.src[start + 1..].find('`') else {
                        return self.err(start, "unterminated raw quoted string");
                    };
                    let value = self.src[start + 1..start + 1 + end].replace('\r', "");
                    self.pos = start + 1 + end + 1;
                    let quoted = self.src[start..self.pos].to_string();
                    self.push(Tok::Str(value, quoted), start);
                }
                b'\'' => self.char_constant(start)?,
                b'$' => {
                    self.pos += 1;
                    let name = self.word();
                    self.push(Tok::Variable(format!("${name}")), start);
                }
                b'.' => {
                    if self.b.get(self.pos + 1).is_some_and(u8::is_ascii_digit) {
                        self.number(start)?;
                    } else {
                        self.pos += 1;
                        let name = self.word();
                        if name.is_empty() {
                            self.push(Tok::Dot, start);
                        } else {
                            self.push(Tok::Field(name), start);
                        }
                    }
                }
                b'+' | b'-' | b'0'..=b'9' => self.number(start)?,
                _ => {
                    let ch = self.src[start..].chars().next().unwrap_or('\0');
                    if is_alnum(ch) {
                        let word = self.word();
                        let tok = match word.as_str() {
                            "true" => Tok::Bool(true),
                            "false" => Tok::Bool(false),
                            "nil" => Tok::Nil,
                            _ => Tok::Ident(word),
                        };
                        self.push(tok, start);
                    } else {
                        return self
                            .err(start, format!("unrecognized character in action: {ch:?}"));
                    }
                }
            }
            // an identifier, field or variable must be followed by a separator
            if let Some(last) = self.out.last()
                && matches!(
                    last.tok,
                    Tok::Ident(_) | Tok::Field(_) | Tok::Variable(_) | Tok::Bool(_) | Tok::Nil
                )
                && !self.at_separator()
            {
                let c = self.src[self.pos..].chars().next().unwrap_or('\0');
                return self.err(self.pos, format!("bad character {c:?}"));
            }
        }
    }

    /// Go's `atTerminator`: space, end of action, `.`, `,`, `|`, `:`, `)`, `(`, `=`.
    fn at_separator(&self) -> bool {
        match self.b.get(self.pos) {
            None => true,
            Some(&c) => {
                is_space(c)
                    || matches!(c, b'.' | b',' | b'|' | b':' | b')' | b'(' | b'=')
                    || self.src[self.pos..].starts_with(RIGHT)
            }
        }
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        for c in self.src[start..].chars() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
        self.src[start..self.pos].to_string()
    }

    fn quoted(&mut self, start: usize) -> Result<(), LexError> {
        let mut i = start + 1;
        loop {
            match self.b.get(i) {
                None | Some(b'\n') => return self.err(start, "unterminated quoted string"),
                Some(b'\\') => i += 2,
                Some(b'"') => break,
                Some(_) => i += 1,
            }
        }
        if i > self.b.len() {
            return self.err(start, "unterminated quoted string");
        }
        let body = &self.src[start + 1..i];
        let bytes = unquote(body, '"').ok_or_else(|| LexError {
            pos: start,
            // strconv's error, as Go's parser reports it
            message: "invalid syntax".into(),
        })?;
        // bytes that are not UTF-8 (`"\xff"`) are carried as the render's binary values are:
        // U+FFFD in the text, the real bytes for `b64enc` and the output of `render_data`
        let value = crate::template::eso::binary::text_of(bytes);
        self.pos = i + 1;
        self.push(Tok::Str(value, self.src[start..i + 1].to_string()), start);
        Ok(())
    }

    fn char_constant(&mut self, start: usize) -> Result<(), LexError> {
        let mut i = start + 1;
        loop {
            match self.b.get(i) {
                None | Some(b'\n') => return self.err(start, "unterminated character constant"),
                Some(b'\\') => i += 2,
                Some(b'\'') => break,
                Some(_) => i += 1,
            }
        }
        let body = self.src.get(start + 1..i).unwrap_or_default();
        let value = unquote(body, '\'').and_then(|b| String::from_utf8(b).ok());
        let mut chars = value.as_deref().unwrap_or_default().chars();
        let (Some(c), None) = (chars.next(), chars.next()) else {
            return self.err(start, format!("malformed character constant: '{body}'"));
        };
        self.pos = i + 1;
        self.push(Tok::Char(c), start);
        Ok(())
    }

    fn number(&mut self, start: usize) -> Result<(), LexError> {
        let mut i = start;
        if matches!(self.b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits_start = i;
        while let Some(&c) = self.b.get(i) {
            let hex = self.src[digits_start..i]
                .to_ascii_lowercase()
                .starts_with("0x");
            let exp_sign = matches!(c, b'+' | b'-')
                && i > digits_start
                && if hex {
                    matches!(self.b[i - 1], b'p' | b'P')
                } else {
                    matches!(self.b[i - 1], b'e' | b'E')
                };
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exp_sign {
                i += 1;
            } else {
                break;
            }
        }
        let text = &self.src[start..i];
        self.pos = i;
        if !self.at_separator() || text == "+" || text == "-" {
            // as Go, the text up to and including the character that broke the number
            let end = i + self.src[i..].chars().next().map_or(0, char::len_utf8);
            return self.err(
                start,
                format!("bad number syntax: {:?}", &self.src[start..end]),
            );
        }
        self.push(Tok::Number(text.to_string()), start);
        Ok(())
    }
}

/// A Go string or character literal's bytes (`body` is between the quotes). In a string,
/// `\xFF` and octal escapes are bytes, which need not form UTF-8; in a character constant they
/// are the character of that number, as in Go.
pub(super) fn unquote(body: &str, quote: char) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    let push = |out: &mut Vec<u8>, c: char| {
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    };
    let byte = |out: &mut Vec<u8>, b: u8| {
        if quote == '\'' {
            push(out, char::from(b));
        } else {
            out.push(b);
        }
    };
    while let Some(c) = chars.next() {
        if c == quote {
            return None;
        }
        if c != '\\' {
            push(&mut out, c);
            continue;
        }
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Option<u32> {
            let digits: String = chars.by_ref().take(n).collect();
            if digits.len() != n || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(&digits, 16).ok()
        };
        let simple = match chars.next()? {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '\\' => '\\',
            q @ ('"' | '\'') if q == quote => q,
            'x' => {
                byte(&mut out, u8::try_from(hex(&mut chars, 2)?).ok()?);
                continue;
            }
            u @ ('u' | 'U') => char::from_u32(hex(&mut chars, if u == 'u' { 4 } else { 8 })?)?,
            d @ '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                if rest.len() != 2 || !rest.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return None;
                }
                let v = u32::from_str_radix(&format!("{d}{rest}"), 8).ok()?;
                byte(&mut out, u8::try_from(v).ok()?);
                continue;
            }
            _ => return None,
        };
        push(&mut out, simple);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn lexes_actions_and_trim_markers() {
        assert_eq!(
            toks("a  {{- .x | f `\\d` 'a' -}}  b"),
            vec![
                Tok::Text("a".into()),
                Tok::Open,
                Tok::Field("x".into()),
                Tok::Space,
                Tok::Pipe,
                Tok::Space,
                Tok::Ident("f".into()),
                Tok::Space,
                Tok::Str("\\d".into(), "`\\d`".into()),
                Tok::Space,
                Tok::Char('a'),
                Tok::Close,
                Tok::Text("b".into()),
            ]
        );
        assert_eq!(
            toks("{{/* c */}}x{{- /* c */ -}} y"),
            vec![Tok::Text("x".into()), Tok::Text("y".into())]
        );
        assert_eq!(
            toks("{{-3}}"),
            vec![Tok::Open, Tok::Number("-3".into()), Tok::Close]
        );
        assert!(lex("{{ .x").is_err());
        assert!(lex("{{ \"a }}").is_err());
    }
}

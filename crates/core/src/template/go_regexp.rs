//! Go's regular expression syntax (RE2, `regexp/syntax` with Go's `Perl` flags) read the way
//! Go's parser reads it: a pattern Go refuses fails with Go's message
//! (`error parsing regexp: missing closing ]: `[``), and a pattern Go accepts is written out for
//! the `regex` crate with Go's meaning: `\d`, `\s`, `\w` and `\b` are ASCII as in Go, a `{`
//! that does not start a repetition is a literal, `[[a]]` is a class followed by `]`, octal
//! escapes are characters, and a capture name used twice keeps its first group.

use std::collections::HashSet;
use std::fmt::Write as _;

/// Go's Unicode categories (`unicode.Categories`, Go 1.19).
const CATEGORIES: &str = "C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi \
Po Ps S Sc Sk Sm So Z Zl Zp Zs";

/// Go's Unicode scripts (`unicode.Scripts`, Go 1.19, Unicode 13).
const SCRIPTS: &str = "Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum \
Bassa_Vah Batak Bengali Bhaiksuki Bopomofo Brahmi Braille Buginese Buhid Canadian_Aboriginal \
Carian Caucasian_Albanian Chakma Cham Cherokee Chorasmian Common Coptic Cuneiform Cypriot \
Cyrillic Deseret Devanagari Dives_Akuru Dogra Duployan Egyptian_Hieroglyphs Elbasan Elymaic \
Ethiopic Georgian Glagolitic Gothic Grantha Greek Gujarati Gunjala_Gondi Gurmukhi Han Hangul \
Hanifi_Rohingya Hanunoo Hatran Hebrew Hiragana Imperial_Aramaic Inherited Inscriptional_Pahlavi \
Inscriptional_Parthian Javanese Kaithi Kannada Katakana Kayah_Li Kharoshthi Khitan_Small_Script \
Khmer Khojki Khudawadi Lao Latin Lepcha Limbu Linear_A Linear_B Lisu Lycian Lydian Mahajani \
Makasar Malayalam Mandaic Manichaean Marchen Masaram_Gondi Medefaidrin Meetei_Mayek \
Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao Modi Mongolian Mro Multani Myanmar \
Nabataean Nandinagari New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong Ogham Ol_Chiki \
Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian Old_Sogdian Old_South_Arabian \
Old_Turkic Oriya Osage Osmanya Pahawh_Hmong Palmyrene Pau_Cin_Hau Phags_Pa Phoenician \
Psalter_Pahlavi Rejang Runic Samaritan Saurashtra Sharada Shavian Siddham SignWriting Sinhala \
Sogdian Sora_Sompeng Soyombo Sundanese Syloti_Nagri Syriac Tagalog Tagbanwa Tai_Le Tai_Tham \
Tai_Viet Takri Tamil Tangut Telugu Thaana Thai Tibetan Tifinagh Tirhuta Ugaritic Vai Wancho \
Warang_Citi Yezidi Yi Zanabazar_Square";

/// The POSIX classes Go knows inside brackets (`[:alpha:]`, `[:^alpha:]`).
const POSIX: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// Go's largest repetition count.
const MAX_REPEAT: i64 = 1000;

/// A parse failure in Go's words: its code and the part of the pattern it names.
struct GoError {
    code: &'static str,
    expr: String,
}

impl GoError {
    fn new(code: &'static str, expr: &str) -> Self {
        Self {
            code,
            expr: expr.to_string(),
        }
    }
}

/// What the parse stack holds, as far as Go's errors depend on it: an open group, an
/// alternation bar, or an expression with the repetitions it nests.
enum Item {
    Paren,
    Bar,
    Operand(Tree),
}

/// The repetitions an expression nests (for Go's check that they multiply to at most 1000).
#[derive(Clone, Default)]
struct Tree {
    /// `Some(max or min)` for a counted repetition `{m,n}`.
    repeat: Option<i64>,
    subs: Vec<Tree>,
}

/// Go's `repeatIsValid`: every path of nested counted repetitions stays within `n`.
fn repeat_is_valid(tree: &Tree, mut n: i64) -> bool {
    if let Some(m) = tree.repeat {
        if m == 0 {
            return true;
        }
        if m > n {
            return false;
        }
        if m > 0 {
            n /= m;
        }
    }
    tree.subs.iter().all(|s| repeat_is_valid(s, n))
}

/// Reads `pattern` as Go does: `Ok` with the same pattern for the `regex` crate, or `Err` with
/// Go's message (`error parsing regexp: CODE: `EXPR``).
pub(super) fn translate(pattern: &str) -> Result<String, String> {
    Parser::default()
        .run(pattern)
        .map_err(|e| format!("error parsing regexp: {}: `{}`", e.code, e.expr))
}

#[derive(Default)]
struct Parser {
    out: String,
    stack: Vec<Item>,
    names: HashSet<String>,
}

/// The first character of `s` and the rest; `None` for an empty string.
fn next_char(s: &str) -> Option<(char, &str)> {
    let c = s.chars().next()?;
    Some((c, &s[c.len_utf8()..]))
}

/// The text of `s` up to where `rest` begins (`rest` is a suffix of `s`).
fn consumed<'a>(s: &'a str, rest: &str) -> &'a str {
    &s[..s.len() - rest.len()]
}

/// A character written so the `regex` crate reads it as that character, in or out of a class.
fn literal(c: char) -> String {
    if c.is_ascii_alphanumeric() {
        c.to_string()
    } else {
        format!("\\x{{{:X}}}", c as u32)
    }
}

/// Go's Perl classes `\d`, `\s`, `\w` (ASCII) as class items, and whether negated.
fn perl_class(s: &str) -> Option<(&'static str, bool, &str)> {
    let b = s.as_bytes();
    if b.len() < 2 || b[0] != b'\\' {
        return None;
    }
    let items = match b[1].to_ascii_lowercase() {
        b'd' => "0-9",
        b's' => "\\t\\n\\x0C\\r ",
        b'w' => "0-9A-Za-z_",
        _ => return None,
    };
    Some((items, b[1].is_ascii_uppercase(), &s[2..]))
}

/// Go's `\pN`, `\p{Name}`, `\P{^Name}` at the start of `s`: the class as the `regex` crate
/// writes it and the rest, `Ok(None)` when `s` does not start with one.
fn unicode_class(s: &str) -> Result<Option<(String, &str)>, GoError> {
    let Some(t) = s.strip_prefix("\\p").or_else(|| s.strip_prefix("\\P")) else {
        return Ok(None);
    };
    let mut negated = s.as_bytes()[1] == b'P';
    let (seq, name, rest) = match next_char(t) {
        Some(('{', _)) => {
            let Some(end) = s.find('}') else {
                return Err(GoError::new("invalid character class range", s));
            };
            (&s[..=end], &s[3..end], &s[end + 1..])
        }
        Some((_, rest)) => (consumed(s, rest), consumed(t, rest), rest),
        None => (s, "", ""),
    };
    let name = match name.strip_prefix('^') {
        Some(n) => {
            negated = !negated;
            n
        }
        None => name,
    };
    let known = name == "Any"
        || CATEGORIES.split(' ').any(|c| c == name)
        || SCRIPTS.split(' ').any(|c| c == name);
    if !known {
        return Err(GoError::new("invalid character class range", seq));
    }
    let p = if negated { 'P' } else { 'p' };
    Ok(Some((format!("\\{p}{{{name}}}"), rest)))
}

/// Go's `parseEscape`: the character a `\` escape at the start of `s` stands for, and the rest.
fn escape(s: &str) -> Result<(char, &str), GoError> {
    let t = &s[1..];
    let Some((c, mut t)) = next_char(t) else {
        return Err(GoError::new("trailing backslash at end of expression", ""));
    };
    let invalid = |rest: &str| GoError::new("invalid escape sequence", consumed(s, rest));
    let octal = |t: &str| {
        t.as_bytes()
            .first()
            .is_some_and(|b| (b'0'..=b'7').contains(b))
    };
    match c {
        '1'..='7' if !octal(t) => Err(invalid(t)),
        '0'..='7' => {
            let mut r = c as u32 - '0' as u32;
            for _ in 1..3 {
                if !octal(t) {
                    break;
                }
                r = r * 8 + u32::from(t.as_bytes()[0] - b'0');
                t = &t[1..];
            }
            Ok((char::from_u32(r).unwrap_or('\0'), t))
        }
        'x' => hex_escape(t).map_err(invalid),
        'a' => Ok(('\u{7}', t)),
        'f' => Ok(('\u{c}', t)),
        'n' => Ok(('\n', t)),
        'r' => Ok(('\r', t)),
        't' => Ok(('\t', t)),
        'v' => Ok(('\u{b}', t)),
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok((c, t)),
        _ => Err(invalid(t)),
    }
}

/// `\x41` or `\x{10FFFF}` after the `\x`: the character and the rest, or the rest where Go
/// stopped reading (its message names the escape up to there).
fn hex_escape(t: &str) -> Result<(char, &str), &str> {
    let Some((c, mut t)) = next_char(t) else {
        return Err(t);
    };
    if c == '{' {
        let mut r: u32 = 0;
        let mut digits = 0;
        loop {
            let Some((c, rest)) = next_char(t) else {
                return Err(t);
            };
            t = rest;
            if c == '}' {
                break;
            }
            let Some(d) = c.to_digit(16) else {
                return Err(t);
            };
            r = r * 16 + d;
            if r > 0x10_FFFF {
                return Err(t);
            }
            digits += 1;
        }
        if digits == 0 {
            return Err(t);
        }
        return Ok((char::from_u32(r).unwrap_or('\u{FFFD}'), t));
    }
    let (d, rest) = next_char(t).unwrap_or(('\u{FFFD}', ""));
    match (c.to_digit(16), d.to_digit(16)) {
        (Some(x), Some(y)) => Ok((char::from_u32(x * 16 + y).unwrap_or('\0'), rest)),
        _ => Err(rest),
    }
}

/// Go's `parseRepeat`: `{m}`, `{m,}` or `{m,n}` at the start of `s`: min, max (-1 for none),
/// the rest; `None` when `s` does not start with one (the `{` is then a literal). A number
/// past 10^8 is -1, as Go reads it.
fn parse_repeat(s: &str) -> Option<(i64, i64, &str)> {
    fn int(s: &str) -> Option<(i64, &str)> {
        let b = s.as_bytes();
        if b.first().is_none_or(|c| !c.is_ascii_digit())
            || (b.len() >= 2 && b[0] == b'0' && b[1].is_ascii_digit())
        {
            return None;
        }
        let end = b
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(b.len());
        let mut n: i64 = 0;
        for d in &b[..end] {
            if n >= 100_000_000 {
                n = -1;
                break;
            }
            n = n * 10 + i64::from(d - b'0');
        }
        Some((n, &s[end..]))
    }
    let (mut min, s) = int(s.strip_prefix('{')?)?;
    let (max, s) = match s.strip_prefix(',') {
        None => (min, s),
        Some(s) if s.starts_with('}') => (-1, s),
        Some(s) => {
            let (max, s) = int(s)?;
            if max < 0 {
                min = -1;
            }
            (max, s)
        }
    };
    Some((min, max, s.strip_prefix('}')?))
}

impl Parser {
    /// Whether the top of the stack is an expression a repetition can apply to.
    fn top_operand(&mut self) -> Option<&mut Tree> {
        match self.stack.last_mut() {
            Some(Item::Operand(t)) => Some(t),
            _ => None,
        }
    }

    fn run(mut self, pattern: &str) -> Result<String, GoError> {
        let mut t = pattern;
        let mut last_repeat: Option<&str> = None;
        while let Some((c, after_c)) = next_char(t) {
            let mut repeat = None;
            match c {
                '(' if t.starts_with("(?") => t = self.perl_flags(t)?,
                '(' => {
                    self.stack.push(Item::Paren);
                    self.out.push('(');
                    t = after_c;
                }
                '|' => {
                    self.stack.push(Item::Bar);
                    self.out.push('|');
                    t = after_c;
                }
                ')' => {
                    self.close_group(pattern)?;
                    t = after_c;
                }
                '^' | '$' | '.' => {
                    self.operand(&c.to_string());
                    t = after_c;
                }
                '[' => t = self.class(t)?,
                '*' | '+' | '?' => {
                    let after = self.repeat(t, after_c, last_repeat, None)?;
                    repeat = Some(t);
                    t = after;
                }
                '{' => match parse_repeat(t) {
                    Some((min, max, after)) => {
                        if !(0..=MAX_REPEAT).contains(&min)
                            || max > MAX_REPEAT
                            || (max >= 0 && min > max)
                        {
                            return Err(GoError::new("invalid repeat count", consumed(t, after)));
                        }
                        let count = if max < 0 { min } else { max };
                        let counted = (min >= 2 || max >= 2).then_some(count);
                        let after = self.repeat(t, after, last_repeat, Some((count, counted)))?;
                        repeat = Some(t);
                        t = after;
                    }
                    None => {
                        self.operand("\\{");
                        t = after_c;
                    }
                },
                '\\' => t = self.backslash(t)?,
                c => {
                    self.operand(&literal(c));
                    t = after_c;
                }
            }
            last_repeat = repeat;
        }
        if self.stack.iter().any(|i| matches!(i, Item::Paren)) {
            return Err(GoError::new("missing closing )", pattern));
        }
        Ok(self.out)
    }

    /// Pushes an expression written as `text`.
    fn operand(&mut self, text: &str) {
        self.out.push_str(text);
        self.stack.push(Item::Operand(Tree::default()));
    }

    /// A repetition operator at the start of `before`, `after` following it; `counted` for
    /// `{m,n}`: its count and, when Go checks the nesting, the count to check.
    fn repeat<'a>(
        &mut self,
        before: &'a str,
        mut after: &'a str,
        last_repeat: Option<&str>,
        counted: Option<(i64, Option<i64>)>,
    ) -> Result<&'a str, GoError> {
        if let Some(rest) = after.strip_prefix('?') {
            after = rest;
        }
        if let Some(last) = last_repeat {
            return Err(GoError::new(
                "invalid nested repetition operator",
                consumed(last, after),
            ));
        }
        let Some(top) = self.top_operand() else {
            return Err(GoError::new(
                "missing argument to repetition operator",
                consumed(before, after),
            ));
        };
        let sub = std::mem::take(top);
        *top = Tree {
            repeat: counted.map(|(count, _)| count),
            subs: vec![sub],
        };
        if let Some((_, Some(_))) = counted
            && !repeat_is_valid(top, MAX_REPEAT)
        {
            return Err(GoError::new(
                "invalid repeat count",
                consumed(before, after),
            ));
        }
        self.out.push_str(consumed(before, after));
        Ok(after)
    }

    /// A `)`: the group becomes one expression.
    fn close_group(&mut self, pattern: &str) -> Result<(), GoError> {
        let Some(open) = self.stack.iter().rposition(|i| matches!(i, Item::Paren)) else {
            return Err(GoError::new("unexpected )", pattern));
        };
        let subs = self
            .stack
            .drain(open..)
            .filter_map(|i| match i {
                Item::Operand(t) => Some(t),
                _ => None,
            })
            .collect();
        self.stack.push(Item::Operand(Tree { repeat: None, subs }));
        self.out.push(')');
        Ok(())
    }

    /// `(?P<name>`, `(?flags)`, `(?flags:` at the start of `s`.
    fn perl_flags<'a>(&mut self, s: &'a str) -> Result<&'a str, GoError> {
        if s.len() > 4 && s[2..].starts_with("P<") {
            let Some(end) = s.find('>') else {
                return Err(GoError::new("invalid named capture", s));
            };
            let name = &s[4..end];
            if name.is_empty() || !name.bytes().all(|c| c == b'_' || c.is_ascii_alphanumeric()) {
                return Err(GoError::new("invalid named capture", &s[..=end]));
            }
            // the regex crate refuses a name used twice (Go's lookups find the first group of
            // a name) and a name starting with a digit: such groups stay unnamed
            let digit_first = name.as_bytes()[0].is_ascii_digit();
            if self.names.insert(name.to_string()) && !digit_first {
                self.out.push_str(&s[..=end]);
            } else {
                self.out.push('(');
            }
            self.stack.push(Item::Paren);
            return Ok(&s[end + 1..]);
        }
        let mut t = &s[2..];
        let mut negated = false;
        let mut saw_flag = false;
        while let Some((c, rest)) = next_char(t) {
            t = rest;
            match c {
                'i' | 'm' | 's' | 'U' => saw_flag = true,
                '-' if !negated => {
                    negated = true;
                    saw_flag = false;
                }
                ':' | ')' if !negated || saw_flag => {
                    self.out.push_str(consumed(s, t));
                    if c == ':' {
                        self.stack.push(Item::Paren);
                    }
                    return Ok(t);
                }
                _ => break,
            }
        }
        Err(GoError::new(
            "invalid or unsupported Perl syntax",
            consumed(s, t),
        ))
    }

    /// A `\` outside a class.
    fn backslash<'a>(&mut self, t: &'a str) -> Result<&'a str, GoError> {
        let second = t.as_bytes().get(1).copied();
        let simple = match second {
            Some(b'A') => Some("\\A"),
            Some(b'z') => Some("\\z"),
            Some(b'b') => Some("(?-u:\\b)"),
            Some(b'B') => Some("(?-u:\\B)"),
            _ => None,
        };
        if let Some(text) = simple {
            self.operand(text);
            return Ok(&t[2..]);
        }
        match second {
            Some(b'C') => return Err(GoError::new("invalid escape sequence", &t[..2])),
            Some(b'Q') => {
                let body = &t[2..];
                let (lit, rest) = body.split_once("\\E").unwrap_or((body, ""));
                for c in lit.chars() {
                    self.operand(&literal(c));
                }
                return Ok(rest);
            }
            _ => {}
        }
        if let Some((class, rest)) = unicode_class(t)? {
            self.operand(&class);
            return Ok(rest);
        }
        if let Some((items, negated, rest)) = perl_class(t) {
            let neg = if negated { "^" } else { "" };
            self.operand(&format!("[{neg}{items}]"));
            return Ok(rest);
        }
        let (c, rest) = escape(t)?;
        self.operand(&literal(c));
        Ok(rest)
    }

    /// A bracketed class at the start of `s` (`s` runs to the pattern's end, as Go's message
    /// for a missing `]` shows).
    fn class<'a>(&mut self, s: &'a str) -> Result<&'a str, GoError> {
        let mut t = &s[1..];
        let mut out = String::from("[");
        if let Some(rest) = t.strip_prefix('^') {
            out.push('^');
            t = rest;
        }
        let mut first = true;
        while t.is_empty() || !t.starts_with(']') || first {
            first = false;
            if t.len() > 2
                && t.starts_with("[:")
                && let Some(i) = t[2..].find(":]")
            {
                let name = &t[..i + 4];
                let inner = &name[2..name.len() - 2];
                if !POSIX.contains(&inner.strip_prefix('^').unwrap_or(inner)) {
                    return Err(GoError::new("invalid character class range", name));
                }
                out.push_str(name);
                t = &t[i + 4..];
                continue;
            }
            if let Some((class, rest)) = unicode_class(t)? {
                out.push_str(&class);
                t = rest;
                continue;
            }
            if let Some((items, negated, rest)) = perl_class(t) {
                if negated {
                    let _ = write!(out, "[^{items}]");
                } else {
                    out.push_str(items);
                }
                t = rest;
                continue;
            }
            let range_start = t;
            let (lo, rest) = class_char(t, s)?;
            t = rest;
            let mut hi = lo;
            if t.len() >= 2 && t.starts_with('-') && !t[1..].starts_with(']') {
                let (h, rest) = class_char(&t[1..], s)?;
                t = rest;
                hi = h;
                if hi < lo {
                    return Err(GoError::new(
                        "invalid character class range",
                        consumed(range_start, t),
                    ));
                }
            }
            out.push_str(&literal(lo));
            if hi != lo {
                out.push('-');
                out.push_str(&literal(hi));
            }
        }
        out.push(']');
        self.operand(&out);
        Ok(&t[1..])
    }
}

/// Go's `parseClassChar`: one character in a class.
fn class_char<'a>(t: &'a str, whole_class: &str) -> Result<(char, &'a str), GoError> {
    if t.starts_with('\\') {
        return escape(t);
    }
    next_char(t).ok_or_else(|| GoError::new("missing closing ]", whole_class))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: &str) -> String {
        translate(p).unwrap_err()
    }

    #[test]
    fn go_messages() {
        for (pattern, message) in [
            ("[", "missing closing ]: `[`"),
            ("a[bc", "missing closing ]: `[bc`"),
            ("a**", "invalid nested repetition operator: `**`"),
            ("a*?*", "invalid nested repetition operator: `*?*`"),
            ("a{2}{3}", "invalid nested repetition operator: `{2}{3}`"),
            ("(?<n>x)", "invalid or unsupported Perl syntax: `(?<`"),
            ("(?=x)", "invalid or unsupported Perl syntax: `(?=`"),
            ("(?i-)", "invalid or unsupported Perl syntax: `(?i-)`"),
            ("x{1001}", "invalid repeat count: `{1001}`"),
            ("x{2,1}", "invalid repeat count: `{2,1}`"),
            ("(a{500}){3}", "invalid repeat count: `{3}`"),
            ("\\8", "invalid escape sequence: `\\8`"),
            ("\\1", "invalid escape sequence: `\\1`"),
            ("\\C", "invalid escape sequence: `\\C`"),
            ("\\xZ1", "invalid escape sequence: `\\xZ1`"),
            ("[\\b]", "invalid escape sequence: `\\b`"),
            ("[z-a]", "invalid character class range: `z-a`"),
            ("[[:foo:]]", "invalid character class range: `[:foo:]`"),
            ("\\p{Foo}", "invalid character class range: `\\p{Foo}`"),
            (
                "\\p{Letter}",
                "invalid character class range: `\\p{Letter}`",
            ),
            ("\\p{L", "invalid character class range: `\\p{L`"),
            ("a)", "unexpected ): `a)`"),
            ("(a", "missing closing ): `(a`"),
            ("*", "missing argument to repetition operator: `*`"),
            ("a|*", "missing argument to repetition operator: `*`"),
            ("(?i)+", "missing argument to repetition operator: `+`"),
            ("(?P<>x)", "invalid named capture: `(?P<>`"),
            ("(?P<a", "invalid named capture: `(?P<a`"),
            ("x\\", "trailing backslash at end of expression: ``"),
        ] {
            assert_eq!(
                err(pattern),
                format!("error parsing regexp: {message}"),
                "{pattern}"
            );
        }
    }

    #[test]
    fn go_meaning() {
        let find = |p: &str, text: &str| {
            let re = regex::Regex::new(&translate(p).unwrap()).unwrap();
            re.find(text)
                .map(|m| m.as_str().to_string())
                .unwrap_or_default()
        };
        assert_eq!(find("\\w+", "héllo"), "h");
        assert_eq!(find("\\d+", "١٢3"), "3");
        assert_eq!(find("[[a]]", "a]"), "a]");
        assert_eq!(find("a{01}", "a{01}"), "a{01}");
        assert_eq!(find("[a&&b]", "&"), "&");
        assert_eq!(find("\\01", "\u{1}"), "\u{1}");
        assert_eq!(find("x{2}", "xxx"), "xx");
        assert_eq!(find("\\Qa.b\\E", "xa.by"), "a.b");
        assert_eq!(find("[\\D]+", "ab1"), "ab");
        assert_eq!(find("(?P<a>x)(?P<a>y)", "xy"), "xy");
        assert_eq!(find("\\pL+", "1éa"), "éa");
        assert_eq!(find("(?i)\\x41.", "a."), "a.");
        assert_eq!(find("(?i)[+]a", "+A"), "+A");
        assert_eq!(find("\\P{^Greek}+", "aαβ"), "αβ");
        let re = regex::Regex::new(&translate("\\b").unwrap()).unwrap();
        assert_eq!(re.replace_all("é a", "|"), "é |a|");
    }
}

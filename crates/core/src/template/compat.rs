//! Sprig functions re-implemented to behave byte for byte as sprig 3.2.3 does under Go's
//! `text/template` (they replace the engine's Helm versions where those differ): the same
//! argument order and types, the same output for nil and missing values, the same cases that
//! fail and the same ones that quietly return a value.

use std::collections::HashMap;

use super::gotmpl::{Elem, Func, FuncError, GoMap, List, Typed, Value};
use base64::Engine as _;

use super::go::{
    JsonFailure, Num, arg, bool_param, deep_equal, empty, exactly, float, from_json, go_quote,
    go_v, iface, int, int_param, int64, is_nil, kind_name, list_param, map_param, map_target,
    map_value, num, str_param, strval, to_json_within, type_name, wrong_count,
};
use super::go_regexp;

/// The functions of this module.
pub(super) const FUNCTIONS: &[(&str, Func)] = &[
    ("hello", hello as Func),
    // strings
    ("upper", upper as Func),
    ("lower", lower as Func),
    ("trim", trim as Func),
    ("title", title as Func),
    ("untitle", untitle as Func),
    ("substr", substr as Func),
    ("trunc", trunc as Func),
    ("trimAll", trim_all as Func),
    ("trimall", trim_all as Func),
    ("trimPrefix", trim_prefix as Func),
    ("trimSuffix", trim_suffix as Func),
    ("nospace", nospace as Func),
    ("initials", initials as Func),
    ("swapcase", swapcase as Func),
    ("camelcase", camelcase as Func),
    ("snakecase", snakecase as Func),
    ("kebabcase", kebabcase as Func),
    ("quote", quote as Func),
    ("squote", squote as Func),
    ("cat", cat as Func),
    ("indent", indent as Func),
    ("nindent", nindent as Func),
    ("replace", replace as Func),
    ("repeat", repeat as Func),
    ("contains", contains as Func),
    ("hasPrefix", has_prefix as Func),
    ("hasSuffix", has_suffix as Func),
    ("plural", plural as Func),
    ("toString", to_string as Func),
    ("splitList", split_list as Func),
    ("split", split as Func),
    ("splitn", splitn as Func),
    ("join", join as Func),
    ("toStrings", to_strings as Func),
    ("sortAlpha", sort_alpha as Func),
    ("abbrev", abbrev as Func),
    ("abbrevboth", abbrevboth as Func),
    // conversions and numbers
    ("atoi", atoi as Func),
    ("int", to_int as Func),
    ("int64", to_int64 as Func),
    ("float64", to_float as Func),
    ("seq", seq as Func),
    ("until", until as Func),
    ("untilStep", until_step as Func),
    ("add", add as Func),
    ("add1", add1 as Func),
    ("sub", sub as Func),
    ("mul", mul as Func),
    ("div", div as Func),
    ("mod", modulo as Func),
    ("max", max as Func),
    ("biggest", max as Func),
    ("min", min as Func),
    ("add1f", add1f as Func),
    ("addf", addf as Func),
    ("subf", subf as Func),
    ("mulf", mulf as Func),
    ("divf", divf as Func),
    ("maxf", maxf as Func),
    ("minf", minf as Func),
    // Go's comparison and index builtins
    ("eq", eq as Func),
    ("ne", ne as Func),
    ("lt", lt as Func),
    ("le", le as Func),
    ("gt", gt as Func),
    ("ge", ge as Func),
    ("index", index as Func),
    ("printf", printf as Func),
    ("html", html as Func),
    ("js", js as Func),
    ("urlquery", urlquery as Func),
    // defaults
    ("default", default as Func),
    ("empty", is_empty as Func),
    ("coalesce", coalesce as Func),
    ("all", all as Func),
    ("any", any as Func),
    ("compact", compact as Func),
    ("mustCompact", compact as Func),
    ("ternary", ternary as Func),
    // JSON
    ("toJson", to_json_fn as Func),
    ("mustToJson", to_json_fn as Func),
    ("toRawJson", to_raw_json as Func),
    ("mustToRawJson", to_raw_json as Func),
    ("toPrettyJson", to_pretty_json as Func),
    ("mustToPrettyJson", to_pretty_json as Func),
    ("fromJson", from_json_fn as Func),
    ("mustFromJson", must_from_json as Func),
    // dicts
    ("dict", dict as Func),
    ("get", get as Func),
    ("set", set as Func),
    ("unset", unset as Func),
    ("hasKey", has_key as Func),
    ("pick", pick as Func),
    ("omit", omit as Func),
    ("pluck", pluck as Func),
    ("keys", keys as Func),
    ("merge", merge as Func),
    ("mustMerge", merge as Func),
    ("mergeOverwrite", merge_overwrite as Func),
    ("mustMergeOverwrite", merge_overwrite as Func),
    ("dig", dig as Func),
    ("list", list as Func),
    ("tuple", list as Func),
    ("deepCopy", deep_copy as Func),
    ("mustDeepCopy", deep_copy as Func),
    // lists
    ("first", first as Func),
    ("mustFirst", first as Func),
    ("last", last as Func),
    ("mustLast", last as Func),
    ("rest", rest as Func),
    ("mustRest", rest as Func),
    ("initial", initial as Func),
    ("mustInitial", initial as Func),
    ("reverse", reverse as Func),
    ("mustReverse", reverse as Func),
    ("uniq", uniq as Func),
    ("mustUniq", uniq as Func),
    ("has", has as Func),
    ("mustHas", has as Func),
    ("slice", slice as Func),
    ("mustSlice", slice as Func),
    // reflection
    ("typeOf", type_of as Func),
    ("typeIs", type_is as Func),
    ("typeIsLike", type_is_like as Func),
    ("kindOf", kind_of as Func),
    ("kindIs", kind_is as Func),
    ("deepEqual", deep_equal_fn as Func),
    // paths (slash-separated on the controller's platform, so the os* forms are the same)
    ("base", base as Func),
    ("osBase", base as Func),
    ("dir", dir as Func),
    ("osDir", dir as Func),
    ("clean", clean as Func),
    ("osClean", clean as Func),
    ("ext", ext as Func),
    ("osExt", ext as Func),
    ("isAbs", is_abs as Func),
    ("osIsAbs", is_abs as Func),
    // encoding and digests
    ("b64enc", b64enc as Func),
    ("b64dec", b64dec as Func),
    ("b32enc", b32enc as Func),
    ("sha1sum", sha1sum as Func),
    ("sha256sum", sha256sum as Func),
    // sprig 3.3.0, which upstream sealed-secrets pins and external-secrets' copy has
    ("sha512sum", sha512sum as Func),
    ("ceil", ceil as Func),
    ("floor", floor as Func),
    ("round", round as Func),
    ("b32dec", b32dec as Func),
    // regular expressions
    ("regexMatch", regex_match as Func),
    ("mustRegexMatch", must_regex_match as Func),
    ("regexFindAll", regex_find_all as Func),
    ("mustRegexFindAll", must_regex_find_all as Func),
    ("regexFind", regex_find as Func),
    ("mustRegexFind", must_regex_find as Func),
    ("regexReplaceAll", regex_replace_all as Func),
    ("mustRegexReplaceAll", must_regex_replace_all as Func),
    ("regexReplaceAllLiteral", regex_replace_all_literal as Func),
    (
        "mustRegexReplaceAllLiteral",
        must_regex_replace_all_literal as Func,
    ),
    ("regexSplit", regex_split as Func),
    ("mustRegexSplit", must_regex_split as Func),
];

fn generic(msg: impl Into<String>) -> FuncError {
    FuncError::Generic(msg.into())
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// One string parameter.
fn str1(args: &[Value], f: &str) -> Result<String, FuncError> {
    exactly(args, f, 1)?;
    str_param(&args[0])
}

/// Two string parameters.
fn str2(args: &[Value], f: &str) -> Result<(String, String), FuncError> {
    exactly(args, f, 2)?;
    Ok((str_param(&args[0])?, str_param(&args[1])?))
}

fn hello(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "hello", 0)?;
    Ok(s("Hello!"))
}

/// Go's `strings.ToUpper`: rune by rune, simple case mapping (`ß` stays).
fn upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(s(str1(args, "upper")?
        .chars()
        .map(to_upper)
        .collect::<String>()))
}

/// Go's `strings.ToLower`: rune by rune, simple case mapping (no final sigma).
fn lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(s(str1(args, "lower")?
        .chars()
        .map(to_lower)
        .collect::<String>()))
}

fn trim(args: &[Value]) -> Result<Value, FuncError> {
    Ok(s(str1(args, "trim")?.trim()))
}

/// Go's `strings.Title` word boundary.
fn separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    if c.is_alphanumeric() {
        return false;
    }
    c.is_whitespace()
}

/// A rune's simple upper-case mapping, as Go's `unicode.ToUpper` (one rune to one rune).
fn to_upper(c: char) -> char {
    let mut up = c.to_uppercase();
    match (up.next(), up.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

fn to_lower(c: char) -> char {
    // the one rune whose full lower-case mapping is longer than its simple one
    if c == '\u{130}' {
        return 'i';
    }
    let mut low = c.to_lowercase();
    match (low.next(), low.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// A rune's title case (`unicode.ToTitle`): upper case, except the four digraphs that have a
/// title form of their own (`ǅ`, `ǈ`, `ǋ`, `ǲ`).
fn to_title(c: char) -> char {
    match c {
        '\u{1c4}'..='\u{1c6}' => '\u{1c5}',
        '\u{1c7}'..='\u{1c9}' => '\u{1c8}',
        '\u{1ca}'..='\u{1cc}' => '\u{1cb}',
        '\u{1f1}'..='\u{1f3}' => '\u{1f2}',
        c => to_upper(c),
    }
}

fn title(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "title")?;
    let mut prev = ' ';
    let out: String = text
        .chars()
        .map(|c| {
            let r = if separator(prev) { to_title(c) } else { c };
            prev = c;
            r
        })
        .collect();
    Ok(s(out))
}

fn untitle(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "untitle")?;
    let mut at_start = true;
    let out: String = text
        .chars()
        .map(|c| {
            let r = if at_start { to_lower(c) } else { c };
            at_start = c.is_whitespace();
            r
        })
        .collect();
    Ok(s(out))
}

/// Go's byte-indexed slicing of a string; a cut inside a character keeps the bytes, which a
/// Rust string cannot hold, so they become U+FFFD, and the real bytes are recorded for the
/// functions that read bytes (`len`, `quote`, `b64enc`; see `eso::binary`).
fn byte_slice(text: &str, from: usize, to: usize) -> String {
    let bytes = &text.as_bytes()[from..to];
    match std::str::from_utf8(bytes) {
        Ok(whole) => whole.to_string(),
        Err(_) => super::eso::binary::record(go_bytes(bytes), bytes.to_vec()),
    }
}

/// Go's `strconv.Quote` of bytes: as [`go_quote`], with `\xNN` for each byte that is not part
/// of a UTF-8 character.
fn go_quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    let mut rest = bytes;
    while !rest.is_empty() {
        let (good, bad) = match std::str::from_utf8(rest) {
            Ok(text) => (text, &[][..]),
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                (std::str::from_utf8(good).unwrap_or_default(), bad)
            }
        };
        let quoted = go_quote(good);
        out.push_str(&quoted[1..quoted.len() - 1]);
        if let Some((b, after)) = bad.split_first() {
            out.push_str(&format!("\\x{b:02x}"));
            rest = after;
        } else {
            rest = bad;
        }
    }
    out.push('"');
    out
}

/// Bytes as text, each byte that is not part of a whole UTF-8 character becoming U+FFFD on its
/// own (as Go's encoders and printers show stray bytes).
pub(super) fn go_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                out.push_str(text);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(good).unwrap_or_default());
                out.push('\u{fffd}');
                rest = &bad[1..];
            }
        }
    }
    out
}

fn substr(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "substr", 3)?;
    let (start, end) = (int_param(&args[0])?, int_param(&args[1])?);
    let text = str_param(&args[2])?;
    let len = text.len() as i64;
    // sprig slices the string; Go's runtime words the failure by the slice expression
    let out_of_range =
        |what: String| generic(format!("runtime error: slice bounds out of range {what}"));
    let (from, to) = if start < 0 {
        if end < 0 {
            return Err(out_of_range(format!("[:{end}]")));
        }
        if end > len {
            return Err(out_of_range(format!("[:{end}] with length {len}")));
        }
        (0, end)
    } else if end < 0 || end > len {
        if start > len {
            return Err(out_of_range(format!("[{start}:{len}]")));
        }
        (start, len)
    } else {
        if start > end {
            return Err(out_of_range(format!("[{start}:{end}]")));
        }
        (start, end)
    };
    Ok(s(byte_slice(&text, from as usize, to as usize)))
}

fn trunc(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "trunc", 2)?;
    let c = int_param(&args[0])?;
    let text = str_param(&args[1])?;
    let len = text.len() as i64;
    Ok(s(if c < 0 && len + c > 0 {
        byte_slice(&text, (len + c) as usize, text.len())
    } else if c >= 0 && len > c {
        byte_slice(&text, 0, c as usize)
    } else {
        text
    }))
}

fn trim_all(args: &[Value]) -> Result<Value, FuncError> {
    let (cut, text) = str2(args, "trimAll")?;
    Ok(s(text.trim_matches(|c| cut.contains(c))))
}

fn trim_prefix(args: &[Value]) -> Result<Value, FuncError> {
    let (p, text) = str2(args, "trimPrefix")?;
    Ok(s(text.strip_prefix(p.as_str()).unwrap_or(&text)))
}

fn trim_suffix(args: &[Value]) -> Result<Value, FuncError> {
    let (p, text) = str2(args, "trimSuffix")?;
    Ok(s(text.strip_suffix(p.as_str()).unwrap_or(&text)))
}

/// goutils' `DeleteWhiteSpace`, which reads the text byte by byte: when it removes anything,
/// every byte of a multi-byte character comes out as its own Latin-1 character, as in Go.
fn nospace(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "nospace")?;
    let space = |b: u8| matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0);
    if !text.bytes().any(space) {
        return Ok(s(text));
    }
    Ok(s(text
        .bytes()
        .filter(|b| !space(*b))
        .map(char::from)
        .collect::<String>()))
}

/// goutils' `Initials`: the first byte of each word, taken as a character (so a word starting
/// with a multi-byte character gives its first byte as Latin-1, as in Go).
fn initials(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "initials")?;
    Ok(s(text
        .split(char::is_whitespace)
        .filter_map(|w| w.bytes().next())
        .map(char::from)
        .collect::<String>()))
}

fn swapcase(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "swapcase")?;
    Ok(s(text
        .chars()
        .map(|c| {
            // title-case digraphs count as upper case here, as in goutils
            if c.is_uppercase() || matches!(c, '\u{1c5}' | '\u{1c8}' | '\u{1cb}' | '\u{1f2}') {
                to_lower(c)
            } else if c.is_lowercase() {
                to_upper(c)
            } else {
                c
            }
        })
        .collect::<String>()))
}

fn connector(c: char) -> bool {
    c == '-' || c == '_' || c.is_whitespace()
}

/// xstrings' `ToCamelCase` (sprig's `camelcase`): leading connectors stay, a connector run
/// before a letter is dropped and the letter upper-cased, other letters lower-cased... except
/// that a run of connectors keeps all but its last.
fn camelcase(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "camelcase")?;
    let mut chars = text.chars();
    let mut out = String::new();
    let mut r0 = None;
    for c in chars.by_ref() {
        if !connector(c) {
            r0 = Some(to_upper(c));
            break;
        }
        out.push(c);
    }
    let Some(mut r0) = r0 else {
        return Ok(s(out));
    };
    for c in chars {
        let r1 = r0;
        r0 = c;
        if connector(r0) && connector(r1) {
            out.push(r1);
            continue;
        }
        if connector(r1) {
            r0 = to_upper(r0);
        } else {
            r0 = to_lower(r0);
            out.push(r1);
        }
    }
    out.push(r0);
    Ok(s(out))
}

/// The kinds of word xstrings splits text into for `snakecase` and `kebabcase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Word {
    Number,
    Upper,
    Alphabet,
    Connector,
    Punct,
    Other,
}

/// A letter that is not CJK (xstrings' `isAlphabet`).
fn alphabet(c: char) -> bool {
    let cjk = matches!(c as u32, 0x3040..=0x30ff | 0x3400..=0x4dbf | 0x4e00..=0x9fff | 0xac00..=0xd7af | 0xf900..=0xfaff | 0x20000..=0x2fa1f);
    c.is_alphabetic() && !cjk
}

/// Go's `unicode.IsPunct` for the characters that are not connectors.
fn punct(c: char) -> bool {
    if c.is_ascii() {
        return matches!(
            c,
            '!' | '"'
                | '#'
                | '%'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | ','
                | '.'
                | '/'
                | ':'
                | ';'
                | '?'
                | '@'
                | '['
                | '\\'
                | ']'
                | '{'
                | '}'
        );
    }
    matches!(c as u32, 0x2010..=0x2027 | 0x2030..=0x205e | 0x3001..=0x3003 | 0x3008..=0x3011 | 0xff01..=0xff0f)
}

/// xstrings' `nextWord`: the kind and length in bytes of the word at the start of `s`.
fn next_word(s: &str) -> (Word, usize) {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let end = |i: usize| chars.get(i).map_or(s.len(), |(at, _)| *at);
    let run = |from: usize, keep: &dyn Fn(char) -> bool| {
        let mut i = from;
        while i < chars.len() && keep(chars[i].1) {
            i += 1;
        }
        i
    };
    let Some(&(_, first)) = chars.first() else {
        return (Word::Other, 0);
    };
    if connector(first) {
        return (Word::Connector, end(run(1, &connector)));
    }
    if punct(first) {
        return (Word::Punct, end(run(1, &punct)));
    }
    if first.is_uppercase() {
        let Some(&(_, second)) = chars.get(1) else {
            return (Word::Upper, end(1));
        };
        if second.is_uppercase() {
            let stop = run(2, &|c: char| c.is_uppercase());
            // "HTTPServer": the last capital starts the next word
            if stop < chars.len() && alphabet(chars[stop].1) {
                return (Word::Upper, end(stop - 1));
            }
            return (Word::Upper, end(stop));
        }
        if alphabet(second) {
            return (
                Word::Upper,
                end(run(2, &|c: char| alphabet(c) && !c.is_uppercase())),
            );
        }
        return (Word::Upper, end(1));
    }
    if alphabet(first) {
        return (
            Word::Alphabet,
            end(run(1, &|c: char| alphabet(c) && !c.is_uppercase())),
        );
    }
    if first.is_numeric() {
        return (Word::Number, end(run(1, &char::is_numeric)));
    }
    (
        Word::Other,
        end(run(1, &|c: char| {
            !(connector(c) || alphabet(c) || c.is_numeric() || punct(c))
        })),
    )
}

/// xstrings' `toLower`: upper-case words and connectors are lowered and joined, others kept.
fn lower_word(out: &mut String, kind: Word, word: &str, joiner: char) {
    if kind != Word::Upper && kind != Word::Connector {
        out.push_str(word);
        return;
    }
    for c in word.chars() {
        if connector(c) {
            out.push(joiner);
        } else {
            out.push(to_lower(c));
        }
    }
}

/// xstrings' `camelCaseToLowerCase`, behind sprig's `snakecase` and `kebabcase`.
fn words_joined(text: &str, joiner: char) -> String {
    let mut out = String::new();
    if text.is_empty() {
        return out;
    }
    fn take<'a>(rest: &mut &'a str) -> (Word, &'a str) {
        let (kind, len) = next_word(rest);
        let word = &rest[..len];
        *rest = &rest[len..];
        (kind, word)
    }
    let mut rest = text;
    let (mut kind, mut word) = take(&mut rest);
    let last_kind_is_separator = |k: Word| k != Word::Punct && k != Word::Connector;
    while !rest.is_empty() {
        if kind != Word::Connector {
            lower_word(&mut out, kind, word, joiner);
        }
        let (prev, last) = (kind, word);
        (kind, word) = take(&mut rest);
        match prev {
            Word::Number => {
                while matches!(kind, Word::Alphabet | Word::Number) {
                    lower_word(&mut out, kind, word, joiner);
                    if rest.is_empty() {
                        kind = Word::Other;
                        word = "";
                        break;
                    }
                    (kind, word) = take(&mut rest);
                }
                if last_kind_is_separator(kind) && !word.is_empty() {
                    out.push(joiner);
                }
            }
            Word::Connector => lower_word(&mut out, prev, last, joiner),
            Word::Punct => {}
            _ => {
                if kind != Word::Number {
                    if last_kind_is_separator(kind) {
                        out.push(joiner);
                    }
                    continue;
                }
                if rest.is_empty() {
                    continue;
                }
                let number = word;
                (kind, word) = take(&mut rest);
                if kind != Word::Alphabet {
                    lower_word(&mut out, Word::Number, number, joiner);
                    if last_kind_is_separator(kind) {
                        out.push(joiner);
                    }
                    continue;
                }
                out.push(joiner);
                lower_word(&mut out, Word::Number, number, joiner);
                while matches!(kind, Word::Alphabet | Word::Number) {
                    lower_word(&mut out, kind, word, joiner);
                    if rest.is_empty() {
                        kind = Word::Other;
                        word = "";
                        break;
                    }
                    (kind, word) = take(&mut rest);
                }
                if last_kind_is_separator(kind) && !word.is_empty() {
                    out.push(joiner);
                }
            }
        }
    }
    lower_word(&mut out, kind, word, joiner);
    out
}

fn snakecase(args: &[Value]) -> Result<Value, FuncError> {
    Ok(s(words_joined(&str1(args, "snakecase")?, '_')))
}

fn kebabcase(args: &[Value]) -> Result<Value, FuncError> {
    Ok(s(words_joined(&str1(args, "kebabcase")?, '-')))
}

fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args
        .iter()
        .filter(|a| !is_nil(a))
        .map(|a| go_quote_bytes(&super::eso::binary::bytes_of(&strval(a))))
        .collect();
    Ok(s(parts.join(" ")))
}

fn squote(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args
        .iter()
        .filter(|a| !is_nil(a))
        .map(|a| format!("'{}'", strval(a)))
        .collect();
    Ok(s(parts.join(" ")))
}

fn cat(args: &[Value]) -> Result<Value, FuncError> {
    let parts: Vec<String> = args.iter().filter(|a| !is_nil(a)).map(go_v).collect();
    Ok(s(parts.join(" ")))
}

/// The most padding `indent` and `nindent` add, so a template cannot ask for gigabytes.
const MAX_PAD: i64 = 1 << 16;

fn pad(n: i64) -> Result<String, FuncError> {
    if n < 0 {
        return Err(generic("strings: negative Repeat count"));
    }
    if n > MAX_PAD {
        return Err(generic(format!(
            "indent: {n} spaces is more than {MAX_PAD}"
        )));
    }
    Ok(" ".repeat(usize::try_from(n).unwrap_or(0)))
}

/// Refuses a result of `bytes` bytes over the engine's limit for one function's result, before
/// it is built.
fn check_size(function: &str, bytes: usize) -> Result<(), FuncError> {
    let limit = super::gotmpl::limits::active()
        .function_output
        .unwrap_or(usize::MAX);
    if bytes > limit {
        return Err(FuncError::TooMuchOutput {
            function: function.into(),
            count: bytes,
            what: "bytes".into(),
            limit,
        });
    }
    Ok(())
}

fn indent_text(n: i64, text: &str) -> Result<String, FuncError> {
    let lines = text.bytes().filter(|b| *b == b'\n').count() + 1;
    check_size(
        "indent",
        text.len()
            .saturating_add(lines.saturating_mul(usize::try_from(n).unwrap_or(0))),
    )?;
    let p = pad(n)?;
    Ok(format!("{p}{}", text.replace('\n', &format!("\n{p}"))))
}

fn indent(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "indent", 2)?;
    Ok(s(indent_text(int_param(&args[0])?, &str_param(&args[1])?)?))
}

fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "nindent", 2)?;
    Ok(s(format!(
        "\n{}",
        indent_text(int_param(&args[0])?, &str_param(&args[1])?)?
    )))
}

fn replace(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "replace", 3)?;
    let (old, new, src) = (
        str_param(&args[0])?,
        str_param(&args[1])?,
        str_param(&args[2])?,
    );
    let count = if old.is_empty() {
        src.chars().count() + 1
    } else {
        src.matches(old.as_str()).count()
    };
    check_size(
        "replace",
        src.len().saturating_add(count.saturating_mul(new.len())),
    )?;
    if old.is_empty() {
        // Go inserts `new` before every character and at the end
        let mut out = String::new();
        for c in src.chars() {
            out.push_str(&new);
            out.push(c);
        }
        out.push_str(&new);
        return Ok(s(out));
    }
    Ok(s(src.replace(&old, &new)))
}

/// The longest text `repeat` may produce.
const MAX_REPEAT_BYTES: usize = 1 << 20;

fn repeat(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "repeat", 2)?;
    let n = int_param(&args[0])?;
    let text = str_param(&args[1])?;
    if n < 0 {
        return Err(generic("strings: negative Repeat count"));
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if text.len().saturating_mul(n) > MAX_REPEAT_BYTES {
        return Err(FuncError::TooMuchOutput {
            function: "repeat".into(),
            count: n,
            what: "repetitions".into(),
            limit: MAX_REPEAT_BYTES / text.len().max(1),
        });
    }
    Ok(s(text.repeat(n)))
}

fn contains(args: &[Value]) -> Result<Value, FuncError> {
    let (sub, text) = str2(args, "contains")?;
    Ok(Value::Bool(text.contains(&sub)))
}

fn has_prefix(args: &[Value]) -> Result<Value, FuncError> {
    let (p, text) = str2(args, "hasPrefix")?;
    Ok(Value::Bool(text.starts_with(&p)))
}

fn has_suffix(args: &[Value]) -> Result<Value, FuncError> {
    let (p, text) = str2(args, "hasSuffix")?;
    Ok(Value::Bool(text.ends_with(&p)))
}

fn plural(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "plural", 3)?;
    let (one, many) = (str_param(&args[0])?, str_param(&args[1])?);
    Ok(s(if int_param(&args[2])? == 1 { one } else { many }))
}

fn to_string(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "toString", 1)?;
    Ok(s(strval(&args[0])))
}

/// Go's `strings.Split` (an empty separator splits into characters); `n` < 0 for all parts.
fn go_split(text: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    let limit = usize::try_from(n).unwrap_or(usize::MAX);
    if sep.is_empty() {
        let chars: Vec<char> = text.chars().collect();
        let mut parts: Vec<String> = Vec::new();
        for (i, c) in chars.iter().enumerate() {
            if parts.len() + 1 == limit {
                parts.push(chars[i..].iter().collect());
                return parts;
            }
            parts.push(c.to_string());
        }
        return parts;
    }
    text.splitn(limit, sep).map(str::to_string).collect()
}

fn split_list(args: &[Value]) -> Result<Value, FuncError> {
    let (sep, text) = str2(args, "splitList")?;
    Ok(Value::Array(List::strings(
        go_split(&text, &sep, -1).into_iter().map(s).collect(),
    )))
}

/// sprig's `split`/`splitn` result: a `map[string]string` with keys `_0`, `_1`, ...
fn indexed(parts: Vec<String>) -> Value {
    Value::Object(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), s(p)))
            .collect(),
    )
}

fn split(args: &[Value]) -> Result<Value, FuncError> {
    let (sep, text) = str2(args, "split")?;
    Ok(indexed(go_split(&text, &sep, -1)))
}

fn splitn(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "splitn", 3)?;
    let sep = str_param(&args[0])?;
    let n = int_param(&args[1])?;
    let text = str_param(&args[2])?;
    Ok(indexed(go_split(&text, &sep, n)))
}

/// sprig's `strslice`: a list's non-nil items as strings; anything else as one string.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter(|i| !is_nil(i)).map(strval).collect(),
        other if is_nil(other) => Vec::new(),
        other => vec![strval(other)],
    }
}

fn join(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "join", 2)?;
    let sep = str_param(&args[0])?;
    let items = strslice(&args[1]);
    let total = items.iter().map(String::len).sum::<usize>();
    check_size(
        "join",
        total.saturating_add(sep.len().saturating_mul(items.len())),
    )?;
    Ok(s(items.join(&sep)))
}

fn to_strings(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "toStrings", 1)?;
    Ok(Value::Array(List::strings(
        strslice(&args[0]).into_iter().map(s).collect(),
    )))
}

fn sort_alpha(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "sortAlpha", 1)?;
    let mut items = match &args[0] {
        Value::Array(_) => strslice(&args[0]),
        other => vec![strval(other)],
    };
    items.sort();
    Ok(Value::Array(List::strings(
        items.into_iter().map(s).collect(),
    )))
}

/// goutils' `Abbreviate`/`AbbreviateFull`, on bytes as Go's.
fn abbreviate_full(text: &str, offset: i64, max_width: i64) -> Result<String, FuncError> {
    let len = text.len() as i64;
    if max_width < 4 {
        return Err(generic("maxWidth too small"));
    }
    if len <= max_width {
        return Ok(text.to_string());
    }
    let mut offset = offset.min(len);
    if len - offset < max_width - 3 {
        offset = len - (max_width - 3);
    }
    let ell = "...";
    if offset <= 4 {
        return Ok(format!(
            "{}{ell}",
            byte_slice(text, 0, (max_width - 3) as usize)
        ));
    }
    if max_width < 7 {
        return Err(generic("maxWidth too small"));
    }
    if offset + max_width - 3 < len {
        let rest = byte_slice(text, offset as usize, text.len());
        let inner = abbreviate_full(&rest, 0, max_width - 3)?;
        return Ok(format!("{ell}{inner}"));
    }
    Ok(format!(
        "{ell}{}",
        byte_slice(text, (len - (max_width - 3)) as usize, text.len())
    ))
}

fn abbrev(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "abbrev", 2)?;
    let width = int_param(&args[0])?;
    let text = str_param(&args[1])?;
    if width < 4 {
        return Ok(s(text));
    }
    Ok(s(abbreviate_full(&text, 0, width).unwrap_or_default()))
}

fn abbrevboth(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "abbrevboth", 3)?;
    let (left, right) = (int_param(&args[0])?, int_param(&args[1])?);
    let text = str_param(&args[2])?;
    if right < 4 || left > 0 && right < 7 {
        return Ok(s(text));
    }
    Ok(s(abbreviate_full(&text, left, right).unwrap_or_default()))
}

fn atoi(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "atoi")?;
    let t = text.strip_prefix('+').unwrap_or(&text);
    let ok = !t.is_empty()
        && t.trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit());
    Ok(int(if ok { text.parse().unwrap_or(0) } else { 0 }))
}

/// Go's `strconv.ParseInt(s, 0, 64)`: a sign, then `0x`, `0o`, `0b` or a leading `0` for octal,
/// and `_` between digits.
fn parse_int_base0(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string())
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower.clone())
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') {
        return None;
    }
    if digits.contains('_') && radix == 10 && !body.starts_with('0') {
        return None;
    }
    let digits = digits.replace('_', "");
    let magnitude = i128::from_str_radix(&digits, radix).ok()?;
    let v = if neg { -magnitude } else { magnitude };
    i64::try_from(v).ok()
}

/// spf13/cast's `ToInt64`: numbers truncated, strings parsed (base prefixes allowed, a trailing
/// `.0` ignored), true as 1, anything else 0.
fn cast_int(v: &Value) -> i64 {
    match v {
        Value::Number(_) => match num(v) {
            Some(Num::Int(i)) => i,
            Some(Num::Float(f)) => f as i64,
            None => 0,
        },
        Value::String(text) => {
            let t = text.trim_end_matches(".0");
            let t = if t.is_empty() { text.as_str() } else { t };
            parse_int_base0(t).unwrap_or(0)
        }
        Value::Bool(b) => i64::from(*b),
        Value::Typed(_) => match num(v) {
            Some(Num::Int(i)) => i,
            _ => 0,
        },
        _ => 0,
    }
}

/// spf13/cast's `ToFloat64`.
fn cast_float(v: &Value) -> f64 {
    match v {
        Value::Number(_) => match num(v) {
            Some(Num::Int(i)) => i as f64,
            Some(Num::Float(f)) => f,
            None => 0.0,
        },
        Value::String(text) => parse_go_float(text).unwrap_or(0.0),
        Value::Bool(b) => f64::from(u8::from(*b)),
        _ => 0.0,
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms templates meet.
fn parse_go_float(text: &str) -> Option<f64> {
    let t = text;
    match t.to_ascii_lowercase().trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            return Some(if t.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    // no base prefixes (a hex float needs a p exponent, rare enough to leave) and, without a
    // prefix, no underscores
    if t.chars()
        .any(|c| (c.is_ascii_alphabetic() && c != 'e' && c != 'E') || c == '_')
    {
        return None;
    }
    t.parse().ok()
}

fn to_int(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "int", 1)?;
    Ok(int(cast_int(&args[0])))
}

fn to_int64(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "int64", 1)?;
    Ok(int64(cast_int(&args[0])))
}

fn to_float(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "float64", 1)?;
    Ok(float(cast_float(&args[0])))
}

/// The most items `until`, `untilStep` and `seq` may produce.
const MAX_ITEMS: i64 = 10_000;

fn step_range(start: i64, stop: i64, step: i64) -> Result<Vec<i64>, FuncError> {
    let count = if stop < start {
        if step >= 0 {
            return Ok(Vec::new());
        }
        (i128::from(start) - i128::from(stop) - 1) / -i128::from(step) + 1
    } else {
        if step <= 0 {
            return Ok(Vec::new());
        }
        if stop == start {
            0
        } else {
            (i128::from(stop) - i128::from(start) - 1) / i128::from(step) + 1
        }
    };
    if count > i128::from(MAX_ITEMS) {
        return Err(FuncError::TooMuchOutput {
            function: "untilStep".into(),
            count: usize::try_from(count).unwrap_or(usize::MAX),
            what: "elements".into(),
            limit: MAX_ITEMS as usize,
        });
    }
    let mut out = Vec::new();
    let mut i = start;
    for _ in 0..count {
        out.push(i);
        i = i.wrapping_add(step);
    }
    Ok(out)
}

/// An `[]int`, as sprig's `until` and `untilStep` return.
fn ints(items: Vec<i64>) -> Value {
    Value::Array(List::ints(items.into_iter().map(int).collect()))
}

fn until(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "until", 1)?;
    let count = int_param(&args[0])?;
    Ok(ints(step_range(0, count, if count < 0 { -1 } else { 1 })?))
}

fn until_step(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "untilStep", 3)?;
    let (a, b, c) = (
        int_param(&args[0])?,
        int_param(&args[1])?,
        int_param(&args[2])?,
    );
    Ok(ints(step_range(a, b, c)?))
}

fn seq(args: &[Value]) -> Result<Value, FuncError> {
    let p: Vec<i64> = args.iter().map(int_param).collect::<Result<_, _>>()?;
    let items = match p.as_slice() {
        [end] => {
            let inc = if *end < 1 { -1 } else { 1 };
            step_range(1, end.wrapping_add(inc), inc)?
        }
        [start, end] => {
            let step = if end < start { -1 } else { 1 };
            step_range(*start, end.wrapping_add(step), step)?
        }
        [start, step, end] => {
            let mut inc = 1;
            if end < start {
                inc = -1;
                if *step > 0 {
                    return Ok(s(""));
                }
            }
            step_range(*start, end.wrapping_add(inc), *step)?
        }
        _ => return Ok(s("")),
    };
    let text: Vec<String> = items.iter().map(i64::to_string).collect();
    Ok(s(text.join(" ")))
}

fn add(args: &[Value]) -> Result<Value, FuncError> {
    Ok(int64(
        args.iter().fold(0i64, |a, b| a.wrapping_add(cast_int(b))),
    ))
}

fn add1(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "add1", 1)?;
    Ok(int64(cast_int(&args[0]).wrapping_add(1)))
}

fn sub(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "sub", 2)?;
    Ok(int64(cast_int(&args[0]).wrapping_sub(cast_int(&args[1]))))
}

fn mul(args: &[Value]) -> Result<Value, FuncError> {
    let first = arg(args, 0, "mul", 1)?;
    Ok(int64(
        args[1..]
            .iter()
            .fold(cast_int(first), |a, b| a.wrapping_mul(cast_int(b))),
    ))
}

fn div(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "div", 2)?;
    let (a, b) = (cast_int(&args[0]), cast_int(&args[1]));
    if b == 0 {
        return Err(generic("runtime error: integer divide by zero"));
    }
    Ok(int64(a.wrapping_div(b)))
}

fn modulo(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "mod", 2)?;
    let (a, b) = (cast_int(&args[0]), cast_int(&args[1]));
    if b == 0 {
        return Err(generic("runtime error: integer divide by zero"));
    }
    Ok(int64(a.wrapping_rem(b)))
}

fn max(args: &[Value]) -> Result<Value, FuncError> {
    let first = arg(args, 0, "max", 1)?;
    Ok(int64(
        args[1..]
            .iter()
            .fold(cast_int(first), |a, b| a.max(cast_int(b))),
    ))
}

fn min(args: &[Value]) -> Result<Value, FuncError> {
    let first = arg(args, 0, "min", 1)?;
    Ok(int64(
        args[1..]
            .iter()
            .fold(cast_int(first), |a, b| a.min(cast_int(b))),
    ))
}

/// A decimal number as shopspring/decimal holds it: `mantissa × 10^-scale`.
#[derive(Debug, Clone, Copy)]
struct Decimal {
    mantissa: i128,
    scale: u32,
}

impl Decimal {
    /// The shortest decimal that reads back as `f` (shopspring's `NewFromFloat`).
    fn from_f64(f: f64) -> Option<Self> {
        if !f.is_finite() {
            return None;
        }
        let text = format!("{f:e}");
        let (mantissa, exp) = text.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let negative = mantissa.starts_with('-');
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let frac_digits = mantissa.split_once('.').map_or(0, |(_, f)| f.len()) as i32;
        let mut m: i128 = digits.parse().ok()?;
        if negative {
            m = -m;
        }
        let scale = frac_digits - exp;
        if scale >= 0 {
            Some(Self {
                mantissa: m,
                scale: scale as u32,
            })
        } else {
            Some(Self {
                mantissa: m.checked_mul(10i128.checked_pow((-scale) as u32)?)?,
                scale: 0,
            })
        }
    }

    fn rescale(self, scale: u32) -> Option<Self> {
        Some(Self {
            mantissa: self
                .mantissa
                .checked_mul(10i128.checked_pow(scale.checked_sub(self.scale)?)?)?,
            scale,
        })
    }

    fn add(self, other: Self) -> Option<Self> {
        let scale = self.scale.max(other.scale);
        let (a, b) = (self.rescale(scale)?, other.rescale(scale)?);
        Some(Self {
            mantissa: a.mantissa.checked_add(b.mantissa)?,
            scale,
        })
    }

    fn neg(self) -> Self {
        Self {
            mantissa: -self.mantissa,
            scale: self.scale,
        }
    }

    fn mul(self, other: Self) -> Option<Self> {
        Some(Self {
            mantissa: self.mantissa.checked_mul(other.mantissa)?,
            scale: self.scale.checked_add(other.scale)?,
        })
    }

    /// Division to 16 decimal places, rounded half away from zero (shopspring's `Div`).
    fn div(self, other: Self) -> Option<Self> {
        const PRECISION: u32 = 16;
        // self / other = (a × 10^-sa) / (b × 10^-sb); scale the numerator so the quotient has
        // PRECISION + 1 places, then round the last one away
        let shift = (PRECISION + 1 + other.scale).checked_sub(self.scale);
        let (num, den) = match shift {
            Some(s) => (
                self.mantissa.checked_mul(10i128.checked_pow(s)?)?,
                other.mantissa,
            ),
            None => (
                self.mantissa,
                other
                    .mantissa
                    .checked_mul(10i128.checked_pow(self.scale - PRECISION - 1 - other.scale)?)?,
            ),
        };
        let q = num.checked_div(den)?;
        let rounded = if q.rem_euclid(10) >= 5 && q >= 0 || q < 0 && (-q) % 10 >= 5 {
            q / 10 + q.signum()
        } else {
            q / 10
        };
        Some(Self {
            mantissa: rounded,
            scale: PRECISION,
        })
    }

    fn to_f64(self) -> f64 {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        format!("{sign}{digits}e-{}", self.scale)
            .parse()
            .unwrap_or(0.0)
    }
}

/// sprig's `execDecimalOp`: the floats as decimals, combined left to right, back to a float.
fn decimal_op(
    first: &Value,
    rest: &[Value],
    op: fn(Decimal, Decimal) -> Option<Decimal>,
    float_op: fn(f64, f64) -> f64,
    function: &str,
) -> Result<Value, FuncError> {
    let mut acc = cast_float(first);
    let mut dec = Decimal::from_f64(acc);
    for v in rest {
        let x = cast_float(v);
        if function == "divf" && x == 0.0 {
            return Err(generic("decimal division by 0"));
        }
        dec = dec.zip(Decimal::from_f64(x)).and_then(|(a, b)| op(a, b));
        acc = float_op(acc, x);
    }
    Ok(float(dec.map_or(acc, Decimal::to_f64)))
}

fn add1f(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "add1f", 1)?;
    decimal_op(&args[0], &[int(1)], Decimal::add, |a, b| a + b, "add1f")
}

fn addf(args: &[Value]) -> Result<Value, FuncError> {
    decimal_op(&float(0.0), args, Decimal::add, |a, b| a + b, "addf")
}

fn subf(args: &[Value]) -> Result<Value, FuncError> {
    let first = arg(args, 0, "subf", 1)?;
    decimal_op(
        first,
        &args[1..],
        |a, b| a.add(b.neg()),
        |a, b| a - b,
        "subf",
    )
}

fn mulf(args: &[Value]) -> Result<Value, FuncError> {
    let first = arg(args, 0, "mulf", 1)?;
    decimal_op(first, &args[1..], Decimal::mul, |a, b| a * b, "mulf")
}

fn divf(args: &[Value]) -> Result<Value, FuncError> {
    let first = arg(args, 0, "divf", 1)?;
    decimal_op(first, &args[1..], Decimal::div, |a, b| a / b, "divf")
}

/// Go's `math.Max`/`math.Min` (NaN wins, then the larger or smaller).
fn float_fold(args: &[Value], function: &str, pick_max: bool) -> Result<Value, FuncError> {
    let first = arg(args, 0, function, 1)?;
    Ok(float(args[1..].iter().fold(cast_float(first), |a, b| {
        let b = cast_float(b);
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else if pick_max {
            a.max(b)
        } else {
            a.min(b)
        }
    })))
}

fn maxf(args: &[Value]) -> Result<Value, FuncError> {
    float_fold(args, "maxf", true)
}

fn minf(args: &[Value]) -> Result<Value, FuncError> {
    float_fold(args, "minf", false)
}

/// The kinds Go's comparison functions tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    String,
    Other,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Nil | Value::NoValue => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::String(_) => Kind::String,
        Value::Number(_) => match num(v) {
            Some(Num::Float(_)) => Kind::Float,
            _ => Kind::Int,
        },
        // uint64 compares with the ints
        Value::Typed(t) if super::go::is_unsigned(t) => Kind::Int,
        _ => Kind::Other,
    }
}

fn bad_comparison() -> FuncError {
    generic("incompatible types for comparison")
}

fn eq_one(a: &Value, b: &Value) -> Result<bool, FuncError> {
    let (ka, kb) = (basic_kind(a), basic_kind(b));
    if ka != kb {
        if ka != Kind::Invalid && kb != Kind::Invalid {
            return Err(bad_comparison());
        }
        return Ok(false);
    }
    match ka {
        Kind::Invalid => Ok(true),
        Kind::Other => Err(generic(format!(
            "non-comparable type {}: {}",
            go_v(b),
            type_name(b)
        ))),
        // int and int64 are one kind to Go's comparisons
        Kind::Int | Kind::Float => Ok(num(a) == num(b)),
        _ => Ok(deep_equal(a, b)),
    }
}

fn eq(args: &[Value]) -> Result<Value, FuncError> {
    let first = args
        .first()
        .ok_or_else(|| generic("wrong number of args for eq: want at least 1 got 0"))?;
    if args.len() < 2 {
        return Err(generic("missing argument for comparison"));
    }
    for other in &args[1..] {
        if eq_one(first, other)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn ne(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "ne", 2)?;
    Ok(Value::Bool(!eq_one(&args[0], &args[1])?))
}

fn lt_one(a: &Value, b: &Value) -> Result<bool, FuncError> {
    let (ka, kb) = (basic_kind(a), basic_kind(b));
    if matches!(ka, Kind::Invalid | Kind::Other) || matches!(kb, Kind::Invalid | Kind::Other) {
        return Err(generic("invalid type for comparison"));
    }
    if ka != kb {
        return Err(bad_comparison());
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x < y),
        _ => match (num(a), num(b)) {
            (Some(Num::Int(x)), Some(Num::Int(y))) => Ok(x < y),
            (Some(Num::Float(x)), Some(Num::Float(y))) => Ok(x < y),
            _ => Err(generic("invalid type for comparison")),
        },
    }
}

fn lt(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "lt", 2)?;
    Ok(Value::Bool(lt_one(&args[0], &args[1])?))
}

fn le(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "le", 2)?;
    let less = lt_one(&args[0], &args[1])?;
    Ok(Value::Bool(less || eq_one(&args[0], &args[1])?))
}

fn gt(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "gt", 2)?;
    let less = lt_one(&args[0], &args[1])?;
    Ok(Value::Bool(!(less || eq_one(&args[0], &args[1])?)))
}

fn ge(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "ge", 2)?;
    Ok(Value::Bool(!lt_one(&args[0], &args[1])?))
}

/// Go's `index`: lists by integer (out of range fails), maps by string key (a missing key is
/// the element type's zero value: "" for the string map the controllers pass as the dot, nil
/// otherwise), strings by byte.
fn index(args: &[Value]) -> Result<Value, FuncError> {
    let mut item = arg(args, 0, "index", 1)?.clone();
    for key in &args[1..] {
        let strings = matches!(item, Value::Object(_));
        item = match item {
            Value::Nil | Value::NoValue => return Err(generic("index of untyped nil")),
            Value::Array(items) => {
                let i = match num(key) {
                    Some(Num::Int(i)) => i,
                    _ => {
                        return Err(generic(format!(
                            "cannot index slice/array with type {}",
                            type_name(key)
                        )));
                    }
                };
                usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i).cloned())
                    .ok_or_else(|| generic(format!("index out of range: {i}")))?
            }
            Value::String(text) => {
                let i = match num(key) {
                    Some(Num::Int(i)) => i,
                    _ => {
                        return Err(generic(format!(
                            "cannot index slice/array with type {}",
                            type_name(key)
                        )));
                    }
                };
                usize::try_from(i)
                    .ok()
                    .and_then(|i| text.as_bytes().get(i).copied())
                    // a byte of the string: a Go uint8
                    .map(|b| Typed::value("uint8", "uint8", b.to_string()))
                    .ok_or_else(|| generic(format!("index out of range: {i}")))?
            }
            Value::Map(m) | Value::Object(m) => {
                let Value::String(k) = key else {
                    return Err(generic(format!(
                        "value has type {}; should be string",
                        type_name(key)
                    )));
                };
                match m.get(k) {
                    Some(v) => v.clone(),
                    // the zero value of the map's element type
                    None if strings => s(""),
                    None => Value::NoValue,
                }
            }
            other => {
                return Err(generic(format!(
                    "can't index item of type {}",
                    type_name(&other)
                )));
            }
        };
    }
    Ok(item)
}

/// Go's `%#v` (Go syntax) of a template value; `inner` for a value inside a list or map, where
/// nil is typed.
fn go_syntax(v: &Value, inner: bool) -> String {
    match v {
        Value::Nil | Value::NoValue if inner => "interface {}(nil)".into(),
        Value::String(text) => go_quote(text),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(|i| go_syntax(i, true)).collect();
            format!("{}{{{}}}", items.type_name(), parts.join(", "))
        }
        Value::Map(m) | Value::Object(m) => {
            let m = m.read();
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", go_quote(k), go_syntax(&m[k], true)))
                .collect();
            let ty = if matches!(v, Value::Object(_)) {
                "map[string]string"
            } else {
                "map[string]interface {}"
            };
            format!("{ty}{{{}}}", parts.join(", "))
        }
        // Go writes unsigned integers in hex
        Value::Typed(t) if super::go::is_unsigned(t) => {
            format!("0x{:x}", t.text.parse::<u64>().unwrap_or_default())
        }
        other => go_v(other),
    }
}

/// Go's `strconv.FormatFloat(f, 'x', -1, 64)`: `0x1.cp+01`.
fn hex_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0x0p+00");
    }
    let bits = f.abs().to_bits();
    let (mut exp, mut mantissa) = ((bits >> 52) as i64, bits & ((1 << 52) - 1));
    if exp == 0 {
        // subnormal: normalise so the leading 1 is implicit
        let shift = mantissa.leading_zeros() as i64 - 11;
        mantissa = (mantissa << shift) & ((1 << 52) - 1);
        exp = 1 - shift;
    }
    let exp = exp - 1023;
    let digits = format!("{mantissa:013x}");
    let digits = digits.trim_end_matches('0');
    let point = if digits.is_empty() {
        String::new()
    } else {
        format!(".{digits}")
    };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{sign}0x1{point}p{esign}{:02}", exp.abs())
}

/// `printf`: the engine's, which follows Go's `fmt`, with the verbs it gets wrong done here
/// first: `%#v` (Go syntax), `%T` (Go's type names), `%x`/`%X` of a float (a hex float) and a
/// float verb given an integer (`%!e(int=0)`).
fn printf(args: &[Value]) -> Result<Value, FuncError> {
    let Some(Value::String(format)) = args.first() else {
        return super::gotmpl::printf(args);
    };
    if format.contains(['[', '*']) {
        return super::gotmpl::printf(args);
    }
    let mut new_format = String::with_capacity(format.len());
    let mut new_args = vec![Value::Nil];
    let mut next = 1;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            new_format.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "#0+- ".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek() {
            if d.is_ascii_digit() || d == '.' {
                width.push(d);
                chars.next();
            } else {
                break;
            }
        }
        let Some(verb) = chars.next() else {
            new_format.push('%');
            new_format.push_str(&flags);
            new_format.push_str(&width);
            break;
        };
        let spec = format!("%{flags}{width}{verb}");
        if verb == '%' || next >= args.len() {
            new_format.push_str(&spec);
            continue;
        }
        let arg = &args[next];
        next += 1;
        if verb == 'v' && flags.contains('#') {
            let plain_flags: String = flags.chars().filter(|f| *f != '#').collect();
            let width_only = width.split('.').next().unwrap_or_default();
            new_format.push_str(&format!("%{plain_flags}{width_only}s"));
            new_args.push(s(go_syntax(arg, false)));
        } else if matches!(verb, 'x' | 'X')
            && !width.contains('.')
            && matches!(num(arg), Some(Num::Float(_)))
        {
            let hex = match num(arg) {
                Some(Num::Float(f)) => hex_float(f),
                _ => String::new(),
            };
            new_format.push_str(&format!("%{flags}{width}s"));
            new_args.push(s(if verb == 'X' { hex.to_uppercase() } else { hex }));
        } else if verb == 'T' {
            new_format.push_str(&format!("%{flags}{width}s"));
            new_args.push(s(type_name(arg)));
        } else if "eEfFgG".contains(verb) && matches!(num(arg), Some(Num::Int(_))) {
            // Go prints the integer with the verb's flags, width and precision as %d
            let inner = match super::gotmpl::printf(&[s(format!("%{flags}{width}d")), arg.clone()])?
            {
                Value::String(text) => text,
                other => go_v(&other),
            };
            new_format
                .push_str(&format!("%!{verb}({}={inner})", type_name(arg)).replace('%', "%%"));
        } else {
            new_format.push_str(&spec);
            new_args.push(arg.clone());
        }
    }
    new_args.extend(args[next..].iter().cloned());
    new_args[0] = s(new_format);
    super::gotmpl::printf(&new_args)
}

/// The text Go's escaping builtins escape: one string as it is, otherwise `fmt.Sprint` of the
/// arguments (spaces only between two operands that are not strings; a missing value prints
/// `<no value>`).
fn sprint_args(args: &[Value]) -> String {
    if let [Value::String(one)] = args {
        return one.clone();
    }
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = matches!(a, Value::String(_));
        if i > 0 && !is_str && !matches!(args[i - 1], Value::String(_)) {
            out.push(' ');
        }
        match a {
            Value::NoValue => out.push_str("<no value>"),
            other => out.push_str(&strval(other)),
        }
    }
    out
}

/// Go's `template.HTMLEscapeString`.
fn html(args: &[Value]) -> Result<Value, FuncError> {
    let text = sprint_args(args);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    Ok(s(out))
}

/// Go's `template.JSEscapeString`.
fn js(args: &[Value]) -> Result<Value, FuncError> {
    let text = sprint_args(args);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if !c.is_ascii() && !super::go::printable(c) => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    Ok(s(out))
}

/// Go's `url.QueryEscape`.
fn urlquery(args: &[Value]) -> Result<Value, FuncError> {
    let text = sprint_args(args);
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    Ok(s(out))
}

fn default(args: &[Value]) -> Result<Value, FuncError> {
    let d = arg(args, 0, "default", 1)?;
    match args.get(1) {
        Some(given) if !empty(given) && args.len() >= 2 => Ok(iface(given)),
        _ => Ok(iface(d)),
    }
}

fn is_empty(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "empty", 1)?;
    Ok(Value::Bool(empty(&args[0])))
}

fn coalesce(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args
        .iter()
        .find(|v| !empty(v))
        .map(iface)
        .unwrap_or(Value::Nil))
}

fn all(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(args.iter().all(|v| !empty(v))))
}

fn any(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(args.iter().any(|v| !empty(v))))
}

fn compact(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "compact", 1)?;
    let items = list_param(&args[0], "compact")?;
    Ok(Value::Array(
        items.iter().filter(|v| !empty(v)).cloned().collect(),
    ))
}

fn ternary(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "ternary", 3)?;
    let cond = bool_param(&args[2])?;
    Ok(iface(if cond { &args[0] } else { &args[1] }))
}

fn json_with(
    args: &[Value],
    f: &str,
    html: bool,
    indent: Option<&str>,
) -> Result<Value, FuncError> {
    exactly(args, f, 1)?;
    let limit = super::gotmpl::limits::active()
        .function_output
        .unwrap_or(usize::MAX);
    match to_json_within(&args[0], html, indent, limit) {
        Ok(text) => Ok(s(text)),
        Err(JsonFailure::Unsupported) => Ok(s("")),
        Err(JsonFailure::TooLarge(count)) => Err(FuncError::TooMuchOutput {
            function: f.into(),
            count,
            what: "bytes".into(),
            limit,
        }),
    }
}

fn to_json_fn(args: &[Value]) -> Result<Value, FuncError> {
    json_with(args, "toJson", true, None)
}

fn to_raw_json(args: &[Value]) -> Result<Value, FuncError> {
    json_with(args, "toRawJson", false, None)
}

fn to_pretty_json(args: &[Value]) -> Result<Value, FuncError> {
    json_with(args, "toPrettyJson", true, Some("  "))
}

fn from_json_fn(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "fromJson")?;
    match from_json(&text) {
        Ok(v) => Ok(v),
        // the engine cannot hold it (Go would): fail rather than pretend it was not JSON
        Err(e) if e == super::json_decode::TOO_DEEP => Err(generic(e)),
        Err(_) => Ok(Value::NoValue),
    }
}

fn must_from_json(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "mustFromJson")?;
    from_json(&text).map_err(generic)
}

/// `list a b c`: the arguments as a list (a missing value is nil in it).
fn list(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Array(args.iter().map(iface).collect()))
}

fn dict(args: &[Value]) -> Result<Value, FuncError> {
    let mut out = HashMap::new();
    for pair in args.chunks(2) {
        let key = strval(&pair[0]);
        let value = pair.get(1).map(iface).unwrap_or_else(|| s(""));
        out.insert(key, value);
    }
    Ok(map_value(out))
}

fn get(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "get", 2)?;
    let m = map_param(&args[0])?;
    let key = str_param(&args[1])?;
    Ok(m.get(&key).cloned().unwrap_or_else(|| s("")))
}

/// `set` changes the map in place (every holder sees it, as in Go) and returns it.
fn set(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "set", 3)?;
    let target = map_target(&args[0])?;
    let (key, value) = (str_param(&args[1])?, iface(&args[2]));
    let m = target.unwrap_or_default();
    m.write().insert(key, value);
    Ok(Value::Map(m))
}

/// `unset` removes a key in place and returns the map.
fn unset(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "unset", 2)?;
    let target = map_target(&args[0])?;
    let key = str_param(&args[1])?;
    let m = target.unwrap_or_default();
    m.write().remove(&key);
    Ok(Value::Map(m))
}

fn has_key(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "hasKey", 2)?;
    let m = map_param(&args[0])?;
    Ok(Value::Bool(m.contains_key(&str_param(&args[1])?)))
}

fn pick_keys(
    args: &[Value],
    function: &str,
) -> Result<(HashMap<String, Value>, Vec<String>), FuncError> {
    let m = map_param(arg(args, 0, function, 1)?)?;
    let keys = args[1..].iter().map(str_param).collect::<Result<_, _>>()?;
    Ok((m, keys))
}

fn pick(args: &[Value]) -> Result<Value, FuncError> {
    let (m, keys) = pick_keys(args, "pick")?;
    Ok(map_value(
        m.into_iter().filter(|(k, _)| keys.contains(k)).collect(),
    ))
}

fn omit(args: &[Value]) -> Result<Value, FuncError> {
    let (m, keys) = pick_keys(args, "omit")?;
    Ok(map_value(
        m.into_iter().filter(|(k, _)| !keys.contains(k)).collect(),
    ))
}

fn pluck(args: &[Value]) -> Result<Value, FuncError> {
    let name = str_param(arg(args, 0, "pluck", 1)?)?;
    let mut out = Vec::new();
    for d in &args[1..] {
        if let Some(v) = map_param(d)?.get(&name) {
            out.push(v.clone());
        }
    }
    Ok(Value::Array(out.into()))
}

fn keys(args: &[Value]) -> Result<Value, FuncError> {
    let mut out = Vec::new();
    for d in args {
        let mut ks: Vec<String> = map_param(d)?.into_keys().collect();
        ks.sort();
        out.extend(ks.into_iter().map(s));
    }
    Ok(Value::Array(List::strings(out)))
}

/// mergo's deep merge: a key missing or empty in `dst` takes a non-empty `src` value (any
/// non-empty `src` value when `overwrite`); maps on both sides merge recursively.
fn merge_into(dst: &GoMap, src: &GoMap, overwrite: bool) {
    if dst.same(src) {
        return;
    }
    // read src before writing dst: a nested map may be on both sides
    let src = src.snapshot();
    for (k, sv) in &src {
        if is_nil(sv) {
            if overwrite {
                dst.write().insert(k.clone(), Value::Nil);
            }
            continue;
        }
        let current = dst.get(k);
        let replace = match (current.as_ref(), sv) {
            (Some(Value::Map(dm) | Value::Object(dm)), Value::Map(sm) | Value::Object(sm)) => {
                merge_into(dm, sm, overwrite);
                dm.is_empty()
            }
            // a map or list from src never replaces a non-empty value
            (Some(dv), Value::Map(_) | Value::Object(_) | Value::Array(_)) => {
                empty(dv) || (overwrite && matches!(sv, Value::Array(_)))
            }
            (Some(dv), _) => overwrite || empty(dv),
            (None, _) => true,
        };
        if replace {
            dst.write().insert(k.clone(), sv.clone());
        }
    }
}

/// `merge`/`mergeOverwrite`: merges into the first map in place and returns it.
fn merge_with(args: &[Value], overwrite: bool) -> Result<Value, FuncError> {
    let dst = map_target(arg(args, 0, "merge", 1)?)?.unwrap_or_default();
    for src in &args[1..] {
        if let Some(src) = map_target(src)? {
            merge_into(&dst, &src, overwrite);
        }
    }
    Ok(Value::Map(dst))
}

fn merge(args: &[Value]) -> Result<Value, FuncError> {
    merge_with(args, false)
}

fn merge_overwrite(args: &[Value]) -> Result<Value, FuncError> {
    merge_with(args, true)
}

/// `deepCopy v`: a copy that shares no map with `v`; nil fails, as copystructure does.
fn deep_copy(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "deepCopy", 1)?;
    if is_nil(&args[0]) {
        return Err(generic("reflect: call of reflect.Value.Type on zero Value"));
    }
    Ok(args[0].deep_copy())
}

fn dig(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() < 3 {
        return Err(generic(format!(
            "dig needs at least three arguments, got {}",
            args.len()
        )));
    }
    let dict = &args[args.len() - 1];
    let default = &args[args.len() - 2];
    // sprig takes `...interface{}` and asserts each type, so a wrong one panics in the call
    let asserted = |v: &Value, to: &str| {
        let from = match v {
            Value::Nil | Value::NoValue => "nil",
            other => type_name(other),
        };
        generic(format!(
            "interface conversion: interface {{}} is {from}, not {to}"
        ))
    };
    let conversion = |v: &Value| asserted(v, "map[string]interface {}");
    let Value::Map(mut current) = dict.clone() else {
        return Err(conversion(dict));
    };
    let path: Vec<String> = args[..args.len() - 2]
        .iter()
        .map(|v| match v {
            Value::String(text) => Ok(text.clone()),
            other => Err(asserted(other, "string")),
        })
        .collect::<Result<_, _>>()?;
    for (i, key) in path.iter().enumerate() {
        let Some(step) = current.get(key) else {
            return Ok(iface(default));
        };
        if i + 1 == path.len() {
            return Ok(step);
        }
        match step {
            Value::Map(m) | Value::Object(m) => current = m,
            other => return Err(conversion(&other)),
        }
    }
    Ok(iface(default))
}

fn list_of<'a>(args: &'a [Value], f: &str, op: &str) -> Result<&'a [Value], FuncError> {
    exactly(args, f, 1)?;
    list_param(&args[0], op)
}

fn first(args: &[Value]) -> Result<Value, FuncError> {
    let items = list_of(args, "first", "find first")?;
    Ok(items.first().cloned().unwrap_or(Value::NoValue))
}

fn last(args: &[Value]) -> Result<Value, FuncError> {
    let items = list_of(args, "last", "find last")?;
    Ok(items.last().cloned().unwrap_or(Value::NoValue))
}

fn rest(args: &[Value]) -> Result<Value, FuncError> {
    let items = list_of(args, "rest", "find rest")?;
    if items.is_empty() {
        return Ok(Value::Array(List::nil(false)));
    }
    Ok(Value::Array(
        items.get(1..).unwrap_or_default().to_vec().into(),
    ))
}

fn initial(args: &[Value]) -> Result<Value, FuncError> {
    let items = list_of(args, "initial", "find initial")?;
    if items.is_empty() {
        return Ok(Value::Array(List::nil(false)));
    }
    Ok(Value::Array(
        items[..items.len().saturating_sub(1)].to_vec().into(),
    ))
}

fn reverse(args: &[Value]) -> Result<Value, FuncError> {
    let items = list_of(args, "reverse", "find reverse")?;
    Ok(Value::Array(items.iter().rev().cloned().collect()))
}

fn uniq(args: &[Value]) -> Result<Value, FuncError> {
    let items = list_of(args, "uniq", "find uniq")?;
    // reflect.DeepEqual holds exactly when type and printed form agree; hashing those keeps
    // this linear for long lists
    let mut seen = std::collections::HashSet::new();
    Ok(Value::Array(
        items
            .iter()
            .filter(|item| seen.insert((type_name(item), go_v(item))))
            .cloned()
            .collect(),
    ))
}

fn has(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "has", 2)?;
    let needle = &args[0];
    match &args[1] {
        v if is_nil(v) => Ok(Value::Bool(false)),
        Value::Array(items) => Ok(Value::Bool(items.iter().any(|i| deep_equal(i, needle)))),
        other => Err(generic(format!(
            "Cannot find has on type {}",
            type_name(other)
        ))),
    }
}

fn slice(args: &[Value]) -> Result<Value, FuncError> {
    let list = arg(args, 0, "slice", 1)?;
    let items = match list {
        Value::Array(_) | Value::Nil | Value::NoValue => list_param(list, "slice")?,
        other => {
            return Err(generic(format!(
                "list should be type of slice or array but {}",
                kind_name(other)
            )));
        }
    };
    if items.is_empty() {
        return Ok(Value::NoValue);
    }
    let idx: Vec<i64> = args[1..]
        .iter()
        .map(|v| Ok(cast_int(v)))
        .collect::<Result<_, FuncError>>()?;
    let len = items.len() as i64;
    let (from, to) = match idx.as_slice() {
        [] => (0, len),
        [a] => (*a, len),
        [a, b, ..] => (*a, *b),
    };
    if from < 0 || to < from || to > len {
        return Err(generic(format!(
            "reflect: slice index out of range [{from}:{to}]"
        )));
    }
    // reflect's Slice keeps the slice's type
    let elem = match list {
        Value::Array(l) => l.elem(),
        _ => Elem::Interface,
    };
    Ok(Value::Array(List::typed(
        items[from as usize..to as usize].to_vec(),
        elem,
    )))
}

fn type_of(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "typeOf", 1)?;
    Ok(s(type_name(&args[0])))
}

fn type_is(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "typeIs", 2)?;
    Ok(Value::Bool(str_param(&args[0])? == type_name(&args[1])))
}

fn type_is_like(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "typeIsLike", 2)?;
    let target = str_param(&args[0])?;
    let t = type_name(&args[1]);
    Ok(Value::Bool(target == t || format!("*{target}") == t))
}

fn kind_of(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "kindOf", 1)?;
    Ok(s(kind_name(&args[0])))
}

fn kind_is(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "kindIs", 2)?;
    Ok(Value::Bool(str_param(&args[0])? == kind_name(&args[1])))
}

fn deep_equal_fn(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "deepEqual", 2)?;
    Ok(Value::Bool(deep_equal(&args[0], &args[1])))
}

/// Go's `path.Clean`.
fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn base(args: &[Value]) -> Result<Value, FuncError> {
    let p = str1(args, "base")?;
    if p.is_empty() {
        return Ok(s("."));
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(s("/"));
    }
    Ok(s(trimmed.rsplit('/').next().unwrap_or(trimmed)))
}

fn dir(args: &[Value]) -> Result<Value, FuncError> {
    let p = str1(args, "dir")?;
    let cut = p.rfind('/').map_or(0, |i| i + 1);
    Ok(s(clean_path(&p[..cut])))
}

fn clean(args: &[Value]) -> Result<Value, FuncError> {
    Ok(s(clean_path(&str1(args, "clean")?)))
}

fn is_abs(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::Bool(str1(args, "isAbs")?.starts_with('/')))
}

fn b64enc(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "b64enc")?;
    // bytes that b64dec, hexdec or rsaDecrypt made are encoded as they are
    let bytes = super::eso::binary::bytes_of(&text);
    Ok(s(base64::engine::general_purpose::STANDARD.encode(bytes)))
}

fn b32enc(args: &[Value]) -> Result<Value, FuncError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let text = str1(args, "b32enc")?;
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let acc = buf.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
        let chars = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < chars {
                out.push(char::from(ALPHABET[((acc >> (35 - 5 * i)) & 31) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    Ok(s(out))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha1sum(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "sha1sum")?;
    Ok(s(hex(&openssl::sha::sha1(text.as_bytes()))))
}

fn sha256sum(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "sha256sum")?;
    Ok(s(hex(&openssl::sha::sha256(text.as_bytes()))))
}

fn sha512sum(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "sha512sum")?;
    Ok(s(hex(&openssl::sha::sha512(text.as_bytes()))))
}

fn ceil(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "ceil", 1)?;
    Ok(float(cast_float(&args[0]).ceil()))
}

fn floor(args: &[Value]) -> Result<Value, FuncError> {
    exactly(args, "floor", 1)?;
    Ok(float(cast_float(&args[0]).floor()))
}

/// sprig's `round a places [roundOn]`: rounds up from `roundOn` (0.5) at the last place.
fn round(args: &[Value]) -> Result<Value, FuncError> {
    if args.len() < 2 {
        return Err(wrong_count("round", 2, args.len()));
    }
    let round_on = match args.get(2) {
        Some(v) => match num(v) {
            Some(Num::Float(f)) => f,
            _ => {
                return Err(generic(format!(
                    "wrong type for value; expected float64; got {}",
                    type_name(v)
                )));
            }
        },
        None => 0.5,
    };
    let value = cast_float(&args[0]);
    let places = int_param(&args[1])? as f64;
    let pow = 10f64.powf(places);
    let digit = pow * value;
    let fraction = digit.fract();
    let rounded = if fraction >= round_on {
        digit.ceil()
    } else {
        digit.floor()
    };
    Ok(float(rounded / pow))
}

fn ext(args: &[Value]) -> Result<Value, FuncError> {
    let p = str1(args, "ext")?;
    for (i, c) in p.char_indices().rev() {
        if c == '/' {
            break;
        }
        if c == '.' {
            return Ok(s(&p[i..]));
        }
    }
    Ok(s(""))
}

/// Go's `base64.StdEncoding.DecodeString`, with its error text (the offset of the first bad
/// quantum) where Go fails.
pub(super) fn decode_b64(text: &str) -> Result<Vec<u8>, String> {
    let bytes: Vec<(usize, u8)> = text
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b != b'\n' && *b != b'\r')
        .collect();
    let bad = |at: usize| format!("illegal base64 data at input byte {at}");
    let mut quantum_start = 0;
    for (n, (pos, b)) in bytes.iter().enumerate() {
        if n % 4 == 0 {
            quantum_start = *pos;
        }
        let valid = b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/' || *b == b'=';
        if !valid {
            return Err(bad(*pos));
        }
    }
    if !bytes.len().is_multiple_of(4) {
        return Err(bad(if bytes.is_empty() { 0 } else { quantum_start }));
    }
    let clean: Vec<u8> = bytes.iter().map(|(_, b)| *b).collect();
    base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .map_err(|e| match e {
            base64::DecodeError::InvalidByte(at, _) => bad(bytes.get(at).map_or(at, |b| b.0)),
            _ => bad(quantum_start),
        })
}

fn b64dec(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "b64dec")?;
    Ok(s(match decode_b64(&text) {
        Ok(bytes) => super::eso::binary::text_of(bytes),
        Err(e) => e,
    }))
}

/// Go's `base32.StdEncoding.DecodeString` (padding required).
fn decode_b32(text: &str) -> Result<Vec<u8>, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bad = |at: usize| format!("illegal base32 data at input byte {at}");
    let bytes: Vec<(usize, u8)> = text
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b != b'\n' && *b != b'\r')
        .collect();
    if let Some((pos, _)) = bytes
        .iter()
        .find(|(_, b)| *b != b'=' && !ALPHABET.contains(b))
    {
        return Err(bad(*pos));
    }
    if !bytes.len().is_multiple_of(8) {
        return Err(bad(bytes.len() / 8 * 8));
    }
    let mut out = Vec::new();
    for chunk in bytes.chunks(8) {
        let pads = chunk.iter().rev().take_while(|(_, b)| *b == b'=').count();
        let data: Vec<u8> = chunk[..8 - pads]
            .iter()
            .map(|(_, b)| ALPHABET.iter().position(|a| a == b).unwrap_or(0) as u8)
            .collect();
        let out_len = match 8 - pads {
            8 => 5,
            7 => 4,
            5 => 3,
            4 => 2,
            2 => 1,
            _ => return Err(bad(chunk[0].0)),
        };
        let mut acc: u64 = 0;
        for (i, d) in data.iter().enumerate() {
            acc |= u64::from(*d) << (35 - 5 * i);
        }
        out.extend((0..out_len).map(|i| (acc >> (32 - 8 * i)) as u8));
    }
    Ok(out)
}

fn b32dec(args: &[Value]) -> Result<Value, FuncError> {
    let text = str1(args, "b32dec")?;
    Ok(s(match decode_b32(&text) {
        Ok(bytes) => super::eso::binary::text_of(bytes),
        Err(e) => e,
    }))
}

/// How a sprig function compiles its pattern: `regexp.MustCompile`, whose panic names the
/// pattern (`regexp: Compile(`[`): error parsing regexp: ...`), or `regexp.Compile`, whose error
/// the `must*` functions return as it is.
#[derive(Clone, Copy)]
enum Compile {
    Panics,
    Returns,
}

/// Compiles a Go pattern (see `go_regexp`), failing with Go's message.
fn compile(pattern: &str, how: Compile) -> Result<regex::Regex, FuncError> {
    let translated = go_regexp::translate(pattern).map_err(|e| match how {
        Compile::Panics => generic(format!("regexp: Compile({}): {e}", regexp_quote(pattern))),
        Compile::Returns => generic(e),
    })?;
    // what Go accepts and the regex crate refuses (nesting or size limits)
    regex::Regex::new(&translated).map_err(|e| {
        generic(format!(
            "regexp: Compile({}): {}",
            regexp_quote(pattern),
            e.to_string()
                .lines()
                .last()
                .unwrap_or("invalid pattern")
                .trim()
        ))
    })
}

/// How Go's `regexp` package quotes a pattern: in backquotes when `strconv.CanBackquote`.
fn regexp_quote(pattern: &str) -> String {
    let backquotable = pattern
        .chars()
        .all(|c| c != '`' && c != '\u{FEFF}' && (c == '\t' || !c.is_control()));
    if backquotable {
        format!("`{pattern}`")
    } else {
        go_quote(pattern)
    }
}

fn regex_match(args: &[Value]) -> Result<Value, FuncError> {
    let (re, text) = str2(args, "regexMatch")?;
    Ok(Value::Bool(
        go_regexp::translate(&re)
            .ok()
            .and_then(|p| regex::Regex::new(&p).ok())
            .is_some_and(|r| r.is_match(&text)),
    ))
}

fn must_regex_match(args: &[Value]) -> Result<Value, FuncError> {
    let (re, text) = str2(args, "mustRegexMatch")?;
    Ok(Value::Bool(compile(&re, Compile::Returns)?.is_match(&text)))
}

fn regex_find_all(args: &[Value]) -> Result<Value, FuncError> {
    regex_find_all_in(args, Compile::Panics)
}

fn must_regex_find_all(args: &[Value]) -> Result<Value, FuncError> {
    regex_find_all_in(args, Compile::Returns)
}

fn regex_find_all_in(args: &[Value], how: Compile) -> Result<Value, FuncError> {
    exactly(args, "regexFindAll", 3)?;
    let re = compile(&str_param(&args[0])?, how)?;
    let text = str_param(&args[1])?;
    let n = int_param(&args[2])?;
    let limit = if n < 0 {
        usize::MAX
    } else {
        usize::try_from(n).unwrap_or(0)
    };
    let found: Vec<Value> = re
        .find_iter(&text)
        .take(limit)
        .map(|m| s(m.as_str()))
        .collect();
    // Go's FindAllString returns nil when nothing matches
    Ok(Value::Array(if found.is_empty() {
        List::nil(true)
    } else {
        List::strings(found)
    }))
}

fn regex_find(args: &[Value]) -> Result<Value, FuncError> {
    regex_find_in(args, Compile::Panics)
}

fn must_regex_find(args: &[Value]) -> Result<Value, FuncError> {
    regex_find_in(args, Compile::Returns)
}

fn regex_find_in(args: &[Value], how: Compile) -> Result<Value, FuncError> {
    let (re, text) = str2(args, "regexFind")?;
    Ok(s(compile(&re, how)?
        .find(&text)
        .map(|m| m.as_str())
        .unwrap_or_default()))
}

fn regex_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    regex_replace_all_in(args, Compile::Panics)
}

fn must_regex_replace_all(args: &[Value]) -> Result<Value, FuncError> {
    regex_replace_all_in(args, Compile::Returns)
}

fn regex_replace_all_in(args: &[Value], how: Compile) -> Result<Value, FuncError> {
    exactly(args, "regexReplaceAll", 3)?;
    let re = compile(&str_param(&args[0])?, how)?;
    let (text, repl) = (str_param(&args[1])?, str_param(&args[2])?);
    // expanded match by match, so a replacement that multiplies the text stops at the limit
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(&text) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&text[last..m.start()]);
        caps.expand(&repl, &mut out);
        last = m.end();
        check_size("regexReplaceAll", out.len())?;
    }
    out.push_str(&text[last..]);
    Ok(s(out))
}

fn regex_replace_all_literal(args: &[Value]) -> Result<Value, FuncError> {
    regex_replace_all_literal_in(args, Compile::Panics)
}

fn must_regex_replace_all_literal(args: &[Value]) -> Result<Value, FuncError> {
    regex_replace_all_literal_in(args, Compile::Returns)
}

fn regex_replace_all_literal_in(args: &[Value], how: Compile) -> Result<Value, FuncError> {
    exactly(args, "regexReplaceAllLiteral", 3)?;
    let re = compile(&str_param(&args[0])?, how)?;
    let (text, repl) = (str_param(&args[1])?, str_param(&args[2])?);
    let matches = re.find_iter(&text).count();
    check_size(
        "regexReplaceAllLiteral",
        text.len()
            .saturating_add(matches.saturating_mul(repl.len())),
    )?;
    Ok(s(re.replace_all(&text, regex::NoExpand(&repl))))
}

/// Go's `Regexp.Split`.
fn regex_split(args: &[Value]) -> Result<Value, FuncError> {
    regex_split_in(args, Compile::Panics)
}

fn must_regex_split(args: &[Value]) -> Result<Value, FuncError> {
    regex_split_in(args, Compile::Returns)
}

fn regex_split_in(args: &[Value], how: Compile) -> Result<Value, FuncError> {
    exactly(args, "regexSplit", 3)?;
    let pattern = str_param(&args[0])?;
    let re = compile(&pattern, how)?;
    let text = str_param(&args[1])?;
    let n = int_param(&args[2])?;
    if n == 0 {
        return Ok(Value::Array(List::nil(true)));
    }
    if !pattern.is_empty() && text.is_empty() {
        return Ok(Value::Array(List::strings(vec![s("")])));
    }
    let limit = if n < 0 {
        usize::MAX
    } else {
        usize::try_from(n).unwrap_or(0)
    };
    let mut parts = Vec::new();
    let (mut beg, mut end) = (0, 0);
    for m in re.find_iter(&text) {
        if parts.len() + 1 == limit {
            break;
        }
        end = m.start();
        if m.end() != 0 {
            parts.push(s(&text[beg..end]));
        }
        beg = m.end();
    }
    if end != text.len() {
        parts.push(s(&text[beg..]));
    }
    Ok(Value::Array(List::strings(parts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(v: Result<Value, FuncError>) -> String {
        strval(&v.unwrap())
    }

    #[test]
    fn strings_as_sprig() {
        assert_eq!(
            out(title(&[s("hello wORLD foo_bar-baz")])),
            "Hello WORLD Foo_bar-Baz"
        );
        assert_eq!(out(untitle(&[s("Hello World ABC")])), "hello world aBC");
        assert_eq!(out(camelcase(&[s("__x_y")])), "__XY");
        assert_eq!(out(camelcase(&[s("http_server")])), "HttpServer");
        assert_eq!(out(trim_all(&[s("ab"), s("abcba")])), "c");
        for (input, snake) in [
            ("FirstName", "first_name"),
            ("HTTPServer", "http_server"),
            ("NoHTTPS", "no_https"),
            ("GO_PATH", "go_path"),
            ("GO PATH", "go_path"),
            ("http2xx", "http_2xx"),
            ("HTTP20xOK", "http_20x_ok"),
            ("Duration2m3s", "duration_2m3s"),
            ("Bld4Floor3rd", "bld4_floor_3rd"),
            ("some-kebab Case", "some_kebab_case"),
        ] {
            assert_eq!(words_joined(input, '_'), snake, "{input}");
        }
        assert_eq!(
            out(abbrevboth(&[int(5), int(10), s("1234 5678 9123")])),
            "...5678..."
        );
        assert_eq!(out(seq(&[int(10), int(-3), int(1)])), "10 7 4 1");
        assert_eq!(out(seq(&[int(-2)])), "1 0 -1 -2");
        assert!(upper(&[int(12)]).is_err());
    }

    #[test]
    fn braces_that_repeat_nothing_are_literal_as_in_re2() {
        let find = |p: &str, t: &str| out(regex_find(&[s(p), s(t)]));
        assert_eq!(find("{\"k\":[1]}", "{\"k\":1}"), "{\"k\":1}");
        assert_eq!(find("a{2,3}\\{", "aaa{"), "aaa{");
        assert!(compile("{x}", Compile::Panics).is_ok());
    }

    #[test]
    fn hex_floats_as_go() {
        assert_eq!(hex_float(3.5), "0x1.cp+01");
        assert_eq!(hex_float(1.0), "0x1p+00");
        assert_eq!(hex_float(-0.1), "-0x1.999999999999ap-04");
        assert_eq!(hex_float(0.0), "0x0p+00");
    }

    #[test]
    fn printf_go_syntax() {
        let v = printf(&[
            s("%#v|%5d|%e"),
            Value::Array(vec![int(1), s("a"), Value::Nil].into()),
            int(42),
            int(0),
        ])
        .unwrap();
        assert_eq!(
            out(Ok(v)),
            "[]interface {}{1, \"a\", interface {}(nil)}|   42|%!e(int=0)"
        );
    }

    #[test]
    fn paths_as_go() {
        assert_eq!(clean_path("/a/../b/./c//d/"), "/b/c/d");
        assert_eq!(clean_path("../../x"), "../../x");
        assert_eq!(clean_path("a/.."), ".");
        assert_eq!(out(dir(&[s("/a/")])), "/a");
        assert_eq!(out(base(&[s("a/b/")])), "b");
    }

    #[test]
    fn decoders_report_as_go() {
        assert_eq!(
            decode_b64("aGk").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
        assert_eq!(decode_b32("MFSG22LO").unwrap(), b"admin");
    }
}

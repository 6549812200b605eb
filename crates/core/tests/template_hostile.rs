//! Hostile templates end in a value or a one-line error: never a panic, an abort or a
//! page-long message. (A stack overflow aborts the whole test binary, so these run here, apart.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use strongroom_core::template::{Engine, TemplateError, Value};

fn render(text: &str) -> Result<String, TemplateError> {
    let dot = Value::Map(
        [("user".to_string(), Value::String("admin".into()))]
            .into_iter()
            .collect(),
    );
    Engine::sprig().render("out", text, dot, &[])
}

fn one_line_error(text: &str) {
    let result = std::panic::catch_unwind(|| render(text));
    let Ok(result) = result else {
        panic!("panicked on {text:.80}");
    };
    if let Err(e) = result {
        let msg = e.to_string();
        assert!(
            !msg.contains('\n'),
            "multi-line error for {text:.80}: {msg}"
        );
        assert!(msg.len() < 400, "long error for {text:.80}: {msg}");
    }
}

#[test]
fn deep_parentheses_are_refused() {
    let ok = format!("{{{{ {}1{} }}}}", "(".repeat(50), ")".repeat(50));
    assert_eq!(render(&ok).unwrap(), "1");
    for depth in [300, 1000, 100_000] {
        let text = format!("{{{{ {}1{} }}}}", "(".repeat(depth), ")".repeat(depth));
        let err = render(&text).unwrap_err();
        assert!(matches!(err, TemplateError::Parse { .. }), "{err}");
    }
    let nested_ifs = "{{ if 1 }}".repeat(5000) + &"{{ end }}".repeat(5000);
    assert!(render(&nested_ifs).is_err());
    let nested_pipes = format!("{{{{ {} }}}}", "(print ".repeat(2000) + &")".repeat(2000));
    assert!(render(&nested_pipes).is_err());
}

#[test]
fn date_arithmetic_does_not_overflow() {
    for text in [
        r#"{{ dateModify "2000000000000h" "2024-01-01T00:00:00Z" }}"#,
        r#"{{ dateModify "99999999999999999999h" "2024-01-01T00:00:00Z" }}"#,
        r#"{{ mustDateModify "99999999999999999999h" "2024-01-01T00:00:00Z" }}"#,
        r#"{{ mustDateModify "-2000000000000h" now }}"#,
        r#"{{ durationRound "99999999999999999999h" }}"#,
        r#"{{ durationRound "2562047h" }}"#,
        r#"{{ duration 9223372036854775807 }}"#,
        r#"{{ dateModify "9223372036s" (toDate "2006" "9999") }}"#,
        r#"{{ ago (toDate "2006" "0001") }}"#,
        r#"{{ date "2006" 9223372036854775807 }}"#,
        r#"{{ unixEpoch 9223372036854775807 }}"#,
    ] {
        one_line_error(text);
    }
}

#[test]
fn multiplying_functions_stop_before_allocating() {
    for text in [
        r#"{{ indent 60000 (repeat 100000 "\n") }}"#,
        r#"{{ nindent 60000 (repeat 100000 "\n") }}"#,
        r#"{{ replace "" (repeat 100000 "x") (repeat 100000 "y") }}"#,
        r#"{{ replace "y" (repeat 100000 "x") (repeat 100000 "y") }}"#,
        r#"{{ join (repeat 1000000 "x") (until 10000) }}"#,
        r#"{{ regexReplaceAll "y" (repeat 100000 "y") "$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0$0" }}"#,
        r#"{{ regexReplaceAllLiteral "" (repeat 100000 "y") (repeat 100000 "z") }}"#,
        r#"{{ wrapWith 1 (repeat 100000 "x") (repeat 100000 "y ") }}"#,
        r#"{{ printf "%999999999d" 1 }}"#,
        r#"{{ uniq (splitList "" (repeat 200000 "ab")) | len }}"#,
    ] {
        let started = std::time::Instant::now();
        one_line_error(text);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{text:.60} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn maps_that_hold_themselves_fail_in_one_line() {
    // maps are shared as in Go, so `set` can put a map inside itself; Go would recurse until
    // its stack ends when printing it
    for text in [
        r#"{{ $d := dict }}{{ $_ := set $d "self" $d }}{{ $d }}"#,
        r#"{{ $a := dict }}{{ $b := dict "a" $a }}{{ $_ := set $a "b" $b }}{{ toJson $a }}"#,
        r#"{{ $a := dict }}{{ $_ := merge $a (dict "x" (list $a)) }}{{ $a }}"#,
        r#"{{ $a := dict "x" (dict) }}{{ $_ := mergeOverwrite $a.x $a }}{{ $a }}"#,
    ] {
        let err = render(text).unwrap_err().to_string();
        assert!(err.contains("holding itself"), "{text}: {err}");
        one_line_error(text);
    }
    // a map shared twice per level doubles what printing it writes: refused past 1 000 000
    // items instead of printing 2^60 of them
    let wide =
        r#"{{ $a := dict }}{{ range until 60 }}{{ $a = dict "l" $a "r" $a }}{{ end }}{{ $a }}"#;
    let err = render(wide).unwrap_err().to_string();
    assert!(err.contains("items"), "{err}");
    // sharing itself works: a map seen through two variables
    assert_eq!(
        render(r#"{{ $a := dict }}{{ $b := $a }}{{ $_ := set $b "k" 1 }}{{ $a.k }}"#).unwrap(),
        "1"
    );
}

#[test]
fn json_of_a_huge_value_stops_at_the_output_limit() {
    // a map shared twice per level: 2^18 leaves, about 5 MB of JSON, within the item cap
    let build =
        r#"{{ $a := dict "k" "v" }}{{ range until 18 }}{{ $a = dict "l" $a "r" $a }}{{ end }}"#;
    for f in ["toJson", "toPrettyJson", "toRawJson", "mustToJson"] {
        let text = format!("{build}{{{{ {f} $a | len }}}}");
        let started = std::time::Instant::now();
        let err = render(&text).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{f}: ")) && err.contains("is more than the 1000000 this allows"),
            "{f}: {err}"
        );
        one_line_error(&text);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{f} took {:?}",
            started.elapsed()
        );
    }
    // a smaller one is written whole
    let small = r#"{{ $a := dict "k" "v" }}{{ range until 3 }}{{ $a = dict "l" $a "r" $a }}{{ end }}{{ toJson $a | len }}"#;
    assert_eq!(render(small).unwrap(), "149");
}

#[test]
fn recursion_ends_in_one_line() {
    one_line_error(r#"{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}"#);
    one_line_error(
        r#"{{ define "r" }}x{{ template "r" . }}{{ template "r" . }}{{ end }}{{ template "r" . }}"#,
    );
}

#[test]
fn a_number_broken_by_a_multibyte_character_is_a_one_line_error() {
    for text in ["{{ -é }}", "{{ 1é }}", "{{ 0x😀 }}", "{{ +日本 }}"] {
        one_line_error(text);
        let err = render(text).unwrap_err().to_string();
        assert!(err.contains("bad number syntax"), "{text}: {err}");
    }
}

/// A small deterministic generator (xorshift), so the property test needs no extra crate and a
/// failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Pieces random templates are made of: syntax, every kind of literal, data, and sprig
/// functions (without the slow key generators), including malformed combinations.
const PIECES: &[&str] = &[
    "{{",
    "}}",
    "{{-",
    "-}}",
    "(",
    ")",
    "|",
    " ",
    " ",
    " ",
    "\"",
    "`",
    "'",
    "$",
    "$x",
    "$x :=",
    "$x =",
    ",",
    ".",
    ".user",
    ".nope",
    ".user.x",
    "1",
    "-1",
    "0",
    "2.5",
    "1e308",
    "-1e308",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "0x7fffffffffffffff",
    "\"x\"",
    "\"\"",
    "\"99999999999999999999h\"",
    "\"2000000000000h\"",
    "\"-2562047h\"",
    "\"2006-01-02\"",
    "\"2024-01-01T00:00:00Z\"",
    "\"[\"",
    "\"(a*)*\"",
    "\"%v%d%s%q%x%T\"",
    "\"\\u00e9\"",
    // multi-byte characters where the lexer reads bytes: beside numbers, fields, variables,
    // escapes and delimiters
    "é",
    "-é",
    "0😀",
    ".é",
    "$é",
    "'😀'",
    "\"\\é\"",
    "\"日本\"",
    "nil",
    "true",
    "false",
    "if",
    "else",
    "end",
    "range",
    "with",
    "break",
    "continue",
    "define \"a\"",
    "template \"a\" .",
    "block \"b\" .",
    "/*",
    "*/",
    "print",
    "printf",
    "println",
    "len",
    "index",
    "slice",
    "eq",
    "ne",
    "lt",
    "and",
    "or",
    "not",
    "call",
    "html",
    "js",
    "urlquery",
    "upper",
    "lower",
    "title",
    "untitle",
    "substr",
    "trunc",
    "abbrev",
    "abbrevboth",
    "repeat",
    "trim",
    "trimAll",
    "nospace",
    "initials",
    "wrap",
    "wrapWith",
    "indent",
    "nindent",
    "replace",
    "plural",
    "quote",
    "squote",
    "cat",
    "sha256sum",
    "toString",
    "atoi",
    "int",
    "int64",
    "float64",
    "seq",
    "until",
    "untilStep",
    "split",
    "splitList",
    "splitn",
    "join",
    "sortAlpha",
    "add",
    "add1",
    "sub",
    "div",
    "mod",
    "mul",
    "addf",
    "divf",
    "max",
    "min",
    "ceil",
    "floor",
    "round",
    "default",
    "empty",
    "coalesce",
    "all",
    "any",
    "compact",
    "ternary",
    "toJson",
    "fromJson",
    "toPrettyJson",
    "dict",
    "list",
    "get",
    "set",
    "unset",
    "hasKey",
    "pluck",
    "keys",
    "pick",
    "omit",
    "merge",
    "mergeOverwrite",
    "values",
    "append",
    "prepend",
    "first",
    "rest",
    "last",
    "initial",
    "reverse",
    "uniq",
    "without",
    "has",
    "concat",
    "dig",
    "chunk",
    "typeOf",
    "kindOf",
    "kindIs",
    "deepEqual",
    "base",
    "dir",
    "clean",
    "b64enc",
    "b64dec",
    "b32dec",
    "regexMatch",
    "regexFindAll",
    "regexReplaceAll",
    "regexSplit",
    "now",
    "date",
    "toDate",
    "mustToDate",
    "dateModify",
    "mustDateModify",
    "dateInZone",
    "unixEpoch",
    "ago",
    "duration",
    "durationRound",
    "htmlDate",
    "semver",
    "semverCompare",
    "urlParse",
    "urlJoin",
    "randInt",
    "randAlphaNum",
    "uuidv4",
    "encryptAES",
    "decryptAES",
    "fail",
    "toDecimal",
    "toStrings",
    "derivePassword",
    "shuffle",
    "camelcase",
    "snakecase",
    "kebabcase",
    "swapcase",
];

/// Panics seen anywhere (the engine turns a panic into an error, so only the hook sees them).
static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn random_templates_never_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        default_hook(info);
    }));
    let cases: usize = std::env::var("TEMPLATE_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("TEMPLATE_FUZZ_SEED")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_ef01);
    let mut rng = Rng(seed | 1);
    for _ in 0..cases {
        let mut text = String::new();
        // mostly well-formed actions, sometimes raw token soup
        let actions = 1 + rng.next() % 4;
        for _ in 0..actions {
            if rng.next().is_multiple_of(4) {
                for _ in 0..rng.next() % 12 {
                    text.push_str(rng.pick(PIECES));
                }
            } else {
                text.push_str("{{ ");
                for _ in 0..1 + rng.next() % 6 {
                    text.push_str(rng.pick(PIECES));
                    text.push(' ');
                }
                text.push_str("}}");
            }
        }
        one_line_error(&text);
    }
    assert_eq!(
        PANICS.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a function or the engine panicked (see the output above)"
    );
}

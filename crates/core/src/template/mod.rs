//! Go `text/template` rendering with the sprig function library, the way the Go controllers
//! render `SealedSecret.spec.template.data` and `ExternalSecret.spec.target.template`.
//!
//! The evaluator is our own ([`gotmpl`]: Go's lexer, parser and execution rules, including
//! `<no value>` for a missing map key); the modules beside it are Go's builtins and the sprig
//! functions. Every render runs under resource limits, because a template is untrusted input to
//! a controller.

mod args;
mod certs;
mod compat;
mod crypto;
mod dates;
mod delimiters;
mod eso;
mod go;
mod go_regexp;
mod gotime;
pub mod gotmpl;
mod json_decode;
mod json_syntax;
mod lists;
mod random;
mod sprig;
mod versions;
mod yaml;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub use gotmpl::{Func, FuncError, GoMap, List, Value};
use gotmpl::{Limits, Template};

/// Functions sealed-secrets removes from sprig: they read the controller's environment or the
/// network, which a template author must not reach.
pub const REMOVED_FUNCTIONS: [&str; 3] = ["env", "expandenv", "getHostByName"];

/// The longest a single render may run.
/// (`genPrivateKey "rsa"` alone takes up to a second or two.)
const RENDER_DEADLINE: Duration = Duration::from_secs(5);

/// The most bytes a single render may produce (a Secret is at most 1 MiB).
const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// The longest error message passed on: a render error is one line of at most this many bytes.
const MAX_ERROR_BYTES: usize = 300;

/// Why a template could not be rendered. Messages never contain a secret value: render errors
/// are scrubbed of every value in the template's data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template text is not valid Go template syntax.
    #[error("template {name:?} does not parse: {message}")]
    Parse {
        /// The template's name (the key it renders).
        name: String,
        /// What the parser said.
        message: String,
    },
    /// The template parsed but failed while running.
    #[error("template {name:?} failed: {message}")]
    Render {
        /// The template's name (the key it renders).
        name: String,
        /// What went wrong, with secret values replaced by `[redacted]`.
        message: String,
    },
}

/// A set of template functions plus the limits every render runs under.
#[derive(Clone)]
pub struct Engine {
    funcs: HashMap<String, Func>,
    limits: Limits,
    /// Go's `missingkey=error` for the dot: a key the data lacks fails the render.
    missing_key_error: bool,
    /// Action delimiters other than `{{` and `}}` (Go's `Delims`), if set.
    delimiters: Option<(String, String)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("functions", &self.funcs.len())
            .finish()
    }
}

impl Engine {
    /// Go's builtins plus sprig, without [`REMOVED_FUNCTIONS`]: what sealed-secrets offers.
    pub fn sprig() -> Self {
        let mut funcs: HashMap<String, Func> = HashMap::new();
        for &(name, f) in gotmpl::BUILTINS
            .iter()
            .chain(sprig::EXTRA)
            .chain(lists::FUNCTIONS)
            .chain(random::FUNCTIONS)
            .chain(crypto::FUNCTIONS)
            .chain(dates::FUNCTIONS)
            .chain(compat::FUNCTIONS)
            .chain(certs::FUNCTIONS)
            .chain(versions::FUNCTIONS)
        {
            funcs.insert(name.to_string(), f);
        }
        for (alias, of) in sprig::ALIASES {
            if let Some(&f) = funcs.get(*of) {
                funcs.insert(alias.to_string(), f);
            }
        }
        for name in REMOVED_FUNCTIONS {
            funcs.remove(name);
        }
        let limits = Limits::default()
            .with_output_bytes(MAX_OUTPUT_BYTES)
            .with_deadline(RENDER_DEADLINE);
        Self {
            funcs,
            limits,
            missing_key_error: false,
            delimiters: None,
        }
    }

    /// external-secrets' function map and options: the same sprig functions plus its own
    /// (`toYaml`, `fromYaml`, `filterPEM`, `filterCertChain`, `certSANs`, the `pkcs12*` and
    /// `*Pkcs12*` functions, `jwkPublicKeyPem`, `jwkPrivateKeyPem`, `rsaDecrypt`, `hexdec`), and
    /// `missingkey=error` (a key the data lacks fails the render).
    pub fn external_secrets() -> Self {
        let mut engine = Self::sprig();
        for &(name, f) in yaml::FUNCTIONS.iter().chain(eso::FUNCTIONS) {
            engine.funcs.insert(name.to_string(), f);
        }
        engine.missing_key_error = true;
        engine
    }

    /// The engine with Go's `missingkey=error` on (`true`) or off (`false`: a key the data
    /// lacks prints `<no value>`, Go's default, as upstream's webhook templates run).
    pub fn with_missing_key_error(mut self, on: bool) -> Self {
        self.missing_key_error = on;
        self
    }

    /// The engine with the action delimiters `left` and `right` instead of `{{` and `}}`, as
    /// Go's `Template.Delims`: an empty one means the default, and under custom delimiters
    /// `{{` in a template is plain text.
    pub fn with_delimiters(mut self, left: &str, right: &str) -> Self {
        let left = if left.is_empty() {
            delimiters::DEFAULT_LEFT
        } else {
            left
        };
        let right = if right.is_empty() {
            delimiters::DEFAULT_RIGHT
        } else {
            right
        };
        self.delimiters = (left != delimiters::DEFAULT_LEFT || right != delimiters::DEFAULT_RIGHT)
            .then(|| (left.to_string(), right.to_string()));
        self
    }

    /// The action delimiters templates are written with.
    pub fn delimiters(&self) -> (&str, &str) {
        match &self.delimiters {
            Some((l, r)) => (l, r),
            None => (delimiters::DEFAULT_LEFT, delimiters::DEFAULT_RIGHT),
        }
    }

    /// Adds (or replaces) a function, for controllers with functions of their own.
    pub fn with_func(mut self, name: &str, func: Func) -> Self {
        self.funcs.insert(name.to_string(), func);
        self
    }

    /// Whether a function of that name is available.
    pub fn has_func(&self, name: &str) -> bool {
        self.funcs.contains_key(name)
    }

    /// Renders `text` with `dot` as its data. Any of `secrets` found in an error message is
    /// replaced by `[redacted]`.
    pub fn render(
        &self,
        name: &str,
        text: &str,
        dot: Value,
        secrets: &[&str],
    ) -> Result<String, TemplateError> {
        let _binary = eso::binary::Scope::start();
        self.render_in_scope(name, text, dot, secrets)
    }

    /// Renders `text` with `data` as the dot, as external-secrets' `execute` does: each item
    /// is a string in the dot, and the result is bytes. Items that are not UTF-8 keep their
    /// bytes for the functions that read bytes (`b64enc`, `pkcs12*`, `rsaDecrypt`), and bytes
    /// those functions or `b64dec` made are written to the result as they are, as Go would.
    /// Any UTF-8 item found in an error message is replaced by `[redacted]`.
    pub fn render_data(
        &self,
        name: &str,
        text: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Vec<u8>, TemplateError> {
        let _binary = eso::binary::Scope::start();
        let dot = Value::Map(
            data.iter()
                .map(|(k, v)| (k.clone(), Value::String(eso::binary::text_of(v.clone()))))
                .collect(),
        );
        let secrets: Vec<&str> = data
            .values()
            .filter_map(|v| std::str::from_utf8(v).ok())
            .collect();
        let out = self.render_in_scope(name, text, dot, &secrets)?;
        Ok(eso::binary::restore(out))
    }

    fn render_in_scope(
        &self,
        name: &str,
        text: &str,
        dot: Value,
        secrets: &[&str],
    ) -> Result<String, TemplateError> {
        let parse_error = |message: String| TemplateError::Parse {
            name: name.to_string(),
            message: one_line(&redact(&message, secrets)),
        };
        let converted;
        let text = match &self.delimiters {
            Some((left, right)) => {
                converted = delimiters::to_default(text, left, right).map_err(parse_error)?;
                converted.as_str()
            }
            None => text,
        };
        let is_func = |f: &str| self.funcs.contains_key(f);
        // A panic inside the engine or a function must not take the controller down: it
        // becomes this template's error.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Template::parse(name, text, &is_func)
        }))
        .map_err(|_| parse_error("the template engine failed on this template".into()))?
        .map_err(parse_error)?;
        let render_error = |message: String| TemplateError::Render {
            name: name.to_string(),
            message: one_line(&redact(&missing_key_message(&message), secrets)),
        };
        // the controllers' dot is a Go map[string]string
        let dot = match dot {
            Value::Map(m) if m.read().values().all(|v| matches!(v, Value::String(_))) => {
                Value::Object(m.snapshot().into())
            }
            // a copy, so a template's `set` cannot reach the caller's maps
            other => other.deep_copy(),
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            parsed.execute(
                dot,
                &self.funcs,
                self.missing_key_error,
                self.limits,
                methods,
            )
        }))
        .map_err(|_| render_error("the template engine failed on this template".into()))?
        .map_err(render_error)
    }
}

/// The methods of the typed values template functions make (`time.Time`,
/// `*semver.Version`).
fn methods(recv: &Value, name: &str, args: &[Value]) -> Option<Result<Value, FuncError>> {
    dates::method(recv, name, args).or_else(|| versions::method(recv, name, args))
}

/// Renders every template in `templates` with the plaintext items as the dot (a map from item
/// name to its text), as sealed-secrets does for `spec.template.data`. Items that are not UTF-8
/// are left out of the dot (Go would pass the raw bytes; a Rust string cannot hold them).
pub fn render_items(
    engine: &Engine,
    templates: &BTreeMap<String, String>,
    items: &BTreeMap<String, Vec<u8>>,
) -> Result<BTreeMap<String, String>, TemplateError> {
    let texts: BTreeMap<&str, &str> = items
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), std::str::from_utf8(v).ok()?)))
        .collect();
    let dot = Value::Map(
        texts
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect(),
    );
    let secrets: Vec<&str> = texts.values().copied().collect();
    templates
        .iter()
        .map(|(key, text)| {
            Ok((
                key.clone(),
                engine.render(key, text, dot.clone(), &secrets)?,
            ))
        })
        .collect()
}

/// The engine's "no field `k` in VALUE" as Go's "map has no entry for key "k"" (which also
/// keeps the data out of the message).
fn missing_key_message(message: &str) -> String {
    match message.find("no field `") {
        Some(at) => {
            let rest = &message[at + 10..];
            let key = rest.split('`').next().unwrap_or_default();
            format!("{}map has no entry for key {key:?}", &message[..at])
        }
        None => message.to_string(),
    }
}

/// An error message on one line of at most [`MAX_ERROR_BYTES`]: the engine's first line (where
/// and what) and, when it lists causes, the innermost one.
fn one_line(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().to_string();
    let last = lines
        .next_back()
        .map(|l| l.trim_start_matches("caused by: "));
    let mut out = match last {
        Some(cause) if cause != first => format!("{first}: {cause}"),
        _ => first,
    };
    if out.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

/// `value` written as Go's `json.Marshal` writes what `json.Unmarshal` read into `interface{}`:
/// every number a float64 (`1.0` and `1e3` become `1` and `1000`), object members sorted by
/// name, and `<`, `>`, `&` escaped when `escape_html` (`json.Marshal`; an `Encoder` with
/// `SetEscapeHTML(false)` leaves them). `None` where Go fails.
pub fn go_json(value: &serde_json::Value, escape_html: bool) -> Option<String> {
    go::to_json(&go::json_value(value.clone()), escape_html, None)
}

/// Shortest value scrubbed wherever it appears: shorter ones are scrubbed only where a message
/// quotes them, since replacing every "a" or "12" would garble the message.
const MIN_REDACTED_LEN: usize = 3;

/// Replaces each secret value (longest first) in `message` with `[redacted]`, and each
/// backquoted part that shares a piece with a secret (Go's regexp messages quote the part of a
/// pattern they refuse: a pattern taken from the data must not show through them).
pub fn redact(message: &str, secrets: &[&str]) -> String {
    let mut sorted: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let whole = sorted.iter().fold(message.to_string(), |m, s| {
        if s.len() >= MIN_REDACTED_LEN {
            m.replace(s, "[redacted]")
        } else {
            ["\"", "`", "'"].iter().fold(m, |m, q| {
                m.replace(&format!("{q}{s}{q}"), &format!("{q}[redacted]{q}"))
            })
        }
    });
    redact_quoted_pieces(&whole, &sorted)
}

/// Replaces each quoted part of `message` that shares a piece of [`MIN_REDACTED_LEN`] bytes
/// with a secret: each backquoted part (or the span from the first backquote to the last when
/// a secret holds a backquote, so a pattern holding one stays one part) and the double-quoted
/// pattern of `regexp: Compile("...")`, read unescaped (Go quotes a pattern holding a
/// backquote or a control character that way).
fn redact_quoted_pieces(message: &str, secrets: &[&str]) -> String {
    // most messages quote nothing: no need to index the secrets
    if !message.contains('`') && !message.contains("Compile(\"") {
        return message.to_string();
    }
    // every piece of every secret, once: a lookup per piece of the message, whatever the
    // secrets' size
    let pieces: std::collections::HashSet<&[u8]> = secrets
        .iter()
        .flat_map(|s| s.as_bytes().windows(MIN_REDACTED_LEN))
        .collect();
    if pieces.is_empty() {
        return message.to_string();
    }
    let shares_a_piece = |text: &[u8]| text.windows(MIN_REDACTED_LEN).any(|w| pieces.contains(w));
    let parts: Vec<&str> = message.split('`').collect();
    // a secret holding a backquote can shift the pairs: then the whole span from the first
    // backquote to the last is one part
    let shifted = parts.len().is_multiple_of(2) || secrets.iter().any(|s| s.contains('`'));
    let out = if parts.len() < 3 {
        message.to_string()
    } else if shifted {
        let (first, last) = (
            parts[0].len(),
            message.len() - parts[parts.len() - 1].len() - 1,
        );
        if shares_a_piece(&message.as_bytes()[first + 1..last]) {
            format!("{}`[redacted]`{}", parts[0], parts[parts.len() - 1])
        } else {
            message.to_string()
        }
    } else {
        parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let quoted = i % 2 == 1 && i + 1 < parts.len();
                if quoted && shares_a_piece(part.as_bytes()) {
                    "[redacted]"
                } else {
                    part
                }
            })
            .collect::<Vec<_>>()
            .join("`")
    };
    let mut redacted = String::with_capacity(out.len());
    let mut rest = out.as_str();
    // Go quotes a pattern this way only in `regexp: Compile("...")`: other double-quoted
    // parts (field and function names) are left alone
    while let Some(open) = rest.find("Compile(\"").map(|i| i + "Compile(".len()) {
        redacted.push_str(&rest[..open]);
        let quoted = &rest[open..];
        let Some((len, unescaped)) = go_unquote_prefix(quoted) else {
            redacted.push_str(quoted);
            rest = "";
            break;
        };
        if shares_a_piece(&unescaped) || shares_a_piece(&quoted.as_bytes()[1..len - 1]) {
            redacted.push_str("\"[redacted]\"");
        } else {
            redacted.push_str(&quoted[..len]);
        }
        rest = &quoted[len..];
    }
    redacted.push_str(rest);
    redacted
}

/// The Go string literal at the start of `text` (which starts with `"`): its length in bytes
/// and its unescaped bytes; `None` when it does not end.
fn go_unquote_prefix(text: &str) -> Option<(usize, Vec<u8>)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some((i + 1, out)),
            b'\\' => {
                let escape = *bytes.get(i + 1)?;
                let simple = match escape {
                    b'n' => Some(b'\n'),
                    b't' => Some(b'\t'),
                    b'r' => Some(b'\r'),
                    b'a' => Some(0x07),
                    b'b' => Some(0x08),
                    b'f' => Some(0x0c),
                    b'v' => Some(0x0b),
                    b'\\' | b'"' | b'\'' => Some(escape),
                    _ => None,
                };
                if let Some(b) = simple {
                    out.push(b);
                    i += 2;
                    continue;
                }
                let digits = match escape {
                    b'x' => 2,
                    b'u' => 4,
                    b'U' => 8,
                    _ => {
                        out.push(escape);
                        i += 2;
                        continue;
                    }
                };
                let hex = text.get(i + 2..i + 2 + digits)?;
                let code = u32::from_str_radix(hex, 16).ok()?;
                if escape == b'x' {
                    out.push(u8::try_from(code).ok()?);
                } else {
                    let c = char::from_u32(code).unwrap_or('\u{FFFD}');
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                i += 2 + digits;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn one(text: &str, pairs: &[(&str, &str)]) -> Result<String, TemplateError> {
        let t = BTreeMap::from([("out".to_string(), text.to_string())]);
        render_items(&Engine::sprig(), &t, &items(pairs)).map(|mut m| m.remove("out").unwrap())
    }

    #[test]
    fn custom_delimiters_make_the_default_ones_plain_text() {
        let data = items(&[("user", "admin")]);
        let engine = Engine::external_secrets().with_delimiters("[[", "]]");
        assert_eq!(engine.delimiters(), ("[[", "]]"));
        let out = engine
            .render_data(
                "k",
                "[[ .user ]] {{ .user }} {{{[[- .user | upper ]]",
                &data,
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "admin {{ .user }} {{{ADMIN"
        );
        // a parse error names the template, as with the default delimiters
        let err = engine.render_data("k", "[[ .user", &data).unwrap_err();
        assert!(
            matches!(&err, TemplateError::Parse { name, message } if name == "k" && message.contains("unclosed action")),
            "{err}"
        );
        // empty or default delimiters are the defaults
        let default = Engine::external_secrets().with_delimiters("", "}}");
        assert_eq!(default.delimiters(), ("{{", "}}"));
        let out = default.render_data("k", "{{ .user }}", &data).unwrap();
        assert_eq!(out, b"admin");
    }

    #[test]
    fn go_json_writes_numbers_and_html_as_go() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"b":1.0,"a":"<x>","c":[1e3,null,true]}"#).unwrap();
        assert_eq!(
            go_json(&v, true).unwrap(),
            r#"{"a":"\u003cx\u003e","b":1,"c":[1000,null,true]}"#
        );
        assert_eq!(
            go_json(&v, false).unwrap(),
            r#"{"a":"<x>","b":1,"c":[1000,null,true]}"#
        );
    }

    #[test]
    fn renders_go_syntax_with_sprig_functions() {
        let pairs = [("user", "admin"), ("password", "s3cret")];
        assert_eq!(
            one("{{ .user }}:{{ .password }}", &pairs).unwrap(),
            "admin:s3cret"
        );
        assert_eq!(
            one("{{ .user | upper | quote }}", &pairs).unwrap(),
            "\"ADMIN\""
        );
        assert_eq!(
            one("{{- printf \"%s@%s\" .user \"db\" -}}\n", &pairs).unwrap(),
            "admin@db"
        );
        assert_eq!(one("{{ .password | b64enc }}", &pairs).unwrap(), "czNjcmV0");
        assert_eq!(
            one(
                "{{ if eq .user \"admin\" }}yes{{ else }}no{{ end }}",
                &pairs
            )
            .unwrap(),
            "yes"
        );
        assert_eq!(
            one(
                "{{ range $k, $v := . }}{{ $k }}={{ len $v }};{{ end }}",
                &pairs
            )
            .unwrap(),
            "password=6;user=5;"
        );
        assert_eq!(
            one("{{ .missing | default \"fallback\" }}", &pairs).unwrap(),
            "fallback"
        );
        assert_eq!(
            one("conf:{{ .user | nindent 2 }}", &pairs).unwrap(),
            "conf:\n  admin"
        );
        assert_eq!(
            one("{{ splitList \",\" \"a,b,c\" | join \"-\" }}", &pairs).unwrap(),
            "a-b-c"
        );
        assert_eq!(
            one("{{ .password | sha256sum | trunc 8 }}", &pairs).unwrap(),
            "1ec1c26b"
        );
    }

    #[test]
    fn key_and_cipher_functions_work_in_templates() {
        let pairs = [("password", "s3cret")];
        assert_eq!(
            one(
                "{{ encryptAES \"k\" .password | decryptAES \"k\" }}",
                &pairs
            )
            .unwrap(),
            "s3cret"
        );
        assert!(
            one("{{ bcrypt .password }}", &pairs)
                .unwrap()
                .starts_with("$2a$10$")
        );
        assert!(
            one("{{ genPrivateKey \"ecdsa\" }}", &pairs)
                .unwrap()
                .contains("EC PRIVATE KEY")
        );
        assert_eq!(one("{{ \"0640\" | toDecimal }}", &pairs).unwrap(), "416");
    }

    #[test]
    fn missing_items_render_as_go_does() {
        assert_eq!(one("[{{ .nope }}]", &[]).unwrap(), "[<no value>]");
    }

    #[test]
    fn environment_and_network_functions_are_gone() {
        let engine = Engine::sprig();
        for f in REMOVED_FUNCTIONS {
            assert!(!engine.has_func(f), "{f}");
        }
        let err = one("{{ env \"HOME\" }}", &[]).unwrap_err();
        assert!(matches!(err, TemplateError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("env"), "{err}");
    }

    #[test]
    fn errors_name_the_template_and_never_a_value() {
        let canary = "canary-7f3a9b";
        let err = one(
            "{{ mustToDate \"2006\" .password }}",
            &[("password", canary)],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"out\""), "{msg}");
        assert!(!msg.contains(canary), "{msg}");
        let err = one("{{ fail .password }}", &[("password", canary)]).unwrap_err();
        assert!(!err.to_string().contains(canary), "{err}");
        let err = one("{{ .password", &[("password", canary)]).unwrap_err();
        assert!(matches!(err, TemplateError::Parse { .. }), "{err}");
    }

    #[test]
    fn runaway_templates_stop_at_the_limits() {
        let err = one("{{ range 100000000 }}x{{ end }}", &[]).unwrap_err();
        assert!(matches!(err, TemplateError::Render { .. }), "{err}");
        let err = one("{{ range 1000 }}{{ repeat 5000 \"x\" }}{{ end }}", &[]).unwrap_err();
        assert!(err.to_string().contains("bytes"), "{err}");
        let err = one(
            "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, TemplateError::Render { .. }), "{err}");
    }

    #[test]
    fn external_secrets_fails_on_a_missing_key_without_showing_the_data() {
        let dot = Value::Map(
            [("pw".to_string(), Value::String("ab".into()))]
                .into_iter()
                .collect(),
        );
        let engine = Engine::external_secrets();
        assert!(engine.has_func("toYaml") && !Engine::sprig().has_func("toYaml"));
        let err = engine
            .render("out", "{{ .nope }}", dot.clone(), &["ab"])
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("map has no entry for key \"nope\""), "{msg}");
        assert!(!msg.contains("ab"), "{msg}");
        assert_eq!(
            engine
                .render("out", "{{ .pw }}{{ index . \"pw\" }}", dot, &[])
                .unwrap(),
            "abab"
        );
    }

    #[test]
    fn regexp_errors_do_not_show_pieces_of_secret_patterns() {
        let secret = "canary[xyz";
        let data = items(&[("p", secret)]);
        for template in [
            "{{ regexFind .p \"x\" }}",
            "{{ mustRegexMatch .p \"x\" }}",
            "{{ regexFind (printf \"%s**\" .p) \"x\" }}",
        ] {
            let err = Engine::external_secrets()
                .render_data("t", template, &data)
                .unwrap_err()
                .to_string();
            assert!(err.contains("error parsing regexp"), "{err}");
            assert!(!err.contains("[xyz") && !err.contains("canary"), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        // template text stays
        assert_eq!(
            redact("missing closing ]: `[ab`", &["zzz"]),
            "missing closing ]: `[ab`"
        );
        // a secret holding a backquote stays one part
        assert_eq!(
            redact("missing closing ]: `[c`def`", &["ab[c`def"]),
            "missing closing ]: `[redacted]`"
        );
        // a pattern Go quotes with escapes is read unescaped
        assert_eq!(
            redact(
                "regexp: Compile(\"line1\\n[lin\"): error",
                &["xline1\n[lin"]
            ),
            "regexp: Compile(\"[redacted]\"): error"
        );
        for template in ["{{ regexFind .q \"x\" }}", "{{ regexFind .n \"x\" }}"] {
            let data = items(&[("q", "ab[c`def"), ("n", "first\nse[cond")]);
            let err = Engine::external_secrets()
                .render_data("t", template, &data)
                .unwrap_err()
                .to_string();
            assert!(err.contains("error parsing regexp"), "{err}");
            for piece in ["c`def", "se[cond", "first"] {
                assert!(!err.contains(piece), "{piece} in {err}");
            }
        }
    }

    #[test]
    fn redaction_prefers_the_longest_value() {
        assert_eq!(
            redact("bad abcdef and abc", &["abc", "abcdef", "x"]),
            "bad [redacted] and [redacted]"
        );
        // short values only where quoted
        assert_eq!(
            redact("parsing \"ab\": invalid; ab stays", &["ab"]),
            "parsing \"[redacted]\": invalid; ab stays"
        );
    }
}

//! An own Go `text/template` evaluator: lexer, parser and executor following Go's semantics,
//! over the [`Value`] model the template functions use.

mod builtins;
mod exec;
mod floats;
mod fmt;
mod lex;
pub mod limits;
mod parse;
mod value;

use std::collections::HashMap;

pub use builtins::{EVALUATOR_FUNCTIONS, FUNCTIONS as BUILTINS, sprint};
pub use exec::Method;
pub use floats::{FloatFormat, format_float};
pub use limits::Limits;
pub use parse::MAX_NESTING;
pub use value::{Elem, Func, FuncError, GoMap, List, Number, NumberKind, Typed, Value};

/// Go's `printf`, for functions that format.
pub fn printf(args: &[Value]) -> Result<Value, FuncError> {
    builtins::printf(args)
}

/// A template parsed from text, ready to run.
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    src: String,
    tree: parse::Tree,
}

/// Where in `src` byte `pos` is: 1-based line and 0-based column, as Go's errors count.
fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let before = &src[..pos.min(src.len())];
    let line = 1 + before.matches('\n').count();
    let col = before.rfind('\n').map_or(pos, |nl| pos - nl - 1);
    (line, col)
}

impl Template {
    /// Parses `text`; `is_func` says which function names exist. The error is Go's message
    /// (`template: NAME:LINE: ...`).
    pub fn parse(name: &str, text: &str, is_func: &dyn Fn(&str) -> bool) -> Result<Self, String> {
        let is_func = |f: &str| EVALUATOR_FUNCTIONS.contains(&f) || is_func(f);
        match parse::parse(text, &is_func) {
            Ok(tree) => Ok(Self {
                name: name.to_string(),
                src: text.to_string(),
                tree,
            }),
            Err(e) => {
                let (line, _) = line_col(text, e.pos);
                Err(format!("template: {name}:{line}: {}", e.message))
            }
        }
    }

    /// Runs the template with `dot`. The error is Go's message
    /// (`template: NAME:LINE:COL: executing "NAME" at <...>: ...`).
    pub fn execute(
        &self,
        dot: Value,
        funcs: &HashMap<String, Func>,
        missing_key_error: bool,
        limits: Limits,
        methods: Method,
    ) -> Result<String, String> {
        let opts = exec::Options {
            funcs,
            missing_key_error,
            limits,
            methods,
        };
        exec::execute(&self.tree, &self.name, dot, &opts).map_err(|e| {
            let (line, col) = line_col(&self.src, e.pos);
            let context = &e.context;
            format!(
                "template: {}:{line}:{col}: executing {:?} at <{context}>: {}",
                self.name, e.template, e.message
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str, dot: Value) -> Result<String, String> {
        let funcs: HashMap<String, Func> =
            BUILTINS.iter().map(|(n, f)| (n.to_string(), *f)).collect();
        let t = Template::parse("t", text, &|f| funcs.contains_key(f))?;
        t.execute(dot, &funcs, false, Limits::default(), |_, _, _| None)
    }

    fn dot() -> Value {
        Value::Map(
            [
                ("user".to_string(), Value::from("admin")),
                ("n".to_string(), Value::from(3i64)),
                ("list".to_string(), Value::from(vec!["a", "b"])),
            ]
            .into_iter()
            .collect(),
        )
    }

    #[test]
    fn runs_go_templates() {
        assert_eq!(
            run("{{ .user }}-{{ .nope }}", dot()).unwrap(),
            "admin-<no value>"
        );
        assert_eq!(
            run(
                "{{ range $i, $e := .list }}{{ $i }}={{ $e }};{{ end }}",
                dot()
            )
            .unwrap(),
            "0=a;1=b;"
        );
        // eq is not among these builtins
        assert!(
            run(
                "{{ range .list }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}",
                dot()
            )
            .is_err()
        );
        assert_eq!(
            run("{{ range .list }}{{ if not (len .) }}{{ continue }}{{ end }}{{ . }}{{ break }}{{ end }}", dot()).unwrap(),
            "a"
        );
        assert_eq!(
            run(
                "{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}",
                dot()
            )
            .unwrap(),
            "2"
        );
        assert_eq!(
            run(
                "{{ with .nope }}a{{ else with .user }}{{ . }}{{ end }}",
                dot()
            )
            .unwrap(),
            "admin"
        );
        assert_eq!(
            run("{{ and 1 0 }} {{ or 0 \"x\" }} {{ and 1 2 }}", dot()).unwrap(),
            "0 x 2"
        );
        assert_eq!(
            run("{{ printf \"%05.1f|%q\" 3.14159 `a\\b` }}", dot()).unwrap(),
            "003.1|\"a\\\\b\""
        );
        assert_eq!(
            run(
                "{{ define \"x\" }}[{{ . }}]{{ end }}{{ template \"x\" .user }}",
                dot()
            )
            .unwrap(),
            "[admin]"
        );
        assert_eq!(
            run("{{ 1.0 }} {{ 0x10 }} {{ 'a' }} {{ 1e3 }}", dot()).unwrap(),
            "1 16 97 1000"
        );
        assert_eq!(
            run("{{- 3 -}}  {{ print 1 2 \"a\" 3 }}", dot()).unwrap(),
            "31 2a3"
        );
        // Go's node for a field chain starts at its second field, and a value taken from a
        // map[string]interface{} (this dot) has the static type interface {}
        let err = run("x\n {{ .user.x }}", dot()).unwrap_err();
        assert_eq!(
            err,
            "template: t:2:9: executing \"t\" at <.user.x>: can't evaluate field x in type interface {}"
        );
        let err = run(
            "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
            dot(),
        )
        .unwrap_err();
        assert!(err.contains("maximum template depth"), "{err}");
        assert!(
            run("{{ nope }}", dot())
                .unwrap_err()
                .contains("function \"nope\" not defined")
        );
        assert!(run("{{ if 1 }}x{{ else }}y", dot()).is_err());
    }

    #[test]
    fn missing_keys_fail_when_asked() {
        let funcs: HashMap<String, Func> = HashMap::new();
        let t = Template::parse("t", "{{ .nope }}", &|_| false).unwrap();
        let err = t
            .execute(dot(), &funcs, true, Limits::default(), |_, _, _| None)
            .unwrap_err();
        assert_eq!(
            err,
            "template: t:1:3: executing \"t\" at <.nope>: map has no entry for key \"nope\""
        );
    }
}

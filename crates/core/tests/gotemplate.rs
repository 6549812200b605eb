//! Differential tests of the template engine against Go's `text/template` + sprig: the corpus in
//! `gotemplate/corpus.txt` and generated templates are rendered by both, and every difference is
//! reported with the template, Go's output and ours. A case may differ only when it is listed in
//! `gotemplate/known_differences.txt` (each explained in `docs/templates.md`). Set
//! `GOTEMPLATE_BLESS=1` to rewrite that list from the current differences.

#[path = "gotemplate/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use harness::{FuncMap, Outcome, Reference};
use strongroom_core::template::{Engine, Value};

/// The dot every corpus case renders with: a map of strings, as both controllers pass it.
fn data() -> Vec<(String, String)> {
    [
        ("user", "admin"),
        ("password", "s3cret"),
        ("empty", ""),
        ("num", "42"),
        ("float", "3.14"),
        ("list", "a,b,c"),
        (
            "json",
            r#"{"b":2,"a":{"c":[1,"x",true,null]},"h":"<&>","n":1234567}"#,
        ),
        ("yaml", "a: 1\nb:\n  - x\n  - 2\n"),
        ("spaced", "  padded  "),
        ("unicode", "héllo wörld ✓ 日本"),
        ("date", "2024-01-02T03:04:05Z"),
        (
            "url",
            "https://user:pw@example.com:8443/path/x?q=1&r=2#frag",
        ),
        (
            "tls.crt",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        ),
        ("dash-key", "dashed"),
        ("html", "<a href=\"x\">&</a>"),
        ("b64", "aGVsbG8gd29ybGQ="),
        ("multiline", "line1\nline2\nline3"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// How a case is judged.
#[derive(Debug, Clone)]
enum Compare {
    Exact,
    /// Both outputs must match this regex (random or clock-dependent output).
    Shape(regex::Regex),
}

#[derive(Debug, Clone)]
struct Case {
    /// The corpus line, as `known_differences.txt` names it.
    line: String,
    map: FuncMap,
    template: String,
    compare: Compare,
}

fn corpus() -> Vec<Case> {
    let text = include_str!("gotemplate/corpus.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut rest = line;
            let mut compare = Compare::Exact;
            if let Some(r) = rest.strip_prefix("shape:") {
                let (re, t) = r.split_once('\t').expect("shape:REGEX<TAB>template");
                compare = Compare::Shape(regex::Regex::new(re).expect("shape regex"));
                rest = t;
            }
            let mut map = FuncMap::Sealed;
            if let Some(t) = rest.strip_prefix("eso:") {
                map = FuncMap::Eso;
                rest = t;
            }
            Case {
                line: line.to_string(),
                map,
                template: rest.replace("«NL»", "\n"),
                compare,
            }
        })
        .collect()
}

/// Our engine's rendering of a case, with a panic reported as an error.
fn ours(map: FuncMap, template: &str, data: &[(String, String)]) -> Outcome {
    let dot = Value::Map(
        data.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    );
    let engine = match map {
        FuncMap::Sealed => Engine::sprig(),
        FuncMap::Eso => Engine::external_secrets(),
    };
    match std::panic::catch_unwind(AssertUnwindSafe(|| {
        engine.render("out", template, dot, &[])
    })) {
        Ok(Ok(s)) => Outcome::Ok(s),
        Ok(Err(e)) => Outcome::Err(e.to_string()),
        Err(_) => Outcome::Err("PANIC".into()),
    }
}

/// Whether our outcome counts as Go's: the same text (or shape), or both failing.
fn same(compare: &Compare, go: &Outcome, ours: &Outcome) -> bool {
    match (go, ours) {
        (Outcome::Ok(g), Outcome::Ok(o)) => match compare {
            Compare::Exact => g == o,
            Compare::Shape(re) => re.is_match(g) && re.is_match(o),
        },
        (Outcome::Err(_), Outcome::Err(o)) => o != "PANIC",
        _ => false,
    }
}

fn show(o: &Outcome) -> String {
    match o {
        Outcome::Ok(s) => format!("ok  {s:?}"),
        Outcome::Err(e) => format!("err {e}"),
    }
}

#[test]
fn corpus_renders_as_go_does() {
    let reference = match Reference::build() {
        Ok(r) => r,
        Err(why) => {
            eprintln!("SKIPPED: differential template tests need the Go reference: {why}");
            return;
        }
    };
    let cases = corpus();
    let data = data();
    let inputs: Vec<_> = cases
        .iter()
        .map(|c| (c.map, c.template.clone(), data.clone()))
        .collect();
    let go = reference.render_all(&inputs).expect("reference renders");
    let known_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gotemplate/known_differences.txt");
    let known: BTreeSet<String> = std::fs::read_to_string(&known_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("# ") && !l.is_empty())
        .map(str::to_string)
        .collect();
    let mut report = String::new();
    let mut differing = Vec::new();
    let mut unexpected = Vec::new();
    for (case, go) in cases.iter().zip(&go) {
        let ours = ours(case.map, &case.template, &data);
        if same(&case.compare, go, &ours) {
            if known.contains(&case.line) {
                report.push_str(&format!(
                    "NOW IDENTICAL (remove from the list): {}\n",
                    case.line
                ));
            }
            continue;
        }
        report.push_str(&format!(
            "DIFF {}\n  go:   {}\n  ours: {}\n",
            case.line,
            show(go),
            show(&ours)
        ));
        differing.push(case.line.clone());
        if !known.contains(&case.line) {
            unexpected.push(case.line.clone());
        }
    }
    let total = cases.len();
    let identical = total - differing.len();
    let summary = format!(
        "corpus: {identical}/{total} identical ({:.1}%), {} listed differences, {} unexpected",
        100.0 * identical as f64 / total as f64,
        differing.len() - unexpected.len(),
        unexpected.len()
    );
    report.push_str(&summary);
    report.push('\n');
    let report_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gotemplate/report.txt");
    let _ = std::fs::write(&report_path, &report);
    eprintln!("{report}");
    eprintln!("(report in {})", report_path.display());
    if std::env::var_os("GOTEMPLATE_BLESS").is_some() {
        let mut text = String::from(
            "# Corpus lines whose output differs from Go's on purpose or for now; docs/templates.md\n\
             # gives the reason for each group. Rewritten by GOTEMPLATE_BLESS=1.\n",
        );
        for l in &differing {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&known_path, text).expect("write known differences");
        return;
    }
    assert!(
        unexpected.is_empty(),
        "{} corpus cases differ from Go and are not listed in known_differences.txt:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

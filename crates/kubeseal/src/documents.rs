//! Reading and writing Kubernetes objects as YAML or JSON, one or several per input.

use std::io::{Read, Write};
use std::path::Path;

use serde::de::DeserializeSeed;
use serde_json::Value;

use crate::bounded::{Bounded, Budget, budget_for};

use crate::cli::Format;
use crate::error::{Error, Result};

/// Reads `path`, or stdin when `None`, returning the text and a name for messages.
pub fn read_input(path: Option<&Path>) -> Result<(String, String)> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(Error::io(p))?;
            Ok((text, p.display().to_string()))
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(Error::Stdin)?;
            Ok((text, "stdin".to_string()))
        }
    }
}

/// Whether text looks like JSON rather than YAML.
pub fn is_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Parses every object in `text`: concatenated JSON objects, or YAML documents split by `---`.
pub fn parse_all(text: &str, source_name: &str) -> Result<Vec<Value>> {
    let syntax = |reason: String| Error::Syntax {
        source_name: source_name.to_string(),
        reason,
    };
    let mut docs = Vec::new();
    if is_json(text) {
        for doc in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            docs.push(doc.map_err(|e| syntax(e.to_string()))?);
        }
    } else {
        // one budget for the whole input: aliases must not expand it without bound
        let budget = Budget::new(budget_for(text.len()));
        for de in serde_yaml_ng::Deserializer::from_str(text) {
            let doc: Value = Bounded(&budget)
                .deserialize(de)
                .map_err(|e| syntax(e.to_string()))?;
            if !doc.is_null() {
                docs.push(doc);
            }
        }
    }
    if docs.iter().any(|d| !d.is_object()) {
        return Err(syntax("expected an object (a Kubernetes manifest)".into()));
    }
    if docs.is_empty() {
        return Err(Error::Empty(source_name.to_string()));
    }
    Ok(docs)
}

/// Checks that a parsed object is `apiVersion`/`kind`.
pub fn expect_kind(
    doc: &Value,
    api_version: &str,
    kind: &'static str,
    expected: &'static str,
    source_name: &str,
    index: usize,
) -> Result<()> {
    let found_kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let found_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if found_kind == kind && found_version == api_version {
        return Ok(());
    }
    let found = if found_kind.is_empty() {
        "an object without kind".to_string()
    } else {
        format!("a {found_kind} ({found_version})")
    };
    Err(Error::WrongKind {
        source_name: source_name.to_string(),
        index,
        found,
        expected,
    })
}

/// Renders objects in `format`: pretty JSON objects, or YAML documents each after `---`.
pub fn render(docs: &[Value], format: Format) -> Result<String> {
    let mut out = String::new();
    for doc in docs {
        match format {
            Format::Json => {
                let text =
                    serde_json::to_string_pretty(doc).map_err(|e| Error::Render(e.to_string()))?;
                out.push_str(&text);
                out.push('\n');
            }
            Format::Yaml => {
                let sorted: Value = sort_keys(doc.clone());
                let text =
                    serde_yaml_ng::to_string(&sorted).map_err(|e| Error::Render(e.to_string()))?;
                out.push_str("---\n");
                out.push_str(&text);
            }
        }
    }
    Ok(out)
}

/// Go's YAML output sorts keys; so do we, so diffs against upstream output stay small.
fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// The format to write: `.yaml`/`.yml` output files force YAML, as upstream.
pub fn output_format(flag: Format, output: Option<&Path>) -> Format {
    match output.and_then(|p| p.extension()).and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => Format::Yaml,
        _ => flag,
    }
}

/// Writes `text` to `path` atomically (temporary file, then rename), or to stdout.
pub fn write_output(path: Option<&Path>, text: &str) -> Result<()> {
    match path {
        Some(p) => write_atomic(p, text),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(Error::io("stdout"))
        }
    }
}

/// Replaces `path` with `text` in one rename.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(Error::io(dir))?;
    tmp.write_all(text.as_bytes()).map_err(Error::io(path))?;
    tmp.persist(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

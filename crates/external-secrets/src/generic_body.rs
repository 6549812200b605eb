//! The body of a generic target (`spec.target.manifest`: a ConfigMap or any namespaced custom
//! resource) from the fetched values and the template, with upstream's placement rules:
//!
//! - without a template, the values go to `data` of a ConfigMap and to `spec.data` of any other
//!   kind, as plain strings; the ExternalSecret's labels and annotations are copied;
//! - with a template, only what it renders is written: `template.data` entries to the top-level
//!   `data`, each `templateFrom[]` entry to its `target` (`Data`, `Labels`, `Annotations`,
//!   `Spec` or a dot path such as `spec.database`, where a rendered value is read as YAML);
//!   `template.metadata` gives the labels and annotations.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use strongroom_core::crd::external_secrets::{ExternalSecretTemplate, TemplateFrom};
use strongroom_core::template::Engine;
use strongroom_provider_api::SecretBytes;

use crate::desired::{NOT_COPIED, Renderer, TemplateSources, render_item};

/// What a generic target holds besides its identity.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GenericBody {
    /// Top-level fields other than `apiVersion`, `kind`, `metadata` and `status`.
    pub content: Map<String, Value>,
    /// Labels (without the controller's own).
    pub labels: BTreeMap<String, String>,
    /// Annotations (without the controller's own).
    pub annotations: BTreeMap<String, String>,
}

/// Top-level fields a template may not write: the identity and what the server owns.
const RESERVED: [&str; 4] = ["apiVersion", "kind", "metadata", "status"];

/// Builds the body for a target of `kind` (e.g. `ConfigMap`).
pub fn generic_body(
    kind: &str,
    es_labels: &BTreeMap<String, String>,
    es_annotations: &BTreeMap<String, String>,
    template: Option<&ExternalSecretTemplate>,
    fetched: &BTreeMap<String, SecretBytes>,
    sources: &TemplateSources,
    engine: &Engine,
) -> Result<GenericBody, String> {
    let Some(template) = template else {
        let mut data = Map::new();
        for (key, value) in fetched {
            let text = value.expose_str().ok_or_else(|| {
                format!("the value of key {key:?} is not UTF-8 text; a {kind} holds text only")
            })?;
            data.insert(key.clone(), Value::String(text.to_string()));
        }
        let mut content = Map::new();
        if kind == "ConfigMap" {
            content.insert("data".into(), Value::Object(data));
        } else {
            content.insert(
                "spec".into(),
                Value::Object(Map::from_iter([("data".to_string(), Value::Object(data))])),
            );
        }
        let mut annotations = es_annotations.clone();
        for k in NOT_COPIED {
            annotations.remove(k);
        }
        return Ok(GenericBody {
            content,
            labels: es_labels.clone(),
            annotations,
        });
    };
    let renderer = Renderer::new(engine, fetched);
    let mut out = GenericBody::default();
    let root = if matches!(kind, "ConfigMap" | "Secret") {
        "data"
    } else {
        "spec"
    };
    out.content.insert(root.into(), Value::Object(Map::new()));
    for (i, entry) in template.template_from.iter().flatten().enumerate() {
        let at = format!("spec.target.template.templateFrom[{i}]");
        apply_template_from(&mut out, entry, &at, &renderer, sources)?;
    }
    for (key, text) in template.data.iter().flatten() {
        let value = renderer.render(key, text)?;
        field_map(&mut out.content, "data")?.insert(key.clone(), Value::String(value));
    }
    if let Some(meta) = &template.metadata {
        for (k, v) in meta.labels.iter().flatten() {
            out.labels.insert(k.clone(), renderer.render(k, v)?);
        }
        for (k, v) in meta.annotations.iter().flatten() {
            out.annotations.insert(k.clone(), renderer.render(k, v)?);
        }
    }
    Ok(out)
}

/// Where a `templateFrom[]` entry writes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Data,
    Labels,
    Annotations,
    /// A dot path of at least one segment, case kept (`spec`, `spec.database`).
    Path(Vec<String>),
}

fn target_of(entry: &TemplateFrom, at: &str) -> Result<Target, String> {
    let raw = entry.target.as_deref().unwrap_or("");
    match raw.to_ascii_lowercase().as_str() {
        "" | "data" => return Ok(Target::Data),
        "labels" => return Ok(Target::Labels),
        "annotations" => return Ok(Target::Annotations),
        "spec" => return Ok(Target::Path(vec!["spec".into()])),
        _ => {}
    }
    let segments: Vec<String> = raw.split('.').map(str::to_string).collect();
    if segments.iter().any(String::is_empty) {
        return Err(format!("{at}.target {raw:?} is not a dot path"));
    }
    if RESERVED.contains(&segments[0].as_str()) {
        return Err(format!(
            "{at}.target {raw:?}: {} is not written by templates (use Labels or Annotations for metadata)",
            segments[0]
        ));
    }
    Ok(Target::Path(segments))
}

fn apply_template_from(
    out: &mut GenericBody,
    entry: &TemplateFrom,
    at: &str,
    renderer: &Renderer<'_>,
    sources: &TemplateSources,
) -> Result<(), String> {
    let target = target_of(entry, at)?;
    if let Some(literal) = &entry.literal {
        let name = format!("{at}.literal");
        match &target {
            Target::Path(path) => {
                // the whole rendered literal is one YAML document placed at the path
                let rendered = renderer.render(&name, literal)?;
                let parsed: Value = serde_yaml_ng::from_str(&rendered)
                    .map_err(|_| format!("template {name:?} did not render YAML"))?;
                set_path(&mut out.content, path, parsed, true, at)?;
            }
            _ => {
                let map = renderer.render_map(&name, literal)?;
                apply_values(out, &target, map, at)?;
            }
        }
    }
    let mut rendered: BTreeMap<String, String> = BTreeMap::new();
    if let Some(cm) = &entry.config_map {
        let data = sources
            .config_maps
            .get(&cm.name)
            .ok_or_else(|| format!("{at}: ConfigMap {:?} not found", cm.name))?;
        for item in &cm.items {
            let text = data.get(&item.key).ok_or_else(|| {
                format!("{at}: ConfigMap {:?} has no key {:?}", cm.name, item.key)
            })?;
            render_item(renderer, &mut rendered, &item.key, text, item.template_as)?;
        }
    }
    if let Some(secret) = &entry.secret {
        let data = sources
            .secrets
            .get(&secret.name)
            .ok_or_else(|| format!("{at}: Secret {:?} not found", secret.name))?;
        for item in &secret.items {
            let raw = data.get(&item.key).ok_or_else(|| {
                format!("{at}: Secret {:?} has no key {:?}", secret.name, item.key)
            })?;
            let text = std::str::from_utf8(raw).map_err(|_| {
                format!(
                    "{at}: Secret {:?} key {:?} is not UTF-8 text",
                    secret.name, item.key
                )
            })?;
            render_item(renderer, &mut rendered, &item.key, text, item.template_as)?;
        }
    }
    apply_values(out, &target, rendered, at)
}

/// Writes rendered key/value pairs to a target: into the map at `Data`, `Labels`,
/// `Annotations` or `spec`; at a longer path each value (read as YAML) replaces the field.
fn apply_values(
    out: &mut GenericBody,
    target: &Target,
    values: BTreeMap<String, String>,
    at: &str,
) -> Result<(), String> {
    match target {
        Target::Data => {
            let data = field_map(&mut out.content, "data")?;
            for (k, v) in values {
                data.insert(k, Value::String(v));
            }
        }
        Target::Labels => out.labels.extend(values),
        Target::Annotations => out.annotations.extend(values),
        Target::Path(path) if path.len() == 1 => {
            let map = field_map(&mut out.content, &path[0])?;
            for (k, v) in values {
                map.insert(k, Value::String(v));
            }
        }
        Target::Path(path) => {
            for (_, v) in values {
                set_path(&mut out.content, path, yaml_or_text(&v), false, at)?;
            }
        }
    }
    Ok(())
}

/// A rendered value read as YAML (numbers, booleans, maps and lists keep their type), or the
/// text itself when it is not YAML.
fn yaml_or_text(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::String(text.to_string());
    }
    serde_yaml_ng::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

/// The map at top-level field `name`, created when missing.
fn field_map<'a>(
    content: &'a mut Map<String, Value>,
    name: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    let field = content
        .entry(name.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    match field {
        Value::Object(map) => Ok(map),
        _ => Err(format!("{name} is not a map")),
    }
}

/// Sets `path` in `content`, creating maps on the way. With `merge` a map value is merged
/// key by key into a map already there (upstream's rule for a rendered literal at a nested
/// path); a one-segment path is always replaced.
fn set_path(
    content: &mut Map<String, Value>,
    path: &[String],
    value: Value,
    merge: bool,
    at: &str,
) -> Result<(), String> {
    let (last, parents) = path
        .split_last()
        .ok_or_else(|| format!("{at}: empty target"))?;
    let mut current = content;
    for (i, segment) in parents.iter().enumerate() {
        let next = current
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        current = match next {
            Value::Object(map) => map,
            _ => {
                return Err(format!(
                    "{at}.target: {} is not a map",
                    path[..=i].join(".")
                ));
            }
        };
    }
    match (current.get_mut(last), value) {
        (Some(Value::Object(existing)), Value::Object(new)) if merge && !parents.is_empty() => {
            existing.extend(new);
        }
        (_, value) => {
            current.insert(last.clone(), value);
        }
    }
    Ok(())
}

/// The hash recorded in the `data-hash` annotation of a generic target: SHA3-224 of the
/// content's canonical JSON (keys sorted), so drift in any written field shows.
pub fn content_hash(content: &Map<String, Value>) -> String {
    use sha3::Digest;
    let canonical = canonical(&Value::Object(content.clone()));
    sha3::Sha3_224::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The content of an object as the server holds it: every top-level field except the
/// identity, metadata and status.
pub fn content_of(object: &Value) -> Map<String, Value> {
    object
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let sorted: BTreeMap<&String, String> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            let parts: Vec<String> = sorted
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", parts.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use strongroom_core::crd::external_secrets::{
        ExternalSecretTemplateMetadata, TemplateRef, TemplateRefItem, TemplateScope,
    };

    fn fetched() -> BTreeMap<String, SecretBytes> {
        BTreeMap::from([
            ("user".to_string(), SecretBytes::from("admin")),
            ("port".to_string(), SecretBytes::from("5432")),
        ])
    }

    fn body(kind: &str, template: Option<&ExternalSecretTemplate>) -> Result<GenericBody, String> {
        generic_body(
            kind,
            &BTreeMap::from([("team".to_string(), "a".to_string())]),
            &BTreeMap::from([(NOT_COPIED[0].to_string(), "{}".to_string())]),
            template,
            &fetched(),
            &TemplateSources::default(),
            &Engine::external_secrets(),
        )
    }

    #[test]
    fn without_template_config_map_data_and_spec_data_elsewhere() {
        let cm = body("ConfigMap", None).unwrap();
        assert_eq!(
            Value::Object(cm.content),
            json!({"data": {"user": "admin", "port": "5432"}})
        );
        assert_eq!(cm.labels.get("team").map(String::as_str), Some("a"));
        assert!(cm.annotations.is_empty(), "last-applied is never copied");
        let cr = body("AppConfig", None).unwrap();
        assert_eq!(
            Value::Object(cr.content),
            json!({"spec": {"data": {"user": "admin", "port": "5432"}}})
        );
    }

    #[test]
    fn binary_values_are_refused_not_mangled() {
        let fetched = BTreeMap::from([("blob".to_string(), SecretBytes::new(vec![0xff, 0x00]))]);
        let err = generic_body(
            "ConfigMap",
            &BTreeMap::new(),
            &BTreeMap::new(),
            None,
            &fetched,
            &TemplateSources::default(),
            &Engine::external_secrets(),
        )
        .unwrap_err();
        assert!(err.contains("\"blob\"") && err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn templates_write_data_nested_paths_and_metadata() {
        let template = ExternalSecretTemplate {
            data: Some(BTreeMap::from([(
                "url".to_string(),
                "postgres://{{ .user }}@db:{{ .port }}".to_string(),
            )])),
            template_from: Some(vec![
                // a literal at a one-segment path replaces the field, as upstream
                TemplateFrom {
                    target: Some("Spec".into()),
                    literal: Some("mode: '{{ .user | upper }}'\nold: gone".into()),
                    ..Default::default()
                },
                TemplateFrom {
                    target: Some("Spec".into()),
                    literal: Some("mode: '{{ .user | upper }}'".into()),
                    ..Default::default()
                },
                TemplateFrom {
                    target: Some("spec.database".into()),
                    literal: Some("user: {{ .user }}\nport: {{ .port }}\n".into()),
                    ..Default::default()
                },
                TemplateFrom {
                    target: Some("spec.database".into()),
                    literal: Some("ssl: true".into()),
                    ..Default::default()
                },
                TemplateFrom {
                    target: Some("annotations".into()),
                    literal: Some("who: '{{ .user }}'".into()),
                    ..Default::default()
                },
            ]),
            metadata: Some(ExternalSecretTemplateMetadata {
                labels: Some(BTreeMap::from([(
                    "app".to_string(),
                    "{{ .user }}-app".to_string(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let b = body("AppConfig", Some(&template)).unwrap();
        assert_eq!(
            Value::Object(b.content),
            json!({
                "spec": {"database": {"user": "admin", "port": 5432, "ssl": true}, "mode": "ADMIN"},
                "data": {"url": "postgres://admin@db:5432"},
            })
        );
        assert_eq!(b.labels.get("app").map(String::as_str), Some("admin-app"));
        assert!(
            !b.labels.contains_key("team"),
            "a template replaces the copied labels"
        );
        assert_eq!(b.annotations.get("who").map(String::as_str), Some("admin"));
    }

    #[test]
    fn template_sources_at_a_path_and_in_data() {
        let sources = TemplateSources {
            config_maps: BTreeMap::from([(
                "tpl".to_string(),
                BTreeMap::from([
                    (
                        "conn".to_string(),
                        "host: db\nuser: {{ .user }}".to_string(),
                    ),
                    ("pairs".to_string(), "a: '{{ .port }}'".to_string()),
                ]),
            )]),
            ..Default::default()
        };
        let template = ExternalSecretTemplate {
            template_from: Some(vec![
                TemplateFrom {
                    target: Some("spec.connection".into()),
                    config_map: Some(TemplateRef {
                        name: "tpl".into(),
                        items: vec![TemplateRefItem {
                            key: "conn".into(),
                            template_as: None,
                        }],
                    }),
                    ..Default::default()
                },
                TemplateFrom {
                    config_map: Some(TemplateRef {
                        name: "tpl".into(),
                        items: vec![TemplateRefItem {
                            key: "pairs".into(),
                            template_as: Some(TemplateScope::KeysAndValues),
                        }],
                    }),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let b = generic_body(
            "ConfigMap",
            &BTreeMap::new(),
            &BTreeMap::new(),
            Some(&template),
            &fetched(),
            &sources,
            &Engine::external_secrets(),
        )
        .unwrap();
        assert_eq!(
            Value::Object(b.content),
            json!({"data": {"a": "5432"}, "spec": {"connection": {"host": "db", "user": "admin"}}})
        );
    }

    #[test]
    fn bad_targets_and_templates_are_named() {
        for (target, wanted) in [
            ("metadata.name", "metadata"),
            ("spec..x", "dot path"),
            ("status.x", "status"),
        ] {
            let template = ExternalSecretTemplate {
                template_from: Some(vec![TemplateFrom {
                    target: Some(target.into()),
                    literal: Some("a: b".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            };
            let err = body("AppConfig", Some(&template)).unwrap_err();
            assert!(
                err.contains("templateFrom[0].target") && err.contains(wanted),
                "{err}"
            );
        }
        let not_a_map = ExternalSecretTemplate {
            template_from: Some(vec![
                TemplateFrom {
                    target: Some("spec.a".into()),
                    literal: Some("plain".into()),
                    ..Default::default()
                },
                TemplateFrom {
                    target: Some("spec.a.b".into()),
                    literal: Some("x: y".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let err = body("AppConfig", Some(&not_a_map)).unwrap_err();
        assert!(err.contains("spec.a is not a map"), "{err}");
    }

    #[test]
    fn content_hash_ignores_key_order_and_identity() {
        let a = content_of(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
            "data": {"a": "1", "b": "2"}}),
        );
        let b = content_of(&json!({"data": {"b": "2", "a": "1"}, "status": {"x": 1}}));
        assert_eq!(content_hash(&a), content_hash(&b));
        let c = content_of(&json!({"data": {"a": "1", "b": "3"}}));
        assert_ne!(content_hash(&a), content_hash(&c));
        assert_eq!(content_hash(&a).len(), 56);
    }
}

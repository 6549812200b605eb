//! The target Secret an ExternalSecret wants, from the fetched values and the template, in
//! upstream's order: metadata, base data, `templateFrom[]` in order, `template.data`, then the
//! templated labels and annotations.

use std::collections::BTreeMap;

use strongroom_core::crd::external_secrets::{
    ExternalSecretTemplate, TemplateFrom, TemplateMergePolicy, TemplateScope,
};
use strongroom_core::template::{Engine, Value};
use strongroom_provider_api::SecretBytes;

/// Annotations never copied from an ExternalSecret to its Secret.
pub(crate) const NOT_COPIED: [&str; 1] = ["kubectl.kubernetes.io/last-applied-configuration"];

/// ConfigMaps and Secrets that `templateFrom[]` reads, by name.
#[derive(Debug, Default, Clone)]
pub struct TemplateSources {
    /// ConfigMap name → data.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Secret name → data.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

/// The Secret content to write.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Desired {
    /// Secret data.
    pub data: BTreeMap<String, Vec<u8>>,
    /// Secret type, when the template sets one.
    pub type_: Option<String>,
    /// Labels (without the controller's own).
    pub labels: BTreeMap<String, String>,
    /// Annotations (without the controller's own).
    pub annotations: BTreeMap<String, String>,
}

/// Where a `templateFrom[]` entry writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Data,
    Labels,
    Annotations,
}

fn target_of(entry: &TemplateFrom, at: &str) -> Result<Target, String> {
    match entry
        .target
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("data") | Some("") => Ok(Target::Data),
        Some("labels") => Ok(Target::Labels),
        Some("annotations") => Ok(Target::Annotations),
        Some(other) => Err(format!(
            "{at}.target {other:?}: a Secret target takes Data, Annotations or Labels"
        )),
    }
}

/// The names of the ConfigMaps and Secrets a template reads.
pub fn sources_needed(template: Option<&ExternalSecretTemplate>) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    for entry in template
        .and_then(|t| t.template_from.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(cm) = &entry.config_map {
            cms.push(cm.name.clone());
        }
        if let Some(s) = &entry.secret {
            secrets.push(s.name.clone());
        }
    }
    (cms, secrets)
}

/// Renders templates against the fetched values (the template's `.`).
pub(crate) struct Renderer<'a> {
    engine: &'a Engine,
    dot: Value,
    secrets: Vec<&'a str>,
    /// The fetched values as bytes, for renders whose result is Secret data.
    raw: BTreeMap<String, Vec<u8>>,
}

impl<'a> Renderer<'a> {
    /// A renderer whose `.` is the fetched values that are text.
    pub(crate) fn new(engine: &'a Engine, fetched: &'a BTreeMap<String, SecretBytes>) -> Self {
        let texts: Vec<(&str, &str)> = fetched
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.expose_str()?)))
            .collect();
        Renderer {
            engine,
            dot: Value::Map(
                texts
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                    .collect(),
            ),
            secrets: texts.iter().map(|(_, v)| *v).collect(),
            raw: fetched
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_vec()))
                .collect(),
        }
    }

    /// Renders a `template.data` entry as upstream's `execute` does: values that are not
    /// UTF-8 reach the functions that read bytes, and bytes made by `b64dec`, `pkcs12*` and
    /// friends are written as they are.
    fn render_bytes(&self, name: &str, text: &str) -> Result<Vec<u8>, String> {
        self.engine
            .render_data(name, text, &self.raw)
            .map_err(|e| e.to_string())
    }

    /// Renders `text` (named `name` in errors) to a string.
    pub(crate) fn render(&self, name: &str, text: &str) -> Result<String, String> {
        self.engine
            .render(name, text, self.dot.clone(), &self.secrets)
            .map_err(|e| e.to_string())
    }

    /// Renders `text` and reads the result as a YAML map of keys to values.
    pub(crate) fn render_map(
        &self,
        name: &str,
        text: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let rendered = self.render(name, text)?;
        if rendered.trim().is_empty() {
            return Ok(BTreeMap::new());
        }
        let parsed: BTreeMap<String, serde_yaml_ng::Value> = serde_yaml_ng::from_str(&rendered)
            .map_err(|_| {
                format!("template {name:?} did not render a YAML map of keys to values")
            })?;
        Ok(parsed
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_yaml_ng::Value::String(s) => s,
                    serde_yaml_ng::Value::Null => String::new(),
                    other => serde_yaml_ng::to_string(&other)
                        .unwrap_or_default()
                        .trim_end()
                        .to_string(),
                };
                (k, text)
            })
            .collect())
    }
}

/// The desired Secret. `es_labels`/`es_annotations` are the ExternalSecret's own, copied when
/// there is no template.
pub fn desired(
    es_labels: &BTreeMap<String, String>,
    es_annotations: &BTreeMap<String, String>,
    template: Option<&ExternalSecretTemplate>,
    fetched: &BTreeMap<String, SecretBytes>,
    sources: &TemplateSources,
    engine: &Engine,
) -> Result<Desired, String> {
    let fetched_bytes = || -> BTreeMap<String, Vec<u8>> {
        fetched
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_vec()))
            .collect()
    };
    let Some(template) = template else {
        let mut annotations = es_annotations.clone();
        for k in NOT_COPIED {
            annotations.remove(k);
        }
        return Ok(Desired {
            data: fetched_bytes(),
            type_: None,
            labels: es_labels.clone(),
            annotations,
        });
    };
    let renderer = Renderer::new(engine, fetched);
    let has_data_templates = template.data.as_ref().is_some_and(|d| !d.is_empty())
        || template
            .template_from
            .as_ref()
            .is_some_and(|t| !t.is_empty());
    let mut out = Desired {
        type_: template.type_.clone().filter(|t| !t.is_empty()),
        ..Desired::default()
    };
    if template.merge_policy == Some(TemplateMergePolicy::Merge) || !has_data_templates {
        out.data = fetched_bytes();
    }
    for (i, entry) in template.template_from.iter().flatten().enumerate() {
        let at = format!("spec.target.template.templateFrom[{i}]");
        let target = target_of(entry, &at)?;
        let mut rendered: BTreeMap<String, String> = BTreeMap::new();
        if let Some(literal) = &entry.literal {
            rendered.extend(renderer.render_map(&format!("{at}.literal"), literal)?);
        }
        if let Some(cm) = &entry.config_map {
            let data = sources
                .config_maps
                .get(&cm.name)
                .ok_or_else(|| format!("{at}: ConfigMap {:?} not found", cm.name))?;
            for item in &cm.items {
                let text = data.get(&item.key).ok_or_else(|| {
                    format!("{at}: ConfigMap {:?} has no key {:?}", cm.name, item.key)
                })?;
                render_item(&renderer, &mut rendered, &item.key, text, item.template_as)?;
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
                render_item(&renderer, &mut rendered, &item.key, text, item.template_as)?;
            }
        }
        let decoding = entry.values_decoding_strategy.unwrap_or_default();
        match target {
            Target::Data => {
                for (k, v) in rendered {
                    // binary-safe: a rendered base64 value becomes its bytes
                    let value = crate::keys::decode(&k, SecretBytes::from(v.as_str()), decoding)
                        .map_err(|e| format!("{at}.valuesDecodingStrategy: {e}"))?;
                    out.data.insert(k, value.expose().to_vec());
                }
            }
            Target::Labels => out.labels.extend(rendered),
            Target::Annotations => out.annotations.extend(rendered),
        }
    }
    for (key, text) in template.data.iter().flatten() {
        out.data
            .insert(key.clone(), renderer.render_bytes(key, text)?);
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

/// Renders one `templateFrom[].configMap/secret` item into `into`, by its `templateAs`.
pub(crate) fn render_item(
    renderer: &Renderer<'_>,
    into: &mut BTreeMap<String, String>,
    key: &str,
    text: &str,
    scope: Option<TemplateScope>,
) -> Result<(), String> {
    match scope.unwrap_or_default() {
        TemplateScope::Values => {
            into.insert(key.to_string(), renderer.render(key, text)?);
        }
        TemplateScope::KeysAndValues => into.extend(renderer.render_map(key, text)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::crd::external_secrets::{
        ExternalSecretTemplateMetadata, TemplateRef, TemplateRefItem,
    };

    fn fetched() -> BTreeMap<String, SecretBytes> {
        BTreeMap::from([
            ("user".to_string(), SecretBytes::from("admin")),
            ("password".to_string(), SecretBytes::from("s3cr3t-canary")),
        ])
    }

    fn text(d: &Desired, k: &str) -> String {
        String::from_utf8_lossy(d.data.get(k).map(Vec::as_slice).unwrap_or_default()).into_owned()
    }

    #[test]
    fn no_template_copies_data_and_metadata() {
        let labels = BTreeMap::from([("team".to_string(), "a".to_string())]);
        let annotations = BTreeMap::from([
            ("note".to_string(), "x".to_string()),
            (NOT_COPIED[0].to_string(), "{}".to_string()),
        ]);
        let d = desired(
            &labels,
            &annotations,
            None,
            &fetched(),
            &Default::default(),
            &Engine::external_secrets(),
        )
        .unwrap_or_default();
        assert_eq!(text(&d, "user"), "admin");
        assert_eq!(d.labels, labels);
        assert_eq!(d.annotations.len(), 1);
    }

    #[test]
    fn template_order_and_merge_policy() {
        let engine = Engine::external_secrets();
        let template = ExternalSecretTemplate {
            type_: Some("kubernetes.io/basic-auth".into()),
            data: Some(BTreeMap::from([(
                "url".to_string(),
                "postgres://{{ .user }}:{{ .password }}@db".to_string(),
            )])),
            template_from: Some(vec![
                TemplateFrom {
                    literal: Some("from-literal: {{ .user | upper }}\nurl: overwritten".into()),
                    ..Default::default()
                },
                TemplateFrom {
                    config_map: Some(TemplateRef {
                        name: "tpl".into(),
                        items: vec![TemplateRefItem {
                            key: "config.yaml".into(),
                            template_as: None,
                        }],
                    }),
                    ..Default::default()
                },
                TemplateFrom {
                    target: Some("labels".into()),
                    literal: Some("owner: '{{ .user }}'".into()),
                    ..Default::default()
                },
            ]),
            metadata: Some(ExternalSecretTemplateMetadata {
                annotations: Some(BTreeMap::from([(
                    "who".to_string(),
                    "{{ .user }}".to_string(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sources = TemplateSources {
            config_maps: BTreeMap::from([(
                "tpl".to_string(),
                BTreeMap::from([("config.yaml".to_string(), "user={{ .user }}".to_string())]),
            )]),
            ..Default::default()
        };
        let d = desired(
            &BTreeMap::new(),
            &BTreeMap::new(),
            Some(&template),
            &fetched(),
            &sources,
            &engine,
        )
        .unwrap_or_default();
        assert_eq!(
            text(&d, "url"),
            "postgres://admin:s3cr3t-canary@db",
            "template.data wins"
        );
        assert_eq!(text(&d, "from-literal"), "ADMIN");
        assert_eq!(text(&d, "config.yaml"), "user=admin");
        assert!(
            !d.data.contains_key("password"),
            "Replace drops fetched keys"
        );
        assert_eq!(d.labels.get("owner").map(String::as_str), Some("admin"));
        assert_eq!(d.annotations.get("who").map(String::as_str), Some("admin"));
        assert_eq!(d.type_.as_deref(), Some("kubernetes.io/basic-auth"));

        let merge = ExternalSecretTemplate {
            merge_policy: Some(TemplateMergePolicy::Merge),
            ..template.clone()
        };
        let d = desired(
            &BTreeMap::new(),
            &BTreeMap::new(),
            Some(&merge),
            &fetched(),
            &sources,
            &engine,
        )
        .unwrap_or_default();
        assert!(d.data.contains_key("password"), "Merge keeps fetched keys");

        let decoded = ExternalSecretTemplate {
            template_from: Some(vec![TemplateFrom {
                literal: Some("blob: '{{ .user | b64enc }}'".into()),
                values_decoding_strategy: Some(
                    strongroom_core::crd::external_secrets::DecodingStrategy::Base64,
                ),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let d = desired(
            &BTreeMap::new(),
            &BTreeMap::new(),
            Some(&decoded),
            &fetched(),
            &sources,
            &engine,
        )
        .unwrap_or_default();
        assert_eq!(
            text(&d, "blob"),
            "admin",
            "valuesDecodingStrategy decodes rendered values"
        );
    }

    #[test]
    fn binary_values_survive_templates() {
        let engine = Engine::external_secrets();
        let fetched =
            BTreeMap::from([("blob".to_string(), SecretBytes::new(vec![0xff, 0x00, 0xfe]))]);
        let template = ExternalSecretTemplate {
            data: Some(BTreeMap::from([
                (
                    "copy".to_string(),
                    "{{ .blob | b64enc | b64dec }}".to_string(),
                ),
                ("encoded".to_string(), "{{ .blob | b64enc }}".to_string()),
            ])),
            ..Default::default()
        };
        let d = desired(
            &BTreeMap::new(),
            &BTreeMap::new(),
            Some(&template),
            &fetched,
            &Default::default(),
            &engine,
        )
        .unwrap_or_default();
        assert_eq!(d.data.get("copy"), Some(&vec![0xff, 0x00, 0xfe]));
        assert_eq!(text(&d, "encoded"), "/wD+");
    }

    #[test]
    fn errors_name_the_template_and_hide_values() {
        let engine = Engine::external_secrets();
        let template = ExternalSecretTemplate {
            data: Some(BTreeMap::from([(
                "k".to_string(),
                "{{ .missing }}".to_string(),
            )])),
            ..Default::default()
        };
        let err = desired(
            &BTreeMap::new(),
            &BTreeMap::new(),
            Some(&template),
            &fetched(),
            &Default::default(),
            &engine,
        )
        .err()
        .unwrap_or_default();
        assert!(err.contains("\"k\"") && err.contains("missing"), "{err}");
        let leaky = ExternalSecretTemplate {
            data: Some(BTreeMap::from([(
                "k".to_string(),
                "{{ fail .password }}".to_string(),
            )])),
            ..Default::default()
        };
        let err = desired(
            &BTreeMap::new(),
            &BTreeMap::new(),
            Some(&leaky),
            &fetched(),
            &Default::default(),
            &engine,
        )
        .err()
        .unwrap_or_default();
        assert!(!err.contains("s3cr3t-canary"), "{err}");
        let bad_target = ExternalSecretTemplate {
            template_from: Some(vec![TemplateFrom {
                target: Some("Spec".into()),
                literal: Some("a: b".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(
            desired(
                &BTreeMap::new(),
                &BTreeMap::new(),
                Some(&bad_target),
                &fetched(),
                &Default::default(),
                &engine
            )
            .is_err()
        );
    }
}

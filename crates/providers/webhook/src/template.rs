//! The data webhook templates render with: `.remoteRef` (what is asked for) and one map per
//! `secrets[]` entry, under the entry's name, holding every key of its Secret.
//!
//! As upstream, the URL renders with the `.remoteRef` members query-escaped (Go's
//! `url.QueryEscape`; `.remoteRef.namespace` and Secret values as they are), the body, the
//! headers and `result.jsonPath` with everything as it is. A key the data lacks prints
//! `<no value>` (Go's default).

use std::collections::{BTreeMap, HashMap};

use strongroom_core::crd::external_secrets::WebhookSecret;
use strongroom_core::template::{Engine, Value};
use strongroom_provider_api::{CredentialResolver, ProviderError, SecretBytes};

/// The label a Secret named in `secrets[]` must carry, and its value.
pub const TYPE_LABEL: (&str, &str) = ("external-secrets.io/type", "webhook");

/// Upstream's refusal of a Secret `name` whose `labels` lack [`TYPE_LABEL`] or give it another
/// value; `Ok` when it is there.
pub(crate) fn check_type_label(
    labels: &std::collections::BTreeMap<String, String>,
    name: &str,
) -> Result<(), String> {
    match labels.get(TYPE_LABEL.0) {
        Some(v) if v == TYPE_LABEL.1 => Ok(()),
        Some(_) => Err(format!("secret {name} type is not '{}'", TYPE_LABEL.1)),
        None => Err(format!(
            "secret {name} does not contain needed label '{}: {}'. Update secret label to use \
             it with webhook",
            TYPE_LABEL.0, TYPE_LABEL.1
        )),
    }
}

/// The `.remoteRef` member left unescaped in the URL.
const UNESCAPED: &str = "namespace";

/// Template data of one call. Its `Debug` shows names only: the values are Secret data and,
/// for a push, the pushed value.
#[derive(Clone, Default)]
pub struct TemplateData {
    remote_ref: Option<BTreeMap<String, String>>,
    secrets: BTreeMap<String, BTreeMap<String, String>>,
}

impl std::fmt::Debug for TemplateData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateData")
            .field(
                "remote_ref",
                &self
                    .remote_ref
                    .as_ref()
                    .map(|m| m.keys().collect::<Vec<_>>()),
            )
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TemplateData {
    /// Data with `.remoteRef` holding `members`.
    pub fn for_remote(members: &[(&str, &str)]) -> Self {
        Self {
            remote_ref: Some(
                members
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            secrets: BTreeMap::new(),
        }
    }

    /// Reads the Secrets of `entries` through `creds` (each in the namespace `namespace_of`
    /// gives for its selector) and adds their keys under each entry's name. A Secret without
    /// the label [`TYPE_LABEL`] is refused, as upstream refuses it.
    pub async fn add_secrets(
        &mut self,
        creds: &dyn CredentialResolver,
        entries: &[WebhookSecret],
        namespace_of: impl Fn(&WebhookSecret) -> Result<String, ProviderError>,
    ) -> Result<(), ProviderError> {
        for entry in entries {
            let name = entry.secret_ref.name.as_deref().unwrap_or_default();
            let namespace = namespace_of(entry)?;
            let secret = creds.labelled_secret(&namespace, name).await?;
            check_type_label(&secret.labels, name).map_err(ProviderError::InvalidConfig)?;
            let values = self.secrets.entry(entry.name.clone()).or_default();
            for (k, v) in secret.data {
                values.insert(k, String::from_utf8_lossy(v.expose()).into_owned());
            }
        }
        Ok(())
    }

    /// Adds `value` as `.remoteRef.<member>` (PushSecret's value under the remote key).
    pub fn add_remote_member(&mut self, member: &str, value: &SecretBytes) {
        self.remote_ref.get_or_insert_with(BTreeMap::new).insert(
            member.to_string(),
            String::from_utf8_lossy(value.expose()).into_owned(),
        );
    }

    /// Every value read from a Secret (and a pushed value): what messages must never show.
    pub fn secret_values(&self) -> Vec<&str> {
        self.secrets
            .values()
            .flat_map(|m| m.values().map(String::as_str))
            .collect()
    }

    fn dot(&self, escape: bool) -> Value {
        let map = |m: &BTreeMap<String, String>, escape_member: &dyn Fn(&str) -> bool| {
            Value::Map(
                m.iter()
                    .map(|(k, v)| {
                        let v = if escape_member(k) {
                            query_escape(v)
                        } else {
                            v.clone()
                        };
                        (k.clone(), Value::String(v))
                    })
                    .collect(),
            )
        };
        let mut top: HashMap<String, Value> = self
            .secrets
            .iter()
            .map(|(name, values)| (name.clone(), map(values, &|_| false)))
            .collect();
        if let Some(remote) = &self.remote_ref {
            top.insert(
                "remoteRef".into(),
                map(remote, &|k| escape && k != UNESCAPED),
            );
        }
        Value::Map(top.into())
    }

    /// Renders the URL template (`.remoteRef` members query-escaped).
    pub fn render_url(&self, text: &str, hidden: &[&str]) -> Result<String, ProviderError> {
        self.render_with("url", text, self.dot(true), hidden)
    }

    /// Renders a template other than the URL (`what` names it in messages).
    pub fn render(&self, what: &str, text: &str, hidden: &[&str]) -> Result<String, ProviderError> {
        self.render_with(what, text, self.dot(false), hidden)
    }

    fn render_with(
        &self,
        what: &str,
        text: &str,
        dot: Value,
        hidden: &[&str],
    ) -> Result<String, ProviderError> {
        if text.is_empty() {
            return Ok(String::new());
        }
        let mut secrets = self.secret_values();
        secrets.extend_from_slice(hidden);
        Engine::external_secrets()
            .with_missing_key_error(false)
            .render("webhooktemplate", text, dot, &secrets)
            .map_err(|e| ProviderError::InvalidConfig(format!("failed to parse {what}: {e}")))
    }
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` stay, a space becomes `+`, every other
/// byte `%XX`.
pub fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn with_creds() -> TemplateData {
        let mut data = TemplateData::for_remote(&[
            ("key", "db/main user"),
            ("property", ""),
            ("namespace", "team a"),
        ]);
        data.secrets.insert(
            "creds".into(),
            BTreeMap::from([("token".to_string(), "s3cr3t/x".to_string())]),
        );
        data
    }

    #[test]
    fn debug_shows_names_never_values() {
        let mut data = with_creds();
        data.add_remote_member("db/main", &SecretBytes::from("pushed-canary"));
        let shown = format!("{data:?}");
        assert!(shown.contains("creds") && shown.contains("key"), "{shown}");
        for value in ["s3cr3t/x", "db/main user", "pushed-canary"] {
            assert!(!shown.contains(value), "{value} in {shown}");
        }
    }

    #[test]
    fn urls_escape_the_remote_ref_and_other_templates_do_not() {
        let data = with_creds();
        let url = data
            .render_url(
                "http://h/{{ .remoteRef.key }}?ns={{ .remoteRef.namespace }}&t={{ .creds.token }}",
                &[],
            )
            .unwrap();
        assert_eq!(url, "http://h/db%2Fmain+user?ns=team a&t=s3cr3t/x");
        let body = data
            .render(
                "body",
                "{{ .remoteRef.key }} {{ .creds.token | upper }}",
                &[],
            )
            .unwrap();
        assert_eq!(body, "db/main user S3CR3T/X");
    }

    #[test]
    fn missing_keys_print_no_value_and_errors_hide_secret_values() {
        let data = with_creds();
        assert_eq!(
            data.render("body", "{{ .creds.nope }}|{{ .remoteRef.version }}", &[])
                .unwrap(),
            "<no value>|<no value>"
        );
        let e = data
            .render("body", "{{ fail .creds.token }}", &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("failed to parse body:") && !e.contains("s3cr3t"),
            "{e}"
        );
        assert_eq!(query_escape("a b&c=d/é~"), "a+b%26c%3Dd%2F%C3%A9~");
    }
}

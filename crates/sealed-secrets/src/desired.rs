//! The Secret a SealedSecret unseals into. Pure: given the object and the keys, it returns the
//! Secret to apply or says precisely why it cannot, never naming a secret value.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde_json::Value;
use strongroom_core::crd::sealed_secret::{SKIP_SET_OWNER_REFERENCES_ANNOTATION, SealedSecret};
use strongroom_core::sealing::{Fingerprint, KeyRing, SealTarget, UnsealError, decode_base64};
use strongroom_core::template::{Engine, TemplateError, render_items};

/// Go's builtins plus sprig, as upstream renders `template.data`.
static TEMPLATES: LazyLock<Engine> = LazyLock::new(Engine::sprig);

/// Why a SealedSecret cannot be unsealed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UnsealFailure {
    /// One item failed.
    #[error("cannot unseal item {item:?}: {source}")]
    Item {
        /// The `encryptedData` key.
        item: String,
        /// Why.
        source: UnsealError,
    },
    /// The deprecated `spec.data` failed.
    #[error("cannot unseal spec.data: {0}")]
    LegacyData(UnsealError),
    /// `spec.data` opened but does not hold a Secret.
    #[error("spec.data does not hold a Secret object")]
    LegacyNotASecret,
    /// `spec.data` is set while the controller refuses it.
    #[error("spec.data uses the deprecated v1 format and --accept-deprecated-v1-data is off")]
    LegacyRefused,
    /// Both formats at once.
    #[error("spec.data and spec.encryptedData are both set: keep only encryptedData")]
    BothFormats,
    /// An item is not a string.
    #[error("encryptedData.{0} is not a string")]
    NotAString(String),
    /// A `template.data` entry does not parse or fails to render.
    #[error("cannot render spec.template.data: {0}")]
    Template(TemplateError),
    /// The object has no name or namespace.
    #[error("the SealedSecret has no name or namespace")]
    NoIdentity,
}

impl UnsealFailure {
    /// A short category for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Item { source, .. } | Self::LegacyData(source) => source.category(),
            Self::LegacyNotASecret | Self::NotAString(_) | Self::BothFormats | Self::NoIdentity => {
                "invalid"
            }
            Self::LegacyRefused => "unsupported",
            Self::Template(_) => "template",
        }
    }
}

/// What unsealing produced.
pub struct Desired {
    /// The Secret to write.
    pub secret: Secret,
    /// The keys that opened the items (most SealedSecrets use one).
    pub keys: Vec<Fingerprint>,
}

/// Shows the Secret's name and its data keys, never its values.
impl std::fmt::Debug for Desired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let data_keys: Vec<&String> = self
            .secret
            .data
            .iter()
            .flat_map(|d| d.keys())
            .chain(self.secret.string_data.iter().flat_map(|d| d.keys()))
            .collect();
        f.debug_struct("Desired")
            .field("namespace", &self.secret.metadata.namespace)
            .field("name", &self.secret.metadata.name)
            .field("type", &self.secret.type_)
            .field("data_keys", &data_keys)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// The SealedSecret's namespace and name.
fn identity(ss: &SealedSecret) -> Result<(&str, &str), UnsealFailure> {
    match (
        ss.metadata.namespace.as_deref(),
        ss.metadata.name.as_deref(),
    ) {
        (Some(ns), Some(name)) => Ok((ns, name)),
        _ => Err(UnsealFailure::NoIdentity),
    }
}

/// The decrypted items of `ss` (from `encryptedData`, or the deprecated `spec.data`) and the keys
/// that opened them, before any template is rendered.
pub fn unseal_items(
    ss: &SealedSecret,
    ring: &KeyRing,
    hint: Option<&Fingerprint>,
    accept_v1_data: bool,
) -> Result<(BTreeMap<String, ByteString>, Vec<Fingerprint>), UnsealFailure> {
    let (namespace, name) = identity(ss)?;
    let target = SealTarget {
        scope: ss.scope(),
        namespace,
        name,
    };
    let mut data = BTreeMap::new();
    let mut keys: Vec<Fingerprint> = Vec::new();
    let mut hint = hint.cloned();
    if let Some(blob) = ss.spec.data.as_ref().filter(|d| !d.is_empty()) {
        if !ss.spec.encrypted_data.is_empty() {
            return Err(UnsealFailure::BothFormats);
        }
        if !accept_v1_data {
            return Err(UnsealFailure::LegacyRefused);
        }
        let bytes = decode_base64(blob).map_err(UnsealFailure::LegacyData)?;
        let opened = ring
            .unseal(&bytes, target, hint.as_ref())
            .map_err(UnsealFailure::LegacyData)?;
        let inner: Secret = serde_json::from_slice(opened.plaintext.expose())
            .map_err(|_| UnsealFailure::LegacyNotASecret)?;
        data.extend(inner.data.unwrap_or_default());
        keys.push(opened.key);
    }
    for (item, value) in &ss.spec.encrypted_data {
        let Value::String(text) = value else {
            return Err(UnsealFailure::NotAString(item.clone()));
        };
        let opened = ring
            .unseal_base64(text, target, hint.as_ref())
            .map_err(|source| UnsealFailure::Item {
                item: item.clone(),
                source,
            })?;
        data.insert(item.clone(), ByteString(opened.plaintext.expose().to_vec()));
        if !keys.contains(&opened.key) {
            keys.push(opened.key.clone());
        }
        hint = Some(opened.key);
    }
    Ok((data, keys))
}

/// Computes the Secret for `ss`. `hint` is tried first (the key that opened it last time).
pub fn desired_secret(
    ss: &SealedSecret,
    ring: &KeyRing,
    hint: Option<&Fingerprint>,
    accept_v1_data: bool,
) -> Result<Desired, UnsealFailure> {
    let (mut data, keys) = unseal_items(ss, ring, hint, accept_v1_data)?;
    let (namespace, name) = identity(ss)?;
    let template = ss.spec.template.clone().unwrap_or_default();
    if let Some(templates) = template.data.as_ref().filter(|t| !t.is_empty()) {
        let plain: BTreeMap<String, Vec<u8>> =
            data.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
        let rendered =
            render_items(&TEMPLATES, templates, &plain).map_err(UnsealFailure::Template)?;
        // Rendered keys are written after the items, so a template overrides an item.
        data.extend(
            rendered
                .into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes()))),
        );
    }
    let meta = template.metadata.unwrap_or_default();
    let skip_owner = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(SKIP_SET_OWNER_REFERENCES_ANNOTATION))
        .is_some_and(|v| v == "true");
    let owner = (!skip_owner).then(|| owner_reference(ss)).flatten();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        type_: template.type_,
        immutable: template.immutable,
        data: Some(data),
        ..Default::default()
    };
    Ok(Desired { secret, keys })
}

/// `bitnami.com/v1alpha1 SealedSecret` as the controlling owner (no blockOwnerDeletion, as upstream).
pub fn owner_reference(ss: &SealedSecret) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: SealedSecret::api_version(&()).to_string(),
        kind: SealedSecret::kind(&()).to_string(),
        name: ss.name_any(),
        uid: ss.uid()?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use strongroom_core::crd::sealed_secret::{SealedSecretSpec, SecretTemplateSpec};
    use strongroom_core::sealing::{
        CLUSTER_WIDE_ANNOTATION, KeyGenParams, PrivateSealingKey, SealingScope,
        generate_key_and_cert, os_rng, seal_to_base64,
    };

    fn key() -> PrivateSealingKey {
        generate_key_and_cert(&KeyGenParams {
            bits: 2048,
            ..KeyGenParams::default()
        })
        .unwrap()
        .0
    }

    fn sealed(
        key: &PrivateSealingKey,
        scope: SealingScope,
        ns: &str,
        name: &str,
        items: &[(&str, &str)],
    ) -> SealedSecret {
        let label = scope.label(ns, name);
        let encrypted = items
            .iter()
            .map(|(k, v)| {
                let s = seal_to_base64(&mut os_rng(), key.public(), &label, v.as_bytes()).unwrap();
                (k.to_string(), Value::String(s))
            })
            .collect();
        let mut ss = SealedSecret::new(
            name,
            SealedSecretSpec {
                encrypted_data: encrypted,
                template: Some(SecretTemplateSpec {
                    type_: Some("Opaque".into()),
                    metadata: Some(ObjectMeta {
                        labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                data: None,
            },
        );
        ss.metadata.namespace = Some(ns.into());
        ss.metadata.uid = Some("uid-1".into());
        if let Some(a) = scope.annotation() {
            ss.metadata.annotations = Some(BTreeMap::from([(a.to_string(), "true".to_string())]));
        }
        ss
    }

    fn ring(keys: Vec<PrivateSealingKey>) -> KeyRing {
        let mut r = KeyRing::new();
        for k in keys {
            r.insert(k);
        }
        r
    }

    #[test]
    fn unseals_into_the_template_with_an_owner() {
        let k = key();
        let fp = k.fingerprint().clone();
        let ss = sealed(
            &k,
            SealingScope::Strict,
            "prod",
            "db",
            &[("password", "canary-1"), ("user", "app")],
        );
        let d = desired_secret(&ss, &ring(vec![k]), None, true).unwrap();
        let shown = format!("{d:?}");
        assert!(!shown.contains("canary-1"), "Debug hides values: {shown}");
        assert!(shown.contains("password"), "Debug names the keys: {shown}");
        let data = d.secret.data.unwrap();
        assert_eq!(data["password"].0, b"canary-1");
        assert_eq!(d.secret.type_.as_deref(), Some("Opaque"));
        assert_eq!(d.secret.metadata.labels.unwrap()["app"], "web");
        let owner = &d.secret.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("SealedSecret", "uid-1", Some(true))
        );
        assert_eq!(d.keys, vec![fp]);
    }

    #[test]
    fn skip_owner_annotation_and_cluster_wide_scope() {
        let k = key();
        let mut ss = sealed(
            &k,
            SealingScope::ClusterWide,
            "anywhere",
            "x",
            &[("a", "b")],
        );
        ss.spec
            .template
            .as_mut()
            .unwrap()
            .metadata
            .as_mut()
            .unwrap()
            .annotations = Some(BTreeMap::from([(
            SKIP_SET_OWNER_REFERENCES_ANNOTATION.to_string(),
            "true".to_string(),
        )]));
        ss.metadata.namespace = Some("elsewhere".into());
        assert!(
            ss.metadata
                .annotations
                .as_ref()
                .unwrap()
                .contains_key(CLUSTER_WIDE_ANNOTATION)
        );
        let d = desired_secret(&ss, &ring(vec![k]), None, true).unwrap();
        assert!(d.secret.metadata.owner_references.is_none());
    }

    #[test]
    fn failures_name_the_item_and_the_reason_but_never_the_value() {
        let k = key();
        // strict seal moved to another namespace
        let mut ss = sealed(
            &k,
            SealingScope::Strict,
            "prod",
            "db",
            &[("password", "canary-2")],
        );
        ss.metadata.namespace = Some("staging".into());
        let err = desired_secret(&ss, &ring(vec![k]), None, true).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("\"password\"") && msg.contains("another namespace or name"),
            "{msg}"
        );
        assert!(!msg.contains("canary"));
        assert_eq!(err.category(), "unknown-key");
        // unknown key
        let ss = sealed(&key(), SealingScope::Strict, "prod", "db", &[("a", "b")]);
        assert_eq!(
            desired_secret(&ss, &ring(vec![key()]), None, true)
                .unwrap_err()
                .category(),
            "unknown-key"
        );
        // tampered
        let k = key();
        let mut ss = sealed(&k, SealingScope::Strict, "prod", "db", &[("a", "b")]);
        let blob = ss.spec.encrypted_data["a"].as_str().unwrap().to_string();
        let mut bytes = decode_base64(&blob).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        use base64::Engine;
        ss.spec.encrypted_data.insert(
            "a".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        );
        assert_eq!(
            desired_secret(&ss, &ring(vec![k]), None, true)
                .unwrap_err()
                .category(),
            "tampered"
        );
        // not a string
        let k = key();
        let mut ss = sealed(&k, SealingScope::Strict, "prod", "db", &[]);
        ss.spec
            .encrypted_data
            .insert("n".into(), serde_json::json!(5));
        assert_eq!(
            desired_secret(&ss, &ring(vec![k]), None, true).unwrap_err(),
            UnsealFailure::NotAString("n".into())
        );
    }

    #[test]
    fn legacy_v1_data_opens_when_accepted() {
        let k = key();
        let inner = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "old"}, "data": {"k": "dg=="}});
        let blob = seal_to_base64(
            &mut os_rng(),
            k.public(),
            b"prod/old",
            inner.to_string().as_bytes(),
        )
        .unwrap();
        let mut ss = sealed(&k, SealingScope::Strict, "prod", "old", &[]);
        ss.spec.data = Some(blob);
        let r = ring(vec![k]);
        let d = desired_secret(&ss, &r, None, true).unwrap();
        assert_eq!(d.secret.data.unwrap()["k"].0, b"v");
        assert_eq!(
            desired_secret(&ss, &r, None, false).unwrap_err(),
            UnsealFailure::LegacyRefused
        );
    }

    #[test]
    fn template_data_renders_over_the_items_and_overrides_them() {
        let k = key();
        let mut ss = sealed(
            &k,
            SealingScope::Strict,
            "prod",
            "db",
            &[("user", "app"), ("password", "canary-3"), ("url", "old")],
        );
        ss.spec.template.as_mut().unwrap().data = Some(BTreeMap::from([
            (
                "url".to_string(),
                "postgres://{{ .user }}:{{ .password }}@db:5432".to_string(),
            ),
            (
                "config.yaml".to_string(),
                "user: {{ .user | quote }}".to_string(),
            ),
        ]));
        let r = ring(vec![k]);
        let data = desired_secret(&ss, &r, None, true)
            .unwrap()
            .secret
            .data
            .unwrap();
        assert_eq!(data["url"].0, b"postgres://app:canary-3@db:5432");
        assert_eq!(data["config.yaml"].0, b"user: \"app\"");
        assert_eq!(data["password"].0, b"canary-3");
        ss.spec.template.as_mut().unwrap().data = Some(BTreeMap::from([(
            "bad".to_string(),
            // fails in Go too, with the value in the message: it must be scrubbed
            "{{ fail (printf \"bad password %s\" .password) }}".to_string(),
        )]));
        let err = desired_secret(&ss, &r, None, true).unwrap_err();
        assert_eq!(err.category(), "template");
        let msg = err.to_string();
        assert!(msg.contains("\"bad\"") && !msg.contains("canary"), "{msg}");
    }
}

//! Secret → SealedSecret, shaped like upstream kubeseal's output.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value, json};
use strongroom_core::sealing::{PublicSealingKey, SealingScope, os_rng, seal_to_base64};

use crate::error::{Error, Result};

/// Read-only metadata fields kubeseal never copies into a template.
const READ_ONLY_FIELDS: [&str; 9] = [
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "managedFields",
];

/// Client-side bookkeeping annotations kubeseal strips from the template.
const LAST_APPLIED: [&str; 2] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "kubecfg.ksonnet.io/last-applied-configuration",
];

/// What the user asked for, beyond the Secret itself.
#[derive(Debug, Clone, Default)]
pub struct SealOptions {
    /// `--scope`, if given.
    pub scope: Option<SealingScope>,
    /// `--name`, if given.
    pub name: Option<String>,
    /// `-n`, if given.
    pub namespace_flag: Option<String>,
    /// Namespace for Secrets without one: the kubeconfig context's, else `default`.
    pub fallback_namespace: String,
    /// `--allow-empty-data`.
    pub allow_empty_data: bool,
}

/// The plaintext items of a Secret: `data`, then `stringData` over it (as the API server does).
pub fn plaintext_items(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut items: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        items.insert(k.clone(), v.as_bytes().to_vec());
    }
    items
}

/// Where a sealed Secret lives, after namespace resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Scope of the seal.
    pub scope: SealingScope,
    /// Name (may be empty for cluster-wide and namespace-wide).
    pub name: String,
    /// Namespace (may be empty for cluster-wide).
    pub namespace: String,
}

/// Resolves scope, name and namespace as upstream does, with clearer errors.
pub fn resolve_identity(secret: &Secret, opts: &SealOptions) -> Result<Identity> {
    let scope = opts
        .scope
        .unwrap_or_else(|| SealingScope::from_annotations(secret.metadata.annotations.as_ref()));
    let name = opts
        .name
        .clone()
        .or_else(|| secret.metadata.name.clone())
        .unwrap_or_default();
    let input_ns = secret.metadata.namespace.clone().unwrap_or_default();
    let flag_ns = opts.namespace_flag.clone().unwrap_or_default();
    let namespace = if !input_ns.is_empty() {
        if !flag_ns.is_empty() && flag_ns != input_ns {
            return Err(Error::NamespaceMismatch {
                input: input_ns,
                flag: flag_ns,
            });
        }
        input_ns
    } else if scope == SealingScope::ClusterWide || !flag_ns.is_empty() {
        // cluster-wide secrets stay without a namespace unless -n names one
        flag_ns
    } else {
        opts.fallback_namespace.clone()
    };
    if scope.needs_name() && name.is_empty() {
        return Err(Error::MissingIdentity {
            what: "a name",
            scope: scope.to_string(),
            hint: "set metadata.name in the Secret or pass --name",
        });
    }
    Ok(Identity {
        scope,
        name,
        namespace,
    })
}

/// Seals every item of `secret` and returns the SealedSecret object.
pub fn seal_secret(secret: &Secret, key: &PublicSealingKey, opts: &SealOptions) -> Result<Value> {
    let id = resolve_identity(secret, opts)?;
    let items = plaintext_items(secret);
    if items.is_empty() && !opts.allow_empty_data {
        return Err(Error::EmptyData(id.name.clone()));
    }
    let label = id.scope.label(&id.namespace, &id.name);
    let mut encrypted = Map::new();
    for (k, v) in &items {
        let sealed = seal_to_base64(&mut os_rng(), key, &label, v)?;
        encrypted.insert(k.clone(), Value::String(sealed));
    }
    let mut object = sealed_object(secret, &id, encrypted);
    if opts.scope.is_some() {
        // an explicit --scope rewrites the input's scope annotations too, as upstream
        if let Some(Value::Object(meta)) = object.pointer_mut("/spec/template/metadata") {
            set_scope_annotations(meta, id.scope);
        }
    }
    Ok(object)
}

/// Makes `meta.annotations` carry exactly the annotation of `scope` (none for strict).
fn set_scope_annotations(meta: &mut Map<String, Value>, scope: SealingScope) {
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(a) = annotations {
        for s in SealingScope::ALL {
            if let Some(key) = s.annotation() {
                a.remove(key);
            }
        }
        if let Some(key) = scope.annotation() {
            a.insert(key.to_string(), json!("true"));
        }
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
}

fn identity_metadata(id: &Identity) -> Map<String, Value> {
    let mut meta = Map::new();
    if !id.name.is_empty() {
        meta.insert("name".into(), json!(id.name));
    }
    if !id.namespace.is_empty() {
        meta.insert("namespace".into(), json!(id.namespace));
    }
    meta.insert("creationTimestamp".into(), Value::Null);
    meta
}

/// Builds the SealedSecret around already sealed items.
pub fn sealed_object(secret: &Secret, id: &Identity, encrypted: Map<String, Value>) -> Value {
    let mut meta = identity_metadata(id);
    if let Some(annotation) = id.scope.annotation() {
        meta.insert("annotations".into(), json!({ annotation: "true" }));
    }
    let mut template = Map::new();
    template.insert(
        "metadata".into(),
        Value::Object(template_metadata(secret, id)),
    );
    if let Some(t) = &secret.type_ {
        template.insert("type".into(), json!(t));
    }
    if let Some(immutable) = secret.immutable {
        template.insert("immutable".into(), json!(immutable));
    }
    json!({
        "kind": "SealedSecret",
        "apiVersion": "bitnami.com/v1alpha1",
        "metadata": meta,
        "spec": {
            "template": template,
            "encryptedData": encrypted,
        }
    })
}

fn template_metadata(secret: &Secret, id: &Identity) -> Map<String, Value> {
    let mut meta = match serde_json::to_value(&secret.metadata) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for field in READ_ONLY_FIELDS {
        meta.remove(field);
    }
    if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
        for a in LAST_APPLIED {
            annotations.remove(a);
        }
        if annotations.is_empty() {
            meta.remove("annotations");
        }
    }
    meta.remove("name");
    meta.remove("namespace");
    for (k, v) in identity_metadata(id) {
        meta.insert(k, v);
    }
    meta
}

/// Seals one raw value (`--raw`) and returns bare base64.
pub fn seal_raw(
    value: &[u8],
    key: &PublicSealingKey,
    scope: SealingScope,
    name: &str,
    namespace: &str,
) -> Result<String> {
    if scope.needs_name() && name.is_empty() {
        return Err(Error::MissingIdentity {
            what: "a name",
            scope: scope.to_string(),
            hint: "pass --name (and -n) for the Secret the value will belong to",
        });
    }
    Ok(seal_to_base64(
        &mut os_rng(),
        key,
        &scope.label(namespace, name),
        value,
    )?)
}

/// Decodes a Secret object, naming the document on failure.
pub fn secret_from_value(doc: Value, source_name: &str, index: usize) -> Result<Secret> {
    serde_json::from_value(doc).map_err(|e| Error::Syntax {
        source_name: source_name.to_string(),
        // serde quotes the value it could not read: it may be the secret itself
        reason: format!(
            "document {index} is not a valid Secret: {}",
            strongroom_core::secret::redact_quoted(&e.to_string())
        ),
    })
}

/// Base64 of bytes, as Secret `data` holds them.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

//! `--recovery-unseal`: open SealedSecrets offline with backed-up private keys.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use strongroom_core::crd::sealed_secret::SealedSecret;
use strongroom_core::sealing::{KeyRing, PrivateSealingKey, SealTarget, decode_base64};
use strongroom_core::template::{Engine, render_items};

use crate::documents::{expect_kind, parse_all};
use crate::error::{Error, Result};
use crate::seal::b64;

/// Loads every private key named by `--recovery-private-key`: PEM files, key Secrets
/// (`data."tls.key"`), or a `v1 List` of them as `kubectl get -o yaml` backs them up.
pub fn load_keys(paths: &[impl AsRef<Path>]) -> Result<KeyRing> {
    let mut ring = KeyRing::new();
    for path in paths {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        if text.contains("-----BEGIN") {
            ring.insert(PrivateSealingKey::from_pem(&text).map_err(Error::key(&name))?);
            continue;
        }
        for doc in parse_all(&text, &name)? {
            let secrets = match doc.get("kind").and_then(Value::as_str) {
                Some("List") | Some("SecretList") => doc
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                _ => vec![doc],
            };
            for secret in secrets {
                ring.insert(key_from_secret(&secret, &name)?);
            }
        }
    }
    if ring.is_empty() {
        return Err(Error::Usage(
            "--recovery-unseal needs at least one --recovery-private-key".into(),
        ));
    }
    Ok(ring)
}

fn key_from_secret(secret: &Value, source: &str) -> Result<PrivateSealingKey> {
    let secret_name = secret
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    let where_ = format!("{source} (Secret {secret_name})");
    let encoded = secret
        .pointer("/data/tls.key")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::PrivateKey {
            source_name: where_.clone(),
            reason: "no data.\"tls.key\" in the key Secret".into(),
        })?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| Error::PrivateKey {
            source_name: where_.clone(),
            reason: format!("data.\"tls.key\" is not base64: {e}"),
        })?;
    let pem = String::from_utf8(pem).map_err(|_| Error::PrivateKey {
        source_name: where_.clone(),
        reason: "data.\"tls.key\" is not PEM text".into(),
    })?;
    PrivateSealingKey::from_pem(&pem).map_err(Error::key(where_))
}

/// Unseals every SealedSecret in `text` into a v1 Secret.
pub fn unseal_all(text: &str, source_name: &str, ring: &KeyRing) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, doc) in parse_all(text, source_name)?.into_iter().enumerate() {
        expect_kind(
            &doc,
            "bitnami.com/v1alpha1",
            "SealedSecret",
            "a SealedSecret",
            source_name,
            i + 1,
        )?;
        let ss: SealedSecret = serde_json::from_value(doc).map_err(|e| Error::Syntax {
            source_name: source_name.to_string(),
            reason: format!(
                "document {} is not a valid SealedSecret: {}",
                i + 1,
                strongroom_core::secret::redact_quoted(&e.to_string())
            ),
        })?;
        out.push(unseal_one(&ss, ring)?);
    }
    Ok(out)
}

fn unseal_one(ss: &SealedSecret, ring: &KeyRing) -> Result<Value> {
    let name = ss.metadata.name.clone().unwrap_or_default();
    let namespace = ss.metadata.namespace.clone().unwrap_or_default();
    let target = SealTarget {
        scope: ss.scope(),
        namespace: &namespace,
        name: &name,
    };
    let fail = |item: &str, source| Error::Unseal {
        namespace: namespace.clone(),
        name: name.clone(),
        item: item.to_string(),
        source,
    };
    let template = ss.spec.template.clone().unwrap_or_default();
    let mut plain: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    if let Some(blob) = &ss.spec.data {
        let bytes = decode_base64(blob).map_err(|e| fail("spec.data", e))?;
        let opened = ring
            .unseal(&bytes, target, None)
            .map_err(|e| fail("spec.data", e))?;
        let inner: Value = serde_json::from_slice(opened.plaintext.expose()).map_err(|e| {
            Error::Usage(format!(
                "{namespace}/{name}: spec.data does not hold a Secret: {e}"
            ))
        })?;
        if let Some(Value::Object(d)) = inner.get("data") {
            for (k, v) in d {
                let bytes = v
                    .as_str()
                    .and_then(|t| decode_base64(t).ok())
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "{namespace}/{name}: spec.data holds a Secret whose data.{k} is not base64"
                        ))
                    })?;
                plain.insert(k.clone(), bytes);
            }
        }
    }
    for (item, value) in &ss.spec.encrypted_data {
        let text = value.as_str().ok_or_else(|| {
            Error::Usage(format!(
                "{namespace}/{name}: encryptedData.{item} is not a string"
            ))
        })?;
        let opened = ring
            .unseal_base64(text, target, None)
            .map_err(|e| fail(item, e))?;
        plain.insert(item.clone(), opened.plaintext.expose().to_vec());
    }
    if let Some(templates) = template.data.as_ref().filter(|t| !t.is_empty()) {
        let rendered = render_items(&Engine::sprig(), templates, &plain)
            .map_err(|e| Error::Usage(format!("{namespace}/{name}: {e}")))?;
        plain.extend(rendered.into_iter().map(|(k, v)| (k, v.into_bytes())));
    }
    let data: Map<String, Value> = plain
        .iter()
        .map(|(k, v)| (k.clone(), json!(b64(v))))
        .collect();
    let mut meta = match template.metadata.map(serde_json::to_value) {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    };
    meta.insert("name".into(), json!(name));
    if !namespace.is_empty() {
        meta.insert("namespace".into(), json!(namespace));
    }
    meta.insert(
        "ownerReferences".into(),
        json!([{
            "apiVersion": "bitnami.com/v1alpha1",
            "kind": "SealedSecret",
            "name": name,
            "uid": ss.metadata.uid.clone().unwrap_or_default(),
            "controller": true
        }]),
    );
    let mut secret = Map::new();
    secret.insert("kind".into(), json!("Secret"));
    secret.insert("apiVersion".into(), json!("v1"));
    secret.insert("metadata".into(), Value::Object(meta));
    if let Some(t) = template.type_ {
        secret.insert("type".into(), json!(t));
    }
    if let Some(i) = template.immutable {
        secret.insert("immutable".into(), json!(i));
    }
    secret.insert("data".into(), Value::Object(data));
    Ok(Value::Object(secret))
}

//! Pure functions over a Secret read from the API server: its data, the JSON forms upstream
//! returns, property lookups, and the PushSecret metadata merge.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use strongroom_provider_api::{ProviderError, SecretBytes, SecretMap};

/// `metadata.labels` / `metadata.annotations` as upstream names them in `metadataPolicy: Fetch`.
pub(crate) const LABELS: &str = "labels";
/// See [`LABELS`].
pub(crate) const ANNOTATIONS: &str = "annotations";

/// A Secret as the provider uses it. The raw object is kept for updates.
#[derive(Debug)]
pub(crate) struct Secret {
    /// The object as the API server sent it.
    pub raw: Value,
    /// `metadata.name`.
    pub name: String,
    /// Decoded `data`.
    pub data: BTreeMap<String, SecretBytes>,
    /// `metadata.labels` (`None` when absent).
    pub labels: Option<BTreeMap<String, String>>,
    /// `metadata.annotations` (`None` when absent).
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct Shape {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    data: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    name: String,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

impl Secret {
    /// Reads a Secret object. Errors name the Secret, never its content.
    pub fn from_json(raw: Value) -> Result<Self, ProviderError> {
        let shape: Shape = Shape::deserialize(&raw).map_err(|_| {
            ProviderError::Malformed("the API server sent a Secret of unexpected shape".into())
        })?;
        let mut data = BTreeMap::new();
        for (key, value) in shape.data.unwrap_or_default() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value.as_bytes())
                .map_err(|_| {
                    ProviderError::Malformed(format!(
                        "key {key:?} of Secret {:?} is not base64",
                        shape.metadata.name
                    ))
                })?;
            data.insert(key, SecretBytes::new(bytes));
        }
        Ok(Self {
            raw,
            name: shape.metadata.name,
            data,
            labels: shape.metadata.labels,
            annotations: shape.metadata.annotations,
        })
    }

    /// The data as upstream's JSON object of strings (`{"key":"value",...}`).
    pub fn data_json(&self) -> SecretBytes {
        let strings: BTreeMap<&str, String> = self
            .data
            .iter()
            .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.expose()).into_owned()))
            .collect();
        go_json(&strings)
    }

    /// Upstream's metadata JSON: `{"annotations":{...}|null,"labels":{...}|null}`.
    pub fn metadata_json(&self) -> SecretBytes {
        let m = BTreeMap::from([
            (ANNOTATIONS, self.annotations.clone()),
            (LABELS, self.labels.clone()),
        ]);
        go_json(&m)
    }

    /// The metadata as keys (`labels`, `annotations`), each the JSON of its map.
    pub fn metadata_map(&self) -> SecretMap {
        SecretMap::from([
            (LABELS.to_string(), go_json(&self.labels)),
            (ANNOTATIONS.to_string(), go_json(&self.annotations)),
        ])
    }

    /// The value of `property`: a data key (exact name first, so `tls.crt` works), else
    /// `<key>.<gjson path>` into the JSON value of `<key>`. With `metadata`, `labels`,
    /// `annotations`, `labels.<name>` or `labels.<name>.<gjson path>` instead.
    pub fn property(&self, property: &str, metadata: bool) -> Option<SecretBytes> {
        if metadata {
            let (head, rest) = match property.split_once('.') {
                Some((h, r)) => (h, Some(r)),
                None => (property, None),
            };
            let map = match head {
                LABELS => &self.labels,
                ANNOTATIONS => &self.annotations,
                _ => return None,
            };
            let Some(rest) = rest else {
                return Some(go_json(map));
            };
            let map = map.as_ref()?;
            return lookup(rest, |k| map.get(k).map(|v| SecretBytes::from(v.as_str())));
        }
        lookup(property, |k| self.data.get(k).cloned())
    }
}

/// An exact key, else the part before the first dot as key and the rest as a gjson path.
fn lookup(property: &str, get: impl Fn(&str) -> Option<SecretBytes>) -> Option<SecretBytes> {
    if let Some(v) = get(property) {
        return Some(v);
    }
    let (key, path) = property.split_once('.')?;
    if key.is_empty() || path.is_empty() {
        return None;
    }
    let value = get(key)?;
    let text = std::str::from_utf8(value.expose()).ok()?;
    let found = gjson::get(text, path);
    found.exists().then(|| SecretBytes::from(found.str()))
}

/// JSON as Go's `json.Encoder` with `SetEscapeHTML(false)` writes it (upstream's
/// `esutils.JSONMarshal`): sorted map keys, no trailing newline, U+2028/U+2029 escaped.
pub(crate) fn go_json<T: serde::Serialize>(value: &T) -> SecretBytes {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let text = if text.contains(['\u{2028}', '\u{2029}']) {
        text.replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029")
    } else {
        text
    };
    SecretBytes::new(text.into_bytes())
}

/// The API version and kind of `data[].metadata` for this provider.
const META_API_VERSION: &str = "kubernetes.external-secrets.io/v1alpha1";
const META_KIND: &str = "PushSecretMetadata";

/// `data[].metadata` of a PushSecret for this provider.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PushMeta {
    /// `Merge` (default), `Replace` or `Ignore`: how the target's labels/annotations change.
    #[serde(default)]
    pub target_merge_policy: Option<String>,
    /// `Merge` (default) or `Replace`.
    #[serde(default)]
    pub source_merge_policy: Option<String>,
    /// Labels to set.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations to set.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Another namespace to push to (ClusterSecretStore only).
    #[serde(default)]
    pub remote_namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaDoc {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    spec: Option<Value>,
}

/// Parses `data[].metadata`; `None` when not given.
pub(crate) fn push_meta(metadata: Option<&Value>) -> Result<Option<PushMeta>, ProviderError> {
    let Some(metadata) = metadata.filter(|m| !m.is_null()) else {
        return Ok(None);
    };
    let bad = |why: String| {
        ProviderError::InvalidConfig(format!("unable to parse metadata parameters: {why}"))
    };
    let doc = MetaDoc::deserialize(metadata).map_err(|_| bad("not an object".into()))?;
    if doc.api_version != META_API_VERSION || doc.kind != META_KIND {
        return Err(bad(format!(
            "want apiVersion {META_API_VERSION} and kind {META_KIND}, got {:?} {:?}",
            doc.api_version, doc.kind
        )));
    }
    let spec = match doc.spec {
        Some(spec) => PushMeta::deserialize(&spec).map_err(|e| bad(format!("spec: {e}")))?,
        None => PushMeta::default(),
    };
    for (name, policy, allowed) in [
        (
            "targetMergePolicy",
            &spec.target_merge_policy,
            &["Merge", "Replace", "Ignore"][..],
        ),
        (
            "sourceMergePolicy",
            &spec.source_merge_policy,
            &["Merge", "Replace"][..],
        ),
    ] {
        if let Some(p) = policy.as_deref().filter(|p| !p.is_empty())
            && !allowed.contains(&p)
        {
            return Err(bad(format!("unexpected {name} {p:?}")));
        }
    }
    Ok(Some(spec))
}

/// The labels (or annotations) a pushed Secret ends with: `current` on the target, `pushed`
/// from the metadata. The source Secret's own metadata is not available to providers here, so
/// the source side is the metadata's maps (what upstream's `Merge` and `Replace` give for a
/// source without labels).
pub(crate) fn merged(
    current: Option<&BTreeMap<String, String>>,
    pushed: &BTreeMap<String, String>,
    meta: Option<&PushMeta>,
) -> BTreeMap<String, String> {
    let mut current = current.cloned().unwrap_or_default();
    let Some(meta) = meta else {
        return current;
    };
    match meta.target_merge_policy.as_deref().unwrap_or("") {
        "Replace" => pushed.clone(),
        "Ignore" => current,
        _ => {
            current.extend(pushed.iter().map(|(k, v)| (k.clone(), v.clone())));
            current
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn text(v: Option<SecretBytes>) -> Option<String> {
        v.map(|v| String::from_utf8_lossy(v.expose()).into_owned())
    }

    fn secret() -> Secret {
        let b = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        Secret::from_json(json!({
            "metadata": {"name": "db", "labels": {"team": "a", "app.kubernetes.io/name": "x"},
                         "annotations": {"cfg": "{\"a\":{\"b\":1}}"}},
            "data": {
                "tls.crt": b(b"CERT"),
                "config": b(br#"{"user":"admin","nested":{"port":5432}}"#),
                "bin": b(&[0, 255, 1]),
                "html": b("<a&b>\u{2028}".as_bytes()),
            }
        }))
        .unwrap()
    }

    #[test]
    fn whole_secret_json_is_go_shaped() {
        let s = secret();
        assert_eq!(
            text(Some(s.data_json())).unwrap(),
            "{\"bin\":\"\\u0000\u{fffd}\\u0001\",\"config\":\"{\\\"user\\\":\\\"admin\\\",\\\"nested\\\":{\\\"port\\\":5432}}\",\"html\":\"<a&b>\\u2028\",\"tls.crt\":\"CERT\"}"
        );
        assert_eq!(
            text(Some(s.metadata_json())).unwrap(),
            r#"{"annotations":{"cfg":"{\"a\":{\"b\":1}}"},"labels":{"app.kubernetes.io/name":"x","team":"a"}}"#
        );
        let bare = Secret::from_json(json!({"metadata": {"name": "e"}})).unwrap();
        assert_eq!(
            text(Some(bare.metadata_json())).unwrap(),
            r#"{"annotations":null,"labels":null}"#
        );
        assert_eq!(text(Some(bare.data_json())).unwrap(), "{}");
    }

    #[test]
    fn properties() {
        let s = secret();
        assert_eq!(text(s.property("tls.crt", false)).as_deref(), Some("CERT"));
        assert_eq!(
            text(s.property("config.user", false)).as_deref(),
            Some("admin")
        );
        assert_eq!(
            text(s.property("config.nested", false)).as_deref(),
            Some(r#"{"port":5432}"#)
        );
        assert_eq!(
            text(s.property("config.nested.port", false)).as_deref(),
            Some("5432")
        );
        assert_eq!(s.property("bin", false).unwrap().expose(), &[0, 255, 1]);
        assert!(s.property("config.nope", false).is_none());
        assert!(s.property("nope", false).is_none());
        assert!(s.property(".x", false).is_none());
        assert_eq!(text(s.property("labels.team", true)).as_deref(), Some("a"));
        assert_eq!(
            text(s.property("labels.app.kubernetes.io/name", true)).as_deref(),
            Some("x")
        );
        assert_eq!(
            text(s.property("annotations.cfg.a.b", true)).as_deref(),
            Some("1")
        );
        assert_eq!(
            text(s.property("labels", true)).as_deref(),
            Some(r#"{"app.kubernetes.io/name":"x","team":"a"}"#)
        );
        assert!(s.property("data", true).is_none());
        assert!(s.property("labels.nope", true).is_none());
    }

    #[test]
    fn bad_base64_names_the_key_only() {
        let e = Secret::from_json(json!({"metadata": {"name": "x"}, "data": {"k": "sekret!"}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"k\"") && !e.contains("sekret"), "{e}");
    }

    #[test]
    fn push_metadata_and_merge() {
        assert_eq!(push_meta(None).unwrap(), None);
        let meta = push_meta(Some(&json!({
            "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
            "kind": "PushSecretMetadata",
            "spec": {"labels": {"l": "1"}, "targetMergePolicy": "Replace", "remoteNamespace": "x"}
        })))
        .unwrap()
        .unwrap();
        assert_eq!(meta.remote_namespace.as_deref(), Some("x"));
        let current = BTreeMap::from([("old".to_string(), "o".to_string())]);
        assert_eq!(
            merged(Some(&current), &meta.labels, Some(&meta)),
            meta.labels
        );
        let merge = PushMeta {
            target_merge_policy: None,
            ..meta.clone()
        };
        assert_eq!(merged(Some(&current), &merge.labels, Some(&merge)).len(), 2);
        let ignore = PushMeta {
            target_merge_policy: Some("Ignore".into()),
            ..meta.clone()
        };
        assert_eq!(
            merged(Some(&current), &ignore.labels, Some(&ignore)),
            current
        );
        assert_eq!(merged(Some(&current), &BTreeMap::new(), None), current);
        for bad in [
            json!({"apiVersion": "v1", "kind": "PushSecretMetadata"}),
            json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1", "kind": "PushSecretMetadata", "spec": {"targetMergePolicy": "Nope"}}),
            json!({"apiVersion": "kubernetes.external-secrets.io/v1alpha1", "kind": "PushSecretMetadata", "spec": {"bogus": 1}}),
            json!("text"),
        ] {
            assert!(
                matches!(push_meta(Some(&bad)), Err(ProviderError::InvalidConfig(_))),
                "{bad}"
            );
        }
    }
}

//! `data[].metadata` of a PushSecret: upstream's `PushSecretMetadata` document
//! (`apiVersion: kubernetes.external-secrets.io/v1alpha1`, `kind: PushSecretMetadata`, `spec`),
//! with a spec shape per service.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use strongroom_provider_api::ProviderError;

const API_VERSION: &str = "kubernetes.external-secrets.io/v1alpha1";
const KIND: &str = "PushSecretMetadata";

/// The tag marking what a PushSecret created; only values so tagged are overwritten or deleted.
pub(crate) const MANAGED_BY: &str = "managed-by";
/// Its value.
pub(crate) const EXTERNAL_SECRETS: &str = "external-secrets";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Doc {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    spec: Option<Value>,
}

/// Parses `metadata` into a service's spec; the default spec when there is none. Messages name
/// the problem, never a value.
pub(crate) fn parse<T: DeserializeOwned + Default>(
    metadata: Option<&Value>,
) -> Result<T, ProviderError> {
    let Some(metadata) = metadata.filter(|m| !m.is_null()) else {
        return Ok(T::default());
    };
    let bad = |why: String| {
        ProviderError::InvalidConfig(format!("unable to parse metadata parameters: {why}"))
    };
    let doc = Doc::deserialize(metadata)
        .map_err(|_| bad("want an object with apiVersion, kind and spec".into()))?;
    if doc.api_version != API_VERSION || doc.kind != KIND {
        return Err(bad(format!(
            "want apiVersion {API_VERSION} and kind {KIND}, got {:?} {:?}",
            doc.api_version, doc.kind
        )));
    }
    match doc.spec {
        Some(spec) => T::deserialize(&spec).map_err(|e| bad(format!("spec: {}", field_error(&e)))),
        None => Ok(T::default()),
    }
}

/// serde's message without the offending value (it may quote one).
fn field_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find("unknown field `") {
        Some(at) => text[at..].split(',').next().unwrap_or("").to_string(),
        None if text.contains("invalid type") => "a field has the wrong type".into(),
        None => "invalid spec".into(),
    }
}

/// The user's tags plus `managed-by: external-secrets`; a user `managed-by` tag is refused.
pub(crate) fn managed_tags(
    tags: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ProviderError> {
    if tags.contains_key(MANAGED_BY) {
        return Err(ProviderError::InvalidConfig(format!(
            "error parsing tags in metadata: Cannot specify a '{MANAGED_BY}' tag"
        )));
    }
    let mut all = tags.clone();
    all.insert(MANAGED_BY.into(), EXTERNAL_SECRETS.into());
    Ok(all)
}

/// Whether a remote value carries the managed-by tag.
pub(crate) fn is_managed(tags: &BTreeMap<String, String>) -> bool {
    tags.get(MANAGED_BY).map(String::as_str) == Some(EXTERNAL_SECRETS)
}

/// Upstream's refusal to overwrite a value a PushSecret did not create.
pub(crate) fn refuse_unmanaged(
    tags: &BTreeMap<String, String>,
    what: &str,
    name: &str,
) -> Result<(), ProviderError> {
    if is_managed(tags) {
        return Ok(());
    }
    Err(ProviderError::PermissionDenied(format!(
        "{what} {name:?} not managed by external-secrets (no tag {MANAGED_BY}={EXTERNAL_SECRETS}): refusing to overwrite it"
    )))
}

/// The tag keys to remove and the tags to set so that `current` becomes `wanted` plus
/// `managed-by`.
pub(crate) fn tag_changes(
    current: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Result<(Vec<String>, BTreeMap<String, String>), ProviderError> {
    let wanted = managed_tags(wanted)?;
    let remove = current
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    let changed = wanted
        .into_iter()
        .filter(|(k, v)| current.get(k) != Some(v))
        .collect();
    Ok((remove, changed))
}

/// The default description of a pushed value.
pub(crate) fn default_description() -> String {
    format!("secret '{MANAGED_BY}:{EXTERNAL_SECRETS}'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Spec {
        #[serde(default)]
        description: String,
    }

    #[test]
    fn documents_and_errors() {
        assert_eq!(parse::<Spec>(None).ok(), Some(Spec::default()));
        let ok = json!({"apiVersion": API_VERSION, "kind": KIND, "spec": {"description": "d"}});
        assert_eq!(
            parse::<Spec>(Some(&ok)).ok().map(|s| s.description),
            Some("d".into())
        );
        let unknown = json!({"apiVersion": API_VERSION, "kind": KIND, "spec": {"canary-value": 1}});
        let e = parse::<Spec>(Some(&unknown))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("unknown field `canary-value`"), "{e}");
        let typed = json!({"apiVersion": API_VERSION, "kind": KIND, "spec": {"description": 1}});
        assert!(parse::<Spec>(Some(&typed)).is_err());
        assert!(parse::<Spec>(Some(&json!({"kind": KIND}))).is_err());
        assert!(managed_tags(&BTreeMap::from([(MANAGED_BY.into(), "x".into())])).is_err());
        let tags = BTreeMap::from([
            ("a".to_string(), "b".to_string()),
            (MANAGED_BY.into(), EXTERNAL_SECRETS.into()),
        ]);
        assert!(is_managed(&tags) && refuse_unmanaged(&tags, "secret", "s").is_ok());
        let wanted = BTreeMap::from([("a".to_string(), "c".to_string()), ("d".into(), "e".into())]);
        let (remove, changed) = tag_changes(
            &BTreeMap::from([("x".to_string(), "y".to_string())]),
            &wanted,
        )
        .unwrap();
        assert_eq!(remove, ["x"]);
        assert_eq!(changed.len(), 3);
    }
}

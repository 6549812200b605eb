//! PushSecret's `data[].metadata` for Key Vault (upstream's `PushSecretMetadata` with spec
//! `expirationDate`, `contentType`, `tags`) and the `managed-by` ownership rule.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use strongroom_provider_api::ProviderError;

const API_VERSION: &str = "kubernetes.external-secrets.io/v1alpha1";
const KIND: &str = "PushSecretMetadata";

/// The tag marking what a PushSecret wrote (upstream's).
pub(crate) const MANAGED_BY: &str = "managed-by";
/// Its value.
pub(crate) const EXTERNAL_SECRETS: &str = "external-secrets";

/// The spec of a Key Vault push's metadata.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PushSpec {
    #[serde(default)]
    pub expiration_date: String,
    #[serde(default)]
    pub content_type: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    spec: Option<Value>,
}

fn bad(why: impl std::fmt::Display) -> ProviderError {
    ProviderError::InvalidConfig(format!("failed to parse push secret metadata: {why}"))
}

/// Parses `metadata` (none: the default spec). Messages name fields, never values.
pub(crate) fn parse(metadata: Option<&Value>) -> Result<PushSpec, ProviderError> {
    let Some(metadata) = metadata.filter(|m| !m.is_null()) else {
        return Ok(PushSpec::default());
    };
    let doc = Doc::deserialize(metadata).map_err(|_| bad("want apiVersion, kind and spec"))?;
    if doc.api_version != API_VERSION || doc.kind != KIND {
        return Err(bad(format!(
            "want apiVersion {API_VERSION} and kind {KIND}"
        )));
    }
    let spec = match doc.spec {
        Some(spec) => PushSpec::deserialize(&spec).map_err(|e| {
            let text = e.to_string();
            match text.find("unknown field `") {
                Some(at) => bad(text[at..].split(',').next().unwrap_or("")),
                None => bad("a field has the wrong type"),
            }
        })?,
        None => PushSpec::default(),
    };
    if spec.tags.contains_key(MANAGED_BY) {
        return Err(ProviderError::InvalidConfig(format!(
            "error parsing tags in metadata: Cannot specify a '{MANAGED_BY}' tag"
        )));
    }
    Ok(spec)
}

impl PushSpec {
    /// `expirationDate` as Unix seconds (RFC 3339 in the metadata).
    pub fn expires(&self) -> Result<Option<i64>, ProviderError> {
        if self.expiration_date.is_empty() {
            return Ok(None);
        }
        chrono::DateTime::parse_from_rfc3339(&self.expiration_date)
            .map(|t| Some(t.timestamp()))
            .map_err(|_| {
                ProviderError::InvalidConfig(
                    "error parsing expiration date in metadata. Expected format: YYYY-MM-DDTHH:MM:SSZ (RFC3339). Example: 2024-12-31T20:00:00Z".into(),
                )
            })
    }

    /// The user's tags plus `managed-by: external-secrets`.
    pub fn managed_tags(&self) -> BTreeMap<String, String> {
        let mut tags = self.tags.clone();
        tags.insert(MANAGED_BY.into(), EXTERNAL_SECRETS.into());
        tags
    }
}

/// Whether an object carries the managed-by tag.
pub(crate) fn is_managed(bundle: &Value) -> bool {
    bundle
        .get("tags")
        .and_then(|t| t.get(MANAGED_BY))
        .and_then(Value::as_str)
        == Some(EXTERNAL_SECRETS)
}

/// Upstream's refusal to touch an object a PushSecret did not create.
pub(crate) fn refuse_unmanaged(
    bundle: &Value,
    what: &str,
    name: &str,
) -> Result<(), ProviderError> {
    if is_managed(bundle) {
        return Ok(());
    }
    Err(ProviderError::PermissionDenied(format!(
        "{what} {name:?} is not managed by external-secrets (no tag {MANAGED_BY}={EXTERNAL_SECRETS}): refusing to change it"
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_documents() {
        assert_eq!(parse(None).unwrap(), PushSpec::default());
        let doc = json!({"apiVersion": API_VERSION, "kind": KIND, "spec": {"expirationDate": "2030-01-01T00:00:00Z", "contentType": "text/plain", "tags": {"a": "b"}}});
        let spec = parse(Some(&doc)).unwrap();
        assert_eq!(spec.expires().unwrap(), Some(1_893_456_000));
        assert_eq!(spec.managed_tags().len(), 2);
        let owned = json!({"apiVersion": API_VERSION, "kind": KIND, "spec": {"tags": {"managed-by": "me"}}});
        assert!(parse(Some(&owned)).is_err());
        let unknown = json!({"apiVersion": API_VERSION, "kind": KIND, "spec": {"canary-value": 1}});
        let e = parse(Some(&unknown)).unwrap_err().to_string();
        assert!(e.contains("unknown field `canary-value`"), "{e}");
        assert!(refuse_unmanaged(&json!({"tags": {}}), "secret", "x").is_err());
        assert!(
            refuse_unmanaged(
                &json!({"tags": {"managed-by": "external-secrets"}}),
                "secret",
                "x"
            )
            .is_ok()
        );
    }
}

//! Whether the controller may write an existing Secret, and how (upstream's rules).

use k8s_openapi::api::core::v1::Secret;
use strongroom_core::crd::sealed_secret::{MANAGED_ANNOTATION, PATCH_ANNOTATION};

/// How an existing Secret may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// No Secret yet: create it.
    Absent,
    /// Controlled by this SealedSecret, or annotated `managed: "true"`: replace it.
    Replace,
    /// Annotated `patch: "true"`: merge data, labels and annotations key by key.
    Patch,
    /// Someone else's Secret: refuse (never overwrite what we do not manage).
    Foreign,
}

/// Decides for the SealedSecret with `owner_uid` and the Secret currently at its name.
pub fn ownership(existing: Option<&Secret>, owner_uid: &str) -> Ownership {
    let Some(secret) = existing else {
        return Ownership::Absent;
    };
    let annotated = |key: &str| {
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .is_some_and(|v| v == "true")
    };
    let controlled = secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == owner_uid && r.kind == "SealedSecret");
    if annotated(PATCH_ANNOTATION) {
        Ownership::Patch
    } else if controlled || annotated(MANAGED_ANNOTATION) {
        Ownership::Replace
    } else {
        Ownership::Foreign
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(json: serde_json::Value) -> Secret {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn upstream_ownership_rules() {
        assert_eq!(ownership(None, "u"), Ownership::Absent);
        let owned = secret(
            serde_json::json!({"metadata": {"name": "s", "ownerReferences": [{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "name": "s", "uid": "u", "controller": true}]}}),
        );
        assert_eq!(ownership(Some(&owned), "u"), Ownership::Replace);
        assert_eq!(ownership(Some(&owned), "other"), Ownership::Foreign);
        let managed = secret(
            serde_json::json!({"metadata": {"name": "s", "annotations": {MANAGED_ANNOTATION: "true"}}}),
        );
        assert_eq!(ownership(Some(&managed), "u"), Ownership::Replace);
        let patch = secret(
            serde_json::json!({"metadata": {"name": "s", "annotations": {PATCH_ANNOTATION: "true"}}}),
        );
        assert_eq!(ownership(Some(&patch), "u"), Ownership::Patch);
        let foreign = secret(serde_json::json!({"metadata": {"name": "s"}}));
        assert_eq!(ownership(Some(&foreign), "u"), Ownership::Foreign);
    }
}

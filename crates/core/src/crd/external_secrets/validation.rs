//! The admission rules upstream enforces with its webhook, as plain functions. The CRDs carry
//! the same rules as `x-kubernetes-validations`; the controller calls these for objects that
//! bypassed them (written before the CRD was updated, or on a server without CEL).

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::external_secret::{CreationPolicy, DeletionPolicy, ExternalSecretSpec};
use super::store::SecretStoreSpec;

/// Secret types whose templates upstream refuses, because the API server fills them with
/// credentials (a ServiceAccount token, a bootstrap token).
const PRIVILEGED_TYPES: [&str; 2] = [
    "kubernetes.io/service-account-token",
    "bootstrap.kubernetes.io/token",
];

/// Checks an ExternalSecret (or a ClusterExternalSecret's `externalSecretSpec`) against
/// upstream's admission rules; returns every violation, each naming its field.
pub fn validate(spec: &ExternalSecretSpec) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let data = spec.data.as_deref().unwrap_or_default();
    let data_from = spec.data_from.as_deref().unwrap_or_default();
    if data.is_empty() && data_from.is_empty() {
        errors.push("spec: either data or dataFrom should be specified".to_string());
    }
    let mut seen = BTreeSet::new();
    for (i, d) in data.iter().enumerate() {
        if !seen.insert(d.secret_key.as_str()) {
            errors.push(format!(
                "spec.data[{i}].secretKey: duplicate key {:?}",
                d.secret_key
            ));
        }
        if let Some(source) = &d.source_ref {
            let store = source.store_ref.is_some();
            if store == source.generator_ref.is_some() {
                errors.push(format!(
                    "spec.data[{i}].sourceRef: must set exactly one of storeRef or generatorRef"
                ));
            }
        }
    }
    for (i, d) in data_from.iter().enumerate() {
        let generator = d
            .source_ref
            .as_ref()
            .is_some_and(|s| s.generator_ref.is_some());
        let set = [d.extract.is_some(), d.find.is_some(), generator];
        if set.iter().filter(|x| **x).count() != 1 {
            errors.push(format!(
                "spec.dataFrom[{i}]: must set exactly one of extract, find or sourceRef.generatorRef"
            ));
        }
        if let Some(source) = &d.source_ref
            && source.store_ref.is_some() == source.generator_ref.is_some()
        {
            errors.push(format!(
                "spec.dataFrom[{i}].sourceRef: must set exactly one of storeRef or generatorRef"
            ));
        }
        for (j, r) in d.rewrite.iter().flatten().enumerate() {
            let set = [r.regexp.is_some(), r.transform.is_some(), r.merge.is_some()];
            if set.iter().filter(|x| **x).count() != 1 {
                errors.push(format!(
                    "spec.dataFrom[{i}].rewrite[{j}]: must set exactly one of regexp, transform or merge"
                ));
            }
        }
    }
    if let Some(target) = &spec.target {
        let creation = target.creation_policy.unwrap_or_default();
        match target.deletion_policy.unwrap_or_default() {
            DeletionPolicy::Delete
                if matches!(
                    creation,
                    CreationPolicy::Merge | CreationPolicy::None | CreationPolicy::CreateOrMerge
                ) =>
            {
                errors.push(format!(
                    "spec.target: deletionPolicy=Delete must not be used with creationPolicy={creation:?}; set creationPolicy=Owner"
                ));
            }
            DeletionPolicy::Merge if creation == CreationPolicy::None => {
                errors.push(
                    "spec.target: deletionPolicy=Merge must not be used with creationPolicy=None"
                        .to_string(),
                );
            }
            _ => {}
        }
        if let Some(template) = &target.template {
            let is_secret = target.manifest.is_none();
            if is_secret
                && let Some(t) = template.type_.as_deref()
                && PRIVILEGED_TYPES.contains(&t)
            {
                errors.push(format!(
                    "spec.target.template.type: {t} Secrets cannot be templated"
                ));
            }
            for (i, from) in template.template_from.iter().flatten().enumerate() {
                if let Some(t) = from.target.as_deref()
                    && is_secret
                    && !["data", "annotations", "labels"].contains(&t.to_ascii_lowercase().as_str())
                {
                    errors.push(format!(
                        "spec.target.template.templateFrom[{i}].target: {t:?} is not Data, Annotations or Labels"
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks a SecretStore or ClusterSecretStore spec against upstream's admission rules: exactly
/// one provider, a refresh interval that parses.
pub fn validate_store(spec: &SecretStoreSpec) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if let Err(e) = spec.provider.kind() {
        errors.push(format!(
            "spec.provider: a store must configure exactly one provider ({e})"
        ));
    }
    if let Some(IntOrString::String(s)) = &spec.refresh_interval
        && let Err(e) = crate::duration::parse_go_duration(s)
    {
        errors.push(format!("spec.refreshInterval: {e}"));
    }
    if let Some(IntOrString::Int(i)) = &spec.refresh_interval
        && *i < 0
    {
        errors.push("spec.refreshInterval: must not be negative".to_string());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::external_secrets::*;

    fn es(v: serde_json::Value) -> ExternalSecretSpec {
        serde_json::from_value(v).unwrap()
    }

    fn store(v: serde_json::Value) -> SecretStoreSpec {
        serde_json::from_value(v).unwrap()
    }

    fn errors(r: Result<(), Vec<String>>) -> String {
        r.err().unwrap_or_default().join("\n")
    }

    #[test]
    fn a_plain_external_secret_is_valid() {
        let spec = es(serde_json::json!({
            "secretStoreRef": {"name": "s"},
            "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}],
            "dataFrom": [
                {"extract": {"key": "k"}},
                {"sourceRef": {"generatorRef": {"kind": "Password", "name": "p"}}}
            ],
            "target": {"deletionPolicy": "Delete", "template": {"templateFrom": [{"target": "annotations", "literal": "x"}]}}
        }));
        assert_eq!(validate(&spec), Ok(()));
    }

    #[test]
    fn each_rule_is_reported_with_its_field() {
        assert!(errors(validate(&es(serde_json::json!({})))).contains("either data or dataFrom"));
        let spec = es(serde_json::json!({
            "data": [
                {"secretKey": "a", "remoteRef": {"key": "k"}},
                {"secretKey": "a", "remoteRef": {"key": "k"}, "sourceRef": {}}
            ],
            "dataFrom": [
                {"extract": {"key": "k"}, "find": {"path": "p"}},
                {"sourceRef": {"storeRef": {"name": "s"}}},
                {"find": {}, "rewrite": [{}, {"regexp": {"source": "a", "target": "b"}, "transform": {"template": "x"}}]}
            ],
            "target": {
                "creationPolicy": "Merge",
                "deletionPolicy": "Delete",
                "template": {"type": "kubernetes.io/service-account-token", "templateFrom": [{"target": "spec.x"}]}
            }
        }));
        let text = errors(validate(&spec));
        for expected in [
            "spec.data[1].secretKey: duplicate key \"a\"",
            "spec.data[1].sourceRef: must set exactly one",
            "spec.dataFrom[0]: must set exactly one of extract, find",
            "spec.dataFrom[1]: must set exactly one of extract, find",
            "spec.dataFrom[2].rewrite[0]",
            "spec.dataFrom[2].rewrite[1]",
            "deletionPolicy=Delete must not be used with creationPolicy=Merge",
            "kubernetes.io/service-account-token Secrets cannot be templated",
            "templateFrom[0].target: \"spec.x\"",
        ] {
            assert!(text.contains(expected), "{expected} not in:\n{text}");
        }
        let merge_none = es(serde_json::json!({
            "dataFrom": [{"extract": {"key": "k"}}],
            "target": {"creationPolicy": "None", "deletionPolicy": "Merge"}
        }));
        assert!(errors(validate(&merge_none)).contains("deletionPolicy=Merge"));
    }

    #[test]
    fn generic_targets_take_nested_template_targets() {
        let spec = es(serde_json::json!({
            "dataFrom": [{"extract": {"key": "k"}}],
            "target": {"manifest": {"apiVersion": "v1", "kind": "ConfigMap"},
                       "template": {"templateFrom": [{"target": "spec.data", "literal": "x"}]}}
        }));
        assert_eq!(validate(&spec), Ok(()));
    }

    #[test]
    fn stores_need_exactly_one_provider_and_a_valid_interval() {
        let ok = store(
            serde_json::json!({"provider": {"fake": {"data": []}}, "refreshInterval": "10m"}),
        );
        assert_eq!(validate_store(&ok), Ok(()));
        let none = store(serde_json::json!({"provider": {}, "refreshInterval": "ten minutes"}));
        let text = errors(validate_store(&none));
        assert!(
            text.contains("exactly one provider (spec.provider names no provider)"),
            "{text}"
        );
        assert!(text.contains("spec.refreshInterval"), "{text}");
        let two = store(serde_json::json!({"provider": {"fake": {"data": []}, "akeyless": {}}}));
        assert!(errors(validate_store(&two)).contains("exactly one provider"));
    }
}

//! Custom resource types for all three controller families, with the exact upstream group,
//! version, kind, plural, short names, scope and field names.
//!
//! Optional fields are `Option`s with no schema default: defaults are applied in code, so
//! GitOps tools see no drift between what they applied and what the server stores.

pub mod condition;
pub mod external_secrets;
pub mod generators;
pub mod schema;
pub mod sealed_secret;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, CustomResourceValidation,
    JSONSchemaProps,
};
use kube::CustomResourceExt;

/// Adds upstream's older versions as entries that are neither served nor stored. The API server
/// refuses a CRD that drops a version still named in `status.storedVersions`, so a cluster where
/// upstream once stored `v1beta1` objects can only take our CRD if the entry stays. The schema
/// keeps every field (a version needs one even when not served).
pub fn with_unserved_versions(
    mut crd: CustomResourceDefinition,
    versions: &[&str],
) -> CustomResourceDefinition {
    for name in versions {
        crd.spec.versions.push(CustomResourceDefinitionVersion {
            name: (*name).to_string(),
            served: false,
            storage: false,
            deprecated: Some(true),
            schema: Some(CustomResourceValidation {
                open_api_v3_schema: Some(JSONSchemaProps {
                    type_: Some("object".into()),
                    x_kubernetes_preserve_unknown_fields: Some(true),
                    ..JSONSchemaProps::default()
                }),
            }),
            ..CustomResourceDefinitionVersion::default()
        });
    }
    crd
}

/// `<group>_<plural>.yaml`, the file name upstream and `deploy/crds/` use.
fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// Every CRD Strongroom serves, with the file name it is written to under `deploy/crds/`.
pub fn all() -> Vec<(String, CustomResourceDefinition)> {
    use external_secrets::*;
    use generators::*;
    let v1beta1 = &["v1beta1"];
    let crds = vec![
        sealed_secret::SealedSecret::crd(),
        with_unserved_versions(ExternalSecret::crd(), v1beta1),
        with_unserved_versions(SecretStore::crd(), v1beta1),
        with_unserved_versions(ClusterSecretStore::crd(), v1beta1),
        with_unserved_versions(ClusterExternalSecret::crd(), v1beta1),
        PushSecret::crd(),
        ClusterPushSecret::crd(),
        AcrAccessToken::crd(),
        BeyondtrustWorkloadCredentialsDynamicSecret::crd(),
        CloudsmithAccessToken::crd(),
        ClusterGenerator::crd(),
        CodeArtifactAuthorizationToken::crd(),
        EcrAuthorizationToken::crd(),
        Fake::crd(),
        GcrAccessToken::crd(),
        GithubAccessToken::crd(),
        GitlabDeployToken::crd(),
        Grafana::crd(),
        Mfa::crd(),
        Password::crd(),
        QuayAccessToken::crd(),
        SshKey::crd(),
        StsSessionToken::crd(),
        StsAssumeRoleToken::crd(),
        Uuid::crd(),
        VaultDynamicSecret::crd(),
        Webhook::crd(),
        GeneratorState::crd(),
    ];
    crds.into_iter().map(|c| (file_name(&c), c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(value: &serde_json::Value, path: &str, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    if k == "default" {
                        found.push(format!("{path}.default"));
                    }
                    walk(v, &format!("{path}.{k}"), found);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), found);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn no_crd_carries_a_server_side_default() {
        for (file, crd) in all() {
            let mut found = Vec::new();
            walk(&serde_json::to_value(&crd).unwrap(), &file, &mut found);
            assert!(
                found.is_empty(),
                "server-side defaults cause GitOps drift: {found:?}"
            );
        }
    }

    #[test]
    fn crds_have_upstream_names_and_scopes() {
        let names: Vec<(String, String, Vec<String>)> = all()
            .into_iter()
            .map(|(_, c)| {
                (
                    c.metadata.name.unwrap_or_default(),
                    c.spec.scope,
                    c.spec.names.short_names.unwrap_or_default(),
                )
            })
            .collect();
        let expect = |n: &str, scope: &str, short: &[&str]| {
            assert!(
                names.iter().any(|(name, s, sh)| name == n
                    && s == scope
                    && sh.iter().map(String::as_str).eq(short.iter().copied())),
                "{n} {scope} {short:?} not in {names:?}"
            );
        };
        expect("sealedsecrets.bitnami.com", "Namespaced", &[]);
        expect("externalsecrets.external-secrets.io", "Namespaced", &["es"]);
        expect("secretstores.external-secrets.io", "Namespaced", &["ss"]);
        expect(
            "clustersecretstores.external-secrets.io",
            "Cluster",
            &["css"],
        );
        expect(
            "clusterexternalsecrets.external-secrets.io",
            "Cluster",
            &["ces"],
        );
        expect("pushsecrets.external-secrets.io", "Namespaced", &["ps"]);
        expect("clusterpushsecrets.external-secrets.io", "Cluster", &[]);
        expect(
            "clustergenerators.generators.external-secrets.io",
            "Cluster",
            &[],
        );
        expect(
            "generatorstates.generators.external-secrets.io",
            "Namespaced",
            &["gs"],
        );
        expect(
            "passwords.generators.external-secrets.io",
            "Namespaced",
            &[],
        );
        assert_eq!(names.len(), 28);
    }

    #[test]
    fn old_upstream_versions_stay_listed_but_unserved() {
        for (file, crd) in all() {
            let served: Vec<_> = crd.spec.versions.iter().filter(|v| v.served).collect();
            assert_eq!(served.len(), 1, "{file}");
            assert!(served[0].storage, "{file}");
            for v in &crd.spec.versions {
                assert!(v.schema.is_some(), "{file} {} needs a schema", v.name);
            }
            if file.starts_with("external-secrets.io_") && !file.contains("pushsecrets") {
                let old = crd.spec.versions.iter().find(|v| v.name == "v1beta1");
                assert!(old.is_some_and(|v| !v.served && !v.storage), "{file}");
            }
        }
    }
}

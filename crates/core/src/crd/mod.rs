//! Custom resource types for all three controller families, with the exact upstream group,
//! version, kind, plural, short names, scope and field names.
//!
//! Optional fields are `Option`s with no schema default: defaults are applied in code, so
//! GitOps tools see no drift between what they applied and what the server stores.

pub mod condition;
pub mod external_secrets;
pub mod schema;
pub mod sealed_secret;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD Strongroom serves, with the file name it is written to under `deploy/crds/`.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    use external_secrets::*;
    vec![
        (
            "bitnami.com_sealedsecrets.yaml",
            sealed_secret::SealedSecret::crd(),
        ),
        (
            "external-secrets.io_externalsecrets.yaml",
            ExternalSecret::crd(),
        ),
        ("external-secrets.io_secretstores.yaml", SecretStore::crd()),
        (
            "external-secrets.io_clustersecretstores.yaml",
            ClusterSecretStore::crd(),
        ),
        (
            "external-secrets.io_clusterexternalsecrets.yaml",
            ClusterExternalSecret::crd(),
        ),
        ("external-secrets.io_pushsecrets.yaml", PushSecret::crd()),
    ]
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
            walk(&serde_json::to_value(&crd).unwrap(), file, &mut found);
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
    }
}

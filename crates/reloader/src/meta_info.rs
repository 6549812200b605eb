//! Upstream's `reloader-meta-info` ConfigMap: when `RELOADER_NAMESPACE` is set, the reloader
//! writes what it is and how it runs there at start (`buildInfo`, `reloaderOptions`,
//! `deploymentInfo`, each a JSON document), for introspection by tools that read upstream's.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

/// The ConfigMap's name.
pub const NAME: &str = "reloader-meta-info";
/// Its label key.
pub const LABEL: &str = "reloader.stakater.com/meta-info";
/// Its label value.
pub const LABEL_VALUE: &str = "reloader";

/// The ConfigMap for a reloader deployed as `deployment` in `namespace`, with `options` (the
/// `reloaderOptions` document, upstream's field names).
pub fn config_map(namespace: &str, deployment: &str, options: &Value) -> Value {
    let build = json!({
        "goVersion": "",
        "releaseVersion": env!("CARGO_PKG_VERSION"),
        "commitHash": option_env!("STRONGROOM_COMMIT").unwrap_or("unknown"),
        "isDirty": false,
        "commitTime": "0001-01-01T00:00:00Z",
        "edition": "strongroom",
    });
    let deployment_info = json!({"name": deployment, "namespace": namespace});
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": namespace, "labels": {LABEL: LABEL_VALUE}},
        "data": {
            "buildInfo": build.to_string(),
            "reloaderOptions": options.to_string(),
            "deploymentInfo": deployment_info.to_string(),
        },
    })
}

/// Creates or updates the ConfigMap (server-side apply). A failure is logged, never fatal:
/// the ConfigMap is introspection only.
pub async fn publish(client: &Client, namespace: &str, deployment: &str, options: &Value) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(crate::engine::FIELD_MANAGER).force();
    let body = config_map(namespace, deployment, options);
    match api.patch(NAME, &params, &Patch::Apply(body)).await {
        Ok(_) => tracing::info!(%namespace, "wrote the {NAME} ConfigMap"),
        Err(e) => tracing::warn!(%namespace, error = %e, "could not write the {NAME} ConfigMap"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_document_is_json_under_upstream_keys() {
        let cm = config_map("ops", "reloader", &json!({"reloadStrategy": "env-vars"}));
        assert_eq!(cm["metadata"]["labels"][LABEL], "reloader");
        for key in ["buildInfo", "reloaderOptions", "deploymentInfo"] {
            let text = cm["data"][key].as_str().unwrap_or_default();
            assert!(serde_json::from_str::<Value>(text).is_ok(), "{key}: {text}");
        }
        assert_eq!(
            cm["data"]["deploymentInfo"],
            r#"{"name":"reloader","namespace":"ops"}"#
        );
    }
}

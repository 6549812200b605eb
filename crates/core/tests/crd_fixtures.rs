//! Every CRD type reads the upstream-style manifests under `tests/fixtures/crds/` and writes
//! them back without losing or renaming a field.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use strongroom_core::crd::external_secrets::{
    ClusterExternalSecret, ClusterSecretStore, CreationPolicy, ExternalSecret, ProviderKind,
    PushSecret, SecretStore, StoreKind,
};
use strongroom_core::crd::sealed_secret::SealedSecret;
use strongroom_core::scope::SealingScope;

fn docs(file: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/crds")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// Drops nulls, which Go writes for empty timestamps and we omit.
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Parses `doc` as `T` and checks that writing it back gives the same object.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> T {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{e}: {}", doc["metadata"]["name"]));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        without_nulls(back),
        without_nulls(doc.clone()),
        "{} lost or renamed a field",
        doc["metadata"]["name"]
    );
    typed
}

#[test]
fn sealed_secrets_round_trip() {
    let docs = docs("sealedsecret.yaml");
    assert_eq!(docs.len(), 3);
    let strict: SealedSecret = round_trip(&docs[0]);
    assert_eq!(strict.scope(), SealingScope::Strict);
    assert_eq!(strict.spec.encrypted_data.len(), 2);
    let ns_wide: SealedSecret = round_trip(&docs[1]);
    assert_eq!(ns_wide.scope(), SealingScope::NamespaceWide);
    let template = ns_wide.spec.template.unwrap();
    assert_eq!(template.immutable, Some(true));
    assert!(template.data.unwrap().contains_key(".dockerconfigjson"));
    let legacy: SealedSecret = round_trip(&docs[2]);
    assert!(legacy.spec.data.is_some());
}

#[test]
fn external_secret_round_trips_every_field() {
    let docs = docs("externalsecret.yaml");
    let es: ExternalSecret = round_trip(&docs[0]);
    let target = es.spec.target.as_ref().unwrap();
    assert_eq!(target.creation_policy, Some(CreationPolicy::Owner));
    assert_eq!(es.spec.data.as_ref().unwrap().len(), 2);
    assert_eq!(es.spec.data_from.as_ref().unwrap().len(), 3);
    assert_eq!(
        es.spec.secret_store_ref.as_ref().unwrap().kind_or_default(),
        StoreKind::SecretStore
    );
    assert_eq!(es.spec.refresh_interval_or_default(), "1h0m0s");
}

#[test]
fn stores_round_trip_and_name_their_provider() {
    let expected = [
        ("aws-static", ProviderKind::Aws),
        ("aws-irsa", ProviderKind::Aws),
        ("vault-backend", ProviderKind::Vault),
        ("vault-other-auth", ProviderKind::Vault),
        ("azure-sp", ProviderKind::AzureKv),
        ("azure-wi", ProviderKind::AzureKv),
        ("k8s-store", ProviderKind::Kubernetes),
        ("fake", ProviderKind::Fake),
        ("gcp-wi", ProviderKind::GcpSm),
        ("gcp-key", ProviderKind::GcpSm),
    ];
    let docs = docs("secretstores.yaml");
    assert_eq!(docs.len(), expected.len());
    for (doc, (name, kind)) in docs.iter().zip(expected) {
        assert_eq!(doc["metadata"]["name"], name);
        let provider = if doc["kind"] == "SecretStore" {
            round_trip::<SecretStore>(doc).spec.provider
        } else {
            round_trip::<ClusterSecretStore>(doc).spec.provider
        };
        assert_eq!(provider.kind().unwrap(), kind, "{name}");
    }
}

#[test]
fn unsupported_provider_is_kept_and_reported() {
    let docs = docs("unsupported-provider.yaml");
    let store: SecretStore = round_trip(&docs[0]);
    assert_eq!(
        store.spec.provider.kind().unwrap(),
        ProviderKind::Unsupported("onepasswordSDK".into())
    );
}

#[test]
fn two_providers_in_one_store_is_an_error_naming_both() {
    let mut doc = docs("secretstores.yaml").remove(7);
    doc["spec"]["provider"]["webhook"] = serde_json::json!({"url": "http://x"});
    let store: SecretStore = serde_json::from_value(doc).unwrap();
    let err = store.spec.provider.kind().unwrap_err().to_string();
    assert!(err.contains("fake") && err.contains("webhook"), "{err}");
}

#[test]
fn cluster_external_secret_and_push_secret_round_trip() {
    let ces: ClusterExternalSecret = round_trip(&docs("clusterexternalsecret.yaml")[0]);
    assert_eq!(ces.spec.namespace_selectors.unwrap().len(), 2);
    let ps: PushSecret = round_trip(&docs("pushsecret.yaml")[0]);
    assert_eq!(ps.spec.secret_store_refs.len(), 2);
}

/// Walks `doc` along `schema` and records every field the API server would prune.
fn pruned_fields(doc: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                let child = path.to_string() + "." + k;
                if let Some(s) = schema["properties"].get(k) {
                    pruned_fields(v, s, &child, out);
                } else if schema["additionalProperties"].is_object() {
                    pruned_fields(v, &schema["additionalProperties"], &child, out);
                } else {
                    out.push(child);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pruned_fields(v, &schema["items"], &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn generated_schemas_keep_every_fixture_field() {
    let crds = strongroom_core::crd::all();
    for file in [
        "sealedsecret.yaml",
        "externalsecret.yaml",
        "secretstores.yaml",
        "unsupported-provider.yaml",
        "clusterexternalsecret.yaml",
        "pushsecret.yaml",
    ] {
        for doc in docs(file) {
            let kind = doc["kind"].as_str().unwrap();
            let (_, crd) = crds
                .iter()
                .find(|(_, c)| c.spec.names.kind == kind)
                .unwrap_or_else(|| panic!("no CRD for {kind}"));
            let version = doc["apiVersion"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap();
            let served = crd
                .spec
                .versions
                .iter()
                .find(|v| v.name == version)
                .unwrap_or_else(|| panic!("{kind} does not serve {version}"));
            let schema = serde_json::to_value(&served.schema).unwrap();
            let root = &schema["openAPIV3Schema"];
            let mut pruned = Vec::new();
            for part in ["spec", "status"] {
                if let Some(v) = doc.get(part) {
                    pruned_fields(v, &root["properties"][part], part, &mut pruned);
                }
            }
            assert!(
                pruned.is_empty(),
                "{file} {kind}: the API server would prune {pruned:?}"
            );
        }
    }
}

#[test]
fn schema_walk_catches_an_unknown_field() {
    let crds = strongroom_core::crd::all();
    let (_, crd) = crds
        .iter()
        .find(|(_, c)| c.spec.names.kind == "ExternalSecret")
        .unwrap();
    let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
    let spec_schema = &schema["openAPIV3Schema"]["properties"]["spec"];
    let mut doc = docs("externalsecret.yaml").remove(0);
    doc["spec"]["target"]["bogusField"] = Value::Bool(true);
    let mut pruned = Vec::new();
    pruned_fields(&doc["spec"], spec_schema, "spec", &mut pruned);
    assert_eq!(pruned, vec!["spec.target.bogusField".to_string()]);
    // while provider blocks keep fields this version does not model
    let store = &crds
        .iter()
        .find(|(_, c)| c.spec.names.kind == "SecretStore")
        .unwrap()
        .1;
    let schema = serde_json::to_value(&store.spec.versions[0].schema).unwrap();
    let mut doc = docs("secretstores.yaml").remove(0);
    doc["spec"]["provider"]["aws"]["sessionTagsPolicy"] = "Simple".into();
    let mut pruned = Vec::new();
    pruned_fields(
        &doc["spec"],
        &schema["openAPIV3Schema"]["properties"]["spec"],
        "spec",
        &mut pruned,
    );
    assert!(pruned.is_empty(), "{pruned:?}");
}

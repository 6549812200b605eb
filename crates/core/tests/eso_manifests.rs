//! Upstream-style manifests (`tests/fixtures/eso-manifests/`) read into Strongroom's types
//! without losing a field, survive our generated schemas unpruned, and pass `validate()`;
//! the invalid ones are refused by `validate()` with the expected message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use strongroom_core::crd::external_secrets::{
    ClusterExternalSecret, ClusterPushSecret, ClusterSecretStore, ExternalSecret, PushSecret,
    SecretStore, validate, validate_store,
};
use strongroom_core::crd::generators::{
    ClusterGenerator, EcrAuthorizationToken, Fake, GeneratorState, GithubAccessToken, Password,
    SshKey, Uuid, VaultDynamicSecret, Webhook,
};

fn docs(dir: &str) -> Vec<(String, Value)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eso-manifests");
    let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for d in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value = serde::Deserialize::deserialize(d).unwrap();
            out.push((f.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    out
}

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

/// Every field of `doc` the API server would prune with `schema`.
fn pruned(doc: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true && schema["properties"].is_null() {
        return;
    }
    match doc {
        Value::Object(map) => {
            for (k, v) in map {
                let child = format!("{path}.{k}");
                if let Some(s) = schema["properties"].get(k) {
                    pruned(v, s, &child, out);
                } else if schema["additionalProperties"].is_object() {
                    pruned(v, &schema["additionalProperties"], &child, out);
                } else if schema["x-kubernetes-preserve-unknown-fields"] != true {
                    out.push(child);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pruned(v, &schema["items"], &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Runs `validate()` for the kinds that have one.
fn check(kind: &str, doc: &Value) -> Result<(), Vec<String>> {
    match kind {
        "ExternalSecret" => validate(&round_trip::<ExternalSecret>(doc).spec),
        "ClusterExternalSecret" => validate(
            &round_trip::<ClusterExternalSecret>(doc)
                .spec
                .external_secret_spec,
        ),
        "SecretStore" => validate_store(&round_trip::<SecretStore>(doc).spec),
        "ClusterSecretStore" => validate_store(&round_trip::<ClusterSecretStore>(doc).spec.into()),
        _ => Ok(()),
    }
}

#[test]
fn upstream_manifests_read_validate_and_keep_every_field() {
    let crds = strongroom_core::crd::all();
    let docs = docs(".");
    assert!(docs.len() >= 30, "{}", docs.len());
    for (file, doc) in &docs {
        let kind = doc["kind"].as_str().unwrap();
        let name = &doc["metadata"]["name"];
        match kind {
            "PushSecret" => drop(round_trip::<PushSecret>(doc)),
            "ClusterPushSecret" => drop(round_trip::<ClusterPushSecret>(doc)),
            "Password" => drop(round_trip::<Password>(doc)),
            "UUID" => drop(round_trip::<Uuid>(doc)),
            "Fake" => drop(round_trip::<Fake>(doc)),
            "ClusterGenerator" => drop(round_trip::<ClusterGenerator>(doc)),
            "GeneratorState" => drop(round_trip::<GeneratorState>(doc)),
            "ECRAuthorizationToken" => drop(round_trip::<EcrAuthorizationToken>(doc)),
            "GithubAccessToken" => drop(round_trip::<GithubAccessToken>(doc)),
            "VaultDynamicSecret" => drop(round_trip::<VaultDynamicSecret>(doc)),
            "Webhook" => drop(round_trip::<Webhook>(doc)),
            "SSHKey" => drop(round_trip::<SshKey>(doc)),
            other => check(other, doc).unwrap_or_else(|e| panic!("{file} {name}: {e:?}")),
        }
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
            .find(|v| v.name == version && v.served)
            .unwrap_or_else(|| panic!("{kind} does not serve {version}"));
        let schema = serde_json::to_value(&served.schema).unwrap();
        let mut out = Vec::new();
        pruned(
            &doc["spec"],
            &schema["openAPIV3Schema"]["properties"]["spec"],
            "spec",
            &mut out,
        );
        assert!(out.is_empty(), "{file} {name}: pruned {out:?}");
    }
}

#[test]
fn invalid_manifests_are_refused_by_validate() {
    let mut checked = 0;
    for (file, doc) in docs("invalid") {
        let kind = doc["kind"].as_str().unwrap();
        let expected = doc["metadata"]["annotations"]["strongroom.dev/expect-error"]
            .as_str()
            .unwrap()
            .to_lowercase();
        if !matches!(
            kind,
            "ExternalSecret" | "ClusterExternalSecret" | "SecretStore" | "ClusterSecretStore"
        ) {
            continue;
        }
        let errors = check(kind, &doc).expect_err(&format!("{file} {}", doc["metadata"]["name"]));
        let text = errors.join("\n").to_lowercase();
        assert!(
            text.contains(&expected),
            "{file}: {expected:?} not in {text}"
        );
        checked += 1;
    }
    assert!(checked >= 10, "{checked}");
}

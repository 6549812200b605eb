//! Upstream-style manifests (`tests/fixtures/eso-manifests/`) read into Strongroom's types
//! without losing a field, survive our generated schemas unpruned, and pass `validate()`;
//! the invalid ones are refused by `validate()` with the expected message. Upstream's own
//! snippets (`eso-manifests/upstream/`, stored as fetched) go through the same checks, except the
//! documents `upstream-allow-list.txt` names, which must be refused the way upstream refuses them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use strongroom_core::crd::external_secrets::{
    ClusterExternalSecret, ClusterPushSecret, ClusterSecretStore, ExternalSecret, PushSecret,
    SecretStore, validate, validate_store,
};
use strongroom_core::crd::generators::{
    ClusterGenerator, EcrAuthorizationToken, Fake, GeneratorState, GithubAccessToken, Password,
    SshKey, Uuid, VaultDynamicSecret, Webhook,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eso-manifests")
}

/// Key of the marker document `docs()` returns for a file that does not parse as YAML.
const UNPARSEABLE: &str = "unparseable";

/// The YAML documents under `dir`, each with its file name.
fn docs(dir: &str) -> Vec<(String, Value)> {
    let root = root();
    let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        // upstream's snippets wrap Go templates in the docs' `{% raw %}` markers
        let text: String = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .filter(|l| !is_raw_marker(l))
            .map(|l| format!("{l}\n"))
            .collect();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        for d in serde_yaml_ng::Deserializer::from_str(&text) {
            let v: Value = match serde::Deserialize::deserialize(d) {
                Ok(v) => v,
                // a file that is not YAML at all (upstream's own typo): one marker document
                Err(e) => {
                    out.push((name.clone(), json!({ UNPARSEABLE: e.to_string() })));
                    break;
                }
            };
            if v.is_null() {
                continue;
            }
            out.push((name.clone(), v));
        }
    }
    out
}

/// The docs' `{% raw %}`/`{% endraw %}` lines (also in their `{%-`/`-%}` forms).
fn is_raw_marker(line: &str) -> bool {
    let t = line.trim();
    let Some(inner) = t.strip_prefix("{%").and_then(|r| r.strip_suffix("%}")) else {
        return false;
    };
    matches!(inner.trim_matches('-').trim(), "raw" | "endraw")
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
    let back = without_nulls(serde_json::to_value(&typed).unwrap());
    let mut changed = Vec::new();
    differences(&without_nulls(doc.clone()), &back, "", &mut changed);
    assert!(
        changed.is_empty(),
        "{} lost or renamed a field: {changed:?}",
        doc["metadata"]["name"]
    );
    typed
}

/// The paths at which `read` (the manifest) and `back` (its round trip) differ.
fn differences(read: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (read, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let child = format!("{path}.{k}");
                match b.get(k) {
                    Some(w) => differences(v, w, &child, out),
                    None => out.push(format!("{child} lost")),
                }
            }
            out.extend(
                b.keys()
                    .filter(|k| !a.contains_key(*k))
                    .map(|k| format!("{path}.{k} added")),
            );
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                differences(v, w, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} became {b}")),
        _ => {}
    }
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

/// `validate()` of a store or ExternalSecret read without the round-trip check (for documents
/// upstream refuses, which may also carry fields v2.9.0 no longer defines).
fn validate_only(kind: &str, doc: &Value) -> Result<(), Vec<String>> {
    fn read<T: DeserializeOwned>(doc: &Value) -> T {
        serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}"))
    }
    match kind {
        "ExternalSecret" => validate(&read::<ExternalSecret>(doc).spec),
        "ClusterExternalSecret" => {
            validate(&read::<ClusterExternalSecret>(doc).spec.external_secret_spec)
        }
        "SecretStore" => validate_store(&read::<SecretStore>(doc).spec),
        "ClusterSecretStore" => validate_store(&read::<ClusterSecretStore>(doc).spec.into()),
        other => panic!("{other} has no validate()"),
    }
}

/// Reads `doc` into our type, checks it with `validate()` where the kind has one, and checks
/// that the served schema of its version keeps every field.
fn check_document(crds: &[(String, CustomResourceDefinition)], file: &str, doc: &Value) {
    assert!(doc[UNPARSEABLE].is_null(), "{file}: {}", doc[UNPARSEABLE]);
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
    let served = served_schema(crds, doc)
        .unwrap_or_else(|| panic!("{file} {name}: {kind} {} not served", doc["apiVersion"]));
    let mut out = Vec::new();
    pruned(
        &doc["spec"],
        &served["openAPIV3Schema"]["properties"]["spec"],
        "spec",
        &mut out,
    );
    assert!(out.is_empty(), "{file} {name}: pruned {out:?}");
}

/// Whether any of our CRDs defines `kind` in the document's API group.
fn has_crd(crds: &[(String, CustomResourceDefinition)], doc: &Value) -> bool {
    let kind = doc["kind"].as_str().unwrap();
    let group = doc["apiVersion"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    crds.iter()
        .any(|(_, c)| c.spec.names.kind == kind && c.spec.group == group)
}

/// The schema our CRD serves for the document's kind and version, `None` when not served.
fn served_schema(crds: &[(String, CustomResourceDefinition)], doc: &Value) -> Option<Value> {
    let kind = doc["kind"].as_str().unwrap();
    let (group, version) = doc["apiVersion"].as_str().unwrap().split_once('/').unwrap();
    let (_, crd) = crds
        .iter()
        .find(|(_, c)| c.spec.names.kind == kind && c.spec.group == group)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    crd.spec
        .versions
        .iter()
        .find(|v| v.name == version && v.served)
        .map(|v| serde_json::to_value(&v.schema).unwrap())
}

#[test]
fn upstream_manifests_read_validate_and_keep_every_field() {
    let crds = strongroom_core::crd::all();
    let docs = docs(".");
    assert!(docs.len() >= 30, "{}", docs.len());
    for (file, doc) in &docs {
        check_document(&crds, file, doc);
    }
}

/// One line of `upstream-allow-list.txt`: `file | Kind/name | refused by | reason`.
#[derive(Debug)]
struct Allowed {
    file: String,
    object: String,
    /// `version` (not served), `kind` (no CRD defines the kind), `yaml` (the file does not
    /// parse; object `-`), `metadata` (no API server accepts its metadata), `field` (a field
    /// v2.9.0 does not define, dropped), `schema` (the CRD's validation), `validate`, or `kept`
    /// (refused by upstream's typed schema; ours keeps that spec as written).
    refused_by: String,
}

fn allow_list() -> Vec<Allowed> {
    std::fs::read_to_string(root().join("upstream-allow-list.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let parts: Vec<_> = l.split('|').map(str::trim).collect();
            assert!(parts.len() == 4 && !parts[3].is_empty(), "no reason: {l}");
            assert!(
                matches!(
                    parts[2],
                    "version"
                        | "kind"
                        | "yaml"
                        | "metadata"
                        | "field"
                        | "schema"
                        | "validate"
                        | "kept"
                ),
                "{l}"
            );
            Allowed {
                file: parts[0].to_owned(),
                object: parts[1].to_owned(),
                refused_by: parts[2].to_owned(),
            }
        })
        .collect()
}

#[test]
fn upstream_snippets_read_validate_and_keep_every_field() {
    let crds = strongroom_core::crd::all();
    let allowed = allow_list();
    let mut used = vec![false; allowed.len()];
    let mut checked = 0;
    let mut failures = Vec::new();
    for (file, doc) in docs("upstream") {
        if !doc[UNPARSEABLE].is_null() {
            let i = allowed
                .iter()
                .position(|a| a.file == file && a.object == "-" && a.refused_by == "yaml")
                .unwrap_or_else(|| panic!("{file}: {}", doc[UNPARSEABLE]));
            used[i] = true;
            continue;
        }
        let group = doc["apiVersion"].as_str().unwrap_or_default();
        if !group.contains("external-secrets.io/") {
            continue; // the Secrets and ServiceAccounts the examples come with
        }
        let object = format!(
            "{}/{}",
            doc["kind"].as_str().unwrap(),
            doc["metadata"]["name"].as_str().unwrap()
        );
        if let Some(i) = allowed
            .iter()
            .position(|a| a.file == file && a.object == object)
        {
            used[i] = true;
            match allowed[i].refused_by.as_str() {
                // a version upstream no longer serves is not served here either
                "version" => assert!(served_schema(&crds, &doc).is_none(), "{file} {object}"),
                // a kind upstream v2.9.0 does not define (or another change adds)
                "kind" => assert!(!has_crd(&crds, &doc), "{file} {object}: CRD exists"),
                "yaml" => panic!("{file} {object}: parses"),
                "validate" => assert!(
                    validate_only(doc["kind"].as_str().unwrap(), &doc).is_err(),
                    "{file} {object}"
                ),
                // metadata no API server accepts (e.g. a number as an annotation value)
                "metadata" => assert!(
                    serde_json::from_value::<ObjectMeta>(doc["metadata"].clone()).is_err(),
                    "{file} {object}"
                ),
                // a field v2.9.0 does not define: not modelled, so it does not survive as written
                "field" => assert!(
                    std::panic::catch_unwind(|| check_document(&crds, &file, &doc)).is_err(),
                    "{file} {object}: kept every field"
                ),
                // kept as written: it reads back unchanged and nothing is pruned
                "kept" => check_document(&crds, &file, &doc),
                // refused by the CRD's schema: crates/devcluster/tests/eso_crds.rs checks it
                _ => {}
            }
            continue;
        }
        let result = std::panic::catch_unwind(|| check_document(&crds, &file, &doc));
        if let Err(e) = result {
            let text = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{file} {object}: {text}"));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 170, "{checked}");
    let stale: Vec<_> = allowed
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(a, _)| a)
        .collect();
    assert!(
        stale.is_empty(),
        "allow-list entries without a document: {stale:?}"
    );
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

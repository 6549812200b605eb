//! The generated External Secrets CRDs (`deploy/crds/`) on devcluster: every upstream-style
//! manifest under `crates/core/tests/fixtures/eso-manifests/` is admitted, and each invalid one
//! is refused by the CRD's validation rules with the expected message. devcluster compiles and
//! runs the `x-kubernetes-validations` rules the way the real API server does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Config};
use serde_json::{Value, json};
use strongroom_devcluster::{DevCluster, Options};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yaml_docs(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
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
        for d in serde_yaml_ng::Deserializer::from_str(&text) {
            let mut doc: Value = match serde::Deserialize::deserialize(d) {
                Ok(doc) => doc,
                // a file that is not YAML at all (upstream's own typo): one marker document
                Err(e) => json!({ "unparseable": e.to_string(), "metadata": {} }),
            };
            if doc.is_null() {
                continue;
            }
            doc["metadata"]["annotations"]["strongroom.dev/file"] =
                json!(f.file_name().unwrap().to_string_lossy());
            let stop = !doc["unparseable"].is_null();
            out.push(doc);
            if stop {
                break;
            }
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

async fn cluster_with_eso_crds() -> (DevCluster, Client, Vec<CustomResourceDefinition>) {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let kubeconfig = Kubeconfig::from_yaml(&cluster.kubeconfig()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "eso"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut installed = Vec::new();
    for doc in yaml_docs(&repo().join("deploy/crds")) {
        let crd: CustomResourceDefinition = serde_json::from_value(doc).unwrap();
        if !crd.spec.group.contains("external-secrets.io") {
            continue;
        }
        installed.push(crds.create(&PostParams::default(), &crd).await.unwrap());
    }
    (cluster, client, installed)
}

fn api_for(client: &Client, crds: &[CustomResourceDefinition], doc: &Value) -> Api<DynamicObject> {
    let kind = doc["kind"].as_str().unwrap();
    let (group, version) = doc["apiVersion"].as_str().unwrap().split_once('/').unwrap();
    let crd = crds
        .iter()
        .find(|c| c.spec.names.kind == kind && c.spec.group == group)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        &crd.spec.names.plural,
    );
    if crd.spec.scope == "Namespaced" {
        Api::namespaced_with(client.clone(), "eso", &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    }
}

#[tokio::test]
async fn upstream_manifests_are_admitted_and_broken_ones_refused() {
    let (_cluster, client, crds) = cluster_with_eso_crds().await;
    assert_eq!(crds.len(), 27);
    let fixtures = repo().join("crates/core/tests/fixtures/eso-manifests");
    let valid = yaml_docs(&fixtures);
    assert!(valid.len() >= 30);
    for doc in &valid {
        let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        let created = api_for(&client, &crds, doc)
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", doc["metadata"]["name"]));
        // nothing pruned: every field of the manifest came back
        let back = serde_json::to_value(&created).unwrap();
        assert_eq!(back["spec"], doc["spec"], "{}", doc["metadata"]["name"]);
    }
    let invalid = yaml_docs(&fixtures.join("invalid"));
    assert!(invalid.len() >= 12);
    for doc in &invalid {
        let expected = doc["metadata"]["annotations"]["strongroom.dev/expect-error"]
            .as_str()
            .unwrap()
            .to_lowercase();
        let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
        let err = api_for(&client, &crds, doc)
            .create(&PostParams::default(), &obj)
            .await
            .expect_err(&format!("{} was admitted", doc["metadata"]["name"]));
        let kube::Error::Api(status) = err else {
            panic!("{err}")
        };
        assert_eq!(status.code, 422, "{status:?}");
        assert!(
            status.message.to_lowercase().contains(&expected),
            "{}: {expected:?} not in {}",
            doc["metadata"]["name"],
            status.message
        );
    }
}

/// `(file, Kind/name, refused by)` of each line of `upstream-allow-list.txt`.
fn allow_list(fixtures: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(fixtures.join("upstream-allow-list.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split('|').map(str::trim);
            (
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
                parts.next().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn upstream_snippets_are_admitted_unpruned_or_refused_as_upstream_does() {
    let (_cluster, client, crds) = cluster_with_eso_crds().await;
    let fixtures = repo().join("crates/core/tests/fixtures/eso-manifests");
    let allowed = allow_list(&fixtures);
    let mut admitted = 0;
    let mut refused = 0;
    let mut failures = Vec::new();
    for (i, mut doc) in yaml_docs(&fixtures.join("upstream"))
        .into_iter()
        .enumerate()
    {
        if !doc["unparseable"].is_null() {
            let file = doc["metadata"]["annotations"]["strongroom.dev/file"].as_str();
            assert!(
                allowed
                    .iter()
                    .any(|a| Some(a.0.as_str()) == file && a.2 == "yaml"),
                "{file:?}: {}",
                doc["unparseable"]
            );
            refused += 1;
            continue;
        }
        if !doc["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .contains("external-secrets.io/")
        {
            continue; // the Secrets and ServiceAccounts the examples come with
        }
        let file = doc["metadata"]["annotations"]["strongroom.dev/file"]
            .as_str()
            .unwrap()
            .to_owned();
        let object = format!(
            "{}/{}",
            doc["kind"].as_str().unwrap(),
            doc["metadata"]["name"].as_str().unwrap()
        );
        let entry = allowed.iter().find(|a| a.0 == file && a.1 == object);
        if entry.is_some_and(|a| a.2 == "kind") {
            // a kind upstream v2.9.0 does not define: there is no API to send it to
            assert!(
                !crds
                    .iter()
                    .any(|c| Some(c.spec.names.kind.as_str()) == doc["kind"].as_str()),
                "{file} {object}: CRD exists"
            );
            refused += 1;
            continue;
        }
        // snippets reuse names and namespaces: give each its own name in namespace `eso`
        doc["metadata"]["name"] = json!(format!("snippet-{i}"));
        doc["metadata"].as_object_mut().unwrap().remove("namespace");
        let obj = serde_json::from_value::<DynamicObject>(doc.clone());
        if entry.is_some_and(|a| a.2 == "metadata") {
            // metadata no API server accepts (a number as an annotation value): no request can carry it
            assert!(obj.is_err(), "{file} {object}: metadata accepted");
            refused += 1;
            continue;
        }
        let obj = obj.unwrap_or_else(|e| panic!("{file} {object}: {e}"));
        let result = api_for(&client, &crds, &doc)
            .create(&PostParams::default(), &obj)
            .await;
        match (entry.map(|a| a.2.as_str()), result) {
            // a field v2.9.0 does not define: dropped (pruned) as v2.9.0 drops it, or refused
            (Some("field"), Ok(created)) => {
                let back = serde_json::to_value(&created).unwrap();
                if back["spec"] == doc["spec"] {
                    failures.push(format!(
                        "{file} {object}: kept a field v2.9.0 does not define"
                    ));
                }
                refused += 1;
            }
            (None | Some("kept"), Ok(created)) => {
                let back = serde_json::to_value(&created).unwrap();
                if back["spec"] == doc["spec"] {
                    admitted += 1;
                } else {
                    failures.push(format!("{file} {object}: pruned or defaulted"));
                }
            }
            (None | Some("kept"), Err(e)) => failures.push(format!("{file} {object}: {e}")),
            (Some(_), Ok(_)) => failures.push(format!("{file} {object} was admitted")),
            (Some(_), Err(kube::Error::Api(status))) if matches!(status.code, 404 | 422) => {
                refused += 1;
            }
            (Some(_), Err(e)) => failures.push(format!("{file} {object}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        admitted >= 175 && refused >= 100,
        "{admitted} admitted, {refused} refused"
    );
}

#[tokio::test]
async fn old_versions_are_listed_but_not_served() {
    let (_cluster, client, crds) = cluster_with_eso_crds().await;
    let es = crds
        .iter()
        .find(|c| c.spec.names.kind == "ExternalSecret")
        .unwrap();
    let names: Vec<_> = es
        .spec
        .versions
        .iter()
        .map(|v| (v.name.as_str(), v.served))
        .collect();
    assert_eq!(names, [("v1", true), ("v1beta1", false)]);
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", "v1beta1", "ExternalSecret"),
        "externalsecrets",
    );
    let old: Api<DynamicObject> = Api::namespaced_with(client.clone(), "eso", &ar);
    assert!(
        old.list(&Default::default()).await.is_err(),
        "v1beta1 is not served"
    );
}

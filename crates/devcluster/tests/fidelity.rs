//! The fidelity suite: the API semantics controllers rely on, driven by the real kube-rs
//! client. By default every case runs against devcluster. With `DEVCLUSTER_FIDELITY_REAL=1`
//! the same cases run against the cluster `KUBECONFIG` names instead, each in its own
//! namespace labelled `strongroom.dev/fidelity=true`, so the two servers can be compared.
//! (Clean up afterwards with `kubectl delete ns -l strongroom.dev/fidelity=true`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, Config, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use strongroom_devcluster::{DevCluster, Options};

/// Where a case runs: devcluster (in-process) or a real cluster, in a fresh namespace.
struct Target {
    cluster: Option<DevCluster>,
    ns: String,
}

fn real_cluster() -> bool {
    std::env::var("DEVCLUSTER_FIDELITY_REAL").is_ok_and(|v| v == "1")
}

async fn start_with(options: Options) -> (Target, Client) {
    let (cluster, client) = if real_cluster() {
        (None, Client::try_default().await.unwrap())
    } else {
        let cluster = DevCluster::start(options).await.unwrap();
        let kubeconfig = Kubeconfig::from_yaml(&cluster.kubeconfig()).unwrap();
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
        (Some(cluster), Client::try_from(config).unwrap())
    };
    let ns = format!(
        "fidelity-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let obj: Namespace = serde_json::from_value(
        json!({"metadata": {"name": ns, "labels": {"strongroom.dev/fidelity": "true"}}}),
    )
    .unwrap();
    namespaces
        .create(&PostParams::default(), &obj)
        .await
        .unwrap();
    (Target { cluster, ns }, client)
}

async fn start() -> (Target, Client) {
    start_with(Options::default()).await
}

fn secret(name: &str, labels: &[(&str, &str)]) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "stringData": {"password": "hunter2"}
    }))
    .unwrap()
}

/// Polls until `name` is gone: a real cluster deletes namespaces and dependents asynchronously.
async fn eventually_gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for _ in 0..600 {
        match api.get_opt(name).await.unwrap() {
            None => return true,
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    false
}

fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn secrets_crud_over_https_with_string_data_folded() {
    let (t, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, &t.ns);
    let created = api
        .create(&PostParams::default(), &secret("db", &[("app", "web")]))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert!(created.string_data.is_none(), "stringData is write-only");
    assert_eq!(created.data.unwrap()["password"].0, b"hunter2");
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert!(created.metadata.generation.is_none());

    let (code, reason, message) = api_error(
        api.create(&PostParams::default(), &secret("db", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(message, "secrets \"db\" already exists");

    let (code, reason, message) = api_error(api.get("nope").await.unwrap_err());
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (404, "NotFound", "secrets \"nope\" not found")
    );

    api.delete("db", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(api.get("db").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn optimistic_concurrency_and_resource_versions() {
    let (t, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &t.ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).unwrap();
    let v1 = api.create(&PostParams::default(), &cm).await.unwrap();
    let mut v2 = v1.clone();
    v2.data = Some(BTreeMap::from([("a".to_string(), "2".to_string())]));
    let v2 = api.replace("c", &PostParams::default(), &v2).await.unwrap();
    let rv1: u64 = v1.resource_version().unwrap().parse().unwrap();
    let rv2: u64 = v2.resource_version().unwrap().parse().unwrap();
    assert!(rv2 > rv1);
    // a write based on the stale version conflicts
    let mut stale = v1.clone();
    stale.data = Some(BTreeMap::from([("a".to_string(), "3".to_string())]));
    let (code, reason, message) = api_error(
        api.replace("c", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        message.contains("the object has been modified"),
        "{message}"
    );
    // a no-op update keeps the version
    let same = api.replace("c", &PostParams::default(), &v2).await.unwrap();
    assert_eq!(same.resource_version(), v2.resource_version());
}

#[tokio::test]
async fn list_selectors_and_paging() {
    let (t, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client.clone(), &t.ns);
    for i in 0..7 {
        let tier = if i % 2 == 0 { "front" } else { "back" };
        api.create(
            &PostParams::default(),
            &secret(&format!("s{i}"), &[("tier", tier), ("app", "x")]),
        )
        .await
        .unwrap();
    }
    let names = |l: kube::core::ObjectList<Secret>| {
        l.items.iter().map(|s| s.name_any()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("tier=front"))
                .await
                .unwrap()
        ),
        ["s0", "s2", "s4", "s6"]
    );
    assert_eq!(
        api.list(&ListParams::default().labels("tier!=front"))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(
        api.list(&ListParams::default().labels("tier in (front,back),app"))
            .await
            .unwrap()
            .items
            .len(),
        7
    );
    assert_eq!(
        api.list(&ListParams::default().labels("tier notin (front)"))
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(
        api.list(&ListParams::default().labels("!app"))
            .await
            .unwrap()
            .items
            .len(),
        0
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=s3"))
                .await
                .unwrap()
        ),
        ["s3"]
    );
    assert_eq!(
        api.list(&ListParams::default().fields("type=Opaque"))
            .await
            .unwrap()
            .items
            .len(),
        7
    );
    // paging
    let mut seen = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = api.list(&lp).await.unwrap();
        seen.extend(page.items.iter().map(|s| s.name_any()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    // other namespaces are separate; all-namespace lists see everything
    let all: Api<Secret> = Api::all(client);
    let mine = all
        .list(&ListParams::default().labels("app=x"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(t.ns.as_str()))
        .count();
    assert_eq!(mine, 7);
}

#[tokio::test]
async fn patch_types_merge_json_strategic() {
    let (t, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, &t.ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1", "env": [{"name": "A", "value": "1"}]}, {"name": "side", "image": "busybox"}]}
        }}
    })).unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    let pp = PatchParams::default();
    // strategic: containers merge by name
    let out = api.patch("web", &pp, &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}]}}}}))).await.unwrap();
    let containers = out.spec.template.spec.unwrap().containers;
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].env.as_ref().unwrap().len(), 2);
    // merge: lists are replaced
    let out = api
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(out.annotations()["x"], "y");
    // JSON patch
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]))
            .unwrap();
    let out = api
        .patch("web", &pp, &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(out.spec.replicas, Some(5));
}

#[tokio::test]
async fn generation_and_workload_status() {
    let (t, client) = start().await;
    let api: Api<Deployment> = Api::namespaced(client, &t.ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}}
    })).unwrap();
    api.create(&PostParams::default(), &d).await.unwrap();
    let got = api.get("web").await.unwrap();
    assert_eq!(got.metadata.generation, Some(1));
    let status = got.status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.updated_replicas, Some(3));
    // metadata changes do not bump generation
    let out = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(out.metadata.generation, Some(1));
    // spec changes do, and the rollout completes
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}}),
        ),
    )
    .await
    .unwrap();
    let got = api.get("web").await.unwrap();
    assert_eq!(got.metadata.generation, Some(2));
    assert_eq!(got.status.as_ref().unwrap().observed_generation, Some(2));
    // main-resource writes cannot change status; the status subresource can
    let mut edited = got.clone();
    edited.status.as_mut().unwrap().replicas = Some(99);
    let out = api
        .replace("web", &PostParams::default(), &edited)
        .await
        .unwrap();
    assert_eq!(out.status.unwrap().replicas, Some(3));
    let out = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 7}, "spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(out.status.unwrap().replicas, Some(7));
    assert_eq!(out.spec.replicas, Some(3), "status writes ignore spec");
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_detects_conflicts() {
    let (t, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, &t.ns);
    let a = PatchParams::apply("controller-a");
    let applied = api.patch("s", &a, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "labels": {"l": "1"}}, "data": {"k1": "djE=", "k2": "djI="}}))).await.unwrap();
    let mf = applied.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("controller-a"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    // dropping a field from the applied config removes it
    let out = api.patch("s", &a, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k1": "djE="}}))).await.unwrap();
    let data = out.data.unwrap();
    assert!(data.contains_key("k1") && !data.contains_key("k2"));
    assert!(out.metadata.labels.unwrap_or_default().is_empty());
    // another manager changing an owned field conflicts, unless forced
    let b = PatchParams::apply("controller-b");
    let (code, reason, message) = api_error(api.patch("s", &b, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k1": "b3RoZXI="}}))).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(message.contains("controller-a"), "{message}");
    let out = api.patch("s", &b.clone().force(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k1": "b3RoZXI="}}))).await.unwrap();
    assert_eq!(out.data.unwrap()["k1"].0, b"other");
    // fields of other managers survive an apply that does not mention them
    api.patch("s", &b, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k1": "b3RoZXI=", "kb": "Yg=="}}))).await.unwrap();
    let out = api.patch("s", &PatchParams::apply("controller-c"), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"kc": "Yw=="}}))).await.unwrap();
    assert_eq!(out.data.unwrap().len(), 3);
    // apply without a field manager is refused
    let no_manager = PatchParams {
        field_manager: None,
        ..Default::default()
    };
    assert_eq!(
        api_error(
            api.patch(
                "s",
                &no_manager,
                &Patch::Apply(
                    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
                )
            )
            .await
            .unwrap_err()
        )
        .0,
        400
    );
}

/// The managedFields entries of `s` as (manager, operation, data keys owned), sorted.
fn owners(s: &Secret) -> Vec<(String, String, Vec<String>)> {
    let mut out: Vec<_> = s
        .managed_fields()
        .iter()
        .map(|m| {
            let fields = m
                .fields_v1
                .as_ref()
                .map(|f| f.0.clone())
                .unwrap_or_default();
            let mut keys: Vec<String> = fields["f:data"]
                .as_object()
                .map(|d| {
                    d.keys()
                        .filter_map(|k| k.strip_prefix("f:"))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            keys.sort();
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
                keys,
            )
        })
        .collect();
    out.sort();
    out
}

fn data_keys(s: &Secret) -> Vec<String> {
    s.data.clone().unwrap_or_default().into_keys().collect()
}

#[tokio::test]
async fn managed_fields_can_be_rewritten_and_shared_fields_outlive_one_applier() {
    let (t, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, &t.ns);
    let x = "owner-x";
    // an Update writer (create and update with a field manager, as a controller-runtime
    // controller) owns everything it wrote
    let created: Secret = serde_json::from_value(
        json!({"metadata": {"name": "s"}, "data": {"a": "YQ==", "b": "Yg==", "c": "Yw=="}}),
    )
    .unwrap();
    let pp = PostParams {
        field_manager: Some(x.into()),
        ..Default::default()
    };
    let created = api.create(&pp, &created).await.unwrap();
    assert!(
        owners(&created).contains(&(
            x.into(),
            "Update".into(),
            vec!["a".into(), "b".into(), "c".into()]
        )),
        "{:?}",
        owners(&created)
    );
    // the same name applying a and b with the values they have: shared, not taken
    let apply = |keys: serde_json::Value| {
        Patch::Apply(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": keys}),
        )
    };
    let ssa = PatchParams::apply(x).force();
    let shared = api
        .patch("s", &ssa, &apply(json!({"a": "YQ==", "b": "Yg=="})))
        .await
        .unwrap();
    assert_eq!(
        owners(&shared),
        [
            (x.into(), "Apply".into(), vec!["a".into(), "b".into()]),
            (
                x.into(),
                "Update".into(),
                vec!["a".into(), "b".into(), "c".into()]
            ),
        ],
        "an applier setting values they have shares them (a write, though no value changed)"
    );
    assert_ne!(shared.resource_version(), created.resource_version());
    // the same apply again changes nothing, not even the resourceVersion
    let again = api
        .patch("s", &ssa, &apply(json!({"a": "YQ==", "b": "Yg=="})))
        .await
        .unwrap();
    assert_eq!(again.resource_version(), shared.resource_version());
    // dropping b from the applied set removes nothing: the Update entry still owns it
    let out = api
        .patch("s", &ssa, &apply(json!({"a": "YQ=="})))
        .await
        .unwrap();
    assert_eq!(data_keys(&out), ["a", "b", "c"]);
    assert!(
        owners(&out).contains(&(
            x.into(),
            "Update".into(),
            vec!["a".into(), "b".into(), "c".into()]
        )),
        "{:?}",
        owners(&out)
    );
    // managedFields written by a JSON patch replace the recorded ones; the write is a real
    // one (new resourceVersion); a failed `test` of resourceVersion changes nothing (422)
    let folded = json!([{
        "manager": x, "operation": "Apply", "apiVersion": "v1", "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}, "f:c": {}}},
    }]);
    let stale = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "replace", "path": "/metadata/managedFields", "value": folded},
    ]);
    let err = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(stale).unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 422);
    let rv = out.resource_version().unwrap();
    let guarded = json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/metadata/managedFields", "value": folded},
    ]);
    let rewritten = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(guarded).unwrap()),
        )
        .await
        .unwrap();
    assert_ne!(rewritten.resource_version().unwrap(), rv);
    assert_eq!(
        owners(&rewritten),
        [(
            x.into(),
            "Apply".into(),
            vec!["a".into(), "b".into(), "c".into()]
        )]
    );
    // now the applier alone owns b and c: an apply without them removes them
    let out = api
        .patch("s", &ssa, &apply(json!({"a": "YQ=="})))
        .await
        .unwrap();
    assert_eq!(data_keys(&out), ["a"]);
    // a field another manager also owns (same value) stays when the applier drops it; one
    // whose value the applier forced is the applier's alone and goes
    let merge = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    api.patch(
        "s",
        &merge,
        &Patch::Merge(json!({"data": {"d": "ZA==", "e": "ZQ=="}})),
    )
    .await
    .unwrap();
    api.patch(
        "s",
        &ssa,
        &apply(json!({"a": "YQ==", "d": "ZA==", "e": "Wg=="})),
    )
    .await
    .unwrap();
    let out = api
        .patch("s", &ssa, &apply(json!({"a": "YQ=="})))
        .await
        .unwrap();
    assert_eq!(data_keys(&out), ["a", "d"]);
    // `[{}]` clears managedFields
    let clear = json!([{"op": "replace", "path": "/metadata/managedFields", "value": [{}]}]);
    let out = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(clear).unwrap()),
        )
        .await
        .unwrap();
    assert!(out.managed_fields().is_empty(), "{:?}", owners(&out));
}

#[tokio::test]
async fn secrets_immutable_and_type_rules() {
    let (t, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, &t.ns);
    let mut s = secret("frozen", &[]);
    s.immutable = Some(true);
    api.create(&PostParams::default(), &s).await.unwrap();
    let (code, reason, message) = api_error(
        api.patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "changed"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        message.contains("field is immutable when `immutable` is set"),
        "{message}"
    );
    api.create(&PostParams::default(), &secret("typed", &[]))
        .await
        .unwrap();
    let (code, _, message) = api_error(
        api.patch(
            "typed",
            &PatchParams::default(),
            &Patch::Merge(json!({"type": "kubernetes.io/tls"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        message.contains("type: Invalid value: field is immutable"),
        "{message}"
    );
}

#[tokio::test]
async fn watches_stream_changes_resume_and_expire() {
    let (t, client) = start_with(Options {
        history: 5,
        ..Options::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(client, &t.ns);
    let cm = |n: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": n}, "data": {"v": "1"}})).unwrap()
    };
    let first = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let rv = first.resource_version().unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    api.delete("b", &DeleteParams::default()).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 3 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(o) => kinds.push(format!("added {}", o.name_any())),
            WatchEvent::Modified(o) => kinds.push(format!("modified {}", o.name_any())),
            WatchEvent::Deleted(o) => kinds.push(format!("deleted {}", o.name_any())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, ["added b", "modified b", "deleted b"]);
    // resuming from a version older than the kept history answers 410 Expired
    // (devcluster keeps 5 events here; a real cluster's compaction cannot be forced)
    if t.cluster.is_none() {
        return;
    }
    for i in 0..10 {
        api.create(&PostParams::default(), &cm(&format!("x{i}")))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn kube_runtime_watcher_sees_initial_state_and_changes() {
    let (t, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client, &t.ns);
    api.create(&PostParams::default(), &secret("before", &[]))
        .await
        .unwrap();
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut initial = Vec::new();
    loop {
        match events.try_next().await.unwrap().unwrap() {
            watcher::Event::Init => {}
            watcher::Event::InitApply(s) => initial.push(s.name_any()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(initial, ["before"]);
    api.create(&PostParams::default(), &secret("after", &[]))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        watcher::Event::Apply(s) => assert_eq!(s.name_any(), "after"),
        other => panic!("unexpected {other:?}"),
    }
    // the streaming-list initial strategy (sendInitialEvents) works too
    let cfg = watcher::Config::default().streaming_lists();
    let mut streaming = watcher(api, cfg).boxed();
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), streaming.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(s) => seen.push(s.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    seen.sort();
    assert_eq!(seen, ["after", "before"]);
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.strongroom.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd"
)]
struct WidgetSpec {
    size: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
struct WidgetStatus {
    ready: bool,
}

#[tokio::test]
async fn crds_start_serving_their_kind() {
    let (t, client) = start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap();
    let crd = crds.get("widgets.test.strongroom.dev").await.unwrap();
    let established = crd
        .status
        .unwrap()
        .conditions
        .unwrap()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established);
    let widgets: Api<Widget> = Api::namespaced(client.clone(), &t.ns);
    let w = widgets
        .create(
            &PostParams::default(),
            &Widget::new("w1", WidgetSpec { size: 1 }),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    let w = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert!(w.status.unwrap().ready);
    assert_eq!(
        w.metadata.generation,
        Some(1),
        "status does not bump generation"
    );
    let w = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}, "status": {"ready": false}})),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2));
    assert!(w.status.unwrap().ready, "main writes ignore status");
    // deleting the CRD removes its objects and stops serving the kind
    crds.delete("widgets.test.strongroom.dev", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        api_error(widgets.list(&ListParams::default()).await.unwrap_err()).0,
        404
    );
}

#[tokio::test]
async fn finalizers_and_garbage_collection() {
    let (t, client) = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &t.ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &t.ns);
    // a finalizer holds the object with a deletionTimestamp until it is removed
    let held: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let got = cms.get("held").await.unwrap();
    assert!(got.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(eventually_gone(&cms, "held").await);

    // background deletion collects dependents
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let owner_ref = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap(), "controller": true}]);
    for name in ["dep1", "dep2"] {
        let s: Secret = serde_json::from_value(
            json!({"metadata": {"name": name, "ownerReferences": owner_ref}}),
        )
        .unwrap();
        secrets.create(&PostParams::default(), &s).await.unwrap();
    }
    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    assert!(eventually_gone(&secrets, "dep1").await);
    assert!(eventually_gone(&secrets, "dep2").await);

    // orphan deletion keeps them and drops the reference
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner2"}})).unwrap(),
        )
        .await
        .unwrap();
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "kept", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner.uid().unwrap()}]}})).unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    cms.delete("owner2", &DeleteParams::orphan()).await.unwrap();
    let kept = secrets.get("kept").await.unwrap();
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );

    // foreground deletion removes dependents before the owner
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner3"}})).unwrap(),
        )
        .await
        .unwrap();
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": "fg", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner3", "uid": owner.uid().unwrap()}]}})).unwrap();
    secrets.create(&PostParams::default(), &s).await.unwrap();
    cms.delete("owner3", &DeleteParams::foreground())
        .await
        .unwrap();
    assert!(eventually_gone(&secrets, "fg").await);
    assert!(eventually_gone(&cms, "owner3").await);
}

/// A namespace whose `metadata.finalizers` are not empty stays `Terminating` (its content
/// gone, new objects refused) until an update removes the last one.
#[tokio::test]
async fn a_namespace_with_finalizers_stays_terminating_until_they_go() {
    let (t, client) = start().await;
    let sub = format!("{}-held", t.ns);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": sub, "finalizers": ["example.com/hold"]}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &sub);
    secrets
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();
    namespaces
        .delete(&sub, &DeleteParams::default())
        .await
        .unwrap();
    assert!(eventually_gone(&secrets, "s").await);
    let held = namespaces.get(&sub).await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(
        held.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    let (code, _, message) = api_error(
        secrets
            .create(&PostParams::default(), &secret("late", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403, "{message}");
    assert!(message.contains("being terminated"), "{message}");
    namespaces
        .patch(
            &sub,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert!(eventually_gone(&namespaces, &sub).await);
}

#[tokio::test]
async fn namespace_deletion_removes_its_content() {
    let (t, client) = start().await;
    let sub = format!("{}-sub", t.ns);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": sub}})).unwrap(),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &sub);
    secrets
        .create(&PostParams::default(), &secret("s", &[]))
        .await
        .unwrap();
    namespaces
        .delete(&sub, &DeleteParams::default())
        .await
        .unwrap();
    assert!(eventually_gone(&namespaces, &sub).await);
    assert!(eventually_gone(&secrets, "s").await);
    // creating in a missing namespace is refused
    let (code, _, message) = api_error(
        secrets
            .create(&PostParams::default(), &secret("s", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 404);
    assert_eq!(message, format!("namespaces \"{sub}\" not found"));
}

#[tokio::test]
async fn generate_name_and_invalid_names() {
    let (t, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client.clone(), &t.ns);
    let s: Secret = serde_json::from_value(json!({"metadata": {"generateName": "sealed-secrets-key"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}})).unwrap();
    let created = api.create(&PostParams::default(), &s).await.unwrap();
    let name = created.name_any();
    assert!(
        name.starts_with("sealed-secrets-key") && name.len() == "sealed-secrets-key".len() + 5,
        "{name}"
    );
    let bad: Secret = serde_json::from_value(json!({"metadata": {"name": "Bad_Name"}})).unwrap();
    let (code, reason, message) =
        api_error(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        message.starts_with("Secret \"Bad_Name\" is invalid: metadata.name: Invalid value"),
        "{message}"
    );
}

#[tokio::test]
async fn leases_support_leader_election_updates() {
    let (t, client) = start().await;
    let api: Api<Lease> = Api::namespaced(client, &t.ns);
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}})).unwrap();
    let created = api.create(&PostParams::default(), &lease).await.unwrap();
    // two candidates race from the same version: exactly one wins
    let mut a = created.clone();
    a.spec.as_mut().unwrap().holder_identity = Some("a".into());
    let mut b = created.clone();
    b.spec.as_mut().unwrap().holder_identity = Some("b".into());
    a.spec.as_mut().unwrap().lease_transitions = Some(1);
    b.spec.as_mut().unwrap().lease_transitions = Some(1);
    let ra = api.replace("leader", &PostParams::default(), &a).await;
    let rb = api.replace("leader", &PostParams::default(), &b).await;
    assert!(ra.is_ok() != rb.is_ok(), "exactly one candidate wins");
}

#[tokio::test]
async fn service_account_tokens_request_review_and_authenticate() {
    use k8s_openapi::api::authentication::v1::{
        TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
    };
    use k8s_openapi::api::core::v1::ServiceAccount;
    let (t, client) = start().await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), &t.ns);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "reader"}})).unwrap(),
    )
    .await
    .unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec!["vault".into()]),
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued = sas
        .create_token_request("reader", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = issued.status.unwrap().token.unwrap();
    assert_eq!(token.split('.').count(), 3, "a JWT");

    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review = |audiences: Vec<String>, token: String| TokenReview {
        spec: TokenReviewSpec {
            token,
            audiences: Some(audiences),
        },
        ..Default::default()
    };
    let ok = reviews
        .create(
            &PostParams::default(),
            &review(vec!["vault".into()], token.clone()),
        )
        .await
        .unwrap();
    let status = ok.status.unwrap();
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(
        status.user.unwrap().username.as_deref(),
        Some(format!("system:serviceaccount:{}:reader", t.ns).as_str())
    );
    let wrong = reviews
        .create(
            &PostParams::default(),
            &review(vec!["other".into()], token.clone()),
        )
        .await
        .unwrap();
    assert_eq!(wrong.status.unwrap().authenticated, Some(false));
    let forged = reviews
        .create(&PostParams::default(), &review(vec![], "a.b.c".into()))
        .await
        .unwrap();
    assert_eq!(forged.status.unwrap().authenticated, Some(false));

    // the token authenticates API calls (403 without RBAC rules, not 401); deleting the
    // ServiceAccount revokes it
    let url = t.cluster.as_ref().map(|c| c.url().to_string());
    let path = format!("/api/v1/namespaces/{}/configmaps", t.ns);
    if let Some(url) = &url {
        assert_eq!(reqwest_like_get(url, &token, &path).await, 403);
        assert_eq!(reqwest_like_get(url, &token, "/apis").await, 200);
    }
    sas.delete("reader", &DeleteParams::default())
        .await
        .unwrap();
    if let Some(url) = &url {
        assert_eq!(reqwest_like_get(url, &token, &path).await, 401);
    }
    let revoked = reviews
        .create(&PostParams::default(), &review(vec!["vault".into()], token))
        .await
        .unwrap();
    assert_eq!(revoked.status.unwrap().authenticated, Some(false));
}

/// A GET with a bearer token, through kube's own HTTP stack, returning the status code.
async fn reqwest_like_get(url: &str, token: &str, path: &str) -> u16 {
    let mut kubeconfig = Kubeconfig::from_yaml(&format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {token}\n"
    ))
    .unwrap();
    kubeconfig.preferences = None;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    match client.request_text(req).await {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn selector_watches_see_objects_enter_and_leave() {
    let (t, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, &t.ns);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "m", "labels": {"team": "a"}}}))
            .unwrap();
    let created = api.create(&PostParams::default(), &cm).await.unwrap();
    let rv = created.resource_version().unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("team=a").timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    let relabel = |team: &'static str| json!({"metadata": {"labels": {"team": team}}});
    api.patch("m", &PatchParams::default(), &Patch::Merge(relabel("b")))
        .await
        .unwrap();
    api.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    api.patch("m", &PatchParams::default(), &Patch::Merge(relabel("a")))
        .await
        .unwrap();
    api.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "2"}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        match stream.try_next().await.unwrap().unwrap() {
            WatchEvent::Added(_) => seen.push("ADDED"),
            WatchEvent::Modified(_) => seen.push("MODIFIED"),
            WatchEvent::Deleted(_) => seen.push("DELETED"),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(seen, ["DELETED", "ADDED", "MODIFIED"]);
}

#[tokio::test]
async fn kube_runtime_controller_and_reflector_run_against_it() {
    use kube::runtime::controller::{Action, Controller};
    use kube::runtime::reflector;
    use std::sync::Arc;

    let (t, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &t.ns);

    // a reflector keeps a cache in step with the server
    let (reader, writer) = reflector::store::<ConfigMap>();
    let reflect = reflector::reflector(writer, watcher(api.clone(), watcher::Config::default()));
    let reflect_task = tokio::spawn(reflect.for_each(|_| async {}));

    // a controller stamps every ConfigMap with an annotation by server-side apply
    async fn reconcile(
        cm: Arc<ConfigMap>,
        api: Arc<Api<ConfigMap>>,
    ) -> Result<Action, kube::Error> {
        let patch = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": cm.name_any(), "annotations": {"reconciled": "yes"}}});
        api.patch(
            &cm.name_any(),
            &PatchParams::apply("fidelity-controller").force(),
            &Patch::Apply(patch),
        )
        .await?;
        Ok(Action::await_change())
    }
    fn error_policy(_: Arc<ConfigMap>, _: &kube::Error, _: Arc<Api<ConfigMap>>) -> Action {
        Action::requeue(Duration::from_secs(1))
    }
    let ctx = Arc::new(api.clone());
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let controller_task = tokio::spawn(controller);

    for name in ["one", "two", "three"] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": {"a": "b"}}))
                .unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let stamped = async {
        loop {
            let all = api.list(&ListParams::default()).await.unwrap().items;
            let done = all
                .iter()
                .filter(|c| c.annotations().get("reconciled").map(String::as_str) == Some("yes"))
                .count();
            if done == 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), stamped)
        .await
        .expect("controller reconciled every ConfigMap");
    let cached = async {
        loop {
            let n = reader
                .state()
                .iter()
                .filter(|c| c.annotations().contains_key("reconciled"))
                .count();
            if n == 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), cached)
        .await
        .expect("reflector cache caught up");
    controller_task.abort();
    reflect_task.abort();
}

#[tokio::test]
async fn malformed_bodies_and_wrong_api_versions_are_rejected() {
    let (t, client) = start().await;
    let path = format!("/api/v1/namespaces/{}/configmaps", t.ns);
    let send = |body: &'static str| {
        let client = client.clone();
        let path = path.clone();
        async move {
            let req = http::Request::post(path)
                .header("Content-Type", "application/json")
                .body(body.as_bytes().to_vec())
                .unwrap();
            match client.request_text(req).await {
                Ok(_) => (201, String::new()),
                Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(send("{not json").await, (400, "BadRequest".to_string()));
    let (code, reason) =
        send(r#"{"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}}"#).await;
    assert_eq!((code, reason.as_str()), (400, "BadRequest"));
    let (code, _) =
        send(r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}"#).await;
    assert_eq!(code, 400, "a Secret body posted to configmaps");
    // unknown resources are 404
    let req = http::Request::get("/api/v1/gizmos")
        .body(Vec::new())
        .unwrap();
    match client.request_text(req).await {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound")),
        other => panic!("{other:?}"),
    }
    // and nothing was stored
    let cms: Api<ConfigMap> = Api::namespaced(client, &t.ns);
    assert!(
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn metadata_only_list_get_and_watch() {
    use kube::core::PartialObjectMeta;
    let (t, client) = start().await;
    let api: Api<Secret> = Api::namespaced(client.clone(), &t.ns);
    api.create(&PostParams::default(), &secret("meta", &[("app", "x")]))
        .await
        .unwrap();
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].labels()["app"], "x");
    let one: PartialObjectMeta<Secret> = api.get_metadata("meta").await.unwrap();
    assert_eq!(one.name_any(), "meta");
    // on the wire: PartialObjectMetadata kinds and no data at all
    let url = format!("/api/v1/namespaces/{}/secrets", t.ns);
    let req = kube::core::Request::new(url)
        .list_metadata(&ListParams::default())
        .unwrap();
    let raw: serde_json::Value =
        serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
    assert_eq!(raw["kind"], "PartialObjectMetadataList");
    assert_eq!(raw["items"][0]["kind"], "PartialObjectMetadata");
    assert!(raw["items"][0].get("data").is_none());
    // a watcher on PartialObjectMeta (metadata-only requests) sees the state and later changes
    let meta_api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), &t.ns);
    let mut events = watcher(meta_api, watcher::Config::default()).boxed();
    loop {
        match events.try_next().await.unwrap().unwrap() {
            watcher::Event::InitApply(s) => assert_eq!(s.name_any(), "meta"),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    api.delete("meta", &DeleteParams::default()).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        watcher::Event::Delete(s) => assert_eq!(s.name_any(), "meta"),
        other => panic!("unexpected {other:?}"),
    }
}

/// A client authenticated with `token` (and optionally impersonating `as_user`), for the
/// target cluster.
async fn client_with_token(t: &Target, token: &str, as_user: Option<&str>) -> Client {
    let mut config = match &t.cluster {
        Some(c) => {
            let kubeconfig = Kubeconfig::from_yaml(&c.kubeconfig_with_token(token)).unwrap();
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap()
        }
        None => {
            let mut config = Config::infer().await.unwrap();
            config.auth_info = serde_json::from_value(json!({"token": token})).unwrap();
            config
        }
    };
    if let Some(user) = as_user {
        config.auth_info.impersonate = Some(user.to_string());
    }
    Client::try_from(config).unwrap()
}

/// The admin's own bearer token (devcluster) or a fresh client from `KUBECONFIG` impersonating
/// `user` (real cluster).
async fn impersonating(t: &Target, admin: &Client, user: &str) -> Client {
    match &t.cluster {
        Some(c) => client_with_token(t, c.token(), Some(user)).await,
        None => {
            let _ = admin;
            let mut config = Config::infer().await.unwrap();
            config.auth_info.impersonate = Some(user.to_string());
            Client::try_from(config).unwrap()
        }
    }
}

async fn service_account_token(client: &Client, ns: &str, name: &str) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    sas.create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
        .unwrap()
}

/// Retries `f` until it succeeds: a real cluster's RBAC cache and aggregation controller
/// take a moment to see new roles.
async fn eventually_ok<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut last = None;
    for _ in 0..100 {
        match f().await {
            Ok(v) => return v,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still failing: {last:?}");
}

#[tokio::test]
async fn rbac_authorizes_service_accounts_as_the_real_authorizer() {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        SelfSubjectRulesReview, SelfSubjectRulesReviewSpec, SubjectAccessReview,
        SubjectAccessReviewSpec,
    };
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("permissions.jsonl");
    let (t, admin) = start_with(Options {
        permission_log: Some(log.clone()),
        ..Options::default()
    })
    .await;
    let ns = t.ns.clone();
    let user = format!("system:serviceaccount:{ns}:app");
    let token = service_account_token(&admin, &ns, "app").await;
    let app = client_with_token(&t, &token, None).await;

    // no rule yet: the real 403 for a namespaced list, a cluster-scoped list and a named get
    let secrets: Api<Secret> = Api::namespaced(app.clone(), &ns);
    let e = secrets.list(&ListParams::default()).await.unwrap_err();
    let kube::Error::Api(s) = e else {
        panic!("{e}")
    };
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        format!(
            "secrets is forbidden: User \"{user}\" cannot list resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
        )
    );
    let (code, _, msg) = api_error(
        Api::<Namespace>::all(app.clone())
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        format!(
            "namespaces is forbidden: User \"{user}\" cannot list resource \"namespaces\" in API group \"\" at the cluster scope"
        )
    );
    let (_, _, msg) = api_error(secrets.get("db").await.unwrap_err());
    assert_eq!(
        msg,
        format!(
            "secrets \"db\" is forbidden: User \"{user}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
        )
    );
    let (_, _, msg) = api_error(
        Api::<Deployment>::namespaced(app.clone(), &ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})).unwrap(),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        msg,
        format!(
            "deployments.apps is forbidden: User \"{user}\" cannot create resource \"deployments\" in API group \"apps\" in the namespace \"{ns}\""
        )
    );
    // discovery and the version stay open to every authenticated user
    app.apiserver_version().await.unwrap();
    app.list_api_groups().await.unwrap();

    // a Role with resourceNames, bound to the ServiceAccount
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &secret("db", &[]))
        .await
        .unwrap();
    let roles: Api<Role> = Api::namespaced(admin.clone(), &ns);
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "reader"},
                "rules": [
                    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]},
                    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "update"], "resourceNames": ["db"]}
                ]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "reader"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let lp = ListParams::default();
    eventually_ok(|| secrets.list(&lp)).await;
    secrets.get("db").await.unwrap();
    let (code, _, _) = api_error(secrets.get("other").await.unwrap_err());
    assert_eq!(code, 403, "resourceNames limit get to the named Secret");
    let (code, _, msg) = api_error(
        secrets
            .create(&PostParams::default(), &secret("new", &[]))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert!(msg.contains("cannot create resource \"secrets\""), "{msg}");

    // a ClusterRole aggregated by label, bound through the namespace's ServiceAccount group
    let label = format!("strongroom.dev/aggregate-{ns}");
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    cluster_roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": format!("{ns}-aggregated")},
                "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {label.clone(): "true"}}]},
                "rules": []
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    cluster_roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": format!("{ns}-leases"), "labels": {label.clone(): "true"}},
                "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "aggregated"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("{ns}-aggregated")},
                "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": format!("system:serviceaccounts:{ns}")}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let leases: Api<Lease> = Api::namespaced(app.clone(), &ns);
    eventually_ok(|| leases.list(&lp)).await;
    let (code, _, _) = api_error(
        Api::<Lease>::all(app.clone())
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        code, 403,
        "a RoleBinding grants nothing in other namespaces"
    );

    // access reviews: self, for another subject, rules; and impersonation by the admin
    let ssar = |verb: &str, resource: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.clone()),
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(app.clone());
    let yes = reviews
        .create(&PostParams::default(), &ssar("list", "secrets"))
        .await
        .unwrap();
    assert!(yes.status.unwrap().allowed);
    let no = reviews
        .create(&PostParams::default(), &ssar("delete", "secrets"))
        .await
        .unwrap();
    assert!(!no.status.unwrap().allowed);
    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.clone()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.clone()),
                verb: Some("update".into()),
                resource: Some("leases".into()),
                group: Some("coordination.k8s.io".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &sar)
        .await
        .unwrap();
    assert!(answer.status.unwrap().allowed);
    let rules = Api::<SelfSubjectRulesReview>::all(app.clone())
        .create(
            &PostParams::default(),
            &SelfSubjectRulesReview {
                spec: SelfSubjectRulesReviewSpec {
                    namespace: Some(ns.clone()),
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let resource_rules = rules.status.unwrap().resource_rules;
    assert!(
        resource_rules
            .iter()
            .any(|r| r.resources.as_deref() == Some(&["leases".to_string()][..])),
        "{resource_rules:?}"
    );
    let as_app = impersonating(&t, &admin, &user).await;
    Api::<Secret>::namespaced(as_app.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    let (code, _, _) = api_error(
        Api::<ConfigMap>::namespaced(as_app, &ns)
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        code, 403,
        "impersonation takes the impersonated user's rights"
    );
    // a ServiceAccount may not impersonate without the impersonate verb
    let sneaky = client_with_token(&t, &token, Some("system:admin")).await;
    let (code, _, msg) = api_error(
        Api::<Secret>::namespaced(sneaky, &ns)
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        format!(
            "users \"system:admin\" is forbidden: User \"{user}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        )
    );
    // a binding to a missing role names it in the reason
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": format!("{ns}-missing")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("{ns}-missing")},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    if t.cluster.is_some() {
        let (_, _, msg) = api_error(
            Api::<ConfigMap>::namespaced(app.clone(), &ns)
                .list(&ListParams::default())
                .await
                .unwrap_err(),
        );
        assert!(
            msg.ends_with(&format!(
                ": RBAC: clusterrole.rbac.authorization.k8s.io \"{ns}-missing\" not found"
            )),
            "{msg}"
        );
    }

    // the permissions the ServiceAccount exercised
    if let Some(c) = &t.cluster {
        let used = c.permissions_used();
        let used = used.get(&user).unwrap();
        assert!(
            used.iter()
                .any(|p| p.verb == "list" && p.resource == "secrets" && p.namespace == ns)
        );
        assert!(used.iter().any(|p| p.resource == "leases"));
        // the permission log holds each first use once, and nothing denied
        let text = std::fs::read_to_string(&log).unwrap();
        let logged: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(logged.len(), used.len(), "{text}");
        assert!(logged.iter().all(|l| l["user"] == user.as_str()), "{text}");
        assert!(logged.iter().any(|l| l["verb"] == "list"
            && l["resource"] == "secrets"
            && l["namespace"] == ns.as_str()));
        assert!(!text.contains("deployments"), "{text}");
        let denied = c.permissions_denied();
        assert!(
            denied
                .get(&user)
                .unwrap()
                .iter()
                .any(|p| p.verb == "create" && p.group == "apps" && p.resource == "deployments")
        );
    }
    for name in [format!("{ns}-aggregated"), format!("{ns}-leases")] {
        let _ = cluster_roles.delete(&name, &DeleteParams::default()).await;
    }
    let _ = Api::<ClusterRoleBinding>::all(admin)
        .delete(&format!("{ns}-missing"), &DeleteParams::default())
        .await;
}

/// Creates an RBAC object of type `K` from JSON.
async fn create_rbac<K>(api: &Api<K>, obj: serde_json::Value) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).unwrap(),
    )
    .await
}

#[tokio::test]
async fn rbac_writes_may_not_grant_what_the_writer_lacks() {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    let (t, admin) = start().await;
    let ns = t.ns.clone();
    let user = format!("system:serviceaccount:{ns}:granter");
    let groups = format!(
        "[\"system:serviceaccounts\" \"system:serviceaccounts:{ns}\" \"system:authenticated\"]"
    );
    let token = service_account_token(&admin, &ns, "granter").await;
    let app = client_with_token(&t, &token, None).await;
    let rbac = |resources: &[&str], verbs: &[&str]| json!({"apiGroups": ["rbac.authorization.k8s.io"], "resources": resources, "verbs": verbs});
    let core = |resources: &[&str], verbs: &[&str]| json!({"apiGroups": [""], "resources": resources, "verbs": verbs});
    let sa_subject = json!([{"kind": "ServiceAccount", "name": "granter", "namespace": ns}]);
    let role_ref = |kind: &str, name: &str| json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name});
    // what the ServiceAccount holds: writing roles and bindings here, reading ConfigMaps here,
    // writing ClusterRoles cluster-wide
    let admin_roles: Api<Role> = Api::namespaced(admin.clone(), &ns);
    let admin_bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &ns);
    create_rbac(
        &admin_roles,
        json!({"metadata": {"name": "granter"}, "rules": [
        rbac(&["roles", "rolebindings"], &["create", "update", "patch", "get"]),
        core(&["configmaps"], &["get", "list"])]}),
    )
    .await
    .unwrap();
    create_rbac(
        &admin_bindings,
        json!({"metadata": {"name": "granter"},
        "roleRef": role_ref("Role", "granter"), "subjects": sa_subject}),
    )
    .await
    .unwrap();
    let cluster_name = format!("{ns}-granter");
    let admin_cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    let admin_cluster_bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    create_rbac(
        &admin_cluster_roles,
        json!({"metadata": {"name": cluster_name},
        "rules": [rbac(&["clusterroles"], &["create", "update"])]}),
    )
    .await
    .unwrap();
    create_rbac(
        &admin_cluster_bindings,
        json!({"metadata": {"name": cluster_name},
        "roleRef": role_ref("ClusterRole", &cluster_name), "subjects": sa_subject}),
    )
    .await
    .unwrap();

    // a Role within what the user holds is fine
    let roles: Api<Role> = Api::namespaced(app.clone(), &ns);
    let held = json!({"metadata": {"name": "held"}, "rules": [core(&["configmaps"], &["get"])]});
    eventually_ok(|| create_rbac(&roles, held.clone())).await;
    // more is refused, listing each missing permission as the real server does
    let (code, reason, msg) = api_error(
        create_rbac(
            &roles,
            json!({"metadata": {"name": "escalating"}, "rules": [
            core(&["secrets"], &["get", "delete"]),
            core(&["configmaps"], &["get"]),
            json!({"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]})]}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        msg,
        format!(
            "roles.rbac.authorization.k8s.io \"escalating\" is forbidden: user \"{user}\" (groups={groups}) is attempting to grant RBAC permissions not currently held:\n\
             {{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\"]}}\n\
             {{APIGroups:[\"apps\"], Resources:[\"deployments\"], Verbs:[\"list\"]}}"
        )
    );
    // so is a patch that adds a permission
    let (code, _, msg) = api_error(
        roles
            .patch(
                "held",
                &PatchParams::default(),
                &Patch::Merge(json!({"rules": [core(&["configmaps"], &["get", "delete"])]})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert!(
        msg.ends_with("not currently held:\n{APIGroups:[\"\"], Resources:[\"configmaps\"], Verbs:[\"delete\"]}"),
        "{msg}"
    );
    assert!(roles.get("escalating").await.is_err(), "nothing was stored");

    // bindings: only to roles whose permissions the user holds, or with `bind` on the role
    create_rbac(
        &admin_roles,
        json!({"metadata": {"name": "secret-reader"}, "rules": [core(&["secrets"], &["get"])]}),
    )
    .await
    .unwrap();
    create_rbac(
        &admin_roles,
        json!({"metadata": {"name": "secret-writer"}, "rules": [core(&["secrets"], &["update"])]}),
    )
    .await
    .unwrap();
    let bindings: Api<RoleBinding> = Api::namespaced(app.clone(), &ns);
    let binding = |name: &str, role: &str| json!({"metadata": {"name": name}, "roleRef": role_ref("Role", role), "subjects": [{"kind": "User", "name": "someone", "apiGroup": "rbac.authorization.k8s.io"}]});
    create_rbac(&bindings, binding("bind-held", "held"))
        .await
        .unwrap();
    let (code, _, msg) = api_error(
        create_rbac(&bindings, binding("bind-reader", "secret-reader"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        format!(
            "rolebindings.rbac.authorization.k8s.io \"bind-reader\" is forbidden: user \"{user}\" (groups={groups}) is attempting to grant RBAC permissions not currently held:\n\
             {{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}}"
        )
    );
    create_rbac(&admin_roles, json!({"metadata": {"name": "binder"}, "rules": [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"], "resourceNames": ["secret-reader"]}]}))
    .await
    .unwrap();
    create_rbac(
        &admin_bindings,
        json!({"metadata": {"name": "binder"},
        "roleRef": role_ref("Role", "binder"), "subjects": sa_subject}),
    )
    .await
    .unwrap();
    eventually_ok(|| create_rbac(&bindings, binding("bind-reader", "secret-reader"))).await;
    let (code, _, msg) = api_error(
        create_rbac(&bindings, binding("bind-writer", "secret-writer"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403, "bind is limited to the named role");
    assert!(msg.ends_with("Verbs:[\"update\"]}"), "{msg}");

    // escalate on roles lifts the check for roles
    create_rbac(
        &admin_roles,
        json!({"metadata": {"name": "escalator"}, "rules": [rbac(&["roles"], &["escalate"])]}),
    )
    .await
    .unwrap();
    create_rbac(
        &admin_bindings,
        json!({"metadata": {"name": "escalator"},
        "roleRef": role_ref("Role", "escalator"), "subjects": sa_subject}),
    )
    .await
    .unwrap();
    let escalated =
        json!({"metadata": {"name": "escalated"}, "rules": [core(&["secrets"], &["*"])]});
    eventually_ok(|| create_rbac(&roles, escalated.clone())).await;

    // ClusterRoles are checked against cluster-wide permissions; aggregation needs everything
    let cluster_roles: Api<ClusterRole> = Api::all(app.clone());
    let own = json!({"metadata": {"name": format!("{ns}-own")}, "rules": [rbac(&["clusterroles"], &["create"])]});
    eventually_ok(|| create_rbac(&cluster_roles, own.clone())).await;
    let (code, _, msg) = api_error(
        create_rbac(&cluster_roles, json!({"metadata": {"name": format!("{ns}-cm")}, "rules": [core(&["configmaps"], &["get"])]}))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert!(
        msg.starts_with(&format!(
            "clusterroles.rbac.authorization.k8s.io \"{ns}-cm\" is forbidden: user \"{user}\""
        )),
        "{msg}"
    );
    assert!(
        msg.ends_with("{APIGroups:[\"\"], Resources:[\"configmaps\"], Verbs:[\"get\"]}"),
        "{msg}"
    );
    let label = format!("strongroom.dev/escalation-{ns}");
    let (code, _, msg) = api_error(
        create_rbac(&cluster_roles, json!({"metadata": {"name": format!("{ns}-agg")},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {label.clone(): "true"}}]}}))
        .await
        .unwrap_err(),
    );
    assert_eq!(code, 403);
    assert_eq!(
        msg,
        format!(
            "clusterroles.rbac.authorization.k8s.io \"{ns}-agg\" is forbidden: must have cluster-admin privileges to use the aggregationRule"
        )
    );

    // the admin may; the aggregated rules are written to the stored role
    create_rbac(
        &admin_cluster_roles,
        json!({"metadata": {"name": format!("{ns}-agg")},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {label.clone(): "true"}}]}}),
    )
    .await
    .unwrap();
    let leases =
        json!({"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]});
    create_rbac(
        &admin_cluster_roles,
        json!({"metadata": {"name": format!("{ns}-part"), "labels": {label.clone(): "true"}},
        "rules": [leases]}),
    )
    .await
    .unwrap();
    let agg_name = format!("{ns}-agg");
    let rules_of =
        |role: ClusterRole| serde_json::to_value(role.rules.unwrap_or_default()).unwrap();
    let mut rules = json!(null);
    for _ in 0..100 {
        rules = rules_of(admin_cluster_roles.get(&agg_name).await.unwrap());
        if rules == json!([leases]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rules, json!([leases]));
    admin_cluster_roles
        .delete(&format!("{ns}-part"), &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..100 {
        rules = rules_of(admin_cluster_roles.get(&agg_name).await.unwrap());
        if rules == json!([]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rules, json!([]), "rules of a deleted role are withdrawn");

    for name in [cluster_name.clone(), format!("{ns}-own"), agg_name] {
        let _ = admin_cluster_roles
            .delete(&name, &DeleteParams::default())
            .await;
    }
    let _ = admin_cluster_bindings
        .delete(&cluster_name, &DeleteParams::default())
        .await;
}

/// A raw request: status code, JSON body and `Warning` header texts.
async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value, Vec<String>) {
    use http_body_util::BodyExt;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(
            body.map(|b| serde_json::to_vec(&b).unwrap())
                .unwrap_or_default(),
        )
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (code, json, warnings)
}

/// Creates a CRD from its JSON and waits until its kind is served.
async fn install_crd(client: &Client, crd: serde_json::Value) -> String {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(crd).unwrap();
    let name = crd.metadata.name.clone().unwrap();
    let _ = crds.delete(&name, &DeleteParams::default()).await;
    assert!(eventually_gone(&crds, &name).await);
    crds.create(&PostParams::default(), &crd).await.unwrap();
    for _ in 0..100 {
        let c = crds.get(&name).await.unwrap();
        let established = c.status.and_then(|s| s.conditions).is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    name
}

fn gadget_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.fidelity.strongroom.dev"},
        "spec": {
            "group": "fidelity.strongroom.dev",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "x-kubernetes-validations": [
                                {"rule": "self.min <= self.max", "message": "min must not exceed max"},
                                {"rule": "self.size != 7", "messageExpression": "'size ' + string(self.size) + ' is unlucky'", "fieldPath": ".size"},
                                {"rule": "!has(oldSelf.frozen) || self.frozen == oldSelf.frozen", "message": "frozen is immutable", "reason": "FieldValueForbidden"}
                            ],
                            "properties": {
                                "size": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 100},
                                "min": {"type": "integer", "default": 0},
                                "max": {"type": "integer", "default": 10},
                                "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
                                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                                "when": {"type": "string", "format": "date-time"},
                                "port": {"x-kubernetes-int-or-string": true},
                                "frozen": {"type": "string"},
                                "note": {"type": "string", "nullable": true},
                                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
                            }
                        }
                    }
                }}
            }]
        }
    })
}

fn causes(status: &serde_json::Value) -> Vec<(String, String, String)> {
    status["details"]["causes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["reason"].as_str().unwrap_or("").to_string(),
                        c["field"].as_str().unwrap_or("").to_string(),
                        c["message"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn crd_schemas_prune_default_validate_and_run_cel_rules() {
    let (t, client) = start().await;
    let crd = install_crd(&client, gadget_crd()).await;
    let ns = &t.ns;
    let base = format!("/apis/fidelity.strongroom.dev/v1/namespaces/{ns}/gadgets");
    let gadget = |name: &str, spec: serde_json::Value| json!({"apiVersion": "fidelity.strongroom.dev/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": spec});
    let json_ct = "application/json";

    // a valid object: defaults applied; unknown fields pruned with a warning (the default)
    let (code, obj, warnings) = raw(
        &client,
        "POST",
        &base,
        json_ct,
        Some(gadget(
            "ok",
            json!({"size": 3, "port": "http", "note": null, "extra": {"any": {"x": 1}}, "junk": true}),
        )),
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    assert_eq!(
        (
            &obj["spec"]["mode"],
            &obj["spec"]["min"],
            &obj["spec"]["max"]
        ),
        (&json!("fast"), &json!(0), &json!(10))
    );
    assert_eq!(obj["spec"]["extra"]["any"]["x"], 1);
    assert!(obj["spec"].get("junk").is_none(), "{obj}");
    assert_eq!(warnings, ["299 - \"unknown field \\\"spec.junk\\\"\""]);

    // fieldValidation=Strict refuses the unknown field; Ignore drops it silently
    let (code, status, _) = raw(
        &client,
        "POST",
        &format!("{base}?fieldValidation=Strict"),
        json_ct,
        Some(gadget("strict", json!({"size": 3, "junk": true}))),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "Gadget in version \"v1\" cannot be handled as a Gadget: strict decoding error: unknown field \"spec.junk\""
    );
    let (code, _, warnings) = raw(
        &client,
        "POST",
        &format!("{base}?fieldValidation=Ignore"),
        json_ct,
        Some(gadget("ignored", json!({"size": 3, "junk": true}))),
    )
    .await;
    assert_eq!((code, warnings.len()), (201, 0));
    // duplicate fields: the last wins with a warning, or 400 with Strict
    let dup = |name: &str| {
        format!(
            r#"{{"apiVersion": "fidelity.strongroom.dev/v1", "kind": "Gadget", "metadata": {{"name": "{name}"}}, "spec": {{"size": 1, "size": 2}}}}"#
        )
    };
    let send_text = |path: String, body: String| {
        let client = client.clone();
        async move {
            use http_body_util::BodyExt;
            let req = http::Request::post(path)
                .header("Content-Type", "application/json")
                .body(kube::client::Body::from(body.into_bytes()))
                .unwrap();
            let resp = client.send(req).await.unwrap();
            let code = resp.status().as_u16();
            let warnings: Vec<String> = resp
                .headers()
                .get_all("warning")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            (code, json, warnings)
        }
    };
    let (code, obj, warnings) = send_text(base.clone(), dup("dup")).await;
    assert_eq!(code, 201, "{obj}");
    assert_eq!(obj["spec"]["size"], 2);
    assert_eq!(warnings, ["299 - \"duplicate field \\\"spec.size\\\"\""]);
    let (code, status, _) =
        send_text(format!("{base}?fieldValidation=Strict"), dup("dup-strict")).await;
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "Gadget in version \"v1\" cannot be handled as a Gadget: strict decoding error: duplicate field \"spec.size\""
    );

    // a custom resource without kind does not decode
    let (code, status, _) = raw(
        &client,
        "POST",
        &base,
        json_ct,
        Some(json!({"apiVersion": "fidelity.strongroom.dev/v1", "metadata": {"name": "nokind"}, "spec": {"size": 1}})),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("Object 'Kind' is missing in '"),
        "{status}"
    );

    // each structural rule is a cause naming its field
    let (code, status, _) = raw(
        &client,
        "POST",
        &base,
        json_ct,
        Some(gadget(
            "bad",
            json!({"size": "big", "mode": "medium", "name": "NotLower", "when": "yesterday", "port": 1.5, "tags": ["a", "a", "b"]}),
        )),
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")));
    let got = causes(&status);
    for (reason, field, message) in [
        (
            "FieldValueNotSupported",
            "spec.mode",
            "Unsupported value: \"medium\": supported values: \"fast\", \"slow\"",
        ),
        (
            "FieldValueInvalid",
            "spec.name",
            "Invalid value: \"NotLower\": spec.name in body should match '^[a-z]+$'",
        ),
        (
            "FieldValueInvalid",
            "spec.size",
            "Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
        ),
        (
            "FieldValueInvalid",
            "spec.when",
            "Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
        ),
        (
            "FieldValueTooMany",
            "spec.tags",
            "Too many: 3: must have at most 2 items",
        ),
        (
            "FieldValueDuplicate",
            "spec.tags[1]",
            "Duplicate value: \"a\"",
        ),
    ] {
        assert!(
            got.iter()
                .any(|c| c == &(reason.to_string(), field.to_string(), message.to_string())),
            "{reason} {field} {message} not in {got:#?}"
        );
    }
    // required, and the CEL rules (with messageExpression and fieldPath)
    let (code, status, _) = raw(
        &client,
        "POST",
        &base,
        json_ct,
        Some(gadget("nosize", json!({}))),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(causes(&status)[0].1, "spec.size");
    assert_eq!(causes(&status)[0].2, "Required value");
    let (code, status, _) = raw(
        &client,
        "POST",
        &base,
        json_ct,
        Some(gadget("cel", json!({"size": 7, "min": 5, "max": 1}))),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        "Gadget.fidelity.strongroom.dev \"cel\" is invalid: [spec: Invalid value: \"object\": min must not exceed max, spec.size: Invalid value: \"object\": size 7 is unlucky]"
    );

    // transition rules see oldSelf on update, through merge patches and server-side apply
    let (code, _, _) = raw(
        &client,
        "POST",
        &base,
        json_ct,
        Some(gadget("frozen", json!({"size": 2, "frozen": "a"}))),
    )
    .await;
    assert_eq!(code, 201);
    let (code, status, _) = raw(
        &client,
        "PATCH",
        &format!("{base}/frozen"),
        "application/merge-patch+json",
        Some(json!({"spec": {"frozen": "b"}})),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        [(
            "FieldValueForbidden".to_string(),
            "spec".to_string(),
            "Forbidden: frozen is immutable".to_string()
        )]
    );
    let (code, _, _) = raw(
        &client,
        "PATCH",
        &format!("{base}/frozen"),
        "application/merge-patch+json",
        Some(json!({"spec": {"size": 200}})),
    )
    .await;
    assert_eq!(code, 422, "patches are validated");
    let (code, status, _) = raw(
        &client,
        "PATCH",
        &format!("{base}/applied?fieldManager=test"),
        "application/apply-patch+yaml",
        Some(gadget("applied", json!({"size": 0}))),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status)[0].2,
        "Invalid value: 0: spec.size in body should be greater than or equal to 1"
    );
    let _ = Api::<CustomResourceDefinition>::all(client)
        .delete(&crd, &DeleteParams::default())
        .await;
}

/// A minimal object satisfying `schema`: its required fields, first enum values.
fn sample(schema: &serde_json::Value) -> serde_json::Value {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    if schema["x-kubernetes-int-or-string"] == true {
        return json!(1);
    }
    match schema["type"].as_str().unwrap_or("object") {
        "string" => match schema["format"].as_str() {
            Some("date-time") => json!("2024-01-01T00:00:00Z"),
            Some("byte") => json!("eA=="),
            _ => json!("x"),
        },
        "integer" | "number" => json!(schema["minimum"].as_i64().unwrap_or(1)),
        "boolean" => json!(false),
        "array" => {
            let n = schema["minItems"].as_u64().unwrap_or(0);
            (0..n).map(|_| sample(&schema["items"])).collect()
        }
        _ => {
            let mut out = serde_json::Map::new();
            for req in schema["required"].as_array().into_iter().flatten() {
                let k = req.as_str().unwrap();
                out.insert(k.to_string(), sample(&schema["properties"][k]));
            }
            serde_json::Value::Object(out)
        }
    }
}

/// Every enum under `schema`: its path as (segment, is-index) steps and its schema.
fn enum_paths(
    schema: &serde_json::Value,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, serde_json::Value)>,
) {
    if path.len() > 12 {
        return;
    }
    if schema.get("enum").is_some() {
        out.push((path.clone(), schema.clone()));
    }
    if let Some(props) = schema["properties"].as_object() {
        for (k, sub) in props {
            if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            path.push(k.clone());
            enum_paths(sub, path, out);
            path.pop();
        }
    }
    if schema.get("items").is_some() {
        path.push("[0]".into());
        enum_paths(&schema["items"], path, out);
        path.pop();
    }
}

/// Sets `value` at `path` in `obj`, creating parents from their schemas.
fn set_at(
    obj: &mut serde_json::Value,
    schema: &serde_json::Value,
    path: &[String],
    value: serde_json::Value,
) {
    let Some((first, rest)) = path.split_first() else {
        *obj = value;
        return;
    };
    if first == "[0]" {
        let sub = &schema["items"];
        if obj.as_array().is_none_or(|a| a.is_empty()) {
            *obj = json!([sample(sub)]);
        }
        set_at(&mut obj[0], sub, rest, value);
    } else {
        let sub = &schema["properties"][first];
        if obj.get(first).is_none() {
            obj[first] = sample(sub);
        }
        set_at(&mut obj[first], sub, rest, value);
    }
}

fn field_string(path: &[String]) -> String {
    let mut s = String::new();
    for p in path {
        if p.starts_with('[') {
            s.push_str(p);
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(p);
        }
    }
    s
}

/// A spec that also passes the CRD's validation rules, for kinds where the required fields
/// alone do not (the rules need data, a provider or a source).
fn valid_spec(kind: &str) -> Option<serde_json::Value> {
    let es = json!({"dataFrom": [{"extract": {"key": "k"}}]});
    let ps = json!({"secretStoreRefs": [], "selector": {"secret": {"name": "s"}}});
    match kind {
        "ExternalSecret" => Some(es),
        "ClusterExternalSecret" => Some(json!({"externalSecretSpec": es})),
        "SecretStore" | "ClusterSecretStore" => Some(json!({"provider": {"fake": {"data": []}}})),
        "PushSecret" => Some(ps),
        "ClusterPushSecret" => Some(json!({"pushSecretSpec": ps})),
        "ClusterGenerator" => Some(json!({"kind": "UUID", "generator": {"uuidSpec": {}}})),
        _ => None,
    }
}

#[tokio::test]
async fn every_crd_in_deploy_admits_valid_objects_and_refuses_broken_ones() {
    let (t, client) = start().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut checked = 0;
    for file in files {
        let crd: serde_json::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let name = crd["metadata"]["name"].as_str().unwrap().to_string();
        if crds.get_opt(&name).await.unwrap().is_none() {
            install_crd(&client, crd.clone()).await;
        }
        let group = crd["spec"]["group"].as_str().unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap();
        let namespaced = crd["spec"]["scope"] == "Namespaced";
        for version in crd["spec"]["versions"].as_array().unwrap() {
            if version["served"] != true {
                continue;
            }
            let v = version["name"].as_str().unwrap();
            let schema = &version["schema"]["openAPIV3Schema"];
            let base = if namespaced {
                format!("/apis/{group}/{v}/namespaces/{}/{plural}", t.ns)
            } else {
                format!("/apis/{group}/{v}/{plural}")
            };
            let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
            let object = |n: &str| {
                let mut o = sample(schema);
                if let Some(spec) = valid_spec(kind) {
                    o["spec"] = spec;
                }
                o["apiVersion"] = json!(format!("{group}/{v}"));
                o["kind"] = json!(kind);
                o["metadata"] = json!({"name": format!("{n}-{suffix}")});
                o
            };
            let ctx = format!("{kind} {v}");
            // valid
            let (code, body, warnings) = raw(
                &client,
                "POST",
                &base,
                "application/json",
                Some(object("valid")),
            )
            .await;
            assert_eq!(code, 201, "{ctx}: {body}");
            assert!(warnings.is_empty(), "{ctx}: {warnings:?}");
            // an unknown field: refused with Strict, pruned with a warning by default
            let mut unknown = object("unknown");
            unknown["strongroomUnknown"] = json!(1);
            let (code, body, _) = raw(
                &client,
                "POST",
                &format!("{base}?fieldValidation=Strict"),
                "application/json",
                Some(unknown.clone()),
            )
            .await;
            assert_eq!(code, 400, "{ctx}: {body}");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .ends_with("strict decoding error: unknown field \"strongroomUnknown\""),
                "{ctx}: {body}"
            );
            let (code, body, warnings) =
                raw(&client, "POST", &base, "application/json", Some(unknown)).await;
            assert_eq!(code, 201, "{ctx}: {body}");
            assert!(body.get("strongroomUnknown").is_none(), "{ctx}: pruned");
            assert_eq!(
                warnings,
                ["299 - \"unknown field \\\"strongroomUnknown\\\"\""],
                "{ctx}"
            );
            // each enum, broken
            let mut enums = Vec::new();
            enum_paths(schema, &mut Vec::new(), &mut enums);
            for (i, (path, _)) in enums.iter().enumerate() {
                let mut o = object(&format!("enum{i}"));
                set_at(&mut o, schema, path, json!("strongroom-invalid"));
                let (code, body, _) =
                    raw(&client, "POST", &base, "application/json", Some(o)).await;
                assert_eq!(code, 422, "{ctx} {path:?}: {body}");
                let field = field_string(path);
                assert!(
                    causes(&body)
                        .iter()
                        .any(|(reason, f, m)| reason == "FieldValueNotSupported"
                            && *f == field
                            && m.starts_with(
                                "Unsupported value: \"strongroom-invalid\": supported values: "
                            )),
                    "{ctx} {field}: {body}"
                );
                checked += 1;
            }
            // each required field of the spec, missing
            for req in schema["properties"]["spec"]["required"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let req = req.as_str().unwrap();
                let mut o = object("required");
                o["spec"].as_object_mut().unwrap().remove(req);
                let (code, body, _) =
                    raw(&client, "POST", &base, "application/json", Some(o)).await;
                assert_eq!(code, 422, "{ctx} spec.{req}: {body}");
                assert!(
                    causes(&body)
                        .iter()
                        .any(|(reason, f, m)| reason == "FieldValueRequired"
                            && *f == format!("spec.{req}")
                            && m == "Required value"),
                    "{ctx} spec.{req}: {body}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} broken objects checked");
}

#[tokio::test]
async fn hostile_requests_change_nothing() {
    let (t, client) = start().await;
    let ns = t.ns.clone();
    let cms = format!("/api/v1/namespaces/{ns}/configmaps");
    let cm = format!("{cms}/target");
    let (code, created, _) = raw(
        &client,
        "POST",
        &cms,
        "application/json",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target", "annotations": {"a": "b"}}, "data": {"k": "v"}})),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let unchanged = || {
        let client = client.clone();
        let cm = cm.clone();
        let rv = rv.clone();
        async move {
            let (code, obj, _) = raw(&client, "GET", &cm, "application/json", None).await;
            assert_eq!(code, 200, "the ConfigMap is gone: {obj}");
            assert_eq!(obj["metadata"]["resourceVersion"], json!(rv), "{obj}");
        }
    };
    let expect = |code: u16, want: u16, body: &serde_json::Value, what: &str| {
        assert_eq!(code, want, "{what}: {body}");
    };

    // JSON patches: doubling copies hit the copy limit; self-nesting copies are refused
    let doubling: Vec<_> = (0..24)
        .map(|i| json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/d{i}")}))
        .collect();
    let (code, body, _) = raw(
        &client,
        "PATCH",
        &cm,
        "application/json-patch+json",
        Some(json!(doubling)),
    )
    .await;
    expect(code, 422, &body, "doubling copies");
    let nesting: Vec<_> = (0..10)
        .map(|_| json!({"op": "copy", "from": "/metadata/annotations", "path": "/metadata/annotations/s"}))
        .collect();
    let (code, body, _) = raw(
        &client,
        "PATCH",
        &cm,
        "application/json-patch+json",
        Some(json!(nesting)),
    )
    .await;
    expect(code, 422, &body, "nesting copies");
    unchanged().await;

    // a body that is not JSON, sent as JSON, is not reparsed as YAML; deep YAML is refused fast
    let started = std::time::Instant::now();
    let req = http::Request::post(cms.clone())
        .header("Content-Type", "application/yaml")
        .body("{a: ".repeat(12_000).into_bytes())
        .unwrap();
    match client.request_text(req).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 400, "{}", s.message),
        other => panic!("{other:?}"),
    }
    if t.cluster.is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
    let req = http::Request::post(cms.clone())
        .header("Content-Type", "application/json")
        .body(b"kind: ConfigMap\nmetadata:\n  name: yaml\n".to_vec())
        .unwrap();
    match client.request_text(req).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 400, "{}", s.message),
        other => panic!("{other:?}"),
    }

    // DELETE: dry run, undecodable options, failing preconditions, all namespaces, status
    let (code, body, _) = raw(
        &client,
        "DELETE",
        &format!("{cm}?dryRun=All"),
        "application/json",
        None,
    )
    .await;
    expect(code, 200, &body, "dry-run delete");
    let (code, body, _) = raw(
        &client,
        "DELETE",
        &format!("{cms}?dryRun=All"),
        "application/json",
        None,
    )
    .await;
    expect(code, 200, &body, "dry-run deletecollection");
    let req = http::Request::delete(cm.clone())
        .header("Content-Type", "application/json")
        .body(b"{not json".to_vec())
        .unwrap();
    match client.request_text(req).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 400, "{}", s.message),
        other => panic!("{other:?}"),
    }
    let (code, body, _) = raw(
        &client,
        "DELETE",
        &cm,
        "application/json",
        Some(json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": "1"}})),
    )
    .await;
    expect(code, 409, &body, "resourceVersion precondition");
    assert!(
        body["message"].as_str().unwrap().contains("the ResourceVersion in the precondition (1) does not match the ResourceVersion in record"),
        "{body}"
    );
    let (code, body, _) = raw(
        &client,
        "DELETE",
        "/api/v1/configmaps",
        "application/json",
        None,
    )
    .await;
    expect(code, 405, &body, "deletecollection across namespaces");
    let (code, body, _) = raw(
        &client,
        "DELETE",
        &format!("/api/v1/namespaces/{ns}/status"),
        "application/json",
        None,
    )
    .await;
    expect(code, 405, &body, "delete of namespaces/status");
    let (code, _, _) = raw(
        &client,
        "GET",
        &format!("/api/v1/namespaces/{ns}"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200, "the namespace is still there");
    unchanged().await;

    // patches are validated as creates are
    for (what, patch) in [
        ("number in data", json!({"data": {"a": 5}})),
        (
            "invalid label key",
            json!({"metadata": {"labels": {"bad key!": "x"}}}),
        ),
        ("string immutable", json!({"immutable": "yes"})),
        (
            "1 MiB label value",
            json!({"metadata": {"labels": {"big": "x".repeat(1 << 20)}}}),
        ),
    ] {
        let (code, body, _) = raw(
            &client,
            "PATCH",
            &cm,
            "application/merge-patch+json",
            Some(patch),
        )
        .await;
        expect(code, 422, &body, what);
    }
    let (code, body, _) = raw(
        &client,
        "POST",
        &cms,
        "application/json",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typed"}, "data": {"a": 5}})),
    )
    .await;
    expect(code, 400, &body, "number in data on create");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot unmarshal number into Go struct field ConfigMap.data of type string"),
        "{body}"
    );
    // preconditions inside a JSON patch, and identity the body may not change
    let (code, body, _) = raw(
        &client,
        "PATCH",
        &cm,
        "application/json-patch+json",
        Some(json!([{"op": "replace", "path": "/metadata/resourceVersion", "value": "1"}, {"op": "add", "path": "/data/x", "value": "y"}])),
    )
    .await;
    expect(code, 409, &body, "stale resourceVersion in a JSON patch");
    let (code, body, _) = raw(
        &client,
        "PATCH",
        &cm,
        "application/json-patch+json",
        Some(json!([{"op": "test", "path": "/metadata/uid", "value": "not-the-uid"}, {"op": "add", "path": "/data/x", "value": "y"}])),
    )
    .await;
    expect(code, 422, &body, "failing test of the uid");
    let (code, body, _) = raw(
        &client,
        "PATCH",
        &cm,
        "application/json-patch+json",
        Some(json!([{"op": "replace", "path": "/metadata/uid", "value": "0000"}])),
    )
    .await;
    expect(code, 422, &body, "changed uid");
    let (code, body, _) = raw(
        &client,
        "PUT",
        &cm,
        "application/json",
        Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "target", "namespace": "default", "uid": uid}, "data": {"k": "other"}})),
    )
    .await;
    expect(code, 400, &body, "body namespace differs from the URL");
    unchanged().await;
}

#[tokio::test]
async fn tables_show_printer_columns_and_selectable_fields_select() {
    let (t, client) = start().await;
    let mut crd = gadget_crd();
    crd["metadata"]["name"] = json!("printables.fidelity.strongroom.dev");
    crd["spec"]["names"] = json!({"plural": "printables", "singular": "printable", "kind": "Printable", "listKind": "PrintableList"});
    let version = &mut crd["spec"]["versions"][0];
    version["additionalPrinterColumns"] = json!([
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
    ]);
    version["selectableFields"] = json!([{"jsonPath": ".spec.mode"}]);
    let name = install_crd(&client, crd).await;
    let base = format!(
        "/apis/fidelity.strongroom.dev/v1/namespaces/{}/printables",
        t.ns
    );
    for (n, mode) in [("p1", "fast"), ("p2", "slow")] {
        let (code, body, _) = raw(
            &client,
            "POST",
            &base,
            "application/json",
            Some(json!({"apiVersion": "fidelity.strongroom.dev/v1", "kind": "Printable", "metadata": {"name": n}, "spec": {"size": 3, "mode": mode}})),
        )
        .await;
        assert_eq!(code, 201, "{body}");
    }
    let table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let get_table = |path: String| {
        let client = client.clone();
        async move {
            let req = http::Request::get(path)
                .header("Accept", table_accept)
                .body(Vec::new())
                .unwrap();
            serde_json::from_str::<serde_json::Value>(&client.request_text(req).await.unwrap())
                .unwrap()
        }
    };
    let table = get_table(base.clone()).await;
    assert_eq!(table["kind"], "Table");
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Name", "Size", "Mode", "Age"]);
    assert_eq!(table["columnDefinitions"][2]["priority"], 1);
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["cells"][0], "p1");
    assert_eq!(rows[0]["cells"][1], 3);
    assert_eq!(rows[0]["cells"][2], "fast");
    assert!(
        rows[0]["cells"][3].as_str().unwrap().ends_with('s'),
        "{table}"
    );
    assert_eq!(rows[0]["object"]["kind"], "PartialObjectMetadata");
    // a built-in kind's usual columns
    let table = get_table(format!("/api/v1/namespaces/{}/configmaps", t.ns)).await;
    let names: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Name", "Data", "Age"]);
    // selectable fields select
    let (code, list, _) = raw(
        &client,
        "GET",
        &format!("{base}?fieldSelector=spec.mode%3Dslow"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200, "{list}");
    let items: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["p2"]);
    let (code, _, _) = raw(
        &client,
        "GET",
        &format!("{base}?fieldSelector=spec.size%3D3"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 400, "spec.size is not selectable");
    let _ = Api::<CustomResourceDefinition>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn exact_lists_are_served_from_history() {
    let (t, client) = start_with(Options {
        history: 20,
        ..Options::default()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &t.ns);
    let cm = |name: &str, v: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": v}})).unwrap()
    };
    cms.create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("gone", "1"))
        .await
        .unwrap();
    let then = cms.list(&ListParams::default()).await.unwrap();
    let then_rv = then.metadata.resource_version.clone().unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    cms.create(&PostParams::default(), &cm("later", "1"))
        .await
        .unwrap();
    cms.delete("gone", &DeleteParams::default()).await.unwrap();

    let base = format!("/api/v1/namespaces/{}/configmaps", t.ns);
    let (code, list, _) = raw(
        &client,
        "GET",
        &format!("{base}?resourceVersion={then_rv}&resourceVersionMatch=Exact"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["metadata"]["resourceVersion"], json!(then_rv));
    let items: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["metadata"]["name"] != "kube-root-ca.crt")
        .map(|i| {
            (
                i["metadata"]["name"].as_str().unwrap().to_string(),
                i["data"]["v"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            ("a".to_string(), "1".to_string()),
            ("gone".to_string(), "1".to_string())
        ]
    );
    // too old: compacted away
    if t.cluster.is_some() {
        for i in 0..30 {
            cms.create(&PostParams::default(), &cm(&format!("fill{i}"), "x"))
                .await
                .unwrap();
        }
    }
    let (code, status, _) = raw(
        &client,
        "GET",
        &format!("{base}?resourceVersion={then_rv}&resourceVersionMatch=Exact"),
        "application/json",
        None,
    )
    .await;
    if t.cluster.is_some() {
        assert_eq!(
            (code, status["reason"].as_str()),
            (410, Some("Expired")),
            "{status}"
        );
    }
    let (code, status, _) = raw(
        &client,
        "GET",
        &format!("{base}?resourceVersionMatch=Exact"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
    );
}

/// A protobuf body in the `k8s\0` envelope, as client-go's typed clients send it.
fn protobuf_body(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    use prost::Message;
    let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
        type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut bytes = b"k8s\0".to_vec();
    bytes.extend(unknown.encode_to_vec());
    bytes
}

#[tokio::test]
async fn protobuf_bodies_of_leases_events_and_roles() {
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use prost::Message;
    let (t, client) = start().await;
    let name_meta = |name: &str| {
        Some(meta::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        })
    };
    let post = |path: String, body: Vec<u8>| {
        let client = client.clone();
        async move {
            let req = http::Request::post(path)
                .header("Content-Type", "application/vnd.kubernetes.protobuf")
                .header("Accept", "application/json")
                .body(body)
                .unwrap();
            serde_json::from_str::<serde_json::Value>(&client.request_text(req).await.unwrap())
                .unwrap()
        }
    };
    let lease = k8s_pb::api::coordination::v1::Lease {
        metadata: name_meta("leader"),
        spec: Some(k8s_pb::api::coordination::v1::LeaseSpec {
            holder_identity: Some("replica-1".into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    };
    let created = post(
        format!("/apis/coordination.k8s.io/v1/namespaces/{}/leases", t.ns),
        protobuf_body("coordination.k8s.io/v1", "Lease", lease.encode_to_vec()),
    )
    .await;
    assert_eq!(created["spec"]["holderIdentity"], "replica-1");
    assert_eq!(created["spec"]["leaseDurationSeconds"], 15);
    let event = k8s_pb::api::core::v1::Event {
        metadata: name_meta("ev1"),
        involved_object: Some(k8s_pb::api::core::v1::ObjectReference {
            kind: Some("Lease".into()),
            name: Some("leader".into()),
            namespace: Some(t.ns.clone()),
            ..Default::default()
        }),
        reason: Some("Elected".into()),
        message: Some("replica-1 leads".into()),
        r#type: Some("Normal".into()),
        count: Some(1),
        ..Default::default()
    };
    let created = post(
        format!("/api/v1/namespaces/{}/events", t.ns),
        protobuf_body("v1", "Event", event.encode_to_vec()),
    )
    .await;
    assert_eq!(created["reason"], "Elected");
    assert_eq!(created["involvedObject"]["name"], "leader");
    let role = k8s_pb::api::rbac::v1::Role {
        metadata: name_meta("reader"),
        rules: vec![k8s_pb::api::rbac::v1::PolicyRule {
            verbs: vec!["get".into()],
            api_groups: vec![String::new()],
            resources: vec!["secrets".into()],
            ..Default::default()
        }],
    };
    let created = post(
        format!(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{}/roles",
            t.ns
        ),
        protobuf_body("rbac.authorization.k8s.io/v1", "Role", role.encode_to_vec()),
    )
    .await;
    assert_eq!(created["rules"][0]["resources"][0], "secrets");
}

#[tokio::test]
async fn server_side_apply_merges_custom_resource_lists_by_list_type() {
    let (t, client) = start().await;
    let mut crd = gadget_crd();
    crd["metadata"]["name"] = json!("listers.fidelity.strongroom.dev");
    crd["spec"]["names"] = json!({"plural": "listers", "singular": "lister", "kind": "Lister", "listKind": "ListerList"});
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "args": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "string"}}
        }}}
    });
    let name = install_crd(&client, crd).await;
    let url = |manager: &str| {
        format!(
            "/apis/fidelity.strongroom.dev/v1/namespaces/{}/listers/l?fieldManager={manager}",
            t.ns
        )
    };
    let apply = |manager: &'static str, spec: serde_json::Value| {
        let client = client.clone();
        let url = url(manager);
        async move {
            raw(
                &client,
                "PATCH",
                &url,
                "application/apply-patch+yaml",
                Some(json!({"apiVersion": "fidelity.strongroom.dev/v1", "kind": "Lister", "metadata": {"name": "l"}, "spec": spec})),
            )
            .await
        }
    };
    let (code, _, _) = apply(
        "a",
        json!({"ports": [{"name": "http", "port": 80}], "tags": ["x"], "args": ["1"]}),
    )
    .await;
    assert_eq!(code, 201);
    let (code, obj, _) = apply(
        "b",
        json!({"ports": [{"name": "metrics", "port": 9090}], "tags": ["y"]}),
    )
    .await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(
        obj["spec"]["ports"],
        json!([{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}])
    );
    assert_eq!(obj["spec"]["tags"], json!(["x", "y"]));
    // a manager that stops applying an item removes it, and only it
    let (code, obj, _) = apply("a", json!({"tags": ["x"], "args": ["2"]})).await;
    assert_eq!(code, 200, "{obj}");
    assert_eq!(
        obj["spec"]["ports"],
        json!([{"name": "metrics", "port": 9090}])
    );
    assert_eq!(obj["spec"]["tags"], json!(["x", "y"]));
    assert_eq!(obj["spec"]["args"], json!(["2"]));
    // the same item with another value conflicts; atomic lists conflict whole
    let (code, status, _) = apply(
        "b",
        json!({"ports": [{"name": "metrics", "port": 9090}], "tags": ["y"], "args": ["3"]}),
    )
    .await;
    assert_eq!(code, 409, "{status}");
    let _ = Api::<CustomResourceDefinition>::all(client)
        .delete(&name, &DeleteParams::default())
        .await;
}

/// A CRD that gains a default serves it on objects stored before: get, list and watch decode
/// the stored object with the current schema's defaults, as the real server does when it reads
/// from etcd. The stored object itself is unchanged until it is next written.
#[tokio::test]
async fn defaults_apply_on_read_to_objects_stored_before_the_default() {
    let (t, client) = start().await;
    let crd_json = |with_default: bool| {
        let mut color = json!({"type": "string"});
        if with_default {
            color["default"] = json!("blue");
        }
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.fidelity.strongroom.dev"},
            "spec": {
                "group": "fidelity.strongroom.dev",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "size": {"type": "integer"},
                            "color": color
                        }}
                    }}}
                }]
            }
        })
    };
    let name = install_crd(&client, crd_json(false)).await;
    let ns = &t.ns;
    let base = format!("/apis/fidelity.strongroom.dev/v1/namespaces/{ns}/widgets");
    let (code, obj, _) = raw(
        &client,
        "POST",
        &base,
        "application/json",
        Some(
            json!({"apiVersion": "fidelity.strongroom.dev/v1", "kind": "Widget",
                    "metadata": {"name": "old"}, "spec": {"size": 1}}),
        ),
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    assert!(obj["spec"].get("color").is_none(), "no default yet: {obj}");

    // the CRD gains a default for spec.color
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut crd = crds.get(&name).await.unwrap();
    let updated: CustomResourceDefinition = serde_json::from_value(crd_json(true)).unwrap();
    crd.spec = updated.spec;
    crds.replace(&name, &PostParams::default(), &crd)
        .await
        .unwrap();

    let read_color = |v: &serde_json::Value| v["spec"]["color"].as_str().map(str::to_string);
    let mut served = None;
    for _ in 0..100 {
        let (code, obj, _) = raw(&client, "GET", &format!("{base}/old"), "", None).await;
        assert_eq!(code, 200, "{obj}");
        served = read_color(&obj);
        if served.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        served.as_deref(),
        Some("blue"),
        "get serves the new default"
    );
    let (_, list, _) = raw(&client, "GET", &base, "", None).await;
    assert_eq!(
        read_color(&list["items"][0]).as_deref(),
        Some("blue"),
        "list: {list}"
    );
    assert_eq!(list["items"][0]["spec"]["size"], 1);

    // a watch from the start replays the object with the default, and so does a change event
    let (_, watch, _) = raw(
        &client,
        "GET",
        &format!("{base}?watch=true&timeoutSeconds=1"),
        "",
        None,
    )
    .await;
    // a one-event stream decodes as one JSON object
    assert_eq!(watch["type"], "ADDED", "{watch}");
    assert_eq!(read_color(&watch["object"]).as_deref(), Some("blue"));
    let widgets = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        ns,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "fidelity.strongroom.dev",
            "v1",
            "Widget",
        )),
    );
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut stream = widgets
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    widgets
        .patch(
            "old",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    let mut seen = None;
    while let Some(ev) = stream.try_next().await.unwrap() {
        if let WatchEvent::Modified(o) = ev {
            seen = o.data["spec"]["color"].as_str().map(str::to_string);
            break;
        }
    }
    assert_eq!(
        seen.as_deref(),
        Some("blue"),
        "a change event carries the default"
    );
}

/// `oneOf`, `anyOf`, `allOf` and `not` in a CRD schema are enforced with the real server's
/// composite messages, reported at `<nil>` with the path quoted.
#[tokio::test]
async fn schema_junctors_refuse_what_they_exclude() {
    let (t, client) = start().await;
    install_crd(
        &client,
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "choices.fidelity.strongroom.dev"},
            "spec": {
                "group": "fidelity.strongroom.dev",
                "scope": "Namespaced",
                "names": {"plural": "choices", "singular": "choice", "kind": "Choice", "listKind": "ChoiceList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object",
                            "oneOf": [{"required": ["token"]}, {"required": ["password"]}],
                            "properties": {
                                "token": {"type": "string"},
                                "password": {"type": "string"},
                                "name": {"type": "string", "not": {"enum": ["root"]}}
                            }}
                    }}}
                }]
            }
        }),
    )
    .await;
    let base = format!(
        "/apis/fidelity.strongroom.dev/v1/namespaces/{}/choices",
        t.ns
    );
    let choice = |name: &str, spec: serde_json::Value| json!({"apiVersion": "fidelity.strongroom.dev/v1", "kind": "Choice", "metadata": {"name": name}, "spec": spec});
    let (code, obj, _) = raw(
        &client,
        "POST",
        &base,
        "application/json",
        Some(choice("one", json!({"token": "t"}))),
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    let (code, status, _) = raw(
        &client,
        "POST",
        &base,
        "application/json",
        Some(choice("both", json!({"token": "t", "password": "p"}))),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        [(
            "FieldValueInvalid".to_string(),
            "<nil>".to_string(),
            r#"Invalid value: "null": "spec" must validate one and only one schema (oneOf). Found 2 valid alternatives"#.to_string()
        )]
    );
    let (code, status, _) = raw(
        &client,
        "POST",
        &base,
        "application/json",
        Some(choice("root", json!({"password": "p", "name": "root"}))),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains(r#""spec.name" must not validate the schema (not)"#),
        "{status}"
    );
}

#[tokio::test]
async fn crd_rules_use_the_kubernetes_cel_libraries() {
    let (t, client) = start().await;
    let rule = |rule: &str, message: &str| json!([{"rule": rule, "message": message}]);
    let string = |max: u32, rules: serde_json::Value| json!({"type": "string", "maxLength": max, "x-kubernetes-validations": rules});
    let crd = install_crd(
        &client,
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "endpoints.fidelity.strongroom.dev"},
            "spec": {
                "group": "fidelity.strongroom.dev",
                "scope": "Namespaced",
                "names": {"plural": "endpoints", "singular": "endpoint", "kind": "Endpoint", "listKind": "EndpointList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "url": string(256, rule("isURL(self) && url(self).getScheme() == 'https' && url(self).getPort() == '8443'", "url must be https on 8443")),
                            "network": string(64, rule("isCIDR(self) && cidr(self).containsIP('10.0.0.1')", "network must hold 10.0.0.1")),
                            "address": string(64, rule("isIP(self) && !ip(self).isLoopback()", "address must not be loopback")),
                            "memory": string(32, rule("quantity(self).isLessThan(quantity('1Gi'))", "memory must stay under 1Gi")),
                            "digits": string(32, rule("self.findAll('[0-9]+').size() == 0 && self.find('x') == ''", "no digits, no x")),
                            "name": string(63, json!([{
                                "rule": "!format.dns1123Label().validate(self).hasValue()",
                                "messageExpression": "format.dns1123Label().validate(self).value().join(', ')"
                            }])),
                            "ports": {"type": "array", "maxItems": 8, "items": {"type": "integer"},
                                "x-kubernetes-validations": rule("self.isSorted() && self.sum() < 70000 && self.indexOf(22) == -1", "ports must be sorted, not 22")},
                            "tags": {"type": "array", "maxItems": 8, "items": {"type": "string", "maxLength": 8},
                                "x-kubernetes-validations": rule("sets.contains(['a', 'b', 'c'], self)", "tags must be a, b or c")},
                            "ratio": {"type": "number",
                                "x-kubernetes-validations": rule("self * 2.0 <= 1.0", "ratio must be at most 0.5")},
                            "version": {"type": "integer", "x-kubernetes-validations": [
                                {"rule": "oldSelf.hasValue() || self == 1", "optionalOldSelf": true, "message": "version starts at 1"},
                                {"rule": "self >= oldSelf.orValue(0)", "optionalOldSelf": true, "message": "version may not go down"}
                            ]}
                        }}
                    }}}
                }]
            }
        }),
    )
    .await;
    let base = format!(
        "/apis/fidelity.strongroom.dev/v1/namespaces/{}/endpoints",
        t.ns
    );
    let endpoint = |name: &str, spec: serde_json::Value| json!({"apiVersion": "fidelity.strongroom.dev/v1", "kind": "Endpoint", "metadata": {"name": name}, "spec": spec});
    let json_ct = "application/json";

    // a valid object passes every rule; `ratio: 0` is a double by the schema
    let (code, obj, _) = raw(
        &client,
        "POST",
        &base,
        json_ct,
        Some(endpoint(
            "good",
            json!({"url": "https://example.com:8443/x?a=1", "network": "10.0.0.0/8", "address": "192.168.1.1",
                   "memory": "512Mi", "digits": "abc", "name": "my-name", "ports": [80, 443],
                   "tags": ["a", "b"], "ratio": 0, "version": 1}),
        )),
    )
    .await;
    assert_eq!(code, 201, "{obj}");

    // an invalid one: the real 422, one cause per rule, each with its message
    let (code, status, _) = raw(
        &client,
        "POST",
        &base,
        json_ct,
        Some(endpoint(
            "bad",
            json!({"url": "http://example.com", "network": "192.168.0.0/16", "address": "127.0.0.1",
                   "memory": "2Gi", "digits": "a1", "name": "My_Name", "ports": [443, 80],
                   "tags": ["a", "z"], "ratio": 1, "version": 2}),
        )),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    let got = causes(&status);
    let invalid = |field: &str, kind: &str, message: &str| {
        (
            "FieldValueInvalid".to_string(),
            format!("spec.{field}"),
            format!("Invalid value: \"{kind}\": {message}"),
        )
    };
    let want = [
        invalid("url", "string", "url must be https on 8443"),
        invalid("network", "string", "network must hold 10.0.0.1"),
        invalid("address", "string", "address must not be loopback"),
        invalid("memory", "string", "memory must stay under 1Gi"),
        invalid("digits", "string", "no digits, no x"),
        invalid(
            "name",
            "string",
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
        invalid("ports", "array", "ports must be sorted, not 22"),
        invalid("tags", "array", "tags must be a, b or c"),
        invalid("ratio", "number", "ratio must be at most 0.5"),
        invalid("version", "integer", "version starts at 1"),
    ];
    for w in &want {
        assert!(got.contains(w), "{w:?} not in {got:#?}");
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");

    // a library function refusing its argument fails the rule with its error
    let (code, status, _) = raw(
        &client,
        "POST",
        &base,
        json_ct,
        Some(endpoint("unparsable", json!({"memory": "1K"}))),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        [invalid(
            "memory",
            "string",
            "unable to parse quantity's suffix evaluating rule: memory must stay under 1Gi"
        )]
    );

    // optionalOldSelf: on update oldSelf holds the old value
    let patch = |version: i64| {
        let client = client.clone();
        let path = format!("{base}/good");
        async move {
            raw(
                &client,
                "PATCH",
                &path,
                "application/merge-patch+json",
                Some(json!({"spec": {"version": version}})),
            )
            .await
        }
    };
    let (code, obj, _) = patch(3).await;
    assert_eq!(code, 200, "{obj}");
    let (code, status, _) = patch(2).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        [invalid("version", "integer", "version may not go down")]
    );
    let _ = Api::<CustomResourceDefinition>::all(client)
        .delete(&crd, &DeleteParams::default())
        .await;
}

/// A CRD whose rule or message expression does not compile is refused when it is written (422,
/// one cause per broken rule, at the rule's path in the schema); nothing is installed.
#[tokio::test]
async fn a_crd_with_a_rule_that_does_not_compile_is_refused() {
    let (_t, client) = start().await;
    let crd = |rules: serde_json::Value| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "brokens.fidelity.strongroom.dev"},
            "spec": {
                "group": "fidelity.strongroom.dev",
                "scope": "Namespaced",
                "names": {"plural": "brokens", "singular": "broken", "kind": "Broken", "listKind": "BrokenList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object",
                            "properties": {"items": {"type": "array", "items": {"type": "string",
                                "x-kubernetes-validations": [{"rule": "self.size() > 0"}]}}},
                            "x-kubernetes-validations": rules}
                    }}}
                }]
            }
        })
    };
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let (code, status, _) = raw(
        &client,
        "POST",
        path,
        "application/json",
        Some(crd(json!([
            {"rule": "self.items.all(i, i != ", "message": "broken"},
            {"rule": "true", "messageExpression": "'a' +"},
            {"rule": "has(self.items)"},
        ]))),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    let got = causes(&status);
    let at = "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations";
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0].1, format!("{at}[0].rule"));
    assert!(
        got[0].2.starts_with(r#"Invalid value: apiextensions.ValidationRule{Rule:"self.items.all(i, i != ", Message:"broken""#)
            && got[0].2.contains(": compilation failed: "),
        "{got:#?}"
    );
    assert_eq!(got[1].1, format!("{at}[1].messageExpression"));
    assert!(
        got[1]
            .2
            .contains(": messageExpression compilation failed: "),
        "{got:#?}"
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with(r#"CustomResourceDefinition.apiextensions.k8s.io "brokens.fidelity.strongroom.dev" is invalid: ["#),
        "{status}"
    );
    let (code, _, _) = raw(
        &client,
        "GET",
        &format!("{path}/brokens.fidelity.strongroom.dev"),
        "application/json",
        None,
    )
    .await;
    assert_eq!(code, 404, "nothing installed");
    // the same CRD with rules that compile is accepted
    let (code, obj, _) = raw(
        &client,
        "POST",
        path,
        "application/json",
        Some(crd(
            json!([{"rule": "has(self.items)", "messageExpression": "'no items'"}]),
        )),
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    let _ = raw(
        &client,
        "DELETE",
        &format!("{path}/brokens.fidelity.strongroom.dev"),
        "application/json",
        None,
    )
    .await;
}

/// cel-go type-checks each rule against the schema when the CRD is written: a rule selecting a
/// field its schema does not declare (a typo) is refused with `undefined field`, with cel-go's
/// position and caret; maps, preserved unknown fields and the object's own `metadata` pass.
#[tokio::test]
async fn a_crd_rule_selecting_an_undeclared_field_is_refused() {
    let (_t, client) = start().await;
    let crd = |spec_rules: serde_json::Value, root_rules: serde_json::Value| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "typos.fidelity.strongroom.dev"},
            "spec": {
                "group": "fidelity.strongroom.dev",
                "scope": "Namespaced",
                "names": {"plural": "typos", "singular": "typo", "kind": "Typo", "listKind": "TypoList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-validations": root_rules,
                        "properties": {
                        "spec": {"type": "object",
                            "properties": {
                                "replicas": {"type": "integer"},
                                "max-replicas": {"type": "integer"},
                                "ports": {"type": "array", "items": {"type": "object",
                                    "properties": {"port": {"type": "integer"}}}},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                            "x-kubernetes-validations": spec_rules}
                    }}}
                }]
            }
        })
    };
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let (code, status, _) = raw(
        &client,
        "POST",
        path,
        "application/json",
        Some(crd(
            json!([
                {"rule": "self.replicsa >= 0"},
                {"rule": "self.ports.all(p, p.prot > 0)"},
                {"rule": "self.labels.team != '' && self.extra.any.depth == 1 && self.replicas >= 0"},
            ]),
            json!([{"rule": "self.metadata.name.size() < 20 && has(self.spce)"}]),
        )),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    let got = causes(&status);
    assert_eq!(got.len(), 3, "{got:#?}");
    let at = "spec.versions[0].schema.openAPIV3Schema";
    assert_eq!(got[0].1, format!("{at}.x-kubernetes-validations[0].rule"));
    assert!(
        got[0].2.ends_with(
            "compilation failed: ERROR: <input>:1:38: undefined field 'spce'\n | self.metadata.name.size() < 20 && has(self.spce)\n | .....................................^"
        ),
        "{got:#?}"
    );
    let spec_at = format!("{at}.properties[spec].x-kubernetes-validations");
    assert_eq!(got[1].1, format!("{spec_at}[0].rule"));
    assert!(
        got[1].2.ends_with(
            "compilation failed: ERROR: <input>:1:5: undefined field 'replicsa'\n | self.replicsa >= 0\n | ....^"
        ),
        "{got:#?}"
    );
    assert_eq!(got[2].1, format!("{spec_at}[1].rule"));
    assert!(got[2].2.contains("undefined field 'prot'"), "{got:#?}");
    // corrected, the CRD is accepted
    let (code, obj, _) = raw(
        &client,
        "POST",
        path,
        "application/json",
        Some(crd(
            json!([
                {"rule": "self.ports.all(p, p.port > 0) && self.labels.team != ''"},
                {"rule": "self.replicas <= self.max__dash__replicas", "message": "too many"},
            ]),
            json!([{"rule": "self.metadata.name.size() < 20 && has(self.spec)"}]),
        )),
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    // a property whose name needs escaping is reached by its escaped name when rules run
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let typo = |replicas: i64| {
        json!({"apiVersion": "fidelity.strongroom.dev/v1", "kind": "Typo",
            "metadata": {"name": format!("t{replicas}")},
            "spec": {"replicas": replicas, "max-replicas": 3, "ports": [{"port": 80}],
                "labels": {"team": "a"}}})
    };
    let objects = "/apis/fidelity.strongroom.dev/v1/namespaces/default/typos";
    let (code, obj, _) = raw(&client, "POST", objects, "application/json", Some(typo(2))).await;
    assert_eq!(code, 201, "{obj}");
    let (code, status, _) = raw(&client, "POST", objects, "application/json", Some(typo(5))).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        vec![(
            "FieldValueInvalid".to_string(),
            "spec".to_string(),
            "Invalid value: \"object\": too many".to_string()
        )]
    );
    let _ = raw(
        &client,
        "DELETE",
        &format!("{path}/typos.fidelity.strongroom.dev"),
        "application/json",
        None,
    )
    .await;
}

/// cel-go's type check also resolves operators and functions on the types the schema gives
/// (`integer` is int, `string` string, ...): a rule adding a string to an int, or whose result
/// is not a bool, and a message expression that is not a string, refuse the CRD as the real
/// server refuses it; cross-type numeric comparisons (on in Kubernetes) pass.
#[tokio::test]
async fn a_crd_rule_calling_an_operator_on_the_wrong_types_is_refused() {
    let (_t, client) = start().await;
    let crd = |rules: serde_json::Value| {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "mistypes.fidelity.strongroom.dev"},
            "spec": {
                "group": "fidelity.strongroom.dev",
                "scope": "Namespaced",
                "names": {"plural": "mistypes", "singular": "mistype", "kind": "Mistype", "listKind": "MistypeList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object",
                            "properties": {
                                "replicas": {"type": "integer"},
                                "name": {"type": "string"}},
                            "x-kubernetes-validations": rules}
                    }}}
                }]
            }
        })
    };
    let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let fine = json!({"rule": "self.name.startsWith('a') && self.replicas < 2.5",
        "messageExpression": "'name ' + self.name + ' or replicas ' + string(self.replicas)"});
    let (code, status, _) = raw(
        &client,
        "POST",
        path,
        "application/json",
        Some(crd(json!([
            {"rule": "self.replicas + 'x' > 0"},
            {"rule": "self.replicas"},
            {"rule": "self.replicas > 0", "messageExpression": "self.replicas"},
            fine,
        ]))),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    let got = causes(&status);
    let at = "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations";
    let fields: Vec<&str> = got.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(
        fields,
        [
            format!("{at}[0].rule"),
            format!("{at}[1].rule"),
            format!("{at}[2].messageExpression")
        ],
        "{got:#?}"
    );
    assert!(
        got[0].2.ends_with(
            "compilation failed: ERROR: <input>:1:15: found no matching overload for '_+_' applied to '(int, string)'\n | self.replicas + 'x' > 0\n | ..............^"
        ),
        "{got:#?}"
    );
    assert_eq!(
        got[1].2,
        "Invalid value: apiextensions.ValidationRule{Rule:\"self.replicas\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: cel expression must evaluate to a bool"
    );
    assert!(
        got[2]
            .2
            .ends_with("}: messageExpression must evaluate to a string"),
        "{got:#?}"
    );
    // corrected, the CRD is accepted and its rule runs
    let (code, obj, _) = raw(
        &client,
        "POST",
        path,
        "application/json",
        Some(crd(json!([fine]))),
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let objects = "/apis/fidelity.strongroom.dev/v1/namespaces/default/mistypes";
    let mistype = json!({"apiVersion": "fidelity.strongroom.dev/v1", "kind": "Mistype",
        "metadata": {"name": "m"}, "spec": {"replicas": 3, "name": "b"}});
    let (code, status, _) = raw(&client, "POST", objects, "application/json", Some(mistype)).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        vec![(
            "FieldValueInvalid".to_string(),
            "spec".to_string(),
            "Invalid value: \"object\": name b or replicas 3".to_string()
        )]
    );
    let _ = raw(
        &client,
        "DELETE",
        &format!("{path}/mistypes.fidelity.strongroom.dev"),
        "application/json",
        None,
    )
    .await;
}

/// `cel.bind(name, value, expr)` (cel-go's bindings library, in the real server's base CEL
/// environment) binds `name` for `expr`; rules using it pass and fail with their message.
#[tokio::test]
async fn crd_rules_bind_names_with_cel_bind() {
    let (t, client) = start().await;
    let crd = install_crd(
        &client,
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "budgets.fidelity.strongroom.dev"},
            "spec": {
                "group": "fidelity.strongroom.dev",
                "scope": "Namespaced",
                "names": {"plural": "budgets", "singular": "budget", "kind": "Budget", "listKind": "BudgetList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object",
                            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"},
                                "names": {"type": "array", "maxItems": 8, "items": {"type": "string", "maxLength": 16}}},
                            "x-kubernetes-validations": [
                                {"rule": "cel.bind(total, self.a + self.b, total >= 0 && total <= 10)", "message": "a + b must be within 0..10"},
                                {"rule": "cel.bind(lower, self.names.map(n, n.lowerAscii()), lower.all(n, lower.exists_one(m, m == n)))", "message": "names must differ ignoring case"}
                            ]}
                    }}}
                }]
            }
        }),
    )
    .await;
    let base = format!(
        "/apis/fidelity.strongroom.dev/v1/namespaces/{}/budgets",
        t.ns
    );
    let budget = |name: &str, spec: serde_json::Value| json!({"apiVersion": "fidelity.strongroom.dev/v1", "kind": "Budget", "metadata": {"name": name}, "spec": spec});
    let (code, obj, _) = raw(
        &client,
        "POST",
        &base,
        "application/json",
        Some(budget("good", json!({"a": 4, "b": 6, "names": ["x", "Y"]}))),
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    let (code, status, _) = raw(
        &client,
        "POST",
        &base,
        "application/json",
        Some(budget("bad", json!({"a": 4, "b": 7, "names": ["x", "X"]}))),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    let got = causes(&status);
    let want = [
        (
            "FieldValueInvalid".to_string(),
            "spec".to_string(),
            "Invalid value: \"object\": a + b must be within 0..10".to_string(),
        ),
        (
            "FieldValueInvalid".to_string(),
            "spec".to_string(),
            "Invalid value: \"object\": names must differ ignoring case".to_string(),
        ),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for w in &want {
        assert!(got.contains(w), "{w:?} not in {got:#?}");
    }
    let _ = Api::<CustomResourceDefinition>::all(client)
        .delete(&crd, &DeleteParams::default())
        .await;
}

/// Kubernetes' semver CEL library: `isSemver`, `semver(..)` with `major`/`minor`/`patch`,
/// `compareTo`, `isLessThan` and `isGreaterThan`, and the normalizing forms.
#[tokio::test]
async fn crd_rules_use_the_semver_library() {
    let (t, client) = start().await;
    let rule = |rule: &str, message: &str| json!([{"rule": rule, "message": message}]);
    let string = |rules: serde_json::Value| json!({"type": "string", "maxLength": 64, "x-kubernetes-validations": rules});
    let crd = install_crd(
        &client,
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "releases.fidelity.strongroom.dev"},
            "spec": {
                "group": "fidelity.strongroom.dev",
                "scope": "Namespaced",
                "names": {"plural": "releases", "singular": "release", "kind": "Release", "listKind": "ReleaseList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "version": string(rule("isSemver(self) && semver(self).major() == 1 && semver(self).isGreaterThan(semver('1.2.0')) && semver(self).isLessThan(semver('1.10.0'))", "version must be 1.x above 1.2.0 and below 1.10.0")),
                            "loose": string(rule("isSemver(self, true) && semver(self, true).compareTo(semver('2.0.0')) == 0 && semver(self, true).minor() == 0 && semver(self, true).patch() == 0", "loose must be v2")),
                        }}
                    }}}
                }]
            }
        }),
    )
    .await;
    let base = format!(
        "/apis/fidelity.strongroom.dev/v1/namespaces/{}/releases",
        t.ns
    );
    let release = |name: &str, spec: serde_json::Value| json!({"apiVersion": "fidelity.strongroom.dev/v1", "kind": "Release", "metadata": {"name": name}, "spec": spec});
    let (code, obj, _) = raw(
        &client,
        "POST",
        &base,
        "application/json",
        Some(release(
            "good",
            json!({"version": "1.9.0-rc.1", "loose": "v2"}),
        )),
    )
    .await;
    assert_eq!(code, 201, "{obj}");
    let (code, status, _) = raw(
        &client,
        "POST",
        &base,
        "application/json",
        Some(release("bad", json!({"version": "v1.3.0", "loose": "2.1"}))),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    let got = causes(&status);
    let invalid = |field: &str, message: &str| {
        (
            "FieldValueInvalid".to_string(),
            format!("spec.{field}"),
            format!("Invalid value: \"string\": {message}"),
        )
    };
    let want = [
        invalid(
            "version",
            "version must be 1.x above 1.2.0 and below 1.10.0",
        ),
        invalid("loose", "loose must be v2"),
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for w in &want {
        assert!(got.contains(w), "{w:?} not in {got:#?}");
    }
    let _ = Api::<CustomResourceDefinition>::all(client)
        .delete(&crd, &DeleteParams::default())
        .await;
}

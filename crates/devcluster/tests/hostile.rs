//! A property test over hostile requests: a seeded generator sends a bounded number of
//! malformed, oversized, deeply nested and misdirected requests. Each must be answered
//! promptly with a client-error status (or success), the server must stay healthy, and the
//! objects outside the fuzzed namespace must not change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use http_body_util::BodyExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};
use strongroom_devcluster::{DevCluster, Options};

/// How many hostile requests one run sends (bounded for CI; override with
/// `DEVCLUSTER_HOSTILE_CASES`).
const DEFAULT_CASES: usize = 400;

/// xorshift64*: a small deterministic generator, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn nested_json(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

fn body(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(14);
    match n {
        0 => Vec::new(),
        1 => b"{not json".to_vec(),
        2 => nested_json(rng.below(400) + 1).into_bytes(),
        3 => "{a: ".repeat(rng.below(20_000)).into_bytes(),
        4 => "[".repeat(rng.below(5_000)).into_bytes(),
        5 => (0..rng.below(2048)).map(|_| rng.next() as u8).collect(),
        6 => {
            // doubling or nesting copies
            let ops: Vec<Value> = (0..rng.below(40))
                .map(|i| {
                    let to = if rng.below(2) == 0 {
                        format!("/metadata/annotations/c{i}")
                    } else {
                        "/metadata/annotations/s".to_string()
                    };
                    json!({"op": "copy", "from": "/metadata/annotations", "path": to})
                })
                .collect();
            serde_json::to_vec(&ops).unwrap()
        }
        7 => {
            let path = format!("/{}", vec!["s"; rng.below(2_000)].join("/"));
            serde_json::to_vec(&json!([{"op": "add", "path": path, "value": 1}])).unwrap()
        }
        8 => serde_json::to_vec(&json!([{"op": "replace", "path": "/metadata/resourceVersion", "value": "1"}])).unwrap(),
        9 => serde_json::to_vec(&json!({"metadata": {"name": "x", "labels": {"bad key!": "x".repeat(rng.below(100_000))}}, "data": {"a": rng.below(10)}})).unwrap(),
        10 => br#"{"metadata": {"name": "a", "name": "b"}, "kind": "ConfigMap", "kind": "Secret"}"#.to_vec(),
        11 => serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("fz{}", rng.below(50)), "namespace": "default"}, "data": {"k": "v"}})).unwrap(),
        12 => serde_json::to_vec(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"], "preconditions": {"uid": "nope", "resourceVersion": "1"}})).unwrap(),
        _ => serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("fz{}", rng.below(50))}, "immutable": "yes"})).unwrap(),
    }
}

async fn send(client: &Client, method: &str, uri: &str, ct: &str, body: Vec<u8>) -> u16 {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("Content-Type", ct)
        .body(kube::client::Body::from(body))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.send(req))
        .await
        .unwrap_or_else(|_| panic!("{method} {uri} took more than 10 s"))
        .unwrap();
    let code = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    code
}

#[tokio::test]
async fn hostile_requests_get_client_errors_and_leave_other_objects_alone() {
    let cluster = DevCluster::start(Options::default()).await.unwrap();
    let kubeconfig = Kubeconfig::from_yaml(&cluster.kubeconfig()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = Client::try_from(config).unwrap();
    assert_eq!(
        send(
            &client,
            "POST",
            "/api/v1/namespaces",
            "application/json",
            br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"fuzz"}}"#.to_vec()
        )
        .await,
        201
    );
    for (ns, name) in [("fuzz", "target"), ("default", "sentinel")] {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "annotations": {"a": "b"}}, "data": {"k": "v"}});
        let code = send(
            &client,
            "POST",
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            "application/json",
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(code, 201);
    }
    let sentinel = "/api/v1/namespaces/default/configmaps/sentinel";
    let before = cluster
        .store()
        .get(
            &cluster.store().resource("", "v1", "configmaps").unwrap(),
            "default",
            "sentinel",
        )
        .unwrap();

    let cases = std::env::var("DEVCLUSTER_HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed = std::env::var("DEVCLUSTER_HOSTILE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_1234_u64);
    let mut rng = Rng(seed | 1);
    let paths = [
        "/api/v1/namespaces/fuzz/configmaps",
        "/api/v1/namespaces/fuzz/configmaps/target",
        "/api/v1/namespaces/fuzz/configmaps/missing",
        "/api/v1/configmaps",
        "/api/v1/namespaces/default/status",
        "/api/v1/namespaces/default/finalize",
        "/api/v1/namespaces/fuzz/secrets",
        "/api/v1/namespaces/fuzz/configmaps/target/status",
        "/apis/apps/v1/namespaces/fuzz/deployments",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "/apis/nope/v1/things",
        "/api/v1/namespaces/fuzz/configmaps/%2e%2e",
        "/api/v1/namespaces/fuzz/configmaps/target?dryRun=All",
        "/api/v1/namespaces/fuzz/configmaps?fieldValidation=Strict",
        "/api/v1/namespaces/fuzz/configmaps?labelSelector=a%20in%20(((",
    ];
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let types = [
        "application/json",
        "application/yaml",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
        "application/vnd.kubernetes.protobuf",
        "text/plain",
    ];
    for i in 0..cases {
        let method = *rng.pick(&methods);
        let path = *rng.pick(&paths);
        let ct = *rng.pick(&types);
        let path = if ct == "application/apply-patch+yaml" {
            format!(
                "{path}{}fieldManager=fuzz",
                if path.contains('?') { "&" } else { "?" }
            )
        } else {
            path.to_string()
        };
        let b = body(&mut rng);
        let code = send(&client, method, &path, ct, b).await;
        assert!(
            code < 500,
            "case {i} (seed {seed}): {method} {path} ({ct}) answered {code}"
        );
        if i % 50 == 0 {
            assert_eq!(
                send(&client, "GET", "/healthz", "text/plain", Vec::new()).await,
                200
            );
        }
    }
    assert_eq!(
        send(&client, "GET", "/healthz", "text/plain", Vec::new()).await,
        200
    );
    let after = cluster
        .store()
        .get(
            &cluster.store().resource("", "v1", "configmaps").unwrap(),
            "default",
            "sentinel",
        )
        .unwrap();
    assert_eq!(before, after, "{sentinel} changed");
    let ns = send(
        &client,
        "GET",
        "/api/v1/namespaces/default",
        "application/json",
        Vec::new(),
    )
    .await;
    assert_eq!(ns, 200);
}

//! The `devcluster` binary: kubeconfig written once ready, plain HTTP, and `--data-dir`
//! persistence across restarts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(kubeconfig: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devcluster"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(kubeconfig)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // the kubeconfig exists by the time the URL is printed
    assert!(kubeconfig.exists());
    Server {
        child,
        url: line.trim().to_string(),
    }
}

fn terminate(server: &mut Server) {
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "devcluster exited with {exit}");
}

async fn client(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn starts_with_the_default_namespaces_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let server = spawn(&kubeconfig, &[]);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let namespaces: Api<Namespace> = Api::all(client(&kubeconfig).await);
    let mut names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}

#[tokio::test]
async fn in_process_client_helper() {
    let cluster = strongroom_devcluster::DevCluster::start(Default::default())
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(cluster.client().await.unwrap());
    assert_eq!(
        namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        4
    );
}

#[tokio::test]
async fn plain_http_mode() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let server = spawn(&kubeconfig, &["--plain-http"]);
    assert!(server.url.starts_with("http://"), "{}", server.url);
    let cms: Api<ConfigMap> = Api::namespaced(client(&kubeconfig).await, "default");
    assert!(
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test]
async fn data_dir_keeps_objects_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap().to_string();
    let mut server = spawn(&kubeconfig, &["--data-dir", &data_arg, "--token", "fixed"]);
    let cms: Api<ConfigMap> = Api::namespaced(client(&kubeconfig).await, "default");
    let cm: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "kept"}, "data": {"a": "b"}}),
    )
    .unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    terminate(&mut server);

    let _server = spawn(&kubeconfig, &["--data-dir", &data_arg, "--token", "fixed"]);
    let cms: Api<ConfigMap> = Api::namespaced(client(&kubeconfig).await, "default");
    let got = cms.get("kept").await.unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(
        got.metadata.resource_version, created.metadata.resource_version,
        "resourceVersions continue from the snapshot"
    );
    let next = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "later"}})).unwrap(),
        )
        .await
        .unwrap();
    let rv = |o: &ConfigMap| {
        o.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&next) > rv(&got));
}

/// Sends `head` and `body` over a fresh connection to a plain-HTTP server, pausing `pause`
/// before the body; returns the status line and the response body.
async fn slow_request(
    url: &str,
    head: &str,
    body: &[u8],
    pause: std::time::Duration,
) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(pause).await;
    // the server may already have answered and closed: a failed write is fine
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await;
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.lines().next().unwrap_or("").to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[tokio::test]
async fn slow_requests_time_out_with_504_and_watches_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let server = spawn(
        &kubeconfig,
        &[
            "--plain-http",
            "--token",
            "t0ken",
            "--request-timeout-seconds",
            "1",
        ],
    );
    let body = br#"{"metadata":{"name":"slow"},"data":{"a":"b"}}"#;
    let head = format!(
        "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t0ken\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let started = std::time::Instant::now();
    let (status, text) =
        slow_request(&server.url, &head, body, std::time::Duration::from_secs(3)).await;
    assert!(status.starts_with("HTTP/1.1 504"), "{status}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let text = text.trim_start_matches(|c: char| c.is_ascii_hexdigit() || c.is_whitespace());
    let status_obj: serde_json::Value =
        serde_json::from_str(text.split("\r\n").next().unwrap_or(text))
            .unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert_eq!(status_obj["reason"], "Timeout");
    assert_eq!(status_obj["code"], 504);
    assert_eq!(
        status_obj["message"],
        "Timeout: request did not complete within the allotted timeout"
    );
    // nothing was stored, and a quick request is served as usual
    let configmaps: Api<ConfigMap> = Api::namespaced(client(&kubeconfig).await, "default");
    assert!(configmaps.get_opt("slow").await.unwrap().is_none());
    // a watch outlives the timeout
    let watch_head = "GET /api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=3 HTTP/1.1\r\n\
                      Host: x\r\nAuthorization: Bearer t0ken\r\nConnection: close\r\n\r\n";
    let started = std::time::Instant::now();
    let (status, _) = slow_request(&server.url, watch_head, b"", std::time::Duration::ZERO).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "the watch ran until its own timeoutSeconds"
    );
}

//! The HTTP transport: HTTPS speaks TLS through rustls (on ring) without a process-wide crypto
//! provider, and `HTTP_PROXY` is honoured, as Go's default transport does for upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;
use strongroom_provider_api::{Provider, ProviderError, RemoteRef};
use strongroom_provider_aws::AwsProvider;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHILD: &str = "STRONGROOM_AWS_PROXY_TEST_CHILD";
const ENDPOINT: &str = "http://secretsmanager.example.invalid";

#[tokio::test]
async fn requests_go_through_the_proxy_from_the_environment() {
    if std::env::var_os(CHILD).is_some() {
        // The child: the endpoint's host does not resolve, so only the proxy can answer.
        let (_, env) = provider_env(Resolver::with_keys("test", "test"));
        let client = AwsProvider::with_endpoint(ENDPOINT)
            .connect(&store(static_spec("SecretsManager")), env)
            .await
            .unwrap();
        let err = client.get_secret(&RemoteRef::key("k")).await.unwrap_err();
        assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let seen = tokio::spawn(async move {
        let mut first = None;
        while let Ok(Ok((mut tcp, _))) =
            tokio::time::timeout(std::time::Duration::from_secs(20), listener.accept()).await
        {
            let mut buf = vec![0u8; 16384];
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            let reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            let _ = tcp.write_all(reply.as_bytes()).await;
            first.get_or_insert_with(|| String::from_utf8_lossy(&buf[..n]).into_owned());
            if first.is_some() {
                break;
            }
        }
        first.unwrap_or_default()
    });
    let out = tokio::task::spawn_blocking(move || {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "requests_go_through_the_proxy_from_the_environment",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("HTTP_PROXY", &proxy)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let request = seen.await.unwrap();
    assert!(
        request.starts_with(&format!("POST {ENDPOINT}/ HTTP/1.1")),
        "the proxy saw {request:?}"
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn https_endpoints_speak_tls_and_an_untrusted_server_is_unavailable() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    let seen = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 5];
        tcp.read_exact(&mut buf).await.unwrap();
        // Not a TLS answer: the handshake fails.
        let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        buf
    });
    let (_, env) = provider_env(Resolver::with_keys("test", "test"));
    let client = AwsProvider::with_endpoint(endpoint)
        .connect(&store(static_spec("ParameterStore")), env)
        .await
        .unwrap();
    let err = client.get_secret(&RemoteRef::key("/k")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Unavailable(_)), "{err}");
    let hello = seen.await.unwrap();
    assert_eq!(
        &hello[..2],
        &[0x16, 0x03],
        "a TLS handshake record, got {hello:?}"
    );
}

//! Against OpenBao behind TLS: the server CA from `caBundle` (base64 of PEM) or `caProvider`,
//! no trust without it, and the TLS certificate login.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use strongroom_core::crd::external_secrets::{
    CaProvider, CaProviderType, VaultAuth, VaultCertAuth,
};
use strongroom_provider_api::{ProviderError, RemoteRef};
use strongroom_testkit::backends::OpenBao;

fn value() -> RemoteRef {
    RemoteRef {
        property: Some("v".into()),
        ..RemoteRef::key("app")
    }
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn server_ca_from_bundle_or_provider_and_none_without() {
    let bao = OpenBao::start_tls().await;
    bao.cli(&["kv", "put", "secret/app", "v=tls"]);
    let ca = bao.ca_pem.clone().unwrap();
    let env = Env::new(Creds::default());
    env.creds.put("team", "bao-ca", "ca.crt", &ca);

    let mut with_bundle = spec(&bao, Some("secret"), root_auth(&env));
    with_bundle.ca_bundle = Some(b64(&ca));
    let client = connect(&store(with_bundle), &env).await;
    assert_eq!(client.get_secret(&value()).await.unwrap().expose(), b"tls");

    let mut with_provider = spec(&bao, Some("secret"), root_auth(&env));
    with_provider.ca_provider = Some(CaProvider {
        type_: CaProviderType::ConfigMap,
        name: "bao-ca".into(),
        key: Some("ca.crt".into()),
        namespace: None,
    });
    let client = connect(&store(with_provider), &env).await;
    assert_eq!(client.get_secret(&value()).await.unwrap().expose(), b"tls");

    // No CA given: the system roots do not know the dev CA.
    let client = connect(&store(spec(&bao, Some("secret"), root_auth(&env))), &env).await;
    let e = client.get_secret(&value()).await.unwrap_err();
    assert!(matches!(e, ProviderError::Unavailable(_)), "{e}");
}

#[tokio::test]
async fn certificate_login() {
    let bao = OpenBao::start_tls().await;
    bao.cli(&["kv", "put", "secret/app", "v=cert"]);
    reader_policy(&bao, "reader");
    let client_cert = rcgen::generate_simple_self_signed(vec!["eso".into()]).unwrap();
    let cert_pem = client_cert.cert.pem();
    let file = std::env::temp_dir().join(format!("bao-client-{}.pem", std::process::id()));
    std::fs::write(&file, &cert_pem).unwrap();
    bao.cli(&["auth", "enable", "cert"]);
    bao.cli(&[
        "write",
        "auth/cert/certs/eso",
        &format!("certificate=@{}", file.display()),
        "token_policies=reader",
        "token_ttl=10m",
    ]);
    let env = Env::new(Creds::default());
    env.creds.put("team", "client", "tls.crt", &cert_pem);
    env.creds.put(
        "team",
        "client",
        "tls.key",
        &client_cert.signing_key.serialize_pem(),
    );
    let auth = VaultAuth {
        cert: Some(VaultCertAuth {
            path: None,
            vault_role: Some("eso".into()),
            client_cert: Some(selector("client", "tls.crt")),
            secret_ref: Some(selector("client", "tls.key")),
        }),
        ..VaultAuth::default()
    };
    let mut spec = spec(&bao, Some("secret"), auth);
    spec.ca_bundle = bao.ca_pem.clone();
    let client = connect(&store(spec), &env).await;
    assert!(client.renews_itself());
    assert_eq!(client.get_secret(&value()).await.unwrap().expose(), b"cert");
    client.close().await;
    assert_eq!(env.calls.count("Login"), 1);
    assert_eq!(env.calls.count("RevokeSelf"), 1);
}

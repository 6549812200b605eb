//! `service: CertificateManager` against moto: what of the conformance suite applies (validate,
//! a missing ARN, deleting a missing key), the export of an exportable certificate (its
//! private key decrypted and matching the certificate, the export cached), and a PushSecret's
//! import, re-import under the same ARN, tags, refusal of a certificate no longer managed, and
//! delete.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use aws_sdk_acm::types::{CertificateExport, CertificateOptions};
use common::*;
use serde_json::json;
use strongroom_provider_api::{ProviderError, PushRef, RemoteRef, SecretBytes, Validation};
use strongroom_testkit::backends::Moto;
use strongroom_testkit::pki::TestCa;

const PROVIDER: &str = "AWS/CertificateManager";

async fn acm(moto: &Moto) -> aws_sdk_acm::Client {
    aws_sdk_acm::Client::new(&sdk(moto).await)
}

/// The whole TLS Secret as the PushSecret controller hands it over (no `secretKey`).
fn tls_secret(cert: &str, key: &str) -> SecretBytes {
    SecretBytes::new(
        json!({"tls.crt": cert, "tls.key": key, "ca.crt": "ignored"})
            .to_string()
            .into_bytes(),
    )
}

fn target(key: &str, tags: serde_json::Value) -> PushRef {
    PushRef {
        remote_key: key.into(),
        property: None,
        metadata: Some(json!({
            "apiVersion": "kubernetes.external-secrets.io/v1alpha1",
            "kind": "PushSecretMetadata",
            "spec": {"tags": tags},
        })),
    }
}

async fn tags(acm: &aws_sdk_acm::Client, arn: &str) -> BTreeMap<String, String> {
    acm.list_tags_for_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .unwrap()
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn arns(acm: &aws_sdk_acm::Client) -> Vec<String> {
    acm.list_certificates()
        .send()
        .await
        .unwrap()
        .certificate_summary_list()
        .iter()
        .filter_map(|c| c.certificate_arn().map(str::to_string))
        .collect()
}

async fn leaf(acm: &aws_sdk_acm::Client, arn: &str) -> String {
    acm.get_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .unwrap()
        .certificate()
        .unwrap()
        .to_string()
}

fn acm_store() -> strongroom_provider_api::StoreContext {
    let mut spec = static_spec("CertificateManager");
    spec.prefix = Some("team/".into());
    store(spec)
}

#[tokio::test]
async fn certificate_manager_conforms_where_it_applies() {
    let moto = Moto::start().await;
    let (calls, env) = provider_env(Resolver::with_keys("test", "test"));
    let client = connect(&moto, &acm_store(), env).await;
    assert_eq!(client.validate().await.unwrap(), Validation::Ready);
    let missing = format!("arn:aws:acm:{REGION}:{ACCOUNT}:certificate/0000-nope");
    match client.get_secret(&RemoteRef::key(&missing)).await {
        Err(ProviderError::NotFound { key, .. }) => assert_eq!(key, missing),
        other => panic!("expected NotFound naming the ARN, got {other:?}"),
    }
    let absent = target("absent", json!({}));
    assert!(!client.exists(&absent).await.unwrap());
    client.delete(&absent).await.unwrap();
    assert!(matches!(
        client.get_secret_map(&RemoteRef::key(&missing)).await,
        Err(ProviderError::Unsupported(_))
    ));
    assert!(matches!(
        client.get_secret(&RemoteRef::key("")).await,
        Err(ProviderError::InvalidConfig(_))
    ));
    assert_eq!(
        calls.providers().into_iter().collect::<Vec<_>>(),
        [PROVIDER]
    );
}

#[tokio::test]
async fn certificate_manager_exports_an_exportable_certificate() {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    let moto = Moto::start().await;
    let acm = acm(&moto).await;
    let arn = acm
        .request_certificate()
        .domain_name("app.example")
        .options(
            CertificateOptions::builder()
                .export(CertificateExport::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_string();
    let (calls, env) = provider_env(Resolver::with_keys("test", "test"));
    let client = connect(&moto, &acm_store(), env).await;
    let bundle = text(&client.get_secret(&RemoteRef::key(&arn)).await.unwrap());

    // Certificate, chain, then the private key: unencrypted PKCS #8 matching the certificate.
    let cert = leaf(&acm, &arn).await;
    assert!(bundle.starts_with(cert.trim_end()), "{bundle}");
    assert_eq!(bundle.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    assert!(!bundle.contains("ENCRYPTED"));
    let key_at = bundle.find("-----BEGIN PRIVATE KEY-----").unwrap();
    assert!(bundle.ends_with("-----END PRIVATE KEY-----\n"));
    let key = rsa::PrivateKey::from_pkcs8_pem(&bundle[key_at..]).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
    let x509 = pem.parse_x509().unwrap();
    assert_eq!(
        key.to_public_key().to_public_key_der().unwrap().as_bytes(),
        x509.tbs_certificate.subject_pki.raw,
        "the exported key belongs to the certificate"
    );

    // The second read is served from the export cache after GetCertificate.
    assert_eq!(
        text(&client.get_secret(&RemoteRef::key(&arn)).await.unwrap()),
        bundle
    );
    assert_eq!(
        (
            calls.count("GetCertificate"),
            calls.count("DescribeCertificate"),
            calls.count("ExportCertificate")
        ),
        (2, 1, 1)
    );
    assert!(calls.all().iter().all(|(p, _, ok)| p == PROVIDER && *ok));
}

#[tokio::test]
async fn certificate_manager_push_reimports_tags_and_refuses_unmanaged() {
    let moto = Moto::start().await;
    let acm = acm(&moto).await;
    let ca = TestCa::new("push-ca");
    let (one, two, three) = (ca.server(), ca.server(), ca.server());
    let (calls, env) = provider_env(Resolver::with_keys("test", "test"));
    let client = connect(&moto, &acm_store(), env).await;

    // A value pushed with a secretKey (one key, not the whole Secret) is refused up front.
    let err = client
        .push(
            &SecretBytes::from(one.cert_pem.as_str()),
            &target("web", json!({})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidConfig(m) if m.contains("secretKey must be empty")),
        "{err}"
    );
    let err = client
        .push(
            &tls_secret("not a certificate", &one.key_pem),
            &target("web", json!({})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidConfig(m) if m.contains("tls.crt")),
        "{err}"
    );
    assert!(!err.to_string().contains("PRIVATE KEY"));
    assert_eq!(calls.count("ImportCertificate"), 0);

    // First push: a new certificate, leaf and chain split, tagged.
    let bundle = format!("{}{}", one.cert_pem, ca.pem());
    client
        .push(
            &tls_secret(&bundle, &one.key_pem),
            &target("web", json!({"team": "a", "managed-by": "someone"})),
        )
        .await
        .unwrap();
    let [arn] = <[String; 1]>::try_from(arns(&acm).await).unwrap();
    assert_eq!(leaf(&acm, &arn).await.trim(), one.cert_pem.trim());
    assert_eq!(
        tags(&acm, &arn).await,
        BTreeMap::from([
            ("managed-by".into(), "external-secrets".into()),
            ("external-secrets-remote-key".into(), "team/web".into()),
            ("team".into(), "a".into()),
        ])
    );
    assert!(client.exists(&target("web", json!({}))).await.unwrap());

    // A changed certificate is re-imported under the same ARN, tags follow the metadata.
    client
        .push(
            &tls_secret(&two.cert_pem, &two.key_pem),
            &target("web", json!({"owner": "b"})),
        )
        .await
        .unwrap();
    assert_eq!(arns(&acm).await, std::slice::from_ref(&arn));
    assert_eq!(leaf(&acm, &arn).await.trim(), two.cert_pem.trim());
    assert_eq!(
        tags(&acm, &arn).await,
        BTreeMap::from([
            ("managed-by".into(), "external-secrets".into()),
            ("external-secrets-remote-key".into(), "team/web".into()),
            ("owner".into(), "b".into()),
        ])
    );

    // (moto drops the tags of a re-imported certificate, AWS keeps them: they were restored.
    // moto also appends its root CA to every chain, so an unchanged certificate is re-imported
    // there too; the unit tests cover the skip and tag removal.)

    // A new session (no cached ARN) finds the certificate by its tags.
    let (fresh_calls, env) = provider_env(Resolver::with_keys("test", "test"));
    let fresh = connect(&moto, &acm_store(), env).await;
    fresh
        .push(
            &tls_secret(&one.cert_pem, &one.key_pem),
            &target("web", json!({"owner": "b"})),
        )
        .await
        .unwrap();
    assert_eq!(arns(&acm).await, std::slice::from_ref(&arn));
    assert_eq!(fresh_calls.count("GetResources"), 1);
    let seen: Vec<String> = calls.names().into_iter().collect();
    for call in [
        "GetResources",
        "ImportCertificate",
        "ListTagsForCertificate",
        "GetCertificate",
        "AddTagsToCertificate",
    ] {
        assert!(
            seen.iter().any(|s| s == call),
            "{call} not counted: {seen:?}"
        );
    }

    // An imported certificate is not exportable: a clear error naming it.
    let err = client.get_secret(&RemoteRef::key(&arn)).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::InvalidConfig(m) if m.contains("not exportable") && m.contains(&arn)),
        "{err}"
    );

    // Someone takes the certificate over (managed-by removed): neither re-imported nor deleted.
    acm.remove_tags_from_certificate()
        .certificate_arn(&arn)
        .tags(
            aws_sdk_acm::types::Tag::builder()
                .key("managed-by")
                .value("external-secrets")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let err = client
        .push(
            &tls_secret(&three.cert_pem, &three.key_pem),
            &target("web", json!({})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::PermissionDenied(m) if m.contains("not managed by external-secrets") && m.contains(&arn)),
        "{err}"
    );
    assert_eq!(leaf(&acm, &arn).await.trim(), one.cert_pem.trim());
    let err = client.delete(&target("web", json!({}))).await.unwrap_err();
    assert!(matches!(err, ProviderError::PermissionDenied(_)), "{err}");
    assert_eq!(arns(&acm).await, std::slice::from_ref(&arn));

    // Managed again: deleted; deleting again succeeds.
    acm.add_tags_to_certificate()
        .certificate_arn(&arn)
        .tags(
            aws_sdk_acm::types::Tag::builder()
                .key("managed-by")
                .value("external-secrets")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client.delete(&target("web", json!({}))).await.unwrap();
    assert!(arns(&acm).await.is_empty());
    assert!(!client.exists(&target("web", json!({}))).await.unwrap());
    client.delete(&target("web", json!({}))).await.unwrap();
    assert!(calls.names().contains("DeleteCertificate"));
    assert!(calls.providers().iter().all(|p| p == PROVIDER));
}

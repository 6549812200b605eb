//! The ACRAccessToken generator against the Azure stand-in (no emulator exists; the stand-in
//! follows the Entra ID and ACR AAD-OAuth references): a refresh token, a scoped access token,
//! each auth method, and refusals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use strongroom_provider_api::ProviderError;
use strongroom_provider_azure::acr::{ACR_USERNAME, generate};

fn text(v: &strongroom_provider_api::SecretBytes) -> String {
    String::from_utf8_lossy(v.expose()).into_owned()
}

#[tokio::test]
async fn acr_tokens_for_each_auth_method() {
    let standin = AzureStandIn::start(Options::default()).await;
    let registry = standin.vault_url.trim_start_matches("https://").to_string();
    standin.register_client_secret(CLIENT_ID, CLIENT_SECRET);
    standin.allow_managed_identity(Some("mi-1"));
    let mut resolver = Resolver::with_service_principal(CLIENT_SECRET);
    standin.register_federated(
        "app-wi",
        "system:serviceaccount:creds:reader",
        None,
        resolver.issuer.jwks.clone(),
    );
    resolver
        .annotations
        .insert("azure.workload.identity/client-id".into(), "app-wi".into());
    resolver.annotations.insert(
        "azure.workload.identity/tenant-id".into(),
        standin.tenant().into(),
    );
    let resolver: Arc<dyn strongroom_provider_api::CredentialResolver> = Arc::new(resolver);
    let endpoints = endpoints(&standin);

    let sp = json!({"registry": registry, "tenantId": standin.tenant(),
        "auth": {"servicePrincipal": {"secretRef": {
            "clientId": {"name": "sp", "key": "client-id"},
            "clientSecret": {"name": "sp", "key": "client-secret"}}}}});
    let out = generate(&sp, "creds", resolver.clone(), &endpoints)
        .await
        .unwrap();
    assert_eq!(text(&out["username"]), ACR_USERNAME);
    assert!(text(&out["password"]).starts_with("acr-refresh-"));
    assert_eq!(standin.count("acr:exchange"), 1);

    let mut scoped = sp.clone();
    scoped["scope"] = json!("repository:app:pull");
    let out = generate(&scoped, "creds", resolver.clone(), &endpoints)
        .await
        .unwrap();
    assert_eq!(
        standin.acr_scope(&text(&out["password"])).as_deref(),
        Some("repository:app:pull")
    );
    assert_eq!(standin.count("acr:token"), 1);

    let mi = json!({"registry": registry, "tenantId": standin.tenant(), "auth": {"managedIdentity": {"identityId": "mi-1"}}});
    assert!(
        generate(&mi, "creds", resolver.clone(), &endpoints)
            .await
            .is_ok()
    );
    let wi = json!({"registry": registry, "auth": {"workloadIdentity": {"serviceAccountRef": {"name": "reader"}}}});
    assert!(
        generate(&wi, "creds", resolver.clone(), &endpoints)
            .await
            .is_ok()
    );
    assert_eq!(standin.count("acr:exchange"), 4);
    for op in ["token:client_secret", "token:imds", "token:federated"] {
        assert!(standin.count(op) >= 1, "{op}: {:?}", standin.counts());
    }

    // A wrong secret fails at the authority; no auth block is a configuration error.
    let mut wrong = sp.clone();
    wrong["auth"]["servicePrincipal"]["secretRef"]["clientSecret"]["key"] = json!("client-cert");
    assert!(matches!(
        generate(&wrong, "creds", resolver.clone(), &endpoints).await,
        Err(ProviderError::Authentication(_))
    ));
    let none = json!({"registry": registry, "auth": {}});
    assert!(matches!(
        generate(&none, "creds", resolver, &endpoints).await,
        Err(ProviderError::InvalidConfig(_))
    ));
}

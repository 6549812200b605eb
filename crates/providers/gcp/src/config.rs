//! The store's `gcpsm` block: static checks, and the token source and project it names.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use strongroom_core::crd::external_secrets::GcpSmProvider;
use strongroom_provider_api::{ProviderEnv, ProviderError, StoreContext};

use crate::auth::{
    AuthorizedUser, Exchange, GSA_ANNOTATION, JWT_TOKEN_TYPE, Kind, ServiceAccountKey, Source,
    Subject, metadata_value,
};
use crate::endpoints::Endpoints;

/// Timeout of one HTTP request.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidConfig(msg.into())
}

/// The store's `gcpsm` block.
pub(crate) fn spec(store: &StoreContext) -> Result<&GcpSmProvider, ProviderError> {
    store
        .provider
        .gcpsm
        .as_ref()
        .ok_or_else(|| invalid("spec.provider.gcpsm is missing"))
}

/// Whether `secretVersionSelectionPolicy` is `LatestOrFetch` (checked by [`validate`]).
pub(crate) fn latest_or_fetch(spec: &GcpSmProvider) -> bool {
    spec.secret_version_selection_policy.as_deref() == Some("LatestOrFetch")
}

/// Static checks, without I/O.
pub(crate) fn validate(store: &StoreContext) -> Result<Vec<String>, ProviderError> {
    let spec = spec(store)?;
    match spec.secret_version_selection_policy.as_deref() {
        None | Some("" | "LatestOrFail" | "LatestOrFetch") => {}
        Some(other) => {
            return Err(invalid(format!(
                "secretVersionSelectionPolicy {other:?} must be LatestOrFail or LatestOrFetch"
            )));
        }
    }
    if let Some(l) = spec.location.as_deref().filter(|l| !l.is_empty())
        && !l
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(invalid(format!("location {l:?} is not a GCP location")));
    }
    let auth = spec.auth.clone().unwrap_or_default();
    if let Some(sel) = auth
        .secret_ref
        .as_ref()
        .and_then(|s| s.secret_access_key_secret_ref.as_ref())
    {
        if sel.name.as_deref().unwrap_or_default().is_empty()
            || sel.key.as_deref().unwrap_or_default().is_empty()
        {
            return Err(invalid(
                "auth.secretRef.secretAccessKeySecretRef needs a name and a key",
            ));
        }
        if store.kind == strongroom_core::crd::external_secrets::StoreKind::ClusterSecretStore
            && sel.namespace.is_none()
            && store.referent_namespace.is_none()
        {
            return Ok(vec![
                "auth.secretRef names no namespace: credentials are read in each ExternalSecret's namespace".into(),
            ]);
        }
    } else if let Some(wi) = &auth.workload_identity {
        if wi.service_account_ref.name.is_empty() {
            return Err(invalid(
                "auth.workloadIdentity.serviceAccountRef.name is required",
            ));
        }
    } else if let Some(wif) = &auth.workload_identity_federation {
        if wif.aws_security_credentials.is_some() {
            return Err(ProviderError::Unsupported(
                "auth.workloadIdentityFederation.awsSecurityCredentials".into(),
            ));
        }
        if wif.cred_config.is_none() && wif.audience.is_none() {
            return Err(invalid(
                "auth.workloadIdentityFederation needs credConfig or audience",
            ));
        }
    }
    Ok(Vec::new())
}

/// Whether credentials depend on the reader's namespace and none is known.
pub(crate) fn unresolvable_referent(store: &StoreContext, spec: &GcpSmProvider) -> bool {
    let auth = spec.auth.clone().unwrap_or_default();
    let explicit = if let Some(s) = auth
        .secret_ref
        .as_ref()
        .and_then(|s| s.secret_access_key_secret_ref.as_ref())
    {
        s.namespace.clone()
    } else if let Some(wi) = &auth.workload_identity {
        wi.service_account_ref.namespace.clone()
    } else if let Some(wif) = &auth.workload_identity_federation {
        wif.service_account_ref
            .as_ref()
            .and_then(|s| s.namespace.clone())
            .or_else(|| wif.cred_config.as_ref().and_then(|c| c.namespace.clone()))
    } else {
        return false;
    };
    store.is_referent(explicit.as_deref()) && store.referent_namespace.is_none()
}

/// The HTTP client: rustls on ring with the system roots (and `SSL_CERT_FILE`).
pub(crate) fn http_client() -> Result<reqwest::Client, ProviderError> {
    let mut roots = rustls::RootCertStore::empty();
    let _ = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(format!("TLS setup failed: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| invalid(format!("HTTP client setup failed: {e}")))
}

/// The token source the store names, and the project a credential file names (if any).
pub(crate) async fn source(
    store: &StoreContext,
    spec: &GcpSmProvider,
    env: &ProviderEnv,
    endpoints: &Endpoints,
    http: reqwest::Client,
) -> Result<(Source, Option<String>), ProviderError> {
    let auth = spec.auth.clone().unwrap_or_default();
    let mut project = None;
    let kind = if let Some(sel) = auth
        .secret_ref
        .as_ref()
        .and_then(|s| s.secret_access_key_secret_ref.as_ref())
    {
        let json = store
            .secret_key(
                env.credentials.as_ref(),
                sel,
                "auth.secretRef.secretAccessKeySecretRef",
            )
            .await?;
        let key: ServiceAccountKey = serde_json::from_slice(json.expose()).map_err(|_| {
            ProviderError::Authentication(
                "the Secret of auth.secretRef.secretAccessKeySecretRef is not a service-account JSON key".into(),
            )
        })?;
        project = key.project_id.clone();
        Kind::Key(Box::new(key))
    } else if let Some(wi) = &auth.workload_identity {
        let ns = store
            .credential_namespace(wi.service_account_ref.namespace.as_deref())
            .ok_or_else(|| invalid("auth.workloadIdentity.serviceAccountRef names no namespace"))?;
        let name = wi.service_account_ref.name.clone();
        // What the store leaves out comes from the metadata server, as upstream.
        let cluster_project = match wi
            .cluster_project_id
            .clone()
            .or_else(|| spec.project_id.clone())
            .filter(|p| !p.is_empty())
        {
            Some(p) => p,
            None => metadata_value(&http, endpoints, "project/project-id").await?,
        };
        let location = match wi.cluster_location.clone().filter(|l| !l.is_empty()) {
            Some(l) => l,
            None => {
                metadata_value(&http, endpoints, "instance/attributes/cluster-location").await?
            }
        };
        let cluster = match wi.cluster_name.clone().filter(|c| !c.is_empty()) {
            Some(c) => c,
            None => metadata_value(&http, endpoints, "instance/attributes/cluster-name").await?,
        };
        let pool = format!("{cluster_project}.svc.id.goog");
        let provider = format!(
            "https://container.googleapis.com/v1/projects/{cluster_project}/locations/{location}/clusters/{cluster}"
        );
        // The pool always, then any extra audiences (upstream's order).
        let mut audiences = vec![pool.clone()];
        audiences.extend(wi.service_account_ref.audiences.clone().unwrap_or_default());
        let annotations = env
            .credentials
            .service_account_annotations(&ns, &name)
            .await?;
        let impersonation_url = match annotations.get(GSA_ANNOTATION) {
            Some(gsa) if !gsa.is_empty() => Some(format!(
                "{}/v1/projects/-/serviceAccounts/{gsa}:generateAccessToken",
                endpoints.iam_base()?
            )),
            _ => None,
        };
        Kind::Exchange(Box::new(Exchange {
            subject: Subject::ServiceAccount(ns, name, audiences),
            subject_token_type: JWT_TOKEN_TYPE.into(),
            audience: format!("identitynamespace:{pool}:{provider}"),
            token_url: format!("{}/v1/token", endpoints.sts_base()?),
            impersonation_url,
        }))
    } else if let Some(wif) = &auth.workload_identity_federation {
        let config = match &wif.cred_config {
            Some(cm) => {
                let ns = store
                    .credential_namespace(cm.namespace.as_deref())
                    .ok_or_else(|| {
                        invalid("auth.workloadIdentityFederation.credConfig names no namespace")
                    })?;
                let text = env
                    .credentials
                    .config_map_key(&ns, &cm.name, &cm.key)
                    .await?;
                serde_json::from_str::<Value>(&text).map_err(|_| {
                    invalid("the credConfig ConfigMap key is not a JSON credential configuration")
                })?
            }
            None => Value::Null,
        };
        let audience = wif
            .audience
            .clone()
            .or_else(|| config["audience"].as_str().map(str::to_string))
            .ok_or_else(|| invalid("auth.workloadIdentityFederation has no audience"))?;
        let subject = match &wif.service_account_ref {
            Some(sa) => {
                let ns = store
                    .credential_namespace(sa.namespace.as_deref())
                    .ok_or_else(|| {
                        invalid(
                            "auth.workloadIdentityFederation.serviceAccountRef names no namespace",
                        )
                    })?;
                let audiences = sa
                    .audiences
                    .clone()
                    .filter(|a| !a.is_empty())
                    .unwrap_or_else(|| vec![audience.clone()]);
                Subject::ServiceAccount(ns, sa.name.clone(), audiences)
            }
            None => external_subject(&config)?,
        };
        let mut ex = exchange_from_config(&config, endpoints)?;
        ex.subject = subject;
        ex.audience = audience;
        if let Some(email) = wif
            .gcp_service_account_email
            .as_deref()
            .filter(|e| !e.is_empty())
        {
            ex.impersonation_url = Some(format!(
                "{}/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
                endpoints.iam_base()?
            ));
        }
        Kind::Exchange(Box::new(ex))
    } else {
        let (kind, p) = adc(endpoints).await?;
        project = p;
        kind
    };
    Ok((
        Source {
            kind,
            http,
            env: env.clone(),
            endpoints: endpoints.clone(),
        },
        project,
    ))
}

/// An external-account configuration's exchange (its subject set by the caller).
fn exchange_from_config(config: &Value, endpoints: &Endpoints) -> Result<Exchange, ProviderError> {
    let token_url = match config["token_url"].as_str() {
        Some(u) => u.to_string(),
        None => format!("{}/v1/token", endpoints.sts_base()?),
    };
    Ok(Exchange {
        subject: Subject::File(String::new(), None),
        subject_token_type: config["subject_token_type"]
            .as_str()
            .unwrap_or(JWT_TOKEN_TYPE)
            .to_string(),
        audience: config["audience"].as_str().unwrap_or_default().to_string(),
        token_url,
        impersonation_url: config["service_account_impersonation_url"]
            .as_str()
            .map(str::to_string),
    })
}

/// The subject of an external-account configuration (`credential_source`).
fn external_subject(config: &Value) -> Result<Subject, ProviderError> {
    let source = &config["credential_source"];
    let field = match source["format"]["type"].as_str() {
        Some("json") => Some(
            source["format"]["subject_token_field_name"]
                .as_str()
                .ok_or_else(|| invalid("credential_source.format needs subject_token_field_name"))?
                .to_string(),
        ),
        _ => None,
    };
    if let Some(file) = source["file"].as_str() {
        return Ok(Subject::File(file.to_string(), field));
    }
    if let Some(url) = source["url"].as_str() {
        let headers = source["headers"]
            .as_object()
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        return Ok(Subject::Url(url.to_string(), headers, field));
    }
    Err(ProviderError::Unsupported(
        "credential_source other than file or url (e.g. AWS or executable)".into(),
    ))
}

/// Application Default Credentials: the `GOOGLE_APPLICATION_CREDENTIALS` file, else the
/// metadata server.
async fn adc(endpoints: &Endpoints) -> Result<(Kind, Option<String>), ProviderError> {
    let Some(path) = &endpoints.adc_file else {
        return Ok((Kind::Metadata, None));
    };
    let text = tokio::fs::read(path).await.map_err(|e| {
        ProviderError::Authentication(format!(
            "GOOGLE_APPLICATION_CREDENTIALS {path:?} cannot be read: {e}"
        ))
    })?;
    let value: Value = serde_json::from_slice(&text).map_err(|_| {
        ProviderError::Authentication(format!(
            "GOOGLE_APPLICATION_CREDENTIALS {path:?} is not JSON"
        ))
    })?;
    let bad = |what: &str| {
        ProviderError::Authentication(format!(
            "GOOGLE_APPLICATION_CREDENTIALS {path:?} is not a valid {what}"
        ))
    };
    match value["type"].as_str() {
        Some("service_account") => {
            let key: ServiceAccountKey =
                serde_json::from_value(value).map_err(|_| bad("service-account key"))?;
            let project = key.project_id.clone();
            Ok((Kind::Key(Box::new(key)), project))
        }
        Some("authorized_user") => {
            let user: AuthorizedUser =
                serde_json::from_value(value).map_err(|_| bad("authorized_user file"))?;
            Ok((Kind::User(Box::new(user)), None))
        }
        Some("external_account") => {
            let mut ex = exchange_from_config(&value, endpoints)?;
            ex.subject = external_subject(&value)?;
            Ok((Kind::Exchange(Box::new(ex)), None))
        }
        other => Err(ProviderError::Unsupported(format!(
            "credential file type {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn external_subjects() {
        let file =
            json!({"credential_source": {"file": "/var/run/token", "format": {"type": "text"}}});
        assert!(
            matches!(external_subject(&file).unwrap(), Subject::File(p, None) if p == "/var/run/token")
        );
        let url = json!({"credential_source": {"url": "http://127.0.0.1/t", "headers": {"a": "b"},
            "format": {"type": "json", "subject_token_field_name": "id_token"}}});
        assert!(
            matches!(external_subject(&url).unwrap(), Subject::Url(_, h, Some(f)) if h.len() == 1 && f == "id_token")
        );
        let aws = json!({"credential_source": {"environment_id": "aws1"}});
        assert!(matches!(
            external_subject(&aws),
            Err(ProviderError::Unsupported(_))
        ));
    }
}

//! The provider (`spec.provider.webhook`) and its client.
//!
//! Reads (`data[].remoteRef`, `dataFrom[].extract`) render the templates with `.remoteRef.key`,
//! `.version`, `.property` and `.namespace` (the reading ExternalSecret's namespace) and call
//! the endpoint: without `result.jsonPath` a value is the answer's body; with it (itself a
//! template) the part it picks, and a key map is the picked JSON object. The property is only
//! a template input, as upstream: nothing is applied to the answer besides `jsonPath`.
//! PushSecret sends the value (method POST unless set; the body template sees it as
//! `.remoteRef.<remoteKey>` and the key as `.remoteRef.remoteKey`; no body template sends the
//! value), deletion calls the URL with DELETE (404 counts as deleted), `exists` is a read of
//! the remote key (404 is "no"). `find` is not supported (upstream neither).
//!
//! `secrets[]` Secrets are read on every call (a rotated credential is used at once): a
//! SecretStore's in its namespace, a ClusterSecretStore's in `secretRef.namespace`, which it
//! must name; so are the `auth.ntlm` Secrets (see [`crate::ntlm`]), whose handshake every call
//! (reads, pushes, deletions) runs. Store validation connects to the URL's host and port (15 s)
//! unless the host is itself a template.

use std::time::Duration;

use async_trait::async_trait;
use strongroom_core::crd::external_secrets::{
    SecretKeySelector, StoreKind, WebhookProvider as Spec, WebhookSecret,
};
use strongroom_provider_api::{
    Capabilities, CredentialResolver, Provider, ProviderEnv, ProviderError, PushRef, RemoteRef,
    SecretBytes, SecretMap, SecretsClient, StoreContext, Validation,
};

use crate::http::{Endpoint, Request};
use crate::ntlm::NtlmCredentials;
use crate::template::TemplateData;
use crate::{answer, check_spec, timeout};

/// The provider-block key and metric name.
const ID: &str = "webhook";
const METRIC_NAME: &str = "Webhook";
/// How long store validation waits for a TCP connection (upstream's 15 s).
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(15);

/// The webhook provider factory.
#[derive(Debug, Default, Clone, Copy)]
pub struct WebhookProvider;

/// The namespace of a Secret the store reads: a SecretStore's own, a ClusterSecretStore's as
/// the selector names it.
fn secret_namespace(
    store: &StoreContext,
    selector: &SecretKeySelector,
) -> Result<String, ProviderError> {
    match store.kind {
        StoreKind::SecretStore => store
            .namespace
            .clone()
            .ok_or_else(|| ProviderError::InvalidConfig("the SecretStore has no namespace".into())),
        StoreKind::ClusterSecretStore => selector.namespace.clone().ok_or_else(|| {
            ProviderError::InvalidConfig(format!(
                "no namespace on ClusterScoped webhook secret {}",
                selector.name.as_deref().unwrap_or_default()
            ))
        }),
    }
}

fn spec(store: &StoreContext) -> Result<&Spec, ProviderError> {
    store
        .provider
        .webhook
        .as_ref()
        .ok_or_else(|| ProviderError::InvalidConfig("spec.provider.webhook is missing".into()))
}

#[async_trait]
impl Provider for WebhookProvider {
    fn id(&self) -> &'static str {
        ID
    }

    fn metric_name(&self) -> &'static str {
        METRIC_NAME
    }

    fn capabilities(&self, _store: &StoreContext) -> Capabilities {
        Capabilities::ReadWrite
    }

    fn validate_store(&self, store: &StoreContext) -> Result<Vec<String>, ProviderError> {
        let spec = spec(store)?;
        check_spec(spec)?;
        if store.kind == StoreKind::ClusterSecretStore {
            for (i, entry) in spec.secrets.iter().flatten().enumerate() {
                if entry.secret_ref.namespace.is_none() {
                    return Err(ProviderError::InvalidConfig(format!(
                        "secrets[{i}].secretRef.namespace is required with ClusterSecretStore"
                    )));
                }
            }
            if let Some(ntlm) = spec.auth.as_ref().and_then(|a| a.ntlm.as_ref()) {
                for (field, selector) in crate::ntlm::selectors(ntlm) {
                    if selector.is_some_and(|s| s.namespace.is_none()) {
                        return Err(ProviderError::InvalidConfig(format!(
                            "auth.ntlm.{field}.namespace is required with ClusterSecretStore"
                        )));
                    }
                }
            }
        }
        if let Some(ca) = &spec.ca_provider {
            store.check_ca_provider(ca, "caProvider")?;
        }
        Ok(Vec::new())
    }

    async fn connect(
        &self,
        store: &StoreContext,
        env: ProviderEnv,
    ) -> Result<Box<dyn SecretsClient>, ProviderError> {
        self.validate_store(store)?;
        let spec = spec(store)?.clone();
        let ca = store
            .ca_pem(
                env.credentials.as_ref(),
                spec.ca_bundle.as_deref(),
                spec.ca_provider.as_ref(),
                "",
            )
            .await?;
        let endpoint = Endpoint::new(ca.as_deref(), timeout(&spec)?)?;
        Ok(Box::new(WebhookClient {
            endpoint,
            store: store.clone(),
            spec,
            env,
        }))
    }
}

/// A session with one webhook store.
struct WebhookClient {
    endpoint: Endpoint,
    store: StoreContext,
    spec: Spec,
    env: ProviderEnv,
}

impl WebhookClient {
    /// The namespace templates see as `.remoteRef.namespace`: the reader's.
    fn reader_namespace(&self) -> String {
        self.store
            .namespace
            .clone()
            .or_else(|| self.store.referent_namespace.clone())
            .unwrap_or_default()
    }

    /// `data` plus the `secrets[]` Secrets.
    async fn with_secrets(&self, mut data: TemplateData) -> Result<TemplateData, ProviderError> {
        let store = &self.store;
        let namespace_of = |entry: &WebhookSecret| secret_namespace(store, &entry.secret_ref);
        let creds: &dyn CredentialResolver = self.env.credentials.as_ref();
        data.add_secrets(
            creds,
            self.spec.secrets.as_deref().unwrap_or_default(),
            namespace_of,
        )
        .await?;
        Ok(data)
    }

    /// The `auth.ntlm` credentials, read now (a SecretStore's in its namespace, a
    /// ClusterSecretStore's in the selector's), when the spec has `auth.ntlm`.
    async fn ntlm(&self) -> Result<Option<NtlmCredentials>, ProviderError> {
        let Some(spec) = self.spec.auth.as_ref().and_then(|a| a.ntlm.as_ref()) else {
            return Ok(None);
        };
        let store = &self.store;
        let namespace_of = |selector: &SecretKeySelector| secret_namespace(store, selector);
        let owner = match (store.kind, &store.namespace) {
            (StoreKind::SecretStore, Some(ns)) => format!("SecretStore {ns}/{}", store.name),
            (StoreKind::SecretStore, None) => format!("SecretStore {}", store.name),
            (StoreKind::ClusterSecretStore, _) => format!("ClusterSecretStore {}", store.name),
        };
        NtlmCredentials::read(self.env.credentials.as_ref(), spec, namespace_of, &owner)
            .await
            .map(Some)
    }

    /// Sends `request` (with `auth.ntlm` when set).
    async fn fetch(&self, request: Request, subject: &str) -> Result<Vec<u8>, ProviderError> {
        let ntlm = self.ntlm().await?;
        self.endpoint
            .fetch_as(request, ntlm.as_ref(), subject, self.env.calls.as_ref())
            .await
    }

    fn body_template(&self) -> &str {
        self.spec.body.as_deref().unwrap_or("")
    }

    /// The data of a read of `remote`.
    async fn read_data(&self, remote: &RemoteRef) -> Result<TemplateData, ProviderError> {
        let namespace = self.reader_namespace();
        self.with_secrets(TemplateData::for_remote(&[
            ("key", &remote.key),
            ("version", remote.version.as_deref().unwrap_or("")),
            ("property", remote.property.as_deref().unwrap_or("")),
            ("namespace", &namespace),
        ]))
        .await
    }

    /// Calls the endpoint for a read of `remote`; returns the answer and the rendered
    /// `result.jsonPath`.
    async fn read(&self, remote: &RemoteRef) -> Result<(Vec<u8>, String), ProviderError> {
        let data = self.read_data(remote).await?;
        let request = Request::render(&self.spec, &data, "GET", self.body_template(), &[])?;
        let body = self.fetch(request, &remote.key).await?;
        let json_path = data.render(
            "result.jsonPath",
            self.spec
                .result
                .as_ref()
                .and_then(|r| r.json_path.as_deref())
                .unwrap_or(""),
            &[],
        )?;
        Ok((body, json_path))
    }
}

#[async_trait]
impl SecretsClient for WebhookClient {
    async fn get_secret(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let (body, json_path) = self.read(remote).await?;
        answer::single_value(body, &json_path, &remote.key)
    }

    async fn get_secret_map(&self, remote: &RemoteRef) -> Result<SecretMap, ProviderError> {
        let (body, json_path) = self.read(remote).await?;
        answer::secret_map(&body, &json_path, &remote.key)
    }

    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        let key = &target.remote_key;
        if key.is_empty() {
            return Err(ProviderError::InvalidConfig(
                "remote key must be defined".into(),
            ));
        }
        let mut data = self
            .with_secrets(TemplateData::for_remote(&[("remoteKey", key)]))
            .await?;
        data.add_remote_member(key, value);
        let text = String::from_utf8_lossy(value.expose()).into_owned();
        let hidden = [text.as_str()];
        let body_template = self.body_template();
        let request = if body_template.is_empty() {
            let mut request = Request::render(&self.spec, &data, "POST", "", &hidden)?;
            request.body = text.clone();
            request
        } else {
            Request::render(&self.spec, &data, "POST", body_template, &hidden)?
        };
        self.fetch(request, key)
            .await
            .map(drop)
            .map_err(|e| match e {
                ProviderError::NotFound { key, .. } => ProviderError::Unavailable(format!(
                    "failed to push webhook data for {key:?}: endpoint gave error 404 Not Found"
                )),
                other => other,
            })
    }

    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        let data = self
            .with_secrets(TemplateData::for_remote(&[(
                "remoteKey",
                &target.remote_key,
            )]))
            .await?;
        let mut request = Request::render(&self.spec, &data, "DELETE", "", &[])?;
        request.method = "DELETE".into();
        match self.fetch(request, &target.remote_key).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        match self.read(&RemoteRef::key(&target.remote_key)).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        let Some(address) = host_and_port(&self.spec.url) else {
            return Ok(Validation::Unknown);
        };
        match tokio::time::timeout(VALIDATE_TIMEOUT, tokio::net::TcpStream::connect(&address)).await
        {
            Ok(Ok(_)) => Ok(Validation::Ready),
            Ok(Err(e)) => Err(ProviderError::Unavailable(format!(
                "cannot connect to {address}: {e}"
            ))),
            Err(_) => Err(ProviderError::Unavailable(format!(
                "cannot connect to {address}: no answer in {}s",
                VALIDATE_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// `host:port` of a URL template (the scheme's port when none is written, user info left
/// out); `None` when the authority is itself templated or the URL has no `scheme://`.
fn host_and_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains("{{") || authority.is_empty() {
        return None;
    }
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let has_port = match host_port.rfind(']') {
        Some(close) => host_port[close..].contains(':'),
        None => host_port.contains(':'),
    };
    if has_port {
        return Some(host_port.to_string());
    }
    let port = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        _ => 80,
    };
    Some(format!("{host_port}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_dials_the_written_host_only() {
        assert_eq!(
            host_and_port("https://user:pw@vault.example/{{ .remoteRef.key }}").as_deref(),
            Some("vault.example:443")
        );
        assert_eq!(
            host_and_port("http://127.0.0.1:8080?x=1").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(host_and_port("http://[::1]/a").as_deref(), Some("[::1]:80"));
        assert_eq!(host_and_port("http://{{ .creds.host }}/a"), None);
        assert_eq!(host_and_port("no scheme"), None);
    }
}

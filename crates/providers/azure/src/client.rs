//! The session client: credentials resolved once at connect, tokens cached by the
//! [`TokenSource`](crate::token::TokenSource), every read one Key Vault call.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use strongroom_provider_api::{
    FindQuery, ProviderEnv, ProviderError, PushRef, RemoteRef, SecretBytes, SecretMap,
    SecretsClient, StoreContext, Validation, json_property,
};

use crate::config::{AuthType, Endpoints, Settings, invalid};
use crate::keys::{self, Jwk};
use crate::metadata;
use crate::push::{self, refuse_unmanaged};
use crate::tls;
use crate::token::{AssertionSource, Credential, TokenSource, WORKLOAD_AUDIENCE, token_url};
use crate::vault::{Call, PAGE_SIZE, Vault};

/// How often, and how far apart, a recovered secret is read until it is back (upstream: every
/// 2 s for 2 minutes).
const RECOVERY_POLLS: u32 = 60;
const RECOVERY_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Key Vault's 409 for a name held by a soft-deleted object.
fn is_soft_deleted(e: &ProviderError) -> bool {
    matches!(e, ProviderError::InvalidConfig(m) if m.contains("ObjectIsDeletedButRecoverable"))
}

/// Upstream's annotations on a workload identity ServiceAccount.
const ANNOTATION_CLIENT_ID: &str = "azure.workload.identity/client-id";
const ANNOTATION_TENANT_ID: &str = "azure.workload.identity/tenant-id";

/// The three kinds of Key Vault object a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Secret,
    Cert,
    Key,
}

/// Upstream's `getObjType`: `<type>/<name>` (only the first two segments count), else a secret.
fn object(key: &str) -> Result<(Kind, &str), ProviderError> {
    let mut parts = key.split('/');
    let first = parts.next().unwrap_or("");
    let Some(name) = parts.next() else {
        return Ok((Kind::Secret, key));
    };
    match first {
        "secret" => Ok((Kind::Secret, name)),
        "cert" => Ok((Kind::Cert, name)),
        "key" => Ok((Kind::Key, name)),
        _ => Err(invalid(format!(
            "unknown Azure Keyvault object Type for {name} (key {key:?}; use secret/, cert/ or key/)"
        ))),
    }
}

impl Kind {
    fn segment(self) -> &'static str {
        match self {
            Self::Secret => "secrets",
            Self::Cert => "certificates",
            Self::Key => "keys",
        }
    }

    fn get_call(self) -> Call {
        match self {
            Self::Secret => Call::GetSecret,
            Self::Cert => Call::GetCertificate,
            Self::Key => Call::GetKey,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::Cert => "certificate",
            Self::Key => "key",
        }
    }
}

/// An Azure Key Vault session for one store.
pub struct AzureSecretsClient {
    /// `None` for a referent ClusterSecretStore validated without a reader.
    vault: Option<Vault>,
    vault_url: String,
}

impl std::fmt::Debug for AzureSecretsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureSecretsClient")
            .field("vault_url", &self.vault_url)
            .field("vault", &self.vault)
            .finish()
    }
}

fn text(secret: &SecretBytes, what: &str) -> Result<String, ProviderError> {
    secret
        .expose_str()
        .map(|s| s.trim().to_string())
        .ok_or_else(|| ProviderError::Authentication(format!("{what} is not UTF-8")))
}

/// Reads the credential the store's `authType` names.
async fn credential(
    store: &StoreContext,
    settings: &Settings,
    endpoints: &Endpoints,
    env: &ProviderEnv,
) -> Result<(Credential, String), ProviderError> {
    let spec = &settings.spec;
    let creds = env.credentials.as_ref();
    match settings.auth {
        AuthType::ManagedIdentity => Ok((
            Credential::Managed {
                url: endpoints.imds_token_url()?,
                identity: spec.identity_id.clone().filter(|i| !i.is_empty()),
            },
            String::new(),
        )),
        AuthType::ServicePrincipal => {
            let tenant = spec
                .tenant_id
                .clone()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| invalid("missing tenantID in store config"))?;
            let auth = spec
                .auth_secret_ref
                .as_ref()
                .ok_or_else(|| invalid("missing secretRef in provider config"))?;
            let (Some(id_ref), true) = (
                &auth.client_id,
                auth.client_secret.is_some() || auth.client_certificate.is_some(),
            ) else {
                return Err(invalid(
                    "missing clientID/clientSecret in store config (authSecretRef needs clientId and clientSecret or clientCertificate)",
                ));
            };
            let client_id = text(
                &store
                    .secret_key(creds, id_ref, "authSecretRef.clientId")
                    .await?,
                "authSecretRef.clientId",
            )?;
            let url = token_url(&settings.authority, &tenant)?;
            match (&auth.client_secret, &auth.client_certificate) {
                (Some(_), Some(_)) => Err(invalid("both clientSecret and clientCredentials set")),
                (Some(s), None) => {
                    let secret = store
                        .secret_key(creds, s, "authSecretRef.clientSecret")
                        .await?;
                    Ok((Credential::ClientSecret { client_id, secret }, url))
                }
                (None, Some(c)) => {
                    let pem = store
                        .secret_key(creds, c, "authSecretRef.clientCertificate")
                        .await?;
                    Ok((Credential::certificate(client_id, &pem)?, url))
                }
                (None, None) => Err(invalid("missing clientSecret")),
            }
        }
        AuthType::WorkloadIdentity => workload(store, settings, endpoints, env).await,
    }
}

/// Workload identity as upstream: the webhook's environment without `serviceAccountRef`,
/// else the ServiceAccount's annotations (or `authSecretRef`) and a TokenRequest token.
async fn workload(
    store: &StoreContext,
    settings: &Settings,
    endpoints: &Endpoints,
    env: &ProviderEnv,
) -> Result<(Credential, String), ProviderError> {
    let spec = &settings.spec;
    let creds = env.credentials.as_ref();
    let Some(sa) = &spec.service_account_ref else {
        let (Some(client_id), Some(tenant), Some(file)) = (
            endpoints.workload_client_id.clone(),
            endpoints.workload_tenant_id.clone(),
            endpoints.workload_token_file.clone(),
        ) else {
            return Err(invalid(
                "missing environment variables. AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE must be set",
            ));
        };
        let url = token_url(&settings.authority, &tenant)?;
        return Ok((
            Credential::Federated {
                client_id,
                source: AssertionSource::File(file),
            },
            url,
        ));
    };
    let namespace = store
        .credential_namespace(sa.namespace.as_deref())
        .ok_or_else(|| invalid("serviceAccountRef names no namespace and no reader is known"))?;
    let annotations = creds
        .service_account_annotations(&namespace, &sa.name)
        .await?;
    let mut client_id = String::new();
    let mut tenant = String::new();
    if let Some(auth) = &spec.auth_secret_ref {
        let id_ref = auth
            .client_id
            .as_ref()
            .ok_or_else(|| invalid("missing accessKeyID/secretAccessKey in store config"))?;
        client_id = text(
            &store
                .secret_key(creds, id_ref, "authSecretRef.clientId")
                .await?,
            "authSecretRef.clientId",
        )?;
        if let Some(t) = &auth.tenant_id {
            tenant = text(
                &store.secret_key(creds, t, "authSecretRef.tenantId").await?,
                "authSecretRef.tenantId",
            )?;
        }
    }
    if let Some(id) = annotations.get(ANNOTATION_CLIENT_ID) {
        if !client_id.is_empty() {
            return Err(invalid(
                "multiple clientID found. Check secretRef and serviceAccountRef",
            ));
        }
        client_id = id.clone();
    }
    if client_id.is_empty() {
        return Err(invalid(format!(
            "missing clientID: either serviceAccountRef or service account annotation '{ANNOTATION_CLIENT_ID}' is missing"
        )));
    }
    if tenant.is_empty() {
        tenant = spec.tenant_id.clone().unwrap_or_default();
    }
    if let Some(t) = annotations.get(ANNOTATION_TENANT_ID) {
        if !tenant.is_empty() {
            return Err(invalid(
                "multiple tenantID found. Check secretRef, 'spec.provider.azurekv.tenantId', and serviceAccountRef",
            ));
        }
        tenant = t.clone();
    }
    if tenant.is_empty() {
        tenant = endpoints.workload_tenant_id.clone().unwrap_or_default();
    }
    if tenant.is_empty() {
        return Err(invalid("missing tenantID in store config"));
    }
    let mut audiences = vec![WORKLOAD_AUDIENCE.to_string()];
    audiences.extend(sa.audiences.clone().unwrap_or_default());
    let url = token_url(&settings.authority, &tenant)?;
    Ok((
        Credential::Federated {
            client_id,
            source: AssertionSource::ServiceAccount {
                namespace,
                name: sa.name.clone(),
                audiences,
            },
        },
        url,
    ))
}

impl AzureSecretsClient {
    /// Resolves the store's credentials and prepares the vault; the first token is fetched by
    /// the first call.
    pub async fn connect(
        store: &StoreContext,
        env: ProviderEnv,
        endpoints: Endpoints,
    ) -> Result<Self, ProviderError> {
        let settings = Settings::from_store(store, &endpoints)?;
        if settings.is_referent(store) && store.referent_namespace.is_none() {
            return Ok(Self {
                vault: None,
                vault_url: settings.vault_url,
            });
        }
        let (credential, url) = credential(store, &settings, &endpoints, &env).await?;
        let http = tls::http_client(&endpoints)?;
        let tokens = TokenSource::new(http.clone(), url, credential, Arc::clone(&env.credentials));
        let vault = Vault::new(
            http,
            &settings.vault_url,
            settings.vault_host.clone(),
            settings.resource.clone(),
            tokens,
            env,
        )?;
        Ok(Self {
            vault: Some(vault),
            vault_url: settings.vault_url,
        })
    }

    fn vault(&self) -> Result<&Vault, ProviderError> {
        self.vault.as_ref().ok_or_else(|| {
            invalid(
                "this ClusterSecretStore reads its credentials in the ExternalSecret's namespace \
                 (referent authentication), and none is known",
            )
        })
    }

    /// One object (its latest version when `version` is empty).
    async fn get(
        &self,
        kind: Kind,
        name: &str,
        version: Option<&str>,
    ) -> Result<Value, ProviderError> {
        let vault = self.vault()?;
        let mut segments = vec![kind.segment(), name];
        if let Some(v) = version.filter(|v| !v.is_empty()) {
            segments.push(v);
        }
        let what = format!("get {} {name:?}", kind.noun());
        vault
            .send(
                kind.get_call(),
                Method::GET,
                vault.url(&segments, &[]),
                None,
                &what,
                name,
            )
            .await
    }

    /// The object, or `None` when it does not exist.
    async fn get_existing(&self, kind: Kind, name: &str) -> Result<Option<Value>, ProviderError> {
        match self.get(kind, name, None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn push_secret(
        &self,
        name: &str,
        value: &SecretBytes,
        spec: &push::PushSpec,
    ) -> Result<(), ProviderError> {
        let vault = self.vault()?;
        let expires = spec.expires()?;
        let current = self.get_existing(Kind::Secret, name).await?;
        let content_type = (!spec.content_type.is_empty()).then(|| spec.content_type.clone());
        if let Some(cur) = &current {
            refuse_unmanaged(cur, "secret", name)?;
            let same_value =
                cur.get("value").and_then(Value::as_str).map(str::as_bytes) == Some(value.expose());
            let cur_exp = cur
                .get("attributes")
                .and_then(|a| a.get("exp"))
                .and_then(Value::as_i64);
            let same_type = content_type.is_none()
                || cur.get("contentType").and_then(Value::as_str) == content_type.as_deref();
            if same_value && cur_exp == expires && same_type {
                return Ok(());
            }
        }
        let content_type = content_type.or_else(|| {
            current
                .as_ref()
                .and_then(|c| c.get("contentType"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let text = value.expose_str().ok_or_else(|| {
            invalid(format!(
                "the value pushed to secret {name:?} is not UTF-8 (Key Vault secrets are strings)"
            ))
        })?;
        let mut attributes = json!({"enabled": true});
        if let Some(exp) = expires {
            attributes["exp"] = json!(exp);
        }
        let mut body =
            json!({"value": text, "tags": spec.managed_tags(), "attributes": attributes});
        if let Some(ct) = content_type {
            body["contentType"] = json!(ct);
        }
        let what = format!("set secret {name:?}");
        let url = vault.url(&["secrets", name], &[]);
        match vault
            .send(
                Call::SetSecret,
                Method::PUT,
                url.clone(),
                Some(&body),
                &what,
                name,
            )
            .await
        {
            Err(e) if is_soft_deleted(&e) => {
                self.recover_secret(name).await?;
                vault
                    .send(Call::SetSecret, Method::PUT, url, Some(&body), &what, name)
                    .await
                    .map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    /// Upstream's answer to a push onto a soft-deleted secret: recover it, wait until it
    /// reads again, and write only if it still carries the managed-by tag.
    async fn recover_secret(&self, name: &str) -> Result<(), ProviderError> {
        let vault = self.vault()?;
        let what = format!("recover deleted secret {name:?}");
        vault
            .send(
                Call::RecoverSecret,
                Method::POST,
                vault.url(&["deletedsecrets", name, "recover"], &[]),
                None,
                &what,
                name,
            )
            .await?;
        for _ in 0..RECOVERY_POLLS {
            if let Some(recovered) = self.get_existing(Kind::Secret, name).await? {
                return refuse_unmanaged(&recovered, "recovered secret", name);
            }
            tokio::time::sleep(RECOVERY_POLL_INTERVAL).await;
        }
        Err(ProviderError::Unavailable(format!(
            "waiting for recovered secret {name:?} to become available timed out"
        )))
    }

    async fn push_certificate(
        &self,
        name: &str,
        value: &SecretBytes,
        spec: &push::PushSpec,
    ) -> Result<(), ProviderError> {
        let vault = self.vault()?;
        let der = keys::certificate_der(name, value.expose())?;
        if let Some(cur) = self.get_existing(Kind::Cert, name).await? {
            refuse_unmanaged(&cur, "certificate", name)?;
            let stored = cur
                .get("cer")
                .and_then(Value::as_str)
                .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok());
            if stored.as_deref() == Some(der.as_slice()) {
                return Ok(());
            }
        }
        let body = json!({
            "value": base64::engine::general_purpose::STANDARD.encode(value.expose()),
            "tags": spec.managed_tags(),
        });
        let what = format!("import certificate {name:?}");
        vault
            .send(
                Call::ImportCertificate,
                Method::POST,
                vault.url(&["certificates", name, "import"], &[]),
                Some(&body),
                &what,
                name,
            )
            .await
            .map(|_| ())
    }

    async fn push_key(
        &self,
        name: &str,
        value: &SecretBytes,
        spec: &push::PushSpec,
    ) -> Result<(), ProviderError> {
        let vault = self.vault()?;
        let jwk = keys::jwk_from_value(name, value.expose())?;
        if let Some(cur) = self.get_existing(Kind::Key, name).await? {
            refuse_unmanaged(&cur, "key", name)?;
            let stored: Option<Jwk> = cur
                .get("key")
                .and_then(|k| serde_json::from_value(k.clone()).ok());
            if stored.is_some_and(|s| jwk.same_key(&s)) {
                return Ok(());
            }
        }
        let body = json!({"key": jwk, "attributes": {}, "tags": spec.managed_tags()});
        let what = format!("import key {name:?}");
        vault
            .send(
                Call::ImportKey,
                Method::PUT,
                vault.url(&["keys", name], &[]),
                Some(&body),
                &what,
                name,
            )
            .await
            .map(|_| ())
    }
}

/// The value of a secret bundle.
fn secret_value(bundle: &Value, name: &str) -> Result<SecretBytes, ProviderError> {
    bundle
        .get("value")
        .and_then(Value::as_str)
        .map(SecretBytes::from)
        .ok_or_else(|| {
            ProviderError::Malformed(format!("secret {name:?} came back without a value"))
        })
}

#[async_trait]
impl SecretsClient for AzureSecretsClient {
    async fn get_secret(&self, remote: &RemoteRef) -> Result<SecretBytes, ProviderError> {
        let (kind, name) = object(&remote.key)?;
        let bundle = self.get(kind, name, remote.version.as_deref()).await?;
        if remote.fetch_metadata {
            return metadata::tag_value(
                &remote.key,
                &metadata::all_metadata(&bundle),
                remote.property.as_deref(),
            );
        }
        let value = match kind {
            Kind::Secret => secret_value(&bundle, name)?,
            Kind::Cert => {
                let cer = bundle.get("cer").and_then(Value::as_str).ok_or_else(|| {
                    ProviderError::Malformed(format!("certificate {name:?} came back without cer"))
                })?;
                return base64::engine::general_purpose::STANDARD
                    .decode(cer)
                    .map(SecretBytes::new)
                    .map_err(|_| {
                        ProviderError::Malformed(format!("certificate {name:?}: cer is not base64"))
                    });
            }
            Kind::Key => {
                let jwk: Jwk = bundle
                    .get("key")
                    .and_then(|k| serde_json::from_value(k.clone()).ok())
                    .ok_or_else(|| {
                        ProviderError::Malformed(format!("key {name:?} came back without a JWK"))
                    })?;
                SecretBytes::new(serde_json::to_vec(&jwk).map_err(|_| {
                    ProviderError::Malformed(format!("key {name:?}: the JWK cannot be written"))
                })?)
            }
        };
        match remote.property.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => json_property(&remote.key, value.expose(), p),
            None => Ok(value),
        }
    }

    async fn get_secret_map(&self, remote: &RemoteRef) -> Result<SecretMap, ProviderError> {
        let (kind, name) = object(&remote.key)?;
        match kind {
            Kind::Cert => return Err(invalid("cannot get use dataFrom to get certificate secret")),
            Kind::Key => return Err(invalid("cannot get use dataFrom to get key secret")),
            Kind::Secret => {}
        }
        if remote.fetch_metadata {
            let bundle = self.get(kind, name, remote.version.as_deref()).await?;
            return Ok(metadata::tag_map(
                &remote.key,
                name,
                &bundle,
                remote.property.as_deref(),
            ));
        }
        let value = self.get_secret(remote).await?;
        strongroom_provider_api::map_from_json(&remote.key, value.expose())
    }

    async fn get_all(&self, query: &FindQuery) -> Result<SecretMap, ProviderError> {
        let vault = self.vault()?;
        let name_filter = query.name_filter()?;
        let mut url = vault.url(&["secrets"], &[("maxresults", PAGE_SIZE)]);
        let mut names = Vec::new();
        loop {
            let page = vault
                .send(
                    Call::GetSecrets,
                    Method::GET,
                    url,
                    None,
                    "list secrets",
                    "secrets",
                )
                .await?;
            for item in page
                .get("value")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let enabled = item
                    .get("attributes")
                    .and_then(|a| a.get("enabled"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let Some(id) = item.get("id").and_then(Value::as_str) else {
                    continue;
                };
                let tags = item
                    .get("tags")
                    .and_then(Value::as_object)
                    .map(|t| {
                        t.iter()
                            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                let name = id
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string();
                if !enabled
                    || name.is_empty()
                    || !query.tags_match(&tags)
                    || name_filter.as_ref().is_some_and(|re| !re.is_match(&name))
                {
                    continue;
                }
                names.push(name);
            }
            match page
                .get("nextLink")
                .and_then(Value::as_str)
                .filter(|l| !l.is_empty())
            {
                Some(link) => url = vault.next_link(link)?,
                None => break,
            }
        }
        let mut out = SecretMap::new();
        for name in names {
            let bundle = self.get(Kind::Secret, &name, None).await?;
            out.insert(name.clone(), secret_value(&bundle, &name)?);
        }
        Ok(out)
    }

    async fn push(&self, value: &SecretBytes, target: &PushRef) -> Result<(), ProviderError> {
        let spec = push::parse(target.metadata.as_ref())?;
        let (kind, name) = object(&target.remote_key)?;
        match kind {
            Kind::Secret => self.push_secret(name, value, &spec).await,
            Kind::Cert => self.push_certificate(name, value, &spec).await,
            Kind::Key => self.push_key(name, value, &spec).await,
        }
    }

    async fn delete(&self, target: &PushRef) -> Result<(), ProviderError> {
        let vault = self.vault()?;
        let (kind, name) = object(&target.remote_key)?;
        let Some(current) = self.get_existing(kind, name).await? else {
            return Ok(());
        };
        if !push::is_managed(&current) {
            return Err(ProviderError::PermissionDenied(format!(
                "error getting {} {name}: not managed by external-secrets",
                kind.noun()
            )));
        }
        let call = match kind {
            Kind::Secret => Call::DeleteSecret,
            Kind::Cert => Call::DeleteCertificate,
            Kind::Key => Call::DeleteKey,
        };
        let what = format!("delete {} {name:?}", kind.noun());
        match vault
            .send(
                call,
                Method::DELETE,
                vault.url(&[kind.segment(), name], &[]),
                None,
                &what,
                name,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn exists(&self, target: &PushRef) -> Result<bool, ProviderError> {
        let (kind, name) = object(&target.remote_key)?;
        Ok(self.get_existing(kind, name).await?.is_some())
    }

    async fn validate(&self) -> Result<Validation, ProviderError> {
        match &self.vault {
            None => Ok(Validation::Unknown),
            Some(vault) => vault.check_login().await.map(|()| Validation::Ready),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn object_types_as_upstream() {
        assert_eq!(object("db").unwrap(), (Kind::Secret, "db"));
        assert_eq!(object("secret/db").unwrap(), (Kind::Secret, "db"));
        assert_eq!(object("cert/tls").unwrap(), (Kind::Cert, "tls"));
        assert_eq!(object("key/sign/extra").unwrap(), (Kind::Key, "sign"));
        assert!(object("blob/x").is_err());
    }
}

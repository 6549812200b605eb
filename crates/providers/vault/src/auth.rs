//! `auth`: which method a store uses, the credentials it needs (read through the controller's
//! resolver), and the one login per client.

use std::time::Duration;

use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};

use strongroom_core::crd::external_secrets::{
    SecretKeySelector, StoreKind, VaultAppRole, VaultCertAuth, VaultJwtAuth, VaultKubernetesAuth,
    VaultProvider, VaultUserPassAuth,
};
use strongroom_provider_api::{ProviderEnv, ProviderError, SecretBytes, StoreContext};
use vaultrs::client::VaultClient;

use crate::config::{ClientCert, invalid};
use crate::vault::{self, Call, Retries};

/// Lifetime asked for minted ServiceAccount tokens (upstream's value).
const SA_TOKEN_SECONDS: i64 = 600;

/// The one authentication method a block configures.
pub(crate) enum Method<'a> {
    Token(&'a SecretKeySelector),
    AppRole(&'a VaultAppRole),
    Kubernetes(&'a VaultKubernetesAuth),
    Jwt(&'a VaultJwtAuth),
    Cert(&'a VaultCertAuth),
    UserPass(&'a VaultUserPassAuth),
    Ldap(&'a VaultUserPassAuth),
}

const NEED_ONE: &str = "spec.provider.vault.auth needs exactly one of tokenSecretRef, appRole, \
                        kubernetes, jwt, cert, userPass and ldap";

impl<'a> Method<'a> {
    /// The configured method; `InvalidConfig` when none, several, or an unimplemented one.
    pub fn of(spec: &'a VaultProvider) -> Result<Self, ProviderError> {
        let Some(auth) = &spec.auth else {
            return Err(invalid(format!("{NEED_ONE}; auth is missing")));
        };
        if auth.iam.is_some() || auth.gcp.is_some() {
            return Err(invalid(
                "vault auth.iam and auth.gcp are not implemented by Strongroom",
            ));
        }
        let mut found = Vec::new();
        if let Some(s) = &auth.token_secret_ref {
            found.push(Method::Token(s));
        }
        if let Some(a) = &auth.app_role {
            found.push(Method::AppRole(a));
        }
        if let Some(k) = &auth.kubernetes {
            found.push(Method::Kubernetes(k));
        }
        if let Some(j) = &auth.jwt {
            found.push(Method::Jwt(j));
        }
        if let Some(c) = &auth.cert {
            found.push(Method::Cert(c));
        }
        if let Some(u) = &auth.user_pass {
            found.push(Method::UserPass(u));
        }
        if let Some(l) = &auth.ldap {
            found.push(Method::Ldap(l));
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(invalid(format!("{NEED_ONE}; none is set"))),
            _ => Err(invalid(format!("{NEED_ONE}; several are set"))),
        }
    }

    /// The namespaces of the credential references (`None` = the reader's, for a
    /// ClusterSecretStore).
    fn reference_namespaces(&self) -> Vec<Option<&'a str>> {
        let sel = |s: &'a SecretKeySelector| s.namespace.as_deref();
        match self {
            Method::Token(s) => vec![sel(s)],
            Method::AppRole(a) => {
                let mut v = vec![sel(&a.secret_ref)];
                v.extend(a.role_ref.as_ref().map(sel));
                v
            }
            Method::Kubernetes(k) => match (&k.service_account_ref, &k.secret_ref) {
                (Some(sa), _) => vec![sa.namespace.as_deref()],
                (None, Some(s)) => vec![sel(s)],
                (None, None) => vec![Some("")],
            },
            Method::Jwt(j) => match (&j.secret_ref, &j.kubernetes_service_account_token) {
                (Some(s), _) => vec![sel(s)],
                (None, Some(t)) => vec![t.service_account_ref.namespace.as_deref()],
                (None, None) => vec![],
            },
            Method::Cert(c) => c.client_cert.iter().chain(&c.secret_ref).map(sel).collect(),
            Method::UserPass(u) | Method::Ldap(u) => u.secret_ref.iter().map(sel).collect(),
        }
    }
}

/// Whether a ClusterSecretStore's credentials are read in the reader's namespace.
pub(crate) fn is_referent(store: &StoreContext, spec: &VaultProvider) -> bool {
    store.kind == StoreKind::ClusterSecretStore
        && Method::of(spec).is_ok_and(|m| m.reference_namespaces().iter().any(Option::is_none))
}

/// What a login (or a static token) gives a client.
pub(crate) struct Session {
    /// The token.
    pub token: SecretBytes,
    /// How long it lives (`None`: a static token, or one that does not expire).
    pub lifetime: Option<Duration>,
    /// Whether we logged in for it, so `close` revokes it.
    pub revocable: bool,
    /// Whether the login says the token can be renewed (unknown for a static token: false).
    pub renewable: bool,
}

/// The TLS client certificate `auth.cert` logs in with.
pub(crate) async fn login_certificate(
    store: &StoreContext,
    spec: &VaultProvider,
    env: &ProviderEnv,
) -> Result<Option<ClientCert>, ProviderError> {
    let creds = env.credentials.as_ref();
    if let Ok(Method::Cert(c)) = Method::of(spec) {
        let cert = c
            .client_cert
            .as_ref()
            .ok_or_else(|| invalid("auth.cert.clientCert is required"))?;
        let key = c
            .secret_ref
            .as_ref()
            .ok_or_else(|| invalid("auth.cert.secretRef is required"))?;
        return Ok(Some(ClientCert {
            cert: store
                .secret_key(creds, &with_key(cert, "tls.crt"), "auth.cert.clientCert")
                .await?,
            key: store
                .secret_key(creds, &with_key(key, "tls.key"), "auth.cert.secretRef")
                .await?,
        }));
    }
    if let Some(tls) = &spec.tls
        && let (Some(cert), Some(key)) = (&tls.cert_secret_ref, &tls.key_secret_ref)
    {
        return Ok(Some(ClientCert {
            cert: store
                .secret_key(creds, &with_key(cert, "tls.crt"), "tls.certSecretRef")
                .await?,
            key: store
                .secret_key(creds, &with_key(key, "tls.key"), "tls.keySecretRef")
                .await?,
        }));
    }
    Ok(None)
}

/// `POST auth/<mount>/login` of the cert method, naming the role as `name` (the field the
/// API reads; vaultrs's own request sends `cert_name`, which the server ignores, so any role
/// trusting the certificate would match). Without a role the server picks one.
struct CertLogin {
    mount: String,
    role: Option<String>,
}

impl Endpoint for CertLogin {
    type Response = ();
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        format!("auth/{}/login", self.mount)
    }

    fn method(&self) -> RequestMethod {
        RequestMethod::POST
    }

    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        let body = match &self.role {
            Some(role) => serde_json::json!({ "name": role }),
            None => serde_json::json!({}),
        };
        Ok(Some(body.to_string().into_bytes()))
    }
}

/// A selector with `key` filled in when empty.
fn with_key(selector: &SecretKeySelector, key: &str) -> SecretKeySelector {
    let mut s = selector.clone();
    if s.key.as_deref().unwrap_or("").is_empty() {
        s.key = Some(key.to_string());
    }
    s
}

fn mount(path: Option<&str>, default: &str) -> String {
    path.map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .unwrap_or(default)
        .to_string()
}

fn text(secret: &SecretBytes, what: &str) -> Result<String, ProviderError> {
    std::str::from_utf8(secret.expose())
        .map(|s| s.trim().to_string())
        .map_err(|_| ProviderError::Authentication(format!("{what} is not UTF-8")))
}

/// A ServiceAccount token from the TokenRequest API.
async fn service_account_token(
    store: &StoreContext,
    env: &ProviderEnv,
    sa: &strongroom_core::crd::external_secrets::ServiceAccountSelector,
    audiences: &[String],
    seconds: i64,
    field: &str,
) -> Result<SecretBytes, ProviderError> {
    let namespace = store
        .credential_namespace(sa.namespace.as_deref())
        .ok_or_else(|| invalid(format!("{field} names no namespace and no reader is known")))?;
    env.credentials
        .service_account_token(&namespace, &sa.name, audiences, Some(seconds))
        .await
}

/// Reads the method's credentials and logs in (once), or returns the static token.
/// `login_client` speaks to the login namespace (`auth.namespace`, else `namespace`). A login
/// that fails in a way that may pass is retried as `retries` say (the store's
/// `retrySettings`, as its reads).
pub(crate) async fn login(
    store: &StoreContext,
    spec: &VaultProvider,
    env: &ProviderEnv,
    login_client: &VaultClient,
    retries: Retries,
) -> Result<Session, ProviderError> {
    let creds = env.credentials.as_ref();
    let info = match Method::of(spec)? {
        Method::Token(s) => {
            let token = store.secret_key(creds, s, "auth.tokenSecretRef").await?;
            return Ok(Session {
                token,
                lifetime: None,
                revocable: false,
                renewable: false,
            });
        }
        Method::AppRole(a) => {
            let role_id = match (&a.role_id, &a.role_ref) {
                (Some(id), _) if !id.is_empty() => id.clone(),
                (_, Some(r)) => text(
                    &store.secret_key(creds, r, "auth.appRole.roleRef").await?,
                    "auth.appRole.roleRef",
                )?,
                _ => return Err(invalid("auth.appRole needs roleId or roleRef")),
            };
            let secret_id = store
                .secret_key(creds, &a.secret_ref, "auth.appRole.secretRef")
                .await?;
            let secret_id = text(&secret_id, "auth.appRole.secretRef")?;
            let path = mount(a.path.as_deref(), "approle");
            vault::run_retried(env, retries, Call::Login, "log in with AppRole", || {
                vaultrs::auth::approle::login(login_client, &path, &role_id, &secret_id)
            })
            .await
        }
        Method::Kubernetes(k) => {
            let jwt = match (&k.service_account_ref, &k.secret_ref) {
                (Some(sa), _) => {
                    let audiences = sa.audiences.clone().unwrap_or_default();
                    service_account_token(
                        store,
                        env,
                        sa,
                        &audiences,
                        SA_TOKEN_SECONDS,
                        "auth.kubernetes.serviceAccountRef",
                    )
                    .await?
                }
                (None, Some(s)) => {
                    store
                        .secret_key(creds, &with_key(s, "token"), "auth.kubernetes.secretRef")
                        .await?
                }
                (None, None) => {
                    return Err(invalid(
                        "auth.kubernetes needs serviceAccountRef or secretRef (the controller's \
                         own mounted token is not used)",
                    ));
                }
            };
            let jwt = text(&jwt, "the ServiceAccount token")?;
            let path = mount(k.mount_path.as_deref(), "kubernetes");
            vault::run_retried(
                env,
                retries,
                Call::Login,
                "log in with Kubernetes auth",
                || vaultrs::auth::kubernetes::login(login_client, &path, &k.role, &jwt),
            )
            .await
        }
        Method::Jwt(j) => {
            let jwt = match (&j.secret_ref, &j.kubernetes_service_account_token) {
                (Some(s), _) => store.secret_key(creds, s, "auth.jwt.secretRef").await?,
                (None, Some(t)) => {
                    let audiences = t.audiences.clone().unwrap_or_else(|| vec!["vault".into()]);
                    service_account_token(
                        store,
                        env,
                        &t.service_account_ref,
                        &audiences,
                        t.expiration_seconds.unwrap_or(SA_TOKEN_SECONDS),
                        "auth.jwt.kubernetesServiceAccountToken",
                    )
                    .await?
                }
                (None, None) => {
                    return Err(invalid(
                        "auth.jwt needs secretRef or kubernetesServiceAccountToken",
                    ));
                }
            };
            let jwt = text(&jwt, "the JWT")?;
            let path = mount(j.path.as_deref(), "jwt");
            let role = j
                .role
                .as_deref()
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_string);
            vault::run_retried(env, retries, Call::Login, "log in with JWT", || {
                vaultrs::auth::oidc::login(login_client, &path, &jwt, role.clone())
            })
            .await
        }
        Method::Cert(c) => {
            // The client certificate is on the connection (login_certificate).
            let path = mount(c.path.as_deref(), "cert");
            let role = c.vault_role.clone().filter(|r| !r.trim().is_empty());
            vault::run_retried(
                env,
                retries,
                Call::Login,
                "log in with a TLS certificate",
                || {
                    vaultrs::api::auth(
                        login_client,
                        CertLogin {
                            mount: path.clone(),
                            role: role.clone(),
                        },
                    )
                },
            )
            .await
        }
        Method::UserPass(u) | Method::Ldap(u) => {
            let is_ldap = spec.auth.as_ref().is_some_and(|a| a.ldap.is_some());
            let (field, default) = if is_ldap {
                ("auth.ldap.secretRef", "ldap")
            } else {
                ("auth.userPass.secretRef", "userpass")
            };
            let selector = u
                .secret_ref
                .as_ref()
                .ok_or_else(|| invalid(format!("{field} is required")))?;
            let password = text(&store.secret_key(creds, selector, field).await?, field)?;
            let path = mount(u.path.as_deref(), default);
            // userpass and ldap share the login shape (`POST auth/<path>/login/<user>`).
            vault::run_retried(env, retries, Call::Login, "log in with a username", || {
                vaultrs::auth::userpass::login(login_client, &path, &u.username, &password)
            })
            .await
        }
    }
    .map_err(vault::login_failure)?;
    Ok(Session {
        token: SecretBytes::from(info.client_token.as_str()),
        lifetime: (info.lease_duration > 0).then(|| Duration::from_secs(info.lease_duration)),
        revocable: true,
        renewable: info.renewable,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn cert_login_names_the_role_as_the_api_reads_it() {
        let login = |role: Option<&str>| CertLogin {
            mount: "team-cert".into(),
            role: role.map(str::to_string),
        };
        let body = |l: CertLogin| -> serde_json::Value {
            serde_json::from_slice(&l.body().unwrap().unwrap()).unwrap()
        };
        assert_eq!(login(None).path(), "auth/team-cert/login");
        assert_eq!(body(login(Some("web"))), serde_json::json!({"name": "web"}));
        assert_eq!(body(login(None)), serde_json::json!({}));
    }
}

//! Stands in for Azure Key Vault, the Microsoft Entra ID token endpoint and IMDS (no emulator exists), following the published REST reference.
//!
//! Written from Microsoft's REST reference, not from the provider: Key Vault `api-version`
//! 7.4 (`GET /secrets/{name}[/{version}]`, `GET /secrets?maxresults=` with `nextLink` and
//! `$skiptoken`, `PUT /secrets/{name}`, `DELETE /secrets/{name}`, `GET /certificates/{name}`
//! with `cer` as base64 DER, `POST /certificates/{name}/import`, `GET /keys/{name}` with the
//! public JWK in `key`, `PUT /keys/{name}` (import), `DELETE` of both), bundles with `value`,
//! `id`, `contentType`, `tags`, `attributes{enabled,created,updated,exp,nbf,recoveryLevel}`,
//! errors as `{"error":{"code","message","innererror"}}`, a 401 challenge
//! `WWW-Authenticate: Bearer authorization="<authority>/<tenant>", resource="<resource>"`;
//! the Entra ID v2.0 token endpoint `POST /{tenant}/oauth2/v2.0/token` (client credentials with
//! `client_secret`, or `client_assertion` of type jwt-bearer: an RS256 JWT carrying the
//! registered certificate's `x5t`, or a federated token checked against its issuer's JWKS),
//! errors as `{"error","error_description","error_codes"}`; and IMDS
//! `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=` with `Metadata: true`.
//!
//! The vault listener also serves Azure Container Registry's token exchange (`POST
//! /oauth2/exchange` with an Entra ID token for Azure Resource Manager, answering an ACR
//! `refresh_token`; `POST /oauth2/token` turning it into a scoped `access_token`), following
//! ACR's AAD-OAuth reference.
//!
//! Three listeners: the vault and the login authority over HTTPS (a CA made here with rcgen,
//! for `localhost` and `127.0.0.1`), IMDS over plain HTTP as the real one. Tokens expire after
//! [`Options::token_lifetime`]; faults (403, 429 with `Retry-After`, 5xx) can be queued; every
//! operation is counted, so tests and benchmarks measure what reached the "cloud".
//! Deletes are soft (Key Vault's default since 2020): a deleted object answers 404, its name
//! cannot be reused (409 `ObjectIsDeletedButRecoverable`) until it is recovered
//! (`POST /deletedsecrets/{name}/recover`) or purged (`DELETE /deleted{secrets,certificates,keys}/{name}`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{DecodingKey, Validation};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use sha1::Digest;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Key Vault's default resource (the audience of its tokens).
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";
/// The audience of federated ServiceAccount tokens.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Lifetime of issued access tokens.
    pub token_lifetime: Duration,
    /// The resource the vault's challenge names and its tokens must be for.
    pub resource: String,
    /// The tenant named in the challenge.
    pub tenant: String,
    /// Page size cap of secret listings (Key Vault's is 25).
    pub max_page: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(3600),
            resource: VAULT_RESOURCE.into(),
            tenant: "tenant-1".into(),
            max_page: 25,
        }
    }
}

#[derive(Debug, Clone)]
struct Meta {
    version: String,
    enabled: bool,
    created: u64,
    updated: u64,
    exp: Option<i64>,
    nbf: Option<i64>,
    tags: BTreeMap<String, String>,
    content_type: Option<String>,
}

#[derive(Debug, Clone)]
enum Payload {
    Secret(String),
    Cert(Vec<u8>),
    Key(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Secret,
    Cert,
    Key,
}

impl Kind {
    fn segment(self) -> &'static str {
        match self {
            Kind::Secret => "secrets",
            Kind::Cert => "certificates",
            Kind::Key => "keys",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Cert => "certificate",
            Kind::Key => "key",
        }
    }
    fn not_found_code(self) -> &'static str {
        match self {
            Kind::Secret => "SecretNotFound",
            Kind::Cert => "CertificateNotFound",
            Kind::Key => "KeyNotFound",
        }
    }
}

/// How a registered application proves itself.
#[derive(Clone)]
enum AppCredential {
    Secret(String),
    Certificate {
        x5t: String,
        key: DecodingKey,
    },
    Federated {
        subject: String,
        issuer: Option<String>,
        jwks: Value,
    },
}

#[derive(Clone)]
struct App {
    tenant: String,
    credential: AppCredential,
}

struct Issued {
    resource: String,
    expires: Instant,
}

/// A queued failure for the next vault requests.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Only requests whose path contains this (empty: any).
    pub path_contains: String,
    /// The HTTP status to answer (403, 429, 500, 503, ...).
    pub status: u16,
    /// `Retry-After` seconds, for 429.
    pub retry_after: Option<u64>,
    /// How many requests it applies to.
    pub times: usize,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<(Kind, String), Vec<(Meta, Payload)>>,
    deleted: BTreeMap<(Kind, String), Vec<(Meta, Payload)>>,
    apps: HashMap<String, App>,
    managed: HashMap<String, ()>,
    tokens: HashMap<String, Issued>,
    faults: VecDeque<Fault>,
    counts: BTreeMap<String, u64>,
    assertions_seen: Vec<String>,
}

/// A running stand-in; stops when dropped.
pub struct AzureStandIn {
    /// The vault's URL (`https://localhost:<port>`).
    pub vault_url: String,
    /// The login authority (`https://127.0.0.1:<port>`), for `AZURE_AUTHORITY_HOST`.
    pub authority: String,
    /// IMDS's base URL (`http://127.0.0.1:<port>`), for `AZURE_POD_IDENTITY_AUTHORITY_HOST`.
    pub imds_host: String,
    /// The CA certificate (PEM) that signed the HTTPS listeners' certificate.
    pub ca_pem: String,
    options: Options,
    state: Arc<Mutex<State>>,
    _stop: watch::Sender<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Vault,
    Login,
    Imds,
}

struct Shared {
    state: Arc<Mutex<State>>,
    options: Options,
    vault_url: String,
    authority: String,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_version() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn serve(
    listener: TcpListener,
    role: Role,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => break,
            };
            let Ok((tcp, _)) = accepted else { continue };
            let shared = shared.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(&shared, role, req).await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                    }
                }
            });
        }
    });
}

impl AzureStandIn {
    /// Starts the three listeners on loopback ports.
    pub async fn start(options: Options) -> Self {
        let (ca_pem, config) = crate::pki::tls_server_config("azure-stand-in-ca");
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let bind = || async {
            TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .unwrap()
        };
        let (vault, login, imds) = (bind().await, bind().await, bind().await);
        let vault_url = format!("https://localhost:{}", vault.local_addr().unwrap().port());
        let authority = format!("https://127.0.0.1:{}", login.local_addr().unwrap().port());
        let imds_host = format!("http://127.0.0.1:{}", imds.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::new(Shared {
            state: state.clone(),
            options: options.clone(),
            vault_url: vault_url.clone(),
            authority: authority.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        serve(
            vault,
            Role::Vault,
            shared.clone(),
            Some(acceptor.clone()),
            stopped.clone(),
        );
        serve(
            login,
            Role::Login,
            shared.clone(),
            Some(acceptor),
            stopped.clone(),
        );
        serve(imds, Role::Imds, shared, None, stopped);
        Self {
            vault_url,
            authority,
            imds_host,
            ca_pem,
            options,
            state,
            _stop: stop,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.state.lock().unwrap();
        f(&mut s)
    }

    /// The tenant of this stand-in's challenge.
    pub fn tenant(&self) -> &str {
        &self.options.tenant
    }

    /// Stores a new version of secret `name`; returns the version id.
    pub fn set_secret(&self, name: &str, value: &str) -> String {
        self.set_secret_with(name, value, BTreeMap::new(), None)
    }

    /// Stores a new secret version with tags and a content type.
    pub fn set_secret_with(
        &self,
        name: &str,
        value: &str,
        tags: BTreeMap<String, String>,
        content_type: Option<&str>,
    ) -> String {
        let meta = Meta {
            version: new_version(),
            enabled: true,
            created: now_secs(),
            updated: now_secs(),
            exp: None,
            nbf: None,
            tags,
            content_type: content_type.map(str::to_string),
        };
        let version = meta.version.clone();
        self.with(|s| {
            s.objects
                .entry((Kind::Secret, name.into()))
                .or_default()
                .push((meta, Payload::Secret(value.into())))
        });
        version
    }

    /// Disables or enables the latest version of secret `name`.
    pub fn set_enabled(&self, name: &str, enabled: bool) {
        self.with(|s| {
            if let Some(v) = s
                .objects
                .get_mut(&(Kind::Secret, name.into()))
                .and_then(|v| v.last_mut())
            {
                v.0.enabled = enabled;
            }
        });
    }

    /// Sets expiry and not-before (Unix seconds) of the latest version of secret `name`.
    pub fn set_times(&self, name: &str, exp: Option<i64>, nbf: Option<i64>) {
        self.with(|s| {
            if let Some(v) = s
                .objects
                .get_mut(&(Kind::Secret, name.into()))
                .and_then(|v| v.last_mut())
            {
                v.0.exp = exp;
                v.0.nbf = nbf;
            }
        });
    }

    /// Stores certificate `name` (DER).
    pub fn set_certificate(&self, name: &str, der: &[u8], tags: BTreeMap<String, String>) {
        self.put(Kind::Cert, name, Payload::Cert(der.to_vec()), tags);
    }

    /// Stores key `name` (a public JWK without `kid`).
    pub fn set_key(&self, name: &str, jwk: Value, tags: BTreeMap<String, String>) {
        self.put(Kind::Key, name, Payload::Key(jwk), tags);
    }

    fn put(&self, kind: Kind, name: &str, payload: Payload, tags: BTreeMap<String, String>) {
        let meta = Meta {
            version: new_version(),
            enabled: true,
            created: now_secs(),
            updated: now_secs(),
            exp: None,
            nbf: None,
            tags,
            content_type: None,
        };
        self.with(|s| {
            s.objects
                .entry((kind, name.into()))
                .or_default()
                .push((meta, payload))
        });
    }

    /// The latest secret bundle of `name` as the vault would return it.
    pub fn secret(&self, name: &str) -> Option<Value> {
        let s = self.state.lock().unwrap();
        s.objects
            .get(&(Kind::Secret, name.into()))
            .and_then(|v| v.last())
            .map(|(m, p)| bundle(&self.vault_url, Kind::Secret, name, m, p))
    }

    /// The latest certificate bundle of `name`.
    pub fn certificate(&self, name: &str) -> Option<Value> {
        let s = self.state.lock().unwrap();
        s.objects
            .get(&(Kind::Cert, name.into()))
            .and_then(|v| v.last())
            .map(|(m, p)| bundle(&self.vault_url, Kind::Cert, name, m, p))
    }

    /// The latest key bundle of `name`.
    pub fn key(&self, name: &str) -> Option<Value> {
        let s = self.state.lock().unwrap();
        s.objects
            .get(&(Kind::Key, name.into()))
            .and_then(|v| v.last())
            .map(|(m, p)| bundle(&self.vault_url, Kind::Key, name, m, p))
    }

    /// Registers an application with a client secret.
    pub fn register_client_secret(&self, client_id: &str, secret: &str) {
        let app = App {
            tenant: self.options.tenant.clone(),
            credential: AppCredential::Secret(secret.into()),
        };
        self.with(|s| s.apps.insert(client_id.into(), app));
    }

    /// Registers an application with a certificate (PEM); assertions must be signed by its key.
    pub fn register_client_certificate(&self, client_id: &str, cert_pem: &str) {
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        let x5t = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha1::Sha1::digest(der.as_ref()));
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let spki = parsed.public_key();
        let key = DecodingKey::from_rsa_der(&spki.subject_public_key.data);
        let app = App {
            tenant: self.options.tenant.clone(),
            credential: AppCredential::Certificate { x5t, key },
        };
        self.with(|s| s.apps.insert(client_id.into(), app));
    }

    /// Registers an application with a federated credential: tokens for `subject` (e.g.
    /// `system:serviceaccount:ns:name`) signed by a key of `jwks`, issued by `issuer` if given.
    pub fn register_federated(
        &self,
        client_id: &str,
        subject: &str,
        issuer: Option<&str>,
        jwks: Value,
    ) {
        let app = App {
            tenant: self.options.tenant.clone(),
            credential: AppCredential::Federated {
                subject: subject.into(),
                issuer: issuer.map(str::to_string),
                jwks,
            },
        };
        self.with(|s| s.apps.insert(client_id.into(), app));
    }

    /// Lets IMDS issue tokens for a user-assigned identity (`Some(client id)`) or the
    /// system-assigned one (`None`).
    pub fn allow_managed_identity(&self, client_id: Option<&str>) {
        self.with(|s| s.managed.insert(client_id.unwrap_or("").into(), ()));
    }

    /// Queues a fault for the next matching vault requests.
    pub fn fault(&self, fault: Fault) {
        self.with(|s| s.faults.push_back(fault));
    }

    /// Makes every issued token invalid at once (as if revoked or expired).
    pub fn expire_tokens(&self) {
        self.with(|s| s.tokens.clear());
    }

    /// How often operation `op` was served (`GetSecret`, `GetSecrets`, `SetSecret`, …,
    /// `token:client_secret`, `token:client_certificate`, `token:federated`, `token:imds`,
    /// `challenge` for 401s).
    pub fn count(&self, op: &str) -> u64 {
        self.with(|s| s.counts.get(op).copied().unwrap_or(0))
    }

    /// Every operation count.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.with(|s| s.counts.clone())
    }

    /// Token exchanges of every kind.
    pub fn token_exchanges(&self) -> u64 {
        self.with(|s| {
            s.counts
                .iter()
                .filter(|(k, _)| k.starts_with("token:"))
                .map(|(_, v)| v)
                .sum()
        })
    }

    /// The ACR scope an issued ACR access token carries (`None`: not one we issued).
    pub fn acr_scope(&self, token: &str) -> Option<String> {
        self.with(|s| {
            s.tokens
                .get(token)
                .and_then(|i| i.resource.strip_prefix("acr:").map(str::to_string))
        })
    }

    /// Resets the counts.
    pub fn reset_counts(&self) {
        self.with(|s| s.counts.clear());
    }
}

fn attributes(m: &Meta) -> Value {
    let mut a = json!({
        "enabled": m.enabled,
        "created": m.created,
        "updated": m.updated,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    });
    if let Some(exp) = m.exp {
        a["exp"] = json!(exp);
    }
    if let Some(nbf) = m.nbf {
        a["nbf"] = json!(nbf);
    }
    a
}

fn bundle(vault: &str, kind: Kind, name: &str, m: &Meta, p: &Payload) -> Value {
    let id = format!("{vault}/{}/{name}/{}", kind.segment(), m.version);
    let mut b = match p {
        Payload::Secret(v) => json!({"value": v, "id": id}),
        Payload::Cert(der) => json!({
            "id": id,
            "kid": format!("{vault}/keys/{name}/{}", m.version),
            "sid": format!("{vault}/secrets/{name}/{}", m.version),
            "x5t": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der)),
            "cer": base64::engine::general_purpose::STANDARD.encode(der),
        }),
        Payload::Key(jwk) => {
            let mut k = jwk.clone();
            k["kid"] = json!(format!("{vault}/keys/{name}/{}", m.version));
            json!({"key": k})
        }
    };
    b["attributes"] = attributes(m);
    if !m.tags.is_empty() {
        b["tags"] = json!(m.tags);
    }
    if let Some(ct) = &m.content_type {
        b["contentType"] = json!(ct);
    }
    b
}

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn kv_error(status: u16, code: &str, message: &str, inner: Option<&str>) -> Response<Full<Bytes>> {
    let mut error = json!({"code": code, "message": message});
    if let Some(i) = inner {
        error["innererror"] = json!({"code": i});
    }
    respond(status, &json!({"error": error}))
}

fn aad_error(status: u16, error: &str, code: u32, description: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: 2026-01-01 00:00:00Z", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()),
            "error_codes": [code],
            "timestamp": "2026-01-01 00:00:00Z",
            "trace_id": uuid::Uuid::new_v4().to_string(),
            "correlation_id": uuid::Uuid::new_v4().to_string(),
        }),
    )
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn handle(shared: &Shared, role: Role, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match role {
        Role::Vault => vault(shared, req).await,
        Role::Login => login(shared, req).await,
        Role::Imds => imds(shared, req),
    }
}

fn bump(state: &mut State, op: &str) {
    *state.counts.entry(op.into()).or_default() += 1;
}

fn issue(state: &mut State, options: &Options, resource: &str) -> String {
    let token = format!("standin-{}", uuid::Uuid::new_v4().simple());
    state.tokens.insert(
        token.clone(),
        Issued {
            resource: resource.to_string(),
            expires: Instant::now() + options.token_lifetime,
        },
    );
    token
}

fn imds(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metadata/identity/oauth2/token" || req.method() != Method::GET {
        return respond(404, &json!({"error": "not_found"}));
    }
    if req.headers().get("metadata").and_then(|v| v.to_str().ok()) != Some("true") {
        return respond(
            400,
            &json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
        );
    }
    let q = query(&req);
    if q.get("api-version").map(String::as_str) != Some("2018-02-01") {
        return respond(
            400,
            &json!({"error": "invalid_request", "error_description": "Invalid or missing api-version"}),
        );
    }
    let Some(resource) = q.get("resource").filter(|r| !r.is_empty()) else {
        return respond(
            400,
            &json!({"error": "invalid_request", "error_description": "Required audience parameter not specified"}),
        );
    };
    let identity = q.get("client_id").cloned().unwrap_or_default();
    let mut state = shared.state.lock().unwrap();
    if !state.managed.contains_key(&identity) {
        return respond(
            400,
            &json!({"error": "invalid_request", "error_description": "Identity not found"}),
        );
    }
    bump(&mut state, "token:imds");
    let token = issue(&mut state, &shared.options, resource.trim_end_matches('/'));
    let life = shared.options.token_lifetime.as_secs();
    let now = now_secs();
    respond(
        200,
        &json!({
            "access_token": token,
            "client_id": if identity.is_empty() { "system-assigned" } else { identity.as_str() },
            "expires_in": life.to_string(),
            "expires_on": (now + life).to_string(),
            "ext_expires_in": life.to_string(),
            "not_before": now.to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}

/// Checks a client assertion against the app's certificate or federated credential.
fn check_assertion(
    app: &App,
    client_id: &str,
    assertion: &str,
    token_url: &str,
) -> Result<&'static str, (u32, String)> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| (50027, "JWT token is invalid or malformed.".to_string()))?;
    match &app.credential {
        AppCredential::Certificate { x5t, key } => {
            if header.x5t.as_deref() != Some(x5t.as_str()) {
                return Err((700027, "Client assertion contains an invalid signature. [Reason - The key was not found.]".into()));
            }
            let mut v = Validation::new(jsonwebtoken::Algorithm::RS256);
            v.set_audience(&[token_url]);
            v.set_issuer(&[client_id]);
            v.sub = Some(client_id.to_string());
            v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
            jsonwebtoken::decode::<Value>(assertion, key, &v).map_err(|e| {
                (
                    700027,
                    format!("Client assertion failed signature validation. ({e})"),
                )
            })?;
            Ok("token:client_certificate")
        }
        AppCredential::Federated {
            subject,
            issuer,
            jwks,
        } => {
            let set: jsonwebtoken::jwk::JwkSet =
                serde_json::from_value(jwks.clone()).map_err(|_| {
                    (
                        70021,
                        "No matching federated identity record found for presented assertion."
                            .to_string(),
                    )
                })?;
            let jwk = match &header.kid {
                Some(kid) => set.find(kid),
                None => set.keys.first(),
            }
            .ok_or((
                70021,
                "No matching federated identity record found for presented assertion.".to_string(),
            ))?;
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|_| (70021, "unusable issuer key".to_string()))?;
            let mut v = Validation::new(header.alg);
            v.set_audience(&[FEDERATED_AUDIENCE]);
            if let Some(i) = issuer {
                v.set_issuer(&[i]);
            }
            v.sub = Some(subject.clone());
            v.set_required_spec_claims(&["exp", "aud", "sub"]);
            jsonwebtoken::decode::<Value>(assertion, &key, &v).map_err(|e| {
                (
                    70021,
                    format!(
                        "No matching federated identity record found for presented assertion. ({e})"
                    ),
                )
            })?;
            Ok("token:federated")
        }
        AppCredential::Secret(_) => Err((
            700027,
            "Client assertion is not allowed for this application.".into(),
        )),
    }
}

async fn login(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if req.method() != Method::POST
        || segments.len() != 4
        || segments[1..] != ["oauth2", "v2.0", "token"]
    {
        return respond(404, &json!({"error": "not_found"}));
    }
    let tenant = segments[0].to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "client_credentials" {
        return aad_error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let client_id = get("client_id");
    let Some(resource) = get("scope")
        .strip_suffix("/.default")
        .map(|r| r.trim_end_matches('/').to_string())
    else {
        return aad_error(
            400,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
        );
    };
    let token_url = format!("{}{path}", shared.authority);
    let mut state = shared.state.lock().unwrap();
    let Some(app) = state.apps.get(client_id).cloned() else {
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    if app.tenant != tenant {
        return aad_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    let op = match (
        &app.credential,
        get("client_secret"),
        get("client_assertion_type"),
    ) {
        (AppCredential::Secret(s), given, "") => {
            if given.is_empty() || given != s {
                return aad_error(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                );
            }
            "token:client_secret"
        }
        (_, _, JWT_BEARER) => {
            let assertion = get("client_assertion").to_string();
            match check_assertion(&app, client_id, &assertion, &token_url) {
                Ok(op) => {
                    state.assertions_seen.push(assertion);
                    op
                }
                Err((code, msg)) => return aad_error(401, "invalid_client", code, &msg),
            }
        }
        _ => {
            return aad_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            );
        }
    };
    bump(&mut state, op);
    let token = issue(&mut state, &shared.options, &resource);
    let life = shared.options.token_lifetime.as_secs();
    respond(
        200,
        &json!({"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": token}),
    )
}

fn challenge(shared: &Shared, code: &str, message: &str) -> Response<Full<Bytes>> {
    let mut r = kv_error(401, "Unauthorized", &format!("{code}: {message}"), None);
    let value = format!(
        "Bearer authorization=\"{}/{}\", resource=\"{}\"",
        shared.authority, shared.options.tenant, shared.options.resource
    );
    r.headers_mut()
        .insert("www-authenticate", value.parse().unwrap());
    r
}

fn not_found(kind: Kind, name: &str) -> Response<Full<Bytes>> {
    kv_error(
        404,
        kind.not_found_code(),
        &format!(
            "A {} with (name/id) {name} was not found in this key vault. If you recently deleted this {} you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
            kind.noun(),
            kind.noun()
        ),
        None,
    )
}

async fn vault(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let q = query(&req);
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut state = shared.state.lock().unwrap();
    if path == "/oauth2/exchange" || path == "/oauth2/token" {
        return acr(shared, &mut state, &path, &body);
    }
    // Authentication first: no token, an unknown or expired one, or one for another resource.
    let valid = auth.as_deref().and_then(|t| state.tokens.get(t)).map(|i| {
        (
            i.expires > Instant::now(),
            i.resource == shared.options.resource,
        )
    });
    match valid {
        None => {
            bump(&mut state, "challenge");
            return challenge(
                shared,
                "AKV10000",
                "Request is missing a Bearer or PoP token.",
            );
        }
        Some((false, _)) => {
            bump(&mut state, "challenge");
            return challenge(shared, "AKV10013", "Token has expired.");
        }
        Some((true, false)) => {
            bump(&mut state, "challenge");
            return challenge(shared, "AKV10022", "Invalid audience.");
        }
        Some((true, true)) => {}
    }
    if q.get("api-version").is_none_or(|v| v.is_empty()) {
        return kv_error(
            400,
            "BadParameter",
            "The 'api-version' query parameter is missing.",
            None,
        );
    }
    if let Some(pos) = state
        .faults
        .iter()
        .position(|f| path.contains(&f.path_contains))
    {
        let fault = state.faults[pos].clone();
        if fault.times <= 1 {
            state.faults.remove(pos);
        } else {
            state.faults[pos].times -= 1;
        }
        bump(&mut state, &format!("fault:{}", fault.status));
        let mut r = match fault.status {
            403 => kv_error(
                403,
                "Forbidden",
                "The user, group or application 'appid=standin' does not have secrets get permission on key vault 'standin'.",
                Some("AccessDenied"),
            ),
            429 => kv_error(
                429,
                "Throttled",
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                None,
            ),
            s if s >= 500 => kv_error(
                s,
                "InternalServerError",
                "The service encountered an internal error.",
                None,
            ),
            s => kv_error(s, "BadRequest", "Injected failure.", None),
        };
        if let Some(secs) = fault.retry_after {
            r.headers_mut()
                .insert("retry-after", secs.to_string().parse().unwrap());
        }
        return r;
    }
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    if let Some(r) = deleted_objects(shared, &mut state, req_method_str(&method), &segments) {
        return r;
    }
    let kind = match segments.first().map(String::as_str) {
        Some("secrets") => Kind::Secret,
        Some("certificates") => Kind::Cert,
        Some("keys") => Kind::Key,
        _ => {
            return kv_error(
                404,
                "NotFound",
                "The requested resource does not exist.",
                None,
            );
        }
    };
    let vault_url = shared.vault_url.clone();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match (method, kind, segments.len()) {
        (Method::GET, Kind::Secret, 1) => {
            bump(&mut state, "GetSecrets");
            let max = q
                .get("maxresults")
                .and_then(|m| m.parse::<usize>().ok())
                .unwrap_or(shared.options.max_page)
                .clamp(1, shared.options.max_page);
            let skip = q
                .get("$skiptoken")
                .and_then(|s| s.parse::<usize>().ok())
                .unwrap_or(0);
            let all: Vec<Value> = state
                .objects
                .iter()
                .filter(|((k, _), _)| *k == Kind::Secret)
                .filter_map(|((_, name), versions)| {
                    let (m, _) = versions.last()?;
                    let mut item = json!({"id": format!("{vault_url}/secrets/{name}"), "attributes": attributes(m)});
                    if !m.tags.is_empty() {
                        item["tags"] = json!(m.tags);
                    }
                    if let Some(ct) = &m.content_type {
                        item["contentType"] = json!(ct);
                    }
                    Some(item)
                })
                .collect();
            let page: Vec<Value> = all.iter().skip(skip).take(max).cloned().collect();
            let next = (skip + max < all.len()).then(|| {
                format!(
                    "{vault_url}/secrets?api-version=7.4&$skiptoken={}&maxresults={max}",
                    skip + max
                )
            });
            respond(200, &json!({"value": page, "nextLink": next}))
        }
        (Method::GET, _, 2 | 3) => {
            let op = match kind {
                Kind::Secret => "GetSecret",
                Kind::Cert => "GetCertificate",
                Kind::Key => "GetKey",
            };
            bump(&mut state, op);
            let name = &segments[1];
            let Some(versions) = state.objects.get(&(kind, name.clone())) else {
                return not_found(kind, name);
            };
            let found = match segments.get(2) {
                Some(v) => versions.iter().find(|(m, _)| &m.version == v),
                None => versions.last(),
            };
            let Some((m, p)) = found else {
                return not_found(kind, &format!("{name}/{}", segments[2]));
            };
            if kind == Kind::Secret && !m.enabled {
                return kv_error(
                    403,
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                    Some("SecretDisabled"),
                );
            }
            respond(200, &bundle(&vault_url, kind, name, m, p))
        }
        (Method::PUT, _, 2) | (Method::POST, Kind::Cert, 3)
            if state.deleted.contains_key(&(kind, segments[1].clone())) =>
        {
            bump(&mut state, "conflict");
            kv_error(
                409,
                "Conflict",
                &format!(
                    "{} {} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the {} can only be recovered or purged.",
                    kind.noun(),
                    segments[1],
                    kind.noun()
                ),
                Some("ObjectIsDeletedButRecoverable"),
            )
        }
        (Method::PUT, Kind::Secret, 2) => {
            bump(&mut state, "SetSecret");
            let Some(value) = json_body.get("value").and_then(Value::as_str) else {
                return kv_error(400, "BadParameter", "Property 'value' is required.", None);
            };
            let meta = meta_from(&json_body);
            let payload = Payload::Secret(value.to_string());
            let b = bundle(&vault_url, kind, &segments[1], &meta, &payload);
            state
                .objects
                .entry((kind, segments[1].clone()))
                .or_default()
                .push((meta, payload));
            respond(200, &b)
        }
        (Method::PUT, Kind::Key, 2) => {
            bump(&mut state, "ImportKey");
            let Some(jwk) = json_body.get("key").filter(|k| k.is_object()) else {
                return kv_error(400, "BadParameter", "Property 'key' is required.", None);
            };
            let public = match jwk.get("kty").and_then(Value::as_str) {
                Some("RSA") if jwk.get("d").is_some() => {
                    json!({"kty": "RSA", "key_ops": ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"], "n": jwk["n"], "e": jwk["e"]})
                }
                Some("oct") => json!({"kty": "oct", "key_ops": []}),
                _ => {
                    return kv_error(
                        400,
                        "BadParameter",
                        "The specified JSON web key is invalid or not supported.",
                        None,
                    );
                }
            };
            let meta = meta_from(&json_body);
            let payload = Payload::Key(public);
            let b = bundle(&vault_url, kind, &segments[1], &meta, &payload);
            state
                .objects
                .entry((kind, segments[1].clone()))
                .or_default()
                .push((meta, payload));
            respond(200, &b)
        }
        (Method::POST, Kind::Cert, 3) if segments[2] == "import" => {
            bump(&mut state, "ImportCertificate");
            let raw = json_body
                .get("value")
                .and_then(Value::as_str)
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok());
            let Some(der) = raw.as_deref().and_then(import_certificate) else {
                return kv_error(
                    400,
                    "BadParameter",
                    "The specified PEM X.509 certificate content is in an unexpected format. Please check if certificate is in valid PEM format or upload a PFX with a private key.",
                    None,
                );
            };
            let meta = meta_from(&json_body);
            let payload = Payload::Cert(der);
            let b = bundle(&vault_url, kind, &segments[1], &meta, &payload);
            state
                .objects
                .entry((kind, segments[1].clone()))
                .or_default()
                .push((meta, payload));
            respond(200, &b)
        }
        (Method::DELETE, _, 2) => {
            let op = match kind {
                Kind::Secret => "DeleteSecret",
                Kind::Cert => "DeleteCertificate",
                Kind::Key => "DeleteKey",
            };
            bump(&mut state, op);
            let name = segments[1].clone();
            let Some(versions) = state.objects.remove(&(kind, name.clone())) else {
                return not_found(kind, &name);
            };
            let (m, p) = versions.last().cloned().unwrap();
            state.deleted.insert((kind, name.clone()), versions);
            let mut b = bundle(&vault_url, kind, &name, &m, &p);
            if let Some(o) = b.as_object_mut() {
                o.remove("value");
            }
            b["recoveryId"] = json!(format!("{vault_url}/deleted{}/{name}", kind.segment()));
            b["deletedDate"] = json!(now_secs());
            b["scheduledPurgeDate"] = json!(now_secs() + 90 * 86400);
            respond(200, &b)
        }
        _ => kv_error(
            405,
            "MethodNotAllowed",
            "The requested method is not allowed.",
            None,
        ),
    }
}

/// The Azure Resource Manager audiences an ACR exchange accepts.
const ARM_RESOURCES: [&str; 3] = [
    "https://management.azure.com",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
];

fn acr(shared: &Shared, state: &mut State, path: &str, body: &[u8]) -> Response<Full<Bytes>> {
    let form: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let host = shared.vault_url.trim_start_matches("https://");
    if get("service") != host {
        return respond(
            400,
            &json!({"errors": [{"code": "UNSUPPORTED", "message": "invalid service"}]}),
        );
    }
    if path == "/oauth2/exchange" {
        let issued = state.tokens.get(get("access_token"));
        let ok = get("grant_type") == "access_token"
            && issued.is_some_and(|i| {
                i.expires > Instant::now() && ARM_RESOURCES.contains(&i.resource.as_str())
            });
        if !ok {
            return respond(
                401,
                &json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}),
            );
        }
        bump(state, "acr:exchange");
        let refresh = format!("acr-refresh-{}", uuid::Uuid::new_v4().simple());
        state.tokens.insert(
            refresh.clone(),
            Issued {
                resource: "acr:refresh".into(),
                expires: Instant::now() + shared.options.token_lifetime,
            },
        );
        return respond(200, &json!({"refresh_token": refresh}));
    }
    let valid = state
        .tokens
        .get(get("refresh_token"))
        .is_some_and(|i| i.resource == "acr:refresh" && i.expires > Instant::now());
    if get("grant_type") != "refresh_token" || !valid || get("scope").is_empty() {
        return respond(
            401,
            &json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}),
        );
    }
    bump(state, "acr:token");
    let access = format!("acr-access-{}", uuid::Uuid::new_v4().simple());
    state.tokens.insert(
        access.clone(),
        Issued {
            resource: format!("acr:{}", get("scope")),
            expires: Instant::now() + shared.options.token_lifetime,
        },
    );
    respond(200, &json!({"access_token": access}))
}

fn req_method_str(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// `deletedsecrets`, `deletedcertificates`, `deletedkeys`: get, recover (secrets), purge.
fn deleted_objects(
    shared: &Shared,
    state: &mut State,
    method: &str,
    segments: &[String],
) -> Option<Response<Full<Bytes>>> {
    let kind = match segments.first().map(String::as_str)? {
        "deletedsecrets" => Kind::Secret,
        "deletedcertificates" => Kind::Cert,
        "deletedkeys" => Kind::Key,
        _ => return None,
    };
    let name = segments.get(1)?.clone();
    let key = (kind, name.clone());
    Some(match (method, segments.len()) {
        ("GET", 2) => match state.deleted.get(&key).and_then(|v| v.last()) {
            Some((m, p)) => {
                let mut b = bundle(&shared.vault_url, kind, &name, m, p);
                if let Some(o) = b.as_object_mut() {
                    o.remove("value");
                }
                respond(200, &b)
            }
            None => not_found(kind, &name),
        },
        ("DELETE", 2) => {
            bump(state, "Purge");
            match state.deleted.remove(&key) {
                Some(_) => Response::builder()
                    .status(204)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
                None => not_found(kind, &name),
            }
        }
        ("POST", 3) if segments[2] == "recover" && kind == Kind::Secret => {
            bump(state, "RecoverSecret");
            match state.deleted.remove(&key) {
                Some(versions) => {
                    let (m, p) = versions.last().cloned().unwrap();
                    state.objects.insert(key, versions);
                    let mut b = bundle(&shared.vault_url, kind, &name, &m, &p);
                    if let Some(o) = b.as_object_mut() {
                        o.remove("value");
                    }
                    respond(200, &b)
                }
                None => not_found(kind, &name),
            }
        }
        _ => kv_error(
            405,
            "MethodNotAllowed",
            "The requested method is not allowed.",
            None,
        ),
    })
}

/// The certificate of an import: PEM with a private key, or PKCS#12 (no password).
fn import_certificate(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.starts_with(b"-----") {
        PrivateKeyDer::from_pem_slice(raw).ok()?;
        return CertificateDer::from_pem_slice(raw)
            .ok()
            .map(|c| c.as_ref().to_vec());
    }
    let store =
        p12_keystore::KeyStore::from_pkcs12(raw, "", p12_keystore::Pkcs12ImportPolicy::Relaxed)
            .ok()?;
    let (_, chain) = store.private_key_chain()?;
    chain.certs().first().map(|c| c.as_der().to_vec())
}

fn meta_from(body: &Value) -> Meta {
    let attrs = body.get("attributes").cloned().unwrap_or(Value::Null);
    Meta {
        version: new_version(),
        enabled: attrs
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        created: now_secs(),
        updated: now_secs(),
        exp: attrs.get("exp").and_then(Value::as_i64),
        nbf: attrs.get("nbf").and_then(Value::as_i64),
        tags: body
            .get("tags")
            .and_then(Value::as_object)
            .map(|t| {
                t.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
        content_type: body
            .get("contentType")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

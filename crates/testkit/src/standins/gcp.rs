//! A stand-in for Google Cloud Secret Manager (REST v1) and Google's OAuth 2.0 token endpoints (service-account JWT bearer grant, STS token exchange, IAM Credentials generateAccessToken, the metadata server token), since no emulator installs here.
//!
//! Written from the published references, not from the provider:
//! - Secret Manager REST v1 (`https://secretmanager.googleapis.com/v1/...`): `projects.secrets`
//!   `list` (`filter`, `pageSize`, `pageToken` → `secrets`, `nextPageToken`, `totalSize`),
//!   `create` (`secretId` query, a `Secret` body with `replication` for global secrets and
//!   none for regional ones), `get`, `patch` (`updateMask`), `delete` (`etag`), `addVersion`
//!   (`payload.data` base64, optional `payload.dataCrc32c` checked), `versions.access`
//!   (`{name, payload:{data, dataCrc32c}}`, the int64 CRC as a JSON string as proto3 JSON
//!   writes it), `versions.list` (`filter=state:ENABLED`); the same under
//!   `projects/{p}/locations/{l}/...` for regional secrets. Resource names in answers carry
//!   the project number, as Google's do. Accessing a disabled or destroyed version is
//!   `FAILED_PRECONDITION` "... is in DISABLED state." Errors are Google's JSON error body
//!   `{"error":{"code","message","status"}}`; 429 `RESOURCE_EXHAUSTED` carries `Retry-After`.
//! - OAuth 2.0 for service accounts: `POST {token_uri}` with
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<RS256 JWT>`; the JWT
//!   (header `kid` = `private_key_id`; claims `iss` = `client_email`, `scope`, `aud` =
//!   `token_uri`, `iat`, `exp` ≤ iat + 1h) is verified against the key this stand-in issued.
//!   Answers `{access_token, expires_in, token_type}`; failures `{error, error_description}`.
//! - STS `POST /v1/token` (RFC 8693 token exchange): the subject token must be a JWT signed by a
//!   trusted Kubernetes issuer (its JWKS given to [`GcpStandIn::trust_kubernetes`]) with the
//!   expected audience, and the `audience` parameter one that was registered.
//! - IAM Credentials `POST /v1/projects/-/serviceAccounts/{email}:generateAccessToken`
//!   (`{scope, lifetime}` → `{accessToken, expireTime}`), bearer = an STS token.
//! - Metadata server `GET /computeMetadata/v1/instance/service-accounts/default/token` with
//!   `Metadata-Flavor: Google`, and plain values (`project/project-id`,
//!   `instance/attributes/cluster-name`, ...) set by the test.
//!
//! Every access token it issues expires after [`GcpStandIn::set_token_lifetime`] (1 h unless
//! set), and Secret Manager answers 401 `UNAUTHENTICATED` to expired or unknown tokens.
//! Counters of every method (and of accesses per secret) let tests and benchmarks count calls
//! server-side.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

/// The test project's id.
pub const PROJECT: &str = "strongroom-test";
/// The test project's number (what Google puts into resource names).
pub const PROJECT_NUMBER: &str = "123456789012";
/// The service account whose key [`GcpStandIn::service_account_key`] issues.
pub const SA_EMAIL: &str = "eso-reader@strongroom-test.iam.gserviceaccount.com";
/// The scope Google's libraries ask for.
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const KEY_ID: &str = "0f3c1d2e4b5a69788796a5b4c3d2e1f000112233";
const PRIVATE_KEY: &str = include_str!("gcp_keys/test-sa-key.pem");
const PUBLIC_KEY: &str = include_str!("gcp_keys/test-sa-key.pub.pem");

#[derive(Clone)]
struct Version {
    data: Vec<u8>,
    state: &'static str,
    created: u64,
}

#[derive(Clone, Default)]
struct StoredSecret {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    versions: Vec<Version>,
    created: u64,
    etag_n: u64,
}

struct Issued {
    principal: String,
    expires: Instant,
}

#[derive(Default)]
struct State {
    /// By `(location or "", secret id)`.
    secrets: BTreeMap<(String, String), StoredSecret>,
    tokens: BTreeMap<String, Issued>,
    token_lifetime: Option<Duration>,
    max_page_size: Option<usize>,
    counts: BTreeMap<String, usize>,
    accesses: BTreeMap<String, usize>,
    failures: VecDeque<(u16, Option<u64>)>,
    denied: Vec<String>,
    corrupt_crc: Vec<String>,
    kubernetes_jwks: Option<Value>,
    /// STS `audience` parameter → the audience the subject token must carry.
    sts_audiences: BTreeMap<String, String>,
    /// Subject tokens STS accepted: `(sub, aud)`.
    exchanged_subjects: Vec<(String, String)>,
    next_token: u64,
    clock: u64,
    /// Metadata server values by path below `/computeMetadata/v1/`.
    metadata: BTreeMap<String, String>,
    hosts: Vec<String>,
}

/// The running stand-in (its own thread and runtime, so blocking tests do not stall it).
pub struct GcpStandIn {
    /// `http://127.0.0.1:PORT`: Secret Manager, token, STS, IAM and metadata endpoints alike.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl GcpStandIn {
    /// Starts on a free loopback port.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let addr: SocketAddr = crate::background::serve_on_own_thread(move |tx| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            state,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// The JSON key of [`SA_EMAIL`] as the IAM console downloads it, with `token_uri` here.
    pub fn service_account_key(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": KEY_ID,
            "private_key": PRIVATE_KEY,
            "client_email": SA_EMAIL,
            "client_id": "104857600000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{}/token", self.url),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/eso-reader"
        })
        .to_string()
    }

    /// How long issued access tokens live.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.with(|s| s.token_lifetime = Some(lifetime));
    }

    /// At most this many secrets per list page (the server decides, as the reference allows).
    pub fn set_max_page_size(&self, n: usize) {
        self.with(|s| s.max_page_size = Some(n));
    }

    /// Trusts ServiceAccount tokens signed by a key of `jwks` (a Kubernetes issuer's
    /// `/openid/v1/jwks`) in STS exchanges.
    pub fn trust_kubernetes(&self, jwks: Value) {
        self.with(|s| s.kubernetes_jwks = Some(jwks));
    }

    /// Serves `value` at metadata server path `/computeMetadata/v1/{path}` (e.g.
    /// `project/project-id`, `instance/attributes/cluster-name`).
    pub fn set_metadata_value(&self, path: &str, value: &str) {
        self.with(|s| s.metadata.insert(path.to_string(), value.to_string()));
    }

    /// Trusts the ServiceAccount tokens of the cluster behind `client` (its
    /// `/openid/v1/jwks`), as a GCP workload identity pool trusts a cluster's issuer.
    pub async fn trust_cluster(&self, client: &kube::Client) {
        let req = hyper::Request::get("/openid/v1/jwks")
            .body(Vec::new())
            .unwrap();
        let text = client.request_text(req).await.unwrap();
        self.trust_kubernetes(serde_json::from_str(&text).unwrap());
    }

    /// Accepts STS exchanges with `audience` whose subject token carries `token_audience`.
    pub fn accept_sts_audience(&self, audience: &str, token_audience: &str) {
        self.with(|s| {
            s.sts_audiences
                .insert(audience.to_string(), token_audience.to_string())
        });
    }

    /// The subject tokens STS exchanged: `(sub, aud)`.
    pub fn exchanged_subjects(&self) -> Vec<(String, String)> {
        self.with(|s| s.exchanged_subjects.clone())
    }

    /// Creates (or adds a version to) secret `id` (global when `location` is `None`).
    pub fn put(&self, location: Option<&str>, id: &str, value: &[u8]) {
        self.with(|s| {
            s.clock += 1;
            let clock = s.clock;
            let secret = s
                .secrets
                .entry((location.unwrap_or_default().to_string(), id.to_string()))
                .or_insert_with(|| StoredSecret {
                    created: clock,
                    ..StoredSecret::default()
                });
            secret.versions.push(Version {
                data: value.to_vec(),
                state: "ENABLED",
                created: clock,
            });
        });
    }

    /// Sets labels and annotations of an existing secret.
    pub fn set_metadata(
        &self,
        location: Option<&str>,
        id: &str,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) {
        self.with(|s| {
            let secret = s
                .secrets
                .get_mut(&(location.unwrap_or_default().to_string(), id.to_string()))
                .unwrap();
            secret.labels = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            secret.annotations = annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        });
    }

    /// Sets the state (`ENABLED`, `DISABLED`, `DESTROYED`) of version `n` (1-based).
    pub fn set_version_state(&self, location: Option<&str>, id: &str, n: usize, state: &str) {
        let state: &'static str = match state {
            "ENABLED" => "ENABLED",
            "DISABLED" => "DISABLED",
            _ => "DESTROYED",
        };
        self.with(|s| {
            let secret = s
                .secrets
                .get_mut(&(location.unwrap_or_default().to_string(), id.to_string()))
                .unwrap();
            let v = &mut secret.versions[n - 1];
            v.state = state;
            if state == "DESTROYED" {
                v.data.clear();
            }
        });
    }

    /// The payload of every version of a secret, oldest first (`None` if it does not exist).
    pub fn versions(&self, location: Option<&str>, id: &str) -> Option<Vec<Vec<u8>>> {
        self.with(|s| {
            s.secrets
                .get(&(location.unwrap_or_default().to_string(), id.to_string()))
                .map(|sec| sec.versions.iter().map(|v| v.data.clone()).collect())
        })
    }

    /// The labels of a secret.
    pub fn labels(&self, location: Option<&str>, id: &str) -> Option<BTreeMap<String, String>> {
        self.with(|s| {
            s.secrets
                .get(&(location.unwrap_or_default().to_string(), id.to_string()))
                .map(|sec| sec.labels.clone())
        })
    }

    /// Makes the next `n` Secret Manager calls fail with HTTP `status` (and `Retry-After`
    /// seconds for 429).
    pub fn fail_next(&self, n: usize, status: u16, retry_after: Option<u64>) {
        self.with(|s| {
            for _ in 0..n {
                s.failures.push_back((status, retry_after));
            }
        });
    }

    /// Answers 403 `PERMISSION_DENIED` for secret `id`.
    pub fn deny(&self, id: &str) {
        self.with(|s| s.denied.push(id.to_string()));
    }

    /// Answers accesses of secret `id` with a wrong `dataCrc32c`.
    pub fn corrupt_crc(&self, id: &str) {
        self.with(|s| s.corrupt_crc.push(id.to_string()));
    }

    /// Revokes every access token issued so far (Secret Manager answers 401 to them).
    pub fn revoke_tokens(&self) {
        self.with(|s| s.tokens.clear());
    }

    /// Calls per method name (`AccessSecretVersion`, `ListSecrets`, `GetSecret`,
    /// `CreateSecret`, `UpdateSecret`, `AddSecretVersion`, `DeleteSecret`,
    /// `ListSecretVersions`, `Token` (JWT bearer), `StsToken`, `GenerateAccessToken`,
    /// `MetadataToken`, `Unauthenticated`).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.with(|s| s.counts.clone())
    }

    /// Calls of one method.
    pub fn count(&self, method: &str) -> usize {
        self.with(|s| s.counts.get(method).copied().unwrap_or(0))
    }

    /// `AccessSecretVersion` calls per secret id.
    pub fn accesses(&self) -> BTreeMap<String, usize> {
        self.with(|s| s.accesses.clone())
    }

    /// The token exchanges of every kind.
    pub fn token_exchanges(&self) -> usize {
        self.with(|s| {
            ["Token", "StsToken", "GenerateAccessToken", "MetadataToken"]
                .iter()
                .map(|m| s.counts.get(*m).copied().unwrap_or(0))
                .sum()
        })
    }

    /// Forgets the counters.
    pub fn reset_counts(&self) {
        self.with(|s| {
            s.counts.clear();
            s.accesses.clear();
        });
    }

    /// The `Host` headers Secret Manager calls came with.
    pub fn hosts(&self) -> Vec<String> {
        self.with(|s| s.hosts.clone())
    }
}

type Answer = Response<Full<Bytes>>;

fn json_answer(status: StatusCode, body: &Value) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=UTF-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        503 => "UNAVAILABLE",
        _ => "UNKNOWN",
    }
}

/// Google's JSON error body.
fn google_error(code: u16, status: &str, message: &str) -> Answer {
    json_answer(
        StatusCode::from_u16(code).unwrap(),
        &json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

fn oauth_error(error: &str, description: &str) -> Answer {
    json_answer(
        StatusCode::BAD_REQUEST,
        &json!({"error": error, "error_description": description}),
    )
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// An RFC 3339 time for a logical clock tick (ordered like the ticks).
fn timestamp(tick: u64) -> String {
    let secs = 1_700_000_000 + tick;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // 2023-11-14 is day 19675; good enough for ordering within a test.
    format!(
        "2023-11-{:02}T{:02}:{:02}:{:02}.000000Z",
        14 + (days - 19_675).min(15),
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn crc32c_text(data: &[u8]) -> String {
    crc32c::crc32c(data).to_string()
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    form(req.uri().query().unwrap_or_default().as_bytes())
}

async fn handle(state: &Arc<Mutex<State>>, req: Request<Incoming>) -> Answer {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let q = query(&req);
    let host = req
        .headers()
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::to_string);
    let metadata_flavor = req
        .headers()
        .get("metadata-flavor")
        .is_some_and(|v| v == "Google");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut s = state.lock().unwrap();
    if method == Method::POST && path == "/token" {
        return jwt_bearer(&mut s, &body);
    }
    if method == Method::POST && path == "/v1/token" {
        return sts(&mut s, &body);
    }
    if method == Method::GET
        && path == "/computeMetadata/v1/instance/service-accounts/default/token"
    {
        bump(&mut s, "MetadataToken");
        if !metadata_flavor {
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Missing Metadata-Flavor:Google header.",
            );
        }
        let (token, lifetime) = issue(&mut s, "metadata:default");
        return json_answer(
            StatusCode::OK,
            &json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}),
        );
    }
    if method == Method::GET
        && let Some(item) = path.strip_prefix("/computeMetadata/v1/")
    {
        bump(&mut s, "MetadataValue");
        if !metadata_flavor {
            return google_error(
                403,
                "PERMISSION_DENIED",
                "Missing Metadata-Flavor:Google header.",
            );
        }
        return match s.metadata.get(item) {
            Some(v) => Response::builder()
                .header("content-type", "application/text")
                .body(Full::new(Bytes::from(v.clone())))
                .unwrap(),
            None => google_error(404, "NOT_FOUND", "Not Found"),
        };
    }
    if let Some(rest) = path.strip_prefix("/v1/projects/-/serviceAccounts/")
        && let Some(email) = rest.strip_suffix(":generateAccessToken")
    {
        return generate_access_token(&mut s, bearer.as_deref(), email, &body);
    }
    let Some(rest) = path.strip_prefix("/v1/projects/") else {
        return google_error(404, "NOT_FOUND", &format!("Unknown path {path}"));
    };
    s.hosts.push(host);
    secret_manager(&mut s, &method, rest, &q, bearer.as_deref(), &body)
}

fn bump(s: &mut State, method: &str) {
    *s.counts.entry(method.to_string()).or_default() += 1;
}

fn issue(s: &mut State, principal: &str) -> (String, u64) {
    let lifetime = s.token_lifetime.unwrap_or(Duration::from_secs(3600));
    s.next_token += 1;
    let token = format!("ya29.standin-{}-{}", s.next_token, now_unix());
    s.tokens.insert(
        token.clone(),
        Issued {
            principal: principal.to_string(),
            expires: Instant::now() + lifetime,
        },
    );
    (token, lifetime.as_secs().max(1))
}

#[derive(serde::Deserialize)]
struct AssertionClaims {
    iss: String,
    scope: Option<String>,
    aud: String,
    iat: u64,
    exp: u64,
}

fn jwt_bearer(s: &mut State, body: &[u8]) -> Answer {
    bump(s, "Token");
    let f = form(body);
    if f.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error("unsupported_grant_type", "Invalid grant_type.");
    }
    let Some(assertion) = f.get("assertion") else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(h) => h,
        Err(_) => return oauth_error("invalid_grant", "Invalid JWT: malformed header."),
    };
    if header.alg != jsonwebtoken::Algorithm::RS256 || header.kid.as_deref() != Some(KEY_ID) {
        return oauth_error("invalid_grant", "Invalid JWT Signature.");
    }
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let claims = match jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) {
        Ok(d) => d.claims,
        Err(e) => return oauth_error("invalid_grant", &format!("Invalid JWT: {e}")),
    };
    if claims.iss != SA_EMAIL {
        return oauth_error("invalid_grant", "Invalid JWT: unknown issuer.");
    }
    if !claims.aud.ends_with("/token") {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: audience is not the token URI.",
        );
    }
    if claims.exp <= claims.iat || claims.exp - claims.iat > 3600 {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.",
        );
    }
    if !claims
        .scope
        .unwrap_or_default()
        .split(' ')
        .any(|sc| sc == CLOUD_PLATFORM)
    {
        return oauth_error(
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    }
    let (token, lifetime) = issue(s, SA_EMAIL);
    json_answer(
        StatusCode::OK,
        &json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}),
    )
}

#[derive(serde::Deserialize)]
struct KubeClaims {
    sub: String,
    aud: Value,
}

fn sts(s: &mut State, body: &[u8]) -> Answer {
    bump(s, "StsToken");
    // STS takes form or JSON bodies.
    let f: BTreeMap<String, String> = match serde_json::from_slice::<BTreeMap<String, Value>>(body)
    {
        Ok(m) => m
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect(),
        Err(_) => form(body),
    };
    let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
        return oauth_error("unsupported_grant_type", "Invalid grant_type.");
    }
    if get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token" {
        return oauth_error("invalid_request", "Invalid requested_token_type.");
    }
    if get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" {
        return oauth_error("invalid_request", "Invalid subject_token_type.");
    }
    let Some(expected_aud) = s.sts_audiences.get(get("audience")).cloned() else {
        return oauth_error(
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        );
    };
    let Some(jwks) = s.kubernetes_jwks.clone() else {
        return oauth_error("invalid_grant", "No trusted identity provider.");
    };
    let subject = get("subject_token");
    let Ok(header) = jsonwebtoken::decode_header(subject) else {
        return oauth_error("invalid_grant", "The subject token is not a JWT.");
    };
    let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
    let Some(jwk) = keys
        .iter()
        .find(|k| header.kid.is_none() || k["kid"].as_str() == header.kid.as_deref())
        .and_then(|k| serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()).ok())
    else {
        return oauth_error("invalid_grant", "The subject token's key is unknown.");
    };
    let Ok(key) = jsonwebtoken::DecodingKey::from_jwk(&jwk) else {
        return oauth_error("invalid_grant", "The subject token's key is unusable.");
    };
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[&expected_aud]);
    let claims = match jsonwebtoken::decode::<KubeClaims>(subject, &key, &validation) {
        Ok(d) => d.claims,
        Err(e) => {
            return oauth_error(
                "invalid_grant",
                &format!("The subject token is invalid: {e}"),
            );
        }
    };
    s.exchanged_subjects
        .push((claims.sub.clone(), claims.aud.to_string()));
    let (token, lifetime) = issue(s, &format!("principal://{}", claims.sub));
    json_answer(
        StatusCode::OK,
        &json!({
            "access_token": token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": lifetime,
        }),
    )
}

#[allow(clippy::result_large_err)]
fn authenticated(s: &mut State, bearer: Option<&str>) -> Result<String, Answer> {
    let valid = bearer
        .and_then(|t| s.tokens.get(t))
        .filter(|i| i.expires > Instant::now())
        .map(|i| i.principal.clone());
    valid.ok_or_else(|| {
        bump(s, "Unauthenticated");
        google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        )
    })
}

fn generate_access_token(s: &mut State, bearer: Option<&str>, email: &str, body: &[u8]) -> Answer {
    bump(s, "GenerateAccessToken");
    let caller = match authenticated(s, bearer) {
        Ok(p) => p,
        Err(a) => return a,
    };
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
    };
    if !req["scope"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == CLOUD_PLATFORM))
    {
        return google_error(400, "INVALID_ARGUMENT", "Scope required.");
    }
    if !caller.starts_with("principal://") {
        return google_error(
            403,
            "PERMISSION_DENIED",
            "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
        );
    }
    let (token, lifetime) = issue(s, email);
    let expire = SystemTime::now() + Duration::from_secs(lifetime);
    json_answer(
        StatusCode::OK,
        &json!({"accessToken": token, "expireTime": rfc3339(expire)}),
    )
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The parts of a Secret Manager path after `/v1/projects/`.
struct Target {
    location: String,
    secret: Option<String>,
    verb: Option<String>,
    version: Option<String>,
    versions_collection: bool,
}

fn parse_target(rest: &str) -> Option<Target> {
    let parts: Vec<&str> = rest.split('/').collect();
    let project = parts.first()?;
    if *project != PROJECT && *project != PROJECT_NUMBER {
        return None;
    }
    let (location, tail) = match parts.get(1) {
        Some(&"locations") => (parts.get(2)?.to_string(), &parts[3..]),
        _ => (String::new(), &parts[1..]),
    };
    let (head, verb) = match tail.last() {
        Some(last) if last.contains(':') => {
            let (a, b) = last.split_once(':')?;
            let mut t: Vec<&str> = tail.to_vec();
            let n = t.len();
            t[n - 1] = a;
            (
                t.into_iter().map(str::to_string).collect::<Vec<_>>(),
                Some(b.to_string()),
            )
        }
        _ => (tail.iter().map(|p| p.to_string()).collect(), None),
    };
    if head.first().map(String::as_str) != Some("secrets") {
        return None;
    }
    Some(Target {
        location,
        secret: head.get(1).cloned(),
        versions_collection: head.get(2).map(String::as_str) == Some("versions")
            && head.get(3).is_none(),
        version: head.get(3).cloned(),
        verb,
    })
}

fn parent_name(location: &str) -> String {
    if location.is_empty() {
        format!("projects/{PROJECT_NUMBER}")
    } else {
        format!("projects/{PROJECT_NUMBER}/locations/{location}")
    }
}

fn secret_json(location: &str, id: &str, sec: &StoredSecret) -> Value {
    let mut v = json!({
        "name": format!("{}/secrets/{id}", parent_name(location)),
        "createTime": timestamp(sec.created),
        "etag": format!("\"{:x}{}\"", sec.created, sec.etag_n),
    });
    if location.is_empty() {
        v["replication"] = json!({"automatic": {}});
    }
    if !sec.labels.is_empty() {
        v["labels"] = json!(sec.labels);
    }
    if !sec.annotations.is_empty() {
        v["annotations"] = json!(sec.annotations);
    }
    v
}

fn version_json(location: &str, id: &str, n: usize, v: &Version) -> Value {
    let mut out = json!({
        "name": format!("{}/secrets/{id}/versions/{n}", parent_name(location)),
        "createTime": timestamp(v.created),
        "state": v.state,
        "etag": format!("\"{:x}\"", v.created),
    });
    if v.state == "DESTROYED" {
        out["destroyTime"] = json!(timestamp(v.created + 1));
    }
    out
}

fn not_found_secret(location: &str, id: &str) -> Answer {
    google_error(
        404,
        "NOT_FOUND",
        &format!(
            "Secret [{}/secrets/{id}] not found or has no versions.",
            parent_name(location)
        ),
    )
}

/// Whether a secret satisfies a list filter (terms joined by spaces or `AND`).
fn matches_filter(id: &str, sec: &StoredSecret, filter: &str) -> Result<bool, String> {
    for term in filter.split_whitespace().filter(|t| *t != "AND") {
        let ok = if let Some(rest) = term.strip_prefix("labels.") {
            let (k, v, has) = match rest.split_once('=') {
                Some((k, v)) => (k, v, false),
                None => match rest.split_once(':') {
                    Some((k, v)) => (k, v, true),
                    None => return Err(format!("Invalid filter term {term}")),
                },
            };
            let v = v.trim_matches('"');
            match sec.labels.get(k) {
                Some(actual) if has => v == "*" || actual.contains(v),
                Some(actual) => actual == v,
                None => false,
            }
        } else if let Some(v) = term.strip_prefix("name:") {
            id.contains(v.trim_matches('"'))
        } else if let Some(v) = term.strip_prefix("name=") {
            id == v.trim_matches('"')
        } else {
            return Err(format!("Invalid filter term {term}"));
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn page_token(offset: usize) -> String {
    B64.encode(format!("offset:{offset}"))
}

fn page_offset(token: &str) -> Option<usize> {
    let text = String::from_utf8(B64.decode(token).ok()?).ok()?;
    text.strip_prefix("offset:")?.parse().ok()
}

fn secret_manager(
    s: &mut State,
    method: &Method,
    rest: &str,
    q: &BTreeMap<String, String>,
    bearer: Option<&str>,
    body: &[u8],
) -> Answer {
    let Some(t) = parse_target(rest) else {
        return google_error(
            404,
            "NOT_FOUND",
            &format!("Unknown resource projects/{rest}"),
        );
    };
    let call = match (
        method,
        &t.secret,
        &t.verb,
        &t.version,
        t.versions_collection,
    ) {
        (&Method::GET, None, None, _, _) => "ListSecrets",
        (&Method::POST, None, None, _, _) => "CreateSecret",
        (&Method::GET, Some(_), None, None, false) => "GetSecret",
        (&Method::PATCH, Some(_), None, None, false) => "UpdateSecret",
        (&Method::DELETE, Some(_), None, None, false) => "DeleteSecret",
        (&Method::POST, Some(_), Some(v), None, false) if v == "addVersion" => "AddSecretVersion",
        (&Method::GET, Some(_), Some(v), Some(_), _) if v == "access" => "AccessSecretVersion",
        (&Method::GET, Some(_), None, None, true) => "ListSecretVersions",
        _ => {
            return google_error(
                404,
                "NOT_FOUND",
                &format!("Unknown method on projects/{rest}"),
            );
        }
    };
    bump(s, call);
    if let Err(a) = authenticated(s, bearer) {
        return a;
    }
    if let Some((code, retry)) = s.failures.pop_front() {
        let mut a = google_error(
            code,
            status_name(code),
            match code {
                429 => {
                    "Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute per project'."
                }
                403 => "Permission denied on resource project.",
                _ => "The service is currently unavailable.",
            },
        );
        if let Some(r) = retry {
            a.headers_mut()
                .insert("retry-after", r.to_string().parse().unwrap());
        }
        return a;
    }
    let location = t.location.clone();
    if let Some(id) = &t.secret
        && s.denied.contains(id)
    {
        return google_error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'secretmanager.versions.access' denied for resource '{}/secrets/{id}' (or it may not exist).",
                parent_name(&location)
            ),
        );
    }
    let key = |id: &str| (location.clone(), id.to_string());
    match call {
        "ListSecrets" => {
            let filter = q.get("filter").cloned().unwrap_or_default();
            let mut all = Vec::new();
            for ((loc, id), sec) in &s.secrets {
                if *loc != location {
                    continue;
                }
                match matches_filter(id, sec, &filter) {
                    Ok(true) => all.push(secret_json(loc, id, sec)),
                    Ok(false) => {}
                    Err(e) => return google_error(400, "INVALID_ARGUMENT", &e),
                }
            }
            let asked: usize = q
                .get("pageSize")
                .and_then(|p| p.parse().ok())
                .filter(|p| *p > 0)
                .unwrap_or(25_000);
            let size = asked.min(s.max_page_size.unwrap_or(25_000));
            let offset = match q.get("pageToken").filter(|t| !t.is_empty()) {
                None => 0,
                Some(t) => match page_offset(t) {
                    Some(o) => o,
                    None => return google_error(400, "INVALID_ARGUMENT", "Invalid page token."),
                },
            };
            let total = all.len();
            let page: Vec<Value> = all.into_iter().skip(offset).take(size).collect();
            let mut out = json!({"totalSize": total});
            if !page.is_empty() {
                out["secrets"] = Value::Array(page);
            }
            if offset + size < total {
                out["nextPageToken"] = json!(page_token(offset + size));
            }
            json_answer(StatusCode::OK, &out)
        }
        "CreateSecret" => {
            let Some(id) = q.get("secretId").filter(|i| !i.is_empty()) else {
                return google_error(400, "INVALID_ARGUMENT", "secret_id is required.");
            };
            let Ok(req) = serde_json::from_slice::<Value>(body) else {
                return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.");
            };
            let has_replication = req.get("replication").is_some();
            if location.is_empty() && !has_replication {
                return google_error(400, "INVALID_ARGUMENT", "Replication policy is required.");
            }
            if !location.is_empty() && has_replication {
                return google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "Replication is not supported for regional secrets.",
                );
            }
            if s.secrets.contains_key(&key(id)) {
                return google_error(
                    409,
                    "ALREADY_EXISTS",
                    &format!(
                        "Secret [{}/secrets/{id}] already exists.",
                        parent_name(&location)
                    ),
                );
            }
            s.clock += 1;
            let sec = StoredSecret {
                labels: serde_json::from_value(req["labels"].clone()).unwrap_or_default(),
                annotations: serde_json::from_value(req["annotations"].clone()).unwrap_or_default(),
                versions: Vec::new(),
                created: s.clock,
                etag_n: 0,
            };
            let out = secret_json(&location, id, &sec);
            s.secrets.insert(key(id), sec);
            json_answer(StatusCode::OK, &out)
        }
        "GetSecret"
        | "UpdateSecret"
        | "DeleteSecret"
        | "AddSecretVersion"
        | "ListSecretVersions"
        | "AccessSecretVersion" => {
            let id = t.secret.clone().unwrap_or_default();
            let corrupt = s.corrupt_crc.contains(&id);
            s.clock += 1;
            let clock = s.clock;
            let Some(sec) = s.secrets.get_mut(&key(&id)) else {
                return not_found_secret(&location, &id);
            };
            match call {
                "GetSecret" => json_answer(StatusCode::OK, &secret_json(&location, &id, sec)),
                "UpdateSecret" => {
                    let Ok(req) = serde_json::from_slice::<Value>(body) else {
                        return google_error(
                            400,
                            "INVALID_ARGUMENT",
                            "Invalid JSON payload received.",
                        );
                    };
                    let Some(mask) = q.get("updateMask") else {
                        return google_error(400, "INVALID_ARGUMENT", "update_mask is required.");
                    };
                    for field in mask.split(',') {
                        match field {
                            "labels" => {
                                sec.labels = serde_json::from_value(req["labels"].clone())
                                    .unwrap_or_default();
                            }
                            "annotations" => {
                                sec.annotations =
                                    serde_json::from_value(req["annotations"].clone())
                                        .unwrap_or_default();
                            }
                            other => {
                                return google_error(
                                    400,
                                    "INVALID_ARGUMENT",
                                    &format!("Unsupported update mask path {other}."),
                                );
                            }
                        }
                    }
                    sec.etag_n += 1;
                    json_answer(StatusCode::OK, &secret_json(&location, &id, sec))
                }
                "DeleteSecret" => {
                    if let Some(etag) = q.get("etag")
                        && *etag != format!("\"{:x}{}\"", sec.created, sec.etag_n)
                    {
                        return google_error(
                            400,
                            "FAILED_PRECONDITION",
                            "The etag provided in the request does not match the current etag.",
                        );
                    }
                    s.secrets.remove(&key(&id));
                    json_answer(StatusCode::OK, &json!({}))
                }
                "AddSecretVersion" => {
                    let Ok(req) = serde_json::from_slice::<Value>(body) else {
                        return google_error(
                            400,
                            "INVALID_ARGUMENT",
                            "Invalid JSON payload received.",
                        );
                    };
                    let Some(data) = req["payload"]["data"]
                        .as_str()
                        .and_then(|d| B64.decode(d).ok())
                    else {
                        return google_error(400, "INVALID_ARGUMENT", "Payload data is required.");
                    };
                    if let Some(crc) = req["payload"].get("dataCrc32c") {
                        let given = crc
                            .as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| crc.to_string());
                        if given != crc32c_text(&data) {
                            return google_error(
                                400,
                                "INVALID_ARGUMENT",
                                "Checksum mismatch: the data_crc32c provided does not match the data.",
                            );
                        }
                    }
                    sec.versions.push(Version {
                        data,
                        state: "ENABLED",
                        created: clock,
                    });
                    let n = sec.versions.len();
                    let v = version_json(&location, &id, n, &sec.versions[n - 1]);
                    json_answer(StatusCode::OK, &v)
                }
                "ListSecretVersions" => {
                    let filter = q.get("filter").cloned().unwrap_or_default();
                    let want_state = filter.strip_prefix("state:").map(str::to_string);
                    if !filter.is_empty() && want_state.is_none() {
                        return google_error(400, "INVALID_ARGUMENT", "Invalid filter.");
                    }
                    // Newest first, as the reference says.
                    let versions: Vec<Value> = sec
                        .versions
                        .iter()
                        .enumerate()
                        .rev()
                        .filter(|(_, v)| want_state.as_deref().is_none_or(|w| v.state == w))
                        .map(|(i, v)| version_json(&location, &id, i + 1, v))
                        .collect();
                    let mut out = json!({"totalSize": versions.len()});
                    if !versions.is_empty() {
                        out["versions"] = Value::Array(versions);
                    }
                    json_answer(StatusCode::OK, &out)
                }
                _ => {
                    let asked = t.version.clone().unwrap_or_default();
                    let n = if asked == "latest" {
                        sec.versions.len()
                    } else {
                        asked.parse::<usize>().unwrap_or(0)
                    };
                    let Some(v) = n.checked_sub(1).and_then(|i| sec.versions.get(i)).cloned()
                    else {
                        return google_error(
                            404,
                            "NOT_FOUND",
                            &format!(
                                "Secret Version [{}/secrets/{id}/versions/{asked}] not found.",
                                parent_name(&location)
                            ),
                        );
                    };
                    let name = format!("{}/secrets/{id}/versions/{n}", parent_name(&location));
                    if v.state != "ENABLED" {
                        return google_error(
                            400,
                            "FAILED_PRECONDITION",
                            &format!("Secret Version [{name}] is in {} state.", v.state),
                        );
                    }
                    *s.accesses.entry(id.clone()).or_default() += 1;
                    let crc = if corrupt {
                        crc32c_text(b"something else")
                    } else {
                        crc32c_text(&v.data)
                    };
                    json_answer(
                        StatusCode::OK,
                        &json!({"name": name, "payload": {"data": B64.encode(&v.data), "dataCrc32c": crc}}),
                    )
                }
            }
        }
        _ => google_error(404, "NOT_FOUND", "Unknown method."),
    }
}

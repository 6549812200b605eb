//! A stand-in for AWS CodeArtifact's `GetAuthorizationToken`, since moto (5.2) does not serve CodeArtifact and no other installable emulator does.
//!
//! Written from the published API reference, not from the generator: REST-JSON protocol,
//! `POST /v1/authorization-token?domain=<name>&domain-owner=<account>[&duration=<seconds>]`;
//! the answer is `{"authorizationToken": <token>, "expiration": <epoch seconds>}`. A request
//! without a SigV4 `Authorization` header (`AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/
//! codeartifact/aws4_request, ...`) gets 403 `UnrecognizedClientException`; a domain other than
//! [`DOMAIN`] gets 404 `ResourceNotFoundException`; any other path 404. Signatures are not
//! verified. The stand-in keeps each request (query and `Authorization` header) so a test can
//! check what the client asked for, and that it signed it for `codeartifact` with its key.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The only domain the stand-in knows.
pub const DOMAIN: &str = "packages";
/// The token it hands out (test tokens may append a canary through [`CodeArtifactStandIn::start_with_token`]).
pub const TOKEN: &str = "codeartifact-token-0123456789";
/// The expiry it answers (Unix seconds).
pub const EXPIRATION: i64 = 1_893_456_000;

/// One `GetAuthorizationToken` request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The method (`POST`).
    pub method: String,
    /// The query string's parameters, in order.
    pub query: Vec<(String, String)>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

impl TokenRequest {
    /// The value of query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running stand-in; it serves on a thread of its own until the test process ends.
pub struct CodeArtifactStandIn {
    /// `http://127.0.0.1:PORT`: the value of `AWS_CODEARTIFACT_ENDPOINT`.
    pub url: String,
    /// The token it answers.
    pub token: String,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
}

impl CodeArtifactStandIn {
    /// Starts the stand-in on a free loopback port, answering [`TOKEN`].
    pub fn start() -> Self {
        Self::start_with_token(TOKEN)
    }

    /// Starts the stand-in answering `token`.
    pub fn start_with_token(token: &str) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let shared = requests.clone();
        let answer_token = token.to_string();
        let addr: SocketAddr = crate::background::serve_on_own_thread(move |tx| async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (shared, token) = (shared.clone(), answer_token.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (shared, token) = (shared.clone(), token.clone());
                        async move { Ok::<_, Infallible>(answer(&shared, &token, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            token: token.to_string(),
            requests,
        }
    }

    /// Every `GetAuthorizationToken` request so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

fn json(status: u16, body: String, error: Option<&str>) -> Response<Full<Bytes>> {
    let mut r = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(code) = error {
        r = r.header("x-amzn-ErrorType", code);
    }
    r.body(Full::new(Bytes::from(body))).unwrap()
}

/// `%XX`-decoded query text (`+` is a space).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn answer(
    requests: &Mutex<Vec<TokenRequest>>,
    token: &str,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect();
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _ = req.into_body().collect().await;
    if method != "POST" || path != "/v1/authorization-token" {
        return json(
            404,
            r#"{"message":"Not Found"}"#.into(),
            Some("ResourceNotFoundException"),
        );
    }
    let request = TokenRequest {
        method,
        query,
        authorization: authorization.clone(),
    };
    requests.lock().unwrap().push(request.clone());
    if !authorization.is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=")) {
        return json(
            403,
            r#"{"message":"The security token included in the request is invalid."}"#.into(),
            Some("UnrecognizedClientException"),
        );
    }
    if request.param("domain") != Some(DOMAIN) {
        return json(
            404,
            format!(
                r#"{{"message":"Domain not found","resourceId":"{}","resourceType":"domain"}}"#,
                request.param("domain").unwrap_or_default()
            ),
            Some("ResourceNotFoundException"),
        );
    }
    json(
        200,
        serde_json::json!({"authorizationToken": token, "expiration": EXPIRATION}).to_string(),
        None,
    )
}
